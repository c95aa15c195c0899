"""Which scatter-add to use for the backward of ``x[ids]`` (embedding rows): measured, not guessed.

    python bench/scatter_add.py [--backend cupy]

``out[ids[i]] += values[i]`` with repeated ids must sum the repeats. Four
ways, for 2,048 ids x 64 columns and growing vocabularies V.
"""
from __future__ import annotations

import common

import argparse
import statistics
import timeit

import numpy as np

import tinygrad_seq as ts
from tinygrad_seq.backend import backend_of


def add_at(out, ids, values):
    backend_of(out).xp.add.at(out, ids, values)  # numpy.add.at, or cupy.add.at (atomic adds on a GPU)


def one_hot_matmul(out, ids, values):
    one_hot = np.zeros((len(ids), out.shape[0]), values.dtype)
    one_hot[np.arange(len(ids)), ids] = 1
    out += one_hot.T @ values


def bincount_flat(out, ids, values):
    columns = out.shape[1]
    flat = (ids[:, None] * columns + np.arange(columns)).ravel()
    out += np.bincount(flat, weights=values.ravel(), minlength=out.size).reshape(out.shape).astype(out.dtype)


def sort_reduceat(out, ids, values):
    backend_of(out).scatter_add(out, ids, values)  # what tinygrad_seq uses, deterministic: NumPy sums sorted runs,
    # CuPy multiplies by a one-hot block of the distinct ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    args = parser.parse_args()
    backend = ts.set_backend(args.backend)
    print(common.describe_machine())
    print(f"backend: {backend.name}\n")
    rng = np.random.default_rng(0)
    n, columns = 2048, 64
    host_only = backend.name == "numpy"
    methods = (add_at, one_hot_matmul, bincount_flat, sort_reduceat) if host_only else (add_at, sort_reduceat)
    names = {add_at: f"{'np' if host_only else backend.name}.add.at µs", one_hot_matmul: "one-hot matmul µs",
             bincount_flat: "bincount µs", sort_reduceat: f"{backend.name} scatter_add (used) µs"}
    print("| V | " + " | ".join(names[m] for m in methods) + " |")
    print("|---:|" + "---:|" * len(methods))
    for vocabulary in (100, 1_000, 10_000, 50_000):
        host_ids = rng.integers(0, vocabulary, n)
        host_values = rng.standard_normal((n, columns)).astype(np.float32)
        reference = np.zeros((vocabulary, columns), np.float32)
        np.add.at(reference, host_ids, host_values)
        ids, values = backend.asarray(host_ids), backend.asarray(host_values)
        row = []
        for method in methods:
            out = backend.xp.zeros((vocabulary, columns), np.float32)
            method(out, ids, values)
            np.testing.assert_allclose(backend.to_host(out), reference, rtol=1e-4, atol=1e-4)
            if method is one_hot_matmul and vocabulary > 10_000:
                row.append("-")  # (n, V) one-hot of 400 MB: not a contender
                continue

            def once(m=method, o=out):
                m(o, ids, values)
                backend.synchronize()  # on a GPU: until the device is done

            times = timeit.repeat(once, number=10, repeat=5)
            row.append(f"{statistics.median(times) / 10 * 1e6:.0f}")
        print(f"| {vocabulary:,} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
