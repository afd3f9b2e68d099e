"""SPEC 6: the scheduler expires pending verification links on time and notifies the applicant.

Real Dovecot inbox, real SMTP server, real PKI; the job is the real
``intake.jobs.ExpireVerificationLinks``. Time is moved by setting a token's
stored expiry into the past (the other application keeps the 72-hour TTL),
or, in the second test, by a TTL of about a second and a short wait.
"""

from __future__ import annotations

import time
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

import pytest
from sqlalchemy import select

from intake.app.replies import now_utc
from intake.jobs import JOBS, ExpireVerificationLinks
from intake.store.models import Application, VerificationToken
from tests.daemon_env import Deployment, good_mail, message_id_of, reference_of, text_of


def application(deployment: Deployment, reference: str) -> tuple[str, list[str]]:
    """(state, statuses of its verification tokens) of the application ``reference``."""
    with deployment.runtime().store.session() as s:
        app = s.scalars(select(Application).where(Application.reference == reference)).one()
        tokens = s.scalars(select(VerificationToken).where(
            VerificationToken.application_id == app.id).order_by(VerificationToken.id)).all()
        return app.state, [t.status for t in tokens]


def expiry_notices(deployment: Deployment) -> list[EmailMessage]:
    return [r for r in deployment.replies() if r["X-Pasts-Status"] == "verification-expired"]


def test_the_expiry_job_is_one_of_the_jobs_run_once_runs() -> None:
    assert any(isinstance(job, ExpireVerificationLinks) for job in JOBS)


def test_job_expires_a_link_past_its_ttl_notifies_once_and_leaves_a_fresh_one(
        deployment: Deployment, pki: Any) -> None:
    late = good_mail(pki)
    fresh = good_mail(pki, sender="anna@ozola.example", contact_email="anna@ozola.example",
                      contact_name="Anna Ozola", solution_name="Ozola connector")
    deployment.deliver(late)
    deployment.deliver(fresh)
    assert deployment.run_once() == 0
    [late_reply] = deployment.replies_to(message_id_of(late))
    [fresh_reply] = deployment.replies_to(message_id_of(fresh))
    late_ref, fresh_ref = reference_of(late_reply), reference_of(fresh_reply)
    assert application(deployment, late_ref) == ("awaiting-verification", ["pending"])
    assert application(deployment, fresh_ref) == ("awaiting-verification", ["pending"])
    sent_before = len(deployment.replies())

    # The late applicant's link passed its 72 hours a minute ago.
    runtime = deployment.runtime()
    with runtime.store.session() as s:
        app = s.scalars(select(Application).where(Application.reference == late_ref)).one()
        token = s.scalars(select(VerificationToken).where(
            VerificationToken.application_id == app.id)).one()
        assert token.expires_at - token.created_at == timedelta(hours=72)
        token.expires_at = now_utc() - timedelta(minutes=1)

    ExpireVerificationLinks().run(runtime)
    assert application(deployment, late_ref) == ("verification-expired", ["expired"])
    assert application(deployment, fresh_ref) == ("awaiting-verification", ["pending"])

    # The notice goes out with the outbox (here: the next `run --once`).
    assert deployment.run_once() == 0
    [notice] = expiry_notices(deployment)
    assert len(deployment.replies()) == sent_before + 1
    assert notice["To"] == "janis@ergli.example"
    assert notice["X-Pasts-Reference"] == late_ref
    assert notice["In-Reply-To"] == message_id_of(late)
    assert notice["Auto-Submitted"] in ("auto-replied", "auto-generated")
    body = text_of(notice)
    assert "expired" in body and f"NEW LINK [{late_ref}]" in body

    # The history says who expired it and why.
    code, shown = deployment.cli("show", late_ref)
    assert code == 0
    assert "state:      verification-expired" in shown
    assert "awaiting-verification -> verification-expired" in " ".join(shown.split())

    # A second and third sweep (by the job and by `run --once`) notify nobody again.
    ExpireVerificationLinks().run(deployment.runtime())
    assert deployment.run_once() == 0
    assert deployment.run_once() == 0
    assert len(expiry_notices(deployment)) == 1
    assert len(deployment.replies()) == sent_before + 1
    assert application(deployment, fresh_ref) == ("awaiting-verification", ["pending"])


@pytest.mark.sections(verification={"ttl_hours": 0.0005})
def test_run_once_expires_links_on_time(deployment: Deployment, pki: Any) -> None:
    # The link lives 1.8 s: long enough to survive the run that sends it.
    raw = good_mail(pki)
    deployment.deliver(raw)
    assert deployment.run_once() == 0
    [first] = deployment.replies_to(message_id_of(raw))
    ref = reference_of(first)
    assert first["X-Pasts-Status"] == "awaiting-verification"
    assert application(deployment, ref) == ("awaiting-verification", ["pending"])
    assert expiry_notices(deployment) == []

    time.sleep(2.0)
    assert deployment.run_once() == 0
    assert application(deployment, ref) == ("verification-expired", ["expired"])
    assert [n["X-Pasts-Reference"] for n in expiry_notices(deployment)] == [ref]

    assert deployment.run_once() == 0
    assert len(expiry_notices(deployment)) == 1
