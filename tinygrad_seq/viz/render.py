"""``viz.render``: draw a tensor's graph (or take a Digraph) and write it as an SVG, PNG or PDF file.

How each format is made is in images.py.
"""
from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any

import graphviz

from ..tensor import Tensor
from .trace import parameter_names
from .draw import draw_graph
from .images import (
    FONT,
    FONT_FILE,
    FORMATS,
    PNG_DPI,
    PNG_MAX_PIXELS,
    PNG_MAX_SIDE,
    SVG_FONT_FAMILY,
    GraphvizNotFound,
    has_dot,
    render_png,
    render_svg,
    run_dot,
)

# render and output_format, and what lived here before images.py, still importable from here.
__all__ = ["FONT", "FONT_FILE", "FORMATS", "PNG_DPI", "PNG_MAX_PIXELS", "PNG_MAX_SIDE", "SVG_FONT_FAMILY", "GraphvizNotFound",
           "has_dot", "output_format", "render", "render_png", "render_svg"]


def refuse_folder(path: str | os.PathLike, op: str, example: str) -> None:
    """Raise IsADirectoryError when ``path`` is a folder: written as given, a suffix added to it would put the
    file beside the folder, not in it (``example``: a file name to suggest inside it)."""
    if Path(path).is_dir():
        raise IsADirectoryError(errno.EISDIR, f"{op}: a folder, not a file name; give a file to write, e.g. "
                                f"{Path(path) / example}", str(path))


def output_format(path: str | os.PathLike, format: str | None = None) -> str:
    """The format to write ``path`` in: ``format``, else the path's suffix, else SVG (a path without one).

    A suffix naming another format than ``format``, or none of FORMATS while ``format`` is None, is an error:
    writing SVG into "graph.png" would give a file no image viewer opens.
    """
    suffix = Path(path).suffix.lower().lstrip(".")
    format = format.lower() if isinstance(format, str) else format
    if format is not None and format not in FORMATS:
        raise ValueError(f"render: format must be one of {', '.join(FORMATS)}; got {format!r}")
    if suffix in FORMATS:
        if format is not None and format != suffix:
            raise ValueError(f"render: format={format!r} but {path} ends in .{suffix}; drop format= to write "
                             f"{suffix.upper()}, or name the file .{format}")
        return suffix
    if format is None and suffix:
        raise ValueError(f"render: {path} ends in .{suffix}, which is none of {', '.join(FORMATS)}; name the file "
                         ".svg, .png or .pdf, or pass format= to write that format under this name")
    return format or "svg"


def render(target: Tensor | graphviz.Digraph, path: str | os.PathLike, format: str | None = None, **options: Any) -> Path:
    """Draw ``target`` (a tensor's graph, or a Digraph) and write it to ``path``; returns the path written.

    The format is the path's suffix (.svg, .png, .pdf), or ``format`` for a path without one (SVG when neither
    says); a path without a suffix gets the format's. SVG and PNG work everywhere (in-process when Graphviz is not
    installed); PDF needs Graphviz's ``dot``. ``options`` go to :func:`draw_graph` (none with a Digraph).
    """
    refuse_folder(path, "render", "graph.svg")
    format = output_format(path, format)
    if format == "pdf" and not has_dot():
        raise GraphvizNotFound(
            f"render: format {format!r} needs Graphviz's dot program, which is not on PATH. Install Graphviz "
            "(Debian/Ubuntu: sudo apt-get install graphviz; macOS: brew install graphviz; "
            "conda: conda install -c conda-forge graphviz), or write SVG or PNG (name the file .svg or .png), which render now without it"
        )
    if isinstance(target, graphviz.Digraph) and options:  # a drawn graph: they would be dropped without a word
        raise TypeError(f"render: {', '.join(sorted(options))} draw a tensor's graph, and this is a graph already drawn; "
                        "pass the tensor instead (render(loss, path, ...)), or the options to draw_graph")
    if "params" in options:  # checked here, so that a wrong one names the function called
        options["params"] = parameter_names(options["params"], "render")
    dot = target if isinstance(target, graphviz.Digraph) else draw_graph(target, **options)
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(f".{format}")
    if format == "svg":
        data = render_svg(dot.source).encode("utf-8")
    elif format == "png":
        data = render_png(dot.source)
    else:
        data = run_dot(dot.source, format)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
