"""Reading a training checkpoint: verified files, a state and a vocabulary that belong to the weights.

A checkpoint folder (written by ``Trainer.save`` through ``tinygrad_seq.storage``):

    manifest.json    size and SHA-256 of every other file (format 2)
    model.npz        the model's state dict (read with allow_pickle=False)
    optimizer.npz    the optimizer's arrays; its scalars are in state.json
    carry.npz        the state carried between stream chunks
    vocab.json       the vocabulary
    state.json       format, version, run id, config, data position, random state, history

:func:`open_checkpoint` verifies the manifest, parses every file and checks
that they fit together before anything is built: a damaged, foreign or
mismatched file is a :class:`CheckpointError` with one line naming it. Format-1
checkpoints (written before manifests) are read too; their next save writes
format 2.
"""
from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import zipfile
import zlib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from ..checks import is_int
from ..storage import CheckpointError, read_checkpoint_files
from ..text import Vocabulary
from .config import MAX_LAYERS, MAX_VOCAB, MAX_WIDTH, TrainConfig, TrainingError
from .language_model import LanguageModel

REQUIRED_FILES = ("model.npz", "optimizer.npz", "vocab.json", "state.json")
# Bounds on a config's sizes, checked before anything is allocated (a damaged config must not ask for terabytes)
MAX_SIZES = {"vocab_size": MAX_VOCAB, "embed_dim": MAX_WIDTH, "hidden_size": MAX_WIDTH, "num_layers": MAX_LAYERS}


def vocabulary_fingerprint(vocab: Vocabulary) -> str:
    """SHA-256 of the vocabulary's tokens and settings: ties a vocabulary to the weights trained with it."""
    return hashlib.sha256(json.dumps(vocab.to_dict(), sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


@dataclass
class Checkpoint:
    """A verified checkpoint: its folder, format, state.json, vocabulary and the raw bytes of every file."""

    folder: Path
    format: int
    state: dict[str, Any]
    vocab: Vocabulary
    files: dict[str, bytes]

    def fail(self, name: str, problem: str) -> CheckpointError:
        return CheckpointError(f"checkpoint {self.folder}: {name} {problem}")

    def arrays(self, name: str) -> dict[str, np.ndarray]:
        """The arrays of the .npz file ``name`` (allow_pickle=False), or an error naming the file when it cannot be
        read; {} when the checkpoint holds no file of that name."""
        if name not in self.files:
            return {}
        try:
            with np.load(io.BytesIO(self.files[name]), allow_pickle=False) as archive:
                return {key: archive[key] for key in archive.files}
        except (ValueError, OSError, EOFError, KeyError, zipfile.BadZipFile, zlib.error) as error:
            raise self.fail(name, f"cannot be read ({type(error).__name__}: {str(error)[:80]}); "
                                  "restore it from a backup or retrain") from None

    def config(self, **changes: Any) -> TrainConfig:
        """The run's TrainConfig (with ``changes``), or an error naming state.json when its values are unusable."""
        try:
            return TrainConfig(**{**self.state["config"], **changes})
        except (TrainingError, TypeError) as error:
            raise self.fail("state.json", f"has an unusable config ({error}); restore it from a backup or retrain") from None

    def weights(self) -> dict[str, np.ndarray]:
        """model.npz's arrays, after checking that state.json's model config describes them (nothing built yet)."""
        weights = self.arrays("model.npz")
        problem = _config_problem(self.state["model"], weights)
        if problem:
            raise self.fail("state.json", f"does not match model.npz: {problem}; the files come from different runs")
        # The run's config builds the model a resumed run trains, the model config the one sample and eval build
        model = self.state["model"]
        said = self.config().model_config(model["vocab_size"])
        differ = [f"{key} {model[key]!r} in the model, {value!r} in the run's config" for key, value in said.items()
                  if key in model and model[key] != value]
        if differ:
            raise self.fail("state.json", f"describes two models ({'; '.join(differ)}); restore it from a backup or retrain")
        return weights

    def load_weights(self, model: LanguageModel, weights: dict[str, np.ndarray] | None = None) -> LanguageModel:
        """Load the checked weights into ``model`` (one built from this checkpoint's config) and return it."""
        weights = self.weights() if weights is None else weights  # its own error names state.json: not wrapped below
        try:
            model.load_state_dict(weights)
        except (KeyError, ValueError) as error:
            raise self.fail("model.npz", f"does not fit the model of state.json: {error.args[0]}") from None
        return model

    def model(self) -> LanguageModel:
        """The language model, built from the config after checking it against the weights' shapes."""
        weights = self.weights()  # sizes checked before anything is allocated
        # A cell that is not registered: one line saying to --import it.
        return self.load_weights(LanguageModel.from_config(self.state["model"]), weights)


def non_finite_parameter(model: Any) -> str | None:
    """The name of the first parameter of ``model`` holding NaN or inf (a run that diverged), or None."""
    return next((name for name, p in model.named_parameters() if not bool(p.backend.xp.isfinite(p.data).all())), None)


def refuse_non_finite(model: Any, checkpoint: str | os.PathLike) -> None:
    """Raise the one line for a checkpoint whose weights are NaN or inf (a run that diverged), which sampling or
    scoring would otherwise meet as NaN scores."""
    broken = non_finite_parameter(model)
    if broken is not None:
        raise TrainingError(f"checkpoint {checkpoint} holds weights that are NaN or inf ({broken}): the run that saved "
                            "it diverged; train again with a lower --lr, or with --clip")


def _config_problem(config: Any, weights: dict[str, np.ndarray]) -> str | None:
    """Why the model config cannot describe these weights (sizes checked before anything is allocated)."""
    if not isinstance(config, dict):
        return "its model config is not an object"
    for key, largest in MAX_SIZES.items():
        if not is_int(config.get(key)) or not 1 <= config[key] <= largest:
            return f"model config {key}={config.get(key)!r} is not a size (1 to {largest:,})"
    if not isinstance(config.get("cell"), str):
        return f"model config cell={config.get('cell')!r} is not a cell name"
    dropout = config.get("dropout", 0.0)
    if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        return f"model config dropout={dropout!r} is not in [0, 1)"
    unknown = set(config) - {"vocab_size", "embed_dim", "cell", "hidden_size", "num_layers", "dropout"}
    if unknown:
        return f"model config has unknown keys {sorted(unknown)}"
    expected = {"embedding.weight": (config["vocab_size"], config["embed_dim"]),
                "head.weight": (config["vocab_size"], config["hidden_size"])}
    for key, shape in expected.items():
        if key not in weights:
            return f"model.npz has no {key}"
        if tuple(weights[key].shape) != shape:
            return f"its config gives {key} the shape {shape}, model.npz holds {tuple(weights[key].shape)}"
    layers = {int(m.group(1)) for key in weights if (m := re.match(r"rnn\.layers\.(\d+)\.", key))}
    if layers != set(range(config["num_layers"])):
        return f"its config has num_layers={config['num_layers']}, model.npz holds {len(layers)} layer(s)"
    hidden = config["hidden_size"]
    for layer in sorted(layers):
        # The largest arrays the model will build, (gates·H, H) each: the file must hold at least H × H numbers of
        # each, so that what the model allocates stays in proportion to what was read. A wrong gate count is
        # load_state_dict's to report.
        key = f"rnn.layers.{layer}.cell.weight_hh"
        if key not in weights:  # a cell of yours may name its weights otherwise: load_state_dict checks them
            continue
        shape = tuple(weights[key].shape)
        if len(shape) != 2 or shape[1] != hidden or shape[0] < hidden:
            return f"its config has hidden_size={hidden}, model.npz holds {key} of shape {shape} (wanted (gates × {hidden}, {hidden}))"
    return None


def _parse_json(folder: Path, files: dict[str, bytes], name: str) -> Any:
    try:
        return json.loads(files[name].decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as error:
        raise CheckpointError(f"checkpoint {folder}: {name} is not valid JSON ({str(error)[:60]}); "
                              "restore it from a backup or retrain") from None


def _state_problem(state: Any, checkpoint_format: int) -> str | None:
    if not isinstance(state, dict):
        return "is not an object"
    kinds = {"config": dict, "model": dict, "epoch": int, "batch": int, "optimizer": dict, "rng": dict, "history": list}
    for key, kind in kinds.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            return f"has no valid {key!r} ({kind.__name__} expected)"
    if state["epoch"] < 0 or state["batch"] < 0:
        return f"has a negative position (epoch {state['epoch']}, batch {state['batch']})"
    running = state.get("running_loss")
    if running is not None and (isinstance(running, bool) or not isinstance(running, (int, float)) or not math.isfinite(running)):
        return f"has a running_loss of {running!r}, not a finite number (or null)"
    unknown = set(state["config"]) - {f.name for f in fields(TrainConfig)}
    if unknown:
        return f"has unknown config keys {sorted(unknown)}"
    if "data" not in state["config"]:
        return "has no data file in its config"
    if state.get("format") != checkpoint_format:
        return f"says format {state.get('format')!r} but the folder is format {checkpoint_format}"
    return None


def open_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Verify and parse the checkpoint ``path`` (see the module docstring); nothing is built yet."""
    folder, files, checkpoint_format = read_checkpoint_files(path)
    for name in REQUIRED_FILES:
        if name not in files:
            raise CheckpointError(f"checkpoint {folder}: {name} is missing; restore it from a backup or retrain")
    state = _parse_json(folder, files, "state.json")
    problem = _state_problem(state, checkpoint_format)
    if problem:
        raise CheckpointError(f"checkpoint {folder}: state.json {problem}; restore it from a backup or retrain")
    try:
        vocab = Vocabulary.from_dict(_parse_json(folder, files, "vocab.json"))
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise CheckpointError(f"checkpoint {folder}: vocab.json is not a vocabulary ({type(error).__name__}: "
                              f"{str(error)[:60]}); restore it from a backup or retrain") from None
    if state["model"].get("vocab_size") != len(vocab):
        raise CheckpointError(
            f"checkpoint {folder}: its model has {state['model'].get('vocab_size')} tokens but its vocab.json has "
            f"{len(vocab)}; the files come from different runs"
        )
    fingerprint = state.get("vocab_sha256")
    if fingerprint is not None and fingerprint != vocabulary_fingerprint(vocab):
        raise CheckpointError(f"checkpoint {folder}: vocab.json does not belong to model.npz (same size, other tokens "
                              "than the model was trained with); the files come from different runs")
    opened = Checkpoint(folder, checkpoint_format, state, vocab, files)
    opened.config()  # its values are checked as the command line checks them
    return opened


def load_model(checkpoint: str | os.PathLike) -> tuple[LanguageModel, Vocabulary, dict[str, Any]]:
    """The trained model, its vocabulary and state.json, for sampling and evaluation (verified first)."""
    opened = open_checkpoint(checkpoint)
    model = opened.model()
    model.vocabulary = opened.vocab  # sampling with another vocabulary is refused
    return model, opened.vocab, opened.state


__all__ = ["Checkpoint", "load_model", "open_checkpoint", "refuse_non_finite", "vocabulary_fingerprint"]
