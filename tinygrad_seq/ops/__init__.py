"""Every differentiable primitive, one class each with forward and backward side by side.

=============  =================================================================
module         ops
=============  =================================================================
arithmetic     Add Sub Mul Div Neg Pow MatMul Linear (x W^T + b in one node)
elementwise    Exp Log Sqrt Abs Tanh Sigmoid Relu Clamp
reduce         Sum Mean Max Softmax LogSoftmax (min is -max(-x); argmax is
               not differentiable)
shape          Reshape Transpose GetItem Concat Stack (split, chunk, squeeze,
               unsqueeze and swapaxes are built from them)
select         Where Maximum MaskedFill (and the comparisons, not differentiable)
convert        Cast ToBackend
losses         CrossEntropy BinaryCrossEntropyWithLogits (nn/losses.py checks
               the arguments and holds the public functions)
embedding      EmbeddingLookup (nn.Embedding)
dropout        DropoutMask (nn.Dropout draws the mask)
cell_steps     RNNStep GRUStep SimplifiedGRUStep LSTMStep: the built-in cells'
               hand-written steps (nn/fused.py's kernels run them)
methods        Tensor's operators and math methods (x + y, x.sum(), ...),
               attached to Tensor when this package is imported
=============  =================================================================

Every op follows one convention, which ``Function.apply`` enforces: tensors
positional (None for an optional one left out), everything else keyword;
``backward`` returns one gradient per positional argument. The one Function
outside this package is nn/recorded.py's RecordedStep, a replay of a tape
recorded from a cell's forward rather than a primitive.
"""
from .arithmetic import Add, Div, Linear, MatMul, Mul, Neg, Pow, Sub, add, div, linear, matmul, mul, neg, pow, sub
from .cell_steps import GRUStep, LSTMStep, RNNStep, SimplifiedGRUStep
from .convert import Cast, ToBackend
from .dropout import DropoutMask
from .elementwise import Abs, Clamp, Exp, Log, Relu, Sigmoid, Sqrt, Tanh, abs, clamp, exp, log, relu, sigmoid, sqrt, tanh
from .embedding import EmbeddingLookup
from .losses import BinaryCrossEntropyWithLogits, CrossEntropy
from .reduce import LogSoftmax, Max, Mean, Softmax, Sum, argmax, log_softmax, max, mean, min, softmax, sum
from .select import MaskedFill, Maximum, Where, compare, masked_fill, maximum, where
from .shape import (
    Concat,
    GetItem,
    Reshape,
    Stack,
    StackPart,
    Transpose,
    chunk,
    concat,
    getitem,
    reshape,
    split,
    squeeze,
    stack,
    stack_part,
    swapaxes,
    transpose,
    unsqueeze,
)
from . import methods  # noqa: E402,F401  attaches Tensor's operators and math methods (ops/methods.py)
