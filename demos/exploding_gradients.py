"""Exploding gradients: the same training without and with gradient clipping.

Run:  python demos/exploding_gradients.py    (a few seconds)

A ReLU RNN whose recurrent weight starts a little above the identity
(a⟨t⟩ = relu(W_aa a⟨t−1⟩ + ...), W_aa = 1.1 I) learns to predict the sum of a
sequence of numbers. Going back one step multiplies the gradient by about
1.1, so over 40 steps it grows about 45-fold, and with plain SGD one
update throws the weights so far that the next forward pass overflows.
Without clipping, `ts.detect_anomaly()` stops training at the first
non-finite value and names the op, its time step and layer. With
`clip_grad_norm_` the same run stays finite and its loss comes down; the demo
prints the gradient norms it clipped, and the loss of always guessing the
mean sum to judge it by (300 clipped SGD steps do not reach it: clipping
keeps training alive, it does not make it fast).
"""
from __future__ import annotations

import common
import numpy as np

import tinygrad_seq as ts
from tinygrad_seq import nn, optim
from tinygrad_seq.nn import functional as F

STEPS = 40


class Summer(nn.Module):
    """A ReLU RNN reading numbers one by one, and a linear read-out of its last state."""

    def __init__(self, hidden: int = 16) -> None:
        super().__init__()
        self.rnn = nn.RNN(1, hidden, nonlinearity="relu")
        # W_aa slightly expanding; load_state_dict copies the host array onto the model's backend
        self.rnn.load_state_dict({"weight_hh_l0": 1.1 * np.eye(hidden)}, strict=False)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x):
        outputs, _ = self.rnn(x)
        return self.head(outputs[-1])


def data(rng: np.random.Generator, batch: int = 32) -> tuple[ts.Tensor, ts.Tensor]:
    x = rng.uniform(0, 1, (STEPS, batch, 1)).astype(np.float32)
    return ts.Tensor(x), ts.Tensor(x.sum(axis=0))


def train(clip: float | None, steps: int, lr: float = 0.01) -> tuple[list[float], list[float], str | None]:
    """Losses, the norms clipped (if clipping), and the anomaly report (if training blew up)."""
    ts.manual_seed(0)
    model, rng = Summer(), np.random.default_rng(0)
    opt = optim.SGD(model.parameters(), lr=lr)
    losses, clipped = [], []
    try:
        with ts.detect_anomaly(), np.errstate(over="ignore", invalid="ignore"):
            for _ in range(steps):
                x, y = data(rng)
                loss = F.mse_loss(model(x), y)
                opt.zero_grad()
                loss.backward()
                if clip is not None:
                    norm = float(optim.clip_grad_norm_(model.parameters(), clip))  # a 0-d tensor: read it once
                    if norm > clip:
                        clipped.append(norm)
                opt.step()
                losses.append(loss.item())
    except FloatingPointError as error:
        return losses, clipped, str(error).split(". The op was made at")[0].split(" It was called at")[0]
    return losses, clipped, None


def updates(count: int) -> str:
    return f"{count} update{'' if count == 1 else 's'}"


def main(argv: list[str] | None = None) -> tuple[str | None, list[float]]:
    parser = common.arguments(__doc__.splitlines()[0], out="exploding_out")
    args = parser.parse_args(argv)
    out = common.start(args)
    steps = 30 if args.smoke else 300

    losses, _, report = train(clip=None, steps=steps)
    shown = ", ".join(f"{v:.3g}" for v in losses[:4]) + (" ..." if len(losses) > 4 else "")
    print(f"without clipping: {updates(len(losses))}, loss{'es' if len(losses) > 1 else ''} {shown}")
    print(f"  stopped: {report}" if report else "  (did not blow up)")  # the report starts "detect_anomaly: ..."

    clipped_losses, clipped, report_clipped = train(clip=1.0, steps=steps)
    print(f"\nwith clip_grad_norm_(max_norm=1.0): {updates(len(clipped_losses))}, "
          f"loss {clipped_losses[0]:.3g} -> {np.mean(clipped_losses[-20:]):.3g} (mean of the last 20; highest "
          f"{max(clipped_losses):.3g}, at update {int(np.argmax(clipped_losses)) + 1})")
    print(f"  {len(clipped)} of {len(clipped_losses)} gradients were clipped; their norms before clipping: "
          + ", ".join(f"{n:.3g}" for n in clipped[:6]) + (" ..." if len(clipped) > 6 else ""))
    if report_clipped:
        print(f"  anomaly even with clipping: {report_clipped}")
    # Always answering the mean sum, STEPS / 2, scores the variance of a sum of STEPS uniform numbers: STEPS / 12
    print(f"  for scale: always guessing the mean sum scores {STEPS / 12:.3g}")
    path = common.plot_curves({"with clipping": clipped_losses, "without clipping": losses}, out / "loss.png",
                              "squared error (log scale)", "Exploding gradients: SGD, ReLU RNN", xlabel="update", log=True)
    print(f"\nthe two runs' losses, update by update: {path}")
    return report, clipped_losses


if __name__ == "__main__":
    common.run(main)
