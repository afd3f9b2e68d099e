"""Retention (GDPR): purge raw mail and verification artefacts of long-closed applications.

An application is closed in :data:`CLOSED_STATES`; it has been closed since
its last transition. ``daemon.retention_days`` after that (unset: never) the
purge removes what it no longer needs:

- the raw bytes of its ledger rows (``received_message.raw``) received
  before the cutoff that are processed or ignored *and* moved on the server:
  an unprocessed row (still ``received``), a quarantined one (staff have yet
  to look at it), one not yet moved or a later mail about it (a STATUS
  question last week) keeps its bytes;
- the raw bytes of its sent replies queued before the cutoff (``outbox.raw``;
  pending, waiting or failed replies keep theirs);
- its verification artefacts: the stored validation reports
  (``verdicts.signature.reports``), its CSR and the CSRs of its decided held changes.

The decision record stays: the reference, the state, every transition, the
codes, the verdicts' codes and notes, the fields, the dates, the thread's
Message-IDs and the ledger rows' identity hashes (so a copy arriving later is
still known as a duplicate). ``pasts show`` works the same afterwards and
says when the purge ran. Every step is an idempotent ``UPDATE``; a second run
finds nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Select, func, select, update
from sqlalchemy.orm import Session

from intake.app.replies import now_utc
from intake.app.services import Services
from intake.errors import ConfigurationError
from intake.store.models import Application, HeldChange, Outbox, ReceivedMessage, Transition

log = logging.getLogger(__name__)

#: States in which nothing more is judged on the application.
CLOSED_STATES = ("approved", "active", "rejected", "restricted", "verification-expired")
#: What a purged raw column holds (the column is NOT NULL).
PURGED = b"(purged: daemon.retention_days)\r\n"
#: Ledger rows whose bytes may go: the outcome committed and the server copy moved on.
DONE_STATUSES = ("processed", "ignored")


@dataclass
class PurgeItem:
    """What the purge removes (or, in a dry run, would remove) of one application."""

    application_id: int
    reference: str
    state: str
    closed_at: datetime
    raw_mails: int = 0
    raw_bytes: int = 0
    replies: int = 0
    reply_bytes: int = 0
    reports: int = 0
    csrs: int = 0
    held_csrs: int = 0
    ledger_ids: list[int] = field(default_factory=list)
    outbox_ids: list[int] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.raw_mails or self.replies or self.reports or self.csrs or self.held_csrs)


def cutoff(rt: Services, now: datetime | None = None) -> datetime:
    days = rt.config.daemon.retention_days
    if days is None:
        raise ConfigurationError("retention is off: set daemon.retention_days to purge the raw "
                                 "mail of applications closed longer than that",
                                 key="daemon.retention_days")
    return (now or now_utc()) - timedelta(days=days)


def _closed_before(limit: datetime) -> Select[tuple[int, datetime]]:
    last = (select(Transition.application_id, func.max(Transition.at).label("closed_at"))
            .group_by(Transition.application_id).subquery())
    return (select(Application.id, last.c.closed_at)
            .join(last, last.c.application_id == Application.id)
            .where(Application.state.in_(CLOSED_STATES), last.c.closed_at <= limit))


def plan(rt: Services, s: Session, *, now: datetime | None = None) -> list[PurgeItem]:
    """What a purge now would remove, by application (oldest closure first); changes nothing."""
    limit = cutoff(rt, now)
    closed = dict(s.execute(_closed_before(limit)).tuples().all())
    if not closed:
        return []
    ids = list(closed)
    items: dict[int, PurgeItem] = {}

    def item(app_id: int) -> PurgeItem:
        if app_id not in items:
            app = s.get(Application, app_id)
            assert app is not None
            items[app_id] = PurgeItem(app_id, app.reference, app.state, closed[app_id])
        return items[app_id]

    for app_id, row_id, size in s.execute(
        select(ReceivedMessage.application_id, ReceivedMessage.id, func.length(ReceivedMessage.raw))
        .where(ReceivedMessage.application_id.in_(ids),
               ReceivedMessage.status.in_(DONE_STATUSES), ReceivedMessage.moved.is_(True),
               ReceivedMessage.received_at <= limit, ReceivedMessage.raw != PURGED)
        .order_by(ReceivedMessage.id)
    ).tuples():
        assert app_id is not None
        one = item(app_id)
        one.raw_mails += 1
        one.raw_bytes += int(size or 0)
        one.ledger_ids.append(row_id)
    for app_id, row_id, size in s.execute(
        select(Outbox.application_id, Outbox.id, func.length(Outbox.raw))
        .where(Outbox.application_id.in_(ids), Outbox.status == "sent",
               Outbox.kind != "verification", Outbox.created_at <= limit,
               Outbox.raw != PURGED)
        .order_by(Outbox.id)
    ).tuples():
        assert app_id is not None
        one = item(app_id)
        one.replies += 1
        one.reply_bytes += int(size or 0)
        one.outbox_ids.append(row_id)
    for app_id, count in s.execute(
        select(HeldChange.application_id, func.count())
        .where(HeldChange.application_id.in_(ids), HeldChange.status != "held",
               HeldChange.csr_der.is_not(None))
        .group_by(HeldChange.application_id)
    ).tuples():
        item(app_id).held_csrs += int(count)
    for app in s.scalars(select(Application).where(Application.id.in_(ids))):
        reports = len(((app.verdicts or {}).get("signature") or {}).get("reports") or [])
        if reports or app.csr_der is not None:
            one = item(app.id)
            one.reports = reports
            one.csrs = int(app.csr_der is not None)
    found = [i for i in items.values() if not i.empty]
    return sorted(found, key=lambda i: (i.closed_at, i.application_id))


def apply(s: Session, items: list[PurgeItem], *, now: datetime | None = None) -> None:
    """Remove what ``items`` list, in the caller's transaction."""
    now = now or now_utc()
    for one in items:
        if one.ledger_ids:
            s.execute(update(ReceivedMessage)
                      .where(ReceivedMessage.id.in_(one.ledger_ids),
                             ReceivedMessage.status.in_(DONE_STATUSES))
                      .values(raw=PURGED))
        if one.outbox_ids:
            s.execute(update(Outbox)
                      .where(Outbox.id.in_(one.outbox_ids), Outbox.status == "sent")
                      .values(raw=PURGED))
        s.execute(update(HeldChange)
                  .where(HeldChange.application_id == one.application_id,
                         HeldChange.status != "held")
                  .values(csr_der=None))
        app = s.get(Application, one.application_id)
        assert app is not None
        verdicts = dict(app.verdicts or {})
        signature = dict(verdicts.get("signature") or {})
        if signature.pop("reports", None) is not None:
            verdicts["signature"] = signature
            app.verdicts = verdicts  # a new dict: the JSON column sees the change
        app.csr_der = None
        app.purged_at = now
        log.info("%s: purged %d raw mail(s) (%d bytes), %d reply copies, %d validation "
                 "report(s), %d CSR(s) (closed %s, daemon.retention_days)", one.reference,
                 one.raw_mails, one.raw_bytes, one.replies, one.reports,
                 one.csrs + one.held_csrs, f"{one.closed_at:%Y-%m-%d}")


def purge(rt: Services, *, dry_run: bool = False, now: datetime | None = None) -> list[PurgeItem]:
    """Plan and (unless ``dry_run``) apply the purge in one transaction; what it found."""
    with rt.store.session() as s:
        items = plan(rt, s, now=now)
        if not dry_run:
            apply(s, items, now=now)
        else:
            s.rollback()
        return items
