"""Resubmissions in the thread that meet DUPLICATE and e-mail verification.

Real Dovecot inbox, real SMTP server, real PKI, real verification endpoint.
"""

from __future__ import annotations

from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

from intake.demo.samples import application_mail, filled_form, make_csr
from intake.web.server import start_web
from tests.daemon_env import EA, GOOD, TO, Deployment, good_mail, reference_of
from tests.test_e2e import fetch, verification_link


def attachment(raw: bytes, name: str) -> bytes:
    """The bytes of the attachment ``name`` of the mail ``raw``."""
    msg = message_from_bytes(raw, policy=default_policy)
    assert isinstance(msg, EmailMessage)
    for part in msg.iter_attachments():
        if part.get_filename() == name:
            data = part.get_content()
            return data if isinstance(data, bytes) else data.encode()
    raise KeyError(name)


def reply_in_thread(notice: EmailMessage, *, form: bytes, csr: bytes) -> bytes:
    return application_mail(sender="janis@ergli.example", to=TO,
                            subject=f"Re: {notice['Subject']}", form=form, csr=csr,
                            in_reply_to=notice["Message-ID"])


def state(deployment: Deployment, ref: str) -> str:
    code, shown = deployment.cli("show", ref)
    assert code == 0
    return shown.split("state:", 1)[1].split("\n", 1)[0].strip()


def test_same_signed_form_with_a_corrected_csr_in_the_thread_is_not_a_duplicate(
        deployment: Deployment, pki: Any) -> None:
    # The form is fine, only the CSR's key is weak. The applicant replies in the
    # thread with the same signed form and a new CSR, as the notice asks.
    form = pki.sign(filled_form(EA, GOOD), "qualified")
    deployment.deliver(application_mail(
        sender="janis@ergli.example", to=TO, subject="Pieteikums", form=form,
        csr=make_csr(GOOD["csr_common_name"], GOOD["org_name"], bits=1024)))
    deployment.run_once()
    [notice] = deployment.replies()
    ref = reference_of(notice)
    assert notice["X-Pasts-Codes"] == "CSR-KEY-WEAK"

    deployment.deliver(reply_in_thread(
        notice, form=form, csr=make_csr(GOOD["csr_common_name"], GOOD["org_name"])))
    deployment.run_once()
    # The same signed form proves nothing about who sent the new CSR: the
    # change waits for the contact's confirmation (issue 10), it is no DUPLICATE.
    [confirm] = deployment.replies()[1:]
    assert confirm["X-Pasts-Reference"] == ref
    assert confirm["To"] == "janis@ergli.example"
    assert "DUPLICATE" not in (confirm["X-Pasts-Codes"] or "")
    assert state(deployment, ref) == "incomplete"

    web = start_web(deployment.runtime())
    try:
        status, page = fetch(verification_link(confirm), data=b"")
        assert status == 200 and "Change confirmed" in page
    finally:
        web.shutdown()
    # The corrected application goes on; the click came from the contact's
    # own mailbox, so the address is verified too.
    assert state(deployment, ref) == "in-review"


def test_same_application_sent_again_in_the_thread_keeps_its_state(
        deployment: Deployment, pki: Any) -> None:
    raw = good_mail(pki)
    deployment.deliver(raw)
    deployment.run_once()
    [link_mail] = deployment.replies()
    ref = reference_of(link_mail)
    assert state(deployment, ref) == "awaiting-verification"

    # The applicant sends the very same form and CSR again, replying in the thread.
    deployment.deliver(reply_in_thread(link_mail, form=attachment(raw, "pieteikums.pdf"),
                                       csr=attachment(raw, "request.csr")))
    deployment.run_once()
    second = deployment.replies()[-1]
    assert second["X-Pasts-Reference"] == ref
    assert second["X-Pasts-Status"] != "incomplete", second["X-Pasts-Codes"]
    assert state(deployment, ref) == "awaiting-verification"


def test_contact_changed_on_resubmission_is_verified_by_the_new_link_alone(
        deployment: Deployment, pki: Any) -> None:
    deployment.deliver(good_mail(pki))
    deployment.run_once()
    [link_to_old] = deployment.replies()
    ref = reference_of(link_to_old)
    assert link_to_old["To"] == "janis@ergli.example"

    # A corrected form, sent in the thread, names another contact address.
    corrected = good_mail(pki, contact_email="j.berzins@ergli.example")
    deployment.deliver(reply_in_thread(link_to_old,
                                       form=attachment(corrected, "pieteikums.pdf"),
                                       csr=attachment(corrected, "request.csr")))
    deployment.run_once()
    [link_to_new] = [r for r in deployment.replies() if r["To"] == "j.berzins@ergli.example"]
    assert link_to_new["X-Pasts-Reference"] == ref

    web = start_web(deployment.runtime())
    try:
        status, page = fetch(verification_link(link_to_new), data=b"")
        assert status == 200 and "Address confirmed" in page
        # The application waits on its current contact only.
        assert state(deployment, ref) == "in-review"
        # The old contact's link verifies nothing any more.
        status, _ = fetch(verification_link(link_to_old), data=b"")
        assert status == 410
    finally:
        web.shutdown()
    assert state(deployment, ref) == "in-review"
