"""onnxruntime sessions: the CUDA provider when it is present, the CPU provider otherwise."""
from __future__ import annotations

import logging
from pathlib import Path

log = logging.getLogger(__name__)


def select_providers(device: str = "auto") -> list[str]:
    """Execution providers for ``device`` in ``{"auto", "cpu", "cuda"}``."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"device must be auto, cpu or cuda, not {device!r}")
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if device == "cuda":
        raise RuntimeError(f"device=cuda asked for, but onnxruntime offers only {available}")
    return ["CPUExecutionProvider"]


def create_session(path: Path, device: str = "auto", threads: int = 0):
    """An ``InferenceSession`` for ``path``; ``threads=0`` lets onnxruntime choose."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=opts, providers=select_providers(device))
    log.info("loaded %s with %s", Path(path).name, session.get_providers())
    return session
