"""Writing files that a killed or out-of-space run must not leave half-written, and naming a full disk.

``save_atomically`` writes beside the target and renames: a reader sees the old file or the new one,
never a torn one. ``is_disk_full`` recognises an out-of-space error however it arrives (an OSError,
SQLite's message, Java's), so a caller can raise :class:`DiskFullError` with a message that names
the path and what was kept, instead of "[Errno 28] No space left on device".
"""
from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path


class DiskFullError(OSError):
    """A disk filled up during a job: the message names the path and what was kept."""

    def __init__(self, message: str):
        super().__init__(errno.ENOSPC, message)

    def __str__(self) -> str:
        return str(self.strerror)


def is_disk_full(exc: BaseException | None) -> bool:
    """Whether ``exc`` (or an exception it was raised from) says the disk is full: ENOSPC or EDQUOT,
    SQLite's "database or disk is full", or Java's "No space left on device" (Lucene's writer)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if "database or disk is full" in str(exc) or "No space left on device" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def save_atomically(path: str | Path, write: Callable[[Path], object]) -> Path:
    """``write(tmp)`` to a temporary name beside ``path``, then rename it over ``path``; on any error the
    temporary file is removed and ``path`` keeps what it held. The temporary name keeps ``path``'s
    suffix (``np.save`` and ``np.savez`` add theirs to a name without it)."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
