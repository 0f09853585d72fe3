"""The index job plans shard by shard (indexer.planner): the driver streams the input and keeps
counts only; each shard's planner reads that shard's published documents and nothing else."""
from __future__ import annotations

import json
import shutil
import tracemalloc

import pytest

from indexer import layout
from indexer.manifest import InputItem
from indexer.planner import PLAN, split_inputs

pytestmark = pytest.mark.integration


def _chunks(n: int, chunk: int = 1000):
    for start in range(0, n, chunk):
        yield [InputItem(f"img/{i:08d}.png", f"/data/img/{i:08d}.png", {"i": i}) for i in range(start, min(n, start + chunk))]


def _split_peak(tmp_path, n: int) -> int:
    work = tmp_path / f"w{n}"
    tracemalloc.start()
    try:
        split = split_inputs(_chunks(n), work, 8)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert split.scanned == n and split.folder == "/data/img"
    lines = sum(len(p.read_text().splitlines()) for p in (work / PLAN).glob("in-*.jsonl"))
    assert lines == n
    shutil.rmtree(work)
    return peak


def test_the_driver_splits_any_input_in_bounded_memory(tmp_path):
    """Ten times the inputs, the same peak: one chunk at a time, no id kept."""
    small, large = _split_peak(tmp_path, 20_000), _split_peak(tmp_path, 200_000)
    assert large < 1.3 * small, (small, large)


def test_sharded_job_plans_each_shard_from_its_own_documents(tmp_path, bundle_dir, monkeypatch):
    import indexer.generation
    import indexer.planner
    from indexer.job import run_index_job
    from indexer.job_config import IndexJobConfig
    from indexer.metadata import META_FILE, MetadataReader
    from lexvla.testing import indexed_rows, scene_images

    folder = tmp_path / "imgs"
    paths = scene_images(folder, 30, seed=4, size=64)
    manifest = tmp_path / "images.jsonl"
    entries = [{"id": p.stem, "path": str(p)} for p in paths]
    manifest.write_text("".join(json.dumps(e) + "\n" for e in entries + [entries[3]]))  # one id listed twice
    root = tmp_path / "idx"
    cfg = IndexJobConfig(bundle=bundle_dir, input=manifest, root=root, batch_size=8, progress=False, shards=4)

    def no_global_view(*args, **kwargs):
        raise AssertionError("the driver read every shard's documents")

    monkeypatch.setattr(indexer.generation, "published_sources", no_global_view)
    first = run_index_job(cfg)
    assert (first.scanned, first.encoded, first.doc_count, first.skipped_existing) == (30, 30, 30, 0)
    assert [(r.doc_id, r.reason) for r in first.rejected] == [(entries[3]["id"], "duplicate id in input")]

    # second run: one file changed, three new, the rest published; each planner opens its own shard
    opened: list[str] = []

    class Spy(MetadataReader):
        def __init__(self, path):
            opened.append(str(path))
            super().__init__(path)

    monkeypatch.setattr(indexer.planner, "MetadataReader", Spy)
    scene_images(folder, 33, seed=4, size=64)  # the same 30 again (unchanged) and 3 new
    changed = paths[7]
    scene_images(tmp_path / "other", 8, seed=99, size=64)[7].replace(changed)
    new = sorted(set(folder.rglob("*.*")) - set(paths))
    manifest.write_text("".join(json.dumps({"id": p.stem, "path": str(p)}) + "\n" for p in [*paths, *new]))
    base = layout.require_generation(root)
    second = run_index_job(cfg)
    assert (second.scanned, second.encoded, second.replaced, second.skipped_existing) == (33, 4, 1, 29)
    assert second.doc_count == 33
    assert sorted(opened) == sorted(str(layout.shard_dir(base, i, 4) / META_FILE) for i in range(4))
    assert not (root / layout.STAGING / PLAN).exists()
    assert sum(len(shard) for shard in indexed_rows(root)) == 33
