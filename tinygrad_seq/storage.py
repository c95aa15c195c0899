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

    NAME -> .NAME.old              (the previous checkpoint, still complete)
    .NAME.new-* -> NAME            (the new one, complete)
    .NAME.old -> .NAME.trash-*     then removed (a half-removed folder has a name of its own)

A crash, SIGKILL or second Ctrl-C can fall between any two of these steps.
Whatever it leaves, :func:`checkpoint_folder` finds a complete checkpoint:
``NAME`` when it exists, else ``.NAME.old`` (the swap was half done); the next
save finishes the recovery and removes what a killed save left behind.
Readers verify the whole manifest before they trust a byte
(:func:`read_checkpoint_files`).

Readers open the folder once and read every file through that handle, so a
save that swaps folders in the middle of a read cannot mix two checkpoints.

**One writer at a time** (:class:`WriterLock`): the writer holds an
``fcntl.flock`` on ``.NAME.lock``, which also holds its PID for messages; a
second writer is refused, naming that PID. The kernel drops the lock when its
process dies, so a lock file left by a killed run is taken over with a
one-line notice.

**Only our own files are replaced** (:func:`check_destination`): an existing
file, or a folder that is neither empty nor a checkpoint, is never touched.
What you put into a checkpoint folder (notes, a folder of samples) is moved
into each new checkpoint as it is swapped in, one rename per entry, and
:func:`recover` finishes a move that a crash cut short (what cannot be moved
stays in the previous folder, kept as ``NAME.kept-<time>``);
recovery removes only folders named as this module names them.

Every file-system call of a save goes through the object :data:`fs`, so tests
can fail the k-th call and check that the checkpoint still loads.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

MANIFEST = "manifest.json"
MANIFEST_KIND = "tinygrad-seq checkpoint"
FORMAT = 2  # 1: before manifests (state.json held the format); 2: manifest.json with sizes and SHA-256
LEGACY_MARKER = "state.json"  # a format-1 checkpoint is a folder with state.json of format 1
# The files of a training checkpoint: a folder holding nothing else is one a save left half removed
CHECKPOINT_FILES = frozenset({MANIFEST, "state.json", "model.npz", "optimizer.npz", "carry.npz", "vocab.json"})

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


# ---------------------------------------------------------------- one file


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any], op: str = "save",
                 ours: Callable[[Path], bool] | None = None, kind: str = "a file") -> Path:
    """Write ``path`` through ``write(file)`` so that it holds the old content or the new, never a mix.

    The data goes to a temporary file in the same folder, is fsynced, and is
    renamed over ``path``. A file that was there keeps its permissions; a
    symbolic link keeps pointing at the file it names, which is the one
    replaced. What may not be written is refused first, in one line naming
    ``op`` (:func:`_file_destination`). Temporary files that a killed save
    left beside ``path`` are removed.
    """
    given = path
    path, existing = _file_destination(path, op, ours, kind)
    _remove_stale_temporaries(path)
    temporary = path.with_name(f".{path.name}.{os.getpid()}-{os.urandom(4).hex()}.tmp")
    try:
        # os.open applies the umask to 0o666 itself: the file gets the usual permissions, not a temporary file's 0o600
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as error:
        raise CheckpointError(f"{op}: cannot write {given}: its folder {path.parent} is not writable ({error.strerror}); "
                              "nothing was written. Save to a folder you can write to") from None
    try:
        if existing is not None:
            os.chmod(descriptor, stat.S_IMODE(existing.st_mode))
        with os.fdopen(descriptor, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    fs.fsync_dir(path.parent)
    return path


def _file_destination(path: str | os.PathLike, op: str, ours: Callable[[Path], bool] | None,
                      kind: str) -> tuple[Path, os.stat_result | None]:
    """(the file to write, what is there now or None) for ``op`` writing ``path``, its folders made; a
    CheckpointError, before anything is written, for a folder (or a name ending in "/"), a link that leads nowhere,
    a path inside a checkpoint folder (whose manifest the file would break), folders that cannot be made, a file
    that cannot be written (``chmod a-w``), or a file that ``ours(path)`` says ``op`` did not write (``kind`` names
    what it writes, for the message: "an .npz file of arrays"; an empty file, a ``tempfile``'s, may be replaced)."""
    given, nothing = path, "nothing was written"
    if str(path).endswith(("/", os.sep)) or Path(path).is_dir():
        said = "names a folder" if str(path).endswith(("/", os.sep)) else "is a folder"
        raise CheckpointError(f"{op}: {given} {said}; {op} writes one file: give the file's name in it")
    path = Path(path)
    if path.is_symlink():
        try:
            path = path.resolve()
        except (RuntimeError, OSError) as error:  # a loop of links: Python 3.11 says RuntimeError, 3.13 OSError
            raise CheckpointError(f"{path} is a symbolic link that leads nowhere ({error}); remove it or save elsewhere") from None
    if is_checkpoint(path.parent):
        raise CheckpointError(f"{op}: {given} is inside the checkpoint folder {path.parent}, whose manifest a file written "
                              f"there would break; {nothing}. Save elsewhere (a run's checkpoint is written by Trainer.save)")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise CheckpointError(f"{op}: cannot make the folder of {given} ({error.strerror}: {error.filename}); "
                              f"{nothing}. Save to a folder you can write to") from None
    existing = path.stat() if path.exists() else None
    if existing is not None and not os.access(path, os.W_OK):
        raise CheckpointError(f"{path} is write-protected: {nothing}. Make it writable (chmod u+w) or save elsewhere")
    if existing is not None and existing.st_size and ours is not None and not ours(path):
        raise CheckpointError(f"{op}: {given} exists and is not {kind} that {op} wrote; {nothing}, so as not to destroy it. "
                              "Choose another name, or move it away first")
    return path, existing


STALE_AFTER_S = 600.0
"""How long a temporary file of a save must have gone unwritten before another save may remove it: a save in
progress writes its file all along, and one of another machine or container sharing the folder has a process
number that means nothing here."""


def _remove_stale_temporaries(path: Path) -> None:
    """Remove the temporary files of saves of ``path`` that were killed: full-size copies that nothing else would
    remove. One is removed when its process is gone and it has not been written for STALE_AFTER_S; a folder that
    cannot be listed is left alone (the save itself does not need to list it)."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(\d+)-[0-9a-f]{{8}}\.tmp")
    with contextlib.suppress(OSError):
        for entry in path.parent.iterdir():
            found = pattern.fullmatch(entry.name)
            if (found and not entry.is_symlink() and entry.is_file() and time.time() - entry.stat().st_mtime > STALE_AFTER_S
                    and not _alive(int(found.group(1)))):
                entry.unlink()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs, as far as this machine can tell (a doubt counts as running)."""
    if os.name == "nt":  # signal 0 is CTRL_C_EVENT there, not a probe: keep the file
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def write_npz(file: IO[bytes], arrays: Mapping[str, Any]) -> None:
    """``arrays`` in NumPy's .npz format (a zip of one .npy per key, what ``np.load`` reads), whatever the keys.

    ``np.savez`` takes the arrays as keyword arguments, so a key named "file" clashes with its own argument
    and one named "allow_pickle" is taken as the option, silently not saved."""
    with zipfile.ZipFile(file, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key, value in arrays.items():
            with archive.open(f"{key}.npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


# ---------------------------------------------------------------- names beside a checkpoint folder


def _old(path: Path) -> Path:
    return path.with_name(f".{path.name}.old")


def _lock(path: Path) -> Path:
    return path.with_name(f".{path.name}.lock")


def _unique(path: Path, kind: str) -> Path:
    """``.NAME.new-PID-HEX`` or ``.NAME.trash-PID-HEX``: folders only a save makes."""
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{os.urandom(4).hex()}")


def _leftovers(path: Path) -> list[Path]:
    """Folders of killed saves: a new checkpoint never swapped in, an old one half removed."""
    pattern = re.compile(rf"\.{re.escape(path.name)}\.(new|trash)-\d+-[0-9a-f]{{8}}")
    return [p for p in path.parent.iterdir() if pattern.fullmatch(p.name) and p.is_dir() and not p.is_symlink()]


def _absolute(path: str | os.PathLike) -> Path:
    """``path`` made absolute without following links ('.' and '..' become names)."""
    return Path(os.path.abspath(path))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest_checksum(files: dict[str, Any]) -> str:
    return _sha256(json.dumps(files, sort_keys=True).encode("utf-8"))


def is_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a folder this library wrote as a checkpoint (any format, damaged or not)."""
    path = Path(path)
    if not path.is_dir():
        return False
    if _has_manifest(path):
        return True
    try:  # no manifest, or a damaged one: then state.json must show it is ours
        return json.loads((path / LEGACY_MARKER).read_text(encoding="utf-8")).get("format") in (1, FORMAT)
    except (OSError, ValueError, AttributeError):
        return False


OS_LITTER = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})
"""Files an operating system's file browser writes into any folder it shows: never a reason to refuse one."""


def _yours(folder: Path) -> list[Path]:
    """What ``folder`` holds that no save wrote there: a user's notes, a subfolder, a link."""
    return sorted(entry for entry in folder.iterdir()
                  if entry.name not in CHECKPOINT_FILES or entry.is_symlink() or not entry.is_file())


def _listed(entries: list[Path]) -> str:
    """Entries by name, a folder's with a trailing "/", five at most."""
    names = [entry.name + ("/" if entry.is_dir() else "") for entry in entries]
    return ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _retire(old: Path, path: Path) -> None:
    """Remove the previous checkpoint ``old`` (``.NAME.old``) once what is yours in it is moved into ``path``, the
    checkpoint that replaces it: one rename each, so every entry is in one of the two at every instant, and
    :func:`recover` finishes a move that a crash cut short. What cannot be moved (a folder you may not write, whose
    move a rename refuses) is never removed: the old folder then stays beside, as ``NAME.kept-<time>``, with a
    warning saying so."""
    stuck = []
    for entry in _yours(old):
        if not os.path.lexists(path / entry.name):
            try:
                fs.rename(entry, path / entry.name)
            except OSError as error:
                stuck.append(f"{entry.name} ({error.strerror})")
    if stuck:
        kept = path.with_name(f"{path.name}.kept-{time.strftime('%Y%m%d-%H%M%S')}-{os.urandom(2).hex()}")
        fs.rename(old, kept)
        log.warning("%s could not be moved into the new checkpoint %s; the previous checkpoint's folder, which holds them, "
                    "is kept as %s: move them back by hand", ", ".join(stuck), path, kept)
        return
    trash = _unique(path, "trash")
    fs.rename(old, trash)
    fs.rmtree(trash)


def _empty_folder(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink() and not any(path.iterdir())


def _has_manifest(path: Path) -> bool:
    """Whether ``path`` holds this library's manifest: a checkpoint of format 2, surely ours."""
    try:
        return json.loads((path / MANIFEST).read_text(encoding="utf-8")).get("kind") == MANIFEST_KIND
    except (OSError, ValueError, AttributeError):
        return False  # absent, or damaged


def _ours(folder: Path) -> bool:
    """A checkpoint, or what is left of one that an earlier version's save was removing when it died."""
    if is_checkpoint(folder):
        return True
    return folder.is_dir() and not folder.is_symlink() and not _yours(folder)


def existing_checkpoint(path: str | os.PathLike) -> Path | None:
    """The folder holding the checkpoint ``path``: ``path``, ``.NAME.old`` if a save died mid-swap, or None."""
    path = _absolute(path)
    if path.exists() and not _empty_folder(path):  # an empty one may have been made since a save died mid-swap
        return path if is_checkpoint(path) else None
    return _left_behind(path)


def _left_behind(path: str | os.PathLike) -> Path | None:
    """``.NAME.old`` when it holds the checkpoint ``path`` that a save dying between its two renames left there (NAME
    being missing, or an empty folder made since, by a script's mkdir -p), else None: read it there, don't rename,
    since a save in flight may be between its renames."""
    old = _old(_absolute(path))
    return old if is_checkpoint(old) else None


_WHAT_TO_PASS = "pass the folder a training run wrote (tinygrad-seq train --out DIR, Trainer.run(DIR))"


def checkpoint_folder(path: str | os.PathLike) -> Path:
    """The folder to read the checkpoint ``path`` from: ``path``, or ``.NAME.old`` if a save died mid-swap.

    Raises CheckpointError when there is neither.
    """
    path = Path(path)
    try:
        is_folder = stat.S_ISDIR(os.stat(path).st_mode)  # one look: a save may rename it at any moment
    except FileNotFoundError:
        behind = _left_behind(path)
        if behind is None:
            raise CheckpointError(f"checkpoint {path} not found; {_WHAT_TO_PASS}") from None
        return behind
    if not is_folder:
        raise CheckpointError(f"{path} is a file, not a checkpoint folder; {_WHAT_TO_PASS}")
    return (_left_behind(path) or path) if _empty_folder(path) else path


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
    wrote (whose files are replaced, and anything of yours in it kept) —
    only when it belongs to the same run (``owned``) or ``overwrite`` is
    given. Anything else (a file, a link, a folder with other content, one
    that holds files of yours beside a checkpoint's without this library's
    manifest, the current folder or one above it) is refused and left
    untouched. The nearest existing parent folder must be
    writable.
    """
    given, path = path, _absolute(path)
    fix = "nothing was written; choose another checkpoint folder (--out)"
    if path.is_symlink():
        try:
            target = os.readlink(path)
        except OSError:  # removed since: still no folder to save into
            target = "?"
        raise CheckpointError(f"{given} is a symbolic link (to {target}): a save replaces a checkpoint folder by "
                              "renaming, which would replace the link, not the folder it names; nothing was written: give "
                              "the folder itself (--out)")
    if path.exists() and not path.is_dir():
        raise CheckpointError(f"{given} is a file, not a checkpoint folder; {fix}")
    if Path.cwd() == path or path in Path.cwd().parents:
        raise CheckpointError(f"{given} is the current folder or contains it, and a save replaces the whole folder; "
                              f"{fix}, e.g. ./checkpoint")
    old = _old(path)
    if (old.exists() or old.is_symlink()) and not _ours(old):
        raise CheckpointError(f"{old} is in the way of saving {given} (a save renames the previous checkpoint to it) "
                              f"and is not a checkpoint; move it away")
    if path.is_dir() and any(path.iterdir()) and not is_checkpoint(path):
        raise CheckpointError(f"{given} is {describe(path)}; {fix} (only checkpoints and empty folders are ever replaced)")
    yours = [entry for entry in _yours(path) if entry.name not in OS_LITTER] if path.is_dir() else []
    if yours and not _has_manifest(path):  # a folder of yours that only looks like a checkpoint of the old format
        raise CheckpointError(f"{given} holds {_listed(yours)} beside files named as a checkpoint's, but no manifest of "
                              "this library's: it may not be a checkpoint; nothing was written. Move those out of it, or "
                              "choose another checkpoint folder (--out)")
    if existing_checkpoint(path) is not None and not (owned or overwrite):
        raise CheckpointError(f"{given} holds a checkpoint of another run; continue it with --resume "
                              "or replace it with --overwrite (overwrite=True)")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise CheckpointError(f"cannot write the checkpoint {given}: {parent} is a file, not a folder; {fix}")
    try:
        with tempfile.TemporaryFile(dir=parent):  # the real test: permissions, read-only mounts, quotas
            pass
    except OSError as error:
        where = f"folder {parent}" if parent == path.parent else f"folder {parent}, where its folders would be made,"
        raise CheckpointError(f"cannot write the checkpoint {given}: {where} is not writable "
                              f"({error.strerror}); choose a checkpoint folder you can write to (--out)") from None


# ---------------------------------------------------------------- one writer at a time


class WriterLock:
    """``.NAME.lock`` beside a checkpoint: refuses a second process writing the same checkpoint.

    The lock is an ``fcntl.flock`` on the file (released by the kernel when
    the process dies); the file holds the PID for messages. Re-entrant within
    one process. A lock file left by a process that is gone is taken over
    with a one-line notice.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = _absolute(path)
        self.lock_file = _lock(self.path)
        self.depth = 0
        self.descriptor: int | None = None

    def acquire(self) -> None:
        if self.depth:
            self.depth += 1
            return
        import fcntl  # POSIX; imported here so that the package imports everywhere

        self.path.parent.mkdir(parents=True, exist_ok=True)
        while True:
            descriptor = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                owner = self._read_owner(descriptor)
                os.close(descriptor)
                raise CheckpointError(
                    f"checkpoint {self.path} is being written by another training (process {owner or 'unknown'}); "
                    "wait for it to finish, or choose another checkpoint folder (--out)"
                ) from None
            try:
                same_file = os.fstat(descriptor).st_ino == os.stat(self.lock_file).st_ino
            except FileNotFoundError:
                same_file = False
            if same_file:
                break
            os.close(descriptor)  # its holder removed the file as we opened it: lock the new one
        previous = self._read_owner(descriptor)
        if previous and previous != os.getpid():
            log.warning("taking over %s left by process %s, which is no longer running", self.lock_file, previous)
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        self.descriptor, self.depth = descriptor, 1

    @staticmethod
    def _read_owner(descriptor: int) -> int | None:
        try:
            return int(os.pread(descriptor, 32, 0).split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def release(self) -> None:
        if self.depth == 0:
            return
        self.depth -= 1
        if self.depth == 0 and self.descriptor is not None:
            try:
                os.unlink(self.lock_file)  # before unlocking: a waiting process then locks a new file
            except FileNotFoundError:
                pass
            os.close(self.descriptor)
            self.descriptor = None

    def __enter__(self) -> WriterLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


# ---------------------------------------------------------------- writing a checkpoint folder


def recover(path: str | os.PathLike) -> None:
    """Finish what a killed save left: put ``.NAME.old`` back or retire it, remove ``.NAME.new-*``/``.trash-*``.

    Call with the writer's lock held: no other save is in flight then. Only
    folders this module names are touched, and ``.NAME.old`` only when it is
    a checkpoint.
    """
    path = _absolute(path)
    old = _old(path)
    if _ours(old):
        if is_checkpoint(old) and _empty_folder(path):
            fs.rmtree(path)  # made since a save died between its two renames (a script's mkdir -p): not a checkpoint
        if is_checkpoint(path) or not is_checkpoint(old):
            _retire(old, path)  # swapped in already (your files moved over, if a crash cut that short), or half-removed
        elif not path.exists():
            fs.rename(old, path)  # died between the two renames: the previous checkpoint comes back
        # else: a folder of yours at NAME and the checkpoint at .NAME.old: both left as they are (check_destination refuses)
        fs.fsync_dir(path.parent)
    for leftover in _leftovers(path):
        fs.rmtree(leftover)


def save_checkpoint(path: str | os.PathLike, files: dict[str, bytes], lock: WriterLock | None = None) -> Path:
    """Write the files (name -> content) as the checkpoint folder ``path``, replacing the one there atomically.

    The caller decides first whether ``path`` may be replaced
    (:func:`check_destination`). At every instant, reading ``path`` gives the
    previous complete checkpoint or the new one.
    """
    given, path = Path(path), _absolute(path)
    lock = lock or WriterLock(path)
    with lock:
        recover(path)
        if path.is_dir() and not any(path.iterdir()):
            fs.rmtree(path)  # an empty folder the user made for us
        manifest = {name: {"size": len(data), "sha256": _sha256(data)} for name, data in sorted(files.items())}
        record = {"kind": MANIFEST_KIND, "format": FORMAT, "files": manifest, "checksum": _manifest_checksum(manifest)}
        files = {**files, MANIFEST: json.dumps(record, indent=1).encode("utf-8")}
        new = _unique(path, "new")
        fs.mkdir(new)
        swapped = False
        try:
            for name, data in files.items():  # the manifest last: a folder with a manifest is complete
                fs.write_bytes(new / name, data)
            fs.fsync_dir(new)
            if path.exists():
                fs.rename(path, _old(path))
            fs.rename(new, path)
            swapped = True
            fs.fsync_dir(path.parent)
        except BaseException as error:
            if new.exists():
                shutil.rmtree(new, ignore_errors=True)
            if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT) and not swapped:
                size = sum(len(data) for data in files.values())
                kept = "the previous checkpoint there is intact" if existing_checkpoint(path) is not None else "nothing was saved"
                raise CheckpointError(f"checkpoint {given}: the disk is full ({error.strerror}): a save writes the new "
                                      f"checkpoint ({size / 1e6:.1f} MB) beside the old one before swapping them; {kept}. "
                                      "Free some space, or save elsewhere") from None
            raise
        if _old(path).exists():
            _retire(_old(path), path)  # what you put in the folder stays in it
    return given


# ---------------------------------------------------------------- reading a checkpoint folder


def _read_all(directory: int, names: list[str]) -> dict[str, bytes]:
    """name -> bytes of files opened through one folder handle (a folder renamed meanwhile still reads whole)."""
    contents = {}
    for name in names:
        descriptor = os.open(name, os.O_RDONLY, dir_fd=directory)
        with os.fdopen(descriptor, "rb") as file:
            contents[name] = file.read()
    return contents


def _open_folder(folder: Path) -> int:
    try:
        return os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as error:
        raise CheckpointError(f"checkpoint {folder} cannot be opened ({error.strerror})") from None


def _read_folder(folder: Path) -> tuple[dict[str, bytes], int]:
    """(name -> verified bytes, format) of one checkpoint folder, every file read through one handle."""
    directory = _open_folder(folder)
    try:
        names = os.listdir(directory)
        if MANIFEST not in names:
            return _read_format_1(folder, directory, names), 1
        try:
            record = json.loads(_read_all(directory, [MANIFEST])[MANIFEST].decode("utf-8"))
            manifest = record["files"]
            damaged = (record.get("kind") != MANIFEST_KIND or record.get("checksum") != _manifest_checksum(manifest)
                       or not all(isinstance(e.get("size"), int) and isinstance(e.get("sha256"), str) for e in manifest.values()))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            damaged, record, manifest = True, {}, {}
        if damaged:
            raise CheckpointError(f"checkpoint {folder}: {MANIFEST} is damaged; restore it from a backup or retrain")
        if record.get("format") != FORMAT:
            raise CheckpointError(f"checkpoint {folder} has format {record.get('format')}; this version reads formats 1 "
                                  f"and {FORMAT}. Use the version of tinygrad-seq that wrote it")
        files = {}
        for name, expected in manifest.items():
            if Path(name).name != name or name in (".", ".."):
                raise CheckpointError(f"checkpoint {folder}: {MANIFEST} names {name!r}, which is not a file of the folder")
            try:
                data = _read_all(directory, [name])[name]
            except FileNotFoundError:
                raise CheckpointError(f"checkpoint {folder}: {name} is missing; restore it from a backup or retrain") from None
            if len(data) != expected["size"]:
                raise CheckpointError(f"checkpoint {folder}: {name} has {len(data):,} bytes, the manifest says "
                                      f"{expected['size']:,} (truncated or damaged); restore it from a backup or retrain")
            if _sha256(data) != expected["sha256"]:
                raise CheckpointError(f"checkpoint {folder}: {name} does not match its SHA-256 in the manifest "
                                      "(damaged or changed); restore it from a backup or retrain")
            files[name] = data
        return files, FORMAT
    finally:
        os.close(directory)


def _read_format_1(folder: Path, directory: int, names: list[str]) -> dict[str, bytes]:
    """The files of a checkpoint written before manifests (state.json says format 1), unverified."""
    if LEGACY_MARKER not in names:
        inside = folder / "checkpoint"  # the demos keep theirs there: char_lm_out/checkpoint
        hint = (f"; the one in it is {inside}" if (inside / MANIFEST).is_file() else
                "; pass the --out folder of a train run")
        raise CheckpointError(f"{folder} is not a checkpoint folder (no {MANIFEST}){hint}")
    try:
        legacy_state = json.loads(_read_all(directory, [LEGACY_MARKER])[LEGACY_MARKER].decode("utf-8"))
        found, version = legacy_state.get("format"), legacy_state.get("version")
    except (OSError, ValueError, AttributeError):
        found, version = None, None
    if found == FORMAT or found is None:
        raise CheckpointError(f"checkpoint {folder}: {MANIFEST} is missing, so its files cannot be verified; "
                              "restore it from a backup or retrain")
    if found != 1:
        raise CheckpointError(f"checkpoint {folder} has format {found} (written by tinygrad-seq {version}); this "
                              f"version reads formats 1 and {FORMAT}. Use the version of tinygrad-seq that wrote it")
    regular = [name for name in sorted(names) if os.path.isfile(os.path.join(folder, name))]
    return _read_all(directory, regular)


def read_checkpoint_files(path: str | os.PathLike) -> tuple[Path, dict[str, bytes], int]:
    """(folder, name -> verified bytes, format) of the checkpoint ``path``.

    Format 2: every file of the manifest is read once and checked against its
    size and SHA-256 before anything is parsed. Format 1 (no manifest):
    every file is read unverified. Raises CheckpointError naming the file.
    A save that swapped the folders during the read is not damage: a read
    that fails is tried twice more before the error is reported.
    """
    for attempt in range(3):
        try:
            folder = checkpoint_folder(path)
            return (folder, *_read_folder(folder))
        except (CheckpointError, FileNotFoundError) as error:
            if attempt == 2:
                if isinstance(error, FileNotFoundError):
                    raise CheckpointError(f"checkpoint {path}: {Path(error.filename or '?').name} vanished while "
                                          "it was read; try again") from None
                raise
            time.sleep(0.02)  # a save may have swapped the folders in the middle of the read: look again
    raise AssertionError("unreachable")


__all__ = [
    "CheckpointError", "FileSystem", "WriterLock", "atomic_write", "check_destination", "checkpoint_folder",
    "existing_checkpoint", "is_checkpoint", "read_checkpoint_files", "recover", "save_checkpoint",
]
