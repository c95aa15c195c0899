"""A data file's text: its encoding, byte-order marks and NUL bytes, each mistake named with its fix.

``decoded`` turns the bytes of a file given to ``train`` or ``eval`` into
text, or raises a TrainingError that says what the bytes look like (a binary
file, UTF-16 or UTF-32 text with or without its byte-order mark, text with a
few stray NULs) and what to pass or do instead. Nothing is replaced
silently: a byte the encoding cannot read stops the run.
"""
from __future__ import annotations

import codecs
import os
import re
import shlex
import sys
from pathlib import Path

import numpy as np

from .config import TrainingError


def decoded(raw: bytes, path: str | os.PathLike, encoding: str) -> str:
    """The text of ``raw``, the bytes of the data file ``path``, in ``encoding``, less one leading byte-order mark
    (U+FEFF: what utf-8 keeps of Notepad's UTF-8 mark, and utf-16-le of its own). A TrainingError names the fix
    for an unknown encoding, bytes it cannot decode, a byte-order mark or NUL bytes of UTF-16 or UTF-32 text it
    would read as other characters, and NUL characters, which text does not have."""
    try:
        codec = codecs.lookup(encoding).name
    except LookupError:
        raise TrainingError(f"unknown text encoding {encoding!r}; use one Python knows (utf-8, latin-1, cp1252, ...)") from None
    mark = _byte_order_mark(raw)
    if mark is not None and codec in ORDERED_ENCODINGS and codec != mark[0].lower():  # it decodes, to other characters
        raise TrainingError(f"data file {path} starts with the {mark[0]} byte-order mark, but --encoding {encoding} "
                            f"reads {codec.upper()} text: pass --encoding {mark[1]}, which reads the mark")
    try:
        text = raw.decode(codec).removeprefix("\ufeff")
    except UnicodeDecodeError as error:
        raise TrainingError(_undecodable(raw, path, encoding, error)) from None
    unmarked = None if mark is not None else _unmarked_encoding(raw)
    if unmarked is not None and codec.startswith(unmarked[:6]) and not _reads(codec, unmarked):  # UTF-16 (32), other order
        read_as = codec if codec in ORDERED_ENCODINGS else f"{codec}-{NATIVE_ORDER}"
        raise TrainingError(f"data file {path} has no byte-order mark, and its NUL bytes fall where {unmarked.upper()} "
                            f"text has them, but --encoding {encoding} reads it as {read_as.upper()}: "
                            f"pass --encoding {unmarked}")
    if "\x00" in text:  # what an encoding that takes any byte (latin-1) makes of a binary file, or of UTF-16 text
        raise TrainingError(_nul_characters(text, raw, path, encoding))
    return text


BYTE_ORDER_MARKS = (  # UTF-32's first: the UTF-32-LE mark starts with the UTF-16-LE one
    (codecs.BOM_UTF32_LE, "UTF-32-LE", "utf-32"), (codecs.BOM_UTF32_BE, "UTF-32-BE", "utf-32"),
    (codecs.BOM_UTF16_LE, "UTF-16-LE", "utf-16"), (codecs.BOM_UTF16_BE, "UTF-16-BE", "utf-16"),
)
"""The byte-order marks that start UTF-16 and UTF-32 text (whose every ASCII character holds NUL bytes): (bytes,
the mark's name, the --encoding that reads it)."""

ORDERED_ENCODINGS = ("utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
"""The codecs that read one byte order whatever the mark says (utf-16 and utf-32 read the mark)."""

NATIVE_ORDER = "le" if sys.byteorder == "little" else "be"
"""The byte order in which utf-16 and utf-32 read text that has no byte-order mark: the machine's."""


def _byte_order_mark(raw: bytes) -> tuple[str, str] | None:
    """(name, encoding) of the UTF-16 or UTF-32 byte-order mark ``raw`` starts with, or None."""
    return next(((name, encoding) for mark, name, encoding in BYTE_ORDER_MARKS if raw.startswith(mark)), None)


def _reads(codec: str, wide: str) -> bool:
    """Whether the codec ``codec`` reads text of the UTF-16 or UTF-32 encoding ``wide`` (say "utf-16-le") that has
    no byte-order mark."""
    return codec in (wide, wide.removesuffix(f"-{NATIVE_ORDER}"))


def _unmarked_encoding(raw: bytes) -> str | None:
    """The UTF-16 or UTF-32 encoding (say "utf-16-le") whose text, without a byte-order mark, has its NUL bytes
    where the first 64 KiB of ``raw`` has them; None when they look like no such text (a binary file, a few NULs
    in UTF-8 text, none at all).

    Each ASCII character of UTF-16-LE text is a byte and a NUL ("h\\0"), so
    most odd bytes are NUL and no even one (the other way round in UTF-16-BE);
    other letters have no NUL byte, but a text's spaces and newlines still
    make a tenth of the odd bytes NUL. In UTF-32-LE text the last two bytes of
    each four are NUL. Binary data has its NULs anywhere; a few NULs in a short
    file are too few to tell.
    """
    head = np.frombuffer(raw, np.uint8, count=min(len(raw), 65_536) // 4 * 4).reshape(-1, 4)  # groups of four bytes
    nuls, groups = (head == 0).sum(axis=0), len(head)  # the NUL bytes at each place in a group
    if not groups:
        return None
    if min(nuls[2], nuls[3]) > 0.9 * groups and nuls[0] < 0.1 * groups:
        return "utf-32-le"
    if min(nuls[0], nuls[1]) > 0.9 * groups and nuls[3] < 0.1 * groups:
        return "utf-32-be"
    odd, even = nuls[1] + nuls[3], nuls[0] + nuls[2]  # of 2 * groups bytes each

    def of_characters(own: int, other: int) -> bool:  # most bytes of one parity, or a tenth and more than a stray few
        return (own > groups or own >= max(16, 0.2 * groups)) and other <= own / 10

    if of_characters(odd, even):
        return "utf-16-le"
    if of_characters(even, odd):
        return "utf-16-be"
    return _few_nul_utf_16(raw)


NOT_IN_TEXT = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f\ue000-\uf8ff]")
"""Characters that text hardly has, and that bytes which are no UTF-16 read as UTF-16 give: controls, private use."""


def _few_nul_utf_16(raw: bytes) -> str | None:
    """"utf-16-le" or "utf-16-be" for UTF-16 text without a mark whose characters hold few NUL bytes (Chinese or
    Japanese: only its newlines and ASCII punctuation do): bytes with NULs that are not UTF-8 and read as UTF-16
    of that byte order without a control or private-use character. None otherwise."""
    head = raw[: min(len(raw), 65_536) // 2 * 2]
    if b"\x00" not in head:
        return None
    try:
        head.decode("utf-8")
        return None  # UTF-8 text with a stray NUL
    except UnicodeDecodeError:
        pass
    for guess in ("utf-16-le", "utf-16-be"):
        try:  # the 64 KiB may end inside a surrogate pair
            text = (head if len(head) == len(raw) else head[:-2]).decode(guess)
        except UnicodeDecodeError:
            continue
        if text and not NOT_IN_TEXT.search(text):
            return guess
    return None


def _undecodable(raw: bytes, path: str | os.PathLike, encoding: str, error: UnicodeDecodeError) -> str:
    """The message for bytes ``encoding`` cannot decode: the byte and where it is, and the likely fix."""
    line = raw.count(b"\n", 0, error.start) + 1
    where = f"byte {raw[error.start]:#04x} at offset {error.start} (line {line})"
    invalid = f"data file {path} is not valid {encoding}: {where} {error.reason}"
    if _byte_order_mark(raw) is not None:  # UTF-16 or UTF-32 text: its NUL bytes are no sign of binary
        return f"{invalid}; {_marked_fix(raw, encoding)}"
    if b"\x00" not in raw[:65_536]:
        return f"{invalid}; pass the file's encoding, e.g. --encoding latin-1 or --encoding cp1252"
    unmarked = _unmarked_encoding(raw)
    if unmarked is None:  # no text encoding helps a binary file
        return (f"data file {path} looks like a binary file, not text: it holds NUL bytes, and {where} is not valid "
                f"{encoding}; give a text file")
    if _reads(codecs.lookup(encoding).name, unmarked):
        return (f"{invalid}; its NUL bytes fall where {unmarked.upper()} text has them, but it is not {unmarked.upper()} "
                "text throughout: write the file again")
    return (f"{invalid}; its NUL bytes fall where {unmarked.upper()} text without a byte-order mark has them: "
            f"pass --encoding {unmarked}")


def _marked_fix(raw: bytes, encoding: str) -> str:
    """The fix for bytes that start with a byte-order mark and that ``encoding`` cannot read: the encoding the mark
    names, or, when that is the encoding given, a file damaged past its mark."""
    name, wide = _byte_order_mark(raw)
    if codecs.lookup(encoding).name in (wide, name.lower()):
        return f"it starts with the {name} byte-order mark, but is not {name} text past it: write the file again"
    return f"it starts with the {name} byte-order mark: pass --encoding {wide}"


CONTROL_CHARACTERS = re.compile("[\x01-\x08\x0e-\x1a\x1c-\x1f\x7f]")
"""Characters that text hardly has and binary data has plenty of: C0 controls and DEL, less the white space
(tab, newlines, form feed) and ESC (terminal colours)."""


def _nul_characters(text: str, raw: bytes, path: str | os.PathLike, encoding: str) -> str:
    """The message for decoded text that holds NUL characters: how many and where, and the likely fix: the
    encoding its byte-order mark or the place of its NUL bytes names, a text file for a binary one, else to
    remove them."""
    first, count = text.find("\x00"), text.count("\x00")
    where = f"character {first:,}, line {text.count(chr(10), 0, first) + 1}"
    nuls = "a NUL character" if count == 1 else f"{count:,} NUL characters"
    found = (f"data file {path} read as {encoding} holds {nuls} ('\\x00'), which text does not have "
             f"({'at' if count == 1 else 'the first at'} {where})")
    codec = codecs.lookup(encoding).name
    mark = _byte_order_mark(raw)
    if mark is not None and codec not in (mark[1], mark[0].lower()):
        return f"{found}; {_marked_fix(raw, encoding)}"
    unmarked = None if mark is not None else _unmarked_encoding(raw)
    if unmarked is not None and not _reads(codec, unmarked):
        return (f"{found}; they fall where {unmarked.upper()} text without a byte-order mark has them: "
                f"pass --encoding {unmarked}")
    sample = text[:65_536]
    if len(CONTROL_CHARACTERS.findall(sample)) >= max(1, len(sample) // 100):
        return f"{found}, and other control characters: it looks like a binary file; give a text file"
    them = "them" if count > 1 else "it"
    source = Path(path)
    given, clean = shlex.quote(str(source)), shlex.quote(str(source.with_name(f"{source.stem}-clean{source.suffix}")))
    if "\x00".encode(codec) == b"\x00":  # each NUL character is one NUL byte, which tr removes
        return f"{found}; remove {them}, e.g. tr -d '\\000' < {given} > {clean}"
    name = codec.upper().replace("-LE", "LE").replace("-BE", "BE")  # iconv's name: UTF-16LE
    return (f"{found}; remove {them}: tr alone would also cut the NUL bytes of {name}'s other characters, so convert "
            f"the text to UTF-8 first, e.g. iconv -f {name} -t UTF-8 {given} | tr -d '\\000' > {clean}, and pass "
            "--encoding utf-8")
