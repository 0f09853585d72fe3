"""Making a generation from parts, and the writers that need no image encoding.

:func:`publish_parts` is the one place a generation is made from document vectors: the index job
(:func:`indexer.job.run_index_job`) and :func:`publish_rows` both end there, after filling one
part per shard (``indexer.shard_build``). :func:`remove_documents` deletes documents from the
shards that hold them. Every one of them must run under :func:`indexer.layout.writer_lock` and
reports what it did in a :class:`JobReport`.
"""
from __future__ import annotations

import contextlib
import re
import shutil
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from indexer import layout, lucene
from indexer.ann import AnnBuild
from indexer.encode import Reject
from indexer.engines import engine_class
from indexer.generation import GenerationWriter, published_sources, shard_of
from indexer.info import IndexInfo, bundle_facts, carried_facts, read_info
from indexer.job_config import IndexEngine
from indexer.job_engine import JobEngine, LocalEngine
from indexer.metadata import META_FILE, DocRow, bundle_mismatch, connect, delete_docs
from indexer.shard_build import assemble, fill_parts, present_ids
from indexer.sources import Fingerprint

_WHITESPACE = re.compile(r"\s")  # the characters str.isspace() calls whitespace

if TYPE_CHECKING:
    from models.bundle import Bundle


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


def published_state(root: Path) -> tuple[Path | None, IndexInfo | None, dict[str, Fingerprint | None]]:
    """The published generation, its info and ``{doc_id: source fingerprint}`` (all shards)."""
    gen = layout.current_generation(root)
    if gen is None:
        return None, None, {}
    info = read_info(gen)
    return gen, info, published_sources(gen, info)


def publish_parts(
    root: Path,
    bundle: Bundle,
    current: Path | None,
    work: Path,
    docs: list[int],
    report: JobReport,
    *,
    engine: type[JobEngine] = LocalEngine,
    index_threads: int = 2,
    java_heap: str = "1g",
    keep_generations: int = 2,
    replace: bool = False,
    image_root: Path | None = None,
    progress: bool = False,
    ann: AnnBuild | None | str = "base",
) -> Path:
    """Build, check and publish a new generation: ``current``'s documents (if any) plus the parts
    filled under ``work`` (``docs`` documents in each, one part per shard).

    ``engine`` builds each part's Lucene index. With ``replace``, a part's document whose id
    ``current`` holds replaces it (the job's re-encoded changed files); the count goes to
    ``report.replaced``. ``image_root`` is recorded
    when given (the parts' relative paths lie under it); otherwise ``current``'s stays.
    ``progress`` shows the Lucene build as a bar (its progress lines are logged either way).
    ``ann``: the approximate structure's settings (:class:`indexer.generation.GenerationWriter`).
    Returns the published generation.
    """
    if not sum(docs) and current is None:
        raise ValueError("no documents to index")
    shards = len(docs)
    t1 = time.perf_counter()
    built = engine.build_parts(work, docs, index_threads, java_heap, progress)
    report.seconds["lucene"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    with GenerationWriter(root, current, shards, keep_generations, ann) as gw:
        report.replaced = assemble(gw, work, docs, replace)
        kept_root = read_info(current).image_root if current is not None else None
        info = gw.publish(bundle_facts(bundle) | {"image_root": str(image_root) if image_root is not None else kept_root})
    report.seconds["assemble"] = time.perf_counter() - t2
    report.indexed, report.doc_count, report.generation = sum(docs), info.doc_count, gw.gen.name
    report.shards, report.reused_shards = shards, built.reused
    return gw.gen


def publish_rows(
    root: str | Path,
    bundle: Bundle | str | Path,
    rows: Iterable[DocRow],
    *,
    append: bool = False,
    index_threads: int = 2,
    java_heap: str = "1g",
    keep_generations: int = 2,
    check_vocabulary: bool = True,
    shards: int | None = None,
    engine: IndexEngine = IndexEngine.LOCAL,
    ann: AnnBuild | None | str = "base",
    resume: bool = False,
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
    engine : where the shards' Lucene indexes are built: in threads here, or in Ray tasks.
    ann : the approximate structure's settings (:class:`indexer.ann.AnnBuild`), ``None`` for
        none; by default the published generation's when appending, else AnnBuild's defaults.
    resume : build in ``ROOT/staging/rows`` and keep it when the call fails or is killed; called
        again with the same rows, the parts whose Lucene index or approximate structure was built
        from the same rows (the digest of their JSON lines) are not built again. Rows are filled
        again either way. For collections whose build takes longer than one sitting.

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
        current, info, published = published_state(root) if append else (None, None, {})
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
            impacts = row.impacts
            if (all(type(v) is int and v > 0 for v in impacts.values()) and "" not in impacts
                    and not _WHITESPACE.search("".join(impacts)) and (vocab is None or vocab.issuperset(impacts))):  # fmt: skip
                return  # the common case, checked without a loop over each word's letters; a bad row is explained below
            for word, impact in impacts.items():
                if type(impact) is not int or impact <= 0:
                    raise ValueError(f"{row.doc_id}: impact of {word!r} must be a positive int, got {impact!r}")
                if not word or word != word.strip() or any(c.isspace() for c in word):
                    raise ValueError(f"{row.doc_id}: word {word!r} is empty or contains whitespace")
                if vocab is not None and word not in vocab:
                    raise ValueError(f"{row.doc_id}: word {word!r} is not in the vocabulary of bundle {bundle.version}")

        work = root / layout.STAGING / ("rows" if resume else f"rows-{uuid.uuid4().hex[:8]}")
        t0 = time.perf_counter()
        try:
            docs = fill_parts(rows, work, shards, check)  # streamed: rows are never held in memory
            report.seconds["shards"] = time.perf_counter() - t0
            publish_parts(
                root, bundle, current, work, docs, report, engine=engine_class(engine), index_threads=index_threads,
                java_heap=java_heap, keep_generations=keep_generations, ann=ann,
            )  # fmt: skip
        except BaseException:
            if not resume:
                shutil.rmtree(work, ignore_errors=True)
            raise
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
