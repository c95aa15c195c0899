"""The demos run and compute what they claim (their --smoke modes; the tour against finite differences and PyTorch)."""
import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tinygrad_seq as ts

from .conftest import on_strict_device

ROOT = Path(__file__).resolve().parent.parent
DEMOS = ROOT / "demos"


def demo_env(**changes):
    """The environment for a demo's process: this checkout's tinygrad_seq first (not an installed one)."""
    env = {**os.environ, **changes}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


@pytest.fixture(params=["numpy", "strict"])
def demo_backend(request):
    """How a demo's process runs: on NumPy, or with --backend cupy on the strict device backend (tests/strict_launch.py)."""
    return request.param


def demo_command(name, backend, *args):
    if backend == "strict":
        return [sys.executable, str(ROOT / "tests" / "strict_launch.py"), str(DEMOS / name), *args, "--backend", "cupy"]
    return [sys.executable, str(DEMOS / name), *args]


def test_autograd_tour_output(demo_backend):
    result = subprocess.run(demo_command("autograd_tour.py", demo_backend), capture_output=True, text=True, timeout=120,
                            env=demo_env())
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "finite-difference check of every gradient in float64: passed" in out
    step_times = [int(t) for t in re.findall(r"^  t=(\d)", out, re.M)]
    assert step_times[:4] == [3, 3, 3, 3] and step_times == sorted(step_times, reverse=True)  # last step first
    assert int(re.search(r"(\d+) steps in all", out).group(1)) == 30  # 10 ops per time step
    assert len(re.findall(r"\|dL/da⟨\d⟩\| = \d\.\d{4}", out)) == 3


def test_autograd_tour_gradients_match_torch(monkeypatch):
    torch = pytest.importorskip("torch", reason="compares with PyTorch (pip install torch==2.13.0)")
    monkeypatch.syspath_prepend(str(DEMOS))  # the demos import their shared demos/common.py
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


def run_demo(name, tmp_path, backend, *extra, out=True):
    folder = ("--out", str(tmp_path)) if out else ()  # a demo that writes no file has no --out
    result = subprocess.run(demo_command(name, backend, "--smoke", *folder, *extra),
                            capture_output=True, text=True, timeout=300, env=demo_env())
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def test_a_demo_refuses_to_replace_what_is_not_its_checkpoint_in_one_line(tmp_path):
    (tmp_path / "checkpoint").write_text("my notes")  # where the demo would write its checkpoint
    result = subprocess.run([sys.executable, str(DEMOS / "char_lm.py"), "--smoke", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=300, env=demo_env())
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("char_lm.py: error: ")
    assert "is a file, not a checkpoint folder" in result.stderr
    assert (tmp_path / "checkpoint").read_text() == "my notes"


def test_a_demo_given_an_out_folder_it_cannot_make_says_so_in_one_line(tmp_path):
    (tmp_path / "notes").write_text("mine")
    result = subprocess.run([sys.executable, str(DEMOS / "one_to_many.py"), "--smoke", "--out", str(tmp_path / "notes")],
                            capture_output=True, text=True, timeout=300, env=demo_env())
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"one_to_many.py: error: --out {tmp_path / 'notes'}: cannot make this folder (File exists); "
        "name a folder you can write to")
    assert (tmp_path / "notes").read_text() == "mine"


def test_shakespeare_smoke(tmp_path, demo_backend):
    out = run_demo("shakespeare.py", tmp_path, demo_backend, "--cell", "gru")
    assert "validation loss per character after 1 epoch(s)" in out and out.count("--- temperature") == 3
    assert (tmp_path / "samples.txt").read_text().count("ROMEO:") == 3 and (tmp_path / "loss.png").exists()


def test_word_lm_smoke(tmp_path, demo_backend):
    out = run_demo("word_lm.py", tmp_path, demo_backend)
    assert "of the words become <unk>" in out and "the real order is likelier in" in out
    table = out.split("P('Cats average 15 hours of sleep a day.') = P(y⟨1⟩) P(y⟨2⟩|y⟨1⟩)")[1].split("sampled lines")[0]
    factors = re.findall(r"^ +(\d+)  (\S+) +(\d\.\d+(?:e-\d+)?)", table, re.M)
    assert [t for t, _, _ in factors] == [str(t) for t in range(1, 11)] and factors[-1][1] == "<eos>"  # 9 words, then <eos>
    assert "('Cats' is not in the vocabulary)" in table and factors[0][1] == "<unk>"
    p = float(re.search(r"^P\(sentence\) = (\S+) ", table, re.M).group(1))
    assert p == pytest.approx(np.prod([float(q) for _, _, q in factors]), rel=0.01)  # factors printed to 4 significant digits
    sampled = out.split("sampled lines (never <unk>):")[1].split("\n\nthe checkpoint, this report")[0]
    assert "<unk>" not in sampled and len(sampled.strip().splitlines()) == 5


def test_name_tagging_smoke(tmp_path, demo_backend):
    out = run_demo("name_tagging.py", tmp_path, demo_backend)
    assert re.search(r"unidirectional\s+\d+\.\d%\s+\d+\.\d%", out) and re.search(r"bidirectional\s+\d+\.\d%", out)
    svg = (tmp_path / "bidirectional_graph.svg").read_text()
    assert "reverse" in svg and "t = 3" in svg


def test_sentiment_smoke(tmp_path, demo_backend):
    out = run_demo("sentiment.py", tmp_path, demo_backend)
    assert re.search(r"accuracy on 200 held-out sentences, none of them a training sentence: \d+\.\d%", out)
    assert out.count("'the") >= 2 and "sentences of constructions the training data never has" in out
    assert "'the food was not bad <unk> <unk>'" in out  # the words it never saw, shown as it reads them
    assert len(re.findall(r"called (positive|negative) \(ŷ = [01]\.\d{3}\)", out)) == 6  # ŷ = σ(W_ya a⟨T_x⟩ + b_y)


def test_one_to_many_smoke(tmp_path, demo_backend):
    out = run_demo("one_to_many.py", tmp_path, demo_backend)
    assert re.search(r"exact match on 100 held-out numbers: \d+\.\d%", out) and "(should be '" in out


def test_spelling_of_numbers(monkeypatch):
    monkeypatch.syspath_prepend(str(DEMOS))  # the demos import their shared demos/common.py
    spell = runpy.run_path(str(DEMOS / "one_to_many.py"), run_name="demo")["spell"]
    assert [spell(n) for n in (0, 13, 42, 100, 305, 999)] == [
        "zero", "thirteen", "forty-two", "one hundred", "three hundred and five", "nine hundred and ninety-nine"]


def test_date_translation_smoke(tmp_path, demo_backend):
    out = run_demo("date_translation.py", tmp_path, demo_backend)
    assert re.search(r"exact match on 100 held-out dates: \d+\.\d%", out)


def test_human_dates(monkeypatch):
    import datetime

    monkeypatch.syspath_prepend(str(DEMOS))
    human = runpy.run_path(str(DEMOS / "date_translation.py"), run_name="demo")["human"]
    date = datetime.date(1979, 5, 3)
    assert [human(date, s) for s in range(4)] == ["3rd of May 1979", "03/05/79", "May 3, 1979", "thursday 3 may 1979"]


def test_vanishing_gradients_smoke(tmp_path, demo_backend):
    out = run_demo("vanishing_gradients.py", tmp_path, demo_backend)
    assert re.search(r"^RNN(\s+\d+%){5}$", out, re.M) and re.search(r"^LSTM(\s+\d+%){5}$", out, re.M)
    assert (tmp_path / "accuracy.png").exists() and (tmp_path / "gradient_flow.png").exists()


def test_exploding_gradients_smoke(tmp_path, demo_backend):
    out = run_demo("exploding_gradients.py", tmp_path, demo_backend)
    assert "  stopped: detect_anomaly: RNNStep produced a non-finite output going forward, at time step" in out  # said once
    assert re.search(r"without clipping: 1 update, loss \d+\n", out)  # the second update's forward blows up (was "1 updates", "losses")
    assert "for scale: always guessing the mean sum scores 3.33" in out  # what the clipped run's loss is to be read against
    assert re.search(r"with clip_grad_norm_\(max_norm=1.0\): 30 updates", out) and "gradients were clipped" in out


def test_min_char_rnn_smoke(tmp_path, demo_backend):
    out = run_demo("min_char_rnn.py", tmp_path, demo_backend, out=False)
    assert list(tmp_path.iterdir()) == []  # nothing written, no empty folder made
    agreement = float(re.search(r"loss and gradients agree to (\S+) \(relative\)", out).group(1))
    assert agreement < 1e-12  # the hand-written backward pass is the engine's, to float64 rounding
    by_hand, library = re.findall(r"a name sampled (?:by hand|library):\s+'(.*)'", out)
    assert by_hand == library


def test_demos_keep_the_backend_tinygrad_seq_backend_chose_unless_told(monkeypatch, tmp_path):
    """TINYGRAD_SEQ_BACKEND picks the backend when tinygrad_seq is imported; a demo without --backend keeps it."""
    monkeypatch.syspath_prepend(str(DEMOS))
    import common

    with on_strict_device():  # as TINYGRAD_SEQ_BACKEND=cupy would
        common.start(common.arguments("demo", "out").parse_args(["--out", str(tmp_path)]))
        assert ts.get_backend().name == "cupy"
        common.start(common.arguments("demo", "out").parse_args(["--out", str(tmp_path), "--backend", "numpy"]))
        assert ts.get_backend().name == "numpy"


@pytest.mark.parametrize("outputs, heading, lines", [
    (["a", "b", "c"], "100.0%; some of them:", 3),
    (["a", "x", "c"], "66.7%; some it got wrong, then some it got right:", 3),
    (["x", "y", "z"], "0.0%; some it got wrong:", 3),
])
def test_the_exact_match_report_heads_only_the_examples_it_shows(monkeypatch, capsys, outputs, heading, lines):
    """At 100 % the heading promised wrong examples and listed only right ones (the date translation demo)."""
    monkeypatch.syspath_prepend(str(DEMOS))
    import common

    assert common.report_exact_match([1, 2, 3], outputs, ["a", "b", "c"], "dates") == sum(o in "abc" for o in outputs) / 3
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[0] == f"exact match on 3 held-out dates: {heading}" and len(printed) == 1 + lines
    assert sum("should be" in line for line in printed) == sum(o not in "abc" for o in outputs)
