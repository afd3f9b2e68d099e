"""Retention (GDPR, issue 13): ``pasts purge [--dry-run]`` and the purge job.

Real Dovecot, real SMTP server, real SQLite. An application is closed by a
real staff decision; its closure is then dated back past
``daemon.retention_days`` (the stored transition times), as if the days had passed.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from intake.app.replies import now_utc
from intake.app.retention import PURGED
from intake.store.models import Application, Outbox, ReceivedMessage, Transition
from tests.daemon_env import Deployment, good_mail, message_id_of, reference_of

RETAIN = pytest.mark.sections(daemon={"retention_days": 30})


def submit(dep: Deployment, pki: Any, **values: str) -> str:
    raw = good_mail(pki, **values)
    dep.deliver(raw)
    assert dep.run_once() == 0
    return reference_of(dep.replies_to(message_id_of(raw))[0])


def age(dep: Deployment, reference: str, days: int) -> None:
    """Date every transition, mail and reply of ``reference`` ``days`` back."""
    then = now_utc() - timedelta(days=days)
    with dep.runtime().store.session() as s:
        app = s.scalars(select(Application).where(Application.reference == reference)).one()
        s.execute(update(Transition).where(Transition.application_id == app.id).values(at=then))
        s.execute(update(ReceivedMessage).where(ReceivedMessage.application_id == app.id)
                  .values(received_at=then))
        s.execute(update(Outbox).where(Outbox.application_id == app.id).values(created_at=then))


def stored(dep: Deployment, reference: str) -> dict[str, Any]:
    """What the store holds of ``reference``: raw mail, reply copies, artefacts, record."""
    with dep.runtime().store.session() as s:
        app = s.scalars(select(Application).where(Application.reference == reference)).one()
        return {
            "raw": [r.raw for r in s.scalars(select(ReceivedMessage).where(
                ReceivedMessage.application_id == app.id).order_by(ReceivedMessage.id))],
            "replies": [o.raw for o in s.scalars(select(Outbox).where(
                Outbox.application_id == app.id, Outbox.status == "sent",
                Outbox.kind != "verification").order_by(Outbox.id))],
            "reports": len(((app.verdicts or {}).get("signature") or {}).get("reports") or []),
            "csr": app.csr_der,
            "state": app.state, "codes": list(app.codes or []),
            "history": [(t.from_state, t.to_state, t.actor, t.reason) for t in app.transitions],
            "purged_at": app.purged_at,
        }


@RETAIN
def test_purge_removes_raw_mail_of_long_closed_applications_and_keeps_the_decision(
        deployment: Deployment, pki: Any) -> None:
    closed = submit(deployment, pki)
    still_open = submit(deployment, pki, sender="anna@ozola.example",
                        contact_email="anna@ozola.example", contact_name="Anna Ozola",
                        solution_name="Ozola connector")
    recent = submit(deployment, pki, sender="liga@kalna.example",
                    contact_email="liga@kalna.example", contact_name="Līga Kalna",
                    solution_name="Kalna connector")
    for ref in (closed, recent):
        code, out = deployment.cli("reject", ref, "--user", "ilze", "--code", "CONTRACT-MISSING",
                                   "--note", "no agreement")
        assert code == 0, out
    age(deployment, closed, 40)
    age(deployment, still_open, 400)  # open: however old, never purged
    age(deployment, recent, 10)  # closed within the 30 days: kept
    # A later mail about the closed application is still unprocessed: it keeps its bytes.
    with deployment.runtime().store.session() as s:
        app = s.scalars(select(Application).where(Application.reference == closed)).one()
        s.add(ReceivedMessage(mailbox="applications", uidvalidity=1, uid="999",
                              message_id="<late@ergli.example>", sha256="0" * 64,
                              raw=b"Subject: late\r\n\r\nstill to process\r\n",
                              status="received", application_id=app.id))
        # And a question about it came yesterday: answered, but within the 30 days.
        s.add(ReceivedMessage(mailbox="applications", uidvalidity=1, uid="1000",
                              message_id="<asked@ergli.example>", sha256="1" * 64,
                              raw=b"Subject: STATUS\r\n\r\nany news?\r\n", status="processed",
                              moved=True, application_id=app.id,
                              received_at=now_utc() - timedelta(days=1)))
    before = {ref: stored(deployment, ref) for ref in (closed, still_open, recent)}
    assert before[closed]["csr"] is not None and len(before[closed]["raw"]) == 3
    _, shown_before = deployment.cli("show", closed)

    # --dry-run lists what would go, with counts, and changes nothing.
    code, out = deployment.cli("purge", "--dry-run")
    assert code == 0, out
    [line] = [x for x in out.splitlines() if x.startswith(closed)]
    assert "rejected" in line and "1 raw mail(s)" in line and "1 CSR(s)" in line
    assert still_open not in out and recent not in out
    assert "would purge: 1 application(s), 1 raw mail(s)" in out
    assert {ref: stored(deployment, ref) for ref in before} == before

    code, out = deployment.cli("purge")
    assert code == 0, out
    assert "purged: 1 application(s), 1 raw mail(s)" in out
    after = stored(deployment, closed)
    processed_raw, late_raw, asked_raw = after["raw"]
    assert processed_raw == PURGED
    assert late_raw == before[closed]["raw"][1]  # the unprocessed row is untouched
    assert asked_raw == before[closed]["raw"][2]  # so is yesterday's mail
    assert after["replies"] and all(r == PURGED for r in after["replies"])
    assert after["reports"] == 0 and after["csr"] is None
    assert after["purged_at"] is not None
    # The decision record stays.
    for key in ("state", "codes", "history"):
        assert after[key] == before[closed][key]
    # Open and recent applications are untouched.
    assert stored(deployment, still_open) == before[still_open]
    assert stored(deployment, recent) == before[recent]

    # `pasts show` still works and says the same about the decision.
    code, shown = deployment.cli("show", closed)
    assert code == 0
    assert "state:      rejected" in shown and "purged:" in shown
    history = shown_before[shown_before.index("history:"):shown_before.index("mails:")]
    assert history in shown
    code, _ = deployment.cli("show", closed, "--report", str(deployment.directory / "r.xml"))
    assert code == 1

    # A second purge finds nothing.
    code, out = deployment.cli("purge")
    assert code == 0 and "purged: 0 application(s)" in out


@RETAIN
def test_the_purge_job_runs_with_run_once(deployment: Deployment, pki: Any) -> None:
    ref = submit(deployment, pki)
    assert deployment.cli("reject", ref, "--user", "ilze", "--code", "CONTRACT-MISSING",
                          "--note", "no agreement")[0] == 0
    age(deployment, ref, 31)
    assert deployment.run_once() == 0
    after = stored(deployment, ref)
    assert after["raw"] == [PURGED] and after["purged_at"] is not None
    assert after["state"] == "rejected"


def test_purge_with_retention_off_names_the_key_and_the_job_does_nothing(
        deployment: Deployment, pki: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ref = submit(deployment, pki)
    assert deployment.cli("reject", ref, "--user", "ilze", "--code", "CONTRACT-MISSING",
                          "--note", "no agreement")[0] == 0
    age(deployment, ref, 4000)
    before = stored(deployment, ref)
    code, _ = deployment.cli("purge", "--dry-run")
    assert code == 2
    assert "daemon.retention_days" in capsys.readouterr().err
    assert deployment.run_once() == 0
    assert stored(deployment, ref) == before
