"""Cells and nn.RNN/GRU/LSTM against PyTorch in float64: outputs, final states and every gradient."""
import itertools

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import nn, optim
from tinygrad_seq.nn import functional as F

from .conftest import to_host

pytestmark = pytest.mark.usefixtures("backend")  # every test on NumPy and on the strict device backend (conftest)

torch = pytest.importorskip("torch", reason="the PyTorch reference tests need torch (pip install torch==2.13.0)")

RTOL, ATOL = 1e-12, 1e-13


def assert_close(ours, theirs, what):
    np.testing.assert_allclose(to_host(ours), theirs.detach().numpy(), rtol=RTOL, atol=ATOL, err_msg=what)


def copy_weights(module, torch_module):
    """PyTorch's (randomly initialised) weights into ours, through interop."""
    ts.interop.from_torch(module, torch_module)


CELL_PAIRS = {
    "rnn_tanh": (lambda: nn.RNNCell(3, 4), lambda: torch.nn.RNNCell(3, 4)),
    "rnn_relu": (lambda: nn.RNNCell(3, 4, nonlinearity="relu"), lambda: torch.nn.RNNCell(3, 4, nonlinearity="relu")),
    "gru": (lambda: nn.GRUCell(3, 4), lambda: torch.nn.GRUCell(3, 4)),
    "lstm": (lambda: nn.LSTMCell(3, 4), lambda: torch.nn.LSTMCell(3, 4)),
    "lstm_no_bias": (lambda: nn.LSTMCell(3, 4, bias=False), lambda: torch.nn.LSTMCell(3, 4, bias=False)),
}


@pytest.mark.parametrize("name", CELL_PAIRS)
def test_cell_matches_torch(name):
    torch.manual_seed(0)
    make_ours, make_theirs = CELL_PAIRS[name]
    ours, theirs = make_ours().double(), make_theirs().double()
    copy_weights(ours, theirs)
    rng = np.random.default_rng(0)
    x, h, c = (rng.standard_normal(s) for s in ((5, 3), (5, 4), (5, 4)))
    is_lstm = isinstance(ours, nn.LSTMCell)
    xs, hs, cs = (ts.Tensor(v, requires_grad=True) for v in (x, h, c))
    xt, ht, ct = (torch.tensor(v, requires_grad=True) for v in (x, h, c))
    out = ours(xs, (hs, cs) if is_lstm else hs)
    out_t = theirs(xt, (ht, ct) if is_lstm else ht)
    parts, parts_t = (out if is_lstm else (out,)), (out_t if is_lstm else (out_t,))
    weights = [rng.standard_normal((5, 4)) for _ in parts]
    sum(((p * ts.Tensor(w)).sum() for p, w in zip(parts, weights)), ts.Tensor(0.0, dtype="float64")).backward()
    sum((p * torch.tensor(w)).sum() for p, w in zip(parts_t, weights)).backward()
    for i, (p, q) in enumerate(zip(parts, parts_t)):
        assert_close(p.numpy(), q, f"state part {i}")
    assert_close(xs.grad, xt.grad, "d/dx")
    assert_close(hs.grad, ht.grad, "d/dh")
    if is_lstm:
        assert_close(cs.grad, ct.grad, "d/dc")
    for (key, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert_close(p.grad, q.grad, f"d/d{key}")


LAYERS = {"RNN": (nn.RNN, torch.nn.RNN), "GRU": (nn.GRU, torch.nn.GRU), "LSTM": (nn.LSTM, torch.nn.LSTM)}
OPTIONS = list(itertools.product([1, 2], [False, True], [False, True], [False, True]))


@pytest.mark.parametrize("kind", LAYERS)
@pytest.mark.parametrize(
    "num_layers, bidirectional, batch_first, with_state_and_lengths",
    OPTIONS,
    ids=[f"L{n}{'-bi' if b else ''}{'-bf' if f else ''}{'-h0-lengths' if s else ''}" for n, b, f, s in OPTIONS],
)
def test_layer_matches_torch(kind, num_layers, bidirectional, batch_first, with_state_and_lengths):
    ours_class, torch_class = LAYERS[kind]
    torch.manual_seed(1)
    theirs = torch_class(3, 4, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first).double()
    ours = ours_class(3, 4, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first).double()
    copy_weights(ours, theirs)
    assert list(ours.state_dict()) == list(theirs.state_dict())

    T, B, D = 5, 3, 2 if bidirectional else 1
    rng = np.random.default_rng(2)
    x = rng.standard_normal((B, T, 3) if batch_first else (T, B, 3))
    h0, c0 = rng.standard_normal((2, num_layers * D, B, 4))
    lengths = [5, 2, 4] if with_state_and_lengths else None
    is_lstm = kind == "LSTM"

    xs = ts.Tensor(x, requires_grad=True)
    h0s, c0s = ts.Tensor(h0, requires_grad=True), ts.Tensor(c0, requires_grad=True)
    state = ((h0s, c0s) if is_lstm else h0s) if with_state_and_lengths else None
    out, final = ours(xs, state, lengths=lengths)
    finals = final if is_lstm else (final,)

    xt = torch.tensor(x, requires_grad=True)
    h0t, c0t = torch.tensor(h0, requires_grad=True), torch.tensor(c0, requires_grad=True)
    state_t = ((h0t, c0t) if is_lstm else h0t) if with_state_and_lengths else None
    inputs = xt
    if lengths is not None:
        inputs = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), batch_first=batch_first, enforce_sorted=False)
    out_t, final_t = theirs(inputs, state_t)
    if lengths is not None:
        out_t, _ = torch.nn.utils.rnn.pad_packed_sequence(out_t, batch_first=batch_first, total_length=T)
    finals_t = final_t if is_lstm else (final_t,)

    assert_close(out.numpy(), out_t, "output")
    for i, (f, g) in enumerate(zip(finals, finals_t)):
        assert_close(f.numpy(), g, f"final state part {i}")

    weights = [rng.standard_normal(out.shape)] + [rng.standard_normal(f.shape) for f in finals]
    loss = (out * ts.Tensor(weights[0])).sum()
    loss_t = (out_t * torch.tensor(weights[0])).sum()
    for f, g, w in zip(finals, finals_t, weights[1:]):
        loss = loss + (f * ts.Tensor(w)).sum()
        loss_t = loss_t + (g * torch.tensor(w)).sum()
    loss.backward()
    loss_t.backward()
    assert_close(xs.grad, xt.grad, "d/dx")
    if with_state_and_lengths:
        assert_close(h0s.grad, h0t.grad, "d/dh0")
        if is_lstm:
            assert_close(c0s.grad, c0t.grad, "d/dc0")
    for (key, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        assert_close(p.grad, q.grad, f"d/d{key}")


@pytest.mark.parametrize("kind", LAYERS)
def test_state_dicts_move_both_ways(kind):
    ours_class, torch_class = LAYERS[kind]
    ts.manual_seed(5)
    ours = ours_class(3, 4, num_layers=2, bidirectional=True)
    theirs = torch_class(3, 4, num_layers=2, bidirectional=True)
    theirs.load_state_dict(ts.interop.to_torch_state_dict(ours))
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    with torch.no_grad():
        np.testing.assert_allclose(ours(ts.Tensor(x))[0].numpy(), theirs(torch.tensor(x))[0].numpy(), rtol=1e-5, atol=1e-6)
    torch.manual_seed(3)
    other = torch_class(3, 4, num_layers=2, bidirectional=True)
    ts.interop.from_torch(ours, other)
    for key, value in other.state_dict().items():
        np.testing.assert_array_equal(ours.state_dict()[key], value.numpy())
    assert ours.weight_ih_l1_reverse.name == "weight_ih_l1_reverse"


def test_peephole_and_reset_before_have_their_own_keys():
    assert "weight_ci_l0" in nn.LSTM(3, 4, peephole=True).state_dict()
    assert list(nn.GRU(3, 4, reset_after=False).state_dict()) == list(torch.nn.GRU(3, 4).state_dict())


def test_lstm_language_model_trains_like_torch():
    """Embedding -> 2-layer LSTM -> Linear, cross-entropy, Adam with clipping: 8 steps, weights equal at every step."""
    vocabulary, T, B = 11, 6, 3
    rng = np.random.default_rng(0)
    text = rng.integers(0, vocabulary, (T + 1, B))
    inputs, targets = text[:-1], text[1:]

    class LanguageModel(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(vocabulary, 5)
            self.lstm = nn.LSTM(5, 7, num_layers=2, dropout=0.0)
            self.head = nn.Linear(7, vocabulary)

        def forward(self, ids):
            out, _ = self.lstm(self.embedding(ids))
            return self.head(out)

    class TorchLanguageModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(vocabulary, 5)
            self.lstm = torch.nn.LSTM(5, 7, num_layers=2)
            self.head = torch.nn.Linear(7, vocabulary)

        def forward(self, ids):
            out, _ = self.lstm(self.embedding(ids))
            return self.head(out)

    torch.manual_seed(0)
    theirs = TorchLanguageModel().double()
    ours = LanguageModel().double()
    ts.interop.from_torch(ours, theirs)
    opt, opt_t = optim.Adam(ours.parameters(), lr=0.01), torch.optim.Adam(theirs.parameters(), lr=0.01)
    for step in range(8):
        opt.zero_grad()
        loss = F.cross_entropy(ours(inputs), targets)
        loss.backward()
        optim.clip_grad_norm_(ours.parameters(), 0.5)
        opt.step()
        opt_t.zero_grad()
        loss_t = torch.nn.functional.cross_entropy(theirs(torch.tensor(inputs)).permute(0, 2, 1), torch.tensor(targets))
        loss_t.backward()
        torch.nn.utils.clip_grad_norm_(theirs.parameters(), 0.5)
        opt_t.step()
        assert loss.item() == pytest.approx(loss_t.item(), rel=1e-12)
        for (key, p), q in zip(ours.state_dict().items(), theirs.state_dict().values()):
            np.testing.assert_allclose(p, q.numpy(), rtol=1e-11, atol=1e-13, err_msg=f"step {step}: {key}")
