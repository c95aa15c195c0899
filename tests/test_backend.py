"""The backend switch: choosing, errors, scatter-add, two backends in one op, lazy imports."""
import os
import subprocess
import sys
import types

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq.backend import CupyBackend
from tinygrad_seq import backend as backend_module
from tinygrad_seq import settings

from . import strict_device
from .conftest import cupy_unavailable_reason, installed, to_host


def run_python(code, **env):
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={**os.environ, **env}, timeout=120
    )


def test_default_backend_is_numpy():
    assert ts.get_backend().name == "numpy" and ts.get_backend().xp is np


def test_use_backend_restores_after_an_error():
    before = ts.get_backend()
    with pytest.raises(ZeroDivisionError):
        with ts.use_backend("numpy"):
            raise ZeroDivisionError
    assert ts.get_backend() is before


def test_unknown_backend_lists_the_choices():
    with pytest.raises(ts.BackendError, match=r"unknown backend 'jax': choose one of 'numpy', 'cupy'"):
        ts.set_backend("jax")


@pytest.mark.skipif(cupy_unavailable_reason() is None, reason="CuPy works here, so it cannot be missing")
def test_missing_cupy_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # makes `import cupy` fail even where it is installed
    monkeypatch.delitem(backend_module._loaded, "cupy", raising=False)
    with pytest.raises(ts.BackendError, match=r"CuPy is not installed.*pip install 'tinygrad-seq\[cuda12\]'"):
        ts.set_backend("cupy")


def _fake_cupy(device_count):
    def get_device_count():
        if isinstance(device_count, Exception):
            raise device_count
        return device_count

    runtime = types.SimpleNamespace(getDeviceCount=get_device_count)
    return types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime), ndarray=type("ndarray", (), {}))


@pytest.mark.parametrize(
    "count, message",
    [(0, "no CUDA device was found"), (RuntimeError("cudaErrorNoDevice"), "no CUDA device can be used \\(cudaErrorNoDevice\\)")],
)
def test_cupy_without_gpu_is_a_clear_error(monkeypatch, count, message):
    monkeypatch.setitem(sys.modules, "cupy", _fake_cupy(count))
    monkeypatch.delitem(backend_module._loaded, "cupy", raising=False)
    loaded_before = settings.cupy_loaded
    with pytest.raises(ts.BackendError, match=message + ".*use the 'numpy' backend"):
        ts.set_backend("cupy")
    assert ts.get_backend().name == "numpy" and "cupy" not in backend_module._loaded
    assert settings.cupy_loaded == loaded_before  # the failed load registered nothing


def test_environment_variable_picks_the_backend_at_import():
    bad = run_python("import tinygrad_seq", TINYGRAD_SEQ_BACKEND="tpu")
    assert bad.returncode != 0
    assert "TINYGRAD_SEQ_BACKEND='tpu': unknown backend 'tpu'" in bad.stderr and "unset TINYGRAD_SEQ_BACKEND" in bad.stderr
    good = run_python("import tinygrad_seq as ts; print(ts.get_backend().name)", TINYGRAD_SEQ_BACKEND="numpy")
    assert good.stdout.strip() == "numpy"


def test_import_needs_only_numpy():
    code = (
        "import sys, tinygrad_seq\n"
        "heavy = [m for m in ('cupy', 'graphviz', 'tqdm', 'matplotlib', 'torch', 'wasmtime') if m in sys.modules]\n"
        "print(heavy)"
    )
    assert run_python(code).stdout.strip() == "[]"


class FakeDeviceArray(np.ndarray):
    """Stands in for cupy.ndarray, so the two-backend check runs without a GPU."""


def test_two_backends_in_one_op_name_the_op():
    fake_xp = types.SimpleNamespace(**{name: getattr(np, name) for name in dir(np) if not name.startswith("_")})
    fake_xp.ndarray = FakeDeviceArray
    fake_xp.asarray = lambda a, dtype=None: np.asarray(a, dtype).view(FakeDeviceArray)
    with installed(ts.Backend("cupy", fake_xp)) as fake:
        assert settings.cupy_loaded and FakeDeviceArray in settings.array_types
        on_device = ts.Tensor.wrap(np.ones(3).view(FakeDeviceArray))
        on_host = ts.Tensor(np.ones(3))
        assert on_device.backend is fake and on_host.backend.name == "numpy"
        with pytest.raises(RuntimeError, match=r"Add: inputs live on two backends \(cupy and numpy; shapes \[\(3,\), \(3,\)\]\).*x.to\('cupy'\)"):
            on_device + on_host
        with pytest.raises(RuntimeError, match=r"MatMul: inputs live on two backends"):
            on_host @ on_device

        # Moving between backends is differentiable: the gradient comes back to the host.
        w = ts.Tensor([1.0, 2.0, 3.0], requires_grad=True)
        moved = w.to(fake)
        assert isinstance(moved.data, FakeDeviceArray) and moved.grad_fn.name == "ToBackend"
        (moved * on_device).sum().backward()
        assert type(w.grad) is np.ndarray and w.grad.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("rows, columns, vocabulary", [(2048, 64, 100), (50, 3, 7), (1, 1, 1), (9, 0, 4)])
def test_scatter_add_matches_add_at(rows, columns, vocabulary):
    rng = np.random.default_rng(rows)
    ids = rng.integers(0, vocabulary, rows)
    values = rng.standard_normal((rows, columns))
    expected = rng.standard_normal((vocabulary, columns))
    target = expected.copy()
    np.add.at(expected, ids, values)
    ts.get_backend().scatter_add(target, ids, values)
    np.testing.assert_allclose(target, expected, rtol=1e-12, atol=1e-12)


def test_scatter_add_with_no_ids_changes_nothing():
    target = np.ones((3, 2))
    ts.get_backend().scatter_add(target, np.array([], dtype=np.int64), np.zeros((0, 2)))
    assert (target == 1).all()


def test_set_default_dtype_rejects_ints():
    with pytest.raises(TypeError, match="must be a float dtype; got int32"):
        ts.set_default_dtype("int32")
    assert ts.get_default_dtype() == np.float32


def test_cupy_backend_matches_numpy(backend):
    """On a GPU the same seed and ops give the same numbers on both backends."""
    if backend.name != "cupy":
        pytest.skip("compares CuPy with NumPy; runs only on the CuPy backend")
    ts.manual_seed(3)
    w = ts.randn(4, 3, dtype="float64", requires_grad=True)
    x = ts.Tensor(np.linspace(-1, 1, 8).reshape(2, 4))
    (x @ w).tanh().sum().backward()
    with ts.use_backend("numpy"):
        ts.manual_seed(3)
        w_host = ts.randn(4, 3, dtype="float64", requires_grad=True)
        (ts.Tensor(np.linspace(-1, 1, 8).reshape(2, 4)) @ w_host).tanh().sum().backward()
    np.testing.assert_array_equal(w.numpy(), w_host.numpy())
    np.testing.assert_allclose(backend.to_host(w.grad), w_host.grad, rtol=1e-12)
    moved = w.to("numpy")
    assert moved.backend.name == "numpy" and moved.grad_fn.name == "ToBackend"


def test_every_name_the_stand_in_allows_exists_in_the_real_cupy():
    """tests/strict_device.py lets the library use only what CuPy has: checked against the real CuPy on a GPU."""
    reason = cupy_unavailable_reason()
    if reason:
        pytest.skip(reason)
    import cupy

    absent = object()  # not None: cupy.newaxis is None
    missing = []
    for key in strict_device.SUPPORTED:
        obj = cupy
        for part in key.split("."):
            obj = getattr(obj, part, absent)
        if obj is absent:
            missing.append(key)
    assert missing == [], f"the stand-in allows {missing}, which CuPy {cupy.__version__} lacks"
    assert cupy.__version__.split(".")[0] == strict_device.CUPY_VERSION.split(".")[0]
    values = cupy.arange(6, dtype=cupy.float32)
    ids = cupy.asarray([0, 2, 2])
    for method, ufuncs in strict_device.UFUNC_METHODS.items():
        for name in ufuncs or ("add", "multiply", "maximum"):
            ufunc = getattr(cupy, name)
            operand = values.astype(cupy.int32) if name.startswith("bitwise") else values
            call = {"outer": lambda: ufunc.outer(operand, operand), "reduce": lambda: ufunc.reduce(operand),
                    "accumulate": lambda: ufunc.accumulate(operand),
                    "reduceat": lambda: ufunc.reduceat(operand, cupy.asarray([0, 3])),
                    "at": lambda: ufunc.at(operand.copy(), ids, operand[:3])}[method]
            call()  # raises NotImplementedError where the stand-in's table claims more than CuPy has


def test_register_installs_a_backend_by_name_and_unregister_removes_it():
    fake_xp = types.SimpleNamespace(ndarray=FakeDeviceArray, asarray=lambda a, dtype=None: np.asarray(a, dtype).view(FakeDeviceArray),
                                    random=types.SimpleNamespace(seed=lambda n: seeds.append(n)))
    seeds = []
    device = backend_module.CupyBackend(fake_xp, name="fakedevice")
    assert backend_module.register(device) is None and seeds == [0]  # seeded with the last manual_seed
    try:
        assert ts.Tensor.wrap(np.ones(2).view(FakeDeviceArray)).backend is device
        with ts.use_backend("fakedevice"):
            assert type(ts.Tensor([1.0, 2.0]).data) is FakeDeviceArray
        ts.manual_seed(7)
        assert seeds == [0, 7]
        replacement = backend_module.CupyBackend(fake_xp, name="fakedevice")
        assert backend_module.register(replacement) is device and backend_module.backend_named("fakedevice") is replacement
    finally:
        backend_module.unregister("fakedevice")
        ts.set_backend("numpy")
    assert ts.Tensor.wrap(np.ones(2).view(FakeDeviceArray)).backend.name == "numpy"
    with pytest.raises(ts.BackendError, match="unknown backend 'fakedevice'"):
        ts.set_backend("fakedevice")
    with pytest.raises(ts.BackendError, match="the name 'numpy' is the host backend's"):
        backend_module.register(backend_module.Backend("numpy", np))


def test_cupy_sums_repeated_ids_exactly_and_the_same_way_every_time():
    """A frequent id with large gradients beside rare ones with small: each id's sum as exact as float32 allows
    (CuPy's add.reduceat, a running total's differences, would lose the small ones), and the same on every run."""
    rng = np.random.default_rng(0)
    ids = np.where(rng.random(5000) < 0.8, 7, rng.integers(0, 50, 5000))  # more ids than one one-hot block
    values = np.where((ids == 7)[:, None], 1e4, 1e-3) * rng.standard_normal((5000, 3))
    expected = np.zeros((50, 3))
    np.add.at(expected, ids, values)
    device = CupyBackend(strict_device)
    results = []
    for _ in range(2):
        target = device.xp.zeros((50, 3), dtype=np.float32)
        device.scatter_add(target, device.asarray(ids), device.asarray(values.astype(np.float32)))
        results.append(device.to_host(target))
    np.testing.assert_allclose(results[0], expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(results[0], results[1])
    cumulative = np.cumsum(values.astype(np.float32)[np.argsort(ids, kind="stable")], axis=0)
    assert np.abs(cumulative).max() * 1e-7 > 1e-4  # what a running total's differences would lose in float32


def test_registered_names_work_everywhere_a_backend_is_named():
    with installed(CupyBackend(strict_device, name="strictdev")) as device:
        x = ts.Tensor([1.0, 2.0], requires_grad=True)
        moved = x.to("strictdev")
        assert moved.backend is device and type(moved.data) is strict_device.ndarray
        model = ts.nn.Linear(2, 1).to("strictdev")  # a module by the same name (it once took only numpy and cupy)
        assert all(type(p.data) is strict_device.ndarray for p in model.parameters())
        (x * 2).backward(device.asarray(np.array([1.0, 1.0])))  # a device gradient for a host tensor: moved over
        (x * 2).backward(ts.Tensor([1.0, 1.0]))
        assert to_host(x.grad).tolist() == [4.0, 4.0]
        ts.set_backend("strictdev")
        with pytest.raises(ts.BackendError, match="'strictdev' is the current backend; switch first"):
            backend_module.unregister("strictdev")
        replacement = CupyBackend(strict_device, name="strictdev")
        backend_module.register(replacement)
        assert ts.get_backend() is replacement  # the current backend follows its replacement
        ts.set_backend("numpy")


@pytest.mark.parametrize("target", ["cuda", "cuda:0", "GPU"])
def test_pytorchs_name_for_the_gpu_points_to_cupy(target):
    for thing, op in ((ts.ones(2), "to"), (ts.nn.LSTM(3, 4), "LSTM.to")):
        with pytest.raises(ValueError, match=rf"{op}: '{target}' is neither a backend \('numpy', 'cupy'.*\) nor a dtype "
                                             r"\('float32', 'float64', ...\). For the GPU, use .to\('cupy'\)"):
            thing.to(target)
    with pytest.raises(ValueError, match=r"to: 'fp32' is neither a backend .* nor a dtype \('float32', 'float64', ...\).$"):
        ts.ones(2).to("fp32")  # no GPU hint where the name is no GPU's
    for not_a_number in (None, str, dict):  # NumPy reads these as float64, a string and an object dtype
        with pytest.raises(ValueError, match=r"to: .* is neither a backend"):
            ts.ones(2).to(not_a_number)
    assert [ts.ones(2).to(t).dtype for t in (np.float32, float, "float64")] == [np.float32, np.float64, np.float64]


def test_pytorchs_names_for_the_cpu_and_its_dtypes_point_to_this_librarys():
    with pytest.raises(ValueError, match=r"^to: 'cpu' is neither a backend .*For the CPU \(PyTorch's 'cpu'\), use \.to\('numpy'\)$"):
        ts.ones(2).to("cpu")
    torch = pytest.importorskip("torch", reason="needs torch (pip install torch==2.13.0)")
    with pytest.raises(ValueError, match=r"^to: torch\.float64 is neither .*A PyTorch dtype: name it as NumPy does, \.to\('float64'\)$"):
        ts.ones(2).to(torch.float64)
    with pytest.raises(ValueError, match=r"For the CPU \(PyTorch's 'cpu'\), use \.to\('numpy'\)$"):
        ts.ones(2).to(torch.device("cpu"))
    with pytest.raises(ValueError, match=r"For the GPU, use \.to\('cupy'\)"):
        ts.ones(2).to(torch.device("cuda"))
