"""Text, sampling, the language model, training with checkpoints and exact resumption, the CLI and the main demo."""
import codecs
import hashlib
import inspect
import itertools
import json
import math
import os
import re
import runpy
import signal
import unicodedata
import warnings
from pathlib import Path

import numpy as np
import pytest

import tinygrad_seq as ts
from tinygrad_seq.nn import functional as F
from tinygrad_seq.cli import HELD_OUT_UNKNOWN_NOTE, main as cli
from tinygrad_seq.models import LanguageModel, TrainConfig, Trainer
from tinygrad_seq.text import (
    BOS_ID, EOS_ID, IGNORE, IGNORE_INDEX, PAD_ID, UNK_ID, Vocabulary, language_model_batches, pad_batch, perplexity, sample,
    UnknownTokensWarning, sample_many, sentence_log_probability, sentence_probability, stream_chunks, stream_perplexity,
    tokenize_words,
)

from . import strict_device
from .conftest import cupy_unavailable_reason, on_strict_device

ON_EVERY_BACKEND = pytest.mark.usefixtures("backend")  # NumPy and the strict device backend (conftest)

ROOT = Path(__file__).resolve().parent.parent
DINOS = ROOT / "demos" / "data" / "dinos.txt"


# ---------------------------------------------------------------- vocabulary and batches


def test_vocabulary_char_level(tmp_path):
    vocab = Vocabulary.from_text(["abba", "cab"], level="char")
    assert vocab.itos[:4] == ["<pad>", "<unk>", "<eos>", "<bos>"] and vocab.itos[4:] == ["a", "b", "c"]
    assert vocab.encode("cab", bos=True, eos=True) == [BOS_ID, 6, 4, 5, EOS_ID]
    assert vocab.encode("az") == [4, UNK_ID] and vocab.decode(vocab.encode("abc")) == "abc"
    assert Vocabulary.load(vocab.save(tmp_path / "v.json")) == vocab
    assert oct(os.stat(tmp_path / "v.json").st_mode)[-3:] != "600"  # an ordinary file, not a private temp file


@pytest.mark.parametrize("text, words", [
    ("cafe\u0301 noir", ["cafe\u0301", "noir"]),      # e + a combining acute accent
    ("İstanbul".lower(), ["i\u0307stanbul"]),          # lowering İ leaves a combining dot above
    ("हिंदी भाषा", ["हिंदी", "भाषा"]),                    # Devanagari's vowel signs are marks
    ("x² and H₂O, ½", ["x²", "and", "H₂O", ",", "½"]),   # as before: numbers are word characters
])
def test_word_tokens_keep_their_combining_marks(text, words):
    assert tokenize_words(text) == words
    assert tokenize_words(f"{text}\x1c{text}") == words * 2  # as before: \x1c separates, as a space does
    vocab = Vocabulary.from_text(text, level="word")
    assert vocab.decode(vocab.encode(text)) == unicodedata.normalize("NFC", text)


def test_a_vocabulary_reads_text_in_one_unicode_form():
    composed, decomposed = "caf\u00e9 noir", "cafe\u0301 noir"  # the same words, typed two ways
    for level in ("char", "word"):
        vocab = Vocabulary.from_text(composed, level=level)
        assert vocab.encode(decomposed) == vocab.encode(composed) and vocab.unknown(decomposed).count == 0
        assert Vocabulary.from_text(decomposed, level=level) == vocab
        assert Vocabulary.from_dict(vocab.to_dict()) == vocab and vocab.to_dict()["normalize"] == "NFC"
    assert Vocabulary.from_text("\u00c9T\u00c9", lower=True).encode("E\u0301te\u0301") == [4, 5, 4]  # lowered, then composed
    saved_before = Vocabulary.from_dict({"level": "char", "lower": False, "tokens": ["e", "\u0301"]})  # no "normalize" key
    assert saved_before.normalize is None and saved_before.encode("e\u0301") == [4, 5]  # reads text as it did
    assert "normalize" not in saved_before.to_dict()  # so its fingerprint, and the checkpoint's, stay the same
    assert len(Vocabulary((word for word in ["hi", "there"]), level="word")) == 6  # a generator: read once, kept
    with pytest.raises(ValueError, match=r"Vocabulary: normalize must be one of 'NFC', 'NFKC', 'NFD', 'NFKD', None; got 'nfc'"):
        Vocabulary(["a"], normalize="nfc")


@pytest.mark.parametrize("form", ["NFKC", "NFKD"])
def test_compatibility_forms_lower_the_text_they_normalize(form):
    text = "\u1d2c\u210c H\u0331"  # ᴬ and ℌ, which these forms make capitals; H with a macron below
    vocab = Vocabulary.from_text(text, normalize=form, lower=True)
    # ᴬ and ℌ were "A" and "H" (lowered before they became capitals); H + U+0331 lowered is "h" + U+0331, which
    # NFKC composes into one character, "ẖ" (normalizing only before lowering left it two)
    assert vocab.tokenize(text) == list(unicodedata.normalize(form, "ah h\u0331"))
    assert Vocabulary.from_text("\u1d2c", lower=True).itos[4:] == ["\u1d2c"]  # NFC, the default, makes no capitals


@pytest.mark.parametrize("token, form, message", [
    ("\u00e9", "NFD", "the character token '\u00e9' (U+00E9) is 2 characters in NFD, 'e\u0301' (U+0065 U+0301), which "
                      "a character-level vocabulary reads one at a time, never as this token; give those characters"),
    ("\ufb01", "NFKC", "the character token '\ufb01' (U+FB01) is 2 characters in NFKC, 'fi' (U+0066 U+0069)"),
])
def test_a_character_vocabulary_refuses_a_token_its_normal_form_splits(token, form, message):
    with pytest.raises(ValueError, match=f"^Vocabulary: {re.escape(message)}"):
        Vocabulary(["a", token], normalize=form)  # was accepted, at an id that encode never gives
    words = Vocabulary([token], level="word", normalize=form)  # a word is any number of characters
    assert words.itos[4:] == [unicodedata.normalize(form, token)]
    assert Vocabulary([token], normalize=None).itos[4:] == [token]
    saved = Vocabulary.from_text(token, normalize=form).to_dict()  # the characters of the normal form, one by one
    assert Vocabulary.from_dict(saved).to_dict() == saved  # still loads, with the same fingerprint


def test_a_vocabulary_names_the_tokens_its_normal_form_makes_one():
    message = ("Vocabulary: tokens must be distinct; 'e\u0301' (U+0065 U+0301) and '\u00e9' (U+00E9) differ as given but "
               "are both '\u00e9' (U+00E9) in NFC: keep one of them (or normalize=None, which keeps them apart)")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Vocabulary(["\u00e9", "e\u0301"])  # was "['é'] appear more than once", though each was given once
    with pytest.raises(ValueError, match=re.escape("'K' (U+004B) and '\u212a' (U+212A) differ as given but are both "
                                                   "'K' (U+004B) in NFKC")):
        Vocabulary(["K", "\u212a"], level="word", normalize="NFKC")  # the Kelvin sign
    assert len(Vocabulary(["\u00e9", "e\u0301"], level="word", normalize=None)) == 6  # text as it is: two tokens
    with pytest.raises(ValueError, match=re.escape("Vocabulary: the token 'e\u0301' (U+0065 U+0301) is 2 characters, and a "
                                                   "character-level vocabulary reads text one character at a time")):
        Vocabulary(["\u00e9", "e\u0301"], normalize=None)  # one character read at a time: e, then the accent
    with pytest.raises(ValueError, match=r"Vocabulary: the token 'ab' \(U\+0061 U\+0062\) is 2 characters in NFC"):
        Vocabulary(["ab", "c"])  # saved, it could not be loaded back


def test_vocabulary_word_level_min_freq_and_max_size():
    assert tokenize_words("Hi, you're here!") == ["Hi", ",", "you're", "here", "!"]
    text = "The cat sat. The cat ran. A dog sat."
    vocab = Vocabulary.from_text(text, level="word", min_freq=2, lower=True)
    assert set(vocab.itos[4:]) == {"the", "cat", "sat", "."}
    assert vocab.decode(vocab.encode("the cat sat.")) == "the cat sat."
    assert vocab.decode(vocab.encode("the dog sat.")) == "the sat."  # <unk> is special: left out
    assert vocab.decode(vocab.encode("the dog sat."), skip_special=False) == "the <unk> sat."  # was "the<unk> sat."
    assert vocab.encode("a dog") == [UNK_ID, UNK_ID]
    assert len(Vocabulary.from_text(text, level="word", max_size=6)) == 6
    with pytest.raises(ValueError, match="level must be 'char' or 'word'"):
        Vocabulary([], level="byte")


def test_a_vocabulary_refuses_a_token_twice_and_tokens_that_are_not_strings():
    with pytest.raises(ValueError, match=r"^Vocabulary: tokens must be distinct; \['a'\] appear more than once"):
        Vocabulary(["a", "b", "a"])  # "a" at two ids: encode would use one of them, decode both
    with pytest.raises(TypeError, match=r"^Vocabulary: tokens must be strings; got 7 \(int\)$"):
        Vocabulary(["a", 7])
    assert len(Vocabulary(["a", "<eos>", "b"])) == 6  # a special token given again is the special token


def test_padded_batches_with_lengths():
    ids, lengths = pad_batch([[5, 6, 7], [8]])
    assert ids.tolist() == [[5, 8], [6, PAD_ID], [7, PAD_ID]] and lengths.tolist() == [3, 1]
    inputs, targets, lengths = next(language_model_batches([[3, 5, 6, 2], [3, 7, 2]], 2))
    assert inputs.tolist() == [[3, 3], [5, 7], [6, PAD_ID]] and lengths.tolist() == [3, 2]
    assert targets.tolist() == [[5, 7], [6, 2], [2, IGNORE_INDEX]]


def test_the_ignored_target_id_is_one_constant_that_the_losses_skip_by_default():
    assert IGNORE_INDEX == IGNORE == F.IGNORE_INDEX == -100  # IGNORE: the earlier name, kept
    assert inspect.signature(F.cross_entropy).parameters["ignore_index"].default == IGNORE_INDEX
    assert inspect.signature(F.nll_loss).parameters["ignore_index"].default == IGNORE_INDEX
    logits = ts.Tensor(np.log([[[0.5, 0.25, 0.25]], [[0.25, 0.5, 0.25]]]))  # (T=2, B=1, C=3)
    padded = F.cross_entropy(logits, [[0], [IGNORE_INDEX]]).item()
    assert np.isclose(padded, -np.log(0.5))  # the padded step adds nothing and is not counted


def test_stream_chunks_continue_column_by_column():
    ids = np.arange(21)
    chunks = stream_chunks(ids, batch_size=2, seq_len=4)
    inputs = np.concatenate([x for x, _ in chunks])
    targets = np.concatenate([y for _, y in chunks])
    assert inputs[:, 0].tolist() == list(range(10)) and inputs[:, 1].tolist() == list(range(10, 20))
    assert (targets == inputs + 1).all() and [len(x) for x, _ in chunks] == [4, 4, 2]


@ON_EVERY_BACKEND
def test_truncated_bptt_carries_detached_state(tmp_path):
    text = tmp_path / "text.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 20)
    trainer = Trainer(TrainConfig(data=str(text), layout="stream", cell="gru", hidden=8, embed_dim=4, seq_len=10, batch_size=3))
    x, y, _ = trainer.batches(0)[0]
    trainer.train_step(x, y, None)
    (state,) = trainer.carry
    assert state.shape == (3, 8) and state.is_leaf and not state.requires_grad  # the values, not the graph
    before = state.numpy().copy()
    trainer.train_step(*trainer.batches(0)[1])
    assert not np.array_equal(trainer.carry[0].numpy(), before)


# ---------------------------------------------------------------- sampling


def small_model(vocab):
    ts.manual_seed(0)
    return LanguageModel(len(vocab), 8, "lstm", 16)


@ON_EVERY_BACKEND
def test_sampling_never_emits_unk_stops_at_eos_and_is_reproducible():
    vocab = Vocabulary.from_text(["abc"])
    model = small_model(vocab)
    model.head.bias.data[UNK_ID] = 50.0  # the model would love to say <unk>
    texts = sample(model, vocab, n=5, max_len=12, seed=1)
    assert all(len(t) <= 12 and set(t) <= set("abc") for t in texts) and any(texts)  # never <unk>
    assert texts == sample(model, vocab, n=5, max_len=12, seed=1) and texts != sample(model, vocab, n=5, max_len=12, seed=2)
    model.head.bias.data[EOS_ID] = 100.0
    assert sample(model, vocab, n=3, seed=0) == ["", "", ""]  # <eos> at once
    assert sample(model, vocab, n=2, prime="ab", seed=0) == ["ab", "ab"]
    with pytest.raises(ValueError, match=r"temperature must be a finite number > 0; got 0 \(.*use top_k=1\)"):
        sample(model, vocab, temperature=0)


def test_a_word_level_prime_keeps_its_unknown_words():
    vocab = Vocabulary.from_text(["the cat sat on the mat"], level="word", lower=True)
    model = small_model(vocab)
    model.head.bias.data[EOS_ID] = 100.0  # nothing generated: the texts are the prime alone
    with pytest.warns(UnknownTokensWarning, match=r"prime: 2 of 5 words .*: 'dog', ','"):
        texts = sample(model, vocab, n=2, prime="The DOG, sat on", seed=0)
    assert texts == ["the dog, sat on"] * 2  # read as <unk>, written back as given (lower-cased, as the vocabulary reads)
    model.head.bias.data[EOS_ID] = 0.0
    with pytest.warns(UnknownTokensWarning):
        texts = sample(model, vocab, n=3, max_len=4, prime="a dog", seed=0)
    assert all(text.startswith("a dog") for text in texts) and any(text != "a dog" for text in texts)


def test_a_character_level_prime_comes_back_as_the_vocabulary_reads_it_too():
    """As at the word level: lower-cased with lower=True, as the model saw it ("Tyr" came back "Tyrr..."), an unknown
    character kept."""
    vocab = Vocabulary.from_text(["tyrannosaurus"], level="char", lower=True)
    model = small_model(vocab)
    model.head.bias.data[EOS_ID] = 100.0  # nothing generated: the texts are the prime alone
    with pytest.warns(UnknownTokensWarning, match=r"prime: 1 of 4 characters .*'é'"):
        assert sample(model, vocab, n=2, prime="TyRé", seed=0) == ["tyré"] * 2
    model.head.bias.data[EOS_ID] = 0.0
    texts = sample(model, vocab, n=3, max_len=4, prime="Tyr", seed=0)
    assert all(text.startswith("tyr") for text in texts) and any(text != "tyr" for text in texts)


@pytest.mark.parametrize("arguments, error, message", [
    (dict(temperature=float("nan")), ValueError, r"sample: temperature must be a finite number > 0; got nan"),
    (dict(top_k=2.5), ValueError, r"sample: top_k must be an int >= 1; got 2.5"),
    (dict(n=-1), ValueError, r"sample: n must be an int >= 1; got -1"),
    (dict(max_len=-3), ValueError, r"sample: max_len must be an int >= 1; got -3"),
    (dict(seed=-1), ValueError, r"sample: seed must be an int >= 0; got -1"),
    (dict(prime=None), TypeError, r"sample: prime must be the text to start from, a str \('' for none\); got NoneType"),
])
def test_sample_refuses_arguments_it_cannot_use(arguments, error, message):
    vocab = Vocabulary.from_text(["abc"])
    with pytest.raises(error, match=message):
        sample(small_model(vocab), vocab, **arguments)


def test_sample_with_another_models_vocabulary_and_a_tiny_temperature():
    vocab = Vocabulary.from_text(["abc"])
    model = small_model(vocab)
    with pytest.raises(ValueError, match=r"sample: the model predicts 7 tokens but the vocabulary has 10; use the "
                                         r"vocabulary the model was trained with"):
        sample(model, Vocabulary.from_text(["abcdef"]), prime="f")  # before f's id could reach the embedding
    for score in (sentence_probability, sentence_log_probability):  # were an IndexError in the embedding
        with pytest.raises(ValueError, match=rf"{score.__name__}: the model predicts 7 tokens but the vocabulary has 10"):
            score(model, Vocabulary.from_text(["abcdef"]), "fed")
    model.config = "a note of the user's"  # a model whose config is not the LanguageModel's dict: judged by its logits
    with pytest.raises(ValueError, match=r"sample: the model predicts 7 tokens but the vocabulary has 10"):
        sample(model, Vocabulary.from_text(["abcdef"]))  # was AttributeError: 'str' object has no attribute 'get'
    with pytest.raises(ValueError, match=r"temperature must be a finite number > 0; got True"):
        sample(model, vocab, temperature=True)
    assert sample(model, vocab, temperature=np.int64(2), seed=0) == sample(model, vocab, temperature=2.0, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow on the way: a score below the best one gets probability 0
        greedy = sample(model, vocab, n=2, max_len=6, temperature=1e-300, seed=0)
    assert greedy == sample(model, vocab, n=2, max_len=6, top_k=1, seed=1)  # the likeliest token at every step, as top_k=1


def test_a_vocabulary_of_the_same_size_but_other_ids_is_refused_where_the_model_knows_its_own(tmp_path):
    """The trap: a vocabulary built again from the whole file instead of the training lines has the same tokens in
    another order. A model that knows its vocabulary (the Trainer's, load_model's) refuses it, naming a token whose id
    moved; the sentence scores too; its own, or one equal to it, samples."""
    trained = Vocabulary.from_text(["aab", "c"])  # ids by frequency: a, b, c
    rebuilt = Vocabulary.from_text(["abb", "cc"])  # the same letters, ordered b, c, a
    assert len(trained) == len(rebuilt) and trained.itos != rebuilt.itos
    model = small_model(trained)
    model.vocabulary = trained
    for op, call in [("sample", lambda v: sample(model, v, seed=0)),
                     ("sentence_probability", lambda v: sentence_probability(model, v, "ab")),
                     ("sentence_log_probability", lambda v: sentence_log_probability(model, v, "ab"))]:
        with pytest.raises(ValueError, match=rf"^{op}: this vocabulary is not the one the model was trained with: 'b' is id 4 "
                                             rf"here, id 5 in the model's \(a vocabulary built again .*model\.vocabulary holds it\)$"):
            call(rebuilt)
        call(trained), call(Vocabulary.from_dict(trained.to_dict()))  # its own, or an equal one read from a file
    with pytest.raises(ValueError, match=r"it has level='char', lower=True, normalize='NFC', the model's level='char', "
                                         r"lower=False, normalize='NFC', so text would be read otherwise"):
        sample(model, Vocabulary(trained.itos[4:], lower=True))
    with pytest.raises(ValueError, match=r"it has level='char', lower=False, normalize=None, the model's .*normalize='NFC'"):
        sample(model, Vocabulary(trained.itos[4:], normalize=None))
    model.config = None  # a model of yours that knows its vocabulary but declares no size: one that extends it
    with pytest.raises(ValueError, match=r"it has 8 tokens, the model's 7, the first 7 alike"):
        sample(model, Vocabulary(trained.itos[4:] + ["z"]))
    model.vocabulary = None  # a model that does not know its vocabulary: only the size is checked
    sample(model, rebuilt, seed=0)


def test_sample_many_yields_batch_by_batch_what_sample_draws(capsys):
    vocab = Vocabulary.from_text(["abc", "cab"])
    model = small_model(vocab)
    texts = sample_many(model, vocab, n=7, max_len=5, seed=3, batch_size=3)  # three batches: 3, 3 and 1
    first = list(itertools.islice(texts, 3))
    assert first == sample(model, vocab, n=3, max_len=5, seed=3)
    assert len(first + list(texts)) == 7
    assert "sampling" in capsys.readouterr().err  # a progress bar, as there is more than one batch
    with pytest.raises(ValueError, match=r"sample_many: batch_size must be an int >= 1; got 0"):
        sample_many(model, vocab, n=3, batch_size=0)
    with pytest.raises(ValueError, match=r"sample_many: n must be an int >= 1; got 0"):
        sample_many(model, vocab, n=0)  # at the call, not at the first text


def test_perplexity_decode_and_batching_refuse_what_they_cannot_measure():
    vocab = Vocabulary.from_text(["abc"])
    model = small_model(vocab)
    with pytest.raises(ValueError, match=r"perplexity: no sequences to measure"):
        perplexity(model, [])
    with pytest.raises(ValueError, match=r"perplexity: sequence 1 has 1 id\(s\); each needs at least two"):
        perplexity(model, [vocab.encode("ab", bos=True, eos=True), [3]])
    for bad in (4.0, "4", True):  # int() had read each as an id
        with pytest.raises(TypeError, match=rf"decode: ids must be integers; got {re.escape(repr(bad))}"):
            vocab.decode([4, bad])
    assert vocab.decode(np.array([4, 5], dtype=np.int32)) == vocab.decode([4, 5]) == "ab"
    scores = ts.Tensor(np.eye(7)[[4, 5, 6]])
    assert vocab.decode(scores.argmax(axis=-1)) == vocab.decode(ts.Tensor(np.array([4, 5, 6]))) == "abc"  # our tensors too
    for arguments, error, message in [
        (dict(texts=None), TypeError, "texts must be a str or an iterable of str; got NoneType"),
        (dict(texts=["ab", b"c"]), TypeError, "texts[1] is a bytes, not a str; give the texts themselves (decode bytes first)"),
        (dict(texts="ab", min_freq=0), ValueError, "min_freq must be an int >= 1; got 0"),
        (dict(texts="ab", max_size=4), ValueError, "max_size must be an int >= 5; got 4"),  # was the special tokens alone
        (dict(texts=b"ab"), TypeError, "texts is bytes; decode it first"),
    ]:
        with pytest.raises(error, match=f"Vocabulary.from_text: {re.escape(message)}"):
            Vocabulary.from_text(**arguments)
    for bad in (7, -1):  # -1 would have wrapped around to the last token
        with pytest.raises(ValueError, match=rf"decode: id {bad} is not in this vocabulary of 7 tokens \(ids 0 to 6\)"):
            vocab.decode([4, bad])
    for arguments, message in [(dict(seq_len=0), "seq_len must be an int >= 1; got 0"),
                               (dict(seq_len=2.0), "seq_len must be an int >= 1; got 2.0"),
                               (dict(seq_len=2, batch_size=0), "batch_size must be an int >= 1; got 0"),
                               (dict(seq_len=2, batch_size=2.5), "batch_size must be an int >= 1; got 2.5")]:
        with pytest.raises(ValueError, match=rf"stream_perplexity: {re.escape(message)}"):
            stream_perplexity(model, list(range(4, 7)) * 3, **arguments)
    with pytest.raises(ValueError, match=r"stream_perplexity: the text has 1 token\(s\); it needs at least two"):
        stream_perplexity(model, [4], seq_len=2)  # was nan, where perplexity raises
    with pytest.raises(ValueError, match=r"stream_chunks: seq_len must be an int >= 1; got 0"):
        stream_chunks(list(range(10)), 2, 0)
    with pytest.raises(ValueError, match=r"language_model_batches: batch_size must be an int >= 1; got 0"):
        language_model_batches([[3, 4, 2]], 0)
    with pytest.raises(ValueError, match=r"language_model_batches: sequence 1 has 1 id\(s\); each needs at least two"):
        language_model_batches([[3, 4, 2], [3]], 2)  # was pad_batch's error, at the batch that held it
    with pytest.raises(TypeError, match=r"language_model_batches: rng must be a np.random.Generator, a seed \(an int >= 0\) "
                                        r"or None for no shuffling; got str"):
        language_model_batches([[3, 4, 2]], 1, rng="0")
    by_seed = [inputs.tolist() for inputs, _, _ in language_model_batches([[3, 4, 2], [3, 5, 2], [3, 6, 2]], 1, rng=0)]
    assert by_seed == [inputs.tolist() for inputs, _, _ in
                       language_model_batches([[3, 4, 2], [3, 5, 2], [3, 6, 2]], 1, rng=np.random.default_rng(0))]
    assert len(list(language_model_batches([[3, 4, 2], [3, 5, 2]], 1, rng=np.random.RandomState(0)))) == 2  # as before


def test_text_tools_given_the_wrong_kind_of_thing_say_what_they_take(tmp_path):
    """Each failed deep inside: "normalize() argument 2 must be str", "'int' object is not iterable", an
    AttributeError about 'unknown', "invalid literal for int()", a NumPy reshape error, KeyError: 'tokens'."""
    vocab = Vocabulary.from_text(["abc"])
    model = small_model(vocab)
    for call, error, message in [
        (lambda: vocab.encode(123), TypeError, r"^Vocabulary: text must be a str; got int 123\. To turn ids back into text, use decode\(ids\)$"),
        (lambda: vocab.decode(5), TypeError, r"^decode: ids must be a sequence of ids \(a list, or a 1-D array\); got int 5: for one id, decode\(\[i\]\)$"),
        (lambda: sample(vocab, model), TypeError, r"^sample: vocab must be a Vocabulary; got LanguageModel \(the two swapped\?\)\. Call sample\(model, vocab, \.\.\.\)$"),
        (lambda: list(sample_many(model, "abc", 2)), TypeError, r"^sample_many: vocab must be a Vocabulary; got str\. Call sample_many"),
        (lambda: perplexity(model, ["ab"]), TypeError, r"^perplexity: sequence 0 is a str, not a sequence of ids; encode each line first"),
        (lambda: language_model_batches("ab", 1), TypeError, r"^language_model_batches: takes a list of id sequences, one per line .*; got str$"),
        (lambda: stream_perplexity(model, "abcabc", 2), TypeError, r"^stream_perplexity: takes the text's token ids, vocab\.encode\(text\); got the text itself$"),
        (lambda: stream_chunks(np.ones((3, 4), dtype=int), 1, 2), ValueError, r"^stream_chunks: takes one text's token ids, a 1-D sequence of ints .*; got shape \(3, 4\), dtype int64$"),
        (lambda: Vocabulary.from_dict({"a": 1}), ValueError, r"^Vocabulary\.from_dict: expected what Vocabulary\.to_dict gives; it needs \"tokens\" and \"level\", and its keys are \['a'\]$"),
    ]:
        with pytest.raises(error, match=message):
            call()
    other = tmp_path / "config.json"
    other.write_text(json.dumps([1, 2]))
    with pytest.raises(ValueError, match=rf"^Vocabulary\.load: {re.escape(str(other))} is not a vocabulary that Vocabulary\.save wrote; it needs \"tokens\" and \"level\", and it holds a list$"):
        Vocabulary.load(other)
    vocab.save(tmp_path / "vocab.json")
    assert Vocabulary.load(tmp_path / "vocab.json") == vocab


def test_a_vocabulary_file_that_would_renumber_the_ids_is_refused(tmp_path):
    """A token's id is its place in the saved list: a file edited so that a token sits elsewhere, or that no text
    could ever match, must not load as if it were the vocabulary the model was trained with."""
    saved = {"level": "char", "lower": False, "tokens": ["a", "b"]}
    cases = [
        ({"tokens": ["a", "<unk>", "b"]}, r'"tokens"\[1\] is \'<unk>\': the special tokens have the fixed ids 0 to 3 and are '
                                          r"never listed, so every token after it would change id\. Remove it$"),
        ({"tokens": "ab"}, r'"tokens" must be a list of strings, one per id from 4 on; got a str$'),
        ({"lower": "no"}, r'"lower" must be true or false; got \'no\'$'),
        ({"tokens": ["a", "bc"]}, r"Vocabulary: the token 'bc' \(U\+0062 U\+0063\) is 2 characters, and a character-level "
                                  r"vocabulary reads text one character at a time"),  # the constructor's rule, said of the file
        ({"tokens": ["a", 3]}, r"Vocabulary: tokens must be strings; got 3 \(int\)"),
    ]
    for change, message in cases:
        path = tmp_path / "vocab.json"
        path.write_text(json.dumps({**saved, **change}))
        with pytest.raises(ValueError, match=rf"^Vocabulary\.load: {re.escape(str(path))} is not a vocabulary that Vocabulary\.save wrote; {message}"):
            Vocabulary.load(path)
        with pytest.raises((TypeError, ValueError), match=rf"^(Vocabulary\.from_dict: expected what Vocabulary\.to_dict gives; )?{message}"):
            Vocabulary.from_dict({**saved, **change})
    good = Vocabulary.from_text(["ab"]).save(tmp_path / "good.json")
    for name, content, message in [("cut.json", good.read_bytes()[:20], r"it is not JSON text \(JSONDecodeError"),
                                   ("empty.json", b"", r"it is not JSON text \(JSONDecodeError"),
                                   ("binary.json", b"\xff\xfe\x00", r"it is not JSON text \(UnicodeDecodeError")]:
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=rf"^Vocabulary\.load: {re.escape(str(tmp_path / name))} is not a vocabulary that "
                                             rf"Vocabulary\.save wrote: {message}.*restore it from a backup, or save it again$"):
            Vocabulary.load(tmp_path / name)
    with pytest.raises(ValueError, match=r"^Vocabulary\.load: .* is a folder; give the \.json file Vocabulary\.save wrote"):
        Vocabulary.load(tmp_path)


def test_sampling_builds_no_graph_and_leaves_the_model_as_it_was():
    """Each generated token costs its arrays only: no graph node is recorded (generation runs under no_grad)."""
    vocab = Vocabulary.from_text(["abc"])
    model = small_model(vocab)
    seen = []
    original = model.forward

    def forward(*args, **kwargs):
        logits, state = original(*args, **kwargs)
        seen.append(logits)
        return logits, state

    model.forward = forward
    sample(model, vocab, n=3, max_len=6, seed=0)
    assert len(seen) > 1 and all(logits.grad_fn is None and not logits.requires_grad for logits in seen)
    assert model.training and ts.is_grad_enabled()


@ON_EVERY_BACKEND
def test_top_k_and_temperature():
    vocab = Vocabulary.from_text(["abcdef"])
    model = small_model(vocab)
    model.head.bias.data[4] = 6.0  # "a" is by far the likeliest
    assert set("".join(sample(model, vocab, n=8, max_len=10, top_k=1, seed=0))) == {"a"}
    cold = "".join(sample(model, vocab, n=8, max_len=10, temperature=0.1, seed=0))
    hot = "".join(sample(model, vocab, n=8, max_len=10, temperature=5.0, seed=0))
    assert cold.count("a") / len(cold) > hot.count("a") / max(len(hot), 1)


@ON_EVERY_BACKEND
def test_perplexity_of_a_uniform_model_is_the_vocabulary_size():
    vocab = Vocabulary.from_text(["abcd"])
    model = small_model(vocab)
    for p in (model.head.weight, model.head.bias):
        p.data[...] = 0  # uniform predictions over all V tokens
    loss, ppl = perplexity(model, [vocab.encode("abba", bos=True, eos=True)])
    assert loss == pytest.approx(np.log(len(vocab)), rel=1e-5) and ppl == pytest.approx(len(vocab), rel=1e-5)


# ---------------------------------------------------------------- training, checkpoints, resumption


def config(**changes):
    defaults = dict(data=str(DINOS), hidden=12, embed_dim=6, batch_size=64, epochs=2, lower=True, dropout=0.0)
    return TrainConfig(**{**defaults, **changes})


def test_a_resumed_run_checks_what_it_is_asked_to_change_and_a_new_one_keeps_the_callers_config(tmp_path):
    """apply_changes took lr=-1, epochs="x" and clip=-3 (which failed at the first step, inside clipping); Trainer
    wrote the data's absolute path into the caller's config."""
    given = config(data=os.path.relpath(DINOS), epochs=1, max_chars=2000)
    trainer = Trainer(given)
    assert given.data == os.path.relpath(DINOS) and trainer.config.data == str(DINOS.resolve())
    before = dict(vars(trainer.config))
    for bad, message in ((dict(lr=-1.0), r"lr=-1.0 \(must be finite and > 0\)"), (dict(epochs="x"), r"epochs='x' \(must be an integer"),
                         (dict(epochs=3, clip=-3.0), r"clip=-3.0 \(must be > 0")):
        with pytest.raises(ts.models.TrainingError, match=message):
            trainer.apply_changes(**bad)
        assert vars(trainer.config) == before and trainer.optimizer.param_groups[0]["lr"] == before["lr"]  # nothing changed
    assert trainer.apply_changes(lr=0.5, epochs=3) == ["lr 0.01 -> 0.5", "epochs 1 -> 3"]
    assert trainer.optimizer.param_groups[0]["lr"] == 0.5


def interrupt_at(trainer, batch):
    """Send a real SIGINT while ``batch`` trains, as Ctrl-C would."""
    train_step = trainer.train_step
    calls = {"n": 0}

    def step(*args):
        calls["n"] += 1
        if calls["n"] == batch:
            os.kill(os.getpid(), signal.SIGINT)
        return train_step(*args)

    trainer.train_step = step


@ON_EVERY_BACKEND
@pytest.mark.parametrize("layout, cell, layers", [("lines", "lstm", 1), ("stream", "gru", 2)])
def test_ctrl_c_saves_and_resume_continues_exactly(tmp_path, layout, cell, layers):
    settings = dict(layout=layout, cell=cell, layers=layers, dropout=0.3 if layers > 1 else 0.0, seq_len=16)
    straight = Trainer(config(**settings))
    assert straight.run(tmp_path / "straight", progress=False)

    interrupted = Trainer(config(**settings))
    interrupt_at(interrupted, 15)
    assert interrupted.run(tmp_path / "run", progress=False) is False  # stopped after the step in flight
    assert (interrupted.epoch, interrupted.batch) == (0, 15)
    resumed = Trainer.load(tmp_path / "run")
    assert (resumed.epoch, resumed.batch) == (0, 15)
    assert resumed.run(tmp_path / "run", progress=False)
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    assert straight.history == resumed.history  # the interrupted epoch's running train loss included


def test_a_run_on_a_file_with_a_byte_order_mark_resumes_after_the_mark_stopped_being_read(tmp_path, monkeypatch):
    """The data's SHA-256 is of its bytes, the mark included: a run saved when the mark was read as a character
    ('\\ufeff' in its vocabulary) resumes on the same file, and continues on the text without it."""
    from tinygrad_seq.models import trainer as trainer_module

    data = tmp_path / "dinos-bom.txt"
    data.write_bytes(codecs.BOM_UTF8 + DINOS.read_bytes()[:3000])  # Notepad's "UTF-8 with BOM"
    decoded = trainer_module._decoded
    with monkeypatch.context() as before:  # how the file was read before: the mark kept as the text's first character
        before.setattr(trainer_module, "_decoded", lambda raw, path, encoding: "\ufeff" + decoded(raw, path, encoding))
        old = Trainer(config(data=str(data), layout="stream", seq_len=16, batch_size=8, epochs=1))
        assert "\ufeff" in old.corpus.vocab
        assert old.run(tmp_path / "run", progress=False)
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["data_sha256"] == hashlib.sha256(data.read_bytes()).hexdigest()  # of the bytes: the reading is not in it
    resumed = Trainer.load(tmp_path / "run")  # not "data file ... changed since the checkpoint was trained on it"
    assert resumed.apply_changes(epochs=2) == ["epochs 1 -> 2"]
    assert resumed.run(tmp_path / "run", progress=False) and len(resumed.history) == 2
    assert len(resumed.corpus.train) + len(resumed.corpus.valid) == len(old.corpus.train) + len(old.corpus.valid) - 1

    fresh = Trainer(config(data=str(data), layout="stream", seq_len=16, batch_size=8, epochs=1))  # nor does a new run
    assert "\ufeff" not in fresh.corpus.vocab and fresh.corpus.data_sha256 == state["data_sha256"]


@ON_EVERY_BACKEND
def test_training_lowers_the_loss_and_checkpoints_are_atomic(tmp_path):
    trainer = Trainer(config(epochs=3, hidden=32, batch_size=32))
    trainer.run(tmp_path / "ckpt", progress=False)
    losses = [h["valid_loss"] for h in trainer.history]
    assert losses[-1] < losses[0] < np.log(len(trainer.corpus.vocab))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary or old directory left behind
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["carry.npz", "manifest.json", "model.npz", "optimizer.npz", "state.json", "vocab.json"]


def test_training_without_held_out_text_says_why_there_is_no_validation(tmp_path, capsys):
    (tmp_path / "two.txt").write_text("abc\nabd\n")  # 10% of two lines is no line
    trainer = Trainer(TrainConfig(data=str(tmp_path / "two.txt"), hidden=4, embed_dim=4, epochs=1))
    trainer.run(progress=True)
    assert math.isnan(trainer.history[-1]["valid_loss"])
    assert (f"epoch 1: train loss {trainer.history[-1]['train_loss']:.3f}, no validation: the held-out part "
            f"(val_fraction=0.1 of {tmp_path / 'two.txt'}) is too small to score; give more text, or hold out more "
            "(--val-fraction, TrainConfig.val_fraction)") in capsys.readouterr().out
    Trainer(TrainConfig(data=str(tmp_path / "two.txt"), hidden=4, embed_dim=4, epochs=1, val_fraction=0.0)).run(progress=True)
    assert "no validation (val_fraction=0 holds nothing out)" in capsys.readouterr().out  # asked for: nothing to explain


def test_a_language_model_names_itself_and_the_ids_shape_it_wants():
    model = LanguageModel(10, embed_dim=4, hidden_size=4)
    with pytest.raises(ValueError, match=r"^LanguageModel: ids must be \(time, batch\) token ids, time-major; got shape "
                                         r"\(3,\): one sequence is ids\[:, None\], shape \(T, 1\)$"):
        model(np.array([3, 4, 5]))  # was "Stacked(1 layer): the input must have 3 axes ...; got shape (3, 32)"
    with pytest.raises(ValueError, match=r"^LanguageModel: ids must be .*; got shape \(2, 3, 4\)$"):
        model(np.zeros((2, 3, 4), dtype=int))
    with pytest.raises(ValueError, match=r"^LanguageModel: ids \(token indices\) must be rectangular"):
        model([[1, 2], [3]])
    assert model(np.array([3, 4, 5])[:, None])[0].shape == (3, 1, 10)
    for tokens, shape in (([[1, 2]], r"\(1, 2\)"), (3, r"\(\): one sequence's token is \[token\]")):  # step: one token a sequence
        with pytest.raises(ValueError, match=rf"^LanguageModel\.step: tokens must be \(batch,\) ids, one per sequence; got shape {shape}$"):
            model.step(tokens)
    assert model.step([3, 4])[0].shape == (2, 10)


def test_the_held_out_unknown_share_counts_predicted_tokens_and_train_says_when_it_is_large(tmp_path, capsys):
    words = [f"word{i}" for i in range(20)]  # every line a word seen once: the held-out ones are all unknown
    (tmp_path / "words.txt").write_text("\n".join(words) + "\n")
    config = dict(data=str(tmp_path / "words.txt"), hidden=4, embed_dim=4, epochs=1, val_fraction=0.2)
    corpus = Trainer(TrainConfig(**config, level="word")).corpus
    assert len(corpus.valid) == 4 and corpus.held_out_unknown_share() == 0.5  # each line predicts its word, then <eos>
    assert Trainer(TrainConfig(**config)).corpus.held_out_unknown_share() < HELD_OUT_UNKNOWN_NOTE  # characters: known
    assert cli(["train", "--data", str(tmp_path / "words.txt"), "--level", "word", "--epochs", "1", "--hidden", "4",
                "--val-fraction", "0.2", "--out", str(tmp_path / "w")]) == 0
    assert ("note: 50.0% of the held-out tokens are <unk>, which the vocabulary built from the training part does not know; "
            "predicting <unk> counts as right, so the validation perplexity reads better than the model is (the fix: more "
            "text, or --level char)\n") in capsys.readouterr().err
    assert cli(["train", "--data", str(tmp_path / "words.txt"), "--epochs", "1", "--hidden", "4", "--val-fraction", "0.2",
                "--out", str(tmp_path / "c")]) == 0
    assert "<unk>" not in capsys.readouterr().err
    assert cli(["train", "--data", str(tmp_path / "words.txt"), "--level", "word", "--max-vocab", "5", "--epochs", "1",
                "--hidden", "4", "--val-fraction", "0.2", "--out", str(tmp_path / "capped")]) == 0
    assert "(the fix: a larger --max-vocab than 5 (or none), more text, or --level char)" in capsys.readouterr().err


# ---------------------------------------------------------------- the CLI


def test_cli_train_sample_eval(tmp_path, capsys):
    out = tmp_path / "ckpt"
    assert cli(["train", "--data", str(DINOS), "--epochs", "1", "--hidden", "16", "--lower", "--out", str(out)]) == 0
    assert "done: checkpoint in" in capsys.readouterr().out
    assert cli(["sample", "--checkpoint", str(out), "-n", "4", "--seed", "0", "--prime", "ab"]) == 0
    names = capsys.readouterr().out.split()
    assert len(names) == 4 and all(n.startswith("ab") for n in names)
    assert cli(["eval", "--checkpoint", str(out), "--data", str(DINOS)]) == 0
    printed = capsys.readouterr().out
    assert "perplexity" in printed  # scoring the training file says so: that loss flatters the model
    assert "note: this is the file the run trained on; all but the 10% it held out was training text" in printed
    other = tmp_path / "other.txt"
    other.write_text("tyrannosaurus\nstegosaurus\n", encoding="utf-8")
    assert cli(["eval", "--checkpoint", str(out), "--data", str(other)]) == 0
    assert "note:" not in capsys.readouterr().out
    assert cli(["train", "--out", str(out), "--resume", "--data", str(DINOS)]) == 0  # already finished: nothing left


def test_cli_import_registers_a_cell(tmp_path, capsys):
    module = tmp_path / "my_cells.py"
    module.write_text(
        "import tinygrad_seq as ts\nfrom tinygrad_seq import nn\n\n"
        "@nn.register_cell('tiny_tanh')\nclass TinyTanh(nn.RNNCell):\n    pass\n"
    )
    try:
        code = cli(["train", "--data", str(DINOS), "--epochs", "1", "--hidden", "8", "--cell", "tiny_tanh",
                    "--import", str(module), "--out", str(tmp_path / "c")])
        assert code == 0
    finally:
        ts.settings.cell_registry.pop("tiny_tanh", None)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "--data", "no/such/file.txt"], "train: error: data file no/such/file.txt not found"),
        (["train", "--data", "{empty}"], "is empty but for spaces and newlines; give a file that holds the text to learn from"),
        (["sample", "--checkpoint", "{tmp}"], "is not a checkpoint folder (no manifest.json)"),
        (["train", "--data", "{dinos}", "--import", "no_such_module_xyz"], "--import no_such_module_xyz: ModuleNotFoundError"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, capsys, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)  # the default --out is ./checkpoint: one left in the working folder must not matter
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    argv = [a.format(empty=empty, tmp=tmp_path, dinos=DINOS) for a in argv]
    assert cli(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_cli_refuses_a_checkpoint_of_another_format(tmp_path, capsys):
    out = tmp_path / "ckpt"
    Trainer(config(epochs=1)).run(out, progress=False)
    (out / "manifest.json").unlink()  # as a future format without our manifest would look
    state = json.loads((out / "state.json").read_text())
    state["format"], state["version"] = 99, "9.9"
    (out / "state.json").write_text(json.dumps(state))
    assert cli(["sample", "--checkpoint", str(out)]) == 2
    assert "has format 99 (written by tinygrad-seq 9.9)" in capsys.readouterr().err


def test_cli_unknown_cell(capsys):
    assert cli(["train", "--data", str(DINOS), "--cell", "transformer"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown --cell 'transformer'; registered cells are gru, lstm, rnn, simplified_gru" in err and len(err.splitlines()) == 1


@pytest.mark.skipif(cupy_unavailable_reason() is None, reason="CuPy works here")
def test_cli_cupy_without_gpu(capsys):
    assert cli(["train", "--data", str(DINOS), "--backend", "cupy"]) == 2
    err = capsys.readouterr().err
    assert "backend 'cupy' was asked for" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- the main demo


@ON_EVERY_BACKEND
def test_char_lm_smoke(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "demos"))  # the demos import their shared demos/common.py
    demo = runpy.run_path(str(ROOT / "demos" / "char_lm.py"))
    trainer = demo["main"](["--smoke", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "new names:" in out and (tmp_path / "graph_rex.svg").exists() and (tmp_path / "checkpoint" / "model.npz").exists()
    assert trainer.history[-1]["valid_loss"] < trainer.history[0]["valid_loss"]
    picture = (tmp_path / "graph_rex.svg").read_text()
    # the output layer and the loss drawn step by step, in the course's notation (they were one CrossEntropy node)
    assert "t = 4" in picture and all(label in picture for label in ("ŷ⟨1⟩", "ŷ⟨4⟩", "L⟨4⟩", "W_ya", "b_y"))
    again = demo["main"](["--smoke", "--out", str(tmp_path)])  # a rerun into its own folder replaces its checkpoint
    assert json.loads((tmp_path / "checkpoint" / "state.json").read_text())["run_id"] == again.run_id


@pytest.mark.parametrize("layout, cell, layers, dropout", [("lines", "lstm", 1, 0.0), ("stream", "gru", 2, 0.3)])
def test_a_training_step_on_a_device_reads_it_back_at_most_twice(layout, cell, layers, dropout):
    """On a GPU every read of a device value waits for the device: a step makes two, the loss for the progress
    bar and the count of distinct ids in the embedding's backward; ids and targets are checked on the host."""
    with on_strict_device():
        trainer = Trainer(config(layout=layout, cell=cell, layers=layers, dropout=dropout, seq_len=16, batch_size=16))
        batches = trainer.batches(0)
        trainer.train_step(*batches[0])
        with strict_device.syncs.counting() as seen:
            trainer.seed_device_stream()
            loss = trainer.train_step(*batches[1])
    assert isinstance(loss, float) and math.isfinite(loss)
    assert sorted(event.kind for event in seen.events) == ["item", "nonzero"], seen.events


def test_unknown_tokens_of_a_text_the_vocabulary_knows_say_so():
    assert str(Vocabulary.from_text("cafe").unknown("cafe")) == "all 4 characters are in the vocabulary"  # was a dangling "...: "


def test_a_language_models_errors_name_it_and_a_state_of_another_batch_says_so():
    """They named its inner Stacked(1 layer), and a state carried into a smaller batch did not say the batch changed."""
    model = LanguageModel(10, hidden_size=5)
    with pytest.raises(ValueError, match=r"^LanguageModel: every length must be at least 1; got 0 at index 1"):
        model(np.ones((3, 2), int), lengths=[3, 0])
    _, state = model(np.ones((3, 4), int))
    with pytest.raises(ts.nn.StateError, match=r"^LanguageModel: state\[0\] \(layer 0\): LSTMCell: state part a has shape \(4, 5\); "
                                            r"expected .* of shape \(2, 5\): a state made for a batch of 4, given with a batch of 2\. .*"
                                            r"start from state=None when the batch size changes"):
        model(np.ones((3, 2), int), state)
    assert model(np.ones((3, 2), int))[0].shape == (3, 2, 10)  # the fix it names


def test_ids_given_batch_major_are_said_to_look_so():
    """(B, T) ids, each row a sequence from <bos>, ran as T = B without a word (the model reads (T, B))."""
    vocab = Vocabulary.from_text(["abc", "cab"])
    model = LanguageModel(len(vocab), hidden_size=4)
    sequences = [vocab.encode("abc", bos=True), vocab.encode("cab", bos=True)]
    with pytest.warns(UserWarning, match=r"^LanguageModel: ids \(2, 4\) look batch-major: every row starts with <bos>, not every "
                                         r"column.*Pass ids\.T") as caught:
        model(np.array(sequences))
    assert caught[0].filename == __file__
    ids, _ = pad_batch(sequences)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert model(ids)[0].shape == (4, 2, len(vocab))  # time-major, as pad_batch gives them: quiet
        model(np.full((3, 1), 3))  # one sequence of <bos> only: nothing to say
