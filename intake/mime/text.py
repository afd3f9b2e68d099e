"""Text of unknown or lying charsets: guessing an 8-bit charset, undoing surrogate escapes, cleaning
and fitting values to the ledger's column limits.
"""

from __future__ import annotations

import codecs
import contextlib
import hashlib
import re
import unicodedata
from email.message import Message

from intake.mime.types import _CONTROL_RE, _CRLF_RE, MAX_HEADER_CHARS

# ---------------------------------------------------------------------------
# Headers.


#: Charsets tried for 8-bit text that is not UTF-8 and declares no charset,
#: for the languages the agencies see: Baltic (lv, lt, et), Western (it, de,
#: fr), Cyrillic (ru) in its two common forms. A tie goes to the first.
EIGHT_BIT_CHARSETS = ("cp1257", "cp1252", "cp1251", "koi8_r")
#: The letters beyond ASCII that each language of these charsets writes;
#: Russian's are weighed by frequency (the common ones first).
_LETTERS = {
    "lv": ("āčēģīķļņšūž", ""),
    "lt": ("ąčęėįšųūž", ""),
    "et": ("õäöüšž", ""),
    "it": ("àèéìòù", ""),
    "de": ("äöüß", ""),
    "fr": ("àâçéèêëîïôùûüœ", ""),
    "ru": ("оеаинтсрвлкмдпу", "яыьгзбчйхжшюцщэфъё"),
}
_LANGUAGES = {"cp1257": ("lv", "lt", "et"), "cp1252": ("it", "de", "fr"),
              "cp1251": ("ru",), "koi8_r": ("ru",)}
#: Punctuation that 8-bit text carries without being a sign of a wrong guess.
_NEUTRAL = "«»–—„“”‘’‚€…•\xa0°§"
#: At most this much 8-bit text is weighed (the guess is linear in it).
_SAMPLE_BYTES = 8192


def _score(text: str, language: str) -> float:
    """How much ``text`` looks like ``language`` (higher is likelier)."""
    common, rare = _LETTERS[language]
    score = 0.0
    for i, ch in enumerate(text):
        if ch.isascii():
            continue
        low = ch.lower()
        if not ch.isalpha():
            score += 0.0 if ch in _NEUTRAL else -3.0
            continue
        score += 3.0 if low in common else 1.0 if low in rare else 0.0
        # Most text is lower case.
        score += 0.5 if ch.islower() else 0.0
        # A Cyrillic letter inside a word of Latin letters is a wrong guess.
        cyrillic = "CYRILLIC" in unicodedata.name(ch, "")
        near = text[max(i - 1, 0):i] + text[i + 1:i + 2]
        if cyrillic and any(c.isascii() and c.isalpha() for c in near):
            score -= 4.0
    return score


def guess_charset(sample: bytes, hint: str | None = None) -> str:
    """The charset of 8-bit text that is not UTF-8 and declares none.

    ``hint`` is the charset the message declares for its body: mail clients
    write raw 8-bit headers in the body's charset, so a hint that decodes the
    bytes wins. Otherwise each of :data:`EIGHT_BIT_CHARSETS` decodes the
    sample and the likeliest text wins; Latin-1 is the last resort.
    charset-normalizer was measured on such header-sized text (a KOI8-R
    "тест тест", a windows-1257 "Pārvaldnieks") and guessed cp932, cp1006 or
    cp1250: too little text for a general detector.
    """
    sample = sample[:_SAMPLE_BYTES]
    if hint:
        try:
            codec = codecs.lookup(hint).name
        except LookupError:
            codec = ""
        if codec and codec not in ("ascii", "utf-8"):
            try:
                sample.decode(codec)
                return codec
            except UnicodeDecodeError:
                pass
    best, best_score = "latin-1", float("-inf")
    for charset in EIGHT_BIT_CHARSETS:
        try:
            text = sample.decode(charset)
        except UnicodeDecodeError:
            continue
        score = max(_score(text, language) for language in _LANGUAGES[charset])
        if score > best_score:
            best, best_score = charset, score
    return best


#: The surrogate escapes that stand for 8-bit bytes of a header (or a file name).
_SURROGATE_RE = re.compile("[\udc80-\udcff]")


def _surrogated(value: str) -> bool:
    return _SURROGATE_RE.search(value) is not None


def _unsurrogate(value: str, charset: str = "latin-1") -> tuple[str, bool]:
    """Undo surrogateescape of 8-bit header bytes: UTF-8 if valid, else ``charset``.

    The flag is true for bytes that are not UTF-8 (RFC 6532 allows UTF-8).
    """
    if not _surrogated(value):
        return value, False
    raw = value.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode(charset, errors="replace"), True


def _not_utf8(value: str) -> bytes:
    """The 8-bit bytes of a surrogate-escaped value that are not UTF-8 (else b"")."""
    if not _surrogated(value):
        return b""
    raw = value.encode("utf-8", "surrogateescape")
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw
    return b""


def _declared_charset(msg: Message) -> str | None:
    """The first charset the message declares: its own, else its first text part's."""
    for index, part in enumerate(msg.walk()):
        if index > 50:
            break
        with contextlib.suppress(Exception):
            charset = part.get_content_charset()
            if charset:
                return str(charset)
    return None


def _undeclared_body_sample(msg: Message) -> bytes:
    """8-bit bytes of the first text part that declares no charset (for the guess)."""
    for index, part in enumerate(msg.walk()):
        if index > 50:
            break
        with contextlib.suppress(Exception):
            if part.is_multipart() or part.get_content_maintype() != "text":
                continue
            if part.get_content_charset():
                return b""
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                return data[:_SAMPLE_BYTES]
            return b""
    return b""


def _eight_bit_charset(msg: Message, header_bytes: bytes) -> str:
    """The charset for the message's 8-bit text that is not UTF-8."""
    sample = header_bytes + b"\n" + _undeclared_body_sample(msg)
    return guess_charset(sample, hint=_declared_charset(msg))


def _clean(text: str) -> str:
    """One line of text: CR/LF runs become a space, other controls go."""
    return _CONTROL_RE.sub("", _CRLF_RE.sub(" ", text)).strip()


def fit(value: str, limit: int) -> str:
    """``value`` if it has at most ``limit`` (> 40) characters, else a prefix and a hash.

    Over-long values from mail (a Message-ID over 998 characters, a sender
    over 320) are stored and compared in this form: the same value always
    gives the same result, two different ones (almost surely) differ, and
    the prefix still shows what arrived.
    """
    if len(value) <= limit:
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    tail = "~" + digest + (">" if value.endswith(">") else "")
    return value[: limit - len(tail)] + tail


def _bounded(value: str) -> str:
    """A header value cut to what the structured parser is given."""
    return value[:MAX_HEADER_CHARS]
