"""The NumPy / CuPy switch: one :class:`Backend` object per array library.

Every op is written once against ``backend.xp`` (the array module), in the
style of Chainer's ``get_array_module``. CuPy is imported here and only here,
and only when it is asked for, so the package runs where only NumPy exists.

>>> import tinygrad_seq as ts
>>> ts.get_backend().name
'numpy'
>>> with ts.use_backend("numpy"):
...     ts.Tensor([1.0, 2.0]).shape
(2,)
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import numpy as np

from . import settings
from .checks import is_int

ENV_VAR = "TINYGRAD_SEQ_BACKEND"
BACKEND_NAMES = ("numpy", "cupy")


class BackendError(RuntimeError):
    """A backend was asked for that cannot be used here (the message says why and the fix)."""


class Backend:
    """One array library: its module ``xp``, host conversion, scatter-add and random numbers.

    Attributes:
        name: ``"numpy"`` or ``"cupy"``.
        xp: the array module (``numpy`` or ``cupy``).
        array_type: the library's ndarray class.
    """

    def __init__(self, name: str, xp: Any) -> None:
        self.name = name
        self.xp = xp
        self.array_type = xp.ndarray
        self.draws = 0  # uses of ``random`` so far: how a recorded cell step tells it drew random numbers

    def __repr__(self) -> str:
        return f"Backend({self.name!r})"

    @property
    def default_dtype(self) -> np.dtype:
        """The dtype of floats made from Python numbers and lists (``ts.set_default_dtype``)."""
        return settings.default_dtype

    @property
    def random(self) -> Any:
        """The generator for random numbers made on this backend (dropout masks); every use is counted in ``draws``."""
        self.draws += 1
        return self.generator()

    def generator(self) -> Any:
        """Where this backend's random numbers come from: the host generator ``ts.manual_seed`` seeds."""
        return settings.host_rng

    def owns(self, array: Any) -> bool:
        """True if ``array`` is an array of this backend's library."""
        return isinstance(array, self.array_type)

    def asarray(self, data: Any, dtype: Any = None) -> Any:
        """``data`` (host array, list, number or an array of this backend) as this backend's array."""
        return self.xp.asarray(data, dtype=dtype)

    def array(self, data: Any, dtype: Any = None, copy: bool = True) -> Any:
        """``data`` as an array of this backend, following DESIGN.md's dtype rules: what ``Tensor(data, dtype)`` holds.

        ``data`` may be an array of any loaded backend, a nested list or a
        number. Python floats take the default dtype, Python ints int64;
        arrays and NumPy scalars keep theirs. An array is copied (as
        ``torch.tensor`` does), so later writes to it do not reach the tensor
        behind the engine's back; ``copy=False`` keeps it when it already has
        the dtype and backend (the library's own operands, gradients, loaded
        weights).
        """
        if isinstance(data, settings.array_types):
            if data.dtype.kind not in "biufc":
                raise TypeError(f"Tensor: cannot make a tensor of an array of {data.dtype}; a tensor holds numbers or bools")
            if dtype is not None and data.dtype != dtype:
                return self.adopt(data.astype(dtype))  # astype made a copy already
            adopted = self.adopt(data)
            return adopted.copy() if copy and adopted is data else adopted
        try:
            host = np.asarray(data, dtype=dtype)
        except ValueError as error:  # a ragged nested list, a string where numbers go
            raise ValueError(f"Tensor: cannot make a tensor of {type(data).__name__} {data!r:.60}: {str(error).rstrip('.')}. A tensor holds numbers "
                             "in a rectangular shape: pad ragged lists to one length (text.pad_batch for token ids)") from None
        if not isinstance(data, np.generic):  # NumPy scalars keep their dtype like arrays
            if dtype is None and host.dtype.kind == "f":
                host = host.astype(settings.default_dtype)  # Python floats -> default dtype
            elif dtype is None and host.dtype.kind in "iu":
                host = host.astype(np.int64)
        if host.dtype.kind not in "biufc":  # objects, strings, dates: no op computes on them
            raise TypeError(f"Tensor: cannot make a tensor from {type(data).__name__} {data!r:.60} (its values are "
                            f"{host.dtype}); a tensor holds numbers or bools. Text becomes ids first: vocab.encode(text)")
        return self.asarray(host)

    def to_host(self, array: Any) -> np.ndarray:
        """A NumPy array with the values of ``array`` (no copy for NumPy arrays)."""
        return np.asarray(array)

    def adopt(self, array: Any) -> Any:
        """``array``, from whichever backend made it, as an array of this one (no copy if it already is)."""
        if backend_of(array) is self:
            return array
        return self.asarray(backend_of(array).to_host(array))

    def synchronize(self) -> None:
        """Wait until the device has finished the work queued so far (nothing to wait for on NumPy); for timing."""

    def scatter_add(self, target: Any, index: Any, values: Any) -> None:
        """``target[index[i]] += values[i]`` in place, repeated ids summing.

        Shapes: target (V, *rest), index (N,) ints, values (N, *rest). This is
        the backward of a row gather (``x[ids]``, embeddings). ``np.add.at``
        does it but slowly (about 1.1 ms for 2,048 ids x 64 columns here);
        sorting the ids and summing each run with ``add.reduceat`` takes
        0.2-0.7 ms whatever the vocabulary size, where a one-hot matmul grows
        with it (see docs/performance.md). CuPy sums them its own way
        (:meth:`CupyBackend.scatter_add`).
        """
        if index.size == 0:
            return
        order = np.argsort(index, kind="stable")
        sorted_ids = index[order]
        run_starts = np.flatnonzero(np.concatenate(([True], sorted_ids[1:] != sorted_ids[:-1])))
        target[sorted_ids[run_starts]] += np.add.reduceat(values[order], run_starts, axis=0)


class CupyBackend(Backend):
    """CuPy on the current CUDA device; parameters are still initialised on the host.

    ``xp`` is the ``cupy`` module, or any module with CuPy's interface (the
    test suite runs this class on a strict CPU stand-in for CuPy, so the
    code under test is the code a GPU runs); install one with :func:`register`.
    """

    def __init__(self, xp: Any, name: str = "cupy") -> None:
        super().__init__(name, xp)

    def generator(self) -> Any:
        return self.xp.random  # seeded by ts.manual_seed too, and per batch by the trainer

    def synchronize(self) -> None:
        cuda = getattr(self.xp, "cuda", None)  # an array module without CUDA computes as it goes: nothing to wait for
        if cuda is not None:
            cuda.get_current_stream().synchronize()

    def to_host(self, array: Any) -> np.ndarray:
        if isinstance(array, self.array_type):
            return self.xp.asnumpy(array)
        return np.asarray(array)

    SCATTER_CHUNK = 4096  # ids per one-hot block: bounds its memory at (distinct ids x 4096)

    def scatter_add(self, target: Any, index: Any, values: Any) -> None:
        """As :meth:`Backend.scatter_add`, deterministic on a GPU: each distinct id's rows summed by a matmul.

        ``cupy.add.at``'s atomic adds sum repeated ids in a different order
        on every run, and CuPy's ``add.reduceat`` takes differences of a
        running total (inexact for small runs beside large ones, and one inf
        turns every later run into NaN). A one-hot (distinct ids x ids) block
        times the values sums each id's rows exactly as a matmul does, the
        same way every time; blocks of ids bound its memory.
        """
        if index.size == 0:
            return
        xp = self.xp
        distinct, inverse = xp.unique(index, return_inverse=True)  # the one read of the backward: how many ids
        rows = values.reshape(index.size, -1)
        sums = xp.zeros((distinct.size, rows.shape[1]), dtype=rows.dtype)
        which = xp.arange(distinct.size)[:, None]
        for start in range(0, index.size, self.SCATTER_CHUNK):
            block = inverse.reshape(-1)[start : start + self.SCATTER_CHUNK]
            sums += (which == block[None, :]).astype(rows.dtype) @ rows[start : start + self.SCATTER_CHUNK]
        target[distinct] += sums.reshape((distinct.size,) + values.shape[1:])


_NUMPY = Backend("numpy", np)
_loaded: dict[str, Backend] = {"numpy": _NUMPY}  # name -> backend: NumPy, and the device backends loaded or registered
_devices: tuple[Backend, ...] = ()  # the loaded backends other than NumPy, for backend_of


def _load_cupy() -> Backend:
    try:
        import cupy
    except ImportError as error:
        raise BackendError(
            "backend 'cupy' was asked for but CuPy is not installed "
            f"({error}). Install the extra that matches your CUDA: "
            "pip install 'tinygrad-seq[cuda12]' or 'tinygrad-seq[cuda13]'"
        ) from None
    try:
        devices = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CuPy raises its own CUDARuntimeError types
        raise BackendError(
            f"backend 'cupy' was asked for but no CUDA device can be used ({error}). "
            "Check `nvidia-smi`, or use the 'numpy' backend"
        ) from None
    if devices == 0:
        raise BackendError(
            "backend 'cupy' was asked for but no CUDA device was found. "
            "Check `nvidia-smi`, or use the 'numpy' backend"
        )
    return CupyBackend(cupy)


def register(backend: Backend) -> Backend | None:
    """Install ``backend`` under its name, replacing a loaded one; returns the one replaced (or None).

    Its arrays are recognised by ``isinstance(array, backend.xp.ndarray)``;
    ``ts.use_backend(backend.name)`` and ``x.to(backend.name)`` then use it.
    The random generator of its module is seeded with the last
    ``ts.manual_seed``. Nothing else is needed to run the library on another
    array module with CuPy's interface.
    """
    if backend.name == "numpy" and backend is not _NUMPY:
        raise BackendError("register: the name 'numpy' is the host backend's; give the new backend another name")
    previous = _loaded.get(backend.name)
    _loaded[backend.name] = backend
    if previous is not None and settings.backend is previous:
        settings.backend = backend  # the current backend was the one replaced: new tensors go to its replacement
    if settings.seed is not None and backend is not _NUMPY:
        backend.xp.random.seed(settings.seed)
    _devices_changed()
    return previous


def unregister(name: str) -> None:
    """Remove the backend installed under ``name`` (not "numpy", not the current one).

    Tensors still on it are no longer recognised as the library's arrays:
    move what you keep with ``x.to("numpy")`` first.
    """
    if name == "numpy":
        raise BackendError("unregister: the numpy backend cannot be removed")
    if settings.backend is not None and settings.backend is _loaded.get(name):
        raise BackendError(f"unregister: {name!r} is the current backend; switch first, e.g. ts.set_backend('numpy')")
    _loaded.pop(name, None)
    _devices_changed()


def backend_names() -> tuple[str, ...]:
    """The names ``set_backend`` and ``x.to`` accept: "numpy", "cupy", and every backend installed by :func:`register`."""
    return (*BACKEND_NAMES, *(name for name in _loaded if name not in BACKEND_NAMES))


def backend_or_dtype(target: Any, op: str) -> Backend | np.dtype:
    """What ``x.to(target)`` moves to: a backend (itself or a name of :func:`backend_names`) or a dtype; else an
    error naming ``op``, what ``to`` takes, and for PyTorch's "cuda" the backend that runs on the GPU."""
    if isinstance(target, Backend) or (isinstance(target, str) and target in backend_names()):
        return backend_named(target)
    if target is not None:  # np.dtype(None) would be float64
        try:
            return dtype_named(target, op)
        except TypeError:  # no dtype of numbers: named below with the backends, which it may have meant
            pass
    device = (target.lower().split(":")[0] if isinstance(target, str) else
              target.type if type(target).__module__ == "torch" and type(target).__name__ == "device" else None)
    if device in ("cuda", "gpu"):
        hint = (" For the GPU, use .to('cupy'): the CuPy backend (pip install 'tinygrad-seq[cuda12]' or "
                "'tinygrad-seq[cuda13]')")
    elif device == "cpu":
        hint = " For the CPU (PyTorch's 'cpu'), use .to('numpy')"
    elif type(target).__module__ == "torch" and str(target).startswith("torch."):  # a dtype: torch.float64
        hint = f" A PyTorch dtype: name it as NumPy does, .to('{str(target).split('.')[-1]}')"
    else:
        hint = ""
    raise ValueError(f"{op}: {target!r} is neither a backend ({', '.join(map(repr, backend_names()))}) nor a "
                     f"dtype ('float32', 'float64', ...).{hint}")


def _devices_changed() -> None:
    """Recompute what ``backend_of`` and ``Function.apply`` check after a device backend came or went."""
    global _devices
    _devices = tuple(b for b in _loaded.values() if b is not _NUMPY)
    settings.array_types = (np.ndarray, *(b.array_type for b in _devices))
    settings.cupy_loaded = bool(_devices)


def backend_named(name: str) -> Backend:
    """The :class:`Backend` called ``name`` ("numpy", "cupy" or one installed by :func:`register`), loading CuPy on first use."""
    if isinstance(name, Backend):
        return name
    found = _loaded.get(name)
    if found is not None:
        return found
    if name not in BACKEND_NAMES:
        raise BackendError(f"unknown backend {name!r}: choose one of {', '.join(map(repr, backend_names()))}")
    register(_load_cupy())
    return _loaded[name]


def backend_of(array: Any) -> Backend:
    """The backend whose library made ``array`` (NumPy for anything that is not a device array)."""
    if settings.cupy_loaded:
        for backend in _devices:
            if isinstance(array, backend.array_type):
                return backend
    return _NUMPY


def to_host(array: Any) -> np.ndarray:
    """A NumPy array with the values of ``array``, an array of any loaded backend (or a list)."""
    return backend_of(array).to_host(array)


def get_backend() -> Backend:
    """The current backend: new tensors are made on it."""
    if settings.backend is None:
        settings.backend = _backend_from_environment()
    return settings.backend


def set_backend(name: str | Backend) -> Backend:
    """Make ``name`` (``"numpy"`` or ``"cupy"``) the current backend and return it."""
    settings.backend = backend_named(name)
    return settings.backend


@contextlib.contextmanager
def use_backend(name: str | Backend) -> Iterator[Backend]:
    """Run a block with another current backend, restoring the previous one after it."""
    backend = backend_named(name)
    with settings.override(backend=backend):
        yield backend


def _backend_from_environment() -> Backend:
    name = os.environ.get(ENV_VAR, "").strip().lower() or "numpy"
    try:
        return backend_named(name)
    except BackendError as error:
        raise BackendError(f"{ENV_VAR}={os.environ.get(ENV_VAR)!r}: {error}; or unset {ENV_VAR}") from None


def manual_seed(seed: int) -> None:
    """Seed every random number tinygrad_seq draws: initialisation, dropout and sampling."""
    if not is_int(seed):
        raise TypeError(f"manual_seed: the seed must be an int; got {type(seed).__name__} {seed!r}")
    if seed < 0:
        raise ValueError(f"manual_seed: the seed must be >= 0 (NumPy's generators take no negative seed); got {seed}")
    settings.seed = int(seed)
    settings.host_rng = np.random.default_rng(int(seed))
    for backend in _devices:
        backend.xp.random.seed(int(seed))


def dtype_named(dtype: Any, op: str) -> np.dtype:
    """``dtype`` (a name such as "float32", a NumPy dtype or type) as a NumPy dtype of numbers or bools, or a TypeError
    naming ``op``."""
    try:
        found = np.dtype(dtype)
    except TypeError:
        found = None
    if found is None or found.kind not in "biufc":
        raise TypeError(f"{op}: {dtype!r} is not a dtype a tensor holds; use 'float32', 'float64', 'int64' or 'bool'")
    return found


def set_default_dtype(dtype: Any) -> None:
    """Set the dtype of floats made from Python numbers and lists: float32 (default) or float64."""
    dtype = dtype_named(dtype, "set_default_dtype")
    if dtype.kind != "f":
        raise TypeError(f"set_default_dtype: the default dtype must be a float dtype; got {dtype}")
    settings.default_dtype = dtype


def get_default_dtype() -> np.dtype:
    """The dtype of floats made from Python numbers and lists."""
    return settings.default_dtype
