"""The tinygrad-seq command."""
import subprocess
import sys

import pytest

import tinygrad_seq as ts
from tinygrad_seq.cli import main


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"tinygrad-seq {ts.__version__}"


def test_help_lists_options(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "usage: tinygrad-seq" in out and "--backend" in out


def test_unknown_backend_is_rejected(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--backend", "tpu"])
    assert exit_info.value.code == 2 and "invalid choice: 'tpu'" in capsys.readouterr().err


def test_runs_as_a_module():
    result = subprocess.run([sys.executable, "-m", "tinygrad_seq", "--version"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == f"tinygrad-seq {ts.__version__}"
