"""Every differentiable op, gradient-checked in float64 by central differences."""
import re

import numpy as np
import pytest
from hypothesis import given, strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import tinygrad_seq as ts

from . import strict_device
from .conftest import on_strict_device
from .op_cases import CASES, draw_inputs


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_grad_check(case, backend):
    inputs = [ts.Tensor(x, requires_grad=True) for x in draw_inputs(case)]
    assert ts.grad_check(case.ts_fn, inputs)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_ops_read_the_device_back_only_where_they_must(case):
    """On a GPU, reading a device value waits for the device. No op's forward or backward does, except where the
    result's size depends on the values: rows picked by ids (the backward counts the distinct ids) and masks."""
    with on_strict_device():
        inputs = [ts.Tensor(x, requires_grad=True) for x in draw_inputs(case)]
        with strict_device.syncs.counting() as seen:
            out = case.ts_fn(*inputs)
            out.backward(ts.Tensor(np.ones(out.shape)))
    kinds = {event.kind for event in seen.events}
    allowed = {"boolean mask"} if case.name.startswith("getitem_mask") else {"nonzero"} if case.name.startswith("getitem_ids") else set()
    assert kinds <= allowed, seen.events
    if kinds == {"nonzero"}:
        assert len(seen.events) == 1  # one read per id scatter: the number of distinct ids


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "maximum": ts.maximum,
}


@pytest.mark.parametrize("op", BINARY)
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, max_side=3), seed=st.integers(0, 2**16))
def test_binary_ops_broadcast(op, shapes, seed):
    rng = np.random.default_rng(seed)
    a_shape, b_shape = shapes.input_shapes
    a = ts.Tensor(rng.standard_normal(a_shape), requires_grad=True)
    # Denominators and maximum's operands are kept apart so no kink lies within eps.
    b = ts.Tensor(rng.uniform(0.5, 1.5, b_shape) * rng.choice([-1.0, 1.0], b_shape) + (3.0 if op == "maximum" else 0.0), requires_grad=True)
    if op == "maximum":
        a = ts.Tensor(a.data * 0.5 + rng.choice([0.0, 6.0], a_shape), requires_grad=True)
    out = BINARY[op](a, b)
    assert out.shape == shapes.result_shape
    assert ts.grad_check(BINARY[op], [a, b])


UNARY = {
    "exp": (lambda x: x.exp(), lambda rng, s: rng.standard_normal(s)),
    "log": (lambda x: x.log(), lambda rng, s: rng.uniform(0.5, 2, s)),
    "sqrt": (lambda x: x.sqrt(), lambda rng, s: rng.uniform(0.5, 2, s)),
    "abs": (lambda x: x.abs(), lambda rng, s: rng.uniform(0.2, 2, s) * rng.choice([-1.0, 1.0], s)),
    "tanh": (lambda x: x.tanh(), lambda rng, s: rng.standard_normal(s)),
    "sigmoid": (lambda x: x.sigmoid(), lambda rng, s: 4 * rng.standard_normal(s)),
    "relu": (lambda x: x.relu(), lambda rng, s: rng.uniform(0.2, 2, s) * rng.choice([-1.0, 1.0], s)),
    "sum": (lambda x: x.sum(), lambda rng, s: rng.standard_normal(s)),
    "mean_keepdims": (lambda x: x.mean(axis=-1, keepdims=True) if x.ndim else x.mean(), lambda rng, s: rng.standard_normal(s)),
    "softmax": (lambda x: x.softmax() if x.ndim else x.exp(), lambda rng, s: rng.standard_normal(s)),
    "log_softmax": (lambda x: x.log_softmax() if x.ndim else x.exp(), lambda rng, s: rng.standard_normal(s)),
    "flatten": (lambda x: x.flatten(), lambda rng, s: rng.standard_normal(s)),
}


@pytest.mark.parametrize("op", UNARY)
@given(shape=array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4), seed=st.integers(0, 2**16))
def test_unary_ops_any_shape(op, shape, seed):
    fn, draw = UNARY[op]
    x = ts.Tensor(draw(np.random.default_rng(seed), shape), requires_grad=True)
    assert ts.grad_check(fn, [x])


@given(shape=array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4), seed=st.integers(0, 2**16), data=st.data())
def test_max_any_axis(shape, seed, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    values = np.random.default_rng(seed).permutation(np.linspace(-3, 3, int(np.prod(shape)))).reshape(shape)
    x = ts.Tensor(values, requires_grad=True)
    assert ts.grad_check(lambda x: x.max(axis), [x])


def test_grad_check_finds_a_wrong_backward():
    class WrongSquare(ts.Function):
        __slots__ = ("x",)

        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, grad):
            return (grad * 3 * self.x,)  # should be 2x

    x = ts.Tensor([0.5, 1.0, -2.0], dtype="float64", requires_grad=True, name="x")
    with pytest.raises(AssertionError, match=r"input 0 \(x, shape \(3,\)\) element \(0,\)") as error:
        ts.grad_check(WrongSquare.apply, [x])
    analytic, numeric = map(float, re.search(r"backward gives (\S+), finite differences give (\S+)", str(error.value)).groups())
    assert analytic / numeric == pytest.approx(1.5)  # 3x against the true 2x


def test_grad_check_leaves_grads_and_values_alone():
    x = ts.Tensor([0.3, -0.2], dtype="float64", requires_grad=True)
    x.grad = np.array([7.0, 7.0])
    before = x.data.copy()
    ts.grad_check(lambda x: (x * x).sum(), [x])
    np.testing.assert_array_equal(x.grad, [7.0, 7.0])
    np.testing.assert_array_equal(x.data, before)


def test_grad_check_refuses_float32_and_inputs_without_grad():
    with pytest.raises(TypeError, match="float64.*x.double()"):
        ts.grad_check(lambda x: x * 2, [ts.Tensor([1.0], requires_grad=True)])
    with pytest.raises(ValueError, match="no input requires grad"):
        ts.grad_check(lambda x: x * 2, [ts.Tensor([1.0], dtype="float64")])
