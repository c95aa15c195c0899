"""``ts.course.check``: a learner's own course functions against the engine's answers.

Each of the course's functions the namespace defines (rnn_cell_forward,
rnn_backward, lstm_cell_backward, ..., gru_cell_backward; see
``functions.FUNCTIONS``) is called on random float64 inputs from a fixed seed
(n_x = 3, n_a = 5, n_y = 2, m = 4, T_x = 4) and its outputs are compared with
what the engine computes for the same inputs (``engine``: the library's cells
and autograd, no hand-written derivative).

- **Agreement** is ``np.allclose(received, expected, rtol=1e-7, atol=1e-9)``:
  every entry within 1e-7 of the engine's, relative, or 1e-9 absolute for
  entries near zero; shapes must be exactly the course's.
- A **backward** function gets the cache that the learner's own forward
  function made (so a bug in the forward shows there too, and the verdict says
  so); where the namespace has no such forward, or it fails, the cache of
  ``ts.course``'s reference forward is used instead. Each function gets the
  same upstream gradient the engine starts its backward from.
- **t**, for the sequence functions, is the first time step (from 1) where an
  output goes wrong. For a forward function: the first step t whose slice
  ``[..., t − 1]`` differs. For a backward function: the first k for which
  the output already differs when the upstream gradient stops after step k
  (da⟨t⟩ = 0 for t > k), i.e. the first step whose loss gets a wrong
  gradient. A learner whose rnn_backward leaves out step 2's contribution to
  dWaa reads "rnn_backward: dWaa differs from t = 2 on"; one whose da_prev
  is wrong sees da0 differ from t = 1 and the rest from t = 2, the first step
  whose gradient must cross a time step.
- Only what differs is listed: each output is compared on its own, so a
  wrong dWaa leaves dx, da0, dWax and dba matching.
- A function that raises, or returns something other than the course's tuple
  or dict, is reported with what happened; nothing the learner's code does
  escapes from ``check``. What it prints is not shown. An error names the
  learner's line it came from: the innermost frame outside Python's and the
  installed packages' code and this library ("raised KeyError: 'Wy' (line 12
  of rnn.py, in rnn_forward: n_y, n_a = parameters["Wy"].shape)").

>>> import tinygrad_seq as ts
>>> print(ts.course.check({"rnn_cell_forward": ts.course.rnn_cell_forward}))
rnn_cell_forward: a_next, yt_pred match
not checked (not defined): rnn_cell_backward, rnn_forward, rnn_backward, lstm_cell_forward, lstm_cell_backward, lstm_forward, lstm_backward, gru_cell_forward, gru_cell_backward
all 1 function(s) match the engine
"""
from __future__ import annotations

import contextlib
import copy
import difflib
import io
import linecache
import math
import site
import sys
import sysconfig
import traceback
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from ..tensor import Tensor
from . import reference
from .functions import BY_NAME, FUNCTIONS, CourseFunction, Inputs
from .loading import namespace_items
from .report import FunctionReport, Mismatch, Report

RTOL, ATOL = 1e-7, 1e-9


def check(namespace: ModuleType | Mapping[str, Any] | str | Path, seed: int = 0) -> Report:
    """Check the course functions that ``namespace`` defines against the engine; see the module's docstring.

    namespace: a module, a dict of functions, or the path of a .py file (a
    file that cannot be imported raises ``CourseImportError``). ``seed`` picks
    the random inputs. Returns a ``Report``: ``.ok``, ``.mismatches``, and
    ``str(report)``, one verdict per function.
    """
    items = namespace_items(namespace)
    inputs = Inputs.random(seed)
    reports: dict[str, FunctionReport] = {}
    not_checked = []
    for function in FUNCTIONS:
        learner = items.get(function.name)
        if learner is None:
            not_checked.append(function.name)
        elif not callable(learner):
            reports[function.name] = _failed(function, f"is {_kind(learner)}, not a function")
        elif function.is_backward:
            reports[function.name] = _check_backward(function, learner, items.get(function.forward),
                                                     reports.get(function.forward), inputs)
        else:
            reports[function.name] = _check_forward(function, learner, inputs)
    return Report(list(reports.values()), not_checked, _near_misses(items, not_checked))


def _near_misses(items: Mapping[str, Any], not_checked: list[str]) -> dict[str, str]:
    """{a function the namespace defines: the course function it is probably meant to be} ("rnn_cell_foward")."""
    course = {function.name for function in FUNCTIONS}
    found = {}
    for name, value in items.items():
        if callable(value) and not name.startswith("_") and name not in course:  # a course name is checked as itself
            close = difflib.get_close_matches(name, not_checked, n=1, cutoff=0.85)
            if close:
                found[name] = close[0]
    return found


# ---------------------------------------------------------------- forward functions


def _check_forward(function: CourseFunction, learner: Any, inputs: Inputs) -> FunctionReport:
    outcome = _forward_outputs(function, learner, inputs)
    if isinstance(outcome, str):
        return _failed(function, outcome)
    outputs, _ = outcome
    expected = inputs.answers(function)
    mismatches = []
    for name, received in zip(function.outputs, outputs):
        mismatch = _compare(function, name, received, expected[name])
        if mismatch and function.sequence and mismatch.max_diff is not None:
            mismatch = replace(mismatch, t=_first_differing_step(_numbers(received), expected[name]))
        if mismatch:
            mismatches.append(mismatch)
    return FunctionReport(function.name, function.outputs, mismatches)


def _forward_outputs(function: CourseFunction, learner: Any, inputs: Inputs) -> tuple[list, Any] | str:
    """(outputs, cache) from calling a forward function, or what went wrong."""
    value, error = _call(learner, inputs.forward_arguments(function))
    if error:
        return error
    if not isinstance(value, (tuple, list)) or len(value) != len(function.outputs) + 1:
        return f"returned {_kind(value)}; the course's {function.name} returns ({', '.join(function.outputs)}, {_caches(function)})"
    return list(value[:-1]), value[-1]


def _first_differing_step(received: np.ndarray, expected: np.ndarray) -> int:
    """The first t (from 1) whose slice [..., t − 1] differs."""
    return next(t + 1 for t in range(expected.shape[-1]) if not _agree(received[..., t], expected[..., t]))


# ---------------------------------------------------------------- backward functions


def _check_backward(function: CourseFunction, learner: Any, forward: Any | None, forward_report: FunctionReport | None,
                    inputs: Inputs) -> FunctionReport:
    cache, note = _cache(function, forward, inputs)
    received = _backward_outputs(function, learner, inputs, cache)
    if isinstance(received, str):
        return _failed(function, received, note)
    expected = inputs.answers(function)
    mismatches = _backward_mismatches(function, received, expected)
    if mismatches and function.sequence:
        mismatches = _with_first_steps(function, learner, inputs, cache, mismatches)
    if mismatches and not note and forward_report is not None and not forward_report.ok:
        # Run again on the reference's cache: says whether the backward is wrong itself or only fed a wrong cache
        own = _backward_outputs(function, learner, inputs, _reference_cache(function, inputs))
        caches = _caches(function)
        if isinstance(own, str):  # it failed there: what happened is the verdict
            verdict = own
        elif _backward_mismatches(function, own, expected):
            verdict = "it differs too: a bug of its own"
        else:
            verdict = f"your {function.name} matches"
        note = f"through the {caches} of your {function.forward}, which differs; given ts.course's {caches}, {verdict}"
    return FunctionReport(function.name, function.outputs, mismatches, note)


def _cache(function: CourseFunction, forward: Any | None, inputs: Inputs) -> tuple[Any, str]:
    """The cache the backward function is given: the learner's forward's, else the reference's (and why)."""
    if forward is None:
        why = f"{function.forward} is not defined here"
    else:
        outcome = _forward_outputs(BY_NAME[function.forward], forward, inputs) if callable(forward) else "not a function"
        if not isinstance(outcome, str):
            return outcome[1], ""
        why = f"your {function.forward} {'failed' if callable(forward) else 'is not a function'}"
    return _reference_cache(function, inputs), f"given the {_caches(function)} of ts.course.{function.forward}: {why}"


def _caches(function: CourseFunction) -> str:
    """What a forward function hands its backward, as the course names it: one step's "cache", a sequence's "caches"."""
    return "caches" if function.sequence else "cache"


def _backward_mismatches(function: CourseFunction, received: Mapping[str, Any], expected: Mapping[str, Any]) -> list[Mismatch]:
    """A Mismatch for each output of a backward function's dict that is not the engine's."""
    return [m for name in function.outputs if (m := _compare(function, name, received.get(name), expected[name]))]


def _reference_cache(function: CourseFunction, inputs: Inputs) -> Any:
    """The cache (caches) ts.course's own forward gives the backward ``function`` on ``inputs``."""
    return getattr(reference, function.forward)(*inputs.forward_arguments(function))[-1]


def _backward_outputs(function: CourseFunction, learner: Any, inputs: Inputs, cache: Any,
                      until: int | None = None) -> Mapping[str, Any] | str:
    """The dict a backward function returns (the upstream gradient cut after ``until``), or what went wrong."""
    value, error = _call(learner, (*inputs.upstream(function, until), cache))
    if error:
        return error
    if not isinstance(value, Mapping):
        return f"returned {_kind(value)}; the course's {function.name} returns a dict with {', '.join(function.outputs)}"
    return value


def _with_first_steps(function: CourseFunction, learner: Any, inputs: Inputs, cache: Any,
                      mismatches: list[Mismatch]) -> list[Mismatch]:
    """Each differing output of a sequence backward with its t: the first k for which, with the upstream
    gradient cut after step k, it already differs (T_x when only the whole sequence shows it)."""
    pending = [m.gradient for m in mismatches if m.max_diff is not None]
    first: dict[str, int] = {}
    for until in range(1, inputs.steps):
        if not pending:
            break
        received = _backward_outputs(function, learner, inputs, cache, until)
        expected = inputs.answers(function, until)
        for name in list(pending):
            if isinstance(received, str) or _compare(function, name, received.get(name), expected[name]):
                first[name] = until
                pending.remove(name)
    return [replace(m, t=first.get(m.gradient, inputs.steps)) if m.max_diff is not None else m for m in mismatches]


# ---------------------------------------------------------------- calling and comparing


def _call(learner: Any, arguments: tuple) -> tuple[Any, str | None]:
    """learner(*arguments) on copies (a function may change its inputs in place); (value, None) or (None, what it raised)."""
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return learner(*copy.deepcopy(arguments)), None
    except (Exception, SystemExit) as error:  # the learner's bug is the report's content, never the checker's crash
        return None, "raised " + " ".join(f"{type(error).__name__}: {error}".split()) + _learners_line(error) + _key_hint(error, arguments)


def _key_hint(error: BaseException, arguments: tuple) -> str:
    """For a KeyError on a name: the keys of the dicts the function was given (its parameters, inside a cache too)
    and the likeliest one meant ("; the dicts it was given hold Waa, Wax, Wya, ba, by: did you mean 'Wya'?")."""
    if not isinstance(error, KeyError) or not error.args or not isinstance(error.args[0], str):
        return ""
    keys, pending = set(), [(argument, 0) for argument in arguments]
    while pending:  # the arguments, and what tuples and lists of them hold, three levels down
        value, depth = pending.pop()
        if isinstance(value, Mapping):
            keys.update(key for key in value if isinstance(key, str))
        elif isinstance(value, (tuple, list)) and depth < 3:
            pending += [(item, depth + 1) for item in value]
    if not keys or error.args[0] in keys:  # a dict of its own making: nothing to tell
        return ""
    close = difflib.get_close_matches(error.args[0], keys, n=1)
    return f"; the dicts it was given hold {', '.join(sorted(keys))}" + (f": did you mean {close[0]!r}?" if close else "")


_LIBRARIES = {"numpy", "tinygrad_seq"}  # modules whose frames are never the learner's, wherever they are installed


def _folders() -> tuple[Path, list[Path]]:
    """(Python's standard library, where installed packages live: the environment's site-packages, the user's
    (pip install --user), and a venv's base Python's (a venv with system site-packages))."""
    packages = {*site.getsitepackages(), site.getusersitepackages(), *(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))}
    return Path(sysconfig.get_paths()["stdlib"]).resolve(), [Path(folder).resolve() for folder in packages]


def _is_learners(frame: Any, stdlib: Path, packages: list[Path]) -> bool:
    """Whether a frame runs the learner's code: not NumPy's or this library's (by module), not a standard module's
    (by module and place: a learner's own random.py is theirs), nor any installed package's."""
    module = (frame.f_globals.get("__name__") or "").partition(".")[0]
    path = Path(frame.f_code.co_filename).resolve()
    standard = module in sys.stdlib_module_names and (frame.f_code.co_filename.startswith("<frozen") or path.is_relative_to(stdlib))
    return not (module in _LIBRARIES or standard or any(path.is_relative_to(folder) for folder in packages))


def _learners_line(error: BaseException) -> str:
    """' (line 12 of rnn.py, in rnn_forward: a = np.tanh(z))': where in the learner's code ``error`` was raised, the
    innermost frame that is the learner's (:func:`_is_learners`); '' when there is none."""
    stdlib, packages = _folders()
    frames = [(frame, line) for frame, line in traceback.walk_tb(error.__traceback__) if _is_learners(frame, stdlib, packages)]
    if not frames:
        return ""
    frame, line = frames[-1]
    code = linecache.getline(frame.f_code.co_filename, line).strip()
    return f" (line {line} of {Path(frame.f_code.co_filename).name}, in {frame.f_code.co_name}{': ' + code if code else ''})"


def _compare(function: CourseFunction, name: str, received: Any, expected: np.ndarray) -> Mismatch | None:
    """None when ``received`` agrees with ``expected``; else the record of how it differs (t left to the caller)."""
    def mismatch(max_diff: float | None, note: str = "") -> Mismatch:
        return Mismatch(function.name, name, None, expected, received, max_diff, note)

    if received is None:
        return mismatch(None, "is missing" if function.is_backward else "is None")
    try:
        array = _numbers(received)
    except (TypeError, ValueError):
        return mismatch(None, f"is {_kind(received)}, not an array of numbers")
    if array.shape != expected.shape:
        return mismatch(None, f"has shape {array.shape}, expected {expected.shape}")
    if _agree(array, expected):
        return None
    difference = np.abs(array - expected)
    return mismatch(float(difference.max()) if np.isfinite(difference).all() else math.inf)


def _numbers(received: Any) -> np.ndarray:
    """What a learner's function returned, as float64: a tensor of this library by its values (NumPy may not take one
    that requires grad), anything else as NumPy reads it."""
    return np.asarray(received.numpy() if isinstance(received, Tensor) else received, dtype=np.float64)


def _agree(received: np.ndarray, expected: np.ndarray) -> bool:
    return bool(np.allclose(received, expected, rtol=RTOL, atol=ATOL))


def _failed(function: CourseFunction, what: str, note: str = "") -> FunctionReport:
    """The report on a function that could not be compared at all."""
    return FunctionReport(function.name, function.outputs, [Mismatch(function.name, None, None, None, None, None, what)], note)


def _kind(value: Any) -> str:
    """'None', 'a tuple of 2 items', 'an ndarray', ... for a report."""
    if value is None:
        return "None"
    name = type(value).__name__
    article = "an" if name[0] in "aeiou" or name == "ndarray" else "a"  # "an ndarray", as it is said
    if isinstance(value, (tuple, list)):
        return f"{article} {name} of {len(value)} item{'s' if len(value) != 1 else ''}"
    return f"{article} {name}"
