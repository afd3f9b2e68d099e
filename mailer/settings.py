"""What the mailer needs to know to send: the SMTP settings, as plain frozen data.

``intake.config`` parses ``[smtp]`` of ``config.toml`` and builds this type
(its ``SmtpConfig`` adds the outbox's bounds); the mailer never reads the
configuration file. The password never lives here: ``password_env`` names the
environment variable holding it, read when a connection is made.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

__all__ = ["SettingsError", "SmtpSettings"]


class SettingsError(ValueError):
    """The SMTP settings cannot be used; ``key`` names the ``[smtp]`` key."""

    def __init__(self, message: str, *, key: str):
        self.key = key
        super().__init__(message)


@dataclass(frozen=True)
class SmtpSettings:
    """Where replies go: ``smtp://host:587`` (STARTTLS), ``smtps://host:465``, or ``maildir:PATH``."""

    url: str = "maildir:./var/outbox"
    scheme: Literal["smtp", "smtps", "maildir"] = "maildir"
    host: str | None = None
    port: int | None = None
    username: str | None = None
    #: The Maildir of a ``maildir:`` URL (the dry run).
    path: Path | None = None
    #: The envelope sender and From address of every reply.
    sender: str = "pasts@localhost"
    #: The environment variable holding the SMTP password (never the password).
    password_env: str | None = field(default=None, repr=False)
    #: "require" (fail without STARTTLS), "auto" (upgrade when offered), "off" (loopback only).
    starttls: Literal["auto", "require", "off"] = "require"
    #: Extra CA file to trust for the server certificate.
    tls_ca: Path | None = None
    timeout_seconds: float = 30.0

    @property
    def password(self) -> str | None:
        """The password from ``password_env`` (None when no variable is named or it is unset)."""
        if self.password_env is None:
            return None
        return os.environ.get(self.password_env)
