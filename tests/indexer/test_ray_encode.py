"""The Ray Data encode stage produces exactly the documents of the local path."""
from __future__ import annotations

import pytest

from indexer.job_config import IndexEngine
from lexvla.testing import build_index, indexed_rows, scene_images

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.integration


def test_ray_path_equals_local_path(tmp_path, bundle_dir, ray_beside_jvm):
    folder = tmp_path / "imgs"
    scene_images(folder, 200, seed=11, size=64)
    (folder / "broken.png").write_bytes(b"not an image")
    local = build_index(bundle_dir, folder, tmp_path / "a", batch_size=16)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        on_ray = build_index(bundle_dir, folder, tmp_path / "b", batch_size=16, engine=IndexEngine.RAY)
    finally:
        ray.shutdown()
    assert local.doc_count == on_ray.doc_count == 200
    assert [r.doc_id for r in on_ray.rejected] == ["broken.png"]
    assert indexed_rows(tmp_path / "a") == indexed_rows(tmp_path / "b")
