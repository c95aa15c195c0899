"""Generation one token at a time, tinygrad_seq against PyTorch, in the same run.

    python bench/generate.py [--batch 16] [--hidden 256] [--tokens 200] [--repeat 7] [--alone]

Embedding(65, 64) -> nn.LSTM(64, H) -> Linear(-> 65), no gradient, greedy:
every step feeds the last token of each of the B sequences through the
layer (T = 1, the state carried over) and picks the likeliest next one. This
is what ``ts.text.sample`` does, without the sampling itself. Both libraries
start from the same weights (PyTorch's, loaded into ours) and must produce
the same tokens; the figure is the best of --repeat runs of the whole
generation, the libraries alternating, and the ratio is ours / PyTorch's.
``--alone`` runs each library's --repeat generations back to back instead
(the first of each block dropped): alternating lets NumPy's spinning BLAS
thread slow PyTorch (docs/performance.md, "Alone or alternating").
"""
from __future__ import annotations

import common

import argparse

import numpy as np

import tinygrad_seq as ts
from tinygrad_seq import nn

VOCABULARY, EMBEDDING = 65, 64


class Generator(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(VOCABULARY, EMBEDDING)
        self.rnn = nn.LSTM(EMBEDDING, hidden)
        self.head = nn.Linear(hidden, VOCABULARY)

    def forward(self, ids, state=None):
        out, state = self.rnn(self.embedding(ids), state)
        return self.head(out), state


def ours(model: Generator, first: np.ndarray, tokens: int) -> np.ndarray:
    """(tokens, B) greedy continuation of ``first`` (B,)."""
    generated = np.empty((tokens, len(first)), dtype=np.int64)
    ids, state = first[None, :], None
    with ts.no_grad():
        for step in range(tokens):
            logits, state = model(ids, state)
            ids = logits.numpy()[-1].argmax(axis=-1)[None, :]
            generated[step] = ids[0]
    return generated


def theirs(torch, model, first: np.ndarray, tokens: int) -> np.ndarray:
    generated = np.empty((tokens, len(first)), dtype=np.int64)
    ids, state = torch.from_numpy(first[None, :]), None
    with torch.no_grad():
        for step in range(tokens):
            out, state = model.rnn(model.embedding(ids), state)
            ids = model.head(out)[-1].argmax(dim=-1)[None, :]
            generated[step] = ids[0].numpy()
    return generated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--alone", action="store_true", help="each library's runs back to back, not alternating")
    args = parser.parse_args()
    torch = common.reference_torch()
    common.print_header(torch)
    if torch is None:
        raise SystemExit("generate.py compares with PyTorch: pip install torch==2.13.0")
    torch.manual_seed(0)
    reference = torch.nn.Module()
    reference.embedding = torch.nn.Embedding(VOCABULARY, EMBEDDING)
    reference.rnn = torch.nn.LSTM(EMBEDDING, args.hidden)
    reference.head = torch.nn.Linear(args.hidden, VOCABULARY)
    model = Generator(args.hidden)
    model.load_state_dict({name: value.detach().numpy() for name, value in reference.state_dict().items()})
    first = np.random.default_rng(0).integers(0, VOCABULARY, args.batch)
    np.testing.assert_array_equal(ours(model, first, args.tokens), theirs(torch, reference, first, args.tokens))
    runs = [lambda: ours(model, first, args.tokens), lambda: theirs(torch, reference, first, args.tokens)]
    if args.alone:
        mine, its = (common.time_alternating([run], args.repeat, pick=min, warm_up=1)[0] for run in runs)
    else:
        mine, its = common.time_alternating(runs, args.repeat, pick=min, warm_up=0)  # the check above warmed both up
    print(f"LSTM B{args.batch} H{args.hidden}, {args.tokens} tokens one at a time, greedy, no grad, "
          f"{'each library alone' if args.alone else 'alternating'}:")
    print(f"  tinygrad_seq {mine:.1f} ms   torch {its:.1f} ms   ratio {mine / its:.2f}   ({mine / args.tokens * 1e3:.0f} µs per token)")


if __name__ == "__main__":
    main()
