"""Neural-network building blocks: Module and Parameter, layers, losses, initialisation.

=============  ===============================================================
module         contents
=============  ===============================================================
module         Module, Parameter, Sequential, ModuleList; evaluating (eval mode and
               no_grad for a block, the flags restored after)
linear         Linear
activation     Tanh, Sigmoid, ReLU (for Sequential)
embedding      Embedding
dropout        Dropout (and functional.dropout)
losses         cross_entropy and binary_cross_entropy_with_logits (fused), nll_loss,
               mse_loss; BCEWithLogitsLoss
functional     the parameter-free functions, as torch.nn.functional
init           uniform_, normal_, xavier_*, kaiming_uniform_, orthogonal_, zeros_,
               forget_bias_
cells          RecurrentCell (the base), RNNCell, GRUCell, SimplifiedGRUCell,
               LSTMCell; register_cell, make_cell; StateError (a state that does
               not fit its cell or layer)
roles          gate (and state, output, loss): what a step's tensors are, for the tools
steps          the step objects of Recurrent's time loop (transparent, kernel,
               recorded), path_of(cell)
fused          the built-in cells' kernels: one hand-written node per step
tape           the step tape: a cell's step recorded once as primitive ops, replayed on arrays
time_batching  a tape's state-independent ops, taken out of the loop and run for all steps at once
recorded       the recorded path: a tape per cell, checked, replayed in one node per step
recurrent      Recurrent (unroll any cell), Bidirectional, Stacked
rnn            RNN, GRU, LSTM (PyTorch's layers and state-dict keys)
course         load_course_parameters (a course notebook's Wax, Wf, ... into a cell),
               course_gradients (the cell's gradients back as dWax, dWf, ...)
=============  ===============================================================
"""
from . import functional, init, roles, steps
from .activation import ReLU, Sigmoid, Tanh
from .course import course_gradients, load_course_parameters
from .cells import GRUCell, LSTMCell, RecurrentCell, RNNCell, SimplifiedGRUCell, StateError, make_cell, register_cell
from .dropout import Dropout
from .embedding import Embedding
from .linear import Linear
from .losses import BCEWithLogitsLoss
from .module import Module, ModuleList, Parameter, Sequential, StateDictError, evaluating
from .recurrent import Bidirectional, PrecisionWarning, Recurrent, Stacked, detach_state
from .roles import gate
from .rnn import GRU, LSTM, RNN, RecurrentLayer

__all__ = [
    "BCEWithLogitsLoss", "GRU", "LSTM", "RNN", "Bidirectional", "Dropout", "Embedding", "GRUCell", "LSTMCell", "Linear", "Module", "ModuleList",
    "Parameter", "PrecisionWarning", "RNNCell", "ReLU", "Recurrent", "RecurrentCell", "RecurrentLayer", "Sequential", "Sigmoid",
    "SimplifiedGRUCell", "Stacked", "StateDictError", "StateError", "Tanh", "functional", "gate", "init", "roles", "steps", "course_gradients", "detach_state", "evaluating", "load_course_parameters", "make_cell", "register_cell",
]
