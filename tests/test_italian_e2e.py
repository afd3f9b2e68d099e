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


def _workflows_with(wid: str, **changes: Any) -> list[dict[str, Any]]:
    import tomllib

    from tests.daemon_env import ROOT

    tables = tomllib.loads((ROOT / "rules" / "workflows.toml").read_text("utf-8"))["workflow"]
    return [{**t, **changes} if t["id"] == wid else t for t in tables]


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


def old_tsa(pki: Any) -> Any:
    """The trusted TSA, answering with a time three days ago (tests/test_codes_e2e.py)."""
    from datetime import UTC, datetime

    from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
    from pyhanko_certvalidator.registry import SimpleCertificateStore

    from tests.test_codes_e2e import TOO_OLD

    demo = pki.pki
    chain = [demo.asn1_certificate(n) for n in ("tsa", "root")]
    return DummyTimeStamper(tsa_cert=demo.asn1_certificate("tsa"), tsa_key=demo.asn1_key("tsa"),
                            certs_to_embed=SimpleCertificateStore.from_certs(chain),
                            fixed_dt=datetime.now(UTC) - TOO_OLD)


@pytest.mark.sections(verification={"required": False},
                      workflow=_workflows_with("service-publication", max_age_days=1))
def test_time_stamps_of_italian_files_feed_the_age_rule(deployment: Deployment, pki: Any) -> None:
    """SIG-TOO-OLD from the signer's own time-stamp, and from a .tsr that dates the file."""
    from tests.test_p7m import m7m_bundle

    def variant(n: int) -> bytes:
        return filled_form(SP, {**SERVICE, "department": f"Ufficio {n}"})

    stale = old_tsa(pki)
    bare = p7m(pki, variant(2), timestamp=False)
    bundled = p7m(pki, variant(3), timestamp=False)
    armoured = b"-----BEGIN PKCS7-----\n" + base64.encodebytes(p7m(pki, variant(4))) + (
        b"-----END PKCS7-----\n")
    mails = {
        "too-old": italian_mail("old@comune.example.it",
                                ("modulo.pdf.p7m", p7m(pki, variant(1), timestamper=stale))),
        "tsr-too-old": italian_mail("oldtsr@comune.example.it", ("modulo.pdf.p7m", bare),
                                    ("modulo.pdf.p7m.tsr", tsr_over(pki, bare, stale))),
        "m7m": italian_mail("m7m@comune.example.it", ("modulo.pdf.m7m", m7m_bundle(
            bundled, tsr_over(pki, bundled)))),
        "pem": italian_mail("pem@comune.example.it", ("modulo.pdf.p7m", armoured)),
    }
    for raw in mails.values():
        deployment.deliver(raw)
    assert deployment.run_once() == 0
    replies = {key: one_reply(deployment, raw) for key, raw in mails.items()}
    assert codes_of(replies["too-old"]) == ["SIG-TOO-OLD"]
    assert codes_of(replies["tsr-too-old"]) == ["SIG-TOO-OLD"]
    assert codes_of(replies["m7m"]) == []
    assert codes_of(replies["pem"]) == []


# -- PEC -------------------------------------------------------------------------------------

APPLICANT = "protocollo@pec.comune.example.it"


def pec_sections(pki: Any) -> dict[str, Any]:
    return {"signing": {"pec_anchors": [str(p) for p in pki.trust_roots]},
            "verification": {"required": False}}


def test_pec_envelope_is_answered_once_to_the_inner_sender_and_receipts_are_recorded(
        tmp_path: Path, imap_account: Any, imap_mailbox_config: Any, smtp_server: Any,
        pki: Any) -> None:
    from intake.demo.samples import pec_envelope, pec_receipt
    from tests.daemon_env import make_deployment

    dep = make_deployment(tmp_path, imap_account, imap_mailbox_config, smtp_server, pki,
                          **pec_sections(pki))
    inner = application_mail(
        sender=f"Comune di Prova <{APPLICANT}>", to=TO, subject="Domanda di pubblicazione",
        attachments=[("modulo.pdf.p7m", "application/pkcs7-mime", p7m(pki, form()))])
    # The provider's seal is not a qualified e-signature: judged as the applicant's,
    # it would be SIG-NOT-QUALIFIED (and the mail's signer the provider).
    envelope = pec_envelope(inner, provider_signer=pki.signer("nonqualified"), to=TO,
                            identifier="opec21.20261203.1@pec.gestore.example.it")
    dep.deliver(envelope)
    assert dep.run_once() == 0
    inner_id = message_id_of(inner)
    assert dep.replies_to(message_id_of(envelope)) == []
    (reply,) = dep.replies()
    assert reply["To"] == APPLICANT  # the applicant's PEC address, not the provider's
    assert reply["In-Reply-To"] == inner_id  # in the thread of the original
    assert codes_of(reply) == [] and reply["X-Pasts-Status"] == "in-review"
    reference = reply["X-Pasts-Reference"]
    status, shown = dep.cli("show", reference)
    assert status == 0
    assert f"applicant:  {APPLICANT}" in shown
    assert "PEC envelope <opec21.20261203.1@pec.gestore.example.it>" in shown
    assert f"certified sender {APPLICANT}" in shown
    assert "provider's signature (transport evidence): intact, trusted" in shown
    # The applicant's signer is the .p7m's, not the provider's (the nonqualified test signer).
    signer = shown.split("signer:")[1].split("verdicts:")[0]
    assert "PNOLV-010190-12345" in signer and "Kalniņš" not in signer
    assert "(PEC provider" not in shown.split("verdicts:")[1].split("PEC envelope")[0]

    # Seen again (a second delivery of the same envelope): not answered twice.
    dep.deliver(envelope)
    assert dep.run_once() == 0
    assert len(dep.replies()) == 1

    # The receipts of our reply: recorded on it, never answered.
    ours = str(reply["Message-ID"])
    provider = pki.signer("nonqualified")
    for kind in ("accettazione", "avvenuta-consegna"):
        dep.deliver(pec_receipt(kind, refers_to=ours, provider_signer=provider, to=TO,
                                delivered_to=APPLICANT))
    dep.deliver(pec_receipt("errore-consegna", refers_to="<unknown@agency.test>",
                            provider_signer=provider, to=TO))
    assert dep.run_once() == 0
    assert len(dep.replies()) == 1
    status, shown = dep.cli("show", reference)
    assert f"{ours}" in shown and "[PEC: accettazione, avvenuta-consegna; delivered]" in shown
    assert "PEC avvenuta-consegna" in shown and f"to {APPLICANT}" in shown
    assert "PEC accettazione" in shown
    assert "provider's signature not trusted" not in shown


def test_a_failure_receipt_is_recorded_and_shown_to_staff(
        tmp_path: Path, imap_account: Any, imap_mailbox_config: Any, smtp_server: Any,
        pki: Any) -> None:
    from intake.demo.samples import pec_envelope, pec_receipt
    from tests.daemon_env import make_deployment

    dep = make_deployment(tmp_path, imap_account, imap_mailbox_config, smtp_server, pki,
                          **pec_sections(pki))
    inner = application_mail(sender=APPLICANT, to=TO, subject="Domanda",
                             attachments=[("modulo.pdf.p7m", "application/pkcs7-mime",
                                           p7m(pki, form(), timestamp=False))])
    dep.deliver(pec_envelope(inner, provider_signer=pki.signer("nonqualified"), to=TO))
    assert dep.run_once() == 0
    (reply,) = dep.replies()
    assert codes_of(reply) == ["TS-MISSING"]  # the applicant's signature, judged
    # A receipt whose provider is not under signing.pec_anchors is kept, marked.
    dep.deliver(pec_receipt("errore-consegna", refers_to=str(reply["Message-ID"]),
                            provider_signer=pki.signer("untrusted"), to=TO))
    assert dep.run_once() == 0
    assert len(dep.replies()) == 1
    status, shown = dep.cli("show", reply["X-Pasts-Reference"])
    assert "[PEC: errore-consegna; failed]" in shown and "provider's signature not trusted" in shown
    status, digest = dep.cli("digest")
    assert status == 0
    assert f"{reply['Message-ID']}  to {APPLICANT}  PEC errore-consegna" in digest


def test_pec_anchors_is_read_and_a_missing_file_names_the_key(tmp_path: Path) -> None:
    from intake.config import parse_config
    from intake.errors import ConfigurationError
    from tests.test_operations import base_config

    anchor = tmp_path / "gestore.pem"
    anchor.write_text("-----BEGIN CERTIFICATE-----\n")
    config = parse_config(base_config(tmp_path, signing={"pec_anchors": [str(anchor)]}),
                          tmp_path / "c.toml")
    assert config.signing.pec_anchors == (anchor,)
    assert parse_config(base_config(tmp_path), tmp_path / "c.toml").signing.pec_anchors == ()
    with pytest.raises(ConfigurationError) as caught:
        parse_config(base_config(tmp_path, signing={"pec_anchors": [str(tmp_path / "none.pem")]}),
                     tmp_path / "c.toml")
    assert "signing.pec_anchors" in str(caught.value)


def test_a_receipt_is_kept_once_and_a_failure_outweighs_a_delivery(tmp_path: Path, pki: Any) -> None:
    from intake.app.receipts import record_receipt
    from intake.demo.samples import pec_receipt
    from intake.store.engine import open_store
    from intake.store.models import Outbox

    store = open_store(f"sqlite:///{tmp_path / 'pasts.db'}")
    ours = "<pasts.1@agency.test>"
    with store.session() as s, s.begin():
        s.add(Outbox(key="in:1", message_id=ours, sender=TO, recipients=[APPLICANT],
                     to_addr=APPLICANT, raw=b"x", status="sent"))
    provider = pki.signer("nonqualified")
    delivered = parse_message(pec_receipt("avvenuta-consegna", refers_to=ours,
                                          provider_signer=provider, to=TO, delivered_to=APPLICANT))
    failed = parse_message(pec_receipt("errore-consegna", refers_to=ours,
                                       provider_signer=provider, to=TO))
    assert delivered.no_reply_reason is not None and delivered.pec is not None
    with store.session() as s, s.begin():
        row = record_receipt(s, delivered, {"trusted": True})
        assert row is not None and row.pec_status == "delivered"
        record_receipt(s, delivered, {"trusted": True})  # the same receipt again
    with store.session() as s, s.begin():
        row = record_receipt(s, failed)
        assert row is not None
    with store.session() as s:
        (row,) = s.query(Outbox).all()
        assert [r["kind"] for r in row.pec_receipts] == ["avvenuta-consegna", "errore-consegna"]
        assert row.pec_status == "failed"
        assert row.pec_receipts[0]["delivered_to"] == APPLICANT
        assert row.pec_receipts[0]["trusted"] and not row.pec_receipts[1]["trusted"]
    # A receipt about a mail pasts never sent is recorded nowhere.
    other = parse_message(pec_receipt("accettazione", refers_to="<someone@else>",
                                      provider_signer=provider, to=TO))
    with store.session() as s, s.begin():
        assert record_receipt(s, other) is None


def test_an_over_limit_p7m_is_still_the_applicants_signed_file(pki: Any) -> None:
    """Answered FORM-UNREADABLE ('over limits'), not FORM-MISSING."""
    der = p7m(pki, form())
    mail = parse_message(italian_mail("big@comune.example.it", ("modulo.pdf.p7m", der)),
                         max_attachment_bytes=len(der) - 1)
    assert mail.signed_file is not None and mail.signed_file.dropped_size == len(der)
    assert mail.carries_form


def test_a_pec_certified_sender_may_change_its_application(
        tmp_path: Path, imap_account: Any, imap_mailbox_config: Any, smtp_server: Any,
        pki: Any) -> None:
    """A resubmission by PEC whose provider (under signing.pec_anchors) certifies one of
    the application's addresses is authenticated, as a DMARC pass is; one whose
    provider is not trusted is held for the contact's confirmation."""
    from intake.demo.samples import pec_envelope
    from tests.daemon_env import make_deployment

    dep = make_deployment(tmp_path, imap_account, imap_mailbox_config, smtp_server, pki,
                          **pec_sections(pki))

    def by_pec(values: dict[str, str], *, provider: str = "nonqualified",
               in_reply_to: str | None = None, subject: str = "Domanda") -> bytes:
        signed = p7m(pki, filled_form(SP, {**SERVICE, **values}), timestamp=False)
        inner = application_mail(sender=APPLICANT, to=TO, subject=subject,
                                 in_reply_to=in_reply_to,
                                 attachments=[("modulo.pdf.p7m", "application/pkcs7-mime",
                                               signed)])
        return pec_envelope(inner, provider_signer=pki.signer(provider), to=TO)

    dep.deliver(by_pec({"privacy_url": "http://comune.example.it/privacy"}))
    assert dep.run_once() == 0
    (first,) = dep.replies()
    assert codes_of(first) == ["FORM-FIELD-INVALID:privacy_url", "TS-MISSING"]
    reference = first["X-Pasts-Reference"]

    # Not signature-authenticated (TS-MISSING), but certified by a trusted PEC provider.
    dep.deliver(by_pec({}, in_reply_to=str(first["Message-ID"]),
                       subject=f"Re: {first['Subject']}"))
    assert dep.run_once() == 0
    status, shown = dep.cli("show", reference)
    assert "privacy_url: https://comune.example.it/privacy" in shown
    assert codes_of(dep.replies()[-1]) == ["TS-MISSING"]

    # A provider outside signing.pec_anchors certifies nothing: the change is held.
    dep.deliver(by_pec({"department": "Altro ufficio"}, provider="untrusted",
                       in_reply_to=str(first["Message-ID"]), subject=f"Re: {first['Subject']}"))
    assert dep.run_once() == 0
    status, shown = dep.cli("show", reference)
    assert "department: Ufficio servizi digitali" in shown
    assert "change-held to protocollo@pec.comune.example.it" in shown


def test_a_broken_provider_seal_is_recorded_and_the_applicant_still_answered(
        tmp_path: Path, imap_account: Any, imap_mailbox_config: Any, smtp_server: Any,
        pki: Any) -> None:
    from intake.demo.samples import pec_envelope
    from tests.daemon_env import make_deployment

    dep = make_deployment(tmp_path, imap_account, imap_mailbox_config, smtp_server, pki,
                          **pec_sections(pki))
    inner = application_mail(sender=APPLICANT, to=TO, subject="Domanda",
                             attachments=[("modulo.pdf.p7m", "application/pkcs7-mime",
                                           p7m(pki, form()))])
    dep.deliver(pec_envelope(inner, provider_signer=pki.signer("nonqualified"), to=TO,
                             tamper=True))
    assert dep.run_once() == 0
    (reply,) = dep.replies()
    # The applicant's own signature is what is judged; the seal is only evidence.
    assert reply["To"] == APPLICANT and codes_of(reply) == []
    status, shown = dep.cli("show", reply["X-Pasts-Reference"])
    assert "provider's signature (transport evidence): NOT intact" in shown
