"""The Sequence Models course's own functions, and a checker that grades a learner's versions with the engine.

=========  ===================================================================
module     contents
=========  ===================================================================
reference  rnn_cell_forward, rnn_forward, rnn_cell_backward, rnn_backward,
           lstm_cell_forward, lstm_forward, lstm_cell_backward, lstm_backward,
           gru_cell_forward, gru_cell_backward: plain NumPy, the notebook's
           signatures, layouts and keys, written from the equations
engine     the same computations on the library's cells; autograd's gradients
functions  the course's functions as the checker calls them; the random inputs
check      check(module | dict | path) -> Report
report     Report, FunctionReport, Mismatch: what differs, and a verdict per function
loading    a learner's .py file imported from its path; CourseImportError
=========  ===================================================================

``tinygrad-seq check-course FILE`` runs ``check`` from the command line.
"""
from .check import check
from .loading import CourseImportError
from .reference import (
    gru_cell_backward,
    gru_cell_forward,
    lstm_backward,
    lstm_cell_backward,
    lstm_cell_forward,
    lstm_forward,
    rnn_backward,
    rnn_cell_backward,
    rnn_cell_forward,
    rnn_forward,
)
from .report import FunctionReport, Mismatch, Report

__all__ = [
    "CourseImportError", "FunctionReport", "Mismatch", "Report", "check", "gru_cell_backward", "gru_cell_forward",
    "lstm_backward", "lstm_cell_backward", "lstm_cell_forward", "lstm_forward", "rnn_backward", "rnn_cell_backward",
    "rnn_cell_forward", "rnn_forward",
]
