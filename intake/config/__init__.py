"""Configuration: ``config.toml`` parsed once into frozen dataclasses.

Every section parses itself (``from_toml``) with a strict key check: an
unknown key, a missing required key or a value of the wrong kind raises one
:class:`~intake.errors.ConfigurationError` naming the key and the file.
Secrets never live in the file: ``*_env`` keys name environment variables,
which are read when the secret is needed and never printed.

Relative paths are resolved against the directory holding the config file,
so ``pasts --config /etc/pasts/config.toml`` works from any directory.

The sections live by group: :mod:`~intake.config.section` (the strict
reader), :mod:`~intake.config.mail` (``[[mailbox]]``, ``[smtp]``, built on
the mailer's :class:`~mailer.settings.SmtpSettings`),
:mod:`~intake.config.signing` (``[signing]``, ``[trust]``, ``[csr]``,
``[ca]``), :mod:`~intake.config.workflows` (``[[workflow]]`` into
:mod:`rules.workflow`'s types); this module holds the rest and is the
package's public face.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from intake.config.mail import MailboxConfig, SmtpConfig
from intake.config.section import REPLY_LANGUAGES, Section, read_secret, resolve_path
from intake.config.signing import CaConfig, CsrConfig, SigningConfig, TrustConfig
from intake.config.workflows import default_workflows, parse_workflow
from intake.errors import ConfigurationError
from mailer.addresses import UnusableAddress, usable_address
from rules.workflow import WorkflowConfig

__all__ = [
    "REPLY_LANGUAGES",
    "CaConfig",
    "Config",
    "CsrConfig",
    "DaemonConfig",
    "DatabaseConfig",
    "DigestConfig",
    "LimitsConfig",
    "MailboxConfig",
    "SigningConfig",
    "SmtpConfig",
    "TrustConfig",
    "VerificationConfig",
    "default_workflows",
    "load_config",
    "parse_config",
    "read_secret",
    "resolve_path",
]


@dataclass(frozen=True)
class DatabaseConfig:
    #: SQLAlchemy URL, without a password; SQLite paths are relative to the config file.
    url: str = "sqlite:///var/pasts.db"
    #: The environment variable holding the database password (PostgreSQL).
    password_env: str | None = field(default=None, repr=False)

    @property
    def password(self) -> str | None:
        return read_secret(self.password_env, "database.password_env")

    @property
    def connect_url(self) -> str:
        """``url`` with the password from ``password_env`` put in (never logged)."""
        password = self.password
        if password is None:
            return self.url
        from sqlalchemy.engine import make_url

        return make_url(self.url).set(password=password).render_as_string(hide_password=False)

    @property
    def sqlite_path(self) -> Path | None:
        """The database file of a SQLite URL (None for other databases and :memory:)."""
        if not self.url.startswith("sqlite:///"):
            return None
        rel = self.url[len("sqlite:///"):].split("?", 1)[0]
        return Path(rel) if rel and rel != ":memory:" else None

    @classmethod
    def from_toml(cls, s: Section) -> DatabaseConfig:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError

        url = s.get("url", str, cls.url)
        try:
            parsed = make_url(url)
        except (ArgumentError, ValueError) as exc:
            raise s.error("url", f"is not a database URL: {exc}") from None
        if parsed.password is not None:
            # The mail URLs refuse a password too: config.toml is no place for secrets.
            raise s.error("url", "must not contain a password; name the environment "
                                 "variable holding it in database.password_env")
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            rel = url[len("sqlite:///"):]
            if rel and rel != ":memory:":
                url = "sqlite:///" + str(resolve_path(rel, s.path))
        cfg = cls(url=url, password_env=s.env_name("password_env"))
        s.finish()
        return cfg


@dataclass(frozen=True)
class VerificationConfig:
    required: bool = True
    ttl_hours: float = 72.0
    public_url: str = "http://127.0.0.1:8025"
    listen: str = "127.0.0.1:8025"
    #: Link mails (verification and change confirmation) per application and day.
    max_links_per_day: int = 3
    #: Hours before a link expires that the applicant is reminded once (0: no reminder).
    remind_hours_before: float = 24.0

    @property
    def ttl(self) -> timedelta:
        return timedelta(hours=self.ttl_hours)

    @property
    def remind_before(self) -> timedelta | None:
        """How long before expiry a link is reminded of; None when reminders are off."""
        return timedelta(hours=self.remind_hours_before) if self.remind_hours_before else None

    @classmethod
    def from_toml(cls, s: Section) -> VerificationConfig:
        listen = s.get("listen", str, cls.listen)
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit():
            raise s.error("listen", f"must be HOST:PORT; got {listen!r}")
        cfg = cls(
            required=s.get("required", bool, True),
            ttl_hours=s.positive("ttl_hours", float, 72.0),
            public_url=s.get("public_url", str, cls.public_url).rstrip("/"),
            listen=listen,
            max_links_per_day=s.positive("max_links_per_day", int, 3),
            remind_hours_before=s.non_negative("remind_hours_before", float, 24.0),
        )
        s.finish()
        return cfg


@dataclass(frozen=True)
class DigestConfig:
    recipients: tuple[str, ...] = ()
    #: Five-field cron expression (minute hour day month weekday).
    schedule: str = "0 7 * * 1-5"
    #: Days an application may wait for staff before the digest marks it (SPEC section 8).
    sla_days: int = 5

    @classmethod
    def from_toml(cls, s: Section) -> DigestConfig:
        schedule = s.get("schedule", str, cls.schedule)
        if len(schedule.split()) != 5:
            raise s.error("schedule", f"must be a 5-field cron expression; got {schedule!r}")
        recipients = s.str_list("recipients", [])
        for recipient in recipients:
            try:
                usable_address(recipient)
            except UnusableAddress as exc:
                raise s.error("recipients", f"{recipient!r} is not a usable address "
                              f"({exc.reason})") from None
        cfg = cls(recipients=recipients, schedule=schedule,
                  sla_days=s.positive("sla_days", int, cls.sla_days))
        s.finish()
        return cfg


@dataclass(frozen=True)
class LimitsConfig:
    """Bounds on hostile input."""

    max_message_bytes: int = 25 * 1024 * 1024
    max_attachment_bytes: int = 15 * 1024 * 1024
    max_pdf_pages: int = 200
    #: Wall-clock bound for verifying one form (seconds).
    verify_timeout_seconds: float = 60.0
    #: Address-space bound of a verification process in MiB (0: none).
    verify_memory_mb: int = 1536
    #: Wall-clock bound for the MIME parse of one mail, run in a verification
    #: process (seconds); an overrun counts as a failed attempt (daemon.max_attempts).
    parse_timeout_seconds: float = 30.0
    #: Bounded child processes judging messages' bytes at once (parse, PDF,
    #: signatures, form fields); several messages are in flight while the
    #: daemon's process records, decides and answers them in order.
    verify_workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    MIN_VERIFY_MEMORY_MB: ClassVar[int] = 256

    @classmethod
    def from_toml(cls, s: Section) -> LimitsConfig:
        cfg = cls(
            max_message_bytes=s.positive("max_message_bytes", int, cls.max_message_bytes),
            max_attachment_bytes=s.positive("max_attachment_bytes", int, cls.max_attachment_bytes),
            max_pdf_pages=s.positive("max_pdf_pages", int, cls.max_pdf_pages),
            verify_timeout_seconds=s.positive(
                "verify_timeout_seconds", float, cls.verify_timeout_seconds
            ),
            verify_memory_mb=s.non_negative("verify_memory_mb", int, cls.verify_memory_mb),
            parse_timeout_seconds=s.positive(
                "parse_timeout_seconds", float, cls.parse_timeout_seconds
            ),
            verify_workers=s.positive("verify_workers", int, os.cpu_count() or 1),
        )
        if 0 < cfg.verify_memory_mb < cls.MIN_VERIFY_MEMORY_MB:
            raise s.error(
                "verify_memory_mb",
                f"must be 0 (no limit) or at least {cls.MIN_VERIFY_MEMORY_MB}: a verification "
                f"process needs about that much at rest; got {cfg.verify_memory_mb}",
            )
        s.finish()
        return cfg


@dataclass(frozen=True)
class DaemonConfig:
    #: Processing attempts before a message goes to quarantine.
    max_attempts: int = 3
    #: Private state (secret keys), created 0700 at start.
    state_dir: Path = Path("var")
    #: Replies in this language unless a workflow says otherwise.
    language: str = "en"
    log_level: str = "INFO"
    #: "text" (a line for people) or "json" (one JSON object a line, intake.logs).
    log_format: str = "text"
    #: Where applicants are told to send questions (FORM-MISSING notices).
    support_address: str | None = None
    #: Days after an application is closed that its raw mail and verification
    #: artefacts are purged (intake.app.retention); None: never (the default).
    retention_days: int | None = None

    @classmethod
    def from_toml(cls, s: Section) -> DaemonConfig:
        cfg = cls(
            max_attempts=s.positive("max_attempts", int, 3),
            state_dir=s.path_value("state_dir", "var") or Path("var"),
            language=s.choice("language", REPLY_LANGUAGES, "en"),
            log_level=s.choice("log_level", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
            log_format=s.choice("log_format", ("text", "json"), "text"),
            support_address=s.get("support_address", str, None),
            retention_days=s.positive("retention_days", int, None),
        )
        s.finish()
        return cfg


@dataclass(frozen=True)
class Config:
    path: Path
    database: DatabaseConfig
    mailboxes: tuple[MailboxConfig, ...]
    smtp: SmtpConfig
    signing: SigningConfig
    csr: CsrConfig
    ca: CaConfig
    verification: VerificationConfig
    digest: DigestConfig
    limits: LimitsConfig
    daemon: DaemonConfig
    workflows: tuple[WorkflowConfig, ...]
    #: The EU trusted lists (None: ``[trust]`` is not configured).
    trust: TrustConfig | None = None

    def workflow(self, wid: str) -> WorkflowConfig | None:
        return next((w for w in self.workflows if w.id == wid), None)

    def mailbox(self, name: str) -> MailboxConfig | None:
        return next((m for m in self.mailboxes if m.name == name), None)


def load_config(path: str | os.PathLike[str]) -> Config:
    """Read and check ``path``; raise ConfigurationError naming the key."""
    p = Path(path).resolve()
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigurationError("configuration file not found", path=str(p)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"not valid TOML: {exc}", path=str(p)) from None
    return parse_config(data, p)


def parse_config(data: Mapping[str, Any], path: Path) -> Config:
    top = Section(data, "", path)

    # Shipped workflows first; [[workflow]] entries with the same id replace them.
    workflows = {w.id: w for w in default_workflows()}
    for i, raw in enumerate(top.get("workflow", list, [])):
        w = parse_workflow(Section(raw, f"workflow[{i}]", path))
        workflows[w.id] = w
    prefixes: dict[str, str] = {}
    for w in workflows.values():
        if w.prefix in prefixes:
            raise ConfigurationError(
                f"prefix {w.prefix!r} is used by both {prefixes[w.prefix]} and {w.id}",
                key="workflow.prefix", path=str(path),
            )
        prefixes[w.prefix] = w.id

    mailboxes = []
    for i, raw in enumerate(top.get("mailbox", list, [])):
        mailboxes.append(MailboxConfig.from_toml(Section(raw, f"mailbox[{i}]", path), set(workflows)))
    names = [m.name for m in mailboxes]
    for n in names:
        if names.count(n) > 1:
            raise ConfigurationError(f"two mailboxes are named {n!r}", key="mailbox.name", path=str(path))

    cfg = Config(
        path=path,
        database=DatabaseConfig.from_toml(top.sub("database")),
        mailboxes=tuple(mailboxes),
        smtp=SmtpConfig.from_toml(top.sub("smtp")),
        signing=SigningConfig.from_toml(top.sub("signing")),
        csr=CsrConfig.from_toml(top.sub("csr")),
        ca=CaConfig.from_toml(top.sub("ca")),
        verification=VerificationConfig.from_toml(top.sub("verification")),
        digest=DigestConfig.from_toml(top.sub("digest")),
        limits=LimitsConfig.from_toml(top.sub("limits")),
        daemon=DaemonConfig.from_toml(top.sub("daemon")),
        workflows=tuple(workflows.values()),
        trust=TrustConfig.from_toml(top.sub("trust")) if "trust" in top.data else None,
    )
    top.finish()
    return cfg
