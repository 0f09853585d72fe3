"""``lexvla encode``: an index's (or a folder's) sparse vectors in files other engines ingest.

* ``shards/shard-*.jsonl``: Pyserini/Anserini ``JsonVectorCollection`` (``{"id", "contents", "vector":
  {word: weight}}``), the same shards the indexer builds its Lucene index from
  (``indexer.lucene.write_shards``); Anserini indexes the folder with ``-input shards -impact
  -pretokenized``.
* ``bulk.ndjson`` (optional): the Elasticsearch/OpenSearch ``_bulk`` body, one ``index`` action and
  one ``{field: {word: weight}}`` document per image, with ``mapping.json`` declaring the field as
  ``rank_features`` (OpenSearch neural sparse, Elasticsearch) or ``sparse_vector`` (Elasticsearch 8.11+).
* ``export.json``: where the vectors came from (bundle version, quantisation scale, weights) and
  every input that could not be encoded, with the reason.

Weights are the integer impacts the index stores (``impact``) or those divided by the bundle's
quantisation scale (``float``): an index and a folder encoded with its bundle export the same
vectors either way.
"""
from __future__ import annotations

import itertools
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from indexer.encode import Reject
from indexer.metadata import DocRow

Weights = Literal["impact", "float"]
FIELD_TYPES = ("rank_features", "sparse_vector")
SHARDS_DIR = "shards"  # only shards in it: Anserini reads every file of its -input folder


@dataclass
class ExportReport:
    documents: int = 0
    shards: list[str] = field(default_factory=list)
    rejected: list[Reject] = field(default_factory=list)


@dataclass(frozen=True)
class BulkTarget:
    """Where ``bulk.ndjson`` puts the vectors: index name, field name and field type."""

    index: str
    field: str = "vector"
    field_type: str = "rank_features"


def vector_of(row: DocRow, weights: Weights, scale: float) -> dict[str, float] | dict[str, int]:
    """A document's exported vector: its stored impacts, or impacts / ``scale``."""
    return dict(row.impacts) if weights == "impact" else {w: v / scale for w, v in row.impacts.items()}


def export_vectors(
    rows: Iterable[DocRow], out_dir: Path, facts: dict, weights: Weights = "impact", bulk: BulkTarget | None = None,
    rejected: Iterable[Reject] = (),
) -> ExportReport:
    """Write ``rows`` as JsonVectorCollection shards in ``out_dir`` (and the bulk body with ``bulk``).

    Parameters
    ----------
    rows : the documents (consumed once: a folder's are encoded as they stream).
    out_dir : a new or empty folder.
    facts : the source's facts for ``export.json`` (``bundle_version`` and ``quant_scale`` at least).
    rejected : inputs that could not be encoded; may fill while ``rows`` streams.
    """
    from indexer.lucene import write_shards

    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise FileExistsError(f"{out_dir} exists and is not an empty folder; give a new one")
    out_dir.mkdir(parents=True, exist_ok=True)
    scale = float(facts["quant_scale"])
    report = ExportReport()
    bulk_fh = (out_dir / "bulk.ndjson").open("w", encoding="utf-8") if bulk else None
    try:
        counted = _counted(rows, report, bulk_fh, bulk, weights, scale)
        paths = write_shards(counted, out_dir / SHARDS_DIR, vector=lambda row: vector_of(row, weights, scale))
    finally:
        if bulk_fh is not None:
            bulk_fh.close()
    report.shards = [p.relative_to(out_dir).as_posix() for p in paths]
    report.rejected = list(rejected)
    if bulk:
        mapping = {"mappings": {"properties": {"id": {"type": "keyword"}, bulk.field: {"type": bulk.field_type}}}}
        (out_dir / "mapping.json").write_text(json.dumps(mapping, indent=2) + "\n")
    summary = {
        **facts, "weights": weights, "documents": report.documents, "shards": report.shards,
        "bulk": None if bulk is None else {"index": bulk.index, "field": bulk.field, "field_type": bulk.field_type},
        "rejected": [{"id": r.doc_id, "path": r.path, "reason": r.reason} for r in report.rejected],
    }  # fmt: skip
    (out_dir / "export.json").write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
    return report


def _counted(rows: Iterable[DocRow], report: ExportReport, bulk_fh, bulk: BulkTarget | None, weights: Weights,
             scale: float) -> Iterator[DocRow]:  # fmt: skip
    for row in rows:
        report.documents += 1
        if bulk_fh is not None and bulk is not None:
            action = {"index": {"_index": bulk.index, "_id": row.doc_id}}
            doc = {"id": row.doc_id, bulk.field: vector_of(row, weights, scale)}
            bulk_fh.write(json.dumps(action, ensure_ascii=False) + "\n" + json.dumps(doc, ensure_ascii=False) + "\n")
        yield row


def index_rows(index_root: Path) -> tuple[Iterator[DocRow], dict, Callable[[], None]]:
    """The published generation's documents (as stored, shard after shard), its facts, and a closer."""
    from indexer import layout
    from indexer.info import carried_facts, read_info
    from indexer.metadata import META_FILE, MetadataReader

    gen = layout.require_generation(index_root)
    info = read_info(gen)
    readers = [MetadataReader(folder / META_FILE) for folder in layout.shard_dirs(gen)]
    facts = {"source": f"index {info.index_version} ({gen.name})", **carried_facts(info)}

    def close() -> None:
        for reader in readers:
            reader.close()

    return itertools.chain.from_iterable(readers), facts, close


def folder_rows(bundle, source: Path, batch_size: int = 32, workers: int = 2, rejected: list | None = None) -> Iterator[DocRow]:
    """Encode a folder or manifest as the indexer does (``indexer.encode.encode_local``); each
    input that cannot be encoded is appended to ``rejected``."""
    from indexer.encode import encode_local, scan_inputs

    for rows, rejects in encode_local(bundle, scan_inputs(source), batch_size=batch_size, workers=workers):
        if rejected is not None:
            rejected.extend(rejects)
        yield from rows
