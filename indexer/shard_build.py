"""Building a generation's shards: fill the parts, build each part's Lucene index in parallel, assemble.

A build's new documents are split by :func:`indexer.generation.shard_of` into parts, one per
shard, under a work folder (the job's staging folder, so a killed job finds them again)::

    WORK/parts/part-NNN/docs/       JsonVectorCollection files of the part's new documents
    WORK/parts/part-NNN/meta.sqlite their metadata rows
    WORK/parts/part-NNN/fill.json   {"docs": n, "digest": SHA-256 of the JSON lines}
    WORK/parts/part-NNN/lucene/     the part's Lucene index, once built ...
    WORK/parts/part-NNN/built.json  ... and the fill.json it was built from

Each part's index is built by a worker (a thread running Anserini's ``java`` locally, or a Ray
task on a cluster). A part whose ``built.json`` matches its fresh ``fill.json`` is not built again,
so a job killed mid-build resumes shard by shard. Assembly then brings every part into the new
generation through :class:`indexer.generation.GenerationWriter`: a fresh shard links the part's
files; an existing shard is copied, loses its replaced documents and gains the part's segments
(``addIndexes``); shards without changes are linked from the base untouched.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from indexer import layout, lucene
from indexer.generation import GenerationWriter, shard_of
from indexer.metadata import META_FILE, DocRow, connect, delete_docs, insert_docs

PARTS = "parts"
ENGINES = ("local", "ray")
_BATCH = 5000


@dataclass
class PartsReport:
    """What :func:`build_parts` did: documents per part and which parts were already built."""

    docs: list[int]
    reused: list[int]


def part_dir(work: Path, i: int) -> Path:
    return work / PARTS / f"part-{i:03d}"


def fill_parts(rows: Iterable[DocRow], work: Path, shards: int, check_row: Callable[[DocRow], None] | None = None) -> list[int]:
    """Stream ``rows`` (consumed once) into one part per shard; returns the documents per part.

    A part's ``lucene/`` and ``built.json`` from an earlier run are kept: :func:`build_parts`
    decides from the digests whether they still hold.
    """
    writers, conns, pending = [], [], []
    for i in range(shards):
        part = part_dir(work, i)
        part.mkdir(parents=True, exist_ok=True)
        (part / META_FILE).unlink(missing_ok=True)
        (part / "fill.json").unlink(missing_ok=True)
        writers.append(lucene.JsonShardWriter(part / "docs"))
        conns.append(connect(part / META_FILE))
        pending.append([])
    try:
        for row in rows:
            if check_row is not None:
                check_row(row)
            i = shard_of(row.doc_id, shards)
            writers[i].add(row)
            pending[i].append(row)
            if len(pending[i]) >= _BATCH:
                insert_docs(conns[i], pending[i])
                pending[i] = []
        for i in range(shards):
            insert_docs(conns[i], pending[i])
            conns[i].commit()
            writers[i].close()
            _write_json(part_dir(work, i) / "fill.json", {"docs": writers[i].count, "digest": writers[i].digest})
    finally:
        for conn in conns:
            conn.close()
    return [w.count for w in writers]


def build_part(part: str | Path, threads: int = 1, heap: str = "1g", on_progress=None) -> bool:
    """Build one part's Lucene index unless it is built already from the same documents.

    The unit of work of a shard worker (a thread, or a Ray task: arguments are plain values).
    Returns ``True`` when the index was already there. ``on_progress``: Anserini's progress, as
    ``lucene.build_impact_index`` gives it (local builds only).
    """
    part = Path(part)
    fill = json.loads((part / "fill.json").read_text())
    built = part / "built.json"
    if (part / layout.LUCENE_DIR).is_dir() and built.is_file() and json.loads(built.read_text()) == fill:
        return True
    built.unlink(missing_ok=True)
    tmp = part / "lucene.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    lucene.build_impact_index(part / "docs", tmp, threads=threads, heap=heap, on_progress=on_progress)
    shutil.rmtree(part / layout.LUCENE_DIR, ignore_errors=True)
    tmp.rename(part / layout.LUCENE_DIR)
    _write_json(built, fill)
    return False


def build_parts(work: Path, docs: list[int], engine: str = "local", threads: int = 2, heap: str = "1g",
                progress: bool = False) -> PartsReport:  # fmt: skip
    """Build the Lucene index of every part holding documents, in parallel.

    ``local``: up to ``threads`` Anserini processes at once, the threads shared among them; with
    ``progress``, Anserini's progress lines drive one bar over all parts. ``ray``: one task per part
    (one CPU each) on the cluster ``ray.init`` connects to.
    """
    todo = [i for i, n in enumerate(docs) if n]
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    if not todo:
        return PartsReport(docs, [])
    if engine == "ray":
        import ray

        if not ray.is_initialized():
            ray.init()
        task = ray.remote(num_cpus=1, max_retries=0)(build_part)
        reused = ray.get([task.remote(str(part_dir(work, i)), 1, heap) for i in todo])
    else:
        parallel = max(1, min(len(todo), threads))
        per_build = max(1, threads // parallel)
        done = dict.fromkeys(todo, 0)  # documents each part's Anserini has reported
        lock = threading.Lock()
        with tqdm(total=sum(docs[i] for i in todo), unit="doc", desc="lucene", disable=not progress) as bar:

            def report(i: int, n: int) -> None:
                with lock:
                    bar.update(n - done[i])
                    done[i] = n

            with ThreadPoolExecutor(parallel, thread_name_prefix="shard-build") as pool:
                reused = list(pool.map(lambda i: build_part(part_dir(work, i), per_build, heap, lambda n: report(i, n)), todo))
    return PartsReport(docs, [i for i, r in zip(todo, reused, strict=True) if r])


def assemble(gw: GenerationWriter, work: Path, docs: list[int], replace: Iterable[str] = ()) -> None:
    """Bring every built part into ``gw``'s generation; ``replace``: ids whose base documents go first.

    Only shards that gain a document or lose a replaced one are touched.
    """
    replaced: dict[int, list[str]] = defaultdict(list)
    for doc_id in replace:
        replaced[shard_of(doc_id, gw.shards)].append(doc_id)
    for i in range(gw.shards):
        part = part_dir(work, i)
        if gw.base is None:
            dst = gw.create(i)
            os.link(part / META_FILE, dst / META_FILE)  # the part's files are complete: link, not copy
            if docs[i]:
                shutil.copytree(part / layout.LUCENE_DIR, dst / layout.LUCENE_DIR, copy_function=os.link)
            else:
                lucene.create_empty_index(dst / layout.LUCENE_DIR)
            continue
        gone = present_ids(gw.base_folder(i) / META_FILE, replaced.get(i, []))
        if not docs[i] and not gone:
            continue  # carried over from the base by the writer
        dst = gw.change(i)
        if gone:
            lucene.delete_documents(dst / layout.LUCENE_DIR, gone)
        with contextlib.closing(connect(dst / META_FILE)) as conn:
            conn.execute("ATTACH DATABASE ? AS part", (str(part / META_FILE),))  # not allowed inside a transaction
            with conn:
                delete_docs(conn, gone)
                conn.execute("INSERT OR REPLACE INTO docs SELECT * FROM part.docs")
                conn.execute("INSERT OR REPLACE INTO sources SELECT * FROM part.sources")
        if docs[i]:
            lucene.add_index(dst / layout.LUCENE_DIR, part / layout.LUCENE_DIR)


def present_ids(meta: Path, doc_ids: list[str]) -> list[str]:
    """Those of ``doc_ids`` that the metadata file ``meta`` holds (sorted)."""
    if not doc_ids:
        return []
    found: list[str] = []
    with contextlib.closing(sqlite3.connect(f"file:{meta}?mode=ro", uri=True)) as conn:
        for start in range(0, len(doc_ids), 500):
            chunk = doc_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found += [r[0] for r in conn.execute(f"SELECT doc_id FROM docs WHERE doc_id IN ({marks})", chunk)]
    return sorted(found)


def clear_parts(work: Path) -> None:
    shutil.rmtree(work / PARTS, ignore_errors=True)


def _write_json(path: Path, value: dict) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, sort_keys=True))
    os.replace(tmp, path)
