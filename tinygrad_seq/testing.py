"""Tools for testing your own cells and ops: ``ts.testing.check_cell``."""
from __future__ import annotations

import copy

import numpy as np

from . import settings
from .backend import to_host
from .gradcheck import grad_check
from .nn.cells import RecurrentCell, RNNCell, StateError
from .nn.recurrent import Bidirectional, Recurrent, Stacked
from .modes import no_grad
from .tensor import Tensor


def _fail(check: str, detail: str, cause: BaseException | None = None) -> None:
    raise AssertionError(f"check_cell: {check}: {detail}") from cause


def _manual_run(cell: RecurrentCell, x: np.ndarray, steps: range) -> list[np.ndarray]:
    """The state after running ``cell`` by hand over ``steps`` of one sequence x (T, I)."""
    state = None
    with no_grad():
        for t in steps:
            state = cell(Tensor(x[t : t + 1]), state)
    return [p.numpy()[0] for p in cell.state_parts(state)]


def check_cell(cell: RecurrentCell, batch_size: int = 2, steps: int = 3, seed: int = 0) -> bool:
    """Prove a cell right and usable everywhere; True, or an AssertionError saying what failed.

    On a float64 copy of ``cell``:

    0. one step runs, and ``forward`` returns a new state that fits
       ``state_names``: one (B, H) Tensor per name (``cell.check_returned``);
    1. a finite-difference gradient check of one step, with respect to the
       input, every part of the state and every parameter;
    2. the base-class contract: ``initial_state`` has ``state_names``' structure
       and (B, H) parts, ``cell(x)`` equals ``cell(x, initial_state)``;
    3. Recurrent, Bidirectional and Stacked with ``lengths`` (the first
       sequence full, the others shorter): output shapes, zeros past each
       length, final states equal to running the cell by hand over each
       sequence's valid steps (backwards for the reverse direction), and a
       gradient check of the unrolled sequence;
    4. every path of the cell against the transparent one (the recorded
       path: one node per step replayed from a tape; the cell's kernel where
       it has one), through Bidirectional and a 2-layer Stacked with
       ``lengths``: outputs, the input's gradient and every parameter's
       gradient equal to 1e-10.
    """
    if not isinstance(cell, RecurrentCell):
        raise TypeError(f"check_cell: expects an nn.RecurrentCell; got {type(cell).__name__}")
    cell = copy.deepcopy(cell).double()
    rng = np.random.default_rng(seed)
    size_in, size_h, names = cell.input_size, cell.hidden_size, cell.state_names
    params = list(cell.parameters())
    x = Tensor(rng.standard_normal((batch_size, size_in)), requires_grad=True, name="x")
    parts = [Tensor(rng.standard_normal((batch_size, size_h)) * 0.5, requires_grad=True, name=n) for n in names]
    n_parts = len(parts)

    def one_step(x, *rest):
        return cell.state_parts(cell(x, cell.from_parts(tuple(rest[:n_parts]))))

    state = cell.from_parts(tuple(parts))
    try:  # forward itself, whatever path cell(x, state) takes (a kernel runs no forward), then the call
        with no_grad():
            cell.check_returned(cell.forward(x, state), batch_size)
            cell(x, state)
    except StateError as error:
        _fail("the new state forward returns", str(error), error)
    except Exception as error:  # noqa: BLE001  a cell that cannot run a step fails the check, saying why
        _fail("one step", f"running one step of the cell raised {type(error).__name__}: {error}", error)

    try:
        grad_check(one_step, [x, *parts, *params])
    except AssertionError as error:
        _fail("one step's gradients", str(error))

    initial = cell.initial_state(batch_size, like=x)
    initial_parts = cell.state_parts(initial)
    if len(initial_parts) != len(names) or any(p.shape != (batch_size, size_h) for p in initial_parts):
        _fail("initial_state", f"expected {len(names)} part(s) of shape {(batch_size, size_h)}; got {[p.shape for p in initial_parts]}")
    with no_grad():
        from_zeros = [p.numpy() for p in cell.state_parts(cell(x, initial))]
        called = cell(x)
        from_call = [p.numpy() for p in cell.state_parts(called)]
        try:  # cell(x) hands forward the initial state, so forward's own start is checked by calling it
            from_forward = [p.numpy() for p in cell.state_parts(cell.forward(x))]
        except Exception as error:
            _fail("state=None", f"forward(x) without a state raised {type(error).__name__}: {error}. Start forward with "
                                "state = self.prepare(x, state), which turns None into the initial state")
        forward_from_zeros = [p.numpy() for p in cell.state_parts(cell.forward(x, initial))]  # forward's path, not a kernel's
    for name, start, expected in (("cell(x)", from_call, from_zeros), ("cell.forward(x)", from_forward, forward_from_zeros)):
        if not all(np.array_equal(a, b) for a, b in zip(start, expected)):
            _fail("state=None", f"{name} differs from {name[:-1]}, cell.initial_state(B))")
    if cell.output(called).shape != (batch_size, size_h):
        _fail("output", f"cell.output(state) must have shape {(batch_size, size_h)}")

    sequence = rng.standard_normal((steps, batch_size, size_in))
    lengths = [steps] + [max(1, steps - 1 - b % steps) for b in range(1, batch_size)]
    forward = Recurrent(cell)
    both = Bidirectional(Recurrent(cell))
    stacked = Stacked([Recurrent(cell), Recurrent(RNNCell(size_h, size_h).double())])
    for name, wrapper, width in (("Recurrent", forward, size_h), ("Bidirectional", both, 2 * size_h), ("Stacked", stacked, size_h)):
        with no_grad():
            out, final = wrapper(Tensor(sequence), None, lengths)
        if out.shape != (steps, batch_size, width):
            _fail(name, f"outputs have shape {out.shape}; expected {(steps, batch_size, width)}")
        values = out.numpy()
        for b, length in enumerate(lengths):
            if np.any(values[length:, b] != 0):
                _fail(name, f"sequence {b} of length {length} has non-zero outputs past its end")

    with no_grad():  # once for the whole batch: each sequence's final state is read from these
        _, final = forward(Tensor(sequence), None, lengths)
        _, (_, final_reverse) = both(Tensor(sequence), None, lengths)
    for b, length in enumerate(lengths):
        expected = _manual_run(cell, sequence[:, b], range(length))
        got = [p.numpy()[b] for p in cell.state_parts(final)]
        if not all(np.allclose(e, g, rtol=1e-12, atol=1e-12) for e, g in zip(expected, got)):
            _fail("Recurrent with lengths", f"the final state of sequence {b} is not the state at its last valid step {length}")
        reverse_cell = both.backward_layer.cell
        expected_reverse = _manual_run(reverse_cell, sequence[:, b], range(length - 1, -1, -1))
        got_reverse = [p.numpy()[b] for p in reverse_cell.state_parts(final_reverse)]
        if not all(np.allclose(e, g, rtol=1e-12, atol=1e-12) for e, g in zip(expected_reverse, got_reverse)):
            _fail("Bidirectional with lengths", f"the reverse direction of sequence {b} must start at its last valid step {length}")

    xs = Tensor(sequence, requires_grad=True, name="x")

    def unrolled(xs, *weights):
        out, (forward_final, reverse_final) = both(xs, None, lengths)
        return (out, *cell.state_parts(forward_final), *cell.state_parts(reverse_final))

    try:
        grad_check(unrolled, [xs, *both.parameters()])
    except AssertionError as error:
        _fail("gradients through Bidirectional with lengths", str(error))
    _check_paths(cell, [("Bidirectional", both), ("Stacked", stacked)], sequence, lengths)
    return True


def paths(cell: RecurrentCell) -> list[str]:
    """The paths ``cell``'s steps can take besides the transparent one: "recorded", and "kernel" where it has one."""
    if not cell.fused:
        return []
    return ["recorded", "kernel"] if cell.kernel is not None else ["recorded"]


def on_path(path: str) -> settings.override:
    """Run every cell on ``path`` ("transparent", "recorded" or "kernel") inside the block."""
    if path not in ("transparent", "recorded", "kernel"):
        raise ValueError(f"on_path: the paths are 'transparent', 'recorded' and 'kernel'; got {path!r}")
    return settings.override(transparent=path == "transparent", kernels=path == "kernel")


def _run_on_path(model, sequence: np.ndarray, lengths: list[int], path: str) -> list[np.ndarray]:
    """Outputs, the input's gradient and every parameter's gradient of a fresh copy of ``model``, on ``path``."""
    model = copy.deepcopy(model)
    with on_path(path):
        for _ in range(3):  # the recorded path records, then checks its first replay, then replays a trusted tape
            model.zero_grad()
            xs = Tensor(sequence, requires_grad=True)
            out, _ = model(xs, None, lengths)
            (out * Tensor(np.random.default_rng(1).standard_normal(out.shape))).sum().backward()
    return [out.numpy(), to_host(xs.grad)] + [to_host(p.grad) for p in model.parameters()]


def _check_paths(cell: RecurrentCell, models: list, sequence: np.ndarray, lengths: list[int]) -> None:
    """Every path of the cell against the transparent one: outputs and every gradient equal to 1e-10."""
    for wrapper, model in models:
        expected = _run_on_path(model, sequence, lengths, "transparent")
        names = ["the outputs", "the input's gradient"] + [f"the gradient of {n}" for n, _ in model.named_parameters()]
        for path in paths(cell):
            got = _run_on_path(model, sequence, lengths, path)
            for name, a, b in zip(names, got, expected):
                if not np.allclose(a, b, rtol=1e-10, atol=1e-12):
                    _fail(f"the {path} path against the transparent one ({wrapper} with lengths)",
                          f"{name} differ by up to {np.max(np.abs(a - b)):.3g}")
