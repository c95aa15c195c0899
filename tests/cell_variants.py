"""Every built-in cell in every variant, shared by the cell tests and the fused-path tests."""
from tinygrad_seq import nn

CELLS = {
    "rnn_tanh": lambda: nn.RNNCell(3, 4),
    "rnn_relu": lambda: nn.RNNCell(3, 4, nonlinearity="relu"),
    "rnn_no_bias": lambda: nn.RNNCell(3, 4, bias=False),
    "gru": lambda: nn.GRUCell(3, 4),
    "gru_no_bias": lambda: nn.GRUCell(3, 4, bias=False),
    "gru_reset_before": lambda: nn.GRUCell(3, 4, reset_after=False),
    "gru_reset_before_no_bias": lambda: nn.GRUCell(3, 4, reset_after=False, bias=False),
    "simplified_gru": lambda: nn.SimplifiedGRUCell(3, 4),
    "lstm": lambda: nn.LSTMCell(3, 4),
    "lstm_no_bias": lambda: nn.LSTMCell(3, 4, bias=False),
    "lstm_peephole": lambda: nn.LSTMCell(3, 4, peephole=True),
}


class GatedCell(nn.RecurrentCell):
    """A user's cell of ``gates`` stacked gates with biases, its parameters made and initialised: a test's cell
    adds its forward (and, where it keeps its state its own way, the methods that say how)."""
    gates = 1

    def __init__(self, input_size, hidden_size):
        super().__init__(input_size, hidden_size)
        self.gate_parameters(gates=self.gates, bias=True)
        self.reset_parameters()
