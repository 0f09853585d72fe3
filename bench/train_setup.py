"""Where a training run's time goes besides its steps: set-up, familiarity, the word-rate calibration.

Not a test: prints seconds and cProfile's top entries. Runs the default config's ``Trainer`` on the
workspace's cached features (``lexvla demo`` builds them) for ``--steps`` steps, one thread, then
times ``fit_familiarity`` and ``calibrate_word_rates`` again on the trained state; with ``--check-calibration`` it also fits the
word scale in fp32 and prints, per training source, the worst fp32 rate under the bf16-fitted scale
(docs/design/word-rate-calibration.md quotes it).

    .venv/bin/python bench/train_setup.py [--check-calibration]
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def worst_rates(weights: torch.Tensor, captioned: torch.Tensor, sources: torch.Tensor, top: int = 10) -> list[float]:
    """Per source: the largest share of its images whose ``top`` strongest words hold a word their captions lack."""
    values, idx = weights.topk(top, dim=1)
    wrong = (values > 0) & (captioned.gather(1, idx) == 0)
    out = []
    for s in range(int(sources.max()) + 1):
        mine = sources == s
        counts = torch.bincount(idx[mine][wrong[mine]], minlength=weights.shape[1]).float()
        out.append(float(counts.max() / mine.sum()))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default="var")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--check-calibration", action="store_true")
    args = parser.parse_args()
    from lexvla.pipeline import DEFAULT_CONFIG, Workspace, ensure_data, load_config
    from models.train import TrainConfig, Trainer, _floats, fit_word_scale

    torch.set_num_threads(1)
    ws = Workspace(Path(args.workdir))
    config = load_config(DEFAULT_CONFIG, ensure_data(ws)) | {"out_dir": str(ws.root / "bench" / "train-setup"),
                                                            "cache_dir": str(ws.root / "cache" / "features"), "max_steps": args.steps}
    profile = cProfile.Profile()
    started = time.monotonic()
    profile.enable()
    trainer = Trainer(TrainConfig(**config))
    profile.disable()
    print(f"set-up {time.monotonic() - started:.1f} s")
    started = time.monotonic()
    trainer.fit()  # the steps, then familiarity and the calibration once
    print(f"{args.steps} steps and the fitting {time.monotonic() - started:.1f} s")
    for name in ("fit_familiarity", "calibrate_word_rates"):
        started = time.monotonic()
        getattr(trainer, name)()
        print(f"{name} {time.monotonic() - started:.1f} s (bf16: {trainer.autocast})")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(15)
    if args.check_calibration:
        image = trainer.model.image.eval()
        with torch.no_grad():
            weights = torch.cat([image.from_features(_floats(trainer.image_feats[s:s + 256], trainer.device), patches=False)[0][:, image.head_dims]
                                 for s in range(0, len(trainer.image_feats), 256)])
        captioned, sources = trainer.captioned_words(), torch.as_tensor(trainer.image_source)
        print("fp32 rates under the fitted scale, worst word per source:", [f"{r:.4f}" for r in worst_rates(weights, captioned, sources)])
        fp32 = fit_word_scale(weights / image.word_scale, trainer.cfg.max_word_rate, captioned=captioned, sources=sources)
        print(f"words lowered: the fitted scale {int((image.word_scale < 1).sum())}, an fp32 fit {int((fp32 < 1).sum())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
