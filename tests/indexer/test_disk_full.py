"""A full disk loses nothing and says where: real ENOSPC from a small tmpfs under the index root."""
from __future__ import annotations

import os

import pytest

from indexer import layout
from lexvla.testing import build_index, scene_images
from models.files import DiskFullError
from tests.conftest import fill


def test_a_full_disk_names_the_index_publishes_nothing_and_the_job_resumes(small_disk, bundle_dir, tmp_path):
    images = tmp_path / "images"
    scene_images(images, 30, seed=3)
    root = small_disk / "index"
    ballast = fill(small_disk, 64 * 1024)
    with pytest.raises(DiskFullError) as err:
        build_index(bundle_dir, images, root, batch_size=8)
    message = str(err.value)
    assert str(root) in message and "no space left" in message and "served generation (none)" in message
    assert layout.current_generation(root) is None  # nothing partial was published
    ballast.unlink()
    report = build_index(bundle_dir, images, root, batch_size=8)
    assert report.doc_count == 30


def test_an_append_on_a_full_disk_keeps_the_served_generation(small_disk, bundle_dir, tmp_path):
    images = tmp_path / "images"
    scene_images(images, 20, seed=4)
    root = small_disk / "index"
    assert build_index(bundle_dir, images, root, batch_size=8).doc_count == 20
    served = layout.current_generation(root)
    scene_images(images, 40, seed=5, prefix="more")
    ballast = fill(small_disk, 32 * 1024)
    with pytest.raises(DiskFullError) as err:
        build_index(bundle_dir, images, root, batch_size=8)
    assert str(root) in str(err.value) and f"served generation ({served.name})" in str(err.value)
    assert layout.current_generation(root) == served
    ballast.unlink()
    assert build_index(bundle_dir, images, root, batch_size=8).doc_count == 60
    assert not os.path.exists(small_disk / "ballast")
