"""Shared fixtures: the backend fixture, a capped hypothesis profile, and a clean global state per test."""
import numpy as np
import pytest
from hypothesis import HealthCheck, settings as hypothesis_settings

import tinygrad_seq as ts
from tinygrad_seq import settings

# Capped so the whole suite stays well under five minutes on two cores.
hypothesis_settings.register_profile(
    "tinygrad_seq", max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
hypothesis_settings.load_profile("tinygrad_seq")


def cupy_unavailable_reason():
    """Why the CuPy backend cannot run here, or None when it can."""
    try:
        import cupy
    except ImportError:
        return "CuPy is not installed (pip install 'tinygrad-seq[cuda12]' on a machine with an NVIDIA GPU)"
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as error:  # CuPy's CUDA errors have their own types
        return f"CuPy is installed but no CUDA device can be used ({error})"
    return None if count > 0 else "CuPy is installed but no CUDA device was found"


@pytest.fixture(params=["numpy", "cupy"])
def backend(request):
    """Runs the test once per backend; the CuPy run is skipped, with the reason, where it cannot run."""
    if request.param == "cupy":
        reason = cupy_unavailable_reason()
        if reason:
            pytest.skip(reason)
    with ts.use_backend(request.param) as chosen:
        yield chosen


@pytest.fixture(autouse=True)
def clean_global_state():
    """Each test starts from the same settings (grad on, no tags, float32, the same seed) and leaves every one as it found it."""
    saved = settings.snapshot()
    ts.manual_seed(0)
    yield
    settings.restore(saved)


def to_host(array):
    """A NumPy copy of a backend array (for comparisons)."""
    return ts.get_backend().to_host(array) if not isinstance(array, np.ndarray) else array
