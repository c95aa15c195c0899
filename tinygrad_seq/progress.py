"""Progress bars for long work (training, sampling many texts): tqdm's, at a pace that suits where they are drawn.

On a terminal or in a notebook a bar redraws at tqdm's own pace; written to a
log file, every redraw is a line, so it redraws every LOG_REDRAW_S seconds.
"""
from __future__ import annotations

import sys
from typing import Any

LOG_REDRAW_S = 30.0
"""Seconds between a text progress bar's redraws where stderr is not a terminal (a log file gets a line each time)."""


def redraw_pace(bar_class: type) -> dict[str, float]:
    """tqdm's pace for a bar of ``bar_class``: its own on a terminal and in a notebook (a widget, whose stderr is no
    terminal either), every LOG_REDRAW_S seconds for text written to anything else."""
    isatty = getattr(sys.stderr, "isatty", None)
    if (isatty and isatty()) or "notebook" in bar_class.__module__:
        return {}
    return {"mininterval": LOG_REDRAW_S, "maxinterval": LOG_REDRAW_S}  # maxinterval: tqdm's monitor redraws every 10 s


def progress_bar(**options: Any) -> Any:
    """A ``tqdm.auto`` bar with ``options`` (total, desc, disable, ...), at the pace of :func:`redraw_pace`."""
    from tqdm.auto import tqdm

    return tqdm(**options, **redraw_pace(tqdm))
