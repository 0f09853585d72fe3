"""The batch indexing job: list -> plan -> encode (checkpointed) -> parts per shard -> Lucene -> publish.

:func:`run_index_job` is the one driver; what it is asked to do is an :class:`IndexJobConfig`
(``indexer.job_config``). Where the decoding, encoding and shard builds run is its engine's business
(``indexer.job_engine``: this process, or a Ray cluster in ``indexer.ray_job``; ``indexer.engines``
picks one); every other step is here, the same for both. The top of the index job's layers: nothing
in ``indexer`` imports this module.

Crash safety: every encoded batch is written as a batch of the shards' parts under
``ROOT/staging/parts`` (``indexer.shard_build``) before the next one starts, and ``CURRENT`` is
replaced only after the new generation is complete. A job killed at any point and run again
re-encodes only what no finished batch holds, drops staged documents that a publish already made
visible, and therefore indexes every image exactly once. A job killed while the shards' Lucene
indexes are built keeps the shards already built.

Sharding: ``shards`` > 1 splits the documents by a stable hash of their id
(``indexer.generation.shard_of``); each shard's index is built by its own worker, and appends or
deletes touch only the shards that hold the documents concerned. Every generation is made by
``indexer.generation.GenerationWriter`` (through :func:`indexer.publish.publish_parts`).

Changes: each document keeps the fingerprint of the file content it was encoded from
(``indexer.sources``). A run encodes new ids and ids whose file content changed; a changed
document replaces the old one in the next generation. Rejected content is written to
``rejects.jsonl`` once and not decoded again by later runs.
"""
from __future__ import annotations

import time
import uuid
from pathlib import Path

from tqdm import tqdm

from indexer import layout
from indexer.engines import engine_class
from indexer.info import read_info
from indexer.job_config import IndexJobConfig
from indexer.job_engine import JobEngine
from indexer.manifest import CHUNK
from indexer.metadata import bundle_mismatch
from indexer.planner import DUPLICATE, clear_plan, plan_args, split_inputs, todo_chunks
from indexer.publish import JobReport, publish_parts
from indexer.shard_build import batch_dirs, clear_parts, open_batches, part_dir
from indexer.sources import RejectsLedger
from models.files import DiskFullError, is_disk_full


def run_index_job(cfg: IndexJobConfig) -> JobReport:
    """Index the new images of ``cfg.input`` into ``cfg.root`` and publish a new generation.

    Returns a :class:`JobReport`. Raises ``IndexLockedError`` when another job holds the root and
    ``ValueError`` when the published index was built with a different bundle (use ``rebuild``).
    """
    root = Path(cfg.root)
    try:
        return _run_index_job(cfg, root)
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        generation = layout.current_generation(root)
        current = generation.name if generation is not None else None
        raise DiskFullError(
            f"no space left on the disk holding {root} while indexing {cfg.input} ({type(exc).__name__}: {str(exc)[:200]}); "
            f"nothing of this run was published and the served generation ({current or 'none'}) is unchanged: free space "
            f"(df -h {root}) and run the same command again, it resumes from the batches it finished") from exc


def _run_index_job(cfg: IndexJobConfig, root: Path) -> JobReport:
    from models.bundle import Bundle

    report = JobReport()
    with layout.writer_lock(root):
        bundle = Bundle(cfg.bundle, device=cfg.device)
        current = layout.current_generation(root)
        info = read_info(current) if current is not None else None
        if current is not None and info is not None and not cfg.rebuild:
            problem = bundle_mismatch(info, bundle)
            if problem is not None:
                raise ValueError(f"{root} was {problem}; run with --rebuild to re-index everything with the new bundle")
            if cfg.shards and cfg.shards != info.shards:
                raise ValueError(f"{root} has {info.shards} shards, not {cfg.shards}; run with --rebuild to re-shard it")
            shards, recorded = cfg.shards or info.shards, info.image_root
        else:
            shards, recorded = cfg.shards or 1, None
        base = None if cfg.rebuild else current  # the generation the new one is made from
        work = root / layout.STAGING
        (work / "staging.sqlite").unlink(missing_ok=True)  # older versions' local checkpoint, superseded by the batches
        open_batches(work, {"bundle_version": bundle.version, "shards": shards})  # batches for another bundle go
        ledger = RejectsLedger(root / layout.REJECTS, cfg.max_pixels)
        run = uuid.uuid4().hex[:8]
        engine = engine_class(cfg.engine)(cfg, bundle, work, shards, run)
        try:
            t0 = time.perf_counter()
            image_root, n_todo = _plan_and_queue(cfg, engine, base, recorded, report)
            known_bad = {} if cfg.rebuild else dict(ledger.reasons)  # a rebuild decodes everything again
            with tqdm(total=n_todo, unit="img", desc="encode", disable=not cfg.progress or not n_todo, smoothing=0.1) as bar:
                for written, rejects in engine.encode(known_bad):
                    ledger.record(rejects)
                    report.encoded += written
                    report.rejected.extend(rejects)
                    bar.update(written + len(rejects))
            ledger.record([r for r in report.rejected if r.reason == DUPLICATE])
            report.seconds["encode"] = time.perf_counter() - t0
        finally:
            engine.close()
        clear_plan(work)
        if not cfg.rebuild and not any(batch_dirs(part_dir(work, i)) for i in range(shards)):  # nothing new
            report.doc_count = info.doc_count if info is not None else 0
            layout.collect_garbage(root, cfg.keep_generations)
            clear_parts(work)
            return report
        t1 = time.perf_counter()
        docs = engine.seal_parts(work, shards, run, image_root)
        report.seconds["shards"] = time.perf_counter() - t1
        if not sum(docs) and base is None:
            raise ValueError(f"no image of {cfg.input} could be indexed; see {root / layout.REJECTS}")
        publish_parts(
            root, bundle, base, work, docs, report, engine=type(engine), index_threads=cfg.index_threads,
            java_heap=cfg.java_heap, keep_generations=cfg.keep_generations, replace=True, image_root=image_root,
            progress=cfg.progress, ann=cfg.ann,
        )  # fmt: skip
        clear_parts(work)
    return report


def _plan_and_queue(
    cfg: IndexJobConfig, engine: JobEngine, base: Path | None, recorded: str | None, report: JobReport
) -> tuple[Path | None, int]:
    """Plan every shard on the engine's workers (``indexer.planner``) and queue what to encode.

    The driver streams the input into one file per shard and keeps counts only; each shard's
    planner weighs its inputs against that shard's published documents and finished batches, drops
    staged documents that a publish already made visible or whose file has changed since, and
    writes the shard's to-do list, which goes to the engine a chunk at a time. Returns
    ``(image root, inputs queued)``."""
    split = split_inputs(engine.inputs(), engine.work, engine.shards)
    plans = engine.plan_shards(plan_args(engine.work, engine.shards, base))
    report.scanned = split.scanned - sum(len(p.duplicates) for p in plans)
    report.rejected.extend(r for p in plans for r in p.duplicates)
    queued = sum(p.queued for p in plans)
    engine.queue(todo_chunks(engine.work, engine.shards, CHUNK))
    report.skipped_existing = report.scanned - queued
    return _image_root(cfg, recorded, Path(split.folder) if split.folder is not None else None), queued


def _image_root(cfg: IndexJobConfig, recorded: str | None, common: Path | None) -> Path | None:
    """The image root of this run: the one the published index ``recorded``, which an explicit
    ``cfg.image_root`` must match (the stored relative paths depend on it), else ``cfg``'s, else
    ``common``: the deepest folder holding every input."""
    if cfg.image_root is not None:
        wanted = Path(cfg.image_root).resolve()
        if recorded is not None and Path(recorded) != wanted:
            raise ValueError(f"{cfg.root} stores image paths relative to {recorded}, not {wanted}; "
                             "run with --rebuild to re-index with the new image root")  # fmt: skip
        return wanted
    if recorded is not None:
        return Path(recorded)
    return common
