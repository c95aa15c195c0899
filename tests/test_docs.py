"""The documentation shows what the code really does."""
import contextlib
import importlib
import io
import re
import shutil
import traceback

import numpy as np
import pytest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_example_prints_what_the_readme_says():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = readme[readme.index("## Example"):]
    code, printed = re.findall(r"```\w*\n(.*?)```", example, re.S)[:2]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue().split() == printed.split()


def test_readme_quick_start_has_exactly_two_commands():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"^## Quick start\s*```\w*\n(.*?)```", readme, re.M | re.S).group(1)
    commands = [line for line in block.splitlines() if line.strip()]
    assert commands == ["pip install -e . && python demos/char_lm.py", 'pip install -e ".[dev]" && pytest']
    ci = (ROOT / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()


def test_custom_op_example_in_docs_runs():
    doc = (ROOT / "docs" / "autograd.md").read_text(encoding="utf-8")
    section = doc[doc.index("## Writing your own op"):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile("import tinygrad_seq as ts\n" + code, "docs/autograd.md", "exec"), namespace)
    assert namespace["Cube"].apply(namespace["x"]).tolist() == [1.0, -8.0]


def test_training_guide_example_trains_and_saves(tmp_path, monkeypatch):
    doc = (ROOT / "docs" / "training.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(.*?)```", doc, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(code, "docs/training.md", "exec"), namespace)
    assert namespace["loss"].item() < 0.1  # 6 tokens, 100 Adam steps: learned by heart
    assert (tmp_path / "model.npz").exists()


def python_blocks(doc):
    return re.findall(r"```python\n(.*?)```", (ROOT / "docs" / doc).read_text(encoding="utf-8"), re.S)


def test_min_gru_example_in_cells_guide(monkeypatch):
    import tinygrad_seq as ts

    monkeypatch.setitem(ts.settings.cell_registry, "min_gru", None)  # registered by the example, removed after
    namespace = {}
    block = next(b for b in python_blocks("cells.md") if "min_gru" in b)
    exec(compile(block, "docs/cells.md", "exec"), namespace)
    assert namespace["outputs"].shape == (5, 2, 8)
    assert not namespace["outputs"].numpy()[3:, 1].any()  # the second sequence has length 3
    assert type(ts.nn.make_cell("min_gru", 2, 2)) is namespace["MinGRUCell"]


def test_recurrent_guide_example():
    namespace = {}
    exec(compile(python_blocks("recurrent.md")[0], "docs/recurrent.md", "exec"), namespace)
    assert namespace["outputs"].shape == (6, 2, 8) and namespace["h_n"].shape == (4, 2, 4)
    forward_final, reverse_final = namespace["states"][0]  # the bidirectional layer: a pair
    assert forward_final.shape == reverse_final.shape == namespace["states"][1].shape == (2, 4)


def test_notation_guide_example_matches_the_course_equations():
    namespace = {}
    exec(compile(python_blocks("notation.md")[0], "docs/notation.md", "exec"), namespace)
    p, xt, a_prev, c_prev = (namespace[k] for k in ("parameters", "xt", "a_prev", "c_prev"))
    concat = np.concatenate([a_prev, xt])

    def sigmoid(v):
        return 1 / (1 + np.exp(-v))

    c_next = sigmoid(p["Wf"] @ concat + p["bf"]) * c_prev + sigmoid(p["Wi"] @ concat + p["bi"]) * np.tanh(p["Wc"] @ concat + p["bc"])
    a_next = sigmoid(p["Wo"] @ concat + p["bo"]) * np.tanh(c_next)
    np.testing.assert_allclose(namespace["a_next"], a_next, rtol=1e-12)


def test_visualization_guide_example(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(python_blocks("visualization.md")[0], "docs/visualization.md", "exec"), namespace)
    assert (tmp_path / "lstm.svg").exists() and (tmp_path / "lstm_steps.svg").exists()
    assert "layer 1" in (tmp_path / "lstm.svg").read_text()


def test_make_images_script_writes_every_picture(tmp_path):
    import runpy
    import sys

    from tinygrad_seq.viz import browser

    try:
        browser.find_chromium()
        unmade = set()
    except browser.BrowserNotFound:  # .ci/run installs Chromium; without it the explorer's screenshot is not taken
        unmade = {"explorer.png"}

    argv = sys.argv
    sys.argv = ["make_images.py", "--out", str(tmp_path)]
    try:
        runpy.run_path(str(ROOT / "docs" / "make_images.py"), run_name="__main__")
    finally:
        sys.argv = argv
    made = {p.name for p in tmp_path.iterdir()}
    documents = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    linked = {name for doc in documents for name in re.findall(r"images/([\w.]+)", doc.read_text(encoding="utf-8"))}
    assert linked - unmade == made, ("linked but not made", linked - made, "made but not used", made - linked)
    assert made | unmade == {p.name for p in (ROOT / "docs" / "images").iterdir()}  # every picture in the docs is made here
    steps = (tmp_path / "bptt_steps.txt").read_text(encoding="utf-8").splitlines()
    assert len(steps) == 24 and "Tanh a⟨3⟩" in steps[12] and "Tanh a⟨2⟩" in steps[15]  # as the walkthrough's table says


def test_language_model_guide_vocabulary_example(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    code = python_blocks("language_models.md")[0].replace('"vocab.json"', repr(str(tmp_path / "vocab.json")))
    namespace = {}
    exec(compile(code, "docs/language_models.md", "exec"), namespace)
    vocab = namespace["vocab"]
    assert vocab.encode("rex", bos=True, eos=True) == [3, 8, 11, 24, 2] and vocab.decode([8, 11, 24]) == "rex"


def section_code(doc, heading):
    """The first ```python block under ``heading`` in docs/``doc``."""
    text = (ROOT / "docs" / doc).read_text(encoding="utf-8")
    return re.search(r"```python\n(.*?)```", text[text.index(heading):], re.S).group(1)


def test_autograd_guide_aliasing_and_version_examples_run():
    for heading in ("### Which tensors share memory", "## In-place changes and versions"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(section_code("autograd.md", heading), "docs/autograd.md", "exec"), {})
        assert out.getvalue()
    assert "changed in place after Linear saved it" in out.getvalue()


DOCUMENTS = ["README.md", *(f"docs/{path.name}" for path in sorted((ROOT / "docs").glob("*.md")))]
FENCE = re.compile(r"^([ \t]*)```python[ \t]*\n(.*?)^\1```[ \t]*$", re.M | re.S)
NEEDS = re.compile(r"^# needs: (.+)$", re.M)
SKIP = re.compile(r"\A\s*# skip: (.+)$", re.M)


def printed_after(document, line):
    """The ```text block right after the python block whose fence is on ``line``: what it prints, or None."""
    text = (ROOT / document).read_text(encoding="utf-8")
    rest = text.split("\n", line)[-1]  # from the line after the opening fence
    after = rest.split("```", 1)[1] if "```" in rest else ""
    match = re.match(r"\s*\n(?:[^\n`]{1,20}\n\s*)?```text\n(.*?)```", after, re.S)  # "prints" may stand between
    return match.group(1) if match else None


def doc_examples(document):
    """[(line of the opening fence, code)] for every ```python block of ``document``, in order."""
    text = (ROOT / document).read_text(encoding="utf-8")
    blocks = []
    for match in FENCE.finditer(text):
        indent, body = match.group(1), match.group(2)
        code = "".join(line[len(indent):] if line.startswith(indent) else line for line in body.splitlines(True))
        blocks.append((text.count("\n", 0, match.start()) + 1, code))
    assert len(blocks) == text.count("```python"), f"{document}: a ```python fence the pattern does not see"
    return blocks


def needs(code):
    """The module names a block's ``# needs: torch, ...`` lines list."""
    return [name.strip() for names in NEEDS.findall(code) for name in names.split(",")]


def importable(name):
    try:
        importlib.import_module(name)
    except ImportError:
        return False
    return True


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_python_block_in_the_docs_runs(document, tmp_path, monkeypatch):
    """Every ```python block of README.md and docs/*.md runs, as a reader would run it.

    Each document's blocks run in order in one namespace (a later block may use
    what an earlier one made), with stdout captured, with the repository's root
    as working directory: a scratch copy of it (so "demos/data/dinos.txt"
    works and the files the examples write never land in the tree).
    Tracebacks point at the document's own lines.

    A ```text block right after a python block is what it prints: the
    test compares the two (whitespace aside).

    A block whose first line is ``# skip: <reason>`` (it needs a GPU, say) is
    skipped with that reason. A block with a line ``# needs: torch`` (module
    names, comma separated) runs only where those modules import; where one
    is missing, that block and the rest of the document are skipped, since
    later blocks may use what it made. Nothing else is added to the code the
    reader sees.
    """
    scratch = tmp_path / "repository"
    shutil.copytree(ROOT, scratch, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", ".whl", ".gl"))
    monkeypatch.chdir(scratch)
    import tinygrad_seq as ts

    monkeypatch.setattr(ts.settings, "backend", ts.get_backend())  # an example may switch backends
    monkeypatch.setattr(ts.settings, "cell_registry", dict(ts.settings.cell_registry))  # or register a cell
    namespace = {"__name__": "__main__"}
    skipped = []
    for index, (line, code) in enumerate(doc_examples(document)):
        reason = SKIP.match(code)
        if reason:
            skipped.append(f"block {index} (line {line}): {reason.group(1)}")
            continue
        missing = [name for name in needs(code) if not importable(name)]
        if missing:
            pytest.skip(f"{document}: python block {index} (line {line}) and the rest need {', '.join(missing)}")
        out, failure = io.StringIO(), None
        try:
            with contextlib.redirect_stdout(out):
                exec(compile("\n" * line + code, str(ROOT / document), "exec"), namespace)
        except (Exception, SystemExit) as error:  # an example that calls sys.exit fails too
            failure = f"{type(error).__name__}: {error}\n\n{traceback.format_exc()}"
        expected = printed_after(document, line)
        if not failure and expected is not None and out.getvalue().split() != expected.split():
            failure = f"printed something else than the ```text block after it:\n{out.getvalue()[-2000:]}"
        if failure:
            printed = out.getvalue()[-2000:]
            pytest.fail(f"{document}: python block {index} (counting from 0; its fence is on line {line}) failed: "
                        + failure + (f"\nit printed:\n{printed}" if printed else ""), pytrace=False)
    if skipped:
        pytest.skip(f"{document}: the other blocks ran; skipped " + "; ".join(skipped))


def test_doc_blocks_have_no_placeholders_and_the_skip_marker_reads_its_reason():
    placeholder = re.compile(r"^[^#]*(?:^|[=(,\s])\.\.\.(?:\s*$|[),])")
    for document in DOCUMENTS:
        for line, code in doc_examples(document):
            lines = [text for text in code.splitlines() if placeholder.search(text.split("  #")[0])]
            assert not lines, f"{document}: the python block at line {line} has a '...' placeholder: {lines}"
    assert SKIP.match("# skip: needs a GPU\nimport cupy").group(1) == "needs a GPU"
    assert SKIP.match("import cupy  # skip: no") is None

