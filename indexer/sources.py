"""What an input file held when the job last saw it: content fingerprints and the rejects ledger.

A :class:`Fingerprint` (SHA-256, size, mtime) is stored with every indexed document (the
``sources`` table of a generation's metadata) and with every reject (``ROOT/rejects.jsonl``). A
later run compares the file with it: a file whose size and mtime are unchanged is not read again;
one whose stat changed is hashed, and only different content is decoded and encoded again.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path


@dataclass(frozen=True)
class Fingerprint:
    """A file's content hash and the stat that lets a later run trust it without reading the file."""

    sha256: str
    size: int
    mtime_ns: int

    def same_stat(self, st: os.stat_result) -> bool:
        return st.st_size == self.size and st.st_mtime_ns == self.mtime_ns

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | None) -> Fingerprint | None:
        return cls(**json.loads(text)) if text else None


def read_with_fingerprint(path: str | Path) -> tuple[bytes, Fingerprint]:
    """The file's bytes and their fingerprint, from one open (the stat is of the file read)."""
    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        data = fh.read()
    return data, Fingerprint(hashlib.sha256(data).hexdigest(), len(data), st.st_mtime_ns)


def unchanged(path: str | Path, known: Fingerprint | None) -> bool:
    """True when ``path`` still holds the content ``known`` describes (hashed only if its stat
    changed). A file that cannot be read is not unchanged; no fingerprint means nothing to compare,
    which counts as unchanged (documents published from vectors, indexes of older versions)."""
    if known is None:
        return True
    try:
        if known.same_stat(os.stat(path)):
            return True
        return read_with_fingerprint(path)[1].sha256 == known.sha256
    except OSError:
        return False


class RejectsLedger:
    """``ROOT/rejects.jsonl``: one line per rejected (id, content), never repeated.

    ``reasons`` maps the SHA-256 of each rejected content to its reason, so a run rejects known bad
    content again without decoding it; a reason depends on ``max_pixels``, so only entries made
    with the same limit count. Lines of older versions (no hash) are kept and ignored.
    """

    def __init__(self, path: Path, max_pixels: int):
        self.path, self.max_pixels = path, max_pixels
        self._written: set[tuple[str, str, str]] = set()  # (id, sha256 or "", reason)
        self.reasons: dict[str, str] = {}
        for entry in self._entries():
            sha = entry.get("sha256") or ""
            self._written.add((str(entry.get("id")), sha, str(entry.get("reason"))))
            if sha and entry.get("max_pixels") == max_pixels:
                self.reasons[sha] = str(entry.get("reason"))

    def _entries(self) -> Iterable[dict]:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return
        for line in lines:
            try:
                entry = json.loads(line)
            except ValueError:  # a line cut short by a killed job
                continue
            if isinstance(entry, dict):
                yield entry

    def record(self, rejects: Iterable) -> int:
        """Append the rejects not written before; returns how many lines were written."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        lines = []
        for r in rejects:
            sha = r.fingerprint.sha256 if r.fingerprint is not None else ""
            key = (r.doc_id, sha, r.reason)
            if key in self._written:
                continue
            self._written.add(key)
            lines.append(json.dumps({"id": r.doc_id, "path": r.path, "reason": r.reason, "sha256": sha,
                                     "max_pixels": self.max_pixels, "time": now}) + "\n")  # fmt: skip
            if sha:
                self.reasons.setdefault(sha, r.reason)
        if lines:
            with open(self.path, "a") as fh:
                fh.writelines(lines)
        return len(lines)
