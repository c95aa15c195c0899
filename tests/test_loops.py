"""The compiled loops of ops/loops.py (float32 LSTM and GRU steps) against the NumPy equations they replace."""
import contextlib

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import nn, settings
from tinygrad_seq.engine import topological_order
from tinygrad_seq.ops import cell_steps

loops = pytest.importorskip("tinygrad_seq.ops.loops", reason="numba is not installed (a dependency: pip install -e .)")
import numba  # noqa: E402  (after the skip: importorskip has shown numba imports)


@numba.njit
def _each(function_id, x, out):
    for k in range(x.shape[0]):
        out[k] = loops.tanh32(x[k]) if function_id == 0 else loops.sigmoid32(x[k])


def _float32_sweep():
    rng = np.random.default_rng(0)
    dense = np.linspace(-20, 20, 400_001)
    special = np.array([0.0, -0.0, 1e-30, -1e-30, 1e-8, 4e-4, -4e-4, 5.827876, -5.827876])  # ±5.827876: tanh32's worst
    return np.concatenate([dense, special, rng.standard_normal(100_000) * 6]).astype(np.float32)


def test_tanh32_is_within_its_documented_bound_and_odd():
    x = _float32_sweep()
    ours = np.empty_like(x)
    _each(0, x, ours)
    exact = np.tanh(x.astype(np.float64))
    assert np.max(np.abs(ours - exact)) < 4.2e-7  # ops/loops.py: 4.1e-7 over every float32; NumPy's own float32 tanh: 6e-8
    negated = np.empty_like(x)
    _each(0, -x, negated)
    np.testing.assert_array_equal(negated, -ours)
    tiny = np.abs(x) < 1e-3
    np.testing.assert_allclose(ours[tiny], exact[tiny], rtol=1e-6)  # relative precision near 0, not only absolute


def test_sigmoid32_is_within_its_documented_bound():
    x = _float32_sweep()
    ours = np.empty_like(x)
    _each(1, x, ours)
    exact = 1 / (1 + np.exp(-x.astype(np.float64)))
    assert np.max(np.abs(ours - exact)) < 2.3e-7  # ops/loops.py: 2.27e-7 over every float32
    assert np.all(ours[x < -15.82] == 0) and np.all(exact[x < -15.82] < 1.4e-7)
    far = (x < -8) & (x > -15)  # absolute precision only: the relative error grows as σ shrinks (ops/loops.py)
    assert np.max(np.abs(ours[far] - exact[far]) / exact[far]) > 1e-4
    assert np.all((ours >= 0) & (ours <= 1))


def test_nan_and_infinities_pass_through():
    x = np.array([np.nan, np.inf, -np.inf], np.float32)
    out = np.empty_like(x)
    _each(0, x, out)
    assert np.isnan(out[0]) and list(out[1:]) == [1, -1]
    _each(1, x, out)
    assert np.isnan(out[0]) and list(out[1:]) == [1, 0]


def _step_nodes(output, name):
    return [t.grad_fn for t in topological_order(output)[0] if t.grad_fn.name == name]


LAYERS = {
    "lstm": lambda: nn.LSTM(3, 5),
    "gru": lambda: nn.GRU(3, 5),
    "lstm_two_layers_bidirectional": lambda: nn.LSTM(3, 5, num_layers=2, bidirectional=True),
    "gru_two_layers_bidirectional": lambda: nn.GRU(3, 5, num_layers=2, bidirectional=True),
}


def _forward_backward(layer, x, initial, lengths):
    inputs = ts.Tensor(x, requires_grad=True)
    state = [ts.Tensor(part, requires_grad=True) for part in initial]
    out, final = layer(inputs, state[0] if len(state) == 1 else tuple(state), lengths=lengths)
    finals = [final] if isinstance(final, ts.Tensor) else list(final)
    weights = np.random.default_rng(9)
    loss = (out * ts.Tensor(weights.standard_normal(out.shape).astype(np.float32))).sum()
    for part in finals:
        loss = loss + (part * ts.Tensor(weights.standard_normal(part.shape).astype(np.float32))).sum()
    steps = _step_nodes(out, "LSTMStep" if isinstance(layer, nn.LSTM) else "GRUStep")
    ran_loops = {step.gate_block is not None for step in steps}  # asked before backward frees what steps saved
    loss.backward()
    values = [out.numpy()] + [part.numpy() for part in finals]
    grads = [inputs.grad, *(part.grad for part in state), *(p.grad for p in layer.parameters())]
    return values, grads, ran_loops


@pytest.mark.parametrize("make_layer", LAYERS.values(), ids=list(LAYERS))
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("with_lengths", [False, True], ids=["full", "lengths"])
def test_loops_equal_the_numpy_equations_in_float32(make_layer, batch, with_lengths):
    ts.manual_seed(0)
    layer = make_layer()
    rng = np.random.default_rng(1)
    x = rng.standard_normal((6, batch, 3)).astype(np.float32) * 2
    shape = (layer.num_layers * (2 if layer.bidirectional else 1), batch, 5)
    initial = [rng.standard_normal(shape).astype(np.float32) for _ in range(2 if isinstance(layer, nn.LSTM) else 1)]
    lengths = ([6, 2, 5, 1][:batch] if batch > 1 else [4]) if with_lengths else None
    values, grads, ran_loops = _forward_backward(layer, x, initial, lengths)
    assert ran_loops == {True}
    layer.zero_grad()
    with ts.without_numba():
        reference_values, reference_grads, ran_loops = _forward_backward(layer, x, initial, lengths)
    assert ran_loops == {False}
    for ours, reference in zip(values, reference_values):
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=2e-6)
    for ours, reference in zip(grads, reference_grads):
        np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-5 * np.abs(reference).max())


@pytest.mark.parametrize("inner", [1, 3, 4, 6, 9])
def test_the_loops_product_adds_x_times_w_whatever_the_inner_size(inner):
    """add_rows_times takes w's rows four at a time, then one at a time: every remainder is summed too."""
    rng = np.random.default_rng(inner)
    x, w, out = (rng.standard_normal(shape).astype(np.float32) for shape in ((3, inner), (inner, 7), (3, 7)))
    expected = out.astype(np.float64) + x.astype(np.float64) @ w.astype(np.float64)
    loops.add_rows_times(x, w, out)
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)


def _step_arrays(gates, batch, hidden, state_shape):
    """A step's float32 W_hh (G·H, H), b_hh (G·H,), input (B, G·H) and previous state, drawn from a seed of its own."""
    rng = np.random.default_rng(hidden)
    shapes = [(gates * hidden, hidden), (gates * hidden,), (batch, gates * hidden), state_shape]
    return [rng.standard_normal(shape).astype(np.float32) for shape in shapes]


@pytest.mark.parametrize("batch, hidden", [(1, 3), (2, 5), (3, 8)])
def test_a_step_with_its_product_in_the_loop_equals_blas_and_the_loop(batch, hidden):
    w_hh, b_hh, x_t, state_prev = _step_arrays(4, batch, hidden, (2, batch, hidden))
    act, state = np.empty((batch, 4 * hidden), np.float32), np.empty_like(state_prev)
    loops.lstm_step_forward(x_t, b_hh, state_prev[0], np.ascontiguousarray(w_hh.T), state_prev[1], act, state)
    blas_act, blas_state = np.empty_like(act), np.empty_like(state)
    loops.lstm_forward(state_prev[0] @ w_hh.T + b_hh + x_t, state_prev[1], blas_act, blas_state)
    np.testing.assert_allclose(act, blas_act, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state, blas_state, rtol=1e-5, atol=1e-6)

    d_state = np.random.default_rng(0).standard_normal((2, batch, hidden)).astype(np.float32)
    d_gates, d_state_prev = np.empty_like(act), np.empty_like(state)
    loops.lstm_step_backward(d_state[0], d_state[1], act, state[1], state_prev[1], w_hh, d_gates, d_state_prev)
    blas_d_gates, blas_d_state_prev = np.empty_like(act), np.empty_like(state)
    loops.lstm_backward(d_state[0], d_state[1], act, state[1], state_prev[1], blas_d_gates, blas_d_state_prev[1])
    blas_d_state_prev[0] = blas_d_gates @ w_hh
    np.testing.assert_array_equal(d_gates, blas_d_gates)
    np.testing.assert_allclose(d_state_prev, blas_d_state_prev, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("batch, hidden", [(1, 3), (2, 5), (3, 8)])
def test_a_gru_step_with_its_product_in_the_loop_equals_blas_and_the_loop(batch, hidden):
    w_hh, b_hh, gx, h_prev = _step_arrays(3, batch, hidden, (batch, hidden))
    saved, h = np.empty((batch, 4 * hidden), np.float32), np.empty_like(h_prev)
    loops.gru_step_forward(gx, b_hh, h_prev, np.ascontiguousarray(w_hh.T), saved, h)
    blas_saved, blas_h = np.empty_like(saved), np.empty_like(h)
    loops.gru_forward(gx, h_prev @ w_hh.T + b_hh, h_prev, blas_saved, blas_h)
    np.testing.assert_allclose(saved, blas_saved, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h, blas_h, rtol=1e-5, atol=1e-6)


LSTM_LOOPS = ("lstm_step_forward", "lstm_forward", "lstm_step_backward", "lstm_backward")
GRU_LOOPS = ("gru_step_forward", "gru_forward", "gru_backward", "add_rows_times")


class _CountingLoops:
    """ops/loops.py as cell_steps sees it, counting calls of the LSTM's and GRU's loops. The module itself is left
    alone: numba compiles lstm_step_forward's call of lstm_forward (and the like) through the module's globals."""

    def __init__(self, names):
        self.calls = dict.fromkeys(names, 0)

    def __getattr__(self, name):
        loop = getattr(loops, name)
        if name not in self.calls:
            return loop

        def counted(*arrays):
            self.calls[name] += 1
            return loop(*arrays)

        return counted


def _counting(monkeypatch, names=LSTM_LOOPS):
    """The calls of each loop in ``names`` from here on (see _CountingLoops)."""
    counting, compiled_loops = _CountingLoops(names), cell_steps._compiled_loops
    monkeypatch.setattr(cell_steps, "_compiled_loops", lambda *arrays: None if compiled_loops(*arrays) is None else counting)
    return counting.calls


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("steps, forward_in_loop", [(10, True), (5, False)], ids=["long_call", "short_call"])
def test_a_small_layers_steps_multiply_inside_their_loop(monkeypatch, cell, steps, forward_in_loop):
    """B1 H5: the hidden product is tiny, so the loops compute it. Going forward they read W_hh^T, which the kernel
    copies for calls of PRODUCT_IN_LOOP_FROM_STEPS steps or more; going back they read W_hh itself, always."""
    from tinygrad_seq.nn import steps as layer_steps

    from_steps = layer_steps.PRODUCT_IN_LOOP_FROM_STEPS
    assert steps >= from_steps if forward_in_loop else steps < from_steps
    ts.manual_seed(0)
    layer = nn.LSTM(3, 5) if cell == "lstm" else nn.GRU(3, 5)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((steps, 1, 3)).astype(np.float32)
    initial = [rng.standard_normal((1, 1, 5)).astype(np.float32) for _ in range(2 if cell == "lstm" else 1)]
    calls = _counting(monkeypatch, LSTM_LOOPS if cell == "lstm" else GRU_LOOPS)
    values, grads, _ = _forward_backward(layer, x, initial, None)
    if cell == "lstm":
        assert calls == {"lstm_step_forward": steps * forward_in_loop, "lstm_forward": steps * (not forward_in_loop),
                         "lstm_step_backward": steps, "lstm_backward": 0}
    else:
        assert calls == {"gru_step_forward": steps * forward_in_loop, "gru_forward": steps * (not forward_in_loop),
                         "gru_backward": steps, "add_rows_times": steps}
    layer.zero_grad()
    with ts.without_numba():
        reference_values, reference_grads, _ = _forward_backward(layer, x, initial, None)
    for ours, reference in zip(values, reference_values):
        np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=2e-6)
    for ours, reference in zip(grads, reference_grads):
        np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-5 * np.abs(reference).max())


@pytest.mark.parametrize("make_layer, expected", [
    (lambda: nn.LSTM(3, 5, bias=False), {"lstm_step_forward": 0, "lstm_forward": 10, "lstm_step_backward": 10, "lstm_backward": 0}),
    (lambda: nn.LSTM(3, 5, peephole=True), dict.fromkeys(LSTM_LOOPS, 0)),  # no loops at all (their NumPy equations)
    (lambda: nn.GRU(3, 5, bias=False), {"gru_step_forward": 0, "gru_forward": 10, "gru_backward": 10, "add_rows_times": 10}),
    (lambda: nn.GRU(3, 5, reset_after=False), dict.fromkeys(GRU_LOOPS, 0)),
], ids=["lstm_no_bias", "lstm_peephole", "gru_no_bias", "gru_reset_before"])
def test_a_small_layer_without_a_bias_or_its_loops_leaves_its_forward_product_to_blas(monkeypatch, make_layer, expected):
    ts.manual_seed(0)
    layer = make_layer()
    calls = _counting(monkeypatch, tuple(expected))
    out, _ = layer(ts.randn(10, 1, 3, dtype=np.float32))
    (out * out).sum().backward()  # not out.sum(): its gradient, a broadcast view, would send the GRU's last step to NumPy
    assert calls == expected


def test_only_steps_within_the_limit_multiply_inside_their_loop(monkeypatch):
    layer = nn.LSTM(3, 64)  # B4: 4 × 256 × 64 = 65,536 multiply-adds, within the limit; B16: four times over it
    calls = _counting(monkeypatch)
    for batch in (4, 16):
        out, _ = layer(ts.randn(10, batch, 3, dtype=np.float32))
        out.sum().backward()
    assert calls == {"lstm_step_forward": 10, "lstm_forward": 10, "lstm_step_backward": 10, "lstm_backward": 10}


@pytest.mark.parametrize("make_layer", [lambda: nn.LSTM(3, 5), lambda: nn.GRU(3, 5)], ids=["lstm", "gru"])
def test_a_backward_that_cannot_run_the_loops_reads_the_gates_from_the_forwards_block(make_layer):
    """Forward ran the loop, backward runs the NumPy equations (here: ts.without_numba() around backward; in use,
    a strided gradient): the gates it needs are views of the gate block the forward loop wrote."""
    ts.manual_seed(0)
    layer = make_layer()
    x = ts.Tensor(np.random.default_rng(2).standard_normal((5, 3, 3)).astype(np.float32), requires_grad=True)
    runs = []
    for numpy_backward in (False, True):
        out, _ = layer(x)
        assert all(node.gate_block is not None for node in _step_nodes(out, "LSTMStep" if isinstance(layer, nn.LSTM) else "GRUStep"))
        layer.zero_grad()
        x.grad = None
        with ts.without_numba() if numpy_backward else contextlib.nullcontext():
            (out * out).sum().backward()
        runs.append([x.grad, *(p.grad for p in layer.parameters())])
    for loop_grad, numpy_grad in zip(*runs):
        np.testing.assert_allclose(numpy_grad, loop_grad, rtol=1e-4, atol=1e-5 * np.abs(loop_grad).max())


@pytest.mark.parametrize("make_layer, name, runs_loops", [
    (lambda: nn.LSTM(3, 5), "LSTMStep", True),
    (lambda: nn.GRU(3, 5), "GRUStep", True),
    (lambda: nn.LSTM(3, 5, peephole=True), "LSTMStep", False),
    (lambda: nn.GRU(3, 5, reset_after=False), "GRUStep", False),
], ids=["lstm", "gru", "lstm_peephole", "gru_reset_before"])
def test_loops_run_on_float32_only_and_not_on_the_variants_they_lack(make_layer, name, runs_loops):
    ts.manual_seed(0)
    layer = make_layer()
    x = np.random.default_rng(0).standard_normal((3, 2, 3))
    out, _ = layer(ts.Tensor(x.astype(np.float32)))
    assert (_step_nodes(out, name)[0].gate_block is not None) is runs_loops
    layer.to(np.float64)
    out, _ = layer(ts.Tensor(x))
    assert out.dtype == np.float64 and _step_nodes(out, name)[0].gate_block is None  # float64: the exact NumPy path


def test_the_loops_take_only_contiguous_float32_numpy_arrays():
    a = np.zeros((4, 6), np.float32)
    assert cell_steps._compiled_loops(a, a[:, :3].copy()) is loops
    assert cell_steps._compiled_loops(a, a[:, :3]) is None  # a strided view: the NumPy equations run
    assert cell_steps._compiled_loops(a, a.astype(np.float64)) is None
    with ts.without_numba():
        assert not settings.numba_loops and cell_steps._compiled_loops(a) is None
    assert settings.numba_loops


class _RefusingFinder:
    """An import hook that fails the loops' module as numba fails without a writable cache folder."""

    def find_spec(self, name, path=None, target=None):
        if name == "tinygrad_seq.ops.loops":
            raise RuntimeError("cannot cache function 'tanh32': no locator available")
        return None


def test_numba_that_cannot_compile_falls_back_to_numpy_with_a_warning(monkeypatch):
    import sys

    import tinygrad_seq.ops

    monkeypatch.delattr(tinygrad_seq.ops, "loops")
    monkeypatch.delitem(sys.modules, "tinygrad_seq.ops.loops")
    monkeypatch.setattr(sys, "meta_path", [_RefusingFinder(), *sys.meta_path])
    cell_steps.LOOPS.forget()
    try:
        with pytest.warns(RuntimeWarning, match="NumPy equations.*no locator available.*NUMBA_CACHE_DIR"):
            assert cell_steps._compiled_loops(np.zeros((2, 3), np.float32)) is None
        out, _ = nn.LSTM(3, 4)(ts.randn(2, 1, 3))  # runs, on the NumPy equations
        assert out.shape == (2, 1, 4)
    finally:
        cell_steps.LOOPS.forget()  # the real module again for the tests after this one
