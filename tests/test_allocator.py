"""keep_freed_memory: the C allocator keeps what a training step frees, so the next step does not fault it back in."""
import subprocess
import sys
import textwrap

import pytest

import tinygrad_seq as ts

FAULTS_PER_STEP = textwrap.dedent("""
    import resource, sys
    import numpy as np
    import tinygrad_seq as ts
    from tinygrad_seq import nn, optim
    from tinygrad_seq.nn import functional as F
    if sys.argv[1] == "keep":
        assert ts.keep_freed_memory()
    ts.manual_seed(0)
    embedding, lstm, head = nn.Embedding(65, 64), nn.LSTM(64, 128), nn.Linear(128, 65)
    parameters = [*embedding.parameters(), *lstm.parameters(), *head.parameters()]
    opt = optim.Adam(parameters)
    ids, targets = np.random.default_rng(0).integers(0, 65, (2, 64, 32))
    def step():
        opt.zero_grad()
        F.cross_entropy(head(lstm(embedding(ids))[0]), targets).backward()
        opt.step()
    for _ in range(3):
        step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(3):
        step()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 3)
""")


def _faults_per_step(mode: str) -> float:
    result = subprocess.run([sys.executable, "-c", FAULTS_PER_STEP, mode], capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt's thresholds are glibc's (Linux)")
def test_a_training_step_stops_faulting_in_the_memory_the_last_one_freed():
    # An LSTM step at B32 T64 H128 (bench/lm_step.py's first configuration): about 2,900 faults a step by default.
    default, kept = _faults_per_step("default"), _faults_per_step("keep")
    assert kept < 50 <= default / 10, (default, kept)


def test_it_says_whether_the_allocator_took_it(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    assert ts.keep_freed_memory() is False  # no glibc: nothing to change, and it says so
