"""Silent wrong gradients made loud: version counters on tensors, and which constructors share memory."""
import contextlib
import warnings

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import nn, optim, settings
from tinygrad_seq.backend import Backend
from tinygrad_seq.nn.recurrent import checked_call
from tinygrad_seq.tensor import as_tensor

from .cell_variants import CELLS, GatedCell
from .conftest import to_host

OPTIMIZERS = {
    "sgd": lambda params: optim.SGD(params, lr=0.1, momentum=0.9),
    "adam": lambda params: optim.Adam(params, lr=0.1),
    "adagrad": lambda params: optim.Adagrad(params, lr=0.1),
    "rmsprop": lambda params: optim.RMSprop(params, lr=0.1),
}


def stale_graph(model, x, make_optimizer):
    """A loss whose graph was built, then an optimizer step in between: the mistake the check is for."""
    opt = make_optimizer(model.parameters())
    (model(x) ** 2).sum().backward()  # gradients for the step
    loss = (model(x) ** 2).sum()
    opt.step()
    return loss


# ---------------------------------------------------------------- version counters


@pytest.mark.parametrize("make_optimizer", OPTIMIZERS.values(), ids=list(OPTIMIZERS))
def test_optimizer_step_between_forward_and_backward_raises(make_optimizer, backend):
    layer = nn.Linear(3, 2).to(backend)
    version = layer.weight._version
    loss = stale_graph(layer, ts.randn(4, 3), make_optimizer)
    assert layer.weight._version == version + 1  # the step counted as one in-place change
    with pytest.raises(RuntimeError, match=rf"backward through Linear: its input weight of shape \(2, 3\) was changed in place after "
                                           rf"Linear saved it for backward \(version {version} then, {version + 1} now\).*"
                                           r"Call backward\(\) before opt.step\(\).*or compute the loss again"):
        loss.backward()


def test_the_right_order_and_truncated_bptt_never_raise():
    ts.manual_seed(1)
    model = nn.LSTM(2, 3)
    opt = optim.Adam(model.parameters(), lr=0.01)
    state = None
    for _ in range(3):  # TBPTT: forward a chunk, backward, step, carry the detached state
        out, state = model(ts.randn(4, 2, 2), state)
        opt.zero_grad()
        out.sum().backward()
        opt.step()
        state = tuple(s.detach() for s in state)
    with ts.transparent():
        out, _ = model(ts.randn(4, 2, 2), state)
        out.sum().backward()


@pytest.mark.parametrize("transparent", [False, True], ids=["fused", "transparent"])
@pytest.mark.parametrize("make_cell", CELLS.values(), ids=list(CELLS))
def test_recurrent_layers_detect_a_step_on_both_paths(make_cell, transparent):
    layer = nn.Recurrent(make_cell())
    opt = optim.SGD(layer.parameters(), lr=0.1)
    with ts.transparent() if transparent else contextlib.nullcontext():
        out, _ = layer(ts.randn(5, 2, 3))
    loss = out.sum()
    for p in layer.parameters():
        p.grad = np.ones(p.shape, dtype=p.dtype)
    opt.step()
    op = {"RNNCell": "RNNStep", "GRUCell": "GRUStep", "SimplifiedGRUCell": "SimplifiedGRUStep", "LSTMCell": "LSTMStep"}[type(layer.cell).__name__]
    # The fused step keeps W_hh for its backward; the transparent path keeps it in a Linear or MatMul node.
    pattern = r"backward through \w+ at time step 5, layer 0, forward: its input .* was changed in place" if transparent \
        else rf"backward through {op} at time step 5, layer 0, forward: its input weight_hh of shape \(\d+, 4\) was changed in place"
    with pytest.raises(RuntimeError, match=pattern):
        loss.backward()


def test_fused_lstm_detects_a_change_to_a_peephole_weight():
    layer = nn.Recurrent(nn.LSTMCell(3, 4, peephole=True))
    out, _ = layer(ts.randn(5, 2, 3))
    loss = out.sum()
    nn.init.constant_(layer.cell.weight_cf, 0.5)  # only a peephole: W_hh is untouched
    with pytest.raises(RuntimeError, match=r"LSTMStep at time step 5.*its input weight_cf of shape \(4,\)"):
        loss.backward()


@pytest.mark.parametrize(
    "change, saved",
    [
        (lambda m: nn.init.uniform_(m.weight_hh_l0, -0.1, 0.1), True),
        (lambda m: m.load_state_dict(m.state_dict()), True),
        (lambda m: m.to("float64"), True),
        (lambda m: setattr(m.weight_hh_l0, "data", m.weight_hh_l0.data * 2), True),
        (lambda m: nn.init.forget_bias_(m), False),  # the biases: no backward reads their values
    ],
    ids=["init", "load_state_dict", "to_dtype", "assign_data", "forget_bias"],
)
def test_every_library_write_counts(change, saved):
    model = nn.LSTM(3, 4)
    out, _ = model(ts.randn(5, 2, 3))
    loss = out.sum()
    before = [p._version for p in model.parameters()]
    change(model)
    assert any(p._version > v for p, v in zip(model.parameters(), before))
    if saved:
        with pytest.raises(RuntimeError, match="was changed in place after"):
            loss.backward()
    else:
        loss.backward()


def test_module_to_without_a_change_changes_no_version():
    model = nn.Linear(2, 2)
    before = [p._version for p in model.parameters()]
    model.to("numpy").to("float32")
    assert [p._version for p in model.parameters()] == before


def test_only_saved_tensors_are_checked():
    """As PyTorch: changing a tensor whose values no backward reads is fine (Add, a Linear's bias)."""
    a = ts.Tensor([1.0, 2.0], requires_grad=True)
    b = ts.Tensor([3.0, 4.0], requires_grad=True)
    total = (a + b).sum()
    a.data -= 1.0
    total.backward()
    assert a.grad.tolist() == [1.0, 1.0]
    layer = nn.Linear(2, 1)
    loss = layer(ts.ones(1, 2)).sum()
    layer.bias.data -= 1.0
    loss.backward()
    assert layer.weight.grad.tolist() == [[1.0, 1.0]]


def test_a_changed_result_saved_by_its_own_op_raises():
    x = ts.Tensor([0.5, 1.0], requires_grad=True)
    y = x.exp()
    y.detach().data += 1.0  # detach shares memory and version counter: Exp's saved result changed
    with pytest.raises(RuntimeError, match=r"backward through Exp: its own result unnamed of shape \(2,\) was changed in place"):
        y.sum().backward()


def test_views_share_their_base_version():
    w = ts.Tensor(np.arange(6.0).reshape(2, 3), requires_grad=True, name="w")
    views = [w.T, w.reshape(3, 2), w[0], w[:, 1:], w.detach(), w.reshape(6).reshape(2, 3)]
    copies = [w[np.array([0, 0])], w[w.data > 2], w * 1.0, w.T.reshape(6), w[1, 2]]  # a layout reshape cannot view, a scalar
    w.data -= 1.0
    assert w._version == 1
    assert [v._version for v in views] == [1] * len(views)
    assert [c._version for c in copies] == [0] * len(copies)
    views[0].detach().data *= 2.0  # a change through a view counts for the base
    assert w._version == 2


def test_a_change_through_a_view_is_caught():
    x = ts.Tensor(np.ones((4, 3)))
    w = ts.Tensor(np.ones((2, 3)), requires_grad=True, name="W")
    loss = (x @ w.T).sum()  # MatMul saved the transposed view, which is w's memory
    w.grad = np.ones((2, 3))
    optim.SGD([w], lr=0.1).step()
    with pytest.raises(RuntimeError, match=r"MatMul: its input unnamed of shape \(3, 2\) was changed in place \(?.*version 0 then, 1 now"):
        loss.backward()


def test_assigning_new_memory_leaves_the_old_views_alone():
    w = ts.Tensor([1.0, 2.0], requires_grad=True)
    view = w.detach()
    w.data = np.array([5.0, 6.0], dtype=np.float32)  # new memory: counts for w only
    assert w._version == 1 and view._version == 0 and view.tolist() == [1.0, 2.0]


def test_hand_writes_into_data_are_not_counted():
    """Documented, as in PyTorch: x.data[...] = v bypasses the counter (the escape hatch)."""
    w = ts.Tensor([1.0, 2.0], requires_grad=True)
    y = (w * w).sum()
    w.data[0] = 10.0
    y.backward()  # no error, and the gradient uses the new value: the hatch is the user's responsibility
    assert w._version == 0 and w.grad.tolist() == [20.0, 4.0]


def test_retain_graph_then_step_then_backward_again_raises():
    layer = nn.Linear(2, 2)
    loss = layer(ts.ones(3, 2)).sum()
    loss.backward(retain_graph=True)
    optim.SGD(layer.parameters(), lr=0.1).step()
    with pytest.raises(RuntimeError, match="Linear: its input weight .* was changed in place"):
        loss.backward()


def test_many_changes_report_a_bound_on_the_old_version():
    w = ts.Tensor([1.0], requires_grad=True, name="w")
    y = w * w
    for _ in range(20):
        w.data += 0.0
    with pytest.raises(RuntimeError, match=r"version at most 12 then, 20 now"):  # the counter remembers the last 8 changes
        y.backward()


def test_a_node_records_one_clock_reading_not_a_copy_of_versions():
    w = ts.Tensor([1.0], requires_grad=True)
    node = (w * w).grad_fn
    assert node.recorded_at == settings.version_clock
    w.data += 1.0
    assert settings.version_clock == node.recorded_at + 1


# ---------------------------------------------------------------- aliasing: Tensor copies, from_numpy shares


def test_tensor_copies_its_data():
    array = np.array([1.0, 2.0])
    x = ts.Tensor(array)
    array[0] = 9.0
    assert x.tolist() == [1.0, 2.0]
    y = ts.Tensor(x)
    x.data[1] = 7.0
    assert y.tolist() == [1.0, 2.0]
    assert ts.Tensor(array, dtype="float32").data is not array


def test_from_numpy_shares_memory_both_ways():
    array = np.array([[1, 2], [3, 4]], dtype=np.int32)
    x = ts.from_numpy(array)
    assert x.dtype == np.int32 and x.shape == (2, 2) and x.data is array
    array[0, 0] = 10
    x.data[1, 1] = 40
    assert x.tolist() == [[10, 2], [3, 40]] and array[1, 1] == 40
    w = ts.from_numpy(np.ones(3)).requires_grad_()
    (w * 2).sum().backward()
    assert w.grad.tolist() == [2.0, 2.0, 2.0]


@pytest.mark.parametrize(
    "value, message",
    [
        ([1.0, 2.0], r"from_numpy: expects a NumPy ndarray; got list. Use ts.Tensor\(data\)"),
        (np.array(["a"]), r"from_numpy: an array of dtype <U1 cannot be a tensor"),
    ],
)
def test_from_numpy_rejects_what_it_cannot_share(value, message):
    with pytest.raises(TypeError, match=message):
        ts.from_numpy(value)


def test_from_numpy_on_the_gpu_backend_says_to_copy(monkeypatch):
    monkeypatch.setattr(settings, "backend", Backend("cupy", np))
    with pytest.raises(RuntimeError, match=r"from_numpy: .*needs the numpy backend; the current backend is 'cupy'. Use ts.Tensor\(array\)"):
        ts.from_numpy(np.ones(2))


def test_internal_operands_are_not_copied():
    array = np.ones((2, 3))
    assert as_tensor(array).data is array
    x = ts.Tensor(np.ones((2, 3)), requires_grad=True)
    node = (x * array).grad_fn
    assert node.inputs[1].data is array  # x * ndarray: the library never writes into operands, so no copy
    sequence = np.ones((4, 1, 3))
    assert checked_call(sequence, None, False, 3, "Recurrent(RNNCell)")[0].data is sequence  # a layer's input array: no copy


# ---------------------------------------------------------------- x += y, x -= y, x *= y, x /= y


def test_a_hand_written_sgd_step_changes_the_parameters_in_place_as_in_pytorch(backend):
    """The classic update ``with no_grad(): p -= lr * p.grad`` changes the model's parameters (before, Python's
    fallback x = x - y made a new tensor and left them as they were), and counts as their in-place change."""
    torch = pytest.importorskip("torch")
    model = nn.Linear(3, 2)
    theirs = torch.nn.Linear(3, 2).double()
    ts.interop.from_torch(model, theirs.state_dict())
    model.to("float64")
    x = np.random.default_rng(0).standard_normal((4, 3))
    for _ in range(3):
        (model(ts.Tensor(x)) ** 2).sum().backward()
        (theirs(torch.tensor(x)) ** 2).sum().backward()
        with ts.no_grad():
            for p in model.parameters():
                kept, version = p, p._version
                p -= 0.1 * p.grad
                p *= 0.5
                p += 1.0
                p /= 2.0
                assert p is kept and p._version == version + 4
                p.grad = None
        with torch.no_grad():
            for q in theirs.parameters():
                q -= 0.1 * q.grad
                q *= 0.5
                q += 1.0
                q /= 2.0
                q.grad = None
    for name, q in theirs.state_dict().items():
        np.testing.assert_allclose(to_host(dict(model.named_parameters())[name]), q.numpy(), rtol=1e-14, atol=1e-14)


def test_an_in_place_change_reaches_views_and_is_caught_by_a_node_that_saved_it():
    x = ts.zeros(2, 3)
    row = x[1]
    row += 2.0
    assert x.tolist() == [[0.0] * 3, [2.0] * 3] and x._version == 1
    w = ts.ones(3, requires_grad=True)
    loss = (x * w).sum()  # Mul saved x
    x *= 3.0
    with pytest.raises(RuntimeError, match=r"backward through Mul: its input .* was changed in place"):
        loss.backward()


def test_with_grad_recorded_the_name_moves_to_a_new_tensor():
    """A running total of losses (x += loss) is recorded as x = x + loss; the tensor x named before is untouched."""
    w = ts.ones(2, requires_grad=True)
    total = first = ts.zeros(())
    for _ in range(3):
        total += (w * 2.0).sum()
    assert first.item() == 0.0 and total.item() == 12.0 and total.grad_fn is not None
    total.backward()
    assert w.grad.tolist() == [6.0, 6.0]


@pytest.mark.parametrize("change, error, message", [
    (lambda p: p.__isub__(0.1 * p.grad), RuntimeError, r"^x -= \.\.\.: x \(2, 3\) is a leaf that requires grad \(a parameter\), "
                                                       r"changed in place with grad enabled.*ts\.no_grad\(\)"),
    (lambda p: ts.Tensor(np.arange(3)).__iadd__(0.5), TypeError, r"^x \+= y in place: the result is float64, which x \(int64\) cannot "
                                                                 r"hold; convert y first"),
    (lambda p: ts.zeros(3).__imul__(ts.ones(2, 3)), ValueError, r"^x \*= y in place: the result has shape \(2, 3\) but x has \(3,\); "
                                                                r"y must broadcast"),
])
def test_in_place_changes_that_cannot_be_made_say_why(change, error, message):
    layer = nn.Linear(3, 2)
    layer.weight.grad = np.ones((2, 3), np.float32)
    before = layer.weight.tolist()
    with pytest.raises(error, match=message):
        change(layer.weight)
    assert layer.weight.tolist() == before


def test_ids_and_masks_changed_in_place_leave_the_graphs_that_read_them_right():
    """An int or bool tensor gets new memory in place, so the ops that index with it (an embedding's ids, index
    tensors, masks), which no version check covers, keep the arrays they read: the gradient goes where it should."""
    emb = nn.Embedding(10, 3)
    ids = ts.Tensor(np.array([1, 2, 3]))
    loss = emb(ids).sum()
    ids += 1
    loss.backward()
    assert ids.tolist() == [2, 3, 4] and np.flatnonzero(to_host(emb.weight.grad).sum(axis=1)).tolist() == [1, 2, 3]
    w = ts.ones(4, requires_grad=True)
    mask = ts.Tensor(np.array([True, False, True, False]))
    picked = ts.Tensor(np.array([0, 1]))
    loss = w.masked_fill(mask, 0.0).sum() + w[picked].sum()
    mask *= ts.Tensor(np.zeros(4, bool))
    picked += 2
    loss.backward()
    assert w.grad.tolist() == [1.0, 2.0, 0.0, 1.0]


def test_in_place_changes_pytorch_refuses_or_that_need_new_memory():
    p = nn.Parameter(ts.zeros(2, 3))
    view = p[0]
    with pytest.raises(RuntimeError, match=r"^x \+= \.\.\.: x \(3,\) is a view of a parameter \(2, 3\), changed in place with "
                                           r"grad enabled: the change would not reach it"):
        view += 1
    with pytest.raises(RuntimeError, match=r"is a view of a parameter \(2, 3\)"):
        flat = p.reshape(6)
        flat += 1
    copied = p.T.reshape(6)  # a reshape NumPy cannot view copies: no view of p, as in PyTorch
    copied += 1
    buffer = ts.zeros(2, 3)
    row = buffer[0]
    row += p[1]  # with a gradient recorded, the name holds a new tensor; the buffer keeps its values (PyTorch changes it)
    assert row.grad_fn is not None and buffer.tolist() == [[0.0] * 3] * 2
    w, x = ts.ones(3, requires_grad=True), ts.randn(3)
    carried = (w * 2.0).detach()  # a detached state, as truncated BPTT carries it
    carried += w * x
    running = ts.zeros(3)
    running[:2].tolist()  # a view taken once
    running += w * x
    assert carried.grad_fn is not None and running.grad_fn is not None
    with ts.tags(cell="Mine"), ts.no_grad():  # user code under a cell's tag: still in place
        kept = ts.ones(3)
        kept -= 0.5
    assert kept.tolist() == [0.5] * 3 and kept._version == 1
    out, _ = nn.LSTM(2, 3, batch_first=True)(ts.randn(2, 4, 2))  # a view of a tensor in the graph: PyTorch takes it
    out += 1
    hidden, _ = nn.LSTMCell(2, 3)(ts.randn(4, 2))
    hidden *= 2.0
    assert out.grad_fn is not None and hidden.grad_fn is not None
    x = ts.zeros(3)
    element = x[0]  # an int for every axis: a copy (NumPy's scalar), not a view
    element += 1
    assert x.tolist() == [0.0, 0.0, 0.0] and x._version == 0 and element.item() == 1.0
    best = ts.Tensor([3.0, 1.0, 4.0]).argmax()  # a NumPy scalar inside: new memory
    best += 1
    assert best.item() == 3
    frozen = np.zeros(3, np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match=r"^x -= y in place: x's array \(3,\) is read-only"):
        shared = ts.from_numpy(frozen)
        shared -= 1.0
    h = ts.ones(3, requires_grad=True) * 1.0  # in the graph: a new tensor of h's shape and dtype, as PyTorch keeps them
    with pytest.raises(ValueError, match=r"^x \+= y in place: the result has shape \(2, 3\) but x has \(3,\)"):
        h += ts.ones(2, 3)
    h += ts.Tensor(np.ones(3))  # float64 into float32
    assert h.dtype == np.float32 and h.tolist() == [2.0, 2.0, 2.0]


def test_in_place_reaches_views_on_every_backend(backend):
    x = ts.zeros(2, 3)
    row, flat = x[0], x.reshape(6)
    with ts.no_grad():
        x += 1.0
    assert row.tolist() == [1.0] * 3 and flat.tolist() == [1.0] * 6 and x._version == 1


def test_a_cell_that_adds_in_place_keeps_its_recorded_replay_under_no_grad():
    """``z += ...`` in a cell's forward is recorded on its step's tape as a new tensor, with grad or without (sampling):
    the replay stays, without a RecordingWarning, and agrees with the transparent path."""

    class AddingCell(GatedCell):
        def forward(self, x, state=None):
            a = self.prepare(x, state)
            a *= 0.5  # the state: the previous step's output, which must not change under it
            z = self.input_projection(x)
            z += self.hidden_projection(a)
            return z.tanh()

    layer = nn.Recurrent(AddingCell(2, 3))
    x = ts.randn(5, 2, 2)
    _, carried = layer(x)
    for path in (contextlib.nullcontext(), ts.transparent()):  # a second chunk from a detached state: in place on it
        with path:
            layer(x, nn.detach_state(carried))[0].sum().backward()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with ts.no_grad():
            replayed, _ = layer(x)
        recorded, _ = layer(x)
    with ts.transparent():
        reference, _ = layer(x)
        with ts.no_grad():
            transparent_without_grad, _ = layer(x)
    np.testing.assert_allclose(to_host(replayed), to_host(reference), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(to_host(transparent_without_grad), to_host(reference), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(to_host(recorded), to_host(reference), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- PyTorch's transpose(0, 1)


def test_transpose_of_two_axes_in_order_warns_that_it_swaps_nothing():
    """NumPy's transpose takes the whole permutation, so PyTorch's x.transpose(0, 1) on a matrix changes nothing:
    said, at the caller's line; a 3-D tensor's transpose(0, 1) is refused, naming swapaxes."""
    x = ts.randn(4, 7)
    with pytest.warns(UserWarning, match=r"^transpose\(0, 1\) on a tensor of shape \(4, 7\) keeps its axes in order.*x\.T or "
                                         r"x\.swapaxes\(0, 1\)$") as caught:
        assert x.transpose(0, 1).shape == (4, 7)
    assert caught[0].filename == __file__
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert x.transpose(1, 0).shape == x.swapaxes(0, 1).shape == x.T.shape == (7, 4)
        assert x.transpose((0, 1)).shape == (4, 7)  # a permutation as one tuple, as generic code passes it: no warning
    with pytest.raises(ValueError, match=r"not a permutation of the 3 axes.*as torch\.transpose\(x, 0, 2\) does, write "
                                         r"x\.swapaxes\(0, 2\)$"):
        ts.randn(2, 3, 4).transpose(0, 2)


def test_assigning_data_that_is_no_array_of_the_backend_is_refused_at_once():
    """It was accepted, and the next op failed far from it (a torch tensor, then an unrelated matmul error)."""
    layer = nn.Linear(3, 2)
    before = layer.weight.tolist()
    for value in ([[0.0] * 3] * 2, ts.zeros(2, 3)):
        with pytest.raises(TypeError, match=r"^data: must be an array of the tensor's backend \(numpy\); got (builtins\.list|"
                                            r"tinygrad_seq\.Tensor)\. Assign one, x\.data = ts\.Tensor\(value\)\.data"):
            layer.weight.data = value
    assert layer.weight.tolist() == before
    scalar = ts.Tensor(1.0)
    scalar.data = np.float32(2.0)  # a NumPy number: taken as a 0-d array
    assert scalar.item() == 2.0 and isinstance(scalar.data, np.ndarray)
