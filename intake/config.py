"""Configuration: ``config.toml`` parsed once into frozen dataclasses.

Every section parses itself (``from_toml``) with a strict key check: an
unknown key, a missing required key or a value of the wrong kind raises one
:class:`~intake.errors.ConfigurationError` naming the key and the file.
Secrets never live in the file: ``*_env`` keys name environment variables,
which are read when the secret is needed and never printed.

Relative paths are resolved against the directory holding the config file,
so ``pasts --config /etc/pasts/config.toml`` works from any directory.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar
from urllib.parse import unquote, urlsplit

from intake.addresses import UnusableAddress, usable_address
from intake.errors import ConfigurationError

#: The languages replies are written in (mailer/templates has one folder each).
REPLY_LANGUAGES = ("en", "lv", "it")

T = TypeVar("T")

REVOCATION_MODES = ("hard-fail", "soft-fail", "off")


class _Section:
    """Reads one TOML table with a strict key check."""

    def __init__(self, data: Any, name: str, path: Path):
        if not isinstance(data, Mapping):
            raise ConfigurationError("must be a table", key=name, path=str(path))
        # TOML operators write hyphens or underscores; both mean the same key.
        self.data = {str(k).replace("-", "_"): v for k, v in data.items()}
        self.name = name
        self.path = path
        self.used: set[str] = set()

    def key(self, k: str) -> str:
        return f"{self.name}.{k}" if self.name else k

    def error(self, k: str, message: str) -> ConfigurationError:
        return ConfigurationError(message, key=self.key(k), path=str(self.path))

    def get(self, k: str, kind: type[T] | tuple[type, ...], default: Any = ..., ) -> Any:
        self.used.add(k)
        if k not in self.data:
            if default is ...:
                raise self.error(k, "is required")
            return default
        value = self.data[k]
        # bool is an int in Python; do not accept true for a number.
        if (kind is int or kind is float or kind == (int, float)) and isinstance(value, bool):
            raise self.error(k, f"must be a number, not {value!r}")
        if kind is float and isinstance(value, int):
            value = float(value)
        if not isinstance(value, kind):
            want = kind.__name__ if isinstance(kind, type) else " or ".join(t.__name__ for t in kind)
            raise self.error(k, f"must be {want}, not {type(value).__name__} {value!r}")
        return value

    def choice(self, k: str, choices: tuple[str, ...], default: str) -> str:
        value = self.get(k, str, default)
        if value not in choices:
            raise self.error(k, f"must be one of {', '.join(choices)}; got {value!r}")
        return value

    def positive(self, k: str, kind: type, default: Any) -> Any:
        value = self.get(k, kind, default)
        if value is not None and value <= 0:
            raise self.error(k, f"must be greater than 0; got {value!r}")
        return value

    def non_negative(self, k: str, kind: type, default: Any) -> Any:
        value = self.get(k, kind, default)
        if value is not None and value < 0:
            raise self.error(k, f"must be 0 or more; got {value!r}")
        return value

    def path_value(self, k: str, default: Any = ...) -> Path | None:
        value = self.get(k, str, default)
        if value is None:
            return None
        return resolve_path(value, self.path)

    def str_list(self, k: str, default: Any = ...) -> tuple[str, ...]:
        value = self.get(k, (list, str), default)
        if isinstance(value, str):
            value = [value]
        if not all(isinstance(v, str) for v in value):
            raise self.error(k, "must be a list of strings")
        return tuple(value)

    def env_name(self, k: str) -> str | None:
        value = self.get(k, str, None)
        if value is not None and not value.replace("_", "").isalnum():
            raise self.error(k, f"must name an environment variable; got {value!r}")
        return value

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.error(unknown[0], "is not a known key")

    def sub(self, k: str) -> _Section:
        self.used.add(k)
        return _Section(self.data.get(k, {}), self.key(k), self.path)


def resolve_path(value: str, config_path: Path) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (config_path.parent / p).resolve()


def read_secret(env_name: str | None, what: str) -> str | None:
    """The secret held in environment variable ``env_name`` (None if unset)."""
    if env_name is None:
        return None
    value = os.environ.get(env_name)
    if value is None:
        raise ConfigurationError(
            f"environment variable {env_name} (for {what}) is not set", key=what
        )
    return value


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
    def from_toml(cls, s: _Section) -> DatabaseConfig:
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
    def from_toml(cls, s: _Section, workflows: set[str]) -> MailboxConfig:
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
            parts = urlsplit(url)
            if parts.scheme not in ("imap", "imaps"):
                raise s.error("url", f"must start with imap://, imaps:// or maildir:; got {url!r}")
            scheme = parts.scheme
            if not parts.hostname:
                raise s.error("url", f"has no host: {url!r}")
            host = parts.hostname
            try:
                port = parts.port or (993 if scheme == "imaps" else 143)
            except ValueError as exc:
                raise s.error("url", f"bad port: {exc}") from None
            username = unquote(parts.username) if parts.username else None
            if parts.password:
                raise s.error("url", "must not contain a password; use password_env")
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


def _authserv_id(s: _Section) -> str | None:
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
class SmtpConfig:
    """Where replies go: ``smtp://host:587`` (STARTTLS), ``smtps://host:465``, or ``maildir:PATH``."""

    url: str = "maildir:./var/outbox"
    scheme: Literal["smtp", "smtps", "maildir"] = "maildir"
    host: str | None = None
    port: int | None = None
    username: str | None = None
    path: Path | None = None
    sender: str = "pasts@localhost"
    password_env: str | None = field(default=None, repr=False)
    starttls: Literal["auto", "require", "off"] = "require"
    tls_ca: Path | None = None
    timeout_seconds: float = 30.0
    #: At most this many replies to one sender address per hour (RFC 3834).
    rate_limit_per_hour: int = 20
    #: At most this many automatic replies to one domain per hour (backscatter guard).
    rate_limit_per_domain_per_hour: int = 100
    #: Give up on a reply after this many failed attempts.
    max_attempts: int = 8

    @property
    def password(self) -> str | None:
        return read_secret(self.password_env, "smtp.password_env")

    @classmethod
    def from_toml(cls, s: _Section) -> SmtpConfig:
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
            parts = urlsplit(url)
            if parts.scheme not in ("smtp", "smtps"):
                raise s.error("url", f"must start with smtp://, smtps:// or maildir:; got {url!r}")
            scheme = parts.scheme
            if not parts.hostname:
                raise s.error("url", f"has no host: {url!r}")
            host = parts.hostname
            try:
                port = parts.port or (465 if scheme == "smtps" else 587)
            except ValueError as exc:
                raise s.error("url", f"bad port: {exc}") from None
            username = unquote(parts.username) if parts.username else None
            if parts.password:
                raise s.error("url", "must not contain a password; use password_env")
        sender = s.get("from", str, cls.sender)
        if "@" not in sender or any(c in sender for c in "\r\n"):
            raise s.error("from", f"must be an e-mail address; got {sender!r}")
        if sender != cls.sender:
            # The one definition of an address replies can carry (intake.addresses).
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


@dataclass(frozen=True)
class SigningConfig:
    #: PEM files or directories of PEM files: the only trust anchors.
    trust_roots: tuple[Path, ...] = ()
    require_timestamp: bool = True
    require_qualified: bool = True
    revocation: Literal["hard-fail", "soft-fail", "off"] = "soft-fail"
    #: Forms time-stamped longer ago than this are SIG-TOO-OLD.
    max_age_days: int = 90
    #: Fetch OCSP/CRL over the network when the file carries none (only for
    #: chains that reach a trust anchor; issuer certificates are never fetched).
    allow_fetching: bool = True
    #: SIG-NOT-QUALIFIED also when the signer's key is not on a QSCD.
    require_qscd: bool = True
    #: TS-NOT-QUALIFIED unless the time-stamp is from a qualified service (QTST).
    require_qualified_timestamp: bool = True
    #: Store pyHanko's ETSI TS 119 102-2 validation report of each PAdES signature.
    validation_report: bool = True
    #: Connect-and-read limit of one OCSP or CRL request.
    fetch_timeout_seconds: float = 5.0
    #: Total time the revocation requests for one document may take.
    fetch_budget_seconds: float = 15.0
    #: How long a fetched OCSP response or CRL is reused (less when its nextUpdate is sooner).
    fetch_cache_seconds: float = 300.0

    @classmethod
    def from_toml(cls, s: _Section) -> SigningConfig:
        roots = tuple(resolve_path(p, s.path) for p in s.str_list("trust_roots", []))
        cfg = cls(
            trust_roots=roots,
            require_timestamp=s.get("require_timestamp", bool, True),
            require_qualified=s.get("require_qualified", bool, True),
            require_qscd=s.get("require_qscd", bool, True),
            require_qualified_timestamp=s.get("require_qualified_timestamp", bool, True),
            validation_report=s.get("validation_report", bool, True),
            revocation=s.choice("revocation", REVOCATION_MODES, "soft-fail"),  # type: ignore[arg-type]
            max_age_days=s.positive("max_age_days", int, 90),
            allow_fetching=s.get("allow_fetching", bool, True),
            fetch_timeout_seconds=s.positive("fetch_timeout_seconds", float, 5.0),
            fetch_budget_seconds=s.positive("fetch_budget_seconds", float, 15.0),
            fetch_cache_seconds=s.positive("fetch_cache_seconds", float, 300.0),
        )
        s.finish()
        return cfg


@dataclass(frozen=True)
class TrustConfig:
    """``[trust]``: the EU trusted lists as the source of qualified status (SPEC section 8)."""

    #: URL or file of the EU List of Trusted Lists.
    lotl: str
    #: Where verified lists are cached (created with mode 0700).
    cache_dir: Path
    #: PEM files of the certificates allowed to sign the LOTL (empty: the
    #: Official Journal's, shipped in pyHanko's package).
    lotl_signers: tuple[Path, ...] = ()
    #: Lists last fetched and verified longer ago than this are stale.
    max_age_hours: float = 48.0
    #: Only these national lists (country codes); empty: every list.
    territories: tuple[str, ...] = ()
    #: Bound on each fetch of a list.
    timeout_seconds: float = 20.0
    #: Lists larger than this are refused.
    max_list_bytes: int = 32 * 1024 * 1024

    @classmethod
    def from_toml(cls, s: _Section) -> TrustConfig:
        lotl = s.get("lotl", str)
        if not lotl.startswith(("https://", "http://")):
            lotl = str(resolve_path(lotl.removeprefix("file://"), s.path))
        territories = tuple(t.upper() for t in s.str_list("territories", []))
        for t in territories:
            if not (len(t) == 2 and t.isalpha()):
                raise s.error("territories", f"must be two-letter country codes; got {t!r}")
        cfg = cls(
            lotl=lotl,
            cache_dir=s.path_value("cache_dir", "var/trust") or Path("var/trust"),
            lotl_signers=tuple(resolve_path(p, s.path) for p in s.str_list("lotl_signers", [])),
            max_age_hours=s.positive("max_age_hours", float, 48.0),
            territories=territories,
            timeout_seconds=s.positive("timeout_seconds", float, 20.0),
            max_list_bytes=s.positive("max_list_bytes", int, 32 * 1024 * 1024),
        )
        for path in cfg.lotl_signers:
            if not path.is_file():
                raise s.error("lotl_signers", f"no such file: {path}")
        s.finish()
        return cfg

    def settings(self) -> Any:
        """The plain values :mod:`signing.trustlists` works with."""
        from signing.trust.trustlists import TrustSettings

        return TrustSettings(
            lotl=self.lotl, cache_dir=self.cache_dir, lotl_signers=self.lotl_signers,
            max_age_hours=self.max_age_hours, territories=self.territories,
            timeout_seconds=self.timeout_seconds, max_list_bytes=self.max_list_bytes,
        )


@dataclass(frozen=True)
class CsrConfig:
    """Key policy for certificate requests (CSR-KEY-WEAK)."""

    rsa_min_bits: int = 2048
    #: Allowed EC curves by their SEC names.
    ec_curves: tuple[str, ...] = ("secp256r1", "secp384r1")
    allow_ed25519: bool = False

    @classmethod
    def from_toml(cls, s: _Section) -> CsrConfig:
        curves = s.str_list("ec_curves", list(cls.ec_curves))
        known = ("secp256r1", "secp384r1", "secp521r1")
        for c in curves:
            if c not in known:
                raise s.error("ec_curves", f"unknown curve {c!r}; known: {', '.join(known)}")
        cfg = cls(
            rsa_min_bits=s.positive("rsa_min_bits", int, 2048),
            ec_curves=curves,
            allow_ed25519=s.get("allow_ed25519", bool, False),
        )
        s.finish()
        return cfg


@dataclass(frozen=True)
class CaConfig:
    certificate: Path | None = None
    key: Path | None = None
    key_password_env: str | None = field(default=None, repr=False)
    validity_days: int = 365
    crl: Path | None = None
    #: How long a freshly signed CRL is valid (its nextUpdate).
    crl_next_update_hours: float = 168.0
    #: URL written into issued certificates' CRL distribution point.
    crl_url: str | None = None

    @property
    def key_password(self) -> str | None:
        return read_secret(self.key_password_env, "ca.key_password_env")

    @property
    def enabled(self) -> bool:
        return self.certificate is not None and self.key is not None

    @classmethod
    def from_toml(cls, s: _Section) -> CaConfig:
        cfg = cls(
            certificate=s.path_value("certificate", None),
            key=s.path_value("key", None),
            key_password_env=s.env_name("key_password_env"),
            validity_days=s.positive("validity_days", int, 365),
            crl=s.path_value("crl", None),
            crl_next_update_hours=s.positive("crl_next_update_hours", float, 168.0),
            crl_url=s.get("crl_url", str, None),
        )
        if (cfg.certificate is None) != (cfg.key is None):
            raise s.error("key" if cfg.key is None else "certificate",
                          "ca.certificate and ca.key go together")
        if cfg.enabled and cfg.crl is None:
            # `pasts restrict` revokes certificates of this CA; without a CRL the
            # revocation would reach no relying party.
            raise s.error("crl", "is required when the CA is configured: pasts restrict "
                                 "publishes revoked certificates in this CRL file")
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

    @property
    def ttl(self) -> timedelta:
        return timedelta(hours=self.ttl_hours)

    @classmethod
    def from_toml(cls, s: _Section) -> VerificationConfig:
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
        )
        s.finish()
        return cfg


@dataclass(frozen=True)
class DigestConfig:
    recipients: tuple[str, ...] = ()
    #: Five-field cron expression (minute hour day month weekday).
    schedule: str = "0 7 * * 1-5"

    @classmethod
    def from_toml(cls, s: _Section) -> DigestConfig:
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
        cfg = cls(recipients=recipients, schedule=schedule)
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
    MIN_VERIFY_MEMORY_MB: ClassVar[int] = 256

    @classmethod
    def from_toml(cls, s: _Section) -> LimitsConfig:
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
    #: Where applicants are told to send questions (FORM-MISSING notices).
    support_address: str | None = None

    @classmethod
    def from_toml(cls, s: _Section) -> DaemonConfig:
        cfg = cls(
            max_attempts=s.positive("max_attempts", int, 3),
            state_dir=s.path_value("state_dir", "var") or Path("var"),
            language=s.choice("language", REPLY_LANGUAGES, "en"),
            log_level=s.choice("log_level", ("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
            support_address=s.get("support_address", str, None),
        )
        s.finish()
        return cfg


@dataclass(frozen=True)
class FieldSpec:
    """One AcroForm field of a workflow's form."""

    name: str
    required: bool = False
    #: A named format (see ``intake.formats``) checked by FORM-FIELD-INVALID.
    format: str | None = None
    label: str = ""
    min_length: int | None = None
    max_length: int | None = None

    @classmethod
    def from_toml(cls, s: _Section) -> FieldSpec:
        cfg = cls(
            name=s.get("name", str),
            required=s.get("required", bool, False),
            format=s.get("format", str, None),
            label=s.get("label", str, ""),
            min_length=s.positive("min_length", int, None),
            max_length=s.positive("max_length", int, None),
        )
        s.finish()
        return cfg


@dataclass(frozen=True)
class WorkflowConfig:
    """A procedure, as data."""

    id: str
    prefix: str
    title: str = ""
    fields: tuple[FieldSpec, ...] = ()
    #: Attachment kinds the applicant must send besides the form: "csr".
    requires: tuple[str, ...] = ()
    #: Registry rules to run (TEST-ENV-NOT-COMPLETED, SIGNER-NOT-AUTHORISED,
    #: CONTRACT-MISSING); form, signature, CSR and DUPLICATE rules always run.
    rules: tuple[str, ...] = ()
    #: What approval does: "certificate", "account", "publication", "answer".
    outcome: str = "review"
    #: Whether a form is needed at all (false for consultation).
    needs_form: bool = True
    #: The first language of its replies ("en", "lv", "it"; English follows
    #: the others); None: ``[daemon] language``.
    language: str | None = None
    #: SIG-TOO-OLD for this procedure: how many days a time-stamp may be old
    #: (None: ``[signing] max_age_days``).
    max_age_days: int | None = None
    #: Overrides of ``[signing]`` for this procedure (None: the [signing] value).
    require_timestamp: bool | None = None
    require_qualified: bool | None = None
    require_qscd: bool | None = None
    require_qualified_timestamp: bool | None = None
    #: Qualified e-seals (an organisation signing) count as qualified signatures.
    accept_eseals: bool = False

    @classmethod
    def from_toml(cls, s: _Section) -> WorkflowConfig:
        wid = s.get("id", str)
        fields_raw = s.get("fields", list, [])
        s.used.add("fields")
        fields = tuple(
            FieldSpec.from_toml(_Section(f, f"{s.key('fields')}[{i}]", s.path))
            for i, f in enumerate(fields_raw)
        )
        cfg = cls(
            id=wid,
            prefix=s.get("prefix", str),
            title=s.get("title", str, ""),
            fields=fields,
            requires=s.str_list("requires", []),
            rules=s.str_list("rules", []),
            outcome=s.choice(
                "outcome", ("certificate", "account", "publication", "answer", "review"), "review"
            ),
            needs_form=s.get("needs_form", bool, True),
            language=s.get("language", str, None),
            max_age_days=s.positive("max_age_days", int, None),
            require_timestamp=s.get("require_timestamp", bool, None),
            require_qualified=s.get("require_qualified", bool, None),
            require_qscd=s.get("require_qscd", bool, None),
            require_qualified_timestamp=s.get("require_qualified_timestamp", bool, None),
            accept_eseals=s.get("accept_eseals", bool, False),
        )
        if cfg.language is not None and cfg.language not in REPLY_LANGUAGES:
            raise s.error("language", f"must be one of {', '.join(REPLY_LANGUAGES)}; "
                          f"got {cfg.language!r}")
        if not cfg.prefix.isalnum() or not cfg.prefix.isupper():
            raise s.error("prefix", f"must be upper-case letters/digits; got {cfg.prefix!r}")
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


def default_workflows() -> tuple[WorkflowConfig, ...]:
    """The procedures pasts ships (SPEC section 1), from ``intake/workflows.toml``."""
    path = Path(__file__).with_name("workflows.toml")
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    top = _Section(data, "", path)
    raw = top.get("workflow", list)
    top.finish()
    return tuple(
        WorkflowConfig.from_toml(_Section(w, f"workflow[{i}]", path)) for i, w in enumerate(raw)
    )


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
    top = _Section(data, "", path)

    # Shipped workflows first; [[workflow]] entries with the same id replace them.
    workflows = {w.id: w for w in default_workflows()}
    for i, raw in enumerate(top.get("workflow", list, [])):
        w = WorkflowConfig.from_toml(_Section(raw, f"workflow[{i}]", path))
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
        mailboxes.append(MailboxConfig.from_toml(_Section(raw, f"mailbox[{i}]", path), set(workflows)))
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
