"""Losses: gradient checks, PyTorch's numbers in float64, and their errors."""
import itertools

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq.nn import functional as F

from .conftest import to_host

pytestmark = pytest.mark.usefixtures("backend")  # every test on NumPy and on the strict device backend (conftest)

RTOL, ATOL = 1e-12, 1e-14


def logits_and_targets(shape, classes, ignore_fraction=0.0, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(shape + (classes,)) * 3
    target = rng.integers(0, classes, shape)
    target[rng.random(shape) < ignore_fraction] = -100
    return logits, target


def test_cross_entropy_grad_check():
    logits, target = logits_and_targets((3, 4), 5, ignore_fraction=0.3)
    for reduction, smoothing in itertools.product(["mean", "sum", "none"], [0.0, 0.2]):
        x = ts.Tensor(logits, requires_grad=True)
        assert ts.grad_check(lambda x: F.cross_entropy(x, target, reduction=reduction, label_smoothing=smoothing), [x])


def test_cross_entropy_with_probability_targets_grad_check():
    """Soft targets (PyTorch's probability targets): the gradient of the logits and of the target, every reduction."""
    rng = np.random.default_rng(3)
    logits, soft = rng.standard_normal((3, 2, 4)), rng.random((3, 2, 4))
    soft /= soft.sum(-1, keepdims=True)
    for reduction, smoothing in itertools.product(["mean", "sum", "none"], [0.0, 0.2]):
        x, p = ts.Tensor(logits, requires_grad=True), ts.Tensor(soft, requires_grad=True)
        assert ts.grad_check(lambda x, p: F.cross_entropy(x, p, reduction=reduction, label_smoothing=smoothing), [x, p])


def test_one_hot_targets_give_the_loss_and_gradient_of_their_class_ids():
    logits, target = logits_and_targets((3, 4), 5, ignore_fraction=0.0)
    for smoothing in (0.0, 0.1):
        by_id, one_hot = ts.Tensor(logits, requires_grad=True), ts.Tensor(logits, requires_grad=True)
        F.cross_entropy(by_id, target, label_smoothing=smoothing).backward()
        F.cross_entropy(one_hot, np.eye(5)[target], label_smoothing=smoothing).backward()
        np.testing.assert_allclose(to_host(one_hot.grad), to_host(by_id.grad), rtol=1e-12, atol=1e-15)


def test_nll_and_mse_grad_check():
    logits, target = logits_and_targets((6,), 4, ignore_fraction=0.3)
    x = ts.Tensor(logits, requires_grad=True)
    assert ts.grad_check(lambda x: F.nll_loss(x.log_softmax(-1), target), [x])
    y = ts.Tensor(np.random.default_rng(1).standard_normal((6, 4)), requires_grad=True)
    assert ts.grad_check(lambda x, y: F.mse_loss(x, y), [x, y])


def test_cross_entropy_is_nll_of_log_softmax(backend):
    logits, target = logits_and_targets((2, 3), 4, ignore_fraction=0.2, seed=3)
    fused = F.cross_entropy(ts.Tensor(logits), target, reduction="none")
    composed = F.nll_loss(ts.Tensor(logits).log_softmax(-1), target, reduction="none")
    np.testing.assert_allclose(to_host(fused.data), to_host(composed.data), rtol=1e-12)
    assert fused.grad_fn is None  # no input required grad: no node


def test_cross_entropy_is_one_node():
    x = ts.Tensor(np.zeros((2, 3)), requires_grad=True)
    loss = F.cross_entropy(x, [0, 2])
    assert loss.grad_fn.name == "CrossEntropy" and loss.grad_fn.inputs[0] is x


def test_cross_entropy_stable_for_huge_logits():
    logits = ts.Tensor(np.array([[1000.0, 0.0, -1000.0]]), requires_grad=True)
    loss = F.cross_entropy(logits, [1])
    loss.backward()
    assert loss.item() == pytest.approx(1000.0) and np.isfinite(to_host(logits.grad)).all()


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda x: F.cross_entropy(x, [0, 3]), IndexError, r"cross_entropy: target 3 is out of range for 3 classes \(valid: 0..2, or ignore_index=-100\)"),
        (lambda x: F.cross_entropy(x, [0, -2]), IndexError, r"target -2 is out of range"),
        (lambda x: F.cross_entropy(x, [0.0, 1.0]), TypeError, r"cross_entropy: target class ids must be integers; got float64\. Convert them with np\.asarray\(ids, dtype=int\)$"),
        (lambda x: F.cross_entropy(x, np.array([0.0, 1.0])), TypeError, r"cross_entropy: target class ids must be integers; got float64\. Convert them with \.astype\(int\)$"),
        # a Tensor has no astype: its fix is .to("int64"), which the message's own code runs
        (lambda x: F.cross_entropy(x, ts.Tensor([0.0, 1.0])), TypeError, r'cross_entropy: target class ids must be integers; got float32\. Convert them with \.to\("int64"\)$'),
        (lambda x: F.cross_entropy(x, np.eye(3)[[0, 2]], ignore_index=0), ValueError, r"^cross_entropy: ignore_index=0 applies to "
         r"class ids; these targets are probabilities \(floats shaped like the logits, \(2, 3\)\)"),
        (lambda x: F.cross_entropy(x, [[0, 1]]), ValueError, r"target shape \(1, 2\) must be the logits' shape \(2, 3\) without the last \(class\) axis, i.e. \(2,\).*axis 1"),
        # targets of different lengths: padded with IGNORE_INDEX, which the loss skips (PAD_ID 0 is a class)
        (lambda x: F.cross_entropy(x, [[0, 1], [2]]), ValueError, r"^cross_entropy: target class ids must be rectangular; got lists "
         r"of different lengths\. Pad the sequences to one length first: targets, _ = text\.pad_batch\(sequences, "
         r"pad_id=IGNORE_INDEX\) \(time-major; the losses skip IGNORE_INDEX\)$"),
        (lambda x: F.cross_entropy(x, [0, 1], reduction="avg"), ValueError, r"reduction must be one of 'mean', 'sum', 'none'; got 'avg'"),
        (lambda x: F.cross_entropy(x, [0, 1], label_smoothing=1.5), ValueError, r"^cross_entropy: label_smoothing is a probability in \[0, 1\]; got 1\.5$"),
        (lambda x: F.cross_entropy(x, [0, 1], label_smoothing="0.1"), ValueError, r"^cross_entropy: label_smoothing is a probability in \[0, 1\]; got '0\.1'$"),
        (lambda x: F.nll_loss(x, [5, 1]), IndexError, r"nll_loss: target 5 is out of range for 3 classes"),
        (lambda x: F.mse_loss(x, np.zeros(2)), ValueError, r"mse_loss: input \(2, 3\) and target \(2,\) must have one shape"),
    ],
)
def test_loss_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(ts.Tensor(np.zeros((2, 3))))


@pytest.mark.parametrize("loss_of", [F.cross_entropy, lambda x, t: F.nll_loss(x.log_softmax(-1), t)], ids=["cross_entropy", "nll_loss"])
def test_all_ignored_is_nan_with_zero_gradient(loss_of):
    x = ts.Tensor(np.ones((2, 3)), requires_grad=True)
    with np.errstate(all="raise"):  # and no division by zero on the way
        loss = loss_of(x, [-100, -100])
        loss.backward()
    assert np.isnan(loss.item()) and (to_host(x.grad) == 0).all()


def test_cross_entropy_counts_targets_exactly_in_float16():
    logits = ts.Tensor(np.zeros((70000, 2)), dtype="float16")  # more targets than float16's largest value, 65504
    loss = F.cross_entropy(logits, np.zeros(70000, dtype=np.int64))
    assert loss.dtype == np.float16 and loss.item() == pytest.approx(np.log(2), rel=1e-3)


def bce_inputs(shape=(3, 4), seed=0, extreme=False):
    """Logits (some of them ±1000 and ±30 when ``extreme``), targets in [0, 1] with exact 0s and 1s, a pos_weight per class."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal(shape) * 3
    target = rng.uniform(0, 1, shape)
    target.flat[::3] = rng.integers(0, 2, target.flat[::3].shape)
    if extreme:
        logits.flat[:6] = [1000.0, -1000.0, 30.0, -30.0, 1000.0, -1000.0]
        target.flat[:6] = [0.0, 1.0, 1.0, 0.0, 0.3, 0.7]
    pos_weight = rng.uniform(0.5, 3.0, shape[-1:])
    return logits, target, pos_weight


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_grad_check(reduction):
    logits, target, pos_weight = bce_inputs()
    weight = np.random.default_rng(1).uniform(0.5, 2.0, (3, 1))
    for options in [{}, {"pos_weight": pos_weight}, {"pos_weight": pos_weight, "weight": weight}]:
        x, y = ts.Tensor(logits, requires_grad=True), ts.Tensor(target, requires_grad=True)
        loss = lambda x, y: F.binary_cross_entropy_with_logits(x, y, reduction=reduction, **options)  # noqa: E731
        assert ts.grad_check(loss, [x, y])  # the target's gradient too, as PyTorch gives one


def test_bce_with_logits_is_one_node_and_the_course_formula():
    z = ts.Tensor(np.array([2.0, -1.0, 0.5]), requires_grad=True)
    y = np.array([1.0, 0.0, 0.25])
    loss = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    assert loss.grad_fn.name == "BinaryCrossEntropyWithLogits" and loss.grad_fn.inputs[0] is z
    y_hat = 1 / (1 + np.exp(-z.numpy()))
    np.testing.assert_allclose(loss.numpy(), -y * np.log(y_hat) - (1 - y) * np.log(1 - y_hat), rtol=1e-13)
    pos_weight = 3.0
    weighted = F.binary_cross_entropy_with_logits(z, y, pos_weight=[pos_weight], reduction="none")
    np.testing.assert_allclose(weighted.numpy(), -pos_weight * y * np.log(y_hat) - (1 - y) * np.log(1 - y_hat), rtol=1e-13)
    loss.sum().backward()
    np.testing.assert_allclose(to_host(z.grad), y_hat - y, rtol=1e-13)  # dL/dz = ŷ - y


def test_bce_with_logits_stable_for_huge_logits():
    z = ts.Tensor(np.array([1000.0, -1000.0, 1000.0, -1000.0]), requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(z, [0.0, 1.0, 1.0, 0.0], pos_weight=[3.0], reduction="none")
    loss.sum().backward()
    np.testing.assert_array_equal(loss.numpy(), [1000.0, 3000.0, 0.0, 0.0])  # confidently wrong costs |z|, times p for a positive
    np.testing.assert_array_equal(to_host(z.grad), [1.0, -3.0, 0.0, 0.0])
    z32 = ts.Tensor([88.0, -104.0, 1000.0], requires_grad=True)  # e^-z overflows float32 from 88.7 on
    loss = F.binary_cross_entropy_with_logits(z32, [1, 1, 0])
    loss.backward()
    assert loss.dtype == np.float32 and np.isfinite(loss.item()) and np.isfinite(to_host(z32.grad)).all()


def test_bce_with_logits_targets_and_weights():
    z = ts.Tensor(np.zeros((2, 3)))
    # int or bool 0/1 labels and lists take the logits' dtype; a float Tensor keeps its own (NumPy's promotion)
    assert F.binary_cross_entropy_with_logits(z, [[1, 0, 1], [0, 0, 1]]).dtype == np.float64
    assert F.binary_cross_entropy_with_logits(ts.Tensor(np.zeros(2), dtype="float32"), np.array([True, False])).dtype == np.float32
    assert F.binary_cross_entropy_with_logits(ts.Tensor([0.0]), ts.Tensor([1.0], dtype="float64")).dtype == np.float64
    # log 2 per element at z = 0; weight and pos_weight scale it
    out = F.binary_cross_entropy_with_logits(z, np.ones((2, 3)), pos_weight=[1.0, 2.0, 3.0], weight=[[1.0], [10.0]], reduction="none")
    np.testing.assert_allclose(out.numpy() / np.log(2), [[1, 2, 3], [10, 20, 30]], rtol=1e-14)
    empty = ts.Tensor(np.zeros(0), requires_grad=True)
    loss = F.binary_cross_entropy_with_logits(empty, np.zeros(0))  # mean of nothing: NaN, as PyTorch
    loss.backward()
    assert np.isnan(loss.item()) and to_host(empty.grad).shape == (0,)


def test_bce_with_logits_loss_module():
    loss_fn = ts.nn.BCEWithLogitsLoss(pos_weight=ts.Tensor([2.0]), reduction="sum")
    z = ts.Tensor(np.array([[0.5, -1.0]]), requires_grad=True)
    expected = F.binary_cross_entropy_with_logits(z, [[1, 0]], pos_weight=[2.0], reduction="sum")
    assert loss_fn(z, [[1, 0]]).item() == expected.item()
    assert list(loss_fn.parameters()) == [] and "reduction='sum'" in repr(loss_fn)


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda x: F.binary_cross_entropy_with_logits(x, np.zeros(2)), ValueError,
         r"binary_cross_entropy_with_logits: target shape \(2,\) must equal the logits' shape \(2, 3\): one target per logit"),
        (lambda x: F.binary_cross_entropy_with_logits(x[:, :1], np.zeros(2)), ValueError,
         r"target shape \(2,\) must equal the logits' shape \(2, 1\).*reshape the target to \(2, 1\) \(or squeeze the logits' last axis\)"),
        (lambda x: F.binary_cross_entropy_with_logits(x, np.zeros((2, 3)), pos_weight=np.ones(2)), ValueError,
         r"pos_weight shape \(2,\) does not broadcast to the logits' shape \(2, 3\).*such as \(3,\) for one per class"),
        (lambda x: F.binary_cross_entropy_with_logits(x, np.zeros((2, 3)), weight=np.ones((4, 2, 3))), ValueError,
         r"weight shape \(4, 2, 3\) does not broadcast to the logits' shape \(2, 3\).*without enlarging it"),
        (lambda x: F.binary_cross_entropy_with_logits(x, np.zeros((2, 3)), pos_weight=ts.Tensor(np.ones(3), requires_grad=True)),
         ValueError, r"pos_weight requires grad, but the loss has no gradient for it \(PyTorch refuses it too\); pass pos_weight.detach\(\)"),
        (lambda x: F.binary_cross_entropy_with_logits(x, np.zeros((2, 3)), reduction="avg"), ValueError,
         r"binary_cross_entropy_with_logits: reduction must be one of 'mean', 'sum', 'none'; got 'avg'"),
        (lambda x: F.binary_cross_entropy_with_logits(x, np.zeros((2, 3)), np.ones(3)), TypeError,
         r"takes 2 positional arguments"),  # options are keyword-only: PyTorch's third positional argument is weight
        (lambda x: F.binary_cross_entropy_with_logits(ts.Tensor(np.zeros(2, dtype=np.int64)), [0, 1]), TypeError,
         r"logits must be floats; got int64"),
        (lambda x: ts.nn.BCEWithLogitsLoss(reduction="avg"), ValueError, r"BCEWithLogitsLoss: reduction must be one of"),
    ],
)
def test_bce_with_logits_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(ts.Tensor(np.zeros((2, 3))))


# ---------------------------------------------------------------- PyTorch


@pytest.fixture
def torch():
    return pytest.importorskip("torch", reason="the PyTorch reference tests need torch (pip install torch==2.13.0)")


@pytest.mark.parametrize("shape", [(6,), (4, 3)], ids=["2-D logits", "3-D logits"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ignore_fraction", [0.0, 0.3])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
def test_cross_entropy_matches_torch(torch, shape, reduction, ignore_fraction, label_smoothing):
    logits, target = logits_and_targets(shape, 5, ignore_fraction, seed=len(shape))
    x = ts.Tensor(logits, requires_grad=True)
    ours = F.cross_entropy(x, target, reduction=reduction, label_smoothing=label_smoothing)
    upstream = np.random.default_rng(2).standard_normal(ours.shape)
    ours.backward(upstream)

    t = torch.tensor(logits, requires_grad=True)
    # PyTorch wants classes on axis 1: (N, C) or (N, C, d1)
    theirs = torch.nn.functional.cross_entropy(
        t.movedim(-1, 1), torch.tensor(target), reduction=reduction, label_smoothing=label_smoothing
    )
    theirs.backward(torch.tensor(upstream))
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(to_host(x.grad), t.grad.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("shape", [(6,), (4, 3)], ids=["2-D logits", "3-D logits"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("label_smoothing", [0.0, 0.15])
def test_cross_entropy_with_probability_targets_matches_torch(torch, shape, reduction, label_smoothing):
    """PyTorch's probability targets, classes last here: the loss, the logits' gradient and the target's."""
    rng = np.random.default_rng(len(shape))
    logits, soft = rng.standard_normal(shape + (5,)), rng.random(shape + (5,))
    soft /= soft.sum(-1, keepdims=True)
    x, p = ts.Tensor(logits, requires_grad=True), ts.Tensor(soft, requires_grad=True)
    ours = F.cross_entropy(x, p, reduction=reduction, label_smoothing=label_smoothing)
    upstream = np.random.default_rng(2).standard_normal(ours.shape)
    ours.backward(upstream)
    t, q = torch.tensor(logits, requires_grad=True), torch.tensor(soft, requires_grad=True)
    theirs = torch.nn.functional.cross_entropy(t.movedim(-1, 1), q.movedim(-1, 1), reduction=reduction, label_smoothing=label_smoothing)
    theirs.backward(torch.tensor(upstream))
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(to_host(x.grad), t.grad.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(to_host(p.grad), q.grad.numpy(), rtol=RTOL, atol=ATOL)


def test_probability_targets_of_any_kind_give_one_loss_in_the_logits_dtype(torch):
    """A torch tensor, nested lists, a float64 array or Tensor: the same loss, in the logits' dtype; a negative
    ignore_index other than the default is no class and is ignored, as in PyTorch; one >= 0 is refused."""
    x = ts.randn(2, 3)
    soft = np.eye(3)[[0, 2]]
    losses = [F.cross_entropy(x, target) for target in (soft, soft.tolist(), torch.tensor(soft), ts.Tensor(soft), soft.astype(np.float32))]
    assert {loss.dtype for loss in losses} == {np.dtype(np.float32)} and len({loss.item() for loss in losses}) == 1
    assert losses[0].item() == F.cross_entropy(x, [0, 2]).item() == F.cross_entropy(x, soft, ignore_index=-1).item()


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_nll_and_mse_match_torch(torch, reduction):
    logits, target = logits_and_targets((3, 4), 6, ignore_fraction=0.25, seed=7)
    log_probs = torch.log_softmax(torch.tensor(logits), -1).numpy()
    x = ts.Tensor(log_probs, requires_grad=True)
    ours = F.nll_loss(x, target, reduction=reduction)
    upstream = np.ones(ours.shape)
    ours.backward(upstream)
    t = torch.tensor(log_probs, requires_grad=True)
    theirs = torch.nn.functional.nll_loss(t.movedim(-1, 1), torch.tensor(target), reduction=reduction)
    theirs.backward(torch.tensor(upstream))
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(to_host(x.grad), t.grad.numpy(), rtol=RTOL, atol=ATOL)

    a, b = np.random.default_rng(0).standard_normal((2, 3, 4))
    xa = ts.Tensor(a, requires_grad=True)
    ours = F.mse_loss(xa, ts.Tensor(b), reduction=reduction)
    ours.backward(np.ones(ours.shape))
    ta = torch.tensor(a, requires_grad=True)
    theirs = torch.nn.functional.mse_loss(ta, torch.tensor(b), reduction=reduction)
    theirs.backward(torch.ones(theirs.shape, dtype=torch.float64))
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(to_host(xa.grad), ta.grad.numpy(), rtol=RTOL, atol=ATOL)


def test_layers_match_torch(torch):
    ts.manual_seed(0)
    linear = ts.nn.Linear(4, 3).double()
    embedding = ts.nn.Embedding(7, 4, padding_idx=2).double()
    torch_linear = torch.nn.Linear(4, 3).double()
    torch_embedding = torch.nn.Embedding(7, 4, padding_idx=2).double()
    ts.interop.from_torch(linear, torch_linear)
    ts.interop.from_torch(embedding, torch_embedding)
    ids = np.array([[1, 2, 6], [6, 6, 0]])
    upstream = np.random.default_rng(0).standard_normal((2, 3, 3))

    out = linear(embedding(ids).tanh())
    out.backward(upstream)
    torch_out = torch_linear(torch_embedding(torch.tensor(ids)).tanh())
    torch_out.backward(torch.tensor(upstream))
    np.testing.assert_allclose(out.numpy(), torch_out.detach().numpy(), rtol=RTOL, atol=ATOL)
    for ours, theirs in [(linear.weight, torch_linear.weight), (linear.bias, torch_linear.bias), (embedding.weight, torch_embedding.weight)]:
        np.testing.assert_allclose(to_host(ours.grad), theirs.grad.numpy(), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("with_pos_weight", [False, True], ids=["no pos_weight", "pos_weight"])
@pytest.mark.parametrize("with_weight", [False, True], ids=["no weight", "weight"])
@pytest.mark.parametrize("extreme", [False, True], ids=["moderate", "logits of ±1000"])
def test_bce_with_logits_matches_torch(torch, reduction, with_pos_weight, with_weight, extreme):
    logits, target, pos_weight = bce_inputs((2, 3, 4), seed=5, extreme=extreme)
    weight = np.random.default_rng(6).uniform(0.5, 2.0, (3, 1))
    options = {"pos_weight": pos_weight} if with_pos_weight else {}
    options.update({"weight": weight} if with_weight else {})
    x, y = ts.Tensor(logits, requires_grad=True), ts.Tensor(target, requires_grad=True)
    ours = F.binary_cross_entropy_with_logits(x, y, reduction=reduction, **options)
    upstream = np.random.default_rng(2).standard_normal(ours.shape)
    ours.backward(upstream)

    tx, ty = torch.tensor(logits, requires_grad=True), torch.tensor(target, requires_grad=True)
    theirs = torch.nn.functional.binary_cross_entropy_with_logits(
        tx, ty, reduction=reduction, **{name: torch.tensor(value) for name, value in options.items()})
    theirs.backward(torch.tensor(upstream))
    assert np.isfinite(ours.numpy()).all() and np.isfinite(to_host(x.grad)).all() and np.isfinite(to_host(y.grad)).all()
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(to_host(x.grad), tx.grad.numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(to_host(y.grad), ty.grad.numpy(), rtol=RTOL, atol=ATOL)


def test_bce_with_logits_loss_matches_torch_module_and_refusals(torch):
    logits, target, pos_weight = bce_inputs((5, 3), seed=8)
    ours = ts.nn.BCEWithLogitsLoss(pos_weight=ts.Tensor(pos_weight))(ts.Tensor(logits), target)
    theirs = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(pos_weight))(torch.tensor(logits), torch.tensor(target))
    assert ours.item() == pytest.approx(theirs.item(), rel=RTOL)
    # neither differentiates with respect to pos_weight or weight
    for name in ("pos_weight", "weight"):
        with pytest.raises(RuntimeError, match=f"not differentiable with respect to argument '{name}'"):
            torch.nn.functional.binary_cross_entropy_with_logits(
                torch.tensor(logits), torch.tensor(target), **{name: torch.tensor(pos_weight, requires_grad=True)})
        with pytest.raises(ValueError, match=f"{name} requires grad"):
            F.binary_cross_entropy_with_logits(ts.Tensor(logits), target, **{name: ts.Tensor(pos_weight, requires_grad=True)})
