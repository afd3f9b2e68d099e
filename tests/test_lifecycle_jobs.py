"""Issue 13, jobs: link reminders and certificate expiry notices, end to end.

Real Dovecot inbox, real SMTP server (STARTTLS), real PKI and CA, real SQLite;
the jobs are the real ones of ``intake.jobs``. Time is moved either by
setting a stored date (a link's expiry, as tests/test_verification_expiry.py
does) or by handing the sweep a later ``now`` (the daemon coming back after a
downtime).
"""

from __future__ import annotations

import re
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select

from intake.app.expiry import notices_sent, send_expiry_notices
from intake.app.replies import now_utc
from intake.demo.samples import application_mail, filled_form, make_csr
from intake.jobs import JOBS, CertificateExpiryNotices, RemindVerificationLinks
from intake.store.models import (
    Application,
    CertificateNotice,
    IssuedCertificateRow,
    VerificationToken,
)
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

NO_VERIFICATION = pytest.mark.sections(verification={"required": False})
URL_RE = re.compile(r"https?://\S+/verify/\S+")


def sent_with(dep: Deployment, status: str | None = None, template: str | None = None
              ) -> list[EmailMessage]:
    """Replies the SMTP server received, by X-Pasts-Status or by subject word."""
    out = dep.replies()
    if status is not None:
        out = [r for r in out if r["X-Pasts-Status"] == status]
    if template is not None:
        out = [r for r in out if template in str(r["Subject"])]
    return out


def reminders(dep: Deployment) -> list[EmailMessage]:
    return [r for r in dep.replies() if "Atgādinājums" in str(r["Subject"])]


def expiry_notices(dep: Deployment) -> list[EmailMessage]:
    return [r for r in dep.replies() if "sertifikāta derīgums" in str(r["Subject"])]


def move_link(dep: Deployment, reference: str, *, issued_ago: timedelta, left: timedelta) -> None:
    """The application's link was issued ``issued_ago`` and expires in ``left``."""
    with dep.runtime().store.session() as s:
        app = s.scalars(select(Application).where(Application.reference == reference)).one()
        link = s.scalars(select(VerificationToken).where(
            VerificationToken.application_id == app.id)).one()
        now = now_utc()
        link.created_at = now - issued_ago
        link.expires_at = now + left


# -- reminders ------------------------------------------------------------------


def test_the_new_jobs_are_run_by_run_once() -> None:
    names = [job.name for job in JOBS]
    assert "remind-verification-links" in names and "certificate-expiry-notices" in names
    assert "purge-retention" in names
    # A link due to expire is expired before reminders are looked for.
    assert names.index("expire-verification-links") < names.index("remind-verification-links")


def test_a_link_is_reminded_of_once_in_thread_with_the_same_link(
        deployment: Deployment, pki: Any) -> None:
    raw = good_mail(pki)
    deployment.deliver(raw)
    assert deployment.run_once() == 0
    [link_mail] = deployment.replies_to(message_id_of(raw))
    ref = reference_of(link_mail)
    assert link_mail["X-Pasts-Status"] == "awaiting-verification"
    # The Latvian text and its English copy carry the one link.
    [url] = set(URL_RE.findall(text_of(link_mail)))

    # Not due yet (71 hours left): nothing.
    RemindVerificationLinks().run(deployment.runtime())
    assert deployment.run_once() == 0
    assert reminders(deployment) == []

    # 49 hours later, 23 left: within verification.remind_hours_before (24).
    move_link(deployment, ref, issued_ago=timedelta(hours=49), left=timedelta(hours=23))
    RemindVerificationLinks().run(deployment.runtime())
    RemindVerificationLinks().run(deployment.runtime())  # a second sweep finds it done
    assert deployment.run_once() == 0
    assert deployment.run_once() == 0
    [reminder] = reminders(deployment)
    assert reminder["To"] == "janis@ergli.example"
    assert reminder["X-Pasts-Reference"] == ref
    assert reminder["In-Reply-To"] == message_id_of(raw)
    assert reminder["Auto-Submitted"] == "auto-generated"
    body = text_of(reminder)
    # The workflow's language (eaddress-production: Latvian), and the same live link.
    assert "Atgādinām" in body and f"NEW LINK [{ref}]" in body
    assert set(URL_RE.findall(body)) == {url}
    with deployment.runtime().store.session() as s:
        link = s.scalars(select(VerificationToken)).one()
        assert link.reminded_at is not None and link.status == "pending"

    # The reminded link still works: confirming it moves the application on.
    from intake.app.links import Verification
    from intake.app.replies import Replies

    token = url.rsplit("/", 1)[1]
    config = deployment.config
    with deployment.runtime().store.session() as s:
        state = Verification(config, Replies(config)).confirm(s, token,
                                                              confirmed_other_person=False)
        assert state.state == "verified"


def test_no_reminder_for_an_expired_link_nor_a_link_issued_with_less_time_left(
        deployment: Deployment, pki: Any) -> None:
    late = good_mail(pki)
    short = good_mail(pki, sender="anna@ozola.example", contact_email="anna@ozola.example",
                      contact_name="Anna Ozola", solution_name="Ozola connector")
    deployment.deliver(late)
    deployment.deliver(short)
    assert deployment.run_once() == 0
    late_ref = reference_of(deployment.replies_to(message_id_of(late))[0])
    short_ref = reference_of(deployment.replies_to(message_id_of(short))[0])
    # The daemon was down past the late link's expiry: it expires, with no reminder first.
    move_link(deployment, late_ref, issued_ago=timedelta(hours=73), left=-timedelta(minutes=5))
    # This link lived 20 hours from the start: its first mail was the only one it needs.
    move_link(deployment, short_ref, issued_ago=timedelta(hours=1), left=timedelta(hours=19))
    assert deployment.run_once() == 0
    assert deployment.run_once() == 0
    assert reminders(deployment) == []
    assert [r["X-Pasts-Reference"] for r in sent_with(deployment, "verification-expired")] \
        == [late_ref]


@pytest.mark.sections(verification={"remind_hours_before": 0})
def test_remind_hours_before_zero_turns_reminders_off(deployment: Deployment, pki: Any) -> None:
    raw = good_mail(pki)
    deployment.deliver(raw)
    assert deployment.run_once() == 0
    ref = reference_of(deployment.replies_to(message_id_of(raw))[0])
    move_link(deployment, ref, issued_ago=timedelta(hours=71), left=timedelta(hours=1))
    assert deployment.run_once() == 0
    assert reminders(deployment) == []


# -- certificate expiry notices --------------------------------------------------


def approve(dep: Deployment, pki: Any) -> tuple[str, str]:
    """Submit and approve a good e-address application; (reference, its Message-ID)."""
    raw = good_mail(pki)
    dep.deliver(raw)
    assert dep.run_once() == 0
    ref = reference_of(dep.replies_to(message_id_of(raw))[0])
    code, out = dep.cli("approve", ref, "--user", "ilze")
    assert code == 0, out
    return ref, message_id_of(raw)


def certificate(dep: Deployment, reference: str) -> IssuedCertificateRow:
    with dep.runtime().store.session() as s:
        app = s.scalars(select(Application).where(Application.reference == reference)).one()
        cert = s.scalars(select(IssuedCertificateRow).where(
            IssuedCertificateRow.application_id == app.id)).one()
        s.expunge(cert)
        return cert


def notice_rows(dep: Deployment) -> list[tuple[int, int]]:
    with dep.runtime().store.session() as s:
        return [(n.certificate_id, n.threshold_days) for n in
                s.scalars(select(CertificateNotice).order_by(CertificateNotice.id))]


@NO_VERIFICATION
def test_expiry_notices_at_30_and_7_days_each_once_naming_serial_reference_and_renewal(
        deployment: Deployment, pki: Any) -> None:
    ref, thread = approve(deployment, pki)
    cert = certificate(deployment, ref)
    rt = deployment.runtime()
    # 31 days before expiry: nothing is due.
    assert send_expiry_notices(rt, now=cert.not_after - timedelta(days=31)) == 0

    # 30 days before (and the job run again an hour later): one notice.
    day30 = cert.not_after - timedelta(days=30)
    assert send_expiry_notices(rt, now=day30) == 1
    assert send_expiry_notices(rt, now=day30 + timedelta(hours=1)) == 0
    assert deployment.run_once() == 0
    [notice] = expiry_notices(deployment)
    assert notice["To"] == GOOD["contact_email"]
    assert notice["X-Pasts-Reference"] == ref
    assert notice["In-Reply-To"] == thread
    assert f"[{ref}]" in notice["Subject"]
    body = text_of(notice)
    assert cert.serial_hex.upper() in body and ref in body and "30" in body
    assert "CSR" in body  # how to renew
    # The renewal form comes prefilled with the application's values.
    [form] = [p for p in notice.iter_attachments() if p.get_filename() == f"{ref}-renewal.pdf"]
    from intake.forms.read import read_form_fields

    payload = form.get_payload(decode=True)
    assert isinstance(payload, bytes)
    assert read_form_fields(payload).get("org_reg_no") == GOOD["org_reg_no"]

    # Days pass inside the 30-day window: nothing more until 7 days before.
    assert send_expiry_notices(rt, now=cert.not_after - timedelta(days=8)) == 0
    assert send_expiry_notices(rt, now=cert.not_after - timedelta(days=7)) == 1
    assert send_expiry_notices(rt, now=cert.not_after - timedelta(days=1)) == 0
    assert deployment.run_once() == 0
    assert len(expiry_notices(deployment)) == 2
    assert notice_rows(deployment) == [(cert.id, 30), (cert.id, 7)]
    code, shown = deployment.cli("show", ref)
    assert code == 0
    assert f"expiry notice (30 days) to {GOOD['contact_email']}" in shown
    assert f"expiry notice (7 days) to {GOOD['contact_email']}" in shown

    # The digest can list them: the notices queued in a period.
    with rt.store.session() as s:
        listed = notices_sent(s, since=day30 - timedelta(minutes=1))
        assert [(n.reference, n.threshold_days) for n in listed] == [(ref, 30), (ref, 7)]
        assert listed[0].serial_hex == cert.serial_hex
        assert notices_sent(s, since=day30 - timedelta(days=1), until=day30) == []
    rt.store.dispose()


@NO_VERIFICATION
def test_after_a_downtime_past_both_thresholds_one_notice_the_nearest(
        deployment: Deployment, pki: Any) -> None:
    ref, _ = approve(deployment, pki)
    cert = certificate(deployment, ref)
    rt = deployment.runtime()
    # The daemon was down from 31 days before expiry until 6 days before.
    back = cert.not_after - timedelta(days=6)
    assert send_expiry_notices(rt, now=back) == 1
    assert send_expiry_notices(rt, now=back + timedelta(hours=1)) == 0
    assert send_expiry_notices(rt, now=back + timedelta(days=3)) == 0
    rt.store.dispose()
    assert deployment.run_once() == 0
    [notice] = expiry_notices(deployment)
    assert notice_rows(deployment) == [(cert.id, 7)]
    assert "6" in text_of(notice)
    # Expired or revoked certificates get none.
    assert send_expiry_notices(deployment.runtime(), now=cert.not_after + timedelta(days=1)) == 0


@NO_VERIFICATION
def test_the_job_sends_a_due_notice_and_a_revoked_certificate_gets_none(
        deployment: Deployment, pki: Any) -> None:
    ref, _ = approve(deployment, pki)
    # The stored expiry is brought within 30 days; the real job (run --once) notices it.
    with deployment.runtime().store.session() as s:
        cert = s.scalars(select(IssuedCertificateRow)).one()
        cert.not_after = now_utc() + timedelta(days=20)
    CertificateExpiryNotices().run(deployment.runtime())
    assert deployment.run_once() == 0
    assert len(expiry_notices(deployment)) == 1

    code, out = deployment.cli("restrict", ref, "--user", "ilze", "--note", "compliance")
    assert code == 0, out
    with deployment.runtime().store.session() as s:
        cert = s.scalars(select(IssuedCertificateRow)).one()
        cert.not_after = now_utc() + timedelta(days=5)
    assert deployment.run_once() == 0
    assert len(expiry_notices(deployment)) == 1


@NO_VERIFICATION
def test_a_new_application_in_the_notice_thread_renews_the_old_reference(
        deployment: Deployment, pki: Any) -> None:
    ref, _ = approve(deployment, pki)
    cert = certificate(deployment, ref)
    assert send_expiry_notices(deployment.runtime(), now=cert.not_after - timedelta(days=7)) == 1
    assert deployment.run_once() == 0
    [notice] = expiry_notices(deployment)

    form = pki.sign(filled_form(EA, GOOD), signer="qualified", timestamp=True)
    renewal = application_mail(
        sender="janis@ergli.example", to=TO, subject=f"Re: {notice['Subject']}", form=form,
        csr=make_csr(GOOD["csr_common_name"], GOOD["org_name"]),
        in_reply_to=str(notice["Message-ID"]))
    deployment.deliver(renewal)
    assert deployment.run_once() == 0
    [answer] = deployment.replies_to(message_id_of(renewal))
    new_ref = answer["X-Pasts-Reference"]
    assert new_ref and new_ref != ref
    assert answer["X-Pasts-Status"] == "in-review"
    code, shown = deployment.cli("show", new_ref)
    assert code == 0
    assert f"renews: {ref}" in shown
    # The old application is untouched.
    code, shown = deployment.cli("show", ref)
    assert "state:      approved" in shown


# -- the keys ---------------------------------------------------------------------


@pytest.mark.parametrize(("section", "values", "key"), [
    ("verification", {"remind_hours_before": -1}, "verification.remind_hours_before"),
    ("ca", {"expiry_notice_days": [30, 0]}, "ca.expiry_notice_days"),
    ("ca", {"expiry_notice_days": "30"}, "ca.expiry_notice_days"),
    ("daemon", {"retention_days": 0}, "daemon.retention_days"),
    ("daemon", {"retention_days": "a year"}, "daemon.retention_days"),
])
def test_a_wrong_value_names_its_key(tmp_path: Any, section: str, values: dict[str, Any],
                                     key: str) -> None:
    from intake.config import parse_config
    from intake.errors import ConfigurationError

    data = {"smtp": {"url": "maildir:./outbox", "from": "pasts@agency.test"}, section: values}
    with pytest.raises(ConfigurationError) as caught:
        parse_config(data, tmp_path / "config.toml")
    assert key in str(caught.value)


def test_the_defaults_are_the_spec_s(tmp_path: Any) -> None:
    from intake.config import parse_config

    cfg = parse_config({"smtp": {"url": "maildir:./outbox", "from": "pasts@agency.test"},
                        "ca": {"expiry_notice_days": [7, 30, 7]}}, tmp_path / "config.toml")
    assert cfg.verification.remind_hours_before == 24.0
    assert cfg.ca.expiry_notice_days == (30, 7)
    assert cfg.daemon.retention_days is None
    default = parse_config({"smtp": {"url": "maildir:./outbox", "from": "pasts@agency.test"}},
                           tmp_path / "config.toml")
    assert default.ca.expiry_notice_days == (30, 7)
