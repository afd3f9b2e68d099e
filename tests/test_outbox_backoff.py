"""The outbox's retry schedule (intake/outbox.py) against the real aiosmtpd server.

The schedule the code intends: a reply the server refuses with a 4xx stays
``pending`` and is tried again after 30 s, 1 min, 2 min, ... (doubling,
capped at one hour); a 5xx, or the ``smtp.max_attempts``-th failure, marks it
``failed`` for staff. Waiting is simulated by moving the stored
``next_try_at`` of the row into the past; everything else is the real sender
talking to the real server.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from intake.app.replies import now_utc
from intake.demo.samples import application_mail
from intake.outbox import backoff
from intake.store.models import Outbox
from tests.daemon_env import TO, Deployment, message_id_of

APPLICANT = "peteris@example.lv"
MAX_ATTEMPTS = 9
#: 30 s doubling per attempt, capped at one hour (the 8th would be 3840 s).
SCHEDULE = [30, 60, 120, 240, 480, 960, 1920, 3600]


@dataclass(frozen=True)
class Row:
    status: str
    attempts: int
    next_try_at: datetime
    last_error: str | None
    message_id: str


def the_row(deployment: Deployment) -> Row:
    with deployment.runtime().store.session() as s:
        [row] = s.scalars(select(Outbox).where(Outbox.to_addr == APPLICANT)).all()
        return Row(row.status, row.attempts, row.next_try_at, row.last_error, row.message_id)


def time_passes(deployment: Deployment) -> None:
    """Make the pending row due now, as if its back-off had elapsed."""
    with deployment.runtime().store.session() as s:
        row = s.scalars(select(Outbox).where(Outbox.to_addr == APPLICANT)).one()
        row.next_try_at = now_utc() - timedelta(seconds=1)


def flush(deployment: Deployment) -> tuple[int, int, datetime, datetime]:
    """(sent, failed, before, after) of one outbox flush."""
    before = now_utc()
    sent, failed = deployment.runtime().flush_outbox()
    return sent, failed, before, now_utc()


def ask_a_question(deployment: Deployment) -> str:
    """Deliver a mail that is answered (FORM-MISSING); return its Message-ID."""
    raw = application_mail(sender=APPLICANT, to=TO, subject="Kā pieteikties?")
    deployment.deliver(raw)
    return message_id_of(raw)


def data_attempts_left(deployment: Deployment) -> int:
    """How many of the DATA refusals set with ``set_fail`` are still unused."""
    return int(deployment.smtp.handler.fail_data)


def test_backoff_function_doubles_from_30_seconds_up_to_an_hour() -> None:
    assert [backoff(n).total_seconds() for n in range(1, 9)] == SCHEDULE
    assert backoff(20) == timedelta(hours=1)


@pytest.mark.sections(smtp={"max_attempts": MAX_ATTEMPTS})
def test_4xx_is_retried_with_growing_delays_then_given_up_after_max_attempts(
        deployment: Deployment) -> None:
    ask_a_question(deployment)
    deployment.smtp.set_fail(1000, code=451)
    before = now_utc()
    assert deployment.run_once() == 0
    after = now_utc()

    delays: list[tuple[float, float]] = []
    for attempt in range(1, MAX_ATTEMPTS):
        row = the_row(deployment)
        assert row.status == "pending", row
        assert row.attempts == attempt
        assert row.last_error and "451" in row.last_error
        # The delay as stored, bounded by when the failing attempt could have happened.
        delays.append(((row.next_try_at - after).total_seconds(),
                       (row.next_try_at - before).total_seconds()))

        # Before its time, the row is left alone: the server sees no new DATA.
        left = data_attempts_left(deployment)
        assert flush(deployment)[:2] == (0, 0)
        assert data_attempts_left(deployment) == left

        time_passes(deployment)
        sent, failed, before, after = flush(deployment)
        assert (sent, failed) == (0, 1)
        assert data_attempts_left(deployment) == left - 1

    for (low, high), expected in zip(delays, SCHEDULE, strict=True):
        assert low <= expected <= high + 1, (delays, SCHEDULE)
    assert all(later[0] > earlier[1] for earlier, later in zip(delays, delays[1:], strict=False))

    # The MAX_ATTEMPTS-th failure gives up: failed, kept for staff, never tried again.
    row = the_row(deployment)
    assert row.status == "failed" and row.attempts == MAX_ATTEMPTS
    assert row.last_error and "451" in row.last_error
    deployment.smtp.set_fail(0)
    time_passes(deployment)
    assert flush(deployment)[:2] == (0, 0)
    assert deployment.replies() == []


@pytest.mark.parametrize("refusal", ["data-550", "rcpt-550"])
def test_5xx_is_given_up_at_once(deployment: Deployment, refusal: str) -> None:
    ask_a_question(deployment)
    if refusal == "data-550":
        deployment.smtp.set_fail(1, code=550)
    else:
        deployment.smtp.refuse(APPLICANT, code=550)
    assert deployment.run_once() == 0
    row = the_row(deployment)
    assert row.status == "failed" and row.attempts == 1
    assert row.last_error and "550" in row.last_error

    time_passes(deployment)
    deployment.smtp.handler.refused.clear()
    assert flush(deployment)[:2] == (0, 0)
    assert deployment.replies() == []


@pytest.mark.parametrize("refusal", ["data-451", "rcpt-450"])
def test_4xx_reply_is_kept_and_delivered_later_once_with_its_message_id(
        deployment: Deployment, refusal: str) -> None:
    message_id = ask_a_question(deployment)
    if refusal == "data-451":
        deployment.smtp.set_fail(1, code=451)
    else:
        deployment.smtp.refuse(APPLICANT, code=450)
    assert deployment.run_once() == 0
    queued = the_row(deployment)
    assert queued.status == "pending" and queued.attempts == 1
    assert deployment.replies() == []

    deployment.smtp.handler.refused.clear()
    time_passes(deployment)
    sent, failed, _, _ = flush(deployment)
    assert (sent, failed) == (1, 0)
    [reply] = deployment.replies()
    assert reply["Message-ID"] == queued.message_id
    assert reply["In-Reply-To"] == message_id
    assert "FORM-MISSING" in reply["X-Pasts-Codes"]
    done = the_row(deployment)
    assert done.status == "sent" and done.attempts == 2 and done.last_error is None

    # Nothing is sent twice.
    time_passes(deployment)
    assert deployment.run_once() == 0
    assert len(deployment.replies()) == 1


def test_choosing_due_rows_and_counting_the_bound_never_scan_the_outbox(
        deployment: Deployment) -> None:
    """Issue 12 (streaming): the sender picks each batch, and the bound counts a
    recipient's answers, from an index (migration 0007), never by reading every
    reply kept in the outbox; a scan makes a long flush quadratic."""
    from typing import Any

    from sqlalchemy import event, text
    from sqlalchemy.engine import Engine

    for i in range(3):
        deployment.deliver(application_mail(sender=f"jautajums{i}@example.lv", to=TO,
                                            subject=f"Kā pieteikties? {i}"))
    seen: list[tuple[str, Any]] = []

    def executed(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_a: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM outbox" in statement:
            seen.append((statement, parameters))

    event.listen(Engine, "before_cursor_execute", executed)
    try:
        with deployment.runtime() as runtime:
            assert runtime.run_once() == 0
    finally:
        event.remove(Engine, "before_cursor_execute", executed)
    assert len(deployment.replies()) == 3
    plans: dict[str, list[str]] = {}
    with deployment.runtime().store.session() as s:
        raw = s.connection().connection.dbapi_connection
        assert raw is not None
        for statement, parameters in seen:
            cursor = raw.cursor()
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            plans[statement] = [row[3] for row in cursor.fetchall()]
        s.execute(text("SELECT 1"))
    due = [q for q in plans if "outbox.next_try_at <=" in q]
    assert due, "the sender chose no due rows"
    scans = {q: p for q, p in plans.items() if any(step.startswith("SCAN outbox") for step in p)}
    assert scans == {}
