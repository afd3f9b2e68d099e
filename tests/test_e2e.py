"""End to end: real Dovecot inbox, real SMTP server with STARTTLS, real PKI, SQLite file."""

from __future__ import annotations

import re
import time
import urllib.error
import urllib.request
from typing import Any

import pytest

from intake.demo.samples import application_mail, filled_form, make_csr
from intake.web.server import start_web
from tests.daemon_env import (
    EA,
    GOOD,
    TO,
    Deployment,
    good_mail,
    message_id_of,
    reference_of,
    text_of,
)


@pytest.mark.sections(verification={"required": False})
def test_signed_application_delivered_twice_is_answered_once_in_thread(
        deployment: Deployment, pki: Any) -> None:
    raw = good_mail(pki)
    deployment.deliver(raw)
    deployment.deliver(raw)
    assert deployment.run_once() == 0

    message_id = message_id_of(raw)
    replies = deployment.replies()
    assert len(replies) == 1, [r["Subject"] for r in replies]
    reply = replies[0]
    assert reply["In-Reply-To"] == message_id
    assert message_id in reply["References"]
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["X-Pasts-Status"] == "in-review"
    assert reply["X-Pasts-Codes"] is None
    ref = reference_of(reply)
    assert deployment.smtp.messages[0].tls  # STARTTLS was used

    # The inbox ends empty; both copies are in the processed folder.
    assert deployment.inbox() == []
    assert len(deployment.inbox("Processed")) == 2

    # A second run answers nothing more.
    assert deployment.run_once() == 0
    assert len(deployment.replies()) == 1

    code, shown = deployment.cli("show", ref)
    assert code == 0
    assert "SIA Ērgļu Māja" in shown and "Jānis Bērziņš" in shown and "Perché sì" in shown
    assert "PNOLV-010190-12345" in shown
    assert "received" in shown and "in-review" in shown


def test_auto_reply_bounce_and_list_mail_get_no_answer(deployment: Deployment) -> None:
    deployment.deliver(application_mail(sender="janis@ergli.example", to=TO, subject="Out of office",
                                        headers={"Auto-Submitted": "auto-replied"}))
    deployment.deliver(application_mail(sender="news@list.example", to=TO, subject="Newsletter",
                                        headers={"List-Id": "<news.list.example>",
                                                 "Precedence": "list"}))
    deployment.deliver(application_mail(sender="MAILER-DAEMON@mx.example", to=TO,
                                        subject="Undelivered Mail Returned to Sender"))
    assert deployment.run_once() == 0
    assert deployment.replies() == []
    assert deployment.inbox() == []
    assert len(deployment.inbox("Processed")) == 3


def test_several_defects_get_one_notice_listing_all(deployment: Deployment, pki: Any) -> None:
    form = filled_form(EA, {**GOOD, "org_reg_no": "123", "contact_email": ""})  # unsigned
    deployment.deliver(application_mail(sender="anna@example.lv", to=TO, subject="Pieteikums",
                                        form=form, csr=make_csr("wrong.example", bits=1024)))
    deployment.run_once()
    [reply] = deployment.replies()
    assert reply["X-Pasts-Status"] == "incomplete"
    codes = reply["X-Pasts-Codes"].split(",")
    assert codes == sorted(codes)
    for code in ("SIG-MISSING", "FORM-FIELD-INVALID:org_reg_no", "FORM-FIELD-MISSING:contact_email",
                 "CSR-KEY-WEAK", "CSR-SUBJECT-MISMATCH"):
        assert code in codes
    body = text_of(reply)
    for code in codes:
        assert code in body


@pytest.mark.sections(limits={"max_attachment_bytes": 20000})
def test_form_over_the_size_limit_is_unreadable_not_missing(deployment: Deployment,
                                                            pki: Any) -> None:
    raw = good_mail(pki)
    deployment.deliver(raw)
    deployment.run_once()
    [reply] = deployment.replies_to(message_id_of(raw))
    codes = reply["X-Pasts-Codes"].split(",")
    assert "FORM-UNREADABLE" in codes
    assert "FORM-MISSING" not in codes
    code, shown = deployment.cli("show", reference_of(reply))
    assert "over the limit of 20000 bytes" in shown


def test_form_missing_gets_a_notice_not_silence(deployment: Deployment) -> None:
    deployment.deliver(application_mail(sender="peteris@example.lv", to=TO, subject="Kā pieteikties?"))
    deployment.run_once()
    [reply] = deployment.replies()
    assert "FORM-MISSING" in reply["X-Pasts-Codes"]
    # Bare words are junk (issue 10): answered, but no application clutters the list.
    assert reply["X-Pasts-Reference"] is None
    assert deployment.cli("list")[1].strip() == "no applications"


@pytest.mark.sections(verification={"required": False})
def test_status_by_mail_only_for_addresses_on_the_application(deployment: Deployment,
                                                               pki: Any) -> None:
    deployment.deliver(good_mail(pki))
    deployment.run_once()
    ref = reference_of(deployment.replies()[0])

    deployment.deliver(application_mail(sender="stranger@evil.example", to=TO,
                                        subject=f"STATUS {ref}"))
    deployment.deliver(application_mail(sender="janis@ergli.example", to=TO,
                                        subject=f"STATUS {ref}"))
    deployment.run_once()
    replies = deployment.replies()[1:]
    assert len(replies) == 2
    stranger = next(r for r in replies if r["To"] == "stranger@evil.example")
    owner = next(r for r in replies if r["To"] == "janis@ergli.example")
    assert stranger["X-Pasts-Status"] is None and stranger["X-Pasts-Reference"] is None
    # The stranger's own subject is echoed, but nothing about the application.
    body = text_of(stranger)
    for secret in ("in-review", "in review", "Ērgļu", "janis@", "40003123456"):
        assert secret not in body
    assert ref not in body
    assert owner["X-Pasts-Status"] == "in-review"


@pytest.mark.sections(smtp={"rate_limit_per_hour": 2})
def test_replies_to_one_sender_are_rate_limited(deployment: Deployment) -> None:
    # A forged or looping sender must not make pasts a source of backscatter.
    for n in range(4):
        deployment.deliver(application_mail(sender="forged@victim.example", to=TO,
                                            subject=f"STATUS EA-2026-00000{n}"))
    deployment.deliver(application_mail(sender="other@example.lv", to=TO,
                                        subject="STATUS EA-2026-000009"))
    assert deployment.run_once() == 0
    to = [str(r["To"]) for r in deployment.replies()]
    assert to.count("forged@victim.example") == 2
    assert to.count("other@example.lv") == 1
    # Every message was still handled and filed.
    assert deployment.inbox() == []
    assert len(deployment.inbox("Processed")) == 5


def test_corrected_resubmission_keeps_its_reference(deployment: Deployment, pki: Any) -> None:
    bad = pki.sign(filled_form(EA, {**GOOD, "org_reg_no": "123"}), signer="qualified")
    first = application_mail(sender="janis@ergli.example", to=TO, subject="Pieteikums", form=bad,
                             csr=make_csr(GOOD["csr_common_name"]))
    deployment.deliver(first)
    deployment.run_once()
    [notice] = deployment.replies()
    ref = reference_of(notice)
    assert notice["X-Pasts-Codes"] == "FORM-FIELD-INVALID:org_reg_no"

    fixed = pki.sign(filled_form(EA, GOOD), signer="qualified")
    deployment.deliver(application_mail(
        sender="janis@ergli.example", to=TO, subject=f"Re: {notice['Subject']}", form=fixed,
        csr=make_csr(GOOD["csr_common_name"]), in_reply_to=notice["Message-ID"]))
    deployment.run_once()
    second = deployment.replies()[1]
    assert second["X-Pasts-Reference"] == ref
    assert second["X-Pasts-Status"] == "awaiting-verification"
    code, shown = deployment.cli("show", ref)
    assert "incomplete -> awaiting-verification" in re.sub(r"\s+", " ", shown)


def wait_for(predicate: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


def verification_link(reply: Any) -> str:
    match = re.search(r"http://127\.0\.0\.1:\d+/verify/[A-Za-z0-9_-]+", text_of(reply))
    assert match, text_of(reply)
    return match.group(0)


def fetch(url: str, data: bytes | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, data=data, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_verification_link_confirmed_by_post_against_the_running_daemon(
        deployment: Deployment, pki: Any) -> None:
    deployment.deliver(good_mail(pki))
    daemon = deployment.spawn("run")
    try:
        reply = wait_for(lambda: next(iter(deployment.replies()), None))
        assert reply["X-Pasts-Status"] == "awaiting-verification"
        assert reply["Auto-Submitted"] == "auto-generated"
        ref = reference_of(reply)
        url = verification_link(reply)

        # A GET (a mail scanner pre-fetching the link) verifies nothing.
        status, page = fetch(url)
        assert status == 200 and "Confirm" in page
        assert "awaiting-verification" in deployment.cli("show", ref)[1].split("history:")[0]

        status, page = fetch(url, data=b"")
        assert status == 200 and "Address confirmed" in page
        assert "state:      in-review" in deployment.cli("show", ref)[1]
        # The link is single-use.
        status, page = fetch(url, data=b"")
        assert status == 410 and "already used" in page
        status, page = fetch(url.rsplit("/", 1)[0] + "/" + "x" * 43)
        assert status == 404 and "Unknown link" in page
        # The applicant hears that the application is now in review.
        wait_for(lambda: any(r["X-Pasts-Status"] == "in-review" for r in deployment.replies()))
    finally:
        daemon.terminate()
        assert daemon.wait(timeout=60) == 0


@pytest.mark.sections(verification={"ttl_hours": 0.0003})
def test_expired_link_shows_the_expiry_page_and_a_new_link_can_be_asked(
        deployment: Deployment, pki: Any) -> None:
    deployment.deliver(good_mail(pki))
    deployment.run_once()
    reply = deployment.replies()[0]
    ref = reference_of(reply)
    url = verification_link(reply)
    time.sleep(1.5)  # the link lives 1.08 s
    web = start_web(deployment.runtime())
    try:
        status, page = fetch(url, data=b"")
    finally:
        web.shutdown()
    assert status == 410 and "expired" in page
    assert "state:      verification-expired" in deployment.cli("show", ref)[1]

    deployment.deliver(application_mail(sender="janis@ergli.example", to=TO,
                                        subject=f"NEW LINK [{ref}]"))
    deployment.run_once()
    kinds = [r["X-Pasts-Status"] for r in deployment.replies()]
    assert kinds.count("awaiting-verification") == 2  # first link, then the new one
    assert "verification-expired" in kinds  # the expiry notice


@pytest.mark.sections(limits={"max_message_bytes": 50000})
def test_message_over_the_size_limit_is_answered_unread(deployment: Deployment,
                                                         pki: Any) -> None:
    raw = application_mail(sender="janis@ergli.example", to=TO, subject="Pieteikums",
                           form=pki.sign(filled_form(EA, GOOD)), attachments=(
                               ("scan.tiff", "image/tiff", b"II*\x00" + b"\x00" * 60000),))
    deployment.deliver(raw)
    deployment.run_once()
    [reply] = deployment.replies_to(message_id_of(raw))
    assert reply["X-Pasts-Codes"] == "FORM-UNREADABLE"
    assert reply["X-Pasts-Status"] == "incomplete"
    code, shown = deployment.cli("show", reference_of(reply))
    assert "over the limit of 50000 bytes" in shown
    assert deployment.inbox() == []


def _workflows_with(wid: str, **changes: Any) -> list[dict[str, Any]]:
    """The shipped workflow tables, with ``changes`` made to workflow ``wid``."""
    import tomllib

    from tests.daemon_env import ROOT

    tables = tomllib.loads((ROOT / "rules" / "workflows.toml").read_text("utf-8"))["workflow"]
    return [{**t, **changes} if t["id"] == wid else t for t in tables]


@pytest.mark.sections(verification={"required": False},
                      workflow=_workflows_with("eaddress-production", max_age_days=1))
def test_workflow_own_time_stamp_age_limit(deployment: Deployment, pki: Any) -> None:
    """SPEC: SIG-TOO-OLD is 'older than the workflow allows' ([signing] allows 90 days)."""
    from tests.test_codes_e2e import old_timestamp

    raw = application_mail(sender="janis@ergli.example", to=TO, subject="Pieteikums",
                           form=old_timestamp(pki),
                           csr=make_csr(GOOD["csr_common_name"], GOOD["org_name"]))
    deployment.deliver(raw)
    deployment.run_once()
    [reply] = deployment.replies_to(message_id_of(raw))
    assert reply["X-Pasts-Codes"] == "SIG-TOO-OLD"
