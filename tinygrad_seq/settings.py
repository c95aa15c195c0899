"""The few global settings of tinygrad_seq, all in one place, and the one way to change them.

Everything here is process-wide state that the rest of the package reads;
nothing else in the package keeps mutable module-level state. Every mode
(``ts.no_grad``, ``ts.enable_grad``, ``ts.tags``, ``ts.detect_anomaly``,
``ts.transparent``, ``ts.without_kernels``, ``ts.without_numba``, ``ts.use_backend``) is a thin use
of :class:`override`, which sets any of the settings for a block and restores
them after it, nested and exception-safe:

>>> from tinygrad_seq import settings
>>> with settings.override(transparent=True, anomaly_mode=True):
...     settings.transparent, settings.anomaly_mode
(True, True)
>>> settings.transparent
False

=================  =====================================================  ==============================
setting            meaning                                                written by
=================  =====================================================  ==============================
``backend``        the current :class:`~tinygrad_seq.backend.Backend`;    ``ts.set_backend``,
                   new tensors are made on it (from                       ``ts.use_backend``, first use
                   ``TINYGRAD_SEQ_BACKEND`` on first use, NumPy when
                   unset)
``grad_enabled``   False inside ``no_grad()``: ops then record no graph   ``ts.no_grad``, ``ts.enable_grad``
``current_tags``   the tags of ``ts.tags(...)`` in force, recorded on     ``ts.tags`` (nn.Recurrent sets
                   new nodes                                              t, layer, direction, cell)
``anomaly_mode``   True inside ``detect_anomaly()``                       ``ts.detect_anomaly``
``host_rng``       NumPy generator for initialisation, dropout on the     ``ts.manual_seed``;
                   host and sampling; parameters are drawn on the host    ``course.check`` (its own, for
                   so one seed gives the same weights on every backend    the block)
``seed``           the last seed given to ``manual_seed`` (None if        ``ts.manual_seed``
                   never)
``default_dtype``  dtype of floats made from Python numbers and lists     ``ts.set_default_dtype``
``cell_registry``  name -> cell class                                     ``nn.register_cell``
``transparent``    True inside ``ts.transparent()``: cells run gate by    ``ts.transparent``,
                   gate instead of one node per step                      ``testing.on_path``
``kernels``        False inside ``ts.without_kernels()``: built-in        ``ts.without_kernels``,
                   cells run on the recorded path, not their kernels      ``testing.on_path``
``numba_loops``    False inside ``ts.without_numba()``: the float32      ``ts.without_numba``
                   LSTM and GRU kernels do their elementwise work in
                   NumPy instead of compiled loops (ops/loops.py), and
                   Adam its update (optim/loops.py)
``recording``      None, or the ``nn.tape.Recording`` that                ``nn.recorded``, while it
                   ``Function.apply`` and the host conversions report     records a cell step
                   to
``cell_forward``   True while ``nn.Recurrent`` runs a cell's own          ``nn.steps.TransparentStep``
                   ``forward`` (the transparent path): ``x += y`` makes
                   a new tensor there, as on the recorded path
=================  =====================================================  ==============================

Not settings, and never overridden or restored: facts about the process.

=================  =====================================================  ==============================
``array_types``    the array classes of the backends loaded so far        ``backend.register`` (CuPy's
                                                                          first use, or yours)
``cupy_loaded``    True while a device backend (CuPy, or one installed    ``backend.register``,
                   by ``backend.register``) is loaded, so the             ``backend.unregister``
                   two-backends-in-one-op check costs nothing without it
``version_clock``  in-place changes counted so far; a graph node          ``Tensor._bump_version``
                   records it so backward can tell whether a tensor it
                   saved changed after it ran
=================  =====================================================  ==============================
"""
from __future__ import annotations

import contextlib
import sys
from typing import Any

import numpy as np

backend: Any = None
array_types: tuple[type, ...] = (np.ndarray,)
cupy_loaded: bool = False
grad_enabled: bool = True
current_tags: dict[str, Any] = {}
anomaly_mode: bool = False
host_rng: np.random.Generator = np.random.default_rng()
seed: int | None = None
default_dtype: np.dtype = np.dtype(np.float32)
cell_registry: dict[str, type] = {}
transparent: bool = False
kernels: bool = True
numba_loops: bool = True
version_clock: int = 0
recording: Any = None
cell_forward: bool = False

SETTINGS = ("backend", "grad_enabled", "current_tags", "anomaly_mode", "host_rng", "seed", "default_dtype",
            "cell_registry", "transparent", "kernels", "numba_loops", "recording", "cell_forward")

_module = sys.modules[__name__]
_NAMES = frozenset(SETTINGS)


class override(contextlib.ContextDecorator):
    """Set any of the settings inside a block (or a decorated function) and restore them after it.

    Nested and exception-safe; one object may be entered again while in use
    (a decorated function calling itself). An unknown name is refused.
    """

    def __init__(self, **values: Any) -> None:
        unknown = sorted(values.keys() - _NAMES)
        if unknown:
            raise TypeError(f"settings.override: no setting named {', '.join(map(repr, unknown))}; the settings are {', '.join(SETTINGS)}")
        self.values = values
        self._saved: list[dict[str, Any]] = []

    def __enter__(self) -> None:
        self._saved.append({name: getattr(_module, name) for name in self.values})
        for name, value in self.values.items():
            setattr(_module, name, value)

    def __exit__(self, *exc: object) -> None:
        for name, value in self._saved.pop().items():
            setattr(_module, name, value)


def snapshot() -> dict[str, Any]:
    """Every setting's value (the tags and the cell registry copied), for :func:`restore`."""
    values = {name: getattr(_module, name) for name in SETTINGS}
    values["current_tags"] = dict(values["current_tags"])
    values["cell_registry"] = dict(values["cell_registry"])
    return values


def restore(values: dict[str, Any]) -> None:
    """Put back every setting a :func:`snapshot` holds."""
    for name, value in values.items():
        setattr(_module, name, value)
