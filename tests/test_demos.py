"""The demos compute what they claim: checked against finite differences and PyTorch."""
import re
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_seq as ts

DEMOS = Path(__file__).resolve().parent.parent / "demos"


def test_autograd_tour_output():
    result = subprocess.run([sys.executable, str(DEMOS / "autograd_tour.py")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "finite-difference check of every gradient in float64: passed" in out
    step_times = [int(t) for t in re.findall(r"^  t=(\d)", out, re.M)]
    assert step_times[:4] == [3, 3, 3, 3] and step_times == sorted(step_times, reverse=True)  # last step first
    assert int(re.search(r"(\d+) steps in all", out).group(1)) == 30  # 10 ops per time step
    assert len(re.findall(r"\|dL/da⟨\d⟩\| = \d\.\d{4}", out)) == 3


def test_autograd_tour_gradients_match_torch():
    torch = pytest.importorskip("torch", reason="compares with PyTorch (pip install torch==2.13.0)")
    tour = runpy.run_path(str(DEMOS / "autograd_tour.py"))
    params = tour["make_parameters"]("float64")
    rng = np.random.default_rng(5)
    xs_np = [rng.standard_normal((3, 1)) for _ in range(3)]
    ys = [1, 0, 1]
    loss, _ = tour["rnn_loss"](params, [ts.Tensor(x) for x in xs_np], ys)
    loss.backward()

    p = {k: torch.tensor(v.numpy(), requires_grad=True) for k, v in params.items()}
    a = torch.zeros(4, 1, dtype=torch.float64)
    expected = 0
    for x, y in zip(xs_np, ys):
        a = torch.tanh(p["W_aa"] @ a + p["W_ax"] @ torch.tensor(x) + p["b_a"])
        expected = expected - torch.log_softmax(p["W_ya"] @ a + p["b_y"], 0)[y, 0]
    expected.backward()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-12)
    for name in params:
        np.testing.assert_allclose(params[name].grad, p[name].grad.numpy(), rtol=1e-12, atol=1e-15, err_msg=name)
