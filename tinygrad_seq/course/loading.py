"""Finding a learner's functions: in a module, a dict, or a .py file imported from its path."""
from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import sys
import traceback
import types
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any


class CourseImportError(Exception):
    """A learner's file that cannot be imported; the message is one line: the file, the error, and its line."""


def namespace_items(namespace: Any) -> Mapping[str, Any]:
    """The names a module, a dict or a .py file (str or Path) defines."""
    if isinstance(namespace, (str, os.PathLike)):
        namespace = import_file(Path(namespace))
    if isinstance(namespace, types.ModuleType):
        return vars(namespace)
    if isinstance(namespace, Mapping):
        return namespace
    raise TypeError(f"ts.course.check: give a module, a dict of functions, or the path of a .py file; got {type(namespace).__name__}")


def import_file(path: Path) -> types.ModuleType:
    """Import the .py file at ``path`` as a fresh module, leaving ``sys.modules`` and ``sys.path`` as they were.

    The file's folder is on ``sys.path`` while it runs, so it can import the
    course's helpers beside it (``from rnn_utils import softmax``); those
    modules, and the file itself, are taken out of ``sys.modules`` afterwards,
    so checking an edited file runs the new code. What the file prints while
    it is imported is not shown.
    """
    if not path.is_file():
        raise CourseImportError(f"{path}: {'is a folder' if path.is_dir() else 'no such file'}; give the .py file with your functions")
    if path.suffix != ".py":
        raise CourseImportError(f"{path}: not a .py file; give the Python file with your functions (a notebook: File > Download as .py)")
    name = f"_tinygrad_seq_course_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    with _importing_beside(path, name, module):
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                spec.loader.exec_module(module)
        except (Exception, SystemExit) as error:
            raise CourseImportError(f"cannot import {path}: {_describe(error, path)}") from error
    return module


@contextlib.contextmanager
def _importing_beside(path: Path, name: str, module: types.ModuleType) -> Iterator[None]:
    folder = path.resolve().parent
    before = set(sys.modules)
    sys.path.insert(0, str(folder))
    sys.modules[name] = module  # dataclasses and pickling look the module up while it runs
    try:
        yield
    finally:
        sys.path.remove(str(folder))
        for added in set(sys.modules) - before:  # the file and its helpers beside it; libraries it imported stay loaded
            file = getattr(sys.modules[added], "__file__", None)
            if added == name or (file and Path(file).resolve().parent == folder):
                del sys.modules[added]


def _describe(error: BaseException, path: Path) -> str:
    """``TypeError: ... (line 12)``: the error and the line of the learner's file it came from, on one line."""
    message = " ".join(f"{type(error).__name__}: {error}".split())
    if isinstance(error, SyntaxError):
        return message  # its message names the line already
    lines = [frame.lineno for frame in traceback.extract_tb(error.__traceback__) if Path(frame.filename).resolve() == path.resolve()]
    return f"{message} (line {lines[-1]})" if lines else message
