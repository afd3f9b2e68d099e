"""``GET /metrics``: the Prometheus text format, by prometheus-client.

Two kinds of numbers, so that they are right with several workers on one
PostgreSQL and across restarts:

- **from the database, at scrape time** (:class:`StoreCollector`): messages
  by outcome, replies by status (sent, failed, pending, waiting), queue
  depths, applications by workflow and state, the oldest overdue reply, the
  CRL's next update. Every worker reports the same values for these (they
  are the deployment's, not the process's): aggregate them with ``max``,
  not ``sum``.
- **in the process** (counters and a histogram): verification seconds, job
  runs and failures, each mailbox's last successful poll. Each worker
  reports its own; ``sum`` them across workers. They start at zero when the
  process starts, which Prometheus' ``rate()`` expects of a counter.

Trusted-list ages are read from the list cache at scrape time.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from intake.store.models import Application, KeyValue, Outbox, ReceivedMessage
from intake.web.health import OUTBOX_GRACE, UNSENT, Watched

log = logging.getLogger(__name__)

#: Ledger statuses (SPEC section 2): "received" is not decided yet.
MESSAGE_OUTCOMES = ("received", "processed", "ignored", "quarantined")
#: Outbox statuses; "waiting" is a reply held by a bound (the rate limit).
REPLY_STATES = ("pending", "waiting", "sent", "failed")
#: Applications in these states wait for staff.
STAFF_STATES = ("in-review",)

# -- in the process ------------------------------------------------------------------

VERIFICATION_SECONDS = Histogram(
    "pasts_verification_seconds",
    "Wall-clock seconds to verify one signed form or container, by kind",
    ["kind"],
    buckets=(0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0),
    registry=None,
)
JOB_RUNS = Counter("pasts_job_runs", "Scheduled job runs in this process, by job", ["job"],
                   registry=None)
JOB_FAILURES = Counter("pasts_job_failures", "Scheduled job runs that raised, by job", ["job"],
                       registry=None)

#: The verifier's methods, and the kind each is labelled with.
TIMED = {
    "verify_pdf_sync": "pdf",
    "verify_detached_sync": "detached",
    "verify_asic_sync": "asic",
    "verify_signed_file_sync": "signed-file",
}


class TimedVerifier:
    """The verifier, each verification observed in :data:`VERIFICATION_SECONDS`."""

    def __init__(self, inner: Any):
        self.inner = inner

    def observe(self, method: str, seconds: float) -> None:
        """Count a verification made elsewhere (in a child, as part of a prepared mail)."""
        kind = TIMED.get(method)
        if kind is not None:
            VERIFICATION_SECONDS.labels(kind).observe(seconds)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.inner, name)
        kind = TIMED.get(name)
        if kind is None:
            return value

        def timed(*args: Any, **kwargs: Any) -> Any:
            with VERIFICATION_SECONDS.labels(kind).time():
                return value(*args, **kwargs)

        return timed


def counted(name: str, run: Callable[[], object]) -> None:
    """Run a job outside the scheduler (``run --once``), counted the same way."""
    JOB_RUNS.labels(name).inc()
    try:
        run()
    except BaseException:
        JOB_FAILURES.labels(name).inc()
        raise


# -- from the database, at scrape time ---------------------------------------------------


def _timestamp(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


class StoreCollector(Collector):
    """Gauges computed from the store (and the trusted-list cache) when scraped."""

    def __init__(self, runtime: Watched):
        self.runtime = runtime

    def collect(self) -> Iterator[Metric]:
        rt = self.runtime
        now = datetime.now(UTC)
        with rt.store.session() as s:
            messages = dict(s.execute(select(ReceivedMessage.status, func.count())
                                      .group_by(ReceivedMessage.status)).tuples().all())
            replies = dict(s.execute(select(Outbox.status, func.count())
                                     .group_by(Outbox.status)).tuples().all())
            due = s.scalar(select(func.count(Outbox.id)).where(
                Outbox.status.in_(UNSENT), Outbox.next_try_at <= now)) or 0
            oldest_due = s.scalar(select(func.min(Outbox.next_try_at)).where(
                Outbox.status.in_(UNSENT), Outbox.next_try_at <= now))
            applications = s.execute(
                select(Application.workflow, Application.state, func.count())
                .group_by(Application.workflow, Application.state)).tuples().all()
            crl_next = s.get(KeyValue, "crl_next_update")

        family = GaugeMetricFamily("pasts_messages", "Ledger messages by outcome (status)",
                                   labels=["outcome"])
        for outcome in sorted(set(MESSAGE_OUTCOMES) | set(messages)):
            family.add_metric([outcome], messages.get(outcome, 0))
        yield family

        family = GaugeMetricFamily("pasts_replies", "Outbox replies by status", labels=["status"])
        for status in sorted(set(REPLY_STATES) | set(replies)):
            family.add_metric([status], replies.get(status, 0))
        yield family

        family = GaugeMetricFamily(
            "pasts_queue_depth",
            "Work waiting: messages not yet decided (intake), replies due now (outbox), "
            "applications waiting for staff (review)", labels=["queue"])
        family.add_metric(["intake"], messages.get("received", 0))
        family.add_metric(["outbox"], due)
        family.add_metric(["review"], sum(n for _w, state, n in applications
                                          if state in STAFF_STATES))
        yield family

        overdue = max(0.0, now.timestamp() - (_timestamp(oldest_due) or now.timestamp()))
        yield GaugeMetricFamily(
            "pasts_outbox_oldest_due_seconds",
            "How long the oldest unsent reply is past its due time (readiness fails past "
            f"{OUTBOX_GRACE.total_seconds():.0f} s)", value=overdue)

        family = GaugeMetricFamily("pasts_applications", "Applications by workflow and state",
                                   labels=["workflow", "state"])
        for workflow, state, n in sorted(applications):
            family.add_metric([workflow, state], n)
        yield family

        if crl_next is not None:
            yield GaugeMetricFamily(
                "pasts_crl_next_update_timestamp_seconds",
                "When the newest CRL signed expires (its nextUpdate, Unix time)",
                value=datetime.fromisoformat(crl_next.value).timestamp())

        family = GaugeMetricFamily(
            "pasts_mailbox_last_success_timestamp_seconds",
            "When this process last polled the mailbox successfully (Unix time; 0: not yet)",
            labels=["mailbox"])
        for mb in rt.config.mailboxes:
            family.add_metric([mb.name], rt.polls.last_success(mb.name) or 0.0)
        yield family

        yield from self._trust(now)

    def _trust(self, now: datetime) -> Iterator[Metric]:
        trust = self.runtime.config.trust
        if trust is None:
            return
        from signing.trust.trustlists import status

        try:
            items = status(trust.settings(), now=now)
        except Exception as exc:  # the other metrics still answer
            log.warning("metrics: cannot read the trusted lists: %s", exc)
            return
        age = GaugeMetricFamily(
            "pasts_trusted_list_age_seconds",
            "Seconds since each trusted list was last fetched and verified", labels=["territory"])
        fresh = GaugeMetricFamily("pasts_trusted_list_fresh",
                                  "1 when the trusted list is fresh, 0 when stale",
                                  labels=["territory"])
        for item in sorted(items, key=lambda i: i.state.territory):
            verified = item.state.verified_at
            if verified is not None:
                age.add_metric([item.state.territory], (now - verified).total_seconds())
            fresh.add_metric([item.state.territory], 0.0 if item.stale else 1.0)
        yield age
        yield fresh


def registry_for(runtime: Watched) -> CollectorRegistry:
    """What ``/metrics`` of this runtime reports."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(StoreCollector(runtime))
    for collector in (VERIFICATION_SECONDS, JOB_RUNS, JOB_FAILURES):
        registry.register(collector)
    ProcessCollector(registry=registry)
    return registry


def render(registry: CollectorRegistry) -> bytes:
    started = time.monotonic()
    body = generate_latest(registry)
    log.debug("metrics rendered in %.3f s", time.monotonic() - started)
    return body
