"""Modules of compiled loops (numba): loaded on first use, run only where they can, never stopping the library.

numba is a core dependency, imported on first use (it takes a quarter of a
second). Each module of loops (ops/loops.py for the cell steps,
optim/loops.py for the optimizers) has a NumPy twin that runs where its
loops cannot: on arrays they do not take, inside ``ts.without_numba()``,
without numba (a broken install), or when importing the module fails (numba
there but unusable: no writable cache folder, an LLVM error), which warns
once. A loop that fails to compile later, on its first call, raises: that is
a numba bug to report, not a state of the machine.
"""
from __future__ import annotations

import importlib
import warnings
from collections.abc import Collection
from types import ModuleType
from typing import Any

import numpy as np

from . import settings

COMPILE = dict(cache=True, error_model="numpy")
"""numba.njit's options for every loop: cached on disk, and NumPy's error model (x / 0 is inf, not a check
that stops the loop from vectorising)."""


class Loops:
    """One module of compiled loops and the arrays it takes.

    ``loops.on(*arrays)`` is the module when its loops may run on ``arrays``
    (C-contiguous NumPy arrays of one dtype among ``dtypes``, outside
    ``ts.without_numba()``), else None: the caller then runs its NumPy twin.
    """

    def __init__(self, module: str, fallback: str, dtypes: Collection[Any]) -> None:
        self.module, self.fallback = module, fallback  # fallback: what runs instead, said in the warning
        self.dtypes = tuple(np.dtype(d) for d in dtypes)
        self._loaded: ModuleType | None | bool = False  # False: not tried yet

    def on(self, *arrays: Any) -> ModuleType | None:
        if not settings.numba_loops:
            return None
        dtype = arrays[0].dtype
        if dtype not in self.dtypes:
            return None
        for array in arrays:
            if type(array) is not np.ndarray or array.dtype != dtype or not array.flags.c_contiguous:
                return None
        return self.load()

    def load(self) -> ModuleType | None:
        """The module, imported once; None when numba is missing or unusable."""
        if self._loaded is False:
            self._loaded = self._import()
        return self._loaded

    def forget(self) -> None:
        """Import again on next use (a test that breaks the import, and the one that mends it)."""
        self._loaded = False

    def _import(self) -> ModuleType | None:
        try:
            return importlib.import_module(self.module)
        except ImportError:
            return None
        except Exception as error:
            path = self.module.removeprefix("tinygrad_seq.").replace(".", "/") + ".py"
            warnings.warn(f"{self.fallback}, not {path}'s compiled loops: {type(error).__name__}: {error}. Set "
                          "NUMBA_CACHE_DIR to a writable folder if the cache is the cause", RuntimeWarning, stacklevel=4)
            return None
