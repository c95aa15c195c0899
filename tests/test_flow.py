"""Gradient flow per time step, its plot, and anomaly detection on both paths."""
import contextlib
import sys

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import nn, viz
from tinygrad_seq.viz import flow

from .conftest import to_host

pytestmark = pytest.mark.usefixtures("backend")  # every test on NumPy and on the strict device backend (conftest)


def path(fused):
    return contextlib.nullcontext() if fused else ts.transparent()


def lstm_loss(seed=0, steps=6, fused=True, model_out=None):
    ts.manual_seed(seed)
    model = nn.init.forget_bias_(nn.LSTM(3, 5, num_layers=2, bidirectional=True))
    with path(fused):
        out, _ = model(ts.randn(steps, 2, 3))
    if model_out is not None:
        model_out.append(model)
    return (out[-1] ** 2).sum() + out[0].sum()


def test_gradient_flow_equals_norms_of_retained_gradients():
    ts.manual_seed(0)
    with ts.transparent():
        out, (h, c) = nn.LSTM(3, 4, bidirectional=True)(ts.randn(5, 2, 3))
    loss = (out * out).sum()
    states = {(n.tags["part"], n.tags["t"]): n.tensor for n in viz.trace(loss).nodes.values()
              if n.role == "state" and "t" in n.tags and n.tags["direction"] == "forward"}
    for tensor in states.values():
        tensor.retain_grad()
    loss.backward(retain_graph=True)
    by_hand = {part: [np.linalg.norm(to_host(states[part, t].grad)) for t in range(1, 6)] for part in "ac"}
    flows = viz.gradient_flow(loss)
    assert set(flows) == {("a", 0, "forward"), ("c", 0, "forward"), ("a", 0, "reverse"), ("c", 0, "reverse")}
    np.testing.assert_allclose(flows["a", 0, "forward"], by_hand["a"], rtol=1e-6)
    np.testing.assert_allclose(flows["c", 0, "forward"], by_hand["c"], rtol=1e-6)


def test_fused_and_transparent_flows_agree():
    ts.set_default_dtype("float64")
    fused, transparent = viz.gradient_flow(lstm_loss(fused=True)), viz.gradient_flow(lstm_loss(fused=False))
    assert set(fused) == set(transparent) and len(fused) == 8  # a and c, 2 layers, 2 directions
    for key in fused:
        np.testing.assert_allclose(fused[key], transparent[key], rtol=1e-10, err_msg=str(key))


def test_flow_leaves_the_gradients_backward_would():
    ts.set_default_dtype("float64")
    flowed, reference = [], []
    viz.gradient_flow(lstm_loss(model_out=flowed))
    lstm_loss(model_out=reference).backward()
    for (name, p), q in zip(flowed[0].named_parameters(), reference[0].parameters()):
        np.testing.assert_array_equal(to_host(p.grad), to_host(q.grad), err_msg=name)


def test_plain_rnn_forgets_faster_than_an_lstm_with_forget_bias():
    def flow(model):
        ts.manual_seed(1)
        out, _ = model(ts.randn(50, 4, 8))
        return viz.gradient_flow(out[-1].sum())["a", 0, "forward"]

    ts.manual_seed(0)
    rnn = flow(nn.RNN(8, 32))
    ts.manual_seed(0)
    lstm = flow(nn.init.forget_bias_(nn.LSTM(8, 32), 1.0))
    assert rnn[-1] == pytest.approx(lstm[-1])  # both start from ∂L/∂a⟨50⟩ = 1 per unit
    assert rnn[0] / rnn[-1] < 1e-3 * (lstm[0] / lstm[-1])  # the RNN's gradient has all but vanished at t = 1
    assert np.all(np.diff(np.log(rnn[:40])) > 0)  # it shrinks at every step back in time


def test_plot_gradient_flow(tmp_path):
    ts.manual_seed(0)
    out, _ = nn.RNN(2, 4)(ts.randn(10, 1, 2))
    rnn = viz.gradient_flow(out[-1].sum())
    lstm = viz.gradient_flow(lstm_loss())
    path = viz.plot_gradient_flow([rnn, lstm], tmp_path / "flow", labels=["RNN", "LSTM"])
    assert path.suffix == ".png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="2 results but 1 labels"):
        viz.plot_gradient_flow([rnn, lstm], tmp_path / "x.png", labels=["RNN"])
    with pytest.raises(ValueError, match=r"parts=\['a', 'C'\] names \['C'\], which the results' parts \['a', 'c'\] do not hold"):
        viz.plot_gradient_flow([rnn, lstm], tmp_path / "x.png", labels=["RNN", "LSTM"], parts=["a", "C"])
    with pytest.raises(ValueError, match=r"parts=\[\] names none of the results' parts \['a', 'c'\]"):
        viz.plot_gradient_flow([rnn, lstm], tmp_path / "x.png", labels=["RNN", "LSTM"], parts=[])
    with pytest.raises(ValueError, match=r"the results hold no norms to draw; pass what viz.gradient_flow returned"):
        viz.plot_gradient_flow({}, tmp_path / "x.png")
    # Each was a surprise: somedir.png beside the folder, matplotlib's own error, "1 results but 3 labels", and an
    # AttributeError from inside the engine
    (tmp_path / "figures").mkdir()
    with pytest.raises(IsADirectoryError, match=r"plot_gradient_flow: a folder, not a file name; give a file to write, e\.g\. .*gradient_flow\.png"):
        viz.plot_gradient_flow(rnn, tmp_path / "figures")
    with pytest.raises(ValueError, match=r"^plot_gradient_flow: .*x\.txt ends in \.txt; name the file \.png, \.svg, \.pdf$"):
        viz.plot_gradient_flow(rnn, tmp_path / "x.txt")
    assert viz.plot_gradient_flow(rnn, tmp_path / "one.svg", labels="RNN").read_text().lstrip().startswith("<?xml")
    with pytest.raises(TypeError, match=r"^gradient_flow: takes the loss, a Tensor whose backward to run; got ndarray$"):
        viz.gradient_flow(np.ones(3))


def test_plotted_lines_are_named_by_the_parts_drawn():
    ts.manual_seed(0)
    rnn, lstm = (viz.gradient_flow(model(ts.randn(10, 1, 2))[0][-1].sum()) for model in (nn.RNN(2, 4), nn.LSTM(2, 4)))
    drawn, lines = flow._lines([rnn, lstm], ["RNN", "LSTM"], None)
    assert drawn == ["a", "c"] and [name for name, _ in lines] == ["RNN, a⟨t⟩", "LSTM, a⟨t⟩", "LSTM, c⟨t⟩"]
    drawn, lines = flow._lines([rnn, lstm], ["RNN", "LSTM"], ["a"])  # the figure of docs/bptt.md: one line per model
    assert drawn == ["a"] and [name for name, _ in lines] == ["RNN", "LSTM"]
    assert flow._lines([lstm], ["LSTM"], "c")[0] == ["c"]  # a string is one part's name, not its letters
    with pytest.raises(ValueError, match=r"parts='ac' names \['ac'\], which"):
        flow._lines([lstm], ["LSTM"], "ac")
    np.testing.assert_array_equal(lines[1][1], lstm["a", 0, "forward"])
    _, (zeros_left_out,) = flow._lines([{("a", 0, "forward"): np.array([0.0, 0.5, 0.0, 2.0])}], ["RNN"], None)
    np.testing.assert_array_equal(zeros_left_out[1], [np.nan, 0.5, np.nan, 2.0])  # gaps on the log scale
    _, lines = flow._lines(viz.gradient_flow(lstm_loss()), ["LSTM"], ["c"])  # two layers, both directions
    # the legend counts layers from 1, as the course's c^[1]⟨t⟩ does, for the keys' layers 0 and 1
    assert {name for name, _ in lines} == {f"LSTM, layer {layer} {direction}" for layer in (1, 2) for direction in ("forward", "reverse")}


def test_plot_without_matplotlib_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"pip install 'tinygrad-seq\[plot\]'"):
        viz.plot_gradient_flow({}, tmp_path / "x.png")


# ---------------------------------------------------------------- anomaly detection


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "transparent"])
def test_anomaly_in_forward_names_the_time_step(fused):
    lstm = nn.LSTM(2, 3)
    lstm.weight_hh_l0.data[0, 0] = np.inf  # a diverged weight: 0 · inf = NaN in the first step
    op = "LSTMStep" if fused else "Linear"
    with ts.detect_anomaly(), path(fused):
        # The weight was non-finite before the op ran: the message blames it, not the op, and points at the element.
        with pytest.raises(FloatingPointError, match=rf"the input weight_hh_l0 of shape \(12, 3\) of {op} is already non-finite going forward, "
                                                     r"at time step 1, layer 0, forward: inf at index \(0, 0\) \(flat index 0\)"):
            lstm(ts.ones(3, 1, 2))


@pytest.mark.parametrize("layer, name", [(lambda: nn.LSTM(3, 4, num_layers=2), "LSTM"),
                                         (lambda: nn.Recurrent(nn.GRUCell(3, 4)), r"Recurrent\(GRUCell\)"),
                                         (lambda: nn.Stacked([nn.Recurrent(nn.RNNCell(3, 4))]), r"Stacked\(1 layer\)")],
                         ids=["LSTM", "Recurrent", "Stacked"])
def test_anomaly_names_the_layer_called_for_a_nan_in_its_input(layer, name):
    x = np.ones((4, 2, 3), dtype=np.float32)
    x[2, 0, 1] = np.inf
    with ts.detect_anomaly(), pytest.raises(FloatingPointError, match=rf"the input x of shape \(4, 2, 3\) given to {name} is "
                                                                      r"already non-finite: inf at index \(2, 0, 1\).*time step 3\."):
        layer()(ts.Tensor(x, name="x"))


@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "transparent"])
def test_anomaly_names_the_time_step_of_a_nan_in_the_input(fused, batch_first):
    """A NaN that enters with the input at time step 5 is reported as time step 5, not blamed on the op that reads it."""
    x = np.random.default_rng(0).standard_normal((7, 2, 3), dtype=np.float32)
    x[4, 1, 0] = np.nan
    index = "(1, 4, 0)" if batch_first else "(4, 1, 0)"
    layer = nn.Bidirectional(nn.Recurrent(nn.GRUCell(3, 4), batch_first=batch_first))
    with ts.detect_anomaly(), path(fused):
        with pytest.raises(FloatingPointError, match=rf"the input x of shape \({'2, 7' if batch_first else '7, 2'}, 3\) given to "
                                                     rf"Bidirectional\(Recurrent\(GRUCell\)\) is already non-finite: nan at index \{index[:-1]}\) \(flat index \d+\), time step 5\. "
                                                     r"The NaN or inf came in with it"):
            layer(ts.Tensor(x.swapaxes(0, 1) if batch_first else x, name="x"))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "transparent"])
def test_anomaly_names_the_time_step_where_the_input_projection_overflows(fused):
    """The fused path projects all steps in one matmul; the message still says which step overflowed."""
    x = np.random.default_rng(0).standard_normal((7, 2, 3))
    x[4, 1] = 1e10
    rnn = nn.RNN(3, 4).double()
    nn.init.constant_(rnn.weight_ih_l0, 1e300)
    where = r"at layer 0, forward \(tags .*'time_axis': 0\}\): its output of shape \(7, 2, 4\) holds inf at index \(4, 1, 0\) \(flat index 36\), time step 5" if fused \
        else r"at time step 5, layer 0, forward \(tags .*\): its output of shape \(2, 4\) holds inf at index \(1, 0\)"
    with ts.detect_anomaly(), path(fused):
        with pytest.raises(FloatingPointError, match=rf"Linear produced a non-finite output going forward, {where}.*its inputs, all finite"):
            rnn(ts.Tensor(x))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_anomaly_blames_a_non_finite_input_not_the_op():
    x = ts.Tensor([1.0, 2.0, np.inf], name="x")
    with ts.detect_anomaly():
        with pytest.raises(FloatingPointError, match=r"the input x of shape \(3,\) of Mul is already non-finite going forward, outside the time loop: "
                                                     r"inf at index \(2,\) \(flat index 2\)\. The NaN or inf came in with this input; Mul did not make it"):
            x * 0.0
    with ts.tags(t=3):
        made = ts.Tensor([1.0, -1.0], requires_grad=True).log()  # NaN at t = 3, made outside detect_anomaly
    with ts.detect_anomaly():
        with pytest.raises(FloatingPointError, match=r"the input unnamed of shape \(2,\) \(made at time step 3\) of Exp is already non-finite.*nan at index \(1,\)"):
            made.exp()
        with pytest.raises(FloatingPointError, match=r"the initial state c unnamed of shape \(1, 4\) given to Recurrent\(LSTMCell\) \(layer 0, forward\) is already non-finite"):
            nn.Recurrent(nn.LSTMCell(3, 4))(ts.ones(2, 1, 3), (ts.zeros(1, 4), ts.full((1, 4), np.nan)))


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "transparent"])
def test_anomaly_in_backward_names_the_time_step(fused):
    with ts.detect_anomaly(), path(fused):
        out, _ = nn.GRU(2, 3)(ts.randn(4, 1, 2))
        loss = out.sum()
        state = next(n.tensor for n in viz.trace(loss).nodes.values() if n.role == "state" and n.tags.get("t") == 2)
        state.register_hook(lambda g: g * np.nan)  # plant a NaN in the gradient reaching a⟨2⟩
        with pytest.raises(FloatingPointError, match=r"sent a non-finite gradient going backward, at time step 2, layer 0, forward"):
            loss.backward()


def test_anomaly_detection_is_off_by_default_and_changes_nothing():
    def run():
        ts.manual_seed(3)
        model = nn.LSTM(2, 3)
        out, _ = model(ts.randn(4, 2, 2))
        out.sum().backward()
        return out.numpy(), [to_host(p.grad).copy() for p in model.parameters()]

    plain = run()
    with ts.detect_anomaly():
        checked = run()
    np.testing.assert_array_equal(plain[0], checked[0])
    for a, b in zip(plain[1], checked[1]):
        np.testing.assert_array_equal(a, b)
    nan = ts.Tensor([np.nan], requires_grad=True)
    assert np.isnan((nan * 2).sum().item())  # off: NaN goes through silently


def test_a_graph_without_marked_states_gives_no_flow_and_says_how_to_mark_them():
    """A loop written by hand whose states no role marks: {} and a warning naming nn.roles.state, at the caller's line;
    marked, the same loop gives one norm per step."""
    ts.manual_seed(0)
    w_aa, w_ax, xs = ts.randn(2, 2, requires_grad=True), ts.randn(2, 3, requires_grad=True), ts.randn(3, 3, 1)

    def loss(mark):
        a = ts.zeros(2, 1)
        for t in range(3):
            with ts.tags(t=t + 1):
                a = mark((w_aa @ a + w_ax @ xs[t]).tanh())
        return (a * a).sum()

    with pytest.warns(UserWarning, match=r"^gradient_flow: the graph of this loss holds no state of a time step .* "
                                         r"a = nn\.roles\.state\(") as caught:
        assert viz.gradient_flow(loss(lambda a: a)) == {}
    assert caught[0].filename == __file__
    flows = viz.gradient_flow(loss(lambda a: nn.roles.state(a, "a")))
    assert list(flows) == [("a", None, None)] and flows[("a", None, None)].shape == (3,)
