"""A training run's settings (:class:`TrainConfig`, saved in every checkpoint) and :class:`TrainingError`.

The model, the checkpoint reader and the trainer all build on this module.
"""
from __future__ import annotations

import codecs
import math
from dataclasses import dataclass
from typing import Any

from ..checks import is_int, is_real
from ..text.vocab import LEVELS

LAYOUTS = ("lines", "stream")  # how a run reads its text: see TrainConfig.is_stream
OPTIMIZER_NAMES = ("adam", "sgd", "rmsprop", "adagrad")  # trainer.OPTIMIZERS gives each its class
MAX_WIDTH, MAX_LAYERS, MAX_VOCAB = 1 << 16, 1 << 10, 1 << 24
"""The most units an embedding or a layer may have, the most layers, the largest vocabulary. A checkpoint's
config is held to them before anything is allocated (a damaged one must not ask for terabytes), so a run is
held to them too: what it saves must load."""
COUNTS = (("embed_dim", 1, MAX_WIDTH), ("hidden", 1, MAX_WIDTH), ("layers", 1, MAX_LAYERS), ("seq_len", 1, None),
          ("batch_size", 1, None), ("epochs", 1, None), ("min_freq", 1, None), ("seed", 0, None))
"""TrainConfig's integer fields, each with its least value and its largest (None: no bound)."""


def _within(value: object, low: int, high: int | None) -> bool:
    """An integer (not a bool) from ``low`` to ``high`` (None: no bound)."""
    return is_int(value) and value >= low and (high is None or value <= high)


def batch_limit_problem(max_batch_gb: object) -> str | None:
    """What is wrong with ``max_batch_gb`` as a memory limit in GB, or None (a number > 0; inf checks nothing)."""
    if is_real(max_batch_gb) and max_batch_gb > 0:  # NaN fails too
        return None
    return f"max_batch_gb={max_batch_gb!r} (must be > 0; inf checks nothing)"


def _is_encoding(name: object) -> bool:
    try:
        codecs.lookup(name)  # type: ignore[arg-type]
    except (LookupError, TypeError):
        return False
    return True


class TrainingError(RuntimeError):
    """Bad input to training, sampling or evaluation: the message is one line that says what to fix."""


@dataclass
class TrainConfig:
    """Everything a run depends on (saved in the checkpoint; --resume reuses it)."""

    data: str
    level: str = "char"
    layout: str = "lines"  # "lines": one sequence per line; "stream": one long text, truncated BPTT
    cell: str = "lstm"
    embed_dim: int = 32
    hidden: int = 64
    layers: int = 1
    dropout: float = 0.0
    seq_len: int = 64
    batch_size: int = 32
    epochs: int = 1
    lr: float = 1e-2
    optimizer: str = "adam"
    clip: float = 5.0
    val_fraction: float = 0.1
    lower: bool = False
    min_freq: int = 1
    max_vocab: int | None = None  # rarer tokens become <unk>
    max_chars: int | None = None  # read only the first max_chars characters of the data (None or 0: all of it)
    seed: int = 0
    encoding: str = "utf-8"  # the data file's text encoding; undecodable bytes are an error, never replaced
    max_batch_gb: float = 1.0  # lines layout: refuse data whose padded batches would need more memory than this

    def __post_init__(self) -> None:
        """The ranges and choices the command line checks, checked for Python users and loaded checkpoints too.
        The cell is checked when the run starts (Trainer), since a cell of yours registers itself after import."""
        problems = [f"{name}={getattr(self, name)!r} (must be an integer " + (f">= {low})" if high is None else f"from {low} to {high:,})")
                    for name, low, high in COUNTS if not _within(getattr(self, name), low, high)]
        if not (is_real(self.lr) and math.isfinite(self.lr) and self.lr > 0):
            problems.append(f"lr={self.lr!r} (must be finite and > 0)")
        if self.clip is not None and not (is_real(self.clip) and math.isfinite(self.clip) and self.clip >= 0):
            problems.append(f"clip={self.clip!r} (must be > 0, or None or 0 for no clipping)")
        if not (is_real(self.dropout) and 0 <= self.dropout < 1):
            problems.append(f"dropout={self.dropout!r} (must be in [0, 1))")
        if not (is_real(self.val_fraction) and 0 <= self.val_fraction < 1):
            problems.append(f"val_fraction={self.val_fraction!r} (must be in [0, 1))")
        for name, choices in (("layout", LAYOUTS), ("level", LEVELS), ("optimizer", OPTIMIZER_NAMES)):
            if getattr(self, name) not in choices:
                problems.append(f"{name}={getattr(self, name)!r} (must be one of {', '.join(map(repr, choices))})")
        if not isinstance(self.lower, bool):
            problems.append(f"lower={self.lower!r} (must be True or False)")
        if not _is_encoding(self.encoding):
            problems.append(f"encoding={self.encoding!r} (must be the name of a text encoding Python knows, such as 'utf-8')")
        if self.max_vocab is not None and not _within(self.max_vocab, 5, None):  # a cap: the vocabulary itself is bounded when built
            problems.append(f"max_vocab={self.max_vocab!r} (must be >= 5: the 4 special tokens and one more)")
        if self.max_chars is not None and not _within(self.max_chars, 0, None):  # a negative one cut the end off instead
            problems.append(f"max_chars={self.max_chars!r} (must be an integer >= 0: the characters read from the start; "
                            "None or 0 for all)")
        if limit_problem := batch_limit_problem(self.max_batch_gb):
            problems.append(limit_problem)
        if problems:
            raise TrainingError(f"TrainConfig: {'; '.join(problems)}")
        for name, _, _ in COUNTS:
            setattr(self, name, int(getattr(self, name)))  # a NumPy int counts, and is saved in JSON as Python's

    def model_config(self, vocab_size: int) -> dict[str, Any]:
        """The language model this run trains, as ``LanguageModel(**...)`` takes it and its ``config`` gives it back."""
        return dict(vocab_size=vocab_size, embed_dim=self.embed_dim, cell=self.cell, hidden_size=self.hidden,
                    num_layers=self.layers, dropout=self.dropout)

    @property
    def is_stream(self) -> bool:
        """The layout, read in this one place (its value is checked when the config is made): True for "stream".

        "lines": one sequence per line, padded into batches with their lengths;
        held-out lines are scored by ``perplexity``. "stream": one long text read
        as ``batch_size`` parallel streams in chunks of ``seq_len``, the detached
        state carried from chunk to chunk (truncated BPTT); held-out text is scored
        by ``stream_perplexity``.
        """
        return self.layout == "stream"
