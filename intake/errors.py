"""One error hierarchy, split by what the daemon does next.

* :class:`PermanentError` -- the input is bad; the applicant gets a notice
  (it carries the SPEC rule ``code``) and the message is not retried.
* :data:`TRANSIENT` -- I/O went wrong (IMAP, SMTP, database, network):
  :class:`TransientError` and its :class:`MailboxError`, and the mailer's
  :class:`~mailer.transport.DeliveryError` (unless it says ``permanent``);
  the item is retried on the next tick and quarantined after too many tries.
* :class:`ConfigurationError` -- the operator's configuration is wrong; the
  command exits with status 2 and names the key and the file. Met while
  processing a message, it stops the daemon rather than counting against
  the message (the mail stays in the ledger for the next start).

Rejections and discards are flow outcomes of the pipeline, not errors.
"""

from __future__ import annotations

from mailer.transport import DeliveryError

__all__ = [
    "TRANSIENT",
    "ConfigurationError",
    "DeliveryError",
    "IntakeError",
    "MailboxError",
    "NotFound",
    "PastsError",
    "PermanentError",
    "TransientError",
]


class PastsError(Exception):
    """Root of every error pasts raises on purpose."""


class ConfigurationError(PastsError):
    """The configuration is unusable; ``key`` names the offending key."""

    def __init__(self, message: str, *, key: str | None = None, path: str | None = None):
        self.key = key
        self.path = path
        where = []
        if path:
            where.append(str(path))
        if key:
            where.append(f"key '{key}'")
        prefix = ": ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class IntakeError(PastsError):
    """Something went wrong while taking in or answering a message."""


class PermanentError(IntakeError):
    """Bad input: answered with a notice carrying ``code``; never retried."""

    def __init__(self, message: str, *, code: str):
        self.code = code
        super().__init__(message)


class TransientError(IntakeError):
    """I/O failure: the item is retried later."""


class MailboxError(TransientError):
    """The mailbox server failed or refused a command."""


#: What "retry later" means: every error after which the same item may succeed.
TRANSIENT: tuple[type[Exception], ...] = (TransientError, DeliveryError)


class NotFound(PastsError):
    """A reference or record named on the command line does not exist."""
