"""The README's first command, end to end on a small corpus: data, training, export, index, HTTP answer."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not Path("/usr/share/openclipart/png").is_dir(), reason="scripts/setup.sh installs openclipart-png")
def test_demo_builds_everything_and_answers_a_query(tmp_path):
    # 60 drawings + 60 scenes, 40 steps: enough for image vectors to share words with captions.
    cmd = [sys.executable, "-m", "lexvla", "demo", "--workdir", str(tmp_path), "--data-limit", "60",
           "--max-steps", "40", "--batch-size", "16", "--exit", "--port", str(_free_port()), "--query", "a frog", "-k", "3"]
    env = os.environ | {"LEXVLA_REDIS_URL": "redis://127.0.0.1:6379/15", "LEXVLA_RELOAD_INTERVAL_S": "0"}
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "query words:" in done.stdout and done.stdout.count("matched:") >= 1, done.stdout
    bundles = [p for p in (tmp_path / "bundles").glob("lexvla-mini-*") if not p.is_symlink()]
    assert len(bundles) == 1 and (bundles[0] / "bundle.json").is_file()
    assert (tmp_path / "index" / "CURRENT").is_file()
    assert (tmp_path / "bundles" / "lexvla-mini").resolve() == bundles[0].resolve()

    # A second run reuses the bundle and the index instead of training again.
    again = subprocess.run(cmd[:-6] + ["--port", str(_free_port()), "--query", "a frog"], capture_output=True, text=True, timeout=600, env=env)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "is up to date" in again.stderr and "train lexvla-mini" not in again.stderr
