"""Weights move between tinygrad_seq modules and their PyTorch twins."""
import sys

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import nn


def test_round_trip_through_torch():
    torch = pytest.importorskip("torch", reason="needs torch (pip install torch==2.13.0)")
    ts.manual_seed(0)
    model = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    twin = torch.nn.Sequential(torch.nn.Embedding(5, 3), torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    twin.load_state_dict(ts.interop.to_torch_state_dict(model))
    ids = np.array([[0, 4], [2, 2]])
    with torch.no_grad():
        np.testing.assert_allclose(model(ids).numpy(), twin(torch.tensor(ids)).numpy(), rtol=1e-6)

    ts.manual_seed(1)
    other = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    ts.interop.from_torch(other, twin)
    for (name, a), b in zip(other.state_dict().items(), model.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)


def test_from_torch_reads_bfloat16_weights_exactly():
    """NumPy has no bfloat16: .numpy() refused it with "Got unsupported ScalarType BFloat16"."""
    torch = pytest.importorskip("torch", reason="needs torch (pip install torch==2.13.0)")
    twin = torch.nn.Linear(3, 2).to(torch.bfloat16)
    model = nn.Linear(3, 2)
    ts.interop.from_torch(model, twin)
    assert model.weight.dtype == np.float32  # the model keeps its dtype
    np.testing.assert_array_equal(model.weight.numpy(), twin.weight.detach().float().numpy())  # float32 holds them all


def test_from_torch_with_the_wrong_shape_names_the_keys():
    torch = pytest.importorskip("torch", reason="needs torch (pip install torch==2.13.0)")
    with pytest.raises(KeyError, match=r"mis-shaped: weight: checkpoint \(4, 3\) vs model \(2, 3\)"):
        ts.interop.from_torch(nn.Linear(3, 2), torch.nn.Linear(3, 4))


def test_interop_without_torch_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="ts.interop needs PyTorch: pip install torch"):
        ts.interop.to_torch_state_dict(nn.Linear(2, 2))


def test_a_module_without_a_pytorch_twin_or_arguments_in_the_wrong_place_are_refused():
    """A GRU(reset_after=False) moved both ways without a word and computed other outputs there; swapped arguments
    failed with "'numpy.ndarray' object has no attribute 'detach'"."""
    torch = pytest.importorskip("torch", reason="needs torch (pip install torch==2.13.0)")
    for module, option in ((nn.GRU(3, 4, reset_after=False), r"reset_after=False"), (nn.LSTM(3, 4, peephole=True), r"peephole=True")):
        for move in (lambda: ts.interop.to_torch_state_dict(module), lambda: ts.interop.from_torch(module, torch.nn.GRU(3, 4))):
            with pytest.raises(ValueError, match=rf"^(to_torch_state_dict|from_torch): \w+Cell has {option}"):
                move()
    with pytest.raises(TypeError, match=r"^from_torch: the first argument is the tinygrad_seq module; got torch\.nn\.modules\.rnn\.GRU\. "
                                        r"Call from_torch\(module, torch_module\): yours first, PyTorch's second$"):
        ts.interop.from_torch(torch.nn.GRU(3, 4), nn.GRU(3, 4))
    with pytest.raises(TypeError, match=r"^from_torch: the second argument is the PyTorch module \(or its state dict\)"):
        ts.interop.from_torch(nn.GRU(3, 4), nn.GRU(3, 4))
    with pytest.raises(TypeError, match=r"^to_torch_state_dict: the first argument is the tinygrad_seq module"):
        ts.interop.to_torch_state_dict(torch.nn.GRU(3, 4))
    twin = torch.nn.GRU(3, 4)
    ours = nn.GRU(3, 4)
    ts.interop.from_torch(ours, twin.state_dict())  # a state dict serves as well as the module
    np.testing.assert_array_equal(ours.weight_hh_l0.numpy(), twin.weight_hh_l0.detach().numpy())


def test_pytorch_tensors_where_ids_indices_or_states_go_are_read_or_named():
    """A PyTorch habit: its tensors passed on. Ids, targets and index arrays are read as NumPy reads them (were
    AttributeError: 'torch.dtype' object has no attribute 'kind'); a state must be a Tensor of ours, and the error
    says so of a torch.Tensor (it said "got a Tensor"); a PackedSequence is named, with lengths= as the way."""
    torch = pytest.importorskip("torch", reason="needs torch (pip install torch==2.13.0)")
    ids = np.array([[1, 2], [3, 4]])
    embedding = nn.Embedding(10, 3)
    np.testing.assert_array_equal(embedding(torch.tensor(ids)).numpy(), embedding(ids).numpy())
    logits = ts.randn(2, 2, 5)
    assert nn.functional.cross_entropy(logits, torch.tensor(ids)).item() == nn.functional.cross_entropy(logits, ids).item()
    x = ts.randn(4, 3)
    np.testing.assert_array_equal(x[torch.tensor([0, 2, 2])].numpy(), x[[0, 2, 2]].numpy())
    np.testing.assert_array_equal(x[torch.tensor([True, False, True, False])].numpy(), x[[0, 2]].numpy())
    with pytest.raises(TypeError, match=r"^Embedding\(10, 3\): ids \(token indices\) must be integers; got float32"):
        embedding(torch.zeros(2, 2))
    lstm = nn.LSTM(3, 5)
    with pytest.raises(nn.StateError, match=r"^LSTM: h0 must be a Tensor; got a torch\.Tensor of shape \(1, 4, 5\): make it one, "
                                            r"ts\.Tensor\(h0\)$"):
        lstm(ts.randn(2, 4, 3), (torch.zeros(1, 4, 5), torch.zeros(1, 4, 5)))
    out, _ = lstm(ts.randn(2, 4, 3), (ts.Tensor(torch.zeros(1, 4, 5)), ts.Tensor(torch.zeros(1, 4, 5))))  # the fix it names
    assert out.shape == (2, 4, 5)
    packed = torch.nn.utils.rnn.pack_padded_sequence(torch.zeros(2, 4, 3), [2, 2, 1, 1])
    with pytest.raises(TypeError, match=r"^LSTM: got a PyTorch PackedSequence; pass the padded sequences and their lengths "
                                        r"instead, layer\(x, lengths=lengths\)"):
        lstm(packed)


def test_a_checkpoint_dict_given_to_from_torch_names_the_state_dict_inside():
    torch = pytest.importorskip("torch", reason="needs torch (pip install torch==2.13.0)")
    theirs = torch.nn.Linear(3, 2)
    with pytest.raises(TypeError, match=r"got builtins\.dict whose values are not all tensors; a checkpoint's dict\? Pass the "
                                        r"state dict in it, e\.g\. from_torch\(module, checkpoint\['model'\]\) \(it holds dicts under \['model'\]\)$"):
        ts.interop.from_torch(nn.Linear(3, 2), {"model": theirs.state_dict(), "epoch": 3})
    ts.interop.from_torch(nn.Linear(3, 2), {"model": theirs.state_dict(), "epoch": 3}["model"])  # the fix it names
