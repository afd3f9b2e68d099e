"""The intake loop: every message in a mailbox handled exactly once.

For each message (the Mailman runner / Paperless ledger idea):

1. **Persist first.** The raw bytes and the (mailbox, UIDVALIDITY, UID)
   position are committed to the ledger before anything else happens; the
   row's Message-ID, sender and subject come from a linear scan of the
   header block (:func:`intake.mime.headers.ledger_headers`), not from a parse.
2. **Claim.** The row is claimed with a lease and its attempt count raised in
   one committed UPDATE, so a crash mid-work counts as an attempt and a
   second worker leaves it alone. Past ``daemon.max_attempts`` the message is
   quarantined with its last error.
3. **Parse.** Only now is the mail parsed, in a bounded verification process
   (``limits.parse_timeout_seconds``, ``limits.verify_memory_mb``) when the
   verifier has them: a mail that stalls or kills the parser fails this
   attempt like any other error, and is quarantined after ``max_attempts``.
4. **Decide.** The message is judged and its outcome, the application's state
   change and its reply (in the outbox) commit in one transaction.
5. **Act on the server.** Only then is the message moved out of the inbox.
   A crash before the move only means the next run finds a finished row and
   moves it; nothing is judged or answered twice.

The same bytes arriving again under another UID (duplicate delivery, a
UIDVALIDITY reset) are recognised by Message-ID + SHA-256 and not answered
again.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import traceback
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import Table, insert, select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, defer

from intake import logs
from intake.app.decide import Decider
from intake.app.replies import duplicate_reference, now_utc, organisation_record
from intake.config import Config, MailboxConfig
from intake.errors import (
    TRANSIENT,
    ConfigurationError,
    PermanentError,
)
from intake.faults import crash_point
from intake.mime.headers import ledger_headers
from intake.mime.parse import parse_message
from intake.mime.text import fit
from intake.mime.types import MAX_SENDER_CHARS, ParsedMail
from intake.moves import FINAL, move_finished
from intake.pipeline import FieldReader, Lookups, Pipeline
from intake.prepare import Prepared, Replay
from intake.sources import open_source
from intake.sources.base import MailSource, RawMessage
from intake.store.engine import Store
from intake.store.leases import takeable, worker_id
from intake.store.models import ReceivedMessage
from intake.tasks import PARSE_TASK, PREPARE_TASK

if TYPE_CHECKING:
    from signing.verifier import Verifier

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=10)
#: Decided messages moved out of the inbox together (one UID MOVE of the set,
#: one commit); small, so that a long backlog's inbox empties as it goes.
MOVE_BATCH = 20
#: A ledger row loaded without its raw bytes (read from the database only if used).
WITHOUT_RAW = (defer(ReceivedMessage.raw),)
#: The ledger's table, for the statements that need no ORM object.
LEDGER: Table = ReceivedMessage.__table__  # type: ignore[assignment]


class Claim(NamedTuple):
    """What the claim's UPDATE returns: the attempts counted so far and the last error."""

    attempts: int
    last_error: str | None


class _Clock:
    """Adds a block's wall time to a counter (:meth:`Intake.clock`)."""

    def __init__(self, seconds: defaultdict[str, float], stage: str):
        self.seconds = seconds
        self.stage = stage
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *_exc: object) -> None:
        self.seconds[self.stage] += time.perf_counter() - self.started


class Intake:
    """Reads mailboxes and hands each message to the decider, exactly once."""

    def __init__(
        self, config: Config, store: Store, verifier: Verifier, *, worker: str | None = None,
        transport_verifier: Callable[[], Verifier] | None = None,
    ):
        self.config = config
        self.store = store
        self.worker = worker or worker_id()
        self.verifier = verifier
        #: Makes the verifier of PEC providers' signatures (only when one arrives).
        self.transport_verifier = transport_verifier
        self.stop = threading.Event()
        self.decider = Decider(config)
        #: Wall seconds by stage (persist, decide-and-commit, move, the children's
        #: parse / verify / read-form), for ``run --once``'s log and the benchmark.
        self.seconds: defaultdict[str, float] = defaultdict(float)
        #: Set after each batch of decided messages is moved: their replies are
        #: committed in the outbox, and its sender need not wait for the drain's end.
        self.replies_queued: threading.Event | None = None

    # -- one mailbox --------------------------------------------------------

    def poll(self, mailbox: MailboxConfig) -> int:
        """Process every message now in ``mailbox``; return how many were handled."""
        handled = 0
        with open_source(mailbox) as source:
            handled += self.drain(source)
        return handled

    def drain(self, source: MailSource) -> int:
        """Handle every message now in ``source``, several in flight at once.

        Each message is persisted as it is fetched, then prepared (parsed,
        verified, its form read) in one of ``limits.verify_workers`` bounded
        children (:mod:`intake.prepare`) while this thread claims, decides,
        commits and moves the messages before it, one at a time and in the
        order they were fetched (a resubmission after its original). At most
        ``verify_workers + 1`` messages are held at once, however long the
        backlog. A preparation claims nothing and counts no attempt: a crash
        while several are in flight costs an attempt only to the message
        being decided.
        """
        workers = max(1, self.config.limits.verify_workers)
        pending: deque[tuple[RawMessage, int, Future[Prepared] | None]] = deque()
        #: Decided (committed) rows whose mail is still in the inbox: moved
        #: MOVE_BATCH at a time (one UID MOVE of the set, one commit).
        decided: list[int] = []
        handled = 0
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="pasts-prepare") as pool:
            try:
                for message in source.fetch(max_bytes=self.config.limits.max_message_bytes):
                    if self.stop.is_set():
                        log.info("stop requested; leaving the rest of %s for later",
                                 source.config.name)
                        break
                    handled += 1
                    row_id = self._guarded(source, message, self._persist, source, message)
                    if isinstance(row_id, int):
                        future = (pool.submit(self.prepare, source.config.name, message)
                                  if self.can_prepare else None)
                        pending.append((message, row_id, future))
                    while len(pending) > workers or (pending and not self.can_prepare):
                        self._decide(source, decided, *pending.popleft())
                while pending and not self.stop.is_set():
                    self._decide(source, decided, *pending.popleft())
                self.move_decided(source, decided)
            finally:
                # Persisted, never claimed: the next poll takes them up.
                for _, _, future in pending:
                    if future is not None:
                        future.cancel()
        return handled

    def _decide(self, source: MailSource, decided: list[int], message: RawMessage, row_id: int,
                prepared: Future[Prepared] | None) -> None:
        """Decide one message of :meth:`drain`; its move waits for the batch."""
        with logs.about(mailbox=source.config.name, ledger=row_id):
            status = self._guarded(source, message, self.process, source.config, row_id,
                                   message, prepared)
        if status in FINAL:
            # Committed, still in the inbox until its batch is moved.
            crash_point("before-move")
            decided.append(row_id)
        if len(decided) >= MOVE_BATCH:
            self.move_decided(source, decided)

    def move_decided(self, source: MailSource, decided: list[int]) -> None:
        """Move the decided messages out of the inbox (their outcomes are committed)."""
        if not decided:
            return
        try:
            with self.clock("move"):
                self.finish_moves(source, list(decided))
        except TRANSIENT + (OperationalError, ConfigurationError):
            raise  # the server's or the database's failure: the mailbox's
        except Exception:  # a bug must not stop the mail behind: moved next poll
            log.exception("mailbox %s: moving ledger #%s failed; left in the inbox for the "
                          "next poll", source.config.name, ", #".join(map(str, decided)))
            decided.clear()
            return
        for _ in decided:  # each message of the batch is moved now
            crash_point("after-move")
        decided.clear()
        if self.replies_queued is not None:
            self.replies_queued.set()

    def handle_one(self, source: MailSource, message: RawMessage) -> str:
        """:meth:`handle`, where a failure of this message does not stop the mailbox."""
        return str(self._guarded(source, message, self.handle, source, message))

    def _guarded(self, source: MailSource, message: RawMessage,
                 step: Callable[..., Any], *args: Any) -> Any:
        """``step(*args)``, where a failure of this message does not stop the mailbox.

        Inside :meth:`process` a failure is counted on the ledger row and ends
        in quarantine; one before the row exists or after the outcome (a value
        the database refuses, a bug) leaves the message in the inbox for the
        next poll and goes on to the next. Losing the connection to the server
        or the database is the mailbox's failure, not the message's: it is raised.
        """
        try:
            return step(*args)
        except TRANSIENT + (OperationalError, ConfigurationError):
            # The server, the database or the operator's configuration failed:
            # not this message's doing, and the next message would meet it too.
            raise
        except Exception:  # one bad message must not stop the mail behind it
            log.exception("mailbox %s UID %s: failed outside the ledger's retry; left in the "
                          "inbox for the next poll", source.config.name, message.uid)
            return "retry"

    # -- one message --------------------------------------------------------

    def handle(self, source: MailSource, message: RawMessage) -> str:
        """Take one message through the ledger; return its final status."""
        row_id = self._persist(source, message)
        return self._finish(source, message, row_id, None)

    def _persist(self, source: MailSource, message: RawMessage) -> int:
        # Stored before it is parsed: nothing in the bytes can stop the row
        # (and so the attempt count) from existing.
        with logs.about(mailbox=source.config.name), self.clock("persist"):
            row_id = self.record(source.config, message)
            logs.bind(ledger=row_id)
            crash_point("after-persist")
        return row_id

    def _finish(self, source: MailSource, message: RawMessage, row_id: int,
                prepared: Future[Prepared] | None) -> str:
        # Every log line of this message names its mailbox, ledger row and reference.
        with logs.about(mailbox=source.config.name, ledger=row_id):
            status = self.process(source.config, row_id, message, prepared)
            crash_point("before-move")
            with self.clock("move"):
                self.finish_move(source, row_id)
            crash_point("after-move")
        return status

    @property
    def can_prepare(self) -> bool:
        """Whether the verifier runs :data:`~intake.tasks.PREPARE_TASK` in its children."""
        return PREPARE_TASK in getattr(self.verifier, "tasks", {})

    def prepare(self, mailbox: str, message: RawMessage) -> Prepared:
        """Parse, verify and read ``message`` in a bounded child (no store, no claim)."""
        limits = self.config.limits
        run_task = self.verifier.run_task  # type: ignore[attr-defined]
        prepared: Prepared = run_task(
            PREPARE_TASK, message.raw, config=self.config, mailbox=mailbox,
            max_attachment_bytes=limits.max_attachment_bytes,
            max_message_bytes=limits.max_message_bytes, size=message.oversized,
            timeout=limits.parse_timeout_seconds + limits.verify_timeout_seconds + 5.0)
        return prepared

    def take_prepared(self, message: RawMessage, future: Future[Prepared] | None
                      ) -> tuple[ParsedMail, Verifier, FieldReader | None]:
        """The mail and the verifier to decide it with: the prepared ones, else the
        step-by-step path (a parse in a bounded child, each verification in one)."""
        if future is not None:
            with self.clock("wait-for-children"):
                try:
                    prepared = future.result()
                except Exception as exc:  # noqa: BLE001 - judged step by step instead
                    log.info("message %s: preparing it failed (%s); judging it step by step",
                             message.uid, exc)
                else:
                    for stage, seconds in prepared.seconds.items():
                        self.seconds[f"child:{stage}"] += seconds
                    # The verifications the child made count for /metrics as if made here.
                    observe = getattr(self.verifier, "observe", None)
                    if observe is not None:
                        for method, seconds in prepared.timed:
                            observe(method, seconds)
                    if prepared.mail is None:
                        from signing.isolation import TaskFailed

                        # The same failure as the step-by-step parse's (an attempt).
                        raise TaskFailed(PARSE_TASK, f"did not finish within "
                                                     f"{prepared.parse_overran:g} s")
                    replay = Replay(prepared, self.verifier)
                    return prepared.mail, replay, replay.read_fields
        with self.clock("parse-step-by-step"):
            return self.parse(message), self.verifier, None

    def clock(self, stage: str) -> _Clock:
        """A block whose wall time is added to ``stage`` in :attr:`seconds`."""
        return _Clock(self.seconds, stage)

    def stage_summary(self) -> str:
        """The seconds spent in each stage so far, for the log of ``run --once``."""
        return ", ".join(f"{name} {secs:.2f}" for name, secs in sorted(self.seconds.items()))

    def record(self, mailbox: MailboxConfig, message: RawMessage) -> int:
        """Persist the raw message (idempotent, before any parse); return the ledger row id."""
        sha = hashlib.sha256(message.raw).hexdigest()
        head = ledger_headers(message.raw)
        values: dict[str, Any] = {
            "mailbox": mailbox.name, "uidvalidity": message.uidvalidity, "uid": message.uid,
            "message_id": head.message_id, "sha256": sha, "raw": message.raw,
            "sender": head.sender, "subject": head.subject}
        # Inserted first, one statement and one commit: a message is new far more
        # often than met again (a run after a crash), and the position's unique
        # key tells which.
        row_id = self._insert(values)
        if row_id is not None:
            return row_id
        with self.store.session() as s:
            existing = s.execute(select(LEDGER.c.id, LEDGER.c.sha256)
                                 .where(*self._position(values))).first()
        if existing is None or existing.sha256 == sha:
            # Recorded before (or by another worker at the same moment): that row.
            return self._recorded(values)
        # Same position, other bytes: the server reused UIDs without changing
        # UIDVALIDITY (a broken server). Keep both.
        log.warning("mailbox %s UID %s changed content; recording as new",
                    mailbox.name, message.uid)
        values["uid"] = f"{message.uid}#{sha[:12]}"
        row_id = self._insert(values)
        return row_id if row_id is not None else self._recorded(values)

    def _insert(self, values: dict[str, Any]) -> int | None:
        """A new ledger row (committed), or None when its position is recorded already."""
        try:
            with self.store.session() as s:
                row_id: int = s.execute(
                    insert(LEDGER).values(**values).returning(LEDGER.c.id)).scalar_one()
                return row_id
        except IntegrityError:
            return None

    def _recorded(self, values: dict[str, Any]) -> int:
        """The id of the ledger row at the position of ``values``."""
        with self.store.session() as s:
            row_id: int = s.scalars(select(LEDGER.c.id).where(*self._position(values))).one()
            return row_id

    @staticmethod
    def _position(values: dict[str, Any]) -> tuple[Any, ...]:
        return (LEDGER.c.mailbox == values["mailbox"],
                LEDGER.c.uidvalidity == values["uidvalidity"], LEDGER.c.uid == values["uid"])

    def claim(self, row_id: int) -> Claim | None:
        """Lease the row for this worker and count the attempt (committed)."""
        with self.store.session() as s:
            holder = s.scalar(select(ReceivedMessage.claimed_by).where(ReceivedMessage.id == row_id))
            return self._lease(s, row_id, holder)

    def _lease(self, s: Session, row_id: int, holder: str | None) -> Claim | None:
        """The claim's conditional UPDATE in ``s``: the attempt counted, or None if
        the row is not ``received`` or another live worker holds it. ``holder`` is
        the ``claimed_by`` read for the row in ``s``."""
        now = now_utc()
        # On the table: a Core UPDATE, no ORM object to keep in step with it.
        taken = s.execute(
            update(LEDGER)
            .where(
                LEDGER.c.id == row_id,
                LEDGER.c.status == "received",
                takeable(LEDGER.c, now, holder, worker=self.worker),
            )
            .values(
                claimed_by=self.worker,
                claimed_until=now + CLAIM_LEASE,
                attempts=LEDGER.c.attempts + 1,
            )
            .returning(LEDGER.c.attempts, LEDGER.c.last_error)
        ).first()
        return Claim(taken.attempts, taken.last_error) if taken is not None else None

    def parse(self, message: RawMessage) -> ParsedMail:
        """The parse of a stored message: in a bounded child when the verifier runs
        tasks (:class:`signing.isolation.IsolatedVerifier`), else here."""
        limits = self.config.limits
        options: dict[str, Any] = {
            "max_attachment_bytes": limits.max_attachment_bytes,
            "max_message_bytes": limits.max_message_bytes, "size": message.oversized}
        run_task = getattr(self.verifier, "run_task", None)
        if run_task is not None and PARSE_TASK in getattr(self.verifier, "tasks", {}):
            mail: ParsedMail = run_task(PARSE_TASK, message.raw,
                                        timeout=limits.parse_timeout_seconds, **options)
            return mail
        return parse_message(message.raw, **options)

    @staticmethod
    def describe_row(row: ReceivedMessage, mail: ParsedMail) -> None:
        """Put the parsed sender and subject on the ledger row (for staff)."""
        row.sender = fit(mail.from_addr, MAX_SENDER_CHARS) or None
        row.subject = mail.subject[:1000]

    def process(self, mailbox: MailboxConfig, row_id: int, message: RawMessage,
                prepared: Future[Prepared] | None = None) -> str:
        """Count an attempt at the message recorded as ``row_id``, parse it, decide it.

        ``prepared`` is the message already judged in a child (:meth:`prepare`);
        without it the mail is parsed and verified here, step by step."""
        # One transaction for the ledger row's checks and the claim (one commit).
        with self.store.session() as s:
            ledger = s.execute(select(LEDGER.c.status, LEDGER.c.message_id, LEDGER.c.sha256,
                                   LEDGER.c.claimed_by).where(LEDGER.c.id == row_id)).one()
            if ledger.status in FINAL:
                return str(ledger.status)
            # Duplicate delivery: identical bytes already answered elsewhere.
            if ledger.message_id:
                twin = s.execute(
                    select(LEDGER.c.id, LEDGER.c.application_id).where(
                        LEDGER.c.message_id == ledger.message_id,
                        LEDGER.c.sha256 == ledger.sha256,
                        LEDGER.c.id != row_id,
                        LEDGER.c.status.in_(("processed", "ignored")),
                    ).limit(1)
                ).first()
                if twin is not None:
                    s.execute(update(LEDGER).where(LEDGER.c.id == row_id).values(
                        status="ignored", outcome=f"duplicate delivery of ledger #{twin.id}",
                        application_id=twin.application_id,
                        target_folder=mailbox.processed_folder))
                    log.info("message %s in %s: duplicate delivery, not answered again",
                             ledger.message_id, mailbox.name)
                    return "ignored"
            claimed = self._lease(s, row_id, ledger.claimed_by)
        if claimed is None:
            log.info("ledger #%s is being handled by another worker", row_id)
            return "claimed-elsewhere"
        if claimed.attempts > self.config.daemon.max_attempts:
            return self.quarantine(mailbox, row_id, claimed.last_error or "too many attempts")
        crash_point("after-claim")
        described: ParsedMail | None = None
        try:
            mail, verifier, read_fields = self.take_prepared(message, prepared)
            described = mail
            with self.clock("decide-and-commit"), self.store.session() as s:
                # The raw bytes stay in the database unless a step reads them.
                row = s.get(ReceivedMessage, row_id, options=WITHOUT_RAW)
                assert row is not None
                # The parsed sender and subject commit with the outcome (a failed
                # attempt writes them with its error: :meth:`fail`).
                self.describe_row(row, mail)
                # The duplicate check is part of the claim: the identity is
                # unique, so a copy another worker is deciding waits here and
                # then fails, and is filed as a duplicate (below).
                row.identity = row.sha256
                s.flush()
                outcome = self.decide(s, mailbox, row, mail, verifier=verifier,
                                      read_fields=read_fields)
                logs.bind(reference=logs.reference_of(s, outcome.application_id))
                row.status = outcome.status
                row.outcome = outcome.summary
                row.application_id = outcome.application_id
                row.target_folder = mailbox.processed_folder
                if row.target_folder:
                    # The lease is kept for the move that follows the commit
                    # (finish_move), so the move needs no second lease write.
                    row.claimed_by = self.worker
                    row.claimed_until = now_utc() + CLAIM_LEASE
                else:
                    row.claimed_by = None
                    row.claimed_until = None
                row.last_error = None
                crash_point("before-commit")
            log.info("message %s from %s in %s: %s", mail.message_id, mail.from_addr,
                     mailbox.name, outcome.summary)
            return outcome.status
        except IntegrityError as exc:
            if self.file_duplicate(mailbox, row_id):
                return "ignored"
            log.exception("ledger #%s: processing failed", row_id)
            self.fail(row_id, exc, quarantine_after=self.config.daemon.max_attempts,
                      described=described)
            return "retry"
        except TRANSIENT as exc:
            # I/O failed: retried on the next tick, up to daemon.max_attempts.
            log.warning("ledger #%s: %s; retried later", row_id, exc)
            self.fail(row_id, exc, quarantine_after=self.config.daemon.max_attempts,
                      described=described)
            return "retry"
        except PermanentError as exc:
            # Bad input that no retry mends (the pipeline answers the kinds it
            # knows with their code): kept for staff at once, with its code.
            log.error("ledger #%s: %s (%s); quarantined without retrying", row_id, exc, exc.code)
            self.fail(row_id, exc, quarantine_after=0, described=described)
            return "quarantined"
        except ConfigurationError as exc:
            # The operator's mistake, not the message's: the attempt is not
            # counted against it, the row is released for the next start, and
            # the error goes up to stop the command naming the key.
            with self.store.session() as s:
                s.execute(update(ReceivedMessage).where(ReceivedMessage.id == row_id).values(
                    attempts=ReceivedMessage.attempts - 1, claimed_by=None, claimed_until=None,
                    last_error=str(exc)[:4000]))
            raise
        except Exception as exc:  # one bad message must not stop the loop
            log.exception("ledger #%s: processing failed", row_id)
            self.fail(row_id, exc, quarantine_after=self.config.daemon.max_attempts,
                      described=described)
            return "retry"

    def file_duplicate(self, mailbox: MailboxConfig, row_id: int) -> bool:
        """File ``row_id`` as a copy of the ledger row holding its identity, if one does."""
        with self.store.session() as s:
            row = s.get(ReceivedMessage, row_id)
            assert row is not None
            twin = s.scalars(select(ReceivedMessage).where(
                ReceivedMessage.identity == row.sha256, ReceivedMessage.id != row_id)).first()
            if twin is None:
                return False
            row.status = "ignored"
            row.outcome = f"duplicate delivery of ledger #{twin.id}"
            row.application_id = twin.application_id
            row.target_folder = mailbox.processed_folder
            row.claimed_by = None
            row.claimed_until = None
            log.info("message %s in %s (ledger #%s): copy of ledger #%s decided by another "
                     "worker, not answered again", row.message_id, mailbox.name, row_id, twin.id)
        return True

    def decide(self, session: Any, mailbox: MailboxConfig, row: ReceivedMessage,
               mail: ParsedMail, *, verifier: Verifier | None = None,
               read_fields: FieldReader | None = None) -> Any:
        pipeline = Pipeline(
            self.config,
            verifier or self.verifier,
            Lookups(
                organisation=lambda reg_no: organisation_record(session, reg_no),
                duplicate=lambda sha, exclude: duplicate_reference(session, sha, exclude),
            ),
            transport=self.transport_verifier,
            **({"read_fields": read_fields} if read_fields is not None else {}),
        )
        return self.decider.decide(session, pipeline, mailbox, row, mail)

    def fail(self, row_id: int, exc: BaseException, *, quarantine_after: int,
             described: ParsedMail | None = None) -> None:
        """Record a failed attempt (and the parsed sender and subject, when parsed)."""
        text = "".join(traceback.format_exception_only(type(exc), exc)).strip()
        with self.store.session() as s:
            row = s.get(ReceivedMessage, row_id)
            assert row is not None
            if described is not None:
                self.describe_row(row, described)
            row.last_error = text[:4000]
            row.claimed_by = None
            row.claimed_until = None
            if row.attempts >= quarantine_after:
                row.status = "quarantined"
                row.outcome = f"quarantined after {row.attempts} attempts: {text[:500]}"
                mb = self.config.mailbox(row.mailbox)
                row.target_folder = mb.quarantine_folder if mb else "Quarantine"
                log.error("ledger #%s (%s) quarantined after %d attempts: %s",
                          row_id, row.message_id, row.attempts, text)

    def quarantine(self, mailbox: MailboxConfig, row_id: int, reason: str) -> str:
        with self.store.session() as s:
            row = s.get(ReceivedMessage, row_id)
            assert row is not None
            row.status = "quarantined"
            row.outcome = f"quarantined: {reason[:500]}"
            row.target_folder = mailbox.quarantine_folder
            row.claimed_by = None
            row.claimed_until = None
        log.error("ledger #%s quarantined: %s", row_id, reason)
        return "quarantined"

    def finish_move(self, source: MailSource, row_id: int) -> None:
        """Move a message whose outcome is committed out of the inbox (:meth:`finish_moves`)."""
        self.finish_moves(source, [row_id])

    def finish_moves(self, source: MailSource, row_ids: list[int]) -> None:
        """Move messages whose outcomes are committed out of the inbox (:mod:`intake.moves`)."""
        move_finished(self.store, source, row_ids, worker=self.worker, lease=CLAIM_LEASE)
