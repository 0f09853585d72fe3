"""Shards served by Ray actors: the same results as in-process shards, and losing a replica loses no request."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import ray  # installed by scripts/setup.sh (the [ray] extra): a missing ray fails here, never skips
from conftest import vector_rows

from indexer.publish import publish_rows, remove_documents

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cluster(ray_beside_jvm):
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    yield
    ray.shutdown()


def test_replica_loss_loses_no_request(ray_beside_jvm, tmp_path, bundle_dir, cluster):
    from indexer.protocols import Searcher, Snapshot
    from indexer.ray_search import RaySearcher
    from indexer.sharded import ShardedSearcher
    from models.bundle import Bundle

    bundle = Bundle(bundle_dir)
    words = bundle.words[3000:3080]
    rows = vector_rows(words, 300, terms=8, top=30)
    root = tmp_path / "ix"
    publish_rows(root, bundle, rows, shards=2)
    queries = [{w: r.impacts[w] for w in sorted(r.impacts)[:5]} for r in rows[:40]]
    required = [(q, [sorted(q)[-1]]) for q in queries[:10]]  # each query's last word, required
    weights = {w: v / bundle.config.quant_scale for w, v in queries[0].items()}
    with ShardedSearcher(root) as local, local.snapshot() as snap:
        expected = [[(h.doc_id, h.score, h.matches) for h in snap.search_vector(q, 10)] for q in queries]
        expected_required = [snap.search_vector(q, 10, require=r) for q, r in required]
        expected_search = local.search(weights, 10, exclude=[sorted(weights)[0]], require=[sorted(weights)[-1]])
    assert all(all(r[0] in h.record.impacts for h in hits) for (_, r), hits in zip(required, expected_required, strict=True))

    searcher = RaySearcher(root, replicas=2, num_cpus=0.25)  # 4 actors on a 2-CPU cluster
    try:
        with searcher.snapshot() as s:
            assert isinstance(searcher, Searcher) and isinstance(s, Snapshot)  # the declared interface (indexer.protocols)
            assert [[(h.doc_id, h.score, h.matches) for h in s.search_vector(q, 10)] for q in queries] == expected
            assert s.document(rows[3].doc_id) == rows[3] and s.info.shards == 2
            assert s.image_file(rows[3]) == Path(rows[3].path)
        # require, in the snapshot's and the one-shot reads, as every searcher has it
        with searcher.snapshot() as s:
            assert [s.search_vector(q, 10, require=r) for q, r in required] == expected_required
        assert [searcher.search_vector(q, 10, require=r) for q, r in required] == expected_required
        assert searcher.search(weights, 10, exclude=[sorted(weights)[0]], require=[sorted(weights)[-1]]) == expected_search

        answers, errors = [], []
        stop = threading.Event()

        def client() -> None:
            n = 0
            while not stop.is_set():
                try:
                    with searcher.snapshot() as s:
                        q = queries[n % len(queries)]
                        answers.append((n, [(h.doc_id, h.score, h.matches) for h in s.search_vector(q, 10)]))
                except Exception as exc:  # noqa: BLE001 - every failure is reported
                    errors.append(exc)
                n += 1

        threads = [threading.Thread(target=client) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            _wait(lambda: len(answers) >= 20)
            victims = [searcher.replicas[0][0], searcher.replicas[1][1]]  # one replica of each shard, mid-stream
            for v in victims:
                ray.kill(v, no_restart=True)
            at_kill = len(answers)
            _wait(lambda: errors or (len(answers) >= at_kill + 100 and [len(g) for g in searcher.replicas] == [1, 1]))
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not errors, errors[:3]
        assert all(hits == expected[n % len(queries)] for n, hits in answers)
        assert [len(group) for group in searcher.replicas] == [1, 1]  # the dead ones were found and dropped

        remove_documents(root, [rows[0].doc_id])
        assert searcher.refresh() and searcher.info.doc_count == 299
        with searcher.snapshot() as s:
            assert s.document(rows[0].doc_id) is None
            assert rows[0].doc_id not in {h.doc_id for h in s.search_vector(rows[0].impacts, 10)}
    finally:
        searcher.close()


def _wait(condition, timeout_s: float = 60) -> None:
    deadline = time.time() + timeout_s
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.01)
