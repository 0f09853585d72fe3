"""The model card a bundle carries (models.model_card): sources, licences, attributions, metrics."""
from __future__ import annotations

import json
from pathlib import Path

from models.bundle import CONFIG_FILE, BundleConfig
from models.data.manifest import ManifestRecord, write_manifest
from models.model_card import NOT_RECORDED, report_metrics, training_sources, write_model_card

REPO = Path(__file__).resolve().parents[2]


def _source(root: Path, name: str, n_train: int, stats: dict | None) -> Path:
    records = [ManifestRecord(id=f"{name}{i}", image=f"/x/{name}{i}.png", captions=["a thing"],
                              split="train" if i < n_train else "test") for i in range(n_train + 2)]
    manifest = root / name / "manifest.jsonl"
    manifest.parent.mkdir(parents=True)
    write_manifest(manifest, records)
    if stats is not None:
        (manifest.parent / "stats.json").write_text(json.dumps(stats))
    return manifest


def _bundle(root: Path, **extra) -> Path:
    config = BundleConfig(name="mini", card="lexvla-mini", image_size=224, image_mean=(0.5, 0.5, 0.5),
                          image_std=(0.5, 0.5, 0.5), patch_grid=(7, 7), image_top_k=64, text_prompt="{text}",
                          text_max_caption_tokens=32, text_lowercase=True, text_top_k=32, quant_scale=100.0,
                          vocab_size=1000, version="abc123", extra=extra)
    root.mkdir(parents=True)
    (root / CONFIG_FILE).write_text(config.to_json())
    return root


def test_every_training_source_is_listed_with_its_licence_and_the_attributions_it_requires(tmp_path):
    manifests = [
        _source(tmp_path, "drawings", 3, {"licence": "Public Domain", "attribution": "Openclipart"}),
        _source(tmp_path, "twemoji", 4, {"licence": "CC-BY-4.0", "attribution": "Twemoji graphics by Twitter, Inc"}),
        _source(tmp_path, "mine", 2, None),  # a user's manifest: no stats.json
    ]
    sources = training_sources(manifests)
    assert [(s.name, s.images) for s in sources] == [("drawings", 3), ("twemoji", 4), ("mine", 2)]
    card = write_model_card(_bundle(tmp_path / "b"), manifests, "lexvla demo").read_text()
    assert card.startswith("---\nlicense: other\n") and "\ndatasets:\n- \"drawings\"\n- \"twemoji\"\n- \"mine\"\n" in card
    assert "| twemoji | 4 | CC-BY-4.0 | Twemoji graphics by Twitter, Inc |" in card
    required = card.split("### Required attributions")[1].split("## Evaluation")[0]
    assert "Twemoji graphics by Twitter, Inc (CC-BY-4.0)" in required and "Openclipart" not in required
    assert f"mine: {NOT_RECORDED}" in required  # an unknown licence is never assumed to need no credit
    assert "**Licence not recorded** for mine" in card
    assert "No report has measured this config" in card and "```bash\nlexvla demo\n```" in card


def test_metrics_come_from_a_report_of_the_same_config_and_say_whether_it_trained_these_weights(tmp_path):
    report = REPO / "docs" / "quality-report.json"
    found = json.loads(report.read_text())
    metrics = report_metrics(found, "not-a-key")
    tests = [row["test"] for row in metrics["rows"]]
    assert tests[0].startswith("in-domain") and len(tests) == 1 + len(found["leave_one_style_out"])
    assert metrics["same_training"] is False and metrics["commit"] == found["meta"]["commit"]
    manifests = [_source(tmp_path, "drawings", 3, {"licence": "Public Domain", "attribution": "Openclipart"})]
    key = (found["meta"].get("default_training_keys") or ["k0"])[0]
    found["meta"]["default_training_keys"] = [key]
    (tmp_path / "report.json").write_text(json.dumps(found))
    bundle = _bundle(tmp_path / "b", config=f"configs/{found['meta']['config']}", training_key=key)
    card = write_model_card(bundle, manifests, "lexvla demo", report=tmp_path / "report.json").read_text()
    assert f"Measured by `{found['meta']['command']}` at commit {found['meta']['commit']}" in card
    assert "the same training key" in card and "| photos, never trained on |" in card
    other = _bundle(tmp_path / "c", config="configs/another.json")  # a report of another config is not quoted
    assert "No report has measured" in write_model_card(other, manifests, "x", report=tmp_path / "report.json").read_text()


def test_the_card_is_not_part_of_the_bundle_version(bundle_dir):
    from models.bundle import Bundle

    version = Bundle(bundle_dir, device="cpu").version
    write_model_card(bundle_dir, [], "pytest")
    assert Bundle(bundle_dir, device="cpu").version == version  # verified on open: the card changes nothing
