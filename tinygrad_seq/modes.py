"""The modes that change what ops record, and how a cell's steps run: grad mode, tags, anomaly detection, paths.

Each is a thin use of :func:`settings.override` (a context manager that sets
settings and restores them on exit), so they nest and survive exceptions:

=================  ====================================================
no_grad            ``grad_enabled=False``: results do not require grad
enable_grad        ``grad_enabled=True``, even inside ``no_grad``
tags               ``current_tags``: what every node made in the block records
detect_anomaly     ``anomaly_mode=True``: the first NaN or inf raises
transparent        ``transparent=True``: every cell runs gate by gate
without_kernels    ``kernels=False``: the built-in cells on the recorded path
without_numba      ``numba_loops=False``: NumPy passes, not compiled loops
=================  ====================================================

``tag`` adds tags to one tensor rather than to the nodes made after it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import settings

if TYPE_CHECKING:  # for type checkers only: tensor.py sits above this module
    from .tensor import Tensor


class no_grad(settings.override):
    """Record no graph inside the block: results do not require grad.

    >>> import tinygrad_seq as ts
    >>> w = ts.Tensor([1.0, 2.0], requires_grad=True)
    >>> with ts.no_grad():
    ...     y = w * 2
    >>> y.requires_grad
    False
    """

    def __init__(self) -> None:
        super().__init__(grad_enabled=False)


class enable_grad(settings.override):
    """Record the graph inside the block, even within ``no_grad``."""

    def __init__(self) -> None:
        super().__init__(grad_enabled=True)


def is_grad_enabled() -> bool:
    """False inside ``no_grad()``."""
    return settings.grad_enabled


class tags(settings.override):
    """Record ``new_tags`` on every node made inside the block (nested blocks merge).

    The recurrent layers set ``t`` (time step from 1), ``layer`` and
    ``direction``; the graph renderer clusters nodes by them.

    >>> import tinygrad_seq as ts
    >>> x = ts.Tensor([1.0], requires_grad=True)
    >>> with ts.tags(t=1, layer=0):
    ...     y = x.tanh()
    >>> y.tags
    {'t': 1, 'layer': 0}
    """

    def __init__(self, **new_tags: Any) -> None:
        # override's __init__ skipped (cheap to make: nested blocks in a time loop): its name check is for settings
        # this never sets, and __enter__ and __exit__ below replace the ones that read its values.
        self._saved: list[dict[str, Any]] = []
        self.new_tags = new_tags

    # One setting, set and restored directly, at the cost of two dicts.
    def __enter__(self) -> dict[str, Any]:
        self._saved.append(settings.current_tags)
        settings.current_tags = {**settings.current_tags, **self.new_tags}  # merged with the tags in force now
        return settings.current_tags

    def __exit__(self, *exc: object) -> None:
        settings.current_tags = self._saved.pop()

    def at_step(self, t: int) -> None:
        """Inside the block: the nodes made from now on also carry ``t`` (a time loop's step) without a block
        per step. ``t`` comes after the tags in force outside the block and before the block's own (which win:
        ``tags(t=9).at_step(1)`` keeps t = 9); the block's exit restores the tags."""
        settings.current_tags = {**self._saved[-1], "t": t, **self.new_tags}


def tag(tensor: Tensor, **new_tags: Any) -> Tensor:
    """Add tags to this one tensor (not to the nodes made after it) and return it.

    What a tensor *is* in a recurrent step (its role: a state part, a gate,
    ...) is recorded this way by ``nn.roles``; the tags then show in
    ``tensor.tags``, in ``viz.trace`` and in the backward stepper, also for
    leaves (an initial state) that have no node.
    """
    tensor._own_tags = {**tensor._own_tags, **new_tags} if tensor._own_tags else new_tags  # new_tags: this call's own dict
    return tensor


class detect_anomaly(settings.override):
    """Inside the block, the first op whose output or gradient holds NaN or inf raises FloatingPointError.

    Going forward, the error names the op, its time step, layer and
    direction, and its inputs. Going backward (for nodes made inside the
    block), it names the op, where it sits in the unrolled graph, the input
    the bad gradient was sent to, and the line of your code that made the op.
    Off by default, and costs nothing when off.
    """

    def __init__(self) -> None:
        super().__init__(anomaly_mode=True)


# ---------------------------------------------------------------- how a cell's steps run (nn/steps.py decides)


class transparent(settings.override):
    """Run every cell gate by gate, as primitive ops, inside the block.

    The default runs one graph node per cell step (a hand-written kernel for
    the built-in cells, the recorded step for yours), several times faster.
    The transparent path is the reference the others are tested against, and
    what to draw or step through to see every gate (Γf⟨t⟩, c̃⟨t⟩, ...). A cell
    built with ``fused=False`` is always transparent.

    >>> import tinygrad_seq as ts
    >>> from tinygrad_seq import nn
    >>> cell = nn.LSTMCell(2, 3)
    >>> cell(ts.randn(1, 2))[0].grad_fn.name
    'GetItem'
    >>> with ts.transparent():
    ...     cell(ts.randn(1, 2))[0].grad_fn.name
    'Mul'
    """

    def __init__(self) -> None:
        super().__init__(transparent=True)


class without_kernels(settings.override):
    """Run the built-in cells on the recorded path inside the block, their hand-written kernels off.

    The kernels are proven equal to the recorded path; this is how that is
    checked, and how to measure what a kernel buys.

    >>> import tinygrad_seq as ts
    >>> from tinygrad_seq import nn
    >>> with ts.without_kernels():
    ...     outputs, _ = nn.Recurrent(nn.LSTMCell(2, 3))(ts.randn(4, 1, 2))
    >>> outputs.grad_fn.inputs[0].grad_fn.name  # outputs gathers a⟨t⟩ from each step's packed (a, c)⟨t⟩
    'RecordedStep'
    """

    def __init__(self) -> None:
        super().__init__(kernels=False)


class without_numba(settings.override):
    """Inside the block, the float32 LSTM and GRU kernels do their elementwise work as NumPy passes, not as
    the compiled loops of ops/loops.py, and Adam its update (not optim/loops.py's loop): how the two are
    checked equal, and how to measure what the loops buy.

    >>> import tinygrad_seq as ts
    >>> from tinygrad_seq import nn
    >>> lstm, x = nn.LSTM(3, 4), ts.randn(5, 2, 3)
    >>> with ts.without_numba():
    ...     numpy_passes, _ = lstm(x)
    >>> compiled_loops, _ = lstm(x)
    >>> bool(abs(compiled_loops - numpy_passes).max().item() < 1e-6)
    True
    """

    def __init__(self) -> None:
        super().__init__(numba_loops=False)
