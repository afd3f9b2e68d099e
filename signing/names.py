"""Organisation names compared as a person would compare them.

A CSR tool, a form and the organisation registry rarely write one name the
same way: ``SIA Ziemelu Parvaldnieks`` (no diacritics, as many CSR tools
write), ``SIA „Ziemeļu Pārvaldnieks”`` (Latvian quotes), ``sia ziemeļu
pārvaldnieks`` and ``SIA ZiemeÄ¼u PÄrvaldnieks`` (UTF-8 read as Latin-1, as
``openssl req`` writes without ``-utf8``) are all the same organisation to a
person. :func:`same_organisation` is the one comparison every part of pasts
uses (CSR against form, form against registry); what is *issued* never comes
from the compared text, so the loose comparison loosens nothing in a
certificate.

This module is a leaf (standard library only), so that ``signing`` and
``rules`` can both use it.
"""

from __future__ import annotations

import unicodedata

# Letters that carry their mark in the letter itself and so survive the
# removal of combining marks; a person reads them as these plain letters.
_PLAIN_LETTERS = str.maketrans({
    "ł": "l", "Ł": "l", "ø": "o", "Ø": "o", "đ": "d", "Đ": "d", "ħ": "h", "Ħ": "h",
    "ı": "i", "ŀ": "l", "Ŀ": "l", "æ": "ae", "Æ": "ae", "œ": "oe", "Œ": "oe",
    "þ": "th", "Þ": "th", "ð": "d", "Ð": "d",
})
# Quotation marks of every style the agency sees; ignored wherever they stand.
_QUOTES = frozenset("\"'`´«»‹›„“”‟‘’‚‛″‶〝〞＂＇")
# A name longer than this is not an organisation name; it is cut before the
# work below, so hostile input costs linear time at most.
_MAX_LENGTH = 1000


def _byte_of(char: str) -> int | None:
    """The byte a Latin-1 or windows-1252 reading turned into ``char``, if any."""
    code = ord(char)
    if code < 0x100:
        return code
    try:
        encoded = char.encode("cp1252")
    except UnicodeEncodeError:
        return None
    return encoded[0] if len(encoded) == 1 else None


def repair_mojibake(value: str) -> str:
    """Undo UTF-8 that was read as Latin-1 (or windows-1252), up to twice.

    ``ZiemeÄ¼u`` becomes ``Ziemeļu``. Text that does not turn into valid UTF-8
    when read back as bytes is left alone, so a genuine ``Ä`` stays.
    """
    for _ in range(2):
        if all(ord(c) < 0x80 for c in value):
            return value
        raw = [_byte_of(c) for c in value]
        if any(b is None for b in raw):
            return value
        try:
            repaired = bytes(b for b in raw if b is not None).decode("utf-8")
        except UnicodeDecodeError:
            return value
        if repaired == value:
            return value
        value = repaired
    return value


def organisation_key(name: str) -> str:
    """The form of ``name`` two names are compared in (see :func:`same_organisation`)."""
    text = repair_mojibake(name[:_MAX_LENGTH])
    text = unicodedata.normalize("NFKC", text).translate(_PLAIN_LETTERS)
    # Diacritics: decompose and drop the combining marks.
    text = "".join(
        c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
    )
    text = "".join(" " if c in _QUOTES else c for c in text)
    return " ".join(text.casefold().split())


def same_organisation(a: str, b: str) -> bool:
    """Whether two organisation names name the same organisation to a person.

    Compared Unicode-normalised (NFKC), case- and whitespace-insensitive, with
    diacritics and quotation marks ignored and UTF-8 read as Latin-1 repaired.
    Two names that are empty after that are never the same.
    """
    key = organisation_key(a)
    return bool(key) and key == organisation_key(b)
