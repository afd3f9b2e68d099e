"""The verifiers' fork server ends at once when the daemon is gone.

The fork server (:mod:`multiprocessing.forkserver`) holds pyHanko and the
parser loaded so that a child costs a fork. When the daemon's process ends,
the server sees its end of the pipe close and raises ``SystemExit``; tearing
its interpreter down object by object then took a few tenths of a second
after ``pasts run --once`` itself had finished, with the daemon's stderr still
open (a shell pipe or a supervisor waits for it). Nothing in the server needs
that teardown: it holds no file, no transaction, no child of its own (each
child is the daemon's and is stopped by it).

Imported as the server's first preload (:func:`signing.isolation._preload`);
an import anywhere else does nothing.
"""

from __future__ import annotations

import atexit
import os
import sys


def _in_fork_server() -> bool:
    """Whether this import is the fork server's preload (its ``main`` is on the stack)."""
    from multiprocessing import forkserver

    frame = sys._getframe()
    while frame is not None:
        if frame.f_code is forkserver.main.__code__:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


if _in_fork_server():
    atexit.register(os._exit, 0)
