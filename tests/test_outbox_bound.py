"""Replies that always leave: run --once drains, the bound defers and never drops.

Through the real Dovecot inbox and the real SMTP server (issues 14 and 10).
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from intake.app.bound import recipient
from intake.demo.samples import application_mail, filled_form, make_csr
from intake.store.models import Application, Outbox, ReceivedMessage
from tests.daemon_env import EA, GOOD, TO, Deployment, message_id_of, text_of

CSR = make_csr(GOOD["csr_common_name"], GOOD["org_name"])


def statuses(dep: Deployment) -> Counter[str]:
    rt = dep.runtime()
    try:
        with rt.store.session() as s:
            return Counter(s.scalars(select(Outbox.status).where(Outbox.kind == "reply")).all())
    finally:
        rt.store.dispose()


def age_the_bound(dep: Deployment, hours: float = 2) -> None:
    """Make every released answer an hour older, as if the bound's window had passed."""
    rt = dep.runtime()
    try:
        with rt.store.session() as s:
            for row in s.scalars(select(Outbox).where(Outbox.released_at.is_not(None))):
                assert row.released_at is not None
                row.released_at = row.released_at - timedelta(hours=hours)
    finally:
        rt.store.dispose()


def test_recipient_folds_tags_and_case() -> None:
    assert recipient("Victim+1@Target.Example") == recipient("victim+2@target.example")
    assert recipient("victim+2@target.example").mailbox == "victim@target.example"
    assert recipient("victim@target.example.").domain == "target.example"
    assert recipient("+x@d.example").mailbox == "+x@d.example"


def test_run_once_sends_every_queued_reply_of_150_applications(deployment: Deployment) -> None:
    # 150 form-less applications (each with a CSR) from 150 senders on 15 domains:
    # more than one outbox batch, none over a bound.
    mails = [application_mail(sender=f"applicant{n}@firm{n % 15}.example", to=TO,
                              subject=f"Pieteikums {n}", csr=CSR) for n in range(150)]
    for raw in mails:
        deployment.deliver(raw)
    assert deployment.run_once() == 0
    replies = deployment.replies()
    per_inbound = Counter(str(r["In-Reply-To"]) for r in replies)
    assert per_inbound == Counter(message_id_of(raw) for raw in mails)
    assert statuses(deployment) == {"sent": 150}
    assert deployment.inbox() == []


@pytest.mark.sections(verification={"required": False})
def test_25_trusted_applications_from_one_address_are_all_answered_in_one_pass(
        deployment: Deployment, pki: Any) -> None:
    # An integrator files 25 signed applications for its clients in one hour.
    mails = []
    for n in range(25):
        form = pki.sign(filled_form(EA, {**GOOD, "solution_name": f"Connector {n}"}),
                        signer="qualified", timestamp=True)
        mails.append(application_mail(sender="integrator@firm.example", to=TO,
                                      subject=f"Pieteikums {n}", form=form, csr=CSR))
    for raw in mails:
        deployment.deliver(raw)
    assert deployment.run_once() == 0
    replies = [r for r in deployment.replies() if r["To"] == "integrator@firm.example"]
    assert Counter(str(r["In-Reply-To"]) for r in replies) == Counter(map(message_id_of, mails))
    assert {str(r["X-Pasts-Status"]) for r in replies} == {"in-review"}
    assert statuses(deployment) == {"sent": 25}


def test_form_less_mails_over_the_bound_wait_visibly_and_go_out_later(
        deployment: Deployment) -> None:
    # 25 mails without a form (each with a CSR) from one address: at most the
    # bound (20) now, the rest wait in the outbox, shown to staff, none dropped.
    mails = [application_mail(sender="tester@firm.example", to=TO, subject=f"Test {n}", csr=CSR)
             for n in range(25)]
    for raw in mails:
        deployment.deliver(raw)
    assert deployment.run_once() == 0
    assert len(deployment.replies()) == 20
    assert statuses(deployment) == {"sent": 20, "waiting": 5}
    assert deployment.inbox() == []

    rt = deployment.runtime()
    try:
        with rt.store.session() as s:
            held = s.scalars(select(Outbox).where(Outbox.status == "waiting")).all()
            refs = [o.application.reference for o in held if o.application is not None]
    finally:
        rt.store.dispose()
    assert len(refs) == 5
    code, digest = deployment.cli("digest")
    assert code == 0
    assert "Answers waiting for the per-recipient bound" in digest
    assert all(ref in digest for ref in refs), digest
    code, shown = deployment.cli("show", refs[0])
    assert code == 0
    assert "waiting:    1 answer(s) held by the per-recipient bound" in shown
    assert "[waiting]" in shown

    # A second pass within the hour sends nothing more; after the hour, the rest.
    assert deployment.run_once() == 0
    assert len(deployment.replies()) == 20
    age_the_bound(deployment)
    assert deployment.run_once() == 0
    replies = deployment.replies()
    assert Counter(str(r["In-Reply-To"]) for r in replies) == Counter(map(message_id_of, mails))
    assert statuses(deployment) == {"sent": 25}


@pytest.mark.sections(smtp={"rate_limit_per_hour": 3})
def test_plus_tags_and_case_count_as_one_mailbox(deployment: Deployment) -> None:
    # Backscatter: a forger sends junk as victim+1@, Victim+2@, ... .
    for n in range(8):
        local = "Victim" if n % 2 else "victim"
        deployment.deliver(application_mail(sender=f"{local}+{n}@target.example", to=TO,
                                            subject=f"CHEAP PILLS {n} http://spam.example"))
    assert deployment.run_once() == 0
    replies = deployment.replies()
    assert len(replies) == 3, [r["To"] for r in replies]
    assert statuses(deployment) == {"sent": 3, "waiting": 5}
    for reply in replies:
        # The forger's subject is not delivered by pasts.
        assert "PILLS" not in str(reply["Subject"]) and "spam.example" not in str(reply["Subject"])
        assert "PILLS" not in text_of(reply) and "spam.example" not in text_of(reply)
        assert "FORM-MISSING" in str(reply["X-Pasts-Codes"])
    assert deployment.inbox() == []


@pytest.mark.sections(smtp={"rate_limit_per_hour": 5, "rate_limit_per_domain_per_hour": 4})
def test_the_domain_bound_counts_every_mailbox_of_a_domain(deployment: Deployment) -> None:
    for n in range(6):
        deployment.deliver(application_mail(sender=f"user{n}@target.example", to=TO,
                                            subject="hello"))
    deployment.deliver(application_mail(sender="someone@other.example", to=TO, subject="hello"))
    assert deployment.run_once() == 0
    to = Counter(str(r["To"]).rpartition("@")[2] for r in deployment.replies())
    assert to == {"target.example": 4, "other.example": 1}
    assert statuses(deployment) == {"sent": 5, "waiting": 2}


def test_junk_is_recorded_in_the_ledger_and_makes_no_application(
        deployment: Deployment) -> None:
    raw = application_mail(sender="someone@example.lv", to=TO, subject="Kā pieteikties?")
    deployment.deliver(raw)
    assert deployment.run_once() == 0
    [reply] = deployment.replies()
    assert reply["In-Reply-To"] == message_id_of(raw)
    assert "FORM-MISSING" in str(reply["X-Pasts-Codes"])
    assert "Kā pieteikties" not in str(reply["Subject"])
    rt = deployment.runtime()
    try:
        with rt.store.session() as s:
            assert s.scalars(select(Application)).all() == []
            [row] = s.scalars(select(ReceivedMessage)).all()
            assert row.status == "processed"
            assert row.outcome is not None and row.outcome.startswith("junk:")
    finally:
        rt.store.dispose()
    code, listed = deployment.cli("list")
    assert code == 0 and "no applications" in listed


def test_junk_from_an_address_no_reply_can_reach_is_recorded_not_quarantined(
        deployment: Deployment) -> None:
    deployment.deliver(application_mail(sender="ops@[192.0.2.7]", to=TO, subject="hi"))
    for _ in range(4):  # past daemon.max_attempts
        assert deployment.run_once() == 0
    assert deployment.replies() == []
    assert deployment.inbox() == [] and deployment.inbox("Quarantine") == []
    rt = deployment.runtime()
    try:
        with rt.store.session() as s:
            [row] = s.scalars(select(ReceivedMessage)).all()
    finally:
        rt.store.dispose()
    assert row.status == "processed"
    assert row.outcome is not None and "no reply can be written to" in row.outcome


def test_one_flush_of_the_daemons_outbox_loop_drains_a_backlog(deployment: Deployment) -> None:
    # The daemon's outbox loop calls Runtime.flush_outbox once a tick: one
    # call sends a backlog larger than a batch (it used to stop at 100).
    from intake.app.replies import Replies

    rt = deployment.runtime()
    try:
        with rt.store.session() as s:
            for n in range(130):
                Replies(rt.config).queue(s, key=f"test:{n}", to=f"person{n}@site{n}.example",
                                         template="status-unknown", app=None, rate_limit=True)
        assert rt.flush_outbox() == (130, 0)
    finally:
        rt.store.dispose()
    assert len(deployment.replies()) == 130
    assert statuses(deployment) == {"sent": 130}


@pytest.mark.sections(verification={"required": False}, smtp={"rate_limit_per_hour": 2})
def test_status_queries_about_a_trusted_application_stay_bounded(
        deployment: Deployment, pki: Any) -> None:
    # Only the answer to the signed mail itself passes the bound at once: a
    # forged From: cannot flood the applicant with status answers.
    from tests.daemon_env import good_mail, reference_of

    deployment.deliver(good_mail(pki))
    assert deployment.run_once() == 0
    ref = reference_of(deployment.replies()[0])
    for n in range(4):
        deployment.deliver(application_mail(sender="janis@ergli.example", to=TO,
                                            subject=f"STATUS {ref} ({n})"))
    assert deployment.run_once() == 0
    assert len(deployment.replies()) == 2
    assert statuses(deployment) == {"sent": 2, "waiting": 3}
