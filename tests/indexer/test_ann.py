"""The approximate path (indexer.ann): exhaustive settings give Lucene's answers exactly; any
settings give exact scores and explanations; appends, deletes and a killed build keep every
shard's structure in step with its Lucene index."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import brute_force, mixed_queries, vector_rows

from indexer import layout
from indexer.ann import ANN_DIR, ANN_FILE, AnnBuild, AnnMissingError, AnnSearch, ann_docs, ann_record, has_ann
from indexer.generation import shard_of
from indexer.info import read_info
from indexer.lucene import lucene_doc_count
from indexer.publish import publish_rows, remove_documents

pytestmark = pytest.mark.integration

EXHAUSTIVE = AnnSearch.exhaustive()


def rows_of(root: Path) -> list[list]:
    """The metadata rows of every shard of the published generation."""
    from indexer.metadata import META_FILE, MetadataReader

    out = []
    for folder in layout.shard_dirs(layout.require_generation(root)):
        reader = MetadataReader(folder / META_FILE)
        try:
            out.append(list(reader))
        finally:
            reader.close()
    return out


def _explained(hits) -> list[tuple]:
    return [(h.doc_id, h.score, h.matches) for h in hits]


def _assert_exhaustive_is_exact(root: Path, queries, words) -> None:
    """The approximate path with exhaustive settings answers what Lucene answers, ties, filters and all."""
    from indexer.sharded import ShardedSearcher

    with ShardedSearcher(root) as searcher, searcher.snapshot() as snap:
        snap.search_vector(queries[0], 10)
        assert all(s._gen._ann is None for s in snap.shards)  # the exact path never reads the structure in
        for q in queries:
            for k in (1, 10, 25):
                assert _explained(snap.search_vector(q, k, ann=EXHAUSTIVE)) == _explained(snap.search_vector(q, k)), (q, k)
            for exclude, require in (([words[0]], []), ([], [words[1]]), ([words[2]], [words[3], words[4]])):
                assert snap.top(q, 10, exclude, require, ann=EXHAUSTIVE) == snap.top(q, 10, exclude, require), (q, exclude, require)
        assert all(s._gen._ann is not None for s in snap.shards)


def _assert_in_step(root: Path) -> None:
    """Every shard's structure holds what its Lucene index and metadata hold."""
    gen = layout.require_generation(root)
    info = read_info(gen)
    assert info.ann is not None
    for i, folder in enumerate(layout.shard_dirs(gen)):
        assert has_ann(folder), folder
        assert ann_docs(folder) == lucene_doc_count(folder / layout.LUCENE_DIR) == info.shard_docs[i]


def test_exhaustive_approximate_search_equals_exact_search(tmp_path, bundle_dir):
    from models.bundle import Bundle

    bundle = Bundle(bundle_dir)
    words = bundle.words[2000:2060]  # few words, impacts 1..20: many equal scores
    rows = vector_rows(words, 400, terms=8, top=20)
    queries = mixed_queries(rows, words)
    for shards in (1, 4):
        root = tmp_path / f"s{shards}"
        publish_rows(root, bundle, rows, shards=shards, ann=AnnBuild.exhaustive())
        _assert_in_step(root)
        _assert_exhaustive_is_exact(root, queries, words)


def test_approximate_hits_carry_exact_scores_and_explanations(tmp_path, bundle_dir):
    """Whatever the settings, a hit's score is its stored vector's dot product with the query, and
    its explanation the words they share: only which documents are found is approximate."""
    from indexer.sharded import ShardedSearcher
    from models.bundle import Bundle

    bundle = Bundle(bundle_dir)
    words = bundle.words[2000:2300]
    rows = vector_rows(words, 1500, terms=24, top=255, seed=5)
    root = tmp_path / "idx"
    publish_rows(root, bundle, rows, shards=2, ann=AnnBuild(keep=0.3, summary_energy=0.4))
    by_id = {r.doc_id: r for r in rows}
    scale = bundle.config.quant_scale
    found = total = 0
    with ShardedSearcher(root) as searcher, searcher.snapshot() as snap:
        for q in mixed_queries(rows, words, n=40):
            truth = brute_force(rows, q)
            hits = snap.search_vector(q, 10, ann=AnnSearch(query_cut=3, heap_factor=0.7))
            exact = snap.top(q, 10)
            assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
            for h in hits:
                assert h.score * scale**2 == pytest.approx(truth[h.doc_id])
                shared = {w for w in q if w in by_id[h.doc_id].impacts}
                assert {m.word for m in h.matches} == shared
                assert sum(m.contribution for m in h.matches) == pytest.approx(h.score)
            found += len({h.doc_id for h in hits} & {d for d, _ in exact})
            total += len(exact)
    assert 0 < found <= total  # approximate, and not empty-handed


def test_structure_kept_in_step_through_append_and_delete(tmp_path, bundle_dir):
    from models.bundle import Bundle

    bundle = Bundle(bundle_dir)
    words = bundle.words[2000:2060]
    rows = vector_rows(words, 300, terms=8, top=20)
    root = tmp_path / "idx"
    publish_rows(root, bundle, rows, shards=4, ann=AnnBuild.exhaustive())
    first = layout.require_generation(root)

    # an append touches the shards its ids hash to; the others keep the very same files
    extra = vector_rows(words, 3, start=900, terms=8, top=20, seed=1)
    publish_rows(root, bundle, extra, append=True)
    second = layout.require_generation(root)
    touched = {shard_of(r.doc_id, 4) for r in extra}
    assert len(touched) < 4
    for i in range(4):
        a, b = (layout.shard_dir(g, i, 4) / ANN_DIR / ANN_FILE for g in (first, second))
        assert (os.stat(a).st_ino == os.stat(b).st_ino) == (i not in touched), i
    assert read_info(second).ann == AnnBuild.exhaustive().to_json()  # the base's settings carried on
    _assert_in_step(root)
    _assert_exhaustive_is_exact(root, mixed_queries(rows + extra, words), words)

    # a delete rebuilds the structure of the shards it touches; a deleted document is never found
    gone = [rows[5].doc_id, extra[0].doc_id]
    remove_documents(root, gone)
    _assert_in_step(root)
    kept = [r for r in rows + extra if r.doc_id not in gone]
    queries = mixed_queries(kept, words) + [dict(rows[5].impacts), dict(extra[0].impacts)]
    _assert_exhaustive_is_exact(root, queries, words)
    from indexer.sharded import ShardedSearcher

    with ShardedSearcher(root) as searcher, searcher.snapshot() as snap:
        for q in queries:
            ids = [d for d, _ in snap.top(q, 400, ann=EXHAUSTIVE)]
            assert not set(ids) & set(gone)
            assert sorted(ids) == sorted(d for d, s in brute_force(kept, q).items() if s > 0)


def test_generation_without_the_structure_says_so(tmp_path, bundle_dir):
    from indexer.sharded import ShardedSearcher
    from models.bundle import Bundle

    bundle = Bundle(bundle_dir)
    words = bundle.words[2000:2060]
    root = tmp_path / "idx"
    publish_rows(root, bundle, vector_rows(words, 50, terms=8), shards=2, ann=None)
    publish_rows(root, bundle, vector_rows(words, 5, start=100, terms=8), append=True)  # keeps the base's: none
    gen = layout.require_generation(root)
    assert read_info(gen).ann is None and not any(has_ann(f) for f in layout.shard_dirs(gen))
    with pytest.raises(ValueError, match="--rebuild"):  # a change cannot give some shards a structure only
        publish_rows(root, bundle, vector_rows(words, 5, start=200, terms=8), append=True, ann=AnnBuild())
    assert layout.require_generation(root) == gen
    with ShardedSearcher(root) as searcher:
        assert searcher.search_vector({words[0]: 3}, 5)  # the exact path answers
        with pytest.raises(AnnMissingError, match="no approximate-search structure"):
            searcher.search_vector({words[0]: 3}, 5, ann=AnnSearch())


KILL_AT_PART_2 = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    import indexer.ann as ann

    real = ann.build_ann

    def build(folder, *args, **kwargs):
        if Path(folder).name == "part-002":  # die half-way through this part's structure
            (Path(folder) / "ann.tmp").mkdir(exist_ok=True)
            os.kill(os.getpid(), signal.SIGKILL)
        return real(folder, *args, **kwargs)

    ann.build_ann = build
    from lexvla.cli import main
    sys.exit(main(sys.argv[1:]))
    """
)


def test_killed_structure_build_resumes_without_rebuilding_finished_parts(tmp_path, bundle_dir):
    """SIGKILL the index job while it builds one part's structure: nothing is published; the rerun
    keeps the parts' finished structures, builds the rest, and publishes what a clean build gives."""
    from lexvla.testing import indexed_rows, scene_images

    folder = tmp_path / "imgs"
    scene_images(folder, 40, seed=9, size=64)
    args = ["index", "--bundle", str(bundle_dir), "--input", str(folder), "--shards", "4", "--batch-size", "8", "--no-progress"]
    root = tmp_path / "killed"
    env = os.environ | {"PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    run = subprocess.run([sys.executable, "-c", KILL_AT_PART_2, *args, "--index", str(root)], env=env, capture_output=True, text=True)
    assert run.returncode == -9, run.stderr[-2000:]
    assert layout.current_generation(root) is None
    parts = root / layout.STAGING / "parts"
    finished = {p.parent.parent.name: os.stat(p).st_ino for p in parts.glob(f"part-*/{ANN_DIR}/{ANN_FILE}")}
    assert set(finished) == {"part-000", "part-001"} and (parts / "part-002" / "ann.tmp").is_dir()
    stamps = {name: ann_record(parts / name)["stamp"] for name in finished}

    from lexvla.cli import main

    assert main([*args, "--index", str(root)]) == 0
    _assert_in_step(root)
    gen = layout.require_generation(root)
    for name, inode in finished.items():  # linked from the part built before the kill, not rebuilt
        i = int(name.split("-")[1])
        assert os.stat(layout.shard_dir(gen, i, 4) / ANN_DIR / ANN_FILE).st_ino == inode
        assert stamps[name] == ann_record(layout.shard_dir(gen, i, 4))["stamp"]
    assert not list(gen.rglob("ann.tmp"))

    clean = tmp_path / "clean"
    assert main([*args, "--index", str(clean)]) == 0
    assert indexed_rows(root) == indexed_rows(clean)
    rows = [r for shard in indexed_rows(clean) for r in shard.values()]
    queries = [impacts for _, _, _, impacts, _ in rows[:10]]
    from indexer.sharded import ShardedSearcher

    all_rows = [r for shard in rows_of(root) for r in shard]
    with ShardedSearcher(root) as searcher, searcher.snapshot() as snap:
        for q in queries:
            truth = brute_force(all_rows, q)
            hits = snap.top(q, 10, ann=AnnSearch())
            assert hits and all(truth[d] == s for d, s in hits)


def test_publish_rows_resumes_from_the_parts_it_finished(tmp_path, bundle_dir, monkeypatch):
    """``publish_rows(resume=True)`` killed while building one part's structure: called again with
    the same rows, it builds neither Lucene index again nor the structures it finished."""
    import indexer.ann
    from models.bundle import Bundle

    bundle = Bundle(bundle_dir)
    words = bundle.words[2000:2060]
    rows = vector_rows(words, 200, terms=8, top=20)
    root = tmp_path / "idx"
    real = indexer.ann.build_ann

    def fail_at_part_1(folder, *args, **kwargs):
        if Path(folder).name == "part-001":
            raise KeyboardInterrupt  # what a stop looks like from inside
        return real(folder, *args, **kwargs)

    monkeypatch.setattr(indexer.ann, "build_ann", fail_at_part_1)
    with pytest.raises(KeyboardInterrupt):
        publish_rows(root, bundle, iter(rows), shards=3, resume=True)
    assert layout.current_generation(root) is None
    parts = root / layout.STAGING / "rows" / "parts"
    kept = os.stat(parts / "part-000" / ANN_DIR / ANN_FILE).st_ino
    monkeypatch.setattr(indexer.ann, "build_ann", real)
    report = publish_rows(root, bundle, iter(rows), shards=3, resume=True)
    assert report.reused_shards == [0, 1, 2] and report.doc_count == 200  # every Lucene index kept
    gen = layout.require_generation(root)
    assert os.stat(layout.shard_dir(gen, 0, 3) / ANN_DIR / ANN_FILE).st_ino == kept  # and part 0's structure
    _assert_in_step(root)
    assert not (root / layout.STAGING / "rows").exists()
