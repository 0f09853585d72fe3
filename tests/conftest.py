"""Shared fixtures: bundles exported once per session from the registered random/real-architecture cards."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def bundle_dir(tmp_path_factory) -> Path:
    """An exported, sealed ``tiny-random`` bundle (the paper's architecture at toy size)."""
    from models.export import export_bundle
    from models.model import LexVLA
    from models.registry import load_card

    out = tmp_path_factory.mktemp("bundles") / "tiny-random"
    export_bundle(LexVLA(load_card("tiny-random")), out)
    return out


@pytest.fixture(scope="session")
def mini_bundle_dir(tmp_path_factory) -> Path:
    """An exported ``lexvla-mini`` bundle with untrained heads (real MobileNetV2 + MiniLM weights)."""
    from models.export import export_bundle
    from models.model import LexVLA
    from models.registry import load_card

    out = tmp_path_factory.mktemp("bundles") / "lexvla-mini"
    export_bundle(LexVLA(load_card("lexvla-mini")), out)
    return out
