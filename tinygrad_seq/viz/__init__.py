"""See backpropagation through time: trace, draw and render computation graphs; step through backward.

>>> import tinygrad_seq as ts
>>> from tinygrad_seq import nn, viz
>>> out, _ = nn.Recurrent(nn.RNNCell(2, 3))(ts.randn(4, 1, 2))
>>> dot = viz.draw_graph(out.sum())
>>> [label for label in ("t = 1", "t = 2", "t = 3", "t = 4") if f'label="{label}"' in dot.source]
['t = 1', 't = 2', 't = 3', 't = 4']
"""
from .demo import loss_per_step
from .draw import CollapsedWarning, Digraph, draw_graph, summarize
from .explore import Explorer, explore
from .flow import gradient_flow, plot_gradient_flow
from .images import DotCrashedWarning, GraphvizNotFound, RenderError, ScaledDownWarning, has_dot, render_svg
from .render import render
from .stepper import Step, backward_steps
from .trace import Graph, GraphNode, course_parameter_name, trace

__all__ = [
    "CollapsedWarning", "Digraph", "DotCrashedWarning", "Explorer", "Graph", "GraphNode", "GraphvizNotFound", "RenderError", "ScaledDownWarning", "Step", "backward_steps", "course_parameter_name",
    "draw_graph", "explore", "gradient_flow", "has_dot", "loss_per_step", "plot_gradient_flow", "render", "render_svg", "summarize", "trace",
]
