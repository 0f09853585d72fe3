"""The batch indexing job: list -> encode (checkpointed) -> shards -> Lucene -> metadata -> publish.

Crash safety: every encoded batch is committed to ``ROOT/staging/staging.sqlite`` before the next
one starts, and ``CURRENT`` is replaced only after the new generation is complete. A job killed at
any point and run again re-encodes only what was not committed, drops staged documents that a
publish already made visible, and therefore indexes every image exactly once.

Changes: each document keeps the fingerprint of the file content it was encoded from
(``indexer.sources``). A run encodes new ids and ids whose file content changed; a changed
document replaces the old one in the next generation. Rejected content is written to
``rejects.jsonl`` once and not decoded again by later runs.
"""
from __future__ import annotations

import contextlib
import json
import logging
import shutil
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from tqdm import tqdm

from indexer import layout, lucene
from indexer.encode import InputItem, Reject, encode_local, scan_inputs
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
from indexer.sources import Fingerprint, RejectsLedger, unchanged
from models.preprocess import DEFAULT_MAX_PIXELS

log = logging.getLogger(__name__)
INDEX_FORMAT = 1


@dataclass
class IndexJobConfig:
    """Settings of one ``lexvla index`` run."""

    bundle: Path
    input: Path
    root: Path
    batch_size: int = 32
    decode_workers: int = 2
    index_threads: int = 2
    java_heap: str = "1g"
    max_pixels: int = DEFAULT_MAX_PIXELS
    rebuild: bool = False  # ignore the published generation and index every input afresh
    engine: str = "local"  # "local" (threads) or "ray"
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
        shutil.rmtree(self.dir / "shards", ignore_errors=True)
        shutil.rmtree(self.dir / "lucene", ignore_errors=True)

    def close(self) -> None:
        self.conn.close()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _published_info(root: Path) -> tuple[Path | None, dict, dict[str, Fingerprint | None]]:
    """The published generation, its info and ``{doc_id: source fingerprint}``."""
    gen = layout.current_generation(root)
    if gen is None:
        return None, {}, {}
    reader = MetadataReader(gen / META_FILE)
    try:
        return gen, reader.info(), reader.sources()
    finally:
        reader.close()


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
        items = _unique(scan_inputs(cfg.input), report)
        report.scanned = len(items)
        current, info, published = _published_info(root)
        problem = bundle_mismatch(info, bundle) if current is not None and not cfg.rebuild else None
        if problem is not None:
            raise ValueError(
                f"{root} was {problem}; "
                "run with --rebuild to re-index everything with the new bundle"
            )
        if cfg.rebuild:
            published, info = {}, {}
        image_root = _image_root(cfg, info, items)
        ledger = RejectsLedger(root / layout.REJECTS, cfg.max_pixels)
        staging = Staging(root, bundle.version)
        try:
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
            _build_generation(root, bundle, staging, None if cfg.rebuild else current, cfg, report, image_root)
        finally:
            staging.close()
    return report


def _image_root(cfg: IndexJobConfig, info: dict, items: list[InputItem]) -> Path | None:
    """The image root of this run: the one the published index recorded, which an explicit
    ``cfg.image_root`` must match (the stored relative paths depend on it), else ``cfg``'s, else
    the deepest folder holding every input."""
    recorded = info.get("image_root")
    if cfg.image_root is not None:
        wanted = Path(cfg.image_root).resolve()
        if recorded is not None and Path(recorded) != wanted:
            raise ValueError(f"{cfg.root} stores image paths relative to {recorded}, not {wanted}; "
                             "run with --rebuild to re-index with the new image root")  # fmt: skip
        return wanted
    if recorded is not None:
        return Path(recorded)
    return common_folder(it.path for it in items)


def _unique(items: list[InputItem], report: JobReport) -> list[InputItem]:
    """Drop repeated ids (a manifest listing one id twice) as rejects, keeping the first."""
    seen: set[str] = set()
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
    root: Path, bundle, staging: Staging, current: Path | None, cfg: IndexJobConfig, report: JobReport, image_root: Path | None
):
    rows = staging.rows()
    if not rows and current is None:
        raise ValueError(f"no image of {cfg.input} could be indexed; see {root / layout.REJECTS}")
    _publish_generation(
        root, bundle, rows, current, staging.dir, report,
        index_threads=cfg.index_threads, java_heap=cfg.java_heap, keep_generations=cfg.keep_generations,
        replace=[r.doc_id for r in rows], progress=cfg.progress, image_root=image_root,
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
    index_threads: int = 2,
    java_heap: str = "1g",
    keep_generations: int = 2,
    check_row=None,
    replace: Iterable[str] = (),
    progress: bool = False,
    image_root: Path | None = None,
) -> Path:
    """Build, check and publish a new generation: ``current``'s documents (if any) plus ``rows``.

    The one place a generation is made from document vectors (the indexing job and
    :func:`publish_rows` both end here). ``rows`` is consumed once: each row is written to a JSON
    shard under ``work/shards`` and to the new generation's metadata in the same pass, so a large
    iterable is never held in memory. ``check_row`` (optional) is called on every row first and may
    raise ``ValueError``. ``replace`` names ids whose documents in ``current`` are deleted first
    (their new rows are in ``rows``). ``image_root`` is recorded when given (rows' relative paths
    lie under it); otherwise ``current``'s stays. ``progress`` shows Anserini's build as a bar (its progress
    lines are logged either way). Must run under :func:`layout.writer_lock`. Returns the published
    generation.
    """
    _discard_unpublished(root)
    gen = layout.new_generation(root)
    t0 = time.perf_counter()
    try:
        if current is not None:
            layout.copy_generation(current, gen)
            _delete_replaced(gen, set(replace))
        with contextlib.closing(connect(gen / META_FILE)) as conn:
            counted = _CountingRows(rows, conn, check_row)
            shards = lucene.write_shards(counted, work / "shards")
            counted.flush()
            conn.commit()
        report.seconds["shards"] = time.perf_counter() - t0
        t1 = time.perf_counter()
        if shards:
            # new documents always go into a fresh index; appending merges its segments in
            target = work / "lucene" if current is not None else gen / layout.LUCENE_DIR
            shutil.rmtree(target, ignore_errors=True)
            with tqdm(total=counted.count, unit="doc", desc="lucene", disable=not progress) as bar:
                lucene.build_impact_index(work / "shards", target, threads=index_threads, heap=java_heap,
                                          on_progress=lambda done: bar.update(done - bar.n))  # fmt: skip
            if current is not None:
                lucene.add_index(gen / layout.LUCENE_DIR, target)
                shutil.rmtree(target, ignore_errors=True)
        elif current is None:
            raise ValueError("no documents to index")
        report.seconds["lucene"] = time.perf_counter() - t1
        with contextlib.closing(connect(gen / META_FILE)) as conn, conn:
            report.doc_count = _finish_metadata(conn, bundle, gen, image_root)
        _check_counts(gen, report.doc_count)
    except BaseException:
        shutil.rmtree(gen, ignore_errors=True)  # never leave a half-built generation behind
        raise
    finally:
        shutil.rmtree(work / "shards", ignore_errors=True)
    layout.publish(root, gen)
    report.indexed, report.generation = counted.count, gen.name
    layout.collect_garbage(root, keep_generations)
    return gen


def _delete_replaced(gen: Path, doc_ids: set[str]) -> None:
    """Delete the documents of ``doc_ids`` that a copied generation has (Lucene and metadata)."""
    with contextlib.closing(connect(gen / META_FILE)) as conn, conn:
        present = sorted(doc_ids & {r[0] for r in conn.execute("SELECT doc_id FROM docs")})
        if present:
            delete_docs(conn, present)
    if present:
        lucene.delete_documents(gen / layout.LUCENE_DIR, present)


class _CountingRows:
    """Iterates ``rows`` for the shard writer while inserting them into ``conn`` in batches."""

    BATCH = 5000

    def __init__(self, rows: Iterable[DocRow], conn: sqlite3.Connection, check_row=None):
        self.rows, self.conn, self.check_row = rows, conn, check_row
        self.pending: list[DocRow] = []
        self.count = 0

    def __iter__(self) -> Iterator[DocRow]:
        for row in self.rows:
            if self.check_row is not None:
                self.check_row(row)
            self.pending.append(row)
            self.count += 1
            if len(self.pending) >= self.BATCH:
                self.flush()
            yield row

    def flush(self) -> None:
        insert_docs(self.conn, self.pending)
        self.pending = []


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
        current, info, published = _published_info(root) if append else (None, {}, set())
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
                index_threads=index_threads, java_heap=java_heap, keep_generations=keep_generations, check_row=check,
            )  # fmt: skip
        finally:
            shutil.rmtree(work, ignore_errors=True)
        report.seconds["total"] = time.perf_counter() - t0
    return report


def _finish_metadata(conn: sqlite3.Connection, bundle, gen: Path, image_root: Path | None = None) -> int:
    """Write the index-level facts of a generation; returns its document count."""
    count = int(conn.execute("SELECT COUNT(*) FROM docs").fetchone()[0])
    if image_root is not None:
        write_info(conn, {"image_root": str(image_root)})
    write_info(conn, {
        "index_format": INDEX_FORMAT,
        "index_version": f"{gen.name}-{uuid.uuid4().hex[:8]}",
        "bundle_version": bundle.version,
        "bundle_name": bundle.config.name,
        "quant_scale": float(bundle.config.quant_scale),
        "vocab_size": int(bundle.config.vocab_size),
        "patch_grid": list(bundle.config.patch_grid),
        "image_size": int(bundle.config.image_size),
        "doc_count": count,
        "created_at": _now(),
    })  # fmt: skip
    return count


def _check_counts(gen: Path, expected: int) -> None:
    """Refuse to publish a generation whose Lucene index and metadata disagree."""
    found = lucene.lucene_doc_count(gen / layout.LUCENE_DIR)
    if found != expected:
        raise RuntimeError(f"{gen}: Lucene has {found} documents, metadata {expected}; not publishing")


def _discard_unpublished(root: Path) -> None:
    """Remove generations newer than ``CURRENT``: leftovers of a job killed before publishing."""
    current = layout.current_generation(root)
    cur_no = int(current.name.split("-")[1]) if current else 0
    for n in layout.generation_numbers(root):
        if n > cur_no:
            shutil.rmtree(root / layout.GENERATIONS / f"gen-{n:06d}", ignore_errors=True)


def remove_documents(root: str | Path, doc_ids: list[str], keep_generations: int = 2) -> JobReport:
    """Delete documents from the published index into a new generation and publish it.

    Unknown ids are ignored (reported through ``JobReport.removed``).
    """
    root = Path(root)
    report = JobReport()
    with layout.writer_lock(root):
        current = layout.require_generation(root)
        _discard_unpublished(root)
        reader = MetadataReader(current / META_FILE)
        try:
            info, present = reader.info(), reader.ids()
        finally:
            reader.close()
        targets = sorted(set(doc_ids) & present)
        report.doc_count = len(present)
        if not targets:
            return report
        gen = layout.new_generation(root)
        layout.copy_generation(current, gen)
        lucene.delete_documents(gen / layout.LUCENE_DIR, targets)
        with contextlib.closing(connect(gen / META_FILE)) as conn, conn:
            delete_docs(conn, targets)
            count = int(conn.execute("SELECT COUNT(*) FROM docs").fetchone()[0])
            write_info(conn, info | {
                "index_version": f"{gen.name}-{uuid.uuid4().hex[:8]}", "doc_count": count, "created_at": _now(),
            })  # fmt: skip
        _check_counts(gen, count)
        layout.publish(root, gen)
        layout.collect_garbage(root, keep_generations)
        report.removed, report.doc_count, report.generation = len(targets), count, gen.name
    return report
