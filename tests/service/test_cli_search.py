"""``lexvla search`` batch runs on the real index: TREC runs that trec_eval reads, JSON lines,
and topics the engine refuses named rather than dropped."""
from __future__ import annotations

import json
import subprocess

import pytest

from lexvla.cli import main

pytestmark = pytest.mark.integration


def _search(mini_bundle_dir, shape_index, *args) -> int:
    return main(["search", "--bundle", str(mini_bundle_dir), "--index", str(shape_index), "--device", "cpu", *args])


def _trec_eval(qrels, run, *measures) -> dict[str, str]:
    """The real trec_eval (bundled in the Anserini jar): ``{measure: value}`` over all topics."""
    from indexer.jvm import anserini_jar, java_binary

    cmd = [str(java_binary()), "-cp", str(anserini_jar()), "trec_eval", *(a for m in measures for a in ("-m", m)), str(qrels), str(run)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    return {parts[0]: parts[2] for parts in (line.split() for line in out.splitlines()) if len(parts) == 3}


def test_topics_into_a_trec_run(mini_bundle_dir, shape_index, shape_images, engine, tmp_path, capsys):
    topics = tmp_path / "topics.tsv"
    topics.write_text("q1\ta red circle\nq2\ta blue star\nq3\t-red\n")
    run = tmp_path / "run.trec"
    assert _search(mini_bundle_dir, shape_index, "--topics", str(topics), "--output", str(run), "--hits", "3") == 1
    err = capsys.readouterr().err
    assert "topic q3: empty query" in err and "1 of 3 topics failed" in err  # named, not dropped silently
    rows = [line.split() for line in run.read_text().splitlines()]
    # 3 hits each: with its top-5 ImageNet classes alone, the untrained prior matches "a blue star" to 3 shapes
    assert len(rows) == 6 and all(len(r) == 6 and r[1] == "Q0" and r[5] == "lexvla" for r in rows)
    for qid, text in (("q1", "a red circle"), ("q2", "a blue star")):
        mine = [r for r in rows if r[0] == qid]
        assert [int(r[3]) for r in mine] == [1, 2, 3]
        expected = engine.search.search_text(text, 3).hits  # what the service answers for the same query
        assert [r[2] for r in mine] == [h.doc_id for h in expected]
        assert [float(r[4]) for r in mine] == pytest.approx([h.score for h in expected], abs=1e-6)
    qrels = tmp_path / "qrels.txt"
    relevant = {"q1": "red_circle", "q2": "blue_star"}
    ids = sorted(p.relative_to(shape_images).as_posix() for p in shape_images.rglob("*.png"))  # the index's ids
    qrels.write_text("".join(f"{q} 0 {d} {int(key in d)}\n" for q, key in relevant.items() for d in ids))
    measures = _trec_eval(qrels, run, "num_q", "num_ret", "num_rel")
    assert measures == {"num_q": "2", "num_ret": "6", "num_rel": "4"}


def test_jsonl_topics_and_one_query_as_json(mini_bundle_dir, shape_index, tmp_path, capsys):
    topics = tmp_path / "topics.jsonl"
    topics.write_text('{"qid": "a", "query": "a red circle"}\n{"qid": "b", "query": "a blue star +star"}\n')
    out = tmp_path / "run.jsonl"
    assert _search(mini_bundle_dir, shape_index, "--topics", str(topics), "--format", "json", "--output", str(out), "-k", "3") == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["qid"] for r in records] == ["a", "b"] and all(len(r["hits"]) == 3 for r in records)
    hit = records[0]["hits"][0]
    assert hit["rank"] == 1 and sum(hit["matches"].values()) == pytest.approx(hit["score"], rel=1e-6)
    assert _search(mini_bundle_dir, shape_index, "--format", "json", "-k", "2", "a red circle") == 0
    one = json.loads(capsys.readouterr().out)
    assert one["query"] == "a red circle" and [h["id"] for h in one["hits"]] == [h["id"] for h in records[0]["hits"][:2]]


def test_query_and_topics_together_are_refused(mini_bundle_dir, shape_index, tmp_path, capsys):
    assert _search(mini_bundle_dir, shape_index, "--topics", str(tmp_path / "t.tsv"), "red") == 1
    assert "give a query or --topics FILE (not both)" in capsys.readouterr().err
