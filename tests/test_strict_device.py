"""The strict device array library (tests/strict_device.py): CuPy's behaviour where it matters, on the CPU."""
import copy
import inspect
import operator
import pickle
import sys

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import backend as backend_module
from tinygrad_seq import settings
from tinygrad_seq.backend import CupyBackend

from . import strict_device as sd

HOST_ARRAY = r"Unsupported type <class 'numpy.ndarray'>.*asarray"


@pytest.fixture
def x32():
    return sd.asarray([[1.0, -2.0, 3.0], [4.0, 5.0, -6.0]], dtype=sd.float32)


def here() -> int:
    """The line number of the caller."""
    return inspect.currentframe().f_back.f_lineno


def blames(event, line: int) -> bool:
    """The event points at this test file's line (the path is relative to the working directory)."""
    return event.where.endswith(f"test_strict_device.py:{line}")


# -- no implicit conversion, no host operands ---------------------------------------------------------

def test_numpy_cannot_take_a_device_array(x32):
    with pytest.raises(TypeError, match=r"^Implicit conversion to a NumPy array is not allowed\. "
                                        r"Please use `\.get\(\)` to construct a NumPy array explicitly\.$"):
        np.asarray(x32)
    with pytest.raises(TypeError, match="does not support ufuncs"):
        np.exp(x32)
    with pytest.raises(TypeError):
        np.array([x32[0, 0], x32[0, 1]])


@pytest.mark.parametrize("host", [np.ones((2, 3), np.float32), np.array(2.0)], ids=["array", "0-d array"])
def test_host_arrays_are_refused_as_operands(x32, host):
    for attempt in (lambda: host + x32, lambda: x32 + host, lambda: x32 * host, lambda: x32 == host,
                    lambda: sd.multiply(x32, host), lambda: sd.where(x32 > 0, host, x32)):
        with pytest.raises(TypeError, match=HOST_ARRAY):
            attempt()
    with pytest.raises(TypeError, match=HOST_ARRAY):
        x32 += host
    np.testing.assert_array_equal(x32.get(), [[1, -2, 3], [4, 5, -6]])


def test_host_arrays_are_refused_as_indices_and_assigned_values(x32):
    with pytest.raises(TypeError, match=HOST_ARRAY):
        x32[np.array([0, 1])]
    with pytest.raises(TypeError, match=HOST_ARRAY):
        x32[np.array([True, False])]
    with pytest.raises(TypeError, match=HOST_ARRAY):
        x32[...] = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="assign a strict_device.ndarray or a scalar"):
        x32[0] = [0.0, 0.0, 0.0]
    x32[0] = sd.zeros(3, dtype=sd.float32)  # device values and scalars are fine
    x32[1, 0] = np.float32(7)
    np.testing.assert_array_equal(x32.get(), [[0, 0, 0], [7, 5, -6]])


def test_functions_refuse_host_arrays_and_lists(x32):
    host = np.ones(3)
    for attempt in (lambda: sd.exp(host), lambda: sd.sum(host), lambda: sd.concatenate([x32[0], host]),
                    lambda: sd.zeros_like(host), lambda: sd.linalg.norm(host), lambda: sd.add.at(x32, host, 1.0),
                    lambda: sd.result_type(host, x32), lambda: sd.maximum(x32, np.zeros((2, 3)))):
        with pytest.raises(TypeError, match=r"Unsupported type <class 'numpy.ndarray'>|Only cupy arrays"):
            attempt()
    with pytest.raises(TypeError, match=r"Unsupported type <class 'list'>"):
        sd.add(x32[0], [1.0, 2.0, 3.0])


def test_numpy_scalars_and_python_scalars_are_operands(x32):
    assert ((x32 * np.float32(2)) == (np.float32(2) * x32)).all().item()
    assert (x32 + True).dtype == np.float32 and (1j * x32).dtype == np.complex64
    assert float(sd.maximum(x32, 0).sum()) == 13.0


# -- NumPy 2 promotion, results stay device arrays ----------------------------------------------------

def test_python_scalars_are_weak_and_numpy_scalars_are_not(x32):
    assert (x32 * 2.0).dtype == np.float32
    assert (2.0 * x32).dtype == np.float32
    assert (x32 / 3).dtype == np.float32
    assert sd.maximum(x32, 0).dtype == np.float32
    assert (x32 * np.float32(2.0)).dtype == np.float32
    assert (x32 * np.float64(2.0)).dtype == np.float64  # NEP 50: a NumPy scalar keeps its precision
    assert (sd.arange(3) / 2).dtype == np.float64
    x32 += 1.5
    assert x32.dtype == np.float32


def test_reductions_and_integer_indices_give_0d_device_arrays(x32):
    for result in (x32.sum(), x32.max(), sd.argmax(x32), x32[1, 2], sd.linalg.norm(x32[0]), x32.mean()):
        assert type(result) is sd.ndarray and result.shape == ()
    view = x32[0, 1]
    view.fill(9.0)  # a 0-d view, as CuPy's: writing to it writes to x32
    assert x32[0, 1].item() == 9.0


def test_iteration_and_len_follow_cupy(x32):
    rows = list(x32)
    assert len(x32) == 2 and all(type(row) is sd.ndarray and row.shape == (3,) for row in rows)
    with pytest.raises(TypeError, match="len\\(\\) of unsized object"):
        len(x32[0, 0])
    with pytest.raises(TypeError, match="iteration over a 0-d array"):
        iter(x32[0, 0])


def test_no_index_protocol_as_in_cupy():
    """CuPy leaves out __index__ on purpose: it would read the device (cupy/cupy issue 5784)."""
    three = sd.asarray(3)
    with pytest.raises(TypeError):
        operator.index(three)
    with pytest.raises(TypeError):
        range(three)


# -- host synchronisations and uploads ----------------------------------------------------------------

SCALAR = sd.asarray(2.5, dtype=sd.float32)
VECTOR = sd.asarray([1.0, -1.0, 2.0])
MASK = VECTOR > 0
READS = [
    ("float", lambda: float(SCALAR)),
    ("int", lambda: int(SCALAR)),
    ("bool", lambda: bool(SCALAR)),
    ("item", lambda: SCALAR.item()),
    ("get", lambda: VECTOR.get()),
    ("asnumpy", lambda: sd.asnumpy(VECTOR)),
    ("tolist", lambda: VECTOR.tolist()),
    ("boolean mask", lambda: VECTOR[MASK]),
    ("repr", lambda: repr(VECTOR)),
    ("format", lambda: f"{SCALAR:.1f}"),
    ("nonzero", lambda: sd.where(MASK)),
    ("pickle", lambda: pickle.dumps(VECTOR)),
]


@pytest.mark.parametrize("kind, read", READS, ids=[kind for kind, _ in READS])
def test_each_host_read_is_one_sync_with_its_kind_and_line(kind, read):
    with sd.syncs.counting() as seen:
        read()
    assert seen.count == 1 and seen.events[0].kind == kind
    assert blames(seen.events[0], read.__code__.co_firstlineno), seen.events


def test_the_global_counter_sees_the_same_events_and_resets():
    sd.syncs.reset()
    float(SCALAR); line = here()  # noqa: E702
    assert sd.syncs.count == 1 and blames(sd.syncs.events[0], line)
    assert sd.syncs.events[0] == ("float", sd.syncs.events[0].where)  # events are (kind, where) tuples
    sd.syncs.reset()
    assert sd.syncs.events == []


def test_device_work_and_uploads_are_not_syncs(x32):
    with sd.syncs.counting() as seen, sd.uploads.counting() as uploaded:
        on_device = sd.asarray(np.arange(6.0).reshape(2, 3)); line = here()  # noqa: E702
        y = sd.tanh(on_device * 2 + x32).sum(axis=1, keepdims=True)
        y = y[0, ...] + x32[:, 1:].T @ x32[:, :2]
        sd.add.at(on_device, sd.asarray([0, 0]), sd.ones((2, 3)))
        sd.random.seed(1)
        sd.random.random((2, 2)) >= 0.5
        sd.where(x32 > 0, x32, 0.0)
        copy.deepcopy(x32)
    assert seen.events == []
    assert uploaded.kinds() == ["asarray", "asarray"] and blames(uploaded.events[0], line)


def test_a_mask_in_an_assignment_is_a_sync_too():
    """CuPy counts the True values of a mask to size the assignment, both to read and to write."""
    x = sd.zeros(3)
    with sd.syncs.counting() as seen:
        x[sd.asarray([True, False, True])] = 1.0; line = here()  # noqa: E702
    assert seen.kinds() == ["boolean mask"] and blames(seen.events[0], line)
    assert x.tolist() == [1.0, 0.0, 1.0]


def test_forbidden_turns_a_sync_into_an_error_naming_the_line():
    with sd.syncs.forbidden():
        sd.exp(SCALAR) * 2  # device work is fine
        with pytest.raises(sd.HostSyncError, match=r"host sync \(item\) at .*test_strict_device.py:\d+"):
            SCALAR.item()
    SCALAR.item()  # allowed again outside the block


def test_skip_files_blames_the_caller_of_a_helper(monkeypatch):
    backend = CupyBackend(sd)
    with sd.syncs.counting() as seen:
        backend.to_host(VECTOR)
    assert seen.kinds() == ["asnumpy"] and "tinygrad_seq/backend.py:" in seen.events[0].where  # the helper's line
    monkeypatch.setattr(sd.SyncCounter, "skip_files", ("tinygrad_seq/backend.py",))
    with sd.syncs.counting() as seen:
        backend.to_host(VECTOR); line = here()  # noqa: E702
    assert blames(seen.events[0], line)


# -- ufuncs and their methods as CuPy 14 has them -----------------------------------------------------

def test_add_at_sums_repeated_ids():
    target = sd.zeros((4, 2), dtype=sd.float32)
    ids = sd.asarray([0, 2, 0, 0])
    sd.add.at(target, ids, sd.ones((4, 2), dtype=sd.float32))
    assert target.dtype == np.float32
    np.testing.assert_array_equal(target.get(), [[3, 3], [0, 0], [1, 1], [0, 0]])
    sd.maximum.at(target, ids, sd.full((4, 2), 2.0, dtype=sd.float32))
    np.testing.assert_array_equal(target.get()[:, 0], [3, 0, 2, 0])


def test_add_at_needs_an_atomic_for_the_targets_dtype():
    """CuPy's scatter_add has atomics for int32, float16/32/64 and uint32/64, not int64."""
    with pytest.raises(TypeError, match="scatter_add only supports"):
        sd.add.at(sd.zeros(3, dtype=sd.int64), sd.asarray([0, 0]), 1)
    counts = sd.zeros(3, dtype=sd.int32)
    sd.add.at(counts, sd.asarray([1, 1]), 1)
    assert counts.tolist() == [0, 2, 0]


def test_ufunc_methods_exist_only_where_cupy_has_them():
    assert sd.UFUNC_METHODS["reduceat"] == ("add",) and sd.UFUNC_METHODS["reduce"] == ("add", "multiply")
    values = sd.arange(6.0)
    np.testing.assert_array_equal(sd.add.reduceat(values, sd.asarray([0, 2, 5])).get(), [1.0, 9.0, 5.0])
    for call in (lambda: sd.maximum.reduceat(values, sd.asarray([0, 2])), lambda: sd.maximum.reduce(values),
                 lambda: sd.multiply.at(values, sd.asarray([0]), 2.0), lambda: sd.subtract.accumulate(values)):
        with pytest.raises(NotImplementedError, match=r"is not supported yet \(CuPy 14\.x"):
            call()
    assert float(sd.multiply.reduce(values[1:])) == 120.0
    assert sd.subtract.outer(values[:2], values[:3]).shape == (2, 3)


def test_ufunc_out_and_dtype(x32):
    work = sd.empty_like(x32)
    result = sd.multiply(x32, x32, out=work)
    assert result is work and float(work.sum()) == 91.0
    sd.sqrt(work, work)  # out given positionally
    assert abs(float(work[1, 2]) - 6.0) < 1e-6
    assert sd.add(x32, 1, dtype=sd.float64).dtype == np.float64
    with pytest.raises(TypeError, match="out must be a strict_device.ndarray"):
        sd.exp(x32, out=np.empty((2, 3), np.float32))


# -- only CuPy's API, listed in one place -------------------------------------------------------------

def test_unsupported_names_raise_attribute_error_naming_the_cupy_version(x32):
    for owner, name in ((sd, "nonexistent"), (sd, "searchsorted"), (sd.random, "default_rng"), (sd.linalg, "svd")):
        with pytest.raises(AttributeError, match=rf"no attribute '{name}' \(not in the CuPy 14\.x API subset"):
            getattr(owner, name)
    with pytest.raises(AttributeError, match=r"'ndarray' object has no attribute 'nonzero' \(not in the CuPy 14\.x"):
        x32.nonzero()


def test_supported_lists_every_public_name_with_its_cupy_page():
    assert sd.CUPY_VERSION == "14.x"
    public = {name for name in vars(sd) if not name.startswith("_")}
    namespaces = {key.split(".")[0] for key in sd.SUPPORTED if "." in key}
    assert public - set(sd.SUPPORTED) - set(sd._TEST_API) - namespaces == set()
    assert set(sd._TEST_API) <= public
    assert all(url.startswith(("https://docs.cupy.dev/en/latest/reference/", "https://github.com/cupy/cupy/"))
               for url in sd.SUPPORTED.values())
    assert sd.SUPPORTED["ufunc.reduceat"].endswith("cupy.ufunc.html#cupy.ufunc.reduceat")
    for key in sd.SUPPORTED:  # each listed name resolves
        head, _, rest = key.partition(".")
        obj = getattr(sd, head)
        for part in filter(None, rest.split(".")):
            obj = getattr(obj, part)


# -- random -------------------------------------------------------------------------------------------

def test_random_is_reproducible_and_on_the_device():
    sd.random.seed(0)
    first = sd.random.rand(3)
    sd.random.seed(0)
    second = sd.random.rand(3)
    assert type(first) is sd.ndarray and first.dtype == np.float64
    np.testing.assert_array_equal(first.get(), second.get())
    sd.random.seed(1)
    assert not (sd.random.rand(3) == first).all().item()
    assert sd.random.rand(2, 2, dtype=sd.float32).dtype == np.float32
    assert sd.random.random().shape == () and sd.random.randn(4).shape == (4,)
    assert sd.random.randint(0, 5, size=3).dtype == np.int64
    assert sd.random.normal(0.0, 1.0, (2,), dtype=sd.float32).dtype == np.float32
    with pytest.raises(TypeError, match="float32 and float64"):
        sd.random.rand(2, dtype=sd.int32)


# -- the same numbers as NumPy ------------------------------------------------------------------------

HOST = np.array([[0.5, -1.5, 2.0], [3.0, -0.25, 1.0]], np.float32)
SAME_AS_NUMPY = [
    ("exp", lambda xp, a: xp.exp(a)),
    ("logaddexp", lambda xp, a: xp.logaddexp(a, a * 2)),
    ("log1p_abs", lambda xp, a: xp.log1p(xp.abs(a))),
    ("tanh_clip", lambda xp, a: xp.clip(xp.tanh(a), -0.5, 0.5)),
    ("where", lambda xp, a: xp.where(a > 0, a, 0)),
    ("sum_keepdims", lambda xp, a: a.sum(axis=1, keepdims=True)),
    ("max_argmax", lambda xp, a: xp.stack([a.max(axis=0), xp.argmax(a, axis=0).astype(a.dtype)])),
    ("norm", lambda xp, a: xp.stack([xp.linalg.norm(a.ravel(), ord=2), xp.linalg.norm(a.ravel(), ord=xp.inf)])),
    ("concat_split", lambda xp, a: xp.concatenate(xp.split(a, [1, 2], axis=1)[::-1], axis=1)),
    ("moveaxis_matmul", lambda xp, a: xp.moveaxis(a[None], 0, 2)[..., 0] @ a.T),
    ("einsum", lambda xp, a: xp.einsum("ij,kj->ik", a, a)),
    ("cumsum_mean", lambda xp, a: a.cumsum(axis=1) - a.mean()),
]


@pytest.mark.parametrize("fn", [fn for _, fn in SAME_AS_NUMPY], ids=[name for name, _ in SAME_AS_NUMPY])
def test_results_match_numpy(fn):
    expected = fn(np, HOST)
    got = fn(sd, sd.asarray(HOST))
    assert type(got) is sd.ndarray and got.dtype == expected.dtype
    np.testing.assert_array_equal(got.get(), expected)


# -- the real CupyBackend runs on it ------------------------------------------------------------------

def test_cupy_backend_runs_on_the_strict_module():
    backend = CupyBackend(sd)
    device = backend.asarray(HOST)
    assert backend.owns(device) and not backend.owns(HOST)
    target = backend.xp.zeros((3, 3), dtype=np.float32)
    backend.scatter_add(target, sd.asarray([2, 2]), device)
    np.testing.assert_array_equal(backend.to_host(target)[2], HOST.sum(axis=0))
    assert type(backend.random.random((2, 2))) is sd.ndarray


def test_the_library_loads_it_as_cupy_and_trains_without_syncs(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", sd)
    monkeypatch.setattr(backend_module, "_loaded", {"numpy": backend_module._NUMPY})  # restored after the test
    monkeypatch.setattr(backend_module, "_devices", ())
    monkeypatch.setattr(settings, "array_types", settings.array_types)
    monkeypatch.setattr(settings, "cupy_loaded", settings.cupy_loaded)
    with ts.use_backend("cupy") as backend:
        assert type(backend) is CupyBackend and backend.xp is sd
        ts.manual_seed(3)  # seeds sd.random too
        drawn = sd.random.rand(2)
        ts.manual_seed(3)
        np.testing.assert_array_equal(sd.random.rand(2).get(), drawn.get())
        w = ts.Tensor(HOST.T.copy(), requires_grad=True)
        x = ts.Tensor(HOST)
        with sd.syncs.counting() as seen:
            (x @ w).tanh().sum().backward()
        assert seen.events == [] and type(w.grad) is sd.ndarray
        expected = HOST.T @ (1 - np.tanh(HOST @ HOST.T) ** 2)
        np.testing.assert_allclose(backend.to_host(w.grad), expected, rtol=1e-5)
