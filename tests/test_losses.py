"""Losses: gradient checks, PyTorch's numbers in float64, and their errors."""
import itertools

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq.nn import functional as F

from .conftest import to_host

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
    assert loss.item() == pytest.approx(1000.0) and np.isfinite(logits.grad).all()


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda x: F.cross_entropy(x, [0, 3]), IndexError, r"cross_entropy: target 3 is out of range for 3 classes \(valid: 0..2, or ignore_index=-100\)"),
        (lambda x: F.cross_entropy(x, [0, -2]), IndexError, r"target -2 is out of range"),
        (lambda x: F.cross_entropy(x, [0.0, 1.0]), TypeError, r"cross_entropy: target class ids must be integers; got float64\. Convert them with \.astype\(int\)"),
        (lambda x: F.cross_entropy(x, [[0, 1]]), ValueError, r"target shape \(1, 2\) must be the logits' shape \(2, 3\) without the last \(class\) axis, i.e. \(2,\).*axis 1"),
        (lambda x: F.cross_entropy(x, [0, 1], reduction="avg"), ValueError, r"reduction must be one of 'mean', 'sum', 'none'; got 'avg'"),
        (lambda x: F.cross_entropy(x, [0, 1], label_smoothing=1.5), ValueError, r"label_smoothing must be in \[0, 1\]"),
        (lambda x: F.nll_loss(x, [5, 1]), IndexError, r"nll_loss: target 5 is out of range for 3 classes"),
        (lambda x: F.mse_loss(x, np.zeros(2)), ValueError, r"mse_loss: input \(2, 3\) and target \(2,\) must have one shape"),
    ],
)
def test_loss_errors(call, error, message):
    with pytest.raises(error, match=message):
        call(ts.Tensor(np.zeros((2, 3))))


def test_cross_entropy_all_ignored_is_nan_with_zero_gradient():
    x = ts.Tensor(np.ones((2, 3)), requires_grad=True)
    loss = F.cross_entropy(x, [-100, -100])
    loss.backward()
    assert np.isnan(loss.item()) and (x.grad == 0).all()


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
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=RTOL, atol=ATOL)


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
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=RTOL, atol=ATOL)

    a, b = np.random.default_rng(0).standard_normal((2, 3, 4))
    xa = ts.Tensor(a, requires_grad=True)
    ours = F.mse_loss(xa, ts.Tensor(b), reduction=reduction)
    ours.backward(np.ones(ours.shape))
    ta = torch.tensor(a, requires_grad=True)
    theirs = torch.nn.functional.mse_loss(ta, torch.tensor(b), reduction=reduction)
    theirs.backward(torch.ones(theirs.shape, dtype=torch.float64))
    np.testing.assert_allclose(ours.numpy(), theirs.detach().numpy(), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(xa.grad, ta.grad.numpy(), rtol=RTOL, atol=ATOL)


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
        np.testing.assert_allclose(ours.grad, theirs.grad.numpy(), rtol=RTOL, atol=ATOL)
