"""What a user saved is never lost: refusals, atomic saves under crashes, verified loads, locks, resume."""
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import time
import warnings
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq import settings, storage
from tinygrad_seq.cli import main as cli
from tinygrad_seq.models import TrainConfig, Trainer, TrainingError, load_model
from tinygrad_seq.models.checkpoint import open_checkpoint
from tinygrad_seq.storage import CheckpointError

ROOT = Path(__file__).resolve().parent.parent
DINOS = ROOT / "demos" / "data" / "dinos.txt"


def small_config(data=DINOS, **changes):
    settings = dict(data=str(data), cell="gru", embed_dim=4, hidden=8, batch_size=64, epochs=1, lr=1e-2, max_chars=3000)
    return TrainConfig(**{**settings, **changes})


def snapshot(folder):
    """name -> bytes of every file under ``folder`` (to show that nothing changed)."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(Path(folder).rglob("*")) if p.is_file()}


def rewrite_manifest(folder):
    """Recompute the manifest, as a tool that rewrote the files would: checks past the SHA-256 then run."""
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != storage.MANIFEST}
    manifest = {name: {"size": len(data), "sha256": storage._sha256(data)} for name, data in sorted(files.items())}
    record = {"kind": storage.MANIFEST_KIND, "format": storage.FORMAT, "files": manifest,
              "checksum": storage._manifest_checksum(manifest)}
    (folder / storage.MANIFEST).write_text(json.dumps(record))


@pytest.fixture
def trained(tmp_path):
    """A finished one-epoch run and its checkpoint folder."""
    trainer = Trainer(small_config())
    trainer.run(tmp_path / "ckpt", progress=False)
    return trainer, tmp_path / "ckpt"


def one_line_error(capsys, argv):
    code = cli(argv)
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


# ---------------------------------------------------------------- --out never replaces what is not ours


@pytest.mark.parametrize("what", ["the data file", "a file", "a folder with files", "a nested folder"])
def test_out_refuses_anything_that_is_not_a_checkpoint(tmp_path, capsys, what):
    data = tmp_path / "names.txt"
    data.write_text(DINOS.read_text()[:3000])
    if what == "the data file":
        out = data
    elif what == "a file":
        out = tmp_path / "notes.txt"
        out.write_text("my notes")
    else:
        out = tmp_path / "results"
        (out / "sub").mkdir(parents=True)
        (out / "paper.tex").write_text("\\section{Results}")
        if what == "a nested folder":
            (out / "sub" / "run.log").write_text("loss 1.2")
    before = snapshot(tmp_path)
    err = one_line_error(capsys, ["train", "--data", str(data), "--epochs", "1", "--hidden", "8", "--out", str(out)])
    assert str(out) in err and "nothing was written" in err
    assert snapshot(tmp_path) == before  # nothing touched, the data file included


def test_an_existing_checkpoint_is_continued_or_replaced_only_when_asked(trained, tmp_path, capsys):
    _, out = trained
    before = snapshot(out)
    err = one_line_error(capsys, ["train", "--data", str(DINOS), "--epochs", "1", "--hidden", "8", "--out", str(out)])
    assert "holds a checkpoint of another run; continue it with --resume or replace it with --overwrite" in err
    assert snapshot(out) == before
    with pytest.raises(CheckpointError, match="holds a checkpoint of another run"):
        Trainer(small_config()).save(out)  # the library refuses too, not only the CLI
    assert snapshot(out) == before
    replacement = Trainer(small_config(hidden=6))
    replacement.save(out, overwrite=True)
    assert open_checkpoint(out).state["run_id"] == replacement.run_id


def test_overwrite_never_replaces_a_folder_that_only_looks_like_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "site"
    out.mkdir()
    (out / "manifest.json").write_text('{"name": "my web app"}')
    (out / "state.json").write_text("{}")
    before = snapshot(out)
    err = one_line_error(capsys, ["train", "--data", str(DINOS), "--out", str(out), "--overwrite"])
    assert "a folder with 2 entries that is not a checkpoint" in err
    assert snapshot(out) == before


@pytest.mark.parametrize("how", ["resume", "overwrite", "Trainer.save", "during the run"])
def test_files_of_yours_in_a_checkpoint_folder_are_kept_by_every_save(trained, tmp_path, capsys, how):
    """A save replaces the checkpoint folder: what you had put in it was lost at the next save."""
    trainer, out = trained
    yours = {"notes.txt": "lr 1e-2 looked best", "samples/s1.txt": "a dinosaur", ".DS_Store": "a file browser's"}

    def put_yours(*_):
        for name, text in yours.items():
            (out / name).parent.mkdir(exist_ok=True)
            (out / name).write_text(text)

    run_id = open_checkpoint(out).state["run_id"]
    if how == "during the run":  # dropped in while training: the next epoch's save keeps them
        trainer.config.epochs = 3
        assert trainer.run(out, progress=False, on_epoch_end=lambda t: t.epoch == 2 and put_yours())
    else:
        put_yours()
        if how == "Trainer.save":
            trainer.save(out)
        else:
            more = ["--resume", "--epochs", "2"] if how == "resume" else ["--data", str(DINOS), "--hidden", "6", "--epochs", "1", "--overwrite"]
            assert cli(["train", "--out", str(out), *more]) == 0, capsys.readouterr().err
    for name, text in yours.items():
        assert (out / name).read_text() == text, name
    state = open_checkpoint(out).state  # and the checkpoint is the new one
    assert state["epoch"] == {"during the run": 3, "resume": 2}.get(how, 1)
    assert (state["run_id"] == run_id) == (how != "overwrite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # nothing left beside it


def test_a_folder_of_yours_with_a_state_json_is_not_taken_for_a_checkpoint(tmp_path, capsys):
    out = tmp_path / "project"
    (out / "src").mkdir(parents=True)
    (out / "state.json").write_text('{"format": 2}')  # what marked a checkpoint before manifests
    (out / "paper.tex").write_text("\\section{Results}")
    before = snapshot(out)
    err = one_line_error(capsys, ["train", "--data", str(DINOS), "--out", str(out), "--overwrite"])
    assert ("holds paper.tex, src/ beside files named as a checkpoint's, but no manifest of this library's: it may not be "
            "a checkpoint; nothing was written" in err), err
    assert snapshot(out) == before


def test_the_current_folder_is_never_a_destination(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    err = one_line_error(capsys, ["train", "--data", str(DINOS), "--out", "."])
    assert "is the current folder or contains it" in err
    Trainer(small_config()).save("ckpt")
    monkeypatch.chdir(tmp_path / "ckpt")
    before = snapshot(tmp_path)
    err = one_line_error(capsys, ["train", "--resume", "--out", ".", "--epochs", "2"])
    assert "is the current folder or contains it" in err and snapshot(tmp_path) == before
    err = one_line_error(capsys, ["train", "--data", str(DINOS), "--out", ".."])
    assert "is the current folder or contains it" in err


def test_the_library_checks_a_config_as_the_command_line_does():
    from tinygrad_seq.models import TrainingError

    with pytest.raises(TrainingError, match=r"TrainConfig: hidden=0 \(must be an integer from 1 to 65,536\); lr=nan .*; clip=-1"):
        TrainConfig(data="x.txt", hidden=0, lr=float("nan"), clip=-1.0)
    assert TrainConfig(data="x.txt", clip=None).clip is None
    with pytest.raises(TrainingError, match=r"TrainConfig: layout='pages' \(must be one of 'lines', 'stream'\)"):
        TrainConfig(data="x.txt", layout="pages")  # refused where the config is made, before anything reads the layout
    assert TrainConfig(data="x.txt", layout="stream").is_stream and not TrainConfig(data="x.txt").is_stream
    with pytest.raises(TrainingError, match=r"TrainConfig: hidden=True \(must be an integer from 1 to 65,536\)"):
        TrainConfig(data="x.txt", hidden=True)
    # what a run may save is what a checkpoint may hold: a config past those bounds is refused before training
    with pytest.raises(TrainingError, match=r"TrainConfig: embed_dim=70000 \(must be an integer from 1 to 65,536\); "
                                            r"max_vocab=4 \(must be >= 5: .*\); max_chars=2.5 \(must be an integer >= 0: .*\); "
                                            r"max_batch_gb=nan \(must be > 0; inf checks nothing\)$"):
        TrainConfig(data="x.txt", embed_dim=70000, max_vocab=4, max_chars=2.5, max_batch_gb=float("nan"))
    # each was accepted, then failed later, did something else, or (max_chars=-5) cut the end of the data off
    with pytest.raises(TrainingError, match=r"^TrainConfig: level='chars' \(must be one of 'char', 'word'\); optimizer='adamw' "
                                            r"\(must be one of 'adam', 'sgd', 'rmsprop', 'adagrad'\); lower='no' \(must be True or False\); "
                                            r"encoding='utf-9' \(must be the name of a text encoding .*\); max_chars=-5 \(must be an integer "
                                            r">= 0: .*; None or 0 for all\); max_batch_gb=True \(must be > 0; inf checks nothing\)$"):
        TrainConfig(data="x.txt", level="chars", optimizer="adamw", lower="no", encoding="utf-9", max_chars=-5, max_batch_gb=True)
    # what earlier versions saved still loads: a cap on the vocabulary past any real one, no memory check at all
    kept = TrainConfig(data="x.txt", max_vocab=10**8, max_batch_gb=math.inf, max_chars=0)
    assert (kept.max_vocab, kept.max_batch_gb, kept.max_chars) == (10**8, math.inf, 0)
    sized = TrainConfig(data="x.txt", hidden=np.int64(8), seed=np.int32(3))  # sizes read from arrays count
    assert type(sized.hidden) is int and type(sized.seed) is int  # and are saved as JSON's integers
    json.dumps(asdict(sized))


def test_a_demos_output_folder_given_as_a_checkpoint_names_the_checkpoint_inside(tmp_path):
    """`tinygrad-seq sample --checkpoint char_lm_out` said only "not a checkpoint folder": the demo keeps it in
    char_lm_out/checkpoint."""
    from tinygrad_seq.storage import CheckpointError, read_checkpoint_files

    (tmp_path / "checkpoint").mkdir()
    (tmp_path / "checkpoint" / "manifest.json").write_text("{}")
    with pytest.raises(CheckpointError, match=rf"is not a checkpoint folder \(no manifest\.json\); the one in it is "
                                              rf"{re.escape(str(tmp_path / 'checkpoint'))}$"):
        read_checkpoint_files(tmp_path)


def test_an_empty_folder_is_a_fine_destination(tmp_path):
    (tmp_path / "empty").mkdir()
    trainer = Trainer(small_config())
    trainer.save(tmp_path / "empty")
    model, vocab, _ = load_model(tmp_path / "empty")
    assert model.config["hidden_size"] == 8
    # both know the vocabulary they were trained with, which sampling checks (tests/test_language_model.py)
    assert trainer.model.vocabulary is trainer.corpus.vocab and model.vocabulary is vocab and vocab == trainer.corpus.vocab


def test_out_in_a_folder_that_cannot_be_written_is_refused_before_training(tmp_path, capsys):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    err = one_line_error(capsys, ["train", "--data", str(DINOS), "--out", str(blocker / "ckpt")])
    assert "is a file, not a folder" in err
    if os.geteuid() != 0:  # root writes anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o555)
        err = one_line_error(capsys, ["train", "--data", str(DINOS), "--out", str(locked / "ckpt")])
        assert "is not writable" in err


def test_a_run_saves_over_its_own_checkpoint_and_demos_can_overwrite_theirs(tmp_path):
    trainer = Trainer(small_config(epochs=2))
    assert trainer.run(tmp_path / "ckpt", progress=False)  # saves twice over its own checkpoint
    again = Trainer(small_config(epochs=1))
    again.run(tmp_path / "ckpt", progress=False, overwrite=True)  # what a demo rerun into its folder does
    assert open_checkpoint(tmp_path / "ckpt").state["run_id"] == again.run_id


# ---------------------------------------------------------------- a save interrupted anywhere


class FailingFileSystem(storage.FileSystem):
    """Raises KeyboardInterrupt at the k-th file-system call of a save (a second Ctrl-C at that instant)."""

    def __init__(self, fail_at):
        self.calls, self.fail_at = 0, fail_at

    def __getattribute__(self, name):
        attribute = super().__getattribute__(name)
        if name in ("write_bytes", "mkdir", "rename", "rmtree", "unlink", "fsync_dir"):
            def call(*args):
                self.calls += 1
                if self.calls == self.fail_at:
                    raise KeyboardInterrupt
                return attribute(*args)
            return call
        return attribute


def test_a_save_interrupted_at_every_file_system_call_leaves_a_loadable_checkpoint(tmp_path, monkeypatch):
    out = tmp_path / "ckpt"
    trainer = Trainer(small_config())
    trainer.save(out)  # the previous checkpoint: batch 0
    counting = FailingFileSystem(fail_at=0)
    monkeypatch.setattr(storage, "fs", counting)
    trainer.batch = 1
    trainer.save(out)
    total = counting.calls
    assert total >= 8  # mkdir, 7 writes, fsyncs, two renames, one removal
    for k in range(1, total + 1):
        trainer.batch = 1 + k  # the new checkpoint's mark
        previous = open_checkpoint(out).state["batch"]
        monkeypatch.setattr(storage, "fs", FailingFileSystem(fail_at=k))
        try:
            trainer.save(out)
        except KeyboardInterrupt:
            pass
        assert open_checkpoint(out).state["batch"] in (previous, trainer.batch), f"interrupted at call {k}"
        assert load_model(out)[0].config["hidden_size"] == 8
    monkeypatch.setattr(storage, "fs", storage.FileSystem())
    trainer.batch = 999
    trainer.save(out)  # leftovers of all those interrupted saves never make a later save fail
    assert open_checkpoint(out).state["batch"] == 999
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # and they are cleaned up


def test_files_of_yours_survive_a_save_interrupted_at_every_file_system_call(tmp_path, monkeypatch):
    """Each is moved into the new checkpoint by one rename: in one folder or the other at every instant, and the next
    save finishes a move that was cut short."""
    out = tmp_path / "ckpt"
    trainer = Trainer(small_config())
    trainer.save(out)
    for name in ("notes.txt", "more.txt"):
        (out / name).write_text(name)
    (out / "samples").mkdir()
    (out / "samples" / "s1.txt").write_text("s1")
    counting = FailingFileSystem(fail_at=0)
    monkeypatch.setattr(storage, "fs", counting)
    trainer.save(out)
    for k in range(1, counting.calls + 1):
        monkeypatch.setattr(storage, "fs", FailingFileSystem(fail_at=k))
        try:
            trainer.save(out)
        except KeyboardInterrupt:
            pass
        monkeypatch.setattr(storage, "fs", storage.FileSystem())
        trainer.save(out)  # finishes what the interrupted one left
        assert sorted(p.name for p in out.iterdir() if p.name not in storage.CHECKPOINT_FILES) == ["more.txt", "notes.txt", "samples"], k
        assert (out / "samples" / "s1.txt").read_text() == "s1" and (out / "notes.txt").read_text() == "notes.txt"
        assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"], k


def test_a_crash_between_the_two_renames_loads_the_previous_checkpoint(trained, tmp_path, capsys):
    trainer, out = trained
    old = tmp_path / ".ckpt.old"
    os.rename(out, old)  # the instant between "NAME -> .NAME.old" and ".NAME.new -> NAME"
    (tmp_path / ".ckpt.new-1-deadbeef").mkdir()  # a save killed while writing its new folder
    (tmp_path / ".ckpt.new-1-deadbeef" / "model.npz").write_bytes(b"half")
    assert cli(["sample", "--checkpoint", str(out), "-n", "2", "--seed", "0"]) == 0
    assert len(capsys.readouterr().out.split()) == 2
    resumed = Trainer.load(out)
    assert resumed.run_id == trainer.run_id
    trainer.save(out)  # recovers, then saves: no "Directory not empty"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_an_empty_folder_made_after_a_crash_between_the_renames_hides_nothing(trained, tmp_path, capsys):
    """A save died between its renames, then a script's `mkdir -p` made NAME again, empty: the next save took it for
    the new checkpoint and removed .NAME.old, the only complete one, without --overwrite (a review)."""
    trainer, out = trained
    os.rename(out, tmp_path / ".ckpt.old")
    out.mkdir()
    assert cli(["sample", "--checkpoint", str(out), "-n", "1", "--seed", "0"]) == 0  # read from .ckpt.old
    capsys.readouterr()
    err = one_line_error(capsys, ["train", "--data", str(DINOS), "--hidden", "8", "--epochs", "1", "--out", str(out)])
    assert "holds a checkpoint of another run" in err  # a new run is refused, as without the crash
    assert Trainer.load(out).run_id == trainer.run_id
    trainer.save(out)  # its own run: the checkpoint comes back, then is saved over
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"] and open_checkpoint(out).state["run_id"] == trainer.run_id


def test_a_file_of_yours_that_cannot_be_moved_keeps_the_previous_folder(trained, tmp_path, monkeypatch, caplog):
    """A folder the user may not write cannot be renamed into the new checkpoint: it had been stranded in .NAME.old,
    and every later save failed on it (a review)."""
    trainer, out = trained
    (out / "samples").mkdir()
    (out / "samples" / "s1.txt").write_text("s1")
    (out / "notes.txt").write_text("notes")
    real = storage.FileSystem.rename

    def refusing(self, source, target):
        if Path(source).name == "samples":
            raise PermissionError(13, "Permission denied", str(source))
        return real(self, source, target)

    monkeypatch.setattr(storage.FileSystem, "rename", refusing)
    trainer.save(out)
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("ckpt.kept-")]
    assert len(kept) == 1 and (kept[0] / "samples" / "s1.txt").read_text() == "s1"
    assert "samples (Permission denied) could not be moved into the new checkpoint" in caplog.text
    assert (out / "notes.txt").read_text() == "notes" and not (out / "samples").exists()
    trainer.save(out)  # and the saves go on
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt", kept[0].name]


def test_a_half_swapped_checkpoint_of_another_run_is_still_protected(trained, tmp_path):
    _, out = trained
    os.rename(out, tmp_path / ".ckpt.old")
    with pytest.raises(CheckpointError, match="holds a checkpoint of another run"):
        Trainer(small_config()).save(out)
    assert open_checkpoint(out).folder.name == ".ckpt.old"


def test_a_half_removed_old_folder_never_breaks_a_save(trained, tmp_path):
    trainer, out = trained
    (tmp_path / ".ckpt.old").mkdir()  # what the previous version left when killed while removing it
    (tmp_path / ".ckpt.old" / "model.npz").write_bytes(b"leftover")
    (tmp_path / ".ckpt.trash-7-0badf00d").mkdir()
    trainer.save(out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_a_folder_in_the_way_that_is_not_ours_is_never_removed(trained, tmp_path, capsys):
    trainer, out = trained
    (tmp_path / ".ckpt.old").mkdir()
    (tmp_path / ".ckpt.old" / "thesis.tex").write_text("chapter 1")
    (tmp_path / ".ckpt.new-mine").mkdir()  # not a name a save makes
    before = snapshot(tmp_path)
    with pytest.raises(CheckpointError, match=r"\.ckpt\.old is in the way .* move it away"):
        trainer.save(out)
    assert snapshot(tmp_path) == before and (tmp_path / ".ckpt.new-mine").is_dir()


SAVER = """
import sys
from tinygrad_seq.models import TrainConfig, Trainer
trainer = Trainer(TrainConfig(data=sys.argv[2], cell="gru", embed_dim=4, hidden=8, max_chars=3000))
trainer.save(sys.argv[1], overwrite=True)
print("ready", flush=True)
while True:
    trainer.batch += 1
    trainer.save(sys.argv[1])
"""


def test_sigkill_during_saves_always_leaves_a_loadable_checkpoint(tmp_path):
    out = tmp_path / "ckpt"
    rng = random.Random(0)
    seen = set()
    for _ in range(6):
        process = subprocess.Popen([sys.executable, "-c", SAVER, str(out), str(DINOS)], stdout=subprocess.PIPE,
                                   cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert process.stdout.readline().strip() == b"ready"
        time.sleep(rng.uniform(0.0, 0.3))
        process.kill()
        process.wait()
        state = open_checkpoint(out).state  # verified: every file matches the manifest
        seen.add(state["batch"])
        assert load_model(out)[0].config["hidden_size"] == 8
    assert len(seen) > 1  # the kills landed at different points of the loop


READER = """
import sys
from tinygrad_seq.models.checkpoint import open_checkpoint
from tinygrad_seq.storage import CheckpointError
reads = failures = 0
while reads < int(sys.argv[2]):
    try:
        open_checkpoint(sys.argv[1])
    except CheckpointError as error:
        failures += 1
        print(error, flush=True)
    reads += 1
print("reads", reads, "failures", failures, flush=True)
"""


def test_readers_during_saves_never_see_damage(tmp_path):
    out = tmp_path / "ckpt"
    saver = subprocess.Popen([sys.executable, "-c", SAVER, str(out), str(DINOS)], stdout=subprocess.PIPE,
                             cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert saver.stdout.readline().strip() == b"ready"
        reader = subprocess.run([sys.executable, "-c", READER, str(out), "1500"], capture_output=True, text=True,
                                cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120)
    finally:
        saver.kill()
        saver.wait()
    assert reader.stdout.strip().splitlines()[-1] == "reads 1500 failures 0", reader.stdout[-2000:]


# ---------------------------------------------------------------- one writer at a time


HOLDER = """
import sys, time
from tinygrad_seq.storage import WriterLock
lock = WriterLock(sys.argv[1])
try:
    lock.acquire()
except Exception as error:
    print("refused", flush=True)
    sys.exit(0)
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
"""


def hold_lock(out, seconds):
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(out), str(seconds)], stdout=subprocess.PIPE,
                            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_a_second_writer_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path, caplog):
    out = tmp_path / "ckpt"
    holder = hold_lock(out, 60)
    try:
        assert holder.stdout.readline().strip() == b"holding"
        with pytest.raises(CheckpointError, match=rf"being written by another training \(process {holder.pid}\)"):
            Trainer(small_config()).run(out, progress=False)
        assert not out.exists()
    finally:
        holder.kill()  # SIGKILL: its lock file stays, the kernel drops the lock
        holder.wait()
    assert (tmp_path / ".ckpt.lock").read_text().strip() == str(holder.pid)
    with caplog.at_level("WARNING", logger="tinygrad_seq"):
        Trainer(small_config()).run(out, progress=False)
    assert f"left by process {holder.pid}, which is no longer running" in caplog.text
    assert not (tmp_path / ".ckpt.lock").exists() and out.is_dir()


def test_processes_racing_for_a_stale_lock_get_one_holder(tmp_path):
    out = tmp_path / "ckpt"
    (tmp_path / ".ckpt.lock").write_text("999999999\n")  # left by a process that is gone
    racers = [hold_lock(out, 3) for _ in range(4)]
    answers = sorted(racer.stdout.readline().strip().decode() for racer in racers)
    for racer in racers:
        racer.kill()
        racer.wait()
    assert answers == ["holding", "refused", "refused", "refused"]


def test_the_lock_is_held_for_the_whole_run(tmp_path):
    out = tmp_path / "ckpt"
    trainer = Trainer(small_config())
    seen = []
    trainer.run(out, progress=False, on_epoch_end=lambda t: seen.append((tmp_path / ".ckpt.lock").read_text().strip()))
    assert seen == [str(os.getpid())] and not (tmp_path / ".ckpt.lock").exists()


# ---------------------------------------------------------------- a damaged checkpoint is refused, naming the file


def flip_byte(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


DAMAGES = {
    "truncated model.npz": (lambda out: (out / "model.npz").write_bytes((out / "model.npz").read_bytes()[:100]), "model.npz has 100 bytes"),
    "flipped byte in optimizer.npz": (lambda out: flip_byte(out / "optimizer.npz"), "optimizer.npz does not match its SHA-256"),
    "flipped byte in state.json": (lambda out: flip_byte(out / "state.json"), "state.json does not match its SHA-256"),
    "missing vocab.json": (lambda out: (out / "vocab.json").unlink(), "vocab.json is missing"),
    "missing manifest": (lambda out: (out / "manifest.json").unlink(), "manifest.json is missing"),
    "damaged manifest": (lambda out: flip_byte(out / "manifest.json"), "manifest.json is damaged"),
    "truncated manifest": (lambda out: (out / "manifest.json").write_text('{"kind": "tinygrad-seq checkpoint", "fi'), "manifest.json is damaged"),
    "vocabulary of another run": (
        lambda out: ((out / "vocab.json").write_text((out / "vocab.json").read_text().replace('"a"', '"@"')), rewrite_manifest(out)),
        "vocab.json does not belong to model.npz"),
    "a token twice in the vocabulary": (
        lambda out: (edit_vocabulary(out, lambda v: v["tokens"].__setitem__(1, v["tokens"][0])), rewrite_manifest(out)),
        "vocab.json is not a vocabulary (ValueError: Vocabulary: tokens must be distinct"),
    "invalid JSON": (lambda out: ((out / "state.json").write_text("{ not json"), rewrite_manifest(out)), "state.json is not valid JSON"),
    "absurd hidden size": (
        lambda out: (edit_state(out, lambda s: s["model"].update(hidden_size=10**6)), rewrite_manifest(out)),
        "hidden_size=1000000 is not a size"),
    "config that does not match the weights": (
        lambda out: (edit_state(out, lambda s: s["model"].update(hidden_size=16)), rewrite_manifest(out)),
        "state.json does not match model.npz"),
    "mis-shaped weights": (lambda out: (mis_shape(out), rewrite_manifest(out)), "model.npz does not fit"),
    "a hidden size that only the output layer holds": (  # a small file that would have the model allocate 64 GB
        lambda out: (edit_state(out, lambda s: s["model"].update(hidden_size=1 << 16)), widen_head(out, 1 << 16), rewrite_manifest(out)),
        "holds rnn.layers.0.cell.weight_hh of shape (24, 8) (wanted (gates × 65536, 65536))"),
    "unknown layout in the config": (
        lambda out: (edit_state(out, lambda s: s["config"].update(layout="pages")), rewrite_manifest(out)),
        "state.json has an unusable config (TrainConfig: layout='pages'"),
    "negative clip in the config": (
        lambda out: (edit_state(out, lambda s: s["config"].update(clip=-1.0)), rewrite_manifest(out)),
        "state.json has an unusable config (TrainConfig: clip=-1.0"),
    "a model config that is not the run's": (  # a resumed run trained the config's LSTM, sample built a GRU
        lambda out: (edit_state(out, lambda s: s["model"].update(cell="lstm")), rewrite_manifest(out)),
        "state.json describes two models (cell 'lstm' in the model, 'gru' in the run's config)"),
    "a running loss that is not a number": (  # was a TypeError at the first batch a resumed run trained
        lambda out: (edit_state(out, lambda s: s.update(running_loss="x")), rewrite_manifest(out)),
        "state.json has a running_loss of 'x', not a finite number (or null)"),
}


def edit_vocabulary(out, change):
    vocabulary = json.loads((out / "vocab.json").read_text())
    change(vocabulary)
    (out / "vocab.json").write_text(json.dumps(vocabulary))


def edit_state(out, change):
    state = json.loads((out / "state.json").read_text())
    change(state)
    (out / "state.json").write_text(json.dumps(state))


def edit_weights(out, change):
    """Change model.npz's arrays by hand (the manifest left as it was: rewrite_manifest after, to get past it)."""
    with np.load(out / "model.npz") as archive:
        arrays = {k: archive[k] for k in archive.files}
    change(arrays)
    with open(out / "model.npz", "wb") as file:
        np.savez(file, **arrays)


def nan_head_bias(arrays):
    arrays["head.bias"] = np.full_like(arrays["head.bias"], np.nan)


def widen_head(out, hidden):
    edit_weights(out, lambda arrays: arrays.update({"head.weight": np.zeros((len(arrays["head.bias"]), hidden), np.float32)}))


def mis_shape(out):
    def drop_a_row(arrays):
        key = next(k for k in arrays if "weight_hh" in k)
        arrays[key] = arrays[key][:-1]

    edit_weights(out, drop_a_row)


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_every_damage_is_one_line_naming_the_file_for_every_command(trained, capsys, damage):
    _, out = trained
    apply, message = DAMAGES[damage]
    apply(out)
    for argv in (["sample", "--checkpoint", str(out)], ["eval", "--checkpoint", str(out), "--data", str(DINOS)],
                 ["train", "--resume", "--out", str(out), "--epochs", "2"]):
        err = one_line_error(capsys, argv)
        assert message in err and str(out) in err, (argv[0], err)
        assert err.count(f"checkpoint {out}:") == 1, err  # said once, not once more by each layer it passed through
    with pytest.raises(CheckpointError, match=re.escape(message)):
        Trainer.load(out)
    with pytest.raises(CheckpointError):
        load_model(out)


def test_an_optimizer_state_that_would_fail_at_the_first_step_is_one_line(trained, capsys):
    """A step count of -1 was a ZeroDivisionError in Adam's first step of the resumed run (sample and eval do not
    read the optimizer's state)."""
    _, out = trained
    edit_state(out, lambda s: s["optimizer"]["state"]["0"].update(step=-1))
    rewrite_manifest(out)
    err = one_line_error(capsys, ["train", "--resume", "--out", str(out), "--epochs", "2"])
    assert err.startswith(f"tinygrad-seq train: error: checkpoint {out}: optimizer.npz does not fit the optimizer of "
                          "state.json (Adam.load_state_dict: state 'step' of parameter 0 is -1: a step count is a whole number"), err


def test_arrays_never_unpickle(trained):
    _, out = trained
    with open(out / "model.npz", "wb") as file:
        np.savez(file, **{"embedding.weight": np.array([object()], dtype=object)})
    rewrite_manifest(out)
    with pytest.raises(CheckpointError, match="model.npz cannot be read"):
        load_model(out)


# ---------------------------------------------------------------- format 1 (before manifests)


def write_format_1(trainer, out):
    """A checkpoint as the previous version wrote it: no manifest, no run id, format 1."""
    out.mkdir()
    for name, data in trainer.checkpoint_files().items():
        (out / name).write_bytes(data)
    edit_state(out, lambda s: (s.update(format=1), [s.pop(k) for k in ("run_id", "data_sha256", "vocab_sha256", "running_loss")]))


def test_format_1_checkpoints_load_and_are_upgraded_by_their_next_save(tmp_path, capsys):
    out = tmp_path / "old"
    trainer = Trainer(small_config(epochs=2))
    trainer.run(None, progress=False)
    trainer.epoch = 1
    write_format_1(trainer, out)
    model, vocab, state = load_model(out)
    assert state["format"] == 1 and len(vocab) == len(trainer.corpus.vocab)
    assert cli(["train", "--resume", "--out", str(out)]) == 0  # continues the run in its own folder
    assert "done" in capsys.readouterr().out
    assert open_checkpoint(out).format == 2 and open_checkpoint(out).state["epoch"] == 2


# ---------------------------------------------------------------- --resume


def test_resume_extends_a_finished_run_and_refuses_changes_to_the_model(trained, tmp_path, capsys):
    _, out = trained
    assert cli(["train", "--resume", "--out", str(out)]) == 0
    assert "has finished 1 epoch(s); pass --epochs N (more than 1)" in capsys.readouterr().out
    err = one_line_error(capsys, ["train", "--resume", "--out", str(out), "--hidden", "32", "--cell", "lstm"])
    assert "hidden 32 (the checkpoint has 8)" in err and "cell 'lstm' (the checkpoint has 'gru')" in err
    assert cli(["train", "--resume", "--out", str(out), "--epochs", "2", "--lr", "0.005"]) == 0
    printed = capsys.readouterr().out
    assert "epochs 1 -> 2" in printed and "lr 0.01 -> 0.005" in printed
    state = open_checkpoint(out).state
    assert state["epoch"] == 2 and len(state["history"]) == 2 and state["config"]["lr"] == 0.005
    assert cli(["train", "--resume", "--out", str(out), "--epochs", "3", "--no-clip"]) == 0
    assert "clip 5.0 -> off (--no-clip)" in capsys.readouterr().out and open_checkpoint(out).state["config"]["clip"] is None


def test_resume_finds_moved_data_by_its_hash(tmp_path, capsys):
    data = tmp_path / "names.txt"
    data.write_text(DINOS.read_text()[:3000])
    out = tmp_path / "ckpt"
    assert cli(["train", "--data", str(data), "--epochs", "1", "--hidden", "8", "--out", str(out)]) == 0
    capsys.readouterr()
    moved = tmp_path / "elsewhere.txt"
    data.rename(moved)
    err = one_line_error(capsys, ["train", "--resume", "--out", str(out), "--epochs", "2"])
    assert "not found; pass --data with its new path" in err
    other = tmp_path / "other.txt"
    other.write_text(DINOS.read_text()[3000:6000])
    err = one_line_error(capsys, ["train", "--resume", "--out", str(out), "--epochs", "2", "--data", str(other)])
    assert "is not the file the checkpoint" in err
    assert cli(["train", "--resume", "--out", str(out), "--epochs", "2", "--data", str(moved)]) == 0
    assert f"data {data.resolve()} -> {moved.resolve()} (same SHA-256)" in capsys.readouterr().out
    assert open_checkpoint(out).state["config"]["data"] == str(moved.resolve())


def test_the_data_path_is_stored_absolute(tmp_path, monkeypatch):
    (tmp_path / "names.txt").write_text(DINOS.read_text()[:3000])
    monkeypatch.chdir(tmp_path)
    Trainer(small_config(data="names.txt")).save("ckpt")
    monkeypatch.chdir(ROOT)
    assert Trainer.load(tmp_path / "ckpt").config.data == str(tmp_path / "names.txt")


@pytest.mark.parametrize("layout", ["lines", "stream"])
def test_an_interrupted_epoch_resumes_its_running_loss(tmp_path, layout):
    config = dict(layout=layout, epochs=2, seq_len=16, batch_size=8)
    straight = Trainer(small_config(**config))
    straight.run(None, progress=False)
    first = Trainer(small_config(**config))
    first.stop_requested = False
    batches = len(first.batches(0))
    step = first.train_step
    calls = {"n": 0}

    def stop_midway(*args):
        calls["n"] += 1
        if calls["n"] == batches + 2:  # two steps into the second epoch
            first.stop_requested = True
        return step(*args)

    first.train_step = stop_midway
    assert first.run(tmp_path / "run", progress=False) is False
    resumed = Trainer.load(tmp_path / "run")
    assert resumed.running_loss == first.running_loss is not None
    resumed.run(tmp_path / "run", progress=False)
    assert resumed.history == straight.history  # train losses included


def test_a_run_after_a_stopped_one_trains_to_its_end(tmp_path):
    trainer = Trainer(small_config(epochs=2, batch_size=16))
    step = trainer.train_step

    def stop_at_the_second_batch(*args):
        loss = step(*args)
        if trainer.batch == 1:
            trainer._request_stop(signal.SIGINT, None)  # what Ctrl-C calls
        return loss

    trainer.train_step = stop_at_the_second_batch
    assert trainer.run(tmp_path / "run", progress=False) is False and (trainer.epoch, trainer.batch) == (0, 2)
    trainer.train_step = step
    assert trainer.run(tmp_path / "run", progress=False) is True  # the spent Ctrl-C stops nothing
    assert trainer.epoch == 2 and Trainer.load(tmp_path / "run").epoch == 2


def test_ctrl_c_while_an_epoch_ends_stops_at_the_epoch_just_saved(tmp_path):
    trainer = Trainer(small_config(epochs=3))
    validate = trainer.validate

    def interrupted_validation():
        trainer._request_stop(signal.SIGINT, None)
        return validate()

    trainer.validate = interrupted_validation
    assert trainer.run(tmp_path / "run", progress=False) is False
    assert (trainer.epoch, trainer.batch) == (1, 0) and len(trainer.history) == 1
    assert Trainer.load(tmp_path / "run").epoch == 1  # saved before stopping: --resume goes on with epoch 2
    last = Trainer(small_config(epochs=1))
    validate_last = last.validate
    last.validate = lambda: (last._request_stop(signal.SIGINT, None), validate_last())[1]
    assert last.run(None, progress=False) is True and last.epoch == 1  # the last epoch: nothing was cut short


def test_the_checkpoint_records_the_data_that_was_read_not_the_file_at_the_first_save(tmp_path):
    data = tmp_path / "names.txt"
    data.write_text(DINOS.read_text()[:3000])
    trainer = Trainer(small_config(data=data))
    data.write_text(DINOS.read_text()[:3000] + "zzzz\n" * 50)  # the file changes before the first save
    trainer.save(tmp_path / "ckpt")
    with pytest.raises(TrainingError, match=r"changed since the checkpoint .* was trained on \(SHA-256 differs\)"):
        Trainer.load(tmp_path / "ckpt")  # resuming on other data would not be the same run


def test_a_vocabulary_larger_than_a_checkpoint_holds_is_refused_before_training(tmp_path, monkeypatch):
    from tinygrad_seq.models import trainer as trainer_module

    monkeypatch.setattr(trainer_module, "MAX_VOCAB", 20)
    with pytest.raises(TrainingError, match=r"distinct tokens, more than the 20 a model may have; keep the most frequent with --max-vocab"):
        Trainer(small_config())


def test_a_checkpoint_of_a_cell_of_yours_loads(tmp_path):
    from tinygrad_seq import nn

    @nn.register_cell("one_weight_cell")  # no weight_hh: its weights have names of its own
    class OneWeightCell(nn.RecurrentCell):
        def __init__(self, input_size, hidden_size):
            super().__init__(input_size, hidden_size)
            self.W = nn.Parameter(ts.randn(input_size + hidden_size, hidden_size) * 0.1)

        def forward(self, x, state=None):
            state = self.prepare(x, state)
            return ts.concat([x, state], axis=-1).matmul(self.W).tanh()

    try:
        Trainer(small_config(cell="one_weight_cell")).save(tmp_path / "mine")
        model, _, _ = load_model(tmp_path / "mine")
        assert type(model.rnn.layers[0].cell) is OneWeightCell
    finally:
        settings.cell_registry.pop("one_weight_cell")


def test_eval_scores_the_whole_file_whatever_the_run_read(trained, tmp_path):
    from tinygrad_seq.models import evaluate_file
    from tinygrad_seq.text import perplexity

    _, out = trained  # trained on the first 3,000 characters of DINOS (max_chars)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # letters past the first 3,000 characters it never saw: <unk>, said in a warning
        loss, _, _ = evaluate_file(out, str(DINOS))
    model, vocab, _ = load_model(out)
    lines = [vocab.encode(line.strip(), bos=True, eos=True) for line in DINOS.read_text().splitlines() if line.strip()]
    assert len("".join(DINOS.read_text().split())) > 3000
    assert loss == pytest.approx(perplexity(model, lines)[0], rel=1e-6)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the inf weights overflow the loss of the validation after them
@pytest.mark.parametrize("where", ["loss", "weights", "huge loss"])
def test_a_run_that_diverges_stops_and_keeps_the_last_checkpoint(tmp_path, where):
    trainer = Trainer(small_config(epochs=3, optimizer="sgd", clip=None))
    saved = {}
    step = trainer.train_step

    def diverge(t):  # after the first epoch's save
        saved.update(snapshot(tmp_path / "run"))
        if where == "loss":  # the next step's loss is NaN
            t.model.head.bias.data[...] = np.nan
        elif where == "huge loss":  # finite, but no run that works gets there (was trained on, saved, and sampled to a crash)
            t.model.head.bias.data[...] = 0.0
            t.model.head.bias.data[0] = 1e30  # <pad>, never a target: the right one at probability e^-1e30
        else:  # the last step of the epoch leaves NaN weights behind a finite loss
            def step_then_nan(*args):
                loss = step(*args)
                if t.batch == len(t.batches(t.epoch)) - 1:  # the epoch's last step: its save comes next
                    t.model.head.bias.data[...] = np.inf
                return loss

            t.train_step = step_then_nan

    what = {"loss": "at epoch 2, batch 1: the training loss is nan",
            "weights": "at the end of epoch 2: head.bias holds NaN or inf",
            "huge loss": r"at epoch 2, batch 1: the training loss is 1e\+30, above 10,000 nats per token \(a model starts "
                         r"near log V = \d\.\d\)"}[where]
    with pytest.raises(TrainingError, match=rf"^training diverged {what}; "
                                            rf"{re.escape(str(tmp_path / 'run'))} keeps the last checkpoint saved\. Lower the "
                                            r"learning rate \(lr=0.01\) or clip the gradients \(no clipping now; --clip 1"):
        trainer.run(tmp_path / "run", progress=False, on_epoch_end=diverge)
    assert snapshot(tmp_path / "run") == saved  # the first epoch's checkpoint, untouched
    resumed = Trainer.load(tmp_path / "run")
    assert resumed.epoch == 1 and all(np.isfinite(p.numpy()).all() for p in resumed.model.parameters())


def test_a_full_disk_names_the_checkpoint_and_what_a_save_needs(trained, monkeypatch):
    import errno

    trainer, out = trained
    before = snapshot(out)
    written = []

    def fill_up(path, data):
        if written:
            raise OSError(errno.ENOSPC, "No space left on device")
        written.append(path)
        path.write_bytes(data)

    monkeypatch.setattr(storage.fs, "write_bytes", fill_up)
    with pytest.raises(CheckpointError, match=rf"^checkpoint {re.escape(str(out))}: the disk is full \(No space left on device\): "
                                              r"a save writes the new checkpoint \([\d.]+ MB\) beside the old one before swapping "
                                              r"them; the previous checkpoint there is intact\. Free some space, or save elsewhere$"):
        trainer.save(out)
    assert snapshot(out) == before and sorted(p.name for p in out.parent.iterdir() if p.name.startswith(".ckpt.new")) == []


def test_saving_nan_weights_by_hand_keeps_the_last_checkpoint(trained):
    trainer, out = trained
    before = snapshot(out)
    trainer.model.head.weight.data[0, 0] = np.nan
    with pytest.raises(TrainingError, match=rf"when saved: head.weight holds NaN or inf; {re.escape(str(out))} keeps the last checkpoint"):
        trainer.save(out)
    assert snapshot(out) == before


def test_eval_of_a_checkpoint_of_nan_weights_is_one_line(trained, capsys):
    _, out = trained
    edit_weights(out, nan_head_bias)
    rewrite_manifest(out)
    err = one_line_error(capsys, ["eval", "--checkpoint", str(out), "--data", str(DINOS)])
    assert err == (f"tinygrad-seq eval: error: checkpoint {out} holds weights that are NaN or inf (head.bias): the run that "
                   "saved it diverged; train again with a lower --lr, or with --clip")


def test_sampling_a_checkpoint_of_nan_weights_is_one_line(trained, capsys):
    from tinygrad_seq.text import sample

    _, out = trained
    edit_weights(out, nan_head_bias)
    rewrite_manifest(out)
    err = one_line_error(capsys, ["sample", "--checkpoint", str(out)])
    assert err == (f"tinygrad-seq sample: error: checkpoint {out} holds weights that are NaN or inf (head.bias): the run that "
                   "saved it diverged; train again with a lower --lr, or with --clip")
    model, vocab, _ = load_model(out)
    with pytest.raises(ValueError, match=r"^sample: the model's scores at step 1 hold NaN or inf, so there is no distribution"):
        sample(model, vocab, n=2)
    edit_weights(out, lambda arrays: arrays.update({"head.bias": np.zeros_like(arrays["head.bias"]),  # finite, and the
                                                    "head.weight": np.full_like(arrays["head.weight"], 3e38)}))  # scores overflow
    rewrite_manifest(out)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow warning before the one line
        err = one_line_error(capsys, ["sample", "--checkpoint", str(out)])  # was a traceback
    assert re.match(rf"tinygrad-seq sample: error: checkpoint {re.escape(str(out))}: sample_many: the model's scores at step \d+ "
                    r"hold NaN or inf, so there is no distribution to draw from: its weights are not finite, or so large "
                    r"that the scores overflow", err), err


def test_progress_into_a_log_file_is_a_few_lines_not_one_per_batch(tmp_path, capsys):
    trainer = Trainer(small_config(batch_size=4, max_chars=2000))  # dozens of batches in its epoch
    trainer.run(tmp_path / "ckpt", progress=True)
    err = capsys.readouterr().err  # not a terminal, as a log file is not
    batches = len(trainer.batches(0))
    assert batches > 20 and err.count("\r") <= 3 and f"{batches}/{batches}" in err and "loss=" in err


def test_a_notebook_bar_keeps_its_own_pace(monkeypatch):
    import io

    import tqdm
    import tqdm.notebook

    from tinygrad_seq import progress

    monkeypatch.setattr(sys, "stderr", io.StringIO())  # a log file, whatever runs the tests

    assert progress.redraw_pace(tqdm.notebook.tqdm) == {}  # a widget: its stderr is no terminal, yet it is watched
    assert progress.redraw_pace(tqdm.tqdm) == {"mininterval": progress.LOG_REDRAW_S, "maxinterval": progress.LOG_REDRAW_S}


def test_load_model_of_no_checkpoint_says_how_to_make_one(tmp_path, trained):
    _, folder = trained
    ways = r"pass the folder a training run wrote \(tinygrad-seq train --out DIR, Trainer.run\(DIR\)\)"
    with pytest.raises(CheckpointError, match=rf"checkpoint {tmp_path / 'nowhere'} not found; {ways}"):
        load_model(tmp_path / "nowhere")
    with pytest.raises(CheckpointError, match=rf"model.npz is a file, not a checkpoint folder; {ways}"):
        load_model(folder / "model.npz")
