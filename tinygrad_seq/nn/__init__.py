"""Neural-network building blocks: Module and Parameter, layers, losses, initialisation.

=============  ===============================================================
module         contents
=============  ===============================================================
module         Module, Parameter, Sequential, ModuleList
linear         Linear
activation     Tanh, Sigmoid, ReLU (for Sequential)
embedding      Embedding
dropout        Dropout (and functional.dropout)
losses         cross_entropy (fused), nll_loss, mse_loss
functional     the parameter-free functions, as torch.nn.functional
init           uniform_, normal_, xavier_*, kaiming_uniform_, orthogonal_, zeros_
=============  ===============================================================
"""
from . import functional, init
from .activation import ReLU, Sigmoid, Tanh
from .dropout import Dropout
from .embedding import Embedding
from .linear import Linear
from .module import Module, ModuleList, Parameter, Sequential

__all__ = [
    "Dropout", "Embedding", "Linear", "Module", "ModuleList", "Parameter", "ReLU", "Sequential", "Sigmoid", "Tanh",
    "functional", "init",
]
