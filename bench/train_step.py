"""Training-step benchmark (not a test): where a step of the default model goes, and what the fused
max over patches (``models.towers.patch_max_logits``) saves.

    .venv/bin/python bench/train_step.py [--batch 64] [--heads 3465] [--steps 20] [--threads 2]

The image head of ``lexvla-mini`` on random features of the real shapes (MobileNetV2's 7x7 patches
of 1280 features, MiniLM's 384-d codebook): adapter -> mapper -> logits against the codebook ->
max over patches, forward and backward, with autograd's ``amax`` and with the fused function. Prints
a Markdown table of milliseconds per step (median) and the largest gradient difference.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

from models.towers import Adapter, patch_max_logits


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--patches", type=int, default=49)
    ap.add_argument("--features", type=int, default=1280)
    ap.add_argument("--code", type=int, default=384)
    ap.add_argument("--heads", type=int, default=3465)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    adapter, mapper = Adapter(args.features, 256), nn.Linear(args.features, args.code)
    nn.init.normal_(adapter.mlp[2].weight, std=0.02)  # trained, not the zero init: every path carries gradient
    codebook = nn.Parameter(torch.randn(args.heads, args.code) * 0.05)
    feats = torch.randn(args.batch, args.patches, args.features)
    params = [*adapter.parameters(), *mapper.parameters(), codebook]

    def plain() -> torch.Tensor:
        return (mapper(adapter(feats)) @ codebook.t()).amax(dim=1)

    def fused() -> torch.Tensor:
        return patch_max_logits(mapper(adapter(feats)), codebook)

    def adapter_only() -> torch.Tensor:
        return mapper(adapter(feats)).sum(dim=1)

    grads = {}
    rows = []
    def fused_bf16() -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return patch_max_logits(mapper(adapter(feats)), codebook).float()

    cases = (("adapter + mapper only", adapter_only), ("autograd amax", plain), ("fused max", fused),
             ("fused max, bf16 autocast", fused_bf16))
    for name, fn in cases:
        times = []
        for step in range(args.steps + 3):
            for p in params:
                p.grad = None
            start = time.perf_counter()
            out = fn()
            torch.log1p(torch.relu(out)).sum().backward()
            if step >= 3:
                times.append(1000 * (time.perf_counter() - start))
        grads[name] = [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in params]
        rows.append((name, statistics.median(times)))
    diff = max(float((a - b).abs().max() / b.abs().max().clamp(min=1e-12))
               for a, b in zip(grads["autograd amax"], grads["fused max"], strict=True))
    print(f"batch {args.batch}, {args.patches} patches, {args.features} features, codebook {args.heads} x {args.code}, "
          f"{torch.get_num_threads()} threads; largest gradient difference fused vs autograd, relative to the gradient's largest entry: {diff:.1e}")
    print("| image head, forward + backward | ms per step (median) |\n|---|---|")
    for name, ms in rows:
        print(f"| {name} | {ms:.1f} |")


if __name__ == "__main__":
    main()
