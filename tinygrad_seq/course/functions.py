"""The course's functions as the checker sees them: what each takes and returns, the inputs it is called with,
and the engine's answer for those inputs."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from . import engine


@dataclass(frozen=True)
class CourseFunction:
    """One of the notebook's functions.

    ``outputs``: what is compared, a forward function's outputs (its tuple
    before the cache) or a backward function's dict keys. ``forward``: for a
    backward function, the forward function whose cache it takes.
    """

    name: str
    outputs: tuple[str, ...]
    family: str  # "rnn", "lstm" or "gru": which parameters it reads
    sequence: bool = False  # over T_x steps (x (n_x, m, T_x)) rather than one
    forward: str | None = None

    @property
    def is_backward(self) -> bool:
        return self.forward is not None


LSTM_GRADIENTS = ("dWf", "dbf", "dWi", "dbi", "dWc", "dbc", "dWo", "dbo")
FUNCTIONS = (
    CourseFunction("rnn_cell_forward", ("a_next", "yt_pred"), "rnn"),
    CourseFunction("rnn_cell_backward", ("dxt", "da_prev", "dWax", "dWaa", "dba"), "rnn", forward="rnn_cell_forward"),
    CourseFunction("rnn_forward", ("a", "y_pred"), "rnn", sequence=True),
    CourseFunction("rnn_backward", ("dx", "da0", "dWax", "dWaa", "dba"), "rnn", sequence=True, forward="rnn_forward"),
    CourseFunction("lstm_cell_forward", ("a_next", "c_next", "yt_pred"), "lstm"),
    CourseFunction("lstm_cell_backward", ("dxt", "da_prev", "dc_prev", *LSTM_GRADIENTS), "lstm", forward="lstm_cell_forward"),
    CourseFunction("lstm_forward", ("a", "y", "c"), "lstm", sequence=True),
    CourseFunction("lstm_backward", ("dx", "da0", *LSTM_GRADIENTS), "lstm", sequence=True, forward="lstm_forward"),
    CourseFunction("gru_cell_forward", ("a_next", "yt_pred"), "gru"),
    CourseFunction("gru_cell_backward", ("dxt", "da_prev", "dWu", "dbu", "dWr", "dbr", "dWc", "dbc"), "gru", forward="gru_cell_forward"),
)
BY_NAME = {function.name: function for function in FUNCTIONS}

PARAMETER_KEYS = {
    "rnn": ("Wax", "Waa", "Wya", "ba", "by"),
    "lstm": ("Wf", "bf", "Wi", "bi", "Wc", "bc", "Wo", "bo", "Wy", "by"),
    "gru": ("Wu", "bu", "Wr", "br", "Wc", "bc", "Wy", "by"),
}
ENGINE: dict[tuple[str, bool], Callable[..., engine.Answers]] = {
    ("rnn", False): engine.rnn_step,
    ("rnn", True): engine.rnn_sequence,
    ("lstm", False): engine.lstm_step,
    ("lstm", True): engine.lstm_sequence,
    ("gru", False): engine.gru_step,
}


@dataclass(frozen=True)
class Inputs:
    """Random float64 inputs and upstream gradients, the same for every learner (a fixed seed).

    Sizes n_x = 3, n_a = 5, n_y = 2, m = 4, T_x = 4; a⟨0⟩ is not zero, so step 1
    adds to ∂L/∂W_aa too.
    """

    parameters: dict[str, dict[str, np.ndarray]]  # family -> the notebook's parameter dict
    xt: np.ndarray  # (n_x, m)
    a_prev: np.ndarray  # (n_a, m)
    c_prev: np.ndarray  # (n_a, m)
    da_next: np.ndarray  # (n_a, m)
    dc_next: np.ndarray  # (n_a, m)
    x: np.ndarray  # (n_x, m, T_x)
    a0: np.ndarray  # (n_a, m)
    da: np.ndarray  # (n_a, m, T_x)

    @classmethod
    def random(cls, seed: int = 0, n_x: int = 3, n_a: int = 5, n_y: int = 2, m: int = 4, T_x: int = 4) -> Inputs:
        rng = np.random.default_rng(seed)
        shapes = {"Wax": (n_a, n_x), "Waa": (n_a, n_a), "Wya": (n_y, n_a), "Wy": (n_y, n_a), "by": (n_y, 1)}

        def shape(key: str) -> tuple[int, ...]:
            if key in shapes:
                return shapes[key]
            return (n_a, 1) if key.startswith("b") else (n_a, n_a + n_x)  # a gate's bias, or its matrix on [a⟨t−1⟩; x⟨t⟩]

        def parameters(keys: tuple[str, ...]) -> dict[str, np.ndarray]:
            return {key: rng.standard_normal(shape(key)) for key in keys}

        return cls(
            parameters={family: parameters(keys) for family, keys in PARAMETER_KEYS.items()},
            xt=rng.standard_normal((n_x, m)), a_prev=rng.standard_normal((n_a, m)), c_prev=rng.standard_normal((n_a, m)),
            da_next=rng.standard_normal((n_a, m)), dc_next=rng.standard_normal((n_a, m)),
            x=rng.standard_normal((n_x, m, T_x)), a0=rng.standard_normal((n_a, m)), da=rng.standard_normal((n_a, m, T_x)),
        )

    @property
    def steps(self) -> int:
        return self.x.shape[2]

    def forward_arguments(self, function: CourseFunction) -> tuple:
        """What the function's forward (the function itself, or the one a backward takes its cache from) is called with."""
        parameters = self.parameters[function.family]
        if function.sequence:
            return self.x, self.a0, parameters
        if function.family == "lstm":
            return self.xt, self.a_prev, self.c_prev, parameters
        return self.xt, self.a_prev, parameters

    def upstream(self, function: CourseFunction, until: int | None = None) -> tuple:
        """The upstream gradients a backward function takes before the cache; ``until``: da⟨t⟩ = 0 for t > until."""
        if function.sequence:
            da = self.da.copy()
            if until is not None:
                da[:, :, until:] = 0
            return (da,)
        if function.family == "lstm":
            return self.da_next, self.dc_next
        return (self.da_next,)

    def answers(self, function: CourseFunction, until: int | None = None) -> engine.Answers:
        """The engine's outputs and gradients for these inputs (and the upstream gradient cut after ``until``)."""
        answer = ENGINE[function.family, function.sequence]
        return answer(*self.forward_arguments(function), *self.upstream(function, until))
