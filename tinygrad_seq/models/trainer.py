"""Training a language model: data, the loop, checkpoints that survive Ctrl-C and crashes, exact resumption.

Used by ``tinygrad-seq train`` and the main demo. A checkpoint is a folder
(its files are listed in ``models.checkpoint``) written through
``tinygrad_seq.storage``: complete, fsynced, swapped in atomically, covered
by a manifest of sizes and SHA-256, and written by one process at a time.
A save replaces only a checkpoint of the same run, unless ``overwrite`` is
given, and never anything that is not a checkpoint. The first Ctrl-C
finishes the current step, saves and stops; a second one stops at once (the
last checkpoint stays as it was).
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import signal
import uuid
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__, optim, settings
from ..backend import manual_seed
from ..storage import (
    FORMAT, CheckpointError, WriterLock, check_destination, existing_checkpoint, is_checkpoint, save_checkpoint,
    write_npz,
)
from .. import nn
from ..nn import functional as F
from ..nn.cells import unknown_cell
from ..progress import progress_bar
from ..tensor import Tensor
from ..text import (
    UNK_ID, UnknownTokens, UnknownTokensWarning, Vocabulary, language_model_batches, perplexity, stream_chunks, stream_perplexity,
)
from .checkpoint import Checkpoint, load_model, non_finite_parameter, open_checkpoint, refuse_non_finite, vocabulary_fingerprint
from .config import LAYOUTS, MAX_VOCAB, OPTIMIZER_NAMES, TrainConfig, TrainingError, batch_limit_problem  # noqa: F401  LAYOUTS: still importable from here
from .data_file import decoded as _decoded
from .language_model import LanguageModel

OPTIMIZERS = dict(zip(OPTIMIZER_NAMES, (optim.Adam, optim.SGD, optim.RMSprop, optim.Adagrad)))
@dataclass
class Corpus:
    vocab: Vocabulary
    train: Any  # lines: list of id lists; stream: one id array
    valid: Any
    unknown: UnknownTokens | None = None  # with a given vocabulary: the tokens of the text it does not know
    data_sha256: str | None = None  # of the bytes the text was read from: what a checkpoint records

    def held_out_unknown_share(self) -> float | None:
        """The part of the held-out tokens a model predicts (each line's after its <bos>, or the stream's after its
        first) that are <unk>: a validation loss that counts predicting <unk> as right reads better the larger it
        is. None when nothing is held out."""
        predicted = [np.asarray(line[1:]) for line in self.valid] if isinstance(self.valid, list) else [np.asarray(self.valid[1:])]
        total = sum(ids.size for ids in predicted)
        return sum(int((ids == UNK_ID).sum()) for ids in predicted) / total if total else None


def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
    """The text of the file ``path``; a folder, a missing file or bytes that are not ``encoding`` are a TrainingError."""
    return _decoded(_data_bytes(path), path, encoding)


def _data_bytes(path: str | os.PathLike) -> bytes:
    path = Path(path)
    if path.is_dir():
        raise TrainingError(f"data {path} is a folder; pass --data with a text file")
    if not path.is_file():
        raise TrainingError(f"data file {path} not found; pass --data with a text file")
    return path.read_bytes()


def load_corpus(config: TrainConfig, vocab: Vocabulary | None = None) -> Corpus:
    """Read ``config.data`` and split it; builds the vocabulary from the training part unless one is given."""
    path = Path(config.data)
    raw = _data_bytes(path)
    digest = hashlib.sha256(raw).hexdigest()
    text = _decoded(raw, path, config.encoding)[: config.max_chars or None]
    if not text.strip():
        raise TrainingError(f"data file {path} is empty" + ("" if not text else " but for spaces and newlines")
                            + "; give a file that holds the text to learn from")
    given = vocab
    if not config.is_stream:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        rng = np.random.default_rng(config.seed)
        lines = [lines[i] for i in rng.permutation(len(lines))]
        n_valid = int(len(lines) * config.val_fraction)
        train_lines, valid_lines = lines[n_valid:], lines[:n_valid]
        vocab = vocab or Vocabulary.from_text(train_lines, config.level, config.min_freq, config.max_vocab, config.lower)
        encode = [vocab.encode(line, bos=True, eos=True) for line in train_lines], [vocab.encode(line, bos=True, eos=True) for line in valid_lines]
        return _checked(Corpus(vocab, *encode, unknown=given.unknown(lines) if given else None, data_sha256=digest), path)
    cut = int(len(text) * (1 - config.val_fraction))
    vocab = vocab or Vocabulary.from_text(text[:cut], config.level, config.min_freq, config.max_vocab, config.lower)
    return _checked(Corpus(vocab, np.array(vocab.encode(text[:cut])), np.array(vocab.encode(text[cut:])),
                           unknown=given.unknown(text) if given else None, data_sha256=digest), path)


def _checked(corpus: Corpus, path: Path) -> Corpus:
    """The corpus, unless its vocabulary is larger than a checkpoint may hold (what a run saves must load)."""
    if len(corpus.vocab) > MAX_VOCAB:
        raise TrainingError(f"data file {path} has {len(corpus.vocab):,} distinct tokens, more than the {MAX_VOCAB:,} a "
                            f"model may have; keep the most frequent with --max-vocab (or TrainConfig(max_vocab=...))")
    return corpus


def batch_memory(steps: int, batch: int, vocab_size: int, embed_dim: int, hidden: int, layers: int) -> float:
    """Bytes one training step of a LanguageModel on a (steps, batch) batch of ids takes, roughly.

    Per position, in float32 numbers: the logits (T, B, V) with their softmax
    and gradient (3 V), the gates and states each layer saves for backward (16 H
    for an LSTM; a GRU or an RNN takes less), the embeddings (3 E). Measured with
    tracemalloc on NumPy (it over-estimates a little).
    """
    return 4.0 * steps * batch * (3 * vocab_size + 16 * layers * hidden + 3 * embed_dim)


FEW_TOKENS = 10_000
"""A vocabulary this size keeps a word-level model's logits small: what the memory check suggests for --max-vocab."""


def check_batch_memory(sequences: Sequence[Sequence[int]], batch_size: int, vocab_size: int, embed_dim: int,
                       hidden: int, layers: int, limit_gb: float, data: Any, part: str = "",
                       batch_option: bool = True, command: str = "train") -> None:
    """Refuse (TrainingError) a padded batch that would need more than ``limit_gb``, naming what is too large: the
    model (a model of the default size would fit), the vocabulary (FEW_TOKENS would fit), both, or else the
    lines; then the fix ``command`` can act on. "train" changes the model, the vocabulary, the layout or the
    batch; "eval" reads a checkpoint, whose model and vocabulary are fixed: the file's lines can change, or the
    limit, from Python (``evaluate_file``'s ``max_batch_gb``).
    ``part`` names the lines ("held-out "); ``batch_option``: whether a smaller --batch-size is a fix to offer
    (the held-out batches are sized to fit, down to one line).

    A batch of the lines layout is padded to its longest line, so one line of
    300,000 characters makes every sequence of its batch 300,000 steps long.
    """
    if not sequences:
        return
    steps = max(len(s) for s in sequences) - 1  # a batch's inputs are every id but the last
    batch = min(batch_size, len(sequences))
    need = batch_memory(steps, batch, vocab_size, embed_dim, hidden, layers)
    if need <= limit_gb * 1e9:
        return

    def fits(vocabulary: int, embed: int, width: int, depth: int) -> bool:
        return batch_memory(steps, batch, vocabulary, embed, width, depth) <= limit_gb * 1e9

    default_model, few = (TrainConfig.embed_dim, TrainConfig.hidden, TrainConfig.layers), min(vocab_size, FEW_TOKENS)
    if fits(vocab_size, *default_model):  # the lines would fit a model of the default size
        cause = "model"
    elif fits(few, embed_dim, hidden, layers):  # the logits over the vocabulary are what is large
        cause = "vocabulary"
    else:
        cause = "both" if fits(few, *default_model) else "lines"
    limit = f"would need about {need / 1e9:,.1f} GB (the limit is {limit_gb:g} GB, TrainConfig.max_batch_gb)"
    batch_of = f"a batch of {batch} x {steps:,} steps (the longest {part}line of {data})"
    model = f"a model this large (embed {embed_dim:,}, hidden {hidden:,}, {layers:,} layer{'s' if layers > 1 else ''})"
    too_large = {
        "model": f"{batch_of} of {model} {limit}",
        "vocabulary": f"{batch_of} of a vocabulary of {vocab_size:,} tokens {limit}: its logits alone are "
                      f"{batch} x {steps:,} x {vocab_size:,} numbers",
        "both": f"{batch_of} of {model} and a vocabulary of {vocab_size:,} tokens {limit}",
        "lines": f"the longest {part}line of {data} is {steps:,} tokens long, and a batch of the lines layout is padded "
                 f"to its longest line: {batch} x {steps:,} steps {limit}",
    }[cause]
    fixes = {"train": _train_fix(cause, batch > 1 and batch_option), "eval": _eval_fix(cause, data)}
    raise TrainingError(f"{too_large}; {fixes[command]}")


def _train_fix(cause: str, smaller_batch: bool) -> str:
    """What ``train`` can change when ``cause`` ("model", "vocabulary", "both" or "lines") is too large."""
    if cause == "lines":
        return ("train on long text with --layout stream (truncated BPTT in chunks of --seq-len), or split the line"
                + (", or use a smaller --batch-size" if smaller_batch else ""))
    fix = {"model": "train a smaller model (--hidden, --layers, --embed)",
           "vocabulary": f"keep the frequent tokens with --max-vocab {FEW_TOKENS}",
           "both": f"train a smaller model (--hidden, --layers, --embed) with --max-vocab {FEW_TOKENS}"}[cause]
    return fix + (" or a smaller --batch-size" if smaller_batch else "")


def _eval_fix(cause: str, data: Any) -> str:
    """What ``eval`` can change when ``cause`` is too large: it scores each line whole, one at a time at the least,
    with the checkpoint's model and vocabulary and its limit. The command changes none of them, so only shorter
    lines help there; ``evaluate_file(..., max_batch_gb=...)`` raises the limit."""
    raise_limit = ("tinygrad_seq.models.evaluate_file(checkpoint, data, max_batch_gb=...) in Python, on a machine that "
                   "has the memory")
    if cause == "lines":
        return (f"eval scores each line whole, and takes no other limit: split the long lines of {data} into shorter "
                f"ones (or raise the limit with {raise_limit})")
    what = {"model": "model is", "vocabulary": "vocabulary is", "both": "model and vocabulary are"}[cause]
    return (f"the checkpoint's {what} too large to score a batch of one line within the limit, and eval cannot change "
            f"them or the limit: evaluate with a raised limit, {raise_limit}")


def held_out_batch_size(sequences: Sequence[Sequence[int]], model: LanguageModel, limit_gb: float) -> int:
    """Lines per batch to score ``sequences`` with: 64, or fewer where 64 padded to the longest would pass the
    limit (one at least: check_batch_memory refuses a line too long to score alone)."""
    if not sequences:
        return 64
    sizes = model.config
    one_line = batch_memory(max(len(s) for s in sequences) - 1, 1, sizes["vocab_size"], sizes["embed_dim"],
                            sizes["hidden_size"], sizes["num_layers"])
    return int(max(1, min(64, limit_gb * 1e9 // one_line)))


def _flatten(state: Any, prefix: str, out: dict[str, np.ndarray]) -> None:
    if isinstance(state, Tensor):
        out[prefix] = state.numpy()
    else:
        for i, part in enumerate(state):
            _flatten(part, f"{prefix}/{i}", out)


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes: identifies the training data even after it moved."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Options of a run that may change when it resumes; every other one would change the model or the data.
RESUMABLE_CHANGES = ("epochs", "lr", "clip", "data")


class Trainer:
    """A model, its optimizer, the data and the position in it; ``run`` trains, ``save``/``load`` checkpoint.

    Each trainer has a ``run_id`` (kept by its checkpoints): a save replaces a
    checkpoint of the same run, and one of another run only with
    ``overwrite=True``.
    """

    def __init__(self, config: TrainConfig, corpus: Corpus | None = None) -> None:
        self.corpus = corpus or load_corpus(config)
        # The run's own copy, its data path absolute (a moved working directory still finds it): the caller's stays as given
        self.config = config = replace(config, data=str(Path(config.data).resolve()))
        if config.cell not in settings.cell_registry:
            raise TrainingError(unknown_cell(config.cell, "--import a module to add yours"))
        self._check_data_fits()
        manual_seed(config.seed)
        self.model = LanguageModel(**config.model_config(len(self.corpus.vocab)))
        self.model.vocabulary = self.corpus.vocab  # sampling it with another vocabulary is refused
        self.optimizer = OPTIMIZERS[config.optimizer](self.model.parameters(), lr=config.lr)
        self.epoch, self.batch = 0, 0  # the next batch to train on
        self.carry: Any = None  # the detached state carried between stream chunks
        self.running_loss: float | None = None  # the epoch's running train loss so far (resumed with the rest)
        self.history: list[dict[str, float]] = []
        self.stop_requested = False
        self.notes: list[str] = []  # what loading a checkpoint changed (the data file moved), for the user
        self.run_id = uuid.uuid4().hex
        self.data_sha256 = self.corpus.data_sha256  # of the bytes trained on (a corpus built by hand: at the first save)
        self._locks: dict[Path, WriterLock] = {}
        self._owned: set[Path] = set()  # folders of this run that have no run id (format 1)

    # ---- data

    def _check_data_fits(self) -> None:
        """Stream text must fill one token per stream; lines must not pad batches beyond ``config.max_batch_gb``."""
        config, corpus = self.config, self.corpus
        if config.is_stream:
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
        check_batch_memory(corpus.valid, 1, *sizes, part="held-out ", batch_option=False)  # held_out_batch_size fits the rest

    def batches(self, epoch: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray | None]]:
        """The epoch's batches in order: shuffled lines (the order depends only on seed and epoch), or stream chunks."""
        config = self.config
        if not config.is_stream:
            rng = np.random.default_rng([config.seed, epoch])
            return list(language_model_batches(self.corpus.train, config.batch_size, rng))
        return [(x, y, None) for x, y in stream_chunks(self.corpus.train, config.batch_size, config.seq_len)]

    # ---- training

    def seed_device_stream(self) -> None:
        """On a device backend, seed its generator for the next batch from (seed, epoch, batch).

        Dropout draws from the device's generator there, whose state a
        checkpoint cannot hold; re-deriving it per batch makes a resumed run
        draw exactly what the uninterrupted one drew. On NumPy the host
        generator draws, and the checkpoint stores its state.
        """
        backend = self.model.embedding.weight.backend
        if backend.name != "numpy":
            seed = np.random.SeedSequence([self.config.seed, self.epoch, self.batch]).generate_state(1)[0]
            backend.xp.random.seed(int(seed))

    def train_step(self, inputs: np.ndarray, targets: np.ndarray, lengths: np.ndarray | None) -> float:
        logits, state = self.model(inputs, self.carry, lengths)
        loss = F.cross_entropy(logits, targets)
        self.optimizer.zero_grad()
        loss.backward()
        if self.config.clip:
            optim.clip_grad_norm_(self.model.parameters(), self.config.clip)
        self.optimizer.step()
        if self.config.is_stream:
            self.carry = nn.detach_state(state)  # truncated BPTT: keep the values, cut the graph
        return loss.item()

    def validate(self) -> tuple[float, float]:
        """(loss per token, perplexity) on the held-out data; NaN for both when none was held out."""
        return held_out_loss(self.model, self.corpus.valid, self.config)

    def _validation_summary(self, loss: float, perplexity: float) -> str:
        config = self.config
        if has_held_out(self.corpus.valid, config):
            return f"validation loss {loss:.3f}, perplexity {readable(perplexity)}"
        if config.val_fraction == 0:
            return "no validation (val_fraction=0 holds nothing out)"
        return (f"no validation: the held-out part (val_fraction={config.val_fraction:g} of {config.data}) is too small "
                "to score; give more text, or hold out more (--val-fraction, TrainConfig.val_fraction)")

    def run(self, out: str | os.PathLike | None = None, progress: bool = True, on_epoch_end: Any = None,
            overwrite: bool = False) -> bool:
        """Train until ``config.epochs``; checkpoint to ``out`` every epoch and on Ctrl-C. Returns False if stopped early.

        Before the first step, ``out`` is checked (a file or a folder that is
        not a checkpoint is refused; a checkpoint of another run needs
        ``overwrite``; the folder must be writable) and locked against a
        second process writing it.
        """
        from tqdm.auto import tqdm

        lock = None
        if out is not None:
            check_destination(out, owned=self._owns(out), overwrite=overwrite)
            lock = self._lock(out)
            lock.acquire()
            try:  # again, under the lock: another run may have saved there in between
                check_destination(out, owned=self._owns(out), overwrite=overwrite)
            except CheckpointError:
                lock.release()
                raise
        self.stop_requested = False  # a Ctrl-C that stopped an earlier run is spent: this one trains
        previous = None
        try:
            previous = signal.signal(signal.SIGINT, self._request_stop)
        except ValueError:  # not the main thread: Ctrl-C then simply raises
            previous = None
        try:
            while self.epoch < self.config.epochs:
                batches = self.batches(self.epoch)
                if self.batch == 0:
                    self.carry, self.running_loss = None, None
                bar = progress_bar(total=len(batches), initial=self.batch, desc=f"epoch {self.epoch + 1}/{self.config.epochs}",
                                   disable=not progress, leave=True)
                while self.batch < len(batches):
                    self.seed_device_stream()
                    with np.errstate(over="ignore", invalid="ignore"):  # overflow on the way is divergence, found below
                        loss = self.train_step(*batches[self.batch])
                    if not math.isfinite(loss) or loss > DIVERGED_LOSS:
                        bar.close()
                        found = f"the training loss is {loss:.3g}" + (
                            f", above {DIVERGED_LOSS:,.0f} nats per token (a model starts near log V = "
                            f"{math.log(len(self.corpus.vocab)):.1f})" if math.isfinite(loss) else "")
                        raise TrainingError(self._diverged(f"at epoch {self.epoch + 1}, batch {self.batch + 1}: {found}", out))
                    self.running_loss = loss if self.running_loss is None else 0.95 * self.running_loss + 0.05 * loss
                    self.batch += 1
                    bar.set_postfix(loss=f"{self.running_loss:.3f}", refresh=False)  # drawn by update, at its pace
                    bar.update(1)
                    if self.stop_requested:
                        bar.close()
                        if out is not None:
                            self._save(out, overwrite, f"at epoch {self.epoch + 1}, batch {self.batch}")
                        return False
                bar.close()
                valid_loss, valid_ppl = self.validate()
                running = self.running_loss
                self.history.append({"epoch": self.epoch + 1, "train_loss": running, "valid_loss": valid_loss, "valid_perplexity": valid_ppl})
                self.epoch, self.batch = self.epoch + 1, 0
                if progress:
                    tqdm.write(f"epoch {self.epoch}: train loss {running:.3f}, {self._validation_summary(valid_loss, valid_ppl)}")
                if out is not None:
                    self._save(out, overwrite, f"at the end of epoch {self.epoch}")
                if on_epoch_end is not None:
                    on_epoch_end(self)
                if self.stop_requested:  # Ctrl-C while validating or saving: stop at the epoch just saved
                    return self.epoch >= self.config.epochs
            return True
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
            if lock is not None:
                lock.release()

    def _check_weights_finite(self, out: str | os.PathLike, when: str) -> None:
        """Refuse to save weights that are NaN or inf: they would replace the last checkpoint worth keeping."""
        name = non_finite_parameter(self.model)
        if name is not None:
            raise TrainingError(self._diverged(f"{when}: {name} holds NaN or inf", out))

    def _diverged(self, what: str, out: str | os.PathLike | None) -> str:
        """The one line that stops a run gone to NaN: ``what`` (when, and what was found), what was kept, the fix."""
        kept = "" if out is None else (f"; {out} keeps the last checkpoint saved" if existing_checkpoint(out) is not None
                                        else "; nothing was saved")
        clip = f"clip={self.config.clip}" if self.config.clip else "no clipping"
        return (f"training diverged {what}{kept}. Lower the learning rate "
                f"(lr={self.config.lr}) or clip the gradients ({clip} now; --clip 1, or TrainConfig(clip=1.0))")

    def _request_stop(self, signum: int, frame: Any) -> None:
        if self.stop_requested:  # the second Ctrl-C: stop now; the last checkpoint is intact
            raise KeyboardInterrupt
        self.stop_requested = True

    # ---- checkpoints

    def _lock(self, out: str | os.PathLike) -> WriterLock:
        key = Path(out).resolve()
        if key not in self._locks:
            self._locks[key] = WriterLock(key)
        return self._locks[key]

    def _owns(self, out: str | os.PathLike) -> bool:
        """Whether ``out`` holds a checkpoint of this run (which a save may replace)."""
        if Path(out).resolve() in self._owned:
            return True
        folder = existing_checkpoint(out)
        try:
            return folder is not None and json.loads((folder / "state.json").read_text(encoding="utf-8")).get("run_id") == self.run_id
        except (OSError, ValueError, AttributeError):
            return False

    def save(self, out: str | os.PathLike, overwrite: bool = False) -> Path:
        """Write the checkpoint folder ``out`` (see ``tinygrad_seq.storage``: atomic, verified, locked).

        Replaces a checkpoint of this run; one of another run only with
        ``overwrite``; never a file or a folder that is not a checkpoint. Weights
        that are NaN or inf are refused: they would replace the last checkpoint worth keeping.
        """
        return self._save(out, overwrite, "when saved")

    def _save(self, out: str | os.PathLike, overwrite: bool, when: str) -> Path:
        """``save``, its refusal of weights that are NaN or inf saying ``when`` they were found ("at the end of epoch 3")."""
        self._check_weights_finite(out, when)
        check_destination(out, owned=self._owns(out), overwrite=overwrite)
        with self._lock(out) as lock:
            check_destination(out, owned=self._owns(out), overwrite=overwrite)  # again: another run may have just saved
            return save_checkpoint(out, self.checkpoint_files(), lock=lock)

    def checkpoint_files(self) -> dict[str, bytes]:
        """The checkpoint's files (name -> bytes), as ``save`` writes them."""

        def npz(arrays: dict[str, np.ndarray]) -> bytes:
            buffer = io.BytesIO()
            write_npz(buffer, arrays)
            return buffer.getvalue()

        arrays, scalars = self._optimizer_state()
        carry: dict[str, np.ndarray] = {}
        if self.carry is not None:
            _flatten(self.carry, "carry", carry)
        if self.data_sha256 is None and Path(self.config.data).is_file():
            self.data_sha256 = file_sha256(self.config.data)
        state = {
            "format": FORMAT, "version": __version__, "run_id": self.run_id, "config": asdict(self.config),
            "data_sha256": self.data_sha256, "vocab_sha256": vocabulary_fingerprint(self.corpus.vocab),
            "model": self.model.config, "epoch": self.epoch, "batch": self.batch, "running_loss": self.running_loss,
            "optimizer": scalars, "rng": settings.host_rng.bit_generator.state, "history": self.history,
        }
        return {
            "model.npz": npz(self.model.state_dict()),
            "optimizer.npz": npz(arrays),
            "carry.npz": npz(carry),
            "vocab.json": json.dumps(self.corpus.vocab.to_dict(), ensure_ascii=False).encode("utf-8"),
            "state.json": json.dumps(state, indent=1).encode("utf-8"),
        }

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
    def load(cls, checkpoint: str | os.PathLike, data: str | os.PathLike | None = None) -> Trainer:
        """Rebuild a trainer from a checkpoint folder, exactly where it stopped (verified first).

        ``data`` points to the training file when it moved; its SHA-256 must
        match the one the checkpoint recorded.
        """
        opened = open_checkpoint(checkpoint)
        state = opened.state
        config = opened.config()
        recorded = config.data
        config.data = str(_locate_data(opened, data))
        corpus = load_corpus(config, opened.vocab)
        _check_same_data(opened, corpus, data is not None, config.data)  # the bytes just read, not a second read
        trainer = cls(config, corpus)
        if config.data != recorded:
            trainer.notes.append(f"data {recorded} -> {config.data} (same SHA-256)")
        trainer.run_id = state.get("run_id") or trainer.run_id
        trainer.data_sha256 = state.get("data_sha256")
        if state.get("run_id") is None:  # format 1 had no run id: the folder it came from is this run's
            trainer._owned.add(Path(checkpoint).resolve())
        trainer._restore(opened)
        return trainer

    def _restore(self, opened: Checkpoint) -> None:
        state = opened.state
        opened.load_weights(self.model)  # the run's model is built already: no second one
        per_param: dict[int, dict[str, Any]] = {}
        for key, value in opened.arrays("optimizer.npz").items():
            index, _, name = key.partition("/")
            if not index.isdigit() or not name:
                raise opened.fail("optimizer.npz", f"has an array {key!r} that is not 'index/name'")
            per_param.setdefault(int(index), {})[name] = value
        try:
            for index, values in state["optimizer"]["state"].items():
                per_param.setdefault(int(index), {}).update(values)
            groups = state["optimizer"]["param_groups"]
            for group in groups:
                if "betas" in group:
                    group["betas"] = tuple(group["betas"])
            self.optimizer.load_state_dict({"state": per_param, "param_groups": groups})
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
            raise opened.fail("optimizer.npz", f"does not fit the optimizer of state.json ({str(error)[:100]})") from None
        carry = opened.arrays("carry.npz")
        if carry:
            try:
                self.carry = _unflatten(carry, self.model)
            except KeyError as error:
                raise opened.fail("carry.npz", f"lacks the carried state {error}") from None
        self.epoch, self.batch, self.history = state["epoch"], state["batch"], state["history"]
        self.running_loss = state.get("running_loss")
        try:
            settings.host_rng.bit_generator.state = state["rng"]
        except (KeyError, TypeError, ValueError) as error:
            raise opened.fail("state.json", f"has an unusable random state ({str(error)[:60]})") from None

    def apply_changes(self, **changes: Any) -> list[str]:
        """Apply the options a resumed run may change (``RESUMABLE_CHANGES`` but data); returns what changed."""
        for name in changes:
            if name not in RESUMABLE_CHANGES or name == "data":
                raise TrainingError(f"{name} cannot change when a run resumes; only {', '.join(RESUMABLE_CHANGES)} can")
        replace(self.config, **changes)  # the checks a new config gets (TrainConfig.__post_init__), before anything changes
        done = []
        for name, value in changes.items():
            old = getattr(self.config, name)
            if value == old:
                continue
            setattr(self.config, name, value)
            if name == "lr":
                for group in self.optimizer.param_groups:
                    group["lr"] = value
            shown = {None: "off (--no-clip)"} if name == "clip" else {}
            done.append(f"{name} {shown.get(old, old)} -> {shown.get(value, value)}")
        return done


def resume_conflicts(config: TrainConfig, given: dict[str, Any]) -> list[str]:
    """The options in ``given`` (name -> value asked for) that differ from the run's and may not change."""
    names = {f.name for f in fields(TrainConfig)}
    return [f"{name} {value!r} (the checkpoint has {getattr(config, name)!r})"
            for name, value in given.items()
            if name in names and name not in RESUMABLE_CHANGES and value != getattr(config, name)]


def _locate_data(opened: Checkpoint, data: str | os.PathLike | None) -> Path:
    """The training file of a checkpoint: ``data`` if given, else the recorded path (its bytes are checked once read)."""
    path = Path(data).resolve() if data is not None else Path(opened.state["config"]["data"])
    if not path.is_file():
        hint = "; pass --data with its new path" if data is None else ""
        raise TrainingError(f"data file {path} of checkpoint {opened.folder} not found{hint}")
    return path


def _check_same_data(opened: Checkpoint, corpus: Corpus, moved: bool, path: str) -> None:
    """Refuse data whose bytes are not those the checkpoint was trained on (its SHA-256, when it recorded one)."""
    expected = opened.state.get("data_sha256")
    if expected is not None and corpus.data_sha256 != expected:
        which = "is not the file" if moved else "changed since"
        raise TrainingError(f"data file {path} {which} the checkpoint {opened.folder} was trained on (SHA-256 differs); "
                            "resume with the original file, or start a new run")


def _unflatten(arrays: dict[str, np.ndarray], model: LanguageModel) -> list[Any]:
    layers = []
    for index, layer in enumerate(model.rnn.layers):
        parts = tuple(Tensor(arrays[f"carry/{index}/{k}"] if f"carry/{index}/{k}" in arrays else arrays[f"carry/{index}"])
                      for k in range(len(layer.cell.state_names)))
        layers.append(layer.cell.from_parts(parts))
    return layers


def read_checkpoint(checkpoint: str | os.PathLike) -> tuple[dict[str, Any], Vocabulary]:
    """The checkpoint's state.json and vocabulary, verified (see ``models.checkpoint.open_checkpoint``)."""
    opened = open_checkpoint(checkpoint)
    return opened.state, opened.vocab


DIVERGED_LOSS = 1e4
"""A training loss (nats per token) that only a run gone wrong reaches: the right token at probability e^-10,000.
A model starts near log V (4.2 for 65 characters); a learning rate far too large takes it to 1e30 while it is
still finite, and training stops there as it does at NaN."""


def readable(number: float, decimals: int = 2) -> str:
    """A loss or perplexity to print: ``decimals`` decimals, or three digits and an exponent when it is huge (the
    perplexity e^700 has 305 digits)."""
    return f"{number:.{decimals}f}" if number < 1e6 else f"{number:.3g}"


def has_held_out(data: Any, config: TrainConfig) -> bool:
    """Whether ``data`` holds something to score: a line, or two tokens of a stream (one to read, one to predict)."""
    return len(data) >= (2 if config.is_stream else 1)


def held_out_loss(model: LanguageModel, data: Any, config: TrainConfig) -> tuple[float, float]:
    """(loss per token, perplexity) on held-out data of the run's layout: sequences, or one stream."""
    if not has_held_out(data, config):
        return math.nan, math.nan
    if config.is_stream:
        return stream_perplexity(model, data, config.seq_len, config.batch_size)
    return perplexity(model, data, batch_size=held_out_batch_size(data, model, config.max_batch_gb))


def evaluate_file(checkpoint: str | os.PathLike, data: str, encoding: str | None = None,
                  max_batch_gb: float | None = None) -> tuple[float, float, dict[str, Any]]:
    """(loss per token, perplexity, the checkpoint's state) of a checkpoint's model on a whole text file.

    ``encoding`` is the file's (default: the training data's). Tokens the
    vocabulary does not know count as <unk>, with an UnknownTokensWarning.
    ``max_batch_gb`` limits the memory of a padded batch of lines (default:
    the run's ``TrainConfig.max_batch_gb``): raise it to score lines, or a
    model, too large for that limit on a machine that has the memory.
    """
    if max_batch_gb is not None and (problem := batch_limit_problem(max_batch_gb)):  # before the checkpoint's config:
        raise TrainingError(problem)  # it is the caller's value, not the checkpoint's
    opened = open_checkpoint(checkpoint)
    model, vocab, state = opened.model(), opened.vocab, opened.state
    refuse_non_finite(model, checkpoint)  # else the loss would read nan
    config = opened.config(data=data, val_fraction=0.0, max_chars=None)  # the whole file, whatever the run read of its own
    config.encoding = encoding or config.encoding
    config.max_batch_gb = max_batch_gb or config.max_batch_gb  # the batches are sized to it too (held_out_loss)
    corpus = load_corpus(config, vocab)
    if corpus.unknown.count:
        warnings.warn(f"{data}: {corpus.unknown}", UnknownTokensWarning, stacklevel=2)
    if not config.is_stream:  # lines are padded: a long one can make a batch too big
        sizes = state["model"]
        check_batch_memory(corpus.train, 1, len(vocab), sizes["embed_dim"], sizes["hidden_size"], sizes["num_layers"],
                           config.max_batch_gb, data, batch_option=False, command="eval")
    if not has_held_out(corpus.train, config):
        count = len(corpus.train)
        held = f"{count} token{'' if count == 1 else 's'}" if config.is_stream else "no line"
        raise TrainingError(f"{data} holds {held}; eval scores each token from the ones before it, so it needs a line "
                            "or, for a stream checkpoint, at least two tokens")
    loss, ppl = held_out_loss(model, corpus.train, config)
    return loss, ppl, state


__all__ = [
    "CheckpointError", "Corpus", "TrainConfig", "Trainer", "TrainingError", "batch_memory", "check_batch_memory",
    "evaluate_file", "file_sha256", "is_checkpoint", "load_corpus", "load_model", "read_checkpoint", "read_text",
    "resume_conflicts",
]
