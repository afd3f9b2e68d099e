"""A message's bytes judged ahead, in one bounded child (issue 12).

The CPU work on an untrusted mail (the MIME parse, the PDF and its signatures,
the form fields of the signed and of the final revision) is what the
pipeline's first two stages do. :func:`prepare_message` runs them in a
verification child (:class:`signing.isolation.IsolatedVerifier`, task
:data:`~intake.tasks.PREPARE_TASK`) with that child's own verifier, in one round trip, and
records every answer the verifier and the field reader gave. The daemon's
process then decides the message with the same :class:`~intake.pipeline.Pipeline`,
handing it a :class:`Replay` that returns those recorded answers: the pipeline
runs unchanged, but the daemon never opens the hostile bytes itself, and
several messages are prepared at once while it records, decides and answers
them in their order.

Nothing here touches the store: a prepared message is only a value, thrown
away if the message turns out to be finished already or held by another
worker. Every failure of the preparation (an overrun, a dead child) falls
back to the step-by-step path, so the bounds and answers stay those of
:mod:`intake.runner`.
"""

from __future__ import annotations

import hashlib
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from intake.config import Config
from intake.errors import PermanentError
from intake.mime.parse import parse_message
from intake.mime.types import ParsedMail
from intake.pipeline import Lookups, Pipeline, read_form_fields

if TYPE_CHECKING:
    from signing.csr import CsrReport
    from signing.status import AsicVerdict, FormVerdict, SignedFile
    from signing.verifier import Verifier


#: What a call answered: ("ok", value) or ("unreadable", the UnreadableInput's text).
Answer = tuple[str, Any]

#: The pipeline asks for no lookups in the stages a child runs.
_NO_LOOKUPS = Lookups(organisation=lambda _reg_no: None, duplicate=lambda _sha, _exclude: None)


def _key(method: str, *args: Any, **kwargs: Any) -> tuple[str, ...]:
    """A call's identity: its method and its arguments, bytes by their SHA-256."""

    def part(value: Any) -> str:
        if isinstance(value, bytes | bytearray):
            return "sha256:" + hashlib.sha256(value).hexdigest()
        return repr(value)

    return (method, *map(part, args), *(f"{k}={part(v)}" for k, v in sorted(kwargs.items())))


@dataclass(frozen=True)
class Prepared:
    """A parsed mail and every answer its signed bytes gave in the child."""

    #: ``None`` when the parse overran :attr:`parse_overran` seconds (nothing else ran).
    mail: ParsedMail | None
    calls: dict[tuple[str, ...], Answer] = field(default_factory=dict, repr=False)
    #: A verification overran inside the child: the child ends after answering.
    child_must_exit: bool = False
    #: Wall seconds in the child by stage (parse, verify, read-form).
    seconds: dict[str, float] = field(default_factory=dict)
    #: The parse's bound (``limits.parse_timeout_seconds``), when it overran it.
    parse_overran: float | None = None
    #: Each verification the child made, (method, wall seconds), for /metrics.
    timed: tuple[tuple[str, float], ...] = ()


class _NotRecorded(Exception):
    """A step failed in the child: nothing is kept, the decision runs it again itself."""


class _ParseOverran(BaseException):
    """The parse ran past its bound (raised by the child's interval timer); a
    BaseException, so that no `except Exception` of the parser swallows it."""


@contextmanager
def _bounded(seconds: float) -> Iterator[None]:
    """Interrupt the block after ``seconds`` with :class:`_ParseOverran`.

    The parse is Python code, which a signal interrupts; should it ever sit in
    C code the parent's own bound on the whole task still kills the child. Only
    the main thread (the child's task loop) receives the signal."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def overran(_signum: int, _frame: Any) -> None:
        raise _ParseOverran

    previous = signal.signal(signal.SIGALRM, overran)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Forwarding:
    """The Verifier protocol's methods, each handed to :meth:`_through` under its name:
    :class:`_Recorder` calls the child's verifier and keeps the answer, :class:`Replay`
    gives the kept answer back."""

    def _through(self, method: str, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def verify_pdf_sync(self, data: bytes) -> FormVerdict:
        return self._through("verify_pdf_sync", data)  # type: ignore[no-any-return]

    def verify_detached_sync(self, content: bytes, signature_der: bytes, *,
                             kind: Literal["cms", "smime"] = "cms") -> FormVerdict:
        return self._through(  # type: ignore[no-any-return]
            "verify_detached_sync", content, signature_der, kind=kind)

    def verify_asic_sync(self, data: bytes) -> AsicVerdict:
        return self._through("verify_asic_sync", data)  # type: ignore[no-any-return]

    def verify_signed_file_sync(self, data: bytes, *, timestamp: bytes | None = None) -> SignedFile:
        return self._through(  # type: ignore[no-any-return]
            "verify_signed_file_sync", data, timestamp=timestamp)

    def close(self) -> None:
        """The verifier behind is its owner's to close (the child's, or the runtime's)."""


class _Recorder(_Forwarding):
    """The child's verifier and field reader, each answer kept for :class:`Replay`."""

    def __init__(self, inner: Any):
        self.inner = inner
        self.settings = inner.settings
        self.calls: dict[tuple[str, ...], Answer] = {}
        self.runaway = False
        self.seconds: dict[str, float] = {"verify": 0.0, "read-form": 0.0, "check-csr": 0.0}
        self.timed: list[tuple[str, float]] = []

    def _through(self, method: str, *args: Any, **kwargs: Any) -> Any:
        from signing.status import UnreadableInput, VerificationTimeout

        key = _key(method, *args, **kwargs)
        started = time.perf_counter()
        try:
            value = getattr(self.inner, method)(*args, **kwargs)
        except VerificationTimeout as exc:
            # The same answer the parent gives for an overrun in a child.
            self.runaway = True
            self.calls[key] = ("unreadable", str(exc))
            raise
        except UnreadableInput as exc:
            self.calls[key] = ("unreadable", str(exc))
            raise
        except MemoryError:
            message = "the document needs too much memory to verify"
            self.calls[key] = ("unreadable", message)
            raise UnreadableInput(message) from None
        finally:
            took = time.perf_counter() - started
            self.seconds["verify"] += took
            self.timed.append((method, took))
        self.calls[key] = ("ok", value)
        return value

    def read_fields(self, data: bytes, *, max_pages: int) -> dict[str, str]:
        key = _key("read_form_fields", data, max_pages=max_pages)
        started = time.perf_counter()
        try:
            fields = read_form_fields(data, max_pages=max_pages)
        except PermanentError as exc:
            self.calls[key] = ("refused", (str(exc), exc.code))
            raise
        finally:
            self.seconds["read-form"] += time.perf_counter() - started
        self.calls[key] = ("ok", fields)
        return fields

    def check_csr(self, data: bytes | None, **expected: Any) -> CsrReport:
        """``signing.csr.check_csr``, its report kept (a CSR is hostile bytes too)."""
        from signing.csr import check_csr

        started = time.perf_counter()
        try:
            report = check_csr(data, **expected)
        except Exception as exc:  # noqa: BLE001 - judged again by the decision, as before
            raise _NotRecorded from exc
        finally:
            self.seconds["check-csr"] += time.perf_counter() - started
        self.calls[_key("check_csr", data, **expected)] = ("ok", report)
        return report


def prepare_message(raw: bytes, *, config: Config, mailbox: str, verifier: Any,
                    **parse_options: Any) -> Prepared:
    """In a verification child: parse ``raw`` (within ``limits.parse_timeout_seconds``),
    verify its signatures, read its form."""
    started = time.perf_counter()
    bound = config.limits.parse_timeout_seconds
    try:
        with _bounded(bound):
            mail = parse_message(raw, **parse_options)
    except _ParseOverran:
        return Prepared(mail=None, parse_overran=bound)
    parsed = time.perf_counter() - started
    mb = config.mailbox(mailbox)
    recorder = _Recorder(verifier)
    if mb is not None:
        pipeline = Pipeline(config, recorder, _NO_LOOKUPS, read_fields=recorder.read_fields,
                            check_csr=recorder.check_csr)
        with suppress(_NotRecorded):
            pipeline.read_signed(mail, mb)
    return Prepared(mail=mail, calls=recorder.calls, child_must_exit=recorder.runaway,
                    seconds={"parse": parsed, **recorder.seconds}, timed=tuple(recorder.timed))


#: Read by signing.isolation: the child hands its verifier in.
prepare_message.takes_verifier = True  # type: ignore[attr-defined]


class Replay(_Forwarding):
    """The verifier (and field reader) a prepared message is decided with.

    A call the child made is answered as the child was; any other goes to the
    real verifier (in a child of its own), so nothing is judged differently.
    """

    def __init__(self, prepared: Prepared, inner: Verifier):
        self.prepared = prepared
        self.inner = inner
        self.settings = inner.settings

    def _through(self, method: str, *args: Any, **kwargs: Any) -> Any:
        found = self.prepared.calls.get(_key(method, *args, **kwargs))
        if found is None:
            return getattr(self.inner, method)(*args, **kwargs)
        status, value = found
        if status == "ok":
            return value
        from signing.status import UnreadableInput

        raise UnreadableInput(value)

    def check_csr(self, data: bytes | None, **expected: Any) -> CsrReport:
        """The child's report on the same CSR and expectations, else judged here."""
        found = self.prepared.calls.get(_key("check_csr", data, **expected))
        if found is not None:
            return found[1]  # type: ignore[no-any-return]
        from signing.csr import check_csr

        return check_csr(data, **expected)

    def read_fields(self, data: bytes, *, max_pages: int) -> dict[str, str]:
        found = self.prepared.calls.get(_key("read_form_fields", data, max_pages=max_pages))
        if found is None:
            return read_form_fields(data, max_pages=max_pages)
        status, value = found
        if status == "ok":
            return value  # type: ignore[no-any-return]
        message, code = value
        raise PermanentError(message, code=code)


if TYPE_CHECKING:
    _REPLAY_IS_A_VERIFIER: type[Verifier] = Replay
    _RECORDER_IS_A_VERIFIER: type[Verifier] = _Recorder
