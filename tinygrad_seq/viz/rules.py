"""Each op's local rule, in the course's notation: what the explorer shows at a node of the graph.

Backpropagation is one local rule per node: the gradient arriving at a
node's result, times the node's own derivative, is what each input gets.
This module writes that rule for every primitive op and every built-in cell
step, with the node's and its inputs' own names ("∂L/∂c⟨2⟩ += ∂L/∂a⟨2⟩ ⊙
Γo⟨2⟩ ⊙ (1 − tanh(c⟨2⟩)²)"). Vectors are columns, as in the course: a
``Linear`` computes W x + b, so its rule reads ∂L/∂W += ∂L/∂out xᵀ (the
code's rows are the same numbers transposed). An input's gradient is
written ``+=`` where it has several consumers (its gradient is a sum) and
``=`` where this node is its only one.

A user's op without a rule here shows its name; an op may carry its own
rule as a ``backward_rule`` class attribute (one string, ``{out}`` and
``{in0}``, ``{in1}``, ... standing for the names).

>>> rules = backward_rule("Tanh", "a⟨2⟩", ["W_aa a⟨1⟩ + W_ax x⟨2⟩"], receives=[True], accumulates=[False])
>>> rules[0]
'∂L/∂(W_aa a⟨1⟩ + W_ax x⟨2⟩) = ∂L/∂a⟨2⟩ ⊙ (1 − a⟨2⟩²)'
"""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from ..checks import is_real
from ..function import Function
from ..lazy_grad import index_text
from ..tensor import Tensor
from . import notation
from .draw import gate_slices
from .trace import Graph, GraphNode

# Forward formulas of the primitive ops, {0}, {1}, ... being the inputs' names.
FORWARD = {
    "Add": "{0} + {1}", "Sub": "{0} − {1}", "Mul": "{0} ⊙ {1}", "Div": "{0} ⊘ {1}", "Neg": "−{0}",
    "Pow": "{0}^{p}", "MatMul": "{0} {1}", "Linear": "{1} {0} + {2}", "Exp": "exp({0})", "Log": "log({0})",
    "Sqrt": "√{0}", "Abs": "|{0}|", "Tanh": "tanh({0})", "Sigmoid": "σ({0})", "Relu": "max({0}, 0)",
    "Clamp": "clamp({0})", "Sum": "Σ {0}", "Mean": "mean({0})", "Max": "max({0})", "Softmax": "softmax({0})",
    "LogSoftmax": "log softmax({0})", "Reshape": "reshape({0})", "Transpose": "{0}ᵀ", "GetItem": "{0}[{index}]",
    "Concat": "[{all}]", "Stack": "stack({all})", "StackPart": "stack({all})[:, {part}]", "RecordedStep": "the cell's forward({0}, {1}), replayed", "Where": "where(·, {0}, {1})", "Maximum": "max({0}, {1})",
    "MaskedFill": "masked_fill({0})", "Cast": "{0}", "ToBackend": "{0}", "CrossEntropy": "−log softmax({0})[y]",
    "BinaryCrossEntropyWithLogits": "−{1} log σ({0}) − (1 − {1}) log(1 − σ({0}))",
    "EmbeddingLookup": "rows of {0}", "DropoutMask": "{0} ⊙ mask / (1 − p)",
}

# Backward rules of the primitive ops: input position -> the gradient it gets. {g} is ∂L/∂out, {out} the
# result's name, {0}, {1}, ... the inputs' names.
BACKWARD: dict[str, dict[int, str]] = {
    "Add": {0: "{g}", 1: "{g}"},
    "Sub": {0: "{g}", 1: "−{g}"},
    "Mul": {0: "{g} ⊙ {1}", 1: "{g} ⊙ {0}"},
    "Div": {0: "{g} ⊘ {1}", 1: "−{g} ⊙ {0} ⊘ {1}²"},
    "Neg": {0: "−{g}"},
    "Pow": {0: "{g} ⊙ {p} {0}^({p} − 1)"},
    "MatMul": {0: "{g} {1}ᵀ", 1: "{0}ᵀ {g}"},
    "Linear": {0: "{1}ᵀ {g}", 1: "{g} {0}ᵀ", 2: "{g}  (summed over the batch)"},
    "Exp": {0: "{g} ⊙ {out}"},
    "Log": {0: "{g} ⊘ {0}"},
    "Sqrt": {0: "{g} ⊘ (2 {out})"},
    "Abs": {0: "{g} ⊙ sign({0})"},
    "Tanh": {0: "{g} ⊙ (1 − {out}²)"},
    "Sigmoid": {0: "{g} ⊙ {out} ⊙ (1 − {out})"},
    "Relu": {0: "{g} ⊙ [{0} > 0]"},
    "Clamp": {0: "{g} ⊙ [{0} inside the bounds]"},
    "Sum": {0: "{g}, copied to every element summed"},
    "Mean": {0: "{g} / n, copied to each of the n elements averaged"},
    "Max": {0: "{g} at the maximum (shared between ties), 0 elsewhere"},
    "Softmax": {0: "{out} ⊙ ({g} − Σ {g} ⊙ {out})"},
    "LogSoftmax": {0: "{g} − softmax({0}) Σ {g}"},
    "Reshape": {0: "{g}, reshaped back"},
    "Transpose": {0: "{g}, transposed back"},
    "GetItem": {0: "{g} in [{index}], 0 elsewhere"},
    "Concat": {"*": "its part of {g}"},
    "Stack": {"*": "its slice of {g}"},
    "StackPart": {"*": "its slice of {g} in part [{part}], 0 in the other parts{ended}"},
    # A user's cell step replayed from its tape (nn.recorded): the recorded ops' own rules, in reverse.
    "RecordedStep": {"*": "{g} back through the cell's recorded ops, each op's rule in reverse (ts.transparent() shows them)"},
    "Where": {0: "{g} where the condition holds, 0 elsewhere", 1: "{g} where it does not, 0 elsewhere"},
    "Maximum": {0: "{g} where {0} is the larger", 1: "{g} where {1} is the larger"},
    "MaskedFill": {0: "{g} where not masked, 0 where masked"},
    "Cast": {0: "{g}, cast back to the input's dtype"},
    "ToBackend": {0: "{g}, moved back to the input's backend"},
    "CrossEntropy": {0: "{g} (softmax({0}) − {q}){per}"},
    "BinaryCrossEntropyWithLogits": {
        0: "{g} ⊙ (σ({0}) − {1})  (with pos_weight p: (p {1} + 1 − {1}) σ({0}) − p {1}; divided by the count for a mean)",
        1: "−{g} ⊙ {0}  (with pos_weight p: {g} ⊙ (p ℓ({0}) − ℓ(−{0})), ℓ(z) = −log σ(z))",
    },
    "EmbeddingLookup": {0: "{g}, added into the rows of the ids looked up"},
    "DropoutMask": {0: "{g} ⊙ mask / (1 − p)  (the same mask as forward)"},
}

OPERATORS = (" ", "+", "−", "⊙", "⊘", "=")


def _enclosed(name: str) -> bool:
    """True for "(a, c)⟨2⟩"-like names whose first parenthesis closes only at the end of a tuple, or "(x + y)"."""
    if not name.startswith("("):
        return False
    depth = 0
    for i, char in enumerate(name):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return not any(op in name[i + 1:] for op in OPERATORS)
    return False


def _wrapped(name: str) -> bool:
    """True for "(x + y)": one pair of parentheses around the whole name."""
    if not (name.startswith("(") and name.endswith(")")):
        return False
    depth = 0
    for char in name[:-1]:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return False
    return True


def _summands(name: str) -> list[str]:
    """The terms of ``name`` when it is a sum and nothing else at its top level ("(L⟨1⟩ + L⟨2⟩)" gives L⟨1⟩ and
    L⟨2⟩), else [name]: a sum inside a sum needs no parentheses, a difference or a product does."""
    inner = name[1:-1] if _wrapped(name) else name
    operators = notation.top_level_operators(inner)
    if not operators or any(operator != " + " for _, operator in operators):
        return [name]
    starts, stops = [0] + [i + 3 for i, _ in operators], [i for i, _ in operators] + [len(inner)]  # " + " is 3 long
    return [inner[start:stop] for start, stop in zip(starts, stops)]


_STEP_TERM = re.compile(r"(.+)⟨(\d+)⟩")


def _sum_of(terms: list[str]) -> str:
    """``terms`` added up; a run of one symbol at consecutive steps, five or more, is written by its ends, as the
    losses of a sequence are: "L⟨1⟩ + … + L⟨40⟩" (the ends of an earlier such run are read back as the whole run)."""
    runs: list[tuple[str, int, int]] = []  # (symbol, first step, last step); an ellipsis joins its two neighbours
    joined = False
    for term in terms:
        if term == "…":
            joined = True
            continue
        found = _STEP_TERM.fullmatch(term)
        if found is None:
            return " + ".join(terms)
        symbol, t = found.group(1), int(found.group(2))
        if runs and runs[-1][0] == symbol and (t == runs[-1][2] + 1 or (joined and t > runs[-1][2])):
            runs[-1] = (symbol, runs[-1][1], t)
        else:
            runs.append((symbol, t, t))
        joined = False
    if len(runs) != 1 or runs[0][2] - runs[0][1] < 4 or "…" in (terms[0], terms[-1]):
        return " + ".join(terms)
    symbol, first, last = runs[0]
    return f"{symbol}⟨{first}⟩ + … + {symbol}⟨{last}⟩"


def gradient(name: str) -> str:
    """∂L/∂a⟨2⟩, or ∂L/∂(W_aa a⟨1⟩) for a name with operators in it."""
    return f"∂L/∂({name})" if any(op in name for op in OPERATORS) and not _enclosed(name) else f"∂L/∂{name}"


def _details(node: Function | None) -> dict[str, Any]:
    """What a rule needs from the op itself (read before backward frees it)."""
    if node is None:
        return {}
    details: dict[str, Any] = {}
    params = getattr(node, "params", None) or {}
    if node.name == "Pow" and "exponent" in params:
        details["p"] = params["exponent"]
    if node.name == "GetItem":
        details["index"] = index_text(params.get("index"))  # a keyword: kept when backward frees the node
    if node.name == "StackPart" and "part" in params:
        details["part"] = params["part"]
        details["masked"] = any(mask is not None for mask in params.get("running", ()))
    for field in ("relu", "reset_after", "peepholes", "reduction", "smoothing"):
        if getattr(node, field, None) is not None:
            details[field] = getattr(node, field)
    return details


def forward_rule(op: str, out: str, inputs: Sequence[str], details: Mapping[str, Any] | None = None) -> str:
    """``out = formula``: what the node computed, e.g. "a⟨2⟩ = tanh(z)"; the op's name for an unknown op.

    ``inputs``: how each positional argument is written (see :func:`arguments`).
    """
    details = details or {}
    if op in CELL_FORWARD:
        return CELL_FORWARD[op](details.get("names", {}), details)
    formula = FORWARD.get(op)
    if formula is None:
        return f"{out} = {op}({', '.join(inputs)})"
    if op == "Linear" and (len(inputs) < 3 or inputs[2] == "·"):
        formula = "{1} {0}"
    if op == "StackPart" and details.get("masked"):
        formula += ", 0 where a sequence has ended"
    if "({0})" in formula and _wrapped(inputs[0]):  # tanh(x + y), not tanh((x + y))
        inputs = [inputs[0][1:-1], *inputs[1:]]
    if op == "Add":  # L⟨1⟩ + L⟨2⟩ + L⟨3⟩, not (L⟨1⟩ + L⟨2⟩) + L⟨3⟩
        formula, inputs = "{0}", [_sum_of([term for written in inputs for term in _summands(written)])]
    written = formula.format(*inputs, *[""] * 3, all=", ".join(inputs), p=details.get("p", "p"), index=details.get("index", "…"),
                              part=details.get("part", "…"))
    if written == out:  # a node named by its own formula: "tanh(c⟨2⟩)", "a⟨1..3⟩[1]"
        return f"{out}   ({op})"
    if written.startswith(out + " + "):  # a projection named "W_aa a⟨1⟩" holds its bias too
        return f"{written}   (the node {out}, its bias included)"
    return f"{out} = {written}"


def backward_rule(op: str, out: str, inputs: Sequence[str], receives: Sequence[bool], accumulates: Sequence[bool],
                  details: Mapping[str, Any] | None = None, own_rule: str | None = None) -> list[str]:
    """The lines of a node's local rule: one per input that gets a gradient.

    ``inputs``: the names of the op's positional arguments ("·" for non-tensors);
    ``receives[i]``: argument i gets a gradient; ``accumulates[i]``: it has
    other consumers too, so its gradient is a sum (written ``+=``).
    """
    details = dict(details or {})
    per = {"mean": " / the number of targets counted (a mean; ignore_index ones are not)",
           "none": ", one row per example"}.get(details.get("reduction"), "")
    q = f"((1 − {details['smoothing']:g}) one_hot(y) + {details['smoothing']:g} / C)" if details.get("smoothing") else "one_hot(y)"
    fields = {"g": gradient(out), "out": out, "p": details.get("p", "p"), "index": details.get("index", "…"), "per": per, "q": q,
              "part": details.get("part", "…"), "ended": " and where its sequence has ended" if details.get("masked") else ""}
    if own_rule is not None:
        return [own_rule.format(out=out, **{f"in{i}": n for i, n in enumerate(inputs)})]
    if op in CELL_STEPS:
        return CELL_STEPS[op](details.get("names", {}), inputs, receives, accumulates, details)
    table = BACKWARD.get(op)
    if table is None:
        return [f"{op}: no rule written for this op; its backward() sends each input its gradient"]
    lines = []
    for i, name in enumerate(inputs):
        template = table.get(i, table.get("*"))
        if not receives[i] or template is None:
            continue
        sign = "+=" if accumulates[i] else "="
        lines.append(f"{gradient(name)} {sign} " + template.format(*inputs, **fields).replace("ᵀᵀ", ""))  # (Wᵀ)ᵀ = W
    return lines


def _shared_lines(s: Mapping[str, str], inputs: Sequence[str], receives: Sequence[bool], accumulates: Sequence[bool],
                  d: str, previous: str, hidden: str | None = None, weight: str | None = None) -> list[str]:
    """What every cell step sends: x⟨t⟩'s projection, the previous state, W_aa and its bias.

    ``d``: the gradient of the step's pre-activations, which the input's
    projection gets; ``hidden``: what reaches W_aa a⟨t−1⟩ + b (``d`` unless
    a gate scales it inside the step); ``weight``: W_aa's gradient when it is
    not ``hidden`` a⟨t−1⟩ᵀ. A step's first input is the projection W_ax x + b
    of all time steps at once (one matmul before the loop): the step fills its
    row t, and W_ax's own gradient is taken from all rows together when that
    node is reached.
    """
    hidden = hidden or d
    lines = []
    if receives[0]:
        lines.append(f"{gradient(inputs[0])} at t = {s['t']}: {d}   (∂L/∂{s['W_ax']} += {d} {s['x']}ᵀ once all steps are in)")
    if receives[1]:
        lines.append(f"{gradient(inputs[1])} {_sign(accumulates, 1)} {previous}")
    if receives[2]:
        lines.append(f"{gradient(inputs[2])} += " + (weight or f"{hidden} {s['a_prev']}ᵀ"))
    if len(inputs) > 3 and receives[3]:
        lines.append(f"{gradient(inputs[3])} += {hidden}   (summed over the batch)")
    if s.get("masked"):
        lines.append(f"(a sequence that has ended keeps {s['a_prev']}: its gradient passes straight through to it)")
    return lines


def _sign(accumulates: Sequence[bool], i: int) -> str:
    return "+=" if i < len(accumulates) and accumulates[i] else "="


def _rnn_forward(s: Mapping[str, str], details: Mapping) -> str:
    return f"{s['a']} = {'relu' if details.get('relu') else 'tanh'}({s['W_aa']} {s['a_prev']} + {s['W_ax']} {s['x']} + {s['b_a']})"


def _rnn_step(s: Mapping[str, str], inputs, receives, accumulates, details) -> list[str]:
    derivative = f"[{s['a']} > 0]" if details.get("relu") else f"(1 − {s['a']}²)"
    lines = [f"dz = {gradient(s['a'])} ⊙ {derivative}   (z: the pre-activation)"]
    return lines + _shared_lines(s, inputs, receives, accumulates, "dz", f"{s['W_aa']}ᵀ dz")


def _gru_forward(s: Mapping[str, str], details: Mapping) -> str:
    reset = (f"{s['Γr']} ⊙ ({s['W_ca']} {s['a_prev']} + {s['b_ca']})" if details.get("reset_after", True)
             else f"{s['W_ca']} ({s['Γr']} ⊙ {s['a_prev']}) + {s['b_ca']}")
    return (f"{s['a']} = (1 − {s['z']}) ⊙ {s['c̃']} + {s['z']} ⊙ {s['a_prev']},  "
            f"{s['c̃']} = tanh({s['W_cx']} {s['x']} + {reset}),  {s['z']} = 1 − {s['Γu']}")


def _gru_step(s: Mapping[str, str], inputs, receives, accumulates, details) -> list[str]:
    """d… are the gradients of the pre-activations: dc̃ of c̃'s, dz of z's, dΓr of Γr's."""
    a, z, c, r, prev = s["a"], s["z"], s["c̃"], s["Γr"], s["a_prev"]
    lines = [f"dc̃ = {gradient(a)} ⊙ (1 − {z}) ⊙ (1 − {c}²)",
             f"dz = {gradient(a)} ⊙ ({prev} − {c}) ⊙ {z} ⊙ (1 − {z})"]
    if details.get("reset_after", True):  # PyTorch's GRU: Γr scales W_ca a⟨t−1⟩ + b_ca
        lines.append(f"dΓr = dc̃ ⊙ ({s['W_ca']} {prev} + {s['b_ca']}) ⊙ {r} ⊙ (1 − {r})")
        hidden = f"[dΓr; dz; dc̃ ⊙ {r}]"
        return lines + _shared_lines(s, inputs, receives, accumulates, "[dΓr; dz; dc̃]", f"{gradient(a)} ⊙ {z} + {s['W_aa']}ᵀ {hidden}",
                                     hidden=hidden)
    # the course's GRU: Γr scales a⟨t−1⟩ before W_ca
    lines.append(f"dΓr = ({s['W_ca']}ᵀ dc̃) ⊙ {prev} ⊙ {r} ⊙ (1 − {r})")
    previous = f"{gradient(a)} ⊙ {z} + ({s['W_ca']}ᵀ dc̃) ⊙ {r} + W_(r,z)ᵀ [dΓr; dz]   (W_(r,z): {s['W_aa']}'s rows for Γr and z)"
    weight = f"[[dΓr; dz] {prev}ᵀ;  dc̃ ({r} ⊙ {prev})ᵀ]"
    return lines + _shared_lines(s, inputs, receives, accumulates, "[dΓr; dz; dc̃]", previous, weight=weight)


def _simplified_gru_forward(s: Mapping[str, str], details: Mapping) -> str:
    return (f"{s['a']} = (1 − {s['z']}) ⊙ {s['c̃']} + {s['z']} ⊙ {s['a_prev']},  {s['c̃']} = tanh({s['W_c']} [{s['a_prev']}; {s['x']}] + {s['b_c']}),  "
            f"{s['z']} = 1 − {s['Γu']}")


def _simplified_gru_step(s: Mapping[str, str], inputs, receives, accumulates, details) -> list[str]:
    """The code keeps z = 1 − Γu, so the projection's first block is z's pre-activation."""
    a, z, c, prev = s["a"], s["z"], s["c̃"], s["a_prev"]
    lines = [f"dz = {gradient(a)} ⊙ ({prev} − {c}) ⊙ {z} ⊙ (1 − {z})",
             f"dc̃ = {gradient(a)} ⊙ (1 − {z}) ⊙ (1 − {c}²)"]
    return lines + _shared_lines(s, inputs, receives, accumulates, "[dz; dc̃]", f"{gradient(a)} ⊙ {z} + {s['W_aa']}ᵀ [dz; dc̃]")


def _lstm_forward(s: Mapping[str, str], details: Mapping) -> str:
    return f"{s['a']} = {s['Γo']} ⊙ tanh({s['c']}),  {s['c']} = {s['Γf']} ⊙ {s['c_prev']} + {s['Γu']} ⊙ {s['c̃']}"


def _lstm_step(s: Mapping[str, str], inputs, receives, accumulates, details) -> list[str]:
    """dΓ… and dc̃ are the gradients of the gates' pre-activations; dc the whole ∂L/∂c⟨t⟩."""
    a, c, o, f, u, g = s["a"], s["c"], s["Γo"], s["Γf"], s["Γu"], s["c̃"]
    peep = bool(details.get("peepholes"))
    lines = [f"dΓo = {gradient(a)} ⊙ tanh({c}) ⊙ {o} ⊙ (1 − {o})",
             f"dc = (∂L/∂{c} from {s['c_next']}) + {gradient(a)} ⊙ {o} ⊙ (1 − tanh({c})²)" + (f"  + dΓo ⊙ {s['w_co']}" if peep else ""),
             f"dc̃ = dc ⊙ {u} ⊙ (1 − {g}²),  dΓu = dc ⊙ {g} ⊙ {u} ⊙ (1 − {u}),  dΓf = dc ⊙ {s['c_prev']} ⊙ {f} ⊙ (1 − {f})"]
    d = "[dΓu; dΓf; dc̃; dΓo]"
    previous = f"({s['W_aa']}ᵀ {d},  dc ⊙ {f}" + (f" + dΓu ⊙ {s['w_ci']} + dΓf ⊙ {s['w_cf']}" if peep else "") + f")  for ({s['a_prev']}, {s['c_prev']})"
    lines += _shared_lines(s, inputs, receives, accumulates, d, previous)
    if peep:
        lines.append(f"∂L/∂{s['w_ci']} += Σ dΓu ⊙ {s['c_prev']},  ∂L/∂{s['w_cf']} += Σ dΓf ⊙ {s['c_prev']},  ∂L/∂{s['w_co']} += Σ dΓo ⊙ {c}")
    return lines


CELL_STEPS = {"RNNStep": _rnn_step, "GRUStep": _gru_step, "SimplifiedGRUStep": _simplified_gru_step, "LSTMStep": _lstm_step}
CELL_FORWARD = {"RNNStep": _rnn_forward, "GRUStep": _gru_forward, "SimplifiedGRUStep": _simplified_gru_forward,
                "LSTMStep": _lstm_forward}


def step_names(tags: Mapping[str, Any], context: notation.Context) -> dict[str, str]:
    """The course names a cell step's rule uses, at its time step: a⟨t⟩, a⟨t−1⟩ (a⟨t+1⟩ in reverse), c, x, gates,
    and the weights (W_aa, or W_aa^[2] in a deep graph)."""
    t = tags.get("t", 0)
    before = t + 1 if tags.get("direction") == "reverse" else t - 1
    base = {k: v for k, v in tags.items() if k in ("layer", "direction")}

    def state(part: str, step: int) -> str:
        return notation.label({**base, "role": "state", "part": part, "t": step}, context)

    after = t - 1 if tags.get("direction") == "reverse" else t + 1
    found = {"t": str(t), "a": state("a", t), "a_prev": state("a", before), "c": state("c", t), "c_prev": state("c", before),
             "c_next": state("c", after),
             "x": notation.input_at(base, context, f"⟨{t}⟩")}  # a^[l−1]⟨t⟩ above the first layer
    for gate in ("update", "forget", "output", "reset", "candidate"):
        found[notation.GATE_SYMBOLS[gate]] = notation.label({**base, "role": "gate", "gate": gate, "t": t}, context)
    found["z"] = f"{notation.symbol({**base, 'role': 'gate', 'gate': 'update', 'complement': True}, context)}⟨{t}⟩"
    for weight in ("W_aa", "W_ax", "W_ca", "W_cx", "W_c", "b_a", "b_ca", "b_c", "w_ci", "w_cf", "w_co"):  # of the step's layer
        found[weight] = notation.mark(weight, tags.get("layer"), tags.get("direction"), context)
    return found


MAX_EXPRESSION = 72  # longer expressions are named by their op, which is ambiguous (a GRU step has three Adds): long
# enough for the gates' inputs of the built-in cells at the sizes the docs draw, deep and bidirectional


def names(graph: Graph) -> dict[str, str]:
    """A short name for every node: its course label, a parameter's symbol, or an expression of its inputs
    ("tanh(c⟨2⟩)", "Γf⟨2⟩ ⊙ c⟨1⟩") while that stays short, else the op's name."""
    found: dict[str, str] = {}
    hidden = gate_slices(graph)  # drawn as edges from their matmul: never a name another node's is written with
    taken: set[str] = set()  # the names given by the fallback below, which must not name two nodes alike
    for key, node in graph.nodes.items():
        if node.kind == "parameter":
            found[key] = graph.parameter_name(key) or node.label  # W_aa, "b_a (with W_aa)", W_ya, b_y; else its path
        elif node.kind != "op" or node.label != node.op:  # labelled by the graph (trace.py): the course's name
            found[key] = node.label.split(" = ")[0]  # "z⟨2⟩ = 1 − Γu⟨2⟩" is z⟨2⟩ in a formula
        else:
            fn = node.tensor.grad_fn
            details = _details(fn)
            # A slice is its source's name (in parentheses when a sum) and an index, and may be longer by those: so it
            # is written with the name its source goes by (a bidirectional LSTM's "(←W_ax x⟨1⟩ + ←W_aa ←a⟨2⟩)[:, 6:9]").
            limit = MAX_EXPRESSION + (len(details["index"]) + 4 if node.op == "GetItem" else 0)
            expression = forward_rule(node.op, "", arguments(fn, found, graph), details)[3:]
            if len(expression) > limit:  # drawn, unlabelled inputs by their ops: "Add^[2]⟨1⟩[:, 3:6]"
                drawn_as_ops = [graph.node_of(arg) for arg in fn.inputs if isinstance(arg, Tensor) and graph.key_of(arg) is not None]
                by_op = {source.key: _op_name(source, graph.context) for source in drawn_as_ops
                         if source.label == source.op and source.key not in hidden}
                shorter = forward_rule(node.op, "", arguments(fn, {**found, **by_op}, graph), details)[3:]
                expression = shorter if by_op and shorter not in taken else expression
            found[key] = expression if len(expression) <= limit and node.op in FORWARD else _op_name(node, graph.context)
            taken.add(found[key])
    return found


def _op_name(node: GraphNode, context: notation.Context) -> str:
    """An op without a label of its own, as a formula names it: its op, layer and direction (as the states') and time
    step ("Add⟨1⟩", "Add^[2]⟨1⟩" in a deep graph)."""
    op = notation.mark(node.op, node.tags.get("layer"), node.tags.get("direction"), context)
    return op + (f"⟨{node.tags['t']}⟩" if "t" in node.tags else "")


def arguments(fn: Function, found: Mapping[str, str], graph: Graph) -> list[str]:
    """How each positional argument of an op is written in a formula: a tensor by its name in ``found`` (keyed by
    ``graph``'s keys; in parentheses when it is a sum or product at its top level, ``notation.grouped``), the Python number a binary op took in its place (``scalar``) as itself,
    anything else (an optional tensor left out) as "·"."""
    scalar = (getattr(fn, "params", None) or {}).get("scalar")
    written = []
    for arg in fn.inputs:
        if isinstance(arg, Tensor):
            name = found.get(graph.key_of(arg), "·")
            written.append(notation.grouped(name))
        elif is_real(scalar):  # the numbers the ops take (ops/_util.py): NumPy's too
            written.append(f"{scalar:g}")
        else:
            written.append("·")
    return written


def _read_by_step(graph: Graph, fn: Function, tags: Mapping[str, Any]) -> dict[str, str]:
    """{"x": what a fused step reads at its step} where the graph shows it: the layer below's outputs as joined or
    summed ("(→a^[1]⟨2⟩ + ←a^[1]⟨2⟩)"), through the projection of all steps the step reads its row of; else {}, and
    ``step_names`` says what the context suggests."""
    projection = graph.node_of(fn.inputs[0]) if fn.inputs and isinstance(fn.inputs[0], Tensor) else None
    if projection is None or projection.role != "projection" or projection.tensor.grad_fn is None or "t" not in tags:
        return {}
    read = projection.tensor.grad_fn.inputs[0]
    source = graph.node_of(read) if isinstance(read, Tensor) else None
    if source is None or source.sequence is None:
        return {}
    return {"x": notation.grouped(source.sequence.at(f"⟨{tags['t']}⟩"))}


def node_rules(graph: Graph) -> dict[str, dict[str, Any]]:
    """For every op node: {"forward": "a⟨2⟩ = …", "backward": [lines]}, with the graph's own names."""
    short = names(graph)
    uses = Counter(source for source, _ in graph.edges)
    rules = {}
    for key, node in graph.nodes.items():
        if node.kind != "op":
            continue
        fn = node.tensor.grad_fn
        details = _details(fn)
        if node.op in CELL_STEPS:
            details["names"] = {**step_names(node.tags, graph.context), **_read_by_step(graph, fn, node.tags),
                                "masked": getattr(fn, "running", None) is not None}
        written = arguments(fn, short, graph)
        accumulates = [isinstance(a, Tensor) and uses[graph.key_of(a)] > 1 for a in fn.inputs]
        rules[key] = {
            "forward": forward_rule(node.op, short[key], written, details),
            "backward": backward_rule(node.op, short[key], written, fn.needs_input_grad, accumulates, details,
                                      own_rule=getattr(type(fn), "backward_rule", None)),
        }
    return rules


__all__ = ["BACKWARD", "CELL_STEPS", "FORWARD", "backward_rule", "forward_rule", "gradient", "names", "node_rules",
           "step_names", "arguments"]
