"""Italian signed files end to end (issue 11): real Dovecot, real SMTP, the test PKI.

A ``modulo.pdf.p7m`` (DER, base64, nested), a ``.p7m`` with its ``.tsr`` and a
``.tsd`` are judged like a signed PDF: the PDF inside is the form, every
enveloping level's signature is judged with the same rules, and the codes come
out as for a PDF (SIG-INVALID, SIG-NOT-QUALIFIED, SIG-UNTRUSTED, TS-MISSING).
"""

from __future__ import annotations

import base64
import subprocess
from pathlib import Path
from typing import Any

import pytest

from intake.config import default_workflows
from intake.demo.samples import application_mail, enveloping_signature, filled_form
from intake.mime.parse import parse_message
from tests.daemon_env import TO, Deployment, message_id_of, text_of
from tests.test_p7m import altered, tsd_file, tsr_over

SP = next(w for w in default_workflows() if w.id == "service-publication")
#: A complete service-publication form; its organisation is the registry's
#: (tests/daemon_env.py REGISTRY), whose representative is the qualified signer.
SERVICE = {
    "org_name": "SIA Ērgļu Māja", "org_reg_no": "40003123456",
    "service_name": "Verifica dei permessi di costruzione",
    "service_description": "Verifica lo stato del permesso di costruzione dal numero catastale.",
    "department": "Ufficio servizi digitali", "contact_email": "lucia@comune.example.it",
    "privacy_url": "https://comune.example.it/privacy",
}
NO_VERIFICATION = pytest.mark.sections(verification={"required": False})


def p7m(pki: Any, content: bytes, signer: str = "qualified", *, timestamp: bool = True,
        timestamper: Any = None) -> bytes:
    ts = (timestamper or pki.timestamper) if timestamp else None
    return enveloping_signature(content, pki.signer(signer), ts)


def form() -> bytes:
    return filled_form(SP, SERVICE)


def italian_mail(sender: str, *files: tuple[str, bytes]) -> bytes:
    return application_mail(
        sender=sender, to=TO, subject="Domanda di pubblicazione del servizio",
        attachments=[(name, "application/pkcs7-mime" if name.endswith(".p7m")
                      else "application/octet-stream", data) for name, data in files])


def codes_of(reply: Any) -> list[str]:
    return str(reply["X-Pasts-Codes"] or "").split(",") if reply["X-Pasts-Codes"] else []


def one_reply(dep: Deployment, raw: bytes) -> Any:
    replies = dep.replies_to(message_id_of(raw))
    assert len(replies) == 1, [r["Subject"] for r in replies]
    return replies[0]


def openssl_verifies(tmp_path: Path, pki: Any, der: bytes) -> bytes:
    """``openssl cms -verify`` of an enveloping file: the content it recovers."""
    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(b"".join(Path(p).read_bytes() for p in pki.trust_roots))
    done = subprocess.run(
        ["openssl", "cms", "-verify", "-inform", "DER", "-CAfile", str(bundle),
         "-purpose", "any", "-binary"], input=der, capture_output=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout


def test_p7m_is_classified_by_content_not_by_the_pdf_inside(pki: Any) -> None:
    der = p7m(pki, form())
    for name, data in (("modulo.pdf.p7m", der), ("modulo.p7m", base64.encodebytes(der)),
                       ("allegato.bin", der)):
        mail = parse_message(italian_mail("a@comune.example.it", (name, data)))
        assert mail.form is None, name
        assert mail.signed_file is not None and mail.signed_file.kind == "signed-file", name
        assert mail.carries_form
        assert not any("pkcs7-mime" in d for d in mail.defects), mail.defects
    tsr = tsr_over(pki, der)
    mail = parse_message(italian_mail("a@comune.example.it", ("modulo.pdf.p7m", der),
                                      ("modulo.pdf.p7m.tsr", tsr)))
    assert mail.timestamp_reply is not None and mail.timestamp_reply.data == tsr


@NO_VERIFICATION
def test_italian_signed_files_are_judged_like_a_signed_pdf(
        deployment: Deployment, pki: Any, tmp_path: Path) -> None:
    inner = form()
    good = p7m(pki, inner)
    assert openssl_verifies(tmp_path, pki, good) == inner  # an independent tool agrees
    nested = p7m(pki, p7m(pki, inner, "qualified-2"))
    untimestamped = p7m(pki, inner, timestamp=False)
    # Another signature, so as not to be a DUPLICATE of the untimestamped one.
    stamped_apart = p7m(pki, filled_form(SP, {**SERVICE, "department": "Protocollo"}),
                        timestamp=False)
    mails = {
        "der": italian_mail("der@comune.example.it", ("modulo.pdf.p7m", good)),
        "base64": italian_mail("b64@comune.example.it",
                               ("modulo.pdf.p7m", base64.encodebytes(p7m(pki, inner)))),
        "nested": italian_mail("nested@comune.example.it", ("modulo.pdf.p7m.p7m", nested)),
        "altered": italian_mail("altered@comune.example.it",
                                ("modulo.pdf.p7m", altered(p7m(pki, inner), inner))),
        "nonqualified": italian_mail("nq@comune.example.it",
                                     ("modulo.pdf.p7m", p7m(pki, inner, "nonqualified"))),
        "untrusted": italian_mail("untrusted@comune.example.it",
                                  ("modulo.pdf.p7m", p7m(pki, inner, "untrusted"))),
        "untimestamped": italian_mail("nots@comune.example.it",
                                      ("modulo.pdf.p7m", untimestamped)),
        "with-tsr": italian_mail("tsr@comune.example.it", ("modulo.pdf.p7m", stamped_apart),
                                 ("modulo.pdf.p7m.tsr", tsr_over(pki, stamped_apart))),
        "tsd": italian_mail("tsd@comune.example.it", ("modulo.pdf.p7m.tsd", tsd_file(
            pki, p7m(pki, inner, timestamp=False)))),
        "untrusted-tsa": italian_mail("badtsa@comune.example.it", ("modulo.pdf.p7m", p7m(
            pki, inner, timestamper=pki.untrusted_timestamper))),
        "pades-inside": italian_mail("pades@comune.example.it", ("modulo.pdf.p7m", p7m(
            pki, pki.sign(inner, signer="nonqualified", timestamp=True)))),
    }
    for raw in mails.values():
        deployment.deliver(raw)
    assert deployment.run_once() == 0
    replies = {key: one_reply(deployment, raw) for key, raw in mails.items()}
    for key in ("der", "base64", "nested", "with-tsr", "tsd"):
        assert codes_of(replies[key]) == [], (key, codes_of(replies[key]))
        assert replies[key]["X-Pasts-Status"] == "in-review", key
        assert replies[key]["X-Pasts-Reference"].startswith("IO-"), key
        assert replies[key]["Content-Language"] == "it", key
    assert codes_of(replies["altered"]) == ["SIG-INVALID"]
    # (Neither signer is the organisation's representative in the registry.)
    assert codes_of(replies["nonqualified"]) == ["SIG-NOT-QUALIFIED", "SIGNER-NOT-AUTHORISED"]
    assert "SIG-UNTRUSTED" in codes_of(replies["untrusted"])
    assert codes_of(replies["untimestamped"]) == ["TS-MISSING"]
    assert "TS-UNTRUSTED" in codes_of(replies["untrusted-tsa"])
    # The PDF inside is read as if it had arrived alone: its PAdES signer is judged too.
    assert codes_of(replies["pades-inside"]) == ["SIG-NOT-QUALIFIED"]
    # The Italian sentence of the code, not only the code.
    assert "SIG-INVALID" in text_of(replies["altered"])

    # pasts show tells each level and the time-stamp that dated the signer.
    status, shown = deployment.cli("show", replies["nested"]["X-Pasts-Reference"])
    assert status == 0
    assert "level 1 of 2" in shown and "level 2 of 2" in shown
    assert "modulo.pdf.p7m.p7m: .p7m, 2 level(s)" in shown
    status, shown = deployment.cli("show", replies["with-tsr"]["X-Pasts-Reference"])
    assert "dated by the time-stamp over the whole file" in shown
    assert "time-stamp over the file (tsr)" in shown
    assert "service_name: Verifica dei permessi di costruzione" in shown
