"""Which scatter-add to use for the backward of ``x[ids]`` (embedding rows): measured, not guessed.

    python bench/scatter_add.py

``out[ids[i]] += values[i]`` with repeated ids must sum the repeats. Four
ways, for 2,048 ids x 64 columns and growing vocabularies V.
"""
from __future__ import annotations

import common

import statistics
import timeit

import numpy as np

import tinygrad_seq as ts


def add_at(out, ids, values):
    np.add.at(out, ids, values)


def one_hot_matmul(out, ids, values):
    one_hot = np.zeros((len(ids), out.shape[0]), values.dtype)
    one_hot[np.arange(len(ids)), ids] = 1
    out += one_hot.T @ values


def bincount_flat(out, ids, values):
    columns = out.shape[1]
    flat = (ids[:, None] * columns + np.arange(columns)).ravel()
    out += np.bincount(flat, weights=values.ravel(), minlength=out.size).reshape(out.shape).astype(out.dtype)


def sort_reduceat(out, ids, values):
    ts.get_backend().scatter_add(out, ids, values)  # what tinygrad_seq uses


def main() -> None:
    print(common.describe_machine())
    print()
    rng = np.random.default_rng(0)
    n, columns = 2048, 64
    print("| V | np.add.at µs | one-hot matmul µs | bincount µs | sort + reduceat (used) µs |")
    print("|---:|---:|---:|---:|---:|")
    for vocabulary in (100, 1_000, 10_000, 50_000):
        ids = rng.integers(0, vocabulary, n)
        values = rng.standard_normal((n, columns)).astype(np.float32)
        reference = np.zeros((vocabulary, columns), np.float32)
        add_at(reference, ids, values)
        row = []
        for method in (add_at, one_hot_matmul, bincount_flat, sort_reduceat):
            out = np.zeros((vocabulary, columns), np.float32)
            method(out, ids, values)
            np.testing.assert_allclose(out, reference, rtol=1e-4, atol=1e-4)
            if method is one_hot_matmul and vocabulary > 10_000:
                row.append("-")  # (n, V) one-hot of 400 MB: not a contender
                continue
            times = timeit.repeat(lambda m=method, o=out, i=ids, v=values: m(o, i, v), number=10, repeat=5)
            row.append(f"{statistics.median(times) / 10 * 1e6:.0f}")
        print(f"| {vocabulary:,} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
