"""One error hierarchy, split by what the daemon does next.

* :class:`PermanentError` -- the input is bad; the applicant gets a notice
  (it carries the SPEC rule ``code``) and the message is not retried.
* :class:`TransientError` -- I/O went wrong (IMAP, SMTP, database, network);
  the item is retried on the next tick and quarantined after too many tries.
* :class:`ConfigurationError` -- the operator's configuration is wrong; the
  command exits with status 2 and names the key and the file.

Rejections and discards are flow outcomes of the pipeline, not errors.
"""

from __future__ import annotations


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


class DeliveryError(TransientError):
    """The SMTP server failed or refused a reply; it stays in the outbox."""

    def __init__(self, message: str, *, permanent: bool = False, undeliverable: bool = False):
        # A 5xx answer for one recipient will not get better by retrying.
        self.permanent = permanent
        #: The address itself cannot be written to (unusable, or it needs
        #: SMTPUTF8 the server lacks): recorded on the application.
        self.undeliverable = undeliverable
        super().__init__(message)


class NotFound(PastsError):
    """A reference or record named on the command line does not exist."""
