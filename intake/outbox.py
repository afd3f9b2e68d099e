"""Sending what the outbox holds.

Replies are queued in the same transaction as their cause
(:class:`intake.service.Replies`); this module sends them. A row is leased
before it is sent and marked sent right after the server accepts it. A crash
between the two means the reply is sent again with the *same* Message-ID
(at-least-once towards the SMTP server; receiving clients fold the copies),
never a second, different answer. Failures back off exponentially; a 5xx
answer or ``smtp.max_attempts`` failures mark the row ``failed`` for staff.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from sqlalchemy import select, update

from intake import logs
from intake.config import Config
from intake.errors import DeliveryError
from intake.faults import crash_point
from intake.leases import is_free, takeable
from intake.models import Outbox
from intake.service import now_utc, record_undeliverable
from intake.store import Store

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
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

    def due(self, limit: int = 100) -> list[int]:
        now = now_utc()
        with self.store.session() as s:
            rows = s.execute(
                select(Outbox.id, Outbox.claimed_by, Outbox.claimed_until)
                .where(Outbox.status == "pending", Outbox.next_try_at <= now)
                .order_by(Outbox.id)
                .limit(limit)
            ).all()
        return [r.id for r in rows if is_free(r.claimed_by, r.claimed_until, now)]

    def lease(self, row_id: int) -> Outbox | None:
        now = now_utc()
        with self.store.session() as s:
            holder = s.scalar(select(Outbox.claimed_by).where(Outbox.id == row_id))
            result = s.execute(
                update(Outbox)
                .where(Outbox.id == row_id, Outbox.status == "pending",
                       takeable(Outbox, now, holder))
                .values(claimed_by=self.worker, claimed_until=now + LEASE,
                        attempts=Outbox.attempts + 1)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return None
            return s.get(Outbox, row_id)

    async def flush(self) -> tuple[int, int]:
        """Send every due row; return (sent, failed) counts."""
        sent = failed = 0
        for row_id in self.due():
            row = self.lease(row_id)
            if row is None:
                continue
            with self.store.session() as s:
                logs.bind(outbox=row_id, reference=logs.reference_of(s, row.application_id))
            try:
                payload = self.payload(row_id)
                await self.transport.send(  # type: ignore[attr-defined]
                    payload, sender=row.sender, recipients=list(row.recipients)
                )
            except DeliveryError as exc:
                failed += 1
                self.record_failure(row_id, exc)
                continue
            crash_point("after-send")
            with self.store.session() as s:
                done = s.get(Outbox, row_id)
                assert done is not None
                done.status = "sent"
                done.sent_at = now_utc()
                done.claimed_by = None
                done.claimed_until = None
                done.last_error = None
                if done.kind == "verification":
                    # The row never held the link; once sent, its text goes too.
                    done.raw = SCRUBBED
            sent += 1
            log.info("sent %s to %s (%s)", row.message_id, ", ".join(row.recipients), row.key)
        return sent, failed

    def payload(self, row_id: int) -> bytes:
        """What is sent for the row: its bytes, a verification mail with its link filled in."""
        from intake.service import Replies
        from intake.verification import Verification

        with self.store.session() as s:
            row = s.get(Outbox, row_id)
            assert row is not None
            return Verification(self.config, Replies(self.config)).outgoing(s, row)

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
