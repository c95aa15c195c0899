"""Moving weights between tinygrad_seq modules and their PyTorch twins (torch imported only here, lazily).

Parameter names and layouts follow PyTorch, so a state dict moves as it is:

    ts.interop.from_torch(model, torch_model)       # torch -> tinygrad_seq
    torch_model.load_state_dict(ts.interop.to_torch_state_dict(model))
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from .nn.module import IncompatibleKeys, Module


def _torch() -> Any:
    try:
        import torch
    except ImportError:
        raise ImportError("ts.interop needs PyTorch: pip install torch") from None
    return torch


def to_torch_state_dict(module: Module) -> OrderedDict[str, Any]:
    """The module's state dict as torch tensors (CPU, same dtypes), ready for ``torch_module.load_state_dict``."""
    torch = _torch()
    return OrderedDict((name, torch.from_numpy(value)) for name, value in module.state_dict().items())


def from_torch(module: Module, torch_module: Any, strict: bool = True) -> IncompatibleKeys:
    """Copy a PyTorch module's weights into ``module`` (keeping ``module``'s dtype and backend)."""
    state = {name: value.detach().cpu().numpy() for name, value in torch_module.state_dict().items()}
    return module.load_state_dict(state, strict=strict)
