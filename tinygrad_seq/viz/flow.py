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
import warnings
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..engine import backward_iter
from ..tensor import Tensor
from . import notation
from .render import refuse_folder

Key = tuple[str, Any, Any]  # (state part: "a", "c" or a user's, layer, direction)
PLOT_SUFFIXES = (".png", ".svg", ".pdf")  # what plot_gradient_flow writes, by the path's suffix


def gradient_flow(loss: Tensor) -> dict[Key, np.ndarray]:
    """Run backward on ``loss`` and return the norm of ∂L/∂part⟨t⟩ for every state part at every time step.

    Returns {(part, layer, direction): array of T norms}, entry t-1 for time
    step t; part is a name of the cell's ``state_names`` ("a", "c", or a
    user's). The states are found by their role (``nn.roles``), on both
    paths and for any cell: a tensor holding one part gives its gradient; a
    fused step's packed state gives each part's through its op's
    ``part_grads`` (which adds what flows between parts inside the step,
    such as an LSTM's c⟨t⟩ into a⟨t⟩). The norm is taken over the batch and
    hidden units. Like ``loss.backward()``, it leaves the parameters'
    gradients and frees the graph. A graph without such states (a loop
    written by hand, whose states no role marks) gives {} and a warning.
    """
    if not isinstance(loss, Tensor):
        raise TypeError(f"gradient_flow: takes the loss, a Tensor whose backward to run; got {type(loss).__name__}")
    found: dict[Key, dict[int, float]] = {}
    visited = []
    # The graph is kept while walking it: a packed state's op needs its saved arrays for part_grads.
    # It is freed at the end, as backward() would.
    for step in backward_iter(loss, retain_graph=True):
        visited.append(step.node)
        tags = step.tags
        for part, values in state_part_grads(tags, step.node, step.grad):
            key = (part, tags.get("layer"), tags.get("direction"))
            found.setdefault(key, {})[tags["t"]] = float(np.linalg.norm(step.tensor.backend.to_host(values)))
    for node in visited:
        node.free()
    if not found:
        warnings.warn("gradient_flow: the graph of this loss holds no state of a time step (a tensor with the role \"state\" "
                      "and a tag t), so there is no flow to measure. nn.Recurrent and the nn layers mark their states; in a "
                      "loop of your own, mark each one inside its step's tags: with ts.tags(t=t + 1): a = nn.roles.state("
                      "(W_aa @ a + W_ax @ x[t]).tanh(), \"a\")", UserWarning, stacklevel=2)
    flows = {}
    for key, by_step in sorted(found.items(), key=lambda kv: (kv[0][0], str(kv[0][1]), str(kv[0][2]))):
        steps = max(by_step)
        flows[key] = np.array([by_step.get(t, np.nan) for t in range(1, steps + 1)])
    return flows


def state_part_grads(tags: Mapping[str, Any], node: Any, grad: Any) -> list[tuple[str, Any]]:
    """[(part, ∂L/∂part⟨t⟩)] for the tensor a backward step reaches (its ``tags``, its op ``node``, its ``grad``): []
    unless it is a state of a time step. A tensor holding one part gives its own gradient; a fused step's packed
    state gives each part's through its op's ``part_grads`` (what flows between parts inside the step included),
    which needs the graph retained. A part no gradient reaches is left out (see Function.part_grads).
    ``gradient_flow`` and the explorer's flow chart measure these."""
    if tags.get("role") != "state" or "t" not in tags:
        return []
    if "part" in tags:
        return [(tags["part"], grad)]
    return [(part, values) for part, values in zip(tags["parts"], node.part_grads(grad)) if values is not None]


def plot_gradient_flow(
    flows: Mapping[Key, np.ndarray] | Sequence[Mapping[Key, np.ndarray]],
    path: str | os.PathLike,
    labels: Sequence[str] | None = None,
    title: str = "Gradient flow per time step",
    parts: str | Collection[str] | None = None,
) -> Path:
    """Plot one or several ``gradient_flow`` results on a log scale and save the figure (PNG, SVG, PDF by suffix).

    ``labels`` names each result (e.g. "RNN", "LSTM"); every key of a result
    is one line. ``parts`` keeps only those state parts (``("a",)``: an
    LSTM's a⟨t⟩ without its c⟨t⟩); None draws them all. A line is named by
    its label, then by its part when the figure shows more than one ("LSTM,
    c⟨t⟩"), then by its layer and direction when its result has several
    ("GRU, a⟨t⟩, layer 1 reverse": layers counted from 1, as the course's
    a^[1]⟨t⟩, for the key's layer 0); the y axis names the parts drawn.
    """
    refuse_folder(path, "plot_gradient_flow", "gradient_flow.png")
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(".png")
    if path.suffix.lower() not in PLOT_SUFFIXES:
        raise ValueError(f"plot_gradient_flow: {path} ends in {path.suffix}; name the file {', '.join(PLOT_SUFFIXES)}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plot_gradient_flow needs matplotlib: pip install 'tinygrad-seq[plot]'") from None
    drawn, lines = _lines(flows, labels, parts)
    figure, axes = plt.subplots(figsize=(7, 4))
    for name, norms in lines:
        axes.plot(np.arange(1, len(norms) + 1), norms, marker="o", markersize=3, label=name)
    axes.set_yscale("log")
    axes.set_xlabel("time step t")
    axes.set_ylabel(", ".join(f"‖∂L/∂{part}⟨t⟩‖" for part in drawn) + "  (log scale)")
    axes.set_title(title)
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8, loc="best", framealpha=0.7)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _lines(
    flows: Mapping[Key, np.ndarray] | Sequence[Mapping[Key, np.ndarray]],
    labels: Sequence[str] | None,
    parts: str | Collection[str] | None,
) -> tuple[list[str], list[tuple[str, np.ndarray]]]:
    """What plot_gradient_flow draws: the state parts on the figure, and each line's (name, norms; NaN for 0)."""
    results = [flows] if isinstance(flows, Mapping) else list(flows)
    if isinstance(labels, str):  # one name, not its letters
        labels = [labels]
    labels = list(labels) if labels is not None else [f"model {i + 1}" for i in range(len(results))]
    if len(labels) != len(results):
        raise ValueError(f"plot_gradient_flow: {len(results)} results but {len(labels)} labels; give one label per result")
    held = list(dict.fromkeys(part for result in results for part, _, _ in result))
    if not held:
        raise ValueError("plot_gradient_flow: the results hold no norms to draw; pass what viz.gradient_flow returned")
    wanted = held if parts is None else [parts] if isinstance(parts, str) else list(parts)  # "a": one name, not letters
    unknown = [part for part in wanted if part not in held]
    if not wanted:
        raise ValueError(f"plot_gradient_flow: parts={parts!r} names none of the results' parts {held}")
    if unknown:
        raise ValueError(f"plot_gradient_flow: parts={parts!r} names {unknown}, which the results' parts {held} do not hold")
    drawn = [part for part in held if part in wanted]
    lines = []
    for label, result in zip(labels, results):
        several = len({(layer, direction) for _, layer, direction in result}) > 1
        for (part, layer, direction), norms in result.items():
            if part in drawn:
                row = f", {notation.layer_name(layer)} {direction}" if several else ""
                name = label + (f", {part}⟨t⟩" if len(drawn) > 1 else "") + row
                # a norm of exactly 0 (a step no loss reaches) has no place on a log scale: NaN leaves a gap, not a
                # line down to the axis
                lines.append((name, np.where(np.asarray(norms, dtype=np.float64) > 0, norms, np.nan)))
    return drawn, lines
