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
