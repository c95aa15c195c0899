"""Module and Parameter: the containers that hold a model's weights.

A Module finds its parameters by walking its attributes, including lists,
tuples and dicts of modules and parameters, so no registration call is needed:

>>> import tinygrad_seq as ts
>>> from tinygrad_seq import nn
>>> class TwoLayer(nn.Module):
...     def __init__(self):
...         super().__init__()
...         self.layers = [nn.Linear(3, 4), nn.Linear(4, 2)]
...     def forward(self, x):
...         return self.layers[1](self.layers[0](x).tanh())
>>> [name for name, _ in TwoLayer().named_parameters()]
['layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias']
"""
from __future__ import annotations

import contextlib
import os
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .. import settings
from ..backend import Backend, backend_of, backend_or_dtype
from ..storage import CheckpointError, atomic_write, write_npz
from ..modes import no_grad
from ..tensor import Tensor
from .load_hints import layers_hint, other_cell_hint, prefix_hint, value_shape


class Parameter(Tensor):
    """A leaf Tensor that requires grad and that a Module lists among its parameters.

    Its ``name`` is set to the attribute name when it is assigned to a Module.
    """

    __slots__ = ()

    def __init__(self, data: Any, name: str | None = None) -> None:
        super().__init__(data, requires_grad=True, name=name)

    def __repr__(self) -> str:
        return "Parameter" + super().__repr__()[len("Tensor"):].replace(", requires_grad=True", "")


class StateDictError(KeyError):
    """A state dict that does not fit the model: every missing, unexpected and mis-shaped key, and the fix.

    A KeyError, as before, whose message prints as written (a KeyError's own is quoted like a key)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class IncompatibleKeys(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


_SETTINGS = frozenset({bool, int, float, str, type(None)})  # attribute values _held need not look inside


def _held(module: Module) -> list[tuple[str, Any]]:
    """(dotted name, Module or Parameter) for everything ``module``'s attributes hold, looking inside lists,
    tuples and dicts. A list, not a generator: models are walked every training step (clipping reads
    ``model.parameters()``), and most attributes are settings (ints, flags) with nothing inside."""
    found: list[tuple[str, Any]] = []
    for attribute, value in vars(module).items():
        if type(value) not in _SETTINGS:
            _collect(value, attribute, found)
    return found


def _collect(value: Any, prefix: str, found: list[tuple[str, Any]]) -> None:
    if isinstance(value, (Module, Parameter)):
        found.append((prefix, value))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            _collect(item, f"{prefix}.{i}", found)
    elif isinstance(value, dict):
        for key, item in value.items():
            _collect(item, f"{prefix}.{key}", found)



def _converted(value: Any, param: Tensor) -> tuple[Any, str | None]:
    """(``value`` as an array of ``param``'s dtype and backend, None), or (None, why it cannot be one).

    A value that is not real numbers (strings, complex), or whose finite numbers ``param``'s dtype cannot hold
    (1e300 into float32), is refused rather than loaded as something else."""
    value = value.data if isinstance(value, Tensor) else value
    if not isinstance(value, settings.array_types):  # a list, a number, a torch tensor: read on the host
        try:
            value = np.asarray(value)
        except (TypeError, ValueError, RuntimeError) as error:  # a torch tensor that requires grad: RuntimeError
            kind = type(value).__name__ if type(value).__module__ == "builtins" else f"{type(value).__module__.split('.')[0]}.{type(value).__name__}"
            return None, f"a {kind} that cannot be read as an array ({str(error)[:120]})"
    if value.dtype.kind not in "fiub":
        return None, f"an array of {value.dtype}, not real numbers"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an overflow in the cast: found below
        array = param.backend.array(value, param.dtype, copy=False)  # a device array stays on its device
    if value.dtype.kind == "f" and value.dtype.itemsize > param.dtype.itemsize and not bool(param.backend.xp.isfinite(array).all()):
        if bool(backend_of(value).xp.isfinite(value).all()):
            return None, f"values beyond {param.dtype}'s range (largest magnitude {float(abs(value).max()):.3g})"
    return array, None

def _not_arrays(names: list[str]) -> list[str]:
    """The entries of a zip that are no .npy array: none in an .npz file (as Module.save and np.savez write)."""
    return [name for name in names if not name.endswith(".npy")]


def _is_npz(path: Path) -> bool:
    """Whether ``path`` is an .npz file, which a save may replace: not a zip of anything else, nor a file of another
    kind."""
    try:
        with zipfile.ZipFile(path) as archive:
            return not _not_arrays(archive.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


class Module:
    """Base class of every layer: parameters, state dicts, saving, moving, train/eval.

    Subclasses set attributes in ``__init__`` (call ``super().__init__()``
    first) and define ``forward``; calling the module calls ``forward``.
    """

    _parent_init = "super().__init__()"  # the call a subclass's __init__ must make first, as its error writes it

    def __init__(self) -> None:
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "training" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: cannot set {name!r} before Module.__init__(); call "
                                 f"{self._parent_init} first in your __init__")
        if isinstance(value, Parameter) and value.name is None:
            value.name = name
        object.__setattr__(self, name, value)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    # ---- walking the tree

    def named_children(self) -> Iterator[tuple[str, Module]]:
        """Direct sub-modules with their dotted names ("encoder", "layers.0")."""
        for name, child in _held(self):
            if isinstance(child, Module):
                yield name, child

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module and every module inside it, depth first, each once."""
        for name, module, _ in self._walk(prefix):
            yield name, module

    def _walk(self, prefix: str = "") -> Iterator[tuple[str, Module, list[tuple[str, Any]]]]:
        """named_modules, each with what its attributes hold (``_held``): read once per module, as
        named_parameters needs both."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            held = _held(module)
            yield name, module, held
            named_children = (((child_name, child) for child_name, child in held if isinstance(child, Module))
                              if type(module).named_children is Module.named_children else module.named_children())
            children = [(f"{name}.{child_name}" if name else child_name, child) for child_name, child in named_children]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        for _, module in self.named_modules():
            yield module

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """Every parameter with its dotted path ("layers.0.weight"), each once even if shared."""
        seen: set[int] = set()
        walked = (self._walk() if type(self).named_modules is Module.named_modules  # else honour the override
                  else ((name, module, _held(module)) for name, module in self.named_modules()))
        for module_name, _, held in walked:
            for name, child in held:
                if isinstance(child, Parameter) and id(child) not in seen:
                    seen.add(id(child))
                    yield (f"{module_name}.{name}" if module_name else name), child

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def num_parameters(self) -> int:
        """How many numbers the parameters hold."""
        return sum(p.size for p in self.parameters())

    # ---- gradients and modes

    def zero_grad(self) -> None:
        """Set every parameter's ``.grad`` to None (the next backward starts afresh)."""
        for p in self.parameters():
            p.grad = None

    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout active) for this module and all inside it."""
        for module in self.modules():
            object.__setattr__(module, "training", mode)
        return self

    def eval(self) -> Module:
        """Evaluation mode (dropout off)."""
        return self.train(False)

    # ---- state

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Dotted parameter names -> host NumPy copies of their values."""
        return OrderedDict((name, np.array(p.numpy(), copy=True)) for name, p in self.named_parameters())

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True) -> IncompatibleKeys:
        """Copy values into the parameters, keeping each parameter's dtype and backend.

        With ``strict`` every key must match; any mis-shaped value is an error
        either way, and nothing is changed unless everything can be loaded.
        """
        if not isinstance(state_dict, Mapping):
            given = type(state_dict).__name__
            hint = "; to copy another module's weights: model.load_state_dict(other.state_dict())" if isinstance(state_dict, Module) else ""
            raise TypeError(f"load_state_dict into {type(self).__name__}: takes a state dict, a mapping of parameter names to "
                            f"arrays (what state_dict() returns); got {given}{hint}")
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        misshaped = [
            f"{k}: checkpoint {value_shape(state_dict[k])} vs model {own[k].shape}"
            for k in own
            if k in state_dict and value_shape(state_dict[k]) != own[k].shape
        ]
        problems = []
        if misshaped:
            problems.append("mis-shaped: " + "; ".join(misshaped))
        if strict and missing:
            problems.append("missing: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected: " + ", ".join(unexpected))
        if problems:
            # with strict=False a partial load is meant: its layouts may differ on purpose, its sizes not
            fix = (other_cell_hint(self, state_dict, own) or (layers_hint(state_dict, own) if strict else "")
                   or prefix_hint(missing, unexpected))
            if not fix:
                fix = ("Build the model with the sizes the checkpoint was saved with" if misshaped else
                       "The keys are another model's? Load the state dict of a model built as this one")
            raise StateDictError(
                f"load_state_dict into {type(self).__name__}: " + " | ".join(problems) + f". {fix}"
                + ("" if misshaped else ", or pass strict=False to load the keys that match")
            )
        converted, unreadable = {}, []
        for name, p in own.items():
            if name in state_dict:
                value, problem = _converted(state_dict[name], p)
                if problem:
                    unreadable.append(f"{name}: {problem}")
                converted[name] = value
        if unreadable:  # found before anything was copied: a failed load changes nothing
            raise StateDictError(f"load_state_dict into {type(self).__name__}: unreadable: " + "; ".join(unreadable)
                                 + ". Nothing was changed; pass arrays of real numbers that the parameters' dtype holds")
        for name, value in converted.items():
            own[name]._write(..., value)
        return IncompatibleKeys(missing, unexpected)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the state dict to ``path`` as .npz (exactly that path; no suffix is added).

        The file is written next to its destination under a temporary name and
        renamed over it only when complete, so an interrupted save never
        destroys the previous checkpoint. A file at ``path`` that is not an
        .npz archive (your notes, a text file) is refused, not replaced, and so
        is a path inside a training checkpoint's folder.
        """
        return atomic_write(path, lambda file: write_npz(file, self.state_dict()),  # a file: no ".npz" added
                            op=f"{type(self).__name__}.save", ours=_is_npz, kind="an .npz file of arrays")

    def load(self, path: str | os.PathLike, strict: bool = True) -> IncompatibleKeys:
        """Load a checkpoint written by ``save`` (read with ``allow_pickle=False``).

        A file that is not one (a .npy, a truncated or empty file, text) is a ``CheckpointError`` (a ValueError)
        naming it, and nothing is loaded."""
        where = f"{type(self).__name__}.load"
        if Path(path).is_dir():
            raise CheckpointError(f"{where}: {path} is a folder; Module.load reads the .npz file Module.save wrote (a folder "
                                  "that tinygrad-seq train or Trainer wrote loads with models.load_model(folder))")
        try:
            archive = np.load(path, allow_pickle=False)
            if not isinstance(archive, np.lib.npyio.NpzFile):  # one array: a .npy file
                raise CheckpointError(f"{where}: {path} holds one array (a .npy file), not the named arrays "
                                      "Module.save writes; load it with np.load and pass a dict to load_state_dict")
            with archive:
                others = _not_arrays(archive.zip.namelist())
                if any(name.endswith("data.pkl") for name in others):  # the zip torch.save writes
                    raise CheckpointError(f"{where}: {path} is a PyTorch file (torch.save), whose tensors NumPy cannot read; "
                                          "load it with torch.load and copy its state dict over: "
                                          "ts.interop.from_torch(model, torch.load(path))")
                if others:
                    raise CheckpointError(f"{where}: {path} is not a file that Module.save wrote: a zip holding files other "
                                          f"than arrays ({', '.join(others[:3])}{', ...' if len(others) > 3 else ''})")
                arrays = {k: archive[k] for k in archive.files}
        except (OSError, CheckpointError):  # no such file, a folder, no permission: OSError's own words name it
            raise
        except (ValueError, EOFError, zipfile.BadZipFile) as error:
            if isinstance(error, ValueError) and ("pickled" in error.args[0] or "Object arrays" in error.args[0]):  # NumPy's
                # words for what it will not unpickle: a pickle file, or an .npz holding arrays of Python objects
                raise CheckpointError(f"{where}: {path} is not a file that Module.save wrote: NumPy reads it as pickled "
                                      "Python objects, which are never loaded (allow_pickle=False: unpickling runs code); "
                                      "Module.save writes arrays only") from None
            raise CheckpointError(f"{where}: {path} is not a file that Module.save wrote, or it was cut short "
                                  f"({type(error).__name__}: {str(error)[:80]}); restore it from a backup or save again") from None
        return self.load_state_dict(arrays, strict=strict)

    # ---- moving

    def to(self, target: str | Backend | Any) -> Module:
        """Move every parameter (and gradient) in place to a backend or dtype; returns self."""
        moved = backend_or_dtype(target, f"{type(self).__name__}.to")
        if isinstance(moved, Backend):
            convert = moved.adopt
        else:
            dtype = moved
            if dtype.kind != "f":
                raise TypeError(f"{type(self).__name__}.to({dtype}): parameters must stay floats; use 'float32' or 'float64'")

            def convert(array: Any) -> Any:
                return array.astype(dtype, copy=False)  # the same array when the dtype is already right

        for p in self.parameters():
            converted = convert(p.data)
            if converted is not p.data:  # assigning bumps the version; a no-op move changes nothing
                p.data = converted
            if p.grad is not None:
                p._grad = convert(p.grad)
        return self

    def double(self) -> Module:
        return self.to(np.float64)

    def float(self) -> Module:
        return self.to(np.float32)

    # ---- printing

    def extra_repr(self) -> str:
        """The constructor arguments shown by ``repr`` (override in subclasses)."""
        return ""

    def __repr__(self) -> str:
        children = list(self.named_children())
        count = f"  # {self.num_parameters():,} parameters" if self.num_parameters() else ""
        if not children:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}({self.extra_repr()}{count}"]
        for name, child in children:
            text = repr(child).replace("\n", "\n  ")
            own = f"  # {child.num_parameters():,}" if child.num_parameters() and not list(child.named_children()) else ""
            lines.append(f"  ({name}): {text}{own}")
        lines.append(")")
        return "\n".join(lines)


@contextlib.contextmanager
def evaluating(model: Module) -> Iterator[Module]:
    """Run the block with ``model`` in eval mode (dropout off) and without recording a graph; yields ``model``.

    On exit, normal or by an exception, every module inside ``model`` gets back
    the training flag it had before (one that was already in eval mode stays
    so), and grad mode is restored: sampling and validation in the middle of
    training leave the model as they found it. Blocks nest.

    >>> import tinygrad_seq as ts
    >>> from tinygrad_seq import nn
    >>> model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    >>> with nn.evaluating(model):
    ...     model.training, model[1].training, ts.is_grad_enabled()
    (False, False, False)
    >>> model.training, ts.is_grad_enabled()
    (True, True)
    """
    # Each module's own flag, not the root's: a part the user put in eval mode on purpose stays there.
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        with no_grad():
            yield model
    finally:
        for module, training in flags:
            object.__setattr__(module, "training", training)


class Sequential(Module):
    """Modules applied one after the other: ``Sequential(Linear(3, 4), Linear(4, 2))(x)``."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        self.layers = list(modules)

    def named_children(self) -> Iterator[tuple[str, Module]]:
        # Keys "0", "1", ... as PyTorch's Sequential, so state dicts carry over.
        for i, module in enumerate(self.layers):
            yield str(i), module

    def forward(self, x: Any) -> Any:
        for module in self.layers:
            x = module(x)
        return x

    def __getitem__(self, index: int) -> Module:
        return self.layers[index]

    def __len__(self) -> int:
        return len(self.layers)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.layers)


class ModuleList(Module):
    """A list of modules whose parameters belong to the owner: ``ModuleList([Linear(3, 3) for _ in range(2)])``."""

    def __init__(self, modules: list[Module] | None = None) -> None:
        super().__init__()
        self.items = list(modules or [])

    def named_children(self) -> Iterator[tuple[str, Module]]:
        for i, module in enumerate(self.items):
            yield str(i), module

    def append(self, module: Module) -> ModuleList:
        self.items.append(module)
        return self

    def __getitem__(self, index: int) -> Module:
        return self.items[index]

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Module]:
        return iter(self.items)
