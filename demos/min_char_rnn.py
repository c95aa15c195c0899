"""BPTT by hand: a character RNN in one plain-NumPy function, trained side by side with the library's RNN.

Run:  python demos/min_char_rnn.py    (about 10 seconds)

The idea of Karpathy's min-char-rnn: one function does the forward pass, the
loss and the whole backward pass of a character RNN with nothing but NumPy,
in the course's layout (columns: x⟨t⟩ one-hot (V, 1), a⟨t⟩ (H, 1)):

    a⟨t⟩ = tanh(W_ax x⟨t⟩ + W_aa a⟨t−1⟩ + b_a)
    ŷ⟨t⟩ = softmax(W_ya a⟨t⟩ + b_y),   L = Σ_t −log ŷ⟨t⟩[y⟨t⟩]

The library's nn.RNN with a Linear head starts from the same weights, reads
the same chunks of the same text (truncated BPTT: the state carries over from
chunk to chunk), and both take the same clipped SGD steps. At every iteration
the hand-written function, given the library's weights and state, gives the
library's loss and every one of its gradients to float64 precision (the
largest relative difference so far is printed): the engine's backward pass is
the hand-written one, derived in docs/bptt_by_hand.md. The two runs, each on
its own weights, stay within about 1e-8 of each other over 1,500 steps; over
thousands more their rounding differences grow (training an RNN amplifies
them; Karpathy's original used Adagrad, whose g / √Σg² amplifies those of
gradients near zero most, and this demo takes plain SGD steps instead), so
the proof compares gradients on the same weights. Ends with a name sampled
from each model with the same random numbers: the same name.
"""
from __future__ import annotations

import common
import numpy as np

import tinygrad_seq as ts
from tinygrad_seq import nn, optim
from tinygrad_seq.nn import functional as F

SEQ_LENGTH = 25  # characters per chunk: truncated BPTT, the state carried from one chunk to the next
LEARNING_RATE = 0.01
CLIP = 5.0  # each gradient value clipped to [−5, 5], as min-char-rnn does


def softmax(logits: np.ndarray) -> np.ndarray:
    """exp(z) / Σ exp(z), the largest score subtracted first so that exp cannot overflow."""
    e = np.exp(logits - logits.max())
    return e / e.sum()


def loss_and_gradients(inputs: list[int], targets: list[int], a_prev: np.ndarray, p: dict[str, np.ndarray]):
    """Forward, loss and backward of one chunk, by hand. Returns (L, gradients by key, a⟨T⟩).

    p: Wax (H, V), Waa (H, H), ba (H, 1), Wya (V, H), by (V, 1); a_prev (H, 1).
    """
    vocab = p["Wax"].shape[1]
    x, a, y_hat = {}, {-1: a_prev}, {}
    loss = 0.0
    for t, (i, j) in enumerate(zip(inputs, targets)):
        x[t] = np.zeros((vocab, 1))
        x[t][i] = 1.0
        a[t] = np.tanh(p["Wax"] @ x[t] + p["Waa"] @ a[t - 1] + p["ba"])
        logits = p["Wya"] @ a[t] + p["by"]
        y_hat[t] = softmax(logits)
        loss -= np.log(y_hat[t][j, 0])
    grads = {key: np.zeros_like(value) for key, value in p.items()}
    da_prevt = np.zeros_like(a_prev)  # what comes back to a⟨t⟩ from step t+1 (the notebook's name)
    for t in reversed(range(len(inputs))):
        dy = y_hat[t].copy()
        dy[targets[t]] -= 1  # ∂L/∂(W_ya a⟨t⟩ + b_y) = ŷ⟨t⟩ − y⟨t⟩
        grads["Wya"] += dy @ a[t].T
        grads["by"] += dy
        da_next = p["Wya"].T @ dy + da_prevt  # ∂L/∂a⟨t⟩: both paths into a⟨t⟩
        dz = (1 - a[t] ** 2) * da_next  # through tanh (the notebook's dtanh)
        grads["ba"] += dz
        grads["Wax"] += dz @ x[t].T
        grads["Waa"] += dz @ a[t - 1].T
        da_prevt = p["Waa"].T @ dz
    return loss, grads, a[len(inputs) - 1]


def sgd_step(p: dict[str, np.ndarray], grads: dict[str, np.ndarray]) -> None:
    """Clip each value to [−5, 5], then p −= lr g: the library's clip_grad_value_ and SGD."""
    for key in p:
        p[key] -= LEARNING_RATE * np.clip(grads[key], -CLIP, CLIP)


class CharRNN(nn.Module):
    """The library's side: nn.RNN over one-hot characters, a Linear head, in float64."""

    def __init__(self, vocab: int, hidden: int) -> None:
        super().__init__()
        self.vocab = vocab
        self.rnn = nn.RNN(vocab, hidden)
        self.head = nn.Linear(hidden, vocab)
        self.double()
        # The course has one b_a; PyTorch's layout has two vectors that add up. bias_hh stays zero and
        # frozen, or two vectors taking the same step would move b_a twice as fast as the hand-written one.
        self.rnn.bias_hh_l0.requires_grad = False

    def load_course_weights(self, p: dict[str, np.ndarray]) -> None:
        """The hand-written model's weights: W_ax, W_aa, b_a (as bias_ih; bias_hh zero), W_ya, b_y."""
        self.load_state_dict({
            "rnn.weight_ih_l0": p["Wax"], "rnn.weight_hh_l0": p["Waa"], "rnn.bias_ih_l0": p["ba"][:, 0],
            "rnn.bias_hh_l0": np.zeros(p["ba"].shape[0]), "head.weight": p["Wya"], "head.bias": p["by"][:, 0],
        })

    def loss(self, inputs: list[int], targets: list[int], a_prev: ts.Tensor) -> tuple[ts.Tensor, ts.Tensor]:
        x = F.one_hot(np.array(inputs)[:, None], self.vocab, dtype=np.float64)  # (T, 1, V)
        outputs, h_n = self.rnn(x, a_prev[None])
        logits = self.head(outputs)  # (T, 1, V)
        return F.cross_entropy(logits.reshape(-1, self.vocab), np.array(targets), reduction="sum"), h_n[0]

    def course_weights(self) -> dict[str, np.ndarray]:
        """The weights in the course's keys and layout: b_a is bias_ih + bias_hh (here bias_hh is 0)."""
        named = {name: p.numpy() for name, p in self.named_parameters()}
        return {"Wax": named["rnn.weight_ih_l0"], "Waa": named["rnn.weight_hh_l0"],
                "ba": (named["rnn.bias_ih_l0"] + named["rnn.bias_hh_l0"])[:, None], "Wya": named["head.weight"],
                "by": named["head.bias"][:, None]}

    def gradients(self) -> dict[str, np.ndarray]:
        """The gradients in the course's keys and layout (the two PyTorch biases are one b_a)."""
        named = {name: p.backend.to_host(p.grad) for name, p in self.named_parameters()}  # host arrays, from any backend
        return {"Wax": named["rnn.weight_ih_l0"], "Waa": named["rnn.weight_hh_l0"],
                "ba": named["rnn.bias_ih_l0"][:, None], "Wya": named["head.weight"], "by": named["head.bias"][:, None]}


def sample_by_hand(p: dict[str, np.ndarray], first: int, length: int, rng: np.random.Generator) -> list[int]:
    a, i, out = np.zeros((p["Waa"].shape[0], 1)), first, []
    for _ in range(length):
        x = np.zeros((p["Wax"].shape[1], 1))
        x[i] = 1.0
        a = np.tanh(p["Wax"] @ x + p["Waa"] @ a + p["ba"])
        logits = (p["Wya"] @ a + p["by"]).ravel()
        probabilities = softmax(logits)
        i = int(rng.choice(len(probabilities), p=probabilities))
        out.append(i)
    return out


def sample_with_library(model: CharRNN, first: int, length: int, rng: np.random.Generator) -> list[int]:
    """The same sampling with the library's model, one step at a time from a⟨0⟩ = 0."""
    h, i, out = None, first, []
    with ts.no_grad():
        for _ in range(length):
            outputs, h = model.rnn(F.one_hot(np.array([[i]]), model.vocab, dtype=np.float64), h)
            logits = model.head(outputs[0]).numpy().ravel()
            probabilities = softmax(logits)
            i = int(rng.choice(len(probabilities), p=probabilities))
            out.append(i)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = common.arguments(__doc__.splitlines()[0], out=None)  # it prints what it shows, and writes no file
    parser.add_argument("--iterations", type=common.integer(1), default=1500, help="chunks to train on, >= 1 (default 1500)")
    parser.add_argument("--hidden", type=common.integer(1, 4096), default=100, help="hidden units, 1 to 4,096 (default 100)")
    args = parser.parse_args(argv)
    common.start(args)
    iterations, hidden = (20, 16) if args.smoke else (args.iterations, args.hidden)

    text = (common.DATA / "dinos.txt").read_text(encoding="utf-8").lower()
    chars = sorted(set(text))
    index = {c: i for i, c in enumerate(chars)}
    vocab = len(chars)
    rng = np.random.default_rng(0)
    by_hand = {"Wax": rng.normal(0, 0.01, (hidden, vocab)), "Waa": rng.normal(0, 0.01, (hidden, hidden)),
               "ba": np.zeros((hidden, 1)), "Wya": rng.normal(0, 0.01, (vocab, hidden)), "by": np.zeros((vocab, 1))}
    model = CharRNN(vocab, hidden)
    model.load_course_weights(by_hand)
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = optim.SGD(trained, lr=LEARNING_RATE)
    print(f"{len(text):,} characters, {vocab} distinct; H = {hidden}, chunks of {SEQ_LENGTH}, SGD lr {LEARNING_RATE}, clip {CLIP}")
    # The two losses come from the two runs, each on its own weights; the last column from the check on the same weights
    print(f"{'iteration':>9}  {'L by hand':>12}  {'L library':>12}  {'same weights: max rel. diff so far':>34}")

    a_hand, a_lib = np.zeros((hidden, 1)), ts.zeros(1, hidden, dtype=np.float64)
    position, drift, worst_grad = 0, 0.0, 0.0
    report_every = max(1, iterations // 10)
    for iteration in range(1, iterations + 1):
        if position + SEQ_LENGTH + 1 > len(text):
            position, a_hand, a_lib = 0, np.zeros((hidden, 1)), ts.zeros(1, hidden, dtype=np.float64)
        chunk = [index[c] for c in text[position: position + SEQ_LENGTH + 1]]
        inputs, targets = chunk[:-1], chunk[1:]
        loss_hand, grads_hand, a_hand = loss_and_gradients(inputs, targets, a_hand, by_hand)
        a_lib_before = a_lib.numpy().T
        loss_lib, h_n = model.loss(inputs, targets, a_lib)
        opt.zero_grad()
        loss_lib.backward()
        a_lib = h_n.detach()

        # The proof: the hand-written function, given the library's own weights and state, computes the
        # library's loss and gradients (a pure function, so the check costs one more forward and backward).
        same_loss, same_grads, _ = loss_and_gradients(inputs, targets, a_lib_before, model.course_weights())
        grads_lib = model.gradients()
        worst_grad = max(worst_grad, abs(loss_lib.item() - same_loss) / same_loss,
                         *(np.abs(grads_lib[k] - same_grads[k]).max() / (np.abs(same_grads[k]).max() + 1e-300) for k in by_hand))
        drift = max(drift, abs(loss_lib.item() - loss_hand) / loss_hand)
        if iteration % report_every == 0 or iteration == 1:
            print(f"{iteration:>9}  {loss_hand:>12.6f}  {loss_lib.item():>12.6f}  {worst_grad:>34.1e}")

        sgd_step(by_hand, grads_hand)
        optim.clip_grad_value_(trained, CLIP)
        opt.step()
        position += SEQ_LENGTH

    print(f"over {iterations} iterations: on the same weights, loss and gradients agree to {worst_grad:.1e} (relative);")
    print(f"the two training runs, each on its own weights, keep losses within {drift:.1e} of each other (relative)")
    if worst_grad > 1e-10:
        raise SystemExit("the hand-written and the library's backward passes disagree: a bug in one of them")
    first = index["\n"]  # a name starts after a newline
    for name, sampler in (("by hand", sample_by_hand), ("library", sample_with_library)):
        ids = sampler(by_hand if name == "by hand" else model, first, 30, np.random.default_rng(1))
        print(f"a name sampled {name + ':':<9}", repr("".join(chars[i] for i in ids).split("\n")[0]))


if __name__ == "__main__":
    common.run(main)
