"""Stepping through the real backward pass, one node at a time.

``viz.backward_steps(loss)`` wraps the engine's own backward generator (the
one ``loss.backward()`` loops over), so what you watch is what happens:
exhausting it leaves exactly the gradients ``loss.backward()`` would.

>>> import tinygrad_seq as ts
>>> from tinygrad_seq import nn, viz
>>> cell = nn.RNNCell(2, 3)
>>> out, _ = nn.Recurrent(cell)(ts.randn(2, 1, 2))
>>> steps = list(viz.backward_steps(out.sum(), params=dict(cell.named_parameters())))
>>> steps[0].op, steps[-1].index + 1 == len(steps)
('Sum', True)
"""
from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..engine import backward_iter, BackwardStep
from ..tensor import Tensor
from . import notation, rules
from .draw import CURRENT, DONE, Digraph, draw_graph, summarize
from .trace import Graph, parameter_names, trace


class Step:
    """One step of the backward pass: a node receives its whole gradient and sends gradients to its inputs.

    Attributes:
        index: 0 for the first step (the loss), counting up.
        total: how many steps the whole backward pass has.
        op, name, tags: the node's op ("Tanh"), its tensor's label ("a⟨3⟩", from its role) and tags.
        grad: the gradient arriving at the node's tensor.
        input_grads: (input tensor, gradient sent) for every input that gets one.
        parameter_grads: parameter name -> its gradient so far, for every
            parameter from the first step on (zeros until its first
            contribution; the running sum of a weight shared across time
            steps grows step by step).
    """

    def __init__(self, raw: BackwardStep, index: int, total: int, graph: Graph, done: list[str],
                 seen_grads: dict[str, Any], parameters: Mapping[str, Tensor], names: dict[str, str] | None = None) -> None:
        """``names``: a dict the steps of one pass share, filled with ``rules.names(graph)`` the first time a step
        describes itself (a bare op is then written as what it computes, "W_aa a⟨1⟩[:, 3:6]", not "GetItem")."""
        self.raw, self.index, self.total, self.graph = raw, index, total, graph
        self._names = {} if names is None else names
        self.done = list(done)
        self.seen_grads = dict(seen_grads)
        node = raw.node
        self.input_grads = [(arg, g) for arg, needs, g in zip(node.inputs, node.needs_input_grad, raw.input_grads) if needs]
        self.parameter_grads = {}
        for name, p in parameters.items():
            running = raw.running_grad(p)
            if running is None:  # complete already, or not reached yet: zeros until its first contribution
                running = p.grad.copy() if p.grad is not None else p.backend.xp.zeros(p.shape, dtype=p.dtype)
            self.parameter_grads[name] = running

    @property
    def op(self) -> str:
        return self.raw.op

    @property
    def name(self) -> str | None:
        """The tensor's label in the graph: from its role ("a⟨3⟩", see ``viz.notation``), its own name, or what it
        reads of a sequence ("a⟨1..3⟩[t=3]", a step picked out of the stacked outputs); None for a bare op. The
        graph was traced from the loss backward walks, so it holds every node a step reaches."""
        node = self.graph.node_of(self.tensor)
        return node.label if node.label != node.op else None

    @property
    def tags(self) -> dict[str, Any]:
        return self.raw.tags

    @property
    def tensor(self) -> Tensor:
        return self.raw.tensor

    @property
    def grad(self) -> Any:
        return self.raw.grad

    def describe(self) -> str:
        """One readable line: where we are, what arrives and what goes where."""
        where = notation.place(self.tags, self.graph.context)
        sent = "; ".join(f"{self._called(arg)} {tuple(g.shape)}" for arg, g in self.input_grads)
        return (
            f"step {self.index + 1:>3}/{self.total}  {where or '-':<26} {self.op} {self._called(self.tensor)}: "
            f"∇ {summarize(self.grad)} -> {sent}"
        )

    def _names_of(self) -> dict[str, str]:
        if not self._names:
            self._names.update(rules.names(self.graph))
        return self._names

    def _called(self, tensor: Tensor) -> str:
        """How the line names a tensor: its label, or for a bare op what it computes ("W_aa a⟨1⟩[:, 3:6]"); "input" for
        one the graph does not hold."""
        key = self.graph.key_of(tensor)
        if key is None:
            return "input"
        node = self.graph.nodes[key]
        return node.label if node.label != node.op else self._names_of().get(key, node.label)

    def __repr__(self) -> str:
        return f"Step({self.describe()})"

    def draw(self, **options: Any) -> Digraph:
        """The graph with done nodes grey, this node orange (its gradient shown) and pending nodes white."""
        key = self.graph.key_of(self.tensor)
        highlight = {k: DONE for k in self.done}
        highlight[key] = CURRENT
        grads = dict(self.seen_grads)
        grads[key] = self.grad
        edges = {(self.graph.key_of(arg), key): "∇ " + summarize(g, limit=3) for arg, g in self.input_grads}
        return draw_graph(self.graph, grads=grads, highlight=highlight, highlight_edges=edges,
                          current_name=self._called(self.tensor), **options)

    def render(self, path: str | os.PathLike, format: str | None = None, **options: Any) -> Path:
        """Write :meth:`draw`'s picture to ``path`` (see ``viz.render``)."""
        from .render import render

        return render(self.draw(**options), path, format=format)


def backward_steps(loss: Tensor, params: Mapping[str, Tensor] | Any = None, retain_graph: bool = False) -> Iterator[Step]:
    """The backward pass of ``loss``, one :class:`Step` per node (reverse topological order).

    ``params``: names for the parameters, ``dict(model.named_parameters())`` or the model itself;
    their running gradients are reported on every step. Gradients reach the
    leaves' ``.grad`` as the iteration goes; stopping early leaves the ones
    computed so far, and exhausting it leaves what ``loss.backward()`` would.
    """
    if not isinstance(loss, Tensor):
        raise TypeError(f"backward_steps: expects the loss, the Tensor whose backward to step through; got {type(loss).__name__}")
    params = parameter_names(params, "backward_steps")
    graph = trace(loss, params)
    total = sum(1 for node in graph.nodes.values() if node.backward_step)
    done: list[str] = []
    seen_grads: dict[str, Any] = {}
    names: dict[str, str] = {}  # rules.names(graph), worked out by the first step that describes itself
    for index, raw in enumerate(backward_iter(loss, retain_graph=retain_graph)):
        step = Step(raw, index, total, graph, done, seen_grads, params, names)
        yield step
        key = graph.key_of(raw.tensor)
        done.append(key)
        seen_grads[key] = raw.grad
