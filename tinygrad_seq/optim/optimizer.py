"""The Optimizer base class: parameter groups, per-parameter state, state dicts.

Subclasses implement ``update(param, grad, state, group)`` on raw arrays,
following PyTorch's update rule line by line, in place (``out=`` and a
per-parameter scratch buffer), so a step allocates nothing where NumPy allows.
They end with ``param.data -= step``: the augmented assignment writes the
array back through the ``data`` setter, which bumps the parameter's version,
so a graph built before the step refuses to run backward with the new values.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .. import settings
from ..checks import as_real, is_int, is_real
from ..tensor import Tensor


PYTORCH_UPDATE_OPTIONS = {
    "maximize": (False, "steps up the gradient instead of down"),
    "decoupled_weight_decay": (False, "decays the weights apart from the gradient (AdamW's rule)"),
    "amsgrad": (False, "divides by the running maximum of the second moment (AMSGrad)"),
    "nesterov": (False, "takes Nesterov's momentum step"),
    "centered": (False, "divides by the centred second moment"),
    "dampening": (0, "dampens the momentum"),
    "momentum": (0, "keeps a momentum buffer"),
    "lr_decay": (0, "decays the learning rate"),
    "initial_accumulator_value": (0, "starts the accumulator away from 0"),
}
"""Options of PyTorch's optimizers that change the update, with the value that leaves it as this library's
optimizer of the same name computes it when the class does not take the option: a state dict saved by PyTorch
with another value (an AdamW's, a ``maximize=True`` run's) is refused by ``load_state_dict``, whose steps would
otherwise quietly differ from the run that saved it. Options that only choose an implementation (``foreach``,
``fused``, ``capturable``, ``differentiable``) and a scheduler's ``initial_lr`` are kept as they are."""


def _is_array(value: Any) -> bool:
    """An array of a parameter's state (any shape, () included), not a count such as "step" (a 0-d integer array
    a file made of one is a count too)."""
    if not hasattr(value, "shape") or np.isscalar(value):
        return False
    return value.ndim > 0 or not np.issubdtype(value.dtype, np.integer)


def _loaded(value: Any, param: Tensor) -> Any:
    """A saved state value as the optimizer keeps it: an array copied into the parameter's dtype and backend; a
    count ("step") as a Python int, also when a file gave it back as a 0-d integer array."""
    if _is_array(value):  # a copy on the parameter's backend; per-element state in its dtype, a 0-d statistic in its own
        return param.backend.array(value, param.dtype if value.ndim else None, copy=True)
    return int(value) if hasattr(value, "shape") and not np.isscalar(value) else value


def _checked_value(key: str, value: Any, param: Tensor, what: str) -> Any:
    """``_loaded(value, param)``, or a ValueError naming ``what`` when ``value`` cannot be one: an array not of
    real numbers, an array of another library, or a "step" that is not a count."""
    if hasattr(value, "shape") and not isinstance(value, (np.generic, *settings.array_types)):
        raise ValueError(f"{what} is a {type(value).__module__.split('.')[0]}.{type(value).__name__}: an optimizer's state holds "
                         "NumPy arrays and numbers, as state_dict() gives them (a PyTorch tensor: .numpy())")
    if key == "step":  # a count: an int, or a whole number in any type that holds one (1.0, a 0-d array)
        number = value.item() if np.ndim(value) == 0 and hasattr(value, "item") else value
        if not (is_real(number) and not isinstance(number, bool) and float(number).is_integer() and number >= 0):
            raise ValueError(f"{what} is {value!r}: a step count is a whole number >= 0, as state_dict() gives it")
        return int(number)
    if _is_array(value) and value.dtype.kind not in "fiu":
        raise ValueError(f"{what} is an array of {value.dtype}, not of real numbers; load the arrays state_dict() gave")
    return _loaded(value, param)


def parameter_list(params: Any, op: str) -> list[Tensor]:
    """``params`` (one tensor, or an iterable of them) as a list, or a TypeError that names ``op`` and the fix for
    the usual mistakes: the module itself, or ``model.parameters`` without its parentheses (where listing it would
    say "'method' object is not iterable"). Optimizers and the clipping functions take their parameters here."""
    if isinstance(params, Tensor):
        return [params]
    if callable(getattr(params, "parameters", None)):  # a model: torch refuses it too, with less to go on
        raise TypeError(f"{op}: got the module {type(params).__name__} itself; pass its parameters: "
                        f"{op}(model.parameters(), ...)")
    if callable(params) and not hasattr(params, "__iter__"):
        called = getattr(params, "__name__", type(params).__name__)
        raise TypeError(f"{op}: got the function {called} itself, not the parameters it gives; call it: "
                        f"{op}(model.parameters(), ...)")
    if not hasattr(params, "__iter__") or isinstance(params, (str, bytes, dict)):
        raise TypeError(f"{op}: takes the parameters, model.parameters() (or a list of tensors); got {type(params).__name__}")
    return list(params)


class Optimizer:
    """Holds ``param_groups`` (dicts of hyperparameters and "params") and ``state`` per parameter.

    ``params`` is an iterable of tensors, or of dicts ``{"params": [...], "lr": ...}``
    to give groups their own hyperparameters, as in PyTorch.
    """

    non_negative: tuple[str, ...] = ("lr", "weight_decay")
    """The hyperparameters that must be finite numbers >= 0 (a subclass lists its own): checked in every group,
    given or loaded (:meth:`check_group`), since a negative or NaN one trains the wrong way or poisons the
    weights without an error."""

    state_names: tuple[str, ...] | None = None
    """What ``update`` keeps per parameter (Adam's "step", "exp_avg", ...): a saved state naming anything else
    comes from another optimizer, and ``load_state_dict`` refuses it. Checked only for the class that sets it
    (a subclass of Adam that keeps more is not held to Adam's names); None accepts any."""

    def required_state(self, group: dict[str, Any]) -> tuple[str, ...]:
        """What ``update`` reads from a parameter's state once it has one, given its group's hyperparameters:
        ``load_state_dict`` refuses a saved state without them, which would fail at the next step. Asked only of a
        class that defines it (a subclass of Adam that keeps less is not held to Adam's)."""
        return ()

    def __init__(self, params: Iterable[Tensor] | Iterable[dict[str, Any]], defaults: dict[str, Any]) -> None:
        name = type(self).__name__
        params = parameter_list(params, name)
        if not params:
            raise ValueError(f"{name}: got an empty parameter list; pass model.parameters()")
        if any(isinstance(p, dict) != isinstance(params[0], dict) for p in params):
            raise TypeError(f"{name}: takes tensors, or groups (dicts with \"params\" and their own hyperparameters), "
                            "not both in one list; put the lone tensors in a group of their own: {\"params\": [...]}")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Tensor, dict[str, Any]] = {}
        self._scratch: dict[tuple[Tensor, int], Any] = {}
        seen: set[int] = set()
        for i, group in enumerate(groups):
            if "params" not in group:
                raise ValueError(f"{name}: parameter group {i} has no \"params\"; write {{\"params\": model.parameters(), ...}}")
            unknown = set(group) - set(defaults) - {"params"}
            if unknown:
                raise TypeError(f"{name}: unknown hyperparameters {sorted(unknown)}; it takes {sorted(defaults)}")
            members = parameter_list(group["params"], name)
            for p in members:
                if not isinstance(p, Tensor):
                    raise TypeError(f"{name}: every parameter must be a Tensor; got {type(p).__name__}")
                if p.grad_fn is not None:
                    raise ValueError(f"{name}: a parameter must be a leaf tensor, one no op made; got one of shape {p.shape} "
                                     f"made by {p.grad_fn.name}. Pass model.parameters(), or make your own a leaf: "
                                     "w = w.detach().requires_grad_()")
                if id(p) in seen:
                    raise ValueError(f"{name}: a parameter appears twice (shape {p.shape}); pass each once")
                seen.add(id(p))
            merged = {**defaults, **group, "params": members}
            self.check_group(merged, f" (parameter group {i})" if len(groups) > 1 else "")
            self.param_groups.append(merged)
        # A frozen parameter (requires_grad=False) is kept, as PyTorch keeps it: it has no gradient, so step() leaves it
        # until it is unfrozen. None that can train is the mistake of a tensor made without requires_grad=True.
        if not any(p.requires_grad for group in self.param_groups for p in group["params"]):
            raise TypeError(f"{name}: none of the {len(seen)} parameters requires grad, so nothing would train; make them "
                            "with requires_grad=True (nn.Parameter does), or pass the ones to train")

    def check_group(self, group: dict[str, Any], where: str = "") -> None:
        """A ValueError naming the optimizer, the hyperparameter and its value unless each of ``non_negative`` is a
        finite number >= 0. ``where`` says which group ("" for the only one). A subclass with other rules (Adam's
        betas) adds them after calling this."""
        for key in self.non_negative:
            if type(group[key]) in (float, int) and 0 <= group[key] < math.inf:  # the usual case in one test: step() asks
                continue  # every time (weight_decay=0 is an int)
            value = as_real(group[key])
            if value is None or not math.isfinite(value) or value < 0:
                raise ValueError(f"{type(self).__name__}: {key} must be a finite number >= 0{where}; got {group[key]!r}")

    def update(self, param: Tensor, grad: Any, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError

    def step(self) -> None:
        """Update every parameter that has a gradient."""
        for i, group in enumerate(self.param_groups):
            # a schedule changes a group's lr in place, after the optimizer checked it: a negative one would climb
            self.check_group(group, f" (parameter group {i}, at step())")
            for p in group["params"]:
                if p.grad is not None:
                    self.update(p, p.grad, self.state.setdefault(p, {}), group)

    def zero_grad(self) -> None:
        """Set every parameter's gradient to None."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def scratch(self, param: Tensor, slot: int = 0) -> Any:
        """Buffer number ``slot`` shaped like ``param``, for intermediate results, reused every step.

        Slot 0 holds the weight-decayed gradient (see ``weight_decayed``).
        """
        key = (param, slot)
        buffer = self._scratch.get(key)
        if buffer is None or buffer.shape != param.shape or buffer.dtype != param.dtype or type(buffer) is not type(param.data):
            buffer = self._scratch[key] = param.backend.xp.empty_like(param.data)
        return buffer

    def weight_decayed(self, param: Tensor, grad: Any, weight_decay: float) -> Any:
        """grad + weight_decay * param (PyTorch's L2 penalty), or grad itself when there is none."""
        if not weight_decay:
            return grad
        out = self.scratch(param)
        param.backend.xp.multiply(param.data, weight_decay, out=out)
        out += grad
        return out

    # ---- state dicts

    def state_dict(self) -> dict[str, Any]:
        """{"state": {index: {name: host array or number}}, "param_groups": [{hyperparameters, "params": [index]}]}."""
        index = {}
        groups = []
        for group in self.param_groups:
            ids = []
            for p in group["params"]:
                index[p] = len(index)
                ids.append(index[p])
            groups.append({**{k: copy.deepcopy(v) for k, v in group.items() if k != "params"}, "params": ids})
        state = {index[p]: {k: (np.array(Tensor.wrap(v).numpy(), copy=True) if _is_array(v) else v) for k, v in s.items()}
                 for p, s in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore hyperparameters and state saved by ``state_dict`` (training then resumes exactly).

        Everything is checked before anything changes, and the arrays are copied: the dict stays the caller's,
        and two optimizers loaded from one share nothing."""
        where = f"{type(self).__name__}.load_state_dict"
        if not (isinstance(state_dict, Mapping) and isinstance(state_dict.get("state"), Mapping)
                and isinstance(state_dict.get("param_groups"), (list, tuple))):
            got = sorted(map(str, state_dict)) if isinstance(state_dict, Mapping) else type(state_dict).__name__
            raise ValueError(f"{where}: expects what state_dict() returns, a dict of \"state\" (a dict) and "
                             f"\"param_groups\" (a list); got {got}")
        groups = state_dict["param_groups"]
        sizes = [len(g["params"]) for g in self.param_groups]
        saved_sizes = [len(g["params"]) for g in groups]
        if sizes != saved_sizes:
            raise ValueError(f"{where}: the saved groups hold {saved_sizes} parameters, this optimizer's {sizes}")
        another = "a state dict of another optimizer? Load it into an optimizer of the class that saved it"
        saved_keys = {key for group in groups for key in group} - {"params"}
        foreign, lacking = sorted(saved_keys - set(self.defaults)), sorted(set(self.defaults) - saved_keys)
        if foreign and lacking:  # extra keys alone are a scheduler's (initial_lr) or a subclass's, kept as PyTorch keeps them
            raise ValueError(f"{where}: the saved groups have hyperparameters {foreign} that {type(self).__name__} does not "
                             f"take, and lack its {lacking}: {another}")
        for i, group in enumerate(groups):
            for key in sorted(set(group) & set(PYTORCH_UPDATE_OPTIONS) - set(self.defaults)):
                neutral, meaning = PYTORCH_UPDATE_OPTIONS[key]
                if key == "decoupled_weight_decay" and not group.get("weight_decay"):
                    continue  # AdamW without weight decay steps as Adam
                if group[key] is not None and group[key] != neutral:
                    raise ValueError(f"{where}: saved parameter group {i} has {key}={group[key]!r}, PyTorch's option that "
                                     f"{meaning}; {type(self).__name__} here has no such option and steps as with {key}="
                                     f"{neutral!r}, so the run would go on with other updates than those it was saved with. "
                                     "Resume it where it was made, or set the option to that value in the state dict "
                                     "if the change is meant")
        # Checked only for a class that says what it keeps itself: a subclass may keep more than its parent
        known = type(self).__dict__.get("state_names")
        params = [p for g in self.param_groups for p in g["params"]]
        group_of = [i for i, g in enumerate(self.param_groups) for _ in g["params"]]
        loaded_groups = [{**group, **{k: v for k, v in saved.items() if k != "params"}} for group, saved in zip(self.param_groups, groups)]
        for i, group in enumerate(loaded_groups):
            self.check_group(group, f" in saved parameter group {i} (load_state_dict)")
        state: dict[Tensor, dict[str, Any]] = {}
        for i, saved in state_dict["state"].items():
            if not ((is_int(i) and i >= 0) or (isinstance(i, str) and i.isdigit())) or int(i) >= len(params):
                raise ValueError(f"{where}: state of parameter {i!r}: its index must be an int from 0 to {len(params) - 1}, "
                                 "one per parameter in the order of param_groups")
            p = params[int(i)]
            if not isinstance(saved, Mapping):
                raise ValueError(f"{where}: the state of parameter {i} is a {type(saved).__name__}, not a dict of its values")
            unknown = sorted(set(saved) - set(known)) if known is not None else []
            if unknown:
                raise ValueError(f"{where}: parameter {i} has state {unknown} that {type(self).__name__} does not keep (it keeps "
                                 f"{list(known)}): {another}")
            required = self.required_state(loaded_groups[group_of[int(i)]]) if saved and "required_state" in type(self).__dict__ else ()
            missing = [key for key in required if key not in saved]  # asked of the class that says it, as state_names
            if missing:
                raise ValueError(f"{where}: the state of parameter {i} lacks {missing}, which {type(self).__name__}'s next "
                                 f"step reads: the state dict is incomplete; load one that state_dict() wrote whole")
            state[p] = {}
            for key, value in saved.items():
                state[p][key] = _checked_value(key, value, p, f"{where}: state {key!r} of parameter {i}")
                if _is_array(value) and value.ndim > 0 and tuple(value.shape) != p.shape:  # a 0-d value: a statistic, not per element
                    raise ValueError(f"{where}: state {key!r} of parameter {i} has shape {tuple(value.shape)}, the parameter {p.shape}")
        self.state = state  # nothing changed until here: a refused state dict leaves the optimizer as it was
        for group, saved in zip(self.param_groups, groups):
            group.update({k: copy.deepcopy(v) for k, v in saved.items() if k != "params"})

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            settings = ", ".join(f"{k}={v}" for k, v in group.items() if k != "params")
            lines.append(f"  group {i}: {len(group['params'])} parameters, {settings}")
        return "\n".join(lines + [")"])
