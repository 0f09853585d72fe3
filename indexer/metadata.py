"""Per-generation metadata beside the Lucene index: one SQLite file, one reader class.

Schema (``meta.sqlite`` in each generation directory)::

    info(key TEXT PRIMARY KEY, value TEXT)        index-level facts, values JSON-encoded
    docs(doc_id TEXT PRIMARY KEY, path TEXT, width INT, height INT,
         impacts TEXT, top_words TEXT, meta TEXT)   impacts/top_words/meta are JSON
    sources(doc_id TEXT PRIMARY KEY, fingerprint TEXT)   the file content a document was encoded
                                                  from (``indexer.sources.Fingerprint`` as JSON)

``impacts`` is the document's quantised vector ``{word: int}`` exactly as Lucene stores it, so
explanations need no second lookup; ``path`` plus the index's ``patch_grid`` is what the service
needs to re-encode an image with patches and draw per-word heatmaps.

``path`` is relative (POSIX) to the index's image root (``info.image_root``, recorded when the
index is first built) for images under that folder, and absolute otherwise. A reader resolves it
with :func:`resolve_path`, against the recorded root or another folder where the same images are
mounted (a container's ``/data/images``), so an index built on one machine serves on another.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from indexer.sources import Fingerprint

META_FILE = "meta.sqlite"
TOP_WORDS = 16

SCHEMA = """
CREATE TABLE IF NOT EXISTS info (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS docs (
    doc_id TEXT PRIMARY KEY, path TEXT NOT NULL, width INTEGER NOT NULL, height INTEGER NOT NULL,
    impacts TEXT NOT NULL, top_words TEXT NOT NULL, meta TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sources (doc_id TEXT PRIMARY KEY, fingerprint TEXT NOT NULL);
"""


@dataclass(frozen=True)
class DocRow:
    """One indexed image as the indexer writes it."""

    doc_id: str
    path: str
    width: int
    height: int
    impacts: dict[str, int]
    meta: dict
    source: Fingerprint | None = field(default=None, compare=False)  # the indexer's; not read by searches

    def top_words(self, n: int = TOP_WORDS) -> list[str]:
        return [w for w, _ in sorted(self.impacts.items(), key=lambda t: (-t[1], t[0]))[:n]]


def stored_path(path: str, image_root: str | Path | None) -> str:
    """How an image path is stored: relative to ``image_root`` (POSIX) when the file lies under
    it, the absolute path otherwise."""
    if image_root is not None:
        try:
            return Path(path).relative_to(image_root).as_posix()
        except ValueError:
            pass
    return str(path)


def resolve_path(stored: str, image_root: str | Path | None) -> Path:
    """The file of a stored image path: a relative one lies under ``image_root``."""
    path = Path(stored)
    if path.is_absolute() or image_root is None:
        return path
    return Path(image_root) / path


def common_folder(paths: Iterable[str]) -> Path | None:
    """The deepest folder holding every path (``None`` for none): the default image root."""
    parents = [str(Path(p).parent) for p in paths]
    return Path(os.path.commonpath(parents)) if parents else None


def connect(path: str | Path, readonly: bool = False) -> sqlite3.Connection:
    """Open a metadata database; read-only connections never create or lock the file for writing."""
    if readonly:
        if not Path(path).is_file():
            raise FileNotFoundError(f"no metadata database at {path}")
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), check_same_thread=False)
        conn.executescript(SCHEMA)
    return conn


def write_metadata_info(conn: sqlite3.Connection, info: dict) -> None:
    """Set keys of a metadata database's ``info`` table (values as JSON): where format 1
    generations kept their facts, before ``index.json`` (``indexer.info``)."""
    conn.executemany("INSERT OR REPLACE INTO info VALUES (?, ?)", [(k, json.dumps(v)) for k, v in info.items()])


def insert_docs(conn: sqlite3.Connection, rows: Iterable[DocRow]) -> None:
    """Insert or replace ``rows`` (and their source fingerprints: a row without one has none)."""
    rows = list(rows)
    conn.executemany(
        "INSERT OR REPLACE INTO docs VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (r.doc_id, r.path, r.width, r.height, json.dumps(r.impacts), json.dumps(r.top_words()), json.dumps(r.meta))
            for r in rows
        ],
    )
    conn.executemany("DELETE FROM sources WHERE doc_id = ?", [(r.doc_id,) for r in rows if r.source is None])
    conn.executemany(
        "INSERT OR REPLACE INTO sources VALUES (?, ?)", [(r.doc_id, r.source.to_json()) for r in rows if r.source is not None]
    )


def delete_docs(conn: sqlite3.Connection, doc_ids: Iterable[str]) -> int:
    ids = [(d,) for d in doc_ids]
    conn.executemany("DELETE FROM sources WHERE doc_id = ?", ids)
    cur = conn.executemany("DELETE FROM docs WHERE doc_id = ?", ids)
    return cur.rowcount


def _row(values: tuple) -> DocRow:
    doc_id, path, width, height, impacts, _top, meta = values
    return DocRow(doc_id, path, int(width), int(height), json.loads(impacts), json.loads(meta))


def bundle_mismatch(info, bundle) -> str | None:
    """The one rule for serving or extending a published index with ``bundle``: why not, or ``None``.

    The index must have been built with the same bundle version, and so with its quantisation
    scale (the integer impacts mean nothing under another) and its vocabulary (the words are its
    dimensions). The version covers both; they are compared too, so a generation whose facts
    disagree with its version is caught rather than served.

    Parameters
    ----------
    info : the generation's facts: :meth:`MetadataReader.info`'s dict or an ``IndexInfo``.
    bundle : a ``models.bundle.Bundle`` (its ``version`` and ``config``).
    """
    get = info.get if isinstance(info, Mapping) else (lambda key: getattr(info, key, None))
    cfg = bundle.config
    if get("bundle_version") != bundle.version:
        return f"built with bundle {get('bundle_name')}@{get('bundle_version')}, not {cfg.name}@{bundle.version}"
    quant_scale = get("quant_scale")
    if quant_scale is None or float(quant_scale) != float(cfg.quant_scale):
        return f"quantised with scale {quant_scale}, but bundle {bundle.version} uses {cfg.quant_scale}"
    vocab_size = get("vocab_size")
    if vocab_size is None or int(vocab_size) != int(cfg.vocab_size):
        return f"built over {vocab_size} words, but bundle {bundle.version} has {cfg.vocab_size}"
    return None


class MetadataReader:
    """Read-only access to one generation's metadata; safe to share between threads.

    Parameters
    ----------
    path : the ``meta.sqlite`` file of a generation.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._conn = connect(self.path, readonly=True)
        self._lock = threading.Lock()  # one sqlite connection, serialised: lookups take microseconds

    def info(self) -> dict:
        """Index-level facts (``bundle_version``, ``quant_scale``, ``patch_grid``, ...)."""
        with self._lock:
            return {k: json.loads(v) for k, v in self._conn.execute("SELECT key, value FROM info")}

    def get(self, doc_id: str) -> DocRow | None:
        with self._lock:
            row = self._conn.execute("SELECT * FROM docs WHERE doc_id = ?", (doc_id,)).fetchone()
        return None if row is None else _row(row)

    def get_many(self, doc_ids: list[str]) -> dict[str, DocRow]:
        """Rows for the ids that exist, keyed by id (one query)."""
        if not doc_ids:
            return {}
        marks = ",".join("?" * len(doc_ids))
        with self._lock:
            rows = self._conn.execute(f"SELECT * FROM docs WHERE doc_id IN ({marks})", list(doc_ids)).fetchall()
        return {r[0]: _row(r) for r in rows}

    def ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._conn.execute("SELECT doc_id FROM docs")}

    def sources(self) -> dict[str, Fingerprint | None]:
        """``{doc_id: fingerprint}`` of every document (``None``: published without one, or by an
        older version that kept none)."""
        with self._lock:
            ids = [r[0] for r in self._conn.execute("SELECT doc_id FROM docs")]
            try:
                known = dict(self._conn.execute("SELECT doc_id, fingerprint FROM sources").fetchall())
            except sqlite3.OperationalError:  # metadata written before the sources table existed
                known = {}
        return {d: Fingerprint.from_json(known.get(d)) for d in ids}

    def count(self) -> int:
        with self._lock:
            return int(self._conn.execute("SELECT COUNT(*) FROM docs").fetchone()[0])

    def __iter__(self) -> Iterator[DocRow]:
        with self._lock:
            rows = self._conn.execute("SELECT * FROM docs ORDER BY doc_id").fetchall()
        return (_row(r) for r in rows)

    def close(self) -> None:
        with self._lock:
            self._conn.close()
