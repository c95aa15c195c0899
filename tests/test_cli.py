"""The tinygrad-seq command."""
import os
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


def test_a_reader_that_stops_early_ends_the_command_quietly(tmp_path):
    """`tinygrad-seq bptt | head -1`: once the pipe's reader is gone, the command stops with SIGPIPE's status, no traceback."""
    process = subprocess.Popen([sys.executable, "-m", "tinygrad_seq", "bptt", "--steps", "2", "--out", str(tmp_path / "frames")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    process.stdout.close()  # as head does once it has its line
    _, err = process.communicate(timeout=120)
    assert process.returncode == 141 and err.decode() == ""


def test_a_command_that_fails_after_its_reader_left_keeps_its_status_and_says_why_in_one_line(tmp_path):
    """`tinygrad-seq bptt | head -1`: a line is printed, then the first frame cannot be written (a folder is in its way)."""
    (tmp_path / "frames" / "step_001.svg").mkdir(parents=True)
    buffered = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}  # the line waits in stdout
    process = subprocess.Popen([sys.executable, "-m", "tinygrad_seq", "bptt", "--steps", "2", "--out", "frames"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path, env=buffered)
    process.stdout.close()
    _, err = process.communicate(timeout=120)
    assert process.returncode == 2  # not 120: Python's flush at exit would have hit the closed pipe
    assert err.decode() == ("tinygrad-seq bptt: error: [Errno 21] render: a folder, not a file name; give a file to write, "
                            "e.g. frames/step_001.svg/graph.svg: 'frames/step_001.svg'\n")


def test_a_folder_where_a_file_goes_and_a_file_where_a_folder_goes_are_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "frames").mkdir()
    (tmp_path / "notes.txt").write_text("mine")
    assert main(["graph", "--out", "frames"]) == 2  # was: wrote frames.svg beside the folder
    assert capsys.readouterr().err == ("tinygrad-seq graph: error: [Errno 21] render: a folder, not a file name; give a "
                                       "file to write, e.g. frames/graph.svg: 'frames'\n")
    assert main(["bptt", "--html", "frames"]) == 2
    assert "explore: a folder, not a file name; give a file to write, e.g. frames/bptt.html" in capsys.readouterr().err
    assert main(["bptt", "--out", "notes.txt"]) == 2
    assert capsys.readouterr().err == ("tinygrad-seq bptt: error: --out notes.txt is a file: bptt writes one SVG per step "
                                       "into a folder; name a folder (new or existing), or use --html PATH for one page\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frames", "notes.txt"] and not any((tmp_path / "frames").iterdir())


def test_only_an_os_error_about_a_path_is_a_one_line_error(monkeypatch, capsys):
    import tinygrad_seq.cli as cli

    def unwritable(args):
        raise PermissionError(13, "Permission denied", "frames/step_001.svg")

    def broken(args):  # an OSError with no path: a bug (a device, a library), shown whole
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(cli, "run_graph", unwritable)
    assert main(["graph"]) == 2
    assert capsys.readouterr().err == "tinygrad-seq graph: error: [Errno 13] Permission denied: 'frames/step_001.svg'\n"
    monkeypatch.setattr(cli, "run_graph", broken)
    with pytest.raises(OSError, match="Input/output error"):
        main(["graph"])

    def full(args):  # no file named, but the fix is plain: free space
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(cli, "run_graph", full)
    assert main(["graph"]) == 2 and capsys.readouterr().err == "tinygrad-seq graph: error: [Errno 28] No space left on device\n"


def test_a_graph_too_large_to_draw_is_one_line(tmp_path, monkeypatch, capsys):
    import importlib

    from tinygrad_seq.viz import images

    def give_up(source):
        raise images.RenderError("render: the in-process Graphviz could not lay out this graph of 9 edges (Trap: ...)")

    monkeypatch.setattr(importlib.import_module("tinygrad_seq.viz.render"), "render_svg", give_up)  # what render() calls
    assert main(["graph", "--steps", "2", "--out", str(tmp_path / "g.svg")]) == 2
    assert capsys.readouterr().err == (
        "tinygrad-seq graph: error: render: the in-process Graphviz could not lay out this graph of 9 edges (Trap: ...)\n")


def test_every_option_with_a_default_says_it_in_its_help():
    import argparse

    from tinygrad_seq.cli import build_parser

    (commands,) = [action for action in build_parser()._actions if isinstance(action, argparse._SubParsersAction)]
    silent = [(command, action.option_strings[0]) for command, parser in commands.choices.items() for action in parser._actions
              if action.option_strings and not any(action.default is empty for empty in (None, False, argparse.SUPPRESS))
              and action.default not in ([], "")  # identity above: a default of 0 is one to say
              and "default" not in (action.help or "")]
    assert silent == []


def test_a_closed_pipe_in_process_returns_its_status_and_leaves_the_callers_stdout(monkeypatch, tmp_path):
    class ClosedPipe:  # a stdout with no file descriptor, whose reader has gone
        def write(self, text):
            raise BrokenPipeError(32, "Broken pipe")

        def flush(self):
            pass

        def fileno(self):
            raise OSError("no file descriptor")

    pipe, before = ClosedPipe(), os.fstat(1)
    monkeypatch.setattr(sys, "stdout", pipe)
    assert main(["bptt", "--steps", "2", "--out", str(tmp_path / "frames")]) == 141
    after = os.fstat(1)  # the process's own descriptor 1 was not pointed at the null device behind the caller's back
    assert sys.stdout is pipe and (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)


def test_options_the_run_does_not_use_are_notes_naming_the_one_that_would(tmp_path, capsys):
    import warnings

    (tmp_path / "two.txt").write_text("abc\nabd\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # the library's warning, with its Python fix, would raise here
        assert main(["train", "--data", str(tmp_path / "two.txt"), "--hidden", "4", "--epochs", "1", "--dropout", "0.5",
                     "--seq-len", "8", "--out", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "note: --dropout 0.5 does nothing with one layer: it acts between stacked layers; add --layers 2 or more" in err
    assert "note: --seq-len 8 does nothing in the lines layout, which reads each line whole" in err  # was silent
    assert main(["train", "--resume", "--out", str(tmp_path / "run"), "--epochs", "2"]) == 0
    assert "note:" not in capsys.readouterr().err  # nothing typed that the run does not use
