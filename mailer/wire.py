"""The policies replies are built and sent under, and their bytes on the wire."""

from __future__ import annotations

import hashlib
from email import message_from_bytes
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage, Message
from email.policy import SMTP


class _Headers(HeaderRegistry):
    """The stdlib's header registry, each header's class made once.

    ``HeaderRegistry.__getitem__`` builds a new class (``type(...)``) for every
    header set or parsed, most of the cost of a header; the classes it builds
    for one name are all alike, so the first is kept.
    """

    def __init__(self) -> None:
        super().__init__()
        self._classes: dict[str, type[BaseHeader]] = {}

    def __getitem__(self, name: str) -> type[BaseHeader]:
        key = name.lower()
        made = self._classes.get(key)
        if made is None:
            made = self._classes[key] = super().__getitem__(name)
        return made


#: The policy replies are built under: the stdlib's SMTP policy (CRLF, 78
#: characters), with the registry above.
COMPOSE = SMTP.clone(header_factory=_Headers())
#: Replies are serialised with this policy: CRLF, and header lines folded at
#: whitespace only past 998 characters, so machine-read headers such as
#: X-Pasts-Codes ("A,B,C", no spaces) stay plain ASCII instead of being
#: turned into RFC 2047 encoded-words at 78 characters.
WIRE = COMPOSE.clone(max_line_length=998)
#: The same for a reply to an address with a non-ASCII local part: its
#: address headers are UTF-8 (RFC 6532) and it is sent with SMTPUTF8.
WIRE_UTF8 = WIRE.clone(utf8=True)


_ADDRESS_HEADERS = frozenset({"from", "to", "cc"})


def _ascii_addresses(msg: Message) -> bool:
    """Whether the From, To and Cc headers read as ASCII text.

    A header stored as written (``set_raw``) that is ASCII and holds no encoded
    word reads as itself, so it is not parsed only to be looked at; a parsed
    header is its own text.
    """
    for name, value in msg.raw_items():
        if name.lower() not in _ADDRESS_HEADERS:
            continue
        if not hasattr(value, "name") and value.isascii() and "=?" not in value:
            continue
        # The header as msg[name] gives it (a parsed header comes back as it is).
        if not str(msg.policy.header_fetch_parse(name, value)).isascii():
            return False
    return True


def wire_bytes(msg: Message) -> bytes:
    """The bytes of a composed message as sent: UTF-8 headers only where an address needs them."""
    return msg.as_bytes(policy=WIRE if _ascii_addresses(msg) else WIRE_UTF8)


def boundary(message_id: str, part: str, salt: int) -> str:
    digest = hashlib.sha256(f"{message_id}\0{part}\0{salt}".encode()).hexdigest()[:32]
    return f"==pasts-{part}-{digest}=="


def set_boundaries(msg: Message, message_id: str) -> None:
    """Give every multipart a boundary derived from the Message-ID.

    The boundary is checked against the encoded content of the parts; on the
    (astronomically unlikely) clash the next salt is tried, so the result is
    still a function of the spec alone.
    """
    for index, part in enumerate(msg.walk()):
        if not part.is_multipart():
            continue
        body = b"".join(p.as_bytes(policy=COMPOSE) for p in part.iter_parts())  # type: ignore[attr-defined]
        salt = 0
        while True:
            found = boundary(message_id, f"{index}", salt)
            if found.encode() not in body:
                break
            salt += 1
        part.set_boundary(found)


def fill_in(raw: bytes, placeholder: str, value: str) -> bytes:
    """``raw`` (a composed message) with ``placeholder`` replaced by ``value`` in its text parts.

    A single-use link is not stored in the outbox: the reply is composed
    with a placeholder and the sender fills the link in when it sends. The
    parts are decoded, changed and encoded again as :func:`compose` encodes
    them, so the result is what composing with ``value`` would have given.
    Raises ValueError when no text part holds the placeholder.
    """
    # The parts are encoded under SMTP's 78-character lines, as compose() does.
    msg = message_from_bytes(raw, policy=COMPOSE)
    assert isinstance(msg, EmailMessage)
    found = False
    for part in msg.walk():
        if part.get_content_maintype() != "text" or part.is_attachment():
            continue
        assert isinstance(part, EmailMessage)
        text = part.get_content()
        if placeholder not in text:
            continue
        found = True
        part.set_content(text.replace(placeholder, value), subtype=part.get_content_subtype(),
                         charset="utf-8", cte="quoted-printable")
        if part is not msg:
            del part["MIME-Version"]
    if not found:
        raise ValueError("the message holds no placeholder to fill in")
    return msg.as_bytes(policy=WIRE)
