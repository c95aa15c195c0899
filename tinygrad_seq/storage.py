"""Files that survive crashes: atomic writes, checkpoint folders with a manifest, and a writer's lock.

Everything this library saves goes through here: ``Module.save``,
``Vocabulary.save`` and the training checkpoints of ``models.Trainer``.

**One file** (:func:`atomic_write`) is written under a temporary name in the
same folder, flushed to disk, and renamed over its destination: a reader sees
the old file or the new one, never half of one.

**A checkpoint folder** (:func:`save_checkpoint`) holds several files and a
``manifest.json`` listing each one's size and SHA-256. A save writes a
complete new folder ``.NAME.new-*`` beside ``NAME``, fsyncs it, and swaps it in
with two renames::

    NAME -> .NAME.old        (the previous checkpoint, still complete)
    .NAME.new-* -> NAME      (the new one, complete)
    remove .NAME.old

A crash, SIGKILL or second Ctrl-C can fall between any two of these steps.
Whatever it leaves, :func:`checkpoint_folder` finds a complete checkpoint:
``NAME`` when it exists, else ``.NAME.old`` (the swap was half done); the next
save finishes the recovery and removes what a killed save left behind.
Readers verify the whole manifest before they trust a byte
(:func:`read_checkpoint_files`).

**One writer at a time** (:class:`WriterLock`): ``.NAME.lock`` holds the PID of
the process writing ``NAME``; a second writer is refused, and a lock whose
process is gone is taken over with a one-line notice.

**Only our own files are replaced** (:func:`check_destination`): an existing
file, or a folder that is neither empty nor a checkpoint, is never touched.

Every file-system call of a save goes through the object :data:`fs`, so tests
can fail the k-th call and check that the checkpoint still loads.
"""
from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

MANIFEST = "manifest.json"
MANIFEST_KIND = "tinygrad-seq checkpoint"
FORMAT = 2  # 1: before manifests (state.json held the format); 2: manifest.json with sizes and SHA-256
LEGACY_MARKER = "state.json"  # a format-1 checkpoint is a folder with state.json of format 1

log = logging.getLogger("tinygrad_seq")


class CheckpointError(ValueError):
    """A checkpoint that cannot be written or read: the message is one line naming the path and the fix."""


# ---------------------------------------------------------------- file-system calls (one object, so tests can fail them)


class FileSystem:
    """The file-system calls a save makes, each one a step that a crash may interrupt."""

    def write_bytes(self, path: Path, data: bytes) -> None:
        with open(path, "xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())

    def mkdir(self, path: Path) -> None:
        os.mkdir(path)

    def rename(self, source: Path, target: Path) -> None:
        os.rename(source, target)  # POSIX: atomic; a folder target must not exist or be empty

    def rmtree(self, path: Path) -> None:
        shutil.rmtree(path)

    def unlink(self, path: Path) -> None:
        os.unlink(path)

    def fsync_dir(self, path: Path) -> None:
        """Make a rename inside ``path`` durable (a no-op where folders cannot be opened, e.g. Windows)."""
        try:
            descriptor = os.open(path, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(descriptor)
        except OSError:
            pass
        finally:
            os.close(descriptor)


fs = FileSystem()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---------------------------------------------------------------- one file


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write ``path`` through ``write(file)`` so that it holds the old content or the new, never a mix.

    The data goes to a temporary file in the same folder, is fsynced, and is
    renamed over ``path``. The file gets the usual permissions (0o666 less the
    umask), not the private ones of a temporary file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    fs.fsync_dir(path.parent)
    return path


# ---------------------------------------------------------------- names beside a checkpoint folder


def _old(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def _lock(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def _leftovers(path: Path) -> Iterator[Path]:
    """Folders of saves that were killed before their swap."""
    return path.parent.glob(f".{path.name}.new-*")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest_checksum(files: dict[str, Any]) -> str:
    return _sha256(json.dumps(files, sort_keys=True).encode("utf-8"))


def is_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder this library wrote as a checkpoint (any format, damaged or not)."""
    path = Path(path)
    if not path.is_dir():
        return False
    try:
        if json.loads((path / MANIFEST).read_text(encoding="utf-8")).get("kind") == MANIFEST_KIND:
            return True
    except (OSError, ValueError, AttributeError):
        pass  # absent, or damaged: then state.json must show it is ours
    try:
        return json.loads((path / LEGACY_MARKER).read_text(encoding="utf-8")).get("format") in (1, FORMAT)
    except (OSError, ValueError, AttributeError):
        return False


def checkpoint_folder(path: str | os.PathLike) -> Path:
    """The folder to read the checkpoint ``path`` from: ``path``, or ``.NAME.old`` if a save died mid-swap.

    Raises CheckpointError when there is neither.
    """
    path = Path(path)
    if path.exists():
        if not path.is_dir():
            raise CheckpointError(f"{path} is a file, not a checkpoint folder; pass the --out folder of a train run")
        return path
    if is_checkpoint(_old(path)):
        return _old(path)  # read, don't rename: a save in flight may be between its two renames
    raise CheckpointError(f"checkpoint {path} not found; pass the --out folder of a train run")


# ---------------------------------------------------------------- where a checkpoint may be written


def describe(path: Path) -> str:
    """A few words on what is at ``path`` for refusals: 'a file', 'a folder with 3 entries', ..."""
    if path.is_dir():
        entries = sum(1 for _ in path.iterdir())
        return f"a folder with {entries} entr{'y' if entries == 1 else 'ies'} that is not a checkpoint"
    return "a file" if path.exists() else "nothing"


def check_destination(path: str | os.PathLike, *, owned: bool = False, overwrite: bool = False) -> None:
    """Refuse, before anything is written, a destination that a checkpoint save must not replace.

    ``path`` may be: absent, an empty folder, or a checkpoint this library
    wrote — which is replaced only when it belongs to the same run
    (``owned``) or ``overwrite`` is given. Anything else (a file, a folder
    with other content) is refused and left untouched. The nearest existing
    parent folder must be writable.
    """
    path = Path(path)
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise CheckpointError(f"--out {path} is {'a link' if path.is_symlink() else 'a file'}, not a checkpoint folder; "
                              "nothing was written. Pass another --out")
    if path.is_dir() and any(path.iterdir()) and not is_checkpoint(path):
        raise CheckpointError(f"--out {path} is {describe(path)}; nothing was written. "
                              "Pass a new or empty folder as --out (only checkpoints are ever replaced)")
    existing = path if path.exists() else _old(path)  # a swap left half done: the old folder comes back first
    if is_checkpoint(existing) and not (owned or overwrite):
        raise CheckpointError(f"--out {path} holds a checkpoint of another run; continue it with --resume "
                              "or replace it with --overwrite")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise CheckpointError(f"cannot write the checkpoint {path}: {parent} is a file, not a folder; pass another --out")
    try:
        with tempfile.TemporaryFile(dir=parent):  # the real test: permissions, read-only mounts, quotas
            pass
    except OSError as error:
        raise CheckpointError(f"cannot write the checkpoint {path}: folder {parent} is not writable "
                              f"({error.strerror}); pass an --out in a folder you can write to") from None


# ---------------------------------------------------------------- one writer at a time


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by someone else
    except OSError as error:
        return error.errno != errno.ESRCH
    return True


class WriterLock:
    """``.NAME.lock`` beside a checkpoint: refuses a second process writing the same checkpoint.

    Re-entrant within one process. A lock left by a process that no longer
    exists is taken over with a one-line notice.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self.lock_file = _lock(self.path)
        self.depth = 0

    def acquire(self) -> None:
        if self.depth:
            self.depth += 1
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                descriptor = os.open(self.lock_file, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None and owner != os.getpid() and _process_alive(owner):
                    raise CheckpointError(
                        f"checkpoint {self.path} is being written by another training (process {owner}); "
                        f"wait for it to finish, or pass another --out (if it is gone, delete {self.lock_file})"
                    ) from None
                log.warning("taking over %s left by process %s, which is no longer running", self.lock_file, owner)
                try:
                    os.unlink(self.lock_file)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(descriptor, "w") as file:
                file.write(f"{os.getpid()}\n")
            self.depth = 1
            return
        raise CheckpointError(f"checkpoint {self.path}: another process took {self.lock_file} at the same time; try again")

    def _owner(self) -> int | None:
        try:
            return int(self.lock_file.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None  # empty or damaged: its writer died before finishing the line

    def release(self) -> None:
        if self.depth == 0:
            return
        self.depth -= 1
        if self.depth == 0 and self._owner() == os.getpid():
            try:
                os.unlink(self.lock_file)
            except FileNotFoundError:
                pass

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# ---------------------------------------------------------------- writing a checkpoint folder


def recover(path: str | os.PathLike) -> None:
    """Finish what a killed save left: put ``.NAME.old`` back or remove it, and remove ``.NAME.new-*``.

    Call with the writer's lock held: no other save is in flight then.
    """
    path = Path(path)
    old = _old(path)
    if old.exists():
        if path.exists():
            fs.rmtree(old)  # the new folder was swapped in: the old one is no longer needed
        else:
            fs.rename(old, path)  # died between the two renames: the previous checkpoint comes back
        fs.fsync_dir(path.parent)
    for leftover in _leftovers(path):
        fs.rmtree(leftover)


def save_checkpoint(path: str | os.PathLike, files: dict[str, bytes], lock: WriterLock | None = None) -> Path:
    """Write the files (name -> content) as the checkpoint folder ``path``, replacing the one there atomically.

    The caller decides first whether ``path`` may be replaced
    (:func:`check_destination`). At every instant, reading ``path`` gives the
    previous complete checkpoint or the new one.
    """
    path = Path(path)
    lock = lock or WriterLock(path)
    with lock:
        recover(path)
        if path.is_dir() and not any(path.iterdir()):
            fs.rmtree(path)  # an empty folder the user made for us
        manifest = {name: {"size": len(data), "sha256": _sha256(data)} for name, data in sorted(files.items())}
        record = {"kind": MANIFEST_KIND, "format": FORMAT, "files": manifest, "checksum": _manifest_checksum(manifest)}
        files = {**files, MANIFEST: json.dumps(record, indent=1).encode("utf-8")}
        new = path.with_name(f".{path.name}.new-{os.getpid()}-{os.urandom(4).hex()}")
        fs.mkdir(new)
        try:
            for name, data in files.items():  # the manifest last: a folder with a manifest is complete
                fs.write_bytes(new / name, data)
            os.chmod(new, 0o777 & ~_umask())
            fs.fsync_dir(new)
            if path.exists():
                fs.rename(path, _old(path))
            fs.rename(new, path)
            fs.fsync_dir(path.parent)
        except BaseException:
            if new.exists():
                shutil.rmtree(new, ignore_errors=True)
            raise
        if _old(path).exists():
            fs.rmtree(_old(path))
    return path


# ---------------------------------------------------------------- reading a checkpoint folder


def read_checkpoint_files(path: str | os.PathLike) -> tuple[Path, dict[str, bytes], int]:
    """(folder, name -> verified bytes, format) of the checkpoint ``path``.

    Format 2: every file of the manifest is read once and checked against its
    size and SHA-256 before anything is parsed. Format 1 (no manifest):
    every file is read unverified. Raises CheckpointError naming the file.
    """
    folder = checkpoint_folder(path)
    manifest_file = folder / MANIFEST
    if not manifest_file.exists():
        state_file = folder / LEGACY_MARKER
        if not state_file.is_file():
            raise CheckpointError(f"{folder} is not a checkpoint folder (no {MANIFEST}); pass the --out folder of a train run")
        try:
            legacy_state = json.loads(state_file.read_text(encoding="utf-8"))
            found, version = legacy_state.get("format"), legacy_state.get("version")
        except (OSError, ValueError, AttributeError):
            found, version = None, None
        if found == FORMAT or found is None:
            raise CheckpointError(f"checkpoint {folder}: {MANIFEST} is missing, so its files cannot be verified; "
                                  "restore it from a backup or retrain")
        if found != 1:
            raise CheckpointError(f"checkpoint {folder} has format {found} (written by tinygrad-seq {version}); this "
                                  f"version reads formats 1 and {FORMAT}. Use the version of tinygrad-seq that wrote it")
        return folder, {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}, 1
    try:
        record = json.loads(manifest_file.read_text(encoding="utf-8"))
        manifest = record["files"]
        damaged = record.get("kind") != MANIFEST_KIND or record.get("checksum") != _manifest_checksum(manifest)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        damaged, record = True, {}
    if damaged:
        raise CheckpointError(f"checkpoint {folder}: {manifest_file.name} is damaged; restore it from a backup or retrain")
    if record.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {folder} has format {record.get('format')}; this version reads formats 1 "
                              f"and {FORMAT}. Use the version of tinygrad-seq that wrote it")
    files = {}
    for name, expected in manifest.items():
        file = folder / name
        if Path(name).name != name:
            raise CheckpointError(f"checkpoint {folder}: {MANIFEST} names {name!r}, which is not a file of the folder")
        try:
            data = file.read_bytes()
        except FileNotFoundError:
            raise CheckpointError(f"checkpoint {folder}: {name} is missing; restore it from a backup or retrain") from None
        if len(data) != expected["size"]:
            raise CheckpointError(f"checkpoint {folder}: {name} has {len(data):,} bytes, the manifest says "
                                  f"{expected['size']:,} (truncated or damaged); restore it from a backup or retrain")
        if _sha256(data) != expected["sha256"]:
            raise CheckpointError(f"checkpoint {folder}: {name} does not match its SHA-256 in the manifest "
                                  "(damaged or changed); restore it from a backup or retrain")
        files[name] = data
    return folder, files, FORMAT


__all__ = [
    "CheckpointError", "FileSystem", "WriterLock", "atomic_write", "check_destination", "checkpoint_folder",
    "is_checkpoint", "read_checkpoint_files", "recover", "save_checkpoint",
]
