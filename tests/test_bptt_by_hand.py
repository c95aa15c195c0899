"""docs/bptt_by_hand.md: its numbers come from what its code prints, its code lines from the reference.

tests/test_docs.py runs the page's python blocks and compares each ```text
block with what the block before it prints; these tests tie the rest of the
page to those printed blocks and to tinygrad_seq/course/reference.py.
"""
import contextlib
import re
from pathlib import Path

import numpy as np

import tinygrad_seq as ts
from tinygrad_seq import nn

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "bptt_by_hand.md"
FENCED = re.compile(r"^```(\w*)\n(.*?)^```$", re.M | re.S)
NUMBER = re.compile(r"\d+\.\d{3,}")  # 3 decimals or more: a value, not "1e-7", "0.5" or "T_x = 3"


def page():
    return PAGE.read_text(encoding="utf-8")


def printed_blocks(text):
    """The ```text blocks that come right after a ```python block: what tests/test_docs.py checks."""
    blocks = list(FENCED.finditer(text))
    return [b.group(2) for previous, b in zip(blocks, blocks[1:])
            if b.group(1) == "text" and previous.group(1) == "python" and not text[previous.end():b.start()].strip()]


def prose(text):
    """Everything outside the fenced blocks: paragraphs, tables, indented formulas."""
    return FENCED.sub("", text)


def test_every_text_block_is_printed_output():
    text = page()
    assert len(printed_blocks(text)) == text.count("```text") >= 4


def test_every_number_in_the_prose_is_printed_by_the_page():
    text = page()
    printed = {number for block in printed_blocks(text) for number in NUMBER.findall(block)}
    quoted = NUMBER.findall(prose(text))
    assert len(quoted) > 50  # the tables and the explanations quote values
    assert [number for number in quoted if number not in printed] == []


def test_the_number_pattern():
    assert NUMBER.findall("dz = [-0.4058 -0.7778], 1e-7, 0.5, t = 3, −1.5815") == ["0.4058", "0.7778", "1.5815"]


def reference_columns(text):
    """The code spans of the tables' "reference.py" column."""
    spans = []
    for table in re.findall(r"(?:^\|.*\|\n)+", prose(text), re.M):
        rows = [[cell.strip() for cell in row.strip().strip("|").split("|")] for row in table.splitlines()]
        if "reference.py" in rows[0]:
            column = rows[0].index("reference.py")
            spans += [span for row in rows[2:] for span in re.findall(r"`([^`]+)`", row[column])]
    return spans


def test_the_quoted_lines_are_the_reference_implementation_s():
    lines = [line.strip() for line in (ROOT / "tinygrad_seq" / "course" / "reference.py").read_text(encoding="utf-8").splitlines()]
    spans = reference_columns(page())
    assert len(spans) >= 25
    assert [span for span in spans if not any(span in line for line in lines)] == []
    for statement in ('dtanh = (1 - a_next ** 2) * da_next', 'dWaa += gradients["dWaa"]', '"dc_prev": dc * ft,',
                      'dft = dc * c_prev * ft * (1 - ft)', '"da_prev": da_next * (1 - ut) + d_reset_a * rt + dconcat[:n_a],'):
        assert statement in spans and any(line.startswith(statement) for line in lines)


def slug(heading):
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_links_lead_somewhere():
    text = page()
    links = re.findall(r"\]\(([^)\s]+)\)", text)
    assert {"bptt.md", "../demos/min_char_rnn.py", "notation.md#checking-your-own-course-implementation",
            "visualization.md#the-bptt-explorer"} <= set(links)
    for link in links:
        path, _, anchor = link.partition("#")
        target = (PAGE.parent / path).resolve()
        assert target.is_file(), link
        if anchor:
            headings = re.findall(r"^#+ (.+)$", target.read_text(encoding="utf-8"), re.M)
            assert anchor in {slug(h) for h in headings}, link
    assert "(bptt_by_hand.md)" in (ROOT / "docs" / "bptt.md").read_text(encoding="utf-8")


def test_the_fused_lstm_s_c_gradient_is_dc_next_and_the_transparent_one_dc():
    """What the LSTM section says: on the fused path c⟨t⟩ is read only by step t + 1 (a⟨t⟩ is made inside the
    step), so its .grad is dc_next; on the transparent path a⟨t⟩ = Γo ⊙ tanh(c⟨t⟩) reads it, and .grad is all of dc."""
    rng = np.random.default_rng(0)
    n_x, n_a, m = 3, 2, 2
    p = {key: rng.normal(0, 0.5, (n_a, n_a + n_x) if key[0] == "W" else (n_a, 1)) for key in ("Wf", "bf", "Wi", "bi", "Wc", "bc", "Wo", "bo")}
    xs, da = rng.standard_normal((2, m, n_x)), rng.standard_normal((2, m, n_a))  # two steps; da⟨t⟩ arrives at a⟨t⟩
    c_grads = {}
    for path in ("fused", "transparent"):
        cell = nn.load_course_parameters(nn.LSTMCell(n_x, n_a).double(), p)
        with ts.transparent() if path == "transparent" else contextlib.nullcontext():
            states, state = [], None
            for x in xs:
                state = cell(ts.Tensor(x), state)
                for part in state:
                    part.retain_grad()
                states.append(state)
            sum((a * ts.Tensor(seed)).sum() for (a, _), seed in zip(states, da)).backward()
        c_grads[path] = [c.grad for _, c in states]

    def through_a(t):
        """da_next ⊙ Γo⟨t⟩ ⊙ (1 − tanh(c⟨t⟩)²): da_next all of ∂L/∂a⟨t⟩, Γo⟨t⟩ = a⟨t⟩ / tanh(c⟨t⟩)."""
        a, c = states[t]
        return a.grad * a.numpy() / np.tanh(c.numpy()) * (1 - np.tanh(c.numpy()) ** 2)

    assert c_grads["fused"][1] is None  # nothing reads c⟨2⟩ on the fused path
    np.testing.assert_allclose(c_grads["transparent"][1], through_a(1), rtol=1e-9)  # dc⟨2⟩: dc_next = 0
    np.testing.assert_allclose(c_grads["fused"][0] + through_a(0), c_grads["transparent"][0], rtol=1e-9)  # dc_next + … = dc
    assert not np.allclose(c_grads["fused"][0], c_grads["transparent"][0])
