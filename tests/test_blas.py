"""One BLAS thread for a small layer's time steps (tinygrad_seq/blas.py), and every thread back afterwards; the
contiguous W^T the steps multiply by (nn/steps.py)."""
import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import blas, nn
from tinygrad_seq.function import Function
from tinygrad_seq.nn import steps
from tinygrad_seq.ops import linear

pytest.importorskip("threadpoolctl")


def blas_threads_now():
    return [library.num_threads for library in blas._blas_libraries()]


@pytest.fixture
def two_threads():
    """NumPy's BLAS on two threads for the test (whatever the machine gave it), as it was after."""
    libraries = blas._blas_libraries()
    if not libraries:
        pytest.skip("threadpoolctl finds no BLAS library under NumPy")
    before = blas_threads_now()
    for library in libraries:
        library.set_num_threads(2)
    yield
    for library, count in zip(libraries, before):
        library.set_num_threads(count)


def test_a_step_is_small_between_the_thresholds():
    assert blas.threads_for_step(32, 4 * 128 * 128) == 1  # LSTM H128: one thread
    assert blas.threads_for_step(32, 4 * 512 * 512) is None  # LSTM H512: every thread
    assert blas.threads_for_step(1, blas.SMALL_STEP_MACS) is None
    assert blas.threads_for_step(1, 4 * 100 * 100) is None  # OpenBLAS keeps a product this small on one thread itself
    # OpenBLAS's own limit (MNK <= 4 x 65,536, one thread): the LSTM B16 H64 step is left alone, one more is limited
    assert blas.threads_for_step(16, 4 * 64 * 64) is None and blas.threads_for_step(16, 4 * 64 * 64 + 1) == 1


def test_limited_sets_and_restores(two_threads):
    with blas.limited(1):
        assert set(blas_threads_now()) == {1}
        with blas.limited(None):  # None leaves the count alone
            assert set(blas_threads_now()) == {1}
    assert set(blas_threads_now()) == {2}
    with pytest.raises(KeyError):
        with blas.limited(1):
            raise KeyError("restored on the way out too")
    assert set(blas_threads_now()) == {2}


class RecordsThreads(nn.RecurrentCell):
    """a⟨t⟩ = tanh(W [x, a]): its forward notes the BLAS threads each step ran with."""

    seen: list[list[int]] = []

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.gate_parameters(gates=1, bias=False)
        self.reset_parameters()

    def forward(self, x, state=None):
        RecordsThreads.seen.append(blas_threads_now())
        a_prev = self.prepare(x, state)
        return (self.input_projection(x) + self.hidden_projection(a_prev)).tanh()


class Probe(Function):
    """Identity whose backward notes the BLAS threads it ran with; it declares itself a small step."""

    seen: list[list[int]] = []

    def forward(self, x):
        return x.copy()

    def blas_threads(self):
        return 1

    def backward(self, grad):
        Probe.seen.append(blas_threads_now())
        return (grad,)


def test_a_small_layers_steps_run_on_one_thread_and_everything_else_on_all(two_threads):
    RecordsThreads.seen.clear()
    with ts.transparent():  # the cell's forward runs at every step
        outputs, _ = nn.Recurrent(RecordsThreads(3, 256))(ts.randn(5, 16, 3))  # 16 x 256 x 256 per step: small
    assert len(RecordsThreads.seen) == 5 and all(set(counts) == {1} for counts in RecordsThreads.seen)
    assert set(blas_threads_now()) == {2}
    big = nn.Recurrent(RecordsThreads(4, 2048))  # 2 x (2048 x 2052) per step: above the threshold
    RecordsThreads.seen.clear()
    with ts.transparent():
        big(ts.randn(1, 2, 4))
    assert set(RecordsThreads.seen[0]) == {2}


class PlainProbe(Function):
    """Identity whose backward notes the BLAS threads it ran with; an ordinary node (no limit)."""

    seen: list[list[int]] = []

    def forward(self, x):
        return x.copy()

    def backward(self, grad):
        PlainProbe.seen.append(blas_threads_now())
        return (grad,)


def test_the_backward_pass_switches_per_node_and_restores(two_threads):
    Probe.seen.clear()
    PlainProbe.seen.clear()
    x = ts.Tensor(np.ones(3), requires_grad=True)
    PlainProbe.apply(Probe.apply(PlainProbe.apply(x))).sum().backward()
    assert [set(counts) for counts in Probe.seen] == [{1}]
    assert [set(counts) for counts in PlainProbe.seen] == [{2}, {2}]  # before and after the small node
    assert set(blas_threads_now()) == {2}
    np.testing.assert_array_equal(x.grad, np.ones(3))


def test_a_paused_backward_pass_leaves_every_thread_to_the_caller(two_threads):
    """Between two steps of a stepped backward pass (viz's stepper), the caller's code runs on every thread."""
    from tinygrad_seq.engine import backward_iter

    x = ts.Tensor(np.ones(3), requires_grad=True)
    steps = backward_iter((Probe.apply(Probe.apply(x)) * 3.0).sum())
    names = []
    for step in steps:
        names.append(step.node.name)
        assert set(blas_threads_now()) == {2}
        if names.count("Probe") == 1:
            break
    steps.close()
    assert names[-1] == "Probe" and set(blas_threads_now()) == {2}


@pytest.mark.parametrize("shape", [(1, 5), (64, 64), (65, 64), (130, 67), (260, 197), (2048, 512), (512, 2048)])  # from (260, 197) on: tiled (partial tiles there); below, NumPy's copy
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_tiled_transposed_copy_is_exact_and_contiguous(shape, dtype):
    matrix = np.random.default_rng(0).standard_normal(shape).astype(dtype)
    for source in (matrix, np.asfortranarray(matrix), matrix[:, ::-1]):  # any layout in
        copied = steps.transposed_copy(source)
        assert copied.flags.c_contiguous and copied.dtype == dtype
        np.testing.assert_array_equal(copied, source.T)


def test_the_w_transpose_is_copied_only_where_it_pays():
    weight = np.ones((8, 4), dtype=np.float32)
    many, few = ts.zeros(steps.TRANSPOSE_FROM_ROWS, 1, 4), ts.zeros(1, steps.TRANSPOSE_FROM_ROWS - 1, 4)
    np.testing.assert_array_equal(steps.contiguous_transpose(weight, many), weight.T)
    assert steps.contiguous_transpose(weight, few) is None
    # Steps that multiply inside their compiled loop read W^T row by row: a copy from fewer rows, in calls long enough
    long_call, short_call = ts.zeros(steps.PRODUCT_IN_LOOP_FROM_STEPS, 1, 4), ts.zeros(steps.PRODUCT_IN_LOOP_FROM_STEPS - 1, 1, 4)
    np.testing.assert_array_equal(steps.contiguous_transpose(weight, long_call, multiplied_in_loop=True), weight.T)
    assert steps.contiguous_transpose(weight, long_call) is None
    assert steps.contiguous_transpose(weight, short_call, multiplied_in_loop=True) is None
    assert steps.contiguous_transpose(weight, ts.zeros(1, 4), multiplied_in_loop=True) is None  # one step's (B, I)


def test_a_product_is_small_between_openblas_limit_and_the_threshold():
    assert blas.threads_for_product(blas.TINY_STEP_MACS) is None  # OpenBLAS keeps it on one thread itself
    assert blas.threads_for_product(25 * 64 * 400) == 1  # an LSTM's input projection at B1 T25 H100
    assert blas.threads_for_product(blas.SMALL_PRODUCT_MACS) is None
    assert blas.threads_for_product(2048 * 64 * 512) is None  # the projection at B32 T64 H128: every thread


class RecordingLimit(blas.limited):
    """blas.limited, noting the thread counts inside each block it limits."""

    seen: list[list[int]] = []

    def __enter__(self):
        super().__enter__()
        RecordingLimit.seen.append(blas_threads_now())
        return self


def test_a_small_product_by_a_layers_weight_runs_on_one_thread(two_threads, monkeypatch):
    """OpenBLAS wakes its second thread for x W^T at B1 T25 H100, which then spins: under load the step slows."""
    monkeypatch.setattr(blas, "limited", RecordingLimit)
    rng = np.random.default_rng(0)
    for x_shape, weight_shape, limited in [((25, 1, 64), (400, 64), True), ((25, 64), (400, 64), True),
                                           ((25, 1, 64), (65, 64), False), ((64, 32, 64), (512, 64), False),
                                           ((2049, 16), (16, 16), True),  # in blocks of rows, each block its own product:
                                           ((64, 64, 2), (64, 2), False)]:  # 2 blocks of 262,144: one thread anyway
        RecordingLimit.seen.clear()
        x, weight = (rng.standard_normal(shape).astype(np.float32) for shape in (x_shape, weight_shape))
        y = linear(ts.Tensor(x), ts.Tensor(weight))
        assert RecordingLimit.seen == ([[1] * len(blas._blas_libraries())] if limited else [])
        np.testing.assert_allclose(y.numpy(), x @ weight.T, rtol=1e-5, atol=1e-5)
        assert set(blas_threads_now()) == {2}
