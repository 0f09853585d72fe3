"""`lexvla train`, `export` and `eval` from the command line on both registered architectures."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def lexvla(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "lexvla", *args], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


@pytest.mark.parametrize("card", ["tiny-random", "lexvla-mini"])
def test_train_export_eval_commands(card, tiny_manifest, tmp_path):
    config = tmp_path / "train.json"
    config.write_text(json.dumps({"card": card, "manifests": [str(tiny_manifest)], "out_dir": str(tmp_path / "run"),
                                  "batch_size": 8, "max_steps": 3, "cache_dir": str(tmp_path / "cache")}))
    trained = lexvla("train", str(config))
    weights = tmp_path / "run" / "weights.pt"
    assert weights.is_file() and str(weights) in trained.stdout

    exported = lexvla("export", "--card", card, "--weights", str(weights), "--out", str(tmp_path / "bundle"))
    assert "parity" in exported.stdout and (tmp_path / "bundle" / "bundle.json").is_file()

    result = tmp_path / "eval.json"
    lexvla("eval", "--bundle", str(tmp_path / "bundle"), "--manifest", str(tiny_manifest), "--split", "test", "--out", str(result))
    metrics = json.loads(result.read_text())
    assert metrics["images"] == 8 and 0 <= metrics["t2i_R@1"] <= metrics["t2i_R@10"] == 100.0


def test_errors_are_one_clear_line(tmp_path):
    done = subprocess.run([sys.executable, "-m", "lexvla", "export", "--card", "no-such-card", "--out", str(tmp_path / "b")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "unknown model card 'no-such-card'" in done.stderr and "Traceback" not in done.stderr
