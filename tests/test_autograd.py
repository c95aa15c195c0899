"""The engine itself: tensor construction, accumulation, the backward iterator, hooks, tags, errors."""
import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import nn, settings, viz
from tinygrad_seq.engine import backward_iter, topological_order

from .cell_variants import GatedCell
from .conftest import ForgetsTheTuple, to_host


# ---------------------------------------------------------------- construction and dtypes


def test_dtype_rules(backend):
    assert ts.Tensor([1.0, 2.0]).dtype == np.float32  # Python floats: the default dtype
    assert ts.Tensor(3).dtype == np.int64
    assert ts.Tensor([True, False]).dtype == bool
    assert ts.Tensor(np.zeros(2, dtype=np.float64)).dtype == np.float64  # arrays keep theirs
    assert ts.Tensor(np.zeros(2, dtype=np.int32)).dtype == np.int32
    assert ts.Tensor(np.float64(2.0)).dtype == np.float64
    assert ts.Tensor([1, 2], dtype="float64").dtype == np.float64
    assert ts.Tensor(np.zeros(2), dtype=np.float32).dtype == np.float32
    assert backend.owns(ts.Tensor(np.zeros(2)).data)
    ts.set_default_dtype("float64")
    assert ts.Tensor([1.0]).dtype == np.float64
    assert ts.zeros(2).dtype == np.float64


def test_numpy_taking_a_tensor_that_requires_grad_is_refused_as_pytorch_refuses_it():
    """np.tanh(c) in a cell's forward computed on the values: the cell trained on with no gradient through that term
    (a learner's walk), and nothing said so."""

    class NumpyInside(GatedCell):
        def forward(self, x, state=None):
            a = self.prepare(x, state)
            return np.tanh(self.input_projection(x) + self.hidden_projection(a))

    message = r"^NumPy took a tensor \(2, 4\) that requires grad as an array: what it computes from it is outside the graph"
    with pytest.raises(RuntimeError, match=message):
        ts.nn.Recurrent(NumpyInside(3, 4))(ts.randn(5, 2, 3))
    w = ts.Tensor(np.ones(3), requires_grad=True, name="w")
    with pytest.raises(RuntimeError, match=r"NumPy took a tensor \(3,\) \(w\) that requires grad.*call x\.numpy\(\)"):
        np.asarray(w)
    np.testing.assert_array_equal((w * 2).numpy(), [2, 2, 2])  # the values, asked for: given
    np.testing.assert_array_equal(np.asarray(w.detach() * 2), [2, 2, 2])  # no graph: NumPy takes it
    with ts.no_grad():
        np.testing.assert_array_equal(np.tanh(w), np.tanh(np.ones(3)))


def test_pytorchs_name_for_a_function_says_this_librarys():
    with pytest.raises(AttributeError, match=r"^module 'tinygrad_seq' has no attribute 'cat' \(PyTorch's name\); here it is "
                                             r"ts\.concat\(\[a, b\], axis=0\)$"):
        ts.cat
    with pytest.raises(AttributeError, match=r"'tanh' \(PyTorch's name\); here it is the tensor's method, x\.tanh\(\)$"):
        ts.tanh
    with pytest.raises(AttributeError, match=r"^module 'tinygrad_seq' has no attribute 'frobnicate'$"):
        ts.frobnicate
    assert not hasattr(ts, "cat") and ts.concat([ts.ones(1), ts.zeros(1)]).tolist() == [1.0, 0.0]


def test_pytorchs_name_for_a_tensor_method_says_this_librarys():
    x = ts.randn(2, 3)
    with pytest.raises(AttributeError, match=r"^'Tensor' object has no attribute 'view' \(PyTorch's name\); here: x\.reshape\(\*shape\)$"):
        x.view(3, 2)
    with pytest.raises(AttributeError, match=r"'permute' \(PyTorch's name\); here: x\.transpose\(\*axes\)"):
        x.permute(1, 0)
    with pytest.raises(AttributeError, match=r"^'Tensor' object has no attribute 'frobnicate'$"):
        x.frobnicate
    assert getattr(x, "view", None) is None and not hasattr(x, "contiguous")  # still plain attribute errors to getattr


def test_pytorchs_dim_and_keepdim_are_taken_as_axis_and_keepdims():
    """As PyTorch takes axis= beside dim=: the same results, by every method and function with an axis."""
    x = ts.randn(2, 3, 4)
    for name in ("sum", "mean", "argmax", "softmax", "log_softmax"):
        keep = {"keepdim": True} if name in ("sum", "mean") else {}
        kept = {"keepdims": True} if keep else {}
        np.testing.assert_array_equal(getattr(x, name)(dim=1, **keep).numpy(), getattr(x, name)(axis=1, **kept).numpy())
    np.testing.assert_array_equal(x.max(1, keepdim=True).numpy(), x.max(1, keepdims=True).numpy())
    for name, indices in (("max", r"x\.argmax"), ("min", r"\(-x\)\.argmax")):  # PyTorch's dim= returns a pair: v, i = x.max(dim=1)
        with pytest.raises(TypeError, match=rf"^{name}\(dim=\.\.\.\) is PyTorch's, which returns \(values, indices\); here "
                                            rf"{name}\(axis=\.\.\.\) returns the values and {indices}\(axis=\.\.\.\) the indices$"):
            getattr(x, name)(dim=1)
    assert x.unsqueeze(dim=0).shape == (1, 2, 3, 4) and x.unsqueeze(dim=0).squeeze(dim=0).shape == x.shape
    assert ts.concat([x, x], dim=2).shape == (2, 3, 8) and ts.stack([x, x], dim=1).shape == (2, 2, 3, 4)
    assert [p.shape for p in ts.split(x, 2, dim=2)] == [p.shape for p in ts.chunk(x, 2, dim=2)] == [(2, 3, 2)] * 2
    with pytest.raises(TypeError, match=r"^sum: got both dim= \(PyTorch's name\) and axis=; pass one$"):
        x.sum(dim=1, axis=1)
    with pytest.raises(ValueError, match=r"^flatten: start_dim 2 comes after end_dim 1 in a tensor of shape \(2, 3, 4\)$"):
        x.flatten(2, 1)
    assert ts.Tensor(2.0).flatten().shape == (1,)


def test_numpy2_promotion():
    x32 = ts.Tensor([1.0, 2.0])
    assert (x32 * 2.0).dtype == np.float32  # a Python number is a weak scalar
    assert (2 - x32).dtype == np.float32
    assert (x32 + ts.Tensor(np.ones(2))).dtype == np.float64
    assert (ts.Tensor([1, 2]) * 2.5).dtype == np.float64
    assert (ts.Tensor([1, 2]) / 2).dtype == np.float64


def test_tensor_from_tensor_and_array_protocol():
    x = ts.Tensor([1.0, 2.0], requires_grad=True)
    y = ts.Tensor(x)
    assert y.is_leaf and not y.requires_grad
    np.testing.assert_array_equal(np.asarray(y), [1.0, 2.0])
    assert ts.Tensor([[1.0, 2.0]]).tolist() == [[1.0, 2.0]]
    assert float(ts.Tensor(2.5)) == 2.5 and len(ts.zeros(3, 2)) == 3


def test_int_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match=r"only float tensors can require grad; this one is int64.*dtype='float32'"):
        ts.Tensor([1, 2], requires_grad=True)


def test_bad_data_is_named():
    with pytest.raises(TypeError, match="cannot make a tensor from dict"):
        ts.Tensor({"a": 1})


def test_repr_and_item():
    w = ts.Tensor([[1.0, 2.0]], requires_grad=True, name="W_ax")
    assert repr(w) == "Tensor([[1., 2.]], dtype=float32, name='W_ax', requires_grad=True)"
    assert repr(w * 2) == "Tensor([[2., 4.]], dtype=float32, grad_fn=Mul)"
    assert ts.Tensor([[3.5]]).item() == 3.5
    with pytest.raises(ValueError, match=r"item\(\): the tensor has 2 elements \(shape \(1, 2\)\)"):
        w.item()


def test_creation_functions(backend):
    assert ts.zeros(2, 3).shape == (2, 3) and float(ts.zeros((2, 3)).sum()) == 0
    assert float(ts.ones(2, 3, dtype="float64").sum()) == 6.0
    assert ts.full((2,), 7.0).tolist() == [7.0, 7.0]
    assert ts.arange(3).tolist() == [0, 1, 2] and ts.arange(3).dtype == np.int64
    x = ts.randn(3, 4, requires_grad=True)
    assert x.shape == (3, 4) and x.requires_grad and x.dtype == np.float32
    assert 0 <= float(ts.rand(100).min()) and float(ts.rand(100).max()) < 1
    with pytest.raises(ValueError, match="zeros: a shape is a sequence of non-negative ints"):
        ts.zeros(-1)


def test_manual_seed_repeats_random_numbers():
    ts.manual_seed(42)
    a = ts.randn(5).numpy().copy()
    ts.manual_seed(42)
    np.testing.assert_array_equal(a, ts.randn(5).numpy())
    with pytest.raises(TypeError, match="manual_seed: the seed must be an int"):
        ts.manual_seed(1.5)
    with pytest.raises(ValueError, match="manual_seed: the seed must be >= 0 .*; got -1"):
        ts.manual_seed(-1)  # NumPy's own message would not name manual_seed


# ---------------------------------------------------------------- gradients


def test_reused_tensor_accumulates(backend):
    x = ts.Tensor([1.0, -2.0, 3.0], requires_grad=True)
    y = x * x + x * 3.0 + x  # three uses of x
    y.sum().backward()
    np.testing.assert_allclose(to_host(x.grad), 2 * np.array([1.0, -2.0, 3.0]) + 4)


def test_weight_shared_across_time_steps_accumulates():
    # a<t> = tanh(w * a<t-1>): the weight is used at every step, its gradient sums them all.
    w = ts.Tensor(0.5, dtype="float64", requires_grad=True)
    a = ts.Tensor(1.0, dtype="float64")
    values = [1.0]
    for _ in range(4):
        a = (w * a).tanh()
        values.append(float(a))
    a.backward()
    # Hand-derived BPTT: d a<t>/dw = (1 - a<t>^2) (a<t-1> + w d a<t-1>/dw)
    d = 0.0
    for t in range(1, 5):
        d = (1 - values[t] ** 2) * (values[t - 1] + 0.5 * d)
    assert float(w.grad) == pytest.approx(d, rel=1e-12)


def test_grads_accumulate_across_backward_calls_until_zeroed():
    x = ts.Tensor([2.0], requires_grad=True)
    (x * 3.0).sum().backward()
    (x * 3.0).sum().backward()
    assert x.grad.tolist() == [6.0]
    x.grad = None
    (x * 3.0).sum().backward()
    assert x.grad.tolist() == [3.0]


def test_leaf_grad_is_its_own_buffer():
    x = ts.Tensor([1.0, 2.0], requires_grad=True)
    y = ts.Tensor([1.0, 2.0], requires_grad=True)
    (x + y).sum().backward()  # both receive the same upstream array
    x.grad *= 10
    assert y.grad.tolist() == [1.0, 1.0]


def test_grad_dtype_follows_the_input():
    x = ts.Tensor([1.0, 2.0], requires_grad=True)  # float32
    (x * ts.Tensor(np.array([1.0, 2.0]))).sum().backward()  # the product is float64
    assert x.grad.dtype == np.float32


def test_ten_thousand_op_chain():
    x = ts.Tensor([1.0], dtype="float64", requires_grad=True)
    y = x
    for _ in range(10_000):
        y = y * 1.0001
    y.sum().backward()
    assert x.grad[0] == pytest.approx(1.0001**10_000, rel=1e-9)


def test_no_grad_records_nothing_and_restores():
    w = ts.Tensor([1.0], requires_grad=True)
    with ts.no_grad():
        y = w * 2
        assert not ts.is_grad_enabled()
        with ts.enable_grad():
            z = w * 2
    assert ts.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None
    assert z.requires_grad and z.grad_fn is not None

    @ts.no_grad()
    def predict(v):
        return v * 3

    assert not predict(w).requires_grad


def test_detach_cuts_the_graph():
    w = ts.Tensor([1.0], requires_grad=True)
    h = (w * 2).detach()
    assert h.is_leaf and not h.requires_grad
    out = (h * w).sum()
    out.backward()
    assert w.grad.tolist() == [2.0]


def test_to_dtype_is_differentiable():
    x = ts.Tensor([1.0, 2.0], requires_grad=True)
    y = x.double()
    assert y.dtype == np.float64 and y.grad_fn.name == "Cast"
    (y * y).sum().backward()
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [2.0, 4.0]
    assert x.float() is x


# ---------------------------------------------------------------- backward pass and graph


def test_saved_arrays_freed_unless_retain_graph():
    x = ts.Tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    assert x.grad.tolist() == [4.0, 8.0]
    node = y.grad_fn.inputs[0].grad_fn
    assert node.freed and node.a is None and node.inputs[0] is x  # structure stays for drawing
    with pytest.raises(RuntimeError, match="backward through Sum a second time.*retain_graph=True"):
        y.backward()


def test_a_state_carried_undetached_into_the_next_chunk_is_named_as_the_cause():
    """Truncated BPTT without state.detach(): the second chunk's loss reaches the first chunk's freed steps, and after
    retain_graph=True, a weight opt.step() changed. Both errors say that this loss reached back and to detach."""
    from tinygrad_seq import nn, optim
    from tinygrad_seq.viz import demo

    detach = (r"Detach what you carry before the next chunk: state = state\.detach\(\), or for a state of several tensors "
              r"\(an LSTM's \(h, c\), a LanguageModel's list\) state = nn\.detach_state\(state\)")
    for retain in (False, True):
        lstm = nn.LSTM(3, 4)
        opt = optim.SGD(lstm.parameters(), lr=0.1)
        x, state = ts.randn(10, 2, 3), None
        outputs, state = lstm(x[:5], state)
        outputs.sum().backward(retain_graph=retain)
        opt.step()
        outputs, state = lstm(x[5:], state)  # state not detached
        message = (r"^backward through LSTMStep at time step 5, layer 0, forward: its input weight_hh_l0 .* was changed in "
                   r"place .* This loss reaches a tensor computed before the change: a state carried .*" if retain else
                   r"^backward through LSTMStep at time step 5, layer 0, forward a second time: .* This loss reaches a tensor "
                   r"computed before that backward\(\): a state carried .*")
        with pytest.raises(RuntimeError, match=message + detach):
            outputs.sum().backward()
    # The same loss twice, a step included (the graph tools' model, every node tagged t): retain_graph is the fix
    loss = demo.small_model("lstm").loss()
    loss.backward()
    with pytest.raises(RuntimeError, match=r"^backward through Add at time step 3, layer output, forward a second time: .*\. "
                                           r"Pass retain_graph=True to the first backward\(\) to run backward .*on purpose$"):
        loss.backward()
    # An update between a loss's forward and its backward: the usual advice, no carried state
    lstm = nn.LSTM(3, 4)
    outputs, _ = lstm(ts.randn(5, 2, 3))
    loss = outputs.sum()
    lstm.weight_hh_l0.data = lstm.weight_hh_l0.data * 0.5  # an assignment to .data counts as an in-place change
    with pytest.raises(RuntimeError, match=r"was changed in place .* Call backward\(\) before opt\.step\(\)") as error:
        loss.backward()
    assert "carried" not in str(error.value)
    # tags that place no step add no "at ..." (they read "at outside the time loop")
    with ts.tags(note="mine"):
        y = (ts.Tensor([1.0], requires_grad=True) * 2).sum()
    y.backward()
    with pytest.raises(RuntimeError, match=r"^backward through Sum a second time: "):
        y.backward()


def test_backward_errors_say_what_to_do():
    with pytest.raises(RuntimeError, match=r"shape \(2,\) needs a gradient.*y.sum\(\).backward\(\)"):
        (ts.Tensor([1.0, 2.0], requires_grad=True) * 2).backward()
    with pytest.raises(RuntimeError, match="does not require grad.*requires_grad=True"):
        ts.Tensor([1.0]).backward()
    with pytest.raises(RuntimeError, match=r"grad shape \(3,\) != tensor shape \(2,\)"):
        (ts.Tensor([1.0, 2.0], requires_grad=True) * 2).backward(np.ones(3))


def test_backward_with_explicit_gradient(backend):
    x = ts.Tensor([1.0, 2.0], requires_grad=True)
    (x * 3.0).backward(ts.Tensor([1.0, -1.0]))
    assert to_host(x.grad).tolist() == [3.0, -3.0]


def test_wrong_gradient_shape_from_an_op_names_it():
    class BadOp(ts.Function):
        __slots__ = ()

        def forward(self, x):
            return x.sum(axis=0)

        def backward(self, grad):
            return (grad,)  # forgot to broadcast back

    x = ts.Tensor(np.ones((3, 4)), requires_grad=True)
    with pytest.raises(RuntimeError, match=r"^BadOp\.backward: gradient of shape \(4,\) for an input of shape \(3, 4\); each "
                       r"gradient must have its input's shape \(sum over the axes a broadcast added, or reshape\)$"):
        BadOp.apply(x).sum().backward()


@pytest.mark.parametrize("shape", [(2, 3), (1, 3), ()])
def test_a_backward_that_returns_a_bare_array_is_told_to_return_a_tuple(shape):
    x = ts.Tensor(np.ones(shape), requires_grad=True)
    # Before, len() of the array read as "returned 2 gradients for 1 inputs", a shape error, or a TypeError from len
    with pytest.raises(RuntimeError, match=r"^ForgetsTheTuple\.backward returned a (ndarray|float64), not a tuple: .*`return \(grad,\)`"):
        ForgetsTheTuple.apply(x).sum().backward()


def test_wrong_number_of_gradients_from_an_op_names_it():
    class TwoInOneOut(ts.Function):
        __slots__ = ()

        def forward(self, a, b):
            return a + b

        def backward(self, grad):
            return (grad,)  # forgot b's

    a = ts.Tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="TwoInOneOut.backward returned 1 gradients for 2 inputs"):
        TwoInOneOut.apply(a, a).sum().backward()


class Shifted(ts.Function):
    """factor * x + shift: two tensors (shift optional) and a keyword number, as the op convention has it."""

    __slots__ = ("factor",)

    def forward(self, x, shift, *, factor):
        self.factor = factor
        return x * factor if shift is None else x * factor + shift

    def backward(self, grad):
        return grad * self.factor, grad if self.needs_input_grad[1] else None


@pytest.mark.parametrize("argument, shown", [(2, "the int 2"), ((1, 2), "the tuple (1, 2)"),
                                             (np.arange(100), "the ndarray array([ 0,  1,"), ("abc", "the str 'abc'")])
def test_apply_refuses_a_positional_non_tensor_with_the_fix(argument, shown):
    x = ts.Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(TypeError) as error:
        Shifted.apply(x, argument, factor=2.0)
    message = str(error.value)
    assert message.startswith(f"Shifted.apply: positional argument 1 is {shown}")
    assert "only tensors (or None for an optional tensor left out) go positionally" in message
    assert "Pass it as a keyword argument (Shifted.forward's keyword parameters: factor)" in message
    assert "wrap it in ts.Tensor(...)" in message
    assert len(message) < 400  # a long array is cut short, not printed whole


def test_apply_accepts_none_for_an_optional_tensor_and_gives_it_no_gradient():
    x = ts.Tensor([1.0, 2.0], requires_grad=True)
    y = Shifted.apply(x, None, factor=3.0)
    assert y.tolist() == [3.0, 6.0]
    assert y.grad_fn.inputs == (x, None) and y.grad_fn.needs_input_grad == (True, False)
    assert y.grad_fn.params == {"factor": 3.0}  # the keywords stay on the node, as the inputs do
    y.sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


def test_built_in_ops_refuse_their_parameters_positionally_and_name_the_keywords():
    x = ts.Tensor(np.ones((2, 3)), requires_grad=True)
    with pytest.raises(TypeError, match=r"Sum.apply: positional argument 1 is the tuple \(0,\).*keyword parameters: axes, keepdims"):
        ts.ops.Sum.apply(x, (0,), False)
    with pytest.raises(TypeError, match=r"Pow.apply: positional argument 1 is the int 2.*keyword parameters: exponent"):
        ts.ops.Pow.apply(x, 2)
    assert ts.ops.Sum.apply(x, axes=(0,), keepdims=False).tolist() == [2.0, 2.0, 2.0]


def test_python_numbers_are_the_keyword_scalar_and_stay_weak_scalars():
    x = ts.Tensor(np.array([1.5, -2.25, 3.0], dtype=np.float32), requires_grad=True)
    for y, expected, inputs in [(x * 0.1, x.data * 0.1, (x, None)), (0.1 * x, 0.1 * x.data, (None, x)),
                                (1 - x, 1 - x.data, (None, x)), (x / 3, x.data / 3, (x, None)),
                                (3 / x, 3 / x.data, (None, x)), (x + 1.0, x.data + 1.0, (x, None))]:
        assert y.dtype == np.float32  # NumPy 2's weak scalar: float32 * 0.1 stays float32
        assert np.array_equal(to_host(y.data), to_host(expected))  # bit for bit what NumPy computes
        assert y.grad_fn.inputs == inputs and "scalar" in y.grad_fn.params
    assert (x ** 2).grad_fn.params == {"exponent": 2}
    (1 - x * 2).sum().backward()
    assert x.grad.tolist() == [-2.0, -2.0, -2.0]


def _function_subclasses():
    found, stack = [], [ts.Function]
    while stack:
        for subclass in stack.pop().__subclasses__():
            found.append(subclass)
            stack.append(subclass)
    return found


def test_every_function_lives_under_ops_or_its_module_says_why():
    import importlib
    import importlib.util
    import pkgutil
    import sys

    import tinygrad_seq

    without_numba = importlib.util.find_spec("numba") is None  # then ops/loops.py cannot be imported (conftest.py)
    for module in pkgutil.walk_packages(tinygrad_seq.__path__, "tinygrad_seq."):
        if module.name.endswith("__main__"):  # running the CLI is not importing it
            continue
        if not (without_numba and module.name in ("tinygrad_seq.ops.loops", "tinygrad_seq.optim.loops")):
            importlib.import_module(module.name)
    ours = [cls for cls in _function_subclasses() if cls.__module__.startswith("tinygrad_seq.")]
    outside = [cls for cls in ours if not cls.__module__.startswith("tinygrad_seq.ops.")]
    unexplained = [f"{cls.__module__}.{cls.__name__}" for cls in outside
                   if not (cls.__name__ in (sys.modules[cls.__module__].__doc__ or "") and "ops/" in sys.modules[cls.__module__].__doc__)]
    assert not unexplained, f"Function subclasses outside tinygrad_seq/ops/ whose module docstring does not say why: {unexplained}"
    where = {cls.__name__: cls.__module__ for cls in ours}
    assert where["CrossEntropy"] == where["BinaryCrossEntropyWithLogits"] == "tinygrad_seq.ops.losses"
    assert where["EmbeddingLookup"] == "tinygrad_seq.ops.embedding" and where["DropoutMask"] == "tinygrad_seq.ops.dropout"
    assert {where[name] for name in ("RNNStep", "GRUStep", "SimplifiedGRUStep", "LSTMStep")} == {"tinygrad_seq.ops.cell_steps"}
    assert [cls.__name__ for cls in outside] == ["RecordedStep"]


def test_backward_iter_is_reverse_topological_and_complete():
    x = ts.Tensor([0.5, -1.0], requires_grad=True, name="x")
    w1 = ts.Tensor([2.0, 3.0], requires_grad=True, name="w1")
    w2 = ts.Tensor([1.5, 1.0], requires_grad=True, name="w2")
    hidden = (x * w1).tanh()
    loss = (hidden * w2).sum()
    steps = list(backward_iter(loss))
    assert [s.op for s in steps] == ["Sum", "Mul", "Tanh", "Mul"]
    assert steps[0].grad.shape == () and steps[1].input_grads[1].shape == (2,)
    # the gradient a step sends to `hidden` is the one arriving at the Tanh step
    np.testing.assert_allclose(steps[1].input_grads[0], steps[2].grad)
    assert x.grad is not None and w1.grad is not None and w2.grad is not None


def test_stopping_backward_midway_leaves_partial_gradients():
    x = ts.Tensor([0.5, -1.0], requires_grad=True)
    w1 = ts.Tensor([2.0, 3.0], requires_grad=True)
    w2 = ts.Tensor([1.5, 1.0], requires_grad=True)
    loss = ((x * w1).tanh() * w2).sum()
    steps = backward_iter(loss)
    next(steps), next(steps)  # Sum, then the Mul by w2
    assert w2.grad is not None and w1.grad is None and x.grad is None


def test_topological_order_counts_every_use():
    x = ts.Tensor([1.0], requires_grad=True)
    y = x * x
    z = y + y
    order, incoming = topological_order(z)
    assert [t.grad_fn.name for t in order] == ["Add", "Mul"]
    assert incoming[id(x)] == 2 and incoming[id(y)] == 2


def test_hooks_see_and_replace_the_complete_gradient():
    x = ts.Tensor([1.0, 2.0], requires_grad=True)
    seen = []
    x.register_hook(lambda g: seen.append(g.copy()))
    remove = x.register_hook(lambda g: g * 10)
    h = x * 3.0
    h.register_hook(lambda g: g + 1)
    (h * 2 + h).sum().backward()  # h receives 2 + 1 = 3, the hook makes it 4
    np.testing.assert_array_equal(seen[0], [12.0, 12.0])  # one call with the sum, not one per use
    assert x.grad.tolist() == [120.0, 120.0]
    remove()
    x.grad = None
    (x * 1.0).sum().backward()
    assert x.grad.tolist() == [1.0, 1.0]


def test_hook_must_keep_the_shape():
    x = ts.Tensor([1.0, 2.0], requires_grad=True)
    x.register_hook(lambda g: g.sum())
    with pytest.raises(RuntimeError, match=r"returned a gradient of shape \(\); it must keep the shape \(2,\)"):
        (x * 2).sum().backward()


def test_retain_grad_on_intermediate():
    x = ts.Tensor([1.0, 2.0], requires_grad=True)
    a = (x * 2).retain_grad()
    b = x * 2
    (a * a + b).sum().backward()
    assert a.grad.tolist() == [4.0, 8.0] and b.grad is None


def test_grad_is_assignable_and_checked():
    x = ts.Tensor([1.0, 2.0], requires_grad=True)
    x.grad = ts.Tensor([0.5, 0.5])
    assert x.grad.tolist() == [0.5, 0.5] and x.grad.dtype == np.float32
    with pytest.raises(ValueError, match=r"grad: shape \(3,\) does not match the tensor's shape \(2,\)"):
        x.grad = np.zeros(3)


def test_tags_are_recorded_and_nest():
    x = ts.Tensor([1.0], requires_grad=True)
    with ts.tags(t=1, layer=0):
        a = x.tanh()
        with ts.tags(t=2, direction="reverse"):
            b = a.tanh()
    c = b * 2
    assert a.tags == {"t": 1, "layer": 0}
    assert b.tags == {"t": 2, "layer": 0, "direction": "reverse"}
    assert c.tags == {} and x.tags == {}
    steps = list(backward_iter(c.sum()))
    assert [s.tags.get("t") for s in steps] == [None, None, 2, 1]


@pytest.mark.filterwarnings("ignore:divide by zero")
def test_detect_anomaly_names_the_op_and_where_it_was_made():
    x = ts.Tensor([0.0, 1.0], requires_grad=True)
    with ts.detect_anomaly():
        with ts.tags(t=3):
            y = x.sqrt()  # d sqrt at 0 is inf
        with pytest.raises(FloatingPointError, match=r"(?s)Sqrt \(tags \{'t': 3\}\) sent a non-finite gradient.*test_autograd.py"):
            y.sum().backward()
    z = x.sqrt()
    z.sum().backward()  # outside the block: no check, the inf goes through
    assert np.isinf(x.grad[0])


def test_custom_function_is_a_first_class_op():
    class Cube(ts.Function):
        __slots__ = ("x",)

        def forward(self, x):
            self.x = x
            return x**3

        def backward(self, grad):
            return (3 * self.x**2 * grad,)

    x = ts.Tensor([1.0, -2.0], dtype="float64", requires_grad=True)
    assert ts.grad_check(Cube.apply, [x])
    y = Cube.apply(x)
    assert y.grad_fn.name == "Cube"


# ---------------------------------------------------------------- non-differentiable helpers and errors


def test_comparisons_and_argmax(backend):
    x = ts.Tensor([[1.0, 5.0, 3.0], [4.0, 2.0, 6.0]], requires_grad=True)
    assert (x > 2.5).dtype == bool and not (x > 2.5).requires_grad
    assert to_host((x > 2.5).data).tolist() == [[False, True, True], [True, False, True]]
    assert to_host((x == x).data).all() and not to_host((x != x).data).any()
    assert to_host((x <= 2.0).data).sum() == 2 and to_host((x >= 6).data).sum() == 1 and to_host((x < 1.0).data).sum() == 0
    assert to_host(x.argmax(axis=1).data).tolist() == [1, 2] and int(x.argmax()) == 5
    assert x in [x] and len({x, x}) == 1  # hashable by identity


@pytest.mark.parametrize(
    "make, error, message",
    [
        (lambda x: x + ts.ones(2), ValueError, r"Add: operands could not be broadcast.*\(input shapes \(3, 4\), \(2,\)\); line the axes up"),
        (lambda x: x @ ts.ones(3, 2), ValueError, r"matmul: shapes \(3, 4\) @ \(3, 2\) do not fit.*w.T"),
        (lambda x: x @ 2.0, ValueError, r"matmul: shapes \(3, 4\) @ \(\): both operands need at least one axis"),
        (lambda x: x.reshape(5), ValueError, r"Reshape: cannot reshape array of size 12 into shape \(5,\)"),
        (lambda x: x[5], IndexError, r"GetItem: index 5 is out of bounds for axis 0 with size 3"),
        (lambda x: x[np.array([0.5])], IndexError, r"getitem: index arrays must hold ints or bools; got float64\. Convert ids with \.astype\(int\)$"),
        (lambda x: x[ts.Tensor([0.5])], IndexError, r'getitem: index arrays must hold ints or bools; got float32\. Convert ids with \.to\("int64"\)$'),
        (lambda x: x[[0.5]], IndexError, r"getitem: index arrays must hold ints or bools; got float64\. Convert ids with np\.asarray\(ids, dtype=int\)$"),
        (lambda x: x.sum(axis=2), ValueError, r"sum: axis 2 is out of range for a tensor with 2 axes"),
        (lambda x: x.squeeze(0), ValueError, r"squeeze: axis 0 of shape \(3, 4\) has size 3"),
        (lambda x: x.unsqueeze(4), ValueError, r"unsqueeze: axis 4 is out of range"),
        (lambda x: x.transpose(0, 0), ValueError, r"transpose: axes \(0, 0\) are not a permutation"),
        (lambda x: ts.concat([x, ts.ones(2, 2)]), ValueError, r"concat: shapes \[\(3, 4\), \(2, 2\)\] differ outside axis 0"),
        (lambda x: ts.concat([]), ValueError, r"concat: got no tensors"),
        (lambda x: ts.stack([x, ts.ones(4, 3)]), ValueError, r"stack: all tensors must have one shape"),
        (lambda x: ts.split(x, [1, 1]), ValueError, r"split: sections \[1, 1\] add up to 2, but axis 0 of shape \(3, 4\) has 3"),
        (lambda x: ts.chunk(x, 0), ValueError, r"chunk: chunks must be an int >= 1; got 0"),
        (lambda x: ts.chunk(x, 1.5), ValueError, r"chunk: chunks must be an int >= 1; got 1\.5"),
        (lambda x: x ** ts.ones(1), TypeError, r"pow: the exponent must be a Python number.*\(x.log\(\) \* y\).exp\(\)"),
        (lambda x: x.clamp(), ValueError, r"clamp: give at least one of lo and hi"),
        (lambda x: x.clamp(1.0, -1.0), ValueError, r"clamp: lo=1.0 is greater than hi=-1.0"),
        (lambda x: ts.where(x, x, x), TypeError, r"where: the condition must be a bool tensor or array; got float32.*x > 0"),
        (lambda x: x.masked_fill(np.ones((2, 4), bool), 0.0), ValueError, r"masked_fill: mask of shape \(2, 4\) does not broadcast to the tensor's shape \(3, 4\)"),
        (lambda x: x.max(axis=(0, 5)), ValueError, r"max: axis 5 is out of range"),
        (lambda x: x.requires_grad_(False) if x.grad_fn else (x * 2).requires_grad_(False), RuntimeError, r"non-leaf tensor: use .detach\(\)"),
        (lambda x: ts.Tensor([1.0]).retain_grad(), RuntimeError, r"retain_grad\(\) on a tensor that does not require grad"),
        # wrong results before: axes taken modulo the rank (transpose(0, 5) of a matrix returned it unchanged), a
        # negative section cut a piece from the end
        (lambda x: x.transpose(0, 5), ValueError, r"^transpose: axes \(0, 5\) are not a permutation of the 2 axes of a tensor of shape \(3, 4\)"),
        (lambda x: x.transpose(2, 1), ValueError, r"^transpose: axes \(2, 1\) are not a permutation"),
        (lambda x: ts.split(x, [-1, 4], axis=1), ValueError, r"^split: sections must be sizes, ints >= 0; got \[-1, 4\]$"),
        # each failed with Python's or NumPy's words, naming no op
        (lambda x: x.reshape(2.0, 6), TypeError, r"^reshape: takes ints, as reshape\(2, 3\) or reshape\(\(2, 3\)\); got \(2\.0, 6\)$"),
        (lambda x: x.sum(1.0), TypeError, r"^sum: axis must be an int, a tuple of ints, or None for all; got 1\.0$"),
        # one rule for axes and sizes (checks.is_int): sum took a 0-d array as an axis where reshape refused it as a size
        (lambda x: x.sum(np.array(1)), TypeError, r"^sum: axis must be an int, a tuple of ints, or None for all; got array\(1\)$"),
        (lambda x: x.argmax(5), ValueError, r"^argmax: axis 5 is out of range for a tensor with 2 axes"),
        (lambda x: x.clamp("0", 1), TypeError, r"^clamp: lo must be a number \(or None for no bound\); got '0'$"),
        (lambda x: ts.zeros(2, dtype="flaot"), TypeError, r"^zeros: 'flaot' is not a dtype a tensor holds; use 'float32'"),
        (lambda x: ts.Tensor(np.array([1, 2]), dtype="U3"), TypeError, r"^Tensor: 'U3' is not a dtype a tensor holds"),  # made a <U3 tensor
        (lambda x: ts.zeros(True), TypeError, r"^zeros: takes ints, as zeros\(2, 3\) or zeros\(\(2, 3\)\); got \(True,\)$"),
        (lambda x: ts.Tensor(["a", "b"]), TypeError, r"^Tensor: cannot make a tensor from list \['a', 'b'\] \(its values are <U1\); a tensor "
                                                    r"holds numbers or bools\. Text becomes ids first: vocab\.encode\(text\)$"),
        (lambda x: ts.Tensor([[1, 2], [3]]), ValueError, r"^Tensor: cannot make a tensor of list \[\[1, 2\], \[3\]\]: .*pad ragged lists"),
        (lambda x: ts.grad_check(lambda v: v * 2, x.double()), TypeError, r"^grad_check: inputs is the list of fn's arguments; got one Tensor\. Pass \[x\]"),
    ],
)
def test_errors_name_the_op_the_shapes_and_the_fix(make, error, message):
    x = ts.Tensor(np.zeros((3, 4), dtype=np.float32), requires_grad=True)
    with pytest.raises(error, match=message):
        make(x)
    assert ts.is_grad_enabled() and settings.current_tags == {}


def test_a_cast_to_integers_starts_a_new_graph_as_pytorch_does():
    """x.to("int64") required grad and sent back truncated gradients: (x.to("int64") * 0.5).sum() gave x.grad = 0."""
    x = ts.Tensor([1.0, 2.0], requires_grad=True)
    ids = x.to("int64")
    assert ids.dtype == np.int64 and not ids.requires_grad and ids.grad_fn is None
    assert ids.tolist() == [1, 2]
    (x.to("float64") * 0.5).sum().backward()  # a float cast stays differentiable
    assert x.grad.tolist() == [0.5, 0.5]
    from tinygrad_seq.ops.convert import Cast

    direct = Cast.apply(x, dtype=np.int32)  # the rule is Function.apply's, for every op (a user's too), not to()'s
    assert not direct.requires_grad and direct.grad_fn is None


def test_slices_send_slice_gradients_summed_in_place():
    from tinygrad_seq.lazy_grad import SliceGrad

    x = ts.Tensor(np.arange(12.0).reshape(4, 3), requires_grad=True)
    steps = [x[t] * float(t + 1) for t in range(4)]
    node = steps[2].grad_fn.inputs[0].grad_fn
    assert isinstance(node.backward(np.ones(3))[0], SliceGrad)  # no dense (4, 3) zeros per slice
    ts.stack(steps).sum().backward()
    np.testing.assert_array_equal(x.grad, np.repeat([[1.0], [2.0], [3.0], [4.0]], 3, axis=1))
    y = ts.Tensor(np.ones(3), requires_grad=True)
    (y[0] + y[0:2].sum() + y[np.array([True, False, True])].sum()).backward()  # slices, repeats, masks
    assert y.grad.tolist() == [3.0, 1.0, 1.0]


def test_outer_gradients_are_summed_with_one_matmul():
    from tinygrad_seq.lazy_grad import OuterGrad

    class SharedWeight(ts.Function):
        """y = x @ w.T, sending w's gradient as factors (as the fused RNN steps do)."""

        __slots__ = ("x", "w")

        def forward(self, x, w):
            self.x, self.w = x, w
            return x @ w.T

        def backward(self, grad):
            half = self.w.shape[0] // 2
            return grad @ self.w, [OuterGrad(grad[:, :half], self.x, self.w.shape, slice(0, half)),
                                   OuterGrad(grad[:, half:], self.x, self.w.shape, slice(half, None))]

    rng = np.random.default_rng(0)
    w = ts.Tensor(rng.standard_normal((4, 3)), requires_grad=True)
    xs = [ts.Tensor(rng.standard_normal((2, 3)), requires_grad=True) for _ in range(3)]
    assert ts.grad_check(lambda w, *xs: sum((SharedWeight.apply(x, w) ** 2).sum() for x in xs) + (w * w).sum(), [w, *xs])
    loss = sum((SharedWeight.apply(x, w) ** 2).sum() for x in xs)
    steps = list(backward_iter(loss))
    expected = sum(2 * (x.numpy() @ w.numpy().T).T @ x.numpy() for x in xs)
    np.testing.assert_allclose(w.grad, expected, rtol=1e-12)
    assert any(isinstance(g, list) for s in steps for g in s.input_grads)


@pytest.mark.parametrize("flush_rows", [4, 9, 512])  # 7 steps of 3 rows: summed every 2 steps, every 3, at the end
def test_deferred_weight_gradients_flushed_early_sum_the_same(flush_rows, monkeypatch):
    """A long sequence's weight-gradient factors are summed in batches of OUTER_FLUSH_ROWS rows (memory stays
    bounded); however they are batched, the gradient is the same."""
    from tinygrad_seq import lazy_grad

    ts.set_default_dtype("float64")
    layer = nn.LSTM(3, 4)
    x = ts.randn(7, 3, 3)
    monkeypatch.setattr(lazy_grad, "OUTER_FLUSH_ROWS", flush_rows)
    out, _ = layer(x)
    out.sum().backward()
    got = [p.grad.copy() for p in layer.parameters()]
    layer.zero_grad()
    with ts.transparent():
        out, _ = layer(x)
    out.sum().backward()
    for a, b in zip(got, [p.grad for p in layer.parameters()]):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


def test_held_slices_wait_for_the_gradient_to_be_complete_and_mix_with_other_kinds():
    """StackPart sends all T packed states their slice at once as HeldSliceGrads: the engine keeps them (no
    zeroed buffer per state yet) until each state's gradient is complete, and sums them with the other
    deferred kinds a tensor receives (a weight's OuterGrads here)."""
    from tinygrad_seq.lazy_grad import HeldSliceGrad, OuterGrad, sum_deferred
    from tinygrad_seq.ops import stack_part

    ts.set_default_dtype("float64")
    rng = np.random.default_rng(0)
    packed = [ts.Tensor(rng.standard_normal((2, 3, 4)), requires_grad=True) for _ in range(3)]
    states = [p * 2.0 for p in packed]  # non-leaves: their gradients pass through the engine's buffers
    out = stack_part(states, 0)
    seen = 0
    for step in backward_iter((out * out).sum()):
        if step.node.name == "StackPart":  # its slices sent: held, no dense buffer for any state yet
            assert not any(id(s) in step.partial_grads for s in states)
            assert all(isinstance(step.partial_outer[id(s)][0], HeldSliceGrad) for s in states)
            seen += 1
    assert seen == 1
    for p in packed:
        expected = np.zeros((2, 3, 4))
        expected[0] = 2 * 2 * 2 * p.data[0]  # d/dp of (2 p[0])²
        np.testing.assert_allclose(p.grad, expected, rtol=1e-14)
    left, right, values = rng.standard_normal((5, 2)), rng.standard_normal((5, 4)), rng.standard_normal(4)
    mixed = [OuterGrad(left, right, (2, 4)), HeldSliceGrad((1,), values, (2, 4)), OuterGrad(left, right, (2, 4))]
    expected = 2 * left.T @ right
    expected[1] += values
    np.testing.assert_allclose(sum_deferred(mixed, (2, 4)), expected, rtol=1e-14)


def test_the_steps_write_the_projection_gradient_into_one_array_that_becomes_it():
    """A kernel's steps write their rows of the input projection's gradient into one GradientRows array (no
    zeroed buffer, no adds): the projection's node receives that very array, and the weight's OuterGrads
    and the bias's RowSumGrads read its rows as one view. Gradients equal the transparent path's, also on a
    second pass over a retained graph (which writes a new array)."""
    from tinygrad_seq.lazy_grad import StepRowsGrad

    ts.set_default_dtype("float64")
    layer = nn.LSTM(3, 4)
    x = ts.randn(5, 2, 3, requires_grad=True)
    out, _ = layer(x)
    loss = (out * out).sum()
    blocks, received = [], []
    for step in backward_iter(loss, retain_graph=True):
        if step.node.name == "LSTMStep":
            sent = step.input_grads[0]
            assert isinstance(sent, StepRowsGrad)
            blocks.append(sent.block.array)
        if step.node.name == "Linear" and step.tensor.shape == (5, 2, 16):  # the input projection
            received.append(step.grad)
    assert len(received) == 1 and received[0] is blocks[0] and all(b is blocks[0] for b in blocks)
    got = [p.grad.copy() for p in layer.parameters()] + [x.grad.copy()]
    loss.backward()  # the retained graph again: its steps write a new array, the first one is the gradient already given
    again = [p.grad for p in layer.parameters()] + [x.grad]
    layer.zero_grad()
    x.grad = None
    with ts.transparent():
        out, _ = layer(x)
    (out * out).sum().backward()
    for a, b, c in zip(got, again, [p.grad for p in layer.parameters()] + [x.grad]):
        np.testing.assert_allclose(a, c, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(b, 2 * c, rtol=1e-12, atol=1e-12)


def test_gradient_rows_zero_the_rows_no_step_wrote_and_fall_back_to_adding():
    from tinygrad_seq.lazy_grad import GradientRows, HeldSliceGrad, StepRowsGrad, sum_deferred

    rng = np.random.default_rng(0)
    rows = GradientRows(np.zeros((4, 2, 3)))
    values = {t: rng.standard_normal((2, 3)) for t in (3, 1)}
    parts = []
    for t, v in values.items():
        block = rows.row(t)
        block.array[t] = v
        parts.append(StepRowsGrad(t, block))
    total = sum_deferred(parts, (4, 2, 3))
    assert total is parts[0].block.array and rows.block is None  # the array itself, unwritten rows zeroed; released
    expected = np.zeros((4, 2, 3))
    for t, v in values.items():
        expected[t] = v
    np.testing.assert_array_equal(total, expected)
    block = rows.row(3)  # that array is a gradient now: the next row written goes to a new one
    block.array[3] = 1.0
    assert block.array is not total and total[3].tolist() == values[3].tolist()
    again = StepRowsGrad(3, block)
    rows.row(2).array[2] = 2.0
    mixed = [again, StepRowsGrad(2, block), StepRowsGrad(1, parts[1].block)]  # rows of two arrays: added into a buffer
    dense = np.ones((4, 2, 3))
    expected = dense.copy()
    expected[3] += 1.0
    expected[2] += 2.0
    expected[1] += values[1]
    np.testing.assert_array_equal(sum_deferred(mixed, (4, 2, 3), dense.copy()), expected)
    # With another deferred kind beside them, the block is not returned to be added into: a buffer of its own.
    beside = sum_deferred(mixed[:2] + [HeldSliceGrad((0,), np.ones((2, 3)), (4, 2, 3))], (4, 2, 3))
    assert beside is not block.array and beside[0].tolist() == [[1.0] * 3] * 2 and beside[3].tolist() == [[1.0] * 3] * 2


def test_a_running_gradient_is_a_copy_and_the_graph_keeps_no_gradient_rows():
    """The stepper's running_grad of a projection sums its StepRowsGrads into a buffer of its own: changing it
    cannot reach the W_hh gradient that reads the same rows. After backward the graph holds none of them."""
    ts.set_default_dtype("float64")
    layer = nn.LSTM(3, 4)
    x = ts.randn(5, 2, 3, requires_grad=True)
    out, _ = layer(x)
    projection = out.grad_fn.inputs[0].grad_fn.inputs[0]
    for step in backward_iter((out * out).sum()):
        if step.node.name == "LSTMStep" and step.node.tags["t"] == 3:
            running = step.running_grad(projection)
            assert not np.shares_memory(running, step.input_grads[2].left)
            running[...] = 1e6
    got = layer.weight_hh_l0.grad.copy()
    step_nodes = [t.grad_fn for t in topological_order(out)[0] if t.grad_fn.name == "LSTMStep"]
    assert step_nodes and all(n.params["grad_rows"].block is None for n in step_nodes)
    layer.zero_grad()
    with ts.transparent():
        out, _ = layer(x)
    (out * out).sum().backward()
    np.testing.assert_allclose(got, layer.weight_hh_l0.grad, rtol=1e-12, atol=1e-12)


def test_factors_of_consecutive_rows_are_joined_as_a_view():
    """joined_rows: OuterGrad and RowSumGrad parts whose factors are consecutive rows of one array (in any
    order) are read as one view of those rows, not copied; others are concatenated. The sums are the same."""
    from tinygrad_seq.lazy_grad import OuterGrad, RowSumGrad, joined_rows, sum_deferred

    rng = np.random.default_rng(0)
    array, rights = rng.standard_normal((5, 2, 3)), [rng.standard_normal((2, 4)) for _ in range(5)]
    outer = [OuterGrad(array[t], rights[t], (3, 4), source=(array, t)) for t in (3, 2, 1)]  # backward's order
    joined, ordered = joined_rows(outer, "left")
    assert np.shares_memory(joined, array) and [p.source[1] for p in ordered] == [1, 2, 3]
    expected = sum(array[t].T @ rights[t] for t in (1, 2, 3))
    np.testing.assert_allclose(sum_deferred(outer, (3, 4)), expected, rtol=1e-14)
    gap = [outer[0], outer[2]]  # rows 3 and 1: not consecutive, copied
    assert not np.shares_memory(joined_rows(gap, "left")[0], array)
    np.testing.assert_allclose(sum_deferred(gap, (3, 4)), array[3].T @ rights[3] + array[1].T @ rights[1], rtol=1e-14)
    sums = [RowSumGrad(array[t], (3,), (array, t)) for t in (4, 3)] + [RowSumGrad(rng.standard_normal((2, 3)), (3,))]
    np.testing.assert_allclose(sum_deferred(sums[:2], (3,)), array[3:].sum(axis=(0, 1)), rtol=1e-14)
    np.testing.assert_allclose(sum_deferred(sums, (3,)), array[3:].sum(axis=(0, 1)) + sums[2].rows.sum(axis=0), rtol=1e-14)
    assert sums[2].dense().shape == (3,) and RowSumGrad.flush_now([sums[2]] * 256) and not RowSumGrad.flush_now([sums[2]] * 255)


def test_stack_part_refuses_what_it_cannot_gather():
    from tinygrad_seq.ops import stack_part

    a = ts.Tensor(np.zeros((2, 3, 4), dtype=np.float32), requires_grad=True)
    cases = [
        (lambda: stack_part([], 0), "got no tensors"),
        (lambda: stack_part([a, a[:, :2]], 0), r"one shape and dtype; got \[\(\(2, 2, 4\), 'float32'\), \(\(2, 3, 4\)"),
        (lambda: stack_part([a, ts.Tensor(np.zeros((2, 3, 4)))], 0), "one shape and dtype.*float64"),
        (lambda: stack_part([a], 2), r"part 2 is out of range for packed states of shape \(2, 3, 4\)"),
        (lambda: stack_part([a, a], 0, running=[None]), "1 running masks for 2 packed states"),
        (lambda: stack_part([a], 0, running=[np.ones(3, bool)]), r"running\[0\] must be a bool mask of shape \(3, 1\).*mask\[:, None\]"),
        (lambda: stack_part([a], 0, running=[np.ones((3, 1))]), r"bool mask of shape \(3, 1\).*got float64"),
    ]
    for make, message in cases:
        with pytest.raises(ValueError, match=message):
            make()
    out = stack_part([a, a], -2, running=[None, [[True], [False], [True]]])  # part -2 of 2 is part 0; a list mask
    assert out.shape == (2, 3, 4) and out.grad_fn.params["part"] == 0


def test_a_new_kind_of_lazy_gradient_is_one_class():
    """The engine, detect_anomaly and the renderer use only the LazyGrad protocol: a kind of one's own just works."""
    from tinygrad_seq.lazy_grad import LazyGrad

    class DiagonalGrad(LazyGrad):
        """A square matrix's gradient that is zero off the diagonal, kept as the diagonal."""

        __slots__ = ("diagonal", "shape")

        def __init__(self, diagonal, shape):
            self.diagonal, self.shape = diagonal, shape

        def arrays(self):
            return (self.diagonal,)

        def astype(self, dtype):
            return DiagonalGrad(self.diagonal.astype(dtype), self.shape)

        def add_into(self, buffer):
            buffer[np.diag_indices(self.shape[0])] += self.diagonal

    class Trace(ts.Function):
        __slots__ = ("shape",)

        def forward(self, m):
            self.shape = m.shape
            return np.trace(m)

        def backward(self, grad):
            return (DiagonalGrad(np.full(self.shape[0], grad, dtype=float), self.shape),)

    m = ts.Tensor(np.arange(9.0).reshape(3, 3), requires_grad=True)
    assert ts.grad_check(lambda m: Trace.apply(m) * 2 + (m * m).sum(), [m])
    (Trace.apply(m) * 3 + Trace.apply(m)).backward()
    np.testing.assert_array_equal(m.grad, 4 * np.eye(3))
    assert viz.summarize(DiagonalGrad(np.ones(3), (3, 3))) == viz.summarize(np.eye(3))
    with ts.detect_anomaly(), pytest.raises(FloatingPointError, match="Trace.*non-finite gradient"):
        Trace.apply(ts.Tensor(np.eye(2), requires_grad=True)).backward(np.array(np.nan))


def test_host_ids_and_masks_index_a_tensor_on_any_backend(backend):
    x = ts.Tensor(np.arange(12.0).reshape(4, 3), requires_grad=True)
    picked = x[np.array([3, 0, 3])]  # NumPy ids index a device tensor too: they move to its backend
    masked = x[np.array([True, False, True, False])]
    (picked.sum() + masked.sum()).backward()
    assert to_host(picked.data)[:, 0].tolist() == [9.0, 0.0, 9.0] and to_host(masked.data)[:, 0].tolist() == [0.0, 6.0]
    assert to_host(x.grad)[:, 0].tolist() == [2.0, 0.0, 1.0, 2.0]  # the repeated row's gradients summed


@pytest.mark.parametrize("left_shape, transpose", [((5, 3, 4), False), ((3, 5, 4), True), ((2, 3, 2, 4), False), ((15, 4), False),
                                                    ((0, 3, 4), False)])
@pytest.mark.parametrize("rows_per_product", [2048, 4])  # 4: products of 4 rows and one of the rest (15 = 4 + 4 + 4 + 3)
def test_a_sequence_times_a_matrix_is_one_product_equal_to_numpys(left_shape, transpose, rows_per_product, monkeypatch):
    from tinygrad_seq.ops import arithmetic
    from tinygrad_seq.ops.arithmetic import rows_times

    monkeypatch.setattr(arithmetic, "ROWS_PER_PRODUCT", rows_per_product)
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal(left_shape), rng.standard_normal((4, 6))
    if transpose:  # rows that are not one contiguous block: copied first
        a = a.swapaxes(0, 1)
    product = rows_times(a, b)
    assert product.shape == a.shape[:-1] + (6,)
    np.testing.assert_allclose(product, np.matmul(a, b), rtol=1e-13, atol=1e-13)
    vector = rng.standard_normal(4)  # a vector on the right keeps NumPy's own rule
    np.testing.assert_array_equal(rows_times(a, vector), np.matmul(a, vector))


@pytest.mark.parametrize("inner, outer", [(0, 4), (5, 0)])
def test_a_sequence_with_an_empty_axis_goes_through_matmul_and_linear_both_ways(inner, outer):
    """NumPy multiplies (..., 0) by (0, N) into zeros, and (..., K) by (K, 0) into an empty result: so do
    MatMul and Linear, forward and back (a zero-length axis cannot be reshaped with -1)."""
    x = ts.Tensor(np.ones((2, 3, inner)), requires_grad=True)
    w = ts.Tensor(np.ones((inner, outer)), requires_grad=True)
    y = x @ w
    np.testing.assert_array_equal(y.numpy(), np.zeros((2, 3, outer)) if inner == 0 else np.ones((2, 3, 0)))
    (y.sum() + ts.ops.linear(x, w.T).sum()).backward()
    assert x.grad.shape == (2, 3, inner) and w.grad.shape == (inner, outer)
    assert not np.any(x.grad) and not np.any(w.grad)
