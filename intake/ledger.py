"""The ledger rows of received mail: recorded, checked, claimed, failed, filed.

The bookkeeping :class:`intake.runner.Intake` does on the ``received_message``
table around each decision (the runner's module docstring tells the order):
a row recorded before any parse, the checks and the lease that count an
attempt, a failed attempt or a quarantine written with its reason, a copy
filed as the duplicate of the row that holds its identity.
"""

from __future__ import annotations

import hashlib
import logging
import traceback
from datetime import timedelta
from typing import Any, NamedTuple

from sqlalchemy import Table, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, defer

from intake import logs
from intake.app.replies import now_utc
from intake.config import Config, MailboxConfig
from intake.mime.headers import ledger_headers
from intake.mime.text import fit
from intake.mime.types import MAX_SENDER_CHARS, ParsedMail
from intake.moves import FINAL
from intake.sources.base import RawMessage
from intake.store.engine import Store
from intake.store.leases import holder_is_dead, takeable
from intake.store.models import ReceivedMessage

# The runner's log: these are its steps, and operators filter its lines by that name.
log = logging.getLogger("intake.runner")

CLAIM_LEASE = timedelta(minutes=10)
#: A ledger row loaded without its raw bytes (read from the database only if used).
WITHOUT_RAW = (defer(ReceivedMessage.raw),)
#: The ledger's table, for the statements that need no ORM object.
LEDGER: Table = ReceivedMessage.__table__  # type: ignore[assignment]


class Claim(NamedTuple):
    """What the claim's UPDATE returns: the attempts counted so far and the last error."""

    attempts: int
    last_error: str | None


class LedgerRows:
    """The ledger steps of :class:`~intake.runner.Intake` (which sets these attributes)."""

    config: Config
    store: Store
    worker: str

    def record(self, mailbox: MailboxConfig, message: RawMessage) -> int:
        """Persist the raw message (idempotent, before any parse); return the ledger row id."""
        sha = hashlib.sha256(message.raw).hexdigest()
        head = ledger_headers(message.raw)
        values: dict[str, Any] = {
            "mailbox": mailbox.name, "uidvalidity": message.uidvalidity, "uid": message.uid,
            "message_id": head.message_id, "sha256": sha, "raw": message.raw,
            "sender": head.sender, "subject": head.subject}
        # Inserted first, one statement and one commit: a message is new far more
        # often than met again (a run after a crash), and the position's unique
        # key tells which.
        row_id = self._insert(values)
        if row_id is not None:
            return row_id
        with self.store.session() as s:
            existing = s.execute(select(LEDGER.c.id, LEDGER.c.sha256)
                                 .where(*self._position(values))).first()
        if existing is None or existing.sha256 == sha:
            # Recorded before (or by another worker at the same moment): that row.
            return self._recorded(values)
        # Same position, other bytes: the server reused UIDs without changing
        # UIDVALIDITY (a broken server). Keep both.
        log.warning("mailbox %s UID %s changed content; recording as new",
                    mailbox.name, message.uid)
        values["uid"] = f"{message.uid}#{sha[:12]}"
        row_id = self._insert(values)
        return row_id if row_id is not None else self._recorded(values)

    def _insert(self, values: dict[str, Any]) -> int | None:
        """A new ledger row (committed), or None when its position is recorded already."""
        try:
            with self.store.session() as s:
                row_id: int = s.execute(
                    insert(LEDGER).values(**values).returning(LEDGER.c.id)).scalar_one()
                return row_id
        except IntegrityError:
            return None

    def _recorded(self, values: dict[str, Any]) -> int:
        """The id of the ledger row at the position of ``values``."""
        with self.store.session() as s:
            row_id: int = s.scalars(select(LEDGER.c.id).where(*self._position(values))).one()
            return row_id

    @staticmethod
    def _position(values: dict[str, Any]) -> tuple[Any, ...]:
        return (LEDGER.c.mailbox == values["mailbox"],
                LEDGER.c.uidvalidity == values["uidvalidity"], LEDGER.c.uid == values["uid"])

    def claim(self, row_id: int) -> Claim | None:
        """Lease the row for this worker and count the attempt (committed)."""
        with self.store.session() as s:
            holder = s.scalar(select(ReceivedMessage.claimed_by).where(ReceivedMessage.id == row_id))
            return self._lease(s, row_id, holder)

    def _lease(self, s: Session, row_id: int, holder: str | None) -> Claim | None:
        """The claim's conditional UPDATE in ``s``: the attempt counted, or None if
        the row is not ``received`` or another live worker holds it. ``holder`` is
        the ``claimed_by`` read for the row in ``s``."""
        return self._lease_many(s, [row_id], holder).get(row_id)

    def _lease_many(self, s: Session, row_ids: list[int],
                    holder: str | None) -> dict[int, Claim]:
        """:meth:`_lease` for rows all read with the same ``holder``, in one UPDATE:
        the claims of those taken, by row id."""
        now = now_utc()
        # On the table: a Core UPDATE, no ORM object to keep in step with it.
        taken = s.execute(
            update(LEDGER)
            .where(
                LEDGER.c.id.in_(row_ids),
                LEDGER.c.status == "received",
                takeable(LEDGER.c, now, holder, worker=self.worker),
            )
            .values(
                claimed_by=self.worker,
                claimed_until=now + CLAIM_LEASE,
                attempts=LEDGER.c.attempts + 1,
            )
            .returning(LEDGER.c.id, LEDGER.c.attempts, LEDGER.c.last_error)
        )
        return {row.id: Claim(row.attempts, row.last_error) for row in taken}

    @staticmethod
    def describe_row(row: ReceivedMessage, mail: ParsedMail) -> None:
        """Put the parsed sender and subject on the ledger row (for staff)."""
        row.sender = fit(mail.from_addr, MAX_SENDER_CHARS) or None
        row.subject = mail.subject[:1000]

    #: What the checks before a claim read of a ledger row.
    _LEDGER_CHECK = select(LEDGER.c.id, LEDGER.c.status, LEDGER.c.message_id, LEDGER.c.sha256,
                           LEDGER.c.claimed_by, LEDGER.c.attempts)

    def _check_and_lease(self, s: Session, mailbox: MailboxConfig, row_id: int,
                         ledger: Any = None) -> Claim | str:
        """The ledger row's checks and its claim in ``s``: the claim, or the status
        that ends the message here (finished before, a duplicate delivery, held
        by another worker). ``ledger`` is the row as :attr:`_LEDGER_CHECK` read
        it in ``s``, if it was."""
        if ledger is None:
            ledger = s.execute(self._LEDGER_CHECK.where(LEDGER.c.id == row_id)).one()
        return self._check_and_lease_many(s, mailbox, [ledger])[row_id]

    def _check_and_lease_many(self, s: Session, mailbox: MailboxConfig,
                              ledgers: list[Any]) -> dict[int, Claim | str]:
        """:meth:`_check_and_lease` for several rows as :attr:`_LEDGER_CHECK` read
        them in ``s``, by row id: one query for their duplicate deliveries and one
        UPDATE for the leases of those no one else holds."""
        ended: dict[int, Claim | str] = {}
        live: list[Any] = []
        for ledger in ledgers:
            if ledger.status in FINAL:
                ended[ledger.id] = str(ledger.status)
            else:
                live.append(ledger)
        # Duplicate delivery: identical bytes already answered elsewhere.
        pairs = [(ledger.message_id, ledger.sha256) for ledger in live if ledger.message_id]
        twins: dict[tuple[str, str], list[Any]] = {}
        if pairs:
            for found in s.execute(
                select(LEDGER.c.id, LEDGER.c.application_id, LEDGER.c.message_id,
                       LEDGER.c.sha256).where(
                    tuple_(LEDGER.c.message_id, LEDGER.c.sha256).in_(pairs),
                    LEDGER.c.status.in_(("processed", "ignored")),
                )
            ):
                twins.setdefault((found.message_id, found.sha256), []).append(found)
        leasing: list[Any] = []
        for ledger in live:
            twin = next((t for t in twins.get((ledger.message_id, ledger.sha256), [])
                         if t.id != ledger.id), None)
            if twin is None:
                leasing.append(ledger)
                continue
            s.execute(update(LEDGER).where(LEDGER.c.id == ledger.id).values(
                status="ignored", outcome=f"duplicate delivery of ledger #{twin.id}",
                application_id=twin.application_id, target_folder=mailbox.processed_folder))
            with logs.about(ledger=ledger.id):
                log.info("message %s in %s: duplicate delivery, not answered again",
                         ledger.message_id, mailbox.name)
            ended[ledger.id] = "ignored"
        # The rows no one holds (or this worker does) in one UPDATE; a dead
        # holder's lease is taken over only while it still names that holder.
        unheld = {ledger.id for ledger in leasing if not holder_is_dead(ledger.claimed_by)}
        claims = self._lease_many(s, sorted(unheld), None) if unheld else {}
        for ledger in leasing:
            if ledger.id not in unheld:
                claims.update(self._lease_many(s, [ledger.id], ledger.claimed_by))
            claim = claims.get(ledger.id)
            if claim is None:
                with logs.about(ledger=ledger.id):
                    log.info("ledger #%s is being handled by another worker", ledger.id)
                ended[ledger.id] = "claimed-elsewhere"
            else:
                ended[ledger.id] = claim
        return ended

    def file_duplicate(self, mailbox: MailboxConfig, row_id: int) -> bool:
        """File ``row_id`` as a copy of the ledger row holding its identity, if one does."""
        with self.store.session() as s:
            row = s.get(ReceivedMessage, row_id)
            assert row is not None
            twin = s.scalars(select(ReceivedMessage).where(
                ReceivedMessage.identity == row.sha256, ReceivedMessage.id != row_id)).first()
            if twin is None:
                return False
            row.status = "ignored"
            row.outcome = f"duplicate delivery of ledger #{twin.id}"
            row.application_id = twin.application_id
            row.target_folder = mailbox.processed_folder
            row.claimed_by = None
            row.claimed_until = None
            log.info("message %s in %s (ledger #%s): copy of ledger #%s decided by another "
                     "worker, not answered again", row.message_id, mailbox.name, row_id, twin.id)
        return True

    def fail(self, row_id: int, exc: BaseException, *, quarantine_after: int,
             described: ParsedMail | None = None) -> None:
        """Record a failed attempt (and the parsed sender and subject, when parsed)."""
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        with self.store.session() as s:
            row = s.get(ReceivedMessage, row_id)
            assert row is not None
            if described is not None:
                self.describe_row(row, described)
            row.last_error = text[:4000]
            row.claimed_by = None
            row.claimed_until = None
            if row.attempts >= quarantine_after:
                row.status = "quarantined"
                row.outcome = f"quarantined after {row.attempts} attempts: {text[:500]}"
                mb = self.config.mailbox(row.mailbox)
                row.target_folder = mb.quarantine_folder if mb else "Quarantine"
                log.error("ledger #%s (%s) quarantined after %d attempts: %s",
                          row_id, row.message_id, row.attempts, text)

    def quarantine(self, mailbox: MailboxConfig, row_id: int, reason: str) -> str:
        with self.store.session() as s:
            row = s.get(ReceivedMessage, row_id)
            assert row is not None
            row.status = "quarantined"
            row.outcome = f"quarantined: {reason[:500]}"
            row.target_folder = mailbox.quarantine_folder
            row.claimed_by = None
            row.claimed_until = None
        log.error("ledger #%s quarantined: %s", row_id, reason)
        return "quarantined"
