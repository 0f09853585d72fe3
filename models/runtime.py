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


def create_session(path: Path, device: str = "auto", threads: int = 0, spinning: bool = True):
    """An ``InferenceSession`` for ``path``; ``threads=0`` lets onnxruntime choose.

    ``spinning=False`` stops the intra-op threads from busy-waiting after each run.
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    session = ort.InferenceSession(str(path), sess_options=opts, providers=select_providers(device))
    log.info("loaded %s with %s", Path(path).name, session.get_providers())
    check_providers(session, device, Path(path).name)
    return session


def check_providers(session, device: str, name: str = "model") -> None:
    """Raise when ``device="cuda"`` was asked for and the session did not get the CUDA provider.

    onnxruntime lists CUDA among its providers whenever the GPU build is installed, and falls back to
    the CPU with only a log line when the CUDA libraries cannot be loaded: this makes that loud.
    """
    if device == "cuda" and "CUDAExecutionProvider" not in session.get_providers():
        raise RuntimeError(f"device=cuda asked for, but onnxruntime runs {name} with {session.get_providers()}: "
                           "check that onnxruntime-gpu and the CUDA and cuDNN libraries it needs are installed")
