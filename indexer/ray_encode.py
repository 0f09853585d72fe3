"""The encode stage on Ray Data: the workers decode, encode and write the shards' parts themselves.

The pipeline, for the inputs the driver planned (``TODO/*.parquet``: ``doc_id``, ``path``, ``meta``)::

    read_parquet -> decode (CPU tasks: decode_one) -> encode + write (actors: encode_decoded,
                    one ONNX session each, one GPU each where the cluster has GPUs)
                 -> driver: one small row per input (id, reject reason), never a vector

Decoding and encoding call the same :func:`decode_one` and :func:`encode_decoded` as the local
path, so the documents are identical. Each actor call writes its rows as one batch per shard under
the job's work folder (:func:`indexer.shard_build.write_batch`), which must therefore be reachable
from every worker (one machine, or a shared filesystem).
"""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from indexer.encode import Decoded, InputItem, Reject, decode_one, encode_decoded
from indexer.shard_build import write_batch
from indexer.sources import Fingerprint
from models.preprocess import DEFAULT_MAX_PIXELS, ImageSpec

PART_ROWS = 256  # rows an actor writes per batch: fewer, larger part files; memory of one call
_OUT = ("doc_id", "path", "error", "known", "fingerprint")


def _items(batch: dict) -> list[InputItem]:
    cols = zip(batch["doc_id"], batch["path"], batch["meta"], strict=True)
    return [InputItem(str(i), str(p), json.loads(m)) for i, p, m in cols]


def _decode_batch(batch: dict, spec: ImageSpec, max_pixels: int, known_bad: Mapping[str, str]) -> dict:
    """Ray Data task: inputs in, ``[B, 3, S, S]`` pixels out (zeros and a reason for a reject)."""
    items = _items(batch)
    out: dict[str, list] = {k: [] for k in ("doc_id", "path", "meta", "pixels", "width", "height", "error", "known", "fingerprint")}
    blank = np.zeros((3, spec.size, spec.size), np.float32)
    for it in items:
        res = decode_one(it, spec, max_pixels, known_bad)
        out["doc_id"].append(it.doc_id)
        out["path"].append(it.path)
        out["meta"].append(json.dumps(it.meta))
        if isinstance(res, Decoded):
            out["pixels"].append(res.pixels)
            out["width"].append(res.width)
            out["height"].append(res.height)
            out["error"].append("")
            out["known"].append(False)
        else:
            out["pixels"].append(blank)
            out["width"].append(0)
            out["height"].append(0)
            out["error"].append(res.reason)
            out["known"].append(bool(res.known))
        out["fingerprint"].append(res.fingerprint.to_json() if res.fingerprint is not None else "")
    return {k: np.stack(v) if k == "pixels" else v for k, v in out.items()}


class _EncodeWriter:
    """Ray actor: decoded images in, their documents written to the parts, ``(id, reason)`` out."""

    def __init__(self, bundle_path: str, device: str, work: str, shards: int, run: str, batch_size: int):
        from models.bundle import Bundle

        self.bundle = Bundle(bundle_path, device=device, threads=1)
        self.work, self.shards, self.run, self.batch_size = Path(work), shards, run, batch_size

    def __call__(self, batch: dict) -> dict:
        items = _items(batch)
        decoded = [
            Decoded(it, batch["pixels"][i], int(batch["width"][i]), int(batch["height"][i]), Fingerprint.from_json(str(batch["fingerprint"][i])))
            for i, it in enumerate(items)
            if not batch["error"][i]
        ]
        rows = []
        for start in range(0, len(decoded), self.batch_size):
            rows += encode_decoded(self.bundle, decoded[start : start + self.batch_size])
        if rows:
            write_batch(self.work, self.shards, rows, f"{self.run}-{uuid.uuid4().hex[:12]}")
        return {k: list(batch[k]) for k in _OUT}


def _decode_task_args() -> dict:
    return {"num_cpus": 1}


def encode_to_parts(
    bundle_path: str | Path,
    spec: ImageSpec,
    todo: Path,
    work: Path,
    shards: int,
    run: str,
    batch_size: int = 32,
    part_rows: int = PART_ROWS,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    actors: int | None = None,
    known_bad: Mapping[str, str] | None = None,
) -> Iterator[tuple[int, list[Reject]]]:
    """Encode the inputs listed in ``todo`` on the Ray cluster into batches of ``work``'s parts.

    Yields ``(documents written, rejects)`` as results arrive. Uses one GPU per encode actor when
    the cluster has GPUs, else CPU actors (one per two CPUs); decoding runs as CPU tasks beside them.
    ``run`` names the batches this job writes (see :func:`indexer.shard_build.seal_part`).
    """
    import ray

    if not ray.is_initialized():
        ray.init()
    gpus = int(ray.cluster_resources().get("GPU", 0))
    if actors is None:
        actors = gpus or max(1, int(ray.cluster_resources().get("CPU", 1)) // 2)
    ds = ray.data.read_parquet(str(todo))
    ds = ds.map_batches(
        _decode_batch,  # type: ignore[arg-type]  # Ray's annotation has no room for fn_kwargs' arguments
        fn_kwargs={"spec": spec, "max_pixels": max_pixels, "known_bad": dict(known_bad or {})},
        batch_size=batch_size,
        # a ray_remote_args_fn keeps Ray Data from fusing this stage into the encode actors:
        # decoding stays on CPU tasks of its own, beside the actors, however many there are
        ray_remote_args_fn=_decode_task_args,
        batch_format="numpy",
    )
    ds = ds.map_batches(
        _EncodeWriter,
        fn_constructor_kwargs={"bundle_path": str(bundle_path), "device": "cuda" if gpus else "cpu", "work": str(work),
                               "shards": shards, "run": run, "batch_size": batch_size},  # fmt: skip
        batch_size=part_rows,
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_gpus=1 if gpus else 0,
        num_cpus=1,
        batch_format="numpy",
    )
    for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
        rejects, written = [], 0
        for i in range(len(batch["doc_id"])):
            if batch["error"][i]:
                fp = Fingerprint.from_json(str(batch["fingerprint"][i]))
                rejects.append(Reject(str(batch["doc_id"][i]), str(batch["path"][i]), str(batch["error"][i]), fp, bool(batch["known"][i])))
            else:
                written += 1
        yield written, rejects
