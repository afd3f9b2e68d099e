"""Mail sources: IMAP (:mod:`.imap`) and Maildir++ (:mod:`.maildir`) behind :class:`.base.MailSource`."""

from __future__ import annotations

import threading

from intake.config import MailboxConfig
from intake.errors import MailboxError
from intake.sources.imap import ImapSource
from intake.sources.maildir import MaildirSource


def open_source(
    config: MailboxConfig, *, stop_event: threading.Event | None = None
) -> ImapSource | MaildirSource:
    """The source for ``config``; nothing is connected until ``with`` (or ``connect()``).

    ``stop_event``, when set by another thread (SIGTERM handling), ends a
    ``wait`` within about a second.
    """
    if config.scheme == "maildir":
        return MaildirSource(config, stop_event=stop_event)
    if config.scheme in ("imap", "imaps"):
        return ImapSource(config, stop_event=stop_event)
    raise MailboxError(f"mailbox {config.name!r}: unknown scheme {config.scheme!r}")
