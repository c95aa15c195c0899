"""A strict stand-in for CuPy that runs on the CPU, so the CuPy code path is tested without a GPU (issue 20).

``CupyBackend(strict_device)`` runs the real backend class on this module:
only the array module is swapped, so the code under test is the code a GPU
runs. Its arrays behave as CuPy's do where it matters, and more strictly
where CuPy would silently move data:

* ``np.asarray(device)`` raises TypeError, with CuPy's message; so does any
  NumPy ufunc given a device array (``np.exp(device)``, ``host + device``).
* A NumPy array (even 0-d) as an operand, an index, an assigned value or a
  function argument raises ``TypeError: Unsupported type <class
  'numpy.ndarray'>`` with a hint to move it with :func:`asarray` first.
  Python and NumPy *scalars* are accepted, as CuPy accepts them.
* Only the CuPy API listed in :data:`SUPPORTED` exists; anything else raises
  AttributeError naming :data:`CUPY_VERSION`. Ufunc methods follow CuPy's
  per-ufunc support (:data:`UFUNC_METHODS`): ``add.reduceat`` works,
  ``maximum.reduceat`` raises NotImplementedError as CuPy's does.
* Every host synchronisation is recorded in :data:`syncs` with its kind and
  the first line outside this file and NumPy that caused it; every
  host-to-device copy is recorded in :data:`uploads`.

>>> from tests import strict_device as sd
>>> x = sd.asarray([1.0, 2.0], dtype=sd.float32)
>>> with sd.syncs.counting() as seen:
...     y = (x * 2.0).sum()            # stays on the device: no sync
...     value = float(y)               # reads it back: one sync
>>> value, y.dtype, [event.kind for event in seen.events]
(6.0, dtype('float32'), ['float'])

Stricter than CuPy, on purpose (each would hide a transfer or a NumPy call
that a GPU run cannot make):

* CuPy's ``__array_ufunc__`` / ``__array_function__`` let some NumPy
  functions run on device arrays; here ``__array_ufunc__ = None`` and there
  is no ``__array_function__``, so library code must call ``backend.xp``.
  (NumPy functions that merely call a method, e.g. ``np.sum(device)``, still
  reach the method, as they would on CuPy.)
* CuPy uploads NumPy arrays and lists given as an index or an assigned value
  (``device[host_ids]``, ``device[...] = host``); here a NumPy array there is
  a TypeError, and so is a list as an assigned value. A list of ints as an
  index is accepted (CuPy accepts it) and counted as an upload.
* ``zeros_like`` and friends refuse host arrays (CuPy reads their shape).
* NumPy's read-only ``broadcast_to`` views stay read-only.
* Floating-point warnings are silenced, as a GPU never emits them.
"""
from __future__ import annotations

import builtins as _builtins
import contextlib as _contextlib
import os as _os
import sys as _sys
import typing as _t

import numpy as _np

del annotations  # the __future__ import binds a public name; this module exposes only CuPy's names

CUPY_VERSION = "14.x"
"""The CuPy release the API below was checked against (the GPU machine has cupy-cuda13x 14.2)."""

_MODULE = "strict_device"
_DOCS = "https://docs.cupy.dev/en/latest/reference/"  # "latest" described CuPy v14 when read (its upgrade guide's newest section is v14)
_UFUNC_LIST = _DOCS + "ufunc.html"  # which ufunc has which method; also cupy/cupy issue 7082 and cupy/_core/_kernel.pyx
_REEXPORT = "https://github.com/cupy/cupy/blob/main/cupy/__init__.py"  # dtypes and constants CuPy re-exports from NumPy


def _page(name: str) -> str:
    return f"{_DOCS}generated/cupy.{name}.html"


def _member(cls: str, name: str) -> str:
    return f"{_page(cls)}#cupy.{cls}.{name}"


_FUNCTIONS = (
    # creation and transfer
    "array asarray asnumpy get_array_module zeros ones empty full zeros_like ones_like empty_like full_like arange eye "
    # manipulation
    "reshape transpose swapaxes moveaxis expand_dims squeeze ravel broadcast_to stack concatenate split copyto "
    "may_share_memory "
    # indexing, logic, sorting, statistics, linear algebra
    "where nonzero flatnonzero unique take take_along_axis clip count_nonzero isclose allclose result_type argsort sort "
    "sum prod mean var std max min amax amin argmax argmin any all cumsum cumprod "
    "dot matmul outer tensordot einsum"
).split()
_UFUNCS = (
    "add subtract multiply divide true_divide floor_divide power remainder mod negative positive absolute abs "
    "sign exp exp2 log log2 log10 expm1 log1p sqrt square reciprocal logaddexp "
    "sin cos tan arctan arctan2 hypot sinh cosh tanh arctanh "
    "greater greater_equal less less_equal equal not_equal logical_and logical_or logical_xor logical_not "
    "bitwise_and bitwise_or bitwise_xor invert maximum minimum fmax fmin isfinite isinf isnan signbit copysign "
    "floor ceil trunc rint"
).split()
_NUMPY_OBJECTS = (
    "dtype float16 float32 float64 int8 int16 int32 int64 uint8 uint32 uint64 intp bool_ complex64 complex128 "
    "newaxis inf nan pi e"
).split()
_NDARRAY_MEMBERS = (
    "shape dtype ndim size itemsize nbytes strides T astype copy view fill reshape transpose swapaxes ravel flatten "
    "squeeze take clip round sort argsort sum prod mean var std max min argmax argmin any all cumsum cumprod dot "
    "item get set tolist __len__ __iter__ __getitem__ __setitem__ __repr__ __str__ __format__ __bool__ __int__ "
    "__float__ __complex__ __array__ __copy__ __deepcopy__ __reduce__"
).split()
_RANDOM = (
    "seed rand randn random random_sample ranf sample uniform normal standard_normal randint choice permutation shuffle"
).split()

SUPPORTED: dict[str, str] = {
    **{name: _page(name) for name in _FUNCTIONS},
    **{name: _page("absolute" if name == "abs" else name) for name in _UFUNCS},  # cupy.abs is cupy.absolute
    **{name: _REEXPORT for name in _NUMPY_OBJECTS},
    "ndarray": _page("ndarray"),
    "ufunc": _page("ufunc"),
    **{f"ndarray.{name}": _member("ndarray", name) for name in _NDARRAY_MEMBERS},
    **{f"ufunc.{name}": _member("ufunc", name) for name in ("__call__", "at", "reduce", "accumulate", "reduceat", "outer")},
    "linalg.norm": _page("linalg.norm"),
    **{f"random.{name}": _page(f"random.{name}") for name in _RANDOM},
    "cuda.runtime.getDeviceCount": _DOCS + "cuda.html",
    "cuda.get_current_stream": _page("cuda.get_current_stream"),
    "cuda.Stream.synchronize": _member("cuda.Stream", "synchronize"),
}
"""Every name this module implements -> the CuPy documentation page it was checked against.

Keys: module-level names (``"asarray"``), ``"ndarray.<member>"``,
``"ufunc.<method>"`` (which ufuncs have each method: :data:`UFUNC_METHODS`),
``"linalg.<name>"``, ``"random.<name>"`` and ``"cuda.runtime.getDeviceCount"``
(so ``sys.modules["cupy"] = strict_device`` lets ``backend._load_cupy`` run).
"""

UFUNC_METHODS: dict[str, tuple[str, ...] | None] = {
    "outer": None,  # every ufunc
    "at": ("add", "maximum", "minimum", "bitwise_and", "bitwise_or", "bitwise_xor"),
    "reduce": ("add", "multiply"),
    "accumulate": ("add", "multiply"),
    "reduceat": ("add",),
}
"""Which ufuncs have each ufunc method in CuPy 14 (others raise NotImplementedError there and here).

Sources: the "Methods" section of ``ufunc.html`` (``at``: add, maximum, minimum;
``outer``: all), cupy/cupy issue 7082 (v12: ``at`` also for the bitwise ops,
``reduce`` add and multiply, ``accumulate`` add, ``reduceat`` add only) and
``cupy/_core/_kernel.pyx`` (``accumulate`` for multiply too).
"""

_TEST_API = ("CUPY_VERSION", "SUPPORTED", "UFUNC_METHODS", "SyncEvent", "SyncCounter", "HostSyncError",
             "syncs", "uploads")
"""The names here that are not CuPy's: this module's own API for tests."""


# --------------------------------------------------------------------------------------------------
# Host synchronisations and uploads
# --------------------------------------------------------------------------------------------------

class SyncEvent(_t.NamedTuple):
    """One recorded transfer: its kind (``"float"``, ``"boolean mask"``, ...) and ``"path/file.py:line"``."""

    kind: str
    where: str


class HostSyncError(RuntimeError):
    """A host synchronisation happened inside :meth:`SyncCounter.forbidden`."""


class SyncCounter:
    """Records events of one sort (host synchronisations, or uploads).

    Attributes:
        events: every :class:`SyncEvent` since the last :meth:`reset`.
        skip_files: (class attribute, shared) path endings of files whose frames are passed over when an
            event's line is found, e.g. ``("tinygrad_seq/backend.py",)`` to blame the caller of
            ``Backend.to_host`` instead of the ``asnumpy`` call inside it.
    """

    skip_files: tuple[str, ...] = ()

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: list[SyncEvent] = []
        self._views: list[SyncCounter] = []
        self._forbidden = 0

    @property
    def count(self) -> int:
        return len(self.events)

    def kinds(self) -> list[str]:
        return [event.kind for event in self.events]

    def reset(self) -> None:
        self.events.clear()

    def record(self, kind: str, where: str | None = None) -> SyncEvent:
        event = SyncEvent(kind, where or _caller())
        if self._forbidden:
            raise HostSyncError(f"{self.name} ({kind}) at {event.where} inside a forbidden() block")
        self.events.append(event)
        for view in self._views:
            view.events.append(event)
        return event

    @_contextlib.contextmanager
    def counting(self) -> _t.Iterator[SyncCounter]:
        """A fresh counter that sees only the events inside the block (they are recorded here as well)."""
        view = SyncCounter(self.name)
        self._views.append(view)
        try:
            yield view
        finally:
            self._views.remove(view)

    @_contextlib.contextmanager
    def forbidden(self) -> _t.Iterator[None]:
        """Inside the block an event raises :class:`HostSyncError` naming its kind and line."""
        self._forbidden += 1
        try:
            yield
        finally:
            self._forbidden -= 1

    def __repr__(self) -> str:
        return f"<{self.name} counter: {self.count} events>"


syncs = SyncCounter("host sync")
"""Device-to-host reads: kinds ``item``, ``float``, ``int``, ``complex``, ``bool``, ``get``, ``asnumpy``,
``tolist``, ``boolean mask`` (indexing or assigning with a mask: CuPy reads the count of True), ``nonzero``
(``where`` with one argument), ``repr`` (``repr``/``str``), ``format`` (f-strings) and ``pickle``."""
uploads = SyncCounter("upload")
"""Host-to-device copies (allowed, not synchronisations): kinds ``asarray``, ``array``, ``set``, ``index list``."""

_THIS_FILE = SyncCounter.record.__code__.co_filename
_NUMPY_DIR = _os.path.dirname(_np.__file__)


def _caller() -> str:
    """``path/file.py:line`` of the first frame outside this file, NumPy and :attr:`SyncCounter.skip_files`.

    The path is relative to the working directory when the file is under it (``tinygrad_seq/ops/losses.py``
    and ``tinygrad_seq/nn/losses.py`` differ), else the file's name alone.
    """
    frame = _sys._getframe(1)
    skip = SyncCounter.skip_files
    while frame is not None:
        filename = frame.f_code.co_filename
        if (filename != _THIS_FILE and not filename.startswith(_NUMPY_DIR)
                and not (skip and filename.endswith(skip))):
            return f"{_shown(filename)}:{frame.f_lineno}"
        frame = frame.f_back
    return "?"


def _shown(filename: str) -> str:
    cwd = _os.getcwd()
    if filename.startswith(cwd + _os.sep):
        return filename[len(cwd) + 1:]
    return _os.path.basename(filename)


# --------------------------------------------------------------------------------------------------
# Checking arguments
# --------------------------------------------------------------------------------------------------

_SCALARS = (bool, int, float, complex, _np.generic)
_NOT_AN_OPERAND = object()


def _host_array_error(value: _t.Any, where: str) -> TypeError:
    return TypeError(
        f"Unsupported type {type(value)} in {where}: a host (NumPy) array cannot be used with strict device "
        f"arrays, as CuPy's cannot. Move it to the device first with {_MODULE}.asarray(...) (backend.asarray)."
    )


def _unsupported(value: _t.Any, where: str) -> TypeError:
    if isinstance(value, _np.ndarray):
        return _host_array_error(value, where)
    return TypeError(f"Unsupported type {type(value)} in {where}")


def _operand(value: _t.Any, where: str) -> _t.Any:
    """The NumPy value behind an operand: a device array's data, or a Python / NumPy scalar."""
    if type(value) is ndarray:
        return value._a
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, _np.ndarray):
        raise _host_array_error(value, where)
    return _NOT_AN_OPERAND


def _arg(value: _t.Any, where: str, scalars: bool = True) -> _t.Any:
    """Like :func:`_operand`, but anything else is a TypeError (function arguments)."""
    if type(value) is ndarray:
        return value._a
    if scalars and isinstance(value, _SCALARS):
        return value
    raise _unsupported(value, where)


def _array_arg(value: _t.Any, where: str) -> _np.ndarray:
    if type(value) is ndarray:
        return value._a
    raise _unsupported(value, where)


def _optional(value: _t.Any, where: str) -> _t.Any:
    return None if value is None else _arg(value, where)


def _out(out: _t.Any, where: str) -> _np.ndarray | None:
    if out is None:
        return None
    if type(out) is ndarray:
        return out._a
    raise TypeError(f"{where}: out must be a {_MODULE}.ndarray, got {type(out)}")


def _wrap(result: _t.Any) -> _t.Any:
    """NumPy results as device arrays (scalars become 0-d arrays, as CuPy returns them)."""
    if isinstance(result, _np.ndarray):
        return ndarray._new(result)
    if isinstance(result, _np.generic):
        return ndarray._new(_np.asarray(result))
    if isinstance(result, tuple):
        return tuple(_wrap(item) for item in result)
    if isinstance(result, list):
        return [_wrap(item) for item in result]
    return result


def _returning(result: _t.Any, out: _t.Any) -> _t.Any:
    return out if out is not None else _wrap(result)


def _index(key: _t.Any, where: str) -> tuple:
    """An index for the wrapped NumPy array; counts boolean masks (a sync) and index lists (an upload)."""
    items = key if isinstance(key, tuple) else (key,)
    converted = []
    basic = True
    has_ellipsis = False
    for item in items:
        if type(item) is ndarray:
            basic = False
            if item.dtype == _np.bool_ and item.size:
                syncs.record("boolean mask")
            converted.append(item._a)
        elif isinstance(item, _np.ndarray):
            raise _host_array_error(item, where)
        elif isinstance(item, list):
            basic = False
            if _builtins.any(type(element) is ndarray or isinstance(element, _np.ndarray) for element in item):
                raise TypeError(f"{where}: a list index holding arrays is not supported here; stack it on the device")
            array = _np.asarray(item)
            if array.size == 0:
                array = array.astype(_np.int64)  # an empty list means no indices, not an empty mask (as CuPy)
            uploads.record("index list")
            if array.dtype == _np.bool_ and array.size:
                syncs.record("boolean mask")
            converted.append(array)
        else:
            if item is Ellipsis:
                has_ellipsis = True
            elif isinstance(item, (bool, _np.bool_)):
                basic = False
            converted.append(item)
    if basic and not has_ellipsis:
        converted.append(Ellipsis)  # integer indices give 0-d views, as CuPy's, not NumPy scalars
    return tuple(converted)


def _quiet():
    return _np.errstate(all="ignore")


# --------------------------------------------------------------------------------------------------
# The array
# --------------------------------------------------------------------------------------------------

def _binary(ufunc: _np.ufunc, name: str, reflected: bool = False, inplace: bool = False):
    where = f"the operator {name}"

    def method(self, other):
        value = _operand(other, where)
        if value is _NOT_AN_OPERAND:
            return NotImplemented
        with _quiet():
            if inplace:
                ufunc(self._a, value, out=self._a)
                return self
            result = ufunc(value, self._a) if reflected else ufunc(self._a, value)
        return _wrap(result)

    method.__name__ = name
    return method


def _unary(ufunc: _np.ufunc, name: str):
    def method(self):
        with _quiet():
            return _wrap(ufunc(self._a))

    method.__name__ = name
    return method


class ndarray:
    """A device array: wraps a private NumPy array and only talks to other device arrays and scalars.

    ``ndarray(shape, dtype=float)`` makes an uninitialised array, as ``cupy.ndarray`` does.
    """

    __slots__ = ("_a", "__weakref__")
    __array_ufunc__ = None  # NumPy ufuncs and NumPy arrays' operators refuse device arrays

    def __init__(self, shape: _t.Any, dtype: _t.Any = float, memptr: _t.Any = None, strides: _t.Any = None,
                 order: str = "C") -> None:
        if memptr is not None or strides is not None:
            raise NotImplementedError(f"{_MODULE}.ndarray: memptr and strides are not supported")
        self._a = _np.empty(shape, dtype=dtype, order=order)

    @classmethod
    def _new(cls, array: _np.ndarray) -> ndarray:
        obj = object.__new__(cls)
        obj._a = array
        return obj

    def __getattr__(self, name: str) -> _t.Any:
        raise AttributeError(
            f"'ndarray' object has no attribute {name!r} (not in the CuPy {CUPY_VERSION} API subset "
            f"this test library implements; see SUPPORTED)"
        )

    # -- attributes --------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self._a.shape

    @shape.setter
    def shape(self, value: _t.Any) -> None:
        self._a.shape = value

    @property
    def dtype(self) -> _np.dtype:
        return self._a.dtype

    @property
    def ndim(self) -> int:
        return self._a.ndim

    @property
    def size(self) -> int:
        return self._a.size

    @property
    def itemsize(self) -> int:
        return self._a.itemsize

    @property
    def nbytes(self) -> int:
        return self._a.nbytes

    @property
    def strides(self) -> tuple[int, ...]:
        return self._a.strides

    @property
    def T(self) -> ndarray:
        return ndarray._new(self._a.T)

    # -- conversions that read the device: each is a host synchronisation --------------------------
    def __array__(self, dtype: _t.Any = None, copy: _t.Any = None) -> _t.NoReturn:
        raise TypeError(
            "Implicit conversion to a NumPy array is not allowed. "
            "Please use `.get()` to construct a NumPy array explicitly."
        )

    def get(self, stream: _t.Any = None, order: str = "C", out: _np.ndarray | None = None,
            blocking: bool = True) -> _np.ndarray:
        syncs.record("get")
        if out is not None:
            out[...] = self._a
            return out
        return _np.array(self._a, order=order, copy=True)

    def item(self, *args: _t.Any) -> _t.Any:
        syncs.record("item")
        return self._a.item(*args)

    def tolist(self) -> _t.Any:
        syncs.record("tolist")
        return self._a.tolist()

    def __float__(self) -> float:
        syncs.record("float")
        return float(self._a)

    def __int__(self) -> int:
        syncs.record("int")
        return int(self._a)

    def __complex__(self) -> complex:
        syncs.record("complex")
        return complex(self._a)

    def __bool__(self) -> bool:
        syncs.record("bool")
        return bool(self._a)

    # No __index__: CuPy leaves it out on purpose, as it would read the device (cupy/cupy issue 5784).

    def __repr__(self) -> str:
        syncs.record("repr")
        return repr(self._a)

    def __str__(self) -> str:
        syncs.record("repr")
        return str(self._a)

    def __format__(self, spec: str) -> str:
        syncs.record("format")
        return format(self._a, spec)

    def __reduce__(self) -> tuple:
        syncs.record("pickle")
        return (_from_host, (_np.array(self._a),))

    def set(self, arr: _np.ndarray, stream: _t.Any = None) -> None:
        """Copy a host array of the same shape and dtype into this array (an upload)."""
        if not isinstance(arr, _np.ndarray):
            raise TypeError(f"set: expected a numpy.ndarray, got {type(arr)}")
        if arr.dtype != self.dtype:
            raise TypeError(f"set: dtype mismatch ({arr.dtype} into {self.dtype})")
        if arr.shape != self.shape:
            raise ValueError(f"set: shape mismatch ({arr.shape} into {self.shape})")
        uploads.record("set")
        self._a[...] = arr

    # -- copies and views --------------------------------------------------------------------------
    def astype(self, dtype: _t.Any, order: str = "K", casting: _t.Any = None, subok: _t.Any = None,
               copy: bool = True) -> ndarray:
        kwargs = {} if casting is None else {"casting": casting}
        result = self._a.astype(dtype, order=order, copy=copy, **kwargs)
        return self if result is self._a else ndarray._new(result)

    def copy(self, order: str = "C") -> ndarray:
        return ndarray._new(self._a.copy(order=order))

    def __copy__(self) -> ndarray:
        return self.copy()

    def __deepcopy__(self, memo: _t.Any) -> ndarray:
        return self.copy()  # a device-to-device copy: no sync

    def view(self, dtype: _t.Any = None) -> ndarray:
        return ndarray._new(self._a.view() if dtype is None else self._a.view(dtype))

    def fill(self, value: _t.Any) -> None:
        self._a.fill(_arg(value, "ndarray.fill"))

    def reshape(self, *shape: _t.Any, order: str = "C") -> ndarray:
        return ndarray._new(self._a.reshape(*shape, order=order))

    def transpose(self, *axes: _t.Any) -> ndarray:
        return ndarray._new(self._a.transpose(*axes))

    def swapaxes(self, axis1: int, axis2: int) -> ndarray:
        return ndarray._new(self._a.swapaxes(axis1, axis2))

    def ravel(self, order: str = "C") -> ndarray:
        return ndarray._new(self._a.ravel(order))

    def flatten(self, order: str = "C") -> ndarray:
        return ndarray._new(self._a.flatten(order))

    def squeeze(self, axis: _t.Any = None) -> ndarray:
        return ndarray._new(self._a.squeeze(axis))

    def take(self, indices: _t.Any, axis: _t.Any = None, out: _t.Any = None) -> ndarray:
        ids = _arg(indices, "ndarray.take")
        return _returning(self._a.take(ids, axis=axis, out=_out(out, "ndarray.take")), out)

    def clip(self, min: _t.Any = None, max: _t.Any = None, out: _t.Any = None) -> ndarray:
        with _quiet():
            result = self._a.clip(_optional(min, "ndarray.clip"), _optional(max, "ndarray.clip"),
                                  out=_out(out, "ndarray.clip"))
        return _returning(result, out)

    def round(self, decimals: int = 0, out: _t.Any = None) -> ndarray:
        return _returning(self._a.round(decimals, out=_out(out, "ndarray.round")), out)

    def sort(self, axis: int = -1, kind: _t.Any = None) -> None:
        self._a.sort(axis=axis, kind=kind)

    def argsort(self, axis: _t.Any = -1, kind: _t.Any = None) -> ndarray:
        if kind not in (None, "stable"):
            raise ValueError(f"kind={kind!r}: CuPy's argsort supports only kind=None or 'stable'")
        return ndarray._new(self._a.argsort(axis=axis, kind="stable"))

    # -- reductions (results stay on the device as 0-d arrays) --------------------------------------
    def _reduce(self, name: str, out: _t.Any, **kwargs: _t.Any) -> ndarray:
        with _quiet():
            result = getattr(self._a, name)(out=_out(out, f"ndarray.{name}"), **kwargs)
        return _returning(result, out)

    def sum(self, axis: _t.Any = None, dtype: _t.Any = None, out: _t.Any = None, keepdims: bool = False) -> ndarray:
        return self._reduce("sum", out, axis=axis, dtype=dtype, keepdims=keepdims)

    def prod(self, axis: _t.Any = None, dtype: _t.Any = None, out: _t.Any = None, keepdims: bool = False) -> ndarray:
        return self._reduce("prod", out, axis=axis, dtype=dtype, keepdims=keepdims)

    def mean(self, axis: _t.Any = None, dtype: _t.Any = None, out: _t.Any = None, keepdims: bool = False) -> ndarray:
        return self._reduce("mean", out, axis=axis, dtype=dtype, keepdims=keepdims)

    def var(self, axis: _t.Any = None, dtype: _t.Any = None, out: _t.Any = None, ddof: int = 0,
            keepdims: bool = False) -> ndarray:
        return self._reduce("var", out, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)

    def std(self, axis: _t.Any = None, dtype: _t.Any = None, out: _t.Any = None, ddof: int = 0,
            keepdims: bool = False) -> ndarray:
        return self._reduce("std", out, axis=axis, dtype=dtype, ddof=ddof, keepdims=keepdims)

    def max(self, axis: _t.Any = None, out: _t.Any = None, keepdims: bool = False) -> ndarray:
        return self._reduce("max", out, axis=axis, keepdims=keepdims)

    def min(self, axis: _t.Any = None, out: _t.Any = None, keepdims: bool = False) -> ndarray:
        return self._reduce("min", out, axis=axis, keepdims=keepdims)

    def argmax(self, axis: _t.Any = None, out: _t.Any = None, dtype: _t.Any = None, keepdims: bool = False) -> ndarray:
        result = self._reduce("argmax", out, axis=axis, keepdims=keepdims)
        return result if dtype is None else result.astype(dtype, copy=False)

    def argmin(self, axis: _t.Any = None, out: _t.Any = None, dtype: _t.Any = None, keepdims: bool = False) -> ndarray:
        result = self._reduce("argmin", out, axis=axis, keepdims=keepdims)
        return result if dtype is None else result.astype(dtype, copy=False)

    def any(self, axis: _t.Any = None, out: _t.Any = None, keepdims: bool = False) -> ndarray:
        return self._reduce("any", out, axis=axis, keepdims=keepdims)

    def all(self, axis: _t.Any = None, out: _t.Any = None, keepdims: bool = False) -> ndarray:
        return self._reduce("all", out, axis=axis, keepdims=keepdims)

    def cumsum(self, axis: _t.Any = None, dtype: _t.Any = None, out: _t.Any = None) -> ndarray:
        return self._reduce("cumsum", out, axis=axis, dtype=dtype)

    def cumprod(self, axis: _t.Any = None, dtype: _t.Any = None, out: _t.Any = None) -> ndarray:
        return self._reduce("cumprod", out, axis=axis, dtype=dtype)

    def dot(self, b: _t.Any, out: _t.Any = None) -> ndarray:
        return dot(self, b, out=out)

    # -- container protocol --------------------------------------------------------------------------
    def __len__(self) -> int:
        if self._a.ndim == 0:
            raise TypeError("len() of unsized object")
        return len(self._a)

    def __iter__(self) -> _t.Iterator[ndarray]:
        if self._a.ndim == 0:
            raise TypeError("iteration over a 0-d array")
        return (ndarray._new(self._a[i, ...]) for i in range(len(self._a)))

    def __getitem__(self, key: _t.Any) -> ndarray:
        return _wrap(self._a[_index(key, "indexing")])

    def __setitem__(self, key: _t.Any, value: _t.Any) -> None:
        if type(value) is ndarray:
            value = value._a
        elif isinstance(value, _np.ndarray):
            raise _host_array_error(value, "an assignment (device[...] = value)")
        elif not isinstance(value, _SCALARS):
            raise TypeError(f"Unsupported type {type(value)} in an assignment (device[...] = value): "
                            f"assign a {_MODULE}.ndarray or a scalar")
        index = _index(key, "an assignment (device[...] = value)")
        with _quiet():
            self._a[index] = value

    # -- operators -----------------------------------------------------------------------------------
    __add__ = _binary(_np.add, "__add__")
    __radd__ = _binary(_np.add, "__radd__", reflected=True)
    __iadd__ = _binary(_np.add, "__iadd__", inplace=True)
    __sub__ = _binary(_np.subtract, "__sub__")
    __rsub__ = _binary(_np.subtract, "__rsub__", reflected=True)
    __isub__ = _binary(_np.subtract, "__isub__", inplace=True)
    __mul__ = _binary(_np.multiply, "__mul__")
    __rmul__ = _binary(_np.multiply, "__rmul__", reflected=True)
    __imul__ = _binary(_np.multiply, "__imul__", inplace=True)
    __truediv__ = _binary(_np.true_divide, "__truediv__")
    __rtruediv__ = _binary(_np.true_divide, "__rtruediv__", reflected=True)
    __itruediv__ = _binary(_np.true_divide, "__itruediv__", inplace=True)
    __floordiv__ = _binary(_np.floor_divide, "__floordiv__")
    __rfloordiv__ = _binary(_np.floor_divide, "__rfloordiv__", reflected=True)
    __ifloordiv__ = _binary(_np.floor_divide, "__ifloordiv__", inplace=True)
    __mod__ = _binary(_np.remainder, "__mod__")
    __rmod__ = _binary(_np.remainder, "__rmod__", reflected=True)
    __imod__ = _binary(_np.remainder, "__imod__", inplace=True)
    __pow__ = _binary(_np.power, "__pow__")
    __rpow__ = _binary(_np.power, "__rpow__", reflected=True)
    __ipow__ = _binary(_np.power, "__ipow__", inplace=True)
    __matmul__ = _binary(_np.matmul, "__matmul__")
    __rmatmul__ = _binary(_np.matmul, "__rmatmul__", reflected=True)
    __and__ = _binary(_np.bitwise_and, "__and__")
    __rand__ = _binary(_np.bitwise_and, "__rand__", reflected=True)
    __iand__ = _binary(_np.bitwise_and, "__iand__", inplace=True)
    __or__ = _binary(_np.bitwise_or, "__or__")
    __ror__ = _binary(_np.bitwise_or, "__ror__", reflected=True)
    __ior__ = _binary(_np.bitwise_or, "__ior__", inplace=True)
    __xor__ = _binary(_np.bitwise_xor, "__xor__")
    __rxor__ = _binary(_np.bitwise_xor, "__rxor__", reflected=True)
    __ixor__ = _binary(_np.bitwise_xor, "__ixor__", inplace=True)
    __eq__ = _binary(_np.equal, "__eq__")
    __ne__ = _binary(_np.not_equal, "__ne__")
    __lt__ = _binary(_np.less, "__lt__")
    __le__ = _binary(_np.less_equal, "__le__")
    __gt__ = _binary(_np.greater, "__gt__")
    __ge__ = _binary(_np.greater_equal, "__ge__")
    __neg__ = _unary(_np.negative, "__neg__")
    __pos__ = _unary(_np.positive, "__pos__")
    __abs__ = _unary(_np.absolute, "__abs__")
    __invert__ = _unary(_np.invert, "__invert__")
    __hash__ = None  # type: ignore[assignment]


def _from_host(array: _np.ndarray) -> ndarray:
    uploads.record("array")
    return ndarray._new(_np.array(array, copy=True))


# --------------------------------------------------------------------------------------------------
# Ufuncs
# --------------------------------------------------------------------------------------------------

_SCATTER_DTYPES = {
    "add": (_np.int32, _np.float16, _np.float32, _np.float64, _np.uint32, _np.uint64),
    "maximum": (_np.int32, _np.float32, _np.float64, _np.uint32, _np.uint64),
    "minimum": (_np.int32, _np.float32, _np.float64, _np.uint32, _np.uint64),
}  # the atomics CuPy's scatter kernels have (cupy/_core/_routines_indexing.pyx)


class ufunc:
    """An elementwise function with CuPy's call (``out=``, ``dtype=``, ``casting=``, ``where=``) and methods."""

    def __init__(self, name: str, numpy_ufunc: _np.ufunc) -> None:
        self.__name__ = name
        self.name = f"cupy_{name}"
        self._f = numpy_ufunc
        self.nin = numpy_ufunc.nin
        self.nout = numpy_ufunc.nout
        self.nargs = numpy_ufunc.nargs

    def __repr__(self) -> str:
        return f"<ufunc '{self.__name__}'>"

    def __call__(self, *args: _t.Any, out: _t.Any = None, dtype: _t.Any = None, casting: str = "same_kind",
                 where: _t.Any = None) -> _t.Any:
        if len(args) > self.nin:
            if out is not None or len(args) > self.nin + 1:
                raise TypeError(f"{self.__name__}: too many arguments")
            out = args[self.nin]
            args = args[: self.nin]
        if len(args) != self.nin:
            raise TypeError(f"Wrong number of arguments for {self.name}: {self.nin} expected, {len(args)} given")
        inputs = [_arg(value, self.__name__) for value in args]
        kwargs: dict[str, _t.Any] = {"casting": casting}
        if dtype is not None:
            kwargs["dtype"] = dtype
        if where is not None:
            kwargs["where"] = _arg(where, f"{self.__name__}(where=...)")
        if out is not None:
            kwargs["out"] = _out(out, self.__name__)
        with _quiet():
            result = self._f(*inputs, **kwargs)
        return _returning(result, out)

    def _check_method(self, method: str) -> None:
        supported = UFUNC_METHODS[method]
        if supported is not None and self.__name__ not in supported:
            raise NotImplementedError(
                f"`{self.name}.{method}` is not supported yet (CuPy {CUPY_VERSION} has ufunc.{method} only for "
                f"{', '.join(supported)}; see {_UFUNC_LIST})"
            )

    def at(self, a: _t.Any, indices: _t.Any, b: _t.Any = None) -> None:
        """In place ``a[indices] op= b``; repeated indices all apply (``add.at`` sums them)."""
        self._check_method("at")
        target = _array_arg(a, f"{self.__name__}.at")
        index = _index(indices, f"{self.__name__}.at")
        # CuPy's scatter kernels (integer-array indices) need an atomic for the target's dtype;
        # masks and slices take other paths there, with no such limit.
        advanced = _builtins.any(isinstance(item, _np.ndarray) and item.dtype.kind in "iu" for item in index)
        allowed = _SCATTER_DTYPES.get(self.__name__)
        if advanced and allowed is not None and not issubclass(target.dtype.type, allowed):
            names = ", ".join(_np.dtype(t).name for t in allowed)
            raise TypeError(f"scatter_{self.__name__.replace('imum', '')} only supports {names} as data type "
                            f"(CuPy casts the values to the target's dtype {target.dtype}, which has no atomic)")
        values = None if b is None else _arg(b, f"{self.__name__}.at")
        if values is not None and not isinstance(values, _np.ndarray):
            values = target.dtype.type(values)
        elif values is not None:
            values = values.astype(target.dtype, copy=False)
        with _quiet():
            self._f.at(target, index, values)

    def reduce(self, array: _t.Any, axis: _t.Any = 0, dtype: _t.Any = None, out: _t.Any = None,
               keepdims: bool = False) -> ndarray:
        self._check_method("reduce")
        a = _array_arg(array, f"{self.__name__}.reduce")
        with _quiet():
            result = self._f.reduce(a, axis=axis, dtype=dtype, out=_out(out, "reduce"), keepdims=keepdims)
        return _returning(result, out)

    def accumulate(self, array: _t.Any, axis: int = 0, dtype: _t.Any = None, out: _t.Any = None) -> ndarray:
        self._check_method("accumulate")
        a = _array_arg(array, f"{self.__name__}.accumulate")
        with _quiet():
            result = self._f.accumulate(a, axis=axis, dtype=dtype, out=_out(out, "accumulate"))
        return _returning(result, out)

    def reduceat(self, array: _t.Any, indices: _t.Any, axis: int = 0, dtype: _t.Any = None,
                 out: _t.Any = None) -> ndarray:
        self._check_method("reduceat")
        a = _array_arg(array, f"{self.__name__}.reduceat")
        if isinstance(indices, (list, tuple)):
            uploads.record("index list")
            ids = _np.asarray(indices)
        else:
            ids = _array_arg(indices, f"{self.__name__}.reduceat")
        with _quiet():
            result = _cupy_add_reduceat(a, ids, axis, dtype)
            if out is not None:
                _out(out, "reduceat")[...] = result
        return _returning(result, out)

    def outer(self, A: _t.Any, B: _t.Any, **kwargs: _t.Any) -> ndarray:
        a, b = _arg(A, f"{self.__name__}.outer"), _arg(B, f"{self.__name__}.outer")
        out = kwargs.pop("out", None)
        if out is not None:
            kwargs["out"] = _out(out, f"{self.__name__}.outer")
        with _quiet():
            result = self._f.outer(a, b, **kwargs)
        return _returning(result, out)


for _name in _UFUNCS:
    if _name != "abs":
        globals()[_name] = ufunc(_name, getattr(_np, _name))
abs = globals()["absolute"]  # noqa: A001 - cupy.abs is cupy.absolute
del _name


# --------------------------------------------------------------------------------------------------
# Module-level functions
# --------------------------------------------------------------------------------------------------

for _name in _NUMPY_OBJECTS:
    globals()[_name] = getattr(_np, _name) if _name != "newaxis" else None
del _name


def _nested_device(data: _t.Any) -> _t.Any:
    """A list/tuple that holds device arrays, as NumPy data (a device-side gather, not an upload)."""
    if type(data) is ndarray:
        return data._a
    if isinstance(data, (list, tuple)):
        return [_nested_device(item) for item in data]
    if isinstance(data, _np.ndarray):
        raise _host_array_error(data, "asarray of a sequence mixing device and host arrays")
    return data


def _holds_device(data: _t.Any) -> bool:
    if type(data) is ndarray:
        return True
    return isinstance(data, (list, tuple)) and _builtins.any(_holds_device(item) for item in data)


def asarray(a: _t.Any, dtype: _t.Any = None, order: _t.Any = None, *, blocking: bool = False) -> ndarray:
    """A device array of ``a``: device arrays pass through (cast if ``dtype`` differs); host data is uploaded."""
    if type(a) is ndarray:
        return a if dtype is None else a.astype(dtype, copy=False)
    if _holds_device(a):
        return ndarray._new(_np.array(_nested_device(a), dtype=dtype, order=order or "K"))
    uploads.record("asarray")
    return ndarray._new(_np.array(a, dtype=dtype, order=order or "K", copy=True))


def array(obj: _t.Any, dtype: _t.Any = None, copy: bool = True, order: str = "K", subok: bool = False,
          ndmin: int = 0, *, blocking: bool = False) -> ndarray:
    if type(obj) is ndarray or _holds_device(obj):
        data = obj._a if type(obj) is ndarray else _nested_device(obj)
        return ndarray._new(_np.array(data, dtype=dtype, copy=bool(copy), order=order, ndmin=ndmin))
    uploads.record("array")
    return ndarray._new(_np.array(obj, dtype=dtype, copy=True, order=order, ndmin=ndmin))


def asnumpy(a: _t.Any, stream: _t.Any = None, order: str = "C", out: _t.Any = None, *,
            blocking: bool = True) -> _np.ndarray:
    """A host copy of a device array (a host synchronisation); anything else goes through ``numpy.asarray``."""
    if type(a) is ndarray:
        syncs.record("asnumpy")
        if out is not None:
            out[...] = a._a
            return out
        return _np.array(a._a, order=order, copy=True)
    return _np.asarray(a, order=order)


def get_array_module(*args: _t.Any) -> _t.Any:
    return _sys.modules[__name__] if _builtins.any(type(arg) is ndarray for arg in args) else _np


def _shape_dtype(name: str, maker: _t.Callable) -> _t.Callable:
    def create(shape: _t.Any, dtype: _t.Any = float, order: str = "C") -> ndarray:
        return ndarray._new(maker(shape, dtype=dtype, order=order))

    create.__name__ = name
    return create


zeros = _shape_dtype("zeros", _np.zeros)
ones = _shape_dtype("ones", _np.ones)
empty = _shape_dtype("empty", _np.empty)


def full(shape: _t.Any, fill_value: _t.Any, dtype: _t.Any = None, order: str = "C") -> ndarray:
    return ndarray._new(_np.full(shape, _arg(fill_value, "full"), dtype=dtype, order=order))


def _like(name: str, maker: _t.Callable) -> _t.Callable:
    def create(a: _t.Any, dtype: _t.Any = None, order: str = "K", subok: _t.Any = None,
               shape: _t.Any = None) -> ndarray:
        return ndarray._new(maker(_array_arg(a, name), dtype=dtype, order=order, shape=shape))

    create.__name__ = name
    return create


zeros_like = _like("zeros_like", _np.zeros_like)
ones_like = _like("ones_like", _np.ones_like)
empty_like = _like("empty_like", _np.empty_like)


def full_like(a: _t.Any, fill_value: _t.Any, dtype: _t.Any = None, order: str = "K", subok: _t.Any = None,
              shape: _t.Any = None) -> ndarray:
    return ndarray._new(_np.full_like(_array_arg(a, "full_like"), _arg(fill_value, "full_like"),
                                      dtype=dtype, order=order, shape=shape))


def _host_number(value: _t.Any, where: str) -> _t.Any:
    if value is None or isinstance(value, _SCALARS):
        return value
    raise _unsupported(value, where)


def arange(start: _t.Any, stop: _t.Any = None, step: _t.Any = 1, dtype: _t.Any = None) -> ndarray:
    start, stop, step = (_host_number(value, "arange") for value in (start, stop, step))
    return ndarray._new(_np.arange(start, stop, step, dtype=dtype))


def eye(N: int, M: _t.Any = None, k: int = 0, dtype: _t.Any = float, order: str = "C") -> ndarray:
    return ndarray._new(_np.eye(N, M, k, dtype=dtype, order=order))


def reshape(a: _t.Any, newshape: _t.Any, order: str = "C") -> ndarray:
    return ndarray._new(_np.reshape(_array_arg(a, "reshape"), newshape, order=order))


def transpose(a: _t.Any, axes: _t.Any = None) -> ndarray:
    return ndarray._new(_np.transpose(_array_arg(a, "transpose"), axes))


def swapaxes(a: _t.Any, axis1: int, axis2: int) -> ndarray:
    return ndarray._new(_np.swapaxes(_array_arg(a, "swapaxes"), axis1, axis2))


def moveaxis(a: _t.Any, source: _t.Any, destination: _t.Any) -> ndarray:
    return ndarray._new(_np.moveaxis(_array_arg(a, "moveaxis"), source, destination))


def expand_dims(a: _t.Any, axis: _t.Any) -> ndarray:
    return ndarray._new(_np.expand_dims(_array_arg(a, "expand_dims"), axis))


def squeeze(a: _t.Any, axis: _t.Any = None) -> ndarray:
    return ndarray._new(_np.squeeze(_array_arg(a, "squeeze"), axis))


def ravel(a: _t.Any, order: str = "C") -> ndarray:
    return ndarray._new(_np.ravel(_array_arg(a, "ravel"), order))


def broadcast_to(array: _t.Any, shape: _t.Any) -> ndarray:
    return ndarray._new(_np.broadcast_to(_array_arg(array, "broadcast_to"), shape))


def _device_sequence(tup: _t.Any, where: str) -> list[_np.ndarray]:
    arrays = []
    for item in tup:
        if type(item) is not ndarray:
            raise TypeError(f"Only cupy arrays can be {where} ({_MODULE}: got {type(item)}"
                            + ("; move host arrays with asarray first)" if isinstance(item, _np.ndarray) else ")"))
        arrays.append(item._a)
    return arrays


def stack(tup: _t.Any, axis: int = 0, out: _t.Any = None, *, dtype: _t.Any = None,
          casting: str = "same_kind") -> ndarray:
    arrays = _device_sequence(tup, "stacked")
    return _returning(_np.stack(arrays, axis=axis, out=_out(out, "stack"), dtype=dtype, casting=casting), out)


def may_share_memory(a: _t.Any, b: _t.Any, max_work: _t.Any = None) -> bool:
    """Whether the two device arrays may share memory (their bounds overlap): a host bool, no sync, as CuPy's."""
    return bool(_np.may_share_memory(_array_arg(a, "may_share_memory"), _array_arg(b, "may_share_memory")))


def concatenate(tup: _t.Any, axis: _t.Any = 0, out: _t.Any = None, *, dtype: _t.Any = None,
                casting: str = "same_kind") -> ndarray:
    arrays = _device_sequence(tup, "concatenated")
    result = _np.concatenate(arrays, axis=axis, out=_out(out, "concatenate"), dtype=dtype, casting=casting)
    return _returning(result, out)


def split(ary: _t.Any, indices_or_sections: _t.Any, axis: int = 0) -> list[ndarray]:
    """Split into a list of views; the split points are host ints (an int, a sequence or a NumPy int array)."""
    if type(indices_or_sections) is ndarray:
        raise TypeError("split: give the split points as host ints; device split points would be read one by "
                        "one (a host sync each)")
    return [ndarray._new(part) for part in _np.split(_array_arg(ary, "split"), indices_or_sections, axis=axis)]


def copyto(dst: _t.Any, src: _t.Any, casting: str = "same_kind", where: _t.Any = True) -> None:
    _np.copyto(_array_arg(dst, "copyto"), _arg(src, "copyto"), casting=casting, where=_arg(where, "copyto"))


def where(condition: _t.Any, x: _t.Any = None, y: _t.Any = None) -> _t.Any:
    if x is None and y is None:
        syncs.record("nonzero")  # the number of True values sizes the result
        return _wrap(_np.where(_array_arg(condition, "where")))
    if x is None or y is None:
        raise ValueError("Must provide both 'x' and 'y' or neither.")
    return _wrap(_np.where(_arg(condition, "where"), _arg(x, "where"), _arg(y, "where")))


def _cupy_add_reduceat(a: _np.ndarray, ids: _np.ndarray, axis: int, dtype: _t.Any) -> _np.ndarray:
    """``add.reduceat`` computed as CuPy 14 computes it (cupy/_core/_routines_indexing.pyx, _add_reduceat): a running
    total along ``axis`` and its differences at the indices, not a sum per run. So a large or non-finite value in
    one run leaks into the later runs' sums, as on a GPU (where NumPy's own reduceat would hide it)."""
    a = _np.moveaxis(a if dtype is None else a.astype(dtype), axis, 0)
    total = _np.cumsum(a, axis=0, dtype=a.dtype)
    starts = ids.astype(_np.int64)
    ends = _np.append(starts[1:], a.shape[0])
    before = _np.where((starts > 0)[(...,) + (None,) * (a.ndim - 1)], total[_np.maximum(starts - 1, 0)], 0)
    result = total[ends - 1] - before
    single = ends <= starts  # NumPy's (and CuPy's) rule: a non-increasing pair gives the row at the start index
    result[single] = a[starts[single]]
    return _np.moveaxis(result.astype(a.dtype, copy=False), 0, axis)


def unique(ar: _t.Any, return_index: bool = False, return_inverse: bool = False, return_counts: bool = False,
           axis: _t.Any = None) -> _t.Any:
    syncs.record("nonzero")  # the number of distinct values sizes the result
    found = _np.unique(_array_arg(ar, "unique"), return_index=return_index, return_inverse=return_inverse,
                       return_counts=return_counts, axis=axis)
    return tuple(_wrap(part) for part in found) if isinstance(found, tuple) else _wrap(found)


def nonzero(a: _t.Any) -> _t.Any:
    syncs.record("nonzero")  # the number of nonzero values sizes the result
    return _wrap(_np.nonzero(_array_arg(a, "nonzero")))


def flatnonzero(a: _t.Any) -> ndarray:
    syncs.record("nonzero")
    return _wrap(_np.flatnonzero(_array_arg(a, "flatnonzero")))


def take(a: _t.Any, indices: _t.Any, axis: _t.Any = None, out: _t.Any = None) -> ndarray:
    return _array_arg_method(a, "take").take(indices, axis=axis, out=out)


def _array_arg_method(a: _t.Any, where: str) -> ndarray:
    _array_arg(a, where)
    return a


def take_along_axis(a: _t.Any, indices: _t.Any, axis: _t.Any) -> ndarray:
    return ndarray._new(_np.take_along_axis(_array_arg(a, "take_along_axis"),
                                            _array_arg(indices, "take_along_axis"), axis))


def clip(a: _t.Any, a_min: _t.Any, a_max: _t.Any, out: _t.Any = None) -> ndarray:
    return _array_arg_method(a, "clip").clip(a_min, a_max, out=out)


def count_nonzero(a: _t.Any, axis: _t.Any = None) -> ndarray:
    return _wrap(_np.asarray(_np.count_nonzero(_array_arg(a, "count_nonzero"), axis=axis)))


def isclose(a: _t.Any, b: _t.Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> ndarray:
    with _quiet():
        return _wrap(_np.isclose(_arg(a, "isclose"), _arg(b, "isclose"), rtol=rtol, atol=atol, equal_nan=equal_nan))


def allclose(a: _t.Any, b: _t.Any, rtol: float = 1e-05, atol: float = 1e-08, equal_nan: bool = False) -> ndarray:
    """A 0-d boolean device array (CuPy does not read it back: ``bool()`` of it is the sync)."""
    return isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan).all()


def result_type(*arrays_and_dtypes: _t.Any) -> _np.dtype:
    values = []
    for value in arrays_and_dtypes:
        if type(value) is ndarray:
            values.append(value.dtype)
        elif isinstance(value, _np.ndarray):
            raise _host_array_error(value, "result_type")
        else:
            values.append(value)
    return _np.result_type(*values)


def argsort(a: _t.Any, axis: _t.Any = -1, kind: _t.Any = None) -> ndarray:
    return _array_arg_method(a, "argsort").argsort(axis=axis, kind=kind)


def sort(a: _t.Any, axis: _t.Any = -1, kind: _t.Any = None) -> ndarray:
    return ndarray._new(_np.sort(_array_arg(a, "sort"), axis=axis, kind=kind))


def _reduction(name: str, method: str | None = None) -> _t.Callable:
    method = method or name

    def reduce(a: _t.Any, *args: _t.Any, **kwargs: _t.Any) -> ndarray:
        return getattr(_array_arg_method(a, name), method)(*args, **kwargs)

    reduce.__name__ = name
    return reduce


sum = _reduction("sum")  # noqa: A001 - CuPy's names shadow the builtins, as NumPy's do
prod = _reduction("prod")
mean = _reduction("mean")
var = _reduction("var")
std = _reduction("std")
max = _reduction("max")  # noqa: A001
min = _reduction("min")  # noqa: A001
amax = _reduction("amax", "max")
amin = _reduction("amin", "min")
argmax = _reduction("argmax")
argmin = _reduction("argmin")
any = _reduction("any")  # noqa: A001
all = _reduction("all")  # noqa: A001
cumsum = _reduction("cumsum")
cumprod = _reduction("cumprod")


def dot(a: _t.Any, b: _t.Any, out: _t.Any = None) -> ndarray:
    with _quiet():
        return _returning(_np.dot(_arg(a, "dot"), _arg(b, "dot"), out=_out(out, "dot")), out)


def matmul(x1: _t.Any, x2: _t.Any, /, out: _t.Any = None, **kwargs: _t.Any) -> ndarray:
    with _quiet():
        result = _np.matmul(_array_arg(x1, "matmul"), _array_arg(x2, "matmul"), out=_out(out, "matmul"), **kwargs)
    return _returning(result, out)


def outer(a: _t.Any, b: _t.Any, out: _t.Any = None) -> ndarray:
    with _quiet():
        return _returning(_np.outer(_array_arg(a, "outer"), _array_arg(b, "outer"), out=_out(out, "outer")), out)


def tensordot(a: _t.Any, b: _t.Any, axes: _t.Any = 2) -> ndarray:
    with _quiet():
        return _wrap(_np.tensordot(_array_arg(a, "tensordot"), _array_arg(b, "tensordot"), axes))


def einsum(subscripts: str, *operands: _t.Any, dtype: _t.Any = None, **kwargs: _t.Any) -> ndarray:
    arrays = [_array_arg(operand, "einsum") for operand in operands]
    with _quiet():
        return _wrap(_np.einsum(subscripts, *arrays, dtype=dtype, **kwargs))


# --------------------------------------------------------------------------------------------------
# Submodules: linalg, random, cuda
# --------------------------------------------------------------------------------------------------

class _Namespace:
    """A submodule holding only the names given; any other attribute is an AttributeError naming the version."""

    def __init__(self, name: str, **members: _t.Any) -> None:
        self.__name__ = f"{_MODULE}.{name}"
        self.__dict__.update(members)

    def __getattr__(self, name: str) -> _t.Any:
        raise AttributeError(
            f"module {self.__name__!r} has no attribute {name!r} (not in the CuPy {CUPY_VERSION} API subset "
            f"this test library implements; see SUPPORTED)"
        )

    def __repr__(self) -> str:
        return f"<module {self.__name__!r} (strict CuPy {CUPY_VERSION} stand-in)>"


def _norm(x: _t.Any, ord: _t.Any = None, axis: _t.Any = None, keepdims: bool = False) -> ndarray:
    with _quiet():
        return _wrap(_np.linalg.norm(_array_arg(x, "linalg.norm"), ord=ord, axis=axis, keepdims=keepdims))


linalg = _Namespace("linalg", norm=_norm)

_rng = _np.random.default_rng()


def _float_dtype(dtype: _t.Any) -> _np.dtype:
    dtype = _np.dtype(dtype)
    if dtype.char not in "fd":
        raise TypeError(f"cupy.random only supports float32 and float64 (got {dtype})")
    return dtype


def _size(size: _t.Any) -> _t.Any:
    return () if size is None else size


def _seed(seed: _t.Any = None) -> None:
    """Reset the generator; the same seed gives the same numbers (not CuPy's numbers: a NumPy PCG64 draws them)."""
    global _rng
    if seed is not None and not isinstance(seed, (int, _np.integer)):
        raise TypeError(f"random.seed: the seed must be None or an int, got {type(seed)}")
    _rng = _np.random.default_rng(None if seed is None else int(seed))


def _random_sample(size: _t.Any = None, dtype: _t.Any = float) -> ndarray:
    dtype = _float_dtype(dtype)
    return ndarray._new(_np.asarray(_rng.random(_size(size), dtype=dtype.type)))


def _size_and_dtype(name: str, size: tuple, kwarg: dict) -> tuple[tuple, _np.dtype]:
    unexpected = set(kwarg) - {"dtype"}
    if unexpected:
        raise TypeError(f"random.{name}() got unexpected keyword argument(s) {', '.join(sorted(unexpected))}")
    return size, _float_dtype(kwarg.get("dtype", float))


def _rand(*size: int, **kwarg: _t.Any) -> ndarray:
    size, dtype = _size_and_dtype("rand", size, kwarg)
    return _random_sample(size, dtype)


def _randn(*size: int, **kwarg: _t.Any) -> ndarray:
    size, dtype = _size_and_dtype("randn", size, kwarg)
    return _standard_normal(size, dtype)


def _standard_normal(size: _t.Any = None, dtype: _t.Any = float) -> ndarray:
    dtype = _float_dtype(dtype)
    return ndarray._new(_np.asarray(_rng.standard_normal(_size(size), dtype=dtype.type)))


def _uniform(low: _t.Any = 0.0, high: _t.Any = 1.0, size: _t.Any = None, dtype: _t.Any = float) -> ndarray:
    dtype = _float_dtype(dtype)
    draw = _rng.uniform(_arg(low, "random.uniform"), _arg(high, "random.uniform"), size)
    return ndarray._new(_np.asarray(draw, dtype=dtype))


def _normal(loc: _t.Any = 0.0, scale: _t.Any = 1.0, size: _t.Any = None, dtype: _t.Any = float) -> ndarray:
    dtype = _float_dtype(dtype)
    draw = _rng.normal(_arg(loc, "random.normal"), _arg(scale, "random.normal"), size)
    return ndarray._new(_np.asarray(draw, dtype=dtype))


def _randint(low: int, high: _t.Any = None, size: _t.Any = None, dtype: _t.Any = "l") -> ndarray:
    low, high = _host_number(low, "random.randint"), _host_number(high, "random.randint")
    return ndarray._new(_np.asarray(_rng.integers(low, high, size=_size(size), dtype=dtype)))


def _choice(a: _t.Any, size: _t.Any = None, replace: bool = True, p: _t.Any = None) -> ndarray:
    population = a if isinstance(a, (int, _np.integer)) else _array_arg(a, "random.choice")
    probabilities = None if p is None else _array_arg(p, "random.choice(p=...)")
    return ndarray._new(_np.asarray(_rng.choice(population, size=size, replace=replace, p=probabilities)))


def _permutation(a: _t.Any) -> ndarray:
    population = a if isinstance(a, (int, _np.integer)) else _array_arg(a, "random.permutation")
    return ndarray._new(_np.asarray(_rng.permutation(population)))


def _shuffle(a: _t.Any) -> None:
    _rng.shuffle(_array_arg(a, "random.shuffle"))


random = _Namespace(
    "random", seed=_seed, rand=_rand, randn=_randn, random=_random_sample, random_sample=_random_sample,
    ranf=_random_sample, sample=_random_sample, uniform=_uniform, normal=_normal, standard_normal=_standard_normal,
    randint=_randint, choice=_choice, permutation=_permutation, shuffle=_shuffle,
)
_STREAM = _Namespace("cuda.Stream", synchronize=lambda: None)  # the CPU computes as it goes: nothing to wait for
cuda = _Namespace("cuda", runtime=_Namespace("cuda.runtime", getDeviceCount=lambda: 1), Stream=_STREAM,
                  get_current_stream=lambda: _STREAM)


def __getattr__(name: str) -> _t.Any:
    raise AttributeError(
        f"module {_MODULE!r} has no attribute {name!r} (not in the CuPy {CUPY_VERSION} API subset "
        f"this test library implements; see SUPPORTED)"
    )


def _check_supported() -> None:
    """Every name in SUPPORTED exists here (run at import, so the listing cannot drift from the code)."""
    namespace = globals()
    for key in SUPPORTED:
        head, _, rest = key.partition(".")
        obj = namespace[head]
        for part in rest.split(".") if rest else ():
            obj = getattr(obj, part)


_check_supported()
