"""MIME parsing: raw bytes in, a :class:`ParsedMail` out.

Needs no connection, never raises on bad input: problems are recorded in
``ParsedMail.defects``.

How parts are found, whatever the mail client:

* The tree is walked in document order. ``multipart/alternative`` gives the
  body from its text/plain branch (else its HTML branch); attachments are
  collected from every branch, so Outlook's mixed > alternative > related
  nesting and Apple Mail's inline PDFs between text parts are all found.
* A leaf part is an attachment when it has a file name, a
  ``Content-Disposition: attachment``, or a non-text type; other text parts
  are the body (Apple Mail's text parts around an inline PDF are joined).
* Kinds are sniffed from content first (``%PDF-`` in the first 1024 bytes,
  a PEM CSR, a ZIP with an ASiC ``mimetype`` entry), then from the file name
  and the declared type (``.p7s``, DER CSRs named ``.csr/.req/.p10/.der``).
* Forwarded mail (``message/rfc822``) is walked too, but its attachments
  rank after the outer message's own: ``form``, ``csr``, ``p7s`` and
  ``asice`` are the first of their kind at the outermost level that has
  one. An applicant who forwards an earlier mail with the form is served;
  one who also attaches a fresh form gets the fresh one read.
  :attr:`Attachment.depth` tells which level a part came from.
* S/MIME ``multipart/signed``: :attr:`ParsedMail.smime` is the first part's
  exact bytes as sent (headers included, line ends made CRLF as RFC 5751
  requires) and the signature DER; the signature part is not listed among
  the attachments. Opaque ``application/pkcs7-mime`` is kept as an
  ``other`` attachment with a defect: pasts does not unwrap it.
"""

from __future__ import annotations

import codecs
import contextlib
import email
import email.policy
import functools
import hashlib
import re
import unicodedata
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.header import decode_header, make_header
from email.message import Message
from email.policy import EmailPolicy
from email.utils import getaddresses, parsedate_to_datetime
from io import BytesIO
from typing import Any, Literal

from intake.addresses import is_usable

AttachmentKind = Literal["form", "csr", "p7s", "asice", "other"]

ASIC_EXTENSIONS = (".asice", ".asics", ".edoc", ".sce", ".bdoc")
DER_CSR_EXTENSIONS = (".csr", ".req", ".p10", ".der")
P7S_TYPES = ("application/pkcs7-signature", "application/x-pkcs7-signature")
P7M_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")

_MAX_DEPTH = 40
#: MIME parts looked at in one mail; the rest are ignored (with a defect).
#: Reading a part's headers costs about 0.3 ms, and no form needs so many.
MAX_PARTS = 1000
#: PEM CSR armour lines. Blocks are found with ``bytes.find`` (linear): a
#: lazy regex from every BEGIN to an END that never comes is quadratic.
_PEM_BEGIN = b"-----BEGIN "
_PEM_LABELS = (b"CERTIFICATE REQUEST-----", b"NEW CERTIFICATE REQUEST-----")
_PEM_ENDS = (b"-----END CERTIFICATE REQUEST-----", b"-----END NEW CERTIFICATE REQUEST-----")
#: The structured parse of one header (RFC 2047 words, address lists) sees at
#: most this many characters: the stdlib parser's time and memory grow faster
#: than linearly in them (many encoded words: 224 KB took 1.75 GB).
MAX_HEADER_CHARS = 8192
#: An HTML body is converted to text up to this many characters.
MAX_HTML_CHARS = 2 * 1024 * 1024
#: Longest Message-ID kept as sent (RFC 5322's line limit); a longer one is
#: shortened with a hash of it (:func:`fit`), as is an over-long sender.
MAX_MESSAGE_ID_CHARS = 998
MAX_SENDER_CHARS = 320
_MSGID_RE = re.compile(r"<[^<>\s]+>")
_CRLF_RE = re.compile(r"[\r\n]+")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: Local parts of the senders of delivery reports (plain-text bounces included).
_BAD_MAILER_LOCALS = ("mailer-daemon", "mailer_daemon", "mailerdaemon", "postmaster",
                      "post_master")


@dataclass(frozen=True)
class Attachment:
    #: Decoded file name (RFC 2231 / RFC 2047 decoded), or None.
    filename: str | None
    #: Lower-case content type as sent (e.g. "application/octet-stream").
    content_type: str
    #: What pasts recognised it as, by content sniffing first, then name/type.
    kind: AttachmentKind
    data: bytes = field(repr=False)
    #: 0 for the mail's own parts, 1+ inside forwarded message/rfc822 parts.
    depth: int = 0
    #: The decoded size of a part over the attachment limit, whose data was not kept.
    dropped_size: int | None = None
    #: The part lies inside the content covered by the mail's S/MIME signature.
    in_smime: bool = False


@dataclass(frozen=True)
class ParsedMail:
    #: Message-ID with angle brackets, e.g. "<abc@host>", or None.
    message_id: str | None
    #: Lower-cased addr-spec of From (or "" if unparseable).
    from_addr: str
    from_name: str
    #: Lower-cased addr-spec of Reply-To if present.
    reply_to: str | None
    #: Where replies go: reply_to or from_addr.
    subject: str
    date: datetime | None
    in_reply_to: str | None
    #: References message-ids in order (angle brackets kept).
    references: tuple[str, ...]
    #: Auto-Submitted present and not "no" (RFC 3834).
    auto_submitted: bool
    #: Precedence bulk/junk/list, or a list header (List-Id, List-Unsubscribe,
    #: List-Subscribe, List-Help, List-Post, Mailing-List, X-ML-Name, ...).
    bulk: bool
    #: A report of any kind (multipart/report: DSN, ARF, MDN), an empty Return-Path
    #: (<>), or from MAILER-DAEMON/postmaster/post_master.
    bounce: bool
    #: The text of the mail (text/plain preferred, else HTML stripped to text).
    body_text: str
    attachments: tuple[Attachment, ...]
    #: The first PDF attachment (the form), if any.
    form: Attachment | None
    #: The CSR (attachment, or PEM pasted inline in the body), DER or PEM bytes.
    csr: bytes | None
    #: Detached CMS signature (.p7s) attachment bytes, if any.
    p7s: Attachment | None
    #: ASiC-E container (.asice/.edoc/.sce/.bdoc), if any.
    asice: Attachment | None
    #: For multipart/signed S/MIME: (signed content bytes as sent, signature DER).
    smime: tuple[bytes, bytes] | None
    #: Parser defects and limit violations, human-readable.
    defects: tuple[str, ...] = ()
    #: The size of a message over the message limit: only its header was read.
    oversized: int | None = None
    #: Why the mail is itself automatic beyond the three flags above (a vacation
    #: reply, a PEC receipt), never answered; None if there is no such sign.
    automatic: str | None = None
    #: Why the mail looks automatic or asks for no automatic answer (an
    #: out-of-office subject, X-Auto-Response-Suppress, a no-reply sender):
    #: weaker signs, which a form, a container or a CSR in the mail outweighs.
    no_auto_reply: str | None = None
    #: A PEC receipt's kind (X-Ricevuta, e.g. "avvenuta-consegna") and the
    #: Message-ID it is about (X-Riferimento-Message-ID), if this is one.
    pec_receipt: tuple[str, str | None] | None = None

    @property
    def carries_form(self) -> bool:
        """A form arrived: a PDF, or an ASiC-E container that should hold one."""
        return self.form is not None or self.asice is not None

    @property
    def reply_address(self) -> str:
        return self.reply_to or self.from_addr

    @property
    def no_reply_reason(self) -> str | None:
        """Why this mail must never be auto-answered (None = may answer).

        This is the one place that decides it (SPEC section 5: no reply to
        mail that is itself automatic). Firm signs (RFC 3834 Auto-Submitted,
        list and bulk headers, reports and bounces, vacation replies, PEC
        receipts) always win. Weaker signs (an out-of-office subject,
        X-Auto-Response-Suppress, a no-reply address) count only when the
        mail carries nothing to judge: every mail with a form, a container
        or a CSR is answered (SPEC section 5, "No application is left
        unanswered"), and Outlook sets X-Auto-Response-Suppress on some
        mail that people write.
        """
        if self.auto_submitted:
            return "auto-submitted"
        if self.bulk:
            return "bulk or list mail"
        if self.bounce:
            return "bounce or delivery report"
        if self.automatic:
            return self.automatic
        if not self.reply_address:
            return "no sender address"
        submits = self.carries_form or self.csr is not None or self.oversized is not None
        if self.no_auto_reply and not submits:
            return self.no_auto_reply
        return None


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


class _BoundedPolicy(EmailPolicy):
    """``email.policy.default`` whose header parse sees at most :data:`MAX_HEADER_CHARS`.

    Every header the stdlib reads for us (Content-Type, Content-Disposition,
    Content-Transfer-Encoding of every part) goes through ``header_fetch_parse``.
    """

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if not isinstance(value, str):
            return super().header_fetch_parse(name, value)
        return _fetch_parse(name, value[:MAX_HEADER_CHARS])


@functools.lru_cache(maxsize=1024)
def _fetch_parse(name: str, value: str) -> Any:
    """The default policy's parse of one header, remembered: the stdlib reads each
    part's Content-Type five times while it splits the mail, and parts repeat them."""
    return email.policy.default.header_fetch_parse(name, value)


POLICY = _BoundedPolicy()


class _Headers:
    """Defensive header access: the default policy first, compat32 decoding after."""

    def __init__(self, msg: Message, defects: list[str]):
        self.raw: list[tuple[str, str]] = []
        self.defects = defects
        try:
            items = list(msg.raw_items()) if hasattr(msg, "raw_items") else list(msg.items())
        except Exception as exc:  # A broken header list must not stop the parse.
            defects.append(f"header list unreadable: {exc}")
            items = []
        # Undeclared 8-bit headers that are not UTF-8 are read in one charset,
        # guessed from all of them together (and the body's declared charset).
        eight_bit = b"\n".join(b for b in (_not_utf8(str(v)) for _, v in items) if b)
        #: The charset undeclared 8-bit text of this message is read in (None:
        #: the headers are UTF-8 or ASCII, and each body part is guessed alone).
        self.charset = _eight_bit_charset(msg, eight_bit) if eight_bit else None
        for name, value in items:
            text, was_8bit = _unsurrogate(str(value), self.charset or "latin-1")
            if was_8bit:
                defects.append(f"header {name} has 8-bit bytes that are not UTF-8 "
                               f"(read as {self.charset})")
            self.raw.append((str(name), text))

    def raw_all(self, name: str) -> list[str]:
        lower = name.lower()
        return [v for n, v in self.raw if n.lower() == lower]

    def raw_first(self, name: str) -> str | None:
        values = self.raw_all(name)
        return values[0] if values else None

    def parsed(self, name: str) -> Any:
        """The first header ``name`` parsed by the default policy, or None."""
        raw = self.raw_first(name)
        if raw is None:
            return None
        try:
            return POLICY.header_fetch_parse(name, _bounded(raw))
        except Exception:
            return None

    def text(self, name: str) -> str | None:
        """The first header ``name`` as decoded text (RFC 2047), unfolded."""
        raw = self.raw_first(name)
        if raw is None:
            return None
        parsed = self.parsed(name)
        if parsed is not None:
            return str(parsed)
        unfolded = re.sub(r"\r?\n(?=[ \t])", "", _bounded(raw))
        try:
            return str(make_header(decode_header(unfolded)))
        except Exception:
            self.defects.append(f"header {name} could not be decoded")
            return unfolded


def _looks_like_addr(addr: str) -> bool:
    """One token with one @: what a sender wrote as an address, usable or not."""
    if not addr or any(c in addr for c in '\r\n \t<>,;"') or addr.count("@") != 1:
        return False
    local, _, domain = addr.partition("@")
    return bool(local) and bool(domain)


def _addresses(headers: _Headers, name: str) -> list[tuple[str, str]]:
    """(display name, addr-spec) pairs of header ``name``, parsed defensively."""
    parsed = headers.parsed(name)
    pairs: list[tuple[str, str]] = []
    for address in getattr(parsed, "addresses", ()) or ():
        try:
            pairs.append((str(address.display_name or ""), str(address.addr_spec or "")))
        except Exception:
            continue
    if not pairs:
        raw = headers.raw_first(name)
        if raw is not None:
            try:
                decoded = str(make_header(decode_header(
                    re.sub(r"\r?\n(?=[ \t])", "", _bounded(raw)))))
            except Exception:
                decoded = _bounded(raw)
            pairs = [(n, a) for n, a in getaddresses([decoded]) if a]
    return pairs


def _address(headers: _Headers, name: str, defects: list[str], *,
             keep_unusable: bool = True) -> tuple[str, str] | None:
    """The first usable (display name, lower-cased addr-spec) of header ``name``.

    Usable is :func:`intake.addresses.usable_address`, the one definition the
    composer applies too. When no address is usable, the first that looks
    like one is kept all the same (with a defect) if ``keep_unusable``, so
    that the application records who sent it and that they cannot be
    answered (SPEC section 5).
    """
    if headers.raw_first(name) is None:
        return None
    pairs = [(n, a.strip().lower()) for n, a in _addresses(headers, name)]
    usable = [(n, a) for n, a in pairs if is_usable(a)]
    if len(pairs) > 1:
        defects.append(f"{name} has {len(pairs)} addresses; the first valid one is used")
    if not usable:
        kept = [(n, a) for n, a in pairs if _looks_like_addr(a)] if keep_unusable else []
        if not kept:
            defects.append(f"{name} has no valid address")
            return None
        display, addr = kept[0]
        defects.append(f"{name} address cannot be written to: {_clean(addr)[:100]}")
        return _clean(display), fit(addr, MAX_SENDER_CHARS)
    if len(usable) < len(pairs) and len(pairs) == 1:
        defects.append(f"{name} address is invalid")
    display, addr = usable[0]
    return _clean(display), addr


def _msg_ids(value: str | None) -> list[str]:
    """The msg-ids in a header value; an over-long one in its :func:`fit` form."""
    return [fit(m, MAX_MESSAGE_ID_CHARS) for m in _MSGID_RE.findall(value or "")]


# ---------------------------------------------------------------------------
# Automatic mail (SPEC section 5: no reply to mail that is itself automatic).

#: Headers that only list and list-manager software writes: RFC 2369 and
#: RFC 2919, ezmlm's Mailing-List, fml's X-ML-Name, SmartList's X-Mailing-List.
_LIST_HEADERS = (
    "List-Id", "List-Unsubscribe", "List-Subscribe", "List-Help", "List-Post", "List-Owner",
    "List-Archive", "Mailing-List", "X-ML-Name", "X-Mailing-List",
)
#: X-Auto-Response-Suppress values ([MS-OXCMAIL] 2.2.3.2.20) that ask for no
#: automatic answer: everything, out-of-office and auto replies, delivery and
#: read receipts.
_SUPPRESS = frozenset({"all", "oof", "autoreply", "dr", "ndr", "rn", "nrn"})
#: Body parts that only reports carry (RFC 3464 DSN, RFC 5965 ARF, RFC 8098 MDN
#: and their RFC 6533 forms).
REPORT_TYPES = (
    "message/delivery-status", "message/global-delivery-status", "message/feedback-report",
    "message/disposition-notification", "message/global-disposition-notification",
)
#: Out-of-office and automatic-reply subjects in the languages the agencies
#: see (lv, en, it, de, ru, fr, et, lt), as clients write them at the start of
#: the subject, followed by a colon, a bracket or nothing ("Out of Office
#: AutoReply:" joins two). Lotus Notes writes "AUTO:", RFC 3834 suggests "Auto:".
_OOF_PHRASES = (
    # English.
    r"out of (?:the )?office", r"automatic reply", r"auto[- ]?reply", r"auto[- ]?respon[sd]e?",
    r"automatic response", r"autoresponder", r"vacation(?: reply| response| notice)?",
    r"away from (?:the )?office", r"on vacation", r"on holiday", r"auto",
    # Latvian.
    r"autom[aā]tisk[aā] atbilde", r"promb[uū]tn[eē]", r"[aā]rpus biroja",
    r"atva[lļ]in[aā]jum[aā]",
    # Italian.
    r"risposta automatica", r"fuori (?:sede|ufficio)", r"assente(?: dall'ufficio)?",
    r"in ferie",
    # German.
    r"automatische antwort", r"abwesenheitsnotiz", r"abwesenheit(?:snotiz)?", r"abwesend",
    r"au(?:ß|ss)er haus", r"nicht im b[üu]ro",
    # Russian.
    r"автоматический ответ", r"автоответ", r"нет на месте", r"вне офиса", r"в отпуске",
    r"отсутствую", r"отсутствие",
    # French.
    r"r[ée]ponse automatique", r"absen(?:t|te|ce) du bureau", r"message d'absence",
    r"absent(?:e)?", r"en cong[ée]s?",
    # Estonian.
    r"automaatne vastus", r"kontorist v[äa]ljas", r"puhkusel", r"eemal",
    # Lithuanian.
    r"automatinis atsakymas", r"ne biure", r"n[ėe]ra biure", r"atostogose", r"atostogos",
)
_OOF_PHRASE = "(?:" + "|".join(_OOF_PHRASES) + ")"
_OOF_SUBJECT_RE = re.compile(
    r"^\s*[\[(]?\s*" + _OOF_PHRASE + r"(?:\s+" + _OOF_PHRASE + r")?\s*[\])]?\s*(?::|$)"
    r"|\b(?:is|am) out of (?:the )?office\b",
    re.IGNORECASE,
)
#: No-reply sender local parts: no-reply, noreply, do-not-reply, donotreply, ...
_NOREPLY_RE = re.compile(r"^(?:no|do[-_.]?not|dont)[-_.]?reply(?:$|[-_.+])", re.IGNORECASE)


def _is_list_mail(headers: _Headers) -> bool:
    return any(headers.raw_first(name) is not None for name in _LIST_HEADERS)


def _automatic(headers: _Headers) -> str | None:
    """A firm sign, besides Auto-Submitted, lists and reports, that a program wrote the mail."""
    apple = (headers.raw_first("X-Apple-Action") or "").strip().upper()
    if apple == "VACATION":
        return "vacation reply (X-Apple-Action: VACATION)"
    receipt = headers.raw_first("X-Ricevuta")
    if receipt is not None:
        return f"PEC receipt (X-Ricevuta: {_clean(receipt)[:40]})"
    if (headers.raw_first("X-Trasporto") or "").strip().lower() == "errore":
        return "PEC error notice (X-Trasporto: errore)"
    return None


def _pec_receipt(headers: _Headers) -> tuple[str, str | None] | None:
    """(kind, Message-ID it is about) of a PEC receipt, or None."""
    kind = headers.raw_first("X-Ricevuta")
    if kind is None:
        return None
    about = next(iter(_msg_ids(headers.raw_first("X-Riferimento-Message-ID"))), None)
    return _clean(kind)[:40].lower(), about


def _no_auto_reply(headers: _Headers, subject: str, reply_address: str) -> str | None:
    """A weaker sign that the mail is automatic or wants no automatic answer."""
    suppress = headers.raw_first("X-Auto-Response-Suppress")
    if suppress is not None:
        values = {v.strip().lower() for v in re.split(r"[,;\s]+", suppress) if v.strip()}
        asked = sorted(values & _SUPPRESS)
        if asked:
            return f"automatic answers suppressed (X-Auto-Response-Suppress: {', '.join(asked)})"
    # Whitespace runs collapsed and the length cut first: the pattern then
    # runs in bounded time whatever the subject.
    if _OOF_SUBJECT_RE.search(" ".join(subject[:2000].split())[:200]):
        return "out-of-office or automatic reply (subject)"
    if _NOREPLY_RE.match(reply_address.partition("@")[0]):
        return "no-reply sender address"
    return None


# ---------------------------------------------------------------------------
# Bodies.


#: Elements whose text is no part of what the mail says.
_HTML_SKIP = frozenset(["script", "style", "head", "title"])
#: Elements that start and end a line.
_HTML_BLOCKS = frozenset(
    [
        "br", "p", "div", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6",
        "blockquote", "pre", "hr", "section", "article",
    ]
)


def html_to_text(html: str) -> str:
    """Readable text of an HTML body (never raises): script and style dropped,
    blocks become lines.

    libxml2's HTML parser (lxml, already a dependency) reads in linear time
    whatever the markup; the stdlib's html.parser rescans an unterminated tag
    from every ``<`` (24 KB of ``<a <a`` took 31 s). Only the first
    :data:`MAX_HTML_CHARS` characters are read.
    """
    from lxml import etree
    from lxml import html as lxml_html

    parser = lxml_html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True,
                                  no_network=True)
    try:
        root = etree.fromstring(html[:MAX_HTML_CHARS].encode("utf-8", "replace"), parser)
    except Exception:  # An empty document, or one libxml2 gives up on.
        root = None
    if root is None:
        return ""
    parts: list[str] = []
    skip = 0
    for event, element in etree.iterwalk(root, events=("start", "end")):
        tag = element.tag if isinstance(element.tag, str) else ""
        if event == "start":
            if tag in _HTML_SKIP:
                skip += 1
            elif tag in _HTML_BLOCKS:
                parts.append("\n")
            if not skip and tag and element.text:
                parts.append(element.text)
            continue
        if tag in _HTML_SKIP:
            skip = max(0, skip - 1)
        elif tag in _HTML_BLOCKS and tag not in ("br", "hr"):  # void: one line break
            parts.append("\n")
        if not skip and element.tail:
            parts.append(element.tail)
    lines = [re.sub(r"[ \t\xa0]+", " ", line).strip() for line in "".join(parts).split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _text_of(part: Message, payload: bytes, fallback: str | None = None) -> str:
    """Decode a text part's bytes by its declared charset, leniently.

    Without a declared charset, bytes that are not UTF-8 are read in
    ``fallback`` (the charset of the message's 8-bit headers), else in the
    charset guessed from the part itself.
    """
    declared = None
    with contextlib.suppress(Exception):
        declared = part.get_content_charset()
    if declared:
        try:
            return payload.decode(declared, errors="replace")
        except LookupError:
            pass
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload.decode(fallback or guess_charset(payload), errors="replace")


def _pem_csr_block(data: bytes) -> tuple[bool, bytes] | None:
    """(NEW label?, text between the armour lines) of the first PEM CSR, or None.

    The block ends at the first END line after the first BEGIN line, and
    starts at the last BEGIN line before that END. Each step is one
    ``bytes.find``/``rfind`` per label: linear in ``data``.
    """
    begins = [at for label in _PEM_LABELS if (at := data.find(_PEM_BEGIN + label)) >= 0]
    if not begins:
        return None
    first = min(begins)
    ends = [at for marker in _PEM_ENDS if (at := data.find(marker, first)) >= 0]
    if not ends:
        return None
    end = min(ends)
    start, new = first, False
    for label in _PEM_LABELS:
        at = data.rfind(_PEM_BEGIN + label, first, end)
        if at >= start:
            start, new = at, label.startswith(b"NEW")
    begin_len = len(_PEM_BEGIN) + len(_PEM_LABELS[1] if new else _PEM_LABELS[0])
    return new, data[start + begin_len : end]


def find_pem_csr(data: bytes) -> bytes | None:
    """The first PEM CSR block in ``data``, re-wrapped with clean line ends."""
    block = _pem_csr_block(data)
    if block is None:
        return None
    new, armoured = block
    label = b"NEW CERTIFICATE REQUEST" if new else b"CERTIFICATE REQUEST"
    body = re.sub(rb"[^A-Za-z0-9+/=]", b"", armoured)
    if not body:
        return None
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        b"-----BEGIN "
        + label
        + b"-----\n"
        + b"\n".join(lines)
        + b"\n-----END "
        + label
        + b"-----\n"
    )


# ---------------------------------------------------------------------------
# Attachment kinds.


def _is_asic(data: bytes, name: str) -> bool:
    if not data.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(BytesIO(data)) as zf:
            if "mimetype" not in zf.namelist():
                return name.endswith(ASIC_EXTENSIONS)
            with zf.open("mimetype") as fh:
                mimetype = fh.read(200)
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, NotImplementedError, EOFError):
        return name.endswith(ASIC_EXTENSIONS)
    return b"asic" in mimetype.lower() or name.endswith(ASIC_EXTENSIONS)


def _is_der_csr(data: bytes) -> bool:
    from cryptography import x509

    try:
        x509.load_der_x509_csr(data)
    except Exception:
        return False
    return True


def classify(data: bytes, filename: str | None, content_type: str) -> AttachmentKind:
    """What an attachment is: content sniffed first, then its name and type."""
    name = (filename or "").lower()
    if b"%PDF-" in data[:1024]:
        return "form"
    if _pem_csr_block(data[:65536]) is not None:
        return "csr"
    if _is_asic(data, name):
        return "asice"
    if content_type in P7S_TYPES or name.endswith(".p7s"):
        return "p7s"
    if name.endswith(DER_CSR_EXTENSIONS) and _is_der_csr(data):
        return "csr"
    return "other"


def _filename(part: Message, defects: list[str], charset: str | None = None) -> str | None:
    """The decoded, path-free file name of a part (RFC 2231 and RFC 2047)."""
    try:
        name = part.get_filename()
    except Exception as exc:
        defects.append(f"file name unreadable: {exc}")
        name = None
    if name is None:
        return None
    name = str(name)
    if "=?" in name:
        with contextlib.suppress(Exception):
            name = str(make_header(decode_header(name)))
    name, _ = _unsurrogate(name, charset or "latin-1")
    name = _clean(unicodedata.normalize("NFC", name))
    # Keep only the last path component: a name is never a path.
    name = re.split(r"[/\\]", name)[-1].strip()
    return name or None


def _disposition(part: Message) -> str:
    try:
        return (part.get_content_disposition() or "").lower()
    except Exception:
        return ""


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type().lower()
    except Exception:
        return "application/octet-stream"


def _defect_text(where: str, defect: Any) -> str:
    doc = (type(defect).__doc__ or "").strip().splitlines()
    detail = str(defect) or (doc[0] if doc else "")
    return f"{where}: {type(defect).__name__}" + (f" ({detail})" if detail else "")


# ---------------------------------------------------------------------------
# The walk.


@dataclass
class _Walk:
    raw: bytes
    limit: int
    defects: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    #: (depth, "plain" | "html", text) body candidates in document order.
    bodies: list[tuple[int, str, str]] = field(default_factory=list)
    smime: tuple[bytes, bytes] | None = None
    report: bool = False
    #: The charset of the message's undeclared 8-bit headers, if any.
    charset: str | None = None
    #: Parts looked at so far (bounded by MAX_PARTS).
    parts: int = 0

    def payload(self, part: Message, ctype: str) -> bytes | None:
        """Decoded bytes of a leaf part, or None (with a defect) if undecodable."""
        before = len(getattr(part, "defects", []))
        try:
            data = part.get_payload(decode=True)
        except Exception as exc:
            self.defects.append(f"{ctype} part could not be decoded: {exc}")
            return None
        new = getattr(part, "defects", [])[before:]
        bad = [d for d in new if "Base64" in type(d).__name__]
        if bad:
            self.defects.append(f"{ctype} part has bad base64 ({type(bad[0]).__name__}); dropped")
            return None
        if data is None:
            return b""
        if isinstance(data, str):
            return data.encode("utf-8", "surrogateescape")
        return bytes(data)

    def walk(self, part: Message, depth: int, nesting: int, body_wanted: bool = True) -> None:
        if nesting > _MAX_DEPTH:
            self.defects.append("MIME nesting too deep; inner parts ignored")
            return
        self.parts += 1
        if self.parts > MAX_PARTS:
            if self.parts == MAX_PARTS + 1:
                self.defects.append(f"more than {MAX_PARTS} MIME parts; the rest ignored")
            return
        ctype = _content_type(part)
        for defect in getattr(part, "defects", []):
            self.defects.append(_defect_text(ctype, defect))
        if ctype == "multipart/report":
            self.report = True
        if ctype in REPORT_TYPES:
            # A report's machine-readable part (DSN, ARF, MDN): it marks the
            # mail as a report and is not a body.
            self.report = True
            return
        if part.is_multipart():
            try:
                children = list(part.iter_parts()) if hasattr(part, "iter_parts") else []
                if not children:
                    sub = part.get_payload()
                    children = (
                        [c for c in sub if isinstance(c, Message)] if isinstance(sub, list) else []
                    )
            except Exception as exc:
                self.defects.append(f"{ctype} parts unreadable: {exc}")
                return
            if ctype == "multipart/signed":
                self._smime_signed(part, children, depth, nesting)
                return
            if ctype == "message/rfc822" or ctype.startswith("message/"):
                for child in children:
                    self.walk(child, depth + 1, nesting + 1)
                return
            if ctype == "multipart/alternative":
                preferred = self._preferred(children)
                for child in children:
                    self.walk(child, depth, nesting + 1, body_wanted and child is preferred)
                return
            for child in children:
                self.walk(child, depth, nesting + 1, body_wanted)
            return
        self._leaf(part, ctype, depth, body_wanted)

    @staticmethod
    def _preferred(children: list[Message]) -> Message | None:
        """The branch of a multipart/alternative that gives the body text."""
        for wanted in ("text/plain", "text/html"):
            for child in children:
                if _content_type(child) == wanted:
                    return child
        # A related/mixed branch (HTML with images) is the best left.
        return children[-1] if children else None

    def _leaf(self, part: Message, ctype: str, depth: int, body_wanted: bool) -> None:
        filename = _filename(part, self.defects, self.charset)
        disposition = _disposition(part)
        if ctype.startswith("multipart/"):
            # A multipart the parser could not split (no boundary): keep it as text.
            ctype = "text/plain"
        is_body = (
            ctype in ("text/plain", "text/html")
            and filename is None
            and disposition != "attachment"
        )
        data = self.payload(part, ctype)
        if data is None:
            return
        if is_body:
            if body_wanted:
                kind = "plain" if ctype == "text/plain" else "html"
                self.bodies.append((depth, kind, _text_of(part, data, self.charset)))
            return
        if ctype.startswith("text/") and filename is None and disposition != "attachment":
            # Other inline text (calendar, vCard, headers of a report): not a body, not a file.
            return
        if ctype in P7M_TYPES:
            self.defects.append(
                "S/MIME application/pkcs7-mime (opaque signed or encrypted) is not supported"
            )
        if len(data) > self.limit:
            label = filename or ctype
            self.defects.append(f"attachment {label} too large ({len(data)} bytes)")
            # An over-limit PDF is still the applicant's form: it is answered
            # FORM-UNREADABLE ("over limits", SPEC section 3), not FORM-MISSING.
            kind = classify(data, filename, ctype)
            dropped: AttachmentKind = kind if kind in ("form", "asice") else "other"
            self.attachments.append(
                Attachment(filename, ctype, dropped, b"", depth, dropped_size=len(data))
            )
            return
        kind = classify(data, filename, ctype)
        self.attachments.append(Attachment(filename, ctype, kind, data, depth))

    def _smime_signed(
        self, part: Message, children: list[Message], depth: int, nesting: int
    ) -> None:
        protocol = ""
        with contextlib.suppress(Exception):
            protocol = str(part.get_param("protocol") or "").lower()
        if len(children) != 2:
            self.defects.append(f"multipart/signed has {len(children)} parts, not 2")
            for child in children:
                self.walk(child, depth, nesting + 1)
            return
        content, signature = children
        first = len(self.attachments)
        self.walk(content, depth, nesting + 1)
        if protocol not in P7S_TYPES:
            # Not S/MIME (e.g. PGP/MIME): keep the signature as a plain attachment.
            self.walk(signature, depth, nesting + 1, body_wanted=False)
            return
        sig = self.payload(signature, _content_type(signature))
        signed = _signed_bytes(self.raw, part)
        if sig is None:
            return
        if signed is None:
            self.defects.append("multipart/signed content could not be located in the raw message")
            return
        if self.smime is None and depth == 0:
            self.smime = (signed, sig)
            self.attachments[first:] = [
                replace(a, in_smime=True) for a in self.attachments[first:]
            ]


def _signed_bytes(raw: bytes, part: Message) -> bytes | None:
    """The first part of a multipart/signed exactly as sent, CRLF-normalised.

    RFC 1847: the signed bytes run from after the first delimiter line to
    before the CRLF that precedes the next delimiter.
    """
    try:
        boundary = part.get_boundary()
    except Exception:
        return None
    if not boundary:
        return None
    b = re.escape(boundary.encode("utf-8", "surrogateescape"))
    first = re.search(rb"(?:^|\r?\n)--" + b + rb"[ \t]*\r?\n", raw)
    if not first:
        return None
    start = first.end()
    second = re.compile(rb"\r?\n--" + b + rb"(?:--)?[ \t]*(?:\r?\n|$)").search(raw, start)
    if not second:
        return None
    content = raw[start : second.start()]
    return re.sub(rb"(?<!\r)\n", b"\r\n", content)


# ---------------------------------------------------------------------------
# The ledger's view of a mail that is not parsed yet.

#: The header block read for the ledger's columns (before any parse).
_LEDGER_HEADER_BYTES = 256 * 1024


@dataclass(frozen=True)
class LedgerHeaders:
    """What the ledger records of a mail before it is parsed: Message-ID (the
    dedupe key, in its :func:`fit` form), From and Subject as sent (for staff,
    undecoded, one line, cut)."""

    message_id: str | None
    sender: str | None
    subject: str | None


def ledger_headers(raw: bytes) -> LedgerHeaders:
    """The first Message-ID, From and Subject of ``raw``'s header block.

    One pass over at most 256 KiB of lines, no MIME or RFC 2047 parse: it
    runs before the mail is stored and so must not be what a hostile mail
    can stall (the parse runs later, bounded, after the attempt is counted).
    """
    head = raw[:_LEDGER_HEADER_BYTES]
    found: dict[str, list[bytes]] = {}
    current: list[bytes] | None = None
    for line in head.split(b"\n"):
        line = line.rstrip(b"\r")
        if not line:
            break
        if line[:1] in (b" ", b"\t"):
            if current is not None:
                current.append(line)
            continue
        name, colon, value = line.partition(b":")
        key = name.strip().lower().decode("ascii", "replace")
        current = None
        if colon and key in ("message-id", "from", "subject") and key not in found:
            current = found[key] = [value]

    def text(key: str) -> str | None:
        value = found.get(key)
        return None if value is None else _clean(b"".join(value).decode("utf-8", "replace"))

    ids = _msg_ids(text("message-id"))
    sender = text("from")
    subject = text("subject")
    return LedgerHeaders(
        message_id=ids[0] if ids else None,
        sender=fit(sender, MAX_SENDER_CHARS) if sender else None,
        subject=subject[:1000] if subject is not None else None,
    )


# ---------------------------------------------------------------------------
# The entry point.


def _first(attachments: Iterable[Attachment], kind: str) -> Attachment | None:
    return next((a for a in attachments if a.kind == kind), None)


def parse_message(
    raw: bytes,
    *,
    max_attachment_bytes: int = 15 * 1024 * 1024,
    max_message_bytes: int | None = None,
    size: int | None = None,
) -> ParsedMail:
    """Parse one RFC 5322 message; never raises, problems go to ``defects``.

    A message over ``max_message_bytes`` has only its header parsed (enough to
    route and answer it) and is marked :attr:`ParsedMail.oversized`. ``size``
    is the whole message's size when ``raw`` is only its header.
    """
    whole = size if size is not None else len(raw)
    try:
        if max_message_bytes is not None and whole > max_message_bytes:
            end = re.search(rb"\r?\n\r?\n", raw)
            header = raw[: end.end()] if end else raw[:65536]
            mail = _parse(bytes(header[:65536]), max_attachment_bytes)
            return replace(
                mail,
                oversized=whole,
                defects=(*mail.defects,
                         f"message of {whole} bytes is over the limit of {max_message_bytes}"),
            )
        return _parse(raw, max_attachment_bytes)
    except MemoryError:
        # Not a defect of the mail to answer: the attempt fails (and is counted).
        raise
    except Exception as exc:  # The last line of defence: a parse bug is a defect.
        return _empty([f"message could not be parsed: {type(exc).__name__}: {exc}"])


def _empty(defects: list[str]) -> ParsedMail:
    return ParsedMail(
        message_id=None,
        from_addr="",
        from_name="",
        reply_to=None,
        subject="",
        date=None,
        in_reply_to=None,
        references=(),
        auto_submitted=False,
        bulk=False,
        bounce=False,
        body_text="",
        attachments=(),
        form=None,
        csr=None,
        p7s=None,
        asice=None,
        smime=None,
        defects=tuple(defects),
    )


def _parse(raw: bytes, limit: int) -> ParsedMail:
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raw = str(raw).encode("utf-8", "surrogateescape")
    raw = bytes(raw)
    if not raw.strip():
        return _empty(["empty message"])
    msg = email.message_from_bytes(raw, policy=POLICY)
    defects: list[str] = []
    headers = _Headers(msg, defects)

    # Identity and threading.
    message_id = next(iter(_msg_ids(headers.raw_first("Message-ID"))), None)
    in_reply_to = next(iter(_msg_ids(headers.raw_first("In-Reply-To"))), None)
    references = tuple(_msg_ids(" ".join(headers.raw_all("References"))))

    sender = _address(headers, "From", defects)
    if headers.raw_first("From") is None:
        defects.append("no From header")
    from_name, from_addr = sender if sender else ("", "")
    # An unusable Reply-To is not where replies go: From is, if it is usable.
    reply = _address(headers, "Reply-To", defects, keep_unusable=False)
    reply_to = reply[1] if reply else None

    subject_raw = headers.text("Subject") or ""
    subject = _clean(unicodedata.normalize("NFC", subject_raw))
    if _CRLF_RE.search(subject_raw):
        defects.append("Subject contained line breaks (removed)")

    date: datetime | None = None
    date_raw = headers.raw_first("Date")
    if date_raw:
        try:
            date = parsedate_to_datetime(date_raw.strip())
        except (TypeError, ValueError, IndexError, OverflowError):
            defects.append(f"unparseable Date: {_clean(date_raw)[:60]}")

    # RFC 3834 and friends: mail that must never be answered automatically.
    auto = (headers.raw_first("Auto-Submitted") or "").strip().split(";")[0].strip().lower()
    precedence = (headers.raw_first("Precedence") or "").strip().lower()
    auto_submitted = (
        bool(auto and auto != "no")
        or headers.raw_first("X-Autoreply") is not None
        or headers.raw_first("X-Autorespond") is not None
        or precedence == "auto_reply"
    )
    bulk = precedence in ("bulk", "junk", "list") or _is_list_mail(headers)
    return_path = headers.raw_first("Return-Path")
    from_local = from_addr.partition("@")[0]

    # Parts.
    walk = _Walk(raw=raw, limit=limit, charset=headers.charset)
    # A single-part message is walked as a leaf: its payload is the body or a lone file.
    walk.walk(msg, 0, 0)
    bounce = (
        walk.report
        or (return_path is not None and return_path.strip() == "<>")
        or from_local in _BAD_MAILER_LOCALS
    )

    # Body: the outermost level that has text; plain preferred over HTML.
    # Each HTML part is converted to text once (the CSR search reads it too).
    bodies = [(d, k, html_to_text(t) if k == "html" else t) for d, k, t in walk.bodies]
    body_text = ""
    levels = sorted({d for d, _, _ in bodies})
    for level in levels:
        plain = [t for d, k, t in bodies if d == level and k == "plain"]
        html = [t for d, k, t in bodies if d == level and k == "html"]
        if plain:
            body_text = "\n".join(t.strip("\r\n") for t in plain)
            break
        if html:
            body_text = "\n".join(html)
            break
    body_text = unicodedata.normalize("NFC", body_text.replace("\r\n", "\n"))

    # Attachments ranked: the outermost level first, document order within it.
    ordered = sorted(walk.attachments, key=lambda a: a.depth)
    csr_attachment = _first(ordered, "csr")
    csr: bytes | None = csr_attachment.data if csr_attachment else None
    if csr is None:
        for _depth, _kind, text in sorted(bodies, key=lambda b: b[0]):
            found = find_pem_csr(text.encode("utf-8", "replace"))
            if found:
                csr = found
                break

    return ParsedMail(
        message_id=message_id,
        from_addr=from_addr,
        from_name=from_name,
        reply_to=reply_to,
        subject=subject,
        date=date,
        in_reply_to=in_reply_to,
        references=references,
        auto_submitted=auto_submitted,
        bulk=bulk,
        bounce=bounce,
        body_text=body_text,
        attachments=tuple(walk.attachments),
        form=_first(ordered, "form"),
        csr=csr,
        p7s=_first(ordered, "p7s"),
        asice=_first(ordered, "asice"),
        smime=walk.smime,
        defects=tuple(defects + walk.defects),
        automatic=_automatic(headers),
        pec_receipt=_pec_receipt(headers),
        no_auto_reply=_no_auto_reply(headers, subject, reply_to or from_addr),
    )
