"""Shared fixtures: the backend fixture, a capped hypothesis profile, and a clean global state per test."""
import contextlib

import pytest
from hypothesis import HealthCheck, settings as hypothesis_settings

import tinygrad_seq as ts
from tinygrad_seq import backend as backend_module, settings
from tinygrad_seq.backend import CupyBackend

from . import strict_device

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


@contextlib.contextmanager
def installed(device):
    """``device`` registered under its name for the block; whatever was there before comes back after it."""
    previous = backend_module.register(device)
    try:
        yield device
    finally:
        if previous is not None:
            backend_module.register(previous)
        else:
            backend_module.unregister(device.name)


@contextlib.contextmanager
def on_strict_device():
    """The block runs on tests/strict_device.py, installed as "cupy" and made the current backend, its counters reset."""
    with installed(CupyBackend(strict_device)), ts.use_backend("cupy") as chosen:
        strict_device.syncs.reset()
        strict_device.uploads.reset()
        yield chosen


@pytest.fixture(params=["numpy", "strict", "cupy"])
def backend(request):
    """Runs the test once per backend: NumPy; the real CupyBackend on tests/strict_device.py, a CPU stand-in
    for CuPy that refuses what CuPy refuses (installed as "cupy" for the test); and the real CuPy where a GPU
    is present (skipped, with the reason, elsewhere)."""
    if request.param == "cupy":
        reason = cupy_unavailable_reason()
        if reason:
            pytest.skip(reason)
    if request.param == "strict":
        with on_strict_device() as chosen:
            yield chosen
        return
    with ts.use_backend(request.param) as chosen:
        yield chosen


@pytest.fixture(autouse=True)
def clean_global_state():
    """Each test starts from the same settings (grad on, no tags, float32, the same seed) and leaves every one as it found it."""
    saved = settings.snapshot()
    ts.manual_seed(0)
    yield
    settings.restore(saved)


def to_host(value):
    """For comparisons: a backend array (or a Tensor's) as a NumPy array; lists and tuples item by item; None stays."""
    if value is None:
        return None
    if isinstance(value, ts.Tensor):
        value = value.data
    if isinstance(value, (list, tuple)):
        return type(value)(to_host(v) for v in value)
    return backend_module.to_host(value)


class ForgetsTheTuple(ts.Function):
    """A user's op whose backward returns its one gradient bare, not as ``(grad,)``: the engine's tests and the
    recorded path's use it."""

    __slots__ = ()

    def forward(self, x):
        return x * 2

    def backward(self, grad):
        return grad * 2  # not (grad * 2,)
