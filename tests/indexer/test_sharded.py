"""Sharded indexes: the merged top-k equals one index's, changes touch only their shards, a killed
shard build resumes to the same index, and the Ray engine builds the same shards from the CLI."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest
from conftest import mixed_queries, vector_rows

from indexer import layout
from indexer.generation import shard_of
from indexer.info import read_info
from indexer.job import run_index_job
from indexer.job_config import IndexJobConfig
from indexer.metadata import META_FILE
from indexer.publish import publish_rows, remove_documents
from lexvla.testing import index_build_processes, indexed_rows, scene_images

pytestmark = pytest.mark.integration


def _same_results(single, sharded, queries, k: int = 10, exclude=()) -> int:
    """Compare ids, scores and explanations; returns how many results were tied at the k-th score."""
    tied = 0
    with single.snapshot() as a, sharded.snapshot() as b:
        for q in queries:
            one, many = a.search_vector(q, k, exclude), b.search_vector(q, k, exclude)
            assert [(h.doc_id, h.score, h.matches) for h in one] == [(h.doc_id, h.score, h.matches) for h in many], q
            assert a.top(q, k, exclude) == b.top(q, k, exclude)
            assert a.count(q) == b.count(q)
            if len(one) == k:
                tied += sum(h.score == one[-1].score for h in one) > 1
    return tied


def _brute_force_top(rows, q: dict[str, int], k: int) -> list[tuple[str, int]]:
    scored = [(r.doc_id, sum(v * r.impacts.get(w, 0) for w, v in q.items())) for r in rows]
    return sorted(((d, s) for d, s in scored if s > 0), key=lambda t: (-t[1], t[0]))[:k]


def _inode(gen: Path, shard: int, shards: int) -> int:
    return os.stat(layout.shard_dir(gen, shard, shards) / META_FILE).st_ino


def test_sharded_top_k_equals_single_index_and_changes_touch_only_their_shards(tmp_path, bundle_dir):
    from indexer.sharded import ShardedSearcher
    from models.bundle import Bundle

    bundle = Bundle(bundle_dir)
    words = bundle.words[2000:2060]  # few words, impacts 1..20: many equal scores
    rows = vector_rows(words, 400, terms=8, top=20)
    one, four = tmp_path / "one", tmp_path / "four"
    publish_rows(one, bundle, rows)
    rep = publish_rows(four, bundle, iter(rows), shards=4)
    info = read_info(layout.current_generation(four))
    assert (rep.doc_count, info.shards, info.doc_count, sum(info.shard_docs)) == (400, 4, 400, 400)
    assert min(info.shard_docs) > 50  # the hash spreads ids
    queries = mixed_queries(rows, words)
    with ShardedSearcher(one) as single, ShardedSearcher(four) as sharded:
        assert _same_results(single, sharded, queries) > 5  # ties at the k-th place were exercised
        _same_results(single, sharded, queries[:10], k=25, exclude=[words[0]])
        with sharded.snapshot() as snap:  # the one order (score, then id) is the brute force's, ties included
            assert [snap.top(q, 10) for q in queries] == [_brute_force_top(rows, q, 10) for q in queries]
        assert sharded.document("vec/0007") == single.document("vec/0007") == rows[7]
        assert sharded.document("nope") is None

        # append: only the shards the new ids hash to get new files; the others are hard links
        before = layout.current_generation(four)
        new_rows = vector_rows(words, 3, start=1000, seed=5, terms=8, top=20)
        hit_shards = {shard_of(r.doc_id, 4) for r in new_rows}
        publish_rows(four, bundle, new_rows, append=True)
        publish_rows(one, bundle, new_rows, append=True)
        after = layout.current_generation(four)
        for i in range(4):
            assert (_inode(before, i, 4) == _inode(after, i, 4)) == (i not in hit_shards)
        # delete: one shard changes
        victim = rows[11].doc_id
        assert remove_documents(four, [victim, "unknown"]).removed == 1
        remove_documents(one, [victim])
        latest = layout.current_generation(four)
        for i in range(4):
            assert (_inode(after, i, 4) == _inode(latest, i, 4)) == (i != shard_of(victim, 4))
        assert read_info(latest).doc_count == 402
        assert sharded.refresh() and single.refresh()
        assert sharded.info.doc_count == single.info.doc_count == 402
        assert sharded.document(victim) is None
        _same_results(single, sharded, queries + [new_rows[0].impacts])

    with pytest.raises(ValueError, match="re-shard"):
        publish_rows(four, bundle, vector_rows(words, 2, start=3000), append=True, shards=2)


def test_killed_shard_build_resumes_to_the_same_index(tmp_path, bundle_dir):
    """SIGKILL the Lucene build (java) of one shard mid-build; the rerun builds only what is missing."""
    from indexer.lucene import IndexBuildError
    from indexer.sharded import ShardedSearcher

    folder = tmp_path / "imgs"
    scene_images(folder, 40, seed=9, size=64)
    cfg = {"bundle": bundle_dir, "input": folder, "batch_size": 8, "progress": False, "shards": 4, "index_threads": 2}
    root = tmp_path / "killed"
    killed: list[int] = []

    def kill_part_2() -> None:
        deadline = time.time() + 120
        while time.time() < deadline and not killed:
            for pid, _ in index_build_processes("/part-002/"):
                os.kill(pid, 9)
                killed.append(pid)
            time.sleep(0.005)

    watcher = threading.Thread(target=kill_part_2)
    watcher.start()
    try:
        with pytest.raises(IndexBuildError):
            run_index_job(IndexJobConfig(root=root, **cfg))
    finally:
        watcher.join()
    assert killed and layout.current_generation(root) is None
    built_before = {p.parent.name for p in (root / layout.STAGING / "parts").glob("part-*/built.json")}
    assert built_before and "part-002" not in built_before  # two builders: part 2 starts after another ends

    rep = run_index_job(IndexJobConfig(root=root, **cfg))
    assert rep.encoded == 0 and rep.doc_count == 40  # nothing encoded again
    assert {f"part-{i:03d}" for i in rep.reused_shards} == built_before
    assert not (root / layout.STAGING / "parts").exists()

    clean = tmp_path / "clean"
    run_index_job(IndexJobConfig(root=clean, **cfg))
    assert indexed_rows(root) == indexed_rows(clean)
    with ShardedSearcher(root) as a, ShardedSearcher(clean) as b:
        rows = [r for shard in indexed_rows(clean) for r in shard.values()]
        queries = [impacts for _, _, _, impacts, _ in rows[:10]]
        with a.snapshot() as sa, b.snapshot() as sb:
            assert [sa.top(q, 10) for q in queries] == [sb.top(q, 10) for q in queries]


def test_ray_engine_builds_the_same_shards_from_the_cli(tmp_path, bundle_dir, ray_beside_jvm):
    import ray  # installed by scripts/setup.sh (the [ray] extra): a missing ray fails here, never skips

    from lexvla.cli import main

    folder = tmp_path / "imgs"
    scene_images(folder, 24, seed=12, size=64)
    local = tmp_path / "local"
    run_index_job(IndexJobConfig(bundle=bundle_dir, input=folder, root=local, batch_size=8, progress=False, shards=3))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        args = ["index", "--bundle", str(bundle_dir), "--input", str(folder), "--index", str(tmp_path / "ray"),
                "--shards", "3", "--engine", "ray", "--batch-size", "8", "--no-progress"]  # fmt: skip
        assert main(args) == 0
    finally:
        ray.shutdown()
    assert read_info(layout.require_generation(tmp_path / "ray")).shards == 3
    assert indexed_rows(tmp_path / "ray") == indexed_rows(local)
