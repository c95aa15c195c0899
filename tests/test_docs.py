"""The documentation shows what the code really does."""
import contextlib
import io
import re
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
    assert commands == ["pip install -e . && python demos/autograd_tour.py", 'pip install -e ".[dev]" && pytest']
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
