"""Listing the inputs of an indexing job, read as a stream of bounded chunks.

An input is a folder (recursive; image extensions; id = the path relative to the folder) or a
manifest: ``.jsonl`` / ``.ndjson`` (one object per line), ``.csv`` (an ``id,path`` header) or
``.parquet`` (``id`` and ``path`` columns), on the local disk or at any ``fsspec`` URL
(``file://``, ``s3://``, ``gs://``, ``memory://``, ...). Every entry needs a non-empty ``id`` and
``path`` (``image`` is read as ``path``, so a training manifest indexes as it is); its other
fields become the document's ``meta``. A relative path is resolved against the manifest's folder,
which must then be local: the images themselves are read from the local (or mounted) filesystem.

:func:`iter_inputs` yields lists of at most ``chunk`` items, so a manifest of any length is read
with bounded memory; :func:`scan_inputs` collects them sorted by id for the local engine.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".webp", ".tif", ".tiff"})
MANIFEST_SUFFIXES = (".jsonl", ".ndjson", ".csv", ".parquet")
CHUNK = 10_000
T = TypeVar("T")


@dataclass(frozen=True)
class InputItem:
    """One image to index: a stable id, its file and optional caller metadata."""

    doc_id: str
    path: str
    meta: dict = field(default_factory=dict)


class ManifestError(ValueError):
    """A manifest or input folder that cannot be read."""


def is_url(source: str | Path) -> bool:
    return "://" in str(source)


def iter_inputs(source: str | Path, chunk: int = CHUNK) -> Iterator[list[InputItem]]:
    """The items of a folder or manifest (local path or fsspec URL), ``chunk`` at a time, in file order.

    Raises :class:`ManifestError` (with ``manifest:line`` for a bad entry) when reading reaches it.
    """
    text = str(source)
    if text.startswith("file://"):
        source, text = Path(text[len("file://") :]), text[len("file://") :]
    if is_url(text):
        yield from chunked(_url_items(text), chunk)
        return
    source = Path(source)
    suffix = source.suffix.lower()
    if source.is_dir():
        items = (
            InputItem(p.relative_to(source).as_posix(), str(p.resolve()))
            for p in source.rglob("*")
            if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        )
        yield from chunked(items, chunk)
    elif not source.exists():
        raise ManifestError(f"input {source} does not exist")
    elif suffix in MANIFEST_SUFFIXES:
        base = source.parent
        if suffix == ".parquet":
            yield from chunked(_parquet_items(str(source), source, base, chunk), chunk)
        else:
            with source.open(newline="") as fh:
                yield from chunked(_text_items(fh, suffix, source, base), chunk)
    else:
        raise ManifestError(f"input {source}: expected a folder, a .jsonl, .csv or .parquet manifest")


def scan_inputs(source: str | Path) -> list[InputItem]:
    """Every item of ``source`` (see :func:`iter_inputs`), sorted by id so runs are reproducible."""
    return sorted((it for part in iter_inputs(source) for it in part), key=lambda it: it.doc_id)


def _url_items(url: str) -> Iterator[InputItem]:
    import fsspec

    suffix = Path(url.split("?", 1)[0]).suffix.lower()
    if suffix not in MANIFEST_SUFFIXES:
        raise ManifestError(f"input {url}: a URL must name a .jsonl, .csv or .parquet manifest")
    try:
        opened = fsspec.open(url, "rb")
        fh = opened.open()
    except (FileNotFoundError, OSError) as exc:
        raise ManifestError(f"input {url} cannot be opened ({exc})") from exc
    with fh:
        if suffix == ".parquet":
            yield from _parquet_items(fh, url, None, CHUNK)
        else:
            yield from _text_items(io.TextIOWrapper(fh, encoding="utf-8", newline=""), suffix, url, None)


def _text_items(fh, suffix: str, name, base: Path | None) -> Iterator[InputItem]:
    if suffix == ".csv":
        for n, row in enumerate(csv.DictReader(fh), 2):
            yield manifest_item(row, name, n, base)
        return
    for n, line in enumerate(fh, 1):
        if line.strip():
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ManifestError(f"{name}:{n}: not a JSON object ({exc})") from exc
            yield manifest_item(row, name, n, base)


def _parquet_items(file, name, base: Path | None, chunk: int) -> Iterator[InputItem]:
    """Rows of a Parquet manifest, one record batch at a time (``name:N`` is the 1-based row)."""
    import pyarrow.parquet as pq

    n = 0
    for batch in pq.ParquetFile(file).iter_batches(batch_size=chunk):
        for row in batch.to_pylist():
            n += 1
            # a column is present on every row: a null there is a field the row does not have
            yield manifest_item({k: v for k, v in row.items() if v is not None}, name, n, base)


def manifest_item(row: dict, manifest, line: int, base: Path | None) -> InputItem:
    """One manifest entry as an item; ``base``: the local folder relative paths resolve against."""
    if not isinstance(row, dict):
        raise ManifestError(f"{manifest}:{line}: each entry must be an object with 'id' and 'path'")
    location = row.get("path") or row.get("image")
    if not row.get("id") or not location:
        raise ManifestError(f"{manifest}:{line}: each entry needs non-empty 'id' and 'path' (or 'image')")
    path = Path(str(location))
    if not path.is_absolute():
        if base is None:
            raise ManifestError(
                f"{manifest}:{line}: relative path {str(location)!r} in a remote manifest; give absolute paths"
            )
        path = base / path
    meta = {k: v for k, v in row.items() if k not in ("id", "path", "image")}
    return InputItem(str(row["id"]), str(path.resolve()), meta)


def chunked(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter), read as they come."""
    chunk: list[T] = []
    for it in items:
        chunk.append(it)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
