"""Batch retrieval files in the formats IR tools share: topics in, TREC or JSON runs out.

Topics are read as pyserini reads them: ``qid<TAB>text`` lines (``.tsv`` and any other
extension), or JSON lines with ``qid`` (or ``id``) and ``query`` (or ``text``, ``title``).
A run is written as TREC lines ``qid Q0 docid rank score tag`` (what ``trec_eval`` and
``pyserini.eval`` read) or as JSON lines, one object per topic with each hit's matched words.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

QID_KEYS = ("qid", "id")
TEXT_KEYS = ("query", "text", "title")


class TopicsError(ValueError):
    """A topics file that cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Topic:
    qid: str
    text: str


def read_topics(path: str | Path) -> list[Topic]:
    """The topics of a TSV or JSONL file, in file order; blank lines are skipped.

    Raises
    ------
    TopicsError
        for a line without a qid or text, a qid with whitespace (TREC runs split on it) or one
        given twice.
    """
    path = Path(path)
    if not path.is_file():
        raise TopicsError(f"topics file {path} does not exist")
    jsonl = path.suffix.lower() in (".jsonl", ".ndjson", ".json")
    topics: list[Topic] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            qid, text = _json_topic(line, path, n) if jsonl else _tsv_topic(line, path, n)
            if not qid or any(ch.isspace() for ch in qid):
                raise TopicsError(f"{path}:{n}: qid {qid!r} is empty or has whitespace (a TREC run splits on it)")
            if not text.strip():
                raise TopicsError(f"{path}:{n}: topic {qid} has no text")
            if qid in seen:
                raise TopicsError(f"{path}:{n}: qid {qid} is given twice")
            seen.add(qid)
            topics.append(Topic(qid, text.strip()))
    if not topics:
        raise TopicsError(f"{path} holds no topics")
    return topics


def _tsv_topic(line: str, path: Path, n: int) -> tuple[str, str]:
    qid, tab, text = line.rstrip("\r\n").partition("\t")
    if not tab:
        raise TopicsError(f"{path}:{n}: expected 'qid<TAB>text'")
    return qid.strip(), text


def _json_topic(line: str, path: Path, n: int) -> tuple[str, str]:
    try:
        obj = json.loads(line)
    except ValueError as exc:
        raise TopicsError(f"{path}:{n}: not JSON ({exc})") from exc
    if not isinstance(obj, dict):
        raise TopicsError(f"{path}:{n}: expected a JSON object")
    qid = next((obj[k] for k in QID_KEYS if obj.get(k) not in (None, "")), None)
    text = next((obj[k] for k in TEXT_KEYS if isinstance(obj.get(k), str)), None)
    if qid is None or text is None:
        raise TopicsError(f"{path}:{n}: each line needs {' or '.join(QID_KEYS)} and {' or '.join(TEXT_KEYS)}")
    return str(qid).strip(), text


def trec_lines(qid: str, hits, tag: str) -> Iterator[str]:
    """TREC run lines of one topic's hits (best first; each has ``doc_id`` and ``score``).

    Raises
    ------
    ValueError
        for a document id with whitespace: it cannot be written as one TREC column.
    """
    for rank, hit in enumerate(hits, 1):
        if any(ch.isspace() for ch in hit.doc_id):
            raise ValueError(f"document id {hit.doc_id!r} has whitespace and cannot be written to a TREC run; use --format json")
        yield f"{qid} Q0 {hit.doc_id} {rank} {hit.score:.6f} {tag}"


def json_record(qid: str | None, result) -> dict:
    """One topic's result (an engine ``TextSearchResult``) as a JSON-able object: the query map
    that was searched and each hit with its matched words' contributions."""
    edited = result.query.edited
    return {
        **({"qid": qid} if qid is not None else {}),
        "query": result.query.text,
        "words": edited.weights,
        "ignored": edited.ignored,
        "left_out": [{"word": w, "reason": why} for w, why in result.query.left_out],
        "hits": [
            {"rank": rank, "id": h.doc_id, "score": h.score, "matches": {m.word: m.contribution for m in h.matches}}
            for rank, h in enumerate(result.hits, 1)
        ],
    }


def write_json_line(out: TextIO, record: dict) -> None:
    out.write(json.dumps(record, ensure_ascii=False) + "\n")
