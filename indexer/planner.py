"""Planning an index job shard by shard, so that the driver holds no per-document state.

What to encode depends, for each input, on what its shard has published and what the job's
checkpoint holds for that shard: both are per shard (:func:`indexer.generation.shard_of` sends an
id to the same shard in every run), so each shard is planned on its own, by a worker::

    WORK/plan/in-NNN.jsonl     the inputs whose ids hash to shard NNN, in input order (the driver
                               streams the input into these: :func:`split_inputs`)
    WORK/plan/todo-NNN.jsonl   what shard NNN's planner queued for encoding (:func:`plan_shard`)

The driver reads the input chunk by chunk and appends each item to its shard's file; it keeps
only counts and the deepest folder holding every input. A planner (a thread here, a Ray task on a
cluster: the engines' ``plan_shards``) reads one shard's published sources, its part's finished
batches and its inputs, and writes the shard's to-do list; the driver then hands the to-do lists
to the engine a chunk at a time. A repeated id lands in one shard, so its planner finds it.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from indexer.encode import Reject
from indexer.generation import shard_of
from indexer.manifest import InputItem, chunked
from indexer.metadata import META_FILE, MetadataReader
from indexer.shard_build import drop_from_batches, part_batches, part_dir
from indexer.sources import Fingerprint, unchanged

__all__ = ["PLAN", "Split", "ShardPlan", "split_inputs", "plan_shard", "plan_args", "todo_chunks", "plan"]

PLAN = "plan"
DUPLICATE = "duplicate id in input"


@dataclass
class Split:
    """What the driver learnt while splitting the input: counts and the inputs' deepest common folder."""

    scanned: int = 0
    folder: str | None = None


@dataclass
class ShardPlan:
    """One shard's plan: inputs read, queued for encoding, and repeated ids (rejected)."""

    scanned: int
    queued: int
    duplicates: list[Reject]


def _in_file(work: Path, shard: int) -> Path:
    return work / PLAN / f"in-{shard:03d}.jsonl"


def _todo_file(work: Path, shard: int) -> Path:
    return work / PLAN / f"todo-{shard:03d}.jsonl"


def split_inputs(chunks: Iterable[list[InputItem]], work: Path, shards: int) -> Split:
    """Stream ``chunks`` into one input file per shard (``WORK/plan/in-NNN.jsonl``)."""
    folder = work / PLAN
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    files = [_in_file(work, i).open("w", encoding="utf-8") for i in range(shards)]
    split = Split()
    try:
        for chunk in chunks:
            for it in chunk:
                files[shard_of(it.doc_id, shards)].write(json.dumps([it.doc_id, it.path, it.meta], ensure_ascii=False) + "\n")
                parent = os.path.dirname(it.path)
                split.folder = parent if split.folder is None else os.path.commonpath([split.folder, parent])
            split.scanned += len(chunk)
    finally:
        for fh in files:
            fh.close()
    return split


def _read_items(path: Path) -> Iterator[InputItem]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            doc_id, file, meta = json.loads(line)
            yield InputItem(doc_id, file, meta)


def plan(
    items: list[InputItem], published: dict[str, Fingerprint | None], staged: dict[str, Fingerprint | None]
) -> tuple[list[InputItem], set[str]]:
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


def _same_content(a: Fingerprint | None, b: Fingerprint | None) -> bool:
    return a is None or b is None or a.sha256 == b.sha256


def plan_shard(work: str | Path, shard: int, published_shard: str | None) -> ShardPlan:
    """Plan one shard: the unit of work of a planning worker (arguments are plain values).

    ``published_shard``: the shard's folder in the published generation the job builds on (``None``
    for a new index or a rebuild). Staged documents that a publish already made visible, or whose
    file has changed since, leave the part's batches; the inputs to encode go to ``todo-NNN.jsonl``.
    """
    work = Path(work)
    published: dict[str, Fingerprint | None] = {}
    if published_shard is not None:
        reader = MetadataReader(Path(published_shard) / META_FILE)
        try:
            published = reader.sources()
        finally:
            reader.close()
    staged, where = part_batches(part_dir(work, shard))
    drops: dict[Path, set[str]] = {}
    for d, fp in list(staged.items()):
        if d in published and _same_content(fp, published[d]):  # published by a run killed before it cleaned up
            drops.setdefault(where[d], set()).add(d)
            del staged[d]
    seen: set[str] = set()
    items, duplicates = [], []
    for it in _read_items(_in_file(work, shard)):
        if it.doc_id in seen:  # a manifest listing one id twice: the first is kept
            duplicates.append(Reject(it.doc_id, it.path, DUPLICATE))
        else:
            seen.add(it.doc_id)
            items.append(it)
    todo, stale = plan(items, published, staged)
    for d in stale:
        drops.setdefault(where[d], set()).add(d)
    drop_from_batches(drops)
    tmp = _todo_file(work, shard).with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for it in todo:
            fh.write(json.dumps([it.doc_id, it.path, it.meta], ensure_ascii=False) + "\n")
    os.replace(tmp, _todo_file(work, shard))
    return ShardPlan(len(items) + len(duplicates), len(todo), duplicates)


def plan_args(work: Path, shards: int, base: Path | None) -> list[tuple[str, int, str | None]]:
    """The arguments of :func:`plan_shard` for every shard, as plain values (for a worker each)."""
    from indexer import layout

    return [(str(work), i, str(layout.shard_dir(base, i, shards)) if base is not None else None) for i in range(shards)]


def todo_chunks(work: Path, shards: int, chunk: int) -> Iterator[list[InputItem]]:
    """Every shard's planned inputs, shard after shard, ``chunk`` at a time."""
    for i in range(shards):
        yield from chunked(_read_items(_todo_file(work, i)), chunk)


def clear_plan(work: Path) -> None:
    shutil.rmtree(work / PLAN, ignore_errors=True)
