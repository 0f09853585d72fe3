"""Image-caption manifests: one JSON object per line, shared by every data source.

A manifest line is ``{"id", "image", "captions", "split", "meta"}``. Image paths are stored
relative to the manifest's folder when the image lives under it, so a data folder can be moved
or copied as a whole; readers always hand back absolute paths.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

SPLITS = ("train", "val", "test")
# Karpathy's "restval" images are the validation leftovers everybody trains on.
KARPATHY_SPLIT_ALIASES = {"restval": "train"}


class ManifestError(ValueError):
    """A manifest or dataset file that cannot be read; the message names ``file:line``."""


@dataclass
class ManifestRecord:
    """One image and its captions.

    Attributes
    ----------
    id : str
        Stable identifier, unique within a manifest.
    image : str
        Absolute image path (after reading).
    captions : list of str
        One or more captions describing the image.
    split : str
        ``"train"``, ``"val"`` or ``"test"``.
    meta : dict
        Source-specific extras (keywords, masks, objects, ...); JSON-serialisable.
    """

    id: str
    image: str
    captions: list[str]
    split: str = "train"
    meta: dict = field(default_factory=dict)


def read_manifest(path: str | os.PathLike, split: str | None = None) -> list[ManifestRecord]:
    """Read a JSONL manifest.

    Parameters
    ----------
    path : path-like
        The ``manifest.jsonl`` file.
    split : str, optional
        Keep only records of this split.

    Returns
    -------
    list of ManifestRecord
        Records in file order, image paths resolved against the manifest's folder.

    Raises
    ------
    ManifestError
        On a line that is not JSON or lacks a required field; the message names ``file:line``.
    """
    path = Path(path)
    root = path.resolve().parent
    records = []
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            record = _parse_line(line, root, f"{path}:{lineno}")
            if split is None or record.split == split:
                records.append(record)
    return records


def _parse_line(line: str, root: Path, where: str) -> ManifestRecord:
    """One manifest line -> record, with errors that say where they happened."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ManifestError(f"{where}: not valid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise ManifestError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    missing = [key for key in ("id", "image", "captions") if key not in obj]
    if missing:
        raise ManifestError(f"{where}: missing field(s) {', '.join(missing)}")
    captions = obj["captions"]
    if isinstance(captions, str) or not isinstance(captions, list) or not all(isinstance(c, str) for c in captions):
        raise ManifestError(f"{where}: 'captions' must be a list of strings")
    split = obj.get("split", "train")
    if split not in SPLITS:
        raise ManifestError(f"{where}: split {split!r} is not one of {', '.join(SPLITS)}")
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise ManifestError(f"{where}: 'meta' must be an object")
    image = Path(str(obj["image"]))
    image = image if image.is_absolute() else root / image
    return ManifestRecord(id=str(obj["id"]), image=str(image), captions=list(captions), split=split, meta=meta)


def write_manifest(path: str | os.PathLike, records: Iterable[ManifestRecord]) -> None:
    """Write records as JSONL, image paths relative to the manifest folder when inside it.

    Parameters
    ----------
    path : path-like
        Destination file; parent folders are created.
    records : iterable of ManifestRecord
        Records to write, in order.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    root = path.resolve().parent
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for record in records:
            obj = asdict(record)
            obj["image"] = _relative_if_inside(Path(record.image), root)
            fh.write(json.dumps(obj, ensure_ascii=False) + "\n")
    # Rename last so a reader never sees a half-written manifest.
    os.replace(tmp, path)


def _relative_if_inside(image: Path, root: Path) -> str:
    """POSIX path relative to ``root`` when ``image`` lies under it, else absolute."""
    absolute = image if image.is_absolute() else Path.cwd() / image
    try:
        return absolute.resolve().relative_to(root).as_posix()
    except ValueError:
        return str(absolute)


def read_karpathy(
    json_path: str | os.PathLike, image_root: str | os.PathLike, split: str | None = None
) -> list[ManifestRecord]:
    """Read a Karpathy-split ``dataset_coco.json`` / ``dataset_flickr30k.json``.

    Parameters
    ----------
    json_path : path-like
        The Karpathy dataset file (``{"images": [{"filepath"?, "filename", "split",
        "sentences": [{"raw"}], ...}]}``).
    image_root : path-like
        Folder the images live in; ``filepath`` (COCO: ``train2014``/``val2014``) is joined
        under it when present.
    split : str, optional
        Keep only ``"train"``, ``"val"`` or ``"test"``; ``"restval"`` counts as ``"train"``.

    Returns
    -------
    list of ManifestRecord
        One record per image; ``id`` is the dataset's ``cocoid``/``imgid`` when present.
    """
    json_path = Path(json_path)
    image_root = Path(image_root).resolve()
    try:
        images = json.loads(json_path.read_text(encoding="utf-8"))["images"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ManifestError(f"{json_path}: not a Karpathy dataset file ({exc})") from None
    records = []
    for index, item in enumerate(images):
        record = _karpathy_record(item, image_root, f"{json_path}: images[{index}]")
        if split is None or record.split == split:
            records.append(record)
    return records


def _karpathy_record(item: dict, image_root: Path, where: str) -> ManifestRecord:
    """One ``images[]`` entry -> record."""
    try:
        filename = item["filename"]
        raw_split = item["split"]
        captions = [s["raw"].strip() for s in item["sentences"]]
    except (KeyError, TypeError) as exc:
        raise ManifestError(f"{where}: missing field {exc}") from None
    split = KARPATHY_SPLIT_ALIASES.get(raw_split, raw_split)
    if split not in SPLITS:
        raise ManifestError(f"{where}: unknown split {raw_split!r}")
    image = image_root / item.get("filepath", "") / filename
    ident = item.get("cocoid", item.get("imgid", Path(filename).stem))
    meta = {"source": "karpathy", "filename": filename}
    if raw_split != split:
        meta["karpathy_split"] = raw_split
    return ManifestRecord(id=str(ident), image=str(image), captions=[c for c in captions if c], split=split, meta=meta)


def assign_split(key: str, seed: int = 0, val_fraction: float = 0.05, test_fraction: float = 0.10) -> str:
    """Deterministic split for ``key``: a seeded hash, so it never changes between runs or machines.

    Parameters
    ----------
    key : str
        A stable identifier (the record id).
    seed : int
        Changing the seed reshuffles every split.
    val_fraction, test_fraction : float
        Expected shares of ``"val"`` and ``"test"``; the rest is ``"train"``.

    Returns
    -------
    str
        ``"train"``, ``"val"`` or ``"test"``.
    """
    digest = hashlib.sha1(f"{seed}:{key}".encode()).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    if u < test_fraction:
        return "test"
    if u < test_fraction + val_fraction:
        return "val"
    return "train"


def corpus_stats(records: list[ManifestRecord], images_dropped: dict, captions_dropped: dict) -> dict:
    """What a corpus builder writes into ``stats.json`` about the records it kept and dropped."""
    import re
    from collections import Counter

    captions = [c for r in records for c in r.captions]
    words = [w for c in captions for w in re.findall(r"[^\W\d_]+", c.casefold())]
    vocab = Counter(words)
    return {
        "images_kept": len(records),
        "images_dropped": images_dropped,
        "captions_kept": len(captions),
        "captions_dropped": captions_dropped,
        "captions_per_image": dict(sorted(Counter(len(r.captions) for r in records).items())),
        "caption_sources": dict(Counter(s for r in records for s in r.meta.get("caption_sources", ())).most_common()),
        "splits": dict(Counter(r.split for r in records).most_common()),
        "vocabulary": {
            "distinct_words": len(vocab),
            "total_words": len(words),
            "words_seen_once": sum(1 for v in vocab.values() if v == 1),
            "mean_words_per_caption": round(len(words) / max(1, len(captions)), 2),
            "top_words": dict(vocab.most_common(30)),
        },
    }


class DropReport:
    """What a corpus builder left out and why: rows for ``dropped.jsonl``, counts for ``stats.json``.

    Each row names the item by ``key`` (``"id"``, or ``"path"`` where a source file is the item),
    its ``kind`` (image, caption, word) and ``reason``.
    """

    def __init__(self, key: str = "id") -> None:
        self.key = key
        self.rows: list[dict] = []

    def image(self, item: str | os.PathLike, reason: str, **extra) -> None:
        self.rows.append({self.key: str(item), "kind": "image", "reason": reason, **extra})

    def caption(self, item: str | os.PathLike, reason: str, field_name: str, text: str, **extra) -> None:
        self.rows.append({self.key: str(item), "kind": "caption", "reason": reason, "field": field_name, "text": text, **extra})

    def words(self, item: str | os.PathLike, field_name: str, dropped: list[tuple[str, str]]) -> None:
        """One row per word (or sentence) removed from one caption: ``dropped`` holds (text, reason)."""
        for text, reason in dropped:
            self.rows.append({self.key: str(item), "kind": "word", "reason": reason, "field": field_name, "text": text})

    def counts(self, kind: str) -> dict[str, int]:
        """``{reason: rows}`` of one kind, most frequent first (ties by reason)."""
        from collections import Counter

        counts = Counter(r["reason"] for r in self.rows if r["kind"] == kind)
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict], sort_keys: bool = True) -> None:
    """One JSON object per line, UTF-8 kept as is (``dropped.jsonl`` and the like)."""
    with Path(path).open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=sort_keys) + "\n")
