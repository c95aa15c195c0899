"""The few global settings of tinygrad_seq, all in one place.

Everything here is process-wide state that the rest of the package reads;
nothing else in the package keeps mutable module-level state. Change these
through the public functions (``ts.set_backend``, ``ts.no_grad``, ``ts.tags``,
``ts.detect_anomaly``, ``ts.manual_seed``, ``ts.set_default_dtype``), not by
assigning to them directly.

=================  ============================================================
setting            meaning
=================  ============================================================
``backend``        the current :class:`~tinygrad_seq.backend.Backend`; new
                   tensors are made on it (set from ``TINYGRAD_SEQ_BACKEND``
                   on first use, NumPy when unset)
``array_types``    the array classes of the backends loaded so far; CuPy's is
                   added only once CuPy has been imported
``cupy_loaded``    True once the CuPy backend has been created, so the
                   two-backends-in-one-op check costs nothing without it
``grad_enabled``   False inside ``no_grad()``: ops then record no graph
``current_tags``   the tags of ``ts.tags(...)`` in force, recorded on new nodes
``anomaly_mode``   True inside ``detect_anomaly()``
``host_rng``       NumPy generator for initialisation and sampling (reseeded
                   by ``manual_seed``); parameters are drawn on the host so
                   one seed gives the same weights on every backend
``seed``           the last seed given to ``manual_seed`` (None if never)
``default_dtype``  dtype of floats made from Python numbers and lists
``cell_registry``  name -> cell class, filled by ``nn.register_cell``
``transparent``    True inside ``ts.transparent()``: cells compose primitive
                   ops gate by gate instead of one node per step
``kernels``        False inside ``ts.without_kernels()``: built-in cells run
                   on the recorded path instead of their hand-written kernels
``recording``      None, or the :class:`~tinygrad_seq.nn.recorded.Recording`
                   that ``Function.apply`` and the host conversions report to
                   while a cell step is being recorded (not a setting: set
                   only by ``nn.recorded``)
``version_clock``  in-place changes counted so far, process-wide (not a
                   setting: advanced by ``Tensor._bump_version``); a graph
                   node records it so backward can tell whether a tensor it
                   saved changed after it ran
=================  ============================================================
"""
from __future__ import annotations

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
version_clock: int = 0
recording: Any = None
