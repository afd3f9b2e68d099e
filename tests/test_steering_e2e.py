"""No one steers another's application (issue 10): forged resubmissions, CSR
replay, NEW LINK floods and reference probing, through Dovecot, the SMTP
server, SQLite and the web listener.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from sqlalchemy import select

from intake.app.replies import now_utc
from intake.config import load_config
from intake.demo.samples import application_mail, filled_form, make_csr
from intake.errors import ConfigurationError
from intake.jobs import ExpireVerificationLinks
from intake.store.models import (
    Application,
    HeldChange,
    IssuedCertificateRow,
    KeyValue,
    VerificationToken,
)
from intake.web.server import start_web
from tests.daemon_env import (
    EA,
    GOOD,
    ROOT,
    TO,
    Deployment,
    good_mail,
    make_deployment,
    reference_of,
    text_of,
)
from tests.test_e2e import fetch, verification_link
from tests.test_resubmission_e2e import attachment, state
from tests.test_secrets import write_config

ATTACKER = "mallory@evil.example"
#: The authserv-id of the receiving server in these tests.
MX = "mx.agency.test"


def key_sha256(csr_pem: bytes) -> str:
    csr = x509.load_pem_x509_csr(csr_pem)
    return hashlib.sha256(csr.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).hexdigest()


def in_review(deployment: Deployment, pki: Any) -> tuple[str, bytes, EmailMessage]:
    """A good application whose contact confirmed the link: (reference, its mail, the link mail)."""
    raw = good_mail(pki)
    deployment.deliver(raw)
    deployment.run_once()
    [link] = deployment.replies()
    ref = reference_of(link)
    web = start_web(deployment.runtime())
    try:
        status, _ = fetch(verification_link(link), data=b"")
        assert status == 200
    finally:
        web.shutdown()
    assert state(deployment, ref) == "in-review"
    deployment.run_once()  # sends the in-review notice
    return ref, raw, link


def application(deployment: Deployment, ref: str) -> dict[str, Any]:
    with deployment.runtime() as rt, rt.store.session() as s:
        app = s.scalars(select(Application).where(Application.reference == ref)).one()
        return {"state": app.state, "form_sha256": app.form_sha256, "addresses": app.addresses,
                "csr_der": app.csr_der, "signer": app.signer, "form_values": app.form_values}


def held(deployment: Deployment) -> list[HeldChange]:
    with deployment.runtime() as rt, rt.store.session() as s:
        return list(s.scalars(select(HeldChange).order_by(HeldChange.id)))


def trust_authentication_results(deployment: Deployment) -> None:
    """Name the receiving server's authserv-id for the mailbox ([[mailbox]] authserv_id)."""
    text = deployment.config_path.read_text(encoding="utf-8")
    text = text.replace('name = "applications"\n',
                        f'name = "applications"\nauthserv_id = "{MX}"\n', 1)
    deployment.config_path.write_text(text, encoding="utf-8")


def with_header(raw: bytes, name: str, value: str) -> bytes:
    return f"{name}: {value}\r\n".encode() + raw


def test_forged_from_resubmission_with_an_unsigned_pdf_changes_nothing(
        deployment: Deployment, pki: Any) -> None:
    forged_resubmission_changes_nothing(deployment, pki)


def test_forged_from_resubmission_changes_nothing_on_postgres(
        tmp_path: Any, imap_account: Any, imap_mailbox_config: Any, smtp_server: Any, pki: Any,
        postgres_db: str) -> None:
    dep = make_deployment(tmp_path, imap_account, imap_mailbox_config, smtp_server, pki,
                          database={"url": postgres_db})
    forged_resubmission_changes_nothing(dep, pki)


def forged_resubmission_changes_nothing(deployment: Deployment, pki: Any) -> None:
    ref, raw, link = in_review(deployment, pki)
    before = application(deployment, ref)
    sent = len(deployment.replies())

    # From: the applicant, forged; a junk unsigned PDF naming the attacker as contact.
    junk = filled_form(EA, {**GOOD, "contact_email": ATTACKER, "org_name": "Evil SIA"})
    deployment.deliver(application_mail(
        sender="janis@ergli.example", to=TO, subject=f"Re: [{ref}] labojums", form=junk,
        csr=make_csr("evil.example", "Evil SIA"), in_reply_to=link["Message-ID"]))
    deployment.run_once()

    after = application(deployment, ref)
    assert after == before  # state, form, signer, CSR and addresses untouched
    [change] = held(deployment)
    assert change.status == "held"
    # The contact is asked; the forged sender is the contact, so one mail only.
    new = deployment.replies()[sent:]
    assert [r["To"] for r in new] == ["janis@ergli.example"]
    assert "confirm" in text_of(new[0]).lower()

    # Staff see it: show, list and the digest.
    code, shown = deployment.cli("show", ref)
    assert code == 0 and "held changes:" in shown and f"#{change.id} held" in shown
    code, listed = deployment.cli("list")
    assert "HELD:1" in listed
    code, digest = deployment.cli("digest")
    assert "Changes held for the contact's confirmation" in digest and ref in digest

    # The attacker's address was never added: STATUS from it gets the stranger's answer.
    deployment.deliver(application_mail(sender=ATTACKER, to=TO, subject=f"STATUS [{ref}]"))
    deployment.run_once()
    answer = deployment.replies()[-1]
    assert answer["To"] == ATTACKER
    assert answer["X-Pasts-Reference"] is None and ref not in text_of(answer)


def test_csr_replay_with_the_signed_pdf_is_held_and_approve_certifies_the_original_key(
        deployment: Deployment, pki: Any) -> None:
    ref, raw, link = in_review(deployment, pki)
    original_key = key_sha256(attachment(raw, "request.csr"))
    sent = len(deployment.replies())

    # A copy of the genuine signed PDF with the attacker's own CSR, From: forged.
    evil_csr = make_csr(GOOD["csr_common_name"], GOOD["org_name"])
    deployment.deliver(application_mail(
        sender="janis@ergli.example", to=TO, subject=f"Re: [{ref}]",
        form=attachment(raw, "pieteikums.pdf"), csr=evil_csr, in_reply_to=link["Message-ID"]))
    deployment.run_once()

    assert state(deployment, ref) == "in-review"
    [change] = held(deployment)
    assert change.status == "held" and change.csr_der is not None
    # The contact is told which key would come in, by its fingerprint.
    [confirm] = deployment.replies()[sent:]
    assert key_sha256(evil_csr) in text_of(confirm)

    code, shown = deployment.cli("show", ref)
    assert f"csr key:    sha256 {original_key}" in shown
    assert key_sha256(evil_csr) in shown  # in the held change

    code, approved = deployment.cli("approve", ref)
    assert code == 0, approved
    assert f"CSR key sha256 {original_key}" in approved
    assert f"#{change.id} from janis@ergli.example" in approved
    with deployment.runtime() as rt, rt.store.session() as s:
        [issued] = s.scalars(select(IssuedCertificateRow)).all()
        cert = x509.load_pem_x509_certificate(issued.pem.encode())
    certified = hashlib.sha256(cert.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo)).hexdigest()
    assert certified == original_key


def test_held_change_is_applied_when_the_contact_confirms_through_the_link(
        deployment: Deployment, pki: Any) -> None:
    ref, raw, link = in_review(deployment, pki)
    sent = len(deployment.replies())
    new_csr = make_csr(GOOD["csr_common_name"], GOOD["org_name"])
    deployment.deliver(application_mail(
        sender="janis@ergli.example", to=TO, subject=f"Re: [{ref}]",
        form=attachment(raw, "pieteikums.pdf"), csr=new_csr, in_reply_to=link["Message-ID"]))
    deployment.run_once()
    [confirm] = deployment.replies()[sent:]

    web = start_web(deployment.runtime())
    try:
        status, page = fetch(verification_link(confirm))
        assert status == 200 and "Confirm the change" in page
        assert state(deployment, ref) == "in-review"
        assert key_sha256(new_csr) != key_sha256(attachment(raw, "request.csr"))
        status, page = fetch(verification_link(confirm), data=b"")
        assert status == 200 and "Change confirmed" in page
        status, _ = fetch(verification_link(confirm), data=b"")
        assert status == 410  # single use
    finally:
        web.shutdown()
    [change] = held(deployment)
    assert change.status == "confirmed"
    code, shown = deployment.cli("show", ref)
    assert f"csr key:    sha256 {key_sha256(new_csr)}" in shown
    assert f"held change #{change.id}" in shown  # the key's history says where it came from
    assert state(deployment, ref) == "in-review"


def test_dmarc_pass_from_the_trusted_server_authenticates_a_resubmission(
        deployment: Deployment, pki: Any) -> None:
    trust_authentication_results(deployment)
    ref, raw, link = in_review(deployment, pki)
    junk = filled_form(EA, {**GOOD, "solution_name": "Cits risinājums"})

    def resubmission(authserv_id: str, csr: bytes | None = None) -> bytes:
        mail = application_mail(
            sender="janis@ergli.example", to=TO, subject=f"Re: [{ref}]", form=junk,
            csr=csr or attachment(raw, "request.csr"), in_reply_to=link["Message-ID"])
        return with_header(mail, "Authentication-Results",
                           f"{authserv_id}; spf=pass smtp.mailfrom=ergli.example;\r\n"
                           f" dkim=pass header.d=ergli.example;\r\n"
                           f" dmarc=pass (p=reject) header.from=ergli.example")

    # A header some other server wrote is no proof.
    deployment.deliver(resubmission("mx.evil.example"))
    deployment.run_once()
    assert state(deployment, ref) == "in-review"
    assert [c.status for c in held(deployment)] == ["held"]

    # The trusted server's DMARC pass is: the (unsigned) form is judged and applied.
    deployment.deliver(resubmission(MX))
    deployment.run_once()
    assert state(deployment, ref) == "incomplete"
    assert application(deployment, ref)["form_values"]["solution_name"] == "Cits risinājums"

    # Even an authenticated sender's new CSR key waits for the verified contact.
    before = application(deployment, ref)
    deployment.deliver(resubmission(MX, csr=make_csr(GOOD["csr_common_name"], GOOD["org_name"])))
    deployment.run_once()
    assert application(deployment, ref) == before
    assert [c.status for c in held(deployment)] == ["superseded", "held"]
    assert "a new CSR key (DMARC pass for ergli.example" in held(deployment)[-1].reason


def test_new_link_flood_is_bounded_and_strangers_get_no_link(
        deployment: Deployment, pki: Any) -> None:
    deployment.deliver(good_mail(pki))
    deployment.run_once()
    [first] = deployment.replies()
    ref = reference_of(first)

    # 20 strangers' mails and 20 with the contact's address forged.
    for i in range(20):
        deployment.deliver(application_mail(sender=f"x{i}@evil.example", to=TO,
                                            subject=f"NEW LINK [{ref}]"))
    deployment.run_once()
    links = [r for r in deployment.replies() if r["To"] == "janis@ergli.example"]
    assert len(links) == 1  # strangers got no link
    for _ in range(20):
        deployment.deliver(application_mail(sender="janis@ergli.example", to=TO,
                                            subject=f"NEW LINK [{ref}]"))
    deployment.run_once()
    links = [r for r in deployment.replies()
             if r["To"] == "janis@ergli.example" and "/verify/" in text_of(r)]
    assert len(links) == 3  # verification.max_links_per_day

    web = start_web(deployment.runtime())
    try:
        status, page = fetch(verification_link(links[-1]), data=b"")
        assert status == 200 and "Address confirmed" in page
    finally:
        web.shutdown()
    assert state(deployment, ref) == "in-review"
    code, shown = deployment.cli("show", ref)
    assert "refused NEW LINK: 18 time(s)" in shown
    code, digest = deployment.cli("digest")
    assert "Requests refused" in digest and ref in digest


def test_new_link_from_the_applicant_who_is_not_the_contact_needs_authentication(
        deployment: Deployment, pki: Any) -> None:
    deployment.deliver(good_mail(pki, sender="office@ergli.example"))
    deployment.run_once()
    link = next(r for r in deployment.replies() if r["To"] == "janis@ergli.example")
    ref = reference_of(link)
    deployment.deliver(application_mail(sender="office@ergli.example", to=TO,
                                        subject=f"NEW LINK [{ref}]"))
    deployment.run_once()
    assert len([r for r in deployment.replies() if r["To"] == "janis@ergli.example"]) == 1
    # The open link was not superseded.
    web = start_web(deployment.runtime())
    try:
        status, page = fetch(verification_link(link), data=b"")
        assert status == 200 and "Address confirmed" in page
    finally:
        web.shutdown()


def test_a_strangers_reference_gets_the_same_answer_whether_it_exists_or_not(
        deployment: Deployment, pki: Any) -> None:
    deployment.deliver(good_mail(pki))
    deployment.run_once()
    ref = reference_of(deployment.replies()[0])
    missing = ref[:-6] + "999999"
    deployment.deliver(application_mail(sender=ATTACKER, to=TO, subject=f"Re: [{ref}]"))
    deployment.run_once()
    deployment.deliver(application_mail(sender=ATTACKER, to=TO, subject=f"Re: [{missing}]"))
    deployment.run_once()
    exists, absent = deployment.replies()[1:]
    for header in ("X-Pasts-Reference", "X-Pasts-Status", "X-Pasts-Codes"):
        assert exists[header] == absent[header], header
    assert text_of(exists) == text_of(absent).replace(missing, ref)
    code, listed = deployment.cli("list")
    assert listed.count("\n") == 1  # no FORM-MISSING application for the made-up one

    # Message-IDs cannot be computed from the ledger row any more.
    naive = hashlib.sha256(b"in:1").hexdigest()[:32]
    assert naive not in deployment.replies()[0]["Message-ID"]
    with deployment.runtime() as rt, rt.store.session() as s:
        assert s.get(KeyValue, "message-id-key") is not None


def test_a_newly_signed_form_by_another_organisations_representative_is_held(
        deployment: Deployment, pki: Any) -> None:
    ref, raw, link = in_review(deployment, pki)
    # The registry now says the test signer represents another organisation only.
    csv_path = deployment.directory / "registry2.csv"
    csv_path.write_text(
        "org_reg_no,org_name,test_env_completed,agreement_received,representatives\n"
        "40003123456,SIA Ērgļu Māja,yes,yes,PNOLV-311299-99999\n"
        "40003999999,SIA Cita,yes,yes,PNOLV-010190-12345\n", encoding="utf-8")
    assert deployment.cli("registry", "import", str(csv_path))[0] == 0
    before = application(deployment, ref)

    # Freshly signed (time-stamped now) for their own organisation, From: forged.
    form = pki.sign(filled_form(EA, {**GOOD, "org_name": "SIA Cita",
                                     "org_reg_no": "40003999999"}), signer="qualified")
    deployment.deliver(application_mail(
        sender="janis@ergli.example", to=TO, subject=f"Re: [{ref}]", form=form,
        csr=attachment(raw, "request.csr"), in_reply_to=link["Message-ID"]))
    deployment.run_once()
    assert application(deployment, ref) == before
    [change] = held(deployment)
    assert change.status == "held" and "no form newly signed by an authorised signer" in change.reason


def test_an_unconfirmed_change_expires_alone_and_the_open_link_still_verifies(
        deployment: Deployment, pki: Any) -> None:
    raw = good_mail(pki)
    deployment.deliver(raw)
    deployment.run_once()
    [link] = deployment.replies()
    ref = reference_of(link)
    # A forged change while the application waits for its contact's verification.
    deployment.deliver(application_mail(
        sender="janis@ergli.example", to=TO, subject=f"Re: [{ref}]",
        form=attachment(raw, "pieteikums.pdf"), csr=make_csr("evil.example"),
        in_reply_to=link["Message-ID"]))
    deployment.run_once()
    [change] = held(deployment)
    runtime = deployment.runtime()
    with runtime.store.session() as s:
        confirm = s.scalars(select(VerificationToken).where(
            VerificationToken.change_id == change.id)).one()
        confirm.expires_at = now_utc() - timedelta(minutes=1)
    ExpireVerificationLinks().run(runtime)
    assert [c.status for c in held(deployment)] == ["expired"]
    assert state(deployment, ref) == "awaiting-verification"  # not verification-expired

    web = start_web(deployment.runtime())
    try:
        status, page = fetch(verification_link(link), data=b"")
        assert status == 200 and "Address confirmed" in page
    finally:
        web.shutdown()
    assert state(deployment, ref) == "in-review"


def test_config_keys_of_steering_are_read_and_errors_name_them(tmp_path: Any) -> None:
    path = write_config(tmp_path, verification={"max_links_per_day": 5})
    text = path.read_text(encoding="utf-8").replace(
        'name = "applications"\n', 'name = "applications"\nauthserv_id = "MX.Agency.test"\n', 1)
    path.write_text(text, encoding="utf-8")
    config = load_config(path)
    assert config.verification.max_links_per_day == 5
    assert config.mailboxes[0].authserv_id == "mx.agency.test"
    assert load_config(ROOT / "config.toml").verification.max_links_per_day == 3

    path.write_text(text.replace('"MX.Agency.test"', '"mx.agency.test; dmarc=pass"'),
                    encoding="utf-8")
    with pytest.raises(ConfigurationError, match="authserv_id"):
        load_config(path)
    path.write_text(text.replace("max_links_per_day = 5", "max_links_per_day = 0"),
                    encoding="utf-8")
    with pytest.raises(ConfigurationError, match="verification.max_links_per_day"):
        load_config(path)
