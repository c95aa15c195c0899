"""Where a warning points: at the first caller outside this package.

A warning raised deep inside a layer call (a cell's steps that cannot be
recorded, a dropout that changes nothing) is about the user's line, not the
library's; how deep that line is depends on the path the call took (nn.LSTM,
Stacked, a model of ``tinygrad_seq.models``), so it is counted, not fixed.
Imports nothing of the package: every layer of it may use this.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

# The package's folder as the frames name their files: as imported (a symlinked path stays one), and resolved.
_PACKAGES = tuple({os.path.dirname(os.path.abspath(__file__)) + os.sep, str(Path(__file__).resolve().parent) + os.sep})


def callers_level() -> int:
    """The ``stacklevel`` that points a warning, raised by the function calling this, at the first caller outside
    this package: the user's line that called the layer or built it."""
    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGES):
        frame, level = frame.f_back, level + 1
    return level
