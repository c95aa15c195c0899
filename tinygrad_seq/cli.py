"""The ``tinygrad-seq`` command. Later features add their subcommands here."""
from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinygrad-seq",
        description="tinygrad_seq: recurrent sequence models on a from-scratch autograd engine (NumPy or CuPy).",
    )
    parser.add_argument("--version", action="version", version=f"tinygrad-seq {__version__}")
    parser.add_argument(
        "--backend",
        choices=["numpy", "cupy"],
        help="array backend for this run (default: $TINYGRAD_SEQ_BACKEND, else numpy)",
    )
    parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.backend:
        from .backend import set_backend

        set_backend(args.backend)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
