"""Subcommands of the model side: ``train``, ``eval``, ``export``, ``cards``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def cmd_train(args: argparse.Namespace) -> int:
    if args.manifest:
        return _train_on_manifest(args)
    if not args.config:
        raise SystemExit("lexvla train: give a training config, or --manifest with your captioned images")
    from models.train import TrainConfig, train

    cfg = TrainConfig.load(args.config, out_dir=args.out, max_steps=args.max_steps, device=args.device,
                           vision_path=args.vision_path, text_path=args.text_path, cache_dir=args.cache_dir)
    weights = train(cfg)
    print(f"trained weights: {weights}")
    if args.export:
        from models.train import load_trained

        command = f"lexvla train {args.config} --out {args.out}" + (f" --max-steps {args.max_steps}" if args.max_steps else "")
        _export_with_card(load_trained(cfg.card, weights, cfg.vision_path, cfg.text_path), args.export, weights,
                          command + f" --export {args.export}")
    return 0


def _export_with_card(model, out: Path, weights: Path | None, command: str, name: str | None = None):
    """Export ``model`` to a bundle at ``out`` with its model card (``models.model_card``): the training
    manifests come from the run's ``train_config.json`` beside ``weights``, when there is one."""
    from models.export import export_bundle
    from models.model_card import training_config, write_model_card

    bundle = export_bundle(model, out, name=name)
    training = training_config(Path(weights).parent) if weights else None
    card = write_model_card(bundle.path, training["manifests"] if training else [], command, training=training)
    print(f"bundle: {bundle.path} (version {bundle.version}, {len(bundle.words)} words; model card {card})")
    return bundle


def _train_on_manifest(args: argparse.Namespace) -> int:
    """The default model trained on its own data plus the user's captioned images (one command, no config to edit)."""
    import shutil

    from lexvla.pipeline import DEFAULT_CONFIG, Workspace, ensure_default_bundle, user_manifest

    ws = Workspace(Path(args.workdir), data_limit=args.data_limit)
    manifest = user_manifest(ws, args.manifest)
    overrides = {k: v for k, v in (("max_steps", args.max_steps), ("device", args.device)) if v is not None}
    command = f"lexvla train --manifest {args.manifest}" + (f" --max-steps {args.max_steps}" if args.max_steps else "")
    bundle = ensure_default_bundle(ws, Path(args.config or DEFAULT_CONFIG), extra_manifests=(manifest,), command=command,
                                   **overrides)
    if args.export:
        shutil.copytree(bundle, args.export, dirs_exist_ok=True)
        bundle = Path(args.export)
    print(f"bundle: {bundle} (your images: {manifest})")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from models.train import load_trained

    model = load_trained(args.card, args.weights, args.vision_path, args.text_path)
    command = " ".join(["lexvla export", "--card", args.card] + (["--weights", str(args.weights)] if args.weights else [])
                       + ["--out", str(args.out)] + (["--name", args.name] if args.name else []))
    _export_with_card(model, Path(args.out), args.weights, command, name=args.name)
    print(f"parity (max abs diff): {(Path(args.out) / 'parity.json').read_text()}")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from models.bundle import Bundle
    from models.data.manifest import read_karpathy, read_manifest
    from models.evaluate import evaluate_patchdis, evaluate_retrieval

    bundle = Bundle(args.bundle, device=args.device, query_mode=args.query_mode)
    if args.karpathy:
        records = read_karpathy(args.karpathy, args.image_root, split=args.split)
    else:
        records = read_manifest(args.manifest, split=args.split)
    if args.limit:
        records = records[: args.limit]
    if not records:
        raise ValueError(f"no records in split {args.split!r}")
    result = evaluate_patchdis(bundle, records) if args.patchdis else evaluate_retrieval(bundle, records)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    summary = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in result.items() if "overuse" not in k}
    print(json.dumps(summary, indent=2))
    return 0


def cmd_quantize_text(args: argparse.Namespace) -> int:
    from models.bundle import Bundle, quantize_text_encoder

    out = quantize_text_encoder(Bundle(args.bundle).path)
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB); serve it with LEXVLA_TEXT_PRECISION=int8")
    return 0


def cmd_query_table(args: argparse.Namespace) -> int:
    from models.bundle import Bundle
    from models.query_table import build_query_table, split_words, with_wordnet

    bundle = Bundle(args.bundle, device="cpu")
    texts: list[str] = []
    for source in args.captions or []:
        if Path(source).suffix == ".jsonl":
            from models.data.manifest import read_manifest

            texts += [c for r in read_manifest(source, split=args.split) for c in r.captions]
        else:
            texts += Path(source).read_text(encoding="utf-8").splitlines()
    extra = split_words(bundle, texts, args.min_count) if texts else []
    if args.wordnet:
        extra = with_wordnet(bundle, extra)
    out = build_query_table(bundle.path, row_k=args.row_k, combine=args.combine, exact_floor=args.exact_floor,
                            extra_words=extra, threads=args.threads)  # fmt: skip
    from models.query_table import QueryTable

    meta = QueryTable.load(out).meta
    print(f"wrote {out} ({out.stat().st_size / 1e6:.1f} MB: {meta['word_rows']} words, {meta['extra_rows']} split words "
          f"of {len(extra)} found); serve it with LEXVLA_QUERY_MODE=table")  # fmt: skip
    return 0


def cmd_cards(args: argparse.Namespace) -> int:
    from models.registry import list_cards, load_card

    for name in list_cards():
        print(f"{name:14s} {load_card(name).description}")
    return 0


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--vision-path", help="local image backbone checkpoint (overrides the card)")
    p.add_argument("--text-path", help="local language model checkpoint (overrides the card)")


def register(sub) -> None:
    p = sub.add_parser("train", help="train a model from a JSON training config, or the default on your own captioned images")
    p.add_argument("config", nargs="?", help="training config JSON (see configs/); with --manifest, the default's")
    p.add_argument("--manifest", help="your captioned images (.jsonl/.csv/.parquet with id, path and caption): "
                   "train the default config on its data plus these")
    p.add_argument("--workdir", default="var", help="with --manifest: where data, runs and bundles are kept")
    p.add_argument("--data-limit", type=int, help="with --manifest: a small corpus of each default source, for a quick look")
    p.add_argument("--out", help="output directory (overrides the config)")
    p.add_argument("--max-steps", type=int)
    p.add_argument("--device", help="auto, cpu or cuda")
    p.add_argument("--cache-dir", help="where frozen features are cached")
    p.add_argument("--export", metavar="BUNDLE_DIR", help="export a bundle after training")
    _model_args(p)
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("export", help="export a card (+ trained weights) to an ONNX bundle")
    p.add_argument("--card", required=True, help="registered card name or card JSON")
    p.add_argument("--weights", help="weights.pt from `lexvla train` (omit for untrained heads)")
    p.add_argument("--out", required=True, help="bundle directory to write")
    p.add_argument("--name", help="bundle name (default: the card name)")
    _model_args(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("eval", help="retrieval R@K (or PatchDis mIoU) of a bundle")
    p.add_argument("--bundle", required=True)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--manifest", help="JSONL manifest")
    src.add_argument("--karpathy", help="COCO/Flickr30k Karpathy-split dataset_*.json")
    p.add_argument("--image-root", help="image folder for --karpathy")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int)
    p.add_argument("--patchdis", action="store_true", help="PatchDis mIoU on records with masks")
    p.add_argument("--device", default="auto")
    p.add_argument("--out", help="write the full result JSON here")
    p.add_argument("--query-mode", choices=["encoder", "table"], default="encoder",
                   help="encode captions with the text tower (encoder) or the bundle's query table (`lexvla query-table`)")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("quantize-text", help="add an int8 text encoder to a bundle (LEXVLA_TEXT_PRECISION=int8)")
    p.add_argument("--bundle", required=True)
    p.set_defaults(func=cmd_quantize_text)

    p = sub.add_parser("query-table", help="add a query table to a bundle: inference-free queries (LEXVLA_QUERY_MODE=table)")
    p.add_argument("--bundle", required=True)
    p.add_argument("--captions", action="append", metavar="FILE",
                   help="also give a row to the words these captions hold that the tokenizer splits into pieces "
                        "(\"teapot\" -> tea ##pot): a manifest (.jsonl, its --split) or a text file; repeatable")
    p.add_argument("--split", default="train", help="the manifests' split read with --captions (default: train)")
    p.add_argument("--min-count", type=int, default=1, help="with --captions: times a split word must occur")
    p.add_argument("--wordnet", action="store_true",
                   help="also give a row to WordNet's one-word nouns, verbs and adjectives that the tokenizer splits "
                        "(about 60,000 more rows: 3 more minutes, 11 MB more; Debian's wordnet-base)")
    p.add_argument("--row-k", type=int, help="words kept per row (default: the bundle's text_top_k)")
    p.add_argument("--combine", choices=["max", "sum"], default="max", help="how a query's rows are combined")
    p.add_argument("--exact-floor", type=float,
                   help="the text tower's typed-word floor (default: the bundle's model card's text.exact_floor)")
    p.add_argument("--threads", type=int, default=0, help="onnxruntime threads while building (0: its default)")
    p.set_defaults(func=cmd_query_table)

    p = sub.add_parser("cards", help="list registered model cards")
    p.set_defaults(func=cmd_cards)
