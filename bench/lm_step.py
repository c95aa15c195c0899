"""One language-model training step, tinygrad_seq against PyTorch, in the same run.

    pip install -e ".[bench]" torch==2.13.0
    python bench/lm_step.py [--steps 20] [--cells rnn gru lstm] [--configs "B32 T64 H128" ...] [--memory] [--alone | --blocks K]
    python bench/lm_step.py --backend cupy --torch-device cuda     (on a GPU)

The step: Embedding(65, 64) -> RNN/GRU/LSTM -> Linear(-> 65), cross-entropy
over all positions, backward, clip_grad_norm_(5), Adam; float32. For each
configuration (B, T, H, layers[, bidirectional]) it prints the median time of
--steps steps after warm-up, the two libraries alternating step by step, and
the ratio (ours / PyTorch: below 1 is faster). Alternating keeps the two
under the same machine load, but on a 2-core machine it slows PyTorch far
more than this library: OpenBLAS's worker thread spins for a while after
NumPy's last product, taking a core from PyTorch's next step (RNN-512:
PyTorch's step took 82 ms alternating, 37 with NumPy's BLAS on one thread,
34 alone). ``--alone`` instead runs each library by itself in a fresh
process, steps back to back, as a training loop does: the figure a user
sees (docs/performance.md, "Alone or alternating"); but the two run minutes
apart, and this machine's speed drifts by more than the difference between
them. ``--blocks K`` keeps each library alone and both under the same load:
one process each, taking turns by K steps back to back, a pause of a quarter
second before each turn (the other library's threads asleep by then); the
first step of each turn is not counted. ``--transparent`` also times
the gate-by-gate path; ``--memory`` measures the peak memory of one step at
B=32, T=256, H=512 for both (each in a fresh process, from /proc's VmHWM).
On a GPU (``--backend cupy``, ``--torch-device cuda``) the device is
synchronised before and after every timed step, so a step's time is the
device time of its work plus what the host spends queueing it.
"""
from __future__ import annotations

import common
from common import time_alternating

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import tinygrad_seq as ts

VOCABULARY, EMBEDDING = 65, 64
CONFIGS = {
    "B32 T64 H128": (32, 64, 128, 1, False),
    "B32 T64 H512": (32, 64, 512, 1, False),
    "B16 T32 H64 L2 bi": (16, 32, 64, 2, True),
    "B1 T25 H100": (1, 25, 100, 1, False),
}
LAYERS = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}  # the layer class's name, in tinygrad_seq.nn and torch.nn


def our_model(library, cell, hidden, layers, bidirectional):
    """The model in ``library``: tinygrad_seq, or another version of it (bench/compare_commits.py)."""
    nn = library.nn

    class Ours(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(VOCABULARY, EMBEDDING)
            self.rnn = getattr(nn, LAYERS[cell])(EMBEDDING, hidden, num_layers=layers, bidirectional=bidirectional)
            self.head = nn.Linear(hidden * (2 if bidirectional else 1), VOCABULARY)

        def forward(self, ids):
            out, _ = self.rnn(self.embedding(ids))
            return self.head(out)

    return Ours()


def torch_model(torch, cell, hidden, layers, bidirectional):
    layer_class = getattr(torch.nn, LAYERS[cell])

    class Theirs(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = torch.nn.Embedding(VOCABULARY, EMBEDDING)
            self.rnn = layer_class(EMBEDDING, hidden, num_layers=layers, bidirectional=bidirectional)
            self.head = torch.nn.Linear(hidden * (2 if bidirectional else 1), VOCABULARY)

        def forward(self, ids):
            out, _ = self.rnn(self.embedding(ids))
            return self.head(out)

    return Theirs()


def our_step(cell, batch, steps, hidden, layers, bidirectional, transparent=False, library=ts):
    library.manual_seed(0)
    model = our_model(library, cell, hidden, layers, bidirectional)
    optim, cross_entropy = library.optim, library.nn.functional.cross_entropy
    opt = optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    ids, targets = rng.integers(0, VOCABULARY, (2, steps, batch))

    def step():
        opt.zero_grad()
        if transparent:
            with library.transparent():
                loss = cross_entropy(model(ids), targets)
        else:
            loss = cross_entropy(model(ids), targets)
        loss.backward()
        optim.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()

    return step


def their_step(torch, cell, batch, steps, hidden, layers, bidirectional, device="cpu"):
    torch.manual_seed(0)
    model = torch_model(torch, cell, hidden, layers, bidirectional).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    ids, targets = (torch.tensor(a, device=device) for a in rng.integers(0, VOCABULARY, (2, steps, batch)))

    def step():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(ids).reshape(-1, VOCABULARY), targets.reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        opt.step()

    return step


def _probe_code(probe, *args):
    return f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import lm_step\nlm_step.{probe}(*{args!r})\n"


def in_fresh_process(probe, *args):
    """The last line ``lm_step.<probe>(*args)`` prints, run in a new Python process that runs nothing else."""
    result = subprocess.run([sys.executable, "-c", _probe_code(probe, *args)], capture_output=True, text=True, check=True)
    return result.stdout.strip().splitlines()[-1]


def library_step(library, cell, batch, steps, hidden, layers, bidirectional):
    """A training step of PyTorch ("torch") or of tinygrad_seq (anything else)."""
    if library == "torch":
        import torch

        return their_step(torch, cell, batch, steps, hidden, layers, bidirectional)
    return our_step(cell, batch, steps, hidden, layers, bidirectional)


def alone_ms(library, cell, config, steps):
    """Median ms of ``steps`` training steps run back to back in a fresh process that runs nothing else."""
    return float(in_fresh_process("alone_probe", library, cell, config, steps))


def alone_probe(library, cell, config, steps):
    print(time_alternating([library_step(library, cell, *CONFIGS[config])], steps, warm_up=3)[0])


TURN_PAUSE_S = 0.25
"""The pause before each turn of --blocks: longer than OpenBLAS's worker thread spins after its last product
(about 110 ms here) and PyTorch's OpenMP threads (about 10 ms), so a turn starts with the other library idle."""


def blocks_ms(cell, config, steps, block):
    """Median ms of ``steps`` training steps of each library, each in its own process, the two taking turns:
    ``block`` steps back to back (after one more, not counted: the first after the other's turn), then the other."""
    workers = [subprocess.Popen([sys.executable, "-c", _probe_code("block_probe", library, cell, config)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for library in ("ours", "torch")]
    times = [[], []]
    try:
        while len(times[0]) < steps:
            for library, worker, kept in zip(("tinygrad_seq", "torch"), workers, times):
                time.sleep(TURN_PAUSE_S)
                worker.stdin.write(f"{block}\n")
                worker.stdin.flush()
                line = worker.stdout.readline()
                if not line:
                    raise RuntimeError(f"--blocks: the {library} process stopped (exit status {worker.wait()}); its error is above")
                kept.extend(json.loads(line))
    finally:
        for worker in workers:
            with contextlib.suppress(BrokenPipeError):
                worker.stdin.close()  # the worker's loop over its input ends
        for worker in workers:
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
    return [statistics.median(kept[:steps]) for kept in times]


def block_probe(library, cell, config):
    """A --blocks worker: for each count read from stdin, that many steps plus one; prints the counted steps' ms."""
    step = library_step(library, cell, *CONFIGS[config])
    for _ in range(3):
        step()
    for line in sys.stdin:
        times = []
        for _ in range(int(line) + 1):
            start = time.perf_counter()
            step()
            times.append((time.perf_counter() - start) * 1e3)
        print(json.dumps(times[1:]), flush=True)


def peak_memory_mb(library, cell):
    """Peak resident memory (MB) one step adds, at B=32, T=256, H=512, in a fresh process.

    The resident size with the model built (and, for tinygrad_seq, what it
    imports on first use: numba, as torch is imported) is the baseline; after a warm-up
    step the high-water mark is reset (/proc/self/clear_refs), and the peak of
    the next step minus the baseline is the step's memory (what the allocator
    kept from the warm-up included), whatever each library's import size.
    """
    measured = json.loads(in_fresh_process("memory_probe", library, cell))
    return measured["peak_mb"] - measured["before_mb"]


def memory_probe(library, cell):
    def status(field):
        with open("/proc/self/status") as lines:
            return next(int(line.split()[1]) for line in lines if line.startswith(field)) / 1024

    if library != "torch":
        our_step(cell, 2, 2, 4, 1, False)()  # the lazy imports (numba, the compiled loops) before the baseline, as torch's
    step = library_step(library, cell, 32, 256, 512, 1, False)
    import gc

    gc.collect()
    before = status("VmRSS")
    step()  # warm-up, so lazy initialisation is not counted as the step's peak
    gc.collect()
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # resets the high-water mark to the current resident size
    step()
    print(json.dumps({"peak_mb": status("VmHWM"), "before_mb": before}))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per configuration (median)")
    parser.add_argument("--cells", nargs="+", default=list(LAYERS), choices=list(LAYERS))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--transparent", action="store_true", help="also time the gate-by-gate path")
    parser.add_argument("--memory", action="store_true", help="peak memory at B32 T256 H512")
    parser.add_argument("--alone", action="store_true",
                        help="each library in its own fresh process, steps back to back, instead of alternating (CPU)")
    parser.add_argument("--blocks", type=int, metavar="K",
                        help="each library in its own process, the two taking turns by K steps back to back, a pause "
                             "between turns: alone, under the same machine load (CPU)")
    parser.add_argument("--backend", choices=["numpy", "cupy"], default="numpy", help="tinygrad_seq's backend")
    parser.add_argument("--torch-device", choices=["cpu", "cuda"], default="cpu", help="where PyTorch runs (cuda beside --backend cupy)")
    args = parser.parse_args()
    by_turns = args.blocks is not None
    if by_turns and args.blocks < 1:
        parser.error(f"--blocks takes the steps of a turn, 1 or more; got {args.blocks}")
    if (args.alone or by_turns) and (args.backend != "numpy" or args.transparent):
        parser.error("--alone and --blocks time the default path on the CPU: leave out --backend and --transparent")
    if args.alone and by_turns:
        parser.error("--alone or --blocks, not both")
    backend = ts.set_backend(args.backend)
    torch = common.reference_torch()

    def synchronize():  # the device's queued work done: each timed step ends when its results exist
        backend.synchronize()
        if torch is not None and args.torch_device == "cuda":
            torch.cuda.synchronize()

    common.print_header(torch)
    how = ("each library alone in its own process, steps back to back" if args.alone
           else f"each library in its own process, the two taking turns by {args.blocks} steps" if by_turns
           else "the two alternating step by step")
    print(f"tinygrad_seq on {backend.name}, torch on {args.torch_device}; {how}; each step timed until the device is done\n")
    print("| cell | config | tinygrad_seq ms | torch ms | ratio |" + (" transparent ms |" if args.transparent else ""))
    print("|---|---|---:|---:|---:|" + ("---:|" if args.transparent else ""))
    for cell in args.cells:
        for name in args.configs:
            batch, steps, hidden, layers, bidirectional = CONFIGS[name]
            if args.alone or by_turns:
                if by_turns and torch:
                    ours, theirs = blocks_ms(cell, name, args.steps, args.blocks)
                else:
                    ours, theirs = alone_ms("ours", cell, name, args.steps), alone_ms("torch", cell, name, args.steps) if torch else float("nan")
                print(f"| {cell} | {name} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} |", flush=True)
                continue
            functions = [our_step(cell, batch, steps, hidden, layers, bidirectional)]
            if torch is not None:
                functions.append(their_step(torch, cell, batch, steps, hidden, layers, bidirectional, args.torch_device))
            if args.transparent:
                functions.append(our_step(cell, batch, steps, hidden, layers, bidirectional, transparent=True))
            times = time_alternating(functions, args.steps, synchronize)
            ours, theirs = times[0], (times[1] if torch is not None else float("nan"))
            row = f"| {cell} | {name} | {ours:.1f} | {theirs:.1f} | {ours / theirs:.2f} |"
            if args.transparent:
                row += f" {times[-1]:.1f} |"
            print(row, flush=True)
    if args.memory:
        print()
        print("| cell | step's peak MB, tinygrad_seq | step's peak MB, torch |")
        print("|---|---:|---:|")
        for cell in args.cells:
            ours = peak_memory_mb("ours", cell)
            theirs = peak_memory_mb("torch", cell) if torch is not None else float("nan")
            print(f"| {cell} | {ours:.0f} | {theirs:.0f} |", flush=True)


if __name__ == "__main__":
    main()
