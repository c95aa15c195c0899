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
