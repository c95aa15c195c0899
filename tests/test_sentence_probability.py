"""text.sentence_probability: P(sentence) as the course's product of conditional probabilities, <eos> included."""
import math
import warnings

import pytest

import tinygrad_seq as ts
from tinygrad_seq.models import LanguageModel
from tinygrad_seq.nn import functional as F
from tinygrad_seq.text import (
    BOS_ID, EOS, PAD_ID, UNK, UnknownTokensWarning, Vocabulary, language_model_batches, perplexity, sentence_log_probability,
    sentence_probability,
)

pytestmark = pytest.mark.usefixtures("backend")  # every test on NumPy and on the strict device backend (conftest)

CHARS = Vocabulary.from_text(["abba", "cab", "bad"], level="char")
WORDS = Vocabulary.from_text(["the cat sat .", "the dog sat on the mat ."], level="word", lower=True)


def hand_set_model(vocab, seed=0, **options):
    """A float64 model with random weights, and <pad> and <bos> made impossible as next tokens (as training makes them)."""
    ts.manual_seed(seed)
    model = LanguageModel(len(vocab), embed_dim=5, cell="lstm", hidden_size=6, **options).double()
    model.head.bias.data[[PAD_ID, BOS_ID]] = -1e4  # e^-1e4 is 0.0: all the probability is on tokens a sentence can hold
    return model


@pytest.mark.parametrize("vocab, sentence, tokens", [
    (CHARS, "cab", ["c", "a", "b", EOS]),
    (WORDS, "The dog sat.", ["the", "dog", "sat", ".", EOS]),  # tokenised (and lower-cased) as the vocabulary does
])
def test_probability_is_the_product_of_the_factors_and_the_library_cross_entropy(vocab, sentence, tokens):
    model = hand_set_model(vocab)
    p, factors = sentence_probability(model, vocab, sentence)
    assert [token for token, _ in factors] == tokens
    assert all(0 < q < 1 for _, q in factors)
    assert p == pytest.approx(math.prod(q for _, q in factors), rel=1e-12)

    # exp(−Σ cross-entropy) over the same [<bos>, ..., <eos>] batch the model trains on, and perplexity's loss
    ids = vocab.encode(sentence, bos=True, eos=True)
    inputs, targets, _ = next(language_model_batches([ids], 1))
    logits, _ = model(inputs)
    assert p == pytest.approx(math.exp(-F.cross_entropy(logits, targets, reduction="sum").item()), rel=1e-12)
    loss, _ = perplexity(model, [ids])
    assert p == pytest.approx(math.exp(-loss * len(tokens)), rel=1e-12)

    log_p, log_factors = sentence_log_probability(model, vocab, sentence)
    assert log_p == pytest.approx(math.log(p), rel=1e-12)
    assert [t for t, _ in log_factors] == tokens and [math.exp(v) for _, v in log_factors] == pytest.approx([q for _, q in factors], rel=1e-12)


def test_the_first_token_is_conditioned_on_bos_and_each_factor_on_what_came_before():
    model = hand_set_model(CHARS, seed=3)
    _, factors = sentence_probability(model, CHARS, "ab")
    # the same conditionals, one step at a time from <bos> as sampling does: P(y⟨t⟩ | <bos>, y⟨1⟩ … y⟨t−1⟩)
    state, previous = None, BOS_ID
    for token, q in factors:
        logits, state = model.step([previous], state)
        assert q == pytest.approx(logits.softmax(-1).numpy()[0, CHARS.stoi[token]], rel=1e-12)
        previous = CHARS.stoi[token]


def test_the_first_factors_of_every_possible_next_token_sum_to_one():
    model = hand_set_model(CHARS, seed=1)
    firsts = [sentence_probability(model, CHARS, token)[1][0] for token in CHARS.itos[4:]]  # a, b, c, d
    firsts.append(sentence_probability(model, CHARS, "")[1][0])  # the empty sentence: P(<eos> | <bos>)
    with pytest.warns(UnknownTokensWarning):
        firsts.append(sentence_probability(model, CHARS, "z")[1][0])  # P(<unk> | <bos>)
    assert [t for t, _ in firsts] == ["a", "b", "c", "d", EOS, UNK]
    assert sum(q for _, q in firsts) == pytest.approx(1.0, abs=1e-12)


def test_unknown_words_are_unk_factors_and_named_in_a_warning():
    model = hand_set_model(WORDS, seed=2)
    with pytest.warns(UnknownTokensWarning, match=r"sentence: 1 of 4 words is not in the vocabulary and counts as <unk>: 'zebra'") as caught:
        p, factors = sentence_probability(model, WORDS, "the zebra sat .")
    assert caught[0].filename == __file__  # the warning points at the caller's line
    assert [t for t, _ in factors] == ["the", UNK, "sat", ".", EOS]
    with pytest.warns(UnknownTokensWarning, match="'yak'"):
        assert sentence_probability(model, WORDS, "the yak sat .") == (p, factors)  # any unknown word: the same <unk>
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # known words only: no warning
        sentence_probability(model, WORDS, "the cat sat .")


def test_runs_in_eval_mode_without_a_graph_and_restores_the_mode():
    model = hand_set_model(CHARS, num_layers=2, dropout=0.5)
    model.train()
    first = sentence_probability(model, CHARS, "abba")
    assert sentence_probability(model, CHARS, "abba") == first  # dropout off: the same numbers every time
    assert model.training and ts.is_grad_enabled()
    assert all(p.grad is None for p in model.parameters())


def test_long_text_underflows_p_but_not_log_p():
    model = hand_set_model(CHARS)
    text = "abcd" * 150
    p, factors = sentence_probability(model, CHARS, text)
    log_p, _ = sentence_log_probability(model, CHARS, text)
    assert p == 0.0 and len(factors) == 601 and all(q > 0 for _, q in factors)
    assert -2000 < log_p < -745  # below e^-745 a float64 is 0
