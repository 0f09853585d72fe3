"""The quality report names the code and the machine it was measured on."""
import os
import subprocess
from pathlib import Path

import torch

from lexvla.pipeline import source_commit as _commit
from lexvla.report import _machine

ROOT = Path(__file__).resolve().parents[1]


def test_commit_is_the_checkouts_head():
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True)
    dirty = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT).returncode != 0
    assert _commit() == head.stdout.strip() + (" with uncommitted changes" if dirty else "")


def test_machine_names_cores_and_torch_kernels():
    # trained weights differ between CPUs whose kernels differ: the report must say which ran
    text = _machine()
    assert f"{os.cpu_count()} cores" in text
    assert text.endswith(f"torch CPU kernels {torch.backends.cpu.get_cpu_capability()}")
