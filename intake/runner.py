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

import logging
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, NamedTuple

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

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
from intake.ledger import CLAIM_LEASE, LEDGER, WITHOUT_RAW, Claim, LedgerRows
from intake.mime.parse import parse_message
from intake.mime.types import ParsedMail
from intake.moves import FINAL, move_finished
from intake.pipeline import FieldReader, Lookups, Pipeline
from intake.prepare import Prepared, Replay
from intake.sources import open_source
from intake.sources.base import MailSource, RawMessage
from intake.store.engine import Store
from intake.store.leases import worker_id
from intake.store.models import ReceivedMessage
from intake.tasks import PARSE_TASK, PREPARE_TASK

if TYPE_CHECKING:
    from signing.verifier import Verifier

log = logging.getLogger(__name__)

#: Decided messages moved out of the inbox together (one UID MOVE of the set,
#: one commit); small, so that a long backlog's inbox empties as it goes.
MOVE_BATCH = 20
#: Prepared messages decided in one transaction (one claim commit, one flush
#: and one commit for them all: the daemon's own time per message is what
#: bounds a backlog's pace). Small: a crash costs each of them one attempt.
DECIDE_BATCH = 6
#: What :meth:`Intake.take_prepared` gives: the mail, its verifier and field reader.
_Taken = tuple[ParsedMail, "Verifier", FieldReader | None]


class _Claimed(NamedTuple):
    """A claimed message of :meth:`Intake.process_batch`, prepared and taken."""

    row_id: int
    message: RawMessage
    future: Future[Prepared] | None
    claim: Claim
    taken: _Taken


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


class Intake(LedgerRows):
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
        commits and moves the messages before it, in the order they were
        fetched (a resubmission after its original), up to
        :data:`DECIDE_BATCH` of them in one transaction (:meth:`process_batch`).
        At most ``2 * verify_workers + DECIDE_BATCH`` messages are held at
        once, however long the backlog. A preparation claims nothing and counts
        no attempt: a crash while several are in flight costs an attempt only
        to the messages being decided, and those are decided alone next time.
        """
        workers = max(1, self.config.limits.verify_workers)
        # Enough in flight that the children keep working while this thread
        # decides a batch: two per child beyond the batch being decided.
        window = 2 * workers + DECIDE_BATCH - 1
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
                    while len(pending) > window or (pending and not self.can_prepare):
                        self._decide_next(source, decided, pending)
                while pending and not self.stop.is_set():
                    self._decide_next(source, decided, pending)
                self.move_decided(source, decided)
            finally:
                # Persisted, never claimed: the next poll takes them up.
                for _, _, future in pending:
                    if future is not None:
                        future.cancel()
        return handled

    def _decide_next(self, source: MailSource, decided: list[int],
                     pending: deque[tuple[RawMessage, int, Future[Prepared] | None]]) -> None:
        """Decide the first message of :meth:`drain` and those behind it whose
        preparation is done already (up to :data:`DECIDE_BATCH`, in their order);
        their moves wait for the move batch."""
        batch = [pending.popleft()]
        # With a single attempt allowed, a crash mid-batch would quarantine the
        # whole batch: each message is decided alone.
        size = DECIDE_BATCH if self.config.daemon.max_attempts >= 2 else 1
        while (pending and len(batch) < size and pending[0][2] is not None
               and pending[0][2].done()):
            batch.append(pending.popleft())
        with logs.about(mailbox=source.config.name):
            if len(batch) == 1:
                message, row_id, prepared = batch[0]
                with logs.about(ledger=row_id):
                    statuses = [self._guarded(source, message, self.process, source.config,
                                              row_id, message, prepared)]
            else:
                got = self._guarded(source, batch[0][0], self.process_batch, source.config,
                                    [(row_id, message, prepared)
                                     for message, row_id, prepared in batch])
                statuses = got if isinstance(got, list) else [got] * len(batch)
        for (_, row_id, _), status in zip(batch, statuses, strict=True):
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
                      ) -> _Taken:
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

    def process(self, mailbox: MailboxConfig, row_id: int, message: RawMessage,
                prepared: Future[Prepared] | None = None) -> str:
        """Count an attempt at the message recorded as ``row_id``, parse it, decide it.

        ``prepared`` is the message already judged in a child (:meth:`prepare`);
        without it the mail is parsed and verified here, step by step."""
        # One transaction for the ledger row's checks and the claim (one commit).
        with self.store.session() as s:
            claimed = self._check_and_lease(s, mailbox, row_id)
        if isinstance(claimed, str):
            return claimed
        crash_point("after-claim")
        return self._decide_claimed(mailbox, row_id, message, prepared, claimed)

    def process_batch(self, mailbox: MailboxConfig,
                      items: list[tuple[int, RawMessage, Future[Prepared] | None]]) -> list[str]:
        """:meth:`process` for several messages in their order, with one claim
        transaction for those met for the first time and one decision
        transaction for each run of them that was prepared in a child.

        A crash mid-batch costs each message of the batch one attempt, so a
        message attempted before is claimed and decided alone (:meth:`process`):
        a mail that kills the daemon is quarantined by its own attempts only.
        A run whose transaction fails is rolled back and decided again one
        message at a time, on the claims already counted.
        """
        statuses: dict[int, str] = {}
        claims: dict[int, Claim] = {}
        with self.store.session() as s:
            rows = {row.id: row for row in s.execute(
                self._LEDGER_CHECK.where(LEDGER.c.id.in_([row_id for row_id, _, _ in items])))}
            # Those attempted before are claimed alone, when their turn comes.
            fresh = [rows[row_id] for row_id, _, _ in items if not rows[row_id].attempts]
            for row_id, claimed in self._check_and_lease_many(s, mailbox, fresh).items():
                if isinstance(claimed, str):
                    statuses[row_id] = claimed
                else:
                    claims[row_id] = claimed
        for row_id in claims:
            with logs.about(ledger=row_id):
                crash_point("after-claim")
        run: list[_Claimed] = []
        for row_id, message, future in items:
            if row_id in statuses:
                continue
            claim = claims.get(row_id)
            taken: _Taken | BaseException | None = None
            if claim is not None and future is not None:
                with logs.about(ledger=row_id):
                    try:
                        taken = self.take_prepared(message, future)
                    except Exception as exc:  # noqa: BLE001 - answered by the single path
                        taken = exc
            if claim is not None and isinstance(taken, tuple) and isinstance(taken[1], Replay):
                run.append(_Claimed(row_id, message, future, claim, taken))
                continue
            statuses.update(self._decide_run(mailbox, run))
            run = []
            with logs.about(ledger=row_id):
                statuses[row_id] = (
                    self._decide_claimed(mailbox, row_id, message, future, claim, taken=taken)
                    if claim is not None else self.process(mailbox, row_id, message, future))
        statuses.update(self._decide_run(mailbox, run))
        return [statuses[row_id] for row_id, _, _ in items]

    def _decide_run(self, mailbox: MailboxConfig, run: list[_Claimed]) -> dict[int, str]:
        """Decide claimed, prepared messages in one transaction (one flush, one commit)."""
        if len(run) <= 1:
            return {one.row_id: self._decide_alone(mailbox, one) for one in run}
        decided: list[tuple[_Claimed, Any, str | None]] = []
        try:
            with self.clock("decide-and-commit"), self.store.session() as s:
                # The rows in one query, held here: the session's identity map
                # keeps an unmodified row only while something refers to it.
                rows = {row.id: row for row in s.scalars(
                    select(ReceivedMessage).options(*WITHOUT_RAW)
                    .where(ReceivedMessage.id.in_([one.row_id for one in run])))}
                for one in run:
                    with logs.about(ledger=one.row_id):
                        mail, verifier, read_fields = one.taken
                        outcome = self._decide_row(s, mailbox, one.row_id, mail, verifier,
                                                   read_fields, row=rows[one.row_id])
                        decided.append((one, outcome, logs.current().get("reference")))
        except Exception as exc:  # noqa: BLE001 - each is decided (and fails) on its own
            log.info("mailbox %s: deciding ledger #%s together failed (%s); deciding them "
                     "one at a time", mailbox.name, ", #".join(str(one.row_id) for one in run),
                     type(exc).__name__)
            return {one.row_id: self._decide_alone(mailbox, one) for one in run}
        for one, outcome, reference in decided:
            with logs.about(ledger=one.row_id, reference=reference):
                self._log_outcome(mailbox, one.taken[0], outcome)
        return {one.row_id: outcome.status for one, outcome, _ in decided}

    def _decide_alone(self, mailbox: MailboxConfig, one: _Claimed) -> str:
        with logs.about(ledger=one.row_id):
            return self._decide_claimed(mailbox, one.row_id, one.message, one.future,
                                        one.claim, taken=one.taken)

    def _decide_row(self, s: Session, mailbox: MailboxConfig, row_id: int, mail: ParsedMail,
                    verifier: Verifier, read_fields: FieldReader | None, *,
                    row: ReceivedMessage | None = None) -> Any:
        """Decide the claimed row ``row_id`` (``row``, if loaded already) in ``s``
        and write its outcome (not committed)."""
        if row is None:
            # The raw bytes stay in the database unless a step reads them.
            row = s.get(ReceivedMessage, row_id, options=WITHOUT_RAW)
            assert row is not None
        outcome = self.decide(s, mailbox, row, mail, verifier=verifier, read_fields=read_fields)
        logs.bind(reference=logs.reference_of(s, outcome.application_id))
        # Everything below is one UPDATE of the row at the commit. The parsed
        # sender and subject go with the outcome (a failed attempt writes
        # them with its error: :meth:`fail`). The identity is unique: of two
        # copies decided at once (in one batch, or by two workers) the one
        # committed second fails here, is rolled back whole, and is filed as
        # the other's duplicate (:meth:`_decide_claimed`). Written last, it
        # holds no index entry while the decision waits on other locks (the
        # reference counter), so two workers' batches cannot deadlock on it.
        self.describe_row(row, mail)
        row.identity = row.sha256
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
        return outcome

    @staticmethod
    def _log_outcome(mailbox: MailboxConfig, mail: ParsedMail, outcome: Any) -> None:
        log.info("message %s from %s in %s: %s", mail.message_id, mail.from_addr,
                 mailbox.name, outcome.summary)

    def _decide_claimed(self, mailbox: MailboxConfig, row_id: int, message: RawMessage,
                        prepared: Future[Prepared] | None, claimed: Claim, *,
                        taken: _Taken | BaseException | None = None) -> str:
        """Decide the claimed row ``row_id`` in a transaction of its own; a failure is
        counted on the row (the claim counted the attempt). ``taken`` is what
        :meth:`take_prepared` gave for it already, if it was called."""
        if claimed.attempts > self.config.daemon.max_attempts:
            return self.quarantine(mailbox, row_id, claimed.last_error or "too many attempts")
        described: ParsedMail | None = None
        try:
            if isinstance(taken, BaseException):
                raise taken
            mail, verifier, read_fields = taken or self.take_prepared(message, prepared)
            described = mail
            with self.clock("decide-and-commit"), self.store.session() as s:
                outcome = self._decide_row(s, mailbox, row_id, mail, verifier, read_fields)
            self._log_outcome(mailbox, mail, outcome)
            return str(outcome.status)
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
            # A prepared message's CSR was judged in its child too.
            check_csr=verifier.check_csr if isinstance(verifier, Replay) else None,
        )
        return self.decider.decide(session, pipeline, mailbox, row, mail)

    def finish_move(self, source: MailSource, row_id: int) -> None:
        """Move a message whose outcome is committed out of the inbox (:meth:`finish_moves`)."""
        self.finish_moves(source, [row_id])

    def finish_moves(self, source: MailSource, row_ids: list[int]) -> None:
        """Move messages whose outcomes are committed out of the inbox (:mod:`intake.moves`)."""
        move_finished(self.store, source, row_ids, worker=self.worker, lease=CLAIM_LEASE)
