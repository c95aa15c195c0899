"""Moving weights between tinygrad_seq modules and their PyTorch twins (torch imported only here, lazily).

Parameter names and layouts follow PyTorch, so a state dict moves as it is:

    ts.interop.from_torch(model, torch_model)       # torch -> tinygrad_seq
    torch_model.load_state_dict(ts.interop.to_torch_state_dict(model))
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from .nn.module import IncompatibleKeys, Module


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError("ts.interop needs PyTorch: pip install torch") from None
    return torch


def _without_twin(module: Module, op: str) -> None:
    """A ValueError naming ``op`` when ``module`` holds a cell PyTorch has no twin of (its weights would load there and
    compute something else, or not load at all)."""
    for inner in module.modules():
        if getattr(inner, "reset_after", True) is False:
            raise ValueError(f"{op}: {type(inner).__name__} has reset_after=False (the course's GRU), which PyTorch's GRU does "
                             "not compute: its weights would load there and give other outputs. Use reset_after=True to move weights")
        if getattr(inner, "peephole", False):
            raise ValueError(f"{op}: {type(inner).__name__} has peephole=True, which PyTorch's LSTM does not have: "
                             "use peephole=False to move weights")


def _ours(module: Any, op: str, other: str) -> Module:
    """``module`` if it is a tinygrad_seq Module, else a TypeError naming ``op`` and what goes where."""
    if not isinstance(module, Module):
        raise TypeError(f"{op}: the first argument is the tinygrad_seq module; got {type(module).__module__}."
                        f"{type(module).__name__}. {other}")
    return module


def to_torch_state_dict(module: Module) -> OrderedDict[str, Any]:
    """The module's state dict as torch tensors (CPU, same dtypes), ready for ``torch_module.load_state_dict``."""
    _ours(module, "to_torch_state_dict", "To copy a PyTorch module's weights into yours: from_torch(module, torch_module)")
    _without_twin(module, "to_torch_state_dict")
    torch = _torch()
    return OrderedDict((name, torch.from_numpy(value)) for name, value in module.state_dict().items())


def from_torch(module: Module, torch_module: Any, strict: bool = True) -> IncompatibleKeys:
    """Copy a PyTorch module's weights (or its state dict) into ``module``, keeping ``module``'s dtype and backend."""
    _ours(module, "from_torch", "Call from_torch(module, torch_module): yours first, PyTorch's second")
    _without_twin(module, "from_torch")
    torch = _torch()
    state = torch_module if isinstance(torch_module, Mapping) else getattr(torch_module, "state_dict", lambda: None)()
    if not isinstance(state, Mapping) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        inside = [key for key, value in state.items() if isinstance(value, Mapping)] if isinstance(state, Mapping) else []
        hint = (f" whose values are not all tensors; a checkpoint's dict? Pass the state dict in it, e.g. "
                f"from_torch(module, checkpoint[{inside[0]!r}]) (it holds dicts under {inside})" if inside else
                " whose values are not all tensors" if isinstance(state, Mapping) else "")
        raise TypeError(f"from_torch: the second argument is the PyTorch module (or its state dict) to copy from; got "
                        f"{type(torch_module).__module__}.{type(torch_module).__name__}{hint}")
    return module.load_state_dict({name: _host_array(value, torch) for name, value in state.items()}, strict=strict)


def _host_array(value: Any, torch: Any) -> Any:
    """A torch tensor's values as a NumPy array; bfloat16, which NumPy has no type for, as float32 (which holds
    every bfloat16 exactly)."""
    value = value.detach().cpu()
    return (value.float() if value.dtype == torch.bfloat16 else value).numpy()
