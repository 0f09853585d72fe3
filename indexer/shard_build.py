"""Building a generation's shards: fill the parts, build each part's Lucene index in parallel, assemble.

A build's new documents are split by :func:`indexer.generation.shard_of` into parts, one per
shard, under a work folder (the job's staging folder, so a killed job finds them again)::

    WORK/parts/part-NNN/docs/       JsonVectorCollection files of the part's new documents
    WORK/parts/part-NNN/meta.sqlite their metadata rows
    WORK/parts/part-NNN/fill.json   {"docs": n, "digest": SHA-256 of the JSON lines}
    WORK/parts/part-NNN/lucene/     the part's Lucene index, once built ...
    WORK/parts/part-NNN/built.json  ... and the fill.json it was built from

A part is filled in one of two ways. :func:`fill_parts` streams rows through one process
(:func:`indexer.publish.publish_rows`). The index job's encoders (this process's, or a Ray
cluster's workers: ``indexer.job_engine``) write their rows instead, one batch at a time
(:func:`write_batch`): the job's checkpoint. :func:`seal_part` then makes the part's ``docs/``,
``meta.sqlite`` and ``fill.json`` from its batches::

    WORK/parts/run.json                       the bundle version and shard count the batches are for
    WORK/parts/part-NNN/batches/NAME/         one encoder batch's rows of this shard: docs/*.jsonl,
                                              meta.sqlite (absolute image paths), batch.json
    WORK/parts/part-NNN/batches.tmp/          batches being written (renamed into batches/ when
                                              complete) or being dropped

A batch in ``batches/`` is complete (written elsewhere and renamed), so a job killed at any point
keeps every batch that was finished and encodes only the rest again.

Each part's index is built by a worker (here a thread running the build's ``java``:
:func:`build_parts`; on a cluster a Ray task, ``indexer.ray_job``). A part whose ``built.json``
matches its fresh ``fill.json`` is not built again, so a job killed mid-build resumes shard by
shard. Assembly then brings every part into the new generation through
:class:`indexer.generation.GenerationWriter`: a fresh shard links the part's files; an existing
shard is copied, loses its replaced documents and gains the part's segments (``addIndexes``);
shards without changes are linked from the base untouched.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

from tqdm import tqdm

from indexer import layout, lucene
from indexer.ann import ensure_ann, link_ann
from indexer.generation import GenerationWriter, shard_of
from indexer.metadata import META_FILE, DocRow, MetadataReader, connect, delete_docs, insert_docs, stored_path
from indexer.sources import Fingerprint

PARTS = "parts"
BATCHES, BATCHES_TMP = "batches", "batches.tmp"
RUN_FILE = "run.json"
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
    writers: list[lucene.JsonShardWriter] = []
    conns: list[sqlite3.Connection] = []
    pending: list[list[DocRow]] = []
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


# ---- parts written by workers, one batch at a time -------------------------------------------
def open_batches(work: Path, facts: dict) -> None:
    """Keep the batches a killed run left under ``work`` only when they were made for ``facts``
    (bundle version, shard count); otherwise discard every part."""
    run_file = work / PARTS / RUN_FILE
    try:
        kept = json.loads(run_file.read_text())
    except (FileNotFoundError, ValueError):
        kept = None
    if kept != facts:
        clear_parts(work)
        run_file.parent.mkdir(parents=True, exist_ok=True)
        _write_json(run_file, facts)


def write_batch(work: Path, shards: int, rows: list[DocRow], name: str) -> list[int]:
    """Write ``rows`` (absolute image paths) as batch ``name`` of each shard they hash to; returns
    the rows per shard. Each shard's batch appears complete or not at all (written aside, renamed)."""
    by_shard: dict[int, list[DocRow]] = defaultdict(list)
    for row in rows:
        by_shard[shard_of(row.doc_id, shards)].append(row)
    for i, part_rows in sorted(by_shard.items()):
        _write_batch_dir(part_dir(work, i), name, part_rows)
    return [len(by_shard.get(i, ())) for i in range(shards)]


def _write_batch_dir(part: Path, name: str, rows: list[DocRow]) -> None:
    tmp = part / BATCHES_TMP / name
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    writer = lucene.JsonShardWriter(tmp / "docs")
    for row in rows:
        writer.add(row)
    writer.close()
    with contextlib.closing(connect(tmp / META_FILE)) as conn, conn:
        insert_docs(conn, rows)
    _write_json(tmp / "batch.json", {"docs": writer.count, "digest": writer.digest})
    (part / BATCHES).mkdir(exist_ok=True)
    tmp.rename(part / BATCHES / name)


def batch_dirs(part: Path) -> list[Path]:
    """The complete batches of a part, by name."""
    folder = part / BATCHES
    return sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def batch_sources(batch: Path) -> dict[str, Fingerprint | None]:
    """``{doc_id: source fingerprint}`` of one batch."""
    with contextlib.closing(connect(batch / META_FILE, readonly=True)) as conn:
        rows = conn.execute("SELECT d.doc_id, s.fingerprint FROM docs d LEFT JOIN sources s USING (doc_id)").fetchall()
    return {d: Fingerprint.from_json(fp) for d, fp in rows}


def part_batches(part: Path) -> tuple[dict[str, Fingerprint | None], dict[str, Path]]:
    """``({doc_id: fingerprint}, {doc_id: batch})`` of every document the batches of one part hold."""
    sources: dict[str, Fingerprint | None] = {}
    where: dict[str, Path] = {}
    for batch in batch_dirs(part):
        found = batch_sources(batch)
        sources |= found
        where |= dict.fromkeys(found, batch)
    return sources, where


def staged_batches(work: Path, shards: int) -> tuple[dict[str, Fingerprint | None], dict[str, Path]]:
    """:func:`part_batches` of every part under ``work``, together."""
    sources: dict[str, Fingerprint | None] = {}
    where: dict[str, Path] = {}
    for i in range(shards):
        found, at = part_batches(part_dir(work, i))
        sources |= found
        where |= at
    return sources, where


def drop_from_batches(drops: dict[Path, set[str]]) -> None:
    """Remove documents from batches: each batch concerned is written again without them.

    The old batch leaves ``batches/`` before the new one enters: a job killed in between has lost
    the batch's other documents, which the next run encodes again, and never holds one twice.
    """
    for batch, ids in sorted(drops.items()):
        if not ids:
            continue
        reader = MetadataReader(batch / META_FILE)
        try:
            sources = reader.sources()
            keep = [replace(r, source=sources.get(r.doc_id)) for r in reader if r.doc_id not in ids]
        finally:
            reader.close()
        part = batch.parent.parent
        gone = part / BATCHES_TMP / f"{batch.name}.drop"
        shutil.rmtree(gone, ignore_errors=True)
        gone.parent.mkdir(parents=True, exist_ok=True)
        batch.rename(gone)
        if keep:
            _write_batch_dir(part, f"{batch.name}-r", keep)
        shutil.rmtree(gone)


def seal_part(part: str | Path, run: str, image_root: str | None) -> int:
    """Make a part's ``docs/``, ``meta.sqlite`` and ``fill.json`` from its batches; returns its documents.

    The unit of work of a sealing worker (arguments are plain values). An id found in two batches
    (a batch finished by a worker of a killed run after the next run had planned it) is kept once:
    from a batch of this ``run`` if there is one. Image paths are stored relative to ``image_root``
    (``indexer.metadata.stored_path``).
    """
    part = Path(part)
    shutil.rmtree(part / BATCHES_TMP, ignore_errors=True)  # unfinished batches of a killed run
    batches = sorted(batch_dirs(part), key=lambda b: (not b.name.startswith(f"{run}-"), b.name))
    seen: set[str] = set()
    drops: dict[Path, set[str]] = {}
    for batch in batches:
        ids = set(batch_sources(batch))
        if ids & seen:
            drops[batch] = ids & seen
        seen |= ids
    if drops:
        drop_from_batches(drops)
        batches = batch_dirs(part)
    docs = part / "docs"
    shutil.rmtree(docs, ignore_errors=True)
    docs.mkdir(parents=True)
    tmp_meta = part / f"{META_FILE}.tmp"
    tmp_meta.unlink(missing_ok=True)
    count, digest = 0, hashlib.sha256()
    with contextlib.closing(connect(tmp_meta)) as conn:
        conn.create_function("stored_path", 1, lambda p: stored_path(p, image_root), deterministic=True)
        for batch in batches:
            for f in sorted((batch / "docs").iterdir()):
                os.link(f, docs / f"{batch.name}-{f.name}")
            conn.execute("ATTACH DATABASE ? AS batch", (str(batch / META_FILE),))
            with conn:
                conn.execute("INSERT INTO docs SELECT doc_id, stored_path(path), width, height, impacts, top_words, meta FROM batch.docs")
                conn.execute("INSERT INTO sources SELECT * FROM batch.sources")
            conn.execute("DETACH DATABASE batch")
            facts = json.loads((batch / "batch.json").read_text())
            count += facts["docs"]
            digest.update(f"{batch.name}:{facts['digest']}\n".encode())
    os.replace(tmp_meta, part / META_FILE)
    _write_json(part / "fill.json", {"docs": count, "digest": digest.hexdigest()})
    return count


def seal_args(work: Path, shards: int, run: str, image_root: Path | None) -> list[tuple[str, str, str | None]]:
    """The arguments of :func:`seal_part` for every part, as plain values (for a worker each)."""
    args = [(str(part_dir(work, i)), run, str(image_root) if image_root is not None else None) for i in range(shards)]
    for a in args:
        Path(a[0]).mkdir(parents=True, exist_ok=True)
    return args


def seal_parts(work: Path, shards: int, run: str, image_root: Path | None) -> list[int]:
    """:func:`seal_part` for every part, one after the other; documents per part."""
    return [seal_part(*a) for a in seal_args(work, shards, run, image_root)]


def build_part(part: str | Path, threads: int = 1, heap: str = "1g", on_progress=None) -> bool:
    """Build one part's Lucene index unless it is built already from the same documents.

    The unit of work of a shard worker (a thread, or a Ray task: arguments are plain values).
    Returns ``True`` when the index was already there. ``on_progress``: the build's progress, as
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


def build_parts(work: Path, docs: list[int], threads: int = 2, heap: str = "1g", progress: bool = False) -> PartsReport:
    """Build the Lucene index of every part holding documents, in parallel threads.

    Up to ``threads`` build processes (java) at once, the threads shared among them; with
    ``progress``, their progress lines drive one bar over all parts.
    """
    todo = [i for i, n in enumerate(docs) if n]
    if not todo:
        return PartsReport(docs, [])
    parallel = max(1, min(len(todo), threads))
    per_build = max(1, threads // parallel)
    done = dict.fromkeys(todo, 0)  # documents each part's build has reported
    lock = threading.Lock()
    with tqdm(total=sum(docs[i] for i in todo), unit="doc", desc="lucene", disable=not progress) as bar:

        def report(i: int, n: int) -> None:
            with lock:
                bar.update(n - done[i])
                done[i] = n

        with ThreadPoolExecutor(parallel, thread_name_prefix="shard-build") as pool:
            reused = list(pool.map(lambda i: build_part(part_dir(work, i), per_build, heap, lambda n: report(i, n)), todo))
    return reused_parts(docs, todo, reused)


def reused_parts(docs: list[int], built: list[int], reused: list[bool]) -> PartsReport:
    """The report of a build of the parts ``built``, given which of them were already there."""
    return PartsReport(docs, [i for i, r in zip(built, reused, strict=True) if r])


def assemble(gw: GenerationWriter, work: Path, docs: list[int], replace: bool = False) -> int:
    """Bring every built part into ``gw``'s generation; returns how many base documents a part's
    replaced. With ``replace``, a part's document whose id the base shard holds replaces it
    (found shard by shard, by joining the part's metadata with the base shard's); without, ids
    must be new.

    Only shards that gain a document or lose a replaced one are touched.
    """
    replaced = 0
    for i in range(gw.shards):
        part = part_dir(work, i)
        if gw.base is None:
            dst = gw.create(i)
            os.link(part / META_FILE, dst / META_FILE)  # the part's files are complete: link, not copy
            if docs[i]:
                shutil.copytree(part / layout.LUCENE_DIR, dst / layout.LUCENE_DIR, copy_function=os.link)
            else:
                lucene.create_empty_index(dst / layout.LUCENE_DIR)
            if gw.ann is not None:  # built in the part, where a killed job finds it again
                ensure_ann(part, gw.ann, json.loads((part / "fill.json").read_text()))
                link_ann(part, dst)
            continue
        if not docs[i]:
            continue  # carried over from the base by the writer
        gone = shared_ids(gw.base_folder(i) / META_FILE, part / META_FILE) if replace else []
        replaced += len(gone)
        dst = gw.change(i)
        if gone:
            lucene.delete_documents(dst / layout.LUCENE_DIR, gone)
        with contextlib.closing(connect(dst / META_FILE)) as conn:
            conn.execute("ATTACH DATABASE ? AS part", (str(part / META_FILE),))  # not allowed inside a transaction
            with conn:
                delete_docs(conn, gone)
                conn.execute("INSERT OR REPLACE INTO docs SELECT * FROM part.docs")
                conn.execute("INSERT OR REPLACE INTO sources SELECT * FROM part.sources")
        lucene.add_index(dst / layout.LUCENE_DIR, part / layout.LUCENE_DIR)
    return replaced


def shared_ids(meta: Path, other: Path) -> list[str]:
    """The ids both metadata files hold (sorted)."""
    with contextlib.closing(sqlite3.connect(f"file:{meta}?mode=ro", uri=True)) as conn:
        conn.execute("ATTACH DATABASE ? AS other", (f"file:{other}?mode=ro",))
        return [r[0] for r in conn.execute("SELECT doc_id FROM docs WHERE doc_id IN (SELECT doc_id FROM other.docs) ORDER BY doc_id")]


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
