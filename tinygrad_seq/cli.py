"""The ``tinygrad-seq`` command: ``graph`` renders an unrolled model, ``bptt`` walks through its backward pass."""
from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from . import __version__, settings


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cell", default="rnn", help="a registered cell: rnn, gru, lstm, simplified_gru, ... (default rnn)")
    parser.add_argument("--steps", type=int, default=3, help="time steps to unroll (default 3)")
    parser.add_argument("--layers", type=int, default=1, help="stacked layers (default 1)")
    parser.add_argument("--bidirectional", action="store_true", help="add a reverse direction to every layer")
    parser.add_argument("--hidden", type=int, default=3, help="hidden size (default 3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--fused", action="store_true",
                        help="draw the fused path (one node per cell step) instead of every gate")


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
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")

    graph = commands.add_parser("graph", help="render a small model's unrolled computation graph",
                                description="Render the unrolled graph of a small recurrent model and its loss.")
    _model_arguments(graph)
    graph.add_argument("--out", default="graph.svg", help="output file; its suffix picks svg, png or pdf (default graph.svg)")
    graph.add_argument("--collapse", action="store_true", help="draw each cell step as one box")
    graph.add_argument("--values", action="store_true", help="show tensor values")
    graph.add_argument("--grads", action="store_true", help="run backward first and show gradients")
    graph.add_argument("--rankdir", choices=["LR", "TB"], default="LR", help="time left to right (LR) or top to bottom (TB)")

    bptt = commands.add_parser("bptt", help="walk through a small model's backward pass, one SVG per step",
                               description="Print every step of backpropagation through time and write one SVG frame per step.")
    _model_arguments(bptt)
    bptt.add_argument("--out", default="bptt", help="folder for the frames (default ./bptt)")
    bptt.add_argument("--collapse", action="store_true", help="draw each cell step as one box in the frames")
    return parser


def _suffix_format(path: Path) -> str:
    suffix = path.suffix.lower().lstrip(".")
    return suffix if suffix in ("svg", "png", "pdf") else "svg"


def _loss(model, fused: bool):
    """The model's loss, built gate by gate unless the fused path is asked for."""
    import contextlib

    from .nn.cells import transparent

    with contextlib.nullcontext() if fused else transparent():
        return model.loss()


def run_graph(args: argparse.Namespace) -> int:
    from .viz import demo, render

    model = demo.small_model(args.cell, args.steps, args.layers, args.bidirectional, hidden_size=args.hidden, seed=args.seed)
    loss = _loss(model, args.fused)
    if args.grads:
        for a in model.parameters().values():
            a.grad = None
        loss.backward(retain_graph=True)
    path = render(loss, Path(args.out), format=_suffix_format(Path(args.out)), params=model.parameters(),
                  collapse_cells=args.collapse, show_values=args.values, show_grads=args.grads, rankdir=args.rankdir)
    print(f"wrote {path}: {args.cell}, {args.steps} steps, {args.layers} layer(s){', bidirectional' if args.bidirectional else ''}")
    return 0


def run_bptt(args: argparse.Namespace) -> int:
    import numpy as np

    from .viz import backward_steps, demo

    model = demo.small_model(args.cell, args.steps, args.layers, args.bidirectional, hidden_size=args.hidden, seed=args.seed)
    params = model.parameters()
    loss = _loss(model, args.fused)
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    print(f"L = {loss.item():.4f}; backpropagation through time, one node at a time (frames in {folder}/):")
    last = None
    for step in backward_steps(loss, params=params):
        print(step.describe())
        step.render(folder / f"step_{step.index + 1:03d}.svg", collapse_cells=args.collapse)
        last = step
    print(f"{last.total} steps. Gradients of the shared weights, summed over the {args.steps} time steps:")
    for name, p in params.items():
        print(f"  {name:<24} |∇| = {np.linalg.norm(p.backend.to_host(p.grad)):.4f}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.backend:
        from .backend import set_backend

        set_backend(args.backend)
    if args.command is None:
        parser.print_help()
        return 0
    if getattr(args, "cell", None) not in settings.cell_registry:
        parser.error(f"unknown --cell {args.cell!r}; choose one of {', '.join(sorted(settings.cell_registry))}")
    for name in ("steps", "layers", "hidden"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    return {"graph": run_graph, "bptt": run_bptt}[args.command](args)


if __name__ == "__main__":
    raise SystemExit(main())
