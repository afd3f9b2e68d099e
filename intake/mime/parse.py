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
  ``other`` attachment with a defect: pasts does not unwrap it, unless it is
  an Italian signed file.
* Italian signed files (``.p7m`` DER/PEM/base64, ``.tsd``, ``.m7m``) are
  recognised by content before the ``%PDF-`` search, and a ``.tsr`` by
  content (:attr:`ParsedMail.signed_file`, :attr:`ParsedMail.timestamp_reply`).
* A PEC envelope (``X-Trasporto``) is unwrapped: the :class:`ParsedMail` is the
  inner ``postacert.eml``, the provider's part in :attr:`ParsedMail.pec`.
"""

from __future__ import annotations

import email
import email.policy
import re
import unicodedata
from dataclasses import asdict, replace
from datetime import datetime
from email.utils import parsedate_to_datetime

from intake.mime.attachments import find_pem_csr
from intake.mime.autoreply import _automatic, _is_list_mail, _no_auto_reply, _pec_receipt
from intake.mime.bodies import html_to_text
from intake.mime.headers import POLICY, _address, _first, _Headers, _msg_ids
from intake.mime.pec import DatiCert, PecReceipt, read_pec
from intake.mime.text import _clean
from intake.mime.types import _BAD_MAILER_LOCALS, _CRLF_RE, ParsedMail, PecTransport
from intake.mime.walk import _Walk


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


def _parse(raw: bytes, limit: int, *, unwrap_pec: bool = True) -> ParsedMail:
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

    mail = ParsedMail(
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
        signed_file=_first(ordered, "signed-file"),
        timestamp_reply=_first(ordered, "tsr"),
    )
    pec = headers.raw_first("X-Trasporto") or headers.raw_first("X-Ricevuta")
    if unwrap_pec and pec is not None:
        return _with_pec(raw, mail, limit)
    return mail


def _with_pec(raw: bytes, mail: ParsedMail, limit: int) -> ParsedMail:
    """A PEC mail: an envelope is unwrapped to the applicant's inner mail, a receipt marked.

    SPEC section 2: the inner ``postacert.eml`` is the applicant's (its sender,
    Message-ID and attachments); the provider's signature and ``daticert.xml``
    are transport evidence kept beside it (:class:`PecTransport`).
    """
    found = read_pec(raw)
    if found is None:
        return mail
    daticert = _daticert_record(found.daticert)
    if isinstance(found, PecReceipt):
        transport = PecTransport(
            kind="receipt", transport=found.kind, envelope_message_id=found.message_id,
            envelope_from=mail.from_addr, daticert=daticert, signed=found.signed,
            notes=found.notes, refers_to=found.refers_to)
        return replace(mail, pec=transport)
    transport = PecTransport(
        kind="envelope", transport=found.transport, envelope_message_id=found.message_id,
        envelope_from=found.envelope_from, daticert=daticert, signed=found.signed,
        notes=found.notes)
    if found.inner is None or found.transport != "posta-certificata":
        # An anomaly envelope (X-Trasporto: errore) stays the provider's notice:
        # automatic mail, never answered (mime.autoreply).
        return replace(mail, pec=transport,
                       defects=(*mail.defects, *(f"PEC: {note}" for note in found.notes)))
    inner = _parse(found.inner, limit, unwrap_pec=False)
    return replace(inner, pec=transport,
                   defects=(*inner.defects, *(f"PEC: {note}" for note in found.notes)))


def _daticert_record(daticert: DatiCert | None) -> dict[str, object] | None:
    """``daticert.xml`` as JSON-able data, to store beside the application or the reply."""
    if daticert is None:
        return None
    record: dict[str, object] = asdict(daticert)
    record["recipients"] = [list(pair) for pair in daticert.recipients]
    record["time"] = daticert.time.isoformat() if daticert.time is not None else None
    return record
