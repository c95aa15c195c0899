"""Loading a module of compiled loops (numba) without letting a broken numba stop the library.

numba is a core dependency, imported on first use (it takes a quarter of a
second). Each module of loops (ops/loops.py for the cell steps,
optim/loops.py for the optimizers) has a NumPy twin that runs where its
loops cannot: without numba (a broken install), or when importing the module
fails (numba there but unusable: no writable cache folder, an LLVM error),
which warns once. A loop that fails to compile later, on its first call,
raises: that is a numba bug to report, not a state of the machine.
"""
from __future__ import annotations

import importlib
import warnings
from collections.abc import Collection
from types import ModuleType
from typing import Any

import numpy as np

from . import settings


def load(module: str, fallback: str) -> ModuleType | None:
    """The module ``module`` (dotted), or None when numba is missing or unusable; ``fallback`` says what runs then."""
    try:
        return importlib.import_module(module)
    except ImportError:
        return None
    except Exception as error:
        path = module.removeprefix("tinygrad_seq.").replace(".", "/") + ".py"
        warnings.warn(f"{fallback}, not {path}'s compiled loops: {type(error).__name__}: {error}. Set NUMBA_CACHE_DIR "
                      "to a writable folder if the cache is the cause", RuntimeWarning, stacklevel=3)
        return None


def can_run(arrays: tuple[Any, ...], dtypes: Collection[np.dtype]) -> bool:
    """Whether compiled loops may run on ``arrays``: C-contiguous NumPy arrays of one dtype among ``dtypes``,
    outside ``ts.without_numba()`` (``settings.numba_loops``)."""
    if not settings.numba_loops:
        return False
    dtype = arrays[0].dtype
    if dtype not in dtypes:
        return False
    for array in arrays:
        if type(array) is not np.ndarray or array.dtype != dtype or not array.flags.c_contiguous:
            return False
    return True
