"""Readiness (``GET /readyz``, SPEC section 9) and the mailbox poll record it reads.

Ready means: the database answers, every mailbox was polled successfully
within three of its poll intervals (``poll_seconds``), the outbox has no
reply waiting longer than an hour past its due time, the trusted lists are
fresh and the CRL is current. Each check gives a JSON-able body whatever its
outcome; a check whose feature is not configured passes and says so.

The poll record (:class:`Polls`) lives in the process: each daemon answers
for the mailboxes its own threads poll. The other checks read the database
and files, so every worker on one PostgreSQL answers the same for them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from sqlalchemy import func, select, text

from intake import trust
from intake.app.certificates import refresh_crl_if_due, regenerate_crl
from intake.app.services import Services
from intake.store.models import KeyValue, Outbox

log = logging.getLogger(__name__)

#: A mailbox is stale after this many poll intervals without a successful poll.
POLL_INTERVALS = 3
#: A reply still queued this long past its due time makes the daemon not ready.
OUTBOX_GRACE = timedelta(hours=1)
#: Outbox states of a reply that is still to be sent ("waiting": held by a bound).
UNSENT = ("pending", "waiting")


def iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z") \
        if value is not None else None


@dataclass
class Polls:
    """When each mailbox of this process was last polled successfully, and its last error."""

    started: float = field(default_factory=time.time)
    _success: dict[str, float] = field(default_factory=dict)
    _error: dict[str, tuple[float, str]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def succeeded(self, mailbox: str, at: float | None = None) -> None:
        with self._lock:
            self._success[mailbox] = time.time() if at is None else at
            self._error.pop(mailbox, None)

    def failed(self, mailbox: str, error: str, at: float | None = None) -> None:
        with self._lock:
            self._error[mailbox] = (time.time() if at is None else at, error[:300])

    def last_success(self, mailbox: str) -> float | None:
        with self._lock:
            return self._success.get(mailbox)

    def last_error(self, mailbox: str) -> tuple[float, str] | None:
        with self._lock:
            return self._error.get(mailbox)


class Watched(Services, Protocol):
    """What the health checks and metrics read: config, store, and this process's mailbox polls."""

    @property
    def polls(self) -> Polls: ...


class RecordedSource:
    """A mailbox source whose every answer counts as a successful poll.

    A long backlog is worked through in one drain; each message the server
    hands over, and the end of the fetch, shows the mailbox is being polled,
    so a busy mailbox is not reported as silent.
    """

    def __init__(self, source: Any, polls: Polls):
        self.source = source
        self.polls = polls
        self.name = source.config.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self.source, name)

    def fetch(self, **kwargs: Any) -> Iterator[Any]:
        for message in self.source.fetch(**kwargs):
            self.polls.succeeded(self.name)
            yield message
        self.polls.succeeded(self.name)


# -- the checks -------------------------------------------------------------------


def check_database(rt: Watched, now: datetime) -> dict[str, Any]:
    started = time.monotonic()
    with rt.store.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return {"ok": True, "seconds": round(time.monotonic() - started, 4)}


def check_mailboxes(rt: Watched, now: datetime) -> dict[str, Any]:
    mailboxes = rt.config.mailboxes
    if not mailboxes:
        return {"ok": True, "configured": False}
    body: dict[str, Any] = {}
    for mb in mailboxes:
        limit = POLL_INTERVALS * mb.poll_seconds
        last = rt.polls.last_success(mb.name)
        age = now.timestamp() - last if last is not None else None
        item: dict[str, Any] = {
            "ok": age is not None and age <= limit,
            "last_success": iso(datetime.fromtimestamp(last, UTC)) if last is not None else None,
            "age_seconds": round(age, 1) if age is not None else None,
            "limit_seconds": limit,
        }
        error = rt.polls.last_error(mb.name)
        if error is not None:
            item["last_error"] = error[1]
            item["last_error_at"] = iso(datetime.fromtimestamp(error[0], UTC))
        if last is None:
            item["reason"] = "not polled successfully since the process started"
        elif not item["ok"]:
            item["reason"] = f"last polled successfully {age:.0f} s ago (limit {limit:.0f} s)"
        body[mb.name] = item
    return {"ok": all(item["ok"] for item in body.values()), "mailboxes": body}


def check_outbox(rt: Watched, now: datetime) -> dict[str, Any]:
    cutoff = now - OUTBOX_GRACE
    with rt.store.session() as s:
        overdue, oldest = s.execute(
            select(func.count(Outbox.id), func.min(Outbox.next_try_at))
            .where(Outbox.status.in_(UNSENT), Outbox.next_try_at < cutoff)
        ).one()
    body: dict[str, Any] = {"ok": overdue == 0, "overdue": int(overdue),
                            "grace_seconds": OUTBOX_GRACE.total_seconds()}
    if oldest is not None:
        oldest = oldest.replace(tzinfo=UTC) if oldest.tzinfo is None else oldest
        body["oldest_due"] = iso(oldest)
        body["reason"] = (f"{overdue} repl{'y' if overdue == 1 else 'ies'} waiting more than "
                          f"an hour past due (oldest due {iso(oldest)})")
    return body


def check_trusted_lists(rt: Watched, now: datetime) -> dict[str, Any]:
    ok, body = trust.readiness(rt.config, now=now)
    return {"ok": ok, **body}


@dataclass(frozen=True)
class CrlState:
    number: int | None
    this_update: datetime
    next_update: datetime
    der: bytes


def read_crl(path: Path) -> CrlState:
    """The CRL file (PEM as :func:`signing.ca.write_crl` writes it, or DER)."""
    data = path.read_bytes()
    crl = (x509.load_pem_x509_crl(data) if data.lstrip().startswith(b"-----")
           else x509.load_der_x509_crl(data))
    try:
        number = int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        number = None
    next_update = crl.next_update_utc
    if next_update is None:
        raise ValueError("the CRL has no nextUpdate")
    from cryptography.hazmat.primitives.serialization import Encoding

    return CrlState(number, crl.last_update_utc, next_update, crl.public_bytes(Encoding.DER))


def check_crl(rt: Watched, now: datetime) -> dict[str, Any]:
    """Current: readable, within its validity, and not older than the last one signed."""
    ca = rt.config.ca
    if not ca.enabled or ca.crl is None:
        return {"ok": True, "configured": False}
    try:
        state = read_crl(ca.crl)
    except (OSError, ValueError) as exc:
        return {"ok": False, "path": str(ca.crl), "reason": f"cannot read the CRL: {exc}"}
    with rt.store.session() as s:
        kv = s.get(KeyValue, "crl_number")
        signed = int(kv.value) if kv is not None else None
    body: dict[str, Any] = {"ok": True, "path": str(ca.crl), "number": state.number,
                            "this_update": iso(state.this_update),
                            "next_update": iso(state.next_update)}
    if state.next_update <= now:
        body.update(ok=False, reason=f"past its nextUpdate {iso(state.next_update)}")
    elif signed is not None and (state.number is None or state.number < signed):
        body.update(ok=False, reason=f"the file holds CRL #{state.number}, the newest signed "
                                     f"is #{signed}")
    return body


CHECKS: dict[str, Callable[[Watched, datetime], dict[str, Any]]] = {
    "database": check_database,
    "mailboxes": check_mailboxes,
    "outbox": check_outbox,
    "trusted_lists": check_trusted_lists,
    "crl": check_crl,
}


def readiness(rt: Watched, *, now: datetime | None = None) -> tuple[bool, dict[str, Any]]:
    """Whether the daemon is ready, and a body naming each check (SPEC section 9)."""
    now = now or datetime.now(UTC)
    checks: dict[str, Any] = {}
    for name, check in CHECKS.items():
        try:
            checks[name] = check(rt, now)
        except Exception as exc:  # a failing check is an answer, not a 500
            log.warning("readiness check %s failed: %s", name, exc)
            checks[name] = {"ok": False, "reason": f"{type(exc).__name__}: {str(exc)[:300]}"}
    ok = all(c["ok"] for c in checks.values())
    return ok, {"ready": ok, "checks": checks, "failing": [n for n, c in checks.items()
                                                           if not c["ok"]]}


def ensure_current_crl(rt: Watched) -> bool:
    """At start (``ca.crl`` set): sign and write a CRL unless the file is current.

    Returns whether a new CRL was written.
    """
    ca = rt.config.ca
    if not ca.enabled or ca.crl is None:
        return False

    check = check_crl(rt, datetime.now(UTC))
    if check["ok"]:
        # Current, but perhaps within its last quarter: the scheduled refresh's rule.
        return refresh_crl_if_due(rt)
    log.info("CRL %s is not current (%s): signing a new one", ca.crl, check.get("reason"))
    with rt.store.session() as s:
        regenerate_crl(rt, s)
    return True
