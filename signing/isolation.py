"""Verification in child processes: bounded in time and memory, killable.

A hostile PDF can make a parser loop or allocate without end, and a thread
that does so cannot be stopped. :class:`IsolatedVerifier` has the synchronous
API of :class:`~signing.verifier.InProcessVerifier` but runs each call in a long-lived
child process (started through a fork server, so a new child costs a fork, not
an interpreter start) with an address-space limit. A call that overruns its
time is answered :class:`~signing.status.UnreadableInput` and its child is
killed; so is a child that dies or runs out of memory. The next call starts a
fresh child.

Each calling thread borrows an idle child or starts one, so mailbox threads do
not wait for one another.

The same children run other work on untrusted bytes that cannot be made
safe in place (the MIME parse of a mail: the stdlib parser spends about
0.5 ms per part, so a mail of tiny parts holds it for minutes): the caller
names such *tasks* as ``module:function`` when it builds the verifier (this
package imports nothing of theirs) and runs one with :meth:`IsolatedVerifier.run_task`,
bounded by the time it gives and the same memory limit. A task function with a
true ``takes_verifier`` attribute is given the child's verifier as ``verifier=``
(so one round trip can parse, verify and read a mail); a result with a true
``child_must_exit`` attribute ends its child after the answer (a verification
inside the task overran and its thread may still run).
"""

from __future__ import annotations

import importlib
import logging
import multiprocessing
import resource
import signal
import threading
import weakref
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, Literal, cast

from signing.settings import VerifierSettings
from signing.status import (
    AsicVerdict,
    FormVerdict,
    SignedFile,
    UnreadableInput,
    VerificationTimeout,
)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from signing.verifier import Verifier

log = logging.getLogger(__name__)

# Methods of InProcessVerifier a child may be asked to run.
_METHODS = frozenset(
    {"verify_pdf_sync", "verify_detached_sync", "verify_asic_sync", "verify_signed_file_sync"}
)


#: Exit codes of a child stopped by someone else, not by what it was reading.
_STOPPED_FROM_OUTSIDE = frozenset({-signal.SIGTERM, -signal.SIGINT, -signal.SIGHUP})

#: Loggers that repeat, with tracebacks, what the verdict already says.
QUIET_LOGGERS = ("pyhanko", "pyhanko_certvalidator")


class VerifierCrashed(RuntimeError):
    """The child failed in a way that says nothing about the input (a bug, not a deficiency)."""


class TaskFailed(RuntimeError):
    """A task (:meth:`IsolatedVerifier.run_task`) overran its time, ran out of
    memory, died or raised; ``reason`` says which, in English."""

    def __init__(self, task: str, reason: str):
        self.task = task
        self.reason = reason
        super().__init__(f"{task}: {reason}")


def _resolve(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _serve(conn: Connection, settings: VerifierSettings, memory_bytes: int | None,
           tasks: dict[str, str] | None = None) -> None:
    """The child's loop: run requested verifications until the parent hangs up."""
    # A stop signal sent to the whole process group (Ctrl-C, systemd) is the
    # parent's to act on: it finishes the message in hand, then hangs up.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    # pyHanko logs every failed check with a traceback; each one is already a
    # code and a note in the verdict, so only its errors are worth a log line.
    logging.basicConfig(
        level=logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s[verify]: %(message)s",
    )
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(logging.ERROR)
    # Imported by the fork server already (its preload); the parent never loads pyHanko for it.
    from signing.verifier import InProcessVerifier

    verifier = InProcessVerifier(settings)
    while True:
        try:
            method, args, kwargs = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if tasks and method in tasks:
                work = _resolve(tasks[method])
                if getattr(work, "takes_verifier", False):
                    # A task that verifies as part of its work uses this child's verifier.
                    kwargs = {**kwargs, "verifier": verifier}
                reply: tuple[str, Any] = ("ok", work(*args, **kwargs))
            elif method not in _METHODS:
                raise VerifierCrashed(f"unknown method {method!r}")
            else:
                reply = ("ok", getattr(verifier, method)(*args, **kwargs))
        except VerificationTimeout as exc:
            # A thread of this process may still be running away: answer, then go.
            reply = ("overran", str(exc))
        except UnreadableInput as exc:
            reply = ("unreadable", str(exc))
        except MemoryError:
            reply = ("unreadable", "the document needs too much memory to verify")
        except RuntimeError as exc:
            # Under the address-space limit a thread stack may not fit either.
            if "can't start new thread" in str(exc):
                reply = ("unreadable", "the document needs too much memory to verify")
            else:
                reply = ("crashed", repr(exc))
        except BaseException as exc:  # reported to the parent, never lost.
            reply = ("crashed", repr(exc))
        try:
            conn.send(reply)
        except MemoryError:
            conn.send(("unreadable", "the verdict needs too much memory"))
        if reply[0] == "overran" or getattr(reply[1], "child_must_exit", False):
            # A verification overran inside a task: a thread may still be running away.
            return


class _Child:
    """One child process and the parent's end of its pipe."""

    def __init__(self, ctx: Any, settings: VerifierSettings, memory_bytes: int | None,
                 tasks: dict[str, str] | None = None) -> None:
        self.conn, child_end = ctx.Pipe()
        self.process: BaseProcess = ctx.Process(
            target=_serve, args=(child_end, settings, memory_bytes, tasks),
            name="pasts-verify", daemon=True,
        )
        self.process.start()
        child_end.close()

    def call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any],
             timeout: float) -> tuple[str, Any]:
        try:
            self.conn.send((method, args, kwargs))
            if not self.conn.poll(timeout):
                return ("timeout", None)
            reply: tuple[str, Any] = self.conn.recv()
        except (EOFError, OSError):  # the child is gone (BrokenPipeError is an OSError)
            self.process.join(1)
            return ("died", self.process.exitcode)
        return reply

    def kill(self) -> None:
        self.conn.close()
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)


def _preload(tasks: Mapping[str, str]) -> list[str]:
    """What the fork server imports once: its quick exit, the verifier and the tasks' modules."""
    modules = sorted({target.partition(":")[0] for target in tasks.values()})
    return ["signing.forkexit", "signing.verifier", *modules]


def start_fork_server(tasks: Mapping[str, str] | None = None) -> None:
    """Start the verifiers' fork server now, importing the verifier (pyHanko) and the
    modules of ``tasks`` (as :class:`IsolatedVerifier` names them) in a process of its
    own, while the caller goes on importing and starting up.

    Returns at once. A verifier built later with the same tasks forks its children
    from this server; with other tasks, its children import what is missing.
    """
    from multiprocessing import forkserver

    multiprocessing.get_context("forkserver").set_forkserver_preload(_preload(tasks or {}))
    forkserver.ensure_running()


def _kill_all(children: list[_Child]) -> None:
    while children:
        children.pop().kill()


class IsolatedVerifier:
    """The synchronous :class:`~signing.verifier.InProcessVerifier` API, run in child processes."""

    def __init__(
        self,
        settings: VerifierSettings,
        *,
        memory_bytes: int | None = None,
        grace_seconds: float = 5.0,
        tasks: dict[str, str] | None = None,
    ) -> None:
        """``memory_bytes`` bounds each child's address space; ``grace_seconds`` is
        how much longer than the verifier's own time limit (which normally fires
        first, inside the child) the parent waits before it kills the child.
        ``tasks`` maps a task name to the ``module:function`` that runs it."""
        self.settings = settings
        self.memory_bytes = memory_bytes
        self.grace_seconds = grace_seconds
        self.tasks = dict(tasks or {})
        #: Children started so far (a new one after each kill).
        self.children_started = 0
        self._ctx = multiprocessing.get_context("forkserver")
        self._ctx.set_forkserver_preload(_preload(self.tasks))
        self._idle: list[_Child] = []
        self._lock = threading.Lock()
        self._closed = False
        # Children of a verifier nobody closed still go when it is collected.
        self._finalizer = weakref.finalize(self, _kill_all, self._idle)

    def verify_pdf_sync(self, data: bytes) -> FormVerdict:
        """See :meth:`InProcessVerifier.verify_pdf`."""
        return cast(FormVerdict, self._call("verify_pdf_sync", data))

    def verify_detached_sync(
        self, content: bytes, signature_der: bytes, *, kind: Literal["cms", "smime"] = "cms"
    ) -> FormVerdict:
        """See :meth:`InProcessVerifier.verify_detached`."""
        return cast(
            FormVerdict, self._call("verify_detached_sync", content, signature_der, kind=kind)
        )

    def verify_asic_sync(self, data: bytes) -> AsicVerdict:
        """See :meth:`InProcessVerifier.verify_asic`."""
        return cast(AsicVerdict, self._call("verify_asic_sync", data))

    def verify_signed_file_sync(self, data: bytes, *, timestamp: bytes | None = None) -> SignedFile:
        """See :meth:`InProcessVerifier.verify_signed_file`."""
        return cast(SignedFile, self._call("verify_signed_file_sync", data, timestamp=timestamp))

    def run_task(self, task: str, *args: Any, timeout: float, **kwargs: Any) -> Any:
        """Run the task named ``task`` in a child; raise :class:`TaskFailed` if it
        does not return within ``timeout`` seconds (its child is killed), runs out
        of memory, dies or raises."""
        if task not in self.tasks:
            raise ValueError(f"unknown task {task!r}")
        status, value = self._exchange(task, args, kwargs, timeout)
        if status == "ok":
            return value
        if status == "timeout":
            log.warning("%s overran %g s; its process was killed", task, timeout)
            raise TaskFailed(task, f"did not finish within {timeout:g} s (process killed)")
        if status == "died":
            raise TaskFailed(task, f"its process died (exit code {value})")
        if status == "unreadable":  # MemoryError, or no room for a thread
            raise TaskFailed(task, f"out of memory: {value}")
        raise TaskFailed(task, f"failed: {value}")

    def warm_up(self) -> None:
        """Start the fork server now (it imports the verifier and the tasks' modules
        once), so that the first call only forks; meant for a background thread,
        overlapping the caller's own start-up."""
        from multiprocessing import forkserver

        forkserver.ensure_running()

    def close(self) -> None:
        """Stop every idle child (a busy one is killed when its call returns)."""
        with self._lock:
            self._closed = True
            _kill_all(self._idle)

    def _exchange(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                  timeout: float) -> tuple[str, Any]:
        """One call in an idle (or new) child; the child is killed unless it answered."""
        with self._lock:
            child = self._idle.pop() if self._idle else None
        if child is None or not child.process.is_alive():
            child = _Child(self._ctx, self.settings, self.memory_bytes, self.tasks)
            self.children_started += 1
        status, value = child.call(method, args, kwargs, timeout)
        with self._lock:
            keep = (status in ("ok", "unreadable", "crashed") and not self._closed
                    and not getattr(value, "child_must_exit", False))
            if keep:
                self._idle.append(child)
        if not keep:
            child.kill()
        return status, value

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        timeout = self.settings.timeout_seconds + self.grace_seconds
        status, value = self._exchange(method, args, kwargs, timeout)
        if status == "ok":
            return value
        if status in ("unreadable", "overran"):
            raise UnreadableInput(value)
        if status == "timeout":
            log.warning("verification overran %.0f s; its process was killed", timeout)
            raise UnreadableInput(f"verification did not finish within {timeout:g} s")
        if status == "died" and value in _STOPPED_FROM_OUTSIDE:
            # Not the document's doing: try the message again later.
            raise VerifierCrashed(f"the verification process was stopped (exit code {value})")
        if status == "died":
            log.warning("the verification process died (exit code %s)", value)
            raise UnreadableInput(
                "the document could not be verified within the memory limit "
                f"(verifier exit code {value})"
            )
        raise VerifierCrashed(f"{method} failed in the verification process: {value}")


if TYPE_CHECKING:
    _ISOLATED_IS_A_VERIFIER: type[Verifier] = IsolatedVerifier
