"""Training a language model: data, the loop, checkpoints that survive Ctrl-C, exact resumption.

Used by ``tinygrad-seq train`` and the main demo. A checkpoint is a directory:

    model.npz        the model's state dict (read with allow_pickle=False)
    optimizer.npz    the optimizer's arrays; its scalars are in state.json
    vocab.json       the vocabulary
    state.json       format, version, config, data position, random state, history

It is written to a temporary directory and renamed over the previous one, so
an interrupted save never destroys the last checkpoint. The first Ctrl-C
finishes the current step, saves and stops; a second one stops at once (the
last checkpoint stays as it was).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import tempfile
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, optim, settings
from ..backend import manual_seed
from ..nn import functional as F
from ..tensor import Tensor
from ..text import (
    UnknownTokens, UnknownTokensWarning, Vocabulary, language_model_batches, perplexity, stream_chunks, stream_perplexity,
)
from .language_model import LanguageModel

FORMAT = 1
OPTIMIZERS = {"adam": optim.Adam, "sgd": optim.SGD, "rmsprop": optim.RMSprop, "adagrad": optim.Adagrad}


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
    max_chars: int | None = None  # read only the first max_chars characters of the data
    seed: int = 0
    encoding: str = "utf-8"  # the data file's text encoding; undecodable bytes are an error, never replaced
    max_batch_gb: float = 1.0  # lines layout: refuse data whose padded batches would need more memory than this


@dataclass
class Corpus:
    vocab: Vocabulary
    train: Any  # lines: list of id lists; stream: one id array
    valid: Any
    unknown: UnknownTokens | None = None  # with a given vocabulary: the tokens of the text it does not know


def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """The text of the file ``path``; a folder, a missing file or bytes that are not ``encoding`` are a TrainingError."""
    path = Path(path)
    if path.is_dir():
        raise TrainingError(f"data {path} is a folder; pass --data with a text file")
    if not path.is_file():
        raise TrainingError(f"data file {path} not found; pass --data with a text file")
    raw = path.read_bytes()
    try:
        return raw.decode(encoding)
    except LookupError:
        raise TrainingError(f"unknown text encoding {encoding!r}; use one Python knows (utf-8, latin-1, cp1252, ...)") from None
    except UnicodeDecodeError as error:
        line = raw.count(b"\n", 0, error.start) + 1
        raise TrainingError(
            f"data file {path} is not valid {encoding}: byte {raw[error.start]:#04x} at offset {error.start} (line {line}) "
            f"{error.reason}; pass the file's encoding, e.g. --encoding latin-1 or --encoding cp1252"
        ) from None


def load_corpus(config: TrainConfig, vocab: Vocabulary | None = None) -> Corpus:
    """Read ``config.data`` and split it; builds the vocabulary from the training part unless one is given."""
    path = Path(config.data)
    text = read_text(path, config.encoding)[: config.max_chars or None]
    if not text.strip():
        raise TrainingError(f"data file {path} is empty")
    given = vocab
    if config.layout == "lines":
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        rng = np.random.default_rng(config.seed)
        lines = [lines[i] for i in rng.permutation(len(lines))]
        n_valid = int(len(lines) * config.val_fraction)
        train_lines, valid_lines = lines[n_valid:], lines[:n_valid]
        vocab = vocab or Vocabulary.from_text(train_lines, config.level, config.min_freq, config.max_vocab, config.lower)
        encode = [vocab.encode(line, bos=True, eos=True) for line in train_lines], [vocab.encode(line, bos=True, eos=True) for line in valid_lines]
        return Corpus(vocab, *encode, unknown=given.unknown(lines) if given else None)
    if config.layout != "stream":
        raise TrainingError(f"layout must be 'lines' or 'stream'; got {config.layout!r}")
    cut = int(len(text) * (1 - config.val_fraction))
    vocab = vocab or Vocabulary.from_text(text[:cut], config.level, config.min_freq, config.max_vocab, config.lower)
    return Corpus(vocab, np.array(vocab.encode(text[:cut])), np.array(vocab.encode(text[cut:])),
                  unknown=given.unknown(text) if given else None)


def batch_memory(steps: int, batch: int, vocab_size: int, embed_dim: int, hidden: int, layers: int) -> float:
    """Bytes one training step of a LanguageModel on a (steps, batch) batch of ids takes, roughly.

    Per position, in float32 numbers: the logits (T, B, V) with their softmax
    and gradient (3 V), the gates and states each layer saves for backward (16 H
    for an LSTM; a GRU or an RNN takes less), the embeddings (3 E). Measured with
    tracemalloc on NumPy (it over-estimates a little).
    """
    return 4.0 * steps * batch * (3 * vocab_size + 16 * layers * hidden + 3 * embed_dim)


def check_batch_memory(sequences: Sequence[Sequence[int]], batch_size: int, vocab_size: int, embed_dim: int,
                       hidden: int, layers: int, limit_gb: float, data: Any) -> None:
    """Refuse (TrainingError) lines so long that a padded batch of them would need more than ``limit_gb``.

    A batch of the lines layout is padded to its longest line, so one line of
    300,000 characters makes every sequence of its batch 300,000 steps long.
    """
    if not sequences:
        return
    steps = max(len(s) for s in sequences) - 1  # a batch's inputs are every id but the last
    batch = min(batch_size, len(sequences))
    need = batch_memory(steps, batch, vocab_size, embed_dim, hidden, layers)
    if need > limit_gb * 1e9:
        raise TrainingError(
            f"the longest line of {data} is {steps:,} tokens long, and a batch of the lines layout is padded to its longest "
            f"line: {batch} x {steps:,} steps would need about {need / 1e9:,.1f} GB (the limit is {limit_gb:g} GB, "
            "TrainConfig.max_batch_gb); train on long text with --layout stream (truncated BPTT in chunks of --seq-len), "
            "or split the line, or use a smaller --batch-size"
        )


def _detach(state: Any) -> Any:
    if isinstance(state, Tensor):
        return state.detach()
    return type(state)(_detach(s) for s in state)


def _flatten(state: Any, prefix: str, out: dict[str, np.ndarray]) -> None:
    if isinstance(state, Tensor):
        out[prefix] = state.numpy()
    else:
        for i, part in enumerate(state):
            _flatten(part, f"{prefix}/{i}", out)


class Trainer:
    """A model, its optimizer, the data and the position in it; ``run`` trains, ``save``/``load`` checkpoint."""

    def __init__(self, config: TrainConfig, corpus: Corpus | None = None) -> None:
        self.config = config
        self.corpus = corpus or load_corpus(config)
        if config.cell not in settings.cell_registry:
            raise TrainingError(f"unknown cell {config.cell!r}; registered cells: {', '.join(sorted(settings.cell_registry))} (--import a module to add yours)")
        if config.optimizer not in OPTIMIZERS:
            raise TrainingError(f"unknown optimizer {config.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        self._check_data_fits()
        manual_seed(config.seed)
        self.model = LanguageModel(len(self.corpus.vocab), config.embed_dim, config.cell, config.hidden, config.layers, config.dropout)
        self.optimizer = OPTIMIZERS[config.optimizer](self.model.parameters(), lr=config.lr)
        self.epoch, self.batch = 0, 0  # the next batch to train on
        self.carry: Any = None  # the detached state carried between stream chunks
        self.history: list[dict[str, float]] = []
        self.stop_requested = False

    # ---- data

    def _check_data_fits(self) -> None:
        """Stream text must fill one token per stream; lines must not pad batches beyond ``config.max_batch_gb``."""
        config, corpus = self.config, self.corpus
        if config.layout == "stream":
            if len(corpus.train) < config.batch_size + 1:
                raise TrainingError(
                    f"the stream layout reads the text as --batch-size {config.batch_size} parallel streams and needs at least "
                    f"{config.batch_size + 1} tokens to train on (one per stream, and one more to predict); the training part "
                    f"of {config.data} ({1 - config.val_fraction:.0%} of it) has {len(corpus.train)}: "
                    "use more text or a smaller --batch-size"
                )
            return
        sizes = len(corpus.vocab), config.embed_dim, config.hidden, config.layers, config.max_batch_gb, config.data
        check_batch_memory(corpus.train, config.batch_size, *sizes)
        check_batch_memory(corpus.valid, 64, *sizes)  # held_out_loss: perplexity's batches of 64, no gradients

    def batches(self, epoch: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """The epoch's batches in order: shuffled lines (the order depends only on seed and epoch), or stream chunks."""
        config = self.config
        if config.layout == "lines":
            rng = np.random.default_rng([config.seed, epoch])
            return list(language_model_batches(self.corpus.train, config.batch_size, rng))
        return [(x, y, None) for x, y in stream_chunks(self.corpus.train, config.batch_size, config.seq_len)]

    # ---- training

    def train_step(self, inputs: np.ndarray, targets: np.ndarray, lengths: np.ndarray | None) -> float:
        logits, state = self.model(inputs, self.carry, lengths)
        loss = F.cross_entropy(logits, targets)
        self.optimizer.zero_grad()
        loss.backward()
        if self.config.clip:
            optim.clip_grad_norm_(self.model.parameters(), self.config.clip)
        self.optimizer.step()
        if self.config.layout == "stream":
            self.carry = _detach(state)  # truncated BPTT: keep the values, cut the graph
        return loss.item()

    def validate(self) -> tuple[float, float]:
        return held_out_loss(self.model, self.corpus.valid, self.config)

    def run(self, out: str | os.PathLike | None = None, progress: bool = True, on_epoch_end: Any = None) -> bool:
        """Train until ``config.epochs``; checkpoint to ``out`` every epoch and on Ctrl-C. Returns False if stopped early."""
        from tqdm.auto import tqdm

        previous = None
        try:
            previous = signal.signal(signal.SIGINT, self._request_stop)
        except ValueError:  # not the main thread: Ctrl-C then simply raises
            previous = None
        try:
            while self.epoch < self.config.epochs:
                batches = self.batches(self.epoch)
                if self.batch == 0:
                    self.carry = None
                bar = tqdm(total=len(batches), initial=self.batch, desc=f"epoch {self.epoch + 1}/{self.config.epochs}",
                           disable=not progress, leave=True)
                running = None
                while self.batch < len(batches):
                    loss = self.train_step(*batches[self.batch])
                    running = loss if running is None else 0.95 * running + 0.05 * loss
                    self.batch += 1
                    bar.update(1)
                    bar.set_postfix(loss=f"{running:.3f}")
                    if self.stop_requested:
                        bar.close()
                        if out is not None:
                            self.save(out)
                        return False
                bar.close()
                valid_loss, valid_ppl = self.validate()
                self.history.append({"epoch": self.epoch + 1, "train_loss": running, "valid_loss": valid_loss, "valid_perplexity": valid_ppl})
                self.epoch, self.batch = self.epoch + 1, 0
                if progress:
                    tqdm.write(f"epoch {self.epoch}: train loss {running:.3f}, validation loss {valid_loss:.3f}, perplexity {valid_ppl:.2f}")
                if out is not None:
                    self.save(out)
                if on_epoch_end is not None:
                    on_epoch_end(self)
            return True
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def _request_stop(self, signum: int, frame: Any) -> None:
        if self.stop_requested:  # the second Ctrl-C: stop now; the last checkpoint is intact
            raise KeyboardInterrupt
        self.stop_requested = True

    # ---- checkpoints

    def save(self, out: str | os.PathLike) -> Path:
        """Write the checkpoint directory ``out`` (atomically: a temporary directory renamed over the old one)."""
        out = Path(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        temporary = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
        try:
            self.model.save(temporary / "model.npz")
            arrays, scalars = self._optimizer_state()
            with open(temporary / "optimizer.npz", "wb") as file:
                np.savez(file, **arrays)
            carry: dict[str, np.ndarray] = {}
            if self.carry is not None:
                _flatten(self.carry, "carry", carry)
            with open(temporary / "carry.npz", "wb") as file:
                np.savez(file, **carry)
            self.corpus.vocab.save(temporary / "vocab.json")
            state = {
                "format": FORMAT, "version": __version__, "config": asdict(self.config),
                "model": self.model.config, "epoch": self.epoch, "batch": self.batch,
                "optimizer": scalars, "rng": settings.host_rng.bit_generator.state, "history": self.history,
            }
            (temporary / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(temporary, 0o777 & ~mask)  # mkdtemp makes it private
            old = out.with_name(f".{out.name}.old")
            if out.exists():
                os.replace(out, old)
            os.replace(temporary, out)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        return out

    def _optimizer_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        state = self.optimizer.state_dict()
        arrays, scalars = {}, {"param_groups": state["param_groups"], "state": {}}
        for index, values in state["state"].items():
            for key, value in values.items():
                if isinstance(value, np.ndarray):
                    arrays[f"{index}/{key}"] = value
                else:
                    scalars["state"].setdefault(str(index), {})[key] = value
        return arrays, scalars

    @classmethod
    def load(cls, checkpoint: str | os.PathLike, data: str | None = None) -> Trainer:
        """Rebuild a trainer from a checkpoint directory, exactly where it stopped."""
        state, vocab = read_checkpoint(checkpoint)
        config = TrainConfig(**state["config"])
        if data is not None:
            config.data = data
        trainer = cls(config, load_corpus(config, vocab))
        trainer.model.load(Path(checkpoint) / "model.npz")
        with np.load(Path(checkpoint) / "optimizer.npz", allow_pickle=False) as archive:
            per_param: dict[int, dict[str, Any]] = {}
            for key in archive.files:
                index, name = key.split("/", 1)
                per_param.setdefault(int(index), {})[name] = archive[key]
        for index, values in state["optimizer"]["state"].items():
            per_param.setdefault(int(index), {}).update(values)
        groups = state["optimizer"]["param_groups"]
        for group in groups:
            if "betas" in group:
                group["betas"] = tuple(group["betas"])
        trainer.optimizer.load_state_dict({"state": per_param, "param_groups": groups})
        with np.load(Path(checkpoint) / "carry.npz", allow_pickle=False) as archive:
            if archive.files:
                trainer.carry = _unflatten({k: archive[k] for k in archive.files}, trainer.model)
        trainer.epoch, trainer.batch, trainer.history = state["epoch"], state["batch"], state["history"]
        settings.host_rng.bit_generator.state = state["rng"]
        return trainer


def _unflatten(arrays: dict[str, np.ndarray], model: LanguageModel) -> list[Any]:
    layers = []
    for index, layer in enumerate(model.rnn.layers):
        parts = tuple(Tensor(arrays[f"carry/{index}/{k}"] if f"carry/{index}/{k}" in arrays else arrays[f"carry/{index}"])
                      for k in range(len(layer.cell.state_names)))
        layers.append(layer.cell.from_parts(parts))
    return layers


def read_checkpoint(checkpoint: str | os.PathLike) -> tuple[dict[str, Any], Vocabulary]:
    """The checkpoint's state.json and vocabulary, with clear errors for a missing, foreign or mismatched one."""
    folder = Path(checkpoint)
    if not (folder / "state.json").is_file():
        raise TrainingError(f"{folder} is not a checkpoint directory (no state.json); pass the --out folder of a train run")
    state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
    if state.get("format") != FORMAT:
        raise TrainingError(
            f"checkpoint {folder} has format {state.get('format')} (written by tinygrad-seq {state.get('version')}); "
            f"this version ({__version__}) reads format {FORMAT}. Retrain, or use the version that wrote it"
        )
    vocab = Vocabulary.load(folder / "vocab.json")
    if state["model"]["vocab_size"] != len(vocab):
        raise TrainingError(
            f"checkpoint {folder}: its model has {state['model']['vocab_size']} tokens but its vocab.json has {len(vocab)}; "
            "the files come from different runs"
        )
    return state, vocab


def load_model(checkpoint: str | os.PathLike) -> tuple[LanguageModel, Vocabulary, dict[str, Any]]:
    """The trained model and its vocabulary, for sampling and evaluation."""
    state, vocab = read_checkpoint(checkpoint)
    model = LanguageModel.from_config(state["model"])
    model.load(Path(checkpoint) / "model.npz")
    return model, vocab, state


def held_out_loss(model: LanguageModel, data: Any, config: TrainConfig) -> tuple[float, float]:
    """(loss per token, perplexity) on held-out data of the run's layout: sequences, or one stream."""
    if config.layout == "lines":
        return perplexity(model, data) if data else (math.nan, math.nan)
    return stream_perplexity(model, data, config.seq_len, config.batch_size)


def evaluate_file(checkpoint: str | os.PathLike, data: str, encoding: str | None = None) -> tuple[float, float, dict[str, Any]]:
    """(loss per token, perplexity, the checkpoint's state) of a checkpoint's model on a whole text file.

    ``encoding`` is the file's (default: the training data's). Tokens the
    vocabulary does not know count as <unk>, with an UnknownTokensWarning.
    """
    model, vocab, state = load_model(checkpoint)
    config = TrainConfig(**{**state["config"], "data": data, "val_fraction": 0.0})
    config.encoding = encoding or config.encoding
    corpus = load_corpus(config, vocab)
    if corpus.unknown.count:
        warnings.warn(f"{data}: {corpus.unknown}", UnknownTokensWarning, stacklevel=2)
    if config.layout == "lines":
        sizes = state["model"]
        check_batch_memory(corpus.train, 64, len(vocab), sizes["embed_dim"], sizes["hidden_size"], sizes["num_layers"],
                           config.max_batch_gb, data)
    loss, ppl = held_out_loss(model, corpus.train, config)
    return loss, ppl, state


__all__ = [
    "Corpus", "TrainConfig", "Trainer", "TrainingError", "batch_memory", "check_batch_memory", "evaluate_file", "load_corpus",
    "load_model", "read_checkpoint", "read_text",
]
