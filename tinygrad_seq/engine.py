"""The backward pass: order the graph, run each node's backward, add up the gradients.

``Tensor.backward`` is a loop over :func:`backward_iter`, a generator that
visits the nodes in reverse topological order (computed with explicit stacks
by :func:`topological_order`, so a 10,000-step chain works) and yields one
:class:`BackwardStep` per node. ``viz.backward_steps`` exposes the same
generator, so what the stepper shows is the real backward pass.

Gradients are summed per tensor (``_accumulate``): an array arriving first
is kept as it is (an op may share it between inputs) and copied only when a
second one comes; lazy gradients (lazy_grad.py) are added into a buffer the
engine owns, or deferred and summed at once when the gradient is complete.
Before a node's backward runs, the engine refuses to go on if a tensor whose
array the node saved was changed in place since (``_check_saved_versions``).

The engine reads tensors and nodes through their attributes only: it
imports neither tensor.py nor function.py, which import it.
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from . import blas, settings
from .anomaly import at_place, check_gradient, describe
from .lazy_grad import LazyGrad, sum_deferred

if TYPE_CHECKING:  # for type checkers only: these modules import this one
    from .function import Function
    from .tensor import Tensor


def _check_saved_versions(node: Function, tensor: Tensor, root: Tensor) -> None:
    """Raise if a tensor whose array ``node`` saved for backward was changed in place after the op ran."""
    saved = [("its input", node.inputs[i]) for i in node.saved_inputs]
    if node.saves_output:
        saved.append(("its own result", tensor))
    for role, saved_tensor in saved:
        counter = saved_tensor._counter if saved_tensor is not None else None
        if counter is None or counter.changed_at() <= node.recorded_at:
            continue
        then, exact = counter.value_at(node.recorded_at)
        newer = _recorded_after(root, counter.changed_at())  # the loss was made after the change: it reached back
        raise RuntimeError(
            f"backward through {node.name}{_where(node)}: {role} {describe(saved_tensor)} of shape {saved_tensor.shape} "
            f"was changed in place after {node.name} saved it for backward (version {'' if exact else 'at most '}{then} "
            f"then, {counter.value} now), so the gradient would be computed from the new values. "
            + (_carried("the change") if newer else "Call backward() before opt.step() (or nn.init, load_state_dict, any in-place "
               "change), or compute the loss again after the change")
        )


def _carried(before: str) -> str:
    """The fix when a fresh loss's backward reaches an older graph, computed ``before`` (its backward, an update)."""
    return (f"This loss reaches a tensor computed before {before}: a state carried from one chunk of a sequence into the "
            "next (truncated BPTT), say. Detach what you carry before the next chunk: state = state.detach(), or for a "
            "state of several tensors (an LSTM's (h, c), a LanguageModel's list) state = nn.detach_state(state)")


def _where(node: Function) -> str:
    """ " at time step 3, layer 0, forward" for a node made in a layer's steps, else ""."""
    where = at_place(node.tags or {})
    return f" {where}" if where.startswith("at ") else ""


def _recorded_after(root: Tensor, moment: int) -> bool:
    """Whether ``root``'s graph holds an op recorded after ``moment`` (of settings.version_clock): the root was made
    after it. Looked for on the error path only, from the root back, through the ops that record the clock."""
    stack, seen = [root], set()
    while stack:
        node = stack.pop().grad_fn
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        if getattr(node, "recorded_at", -1) > moment:
            return True
        stack.extend(arg for arg in node.inputs if arg is not None)
    return False

def _accumulate(grads: dict[int, Any], owned: set[int], key: int, target: Tensor, grad: Any, deferred: dict[int, list]) -> None:
    """Add ``grad`` (an array or a LazyGrad) to the running gradient of ``target``.

    A gradient received from an op may be shared with other inputs (Add sends
    the same array to both), so it is stored as is and copied only when a
    second one arrives; from then on the buffer is ours and sums in place.
    A replayed cell step sums inside its node by the same rule (nn/tape.py, ``Tape._add``).
    """
    if isinstance(grad, LazyGrad):
        if grad.deferred:
            parts = deferred.setdefault(key, [])
            parts.append(grad)
            if not grad.flush_now(parts):
                return
            del deferred[key]
            buffer = grads.get(key)
            if buffer is not None and key not in owned:
                buffer = buffer.copy()
            grads[key] = sum_deferred(parts, target.shape, buffer).astype(target.dtype, copy=False)
            owned.add(key)
            return
        buffer = grads.get(key)
        if buffer is None:
            buffer = grads[key] = grad.zeros(target.shape, target.dtype)
            owned.add(key)
        elif key not in owned:
            buffer = grads[key] = buffer.copy()
            owned.add(key)
        grad.add_into(buffer)
    elif key not in grads:
        grads[key] = grad
    elif key in owned:
        grads[key] += grad
    else:
        grads[key] = grads[key] + grad
        owned.add(key)


def _complete(grads: dict[int, Any], owned: set[int], deferred: dict[int, list], key: int, target: Tensor) -> tuple[Any, bool]:
    """Pop a tensor's finished gradient (dense parts plus deferred lazy ones) and whether it is a fresh array."""
    dense = grads.pop(key, None)
    fresh = key in owned
    owned.discard(key)
    parts = deferred.pop(key, None)
    if parts:
        if dense is not None and not fresh:
            dense = dense.copy()
        dense = sum_deferred(parts, target.shape, dense)
        fresh = True
        if dense.dtype != target.dtype:
            dense = dense.astype(target.dtype)
    return dense, fresh


class BackwardStep:
    """One step of the backward pass: a non-leaf tensor's node receives a gradient and sends some on.

    Attributes:
        tensor: the non-leaf tensor whose gradient is complete at this step.
        node: its ``grad_fn`` (the op); ``node.tags`` are the tags it was made under.
        grad: the gradient arriving at the tensor (after its hooks).
        input_grads: one entry per op argument, the gradient sent to it, or
            None where it needs none (constants, tensors not requiring grad).
        partial_grads: the gradients summed so far for tensors still waiting
            for more (keyed by ``id(tensor)``): a shared weight's running total
            lives here until its last use has been visited. Live: it changes
            as the iteration goes on.
        partial_outer: the deferred lazy gradients held for such tensors (a
            weight's OuterGrads, a bias's RowSumGrads, a packed state's
            HeldSliceGrads, a projection's StepRowsGrads), summed when the
            gradient is complete; ``running_grad`` adds them in. Live too.
    """

    __slots__ = ("tensor", "node", "grad", "input_grads", "partial_grads", "partial_outer")

    def __init__(self, tensor: Tensor, node: Function, grad: Any, input_grads: tuple[Any, ...],
                 partial_grads: dict[int, Any], partial_outer: dict[int, list]) -> None:
        self.tensor = tensor
        self.node = node
        self.grad = grad
        self.input_grads = input_grads
        self.partial_grads = partial_grads
        self.partial_outer = partial_outer

    def running_grad(self, tensor: Tensor) -> Any:
        """A copy of the gradient summed so far for ``tensor`` if it is still waiting for more, else None."""
        dense = self.partial_grads.get(id(tensor))
        parts = self.partial_outer.get(id(tensor))
        if parts:  # summed into a buffer of its own: the parts may hold arrays the pass still uses (StepRowsGrad's)
            buffer = parts[0].zeros(tensor.shape, tensor.dtype) if dense is None else dense.copy()
            return sum_deferred(parts, tensor.shape, buffer)
        return None if dense is None else dense.copy()

    @property
    def op(self) -> str:
        return self.node.name

    @property
    def name(self) -> str | None:
        return self.tensor.name

    @property
    def tags(self) -> dict[str, Any]:
        return self.tensor.tags

    def __repr__(self) -> str:
        shapes = [None if g is None else tuple(g.shape) for g in self.input_grads]
        return f"BackwardStep(op={self.op}, name={self.name!r}, tags={self.tags}, grad {tuple(self.grad.shape)} -> {shapes})"


def topological_order(root: Tensor) -> tuple[list[Tensor], dict[int, int]]:
    """Non-leaf tensors reachable from ``root``, root first, and how many gradients each tensor receives.

    Two passes with explicit stacks (an unrolled RNN is deeper than Python's
    recursion limit): the first counts each tensor's consumers, the second
    releases a tensor once all its consumers are done (Kahn's algorithm). The
    ready tensors form a stack, so backward follows one path as deep as it
    can: through an unrolled RNN it finishes the last time step, then moves
    to the one before. Only edges into tensors that require grad count.
    """
    incoming: dict[int, int] = {}
    seen = {id(root)}
    stack = [root]
    while stack:
        node = stack.pop().grad_fn
        for arg, needs in zip(node.inputs, node.needs_input_grad):
            if needs:
                key = id(arg)
                incoming[key] = incoming.get(key, 0) + 1
                if key not in seen and arg.grad_fn is not None:
                    seen.add(key)
                    stack.append(arg)
    order: list[Tensor] = []
    waiting = dict(incoming)
    ready = [root]
    while ready:
        tensor = ready.pop()
        order.append(tensor)
        node = tensor.grad_fn
        for arg, needs in zip(node.inputs, node.needs_input_grad):
            if needs and arg.grad_fn is not None:
                key = id(arg)
                waiting[key] -= 1
                if waiting[key] == 0:
                    ready.append(arg)
    return order, incoming


def _accumulate_into_leaf(leaf: Tensor, grad: Any, fresh: bool = False) -> None:
    """Add a leaf's complete gradient to its ``.grad``; ``fresh``: the array is the engine's own, no copy needed."""
    if leaf._hooks:
        grad = _run_hooks(leaf, grad)
        fresh = False
    if leaf._grad is None and fresh and grad.dtype == leaf.dtype:
        leaf._grad = grad
    elif leaf._grad is None:
        # A copy the leaf owns (optimizers write into it), in whatever memory order grad has: cheaper.
        leaf._grad = grad.copy(order="K") if grad.dtype == leaf.dtype else grad.astype(leaf.dtype)
    else:
        leaf._grad += grad


def _run_hooks(tensor: Tensor, grad: Any) -> Any:
    for hook in tensor._hooks:
        replaced = hook(grad)
        if replaced is not None:
            if replaced.shape != grad.shape:
                raise RuntimeError(f"a hook on tensor {tensor.name or ''} {tensor.shape} returned a gradient of shape {replaced.shape}; it must keep the shape {grad.shape}")
            grad = replaced
    return grad


def _initial_grad(root: Tensor, grad: Any) -> Any:
    if not root.requires_grad:
        raise RuntimeError(
            f"backward() on a tensor {root.shape} that does not require grad: no input of the ops that made it "
            "requires grad (or it was made under no_grad). Create leaves with requires_grad=True"
        )
    if grad is None:
        if root._data.size != 1:
            raise RuntimeError(
                f"backward() on a tensor of shape {root.shape} needs a gradient: only one-element tensors get 1.0 "
                "by default. Pass grad= (an array of that shape) or reduce first, e.g. y.sum().backward()"
            )
        return root.backend.xp.ones(root.shape, dtype=root.dtype)
    if not isinstance(grad, settings.array_types):
        grad = getattr(grad, "data", grad)  # a Tensor: its array (the engine reads tensors by their attributes)
    grad = root.backend.array(grad, root.dtype, copy=False)  # a list, or an array of any backend
    if grad.shape != root.shape:
        raise RuntimeError(f"backward(): grad shape {grad.shape} != tensor shape {root.shape}; pass a gradient shaped like the tensor")
    return grad


def backward_iter(root: Tensor, grad: Any = None, retain_graph: bool = False) -> Iterator[BackwardStep]:
    """The backward pass, one :class:`BackwardStep` per non-leaf node, in reverse topological order.

    Gradients reach a step's inputs before the step is yielded; a leaf's
    ``.grad`` is updated once all its gradients have arrived. Stopping the
    iteration early leaves the gradients computed so far.
    """
    grads = {id(root): _initial_grad(root, grad)}
    if root.grad_fn is None:  # backward on a leaf: its gradient is the seed
        _accumulate_into_leaf(root, grads[id(root)])
        return
    order, incoming = topological_order(root)
    owned: set[int] = set()  # gradient buffers allocated here, safe to add into in place
    deferred: dict[int, list] = {}  # the deferred kinds of lazy gradient (LazyGrad.deferred), summed when a gradient is complete
    for tensor in order:
        grad, _ = _complete(grads, owned, deferred, id(tensor), tensor)
        if grad is None:
            continue
        if tensor._hooks:
            grad = _run_hooks(tensor, grad)
        if tensor._retains_grad:
            tensor._grad = grad.copy() if tensor._grad is None else tensor._grad + grad
        node = tensor.grad_fn
        if node.freed:
            raise _freed_error(node, fresh_root=node is not root.grad_fn)
        if node._checks_versions and node.recorded_at != settings.version_clock:
            _check_saved_versions(node, tensor, root)  # something changed in place since the op ran: was it saved here?
        threads = node.blas_threads()
        if threads is None:
            input_grads = node.backward(grad)
        else:  # a small layer's step: one BLAS thread for this node alone (blas.py), every thread again after it
            with blas.limited(threads):
                input_grads = node.backward(grad)
        # One test passes the usual case (a tuple, one gradient per input); the rest is checked and explained there
        if type(input_grads) is not tuple or len(input_grads) != len(node.inputs):
            check_input_grads(node.name, input_grads, len(node.inputs))
        if not retain_graph:
            node.free()
        for arg, needs, input_grad in zip(node.inputs, node.needs_input_grad, input_grads):
            if not needs:
                continue
            key = id(arg)
            if input_grad is not None:  # None: this input did not take part after all (a parameter a step never read)
                # An op may send one input several OuterGrads (blocks of rows of a weight) as a list.
                for piece in input_grad if type(input_grad) is list else (input_grad,):
                    _accumulate(grads, owned, key, arg, _checked_grad(node, arg, piece), deferred)
            if arg.grad_fn is None:
                incoming[key] -= 1
                if incoming[key] == 0:
                    total, fresh = _complete(grads, owned, deferred, key, arg)
                    if total is not None:
                        _accumulate_into_leaf(arg, total, fresh)
        yield BackwardStep(tensor, node, grad, input_grads, grads, deferred)


def _freed_error(node: Function, fresh_root: bool) -> RuntimeError:
    """Backward reached a node an earlier backward() freed: the same loss's backward twice, or (``fresh_root``: this
    pass's loss had not been through backward) a fresh loss's reaching back into an older graph (a carried state)."""
    fix = (f"{_carried('that backward()')}; or, to run backward through the same graph again on purpose, pass "
           "retain_graph=True to the first backward()" if fresh_root else
           "Pass retain_graph=True to the first backward() to run backward through the same graph again on purpose")
    return RuntimeError(
        f"backward through {node.name}{_where(node)} a second time: its saved arrays were freed by the first backward(). {fix}"
    )


def _checked_grad(node: Function, arg: Tensor, grad: Any) -> Any:
    """``grad`` as an array or LazyGrad of ``arg``'s shape and dtype; raises naming ``node`` if the shape is wrong."""
    if isinstance(grad, LazyGrad):
        grad = grad.astype(arg._data.dtype)
    else:
        if not isinstance(grad, settings.array_types):
            grad = np.asarray(grad)  # NumPy turns 0-d results into scalars
        if grad.dtype != arg._data.dtype:
            grad = grad.astype(arg._data.dtype)
    if grad.shape != arg._data.shape:
        raise wrong_grad_shape(node.name, grad.shape, arg._data.shape)
    if settings.anomaly_mode:
        check_gradient(node, arg, grad)
    return grad


def check_input_grads(op: str, input_grads: Any, inputs: int) -> None:
    """A RuntimeError naming ``op`` unless its backward returned one gradient per positional input, as a tuple (or
    a list). Asked of every node the engine visits, and of every op a recorded cell step replays while its tape is
    checked (nn/tape.py), so that a user's op is held to it on every path."""
    if not isinstance(input_grads, (tuple, list)):
        raise RuntimeError(
            f"{op}.backward returned a {type(input_grads).__name__}, not a tuple: return one gradient per positional "
            "(tensor) argument of apply, as a tuple, e.g. `return (grad,)` for an op of one input"
        )
    if len(input_grads) != inputs:
        raise RuntimeError(
            f"{op}.backward returned {len(input_grads)} gradients for {inputs} inputs; "
            "return one per positional (tensor) argument of apply, None where there is none, and none for keywords"
        )


def wrong_grad_shape(op: str, grad_shape: tuple[int, ...], input_shape: tuple[int, ...]) -> RuntimeError:
    """The error for ``op``'s backward sending an input a gradient not of its shape."""
    return RuntimeError(
        f"{op}.backward: gradient of shape {grad_shape} for an input of shape {input_shape}; each gradient must have "
        "its input's shape (sum over the axes a broadcast added, or reshape)"
    )
