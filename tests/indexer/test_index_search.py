"""Index built from generated images: Lucene scores equal a brute-force dot product; rejects; metadata."""
from __future__ import annotations

import json
import random

import pytest
from conftest import brute_force

from indexer.encode import InputItem, scan_inputs
from indexer.layout import REJECTS
from indexer.metadata import META_FILE, MetadataReader
from lexvla.testing import build_index
from models.sparse import quantize_weights

pytestmark = pytest.mark.integration
CAPTIONS = ["a red circle", "blue square on green", "yellow ellipse", "black and white", "a purple box", "orange sun",
            "two shapes", "cyan rectangle on a brown background", "magenta", "a green dot in the corner"]  # fmt: skip


def _check_against_brute_force(searcher, reader, query: dict[str, float], k: int = 10) -> None:
    scale = searcher.info.quant_scale
    q = quantize_weights(query, scale)
    truth = brute_force(list(reader), q)
    hits = searcher.search(query, k=k)
    expected = sorted((s for s in truth.values() if s > 0), reverse=True)[:k]
    assert [round(h.score * scale**2) for h in hits] == expected
    for h in hits:
        assert truth[h.doc_id] == round(h.score * scale**2)
        assert sum(m.contribution for m in h.matches) == pytest.approx(h.score, rel=1e-9)
        assert [m.contribution for m in h.matches] == sorted((m.contribution for m in h.matches), reverse=True)
    # ids strictly above the k-th score are the same set (ties at the boundary may order differently)
    if len(expected) == k:
        above = {d for d, s in truth.items() if s > expected[-1]}
        assert above <= {h.doc_id for h in hits}


def _queries(bundle, reader, n_text: int = 10, n_image: int = 10, seed: int = 0) -> list[dict[str, float]]:
    """Text queries from the bundle's text encoder and random subsets of document vectors."""
    rng = random.Random(seed)
    out = [v.words(bundle.words) for v in bundle.encode_texts(CAPTIONS[:n_text])]
    rows = list(reader)
    for _ in range(n_image):
        doc = rng.choice(rows).impacts
        words = rng.sample(sorted(doc), min(24, len(doc)))
        out.append({w: rng.uniform(0.01, 0.5) for w in words} | {"notaword_xyz": 0.3})
    return out


def test_tiny_index_matches_brute_force(tiny_index, bundle_dir):
    from indexer.searcher import LexicalSearcher
    from models.bundle import Bundle

    bundle = Bundle(bundle_dir)
    with LexicalSearcher(tiny_index) as searcher:
        reader = MetadataReader(tiny_index / "generations" / "gen-000001" / META_FILE)
        assert searcher.info.doc_count == 60 == reader.count()
        assert searcher.info.bundle_version == bundle.version
        assert searcher.info.patch_grid == tuple(bundle.config.patch_grid)
        for query in _queries(bundle, reader):
            _check_against_brute_force(searcher, reader, query)


def test_rejects_recorded_and_rest_indexed(tiny_index, shapes_dir):
    rejects = [json.loads(line) for line in (tiny_index / REJECTS).read_text().splitlines()]
    reasons = {r["id"]: r["reason"] for r in rejects}
    assert set(reasons) == {"bad_random.png", "bad_truncated.png", "bad_bomb.png"}
    assert "too large" in reasons["bad_bomb.png"] or "bomb" in reasons["bad_bomb.png"]
    assert "truncated" in reasons["bad_truncated.png"] or "corrupt" in reasons["bad_truncated.png"]
    good = {it.doc_id for it in scan_inputs(shapes_dir)} - set(reasons)
    from indexer.searcher import LexicalSearcher

    with LexicalSearcher(tiny_index) as searcher:
        docs = {d: searcher.document(d) for d in good}
        assert all(docs.values())
        assert searcher.document("bad_bomb.png") is None
    rec = docs["nested/img0000.png"]
    assert rec.path.endswith("nested/img0000.png") and rec.width > 0 and rec.height > 0
    assert rec.impacts and all(isinstance(v, int) and v > 0 for v in rec.impacts.values())


def test_mini_bundle_index_matches_brute_force(tmp_path, mini_bundle_dir, shapes_dir):
    """Same checks with the real-architecture lexvla-mini bundle, indexing from a JSONL manifest."""
    from indexer.searcher import LexicalSearcher
    from models.bundle import Bundle

    manifest = tmp_path / "m.jsonl"
    items = [it for it in scan_inputs(shapes_dir) if not it.doc_id.startswith("bad")][:30]
    manifest.write_text("".join(json.dumps({"id": f"doc-{n}", "path": it.path, "caption": f"c{n}"}) + "\n" for n, it in enumerate(items)))
    root = tmp_path / "ix"
    rep = build_index(mini_bundle_dir, manifest, root, batch_size=16)
    assert rep.doc_count == 30 and not rep.rejected
    bundle = Bundle(mini_bundle_dir)
    with LexicalSearcher(root) as searcher:
        assert searcher.info.bundle_name == "lexvla-mini" and searcher.info.patch_grid == (7, 7)
        assert searcher.document("doc-3").meta == {"caption": "c3"}
        reader = MetadataReader(root / "generations" / "gen-000001" / META_FILE)
        for query in _queries(bundle, reader, n_text=5, n_image=5):
            _check_against_brute_force(searcher, reader, query)


def test_exclude_and_search_vector(tiny_index):
    from indexer.searcher import LexicalSearcher

    with LexicalSearcher(tiny_index) as searcher:
        doc = searcher.document("img0001.jpg")
        hits = searcher.search_vector(doc.impacts, k=5)
        assert hits[0].doc_id == "img0001.jpg"
        # the document's strongest word that some documents lack (a word in every one excludes all)
        holders = {w: {h.doc_id for h in searcher.search({w: 1.0}, k=100)} for w in doc.impacts}
        word = max((w for w in doc.impacts if len(holders[w]) < searcher.info.doc_count), key=doc.impacts.get)
        query = {w: v / 1000 for w, v in doc.impacts.items()}
        excluded = searcher.search(query, k=60, exclude=[word])
        assert excluded and not {h.doc_id for h in excluded} & holders[word]
        assert all(word not in searcher.document(h.doc_id).impacts for h in excluded)
        assert searcher.search({"notaword_xyz": 1.0}) == []
        assert searcher.search({}, k=5) == [] and searcher.search(query, k=0) == []


def test_scan_inputs_csv_and_jsonl(tmp_path):
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "m.csv").write_text("id,path,label\nx1,a.png,cat\n")
    assert scan_inputs(tmp_path / "m.csv") == [InputItem("x1", str((tmp_path / "a.png").resolve()), {"label": "cat"})]
    (tmp_path / "m.jsonl").write_text('{"id": "x2", "path": "a.png"}\n\n')
    assert [it.doc_id for it in scan_inputs(tmp_path / "m.jsonl")] == ["x2"]
    assert [it.doc_id for it in scan_inputs(tmp_path)] == ["a.png"]


def test_training_manifest_indexes_as_it_is(tmp_path):
    """A training manifest names the file ``image``; its captions become document metadata."""
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "train.jsonl").write_text('{"id": "t1", "image": "a.png", "captions": ["a cat"], "split": "test"}\n')
    (item,) = scan_inputs(tmp_path / "train.jsonl")
    assert item == InputItem("t1", str((tmp_path / "a.png").resolve()), {"captions": ["a cat"], "split": "test"})


def test_required_words_filter_like_the_brute_force(tiny_index):
    """``require`` is Lucene's MUST: the scores are the same dot products, over the documents that
    carry every required word (one in the query map, one only filtering)."""
    from indexer.layout import require_generation
    from indexer.searcher import LexicalSearcher

    reader = MetadataReader(require_generation(tiny_index) / META_FILE)
    rows = {r.doc_id: r.impacts for r in reader}
    reader.close()
    with LexicalSearcher(tiny_index) as searcher:
        doc = searcher.document("img0001.jpg")
        words = sorted(doc.impacts, key=doc.impacts.get, reverse=True)
        query = {w: 0.3 for w in words[:12]}
        must_scored, must_only = words[3], words[20]  # the second is not in the query map
        q = quantize_weights(query, searcher.info.quant_scale)
        truth = {d: sum(v * imp.get(w, 0) for w, v in q.items()) for d, imp in rows.items()
                 if must_scored in imp and must_only in imp}  # fmt: skip
        hits = searcher.search(query, k=100, require=[must_scored, must_only])
        assert hits and len(hits) == len(truth) < len(rows)
        assert {h.doc_id: round(h.score * searcher.info.quant_scale**2) for h in hits} == truth
