"""``[[mailbox]]`` (where applications are read) and ``[smtp]`` (where replies go)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import SplitResult, unquote, urlsplit

from intake.config.section import Section, read_secret, resolve_path
from mailer.addresses import UnusableAddress, usable_address
from mailer.settings import SmtpSettings

__all__ = ["MailboxConfig", "SmtpConfig"]


def _server_url(s: Section, url: str, default_ports: dict[str, int],
                ) -> tuple[SplitResult, str, str, int, str | None]:
    """Split a mail server's ``url`` (the schemes of ``default_ports``, or
    ``maildir:``, which the caller handles): its parts, scheme, host, port and
    user; a password in it is refused (it belongs in ``password_env``)."""
    parts = urlsplit(url)
    if parts.scheme not in default_ports:
        allowed = ", ".join(f"{scheme}://" for scheme in default_ports)
        raise s.error("url", f"must start with {allowed} or maildir:; got {url!r}")
    if not parts.hostname:
        raise s.error("url", f"has no host: {url!r}")
    try:
        port = parts.port or default_ports[parts.scheme]
    except ValueError as exc:
        raise s.error("url", f"bad port: {exc}") from None
    if parts.password:
        raise s.error("url", "must not contain a password; use password_env")
    username = unquote(parts.username) if parts.username else None
    return parts, parts.scheme, parts.hostname, port, username


@dataclass(frozen=True)
class MailboxConfig:
    """One mailbox to read: ``imap://``, ``imaps://``, or ``maildir:PATH``."""

    name: str
    url: str
    #: scheme: "imap" (plain or STARTTLS), "imaps" (implicit TLS), "maildir".
    scheme: Literal["imap", "imaps", "maildir"]
    host: str | None
    port: int | None
    username: str | None
    folder: str
    #: Maildir root for ``maildir:`` mailboxes.
    path: Path | None
    password_env: str | None = field(default=None, repr=False)
    processed_folder: str = "Processed"
    quarantine_folder: str = "Quarantine"
    #: The workflow used when a form has no recognisable ``form_id``.
    workflow: str | None = None
    #: "auto" = STARTTLS when the server offers it, "require" = must, "off".
    starttls: Literal["auto", "require", "off"] = "auto"
    #: Extra CA file to trust for the server certificate (self-hosted servers).
    tls_ca: Path | None = None
    idle: bool = True
    poll_seconds: float = 60.0
    #: The ``authserv-id`` of the receiving server whose ``Authentication-Results``
    #: header pasts trusts (RFC 8601); None trusts no such header.
    authserv_id: str | None = None

    @property
    def password(self) -> str | None:
        return read_secret(self.password_env, f"mailbox '{self.name}' password_env")

    @classmethod
    def from_toml(cls, s: Section, workflows: set[str]) -> MailboxConfig:
        name = s.get("name", str)
        url = s.get("url", str)
        scheme: Any
        host = username = None
        port: int | None = None
        path: Path | None = None
        folder = "INBOX"
        if url.startswith("maildir:"):
            scheme = "maildir"
            raw = url[len("maildir:"):]
            if raw.startswith("//"):
                raw = raw[2:]
            if not raw:
                raise s.error("url", "maildir: needs a path, e.g. maildir:./var/inbox")
            path = resolve_path(raw, s.path)
            folder = ""
        else:
            parts, scheme, host, port, username = _server_url(
                s, url, {"imap": 143, "imaps": 993})
            folder = unquote(parts.path.lstrip("/")) or "INBOX"
        workflow = s.get("workflow", str, None)
        if workflow is not None and workflows and workflow not in workflows:
            raise s.error("workflow", f"names no configured workflow: {workflow!r}")
        cfg = cls(
            name=name,
            url=url,
            scheme=scheme,
            host=host,
            port=port,
            username=username,
            folder=folder,
            path=path,
            password_env=s.env_name("password_env"),
            processed_folder=s.get("processed_folder", str, "Processed"),
            quarantine_folder=s.get("quarantine_folder", str, "Quarantine"),
            workflow=workflow,
            starttls=s.choice("starttls", ("auto", "require", "off"), "auto"),  # type: ignore[arg-type]
            tls_ca=s.path_value("tls_ca", None),
            idle=s.get("idle", bool, True),
            poll_seconds=s.positive("poll_seconds", float, 60.0),
            authserv_id=_authserv_id(s),
        )
        s.finish()
        return cfg


def _authserv_id(s: Section) -> str | None:
    """``[[mailbox]] authserv_id``: one RFC 8601 authserv-id (a host name, no spaces)."""
    value = s.get("authserv_id", str, None)
    if value is None:
        return None
    value = value.strip()
    if not value or any(c.isspace() or c == ";" for c in value):
        raise s.error("authserv_id", f"must be the receiving server's authserv-id, e.g. "
                                     f"'mx.agency.lv'; got {value!r}")
    return value.lower()


@dataclass(frozen=True)
class SmtpConfig(SmtpSettings):
    """``[smtp]``: the mailer's :class:`~mailer.settings.SmtpSettings` and the outbox's bounds."""

    #: At most this many replies to one sender address per hour (RFC 3834).
    rate_limit_per_hour: int = 20
    #: At most this many automatic replies to one domain per hour (backscatter guard).
    rate_limit_per_domain_per_hour: int = 100
    #: Give up on a reply after this many failed attempts.
    max_attempts: int = 8

    @property
    def password(self) -> str | None:
        """The password; ConfigurationError naming ``smtp.password_env`` when it is unset."""
        return read_secret(self.password_env, "smtp.password_env")

    @classmethod
    def from_toml(cls, s: Section) -> SmtpConfig:
        url = s.get("url", str, cls.url)
        scheme: Any
        host = username = None
        port: int | None = None
        path: Path | None = None
        if url.startswith("maildir:"):
            scheme = "maildir"
            raw = url[len("maildir:"):].removeprefix("//")
            if not raw:
                raise s.error("url", "maildir: needs a path, e.g. maildir:./var/outbox")
            path = resolve_path(raw, s.path)
        else:
            _, scheme, host, port, username = _server_url(s, url, {"smtp": 587, "smtps": 465})
        sender = s.get("from", str, cls.sender)
        if "@" not in sender or any(c in sender for c in "\r\n"):
            raise s.error("from", f"must be an e-mail address; got {sender!r}")
        if sender != cls.sender:
            # The one definition of an address replies can carry (mailer.addresses).
            try:
                usable_address(sender)
            except UnusableAddress as exc:
                raise s.error("from", f"is not a usable address ({exc.reason}); "
                              f"got {sender!r}") from None
        cfg = cls(
            url=url,
            scheme=scheme,
            host=host,
            port=port,
            username=username,
            path=path,
            sender=sender,
            password_env=s.env_name("password_env"),
            starttls=s.choice("starttls", ("auto", "require", "off"), "require"),  # type: ignore[arg-type]
            tls_ca=s.path_value("tls_ca", None),
            timeout_seconds=s.positive("timeout_seconds", float, 30.0),
            rate_limit_per_hour=s.positive("rate_limit_per_hour", int, 20),
            rate_limit_per_domain_per_hour=s.positive("rate_limit_per_domain_per_hour", int, 100),
            max_attempts=s.positive("max_attempts", int, 8),
        )
        s.finish()
        return cfg
