"""The per-recipient bound on automatic answers (the backscatter guard).

RFC 3834 asks an automatic responder not to answer one address too often;
SPEC section 5 asks that no application is left unanswered. Both hold here:

* The bound counts per *mailbox* (the local part without a ``+tag``,
  case-folded, at the case-folded domain), so ``victim+1@x`` and
  ``Victim+2@X`` are one recipient, and per *domain*
  (``smtp.rate_limit_per_hour``, ``smtp.rate_limit_per_domain_per_hour``).
* An answer over the bound is never dropped: it is queued ``waiting`` and
  released (``pending``) by the outbox sender when the last hour's count
  allows. Staff see waiting answers in the digest and in ``pasts show``.
* An answer about a signature that chains to a trust anchor is released in
  the same pass whatever the count (it still counts): a forger cannot make
  those, and an integrator filing many applications must hear of each.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session

from intake.config import Config
from intake.store.models import Application, Outbox
from intake.store.models import utcnow as now_utc

log = logging.getLogger(__name__)

WINDOW = timedelta(hours=1)
WAITING = "waiting"
#: The advisory-lock key of the bound (a fixed signed 64-bit number).
BOUND_LOCK = int.from_bytes(b"pastsBnd", "big", signed=True)


@dataclass(frozen=True)
class Recipient:
    """Whom the bound counts: the mailbox and the domain of an address."""

    mailbox: str
    domain: str


def recipient(address: str) -> Recipient:
    """``Jane.Doe+tag@Example.LV`` -> mailbox ``jane.doe@example.lv``, domain ``example.lv``."""
    local, at, domain = address.strip().rpartition("@")
    if not at:
        local, domain = address.strip(), ""
    local = local.split("+", 1)[0] or local
    domain = domain.casefold().rstrip(".")
    return Recipient(mailbox=f"{local.casefold()}@{domain}"[:320], domain=domain[:255])


def anchored(app: Application | None) -> bool:
    """Whether the application's signature chains to a trust anchor (any of its signatures)."""
    if app is None:
        return False
    record = (app.verdicts or {}).get("signature") or {}
    sides = [record.get("mail_signature"), record.get("attachment_signature")]
    signatures: list[Any] = list(record.get("signatures") or []) + [s for s in sides if s]
    return any(bool(s.get("trusted")) for s in signatures if isinstance(s, dict))


def counted(session: Session, who: Recipient, now: datetime) -> tuple[int, int]:
    """Released bounded answers of the last hour: (to this mailbox, to this domain)."""
    since = now - WINDOW
    base = (Outbox.released_at.is_not(None), Outbox.released_at >= since)
    to_mailbox = session.scalar(select(func.count(Outbox.id)).where(
        *base, Outbox.bound_mailbox == who.mailbox))
    to_domain = session.scalar(select(func.count(Outbox.id)).where(
        *base, Outbox.bound_domain == who.domain))
    return int(to_mailbox or 0), int(to_domain or 0)


def serialise(session: Session) -> None:
    """Hold the bound's lock until the caller's commit (PostgreSQL; SQLite serialises writers).

    Counting and placing an answer is a read followed by a write: two workers
    doing it at once would both see room for one more. One transaction-level
    advisory lock (taken only where an answer is placed, just before the
    commit) keeps the count exact without a deadlock between recipients.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": BOUND_LOCK})


def within(config: Config, session: Session, who: Recipient, now: datetime) -> bool:
    to_mailbox, to_domain = counted(session, who, now)
    smtp = config.smtp
    return (to_mailbox < smtp.rate_limit_per_hour
            and to_domain < smtp.rate_limit_per_domain_per_hour)


def place(config: Config, session: Session, row: Outbox, *, trusted: bool) -> None:
    """Put a new bounded answer under the bound: released now, or ``waiting``."""
    serialise(session)
    now = now_utc()
    who = recipient(row.to_addr)
    row.bound_mailbox = who.mailbox
    row.bound_domain = who.domain
    if trusted or within(config, session, who, now):
        row.released_at = now
        return
    row.status = WAITING
    log.warning("bound: answer %s (%s) to %s waits: %d per mailbox / %d per domain per hour "
                "reached (smtp.rate_limit_per_hour, smtp.rate_limit_per_domain_per_hour)",
                row.message_id, row.key, row.to_addr, config.smtp.rate_limit_per_hour,
                config.smtp.rate_limit_per_domain_per_hour)


def release_due(config: Config, session: Session) -> int:
    """Release waiting answers, oldest first, as far as the bound allows now."""
    if session.scalar(select(func.count(Outbox.id)).where(Outbox.status == WAITING)) == 0:
        return 0
    serialise(session)
    now = now_utc()
    released = 0
    waiting = session.execute(
        select(Outbox.id, Outbox.to_addr).where(Outbox.status == WAITING).order_by(Outbox.id)
    ).all()
    full: set[str] = set()
    for row_id, to_addr in waiting:
        who = recipient(to_addr)
        if who.mailbox in full or who.domain in full:
            continue
        if not within(config, session, who, now):
            full.update((who.mailbox, who.domain))
            continue
        done = session.execute(
            update(Outbox).where(Outbox.id == row_id, Outbox.status == WAITING)
            .values(status="pending", released_at=now, next_try_at=now)
        )
        if done.rowcount == 1:  # type: ignore[attr-defined]
            released += 1
            session.flush()
    if released:
        log.info("bound: %d waiting answer(s) released", released)
    return released
