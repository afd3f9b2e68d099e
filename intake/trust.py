"""``pasts trust refresh`` / ``pasts trust status`` and the scheduled refresh.

Thin wrappers around :mod:`signing.trust.trustlists`: they read ``[trust]`` from
the configuration, print one line per list and turn the outcome into the exit
status SPEC section 8 asks for (non-zero when a list cannot be fetched or
verified, or is stale or missing).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TextIO

from intake.config import Config
from intake.errors import ConfigurationError
from signing.trust.trustlists import ListState, refresh, status

log = logging.getLogger(__name__)


def _configured(config: Config) -> None:
    if config.trust is None:
        raise ConfigurationError("is not configured", key="trust", path=str(config.path))


def _line(state: ListState, freshness: str) -> str:
    def when(value: datetime | None) -> str:
        return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value is not None else "-"

    sequence = str(state.sequence) if state.sequence is not None else "-"
    return (f"{state.territory:<3} seq {sequence:<5} issued {when(state.issued)}  "
            f"next update {when(state.next_update)}  verified {when(state.verified_at)}  "
            f"{freshness}")


def cmd_trust_refresh(config: Config, *, out: TextIO) -> int:
    """Fetch, verify and cache the lists; 1 when any list failed (its last good copy stays)."""
    _configured(config)
    assert config.trust is not None
    result = refresh(config.trust.settings())
    for state in result.lists:
        print(_line(state, "FAILED: " + state.error if state.error else "ok"), file=out)
    print(f"refresh took {result.seconds:.2f} s", file=out)
    for error in result.errors:
        log.error("trusted list refresh: %s", error)
    return 0 if result.ok else 1


def cmd_trust_status(config: Config, *, out: TextIO) -> int:
    """Each list's sequence, dates and freshness; 1 when any is stale or missing."""
    _configured(config)
    assert config.trust is not None
    lines = status(config.trust.settings())
    for item in lines:
        print(_line(item.state, f"STALE: {item.stale}" if item.stale else "fresh"), file=out)
    if len(lines) == 1:
        print("no national list is cached", file=out)
        return 1
    return 1 if any(item.stale for item in lines) else 0


def refresh_if_due(config: Config, *, now: datetime | None = None) -> bool:
    """The scheduled refresh: when a list is due (a quarter of max_age, or past its next update)."""
    if config.trust is None:
        return False
    settings = config.trust.settings()
    now = now or datetime.now(UTC)
    due_after = timedelta(hours=settings.max_age_hours / 4)
    items = status(settings, now=now)
    due = len(items) == 1 or any(
        item.stale or item.state.error or item.state.verified_at is None
        or now - item.state.verified_at > due_after
        for item in items
    )
    if not due:
        return False
    result = refresh(settings, now=now)
    for error in result.errors:
        log.error("trusted list refresh: %s (the last good copy stays)", error)
    log.info("trusted lists refreshed in %.2f s: %d list(s), %d error(s)",
             result.seconds, len(result.lists), len(result.errors))
    return True


def readiness(config: Config, *, now: datetime | None = None) -> tuple[bool, dict[str, object]]:
    """The trusted-list check of ``/readyz`` (SPEC section 9): fresh, or not configured.

    Returns whether it passes and a JSON-able body naming each list's
    freshness and age in hours (also what ``/metrics`` reports as the
    trusted-list age).
    """
    if config.trust is None:
        return True, {"configured": False}
    now = now or datetime.now(UTC)
    items = status(config.trust.settings(), now=now)
    lists: dict[str, object] = {}
    for item in items:
        verified = item.state.verified_at
        lists[item.state.territory] = {
            "fresh": item.stale is None,
            "age_hours": round((now - verified).total_seconds() / 3600, 2) if verified else None,
            "reason": item.stale,
        }
    ok = len(items) > 1 and all(item.stale is None for item in items)
    return ok, {"configured": True, "lists": lists}
