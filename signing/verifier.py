"""The verifier: one entry point per kind of signed input, bounded in time.

:class:`Verifier` is the protocol callers type against; it is met by
:class:`InProcessVerifier` (here, on a thread of its own per call) and by
:class:`signing.isolation.IsolatedVerifier` (in child processes bounded in
memory, which run an :class:`InProcessVerifier`). Each method dispatches to the
module that reads that kind of input -- :mod:`signing.pdf`,
:mod:`signing.cms.detached`, :mod:`signing.cms.p7m`, :mod:`signing.asic.verify`
-- which all judge through :mod:`signing.judgement` under one
:class:`~signing.trust.context.TrustContext`. Every method raises only
:class:`~signing.status.UnreadableInput`, and only when the input cannot be
read at all; every problem with one signature becomes facts and notes on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar, runtime_checkable

from signing.asic.verify import verify_container
from signing.cms.detached import verify_detached
from signing.cms.p7m import read_signed_file
from signing.namecache import install as _compare_names_through_cache
from signing.pdf import verify_pdf
from signing.settings import VerifierSettings
from signing.status import (
    AsicVerdict,
    FormVerdict,
    SignedFile,
    UnreadableInput,
    VerificationTimeout,
)
from signing.trust.context import TrustContext

_T = TypeVar("_T")

# X.509 names are compared with asn1crypto's semantics, each prepared once
# per process instead of at every comparison (signing.namecache).
_compare_names_through_cache()


@runtime_checkable
class Verifier(Protocol):
    """What a caller of verification needs: the synchronous API, and closing it."""

    settings: VerifierSettings

    def verify_pdf_sync(self, data: bytes) -> FormVerdict:
        """Verify every signature in a PDF."""
        ...

    def verify_detached_sync(
        self, content: bytes, signature_der: bytes, *, kind: Literal["cms", "smime"] = "cms"
    ) -> FormVerdict:
        """Verify a detached CMS signature (``.p7s`` or S/MIME) over ``content``."""
        ...

    def verify_asic_sync(self, data: bytes) -> AsicVerdict:
        """Verify the signatures of an ASiC-E container."""
        ...

    def verify_signed_file_sync(self, data: bytes, *, timestamp: bytes | None = None) -> SignedFile:
        """Unwrap and judge a ``.p7m``, ``.tsd`` or ``.m7m`` (``timestamp``: a ``.tsr`` beside it)."""
        ...

    def close(self) -> None:
        """Release what the verifier holds (child processes); it is not used afterwards."""
        ...


class InProcessVerifier:
    """Verifies signed PDFs, CMS signatures, Italian signed files and ASiC-E containers
    against configured anchors, in this process."""

    def __init__(
        self, settings: VerifierSettings, *, now: Callable[[], datetime] | None = None
    ) -> None:
        self.settings = settings
        self.trust = TrustContext(settings, now=now)

    def close(self) -> None:
        """Nothing to release: the verifier holds no process or connection."""

    # -- asynchronous API ----------------------------------------------------------------

    async def verify_pdf(self, data: bytes) -> FormVerdict:
        """Verify every signature in a PDF; raises only :class:`UnreadableInput`."""
        if len(data) > self.settings.max_pdf_bytes:
            raise UnreadableInput(
                f"PDF is {len(data)} bytes, over the limit of {self.settings.max_pdf_bytes}"
            )
        return await self._bounded(lambda: verify_pdf(self.trust, data))

    async def verify_detached(
        self,
        content: bytes,
        signature_der: bytes,
        *,
        kind: Literal["cms", "smime"] = "cms",
    ) -> FormVerdict:
        """Verify a detached CMS signature (``.p7s`` or S/MIME) over ``content``."""
        if len(content) + len(signature_der) > self.settings.max_pdf_bytes:
            raise UnreadableInput("signed content is over the size limit")
        return await self._bounded(
            lambda: verify_detached(self.trust, content, signature_der, kind)
        )

    async def verify_signed_file(self, data: bytes, *, timestamp: bytes | None = None) -> SignedFile:
        """Unwrap and judge a ``.p7m``, ``.tsd`` or ``.m7m`` (see :mod:`signing.cms.p7m`).

        ``timestamp`` is a detached ``.tsr`` over ``data`` found beside it.
        Raises only :class:`UnreadableInput`.
        """
        size = len(data) + len(timestamp or b"")
        if size > self.settings.max_pdf_bytes:
            raise UnreadableInput(
                f"signed file is {size} bytes, over the limit of {self.settings.max_pdf_bytes}"
            )
        return await self._bounded(lambda: read_signed_file(self.trust, data, timestamp))

    async def verify_asic(self, data: bytes) -> AsicVerdict:
        """Verify the XAdES and CAdES signatures of an ASiC-E container (:mod:`signing.asic`)."""
        return await self._bounded(lambda: verify_container(self.trust, data))

    # -- synchronous API (command line, child processes; not inside a running loop) -------

    def verify_pdf_sync(self, data: bytes) -> FormVerdict:
        """Synchronous :meth:`verify_pdf`."""
        return asyncio.run(self.verify_pdf(data))

    def verify_detached_sync(
        self, content: bytes, signature_der: bytes, *, kind: Literal["cms", "smime"] = "cms"
    ) -> FormVerdict:
        """Synchronous :meth:`verify_detached`."""
        return asyncio.run(self.verify_detached(content, signature_der, kind=kind))

    def verify_signed_file_sync(self, data: bytes, *, timestamp: bytes | None = None) -> SignedFile:
        """Synchronous :meth:`verify_signed_file`."""
        return asyncio.run(self.verify_signed_file(data, timestamp=timestamp))

    def verify_asic_sync(self, data: bytes) -> AsicVerdict:
        """Synchronous :meth:`verify_asic`."""
        return asyncio.run(self.verify_asic(data))

    # -- plumbing ------------------------------------------------------------------------

    async def _bounded(self, work: Callable[[], Awaitable[_T]]) -> _T:
        """Run ``work`` on a thread of its own with its own loop, under the time limit.

        Parsing and difference analysis are CPU-bound; running them on a worker
        keeps the caller's event loop responsive and lets the time limit fire.
        A thread that overruns cannot be killed: it is abandoned (a daemon
        thread, not an executor's, so no loop shutdown waits for it) and
        :class:`VerificationTimeout` is raised. Where runaway work must really
        stop, run the verifier in a child process (:mod:`signing.isolation`).
        """
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[_T] = loop.create_future()

        def settle(error: BaseException | None, result: _T | None) -> None:
            if outcome.done():  # the caller gave up waiting
                return
            if error is not None:
                outcome.set_exception(error)
            else:
                outcome.set_result(result)  # type: ignore[arg-type]

        async def call() -> _T:
            return await work()

        def run() -> None:
            error: BaseException | None = None
            result: _T | None = None
            try:
                result = asyncio.run(call())
            except BaseException as exc:  # handed to the waiting caller.
                error = exc
            with contextlib.suppress(RuntimeError):  # the caller's loop is already closed
                loop.call_soon_threadsafe(settle, error, result)

        threading.Thread(target=run, name="pasts-verify", daemon=True).start()
        try:
            return await asyncio.wait_for(outcome, timeout=self.settings.timeout_seconds)
        except TimeoutError as exc:
            raise VerificationTimeout(
                f"verification did not finish within {self.settings.timeout_seconds} s"
            ) from exc
        except RecursionError as exc:
            raise UnreadableInput("document structure is nested too deeply") from exc
        except MemoryError as exc:
            raise UnreadableInput("document needs too much memory to verify") from exc


if TYPE_CHECKING:
    _IN_PROCESS_IS_A_VERIFIER: type[Verifier] = InProcessVerifier
