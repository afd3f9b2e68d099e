"""Header fields: the bounded parsing policy, decoded headers, addresses and Message-IDs in them.

:func:`ledger_headers` is the linear scanner of the raw header block the ledger records before any parse.
"""

from __future__ import annotations

import email
import email.policy
import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from email.policy import EmailPolicy
from email.utils import getaddresses
from typing import Any

from intake.mime.text import _bounded, _clean, _eight_bit_charset, _not_utf8, _unsurrogate, fit
from intake.mime.types import (
    _MSGID_RE,
    MAX_HEADER_CHARS,
    MAX_MESSAGE_ID_CHARS,
    MAX_SENDER_CHARS,
    Attachment,
)
from mailer.addresses import is_usable


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

    Usable is :func:`mailer.addresses.usable_address`, the one definition the
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


def _angle_addr(value: str | None) -> str | None:
    """The address inside the last ``<...>`` of a From value, else the value.

    Staff read the ledger's sender (a duplicate delivery is filed before any
    parse): a display name in RFC 2047 words would show as ``=?utf-8?b?...``.
    Two searches over the value, so it stays linear.
    """
    if value is None:
        return None
    start = value.rfind("<")
    end = value.find(">", start + 1) if start >= 0 else -1
    inner = value[start + 1:end].strip() if end > start >= 0 else ""
    return inner or value.strip()


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
    sender = _angle_addr(text("from"))
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
