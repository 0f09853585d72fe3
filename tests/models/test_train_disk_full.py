"""A training run that meets a full disk (a real 256 MiB tmpfs: a tiny-random checkpoint is 70 MB) says
where and resumes once space is back."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from models.files import DiskFullError
from models.train import CHECKPOINT, WEIGHTS, TrainConfig, Trainer
from tests.conftest import fill, tmpfs


@pytest.fixture
def run_disk(tmp_path):
    with tmpfs(tmp_path / "disk", "256m") as mount:
        yield mount


def _config(manifest, out, cache, **kw) -> TrainConfig:
    return TrainConfig(**dict(card="tiny-random", manifests=[str(manifest)], out_dir=str(out), epochs=300, batch_size=8,
                              regularizer="none", checkpoint_every=2, max_steps=6, cache_dir=str(cache)) | kw)


def test_a_checkpoint_on_a_full_disk_names_the_run_keeps_the_last_one_and_resumes(run_disk, tiny_manifest, tmp_path):
    out = run_disk / "run"
    cache = tmp_path / "cache"  # the feature cache elsewhere: only the run's own files meet the full disk
    Trainer(_config(tiny_manifest, out, cache, max_steps=2)).fit()  # a first checkpoint at step 2
    size = (out / CHECKPOINT).stat().st_size
    ballast = fill(run_disk, size // 2)  # room for the log lines, not for another checkpoint
    trainer = Trainer(_config(tiny_manifest, out, cache))
    with pytest.raises(DiskFullError) as err:
        trainer.fit()
    message = str(err.value)
    assert f"the training run {out}" in message and "at step 4" in message, message
    assert f"the checkpoint of step 2 is kept ({out / CHECKPOINT})" in message and "df -h" in message
    assert torch.load(out / CHECKPOINT, weights_only=False)["step"] == 2  # the kept checkpoint is whole
    assert sorted(p.name for p in out.iterdir() if "tmp" in p.name) == []  # no torn temporary file left

    ballast.unlink()
    weights = Trainer(_config(tiny_manifest, out, cache)).fit()
    assert weights == out / WEIGHTS and weights.is_file()
    steps = [json.loads(line)["step"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert steps[-4:] == [3, 4, 5, 6]  # resumed from step 2: every later step once after the restart


def test_a_run_whose_disk_is_full_from_the_start_says_no_checkpoint_was_written(run_disk, tiny_manifest, tmp_path):
    out = run_disk / "run"
    ballast = fill(run_disk, 0)
    with pytest.raises(DiskFullError) as err:
        Trainer(_config(tiny_manifest, out, tmp_path / "cache")).fit()
    assert f"the training run {out}" in str(err.value) and "no checkpoint was written yet" in str(err.value)
    ballast.unlink()
    shutil.rmtree(out)
