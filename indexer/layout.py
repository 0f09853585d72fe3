"""On-disk layout of an index root and the atomic publish step.

::

    ROOT/CURRENT              name of the published generation (replaced with os.replace)
    ROOT/generations/gen-N/   index.json (``indexer.info``) and, with one shard, lucene/ (Anserini
                              impact index) + meta.sqlite; with N shards, shard-000/ .. shard-N-1/
                              each holding its own lucene/ + meta.sqlite; immutable once published
    ROOT/staging/             the running job's checkpoint (encoded vectors) and per-shard parts
    ROOT/rejects.jsonl        images that could not be indexed, with the reason
    ROOT/.lock                held (flock) by the one job writing to ROOT

Readers only ever follow ``CURRENT`` to a complete generation: a job builds ``gen-N+1`` beside the
published one and swaps the pointer as its last step, so a reader never sees a half-written index.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

CURRENT = "CURRENT"
GENERATIONS = "generations"
LUCENE_DIR = "lucene"
STAGING = "staging"
REJECTS = "rejects.jsonl"
_GEN = re.compile(r"^gen-(\d{6})$")
_SHARD = re.compile(r"^shard-\d{3}$")


class IndexNotFoundError(RuntimeError):
    """No published index at a path; the message names it and says how to build one."""


class IndexLockedError(RuntimeError):
    """Another job is writing to the same index root."""


def current_generation(root: str | Path) -> Path | None:
    """The published generation directory, or ``None`` when nothing was published yet."""
    pointer = Path(root) / CURRENT
    try:
        name = pointer.read_text().strip()
    except FileNotFoundError:
        return None
    gen = Path(root) / GENERATIONS / name
    return gen if gen.is_dir() else None


def require_generation(root: str | Path) -> Path:
    gen = current_generation(root)
    if gen is None:
        raise IndexNotFoundError(
            f"no published index at {Path(root).resolve()} (no {CURRENT} pointer to a generation); "
            f"build one with `lexvla index --bundle BUNDLE --input IMAGES --index {root}`"
        )
    return gen


def generation_numbers(root: str | Path) -> list[int]:
    gens = Path(root) / GENERATIONS
    if not gens.is_dir():
        return []
    return sorted(int(m.group(1)) for p in gens.iterdir() if (m := _GEN.match(p.name)))


def new_generation(root: str | Path) -> Path:
    """A fresh, empty generation directory numbered after every existing one."""
    numbers = generation_numbers(root)
    gen = Path(root) / GENERATIONS / f"gen-{(numbers[-1] + 1 if numbers else 1):06d}"
    gen.mkdir(parents=True)
    return gen


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(root: str | Path, gen: Path) -> None:
    """Point ``CURRENT`` at ``gen`` atomically (write a temp file, fsync, ``os.replace``)."""
    root = Path(root)
    for shard in shard_dirs(gen):
        _fsync_dir(shard / LUCENE_DIR)
        _fsync_dir(shard)
    _fsync_dir(gen)
    tmp = root / f".{CURRENT}.tmp"
    with open(tmp, "w") as fh:
        fh.write(gen.name + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, root / CURRENT)
    _fsync_dir(root)


def collect_garbage(root: str | Path, keep: int = 2) -> list[Path]:
    """Delete generations other than the published one and the ``keep - 1`` published before it.

    Unpublished generations newer than ``CURRENT`` are leftovers of a killed job and go too. The
    previous generation is kept so a reader that has not yet refreshed can still open new files;
    readers that already hold it keep working on Linux even after deletion (open files persist).
    """
    current = current_generation(root)
    found = _GEN.match(current.name) if current is not None else None
    if found is None:  # nothing published, or CURRENT names no generation: nothing is known to be old
        return []
    cur_no = int(found.group(1))
    keepers = {n for n in generation_numbers(root) if n <= cur_no}
    keepers = set(sorted(keepers)[-keep:]) | {cur_no}
    removed = []
    for n in generation_numbers(root):
        if n not in keepers:
            path = Path(root) / GENERATIONS / f"gen-{n:06d}"
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def shard_dirs(gen: Path) -> list[Path]:
    """The folders holding a generation's ``lucene/`` + ``meta.sqlite``: the generation itself
    when it has one shard, else its ``shard-NNN`` folders in shard order."""
    shards = sorted(p for p in gen.iterdir() if _SHARD.match(p.name)) if gen.is_dir() else []
    return shards or [gen]


def shard_dir(gen: Path, index: int, shards: int) -> Path:
    """Where shard ``index`` of a generation with ``shards`` shards lives."""
    return gen if shards == 1 else gen / f"shard-{index:03d}"


def copy_generation(src: Path, dst: Path, link_metadata: bool = False) -> None:
    """Copy a published generation (or one shard of it) into ``dst`` without rebuilding it.

    Lucene never rewrites a file once written (updates add segments, ``.liv`` files and a new
    ``segments_N``), so its files are hard-linked -- O(number of files), not O(index size). The
    SQLite file is mutable and is copied with SQLite's online backup, unless ``link_metadata``
    (a shard the new generation leaves unchanged: its file is never written again).
    """
    (dst / LUCENE_DIR).mkdir(parents=True, exist_ok=True)
    for f in (src / LUCENE_DIR).iterdir():
        if f.name == "write.lock":
            continue
        try:
            os.link(f, dst / LUCENE_DIR / f.name)
        except OSError:  # another filesystem or no hard links
            shutil.copy2(f, dst / LUCENE_DIR / f.name)
    from indexer.metadata import META_FILE

    if link_metadata:
        try:
            os.link(src / META_FILE, dst / META_FILE)
            return
        except OSError:
            pass
    with contextlib.closing(sqlite3.connect(f"file:{src / META_FILE}?mode=ro", uri=True)) as s:
        with contextlib.closing(sqlite3.connect(str(dst / META_FILE))) as d:
            s.backup(d)


@contextlib.contextmanager
def writer_lock(root: str | Path) -> Iterator[None]:
    """Exclusive lock on ROOT for one writing job; released by the kernel even on SIGKILL."""
    Path(root).mkdir(parents=True, exist_ok=True)
    with open(Path(root) / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise IndexLockedError(f"another job is writing to {root}") from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
