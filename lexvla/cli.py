"""``lexvla <subcommand>``: one entry point; each package registers its own subcommands.

A package exposing subcommands has a module with ``register(subparsers)`` that adds parsers whose
``func`` attribute takes the parsed ``argparse.Namespace`` and returns an exit code.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

COMMAND_MODULES = ["models.cli", "models.data.cli", "indexer.cli", "service.cli", "lexvla.demo", "lexvla.report"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lexvla", description="Sparse lexical text-to-image retrieval on LexVLA.")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # a real missing dependency inside the module
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # one clear line for expected failures; the traceback with -v
        if args.verbose:
            raise
        print(f"lexvla {args.command}: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
