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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, optim, settings
from ..backend import manual_seed
from ..nn import functional as F
from ..tensor import Tensor
from ..text import Vocabulary, language_model_batches, perplexity, stream_chunks, stream_perplexity
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


@dataclass
class Corpus:
    vocab: Vocabulary
    train: Any  # lines: list of id lists; stream: one id array
    valid: Any


def load_corpus(config: TrainConfig, vocab: Vocabulary | None = None) -> Corpus:
    """Read ``config.data`` and split it; builds the vocabulary from the training part unless one is given."""
    path = Path(config.data)
    if not path.is_file():
        raise TrainingError(f"data file {path} not found; pass --data with a text file")
    text = path.read_text(encoding="utf-8", errors="replace")[: config.max_chars or None]
    if not text.strip():
        raise TrainingError(f"data file {path} is empty")
    if config.layout == "lines":
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        rng = np.random.default_rng(config.seed)
        lines = [lines[i] for i in rng.permutation(len(lines))]
        n_valid = int(len(lines) * config.val_fraction)
        train_lines, valid_lines = lines[n_valid:], lines[:n_valid]
        vocab = vocab or Vocabulary.from_text(train_lines, config.level, config.min_freq, config.max_vocab, config.lower)
        encode = [vocab.encode(line, bos=True, eos=True) for line in train_lines], [vocab.encode(line, bos=True, eos=True) for line in valid_lines]
        return Corpus(vocab, *encode)
    if config.layout != "stream":
        raise TrainingError(f"layout must be 'lines' or 'stream'; got {config.layout!r}")
    cut = int(len(text) * (1 - config.val_fraction))
    vocab = vocab or Vocabulary.from_text(text[:cut], config.level, config.min_freq, config.max_vocab, config.lower)
    return Corpus(vocab, np.array(vocab.encode(text[:cut])), np.array(vocab.encode(text[cut:])))


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
        manual_seed(config.seed)
        self.model = LanguageModel(len(self.corpus.vocab), config.embed_dim, config.cell, config.hidden, config.layers, config.dropout)
        self.optimizer = OPTIMIZERS[config.optimizer](self.model.parameters(), lr=config.lr)
        self.epoch, self.batch = 0, 0  # the next batch to train on
        self.carry: Any = None  # the detached state carried between stream chunks
        self.history: list[dict[str, float]] = []
        self.stop_requested = False

    # ---- data

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


def evaluate_file(checkpoint: str | os.PathLike, data: str) -> tuple[float, float, dict[str, Any]]:
    """(loss per token, perplexity, the checkpoint's state) of a checkpoint's model on a whole text file."""
    model, vocab, state = load_model(checkpoint)
    config = TrainConfig(**{**state["config"], "data": data, "val_fraction": 0.0})
    loss, ppl = held_out_loss(model, load_corpus(config, vocab).train, config)
    return loss, ppl, state


__all__ = ["Corpus", "TrainConfig", "Trainer", "TrainingError", "evaluate_file", "load_corpus", "load_model", "read_checkpoint"]
