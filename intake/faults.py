"""Fault injection for the crash tests (``PASTS_CRASH_AT``)."""

from __future__ import annotations

import os
import signal

_CRASH_COUNTS: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Test hook: ``PASTS_CRASH_AT=name`` kills this process with SIGKILL here.

    Lets the crash tests stop the daemon at exact points of a batch, the way
    ``kill -9`` would, to prove nothing is lost or answered twice.
    ``name:N`` crashes the N-th time the point is reached.
    """
    want = os.environ.get("PASTS_CRASH_AT")
    if not want or want.split(":", 1)[0] != name:
        return
    counter = _CRASH_COUNTS[name] = _CRASH_COUNTS.get(name, 0) + 1
    nth = int(want.split(":", 1)[1]) if ":" in want else 1
    if counter >= nth:
        os.kill(os.getpid(), signal.SIGKILL)
