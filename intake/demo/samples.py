"""Sample applications: signed forms, CSRs and the mails that carry them.

Used by ``pasts demo`` and by the end-to-end tests, so both exercise the same
real artefacts: forms rendered from the workflow definitions, filled with
Unicode values, signed with pyHanko (PAdES) by the demo PKI.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping, Sequence
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from io import BytesIO
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from rules.workflow import WorkflowConfig


def make_csr_and_key(common_name: str, organisation: str | None = None, *,
                     bits: int = 2048) -> tuple[bytes, rsa.RSAPrivateKey]:
    """A PEM CSR for a fresh RSA key, and that key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organisation:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organisation))
    csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs)).sign(
        key, hashes.SHA256()
    )
    return csr.public_bytes(serialization.Encoding.PEM), key


def make_csr(common_name: str, organisation: str | None = None, *, bits: int = 2048) -> bytes:
    """A PEM CSR for a fresh RSA key (the key is thrown away)."""
    return make_csr_and_key(common_name, organisation, bits=bits)[0]


def filled_form(workflow: WorkflowConfig, values: Mapping[str, str]) -> bytes:
    from intake.forms.fill import fill_form
    from intake.forms.render import render_form

    return fill_form(render_form(workflow), {"form_id": workflow.id, **values})


def sign(pdf: bytes, pki: Any, signer: str = "qualified", *, timestamp: bool = True) -> bytes:
    from signing.testing.pdfs import sign_pdf

    return sign_pdf(pdf, pki.signer(signer), timestamper=pki.timestamper() if timestamp else None)


def change_field_after_signing(pdf: bytes, field: str, value: str) -> bytes:
    """Append an incremental update that changes one field's value (a "form filling" edit)."""
    from pyhanko.pdf_utils.generic import NameObject, TextStringObject
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
    for ref in writer.root["/AcroForm"]["/Fields"]:
        obj = ref.get_object()
        if obj.get("/T") == field:
            obj[NameObject("/V")] = TextStringObject(value)
            writer.update_container(obj)
            break
    else:
        raise KeyError(field)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def embed_revocation_info(pdf: bytes, crls: Sequence[bytes]) -> bytes:
    """Append a DSS (PAdES B-LT style) holding ``crls`` (DER) for the last signature.

    This is how a form carries its own revocation evidence, so it can be
    judged offline (the demo's revoked signer).
    """
    from asn1crypto import crl as asn1_crl
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation.dss import DocumentSecurityStore

    reader = PdfFileReader(BytesIO(pdf), strict=False)
    signature = reader.embedded_regular_signatures[-1]
    out = BytesIO(pdf)
    DocumentSecurityStore.add_dss(
        out, signature.pkcs7_content,
        crls=[asn1_crl.CertificateList.load(der) for der in crls], strict=False,
    )
    return out.getvalue()


def application_mail(
    *,
    sender: str,
    to: str,
    subject: str,
    body: str = "Labdien! Pielikumā pieteikums.\n",
    form: bytes | None = None,
    form_name: str = "pieteikums.pdf",
    csr: bytes | None = None,
    csr_name: str = "request.csr",
    headers: Mapping[str, str] | None = None,
    in_reply_to: str | None = None,
    attachments: Sequence[tuple[str, str, bytes]] = (),
) -> bytes:
    """An applicant's mail as a typical client sends it (multipart/mixed)."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(__import__("datetime").datetime.now().astimezone())
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "example.test")
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = in_reply_to
    for k, v in (headers or {}).items():
        msg[k] = v
    msg.set_content(body)
    if form is not None:
        msg.add_attachment(form, maintype="application", subtype="pdf", filename=form_name)
    if csr is not None:
        msg.add_attachment(csr, maintype="application", subtype="pkcs10", filename=csr_name)
    for name, ctype, data in attachments:
        maintype, _, subtype = ctype.partition("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes(policy=SMTP)


def detached_signature(content: bytes, signer: Any, timestamper: Any = None) -> bytes:
    """A detached CAdES signature (the DER of a ``.p7s``) over ``content``.

    ``signer`` is a pyHanko signer, ``timestamper`` a pyHanko time-stamper or
    ``None`` for no signature time-stamp.
    """
    import asyncio

    signature = asyncio.run(signer.async_sign_general_data(
        content, "sha256", detached=True, use_cades=True, timestamper=timestamper,
    ))
    return bytes(signature.dump())


def smime_signed_mail(
    *,
    sender: str,
    to: str,
    subject: str,
    signer: Any,
    timestamper: Any = None,
    body: str = "Labdien! Pielikumā pieteikums.\n",
    form: bytes | None = None,
    form_name: str = "pieteikums.pdf",
    csr: bytes | None = None,
    tamper: bool = False,
) -> bytes:
    """A ``multipart/signed`` S/MIME mail (RFC 8551) whose signed content holds the form.

    With ``tamper`` the signed content is altered after signing, as a relay
    that rewrites the body would.
    """
    inner = MIMEPart(policy=SMTP)
    inner.set_content(body)
    if form is not None:
        inner.add_attachment(form, maintype="application", subtype="pdf", filename=form_name)
    if csr is not None:
        inner.add_attachment(csr, maintype="application", subtype="pkcs10",
                             filename="request.csr")
    content = inner.as_bytes(policy=SMTP)
    signature = detached_signature(content, signer, timestamper)
    if tamper:
        content = content.replace(b"Labdien", b"Labrit", 1)
    boundary = f"----pasts-signed-{secrets.token_hex(8)}"
    head = EmailMessage(policy=SMTP)
    head["From"] = sender
    head["To"] = to
    head["Subject"] = subject
    head["Date"] = format_datetime(__import__("datetime").datetime.now().astimezone())
    head["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "example.test")
    head["MIME-Version"] = "1.0"
    content_type = (
        f'Content-Type: multipart/signed; protocol="application/pkcs7-signature";\r\n'
        f' micalg=sha-256; boundary="{boundary}"\r\n\r\n'
    )
    b64 = base64.encodebytes(signature).replace(b"\n", b"\r\n")
    return b"".join([
        head.as_bytes(policy=SMTP).rstrip(b"\r\n") + b"\r\n", content_type.encode(),
        b"This is a cryptographically signed message in MIME format.\r\n\r\n",
        f"--{boundary}\r\n".encode(), content, f"\r\n--{boundary}\r\n".encode(),
        b"Content-Type: application/pkcs7-signature; name=smime.p7s\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment; filename=smime.p7s\r\n\r\n",
        b64, f"\r\n--{boundary}--\r\n".encode(),
    ])


# -- Italian signed files and PEC (issue 11) ----------------------------------------------


def enveloping_signature(content: bytes, signer: Any, timestamper: Any = None) -> bytes:
    """An enveloping CAdES SignedData over ``content`` (the DER of a ``.p7m``).

    ``signer`` is a pyHanko signer, ``timestamper`` a pyHanko time-stamper or
    ``None`` for no signature time-stamp. Wrap the result again for a ``.p7m.p7m``.
    """
    import asyncio

    signature = asyncio.run(signer.async_sign_general_data(
        content, "sha256", detached=False, use_cades=True, timestamper=timestamper,
    ))
    return bytes(signature.dump())


def daticert_xml(*, sender: str, recipients: Sequence[str], subject: str, identifier: str,
                 message_id: str, kind: str = "posta-certificata", error: str = "nessuno",
                 provider: str = "Gestore PEC di prova S.p.A.",
                 when: Any = None, delivered_to: str | None = None) -> bytes:
    """A ``daticert.xml`` as PEC providers write it (DM 2 November 2005, allegato)."""
    from datetime import datetime
    from xml.sax.saxutils import escape

    when = when or datetime.now().astimezone()
    offset = when.strftime("%z") or "+0000"
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<postacert tipo="{escape(kind)}" errore="{escape(error)}">',
        "<intestazione>",
        f"<mittente>{escape(sender)}</mittente>",
        *(f'<destinatari tipo="certificato">{escape(r)}</destinatari>' for r in recipients),
        f"<risposte>{escape(sender)}</risposte>",
        f"<oggetto>{escape(subject)}</oggetto>",
        "</intestazione>",
        "<dati>",
        f"<gestore-emittente>{escape(provider)}</gestore-emittente>",
        f'<data zona="{offset}"><giorno>{when:%d/%m/%Y}</giorno><ora>{when:%H:%M:%S}</ora></data>',
        f"<identificativo>{escape(identifier)}</identificativo>",
        f"<msgid>{escape(message_id)}</msgid>",
        '<ricevuta tipo="completa" />',
        *([f"<consegna>{escape(delivered_to)}</consegna>"] if delivered_to else []),
        "</dati>",
        "</postacert>",
    ]
    return "\n".join(lines).encode("utf-8")


def _mixed(parts: Sequence[bytes]) -> bytes:
    """A ``multipart/mixed`` entity of ``parts`` (each headers and body, CRLF), byte for byte."""
    boundary = f"----pasts-mixed-{secrets.token_hex(8)}".encode()
    out = [b'Content-Type: multipart/mixed; boundary="' + boundary + b'"\r\n\r\n']
    for part in parts:
        out += [b"--" + boundary + b"\r\n", part, b"\r\n"]
    out.append(b"--" + boundary + b"--\r\n")
    return b"".join(out)


def _provider_signed(content: bytes, headers: Mapping[str, str], signer: Any) -> bytes:
    """``content`` (a MIME entity, CRLF) in a ``multipart/signed`` mail signed by ``signer``."""
    signature = detached_signature(content, signer)
    boundary = f"----pasts-pec-{secrets.token_hex(8)}"
    head = EmailMessage(policy=SMTP)
    for name, value in headers.items():
        head[name] = value
    head["MIME-Version"] = "1.0"
    content_type = (
        f'Content-Type: multipart/signed; protocol="application/x-pkcs7-signature";\r\n'
        f' micalg=sha-256; boundary="{boundary}"\r\n\r\n'
    )
    b64 = base64.encodebytes(signature).replace(b"\n", b"\r\n")
    return b"".join([
        head.as_bytes(policy=SMTP).rstrip(b"\r\n") + b"\r\n", content_type.encode(),
        b"This is an S/MIME signed message\r\n\r\n",
        f"--{boundary}\r\n".encode(), content, f"\r\n--{boundary}\r\n".encode(),
        b"Content-Type: application/x-pkcs7-signature; name=smime.p7s\r\n"
        b"Content-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment; filename=smime.p7s\r\n\r\n",
        b64, f"\r\n--{boundary}--\r\n".encode(),
    ])


def pec_envelope(inner: bytes, *, provider_signer: Any, to: str,
                 provider_address: str = "posta-certificata@pec.gestore.example.it",
                 identifier: str | None = None, daticert: bytes | None = None,
                 tamper: bool = False) -> bytes:
    """A PEC transport envelope around the applicant's mail ``inner`` (``postacert.eml``).

    Signed by ``provider_signer`` (a pyHanko signer) as the provider's S/MIME
    signature; ``tamper`` alters the signed part after signing.
    """
    from email import message_from_bytes
    from email.policy import default

    original = message_from_bytes(inner, policy=default)
    sender = str(original["From"].addresses[0].addr_spec) if original["From"] else ""
    subject = str(original["Subject"] or "")
    identifier = identifier or make_msgid(domain="pec.gestore.example.it")[1:-1]
    daticert = daticert if daticert is not None else daticert_xml(
        sender=sender, recipients=[to], subject=subject, identifier=identifier,
        message_id=str(original["Message-ID"] or ""))
    text = (
        "Messaggio di posta certificata\r\n\r\n"
        f'Il messaggio "{subject}" è stato inviato da "{sender}" indirizzato a: {to}\r\n'
        "Il messaggio originale è incluso in allegato.\r\n"
        f"Identificativo messaggio: {identifier}\r\n")
    content = _mixed([
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes(text.encode("utf-8")).replace(b"\n", b"\r\n"),
        b'Content-Type: application/xml; name="daticert.xml"\r\n'
        b"Content-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: inline; filename="daticert.xml"\r\n\r\n'
        + base64.encodebytes(daticert).replace(b"\n", b"\r\n"),
        # The original exactly as it arrived: message/rfc822 is never re-encoded.
        b'Content-Type: message/rfc822; name="postacert.eml"\r\n'
        + (b"Content-Transfer-Encoding: 8bit\r\n" if not inner.isascii() else b"")
        + b'Content-Disposition: inline; filename="postacert.eml"\r\n\r\n' + inner,
    ])
    signed = _provider_signed(content, {
        "From": f'"Per conto di: {sender}" <{provider_address}>',
        "To": to,
        "Subject": f"POSTA CERTIFICATA: {subject}",
        "Date": format_datetime(__import__("datetime").datetime.now().astimezone()),
        "Message-ID": f"<{identifier}>",
        "X-Riferimento-Message-ID": str(original["Message-ID"] or ""),
        "X-Trasporto": "posta-certificata",
        "X-TipoRicevuta": "completa",
    }, provider_signer)
    if tamper:
        # A header added to the original inside the signed part, as a relay might.
        signed = signed.replace(inner, inner.replace(b"\r\n\r\n", b"\r\nX-Altered: 1\r\n\r\n", 1), 1)
    return signed


def pec_receipt(kind: str, *, refers_to: str, provider_signer: Any, to: str,
                delivered_to: str | None = None,
                provider_address: str = "posta-certificata@pec.gestore.example.it") -> bytes:
    """A PEC receipt (``X-Ricevuta: kind``) about the mail with Message-ID ``refers_to``."""
    identifier = make_msgid(domain="pec.gestore.example.it")[1:-1]
    daticert = daticert_xml(sender=to, recipients=[delivered_to or to], subject="Ricevuta",
                            identifier=identifier, message_id=refers_to, kind=kind,
                            delivered_to=delivered_to)
    content = _mixed([
        b"Content-Type: text/plain; charset=utf-8\r\n\r\n"
        + f"Ricevuta di {kind}\r\nIdentificativo messaggio: {identifier}\r\n".encode(),
        b'Content-Type: application/xml; name="daticert.xml"\r\n'
        b"Content-Transfer-Encoding: base64\r\n"
        b'Content-Disposition: inline; filename="daticert.xml"\r\n\r\n'
        + base64.encodebytes(daticert).replace(b"\n", b"\r\n"),
    ])
    return _provider_signed(content, {
        "From": f'"Posta Certificata" <{provider_address}>',
        "To": to,
        "Subject": f"{kind.upper()}: ricevuta",
        "Date": format_datetime(__import__("datetime").datetime.now().astimezone()),
        "Message-ID": f"<{identifier}>",
        "X-Ricevuta": kind,
        "X-Riferimento-Message-ID": refers_to,
    }, provider_signer)
