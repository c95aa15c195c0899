"""What ``ts.course.check`` found: one record per output that is not the engine's, and a short verdict per function."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Mismatch:
    """One output of one of the learner's functions that differs from the engine's answer.

    ``gradient`` is the output's name as the course writes it: a backward
    function's dict key ("dWaa", "da_prev", ...) or a forward function's
    output ("a_next", "yt_pred", "a", "y_pred", "c", ...); None when the
    function as a whole failed (it raised, or returned something else than
    the course's tuple or dict). ``t`` is the first time step (from 1) where a
    sequence function's output goes wrong, None for the one-step functions
    (see ``ts.course.check`` for how it is found). ``max_diff`` is
    max |received − expected|, inf where received holds NaN or inf, None when
    the two cannot be compared; ``note`` then says why ("has shape (5,),
    expected (5, 1)", "is missing", "raised KeyError: 'Wax'").
    """

    function: str
    gradient: str | None
    t: int | None
    expected: np.ndarray | None
    received: Any
    max_diff: float | None
    note: str = ""


@dataclass
class FunctionReport:
    """The verdict on one function: the outputs compared and those that differ."""

    function: str
    outputs: tuple[str, ...]
    mismatches: list[Mismatch] = field(default_factory=list)
    note: str = ""  # where a backward function's caches came from, when that explains something

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def __str__(self) -> str:
        failed = [m for m in self.mismatches if m.gradient is None]
        if failed:
            return f"{self.function}: {failed[0].note}" + (f" ({self.note})" if self.note else "")
        phrases = []
        differing = [m for m in self.mismatches if not m.note]
        for t in sorted({m.t for m in differing}, key=lambda t: -1 if t is None else t):
            group = [m for m in differing if m.t == t]
            phrases.append(f"{', '.join(m.gradient for m in group)} {'differs' if len(group) == 1 else 'differ'}"
                           + (f" from t = {t} on" if t is not None else "") + _by_how_much(group))
        phrases += [f"{m.gradient} {m.note}" for m in self.mismatches if m.note]
        wrong = {m.gradient for m in self.mismatches}
        matching = [name for name in self.outputs if name not in wrong]
        if matching:
            phrases.append(f"{', '.join(matching)} {'matches' if len(matching) == 1 else 'match'}")
        return f"{self.function}: {'; '.join(phrases)}" + (f" ({self.note})" if self.note else "")


def _by_how_much(group: list[Mismatch]) -> str:
    """', by up to 2.25': the largest max_diff of outputs that differ together; NaN or inf said as such."""
    largest = max((m.max_diff for m in group if m.max_diff is not None), default=None)
    if largest is None:
        return ""
    return ", with NaN or inf" if np.isinf(largest) else f", by up to {largest:.3g}"


@dataclass
class Report:
    """``ts.course.check``'s answer: ``ok``, ``mismatches``, and ``str(report)``, one line per function checked."""

    functions: list[FunctionReport]
    not_checked: list[str]
    near_misses: dict[str, str] = field(default_factory=dict)  # a name defined -> the course function it resembles

    @property
    def ok(self) -> bool:
        """True when the namespace defines course functions and every one matches the engine (nothing checked is no pass)."""
        return bool(self.functions) and all(function.ok for function in self.functions)

    @property
    def mismatches(self) -> list[Mismatch]:
        """Every output that differs, function by function in the course's order."""
        return [m for function in self.functions for m in function.mismatches]

    def __str__(self) -> str:
        lines = [str(function) for function in self.functions]
        if self.not_checked:
            lines.append(f"not checked (not defined): {', '.join(self.not_checked)}")
        if self.near_misses:
            lines.append("did you mean: " + ", ".join(f"{name} -> {meant}" for name, meant in self.near_misses.items())
                         + "? (the checker finds a function by its course name)")
        differing = sum(not function.ok for function in self.functions)
        if not self.functions:
            lines.append("none of the course's functions is defined here: nothing to check")
        elif differing:
            lines.append(f"{differing} of {len(self.functions)} function(s) differ from the engine")
        else:
            lines.append(f"all {len(self.functions)} function(s) match the engine")
        return "\n".join(lines)
