"""The Ray engine's workers write the shards' parts: manifests of every kind give the same index,
and a job killed mid-way resumes to the index of a clean build without encoding finished batches."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from indexer import layout
from indexer.job import run_index_job
from indexer.job_config import IndexEngine, IndexJobConfig
from indexer.manifest import scan_inputs
from indexer.metadata import META_FILE, MetadataReader
from indexer.shard_build import staged_batches
from lexvla.testing import build_index, indexed_rows, scene_images

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def ray_cluster(ray_beside_jvm):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_parquet_url_on_ray_and_jsonl_locally_index_the_same_documents(tmp_path, bundle_dir, ray_cluster):
    import fsspec

    folder = tmp_path / "imgs"
    scene_images(folder, 30, seed=5, size=64)
    (folder / "broken.png").write_bytes(b"not an image")
    entries = [{"id": f"doc-{i:02d}", "path": it.path, "label": it.doc_id, "i": i} for i, it in enumerate(scan_inputs(folder))]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries))
    url = "memory://lexvla-ray-test/m.parquet"
    with fsspec.open(url, "wb") as fh:
        pq.write_table(pa.Table.from_pylist(entries), fh)
    try:
        local = build_index(bundle_dir, tmp_path / "m.jsonl", tmp_path / "local", batch_size=8, shards=2)
        on_ray = build_index(bundle_dir, url, tmp_path / "ray", batch_size=8, shards=2, engine=IndexEngine.RAY, part_rows=8)
    finally:
        fsspec.filesystem("memory").rm("/lexvla-ray-test", recursive=True)
    assert local.doc_count == on_ray.doc_count == on_ray.encoded == 30
    assert [r.reason for r in on_ray.rejected] == [r.reason for r in local.rejected] and len(on_ray.rejected) == 1
    rows = indexed_rows(tmp_path / "ray")
    assert rows == indexed_rows(tmp_path / "local")
    assert {k: v for shard in rows for k, v in shard.items()}["doc-01"][4] == {"label": entries[1]["label"], "i": 1}
    ledger = [json.loads(line) for line in (tmp_path / "ray" / layout.REJECTS).read_text().splitlines()]
    assert [(e["id"], bool(e["reason"])) for e in ledger] == [(on_ray.rejected[0].doc_id, True)]
    assert not (tmp_path / "ray" / layout.STAGING / "parts").exists()  # cleaned after publishing

    again = build_index(bundle_dir, tmp_path / "m.jsonl", tmp_path / "ray", batch_size=8, engine=IndexEngine.RAY)
    assert again.encoded == 0 and again.generation is None and again.skipped_existing == 30


def test_a_sealed_part_holds_each_id_once(tmp_path):
    """A batch a worker of a killed run finished late may repeat ids the next run wrote: the part
    keeps this run's copy; a batch that loses a document keeps its others."""
    from indexer.metadata import DocRow
    from indexer.shard_build import batch_dirs, part_dir, seal_part, write_batch
    from indexer.sources import Fingerprint

    def rows(ids, weight):
        return [DocRow(i, f"/imgs/{i}.png", 10, 20, {"red": weight}, {}, Fingerprint(i * 4, 1, 2)) for i in ids]

    work = tmp_path / "work"
    write_batch(work, 1, rows(["a", "b", "c"], 1), "old-1")
    write_batch(work, 1, rows(["c", "d"], 2), "new-1")
    assert seal_part(part_dir(work, 0), "new", "/imgs") == 4
    assert sorted(b.name for b in batch_dirs(part_dir(work, 0))) == ["new-1", "old-1-r"]
    reader = MetadataReader(part_dir(work, 0) / META_FILE)
    try:
        assert {r.doc_id: (r.path, r.impacts) for r in reader} == {
            "a": ("a.png", {"red": 1}), "b": ("b.png", {"red": 1}), "c": ("c.png", {"red": 2}), "d": ("d.png", {"red": 2})
        }  # fmt: skip
        assert reader.sources()["c"] == Fingerprint("cccc", 1, 2)
    finally:
        reader.close()
    lines = [json.loads(line) for f in sorted((part_dir(work, 0) / "docs").iterdir()) for line in f.read_text().splitlines()]
    assert sorted((d["id"], d["vector"]["red"]) for d in lines) == [("a", 1), ("b", 1), ("c", 2), ("d", 2)]
    fill = json.loads((part_dir(work, 0) / "fill.json").read_text())
    assert seal_part(part_dir(work, 0), "new", "/imgs") == 4 and json.loads((part_dir(work, 0) / "fill.json").read_text()) == fill


def _staged_count(root: Path, shards: int) -> int:
    try:
        return len(staged_batches(root / layout.STAGING, shards)[0])
    except Exception:  # a batch renamed while we read
        return 0


def test_killed_ray_job_resumes_to_a_clean_build(tmp_path, bundle_dir, ray_cluster):
    """SIGKILL the CLI on Ray once workers have written batches; change one finished document's
    file; the rerun encodes only what no batch holds (and the changed file) and equals a clean build."""
    folder = tmp_path / "imgs"
    n, shards = 160, 3
    scene_images(folder, n, seed=21, size=96)
    root = tmp_path / "killed"
    cmd = [sys.executable, "-m", "lexvla", "index", "--no-progress", "--engine", "ray", "--shards", str(shards),
           "--batch-size", "4", "--part-rows", "8", "--bundle", str(bundle_dir), "--input", str(folder), "--index", str(root)]  # fmt: skip
    log = (tmp_path / "job.log").open("wb")  # a file, not a pipe: Ray's chatter must not block the job
    proc = subprocess.Popen(cmd, cwd=REPO, env=os.environ | {"RAY_ADDRESS": ray_cluster}, stdout=log, stderr=log)
    deadline = time.time() + 900  # a loaded 2-core machine takes minutes to start Ray's stages
    while time.time() < deadline and proc.poll() is None and _staged_count(root, shards) < 24:
        time.sleep(0.01)
    assert proc.poll() is None, (tmp_path / "job.log").read_text()[-3000:]
    assert _staged_count(root, shards) >= 24, "no batch written in 900 s: " + (tmp_path / "job.log").read_text()[-3000:]
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # the dead driver's workers are stopped by Ray; wait until no batch appears any more
    last, stable_since = -1, time.time()
    while time.time() - stable_since < 5:
        now = _staged_count(root, shards)
        if now != last:
            last, stable_since = now, time.time()
        time.sleep(0.2)
    staged, where = staged_batches(root / layout.STAGING, shards)
    assert 0 < len(staged) < n and layout.current_generation(root) is None
    changed = sorted(staged)[0]  # a finished document whose file now holds another picture
    scene_images(tmp_path / "other", 1, seed=99, size=80)
    (folder / changed).write_bytes(next((tmp_path / "other").rglob("*.png")).read_bytes())

    cfg = {"bundle": bundle_dir, "input": folder, "batch_size": 4, "part_rows": 8, "progress": False, "shards": shards,
           "engine": IndexEngine.RAY, "device": "cpu"}  # fmt: skip
    rep = run_index_job(IndexJobConfig(root=root, **cfg))
    assert rep.encoded == n - len(staged) + 1  # finished batches are not encoded again; the changed file is
    assert rep.doc_count == n and not rep.rejected
    assert not (root / layout.STAGING / "parts").exists()

    clean = tmp_path / "clean"
    run_index_job(IndexJobConfig(root=clean, **cfg))
    resumed = indexed_rows(root)
    assert resumed == indexed_rows(clean)
    assert sum(len(s) for s in resumed) == n  # no gap, no duplicate (publish checks Lucene counts too)
    from indexer.sharded import ShardedSearcher

    with ShardedSearcher(root) as a, ShardedSearcher(clean) as b, a.snapshot() as sa, b.snapshot() as sb:
        queries = [impacts for shard in resumed for _, _, _, impacts, _ in list(shard.values())[:4]]
        assert [sa.top(q, 10) for q in queries] == [sb.top(q, 10) for q in queries]
