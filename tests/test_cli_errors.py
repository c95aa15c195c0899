"""Every bad input to the command and the demos: one line on stderr, exit status 2, no traceback.

The parser's checks run in-process (the same code path as the command, fast);
what needs a fresh process (a bad TINYGRAD_SEQ_BACKEND fails the package's
import, a custom cell unknown to a new process) runs as ``python -m
tinygrad_seq`` with this checkout first on the path, all in parallel.
"""
import math
import os
import runpy
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tinygrad_seq as ts
from tinygrad_seq import nn
from tinygrad_seq.cli import main as cli
from tinygrad_seq.models import TrainConfig, Trainer, TrainingError
from tinygrad_seq.models.trainer import read_checkpoint
from tinygrad_seq.viz import GraphvizNotFound

from .conftest import cupy_unavailable_reason

ROOT = Path(__file__).resolve().parent.parent
DINOS = ROOT / "demos" / "data" / "dinos.txt"
DEMOS = ROOT / "demos"


def one_line(err: str) -> str:
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


# ---------------------------------------------------------------- the parser: every numeric option with its range

PARSER_CASES = [
    (["train", "--data", "x", "--clip", "-1"], "tinygrad-seq train: --clip must be > 0; got -1.0 (--no-clip turns clipping off)"),
    (["train", "--data", "x", "--clip", "0"], "tinygrad-seq train: --clip must be > 0; got 0.0 (--no-clip turns clipping off)"),
    (["train", "--data", "x", "--clip", "inf"], "tinygrad-seq train: --clip must be a finite number > 0; got inf (--no-clip turns clipping off)"),
    (["train", "--data", "x", "--batch-size", "0"], "tinygrad-seq train: --batch-size must be >= 1; got 0"),
    (["train", "--data", "x", "--embed", "0"], "tinygrad-seq train: --embed must be from 1 to 65,536; got 0"),
    (["train", "--data", "x", "--hidden", "-3"], "tinygrad-seq train: --hidden must be from 1 to 65,536; got -3"),
    (["train", "--data", "x", "--layers", "0"], "tinygrad-seq train: --layers must be from 1 to 1,024; got 0"),
    (["train", "--data", "x", "--seq-len", "0"], "tinygrad-seq train: --seq-len must be >= 1; got 0"),
    (["train", "--data", "x", "--epochs", "0"], "tinygrad-seq train: --epochs must be >= 1; got 0"),
    (["train", "--data", "x", "--epochs", "2.5"], "tinygrad-seq train: --epochs must be an integer >= 1; got '2.5'"),
    (["train", "--data", "x", "--dropout", "1"], "tinygrad-seq train: --dropout must be in [0, 1); got 1.0"),
    (["train", "--data", "x", "--dropout", "-0.1"], "tinygrad-seq train: --dropout must be in [0, 1); got -0.1"),
    (["train", "--data", "x", "--lr", "0"], "tinygrad-seq train: --lr must be > 0; got 0.0"),
    (["train", "--data", "x", "--lr", "nan"], "tinygrad-seq train: --lr must be a finite number > 0; got nan"),
    (["train", "--data", "x", "--lr", "fast"], "tinygrad-seq train: --lr must be a number > 0; got 'fast'"),
    (["train", "--data", "x", "--embed", "70000"], "tinygrad-seq train: --embed must be from 1 to 65,536; got 70000"),
    (["train", "--data", "x", "--layers", "1025"], "tinygrad-seq train: --layers must be from 1 to 1,024; got 1025"),
    (["train", "--data", "x", "--max-vocab", "4"], "tinygrad-seq train: --max-vocab must be >= 5; got 4"),
    (["train", "--data", "x", "--seed", "-1"], "tinygrad-seq train: --seed must be >= 0; got -1"),
    (["train", "--data", "x", "--encoding", "klingon"],
     "tinygrad-seq train: --encoding must be a text encoding Python knows (utf-8, latin-1, cp1252, ...); got 'klingon'"),
    (["train", "--data", "x", "--val-fraction", "1"], "tinygrad-seq train: --val-fraction must be in [0, 1); got 1.0"),
    (["sample", "--checkpoint", "c", "--temperature", "0"],
     "tinygrad-seq sample: --temperature must be > 0; got 0.0 (for the likeliest token every time, greedy, use --top-k 1)"),
    (["sample", "--checkpoint", "c", "--temperature", "inf"], "tinygrad-seq sample: --temperature must be a finite number > 0; got inf"),
    (["sample", "--checkpoint", "c", "--top-k", "0"], "tinygrad-seq sample: --top-k must be >= 1; got 0"),
    (["sample", "--checkpoint", "c", "-n", "0"], "tinygrad-seq sample: -n must be >= 1; got 0"),
    (["sample", "--checkpoint", "c", "--max-len", "0"], "tinygrad-seq sample: --max-len must be >= 1; got 0"),
    (["sample", "--checkpoint", "c", "--seed", "-2"], "tinygrad-seq sample: --seed must be >= 0; got -2"),
    (["sample", "--checkpoint", "c", "--prime", "-rex"],
     "tinygrad-seq sample: --prime: expected one argument (for a value that starts with '-', write it with '=': "
     "--prime=-abc); see tinygrad-seq sample --help"),
    (["train", "--dat", "-x.txt"],  # an abbreviation argparse accepts
     "tinygrad-seq train: --data: expected one argument (for a value that starts with '-', write it with '=': "
     "--data=-abc); see tinygrad-seq train --help"),
    (["train", "--data"], "tinygrad-seq train: --data: expected one argument; see tinygrad-seq train --help"),  # no value
    *[(["train", "--data", *after], "tinygrad-seq train: --data: expected one argument; see tinygrad-seq train --help")
      for after in (["--epochs", "3"], ["--epo", "3"], ["--epochs=3"])],  # another option, abbreviated or with its value
    (["sample", "--checkpoint", "c", "--prime", "-n", "3"],
     "tinygrad-seq sample: --prime: expected one argument; see tinygrad-seq sample --help"),
    (["sample", "--checkpoint", "c", "--prime", "rex", "--seed"],  # a value before, that starts with no '-'
     "tinygrad-seq sample: --seed: expected one argument; see tinygrad-seq sample --help"),
    (["sample", "--checkpoint", "c", "--prime", "ab\udcff\udcfec"],  # bytes a UTF-8 terminal could not decode
     "tinygrad-seq sample: --prime must be text in the terminal's encoding (utf-8); got the bytes b'\\xff\\xfe' at "
     "character 2, which it cannot decode (set the terminal to UTF-8, or type the text again)"),
    (["eval", "--checkpoint", "c", "--data", "x", "--encoding", "?"],
     "tinygrad-seq eval: --encoding must be a text encoding Python knows (utf-8, latin-1, cp1252, ...); got '?'"),
    (["graph", "--steps", "0"], "tinygrad-seq graph: --steps must be >= 1; got 0"),
    (["graph", "--layers", "0"], "tinygrad-seq graph: --layers must be >= 1; got 0"),
    (["graph", "--hidden", "0"], "tinygrad-seq graph: --hidden must be >= 1; got 0"),
    (["bptt", "--steps", "0"], "tinygrad-seq bptt: --steps must be >= 1; got 0"),
    (["bptt", "--layers", "-1"], "tinygrad-seq bptt: --layers must be >= 1; got -1"),
    (["bptt", "--hidden", "0"], "tinygrad-seq bptt: --hidden must be >= 1; got 0"),
    # the parser's own errors name the fix too
    (["train", "--data", "x", "--bogus"], "tinygrad-seq train: unrecognized arguments: --bogus; see tinygrad-seq train --help"),
    (["train", "--data", "x", "--clip", "1", "--no-clip"],
     "tinygrad-seq train: --no-clip: not allowed with argument --clip; see tinygrad-seq train --help"),
    (["train", "--data", "x", "--level", "byte"],
     "tinygrad-seq train: --level: invalid choice: 'byte' (choose from 'char', 'word'); see tinygrad-seq train --help"),
    (["sample"], "tinygrad-seq sample: the following arguments are required: --checkpoint; see tinygrad-seq sample --help"),
    (["--bogus"], "tinygrad-seq: unrecognized arguments: --bogus; see tinygrad-seq --help"),
    (["fly"], "tinygrad-seq: COMMAND: invalid choice: 'fly' (choose from 'graph', 'bptt', 'train', 'sample', 'eval', "
              "'check-course'); see tinygrad-seq --help"),
    ([], "tinygrad-seq: the following arguments are required: COMMAND, one of graph, bptt, train, sample, eval, "
         "check-course; see tinygrad-seq --help"),
    (["check-course"], "tinygrad-seq check-course: the following arguments are required: FILE; see tinygrad-seq check-course --help"),
]


@pytest.mark.parametrize("argv, expected", PARSER_CASES, ids=[" ".join(argv) for argv, _ in PARSER_CASES])
def test_parser_errors_are_one_line(capsys, argv, expected):
    with pytest.raises(SystemExit) as exit_info:
        cli(argv)
    assert exit_info.value.code == 2
    assert one_line(capsys.readouterr().err) == expected


def test_train_without_data_says_what_is_missing(capsys):
    assert cli(["train"]) == 2  # --data is optional for --resume, so the command, not the parser, asks for it
    assert one_line(capsys.readouterr().err) == (
        "tinygrad-seq train: error: --data is required: the text file to train on (or --resume a checkpoint)")


def test_valid_edges_are_accepted():
    from tinygrad_seq.cli import build_parser

    args = build_parser().parse_args(["train", "--data", "x", "--dropout", "0", "--max-vocab", "5", "--seed", "0", "--lr", "1e-9",
                                      "--val-fraction", "0"])
    assert (args.dropout, args.max_vocab, args.seed, args.lr, args.clip, args.no_clip) == (0.0, 5, 0, 1e-9, 5.0, False)
    assert args.val_fraction == 0.0 and build_parser().parse_args(["train", "--data", "x"]).val_fraction == 0.1
    assert build_parser().parse_args(["train", "--data", "x", "--encoding", "Latin-1"]).encoding == "iso8859-1"


# ---------------------------------------------------------------- bad input found by the library, in fresh processes


def register_cell(name):
    @nn.register_cell(name)
    class Custom(nn.RNNCell):
        pass

    return Custom


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Data files and checkpoints for the bad-input cases."""
    folder = tmp_path_factory.mktemp("bad_input")
    (folder / "latin1.txt").write_bytes("rex\ncafé\n".encode("latin-1"))
    (folder / "binary.dat").write_bytes(bytes(range(256)) * 4)
    (folder / "short.txt").write_text("hello world\n")
    (folder / "long.txt").write_text("\n".join(["abc"] * 20 + ["abcd" * 100_000]) + "\n")
    (folder / "unknown.txt").write_text("rexé\nréx\nßrex\n", encoding="utf-8")
    (folder / "my_cells.py").write_text(
        "from tinygrad_seq import nn\n\n@nn.register_cell('tiny_custom')\nclass TinyCustom(nn.RNNCell):\n    pass\n"
    )
    small = dict(data=str(DINOS), hidden=4, embed_dim=4, batch_size=256, epochs=1, lower=True)
    Trainer(TrainConfig(**small)).run(folder / "dinos", progress=False)
    register_cell("tiny_custom")
    try:
        Trainer(TrainConfig(**small, cell="tiny_custom")).run(folder / "custom", progress=False)
    finally:
        ts.settings.cell_registry.pop("tiny_custom")
    return folder


def needs_cupy_missing():
    return pytest.mark.skipif(cupy_unavailable_reason() is None, reason="CuPy works here")


PROCESS_CASES = {
    # id: (argv, extra environment, what the one line says)
    "clip -1": (["train", "--data", "{f}/short.txt", "--clip", "-1"], {}, "tinygrad-seq train: --clip must be > 0; got -1.0"),
    "unknown option": (["sample", "--checkpoint", "{f}/dinos", "--nucleus", "0.9"], {},
                       "tinygrad-seq sample: unrecognized arguments: --nucleus 0.9; see tinygrad-seq sample --help"),
    "data is a folder": (["train", "--data", "{f}"], {}, "tinygrad-seq train: error: data {f} is a folder; pass --data with a text file"),
    "stream text too short": (
        ["train", "--data", "{f}/short.txt", "--layout", "stream"], {},
        "tinygrad-seq train: error: the stream layout reads the text as --batch-size 32 parallel streams and needs at least "
        "33 tokens to train on (one per stream, and one more to predict); the training part of {f}/short.txt (90% of it) "
        "has 10: use more text or a smaller --batch-size"),
    "not utf-8": (["train", "--data", "{f}/latin1.txt"], {},
                  "tinygrad-seq train: error: data file {f}/latin1.txt is not valid utf-8: byte 0xe9 at offset 7 (line 2) "
                  "invalid continuation byte; pass the file's encoding, e.g. --encoding latin-1 or --encoding cp1252"),
    "a binary file": (["train", "--data", "{f}/binary.dat"], {},
                      "tinygrad-seq train: error: data file {f}/binary.dat looks like a binary file, not text: it holds NUL "
                      "bytes, and byte 0x80 at offset 128 (line 2) is not valid utf-8; give a text file"),
    "a line too long": (["train", "--data", "{f}/long.txt"], {}, "--layout stream"),
    "custom cell without --import (sample)": (
        ["sample", "--checkpoint", "{f}/custom"], {},
        "tinygrad-seq sample: error: the model's cell 'tiny_custom' is not registered here (registered: gru, lstm, rnn, "
        "simplified_gru); import the module that registers it first, as at train time (tinygrad-seq: --import MODULE_OR_FILE.py)"),
    "custom cell without --import (resume)": (["train", "--resume", "--out", "{f}/custom", "--data", str(DINOS)], {},
                                              "unknown cell 'tiny_custom'"),
    "TINYGRAD_SEQ_BACKEND=cupy": (["train", "--data", str(DINOS)], {"TINYGRAD_SEQ_BACKEND": "cupy"},
                                  "tinygrad-seq train: error: TINYGRAD_SEQ_BACKEND='cupy': backend 'cupy' was asked for but"),
    "TINYGRAD_SEQ_BACKEND=tpu": (["graph"], {"TINYGRAD_SEQ_BACKEND": "tpu"},
                                 "tinygrad-seq graph: error: TINYGRAD_SEQ_BACKEND='tpu': unknown backend 'tpu'"),
    "--backend cupy": (["--backend", "cupy", "sample", "--checkpoint", "{f}/dinos"], {}, "tinygrad-seq sample: error: backend 'cupy' was asked for but"),
    "check-course on a text file": (["check-course", "{f}/short.txt"], {},
                                    "tinygrad-seq check-course: error: {f}/short.txt: not a .py file; give the Python file"),
    "pdf without dot": (["graph", "--out", "{f}/graph.pdf"], {"PATH": ""},  # no dot to be found, installed or not
                        "tinygrad-seq graph: error: --out {f}/graph.pdf: PDF needs Graphviz's dot program, which is not on PATH"),
    "jpg": (["graph", "--out", "{f}/graph.jpg"], {},  # no SVG under another format's name
            "tinygrad-seq graph: error: --out {f}/graph.jpg: end the file's name in .svg, .png or .pdf, the format to write"),
}
CUPY_CASES = {"TINYGRAD_SEQ_BACKEND=cupy", "--backend cupy"}


def command_env(**changes):
    env = {**os.environ, **changes}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return env


@pytest.fixture(scope="module")
def process_results(files):
    """Every PROCESS_CASES command, run at once as `python -m tinygrad_seq ...`; id -> (status, stdout, stderr)."""
    running = {}
    for name, (argv, env, _) in PROCESS_CASES.items():
        if name in CUPY_CASES and cupy_unavailable_reason() is None:
            continue
        argv = [a.replace("{f}", str(files)) for a in argv]
        running[name] = subprocess.Popen([sys.executable, "-m", "tinygrad_seq", *argv], cwd=files, env=command_env(**env),
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results = {}
    for name, process in running.items():
        out, err = process.communicate(timeout=120)
        results[name] = process.returncode, out, err
    return results


@pytest.mark.parametrize("name", list(PROCESS_CASES))
def test_bad_input_is_one_line_exit_2(process_results, files, name):
    if name not in process_results:
        pytest.skip("CuPy works here")
    status, _, err = process_results[name]
    assert status == 2, err
    assert PROCESS_CASES[name][2].replace("{f}", str(files)) in one_line(err)


@pytest.mark.parametrize("argv, message", [
    (["eval", "--checkpoint", "{f}/dinos", "--data", "{f}"], "tinygrad-seq eval: error: data {f} is a folder"),
    (["eval", "--checkpoint", "{f}/dinos", "--data", "{f}/latin1.txt"], "is not valid utf-8: byte 0xe9 at offset 7 (line 2)"),
    (["eval", "--checkpoint", "{f}/custom", "--data", str(DINOS)], "the model's cell 'tiny_custom' is not registered here"),
])
def test_eval_reads_like_train(files, capsys, argv, message):
    assert cli([a.replace("{f}", str(files)) for a in argv]) == 2
    assert message.replace("{f}", str(files)) in one_line(capsys.readouterr().err)


BINARY = ("looks like a binary file, not text: it holds NUL bytes, and byte 0xd8 at offset 216 (line 2) is not valid "
          "utf-16; give a text file")  # its NULs fall anywhere: no advice for UTF-16 text without a byte-order mark


@pytest.mark.parametrize("text, encoding, message", [
    ("utf-16", "utf-8", "is not valid utf-8: byte 0xff at offset 0 (line 1) invalid start byte; it starts with the "
                        "UTF-16-LE byte-order mark: pass --encoding utf-16"),
    ("utf-32", "utf-8", "is not valid utf-8: byte 0xff at offset 0 (line 1) invalid start byte; it starts with the "
                        "UTF-32-LE byte-order mark: pass --encoding utf-32"),  # not UTF-16-LE's, which begins it
    ("utf-16", "latin-1", "read as iso8859-1 holds 9 NUL characters ('\\x00'), which text does not have (the first at "
                          "character 3, line 1); it starts with the UTF-16-LE byte-order mark: pass --encoding utf-16"),
    (None, "utf-16", BINARY),  # was "not valid utf-16 ... e.g. --encoding latin-1": no encoding read it as binary
    (None, "utf-32", "looks like a binary file, not text"),
    (None, "latin-1", "read as iso8859-1 holds 4 NUL characters ('\\x00'), which text does not have (the first at "
                      "character 0, line 1), and other control characters: it looks like a binary file; give a text file"),
    ("utf-16-le", "latin-1", "read as iso8859-1 holds 9 NUL characters ('\\x00'), which text does not have (the first "
                             "at character 1, line 1); they fall where UTF-16-LE text without a byte-order mark has "
                             "them: pass --encoding utf-16-le"),  # was "give a text file (or, ... utf-16-be)"
    ("utf-16-be", "utf-8", "is not valid utf-8: byte 0xe9 at offset 15 (line 2) invalid continuation byte; its NUL bytes "
                           "fall where UTF-16-BE text without a byte-order mark has them: pass --encoding utf-16-be"),
    pytest.param("utf-16-be", "utf-16", "has no byte-order mark, and its NUL bytes fall where UTF-16-BE text has them, "
                                        "but --encoding utf-16 reads it as UTF-16-LE: pass --encoding utf-16-be",
                 marks=pytest.mark.skipif(sys.byteorder != "little", reason="utf-16 reads text without a mark as "
                                                                            "big-endian here")),  # was "爀攀砀..."
    ("utf-32-le", "latin-1", "read as iso8859-1 holds 27 NUL characters ('\\x00'), which text does not have (the first "
                             "at character 1, line 1); they fall where UTF-32-LE text without a byte-order mark has "
                             "them: pass --encoding utf-32-le"),
])
def test_nul_bytes_are_binary_unless_a_byte_order_mark_or_their_places_say_utf_16_or_32(files, tmp_path, capsys, text, encoding, message):
    data = tmp_path / "data.txt"
    data.write_bytes(bytes(range(256)) * 4 if text is None else "rex\ncafé\n".encode(text))
    assert cli(["train", "--data", str(data), "--encoding", encoding, "--out", str(tmp_path / "out")]) == 2
    line = one_line(capsys.readouterr().err)
    assert line.startswith(f"tinygrad-seq train: error: data file {data} {message}"), line


TEXT = "rex\ncafé\n"


@pytest.mark.parametrize("raw, encoding, message", [
    (b"a\x00b\n" + TEXT.encode(), "utf-8", "read as utf-8 holds a NUL character ('\\x00'), which text does not have (at "
                                          "character 1, line 1); remove it, e.g. tr -d '\\000' < {data} > {clean}"),
    (TEXT.encode() + bytes(4096), "utf-8", "read as utf-8 holds 4,096 NUL characters ('\\x00'), which text does not "
                                           "have (the first at character 9, line 3); remove them, e.g. tr -d '\\000' < "
                                           "{data} > {clean}"),  # a block of NULs a crash left: most bytes, no UTF-16
    ("\ufeffab\x00c\n".encode("utf-16-le") + TEXT.encode("utf-16-le"), "utf-16",
     "read as utf-16 holds a NUL character ('\\x00'), which text does not have (at character 2, line 1); remove it: tr "
     "alone would also cut the NUL bytes of UTF-16's other characters, so convert the text to UTF-8 first, e.g. iconv "
     "-f UTF-16 -t UTF-8 {data} | tr -d '\\000' > {clean}, and pass --encoding utf-8"),  # was "write the file again"
])
def test_nul_characters_in_text_are_named_with_how_to_remove_them(tmp_path, raw, encoding, message):
    from tinygrad_seq.models.trainer import read_text

    data, clean = tmp_path / "my data.txt", tmp_path / "my data-clean.txt"  # a space: the command quotes the names
    data.write_bytes(raw)
    with pytest.raises(TrainingError) as refused:
        read_text(data, encoding)
    quoted = {"data": f"'{data}'", "clean": f"'{clean}'"}
    assert str(refused.value) == f"data file {data} {message.format(**quoted)}"  # no "utf-16-le or utf-16-be" advice
    command = str(refused.value).split("e.g. ")[1].split(", and pass")[0]
    if not shutil.which(command.split()[0]):
        pytest.skip(f"{command.split()[0]} is not installed here")
    subprocess.run(command, shell=True, check=True)  # the command given removes them, and only them
    expected = raw.decode(encoding).removeprefix("\ufeff").replace("\x00", "")
    assert read_text(clean, "utf-8") == expected


@pytest.mark.parametrize("text_encoding, encoding, message", [
    ("utf-16-be", "utf-16-le", "starts with the UTF-16-BE byte-order mark, but --encoding utf-16-le reads UTF-16-LE "
                               "text: pass --encoding utf-16, which reads the mark"),
    ("utf-16-be", "UTF-16LE", "starts with the UTF-16-BE byte-order mark, but --encoding UTF-16LE reads UTF-16-LE "
                              "text: pass --encoding utf-16, which reads the mark"),
    ("utf-16-be", "utf_16_le", "starts with the UTF-16-BE byte-order mark, but --encoding utf_16_le reads UTF-16-LE "
                               "text: pass --encoding utf-16, which reads the mark"),
    ("utf-16-le", "utf-16-be", "starts with the UTF-16-LE byte-order mark, but --encoding utf-16-be reads UTF-16-BE "
                               "text: pass --encoding utf-16, which reads the mark"),
    ("utf-32-be", "utf-32-le", "starts with the UTF-32-BE byte-order mark, but --encoding utf-32-le reads UTF-32-LE "
                               "text: pass --encoding utf-32, which reads the mark"),
    ("utf-32-le", "UTF-32BE", "starts with the UTF-32-LE byte-order mark, but --encoding UTF-32BE reads UTF-32-BE "
                              "text: pass --encoding utf-32, which reads the mark"),
    ("utf-32-le", "utf-16-le", "starts with the UTF-32-LE byte-order mark, but --encoding utf-16-le reads UTF-16-LE "
                               "text: pass --encoding utf-32, which reads the mark"),
])
def test_a_byte_order_mark_the_encoding_given_would_misread_is_refused(tmp_path, text_encoding, encoding, message):
    from tinygrad_seq.models.trainer import read_text

    data = tmp_path / "data.txt"
    data.write_bytes(("\ufeff" + TEXT).encode(text_encoding))  # was read as "\ufffe爀攀砀..." without a word
    with pytest.raises(TrainingError) as refused:
        read_text(data, encoding)
    assert str(refused.value) == f"data file {data} {message}"
    assert read_text(data, message.split("pass --encoding ")[1].split(",")[0]) == TEXT  # the fix named reads it


@pytest.mark.parametrize("order", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("given", ["utf-8", "latin-1"])
def test_utf_16_chinese_without_a_byte_order_mark_is_named_not_called_binary(tmp_path, order, given):
    """Chinese text holds NUL bytes only in its newlines and ASCII punctuation: too few to place them, but its
    bytes read as UTF-16 of one order and nothing else (they used to be called a binary file)."""
    from tinygrad_seq.models.trainer import read_text

    text = "机器学习是人工智能的一个分支。\n" * 40 + "深度学习。\n" * 10
    data = tmp_path / "data.txt"
    data.write_bytes(text.encode(order))
    with pytest.raises(TrainingError, match=rf"UTF-16-{order[-2:].upper()} text without a byte-order mark has them: "
                                            rf"pass --encoding {order}$") as refused:
        read_text(data, given)
    assert "binary" not in str(refused.value) and read_text(data, order) == text


@pytest.mark.parametrize("text_encoding, encoding", [
    ("utf-8", "utf-8"), ("utf-16-le", "utf-16-le"), ("utf-16-le", "UTF-16LE"), ("utf-16-be", "utf-16-be"),
    ("utf-32-be", "utf-32-be"), ("utf-32-le", "utf_32_le"), ("utf-16-be", "utf-16"), ("utf-32-le", "utf-32"),
])
def test_a_leading_byte_order_mark_is_no_character_of_the_text(tmp_path, text_encoding, encoding):
    from tinygrad_seq.models.trainer import load_corpus, read_text

    data, plain = tmp_path / "marked.txt", tmp_path / "plain.txt"
    data.write_bytes(("\ufeff" + TEXT).encode(text_encoding))  # what Notepad writes as "UTF-8 with BOM", and UTF-16
    plain.write_text(TEXT, encoding="utf-8")
    assert read_text(data, encoding) == TEXT  # was "\ufeffrex..." for all but utf-16 and utf-32
    corpus = load_corpus(TrainConfig(data=str(data), encoding=encoding, val_fraction=0.0))
    assert "\ufeff" not in corpus.vocab and corpus.vocab == load_corpus(TrainConfig(data=str(plain), val_fraction=0.0)).vocab
    data.write_bytes(("\ufeff\ufeff" + TEXT).encode(text_encoding))  # one mark is dropped, after utf-16's own
    assert read_text(data, encoding) == ("" if encoding in ("utf-16", "utf-32") else "\ufeff") + TEXT


def test_utf_16_text_with_its_byte_order_mark_trains_and_evaluates(tmp_path, capsys):
    from tinygrad_seq.models.trainer import load_corpus, read_text

    data = tmp_path / "dinos-utf16.txt"
    data.write_bytes(DINOS.read_text(encoding="utf-8").encode("utf-16"))  # a byte-order mark, then NULs in every character
    assert read_text(data, "utf-16") == DINOS.read_text(encoding="utf-8")
    assert load_corpus(TrainConfig(data=str(data), encoding="utf-16")).vocab == load_corpus(TrainConfig(data=str(DINOS))).vocab
    out = tmp_path / "out"
    assert cli(["train", "--data", str(data), "--encoding", "utf-16", "--epochs", "1", "--hidden", "4", "--embed", "4",
                "--batch-size", "256", "--out", str(out)]) == 0
    assert cli(["eval", "--checkpoint", str(out), "--data", str(data)]) == 0  # the encoding it was trained with
    assert "perplexity" in capsys.readouterr().out


def test_eval_asks_only_for_what_it_can_change_when_a_batch_is_too_large(files, tmp_path, capsys):
    from tinygrad_seq.models.trainer import check_batch_memory

    raised = ("tinygrad_seq.models.evaluate_file(checkpoint, data, max_batch_gb=...) in Python, on a machine that has the "
              "memory")
    long = tmp_path / "long.txt"
    long.write_text("rex\n" + "a" * 2_500_000 + "\n")
    assert cli(["eval", "--checkpoint", str(files / "dinos"), "--data", str(long)]) == 2
    assert one_line(capsys.readouterr().err).endswith(
        f"; eval scores each line whole, and takes no other limit: split the long lines of {long} into shorter ones (or "
        f"raise the limit with {raised})")  # as train's: "train on long text with --layout stream"
    lines = [[3] + [4] * 40 + [2]]  # a short line: what is too large is the checkpoint's, which no line split helps
    for vocabulary, hidden, what in ((100_000, 64, "vocabulary is"), (65, 10_000_000, "model is"),
                                     (100_000, 10_000_000, "model and vocabulary are")):
        with pytest.raises(TrainingError) as refused:
            check_batch_memory(lines, 1, vocabulary, 32, hidden, 1, 0.01, "words.txt", batch_option=False, command="eval")
        assert str(refused.value).endswith(
            f"; the checkpoint's {what} too large to score a batch of one line within the limit, and eval cannot change "
            f"them or the limit: evaluate with a raised limit, {raised}")  # was: "split the long lines of words.txt"
        assert "--" not in str(refused.value)  # eval has no --max-vocab, --hidden, --batch-size or --layout


def test_evaluate_file_takes_a_limit_other_than_the_runs(tmp_path):
    from tinygrad_seq.models import evaluate_file

    run = TrainConfig(data=str(DINOS), hidden=4, embed_dim=4, batch_size=256, epochs=1, lower=True, max_chars=2000,
                      max_batch_gb=0.005)
    Trainer(run).run(tmp_path / "small", progress=False)  # its batches need 4.5 MB
    long = tmp_path / "long.txt"
    long.write_text("rex\n" + "a" * 10_000 + "\n")  # 6.8 MB for its one long line
    with pytest.raises(TrainingError, match=r"\(the limit is 0.005 GB, TrainConfig.max_batch_gb\); .*split the long lines"):
        evaluate_file(tmp_path / "small", str(long))  # the run's limit
    loss, perplexity, _ = evaluate_file(tmp_path / "small", str(long), max_batch_gb=0.01)
    assert math.isfinite(loss) and perplexity > 1
    with pytest.raises(TrainingError, match=r"the limit is 1e-06 GB"):
        evaluate_file(tmp_path / "small", str(DINOS), max_batch_gb=1e-6)  # a lower one is taken too
    for bad in (0, -1.0, math.nan, "8", True):
        with pytest.raises(TrainingError, match=r"^max_batch_gb=.* \(must be > 0; inf checks nothing\)$"):
            evaluate_file(tmp_path / "small", str(long), max_batch_gb=bad)


def test_one_line_joins_the_lines_and_spaces_of_a_message():
    from tinygrad_seq.cli import one_line as line_of

    assert line_of(ValueError("no\n  CUDA device\t found ")) == "no CUDA device found"
    assert line_of("already\none line") == "already one line"


# ---------------------------------------------------------------- what a user does instead


def test_import_encoding_no_clip_and_notes_on_unknown_characters(files, capsys, tmp_path):
    out = tmp_path / "latin"
    assert cli(["train", "--data", str(files / "latin1.txt"), "--encoding", "latin-1", "--no-clip", "--epochs", "1",
                "--hidden", "4", "--out", str(out)]) == 0
    state = read_checkpoint(out)[0]
    assert state["config"]["encoding"] == "iso8859-1" and state["config"]["clip"] is None
    assert cli(["eval", "--checkpoint", str(out), "--data", str(files / "latin1.txt")]) == 0  # its training encoding
    capsys.readouterr()

    assert cli(["eval", "--checkpoint", str(files / "dinos"), "--data", str(files / "unknown.txt")]) == 0
    captured = capsys.readouterr()
    assert one_line(captured.err) == (
        f"note: {files / 'unknown.txt'}: 3 of 11 characters are not in the vocabulary and count as <unk>: 'é', 'ß'"
    )
    assert "perplexity" in captured.out
    assert cli(["sample", "--checkpoint", str(files / "dinos"), "-n", "2", "--seed", "0", "--prime", "réx"]) == 0
    captured = capsys.readouterr()
    assert one_line(captured.err) == "note: prime: 1 of 3 characters is not in the vocabulary and counts as <unk>: 'é'"
    assert [line.startswith("réx") for line in captured.out.splitlines()] == [True, True]


def test_a_custom_cell_samples_with_its_import(files):
    result = subprocess.run([sys.executable, "-m", "tinygrad_seq", "sample", "--checkpoint", str(files / "custom"), "-n", "2",
                             "--import", str(files / "my_cells.py")], capture_output=True, text=True, env=command_env(), timeout=120)
    assert result.returncode == 0 and result.stderr == "" and len(result.stdout.splitlines()) == 2


def test_the_library_refuses_too_long_lines_and_too_short_streams(files):
    with pytest.raises(TrainingError, match=r"the longest line of .* is 400,001 tokens long.* would need about [\d.]+ GB "
                                            r"\(the limit is 1 GB, TrainConfig.max_batch_gb\); train on long text with --layout stream"):
        Trainer(TrainConfig(data=str(files / "long.txt")))
    Trainer(TrainConfig(data=str(files / "long.txt"), max_batch_gb=1000.0, hidden=4, embed_dim=4))  # a bigger limit: accepted
    with pytest.raises(TrainingError, match=r"a batch of 32 x 26 steps \(the longest line of .*dinos.txt\) of a model this large "
                                            r"\(embed 32, hidden 65,536, 1 layer\) would need about 3.5 GB .*; train a smaller "
                                            r"model \(--hidden, --layers, --embed\) or a smaller --batch-size$"):
        Trainer(TrainConfig(data=str(DINOS), hidden=65_536))  # short lines: the model is the cause (was: use --layout stream)
    from tinygrad_seq.models.trainer import check_batch_memory

    lines = [[3] + [4] * 40 + [2]] * 100
    with pytest.raises(TrainingError, match=r"a batch of 32 x 41 steps \(the longest line of words.txt\) of a vocabulary of "
                                            r"100,000 tokens would need about 1.6 GB .*: its logits alone are 32 x 41 x 100,000 numbers; keep the frequent tokens with "
                                            r"--max-vocab 10000 or a smaller --batch-size$"):
        check_batch_memory(lines, 32, 100_000, 32, 64, 1, 1.0, "words.txt")  # was blamed on the lines' length
    with pytest.raises(TrainingError, match=r"a batch of 1 x 41 steps \(the longest held-out line of words.txt\) of a model "
                                            r"this large .*; train a smaller model \(--hidden, --layers, --embed\)$"):
        check_batch_memory(lines, 1, 65, 32, 2_000_000, 1, 1.0, "words.txt", part="held-out ", batch_option=False)
    with pytest.raises(TrainingError, match="needs at least 5 tokens to train on"):
        Trainer(TrainConfig(data=str(files / "short.txt"), layout="stream", batch_size=4, val_fraction=0.9))
    Trainer(TrainConfig(data=str(files / "short.txt"), layout="stream", batch_size=4))  # 10 tokens: enough for 4 streams


def test_held_out_lines_are_scored_in_batches_that_fit():
    from tinygrad_seq.models import LanguageModel
    from tinygrad_seq.models.trainer import batch_memory, held_out_batch_size

    model = LanguageModel(vocab_size=65, embed_dim=4, hidden_size=4)
    lines = [[3] + [4] * 999 + [2]] * 100
    one_line = batch_memory(1000, 1, 65, 4, 4, 1)
    assert held_out_batch_size(lines, model, 10.5 * one_line / 1e9) == 10  # was 64, past the limit
    assert held_out_batch_size(lines, model, 1000.0) == 64
    assert held_out_batch_size(lines, model, one_line / 2e9) == 1  # check_batch_memory refuses this line first


def test_eval_of_too_little_text_is_one_line(files, tmp_path, capsys):
    Trainer(TrainConfig(data=str(files / "short.txt"), layout="stream", batch_size=4, hidden=4, embed_dim=4,
                        epochs=1)).run(tmp_path / "stream", progress=False)
    (tmp_path / "one.txt").write_text("h")
    assert cli(["eval", "--checkpoint", str(tmp_path / "stream"), "--data", str(tmp_path / "one.txt")]) == 2  # was nan, status 0
    assert one_line(capsys.readouterr().err) == (
        f"tinygrad-seq eval: error: {tmp_path / 'one.txt'} holds 1 token; eval scores each token from the ones before it, "
        "so it needs a line or, for a stream checkpoint, at least two tokens")


def test_running_out_of_memory_is_one_line_and_other_os_errors_stay_whole(monkeypatch, capsys):
    import tinygrad_seq.cli as command

    def allocate(args):
        raise MemoryError("Unable to allocate 64.0 GiB for an array with shape (262144, 65536) and data type float32")

    monkeypatch.setattr(command, "run_sample", allocate)
    assert cli(["sample", "--checkpoint", "c"]) == 2
    assert one_line(capsys.readouterr().err) == (
        "tinygrad-seq sample: error: out of memory: Unable to allocate 64.0 GiB for an array with shape (262144, 65536) "
        "and data type float32; ask for fewer or shorter samples (-n, --max-len)")

    def broken(args):
        raise OSError("a socket closed")  # names no path and is no full disk: a bug, shown with its traceback

    monkeypatch.setattr(command, "run_sample", broken)
    with pytest.raises(OSError, match="a socket closed"):
        cli(["sample", "--checkpoint", "c"])


def test_batch_memory_estimate_covers_what_a_step_allocates():
    """The estimate is at least what a training step of an LSTM language model really allocates (tracemalloc)."""
    import tracemalloc

    import tinygrad_seq as ts

    if ts.get_backend().name != "numpy":
        pytest.skip("tracemalloc sees host memory only; the estimate is calibrated on the NumPy backend")

    import numpy as np

    from tinygrad_seq import optim
    from tinygrad_seq.models import LanguageModel
    from tinygrad_seq.models.trainer import batch_memory
    from tinygrad_seq.nn import functional as F

    steps, batch, sizes = 100, 16, dict(vocab_size=60, embed_dim=8, hidden=32, layers=2)
    model = LanguageModel(sizes["vocab_size"], sizes["embed_dim"], "lstm", sizes["hidden"], sizes["layers"])
    opt = optim.Adam(model.parameters())
    ids = np.random.default_rng(0).integers(4, sizes["vocab_size"], (steps + 1, batch))
    tracemalloc.start()
    try:
        logits, _ = model(ids[:-1], lengths=np.full(batch, steps))
        loss = F.cross_entropy(logits, ids[1:])
        loss.backward()
        opt.step()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    estimate = batch_memory(steps, batch, **sizes)
    assert peak <= estimate <= 2 * peak


# ---------------------------------------------------------------- the demos


@pytest.mark.parametrize("demo", sorted(p.name for p in DEMOS.glob("*.py") if p.name != "common.py"))
def test_every_demo_imports_common_first_and_runs_through_it(demo):
    source = (DEMOS / demo).read_text(encoding="utf-8")
    imports = [line for line in source.splitlines() if line.startswith(("import ", "from "))]
    first_library_import = next(i for i, line in enumerate(imports) if "tinygrad_seq" in line)
    assert "import common" in imports[:first_library_import]  # a bad TINYGRAD_SEQ_BACKEND: one line, not a traceback
    assert source.rstrip().endswith('if __name__ == "__main__":\n    common.run(main)')


@pytest.mark.parametrize("demo, args, env", [
    ("sentiment.py", [], {"TINYGRAD_SEQ_BACKEND": "cupy"}),
    ("char_lm.py", ["--backend", "cupy"], {}),
])
@needs_cupy_missing()
def test_demos_without_cupy_say_so_in_one_line(tmp_path, demo, args, env):
    result = subprocess.run([sys.executable, str(DEMOS / demo), *args], capture_output=True, text=True, env=command_env(**env), timeout=120, cwd=tmp_path)
    assert result.returncode == 2
    assert one_line(result.stderr).startswith(f"{demo}: error: ") and "backend 'cupy' was asked for" in result.stderr


def test_demo_arguments_are_checked_in_one_line(monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(DEMOS))
    monkeypatch.setattr(sys, "argv", ["char_lm.py"])
    demo = runpy.run_path(str(DEMOS / "char_lm.py"))
    with pytest.raises(SystemExit) as exit_info:
        demo["main"](["--epochs", "0"])
    assert exit_info.value.code == 2 and one_line(capsys.readouterr().err) == "char_lm.py: --epochs must be >= 1; got 0"


@pytest.mark.parametrize("error", [
    TrainingError("data file x not found; pass --data with a text file"),
    GraphvizNotFound("render: format 'png' needs Graphviz's dot program,\nwhich is not on PATH"),
    ts.BackendError("backend 'cupy' was asked for but CuPy is not installed"),
])
def test_common_run_turns_library_errors_into_one_line(monkeypatch, capsys, error):
    monkeypatch.syspath_prepend(str(DEMOS))
    monkeypatch.setattr(sys, "argv", ["some_demo.py"])
    import common

    def main():
        raise error

    with pytest.raises(SystemExit) as exit_info:
        common.run(main)
    assert exit_info.value.code == 2
    assert one_line(capsys.readouterr().err) == f"some_demo.py: error: {' '.join(str(error).split())}"
