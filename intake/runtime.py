"""The running daemon: mailbox threads, outbox sender, scheduler, web endpoint.

``daemon.py`` wires the command line to this; each scheduled job calls one
function here, which calls one handler.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from intake.app.tokens import link_key
from intake.config import Config, MailboxConfig
from intake.errors import ConfigurationError, MailboxError, TransientError
from intake.runner import Intake
from intake.sources import open_source
from intake.sources.base import MailSource
from intake.store.engine import Store, open_store
from intake.store.leases import worker_id
from intake.tasks import VERIFY_TASKS
from intake.web.health import Polls, RecordedSource, ensure_current_crl

if TYPE_CHECKING:
    from signing.isolation import IsolatedVerifier
    from signing.verifier import Verifier

log = logging.getLogger(__name__)


def make_verifier(config: Config, *, transport: bool = False) -> IsolatedVerifier:
    """The verifier the pipeline uses: in child processes bounded in time and memory.

    ``transport``: the one for PEC providers' signatures, anchored only in
    ``signing.pec_anchors`` and without the trusted lists.
    """
    from signing.isolation import IsolatedVerifier
    from signing.settings import VerifierSettings

    sc = config.signing
    memory_mb = config.limits.verify_memory_mb
    return IsolatedVerifier(
        VerifierSettings(
            trust_roots=sc.pec_anchors if transport else sc.trust_roots,
            revocation=sc.revocation,
            allow_fetching=sc.allow_fetching,
            validation_report=sc.validation_report,
            trust=config.trust.settings() if config.trust is not None and not transport else None,
            fetch_timeout_seconds=sc.fetch_timeout_seconds,
            fetch_budget_seconds=sc.fetch_budget_seconds,
            fetch_cache_seconds=sc.fetch_cache_seconds,
            max_pdf_bytes=config.limits.max_attachment_bytes,
            timeout_seconds=config.limits.verify_timeout_seconds,
        ),
        memory_bytes=memory_mb * 1024 * 1024 if memory_mb else None,
        # The MIME parse of untrusted mail, and the parse, verification and
        # form reading of a mail in one round trip, run in the same bounded children.
        tasks=VERIFY_TASKS,
    )


def make_transport(config: Config) -> Any:
    from mailer.settings import SettingsError
    from mailer.transport import make_transport as mk

    try:
        return mk(config.smtp)
    except SettingsError as exc:
        raise ConfigurationError(str(exc), key=exc.key, path=str(config.path)) from None


@dataclass
class Runtime:
    """Everything a command needs, built once from the configuration."""

    config: Config
    store: Store
    worker: str | None = None
    _verifier: Verifier | None = field(default=None, repr=False)
    _transport_verifier: Verifier | None = field(default=None, repr=False)
    # Mailbox threads ask for the verifier at once; one must be made, not two.
    _verifier_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    #: Each mailbox's last successful poll in this process (/readyz, /metrics).
    polls: Polls = field(default_factory=Polls, repr=False)

    @classmethod
    def open(cls, config: Config) -> Runtime:
        # Leases name their holder as host:pid, so a restarted daemon can take
        # over what its killed predecessor held (intake.store.leases).
        return cls(config=config, store=open_store(config.database.connect_url),
                   worker=worker_id())

    def check_start(self) -> None:
        """What ``pasts run`` checks before it reads any mail.

        A secret whose environment variable is unset stops the daemon here,
        naming its key (ConfigurationError, exit 2), rather than at the first
        reply. The state directory is created 0700; every private path that
        already exists open to group or others is named in a warning.
        """
        from intake.private import warn_if_exposed
        from mailer.private import private_dir

        config = self.config
        _ = config.smtp.password
        try:
            state = private_dir(config.daemon.state_dir)
            # The verification-link key is made now, so an unusable state
            # directory stops the start, not the first link.

            link_key(config)
        except OSError as exc:
            raise ConfigurationError(f"cannot use {config.daemon.state_dir}: {exc}",
                                     key="daemon.state_dir", path=str(config.path)) from exc
        warn_if_exposed(state, "state directory (daemon.state_dir)")
        db = config.database.sqlite_path
        if db is not None:
            for suffix in ("", "-wal", "-shm"):
                warn_if_exposed(db.with_name(db.name + suffix), "database file")
        for mb in config.mailboxes:
            if mb.path is not None:
                warn_if_exposed(mb.path, f"maildir of mailbox {mb.name!r}")
        if config.smtp.path is not None:
            warn_if_exposed(config.smtp.path, "outbox maildir (smtp.url)")
        if config.ca.enabled and not config.ca.crl_url:
            log.warning("ca.crl_url is not set: certificates pasts issues name no CRL "
                        "distribution point, so relying parties cannot learn of a revocation")

    def close(self) -> None:
        """Stop the verification processes and close the store's pooled connections
        (the store opens new ones if it is used again)."""
        with self._verifier_lock:
            verifier, self._verifier = self._verifier, None
            transport, self._transport_verifier = self._transport_verifier, None
        for one in (verifier, transport):
            if one is not None:
                one.close()
        self.store.engine.dispose()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    @property
    def verifier(self) -> Verifier:
        with self._verifier_lock:
            if self._verifier is None:
                from intake.web.metrics import TimedVerifier

                # Timed for /metrics (pasts_verification_seconds).
                self._verifier = TimedVerifier(make_verifier(self.config))
            return self._verifier

    def warm_up(self) -> None:
        """Start the verifier's fork server in the background (its imports of pyHanko
        and the parser), while this thread opens the mailboxes and records the first mail."""
        warm_up = getattr(self.verifier, "warm_up", None)
        if warm_up is not None:
            threading.Thread(target=warm_up, name="verify-warm-up", daemon=True).start()

    @property
    def transport_verifier(self) -> Verifier:
        """The verifier of PEC providers' signatures (``signing.pec_anchors``); its
        children start only when a PEC envelope arrives."""
        with self._verifier_lock:
            if self._transport_verifier is None:
                self._transport_verifier = make_verifier(self.config, transport=True)
            return self._transport_verifier

    def intake(self) -> Intake:
        return Intake(self.config, self.store, self.verifier, worker=self.worker,
                      transport_verifier=lambda: self.transport_verifier)

    def flush_outbox(self) -> tuple[int, int]:
        from intake.outbox import OutboxSender

        async def go() -> tuple[int, int]:
            transport = make_transport(self.config)
            try:
                sender = OutboxSender(self.config, self.store, transport,
                                      worker=self.worker or worker_id())
                return await sender.flush()
            finally:
                await transport.aclose()

        return asyncio.run(go())

    def run_jobs(self) -> None:
        """The idempotent sweeps the scheduler runs; ``run --once`` runs them all."""
        from intake import jobs
        from intake.web.metrics import counted

        for job in jobs.JOBS:
            try:
                counted(job.name, functools.partial(jobs.run_job, self, job))
            except Exception:  # one failing job must not stop the others
                log.exception("job %s failed", job.name)

    # -- run --once -------------------------------------------------------------

    def run_once(self, progress: Callable[[str], None] | None = None) -> int:
        """Process every message now in the mailboxes, send the outbox, run jobs."""
        intake = self.intake()
        self.warm_up()
        failures = 0
        # Replies go out while the backlog is still being decided: the sender
        # flushes after each batch of decided messages is moved (as in `run`).
        sending, batch_moved = threading.Event(), threading.Event()
        intake.replies_queued = batch_moved
        tally = [0, 0]
        sender = threading.Thread(target=self._outbox_loop, args=(sending, batch_moved, tally),
                                  name="outbox", daemon=True)
        sender.start()
        try:
            for mailbox in self.config.mailboxes:
                try:
                    n = intake.poll(mailbox)
                    self.polls.succeeded(mailbox.name)
                except MailboxError as exc:
                    self.polls.failed(mailbox.name, str(exc))
                    log.error("mailbox %s: %s", mailbox.name, exc)
                    failures += 1
                    continue
                if progress:
                    progress(f"{mailbox.name}: {n} message(s) handled")
        finally:
            sending.set()
            batch_moved.set()
            with intake.clock("send-after-intake"):
                sender.join()
        clock = intake.clock
        with clock("jobs"):
            self.run_jobs()
        with clock("compose-and-send"):
            sent, failed = self.flush_outbox()
        log.info("run --once: stage seconds: %s", intake.stage_summary())
        if progress:
            progress(f"outbox: {sent + tally[0]} sent, {failed + tally[1]} failed")
        return 1 if failures else 0

    # -- run (daemon) -------------------------------------------------------------

    def run_forever(self) -> int:
        from intake.jobs import start_scheduler
        from intake.web.server import start_web

        stop = threading.Event()
        wake_outbox = threading.Event()
        fatal: list[ConfigurationError] = []

        def on_signal(signum: int, _frame: Any) -> None:
            log.info("signal %s: finishing the message in hand, then stopping", signum)
            stop.set()
            wake_outbox.set()

        signal.signal(signal.SIGTERM, on_signal)
        signal.signal(signal.SIGINT, on_signal)

        threads = [
            threading.Thread(target=self._mailbox_loop, args=(mb, stop, wake_outbox, fatal),
                             name=f"mailbox:{mb.name}", daemon=True)
            for mb in self.config.mailboxes
        ]
        threads.append(threading.Thread(target=self._outbox_loop, args=(stop, wake_outbox),
                                        name="outbox", daemon=True))

        # The CRL that issued certificates point to is current from the start
        # (SPEC section 9), not only after the first scheduled refresh.
        try:
            ensure_current_crl(self)
        except Exception:  # /readyz reports it; the mail still flows
            log.exception("cannot write a current CRL to %s (ca.crl)", self.config.ca.crl)
        self.warm_up()
        scheduler = start_scheduler(self)
        web = start_web(self)
        for t in threads:
            t.start()
        log.info("pasts running: %d mailbox(es), verification at %s",
                 len(self.config.mailboxes), self.config.verification.public_url)
        try:
            while not stop.wait(0.5):
                pass
        finally:
            scheduler.shutdown(wait=False)
            web.shutdown()
            for t in threads:
                t.join(timeout=30)
        if fatal:
            # The operator's mistake stops the command naming the key (exit 2).
            raise fatal[0]
        log.info("pasts stopped")
        return 0

    def _mailbox_loop(self, mailbox: MailboxConfig, stop: threading.Event,
                      wake_outbox: threading.Event, fatal: list[ConfigurationError]) -> None:
        intake = self.intake()
        intake.stop = stop
        # A long backlog's replies go out batch by batch, not after the whole drain.
        intake.replies_queued = wake_outbox
        delay = 1.0
        while not stop.is_set():
            try:
                with open_source(mailbox) as source:
                    source.set_stop_event(stop)
                    delay = 1.0
                    self.polls.succeeded(mailbox.name)
                    polled = cast(MailSource, RecordedSource(source, self.polls))
                    while not stop.is_set():
                        if intake.drain(polled):
                            wake_outbox.set()
                        source.wait(mailbox.poll_seconds)
            except ConfigurationError as exc:
                # Not the mailbox's failure, and no reconnecting mends it: every
                # mailbox would meet it again. The daemon stops (intake/errors.py);
                # the mail stays in the ledger, its attempt not counted.
                self.polls.failed(mailbox.name, str(exc))
                log.error("mailbox %s: configuration error: %s; stopping", mailbox.name, exc)
                fatal.append(exc)
                stop.set()
                wake_outbox.set()
                return
            except TransientError as exc:
                self.polls.failed(mailbox.name, str(exc))
                log.error("mailbox %s: %s; reconnecting in %.0f s", mailbox.name, exc, delay)
                stop.wait(delay)
                delay = min(delay * 2, 300.0)
            except Exception as exc:  # keep the daemon alive
                self.polls.failed(mailbox.name, f"{type(exc).__name__}: {exc}")
                log.exception("mailbox %s: unexpected error; reconnecting in %.0f s",
                              mailbox.name, delay)
                stop.wait(delay)
                delay = min(delay * 2, 300.0)

    def _outbox_loop(self, stop: threading.Event, wake: threading.Event,
                     tally: list[int] | None = None) -> None:
        """Flush the outbox every 10 s or when woken, until ``stop``; then once more.
        ``tally`` (sent, failed) adds up what the flushes did."""

        def flush() -> None:
            sent, failed = self.flush_outbox()
            if tally is not None:
                tally[0] += sent
                tally[1] += failed

        while not stop.is_set():
            try:
                flush()
            except Exception:  # the outbox keeps its rows; retry later
                log.exception("outbox flush failed")
            wake.wait(10.0)
            wake.clear()
        # One last flush so replies of the message in hand go out before exit.
        try:
            flush()
        except Exception:
            log.exception("final outbox flush failed")
