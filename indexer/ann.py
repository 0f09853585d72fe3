"""Approximate search: one Seismic index per shard, beside the shard's Lucene index.

Lucene is the store of record and the exact path; this is the fast path for large collections.
Seismic (Bruch et al., SIGIR 2024; ``pyseismic-lsr``) keeps, per word, the documents with that
word's largest impacts in blocks of similar documents, each block summarised by a vector of
per-word maxima. A search visits the query's strongest words and skips the blocks whose summary
says they cannot enter the current top-k, then scores the documents it kept with their whole
vectors. The candidates it returns are scored again here from the vectors stored in the shard's
metadata (exact integer dot products, the scores Lucene gives), so every hit carries its exact
score and explanation; only *which* documents are found is approximate (recall, measured by
``bench/ann_bench.py``).

A shard folder holds::

    SHARD/ann/ann.json          {"docs": n, "build": AnnBuild as JSON, "words": [...]} (written last)
    SHARD/ann/index.seismic     Seismic's saved index (absent for a shard without documents)

Seismic reads a word as at most 30 characters, so a word is given to it by its position in
``words`` (the shard's words, in the order the build met them); a query word the shard lacks matches nothing there.

Kept in step with Lucene by :class:`indexer.generation.GenerationWriter`: every shard it creates
or changes gets its structure built from the shard's final metadata before publishing (so appends,
deletes and hot swaps rebuild only the shards they touch), shards it carries over are linked, and
its count check refuses a shard whose structure and metadata disagree. A fresh build makes each
part's structure beside the part's Lucene index (:func:`indexer.shard_build.build_part`), where a
killed job finds it again.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from indexer.metadata import META_FILE, DocRow, connect

__all__ = ["ANN_DIR", "AnnBuild", "AnnSearch", "AnnIndex", "AnnMissingError", "build_ann", "ensure_ann", "ann_build", "ann_docs", "ann_record", "ann_top", "exact_score", "has_ann", "link_ann"]

ANN_DIR = "ann"
ANN_FILE = "ann.json"
_INDEX = "index"  # Seismic saves to "<path>.index.seismic"
_LOAD_LOCK = threading.Lock()
_FILTER_WEIGHT = 1e-3  # a required word the query lacks: found, scoring below any integer impact


class AnnMissingError(RuntimeError):
    """An approximate search was asked of a generation built without the approximate structure."""


@dataclass(frozen=True)
class AnnBuild:
    """How a shard's Seismic index is built (recorded in ``index.json`` as ``ann``).

    keep : the share of the shard's postings kept (per word, those with the largest impacts): 1.0
        keeps all. Seismic's ``n_postings`` (kept per word on average) is this share of the mean
        posting length, so the setting means the same at every shard size...
    max_postings : ... up to this many per word on average (0: no cap), so that a search of a large
        shard reads a bounded number of postings per query word.
    max_fraction : a word keeps at most ``max_fraction`` x ``n_postings`` documents (with
        ``keep`` 1.0 the cap is lifted: every posting stays).
    centroid_fraction, summary_energy, min_cluster_size, doc_cut : Seismic's blocking and
        summaries (its guidelines): blocks per word as a fraction of its kept postings, the L1
        share of a block's summary kept, the smallest block, the words of a document that place it.
    """

    keep: float = 0.5
    max_postings: int = 0
    max_fraction: float = 1.5
    centroid_fraction: float = 0.1
    summary_energy: float = 0.8
    min_cluster_size: int = 2
    doc_cut: int = 15

    @classmethod
    def exhaustive(cls) -> AnnBuild:
        """Every posting kept and whole summaries: with :meth:`AnnSearch.exhaustive`, exact top-k.

        The defaults (half of the postings, summaries of 80% of their L1 mass) with
        :class:`AnnSearch`'s defaults found 99.2% of the exact top-10 (text encoder queries) and
        99.6% (query table) at 100,000 documents (``bench/ann_bench.py``, docs/benchmarks.md)."""
        return cls(keep=1.0, summary_energy=1.0)

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Mapping) -> AnnBuild:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})

    def seismic_args(self, docs: int, postings: int, lists: int) -> dict:
        """Seismic's build arguments for a shard of ``docs`` documents, ``postings`` (word, document)
        pairs and ``lists`` distinct words."""
        mean = postings / max(1, lists)
        n_postings = math.ceil(self.keep * mean)
        if self.max_postings:
            n_postings = min(n_postings, self.max_postings)
        n_postings = max(1, n_postings)
        everything = self.keep >= 1.0 and n_postings >= mean  # nothing pruned: no list capped either
        max_fraction = max(self.max_fraction, docs / n_postings + 1) if everything else self.max_fraction
        return {"n_postings": n_postings, "max_fraction": float(max_fraction), "centroid_fraction": self.centroid_fraction,
                "summary_energy": self.summary_energy, "min_cluster_size": self.min_cluster_size, "doc_cut": self.doc_cut}  # fmt: skip


@dataclass(frozen=True)
class AnnSearch:
    """How an approximate search runs (per request; the service's defaults are its settings).

    query_cut : the query's strongest words whose postings are visited (the others still score
        every candidate).
    heap_factor : a block is visited when its summary's score reaches ``heap_factor`` x the
        current k-th score; lower visits more blocks (slower, higher recall).
    """

    query_cut: int = 16
    heap_factor: float = 0.8

    @classmethod
    def exhaustive(cls) -> AnnSearch:
        """Every query word, every block a summary cannot rule out."""
        return cls(query_cut=1 << 16, heap_factor=1.0)

    def to_json(self) -> dict:
        return asdict(self)


def exact_score(q: Mapping[str, int], impacts: Mapping[str, int]) -> int:
    """The integer dot product of a quantised query and a document's stored impacts (Lucene's score)."""
    return sum(v * impacts[w] for w, v in q.items() if w in impacts)


def has_ann(folder: Path) -> bool:
    """Whether a shard folder holds a complete approximate structure."""
    return (folder / ANN_DIR / ANN_FILE).is_file()


def ann_record(folder: Path) -> dict:
    """A shard's ``ann.json``: its documents, build settings, words and stamp."""
    return json.loads((folder / ANN_DIR / ANN_FILE).read_text())


def ann_docs(folder: Path) -> int:
    """The documents a shard's approximate structure holds."""
    return int(ann_record(folder)["docs"])


def ann_build(folder: Path) -> dict:
    """The build settings (:meth:`AnnBuild.to_json`) a shard's approximate structure was made with."""
    return dict(ann_record(folder)["build"])


def ensure_ann(folder: Path, params: AnnBuild, stamp: dict, threads: int = 0) -> bool:
    """Build ``folder``'s structure unless one built with ``params`` from the documents ``stamp``
    names (a part's ``fill.json``) is there already; True when it was (a resumed job's part)."""
    if has_ann(folder) and ann_record(folder).get("stamp") == stamp and AnnBuild.from_json(ann_build(folder)) == params:
        return True
    build_ann(folder, params, threads, stamp=stamp)
    return False


def build_ann(folder: Path, params: AnnBuild, threads: int = 0, stamp: dict | None = None) -> int:
    """Build ``folder/ann/`` from the documents of ``folder/meta.sqlite``; returns them.

    Written into ``ann.tmp/`` and renamed, ``ann.json`` last: a build killed half-way leaves no
    ``ann/`` that looks complete. ``threads``: Seismic's build threads (0: all cores). ``stamp``
    is kept in ``ann.json`` (:func:`ensure_ann`).
    """
    from seismic import SeismicDataset, SeismicIndex, get_seismic_string

    tmp, final = folder / f"{ANN_DIR}.tmp", folder / ANN_DIR
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    with contextlib.closing(connect(folder / META_FILE, readonly=True)) as conn:
        # one pass over the rows, none held: a word's position (its name for Seismic) is given the
        # first time a document holds it; the documents go straight into Seismic's dataset
        seismic_string = get_seismic_string()
        dataset = SeismicDataset()
        position: dict[str, str] = {}
        docs = postings = 0
        for doc_id, impacts in conn.execute("SELECT doc_id, impacts FROM docs"):
            vector = _positive(impacts)
            tokens = [position.setdefault(w, str(len(position))) for w in vector]
            dataset.add_document(doc_id, np.array(tokens, dtype=seismic_string), np.fromiter(vector.values(), np.float32, len(vector)))
            docs, postings = docs + 1, postings + len(vector)
        words = list(position)
        record = {"docs": docs, "build": params.to_json(), "words": words, "stamp": stamp}
        if docs:
            args = params.seismic_args(docs, postings, len(words))
            with _stdout_silenced():  # Seismic prints its progress on stdout (the CLI's output)
                index = SeismicIndex.build_from_dataset(dataset, num_threads=threads, **args)
                index.save(str(tmp / _INDEX))
            record["seismic"] = args
    (tmp / ANN_FILE).write_text(json.dumps(record))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    return docs


def _positive(impacts: str) -> dict[str, int]:
    """A stored ``impacts`` JSON as ``{word: impact}``, its positive impacts only."""
    return {w: int(v) for w, v in json.loads(impacts).items() if int(v) > 0}


@contextlib.contextmanager
def _stdout_silenced() -> Iterator[None]:
    """File descriptor 1 sent to /dev/null for the block (Seismic's build writes there from Rust)."""
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 1)
            yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def link_ann(src: Path, dst: Path) -> None:
    """Give shard folder ``dst`` the approximate structure of ``src`` (hard links; its files are never rewritten)."""
    if not has_ann(src):
        return
    (dst / ANN_DIR).mkdir(parents=True, exist_ok=True)
    for f in (src / ANN_DIR).iterdir():
        try:
            os.link(f, dst / ANN_DIR / f.name)
        except OSError:  # another filesystem or no hard links
            shutil.copy2(f, dst / ANN_DIR / f.name)


class AnnIndex:
    """One shard's loaded Seismic index: candidates for a quantised query, best first by Seismic's score."""

    def __init__(self, folder: Path):
        record = json.loads((folder / ANN_DIR / ANN_FILE).read_text())
        self.docs = int(record["docs"])
        self.position = {w: str(i) for i, w in enumerate(record["words"])}
        self._index = None
        if self.docs:
            from seismic import SeismicIndex, get_seismic_string

            self._string = get_seismic_string()
            with _LOAD_LOCK:
                self._index = SeismicIndex.load(str(folder / ANN_DIR / f"{_INDEX}.index.seismic"))

    def candidates(self, q: Mapping[str, int], n: int, params: AnnSearch, require: Iterable[str] = ()) -> list[str]:
        """Up to ``n`` document ids for the quantised query ``q``, best first. Words of ``require``
        the query lacks are searched with a weight below any impact, so the documents they alone
        match are found (last), as Lucene's filter-only clauses find them."""
        weighted = {self.position[w]: float(v) for w, v in q.items() if w in self.position and v > 0}
        for w in require:
            if w in self.position:
                weighted.setdefault(self.position[w], _FILTER_WEIGHT)
        if self._index is None or not weighted or n <= 0:
            return []
        words = sorted(weighted.items(), key=lambda t: -t[1])
        tokens = np.array([t for t, _ in words], dtype=self._string)
        values = np.array([v for _, v in words], dtype=np.float32)
        hits = self._index.search("q", tokens, values, k=int(n), query_cut=min(params.query_cut, len(words)),
                                  heap_factor=float(params.heap_factor))  # fmt: skip
        return [doc_id for _, _, doc_id in hits]


def ann_top(index: AnnIndex, rows: Callable[[list[str]], dict[str, DocRow]], q: Mapping[str, int], n: int, params: AnnSearch,
            exclude: Iterable[str] = (), require: Iterable[str] = ()) -> list[tuple[str, int, DocRow]]:  # fmt: skip
    """The best ``n`` candidates of ``index`` for ``q`` that carry no word of ``exclude`` and every
    word of ``require``, each scored from its stored impacts: ``[(doc_id, score, row)]``, score
    descending (``rows``: reads the metadata rows of ids). Seismic knows no filters, so with filters more candidates are asked for (4 times
    as many each round) until ``n`` pass or the shard has no more."""
    excluded, required = set(exclude), set(require)
    ask = n
    while True:
        ids = index.candidates(q, ask, params, required)
        found = rows(ids)
        scored = []
        for doc_id in ids:
            row = found.get(doc_id)
            if row is None or any(w in row.impacts for w in excluded) or not required.issubset(row.impacts):
                continue
            scored.append((doc_id, exact_score(q, row.impacts), row))
        if len(scored) >= n or len(ids) < ask or ask >= index.docs:
            scored.sort(key=lambda t: (-t[1], t[0]))
            return scored[:n]
        ask *= 4
