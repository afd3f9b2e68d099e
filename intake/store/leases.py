"""Leases: which worker may work on a ledger or outbox row, and until when.

A row is leased by writing ``claimed_by`` (``host:pid``) and
``claimed_until`` in a conditional UPDATE; only the worker whose UPDATE
changed the row goes on. A lease is free when it was never taken, when it has
run out, or when its holder is a process of this host that no longer runs
(so a daemon restarted after ``kill -9`` takes over at once).
"""

from __future__ import annotations

import os
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, or_


def worker_id() -> str:
    """This process as a lease holder: ``host:pid``."""
    return f"{os.uname().nodename}:{os.getpid()}"


def holder_is_dead(claimed_by: str | None) -> bool:
    """Whether a lease holder is a process of this host that no longer runs.

    Holders on other hosts are never judged dead; their leases only time out.
    """
    if not claimed_by:
        return False
    host, _, pid = claimed_by.rpartition(":")
    if host != os.uname().nodename or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def takeable(model: Any, now: datetime, holder: str | None, *,
             worker: str | None = None) -> ColumnElement[bool]:
    """The WHERE condition under which ``worker`` may take the lease on a ``model`` row.

    ``holder`` is the ``claimed_by`` last read for the row; a dead holder's
    lease is taken over only while it still names that holder.
    """
    conditions = [model.claimed_until.is_(None), model.claimed_until < now]
    if worker is not None:
        conditions.append(model.claimed_by == worker)
    if holder_is_dead(holder):
        conditions.append(model.claimed_by == holder)
    return or_(*conditions)
