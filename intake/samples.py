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

from intake.config import WorkflowConfig


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
    from intake.forms import fill_form, render_form

    return fill_form(render_form(workflow), {"form_id": workflow.id, **values})


def sign(pdf: bytes, pki: Any, signer: str = "qualified", *, timestamp: bool = True) -> bytes:
    from signing.pki import sign_pdf

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
