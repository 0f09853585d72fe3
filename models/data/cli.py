"""``lexvla data ...``: build the corpora under ``models/data`` from the command line."""
from __future__ import annotations

import argparse
import json
import time


def register(subparsers) -> None:
    """Add ``data`` with the ``openclipart``, ``scenes``, ``emoji``, ``pysiogame`` and ``fashion`` subcommands.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        The top-level ``lexvla`` subparsers.
    """
    data = subparsers.add_parser("data", help="build image-caption corpora (manifests)")
    sub = data.add_subparsers(dest="data_command", required=True, metavar="CORPUS")

    oc = sub.add_parser("openclipart", help="Debian openclipart PNGs captioned from their SVG metadata")
    oc.add_argument("--out", required=True, help="output folder (manifest.jsonl, dropped.jsonl, stats.json)")
    oc.add_argument("--seed", type=int, default=0, help="split seed")
    oc.add_argument("--png-root", default="/usr/share/openclipart/png")
    oc.add_argument("--svg-root", default="/usr/share/openclipart/svg")
    oc.add_argument("--limit", type=int, default=None, help="only the first N PNG files")
    oc.add_argument("--verify-images", action="store_true", help="decode every PNG, not just its header")
    oc.set_defaults(func=_openclipart)

    sc = sub.add_parser("scenes", help="procedural coloured-shape scenes with exact masks")
    sc.add_argument("--out", required=True, help="output folder")
    sc.add_argument("--n", type=int, required=True, help="number of scenes")
    sc.add_argument("--seed", type=int, default=0)
    sc.add_argument("--size", type=int, default=224, help="image side in pixels")
    sc.set_defaults(func=_scenes)

    em = sub.add_parser("emoji", help="emoji artwork from npm: Google's or Twitter's set (training) or OpenMoji's drawings of held-out concepts (held-out test)")
    em.add_argument("--source", required=True, choices=("google", "twitter", "openmoji"))
    em.add_argument("--out", required=True, help="output folder (manifest.jsonl, dropped.jsonl, stats.json, images/)")
    em.add_argument("--cache", default="var/cache/npm", help="where npm packages are downloaded and extracted")
    em.add_argument("--seed", type=int, default=0, help="split seed (google, twitter)")
    em.add_argument("--limit", type=int, default=None, help="only the first N emoji")
    em.set_defaults(func=_emoji)

    pg = sub.add_parser("pysiogame", help="Art4Apps cartoon drawings of words from Debian pysiogame (cartoon style)")
    pg.add_argument("--out", required=True, help="output folder (manifest.jsonl, dropped.jsonl, stats.json, images/)")
    pg.add_argument("--root", default="/usr/share/games/pysiogame/res/images/art4apps", help="the art4apps folder")
    pg.add_argument("--seed", type=int, default=0, help="split seed")
    pg.add_argument("--limit", type=int, default=None, help="only the first N image files")
    pg.set_defaults(func=_pysiogame)

    fa = sub.add_parser("fashion", help="Fashion-MNIST product photos from Debian dataset-fashion-mnist (photo style, test only)")
    fa.add_argument("--out", required=True, help="output folder (manifest.jsonl, dropped.jsonl, stats.json, images/)")
    fa.add_argument("--root", default="/usr/share/datasets/fashion-mnist", help="folder of the IDX files")
    fa.add_argument("--per-class", type=int, default=100, help="images drawn from each of the ten classes")
    fa.add_argument("--seed", type=int, default=0, help="sampling seed")
    fa.set_defaults(func=_fashion)

    f3 = sub.add_parser("fluent3d", help="Microsoft Fluent Emoji 3D renders from npm, captioned as Google names each emoji (3d style)")
    f3.add_argument("--out", required=True, help="output folder (manifest.jsonl, dropped.jsonl, stats.json, images/)")
    f3.add_argument("--cache", default="var/cache/npm", help="where npm packages are downloaded and extracted")
    f3.add_argument("--seed", type=int, default=0, help="split seed")
    f3.add_argument("--limit", type=int, default=None, help="only the first N renders (emoji.json order)")
    f3.set_defaults(func=_fluent3d)

    ic = sub.add_parser("icons", help="line icons (tabler) or silhouettes (game-icons) from npm, rendered to 128 px PNGs")
    ic.add_argument("--source", required=True, choices=("tabler", "game-icons"))
    ic.add_argument("--out", required=True, help="output folder (manifest.jsonl, dropped.jsonl, stats.json, images/)")
    ic.add_argument("--cache", default="var/cache/npm", help="where npm packages are downloaded and extracted")
    ic.add_argument("--seed", type=int, default=0, help="split seed")
    ic.add_argument("--limit", type=int, default=None, help="only the first N icons that pass the name filters")
    ic.set_defaults(func=_icons)


def _openclipart(args: argparse.Namespace) -> int:
    from models.data.openclipart import build_openclipart_manifest

    stats = build_openclipart_manifest(
        args.out, png_root=args.png_root, svg_root=args.svg_root, seed=args.seed,
        limit=args.limit, verify_images=args.verify_images,
    )
    summary = {k: stats[k] for k in ("png_files", "images_kept", "images_dropped", "captions_kept", "splits", "seconds")}
    print(json.dumps(summary, indent=2))
    return 0


def _scenes(args: argparse.Namespace) -> int:
    from models.data.manifest import read_manifest
    from models.data.scenes import write_scene_set

    started = time.perf_counter()
    manifest = write_scene_set(args.out, args.n, seed=args.seed, size=args.size)
    records = read_manifest(manifest)
    splits = {s: sum(r.split == s for r in records) for s in ("train", "val", "test")}
    print(json.dumps({"manifest": str(manifest), "scenes": len(records), "splits": splits,
                      "seconds": round(time.perf_counter() - started, 2)}, indent=2))
    return 0


def _emoji(args: argparse.Namespace) -> int:
    from models.data.emoji import build_emoji_manifest

    stats = build_emoji_manifest(args.out, args.source, cache_dir=args.cache, seed=args.seed, limit=args.limit)
    summary = {k: stats[k] for k in ("entries", "images_kept", "images_dropped", "captions_kept", "splits", "seconds")}
    print(json.dumps(summary, indent=2))
    return 0


def _pysiogame(args: argparse.Namespace) -> int:
    from models.data.pysiogame import build_pysiogame_manifest

    stats = build_pysiogame_manifest(args.out, root=args.root, seed=args.seed, limit=args.limit)
    summary = {k: stats[k] for k in ("files", "images_kept", "images_dropped", "captions_kept", "captions_dropped",
                                     "splits", "licence", "seconds")}
    print(json.dumps(summary, indent=2))
    return 0


def _fashion(args: argparse.Namespace) -> int:
    from models.data.photos import build_fashion_manifest

    stats = build_fashion_manifest(args.out, root=args.root, per_class=args.per_class, seed=args.seed)
    summary = {k: stats[k] for k in ("entries", "images_kept", "images_dropped", "captions_kept", "splits", "classes",
                                     "licence", "seconds")}
    print(json.dumps(summary, indent=2))
    return 0


def _fluent3d(args: argparse.Namespace) -> int:
    from models.data.fluent3d import build_fluent3d_manifest

    stats = build_fluent3d_manifest(args.out, cache_dir=args.cache, seed=args.seed, limit=args.limit)
    summary = {k: stats[k] for k in ("entries", "images_kept", "images_dropped", "captions_kept", "captions_dropped",
                                     "splits", "licence", "seconds")}
    print(json.dumps(summary, indent=2))
    return 0


def _icons(args: argparse.Namespace) -> int:
    from models.data.icons import build_icon_manifest

    stats = build_icon_manifest(args.out, args.source, cache_dir=args.cache, seed=args.seed, limit=args.limit)
    summary = {k: stats[k] for k in ("source", "entries", "images_kept", "images_dropped", "captions_kept",
                                     "captions_dropped", "splits", "licence", "seconds")}
    print(json.dumps(summary, indent=2))
    return 0
