"""The ``tinygrad-seq`` command: ``train``, ``sample`` and ``eval`` language models; ``graph`` renders an
unrolled model, ``bptt`` walks through its backward pass; ``check-course`` grades a learner's own course
functions with the engine. Bad input is one line on stderr and exit status 2."""
from __future__ import annotations

import argparse
import errno
import math
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from . import __version__, settings


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with every error as one line on stderr and exit status 2 (no usage dump).

    A value out of range reads ``tinygrad-seq train: --clip must be > 0; got -1.0``;
    other mistakes (an unknown option, a missing one) end with where to look:
    ``...; see tinygrad-seq train --help``. Sub-commands use this class too.
    """

    commands: argparse._SubParsersAction | None = None  # the sub-commands, named when none is given
    given: Sequence[str] = ()  # the arguments this parser reads (a sub-command's: those after its name)

    def add_subparsers(self, **kwargs: Any) -> argparse._SubParsersAction:
        self.commands = super().add_subparsers(**kwargs)
        return self.commands

    def error(self, message: str) -> None:  # type: ignore[override]
        message = message.removeprefix("argument ")  # argparse's "argument --clip: ..."
        checked = re.fullmatch(r"(\S+): (must .*)", message, re.S)  # our types' range messages name the fix
        if checked:
            _fail(self.prog, f"{checked[1]} {checked[2]}")
        missing = re.fullmatch(r"(--[\w-]+): expected one argument", message)
        if missing and self._followed_by_dash(missing[1]):  # a value that starts with "-", read as an option
            message += f" (for a value that starts with '-', write it with '=': {missing[1]}=-abc)"
        _fail(self.prog, f"{message}; see {self.prog} --help")

    def _followed_by_dash(self, option: str) -> bool:
        """Whether ``option`` (or the abbreviation of it argparse accepts) is followed by an argument that starts
        with '-' and is no option of this parser: a value read as an option. At the end of the command line, or
        before another option (``--data --epochs 3``), its value is simply missing."""
        return any(len(item) > 2 and option.startswith(item) and after.startswith("-") and not self._is_option(after)
                   for item, after in zip(self.given, self.given[1:]))

    def _is_option(self, argument: str) -> bool:
        """Whether argparse reads ``argument`` as one of this parser's options: its name, with or without
        ``=value``, or the start of one or more long names (an abbreviation; several make it ambiguous, still an
        option typed)."""
        name = argument.partition("=")[0]
        if name in self._option_string_actions:
            return True
        return (self.allow_abbrev and name.startswith("--")
                and any(known.startswith(name) for known in self._option_string_actions))

    def parse_known_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                         namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        self.given = sys.argv[1:] if args is None else list(args)  # what error() looks in
        return super().parse_known_args(args, namespace)

    def parse_args(self, args: Sequence[str] | None = None,  # type: ignore[override]
                   namespace: argparse.Namespace | None = None) -> argparse.Namespace:
        namespace, extras = self.parse_known_args(args, namespace)
        if extras:  # name the sub-command they were given to, which argparse does not
            command = getattr(namespace, "command", None)
            prog = f"{self.prog} {command}" if command else self.prog
            _fail(prog, f"unrecognized arguments: {' '.join(extras)}; see {prog} --help")
        return namespace


class UsageError(Exception):
    """A command asked for something this machine cannot do: the message is one line that says what to fix."""


def one_line(error: BaseException | str) -> str:
    """An error's message as the one line a command prints: every run of spaces and newlines made one space."""
    return " ".join(str(error).split())


def _fail(prog: str, message: str) -> None:
    print(f"{prog}: {one_line(message)}", file=sys.stderr)
    raise SystemExit(2)


def integer(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """An argparse ``type``: an int that is at least ``minimum`` (and at most ``maximum`` when given)."""
    wanted = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum:,}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be an integer {wanted}; got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            raise argparse.ArgumentTypeError(f"must be {wanted}; got {value}")
        return value

    return parse


def number(low: float, high: float | None = None, include_low: bool = False, hint: str = "",
           hint_non_finite: bool = False) -> Callable[[str], float]:
    """An argparse ``type``: a finite float above ``low`` (or equal to it with ``include_low``) and below ``high``.
    ``hint`` is said for a value too low (what --temperature 0 may have meant), and for inf or NaN with ``hint_non_finite``
    (--clip inf means no clipping, as --clip 0 might)."""
    wanted = (f"in {'[' if include_low else '('}{low:g}, {high:g})" if high is not None
              else f"{'>=' if include_low else '>'} {low:g}")
    hint = f" ({hint})" if hint else ""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a number {wanted}; got {text!r}") from None
        if not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number {wanted}; got {value}{hint if hint_non_finite else ''}")
        if value < low or (value == low and not include_low):
            raise argparse.ArgumentTypeError(f"must be {wanted}; got {value}{hint}")
        if high is not None and value >= high:
            raise argparse.ArgumentTypeError(f"must be {wanted}; got {value}")
        return value

    return parse


def encoding_name(text: str) -> str:
    """An argparse ``type``: the name of a text encoding Python knows (utf-8, latin-1, cp1252, utf-16, ...)."""
    import codecs

    try:
        return codecs.lookup(text).name
    except LookupError:
        raise argparse.ArgumentTypeError(f"must be a text encoding Python knows (utf-8, latin-1, cp1252, ...); got {text!r}") from None


def text(argument: str) -> str:
    """An argparse ``type``: text the terminal's encoding could decode. Bytes it could not are kept by Python as
    lone surrogates ("\\udcff"), which no model has seen and which cannot be printed back."""
    try:
        argument.encode("utf-8")
    except UnicodeEncodeError as error:
        undecodable = argument[error.start:error.end].encode("utf-8", "surrogateescape")
        raise argparse.ArgumentTypeError(
            f"must be text in the terminal's encoding ({sys.getfilesystemencoding()}); got the bytes {undecodable!r} at "
            f"character {error.start}, which it cannot decode (set the terminal to UTF-8, or type the text again)") from None
    return argument


def _import_argument(parser: argparse.ArgumentParser, help: str) -> None:
    parser.add_argument("--import", dest="imports", action="append", default=[], metavar="MODULE", help=help)


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cell", default="rnn", help="a registered cell: rnn, gru, lstm, simplified_gru, ... (default rnn)")
    _import_argument(parser, "a module or .py file to import first (e.g. one that registers your cell)")
    parser.add_argument("--steps", type=integer(1), default=3, help="time steps to unroll, >= 1 (default 3)")
    parser.add_argument("--layers", type=integer(1), default=1, help="stacked layers, >= 1 (default 1)")
    parser.add_argument("--bidirectional", action="store_true", help="add a reverse direction to every layer")
    parser.add_argument("--hidden", type=integer(1), default=3, help="hidden size, >= 1 (default 3)")
    parser.add_argument("--seed", type=integer(0), default=0, help="random seed, >= 0 (default 0)")
    parser.add_argument("--fused", action="store_true",
                        help="draw the fused path (one node per cell step) instead of every gate")


HELD_OUT_UNKNOWN_NOTE = 0.05
"""The part of the held-out tokens being <unk> from which train says so (a word-level model of dinos.txt, one name a
line: 49.7 %, every other token being a name's <eos>; Shakespeare's words with --max-vocab 2000: 10.7 %)."""

# train's options that set TrainConfig fields: argparse dest -> field
CONFIG_OPTIONS = {
    "data": "data", "encoding": "encoding", "level": "level", "layout": "layout", "cell": "cell", "embed": "embed_dim",
    "hidden": "hidden", "layers": "layers", "dropout": "dropout", "seq_len": "seq_len", "batch_size": "batch_size",
    "epochs": "epochs", "lr": "lr", "optimizer": "optimizer", "clip": "clip", "lower": "lower", "max_vocab": "max_vocab",
    "seed": "seed", "val_fraction": "val_fraction",
}


def build_parser(given_only: bool = False) -> argparse.ArgumentParser:
    """The command's parser; ``given_only`` leaves out train's defaults, so parsing shows what was typed."""
    from .backend import BACKEND_NAMES
    from .models.config import LAYOUTS, MAX_LAYERS, MAX_WIDTH, OPTIMIZER_NAMES
    from .text.vocab import LEVELS

    parser = ArgumentParser(
        prog="tinygrad-seq",
        description="tinygrad_seq: recurrent sequence models on a from-scratch autograd engine (NumPy or CuPy).",
    )
    parser.add_argument("--version", action="version", version=f"tinygrad-seq {__version__}")
    parser.add_argument(
        "--backend",
        choices=BACKEND_NAMES,
        help="array backend for this run (default: $TINYGRAD_SEQ_BACKEND, else numpy)",
    )
    commands = parser.add_subparsers(dest="command", title="commands", metavar="COMMAND")

    graph = commands.add_parser("graph", help="render a small model's unrolled computation graph",
                                description="Render the unrolled graph of a small recurrent model and its loss.")
    _model_arguments(graph)
    graph.add_argument("--out", default="graph.svg", help="output file; its suffix picks svg, png or pdf (default graph.svg)")
    graph.add_argument("--collapse", action=argparse.BooleanOptionalAction, default=None,
                       help="draw each cell step as one box (default: only beyond 10 time steps or 400 nodes, which "
                            "Graphviz would take minutes to lay out; --no-collapse draws every node)")
    graph.add_argument("--slices", action="store_true",
                       help="draw the nodes that cut the stacked gates' matmul into its gates, and that gather a layer's "
                            "steps (hidden by default: an edge goes straight to each gate)")
    graph.add_argument("--values", action="store_true", help="show tensor values")
    graph.add_argument("--grads", action="store_true",
                       help="run backward first and show the parameters' gradients (bptt shows the one reaching every node)")
    graph.add_argument("--rankdir", choices=["LR", "TB"], default="LR", help="time left to right (LR) or top to bottom (TB) (default LR)")

    bptt = commands.add_parser("bptt", help="walk through a small model's backward pass: an HTML explorer, or one SVG per step",
                               description="Print every step of backpropagation through time; write the explorer page "
                                           "(--html) or one SVG frame per step (--out).")
    _model_arguments(bptt)
    bptt.add_argument("--html", metavar="PATH", help="write the BPTT explorer: one self-contained HTML page to open in a browser")
    bptt.add_argument("--out", help="folder for one SVG frame per step (default ./bptt when --html is not given)")
    bptt.add_argument("--collapse", action=argparse.BooleanOptionalAction, default=None,
                      help="draw each cell step as one box in the frames (default: only for a large graph, as graph "
                           "does; --no-collapse draws every node)")

    train = commands.add_parser("train", help="train a language model on a text file",
                                description="Train a recurrent language model; checkpoints every epoch and on Ctrl-C.")
    train.add_argument("--data", help="a text file (required, except with --resume)")
    train.add_argument("--encoding", type=encoding_name, default="utf-8",
                       help="the data's text encoding (default utf-8; e.g. latin-1, cp1252)")
    train.add_argument("--level", choices=LEVELS, default="char", help="tokens: characters or words (default char)")
    train.add_argument("--layout", choices=LAYOUTS, default="lines",
                       help="lines: one sequence per line (names); stream: one long text, truncated BPTT (default lines)")
    train.add_argument("--cell", default="lstm", help="rnn, gru, lstm, simplified_gru or a cell registered by --import (default lstm)")
    train.add_argument("--embed", type=integer(1, MAX_WIDTH), default=32, help=f"embedding size, 1 to {MAX_WIDTH:,} (default 32)")
    train.add_argument("--hidden", type=integer(1, MAX_WIDTH), default=64, help=f"hidden size, 1 to {MAX_WIDTH:,} (default 64)")
    train.add_argument("--layers", type=integer(1, MAX_LAYERS), default=1, help=f"stacked layers, 1 to {MAX_LAYERS:,} (default 1)")
    train.add_argument("--dropout", type=number(0, 1, include_low=True), default=0.0,
                       help="dropout between layers, in [0, 1) (default 0)")
    train.add_argument("--seq-len", type=integer(1), default=64,
                       help="chunk length for truncated BPTT (stream layout), >= 1 (default 64)")
    train.add_argument("--batch-size", type=integer(1), default=32, help=">= 1 (default 32)")
    train.add_argument("--epochs", type=integer(1), default=10, help=">= 1 (default 10)")
    train.add_argument("--lr", type=number(0), default=1e-2, help="learning rate, > 0 (default 0.01)")
    train.add_argument("--optimizer", choices=OPTIMIZER_NAMES, default="adam", help="(default adam)")
    clipping = train.add_mutually_exclusive_group()
    clipping.add_argument("--clip", type=number(0, hint="--no-clip turns clipping off", hint_non_finite=True), default=5.0,
                          help="clip_grad_norm_ max norm, > 0 (default 5)")
    clipping.add_argument("--no-clip", action="store_true", help="train without gradient clipping")
    train.add_argument("--lower", action="store_true", help="lower-case the text")
    train.add_argument("--max-vocab", type=integer(5), default=None,
                       help="keep the most frequent tokens, >= 5 (the 4 special tokens count); the rest become <unk>")
    train.add_argument("--seed", type=integer(0), default=0, help=">= 0 (default 0)")
    train.add_argument("--val-fraction", type=number(0, 1, include_low=True), default=0.1,
                       help="the part of the data held out for validation, in [0, 1) (default 0.1; 0: none)")
    train.add_argument("--backend", choices=BACKEND_NAMES, default=argparse.SUPPRESS,
                       help="array backend for this run, as tinygrad-seq --backend before the command")
    train.add_argument("--out", default="checkpoint", help="checkpoint directory (default ./checkpoint)")
    _import_argument(train, "a module or .py file to import first (e.g. one that registers your cell)")
    train.add_argument("--resume", action="store_true",
                       help="continue the run saved in --out exactly where it stopped (--epochs, --lr, --clip may change)")
    train.add_argument("--overwrite", action="store_true",
                       help="replace the checkpoint of another run in --out (anything that is not a checkpoint is never replaced)")
    if given_only:  # (set_defaults cannot suppress: it would store the SUPPRESS marker as a value)
        for action in train._actions:
            if action.dest in CONFIG_OPTIONS:
                action.default = argparse.SUPPRESS

    sample = commands.add_parser("sample", help="generate text from a trained checkpoint",
                                 description="Generate -n texts from the model of a checkpoint that train wrote, each from "
                                             "--prime on, sampled token by token at --temperature.")
    sample.add_argument("--checkpoint", required=True, metavar="FOLDER", help="the checkpoint folder train wrote (its --out)")
    sample.add_argument("-n", type=integer(1), default=10, help="how many samples, >= 1 (default 10)")
    sample.add_argument("--temperature", type=number(0, hint="for the likeliest token every time, greedy, use --top-k 1"),
                        default=1.0, help="> 0 (default 1)")
    sample.add_argument("--top-k", type=integer(1), default=None, help="sample from the k likeliest tokens, >= 1")
    sample.add_argument("--max-len", type=integer(1), default=50, help="tokens generated per sample (after --prime) at most, >= 1 (default 50)")
    sample.add_argument("--prime", type=text, default="", help="text to start from")
    sample.add_argument("--seed", type=integer(0), default=None, help=">= 0")
    _import_argument(sample, "the module or .py file that registered the checkpoint's cell, as at train time")

    evaluate = commands.add_parser("eval", help="loss and perplexity of a checkpoint on a text file",
                                   description="The loss (mean cross-entropy per token) and perplexity of a checkpoint's "
                                               "model on a text file, read with the checkpoint's vocabulary and layout.")
    evaluate.add_argument("--checkpoint", required=True, metavar="FOLDER", help="the checkpoint folder train wrote (its --out)")
    evaluate.add_argument("--data", required=True, help="a text file")
    evaluate.add_argument("--encoding", type=encoding_name, default=None,
                          help="the data's text encoding (default: the one the checkpoint was trained with)")
    _import_argument(evaluate, "the module or .py file that registered the checkpoint's cell, as at train time")

    check_course = commands.add_parser(
        "check-course", help="check your own course functions (rnn_cell_forward, rnn_backward, ...) against the engine",
        description="Import FILE and check each of the Sequence Models course's functions it defines (rnn_cell_forward, "
                    "rnn_forward, rnn_cell_backward, rnn_backward, the lstm_ and gru_cell_ ones) against the engine's answers "
                    "in float64. Exit status 0: all match; 1: something differs; 2: FILE cannot be imported.")
    check_course.add_argument("file", metavar="FILE", help="the .py file with your functions")
    return parser


def _import_modules(names: list[str]) -> None:
    import importlib
    import importlib.util

    from .models import TrainingError

    for name in names:
        try:
            if name.endswith(".py"):
                spec = importlib.util.spec_from_file_location(Path(name).stem, name)
                if spec is None or not Path(name).is_file():
                    raise FileNotFoundError(name)
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
            else:
                importlib.import_module(name)
        except Exception as error:
            raise TrainingError(f"--import {name}: {type(error).__name__}: {error}") from None


def run_train(args: argparse.Namespace) -> int:
    from .allocator import keep_freed_memory

    keep_freed_memory()  # a training run owns its process: its steps reuse the memory of the step before

    given = {CONFIG_OPTIONS[name]: getattr(args, name) for name in vars(build_parser(given_only=True).parse_args(args.argv))
             if name in CONFIG_OPTIONS}
    if args.no_clip:
        given["clip"] = None
    out = Path(args.out)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*dropout=.* acts between stacked layers")  # said as a note below
        trainer = _trainer(args, given, out)
    if trainer is None:  # a resumed run that has finished
        return 0
    if given.get("dropout") and trainer.config.layers == 1:  # typed now; the library's warning names its Python fix
        print(f"note: --dropout {given['dropout']:g} does nothing with one layer: it acts between stacked layers; "
              "add --layers 2 or more", file=sys.stderr)
    if "seq_len" in given and not trainer.config.is_stream:
        print(f"note: --seq-len {given['seq_len']} does nothing in the lines layout, which reads each line whole; "
              "it sets the chunks of --layout stream", file=sys.stderr)
    vocab = trainer.corpus.vocab
    print(f"{vocab}, {trainer.model.num_parameters():,} parameters, backend {trainer.model.embedding.weight.backend.name}")
    unknown = trainer.corpus.held_out_unknown_share()
    if unknown is not None and unknown >= HELD_OUT_UNKNOWN_NOTE:
        config = trainer.config
        fix = "more text, or --level char" if config.level == "word" else "more text"
        if config.max_vocab:  # the user's cap may be the cause
            fix = f"a larger --max-vocab than {config.max_vocab:,} (or none), {fix}"
        print(f"note: {unknown:.1%} of the held-out tokens are <unk>, which the vocabulary built from the training part does "
              f"not know; predicting <unk> counts as right, so the validation perplexity reads better than the model is "
              f"(the fix: {fix})", file=sys.stderr)
    finished = trainer.run(out, overwrite=args.overwrite)
    if not finished:
        print(f"stopped: checkpoint saved in {out}; continue with --resume")
        return 130
    print(f"done: checkpoint in {out}")
    return 0


def _trainer(args: argparse.Namespace, given: dict[str, Any], out: Path) -> Any:
    """The Trainer that ``train`` runs: a new run's, or the one in ``out`` with --resume (None if it has finished)."""
    from .models import TrainConfig, Trainer, TrainingError
    from .models.trainer import resume_conflicts
    from .storage import check_destination

    if not args.resume:
        if "data" not in given:
            raise TrainingError("--data is required: the text file to train on (or --resume a checkpoint)")
        check_destination(out, overwrite=args.overwrite)  # refuse before reading the data or building the model
        return Trainer(TrainConfig(**{**{f: getattr(args, o) for o, f in CONFIG_OPTIONS.items()}, **given}))
    if args.overwrite:
        raise TrainingError("--resume continues the checkpoint in --out and --overwrite replaces it; pass one of them")
    check_destination(out, owned=True)  # a link, or files of yours in it: refused before the run is read
    trainer = Trainer.load(out, data=given.pop("data", None))
    conflicts = resume_conflicts(trainer.config, given)
    if conflicts:
        raise TrainingError(f"--resume keeps the run's model and data, but these options differ from {out}: "
                            f"{'; '.join(conflicts)}. Drop them, or start a new run with another --out")
    changes = trainer.notes + trainer.apply_changes(**{k: v for k, v in given.items() if k in ("epochs", "lr", "clip")})
    if trainer.epoch >= trainer.config.epochs:
        print(f"{out} has finished {trainer.epoch} epoch(s); pass --epochs N (more than {trainer.epoch}) to train further")
        return None
    print(f"resuming {out} at epoch {trainer.epoch + 1}, batch {trainer.batch + 1}" + (f" ({', '.join(changes)})" if changes else ""))
    return trainer


def run_sample(args: argparse.Namespace) -> int:
    from .models import TrainingError, load_model
    from .models.checkpoint import refuse_non_finite
    from .text import sample_many

    model, vocab, _ = load_model(args.checkpoint)
    refuse_non_finite(model, args.checkpoint)  # what sample would find at its first step, said in the command's terms
    texts = sample_many(model, vocab, n=args.n, max_len=args.max_len, temperature=args.temperature,
                        top_k=args.top_k, prime=args.prime, seed=args.seed)
    while True:
        try:
            text = next(texts, None)
        except ValueError as error:  # the model's scores overflow (weights finite but huge): said in one line
            raise TrainingError(f"checkpoint {args.checkpoint}: {error}") from None
        if text is None:
            return 0
        print(text)  # outside the try: a terminal that cannot print a character is not the checkpoint's fault


def run_eval(args: argparse.Namespace) -> int:
    from .models import evaluate_file
    from .models.trainer import file_sha256, readable

    loss, ppl, state = evaluate_file(args.checkpoint, args.data, encoding=args.encoding)
    print(f"{args.data}: loss {readable(loss, 4)} per token, perplexity {readable(ppl, 3)} ({state['model']['cell']}, "
          f"epoch {state['epoch']})")
    if state.get("data_sha256") and state["data_sha256"] == file_sha256(args.data):
        held = state["config"].get("val_fraction", 0.0)
        print(f"note: this is the file the run trained on; all but the {held:.0%} it held out was training text, so this "
              "loss flatters the model: the run's own validation loss is the held-out part's (in state.json's history)")
    return 0


def _loss(model, fused: bool):
    """The model's loss, built gate by gate unless the fused path is asked for."""
    import contextlib

    from .modes import transparent

    with contextlib.nullcontext() if fused else transparent():
        return model.loss()


def run_graph(args: argparse.Namespace) -> int:
    from .viz import demo, has_dot, render
    from .viz.render import output_format

    try:
        format = output_format(args.out)
    except ValueError:
        raise UsageError(f"--out {args.out}: end the file's name in .svg, .png or .pdf, the format to write") from None
    if format == "pdf" and not has_dot():  # SVG and PNG render with pip alone
        raise UsageError(
            f"--out {args.out}: {format.upper()} needs Graphviz's dot program, which is not on PATH; install Graphviz "
            "(Debian/Ubuntu: sudo apt-get install graphviz; macOS: brew install graphviz; conda: conda install -c conda-forge "
            f"graphviz), or write SVG, which needs no Graphviz: --out {Path(args.out).with_suffix('.svg')}"
        )
    model = demo.small_model(args.cell, args.steps, args.layers, args.bidirectional, hidden_size=args.hidden, seed=args.seed)
    loss = _loss(model, args.fused)
    if args.grads:
        for a in model.parameters().values():
            a.grad = None
        loss.backward(retain_graph=True)
    path = render(loss, Path(args.out), format=format, params=model.parameters(),
                  collapse_cells=args.collapse, show_values=args.values, show_grads=args.grads, rankdir=args.rankdir,
                  show_slices=args.slices)
    print(f"wrote {path}: {args.cell}, {args.steps} steps, {args.layers} layer(s){', bidirectional' if args.bidirectional else ''}")
    return 0


def run_bptt(args: argparse.Namespace) -> int:
    import numpy as np

    from .viz import backward_steps, demo

    model = demo.small_model(args.cell, args.steps, args.layers, args.bidirectional, hidden_size=args.hidden, seed=args.seed)
    params = model.parameters()
    loss = _loss(model, args.fused)
    if args.html:
        from .viz.explore import page_path

        try:
            page_path(args.html)  # explore's own check, before the frames below are drawn
        except ValueError as error:
            raise UsageError(f"--html {args.html}: {error}, or --out FOLDER for SVG frames") from None
    folder = Path(args.out) if args.out is not None else (None if args.html else Path("bptt"))
    if folder is not None and folder.exists() and not folder.is_dir():
        raise UsageError(f"--out {folder} is a file: bptt writes one SVG per step into a folder; name a folder "
                         "(new or existing), or use --html PATH for one page")
    if folder is not None and not folder.exists() and folder.suffix.lower() in (".svg", ".png", ".pdf", ".html"):
        instead = (f"--html {folder} for the explorer page" if folder.suffix.lower() == ".html" else
                   f"--html PATH for one page, or `tinygrad-seq graph --out {folder}` for one picture")
        raise UsageError(f"--out {folder}: bptt writes one SVG per step into a folder, and {folder.name} names a file; name "
                         f"a folder (--out {folder.with_suffix('')}), or use {instead}")
    if args.html:  # the explorer runs backward itself: print the steps from a second, identical graph
        from .viz import explore

        page = explore(loss, args.html, params=params, collapse=args.collapse,
                       title=f"BPTT: {args.cell}, {args.steps} time steps")
        loss = _loss(model, args.fused)
        for p in params.values():
            p.grad = None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    where = f" (frames in {folder}/)" if folder is not None else ""
    print(f"L = {loss.item():.4f}; backpropagation through time, one node at a time{where}:")
    last = None
    for step in backward_steps(loss, params=params):
        print(step.describe())
        if folder is not None:
            step.render(folder / f"step_{step.index + 1:03d}.svg", collapse_cells=args.collapse)
        last = step
    if args.html:
        print(f"explorer: {page.path} (open it in a browser; {page.path.name}#step=N opens step N)")
    print(f"{last.total} steps. Gradients of the shared weights, summed over the {args.steps} time steps:")
    graph = last.graph  # the pictures' labels: rnn.weight_hh_l0 · W_aa
    labels = {name: name if (key := graph.key_of(p)) is None else graph.parameter_label(key) for name, p in params.items()}
    width = max(len(label) for label in labels.values())
    for name, p in params.items():
        print(f"  {labels[name]:<{width}}  |∇| = {np.linalg.norm(p.backend.to_host(p.grad)):.4f}")
    return 0


def run_check_course(args: argparse.Namespace) -> int:
    from .course import CourseImportError, check

    try:
        report = check(Path(args.file))
    except CourseImportError as error:
        raise UsageError(str(error)) from None
    print(report)
    return 0 if report.ok else 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command in ``argv``; bad input prints one line on stderr and returns (or exits with) status 2."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.command is None:  # checked here, not by argparse's required=True, which hides an unknown option behind it
        parser.error(f"the following arguments are required: COMMAND, one of {', '.join(parser.commands.choices)}")
    args.argv = argv
    from .backend import BackendError, get_backend, set_backend
    from .nn.cells import unknown_cell
    from .models import TrainingError
    from .storage import CheckpointError
    from .text import UnknownTokensWarning

    failures: tuple[type[Exception], ...] = (TrainingError, BackendError, UsageError, CheckpointError)
    notes: tuple[type[Warning], ...] = (UnknownTokensWarning,)
    if args.command in ("graph", "bptt"):  # the commands that draw (viz is not imported for the others)
        from .viz.draw import CollapsedWarning
        from .viz.images import DotCrashedWarning, RenderError, ScaledDownWarning

        failures += (RenderError,)
        notes += (CollapsedWarning, DotCrashedWarning, ScaledDownWarning)

    show = warnings.showwarning
    noted: set[str] = set()

    def note(message, category, *where) -> None:  # the library's notes on the input: one line each, each once
        if not issubclass(category, notes):
            show(message, category, *where)
        elif str(message) not in noted:  # a bptt's frames, each drawn collapsed, make one note
            noted.add(str(message))
            print(f"note: {message}", file=sys.stderr)

    try:
        with warnings.catch_warnings():
            for category in notes:
                warnings.simplefilter("always", category)
            warnings.showwarning = note
            _import_modules(getattr(args, "imports", []))
            if getattr(args, "backend", None):
                set_backend(args.backend)
            else:
                get_backend()  # a bad TINYGRAD_SEQ_BACKEND is reported here (the import left it to the command)
            if args.command in ("graph", "bptt", "train") and not getattr(args, "resume", False):
                if args.cell not in settings.cell_registry:
                    raise TrainingError(unknown_cell(args.cell, "or --import a module that registers yours", "--cell"))
            commands = {"graph": run_graph, "bptt": run_bptt, "train": run_train, "sample": run_sample, "eval": run_eval,
                        "check-course": run_check_course}
            return _flushed(commands[args.command](args))
    except KeyboardInterrupt:  # a second Ctrl-C: training stopped at once, between saves or inside one
        where = f"; the last checkpoint in {args.out} is intact" if args.command == "train" else ""
        print(f"tinygrad-seq {args.command}: interrupted{where}", file=sys.stderr)
        return _flushed(130)
    except BrokenPipeError:  # the reader went away (`| head`): it has what it wanted; stop quietly, as `cat` does
        _silence_stdout()
        return CLOSED_PIPE_STATUS
    except (*failures, OSError, MemoryError) as error:
        line = one_line(error) if isinstance(error, failures) else error_line(error, MEMORY_HINTS.get(args.command))
        if line is None:
            raise  # an OSError that names no path and is no full disk: a bug to see whole
        print(f"tinygrad-seq {args.command}: error: {line}", file=sys.stderr)
        return _flushed(2)


MEMORY_HINTS = {
    "train": "train a smaller model or batch (--hidden, --embed, --layers, --batch-size, --seq-len)",
    "sample": "ask for fewer or shorter samples (-n, --max-len)",
    "eval": "evaluate a smaller file",
    "graph": "draw fewer or smaller steps (--steps, --hidden)",
    "bptt": "draw fewer or smaller steps (--steps, --hidden)",
}


def error_line(error: OSError | MemoryError, memory_hint: str | None = None) -> str | None:
    """The one line a command prints for ``error`` when it says what to fix: an OSError naming a path or a full
    (or read-only) disk, or memory running out (with ``memory_hint``, what to ask for instead). None for any
    other OSError, which is a bug to see whole."""
    if isinstance(error, MemoryError):
        what = one_line(error) or "an allocation failed"
        return f"out of memory: {what}; {memory_hint or 'ask for less work at once'}"
    if error.filename is not None or error.errno in FULL_OR_READ_ONLY:
        return one_line(error)
    return None


def _flushed(status: int) -> int:
    """``status`` once what the command printed is flushed, here rather than at the interpreter's exit, where a
    closed pipe would turn any status into 120. A reader gone by then: a command that succeeded ends as the
    closed pipe ends a program (CLOSED_PIPE_STATUS), one that failed keeps its status."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        _silence_stdout()
        return CLOSED_PIPE_STATUS if status == 0 else status
    return status


FULL_OR_READ_ONLY = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
"""OSErrors that say what to fix (free space, write elsewhere) without naming a file: one line, as a bad path's."""

CLOSED_PIPE_STATUS = 141
"""The exit status of a command whose reader closed the pipe: a shell's for a program SIGPIPE stopped (128 + 13)."""


def _silence_stdout() -> None:
    """Point stdout at the null device, or Python's own flush at exit hits the closed pipe again (status 120)."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):  # a stdout without a file descriptor (one a caller captures): no flush to fail
        pass


if __name__ == "__main__":
    raise SystemExit(main())
