"""Optimizers with PyTorch's update rules and defaults, and gradient clipping.

>>> import tinygrad_seq as ts
>>> from tinygrad_seq import nn, optim
>>> model = nn.Linear(2, 1)
>>> opt = optim.Adam(model.parameters(), lr=0.1)
>>> loss = (model(ts.Tensor([[1.0, 2.0]])) ** 2).sum()
>>> loss.backward()
>>> norm = optim.clip_grad_norm_(model.parameters(), max_norm=1.0)
>>> opt.step(); opt.zero_grad()
"""
from .adagrad import Adagrad
from .adam import Adam
from .clip import clip_grad_norm_, clip_grad_value_
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["SGD", "Adagrad", "Adam", "Optimizer", "RMSprop", "clip_grad_norm_", "clip_grad_value_"]
