"""Sending what the outbox holds.

Replies are queued in the same transaction as their cause
(:class:`intake.app.replies.Replies`); this module sends them. A row is leased
before it is sent and marked sent right after the server accepts it. A crash
between the two means the reply is sent again with the *same* Message-ID
(at-least-once towards the SMTP server; receiving clients fold the copies),
never a second, different answer. Failures back off exponentially; a 5xx
answer or ``smtp.max_attempts`` failures mark the row ``failed`` for staff.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import case, or_, select, update
from sqlalchemy.orm import Session

from intake import logs
from intake.app.bound import release_due
from intake.app.links import Verification
from intake.app.replies import Replies, now_utc, record_undeliverable
from intake.config import Config
from intake.errors import DeliveryError
from intake.faults import crash_point
from intake.store.engine import Store
from intake.store.leases import holder_is_dead
from intake.store.models import Outbox

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
#: Rows leased at a time: small enough that a batch is sent well within its lease.
BATCH = 50
SCRUBBED = b"(removed after sending: the mail carried a single-use verification link)\r\n"


def backoff(attempts: int) -> timedelta:
    """30 s, 1 min, 2 min, ... capped at one hour."""
    return timedelta(seconds=min(30 * 2 ** max(attempts - 1, 0), 3600))


class OutboxSender:
    def __init__(self, config: Config, store: Store, transport: object, *, worker: str):
        self.config = config
        self.store = store
        self.transport = transport
        self.worker = worker
        #: Fills in a verification mail's link when it is sent (made once, not per row).
        self.verification = Verification(config, Replies(config))

    def due(self, limit: int = BATCH) -> list[int]:
        """Lease up to ``limit`` due rows for this worker; return their ids.

        The rows are chosen and leased in one transaction. On PostgreSQL they
        are read ``FOR UPDATE SKIP LOCKED``, so a second worker flushing at the
        same moment takes the next rows instead of the same ones; on SQLite
        the database's write lock serialises the two. A row leased by a live
        worker is not taken; one whose holder died is.
        """
        now = now_utc()
        free = or_(Outbox.claimed_until.is_(None), Outbox.claimed_until < now)
        with self.store.session() as s:
            holders = s.scalars(
                select(Outbox.claimed_by).distinct()
                .where(Outbox.status == "pending", Outbox.claimed_until >= now)
            ).all()
            dead = [h for h in holders if holder_is_dead(h)]
            if dead:
                free = or_(free, Outbox.claimed_by.in_(dead))
            query = (select(Outbox.id).where(Outbox.status == "pending",
                                             Outbox.next_try_at <= now, free)
                     .order_by(Outbox.id).limit(limit))
            if not self.store.is_sqlite:
                query = query.with_for_update(skip_locked=True)
            ids = list(s.scalars(query).all())
            if not ids:
                return []
            s.execute(
                update(Outbox).where(Outbox.id.in_(ids))
                .values(claimed_by=self.worker, claimed_until=now + LEASE,
                        attempts=Outbox.attempts + 1)
            )
        return ids

    def lease(self, row_id: int) -> Outbox | None:
        """The row, its lease renewed, if this worker still holds it (taken by :meth:`due`).

        Renewed right before sending, so a slow server earlier in the batch
        never lets a lease run out while the row waits its turn; a lease with
        more than half of :data:`LEASE` left is only read (no other worker can
        take it before it runs out), which spares a commit per reply.
        """
        with self.store.session() as s:
            return self._lease(s, row_id)

    def _lease(self, s: Session, row_id: int) -> Outbox | None:
        now = now_utc()
        row = s.get(Outbox, row_id)
        if row is None or row.status != "pending" or row.claimed_by != self.worker:
            return None
        if row.claimed_until is not None and row.claimed_until > now + LEASE / 2:
            return row
        result = s.execute(
            update(Outbox)
            .where(Outbox.id == row_id, Outbox.status == "pending",
                   Outbox.claimed_by == self.worker)
            .values(claimed_until=now + LEASE)
            .execution_options(synchronize_session="fetch")
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            return None
        return row

    def release(self) -> int:
        """Let waiting answers go as far as the per-recipient bound allows (intake.app.bound)."""
        with self.store.session() as s:
            return release_due(self.config, s)

    async def flush(self) -> tuple[int, int]:
        """Send every due row, batch after batch, until none is left; return (sent, failed).

        ``run --once`` and the daemon's loop both drain: a backlog larger than
        one batch goes out in the same flush (SPEC section 7).
        """
        sent = failed = 0
        self.release()
        while True:
            batch = self.due()
            if not batch:
                break
            for row_id in batch:
                ok = await self.send_one(row_id)
                if ok is None:
                    continue
                if ok:
                    sent += 1
                else:
                    failed += 1
        return sent, failed

    async def send_one(self, row_id: int) -> bool | None:
        """Send one leased row: True sent, False failed, None not ours."""
        # The lease, the log's reference and the bytes to send in one transaction.
        unsendable: DeliveryError | None = None
        with self.store.session() as s:
            row = self._lease(s, row_id)
            if row is None:
                return None
            logs.bind(outbox=row_id, reference=logs.reference_of(s, row.application_id))
            try:
                payload = self._payload(s, row)
            except DeliveryError as exc:
                unsendable = exc
        if unsendable is not None:
            self.record_failure(row_id, unsendable)
            return False
        try:
            await self.transport.send(  # type: ignore[attr-defined]
                payload, sender=row.sender, recipients=list(row.recipients)
            )
        except DeliveryError as exc:
            self.record_failure(row_id, exc)
            return False
        crash_point("after-send")
        with self.store.session() as s:
            # One UPDATE (the row is not read again). A verification row never
            # held the link; once sent, its text goes too.
            s.execute(
                update(Outbox).where(Outbox.id == row_id)
                .values(status="sent", sent_at=now_utc(), claimed_by=None, claimed_until=None,
                        last_error=None,
                        raw=case((Outbox.kind == "verification", SCRUBBED), else_=Outbox.raw))
                .execution_options(synchronize_session=False)
            )
        log.info("sent %s to %s (%s)", row.message_id, ", ".join(row.recipients), row.key)
        return True

    def payload(self, row_id: int) -> bytes:
        """What is sent for the row: its bytes, a verification mail with its link filled in."""
        with self.store.session() as s:
            row = s.get(Outbox, row_id)
            assert row is not None
            return self._payload(s, row)

    def _payload(self, s: Session, row: Outbox) -> bytes:
        return self.verification.outgoing(s, row)

    def record_failure(self, row_id: int, exc: DeliveryError) -> None:
        with self.store.session() as s:
            row = s.get(Outbox, row_id)
            assert row is not None
            row.last_error = str(exc)[:2000]
            row.claimed_by = None
            row.claimed_until = None
            if exc.undeliverable and row.application is not None:
                # The address cannot be written to (SPEC section 5): staff see
                # it on the application as well as among the failed replies.
                record_undeliverable(row.application, ", ".join(row.recipients), str(exc))
            if exc.permanent or row.attempts >= self.config.smtp.max_attempts:
                row.status = "failed"
                log.error("giving up on %s to %s after %d attempts: %s", row.message_id,
                          ", ".join(row.recipients), row.attempts, exc)
            else:
                row.next_try_at = now_utc() + backoff(row.attempts)
                log.warning("sending %s failed (attempt %d), retry at %s: %s", row.message_id,
                            row.attempts, row.next_try_at.isoformat(timespec="seconds"), exc)
