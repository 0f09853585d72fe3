"""The default pipeline's corpora and a user's captioned images as training data."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lexvla.pipeline import SOURCES, STYLES, Workspace, cap_manifest, user_manifest
from models.data.manifest import read_manifest

REPO = Path(__file__).resolve().parents[1]
NPM_CACHE = Path(os.environ.get("LEXVLA_NPM_CACHE", REPO / "var" / "cache" / "npm"))


def test_every_style_has_sources_and_photos_are_never_trained_on():
    styles = {s.style for s in SOURCES}
    assert set(STYLES) == styles - {"generated scenes"}
    assert {s.name for s in SOURCES if s.style == "photos"} == {"fashion", "named-photos"}
    assert not any(s.train for s in SOURCES if s.style == "photos")
    assert all(any(s.train for s in SOURCES if s.style == style) for style in STYLES if style != "photos")


def test_cap_keeps_a_seeded_sample_in_file_order_and_lists_the_rest(tmp_path):
    manifest = tmp_path / "manifest.jsonl"
    lines = [json.dumps({"id": f"r{i}", "image": f"{i}.png", "captions": ["x"]}) + "\n" for i in range(10)]
    manifest.write_text("".join(lines))
    cap_manifest(manifest, 4)
    kept, capped = manifest.read_text().splitlines(keepends=True), (tmp_path / "capped.jsonl").read_text().splitlines(keepends=True)
    assert len(kept) == 4 and len(capped) == 6 and sorted(kept + capped) == sorted(lines)
    assert kept == [line for line in lines if line in kept]  # file order
    again = tmp_path / "again" / "manifest.jsonl"
    again.parent.mkdir()
    again.write_text("".join(lines))
    cap_manifest(again, 4)
    assert again.read_text() == manifest.read_text()  # the same sample every time


def test_user_manifest_reads_captions_and_leaves_out_uncaptioned_entries(tmp_path, shape_png):
    csv = tmp_path / "mine.csv"
    csv.write_text(f"id,path,caption\na,{shape_png},a red zeppelin\nb,{shape_png},\n")
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text(json.dumps({"id": "c", "image": str(shape_png), "captions": ["one", "two"], "owner": "me"}) + "\n")
    ws = Workspace(tmp_path / "ws")
    records = read_manifest(user_manifest(ws, csv))
    assert [(r.id, r.captions) for r in records] == [("a", ["a red zeppelin"])]  # b has no caption
    assert records[0].split in ("train", "val", "test") and Path(records[0].image) == shape_png
    (rec,) = read_manifest(user_manifest(ws, jsonl))
    assert rec.captions == ["one", "two"] and rec.meta == {"owner": "me"}
    assert user_manifest(ws, csv) == user_manifest(ws, csv)  # the same images: the same training data
    empty = tmp_path / "empty.csv"
    empty.write_text(f"id,path\nx,{shape_png}\n")
    with pytest.raises(ValueError, match="no entry has a caption"):
        user_manifest(ws, empty)


@pytest.fixture
def shape_png(tmp_path) -> Path:
    from lexvla.testing import draw_shape

    path = tmp_path / "shape.png"
    draw_shape("circle", "red", (96, 96), 0).save(path)
    return path


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/share/openclipart/png").is_dir(), reason="scripts/setup.sh installs openclipart-png")
def test_train_on_my_images_in_one_command(tmp_path):
    """lexvla train --manifest: the default config on its (small) data plus a user's pictures,
    whose words the image head then writes."""
    from lexvla.testing import shape_images

    images = shape_images(tmp_path / "mine", n_per=2)
    rows = [{"id": p.name, "path": str(p), "caption": f"a {p.stem.split('_')[0]} zeppelin {p.stem.split('_')[1]}"} for p in images]
    manifest = tmp_path / "mine.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    work = tmp_path / "work"
    (work / "cache").mkdir(parents=True)
    NPM_CACHE.mkdir(parents=True, exist_ok=True)
    (work / "cache" / "npm").symlink_to(NPM_CACHE.resolve())  # the npm packages the other tests share
    out = tmp_path / "bundle"
    cmd = [sys.executable, "-m", "lexvla", "train", "--manifest", str(manifest), "--workdir", str(work),
           "--data-limit", "20", "--max-steps", "5", "--export", str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"bundle: {out}" in done.stdout
    import torch

    from models.bundle import Bundle
    from models.train import HEAD_DIMS, WEIGHTS

    bundle = Bundle(out)
    run = work / "runs" / bundle.config.extra["training_key"]
    assert any("user-" in m for m in json.loads((run / "train_config.json").read_text())["manifests"])
    head = torch.load(run / WEIGHTS, weights_only=True)[HEAD_DIMS].tolist()
    assert bundle.words.index("zeppelin") in head  # a word of the user's captions is one the image head writes

    # its model card names every training source with its licence and attribution; only the user's is unknown
    from models.model_card import training_sources, unattributed

    manifests = json.loads((run / "train_config.json").read_text())["manifests"]
    sources = training_sources(manifests)
    assert [s.name for s in sources if s.name.startswith("user-")] == unattributed(sources) != []
    card = (out / "README.md").read_text()
    for source in sources:
        assert f"| {source.name} | {source.images:,} | {source.licence} | {source.attribution} |" in card
    assert "lexvla train --manifest" in card
