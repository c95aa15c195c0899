"""Gradient flow over time: how much of the loss's gradient reaches each hidden state.

The course's central lesson, measured: in a plain RNN ∂L/∂a⟨t⟩ shrinks (or
explodes) geometrically as t moves away from where the loss is taken, while
the gates of a GRU or LSTM can keep it alive.

>>> import tinygrad_seq as ts
>>> from tinygrad_seq import nn, viz
>>> out, _ = nn.RNN(2, 4)(ts.randn(5, 1, 2))
>>> flows = viz.gradient_flow(out[-1].sum())
>>> list(flows), flows["a", 0, "forward"].shape
([('a', 0, 'forward')], (5,))
"""
from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..tensor import Tensor, backward_iter

Key = tuple[str, Any, Any]  # ("a" or "c", layer, direction)
_STATE_NAME = re.compile(r"^(a|c|\(a, c\))⟨(\d+)⟩$")


def gradient_flow(loss: Tensor) -> dict[Key, np.ndarray]:
    """Run backward on ``loss`` and return the norm of ∂L/∂a⟨t⟩ (and ∂L/∂c⟨t⟩) at every time step.

    Returns {("a" | "c", layer, direction): array of T norms}, entry t-1 for
    time step t, found through the states that ``nn.Recurrent`` names and tags
    (a⟨t⟩, c⟨t⟩, or an LSTM's packed (a, c)⟨t⟩ on the fused path). The norm is
    taken over the batch and hidden units. Like ``loss.backward()``, it leaves
    the parameters' gradients and frees the graph.
    """
    found: dict[Key, dict[int, float]] = {}
    visited = []
    # The graph is kept while walking it: an LSTM's packed state needs its step's saved arrays
    # to give ∂L/∂c⟨t⟩ in full. It is freed at the end, as backward() would.
    for step in backward_iter(loss, retain_graph=True):
        visited.append(step.node)
        match = _STATE_NAME.match(step.name or "")
        if match is None or "t" not in step.tags:
            continue
        symbol, t = match.group(1), int(match.group(2))
        layer, direction = step.tags.get("layer"), step.tags.get("direction")
        if symbol == "(a, c)":
            parts = [("a", step.grad[0]), ("c", step.node.cell_state_grad(step.grad))]
        else:
            parts = [(symbol, step.grad)]
        for part, values in parts:
            found.setdefault((part, layer, direction), {})[t] = float(np.linalg.norm(step.tensor.backend.to_host(values)))
    for node in visited:
        node.free()
    flows = {}
    for key, by_step in sorted(found.items(), key=lambda kv: (kv[0][0], str(kv[0][1]), str(kv[0][2]))):
        steps = max(by_step)
        flows[key] = np.array([by_step.get(t, np.nan) for t in range(1, steps + 1)])
    return flows


def plot_gradient_flow(
    flows: Mapping[Key, np.ndarray] | Sequence[Mapping[Key, np.ndarray]],
    path: str | os.PathLike,
    labels: Sequence[str] | None = None,
    title: str = "Gradient flow: ‖∂L/∂a⟨t⟩‖ per time step",
) -> Path:
    """Plot one or several ``gradient_flow`` results on a log scale and save the figure (PNG, SVG, PDF by suffix).

    ``labels`` names each result (e.g. "RNN", "LSTM"); every key of a result
    is one line ("LSTM a", "LSTM c", "GRU a layer 1 reverse", ...).
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plot_gradient_flow needs matplotlib: pip install 'tinygrad-seq[plot]'") from None
    results = [flows] if isinstance(flows, Mapping) else list(flows)
    labels = list(labels) if labels is not None else [f"model {i + 1}" for i in range(len(results))]
    if len(labels) != len(results):
        raise ValueError(f"plot_gradient_flow: {len(results)} results but {len(labels)} labels; give one label per result")
    figure, axes = plt.subplots(figsize=(7, 4))
    for label, result in zip(labels, results):
        several = len({(layer, direction) for _, layer, direction in result}) > 1
        for (symbol, layer, direction), norms in result.items():
            name = f"{label} {symbol}" + (f" layer {layer} {direction}" if several else "")
            axes.plot(np.arange(1, len(norms) + 1), norms, marker="o", markersize=3, label=name)
    axes.set_yscale("log")
    axes.set_xlabel("time step t")
    axes.set_ylabel("‖∂L/∂a⟨t⟩‖  (log scale)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
