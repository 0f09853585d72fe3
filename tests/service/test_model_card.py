"""``/model-card`` and ``lexvla index-info`` point to the served bundle's model card."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from models.bundle import MODEL_CARD_FILE

pytestmark = pytest.mark.integration


def test_the_service_serves_its_bundles_model_card(http, engine):
    r = http.get("/model-card")
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/markdown")
    assert r.headers["x-bundle-version"] == engine.bundle.version
    assert r.text.startswith("---\nlicense: ") and f"(bundle {engine.bundle.version})" in r.text


def test_a_bundle_without_a_card_is_a_404_that_says_what_writes_one(http, engine):
    card = engine.bundle.path / MODEL_CARD_FILE
    kept = card.rename(card.with_suffix(".kept"))
    try:
        r = http.get("/model-card")
    finally:
        kept.rename(card)
    assert r.status_code == 404 and "lexvla export" in r.json()["detail"]


def test_index_info_names_the_card_of_the_bundle_that_made_the_vectors(shape_index, mini_bundle_dir):
    done = subprocess.run([sys.executable, "-m", "lexvla", "index-info", "--index", str(shape_index)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["model_card"] == str((mini_bundle_dir / MODEL_CARD_FILE).resolve())
