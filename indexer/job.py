"""The batch indexing job: list -> encode (checkpointed) -> parts per shard -> Lucene -> publish.

Crash safety: every encoded batch is committed to ``ROOT/staging/staging.sqlite`` before the next
one starts, and ``CURRENT`` is replaced only after the new generation is complete. A job killed at
any point and run again re-encodes only what was not committed, drops staged documents that a
publish already made visible, and therefore indexes every image exactly once. A job killed while
the shards' Lucene indexes are built keeps the shards already built (``indexer.shard_build``).

Sharding: ``shards`` > 1 splits the documents by a stable hash of their id
(``indexer.generation.shard_of``); each shard's index is built by its own worker (threads running
Anserini, or Ray tasks with ``engine="ray"``), and appends or deletes touch only the shards that
hold the documents concerned. Every generation is made by ``indexer.generation.GenerationWriter``.

Changes: each document keeps the fingerprint of the file content it was encoded from
(``indexer.sources``). A run encodes new ids and ids whose file content changed; a changed
document replaces the old one in the next generation. Rejected content is written to
``rejects.jsonl`` once and not decoded again by later runs.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from tqdm import tqdm

from indexer import layout, lucene
from indexer.encode import InputItem, Reject, encode_local
from indexer.generation import GenerationWriter, published_sources, shard_of
from indexer.info import IndexInfo, bundle_facts, carried_facts, read_info
from indexer.manifest import iter_inputs, scan_inputs
from indexer.metadata import (
    META_FILE,
    DocRow,
    MetadataReader,
    bundle_mismatch,
    common_folder,
    connect,
    delete_docs,
    insert_docs,
    stored_path,
    write_info,
)
from indexer.shard_build import (
    assemble,
    batch_dirs,
    build_parts,
    clear_parts,
    drop_from_batches,
    fill_parts,
    open_batches,
    part_dir,
    part_ids,
    present_ids,
    seal_parts,
    staged_batches,
)
from indexer.sources import Fingerprint, RejectsLedger, unchanged
from models.preprocess import DEFAULT_MAX_PIXELS

log = logging.getLogger(__name__)


@dataclass
class IndexJobConfig:
    """Settings of one ``lexvla index`` run."""

    bundle: Path
    input: str | Path  # a folder, a manifest, or a manifest's fsspec URL (indexer.manifest)
    root: Path
    batch_size: int = 32
    part_rows: int = 256  # engine "ray": rows each encode actor writes per part batch
    decode_workers: int = 2
    index_threads: int = 2
    java_heap: str = "1g"
    max_pixels: int = DEFAULT_MAX_PIXELS
    rebuild: bool = False  # ignore the published generation and index every input afresh
    engine: str = "local"  # "local" (threads) or "ray": where encoding and the shard builds run
    shards: int | None = None  # None: the published generation's count (1 for a new index)
    device: str = "auto"
    progress: bool = True
    keep_generations: int = 2
    # Image paths under this folder are stored relative to it. Default: the root the published
    # index recorded, else the deepest folder holding every input of the first build.
    image_root: Path | None = None


@dataclass
class JobReport:
    """What a run did; ``generation`` is ``None`` when nothing changed."""

    scanned: int = 0
    skipped_existing: int = 0
    encoded: int = 0
    replaced: int = 0  # published documents whose file content changed, re-encoded and replaced
    rejected: list[Reject] = field(default_factory=list)
    indexed: int = 0
    removed: int = 0
    doc_count: int = 0
    generation: str | None = None
    shards: int = 1
    reused_shards: list[int] = field(default_factory=list)  # built by a killed run, not built again
    seconds: dict[str, float] = field(default_factory=dict)


class Staging:
    """The job's checkpoint: encoded documents not yet published, tied to one bundle version."""

    def __init__(self, root: Path, bundle_version: str):
        self.dir = root / layout.STAGING
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conn = connect(self.dir / "staging.sqlite")
        stored = self.conn.execute("SELECT value FROM info WHERE key = 'bundle_version'").fetchone()
        if stored and json.loads(stored[0]) != bundle_version:
            log.warning("staging was encoded with bundle %s, not %s: discarding it", json.loads(stored[0]), bundle_version)
            self.conn.execute("DELETE FROM docs")
        write_info(self.conn, {"bundle_version": bundle_version})
        self.conn.commit()

    def ids(self) -> set[str]:
        return {r[0] for r in self.conn.execute("SELECT doc_id FROM docs")}

    def sources(self) -> dict[str, Fingerprint | None]:
        """``{doc_id: fingerprint}`` of the staged documents."""
        known = {d: Fingerprint.from_json(f) for d, f in self.conn.execute("SELECT doc_id, fingerprint FROM sources")}
        return {d: known.get(d) for d in self.ids()}

    def add(self, rows: list[DocRow]) -> None:
        with self.conn:  # one transaction per batch: the checkpoint unit
            insert_docs(self.conn, rows)

    def drop(self, doc_ids: set[str]) -> None:
        with self.conn:
            delete_docs(self.conn, doc_ids)

    def rows(self) -> list[DocRow]:
        reader = MetadataReader(self.dir / "staging.sqlite")
        try:
            sources = reader.sources()
            return [replace(r, source=sources.get(r.doc_id)) for r in reader]
        finally:
            reader.close()

    def clear(self) -> None:
        with self.conn:
            self.conn.execute("DELETE FROM docs")
        clear_parts(self.dir)

    def close(self) -> None:
        self.conn.close()


def _published_info(root: Path) -> tuple[Path | None, IndexInfo | None, dict[str, Fingerprint | None]]:
    """The published generation, its info and ``{doc_id: source fingerprint}`` (all shards)."""
    gen = layout.current_generation(root)
    if gen is None:
        return None, None, {}
    info = read_info(gen)
    return gen, info, published_sources(gen, info)


def _same_content(a: Fingerprint | None, b: Fingerprint | None) -> bool:
    return a is None or b is None or a.sha256 == b.sha256


def plan(items: list[InputItem], published: dict, staged: dict) -> tuple[list[InputItem], set[str]]:
    """``(inputs to encode, staged ids to drop)``: new ids and ids whose file content differs from
    what is published, unless an earlier (killed) run already staged that very content."""
    todo, stale = [], set()
    for it in items:
        if it.doc_id in staged:
            if unchanged(it.path, staged[it.doc_id]):
                continue
            stale.add(it.doc_id)  # staged from content that has changed since
        elif it.doc_id in published and unchanged(it.path, published[it.doc_id]):
            continue
        todo.append(it)
    return todo, stale


def run_index_job(cfg: IndexJobConfig) -> JobReport:
    """Index the new images of ``cfg.input`` into ``cfg.root`` and publish a new generation.

    Returns a :class:`JobReport`. Raises ``IndexLockedError`` when another job holds the root and
    ``ValueError`` when the published index was built with a different bundle (use ``rebuild``).
    """
    from models.bundle import Bundle

    root = Path(cfg.root)
    report = JobReport()
    with layout.writer_lock(root):
        bundle = Bundle(cfg.bundle, device=cfg.device)
        items = _unique(scan_inputs(cfg.input), report) if cfg.engine != "ray" else []  # Ray: streamed below
        report.scanned = len(items)
        current, info, published = _published_info(root)
        problem = bundle_mismatch(info, bundle) if current is not None and not cfg.rebuild else None
        if problem is not None:
            raise ValueError(
                f"{root} was {problem}; "
                "run with --rebuild to re-index everything with the new bundle"
            )
        if current is not None and not cfg.rebuild and cfg.shards and cfg.shards != info.shards:
            raise ValueError(f"{root} has {info.shards} shards, not {cfg.shards}; run with --rebuild to re-shard it")
        shards = cfg.shards or (info.shards if current is not None and not cfg.rebuild else 1)
        if cfg.rebuild:
            published = {}
        recorded = info.image_root if current is not None and not cfg.rebuild else None
        ledger = RejectsLedger(root / layout.REJECTS, cfg.max_pixels)
        staging = Staging(root, bundle.version)
        try:
            if cfg.engine == "ray":
                _run_on_ray(root, bundle, staging, current, published, shards, recorded, cfg, report, ledger)
                return report
            image_root = _image_root(cfg, recorded, lambda: common_folder(it.path for it in items))
            # staged documents that a run killed before it cleaned up has published already
            staging.drop({d for d, fp in staging.sources().items() if d in published and _same_content(fp, published[d])})
            todo, stale = plan(items, published, staging.sources())
            staging.drop(stale)
            report.skipped_existing = len(items) - len(todo)
            t0 = time.perf_counter()
            _encode_into(staging, bundle, todo, cfg, report, ledger, image_root)
            report.seconds["encode"] = time.perf_counter() - t0
            if not staging.ids() and not cfg.rebuild:
                report.doc_count = len(published)
                layout.collect_garbage(root, cfg.keep_generations)
                return report
            report.replaced = len(staging.ids() & published.keys())
            _build_generation(root, bundle, staging, None if cfg.rebuild else current, shards, cfg, report, image_root)
        finally:
            staging.close()
    return report


def _run_on_ray(
    root: Path, bundle, staging: Staging, current: Path | None, published: dict, shards: int, recorded: str | None,
    cfg: IndexJobConfig, report: JobReport, ledger: RejectsLedger,
) -> None:
    """The Ray engine's run: the driver streams the manifest and plans; workers decode, encode and
    write each shard's part batches, seal the parts and build their Lucene indexes; the driver
    assembles and publishes. Only ids, fingerprints and reject reasons pass through the driver.

    Resuming: the batches a killed run completed stay under ``staging/parts`` and are not encoded
    again; a batch holding a document whose file has changed since, or that a publish already made
    visible, loses that document first (``indexer.shard_build.drop_from_batches``).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from indexer.ray_encode import encode_to_parts

    work, run = staging.dir, uuid.uuid4().hex[:8]
    open_batches(work, {"bundle_version": bundle.version, "shards": shards})
    staged, where = staged_batches(work, shards)
    drops: dict[Path, set[str]] = defaultdict(set)
    for d, fp in list(staged.items()):
        if d in published and _same_content(fp, published[d]):  # published by a run killed before it cleaned up
            drops[where[d]].add(d)
            del staged[d]
    todo_dir = work / "todo"
    shutil.rmtree(todo_dir, ignore_errors=True)
    todo_dir.mkdir(parents=True)
    seen: set[str] = set()
    folder: str | None = None
    n_todo = 0
    t0 = time.perf_counter()
    for k, chunk in enumerate(iter_inputs(cfg.input)):
        items = _unique(chunk, report, seen)
        report.scanned += len(items)
        for it in items:
            parent = os.path.dirname(it.path)
            folder = parent if folder is None else os.path.commonpath([folder, parent])
        todo, stale = plan(items, published, staged)
        for d in stale:
            drops[where[d]].add(d)
        # one file per actor batch: Ray Data reads a file as one block, decoded by one task
        for j in range(0, len(todo), cfg.part_rows):
            part = todo[j : j + cfg.part_rows]
            table = pa.table({"doc_id": [it.doc_id for it in part], "path": [it.path for it in part],
                              "meta": [json.dumps(it.meta) for it in part]})  # fmt: skip
            pq.write_table(table, todo_dir / f"todo-{k:06d}-{j // cfg.part_rows:05d}.parquet")
        n_todo += len(todo)
    report.skipped_existing = report.scanned - n_todo
    drop_from_batches(drops)
    image_root = _image_root(cfg, recorded, lambda: Path(folder) if folder is not None else None)
    known_bad = {} if cfg.rebuild else dict(ledger.reasons)  # a rebuild decodes everything again
    if n_todo:
        batches = encode_to_parts(cfg.bundle, bundle.image_spec, todo_dir, work, shards, run, batch_size=cfg.batch_size,
                                  part_rows=cfg.part_rows, max_pixels=cfg.max_pixels, known_bad=known_bad)  # fmt: skip
        with tqdm(total=n_todo, unit="img", desc="encode", disable=not cfg.progress, smoothing=0.1) as bar:
            for written, rejects in batches:
                ledger.record(rejects)
                report.encoded += written
                report.rejected.extend(rejects)
                bar.update(written + len(rejects))
    ledger.record([r for r in report.rejected if r.reason == "duplicate id in input"])
    report.seconds["encode"] = time.perf_counter() - t0
    shutil.rmtree(todo_dir, ignore_errors=True)
    if not cfg.rebuild and not any(batch_dirs(part_dir(work, i)) for i in range(shards)):  # nothing new was written
        report.doc_count = len(published)
        layout.collect_garbage(root, cfg.keep_generations)
        staging.clear()
        return
    t1 = time.perf_counter()
    docs = seal_parts(work, shards, run, image_root, engine="ray")
    report.seconds["shards"] = time.perf_counter() - t1
    if not sum(docs) and (current is None or cfg.rebuild):
        raise ValueError(f"no image of {cfg.input} could be indexed; see {root / layout.REJECTS}")
    ids = list(part_ids(work, shards))
    report.replaced = sum(d in published for d in ids)
    _publish_parts(
        root, bundle, None if cfg.rebuild else current, work, docs, report, shards=shards, engine="ray",
        java_heap=cfg.java_heap, keep_generations=cfg.keep_generations, replace=ids, image_root=image_root,
        progress=cfg.progress,
    )  # fmt: skip
    staging.clear()


def _image_root(cfg: IndexJobConfig, recorded: str | None, common: Callable[[], Path | None]) -> Path | None:
    """The image root of this run: the one the published index ``recorded``, which an explicit
    ``cfg.image_root`` must match (the stored relative paths depend on it), else ``cfg``'s, else
    ``common()``: the deepest folder holding every input."""
    if cfg.image_root is not None:
        wanted = Path(cfg.image_root).resolve()
        if recorded is not None and Path(recorded) != wanted:
            raise ValueError(f"{cfg.root} stores image paths relative to {recorded}, not {wanted}; "
                             "run with --rebuild to re-index with the new image root")  # fmt: skip
        return wanted
    if recorded is not None:
        return Path(recorded)
    return common()


def _unique(items: list[InputItem], report: JobReport, seen: set[str] | None = None) -> list[InputItem]:
    """Drop repeated ids (a manifest listing one id twice) as rejects, keeping the first; ``seen``:
    the ids of earlier chunks of the same input."""
    seen = set() if seen is None else seen
    out = []
    for it in items:
        if it.doc_id in seen:
            report.rejected.append(Reject(it.doc_id, it.path, "duplicate id in input"))
        else:
            seen.add(it.doc_id)
            out.append(it)
    return out


def _encode_into(
    staging: Staging, bundle, todo: list[InputItem], cfg: IndexJobConfig, report: JobReport, ledger: RejectsLedger,
    image_root: Path | None,
) -> None:
    known_bad = {} if cfg.rebuild else dict(ledger.reasons)  # a rebuild decodes everything again
    if cfg.engine == "ray":
        from indexer.ray_encode import encode_ray

        batches = encode_ray(cfg.bundle, todo, batch_size=cfg.batch_size, max_pixels=cfg.max_pixels, known_bad=known_bad)
    else:
        batches = encode_local(bundle, todo, cfg.batch_size, cfg.decode_workers, cfg.max_pixels, known_bad)
    bar = tqdm(total=len(todo), unit="img", desc="encode", disable=not cfg.progress or not todo, smoothing=0.1)
    with bar:
        for rows, rejects in batches:
            staging.add([replace(r, path=stored_path(r.path, image_root)) for r in rows])
            ledger.record(rejects)
            report.encoded += len(rows)
            report.rejected.extend(rejects)
            bar.update(len(rows) + len(rejects))
    ledger.record([r for r in report.rejected if r.reason == "duplicate id in input"])


def _build_generation(
    root: Path, bundle, staging: Staging, current: Path | None, shards: int, cfg: IndexJobConfig, report: JobReport,
    image_root: Path | None,
):
    rows = staging.rows()
    if not rows and current is None:
        raise ValueError(f"no image of {cfg.input} could be indexed; see {root / layout.REJECTS}")
    _publish_generation(
        root, bundle, rows, current, staging.dir, report, shards=shards, engine=cfg.engine,
        index_threads=cfg.index_threads, java_heap=cfg.java_heap, keep_generations=cfg.keep_generations,
        replace=[r.doc_id for r in rows], image_root=image_root, progress=cfg.progress,
    )  # fmt: skip
    staging.clear()


def _publish_generation(
    root: Path,
    bundle,
    rows: Iterable[DocRow],
    current: Path | None,
    work: Path,
    report: JobReport,
    *,
    shards: int = 1,
    engine: str = "local",
    index_threads: int = 2,
    java_heap: str = "1g",
    keep_generations: int = 2,
    check_row=None,
    replace: Iterable[str] = (),
    image_root: Path | None = None,
    progress: bool = False,
) -> Path:
    """Build, check and publish a new generation: ``current``'s documents (if any) plus ``rows``.

    The one place a generation is made from document vectors (the indexing job and
    :func:`publish_rows` both end here). ``rows`` is consumed once, streamed into one part per
    shard under ``work`` (``indexer.shard_build``), so a large iterable is never held in memory.
    ``check_row`` (optional) is called on every row first and may raise ``ValueError``.
    ``replace`` names ids whose documents in ``current`` are deleted first (their new rows are in
    ``rows``). ``image_root`` is recorded when given (rows' relative paths lie under it);
    otherwise ``current``'s stays. ``progress`` shows Anserini's build as a bar (its progress lines
    are logged either way). Must run under :func:`layout.writer_lock`. Returns the published generation.
    """
    t0 = time.perf_counter()
    docs = fill_parts(rows, work, shards, check_row)
    report.seconds["shards"] = time.perf_counter() - t0
    return _publish_parts(
        root, bundle, current, work, docs, report, shards=shards, engine=engine, index_threads=index_threads,
        java_heap=java_heap, keep_generations=keep_generations, replace=replace, image_root=image_root, progress=progress,
    )  # fmt: skip


def _publish_parts(
    root: Path,
    bundle,
    current: Path | None,
    work: Path,
    docs: list[int],
    report: JobReport,
    *,
    shards: int = 1,
    engine: str = "local",
    index_threads: int = 2,
    java_heap: str = "1g",
    keep_generations: int = 2,
    replace: Iterable[str] = (),
    image_root: Path | None = None,
    progress: bool = False,
) -> Path:
    """The second half of :func:`_publish_generation`, for parts already filled (``docs`` per part):
    build each part's Lucene index, assemble, check and publish."""
    if not sum(docs) and current is None:
        raise ValueError("no documents to index")
    t1 = time.perf_counter()
    built = build_parts(work, docs, engine, index_threads, java_heap, progress)
    report.seconds["lucene"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    with GenerationWriter(root, current, shards, keep_generations) as gw:
        assemble(gw, work, docs, replace)
        kept_root = read_info(current).image_root if current is not None else None
        info = gw.publish(bundle_facts(bundle) | {"image_root": str(image_root) if image_root is not None else kept_root})
    report.seconds["assemble"] = time.perf_counter() - t2
    report.indexed, report.doc_count, report.generation = sum(docs), info.doc_count, gw.gen.name
    report.shards, report.reused_shards = shards, built.reused
    return gw.gen


def publish_rows(
    root: str | Path,
    bundle,
    rows: Iterable[DocRow],
    *,
    append: bool = False,
    index_threads: int = 2,
    java_heap: str = "1g",
    keep_generations: int = 2,
    check_vocabulary: bool = True,
    shards: int | None = None,
    engine: str = "local",
) -> JobReport:
    """Publish a generation from precomputed document vectors, without encoding any image.

    For vectors computed elsewhere (another machine, a GPU job, an earlier export): each
    :class:`~indexer.metadata.DocRow` carries the id, the image path, its size, the quantised
    impacts ``{word: int}`` and free metadata. The generation is built, checked and published by
    the same code as ``lexvla index`` (atomic ``CURRENT`` swap, old generations collected), and
    the service picks it up on its next reload.

    Parameters
    ----------
    root : index root (created when missing).
    bundle : the :class:`models.bundle.Bundle` (or its directory) the vectors belong to: its
        version, ``quant_scale`` and patch grid are recorded, and the service refuses an index
        built for another bundle. Impacts must be quantised with its ``quant_scale``
        (``models.sparse.quantize_weights``).
    rows : any iterable (consumed once; 100k rows stream without being held in memory).
    append : add to the published generation instead of replacing it; ids already published
        raise ``ValueError`` (remove them first with :func:`remove_documents`).
    check_vocabulary : refuse words that are not in the bundle's vocabulary.
    shards : shard count of the new generation (``None``: the published one's when appending, else 1).
    engine : where the shards' Lucene indexes are built: ``local`` (threads) or ``ray`` (tasks).

    Raises
    ------
    ValueError
        for a duplicate id, a non-positive or non-integer impact, a word with whitespace, a word
        outside the vocabulary, an empty ``rows``, or (``append``) a published index built with
        another bundle. Nothing is published then.
    IndexLockedError
        when another job writes to ``root``.
    """
    from models.bundle import Bundle

    if not isinstance(bundle, Bundle):
        bundle = Bundle(bundle, verify=False)
    root = Path(root)
    report = JobReport()
    vocab = frozenset(bundle.words) if check_vocabulary else None
    with layout.writer_lock(root):
        current, info, published = _published_info(root) if append else (None, None, {})
        shards = shards or (info.shards if info is not None else 1)
        problem = bundle_mismatch(info, bundle) if current is not None else None
        if problem is not None:
            raise ValueError(
                f"{root} was {problem}; "
                "publish without append to replace it"
            )
        seen: set[str] = set()

        def check(row: DocRow) -> None:
            if row.doc_id in seen or row.doc_id in published:
                raise ValueError(f"document id {row.doc_id!r} given twice or already published")
            seen.add(row.doc_id)
            for word, impact in row.impacts.items():
                if type(impact) is not int or impact <= 0:
                    raise ValueError(f"{row.doc_id}: impact of {word!r} must be a positive int, got {impact!r}")
                if not word or word != word.strip() or any(c.isspace() for c in word):
                    raise ValueError(f"{row.doc_id}: word {word!r} is empty or contains whitespace")
                if vocab is not None and word not in vocab:
                    raise ValueError(f"{row.doc_id}: word {word!r} is not in the vocabulary of bundle {bundle.version}")

        work = root / layout.STAGING / f"rows-{uuid.uuid4().hex[:8]}"
        t0 = time.perf_counter()
        try:
            _publish_generation(
                root, bundle, rows, current, work, report,
                shards=shards, engine=engine, index_threads=index_threads, java_heap=java_heap,
                keep_generations=keep_generations, check_row=check,
            )  # fmt: skip
        finally:
            shutil.rmtree(work, ignore_errors=True)
        report.seconds["total"] = time.perf_counter() - t0
    return report


def remove_documents(root: str | Path, doc_ids: list[str], keep_generations: int = 2) -> JobReport:
    """Delete documents from the published index into a new generation and publish it.

    Only the shards holding one of the documents are copied and changed. Unknown ids are ignored
    (reported through ``JobReport.removed``).
    """
    root = Path(root)
    report = JobReport()
    with layout.writer_lock(root):
        current = layout.require_generation(root)
        info = read_info(current)
        wanted: dict[int, list[str]] = defaultdict(list)
        for doc_id in set(doc_ids):
            wanted[shard_of(doc_id, info.shards)].append(doc_id)
        targets = {i: found for i, ids in wanted.items() if (found := present_ids(layout.shard_dir(current, i, info.shards) / META_FILE, ids))}
        report.doc_count, report.shards = info.doc_count, info.shards
        if not targets:
            return report
        with GenerationWriter(root, current, info.shards, keep_generations) as gw:
            for i, ids in targets.items():
                folder = gw.change(i)
                lucene.delete_documents(folder / layout.LUCENE_DIR, ids)
                with contextlib.closing(connect(folder / META_FILE)) as conn, conn:
                    delete_docs(conn, ids)
            new = gw.publish(carried_facts(info))
        report.removed = sum(len(ids) for ids in targets.values())
        report.doc_count, report.generation = new.doc_count, gw.gen.name
    return report
