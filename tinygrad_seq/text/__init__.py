"""Text for language models: vocabularies, batching, sampling, sentence probabilities and perplexity."""
from .batching import IGNORE, IGNORE_INDEX, language_model_batches, pad_batch, stream_chunks
from .sampling import perplexity, sample, sample_many, sentence_log_probability, sentence_probability, stream_perplexity
from .vocab import (
    BOS, BOS_ID, EOS, EOS_ID, PAD, PAD_ID, SPECIALS, UNK, UNK_ID, UnknownTokens, UnknownTokensWarning, Vocabulary,
    tokenize_words,
)

__all__ = [
    "BOS", "BOS_ID", "EOS", "EOS_ID", "IGNORE", "IGNORE_INDEX", "PAD", "PAD_ID", "SPECIALS", "UNK", "UNK_ID", "UnknownTokens",
    "UnknownTokensWarning", "Vocabulary", "language_model_batches", "pad_batch", "perplexity", "sample", "sample_many", "sentence_log_probability", "sentence_probability", "stream_chunks", "stream_perplexity", "tokenize_words",
]
