"""Scheduled jobs: idempotent sweeps over the store.

Each sweep looks for what is due and not yet done (never what is due exactly
now), so a daemon back from a downtime does what fell due meanwhile, once.

Each job is one small object with a name, how often it runs, and ``run``
calling one handler. The daemon schedules them with APScheduler; ``pasts run
--once`` runs them all once. Every run holds the job's lock (:func:`job_lock`),
so with two daemons on one database a job runs in one of them at a time and
the other logs it as skipped; the jobs are idempotent besides.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from intake.app.certificates import refresh_crl_if_due
from intake.app.digest import queue_digest
from intake.app.expiry import send_expiry_notices
from intake.app.links import Verification
from intake.app.replies import Replies
from intake.app.retention import purge
from intake.app.services import Services
from intake.trust import refresh_if_due
from intake.web.metrics import counted

if TYPE_CHECKING:
    from apscheduler.schedulers.background import BackgroundScheduler

    from intake.store.engine import Store

log = logging.getLogger(__name__)


def every(**interval: int) -> Any:
    """APScheduler's interval trigger (imported when the daemon schedules, not by ``run --once``)."""
    from apscheduler.triggers.interval import IntervalTrigger

    return IntervalTrigger(**interval)


@dataclass(frozen=True)
class ExpireVerificationLinks:
    name: str = "expire-verification-links"

    def trigger(self, services: Services) -> Any:
        return every(minutes=1)

    def run(self, services: Services) -> None:
        with services.store.session() as s:
            n = Verification(services.config, Replies(services.config)).expire_due(s)
        if n:
            log.info("expired %d verification link(s)", n)


@dataclass(frozen=True)
class RemindVerificationLinks:
    """One reminder per link ``verification.remind_hours_before`` before it expires."""

    name: str = "remind-verification-links"

    def trigger(self, services: Services) -> Any:
        return every(minutes=5)

    def run(self, services: Services) -> None:
        with services.store.session() as s:
            n = Verification(services.config, Replies(services.config)).remind_due(s)
        if n:
            log.info("queued %d verification link reminder(s)", n)


@dataclass(frozen=True)
class CertificateExpiryNotices:
    """A notice to the certificate's contact at each of ``ca.expiry_notice_days``."""

    name: str = "certificate-expiry-notices"

    def trigger(self, services: Services) -> Any:
        return every(hours=1)

    def run(self, services: Services) -> None:
        n = send_expiry_notices(services)
        if n:
            log.info("queued %d certificate expiry notice(s)", n)


@dataclass(frozen=True)
class PurgeRetention:
    """Raw mail of applications closed longer than ``daemon.retention_days`` (off: nothing)."""

    name: str = "purge-retention"

    def trigger(self, services: Services) -> Any:
        return every(hours=6)

    def run(self, services: Services) -> None:
        if services.config.daemon.retention_days is None:
            return
        items = purge(services)
        if items:
            log.info("retention purge: %d application(s) purged", len(items))


@dataclass(frozen=True)
class RefreshCrl:
    name: str = "refresh-crl"

    def trigger(self, services: Services) -> Any:
        return every(hours=1)

    def run(self, services: Services) -> None:
        if not services.config.ca.enabled or services.config.ca.crl is None:
            return

        refresh_crl_if_due(services)


@dataclass(frozen=True)
class RefreshTrustLists:
    """Fetch and verify the EU trusted lists when due (``[trust]``)."""

    name: str = "refresh-trust-lists"

    def trigger(self, services: Services) -> Any:
        return every(minutes=30)

    def run(self, services: Services) -> None:
        refresh_if_due(services.config)


@dataclass(frozen=True)
class StaffDigest:
    name: str = "staff-digest"

    def trigger(self, services: Services) -> Any:
        from apscheduler.triggers.cron import CronTrigger

        return CronTrigger.from_crontab(services.config.digest.schedule, timezone="UTC")

    def run(self, services: Services) -> None:
        if not services.config.digest.recipients:
            return

        queue_digest(services)


#: What `run --once` runs; the digest goes out on its cron schedule only.
#: Links expire before reminders are looked for, so an expired link is never reminded of.
JOBS = (ExpireVerificationLinks(), RemindVerificationLinks(), CertificateExpiryNotices(),
        PurgeRetention(), RefreshCrl(), RefreshTrustLists())
SCHEDULED = (*JOBS, StaffDigest())


def lock_id(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for the job ``name``."""
    digest = hashlib.sha256(f"pasts-job:{name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@contextmanager
def job_lock(store: Store, name: str) -> Iterator[bool]:
    """Hold the job's lock while the body runs; yield False if another worker holds it.

    PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a
    connection of its own. SQLite: an exclusive ``flock`` on a file beside
    the database (one host, as SQLite is). Both are let go when the process
    dies, so a killed daemon never leaves a job locked.
    """
    if store.is_sqlite:
        database = store.engine.url.database
        if not database or database == ":memory:":
            yield True
            return
        path = Path(f"{database}.job-{name}.lock")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
        return
    key = lock_id(name)
    with store.engine.connect() as conn:
        held = bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())
        conn.commit()
        try:
            yield held
        finally:
            if held:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                conn.commit()


def run_job(services: Services, job: Any) -> bool:
    """Run ``job`` unless another worker is running it (then log it as skipped)."""
    with job_lock(services.store, job.name) as held:
        if not held:
            log.info("job %s: another worker is running it; skipped", job.name)
            return False
        job.run(services)
        return True


def _scheduled(job: Any, services: Services) -> None:
    try:
        counted(job.name, functools.partial(run_job, services, job))
    except Exception:  # a failing job is logged; the scheduler goes on
        log.exception("job %s failed", job.name)


def start_scheduler(services: Services) -> BackgroundScheduler:
    # Imported here: APScheduler reads every installed package's entry points
    # when its scheduler module loads, which `run --once` need not pay.
    from apscheduler.schedulers.background import BackgroundScheduler

    scheduler = BackgroundScheduler(timezone="UTC")
    for job in SCHEDULED:
        scheduler.add_job(_scheduled, job.trigger(services), args=(job, services), id=job.name,
                          name=job.name, max_instances=1, coalesce=True)
    scheduler.start()
    return scheduler
