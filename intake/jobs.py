"""Scheduled jobs: idempotent sweeps over the store.

Each job is one small object with a name, how often it runs, and ``run``
calling one handler. The daemon schedules them with APScheduler; ``pasts run
--once`` runs them all once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

if TYPE_CHECKING:
    from intake.runtime import Runtime

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ExpireVerificationLinks:
    name: str = "expire-verification-links"

    def trigger(self, runtime: Runtime) -> Any:
        return IntervalTrigger(minutes=1)

    def run(self, runtime: Runtime) -> None:
        from intake.service import Replies
        from intake.verification import Verification

        with runtime.store.session() as s:
            n = Verification(runtime.config, Replies(runtime.config)).expire_due(s)
        if n:
            log.info("expired %d verification link(s)", n)


@dataclass(frozen=True)
class RefreshCrl:
    name: str = "refresh-crl"

    def trigger(self, runtime: Runtime) -> Any:
        return IntervalTrigger(hours=1)

    def run(self, runtime: Runtime) -> None:
        if not runtime.config.ca.enabled or runtime.config.ca.crl is None:
            return
        from intake.certificates import refresh_crl_if_due

        refresh_crl_if_due(runtime)


@dataclass(frozen=True)
class RefreshTrustLists:
    """Fetch and verify the EU trusted lists when due (``[trust]``)."""

    name: str = "refresh-trust-lists"

    def trigger(self, runtime: Runtime) -> Any:
        return IntervalTrigger(minutes=30)

    def run(self, runtime: Runtime) -> None:
        from intake.trust import refresh_if_due

        refresh_if_due(runtime.config)


@dataclass(frozen=True)
class StaffDigest:
    name: str = "staff-digest"

    def trigger(self, runtime: Runtime) -> Any:
        return CronTrigger.from_crontab(runtime.config.digest.schedule, timezone="UTC")

    def run(self, runtime: Runtime) -> None:
        if not runtime.config.digest.recipients:
            return
        from intake.digest import queue_digest

        queue_digest(runtime)


#: What `run --once` runs; the digest goes out on its cron schedule only.
JOBS = (ExpireVerificationLinks(), RefreshCrl(), RefreshTrustLists())
SCHEDULED = (*JOBS, StaffDigest())


def start_scheduler(runtime: Runtime) -> BackgroundScheduler:
    from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED

    from intake.metrics import job_listener

    scheduler = BackgroundScheduler(timezone="UTC")
    # Runs and failures, by job, for /metrics.
    scheduler.add_listener(job_listener, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR)
    for job in SCHEDULED:
        scheduler.add_job(job.run, job.trigger(runtime), args=(runtime,), id=job.name,
                          name=job.name, max_instances=1, coalesce=True)
    scheduler.start()
    return scheduler
