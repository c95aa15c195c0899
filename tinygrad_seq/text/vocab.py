"""Vocabularies: tokens <-> ids, at character or word level, with fixed special tokens.

>>> from tinygrad_seq.text import Vocabulary
>>> vocab = Vocabulary.from_text(["abba", "cab"], level="char")
>>> vocab.encode("abz"), vocab.decode(vocab.encode("abc"))
([4, 5, 1], 'abc')
"""
from __future__ import annotations

import json
import operator
import os
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import regex

from ..checks import check_counts
from ..storage import atomic_write

PAD, UNK, EOS, BOS = "<pad>", "<unk>", "<eos>", "<bos>"
SPECIALS = (PAD, UNK, EOS, BOS)  # ids 0, 1, 2, 3 in every vocabulary
PAD_ID, UNK_ID, EOS_ID, BOS_ID = range(4)
LEVELS = ("char", "word")
NORMAL_FORMS = ("NFC", "NFKC", "NFD", "NFKD", None)
COMPATIBILITY_FORMS = ("NFKC", "NFKD")  # they map characters to others, capitals among them: normalized before lowering
# ``regex``'s \w is Unicode's word class, combining marks included, so that "cafe\u0301" and Hindi's vowel
# signs stay inside their word (the standard ``re`` splits them off as punctuation). Its \w leaves out the
# numbers ``re`` counted (x², H₂O, ½: \p{No}) and its \s the separators \x1c-\x1f: added back, so that
# only the marks, joiners and a few letter-like symbols changed sides.
_WORD = r"[\w\p{No}]"
_MARK = r"[^\w\p{No}\s\x1c-\x1f]"  # punctuation: neither a word's character nor a space
_WORDS = regex.compile(rf"{_WORD}+(?:'{_WORD}+)?|{_MARK}")
_PUNCTUATION = regex.compile(rf"{_MARK}+")  # a token of punctuation alone: written without a space before it


def tokenize_words(text: str, lower: bool = False) -> list[str]:
    """Words, with punctuation split off as tokens of its own: "Hi, you!" -> ["Hi", ",", "you", "!"]. A word's
    combining marks belong to it: "cafe\u0301" (e + a combining acute accent) is one word."""
    return _WORDS.findall(text.lower() if lower else text)


def _token_id(value: Any) -> int:
    """``value`` as a token id: an integer (Python's, NumPy's, a one-element integer array or tensor, such as an
    argmax), never a bool or a float."""
    if not isinstance(value, (bool, np.bool_)):
        try:
            return operator.index(value)
        except TypeError:
            dtype = getattr(value, "dtype", None)  # our Tensor and NumPy's 0-d arrays have no __index__
            if isinstance(dtype, np.dtype) and dtype.kind in "iu" and getattr(value, "size", 0) == 1:
                return int(value)
    raise TypeError(f"decode: ids must be integers; got {value!r} ({type(value).__name__}); decode the ids encode "
                    "gave, or argmax's indices (a float or a bool is not an id)")


class UnknownTokensWarning(UserWarning):
    """Text given to a trained model has tokens its vocabulary does not know; they are read as <unk>."""


@dataclass
class UnknownTokens:
    """Of ``total`` tokens of a text, those a vocabulary does not know (they encode as <unk>), with their counts.

    >>> unknown = Vocabulary.from_text("abc").unknown("abéßa")
    >>> unknown.count, unknown.total
    (2, 5)
    >>> print(unknown)
    2 of 5 characters are not in the vocabulary and count as <unk>: 'é', 'ß'
    >>> print(Vocabulary.from_text("ab").unknown("a" * 5000 + "é" * 1200))
    1,200 of 6,200 characters are not in the vocabulary and count as <unk>: 'é'
    """

    total: int
    counts: Counter
    level: str = "char"
    shown: int = 10  # distinct tokens named in the message, the most frequent first

    @property
    def count(self) -> int:
        return sum(self.counts.values())

    def __str__(self) -> str:
        what = ("character" if self.level == "char" else "word") + ("s" if self.total != 1 else "")
        if not self.count:
            return f"all {self.total:,} {what} {'is' if self.total == 1 else 'are'} in the vocabulary"
        is_, counts = ("is", "counts") if self.count == 1 else ("are", "count")
        ranked = [t for t, _ in self.counts.most_common()]  # the most frequent first, ties in order of appearance
        named = ", ".join(repr(t) for t in ranked[: self.shown])
        more = f" and {len(ranked) - self.shown} more" if len(ranked) > self.shown else ""
        return f"{self.count:,} of {self.total:,} {what} {is_} not in the vocabulary and {counts} as {UNK}: {named}{more}"


def _not_a_vocabulary(data: Any) -> str | None:
    """What a saved vocabulary's dict lacks, said for an error; None when it has its "tokens" and "level"."""
    if isinstance(data, dict) and "tokens" in data and "level" in data:
        return None
    found = f"its keys are {sorted(map(str, data))}" if isinstance(data, dict) else f"it holds a {type(data).__name__}"
    return f'it needs "tokens" and "level", and {found}'


def _saved_tokens_problem(data: dict) -> str | None:
    """What makes a saved vocabulary's tokens give other ids than the ones its model was trained with (a token's id is
    its place in the list, after the special tokens), said for an error; None when nothing does."""
    tokens, lower = data["tokens"], data.get("lower", False)
    if not isinstance(tokens, list):
        return f'"tokens" must be a list of strings, one per id from {len(SPECIALS)} on; got a {type(tokens).__name__}'
    if not isinstance(lower, bool):
        return f'"lower" must be true or false; got {lower!r}'
    for index, token in enumerate(tokens):  # what else a token may not be, the constructor refuses (one rule for both)
        if token in SPECIALS:  # which the constructor takes, leaving it out: ids would move
            return (f'"tokens"[{index}] is {token!r}: the special tokens have the fixed ids 0 to {len(SPECIALS) - 1} and '
                    "are never listed, so every token after it would change id. Remove it")
    return None


def _is_vocabulary_file(path: Path) -> bool:
    """Whether ``path`` holds a saved vocabulary (which a save may replace), not a file of yours."""
    try:
        if path.stat().st_size > 512 * 2**20:  # a corpus given by mistake is not read whole to find that out
            return False
        return _not_a_vocabulary(json.loads(path.read_text(encoding="utf-8"))) is None
    except (OSError, ValueError):
        return False


def _spelled(token: str) -> str:
    """``token`` with its code points, which tell apart tokens that print the same: 'é' (U+0065 U+0301)."""
    return f"{token!r} ({' '.join(f'U+{ord(c):04X}' for c in token)})"


def _check_one_character(given: Sequence[str], normal: Sequence[str], normalize: str | None) -> None:
    """Refuse a character token that ``normalize`` turns into several characters ("é" into e and U+0301 in NFD):
    a character-level vocabulary tokenizes normalized text one character at a time, so it never reads the token."""
    for token, form in zip(given, normal):
        if len(token) == 1 and len(form) > 1:
            raise ValueError(
                f"Vocabulary: the character token {_spelled(token)} is {len(form)} characters in {normalize}, "
                f"{_spelled(form)}, which a character-level vocabulary reads one at a time, never as this token; "
                "give those characters as tokens instead, or build the vocabulary with Vocabulary.from_text")


def _repeated(given: Sequence[str], normal: Sequence[str], normalize: str | None) -> str:
    """The error for tokens given twice, naming the different tokens that ``normalize`` made one."""
    originals: dict[str, set[str]] = {}
    for token, form in zip(given, normal):
        originals.setdefault(form, set()).add(token)
    merged = next(((form, sorted(tokens)) for form, tokens in originals.items()
                   if len(tokens) > 1 and form not in SPECIALS), None)
    if merged is not None:
        form, tokens = merged
        return (f"Vocabulary: tokens must be distinct; {' and '.join(map(_spelled, tokens))} differ as given but are "
                f"both {_spelled(form)} in {normalize}: keep one of them (or normalize=None, which keeps them apart)")
    repeated = sorted(t for t, n in Counter(normal).items() if n > 1 and t not in SPECIALS)
    return (f"Vocabulary: tokens must be distinct; {repeated[:5]} appear more than once. "
            "A vocabulary file edited by hand? Build one with Vocabulary.from_text")


class Vocabulary:
    """Maps tokens to ids and back; <pad>=0, <unk>=1, <eos>=2, <bos>=3, then tokens by frequency.

    Args:
        tokens: the ordinary tokens, most frequent first.
        level: "char" (a token is a character) or "word" (see ``tokenize_words``).
        lower: lower-case text before splitting it into words.
        normalize: the Unicode normal form text is brought to before it is split (and the tokens given
            too), so that "café" typed as e + a combining accent is the "café" of the data: "NFC" (the
            default), "NFKC", "NFD", "NFKD", or None for the text as it is (what a vocabulary saved
            before this option reads as).
    """

    def __init__(self, tokens: Sequence[str], level: str = "char", lower: bool = False,
                 normalize: str | None = "NFC") -> None:
        if level not in LEVELS:
            raise ValueError(f"Vocabulary: level must be 'char' or 'word'; got {level!r}")
        if normalize not in NORMAL_FORMS:
            raise ValueError(f"Vocabulary: normalize must be one of {', '.join(map(repr, NORMAL_FORMS))}; got {normalize!r}")
        self.level, self.lower, self.normalize = level, lower, normalize
        tokens = list(tokens)  # a generator is read once: checked and kept from one list
        wrong = next((t for t in tokens if not isinstance(t, str)), None)
        if wrong is not None:
            raise TypeError(f"Vocabulary: tokens must be strings; got {wrong!r} ({type(wrong).__name__})")
        normal = [unicodedata.normalize(normalize, t) for t in tokens] if normalize else tokens
        if level == "char":
            _check_one_character(tokens, normal, normalize)
            long = next((t for t in normal if len(t) != 1 and t not in SPECIALS), None)
            if long is not None:
                raise ValueError(f"Vocabulary: the token {_spelled(long)} is {len(long)} characters"
                                 f"{f' in {normalize}' if normalize else ''}, and a character-level vocabulary reads text "
                                 "one character at a time, so it would never read it; give single characters, or "
                                 "level='word'")
        self.itos: list[str] = list(SPECIALS) + [t for t in normal if t not in SPECIALS]
        self.stoi = {token: i for i, token in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):  # one token at two ids: encode would use one, and decode read both as it
            raise ValueError(_repeated(tokens, normal, normalize))

    @classmethod
    def from_text(cls, texts: str | Iterable[str], level: str = "char", min_freq: int = 1,
                  max_size: int | None = None, lower: bool = False, normalize: str | None = "NFC") -> Vocabulary:
        """Count the tokens of ``texts`` (one string or many) and keep those seen ``min_freq`` times, at most ``max_size``."""
        check_counts("Vocabulary.from_text", min_freq=min_freq)
        if max_size is not None:  # the 4 special tokens count, and one token of the text at least
            check_counts("Vocabulary.from_text", minimum=len(SPECIALS) + 1, max_size=max_size)
        if isinstance(texts, (bytes, bytearray)):
            raise TypeError("Vocabulary.from_text: texts is bytes; decode it first (data.decode('utf-8'))")
        if isinstance(texts, str):
            texts = [texts]
        elif not isinstance(texts, Iterable):
            raise TypeError(f"Vocabulary.from_text: texts must be a str or an iterable of str; got {type(texts).__name__}")
        counts: Counter[str] = Counter()
        probe = cls([], level, lower, normalize)
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(f"Vocabulary.from_text: texts[{index}] is a {type(text).__name__}, not a str; "
                                "give the texts themselves (decode bytes first)")
            counts.update(probe.tokenize(text))
        ranked = sorted((t for t, n in counts.items() if n >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max(0, max_size - len(SPECIALS))]
        return cls(ranked, level, lower, normalize)

    def tokenize(self, text: str) -> list[str]:
        """The tokens of one string, as ``encode`` reads it: lowered and normalised as the vocabulary says."""
        if not isinstance(text, str):
            raise TypeError(f"Vocabulary: text must be a str; got {type(text).__name__} {text!r:.40}. To turn ids back "
                            "into text, use decode(ids)")
        if self.lower:
            if self.normalize in COMPATIBILITY_FORMS:  # they map some characters to capitals ("ℌ" -> "H"): lowered next
                text = unicodedata.normalize(self.normalize, text)
            text = text.lower()
        if self.normalize:  # after lowering, which can leave a letter and its accent apart ("É" -> "e" + U+0301 in NFD)
            text = unicodedata.normalize(self.normalize, text)
        return list(text) if self.level == "char" else tokenize_words(text)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, text: str, bos: bool = False, eos: bool = False) -> list[int]:
        """Token ids of ``text``; unknown tokens become <unk>."""
        ids = [self.stoi.get(token, UNK_ID) for token in self.tokenize(text)]
        return ([BOS_ID] if bos else []) + ids + ([EOS_ID] if eos else [])

    def unknown(self, texts: str | Iterable[str]) -> UnknownTokens:
        """The tokens of ``texts`` (one string or many) that ``encode`` turns into <unk>, and how many tokens there are."""
        total, counts = 0, Counter()
        for text in [texts] if isinstance(texts, str) else texts:
            tokens = self.tokenize(text)
            total += len(tokens)
            counts.update(t for t in tokens if t not in self.stoi)
        return UnknownTokens(total, counts, self.level)

    def decode(self, ids: Iterable[int], skip_special: bool = True) -> str:
        """Text of ``ids``: characters joined directly, words with spaces (none before punctuation). With
        ``skip_special`` (the default) the special tokens are left out, <unk> among them: text of a word the
        vocabulary did not know loses it (``skip_special=False`` writes "<unk>" there)."""
        try:  # a str iterates too, and a 0-d array or tensor pretends to
            items = None if isinstance(ids, (str, bytes)) or getattr(ids, "ndim", None) == 0 else iter(ids)
        except TypeError:
            items = None
        if items is None:
            raise TypeError(f"decode: ids must be a sequence of ids (a list, or a 1-D array); got {type(ids).__name__} "
                            f"{ids!r:.40}: for one id, decode([i])")
        ids = [_token_id(i) for i in items]
        outside = next((i for i in ids if not 0 <= i < len(self.itos)), None)
        if outside is not None:  # a negative id would wrap around to the last tokens
            raise ValueError(f"decode: id {outside} is not in this vocabulary of {len(self.itos)} tokens (ids 0 to "
                             f"{len(self.itos) - 1}); decode with the vocabulary that encoded the ids")
        return self.join([self.itos[i] for i in ids if not (skip_special and i < len(SPECIALS))])

    def join(self, tokens: Iterable[str]) -> str:
        """Text of ``tokens``, known or not, as ``decode`` writes it: characters joined directly, words with
        spaces (none before punctuation).

        >>> Vocabulary(["hi"], level="word").join(["hi", ",", "you", "!"])
        'hi, you!'
        """
        if self.level == "char":
            return "".join(tokens)
        # A space before each token but punctuation; "<unk>", also starting with a non-word character, is a word here
        return "".join(token if i == 0 or _PUNCTUATION.fullmatch(token) else " " + token for i, token in enumerate(tokens))

    def to_dict(self) -> dict:
        data = {"level": self.level, "lower": self.lower, "tokens": self.itos[len(SPECIALS):]}
        if self.normalize:  # absent in a vocabulary saved before the option: it reads text as it is, and keeps its hash
            data["normalize"] = self.normalize
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Vocabulary:
        """The vocabulary ``to_dict`` gave; a ValueError when ``data`` is not such a dict."""
        problem = _not_a_vocabulary(data) or _saved_tokens_problem(data)
        if problem:
            raise ValueError(f"Vocabulary.from_dict: expected what Vocabulary.to_dict gives; {problem}")
        return cls(data["tokens"], data["level"], data.get("lower", False), data.get("normalize"))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the vocabulary as JSON (through a temporary file, so an interrupted save leaves the old one)."""
        data = json.dumps(self.to_dict(), ensure_ascii=False).encode("utf-8")
        return atomic_write(path, lambda file: file.write(data), op="Vocabulary.save", ours=_is_vocabulary_file,
                            kind="a vocabulary")

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        """The vocabulary ``save`` wrote to ``path``; a ValueError naming the file when it holds something else."""
        not_saved = f"Vocabulary.load: {path} is not a vocabulary that Vocabulary.save wrote"
        try:
            with open(path, encoding="utf-8") as file:
                data = json.load(file)
        except OSError:  # a folder: IsADirectoryError, or PermissionError on Windows
            if not Path(path).is_dir():
                raise
            raise ValueError(f"Vocabulary.load: {path} is a folder; give the .json file Vocabulary.save wrote (a training "
                             "run's is vocab.json in its checkpoint, which models.load_model(folder) loads with the model)") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as error:  # cut short, empty, binary
            raise ValueError(f"{not_saved}: it is not JSON text ({type(error).__name__}: {str(error)[:60]}); restore it "
                             "from a backup, or save it again") from None
        problem = _not_a_vocabulary(data) or _saved_tokens_problem(data)
        if problem:
            raise ValueError(f"{not_saved}; {problem}")
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as error:  # a token the constructor refuses: said of the file
            raise ValueError(f"{not_saved}; {error}") from None

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} tokens, level={self.level!r})"
