"""Every op against PyTorch in float64: forward values and gradients to float64 precision."""
import numpy as np
import pytest

import tinygrad_seq as ts

from .conftest import to_host
from .op_cases import CASES, draw_inputs

torch = pytest.importorskip("torch", reason="the PyTorch reference tests need torch (pip install torch==2.13.0)")

RTOL, ATOL = 1e-12, 1e-14  # float64 round-off, summation order aside


def run_ts(fn, arrays, upstream_seed=1):
    inputs = [ts.Tensor(a, requires_grad=True) for a in arrays]
    out = fn(*inputs)
    upstream = np.random.default_rng(upstream_seed).standard_normal(out.shape)
    out.backward(upstream)
    return to_host(out.data), [to_host(x.grad) for x in inputs]


def run_torch(fn, arrays, upstream_seed=1):
    inputs = [torch.tensor(a, requires_grad=True) for a in arrays]
    out = fn(*inputs)
    upstream = np.random.default_rng(upstream_seed).standard_normal(tuple(out.shape))
    out.backward(torch.tensor(upstream))
    return out.detach().numpy(), [x.grad.numpy() for x in inputs]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_matches_torch(case, backend):
    arrays = draw_inputs(case)
    ours, our_grads = run_ts(case.ts_fn, arrays)
    theirs, their_grads = run_torch(case.torch_fn, arrays)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=RTOL, atol=ATOL)
    for i, (g, h) in enumerate(zip(our_grads, their_grads)):
        np.testing.assert_allclose(g, h, rtol=RTOL, atol=ATOL, err_msg=f"gradient of input {i}")


def test_max_ties_share_like_torch_amax():
    x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
    for axis in (None, 1, 0):
        ours = run_ts(lambda t: t.max(axis), [x])
        theirs = run_torch(lambda t: t.amax() if axis is None else t.amax(axis), [x])
        np.testing.assert_allclose(ours[1][0], theirs[1][0], rtol=RTOL)


def test_maximum_ties_split_like_torch():
    a, b = np.array([1.0, 2.0, 3.0]), np.array([1.0, 5.0, 3.0])
    ours = run_ts(ts.maximum, [a, b])
    theirs = run_torch(torch.maximum, [a, b])
    for g, h in zip(ours[1], theirs[1]):
        np.testing.assert_allclose(g, h)


def test_kinks_match_torch():
    """At the kinks themselves (0 for abs and relu, the bounds for clamp) the gradients are PyTorch's."""
    x = np.array([-1.0, -0.5, 0.0, 0.5, 1.0])
    for ours, theirs in [
        (lambda t: t.abs(), lambda t: t.abs()),
        (lambda t: t.relu(), lambda t: t.relu()),
        (lambda t: t.clamp(-0.5, 0.5), lambda t: t.clamp(-0.5, 0.5)),
    ]:
        np.testing.assert_array_equal(run_ts(ours, [x])[1][0], run_torch(theirs, [x])[1][0])


def test_sigmoid_extremes_match_torch():
    x = np.array([-800.0, -40.0, -1e-3, 0.0, 40.0, 800.0])
    ours = run_ts(lambda t: t.sigmoid(), [x])
    theirs = run_torch(lambda t: t.sigmoid(), [x])
    np.testing.assert_allclose(ours[0], theirs[0], rtol=RTOL, atol=0)
    np.testing.assert_allclose(ours[1][0], theirs[1][0], rtol=RTOL, atol=0)


def test_pow_zero_has_gradient_zero_everywhere_like_torch():
    """x ** 0 is the constant 1: gradient 0, also at x = 0 (where p * x^(p-1) would be 0 * inf = NaN)."""
    x = np.array([0.0, 1.0, -2.0, np.inf, np.nan])
    for exponent in (0, 0.0):
        ours, theirs = run_ts(lambda t: t**exponent, [x]), run_torch(lambda t: t**exponent, [x])
        np.testing.assert_array_equal(ours[0], theirs[0])
        np.testing.assert_array_equal(ours[1][0], theirs[1][0])
        assert not np.isnan(ours[1][0]).any()


NAN = np.nan
WHOLE_REDUCTIONS = [  # torch.max() / torch.min(): the gradient is shared by the elements equal to the result, NaN matching NaN
    np.array([1.0, NAN, 3.0]),
    np.array([1.0, NAN, NAN, 3.0]),  # two NaNs share it
    np.array([[np.inf, NAN], [3.0, np.inf]]),  # NaN beats inf
    np.array([[2.0, 5.0], [5.0, -1.0]]),  # a tie without NaN
]


@pytest.mark.parametrize("x", WHOLE_REDUCTIONS, ids=["one_nan", "two_nans", "nan_and_inf", "tie"])
def test_whole_max_and_min_send_the_gradient_to_the_nan_like_torch(x):
    for ours_fn, torch_fn in [(lambda t: t.max(), lambda t: t.max()), (lambda t: t.min(), lambda t: t.min())]:
        ours, theirs = run_ts(ours_fn, [x]), run_torch(torch_fn, [x])
        np.testing.assert_array_equal(ours[0], theirs[0])
        np.testing.assert_array_equal(ours[1][0], theirs[1][0])


def test_max_over_an_axis_sends_the_gradient_to_the_nan_like_torch():
    """One NaN per slice: all of the slice's gradient goes to it, as torch.max(dim) (torch.amax makes the slice NaN)."""
    x = np.array([[1.0, NAN, 3.0], [2.0, 5.0, 4.0], [NAN, -1.0, np.inf]])
    for axis in (0, 1):
        for ours_fn, torch_fn in [(lambda t: t.max(axis), lambda t: t.max(axis).values), (lambda t: t.min(axis), lambda t: t.min(axis).values)]:
            ours, theirs = run_ts(ours_fn, [x]), run_torch(torch_fn, [x])
            np.testing.assert_array_equal(ours[0], theirs[0])
            np.testing.assert_array_equal(ours[1][0], theirs[1][0])


def test_several_nans_in_a_slice_share_the_gradient_as_ties_do():
    """Where torch.max(dim) gives a tie's gradient to one index, ours shares it: NaNs share as ties do, like torch.max()."""
    x = ts.Tensor(np.array([[NAN, 1.0, NAN], [2.0, 2.0, 0.0]]), requires_grad=True)
    x.max(axis=1).backward(np.array([1.0, 1.0]))
    np.testing.assert_array_equal(x.grad, [[0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])
    x.grad = None
    x.max(axis=1, keepdims=True).sum().backward()
    np.testing.assert_array_equal(x.grad, [[0.5, 0.0, 0.5], [0.5, 0.5, 0.0]])


def test_maximum_with_nan_sends_the_gradient_to_both_sides_like_torch():
    a = np.array([1.0, NAN, NAN, 2.0, 3.0])
    b = np.array([NAN, 1.0, NAN, 2.0, 1.0])
    ours, theirs = run_ts(ts.maximum, [a, b]), run_torch(torch.maximum, [a, b])
    np.testing.assert_array_equal(ours[0], theirs[0])
    for g, h in zip(ours[1], theirs[1]):
        np.testing.assert_array_equal(g, h)
    ours = run_ts(lambda t: ts.maximum(t, NAN), [a])
    theirs = run_torch(lambda t: torch.maximum(t, torch.tensor(NAN, dtype=t.dtype)), [a])
    np.testing.assert_array_equal(ours[1][0], theirs[1][0])
