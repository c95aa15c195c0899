"""What every demo shares: its command-line options, its error handling, and a small training loop for the classifiers.

Each demo runs on the CPU in seconds to about a minute and a half with its
defaults (README.md's table gives each one's time), takes ``--backend cupy``,
has a ``--smoke`` mode the test suite runs (autograd_tour.py, a few ops and no
training, has no need of one), prints what it shows, and writes its figures to
the folder ``--out`` names (min_char_rnn.py and autograd_tour.py write none,
and have no ``--out``). Each one ends with
``common.run(main)``: bad input (CuPy asked for without a GPU, PNG without
Graphviz, data it cannot read) prints one line, ``demo.py: error: ...``, on
stderr and exits with status 2, as the ``tinygrad-seq`` command does. Import
this module before tinygrad_seq, so that a bad ``TINYGRAD_SEQ_BACKEND`` (which
fails the package's import) gets that one line too.
"""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn


def _exit_with(line: str) -> NoReturn:
    """Print ``demo.py: error: LINE`` on stderr and exit with status 2."""
    print(f"{Path(sys.argv[0]).name}: error: {line}", file=sys.stderr)
    raise SystemExit(2)


try:
    import tinygrad_seq as ts
except RuntimeError as error:
    # A bad TINYGRAD_SEQ_BACKEND fails the import with tinygrad_seq's BackendError, which cannot be
    # imported by name while the package itself failed to import; nor can cli.one_line, so it is spelled here.
    if type(error).__name__ != "BackendError":
        raise
    _exit_with(" ".join(str(error).split()))

from tinygrad_seq import optim
from tinygrad_seq.backend import BACKEND_NAMES, BackendError
from tinygrad_seq.cli import ArgumentParser, error_line, integer, one_line  # noqa: F401  the demos use common.integer
from tinygrad_seq.models import TrainingError
from tinygrad_seq.storage import CheckpointError
from tinygrad_seq.viz import GraphvizNotFound


def fail(error: BaseException | str) -> NoReturn:
    """Print ``demo.py: error: ...`` on stderr, one line, and exit with status 2."""
    _exit_with(one_line(error))


ERRORS = (BackendError, TrainingError, CheckpointError, GraphvizNotFound)  # the library's errors about the input and the machine

DATA = Path(__file__).resolve().parent / "data"


def run(main: Callable[[], Any]) -> None:
    """Run a demo's ``main`` as a command: the library's errors about the input become one line and exit status 2."""
    try:
        main()
    except ERRORS as error:
        fail(error)
    except (OSError, MemoryError) as error:  # a path the demo cannot use, a full disk, memory running out
        line = error_line(error, "give the demo a smaller size")
        if line is None:
            raise
        fail(line)


def arguments(description: str, out: str | None) -> argparse.ArgumentParser:
    """The options every demo takes (--out only for a demo that writes files: ``out``, its default folder); add
    your own to the parser it returns (errors are one line, as in tinygrad-seq)."""
    parser = ArgumentParser(description=description)
    add_backend_option(parser)
    parser.add_argument("--smoke", action="store_true", help="a tiny run, for the tests")
    if out is not None:
        parser.add_argument("--out", default=out, help=f"folder for what the demo writes: figures, and a checkpoint or "
                                                        f"report where it makes one (default ./{out})")
    return parser


def add_backend_option(parser: argparse.ArgumentParser) -> None:
    """--backend, defaulting to $TINYGRAD_SEQ_BACKEND (read when tinygrad_seq was imported), else numpy."""
    parser.add_argument("--backend", choices=BACKEND_NAMES, default=None,
                        help="numpy (CPU) or cupy (GPU); default: $TINYGRAD_SEQ_BACKEND, else numpy")


def use_backend_option(args: argparse.Namespace) -> None:
    """Make --backend the current backend when it was given (else the one TINYGRAD_SEQ_BACKEND chose stays)."""
    if args.backend is not None:
        ts.set_backend(args.backend)


def start(args: argparse.Namespace) -> Path | None:
    """Apply --backend, keep freed memory for the next step (a demo owns its process) and seed everything;
    returns the output folder, created (None for a demo without --out)."""
    use_backend_option(args)
    if getattr(args, "smoke", False):
        print("--smoke: a tiny run that checks the demo works, at sizes of its own (options that set sizes are not used); "
              "its numbers show nothing yet (run it without --smoke for the demo's result)")
    ts.keep_freed_memory()  # the main demo faults 36,000 times instead of 190,000 (docs/performance.md, "Alone or alternating")
    ts.manual_seed(0)
    if getattr(args, "out", None) is None:
        return None
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        fail(f"--out {out}: cannot make this folder ({error.strerror}); name a folder you can write to")
    return out


def chunks(items: Sequence[Any], size: int, rng: Any = None) -> Iterator[list[Any]]:
    """``items`` in lists of ``size`` (the last may be shorter), in the order a NumPy Generator ``rng`` shuffles them
    when given: one epoch's batches, before each demo encodes them its own way."""
    order = rng.permutation(len(items)) if rng is not None else range(len(items))
    for start in range(0, len(items), size):
        yield [items[i] for i in order[start : start + size]]


def fit(model: ts.nn.Module, batches: Callable[[int], Iterable[tuple]], loss_of: Callable[..., ts.Tensor],
        epochs: int, lr: float = 1e-2, clip: float = 5.0, progress: bool = True, label: str = "",
        print_every: int = 1) -> list[float]:
    """Adam with gradient clipping over ``batches(epoch)``; ``loss_of(model, *batch)`` gives the loss. Returns each epoch's
    mean loss. ``label`` names the model in the progress lines, for a demo that trains several; ``print_every``
    prints every so many epochs' loss (and the last), for a long run."""
    prefix = f"{label}, " if label else ""
    from tqdm.auto import tqdm

    opt = optim.Adam(model.parameters(), lr=lr)
    history = []
    for epoch in range(epochs):
        total, count = 0.0, 0
        # disable=None: a bar on a terminal only, not thousands of them in a log file
        bar = tqdm(list(batches(epoch)), desc=f"{prefix}epoch {epoch + 1}/{epochs}", disable=None if progress else True, leave=False)
        for batch in bar:
            loss = loss_of(model, *batch)
            opt.zero_grad()
            loss.backward()
            if clip:
                optim.clip_grad_norm_(model.parameters(), clip)
            opt.step()
            total, count = total + loss.item(), count + 1
        history.append(total / max(count, 1))
        if progress and ((epoch + 1) % print_every == 0 or epoch + 1 == epochs):
            print(f"{prefix}epoch {epoch + 1}: loss {history[-1]:.4f}")
    return history


def decode_until_eos(written, vocab) -> list[str]:
    """Texts from greedy decoding: ``written`` (steps, B) token ids, each column cut at its first <eos>."""
    import numpy as np

    from tinygrad_seq.text import EOS_ID

    texts = []
    for column in np.asarray(written).T:
        stop = np.flatnonzero(column == EOS_ID)
        texts.append(vocab.decode(column[: stop[0]] if len(stop) else column))
    return texts


def report_exact_match(inputs: list, outputs: list[str], expected: list[str], what: str, width: int = 28) -> float:
    """Print the exact-match accuracy and a few examples, the wrong ones first; returns the accuracy."""
    right = [o == e for o, e in zip(outputs, expected)]
    accuracy = sum(right) / len(right)
    wrong = [i for i, ok in enumerate(right) if not ok][:4]
    shown = wrong + [i for i, ok in enumerate(right) if ok][:4]
    examples = ("some it got wrong, then some it got right" if wrong and len(shown) > len(wrong)
                else "some it got wrong" if wrong else "some of them")
    print(f"\nexact match on {len(right)} held-out {what}: {accuracy:.1%}; {examples}:")
    for i in shown:
        print(f"  {str(inputs[i])!r:>{width}} -> {outputs[i]!r}" + ("" if right[i] else f"   (should be {expected[i]!r})"))
    return accuracy


def plot_curves(curves: dict[str, list[float]], path: Path, ylabel: str, title: str, xlabel: str = "epoch",
                log: bool = False) -> Path:
    """A line per curve against the epoch (or what ``xlabel`` names), on a log scale with ``log``, saved to ``path``
    (skipped, with a note, without matplotlib)."""
    try:
        import matplotlib
    except ImportError:
        print(f"(no figure {path.name}: pip install -e '.[plot]' for matplotlib)")
        return path

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 3.5))
    for label, values in curves.items():
        axes.plot(range(1, len(values) + 1), values, marker="o", markersize=3, label=label)
    axes.set_xlabel(xlabel)
    if log:
        axes.set_yscale("log")
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
