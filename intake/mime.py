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

import contextlib
import email
import email.policy
import re
import unicodedata
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from html.parser import HTMLParser
from io import BytesIO
from typing import Any, Literal

AttachmentKind = Literal["form", "csr", "p7s", "asice", "other"]

ASIC_EXTENSIONS = (".asice", ".asics", ".edoc", ".sce", ".bdoc")
DER_CSR_EXTENSIONS = (".csr", ".req", ".p10", ".der")
P7S_TYPES = ("application/pkcs7-signature", "application/x-pkcs7-signature")
P7M_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")

_MAX_DEPTH = 40
_PEM_CSR_RE = re.compile(
    rb"-----BEGIN (NEW )?CERTIFICATE REQUEST-----(.*?)-----END (NEW )?CERTIFICATE REQUEST-----",
    re.DOTALL,
)
_MSGID_RE = re.compile(r"<[^<>\s]+>")
_CRLF_RE = re.compile(r"[\r\n]+")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BAD_MAILER_LOCALS = ("mailer-daemon", "postmaster")


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
    #: Precedence bulk/junk/list, or List-Id / List-Unsubscribe present.
    bulk: bool
    #: multipart/report, empty Return-Path (<>), or from MAILER-DAEMON/postmaster.
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

    @property
    def carries_form(self) -> bool:
        """A form arrived: a PDF, or an ASiC-E container that should hold one."""
        return self.form is not None or self.asice is not None

    @property
    def reply_address(self) -> str:
        return self.reply_to or self.from_addr

    @property
    def no_reply_reason(self) -> str | None:
        """Why this mail must never be auto-answered (None = may answer)."""
        if self.auto_submitted:
            return "auto-submitted"
        if self.bulk:
            return "bulk or list mail"
        if self.bounce:
            return "bounce or delivery report"
        if not self.reply_address:
            return "no sender address"
        return None


# ---------------------------------------------------------------------------
# Headers.


def _unsurrogate(value: str) -> tuple[str, bool]:
    """Undo surrogateescape of 8-bit header bytes: UTF-8 if valid, else Latin-1.

    The flag is true for bytes that are not UTF-8 (RFC 6532 allows UTF-8).
    """
    if not any("\udc80" <= c <= "\udcff" for c in value):
        return value, False
    raw = value.encode("utf-8", "surrogateescape")
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("latin-1"), True


def _clean(text: str) -> str:
    """One line of text: CR/LF runs become a space, other controls go."""
    return _CONTROL_RE.sub("", _CRLF_RE.sub(" ", text)).strip()


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
        for name, value in items:
            text, was_8bit = _unsurrogate(str(value))
            if was_8bit:
                defects.append(f"header {name} has 8-bit bytes that are not UTF-8")
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
            return email.policy.default.header_fetch_parse(name, raw)
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
        unfolded = re.sub(r"\r?\n(?=[ \t])", "", raw)
        try:
            return str(make_header(decode_header(unfolded)))
        except Exception:
            self.defects.append(f"header {name} could not be decoded")
            return unfolded


def _valid_addr(addr: str) -> bool:
    if not addr or any(c in addr for c in '\r\n \t<>,;"') or addr.count("@") != 1:
        return False
    local, _, domain = addr.partition("@")
    return bool(local) and bool(domain) and "." in domain.strip(".")


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
                decoded = str(make_header(decode_header(re.sub(r"\r?\n(?=[ \t])", "", raw))))
            except Exception:
                decoded = raw
            pairs = [(n, a) for n, a in getaddresses([decoded]) if a]
    return pairs


def _address(headers: _Headers, name: str, defects: list[str]) -> tuple[str, str] | None:
    """The first valid (display name, lower-cased addr-spec) of header ``name``."""
    if headers.raw_first(name) is None:
        return None
    pairs = _addresses(headers, name)
    valid = [(n, a.strip().lower()) for n, a in pairs if _valid_addr(a.strip())]
    if len(pairs) > 1:
        defects.append(f"{name} has {len(pairs)} addresses; the first valid one is used")
    if not valid:
        defects.append(f"{name} has no valid address")
        return None
    if len(valid) < len(pairs) and len(pairs) == 1:
        defects.append(f"{name} address is invalid")
    display, addr = valid[0]
    return _clean(display), addr


def _msg_ids(value: str | None) -> list[str]:
    return _MSGID_RE.findall(value or "")


# ---------------------------------------------------------------------------
# Bodies.


class _HtmlText(HTMLParser):
    """HTML to plain text: script and style dropped, blocks become lines."""

    _BLOCKS = frozenset(
        [
            "br",
            "p",
            "div",
            "tr",
            "li",
            "ul",
            "ol",
            "table",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "blockquote",
            "pre",
            "hr",
            "section",
            "article",
        ]
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag in ("script", "style", "head", "title"):
            self.skip += 1
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "head", "title"):
            self.skip = max(0, self.skip - 1)
        elif tag in self._BLOCKS:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    """Readable text of an HTML body (never raises)."""
    parser = _HtmlText()
    try:
        parser.feed(html)
        parser.close()
    except Exception:
        return re.sub(r"<[^>]*>", " ", html)
    lines = [re.sub(r"[ \t\xa0]+", " ", line).strip() for line in "".join(parser.parts).split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _text_of(part: Message, payload: bytes) -> str:
    """Decode a text part's bytes by its declared charset, leniently."""
    charset = "utf-8"
    with contextlib.suppress(Exception):
        charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            return payload.decode("latin-1")


def find_pem_csr(data: bytes) -> bytes | None:
    """The first PEM CSR block in ``data``, re-wrapped with clean line ends."""
    match = _PEM_CSR_RE.search(data)
    if not match:
        return None
    label = b"NEW CERTIFICATE REQUEST" if match.group(1) else b"CERTIFICATE REQUEST"
    body = re.sub(rb"[^A-Za-z0-9+/=]", b"", match.group(2))
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
    if _PEM_CSR_RE.search(data[:65536]):
        return "csr"
    if _is_asic(data, name):
        return "asice"
    if content_type in P7S_TYPES or name.endswith(".p7s"):
        return "p7s"
    if name.endswith(DER_CSR_EXTENSIONS) and _is_der_csr(data):
        return "csr"
    return "other"


def _filename(part: Message, defects: list[str]) -> str | None:
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
    name, _ = _unsurrogate(name)
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
        ctype = _content_type(part)
        for defect in getattr(part, "defects", []):
            self.defects.append(_defect_text(ctype, defect))
        if ctype == "multipart/report":
            self.report = True
        if ctype == "message/delivery-status":
            # A DSN's per-recipient fields: it marks a bounce and is not a body.
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
        filename = _filename(part, self.defects)
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
                self.bodies.append((depth, kind, _text_of(part, data)))
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
    msg = email.message_from_bytes(raw, policy=email.policy.default)
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
    reply = _address(headers, "Reply-To", defects)
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
    bulk = (
        precedence in ("bulk", "junk", "list")
        or headers.raw_first("List-Id") is not None
        or headers.raw_first("List-Unsubscribe") is not None
    )
    return_path = headers.raw_first("Return-Path")
    from_local = from_addr.partition("@")[0]

    # Parts.
    walk = _Walk(raw=raw, limit=limit)
    # A single-part message is walked as a leaf: its payload is the body or a lone file.
    walk.walk(msg, 0, 0)
    bounce = (
        walk.report
        or (return_path is not None and return_path.strip() == "<>")
        or from_local in _BAD_MAILER_LOCALS
    )

    # Body: the outermost level that has text; plain preferred over HTML.
    body_text = ""
    levels = sorted({d for d, _, _ in walk.bodies})
    for level in levels:
        plain = [t for d, k, t in walk.bodies if d == level and k == "plain"]
        html = [t for d, k, t in walk.bodies if d == level and k == "html"]
        if plain:
            body_text = "\n".join(t.strip("\r\n") for t in plain)
            break
        if html:
            body_text = "\n".join(html_to_text(t) for t in html)
            break
    body_text = unicodedata.normalize("NFC", body_text.replace("\r\n", "\n"))

    # Attachments ranked: the outermost level first, document order within it.
    ordered = sorted(walk.attachments, key=lambda a: a.depth)
    csr_attachment = _first(ordered, "csr")
    csr: bytes | None = csr_attachment.data if csr_attachment else None
    if csr is None:
        for _depth, kind, text in sorted(walk.bodies, key=lambda b: b[0]):
            found = find_pem_csr(
                (html_to_text(text) if kind == "html" else text).encode("utf-8", "replace")
            )
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
    )
