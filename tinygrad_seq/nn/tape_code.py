"""A trusted step tape as Python source: the replay without the interpreter's loop.

``Tape.forward`` and ``Tape.backward`` (nn/tape.py) interpret a tape: for
every op they look up its argument slots, check what came back, and decide
where each gradient goes. All of that is the same on every step, so once a
tape is trusted it is written out once as straight-line Python, one line per
op forward and a few per op backward, and compiled; the replay then runs that
code. The ops' own ``forward`` and ``backward`` still do every computation:
the code only calls them in order, as the interpreter did, so the equations
stay written once (in ops/) and the results are the same to the last bit.
One exception: a gate block's chunks (``tape.chunked()``) are sliced
inline, with no node, and backward joins their gradients with one
concatenate, as the interpreter does.

The interpreter stays the reference. It records and checks a new tape, and
it runs whenever the generated code has nothing to gain or cannot say enough:
under ``detect_anomaly`` (which names the op that made a NaN) and for
``part_grads`` (which captures inner gradients).

``print(tape.code.source)`` shows what a recorded step runs; ``vN`` is slot
N's array (the inputs first, then the constants, then one per op), ``fJ``
the node of op J, ``g[N]`` slot N's gradient.
"""
from __future__ import annotations

import itertools
import linecache
from collections import Counter
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from .. import settings
from ..backend import backend_of
from ..ops import Linear

if TYPE_CHECKING:
    from .tape import Tape


class TapeCode:
    """The generated ``forward(fixed, transposed)`` and ``backward(tape, fns, likes, seeds, tags)`` of one tape.

    They take and return what ``Tape.forward`` and ``Tape.backward`` do (without ``capture``). The code names
    no user-given identifier: op classes are ``C0, C1, ...`` (their names in comments), so any op a cell
    uses compiles.
    """

    def __init__(self, tape: Tape) -> None:
        classes = list(dict.fromkeys(op.cls for op in tape.ops))  # each op class once, in order of first use
        names = {cls: f"C{k}" for k, cls in enumerate(classes)}
        namespace: dict[str, Any] = {"asarray": np.asarray, "settings": settings, "backend_of": backend_of}
        namespace.update((name, cls) for cls, name in names.items())
        for i, constant in enumerate(tape.constants):
            namespace[f"c{i}"] = constant  # kept by reference: its array is read when the step runs
        for j, op in enumerate(tape.ops):
            namespace[f"needs{j}"], namespace[f"k{j}"] = op.needs, op.kwargs
        for slot, dtype in enumerate(tape.dtypes):
            namespace[f"dtype{slot}"] = np.dtype(dtype)
        self.source = _forward_source(tape, names) + "\n\n" + _backward_source(tape)
        filename = f"<tape {next(_numbers)}: {len(tape.ops)} ops>"
        linecache.cache[filename] = (len(self.source), None, self.source.splitlines(True), filename)  # for tracebacks
        exec(compile(self.source, filename, "exec"), namespace)
        self.forward: Callable[..., tuple[list[Any], list[Any]]] = namespace["forward"]
        self.backward: Callable[..., tuple[list[Any], dict, dict]] = namespace["backward"]


_numbers = itertools.count()


def _shown(cls: type) -> str:
    """An op class's name for a comment in the code: on one line, whatever the class was named."""
    return " ".join(cls.__name__.split())


def _unpack_targets(prefix: str, count: int) -> str:
    """The targets that unpack ``count`` values: ``v0, v1, v2`` (``v0,`` for one)."""
    return ", ".join(f"{prefix}{i}" for i in range(count)) + ("," if count == 1 else "")


def _forward_source(tape: Tape, names: dict[type, str]) -> str:
    lines = [
        "def forward(fixed, transposed):",
        f"    {_unpack_targets('v', tape.n_fixed)} = fixed",
        *(f"    v{tape.n_fixed + i} = c{i}._data" for i in range(len(tape.constants))),
    ]
    first, chunked = tape.first_result, tape.chunked()
    for j, op in enumerate(tape.ops):
        if j in chunked:  # a chunk of a gate block: a view, and no node (backward joins the chunks' gradients)
            lines.append(f"    v{first + j} = v{op.slots[0]}[k{j}['index']]; f{j} = None")
            continue
        args = ", ".join("None" if slot is None else f"v{slot}" for slot in op.slots)
        keywords = f", **k{j}" if op.kwargs else ""
        if op.cls is Linear and op.slots[1] in tape.weight_slots:
            keywords += f", weight_t=transposed.get({op.slots[1]})"  # None when the copy does not pay (steps.py)
        name, result = names[op.cls], first + j
        lines.append(f"    f{j} = {name}.__new__({name}); v{result} = f{j}.forward({args}{keywords}); "
                     f"f{j}.needs_input_grad = needs{j}  # {_shown(op.cls)}")
        if len(tape.shapes[result]) == 0:  # NumPy gives a scalar for a 0-d result
            lines.append(f"    if not isinstance(v{result}, settings.array_types): v{result} = asarray(v{result})")
    every_value = ", ".join(f"v{slot}" for slot in range(first + len(tape.ops)))
    every_node = ", ".join(f"f{j}" for j in range(len(tape.ops)))
    lines.append(f"    return [{every_value}], [{every_node}]")
    return "\n".join(lines)


def _backward_source(tape: Tape) -> str:
    first, chunked = tape.first_result, tape.chunked()
    lines = [
        "def backward(tape, fns, likes, seeds, tags):",
        *([f"    {_unpack_targets('f', len(tape.ops))} = fns"] if tape.ops else []),
        f"    g = [None] * {first + len(tape.ops)}",
        "    outer, owned, chunks = {}, set(), {}",
        "    array_types = settings.array_types",
        "    for slot, seed in seeds.items():",
        "        if type(seed) in array_types and seed.dtype == likes[slot].dtype and g[slot] is None: g[slot] = seed",
        "        else: tape._add(g, outer, likes, slot, seed, tags, \"the step's output\", owned)",
    ]
    joined_later = {slot for slot, _, _ in chunked.values()}
    chunk_slots = {slot: [first + j for j in tape.chunk_ops[slot]] for slot in joined_later}  # each chunk's result slot, in order
    writers = Counter(tape.outputs)  # how many gradients each slot receives: a seed, one per op that reads it
    writers.update(slot for j, op in enumerate(tape.ops) if j not in chunked for _, slot in op.grad_targets)
    for j in range(len(tape.ops) - 1, -1, -1):
        result, op = first + j, tape.ops[j]
        if result in joined_later:  # every chunk of this slot has sent its gradient: one concatenate
            lines += _join(result, chunk_slots[result])
        if not tape.slot_needs[result]:
            continue
        if j in chunked:
            slot, position, count = chunked[j]
            if slot < tape.n_fixed:  # a chunk of an input slot: joined at the end
                lines.append(f"    if g[{result}] is not None: chunks.setdefault({slot}, [None] * {count})[{position}] = g[{result}]  # a chunk of v{slot}")
            continue
        lines += [f"    # {_shown(op.cls)} -> v{result}", f"    if g[{result}] is not None:", f"        d = f{j}.backward(g[{result}])"]
        for position, slot in op.grad_targets:
            lines += _accumulate(position, slot, op.cls.__name__, writers[slot])
    lines += [
        "    for slot, pieces in chunks.items():  # the chunks of an input slot",
        "        tape._join(g, outer, pieces, likes, slot, tags, owned)",
        f"    return g[:{tape.n_fixed}], outer, {{}}",
    ]
    return "\n".join(lines)


def _join(slot: int, chunks: list[int]) -> list[str]:
    """Slot ``slot``'s gradient from its chunks' (slots ``chunks``, in order along the last axis), once they all
    have theirs: one concatenate when every chunk has one and the slot none of its own (the usual case), else
    ``Tape._join`` (a chunk that got none, the block also read whole). A chunk's gradient is always an array of
    its dtype, the block's: the accumulation above makes any other kind dense and casts it."""
    pieces = ", ".join(f"g[{c}]" for c in chunks)
    every = " and ".join(f"g[{c}] is not None" for c in chunks)
    return [
        f"    if g[{slot}] is None and {every}:",
        f"        g[{slot}] = backend_of(likes[{slot}]).xp.concatenate(({pieces},), axis=-1); owned.add({slot})  # the chunks of v{slot}",
        f"    elif {' or '.join(f'g[{c}] is not None' for c in chunks)}:",
        f"        tape._join(g, outer, [{pieces}], likes, {slot}, tags, owned)",
    ]


def _accumulate(position: int, slot: int, op: str, writers: int) -> list[str]:
    """Add gradient ``d[position]`` into ``g[slot]``, which ``writers`` ops (and seeds) send one: inline for an
    array of the slot's dtype (the usual case), through ``Tape._add`` for anything else (a lazy gradient,
    another dtype, a second piece where one writer was expected). As in the interpreter, a first piece is
    kept as it is (an op may send one array to two inputs), and a second makes a new array, ``owned``
    from then on and added into in place."""
    usual = f"type(p) in array_types and p.dtype == dtype{slot}"
    if writers == 1:
        return [
            f"        p = d[{position}]",
            f"        if {usual} and g[{slot}] is None: g[{slot}] = p",
            f"        elif p is not None: tape._add(g, outer, likes, {slot}, p, tags, {op!r}, owned)",
        ]
    return [
        f"        p = d[{position}]",
        "        if p is None: pass",
        f"        elif {usual} and g[{slot}] is None: g[{slot}] = p",
        f"        elif {usual} and {slot} in owned: g[{slot}] += p",
        f"        elif {usual}: g[{slot}] = g[{slot}] + p; owned.add({slot})",
        f"        else: tape._add(g, outer, likes, {slot}, p, tags, {op!r}, owned)",
    ]
