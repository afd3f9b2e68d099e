"""The mail-source protocol: what the ledger loop (:mod:`intake.runner`) asks of a mailbox.

A source yields the raw bytes of every message in its inbox folder, oldest
first, without marking them seen, and moves a message out once the caller has
stored it (persist first, then act on the server). It never deletes mail and
never issues a plain EXPUNGE, which would act on the whole mailbox.

Every I/O failure becomes a :class:`~intake.errors.MailboxError` naming the
mailbox and the step that failed; the password is never part of a message.
Sources are context managers: ``with open_source(cfg) as src: ...`` connects
on entry and logs out on exit. After an I/O error the next call reconnects,
so a long-running caller only needs to retry. ``set_stop_event`` hands a
source the event set on SIGTERM, which ends a ``wait`` within
:data:`STOP_CHECK_SECONDS`.

A new kind of source implements :class:`MailSource` in a module beside
``imap.py`` and ``maildir.py`` and is named in :func:`intake.sources.open_source`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from intake.config import MailboxConfig

#: Seconds between checks of the stop event while waiting (IDLE or sleep).
STOP_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class RawMessage:
    #: Server UID (IMAP) or Maildir key, as a string.
    uid: str
    #: IMAP UIDVALIDITY of the folder; 0 for maildir.
    uidvalidity: int
    #: The message's bytes; only its header when it is over the size limit.
    raw: bytes = field(repr=False)
    #: The whole message's size when ``raw`` holds only its header, else None.
    oversized: int | None = None


class MailSource(Protocol):
    config: MailboxConfig

    def __enter__(self) -> MailSource: ...
    def __exit__(self, *exc: object) -> None: ...

    def set_stop_event(self, event: threading.Event) -> None:
        """Use ``event`` (set on SIGTERM) to end a ``wait`` early."""
        ...

    def uidvalidity(self) -> int: ...

    def fetch(self, *, limit: int | None = None,
              max_bytes: int | None = None) -> Iterator[RawMessage]:
        """Messages now in the inbox folder, oldest first, without marking them seen.

        Of a message over ``max_bytes`` only the header is read
        (:attr:`RawMessage.oversized` then gives its size).
        """
        ...

    def move(self, uid: str, folder: str) -> None:
        """Move one message out of the inbox (atomic UID MOVE where offered)."""
        ...

    def move_many(self, uids: list[str], folder: str) -> None:
        """Move several messages to one folder (one ``UID MOVE`` of the set on IMAP)."""
        ...

    def wait(self, timeout: float) -> bool:
        """Block until new mail may have arrived (IDLE) or timeout; True if woken by the server."""
        ...
