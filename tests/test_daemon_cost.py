"""The daemon's own cost per message (issue 12): synced commits and server round trips.

Counted, never timed: each write transaction on SQLite (WAL, ``synchronous =
FULL``) is one fsync, and each IMAP command one round trip. The guarantees
stay those the crash tests pin (persist first, one outcome, move after commit).
"""

from __future__ import annotations

import imaplib
import threading
from collections import Counter
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from intake.demo.samples import application_mail
from intake.runner import Intake
from tests.daemon_env import TO, Deployment, good_mail, message_id_of

WRITES = ("INSERT", "UPDATE", "DELETE")


#: SQL statements the daemon's main thread runs for one new, complete, signed
#: application decided alone (persist 1; claim 3; decide 12 with its reply in
#: the outbox); decided in a batch it costs fewer (one claim and one row
#: query for the batch: 3 such applications took 48 statements in place of 52).
#: It was 24 (2 + 5 + 17): SELECTs the transaction already answered, and the
#: autoflushes they caused; then 17, with the identity written by a flush of
#: its own before the decision.
STATEMENTS_PER_APPLICATION = 16
#: Once a run: the year's first reference makes its counter (a savepoint and an
#: insert after the UPDATE found none) and the first reply reads the Message-ID secret.
STATEMENTS_ONCE = 4


def questions(n: int) -> list[bytes]:
    return [application_mail(sender=f"jautajums{i}@example.lv", to=TO,
                             subject=f"Kā pieteikties? {i}") for i in range(n)]


@pytest.mark.sections(verification={"required": False})
def test_a_message_costs_at_most_five_synced_commits(
        deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    dep = deployment
    mails = questions(6)
    for raw in mails:
        dep.deliver(raw)
    dirty: set[int] = set()
    commits: Counter[str] = Counter()

    def executed(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith(WRITES):
            dirty.add(id(conn.connection.dbapi_connection))

    def committed(conn: Any) -> None:
        key = id(conn.connection.dbapi_connection)
        commits["write" if key in dirty else "read"] += 1
        dirty.discard(key)

    event.listen(Engine, "before_cursor_execute", executed)
    event.listen(Engine, "commit", committed)
    try:
        with dep.runtime() as runtime:
            commits.clear()
            assert runtime.run_once() == 0
    finally:
        event.remove(Engine, "before_cursor_execute", executed)
        event.remove(Engine, "commit", committed)

    assert Counter(str(r["In-Reply-To"]) for r in dep.replies()) == Counter(
        message_id_of(raw) for raw in mails)
    assert dep.inbox() == [] and len(dep.inbox("Processed")) == len(mails)
    # Persist, claim, decide (with its reply in the outbox), sent: four each, and
    # the batch's moved mark and outbox lease shared. It was eight each.
    assert commits["write"] <= 5 * len(mails), commits


@pytest.mark.sections(verification={"required": False})
def test_the_decided_messages_leave_the_inbox_in_one_uid_move(
        deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    dep = deployment
    mails = questions(5)
    for raw in mails:
        dep.deliver(raw)
    commands: list[tuple[str, ...]] = []
    real_uid = imaplib.IMAP4.uid

    def uid(self: imaplib.IMAP4, command: str, *args: Any) -> Any:
        commands.append((command.upper(), *map(str, args)))
        return real_uid(self, command, *args)

    monkeypatch.setattr(imaplib.IMAP4, "uid", uid)
    assert dep.run_once() == 0

    moves = [c for c in commands if c[0] in ("MOVE", "COPY")]
    assert len(moves) == 1, moves
    assert len(moves[0][1].split(",")) == len(mails)
    assert dep.inbox() == []
    assert sorted(message_id_of(m) for m in dep.inbox("Processed")) == sorted(
        message_id_of(raw) for raw in mails)
    assert Counter(str(r["In-Reply-To"]) for r in dep.replies()) == Counter(
        message_id_of(raw) for raw in mails)


@pytest.mark.sections(verification={"required": False})
def test_a_new_application_costs_at_most_sixteen_statements(
        deployment: Deployment, pki: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    dep = deployment
    mails = [good_mail(pki, sender=f"janis{i}@ergli.example",
                       contact_email=f"janis{i}@ergli.example") for i in range(3)]
    for raw in mails:
        dep.deliver(raw)
    counting = threading.local()
    statements: Counter[str] = Counter()

    def counted(step: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            counting.on = True
            try:
                return step(*args, **kwargs)
            finally:
                counting.on = False
        return run

    def executed(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if getattr(counting, "on", False):
            statements[statement.split(None, 1)[0].upper()] += 1

    # The ledger's steps for one message: its persist, and its claim and decision
    # (alone, or in a batch with those prepared beside it).
    monkeypatch.setattr(Intake, "_persist", counted(Intake._persist))
    monkeypatch.setattr(Intake, "process", counted(Intake.process))
    monkeypatch.setattr(Intake, "process_batch", counted(Intake.process_batch))
    event.listen(Engine, "before_cursor_execute", executed)
    try:
        assert dep.run_once() == 0
    finally:
        event.remove(Engine, "before_cursor_execute", executed)

    replies = dep.replies()
    assert Counter(str(r["In-Reply-To"]) for r in replies) == Counter(
        message_id_of(raw) for raw in mails)
    assert {r["X-Pasts-Status"] for r in replies} == {"in-review"}
    assert len({r["X-Pasts-Reference"] for r in replies}) == len(mails)
    assert sum(statements.values()) <= (STATEMENTS_PER_APPLICATION * len(mails)
                                         + STATEMENTS_ONCE), statements


@pytest.mark.sections(verification={"required": False})
def test_replies_go_out_while_the_backlog_is_still_being_decided(
        deployment: Deployment) -> None:
    """Issue 12: the sender is woken after each moved batch, so in a run --once over
    three batches the first replies are sent (through the real SMTP server) before
    the last reply of the run is even queued; before, nothing went out until the
    whole drain had ended."""
    from sqlalchemy import func, select

    from intake.runner import MOVE_BATCH
    from intake.store.models import Outbox

    mails = questions(3 * MOVE_BATCH)
    for raw in mails:
        deployment.deliver(raw)
    with deployment.runtime() as runtime:
        assert runtime.run_once() == 0
        with runtime.store.session() as s:
            first_sent = s.scalar(select(func.min(Outbox.sent_at)))
            last_queued = s.scalar(select(func.max(Outbox.created_at)))
            sent = s.scalar(select(func.count(Outbox.id)).where(Outbox.status == "sent"))
    assert sent == len(mails)
    assert first_sent is not None and last_queued is not None
    assert first_sent < last_queued
    assert len(deployment.replies()) == len(mails)
