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
=============  =================================================================
"""
from .arithmetic import Add, Div, Linear, MatMul, Mul, Neg, Pow, Sub, add, div, linear, matmul, mul, neg, pow, sub
from .convert import Cast, ToBackend
from .elementwise import Abs, Clamp, Exp, Log, Relu, Sigmoid, Sqrt, Tanh, abs, clamp, exp, log, relu, sigmoid, sqrt, tanh
from .reduce import LogSoftmax, Max, Mean, Softmax, Sum, argmax, log_softmax, max, mean, min, softmax, sum
from .select import MaskedFill, Maximum, Where, compare, masked_fill, maximum, where
from .shape import (
    Concat,
    GetItem,
    Reshape,
    Stack,
    Transpose,
    chunk,
    concat,
    getitem,
    reshape,
    split,
    squeeze,
    stack,
    swapaxes,
    transpose,
    unsqueeze,
)
