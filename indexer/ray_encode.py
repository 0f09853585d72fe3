"""The encode stage on Ray Data: same documents as ``encode_local``, spread over a cluster.

``ray.data`` feeds batches of inputs to a pool of actors, each holding one ONNX session (on a
GPU where the cluster has them). Actors call the same :func:`decode_one` and
:func:`encode_decoded` as the local path, so the shards are identical. Results stream back to
the driver, which checkpoints them into the job's staging database like the local path does.
"""
from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path

from indexer.encode import Decoded, InputItem, Reject, decode_one, encode_decoded
from indexer.metadata import DocRow
from indexer.sources import Fingerprint
from models.preprocess import DEFAULT_MAX_PIXELS


class _EncodeActor:
    """Ray actor: ``{doc_id, path, meta}`` columns in, encoded rows or reject reasons out."""

    def __init__(self, bundle_path: str, max_pixels: int, device: str, known_bad: Mapping[str, str]):
        from models.bundle import Bundle

        self.bundle = Bundle(bundle_path, device=device, threads=1)
        self.max_pixels, self.known_bad = max_pixels, known_bad

    def __call__(self, batch: dict) -> dict:
        items = [InputItem(str(i), str(p), json.loads(m)) for i, p, m in zip(batch["doc_id"], batch["path"], batch["meta"], strict=True)]
        results = [decode_one(it, self.bundle.image_spec, self.max_pixels, self.known_bad) for it in items]
        rows = {r.doc_id: r for r in encode_decoded(self.bundle, [r for r in results if isinstance(r, Decoded)])}
        keys = ("doc_id", "path", "width", "height", "impacts", "meta", "error", "known", "fingerprint")
        out: dict[str, list] = {k: [] for k in keys}
        for it, res in zip(items, results, strict=True):
            row = rows.get(it.doc_id)
            out["doc_id"].append(it.doc_id)
            out["path"].append(it.path)
            out["width"].append(row.width if row else 0)
            out["height"].append(row.height if row else 0)
            out["impacts"].append(json.dumps(row.impacts) if row else "")
            out["meta"].append(json.dumps(it.meta))
            out["error"].append(res.reason if isinstance(res, Reject) else "")
            out["known"].append(bool(isinstance(res, Reject) and res.known))
            out["fingerprint"].append(res.fingerprint.to_json() if res.fingerprint is not None else "")
        return out


def encode_ray(
    bundle_path: str | Path,
    items: list[InputItem],
    batch_size: int = 32,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    actors: int | None = None,
    known_bad: Mapping[str, str] | None = None,
) -> Iterator[tuple[list[DocRow], list[Reject]]]:
    """Encode ``items`` on the Ray cluster ``ray.init`` connects to; yields ``(docs, rejects)`` chunks.

    Uses one GPU per actor when the cluster has GPUs, else CPU actors (one per two CPUs).
    """
    import ray

    if not items:
        return
    if not ray.is_initialized():
        ray.init()
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if actors is None:
        actors = gpus or max(1, int(ray.cluster_resources().get("CPU", 1)) // 2)
    ds = ray.data.from_items([{"doc_id": it.doc_id, "path": it.path, "meta": json.dumps(it.meta)} for it in items])
    ds = ds.map_batches(
        _EncodeActor,
        fn_constructor_kwargs={"bundle_path": str(bundle_path), "max_pixels": max_pixels, "device": "cuda" if gpus else "cpu",
                               "known_bad": dict(known_bad or {})},
        batch_size=batch_size,
        concurrency=actors,
        num_gpus=1 if gpus else 0,
        num_cpus=1,
        batch_format="numpy",
    )
    for batch in ds.iter_batches(batch_size=batch_size, batch_format="numpy"):
        rows, rejects = [], []
        for i in range(len(batch["doc_id"])):
            doc_id, path = str(batch["doc_id"][i]), str(batch["path"][i])
            fp = Fingerprint.from_json(str(batch["fingerprint"][i]))
            if batch["error"][i]:
                rejects.append(Reject(doc_id, path, str(batch["error"][i]), fp, bool(batch["known"][i])))
            else:
                meta, impacts = json.loads(batch["meta"][i]), json.loads(batch["impacts"][i])
                rows.append(DocRow(doc_id, path, int(batch["width"][i]), int(batch["height"][i]), impacts, meta, fp))
        yield rows, rejects
