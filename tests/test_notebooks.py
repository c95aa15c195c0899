"""The notebooks under docs/notebooks run top to bottom in a real Jupyter kernel and show the explorer inline."""
import html
import json
import os
import re
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="the notebook tests need nbformat: pip install -e '.[dev]'")
nbclient = pytest.importorskip("nbclient", reason="the notebook tests need nbclient: pip install -e '.[dev]'")
pytest.importorskip("ipykernel", reason="the notebook tests need a Python kernel, ipykernel: pip install -e '.[dev]'")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "docs" / "notebooks").glob("*.ipynb"))
# Backward steps of each explorer a notebook shows, in order: the transparent 3-step RNN has 24, the fused LSTM 16.
EXPECTED_STEPS = {"bptt.ipynb": [24, 16]}
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the colours in a kernel's traceback
WHERE_FROM = "import tinygrad_seq; print(tinygrad_seq.__file__)"  # appended to the in-memory copy only


def explorer_pages(nb):
    """The pages of the explorers shown inline, in order, read back from their iframes' srcdoc."""
    pages = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            shown = output.get("data", {}).get("text/html", "")
            if '<iframe class="tinygrad-seq-explorer"' in shown:
                srcdoc = re.search(r'srcdoc="([^"]*)"', shown)
                assert srcdoc, "the explorer's iframe has no srcdoc"
                pages.append(html.unescape(srcdoc.group(1)))
    return pages


def page_data(page):
    payload = re.search(r"window\.EXPLORER_DATA = (.*?);</script>", page, re.S).group(1)
    return json.loads(payload.replace("<\\/", "</"))


def test_there_are_notebooks():
    assert NOTEBOOKS, "no notebook under docs/notebooks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_the_notebook_is_stored_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    assert nb.metadata.kernelspec.name == "python3"
    stored = [i for i, cell in enumerate(nb.cells)
              if cell.cell_type == "code" and (cell.outputs or cell.execution_count is not None)]
    assert not stored, f"{path.name}: cells {stored} keep outputs; clear them so diffs stay clean"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_the_notebook_runs_in_a_kernel_and_shows_the_explorer(path, tmp_path, monkeypatch):
    # the kernel imports this checkout's tinygrad_seq, not an installed one
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # where viz.explore(path=None) writes its pages
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(WHERE_FROM))
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()

    errors = [(i, output) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
              for output in cell.outputs if output.output_type == "error"]
    assert not errors, ANSI.sub("", "\n".join(f"cell {i}: {o.ename}: {o.evalue}\n" + "\n".join(o.traceback)
                                             for i, o in errors))
    imported = "".join(o.get("text", "") for o in nb.cells[-1].outputs).strip()
    assert Path(imported).resolve().is_relative_to(ROOT), f"the kernel imported {imported}, not this checkout's"

    pages = explorer_pages(nb)
    assert pages, f"{path.name} shows no explorer inline"
    for page in pages:
        assert 'id="step"' in page and 'id="grad"' in page and "window.EXPLORER_DATA" in page
    steps = [len(page_data(page)["backward"]) for page in pages]
    assert steps == EXPECTED_STEPS.get(path.name, steps)
