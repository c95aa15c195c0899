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


def test_from_torch_with_the_wrong_shape_names_the_keys():
    torch = pytest.importorskip("torch", reason="needs torch (pip install torch==2.13.0)")
    with pytest.raises(KeyError, match=r"mis-shaped: weight: checkpoint \(4, 3\) vs model \(2, 3\)"):
        ts.interop.from_torch(nn.Linear(3, 2), torch.nn.Linear(3, 4))


def test_interop_without_torch_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match="ts.interop needs PyTorch: pip install torch"):
        ts.interop.to_torch_state_dict(nn.Linear(2, 2))
