"""PEC (posta elettronica certificata): the provider's transport envelope and its receipts.

A PEC provider delivers every certified mail inside a *busta di trasporto*:
a ``multipart/signed`` S/MIME mail signed by the provider, with the header
``X-Trasporto: posta-certificata``, whose signed part holds a text for the
reader, the original mail as ``postacert.eml`` (``message/rfc822``) and the
certification data ``daticert.xml``. It also sends receipts
(``X-Ricevuta: accettazione``, ``avvenuta-consegna``, ...), signed the same
way, that refer to a mail by ``X-Riferimento-Message-ID``.

:func:`read_pec` is a pure function over the raw bytes of a mail: it finds
the envelope (or the receipt), the exact bytes of the inner mail, the
provider's signed bytes and signature, and ``daticert.xml`` parsed with a
parser that neither expands entities, nor loads DTDs, nor fetches (the ASiC
code's options). :func:`check_transport` verifies the provider's signature
with the verifier's S/MIME judgement. That signature is *transport evidence*:
who certified the delivery, never the applicant's signature on anything; the
applicant is the inner mail's sender, and the applicant's own signatures are in
the inner mail.

The top-level headers (``X-Trasporto``, ``X-Ricevuta``,
``X-Riferimento-Message-ID``) lie outside the provider's signature; where
they disagree with the signed ``daticert.xml`` (its ``tipo``, its ``msgid``) or
the certified sender is not the inner From, a note says so.

Everything is bounded: the mail's size, the MIME depth and the number of parts.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr
from typing import TYPE_CHECKING, Any

from lxml import etree

if TYPE_CHECKING:
    from signing.status import FormVerdict
    from signing.verifier import InProcessVerifier

#: Mails larger than this are not unwrapped.
MAX_BYTES = 40 * 1024 * 1024
#: MIME nesting and part count bounds of one envelope.
MAX_DEPTH = 8
MAX_PARTS = 64
#: ``daticert.xml`` larger than this is not parsed.
MAX_DATICERT_BYTES = 256 * 1024

#: ``X-Ricevuta`` values of the PEC technical rules (DM 2 November 2005).
RECEIPT_KINDS = (
    "accettazione",
    "non-accettazione",
    "presa-in-carico",
    "avvenuta-consegna",
    "errore-consegna",
    "preavviso-errore-consegna",
    "rilevazione-virus",
)
#: ``X-Ricevuta`` values that say the mail did not reach its recipient.
FAILURE_KINDS = frozenset(
    {"non-accettazione", "errore-consegna", "preavviso-errore-consegna", "rilevazione-virus"}
)

_PARSER_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "huge_tree": False,
    "load_dtd": False,
}
_MSGID_RE = re.compile(r"<[^<>\s]+>")
_SIGNATURE_TYPES = ("application/pkcs7-signature", "application/x-pkcs7-signature")


@dataclass(frozen=True)
class DatiCert:
    """``daticert.xml``: the provider's certification data of one mail or receipt."""

    kind: str
    """``postacert/@tipo``: ``posta-certificata``, or the receipt's kind (``accettazione``, ...)."""

    error: str
    """``postacert/@errore``: ``nessuno`` when there is none."""

    sender: str
    """``intestazione/mittente``: the PEC address that sent the mail."""

    recipients: tuple[tuple[str, str], ...]
    """``intestazione/destinatari``: each address with its ``tipo`` (``certificato``, ``esterno``)."""

    reply_to: str | None
    """``intestazione/risposte``."""

    subject: str | None
    """``intestazione/oggetto``."""

    provider: str | None
    """``dati/gestore-emittente``: the provider that certified it."""

    time: datetime | None
    """``dati/data`` (``giorno``, ``ora`` and the ``zona`` offset), as an aware datetime."""

    identifier: str | None
    """``dati/identificativo``: the PEC identifier of the mail."""

    message_id: str | None
    """``dati/msgid``: the original mail's Message-ID (with angle brackets)."""

    receipt_type: str | None = None
    """``dati/ricevuta/@tipo`` (``completa``, ``breve``, ``sintetica``)."""

    delivered_to: str | None = None
    """``dati/consegna``: the mailbox a delivery receipt is for."""

    extended_error: str | None = None
    """``dati/errore-esteso``."""


@dataclass(frozen=True)
class PecEnvelope:
    """A PEC transport envelope, unwrapped (nothing judged until :func:`check_transport`)."""

    transport: str
    """The ``X-Trasporto`` value: ``posta-certificata``, or ``errore`` (an anomaly envelope)."""

    inner: bytes | None = field(repr=False)
    """The exact bytes of ``postacert.eml``: the applicant's mail (``None``: not found)."""

    daticert: DatiCert | None
    """``daticert.xml`` parsed (``None``: missing or unreadable, see :attr:`notes`)."""

    daticert_xml: bytes | None = field(repr=False)
    """``daticert.xml`` as it arrived, to store."""

    signed: tuple[bytes, bytes] | None = field(repr=False)
    """The provider's S/MIME signed bytes (CRLF) and signature DER (``None``: unsigned)."""

    message_id: str | None
    """The envelope's own Message-ID (the provider's)."""

    envelope_from: str
    """The envelope's From (``"Per conto di: ..." <posta-certificata@provider>``)."""

    inner_from: str | None = None
    """The inner mail's From address (lower-cased), the applicant."""

    inner_message_id: str | None = None
    """The inner mail's Message-ID, to thread the reply to."""

    notes: tuple[str, ...] = ()
    """What was odd about the envelope."""

    transport_signature: FormVerdict | None = None
    """The provider's signature judged (:func:`check_transport`); transport evidence only."""

    @property
    def sender_matches(self) -> bool:
        """The certified sender (``daticert``) is the inner mail's From."""
        return bool(self.daticert and self.inner_from
                    and self.daticert.sender.strip().lower() == self.inner_from)


@dataclass(frozen=True)
class PecReceipt:
    """A PEC receipt (``X-Ricevuta``): automatic mail, never answered."""

    kind: str
    """The ``X-Ricevuta`` value, lower-cased (see :data:`RECEIPT_KINDS`)."""

    refers_to: str | None
    """``X-Riferimento-Message-ID``: the mail this receipt is about (with angle brackets)."""

    daticert: DatiCert | None
    """The receipt's ``daticert.xml`` parsed."""

    daticert_xml: bytes | None = field(repr=False)
    """``daticert.xml`` as it arrived."""

    signed: tuple[bytes, bytes] | None = field(repr=False)
    """The provider's signed bytes and signature DER."""

    message_id: str | None
    """The receipt's own Message-ID."""

    notes: tuple[str, ...] = ()

    transport_signature: FormVerdict | None = None
    """The provider's signature judged (:func:`check_transport`)."""

    @property
    def delivered(self) -> bool:
        """The receipt proves delivery (``avvenuta-consegna``)."""
        return self.kind == "avvenuta-consegna"

    @property
    def failed(self) -> bool:
        """The receipt says the mail did not (or may not) reach its recipient."""
        return self.kind in FAILURE_KINDS


# -- MIME, on the raw bytes ----------------------------------------------------------------


@dataclass(frozen=True)
class _Part:
    headers: Message
    body: bytes = field(repr=False)
    raw: bytes = field(repr=False)


def _entity(raw: bytes) -> _Part:
    """One MIME entity: its headers parsed, its body bytes exactly as sent."""
    end = re.search(rb"\r?\n\r?\n", raw)
    head, body = (raw[: end.start()], raw[end.end():]) if end else (raw, b"")
    headers = BytesHeaderParser(policy=compat32).parsebytes(head + b"\r\n\r\n")
    return _Part(headers, body, raw)


def _children(part: _Part) -> list[_Part]:
    """The parts of a multipart entity, each exactly as sent (RFC 2046 delimiters)."""
    boundary = part.headers.get_boundary()
    if not boundary:
        return []
    delimiter = re.compile(
        rb"(?:\A|\r?\n)--" + re.escape(boundary.encode("utf-8", "surrogateescape"))
        + rb"(--)?[ \t]*(?:\r?\n|\Z)")
    children: list[_Part] = []
    start: int | None = None
    for match in delimiter.finditer(part.body):
        if start is not None:
            children.append(_entity(part.body[start: match.start()]))
            if len(children) > MAX_PARTS:
                raise ValueError(f"more than {MAX_PARTS} MIME parts")
        if match.group(1):
            break
        start = match.end()
    return children


def _decoded(part: _Part) -> bytes:
    """The part's body with its transfer encoding undone (empty when it cannot be)."""
    encoding = str(part.headers.get("Content-Transfer-Encoding", "")).strip().lower()
    try:
        if encoding == "base64":
            return base64.b64decode(re.sub(rb"\s+", b"", part.body), validate=True)
        if encoding == "quoted-printable":
            return quopri.decodestring(part.body)
    except (binascii.Error, ValueError):
        return b""
    return part.body


def _filename(part: _Part) -> str:
    try:
        name = part.headers.get_filename() or part.headers.get_param("name") or ""
    except Exception:  # a broken parameter is no name.
        return ""
    return str(name).strip().lower() if isinstance(name, str) else ""


def _leaves(part: _Part, depth: int, found: list[tuple[int, _Part]], count: list[int]) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"MIME nested deeper than {MAX_DEPTH} levels")
    count[0] += 1
    if count[0] > MAX_PARTS:
        raise ValueError(f"more than {MAX_PARTS} MIME parts")
    if part.headers.get_content_maintype() == "multipart":
        for child in _children(part):
            _leaves(child, depth + 1, found, count)
        return
    found.append((depth, part))


def _signed(top: _Part) -> tuple[tuple[bytes, bytes] | None, _Part]:
    """The S/MIME signed bytes (CRLF) and signature of a ``multipart/signed`` mail, and its content."""
    if top.headers.get_content_type() != "multipart/signed":
        return None, top
    protocol = str(top.headers.get_param("protocol") or "").lower()
    children = _children(top)
    if len(children) != 2 or protocol not in _SIGNATURE_TYPES:
        return None, top
    content, signature = children
    signed = re.sub(rb"(?<!\r)\n", b"\r\n", content.raw)
    return (signed, _decoded(signature)), content


def _msg_id(value: str | None) -> str | None:
    found = _MSGID_RE.search(value or "")
    return found.group(0) if found else None


# -- daticert.xml ----------------------------------------------------------------------------


def _text(root: Any, path: str) -> str | None:
    found = root.find(path)
    if found is None or found.text is None:
        return None
    return str(found.text).strip() or None


def _time(data: Any) -> datetime | None:
    if data is None:
        return None
    day, hour = _text(data, "giorno"), _text(data, "ora")
    if day is None or hour is None:
        return None
    zone = str(data.get("zona") or "+0000").strip()
    match = re.fullmatch(r"([+-])(\d{2}):?(\d{2})", zone)
    offset = timedelta(0)
    if match:
        offset = timedelta(hours=int(match.group(2)), minutes=int(match.group(3)))
        if match.group(1) == "-":
            offset = -offset
    try:
        naive = datetime.strptime(f"{day} {hour}", "%d/%m/%Y %H:%M:%S")
    except ValueError:
        return None
    return naive.replace(tzinfo=timezone(offset))


def parse_daticert(data: bytes) -> DatiCert:
    """Parse ``daticert.xml``; raises ``ValueError`` on DTDs, entities, oversize or a wrong root."""
    if len(data) > MAX_DATICERT_BYTES:
        raise ValueError(f"daticert.xml is {len(data)} bytes, over {MAX_DATICERT_BYTES}")
    root = etree.fromstring(data, parser=etree.XMLParser(**_PARSER_OPTIONS))
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise ValueError("DTD declarations are not allowed in daticert.xml")
    if etree.QName(root).localname != "postacert":
        raise ValueError(f"daticert.xml's root is {etree.QName(root).localname}, not postacert")
    head = root.find("intestazione")
    data_ = root.find("dati")
    if head is None or data_ is None:
        raise ValueError("daticert.xml lacks intestazione or dati")
    recipients = tuple(
        (str(item.text or "").strip(), str(item.get("tipo") or "").strip())
        for item in head.findall("destinatari")
        if (item.text or "").strip()
    )
    receipt = data_.find("ricevuta")
    return DatiCert(
        kind=str(root.get("tipo") or "").strip(),
        error=str(root.get("errore") or "").strip(),
        sender=_text(head, "mittente") or "",
        recipients=recipients,
        reply_to=_text(head, "risposte"),
        subject=_text(head, "oggetto"),
        provider=_text(data_, "gestore-emittente"),
        time=_time(data_.find("data")),
        identifier=_text(data_, "identificativo"),
        message_id=_msg_id(_text(data_, "msgid")) or _text(data_, "msgid"),
        receipt_type=str(receipt.get("tipo")).strip() if receipt is not None else None,
        delivered_to=_text(data_, "consegna"),
        extended_error=_text(data_, "errore-esteso"),
    )


# -- the entry points ------------------------------------------------------------------------


def read_pec(raw: bytes, *, max_bytes: int = MAX_BYTES) -> PecEnvelope | PecReceipt | None:
    """The PEC envelope or receipt in ``raw``, or ``None`` when the mail is not PEC.

    Pure: no verification (see :func:`check_transport`). A mail over
    ``max_bytes``, or whose MIME is over the bounds, is read no further and
    comes back with a note (an envelope without its inner mail).
    """
    top = _entity(bytes(raw))
    transport = str(top.headers.get("X-Trasporto", "")).strip().lower()
    receipt = str(top.headers.get("X-Ricevuta", "")).strip().lower()
    if not transport and not receipt:
        return None
    notes: list[str] = []
    message_id = _msg_id(top.headers.get("Message-ID"))
    leaves: list[tuple[int, _Part]] = []
    signed: tuple[bytes, bytes] | None = None
    if len(raw) > max_bytes:
        notes.append(f"the PEC mail is {len(raw)} bytes, over {max_bytes}: not unwrapped")
    else:
        try:
            signed, content = _signed(top)
            if signed is None:
                notes.append("the PEC mail carries no S/MIME signature of its provider")
            _leaves(content, 0, leaves, [0])
        except (ValueError, RecursionError) as exc:
            notes.append(f"the PEC mail cannot be unwrapped: {exc}")
            leaves = []
    daticert_xml = next((_decoded(p) for _d, p in leaves if _filename(p) == "daticert.xml"), None)
    daticert = None
    if daticert_xml is not None:
        try:
            daticert = parse_daticert(daticert_xml)
        except Exception as exc:  # an unreadable daticert is a note.
            notes.append(f"daticert.xml cannot be read: {exc}"[:300])
    elif len(raw) <= max_bytes:
        notes.append("the PEC mail carries no daticert.xml")
    if receipt:
        if receipt not in RECEIPT_KINDS:
            notes.append(f"unknown PEC receipt kind {receipt[:40]!r}")
        refers_to = _msg_id(top.headers.get("X-Riferimento-Message-ID"))
        # The top-level headers are outside the provider's signature; the
        # signed daticert.xml must say the same.
        if daticert is not None and daticert.kind.lower() != receipt:
            notes.append(f"X-Ricevuta says {receipt[:40]!r} but the signed daticert.xml says "
                         f"{daticert.kind[:40]!r}")
        if daticert is not None and refers_to is not None and daticert.message_id != refers_to:
            notes.append(f"X-Riferimento-Message-ID {refers_to[:100]} is not the signed "
                         f"daticert.xml's msgid {str(daticert.message_id)[:100]}")
        return PecReceipt(
            kind=receipt[:40],
            refers_to=refers_to,
            daticert=daticert,
            daticert_xml=daticert_xml,
            signed=signed,
            message_id=message_id,
            notes=tuple(notes),
        )
    inner = _postacert(leaves)
    inner_from = inner_id = None
    if inner is not None:
        head = _entity(inner).headers
        addresses = getaddresses([str(head.get("From", ""))])
        inner_from = (addresses[0][1].strip().lower() or None) if addresses else None
        inner_id = _msg_id(head.get("Message-ID"))
    elif len(raw) <= max_bytes:
        notes.append("the PEC envelope carries no postacert.eml")
    if transport not in ("posta-certificata", "errore"):
        notes.append(f"unknown X-Trasporto {transport[:40]!r}")
    envelope = PecEnvelope(
        transport=transport[:40],
        inner=inner,
        daticert=daticert,
        daticert_xml=daticert_xml,
        signed=signed,
        message_id=message_id,
        envelope_from=parseaddr(str(top.headers.get("From", "")))[1],
        inner_from=inner_from,
        inner_message_id=inner_id,
    )
    if inner is not None and daticert is not None and not envelope.sender_matches:
        notes.append(f"the certified sender {daticert.sender!r} is not the inner From "
                     f"{inner_from!r}")
    if daticert is not None and transport == "posta-certificata" and (
            daticert.kind.lower() != "posta-certificata"):
        notes.append(f"X-Trasporto says posta-certificata but the signed daticert.xml says "
                     f"{daticert.kind[:40]!r}")
    if (inner_id is not None and daticert is not None and daticert.message_id is not None
            and daticert.message_id != inner_id):
        notes.append(f"the inner Message-ID {inner_id[:100]} is not the signed daticert.xml's "
                     f"msgid {daticert.message_id[:100]}")
    return replace(envelope, notes=tuple(notes))


def _postacert(leaves: list[tuple[int, _Part]]) -> bytes | None:
    """The exact bytes of ``postacert.eml`` (by name, else the outermost ``message/rfc822``)."""
    named = [p for _d, p in leaves if _filename(p) == "postacert.eml"]
    if not named:
        named = [p for _d, p in sorted(leaves, key=lambda item: item[0])
                 if p.headers.get_content_type() == "message/rfc822"][:1]
    return _decoded(named[0]) if named else None


async def check_transport(
    pec: PecEnvelope | PecReceipt, verifier: InProcessVerifier,
) -> PecEnvelope | PecReceipt:
    """``pec`` with the provider's S/MIME signature judged (:attr:`transport_signature`).

    The judgement is the verifier's S/MIME one (``kind="smime"``), with its
    anchors and trusted lists. It is evidence about the transport, never the
    applicant's signature: read its ``intact``/``valid``/``trusted`` facts; its
    codes are those an applicant's signature would get (a provider's seal is
    not a qualified e-signature, so ``SIG-NOT-QUALIFIED`` is expected there).
    """
    if pec.signed is None:
        return pec
    from signing.status import UnreadableInput

    content, signature = pec.signed
    try:
        verdict = await verifier.verify_detached(content, signature, kind="smime")
    except UnreadableInput as exc:
        return replace(pec, notes=(*pec.notes, f"the provider's signature was not judged: {exc}"))
    labelled = tuple(replace(status, field_name="PEC provider (transport)")
                     for status in verdict.signatures)
    return replace(pec, transport_signature=replace(verdict, signatures=labelled))
