"""Sending composed replies: SMTP (STARTTLS or implicit TLS) or a Maildir dry run.

The transport is deliberately dumb: it delivers the exact bytes it is given
to the envelope it is given.  Retries, rate limits and the outbox belong to
the caller; the transport only reports what happened through
:class:`DeliveryError` and its ``permanent`` flag:

* a 5xx answer (recipient or message refused) is permanent: retrying the
  same message will not help;
* a 4xx answer, a timeout, a refused or dropped connection, a TLS or
  authentication failure (including 530 "STARTTLS first" and 535) is
  transient: the reply stays in the outbox.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import mailbox
import os
import ssl
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import aiosmtplib

from mailer.addresses import UnusableAddress, usable_address
from mailer.private import private_dir
from mailer.settings import SettingsError, SmtpSettings

__all__ = ["DeliveryError", "MaildirTransport", "SmtpTransport", "Transport", "make_transport"]

log = logging.getLogger(__name__)


class DeliveryError(Exception):
    """The SMTP server failed or refused a reply; the caller keeps it for a retry.

    ``intake.errors`` counts it among the transient errors (retry later)
    unless ``permanent`` says retrying the same message cannot help.
    """

    def __init__(self, message: str, *, permanent: bool = False, undeliverable: bool = False):
        # A 5xx answer for one recipient will not get better by retrying.
        self.permanent = permanent
        #: The address itself cannot be written to (unusable, or it needs
        #: SMTPUTF8 the server lacks): recorded on the application.
        self.undeliverable = undeliverable
        super().__init__(message)


class Transport(Protocol):
    """Delivers one composed message; see the module docstring for errors."""

    async def send(self, message: bytes, *, sender: str, recipients: Sequence[str]) -> None:
        """Deliver ``message`` to ``recipients``; raise DeliveryError on failure."""
        ...

    async def aclose(self) -> None:
        """Release the connection, if any.  Sending again afterwards reconnects."""
        ...


def _check_envelope(sender: str, recipients: Sequence[str]) -> list[str]:
    """Envelope addresses must be usable addresses (:mod:`mailer.addresses`); a bad one is permanent."""
    if isinstance(recipients, str):
        recipients = [recipients]
    rcpts = list(recipients)
    if not rcpts:
        raise DeliveryError("no recipients given", permanent=True)
    for addr in [sender, *rcpts]:
        try:
            usable_address(addr)
        except UnusableAddress as exc:
            raise DeliveryError(f"invalid envelope address {addr!r}: {exc.reason}",
                                permanent=True, undeliverable=True) from None
    return rcpts


def needs_smtputf8(sender: str, recipients: Sequence[str]) -> bool:
    """Whether an envelope address has a non-ASCII local part (RFC 6531)."""
    return not all(addr.isascii() for addr in [sender, *recipients])


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class SmtpTransport:
    """Sends over SMTP with aiosmtplib, reusing one connection between sends.

    ``smtp://`` connects in plain text and upgrades with STARTTLS according
    to ``cfg.starttls`` ("require": fail when the server does not offer it;
    "auto": upgrade when offered; "off": never, which is allowed on loopback
    only).  ``smtps://`` uses implicit TLS.  ``cfg.tls_ca`` names a CA file
    to trust instead of the system store.  AUTH is used when the URL names a
    user; the password is read from ``cfg.password_env`` when connecting.
    """

    def __init__(self, cfg: SmtpSettings):
        if cfg.scheme not in ("smtp", "smtps") or not cfg.host:
            raise SettingsError("SmtpTransport needs an smtp:// or smtps:// url", key="smtp.url")
        if cfg.scheme == "smtp" and cfg.starttls == "off" and not _is_loopback(cfg.host):
            raise SettingsError(
                'starttls = "off" sends mail in plain text and is allowed only for a '
                f"loopback server, not {cfg.host!r}",
                key="smtp.starttls",
            )
        self.cfg = cfg
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()

    def _tls_context(self) -> ssl.SSLContext:
        cafile = str(self.cfg.tls_ca) if self.cfg.tls_ca else None
        return ssl.create_default_context(cafile=cafile)

    async def _connect(self) -> aiosmtplib.SMTP:
        cfg = self.cfg
        assert cfg.host is not None
        implicit = cfg.scheme == "smtps"
        client = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port,
            timeout=cfg.timeout_seconds,
            use_tls=implicit,
            # STARTTLS is done below by hand so that "require" fails clearly.
            start_tls=False,
            tls_context=self._tls_context(),
        )
        try:
            await client.connect()
            await client.ehlo()
            if not implicit and cfg.starttls != "off":
                if client.supports_extension("starttls"):
                    await client.starttls(tls_context=self._tls_context())
                    await client.ehlo()
                elif cfg.starttls == "require":
                    raise DeliveryError(
                        f"SMTP server {cfg.host}:{cfg.port} does not offer STARTTLS and "
                        'smtp.starttls is "require"; refusing to send in plain text'
                    )
            if cfg.username:
                password = cfg.password
                if password is None:
                    raise DeliveryError("smtp.password_env is not set but the url names a user")
                await client.login(cfg.username, password)
        except BaseException:
            client.close()
            raise
        return client

    async def send(self, message: bytes, *, sender: str, recipients: Sequence[str]) -> None:
        """See :meth:`Transport.send`."""
        rcpts = _check_envelope(sender, recipients)
        async with self._lock:
            reused = self._client is not None and self._client.is_connected
            try:
                await self._send_once(message, sender, rcpts)
            except DeliveryError:
                raise
            except aiosmtplib.SMTPServerDisconnected as exc:
                # A kept-alive connection the server has since dropped: try
                # once more on a fresh one before reporting.
                self._drop()
                if not reused:
                    raise DeliveryError(f"SMTP connection lost: {exc}") from exc
                log.info("SMTP connection was closed by the server; reconnecting")
                try:
                    await self._send_once(message, sender, rcpts)
                except DeliveryError:
                    raise
                except Exception as exc2:
                    self._drop()
                    raise _classify(exc2) from exc2

    async def _send_once(self, message: bytes, sender: str, rcpts: list[str]) -> None:
        utf8 = needs_smtputf8(sender, rcpts)
        try:
            if self._client is None or not self._client.is_connected:
                self._drop()
                self._client = await self._connect()
            if utf8 and not self._client.supports_extension("smtputf8"):
                # RFC 6531: without the extension the address cannot be
                # written at all; retrying the same server will not help.
                raise DeliveryError(
                    f"SMTP server {self.cfg.host}:{self.cfg.port} does not offer SMTPUTF8, "
                    f"which the address {next(a for a in [sender, *rcpts] if not a.isascii())!r} "
                    "needs", permanent=True, undeliverable=True)
            errors, _ = await self._client.sendmail(
                sender, rcpts, message, mail_options=["SMTPUTF8"] if utf8 else None)
        except aiosmtplib.SMTPServerDisconnected:
            raise
        except DeliveryError:
            self._drop()
            raise
        except Exception as exc:  # Every failure becomes a DeliveryError.
            # After a failed transaction the connection state is unclear;
            # the next send starts on a fresh connection.
            self._drop()
            raise _classify(exc) from exc
        if errors:
            # Some recipients were refused but the message was accepted for
            # the others; retrying would duplicate it for those.
            log.warning(
                "SMTP server refused some recipients: %s",
                ", ".join(f"{r} ({e.code})" for r, e in errors.items()),
            )

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        """See :meth:`Transport.aclose`."""
        async with self._lock:
            client, self._client = self._client, None
            if client is not None and client.is_connected:
                try:
                    await client.quit()
                except (aiosmtplib.SMTPException, OSError):
                    client.close()


#: 5xx answers that concern the session set-up rather than the message
#: (RFC 3207 530, RFC 4954 534/535/538): transient, the outbox keeps the reply.
_SETUP_CODES = frozenset({530, 534, 535, 538})


def _classify(exc: BaseException) -> DeliveryError:
    """Turn an aiosmtplib or socket error into a DeliveryError (5xx = permanent)."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [e.code for e in exc.recipients]
        text = "; ".join(f"{e.recipient}: {e.code} {e.message}" for e in exc.recipients)
        permanent = bool(codes) and all(500 <= c < 600 for c in codes)
        # A recipient refused for good is an address no reply can be written to.
        return DeliveryError(f"SMTP server refused every recipient: {text}", permanent=permanent,
                             undeliverable=permanent)
    if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
        return DeliveryError(f"SMTP authentication failed: {exc.code} {exc.message}")
    if isinstance(exc, aiosmtplib.SMTPResponseException) and exc.code in _SETUP_CODES:
        # "Must issue STARTTLS first" or "authentication required" say that
        # our configuration is wrong, not the message: keep it for later.
        return DeliveryError(
            f"SMTP server demands TLS or authentication ({exc.code} {exc.message}); "
            "check smtp.starttls, smtp.url and smtp.password_env"
        )
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return DeliveryError(
            f"SMTP server answered {exc.code} {exc.message}",
            permanent=500 <= exc.code < 600,
        )
    if isinstance(exc, aiosmtplib.SMTPTimeoutError | asyncio.TimeoutError):
        return DeliveryError(f"SMTP timeout: {exc}")
    if isinstance(exc, ssl.SSLError):
        return DeliveryError(f"SMTP TLS failure: {exc}")
    return DeliveryError(f"SMTP failure: {type(exc).__name__}: {exc}")


class MaildirTransport:
    """Dry run: writes each message, byte for byte, into ``new/`` of a Maildir."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        # Missing parents are made 0700; mailbox.Maildir makes its own 0700.
        private_dir(self.path.parent)
        self._maildir = mailbox.Maildir(str(self.path), factory=None, create=True)
        #: Maildir keys of the messages written by this transport, in order.
        self.keys: list[str] = []

    async def send(self, message: bytes, *, sender: str, recipients: Sequence[str]) -> None:
        """See :meth:`Transport.send`; the envelope is checked but not stored."""
        _check_envelope(sender, recipients)
        try:
            key = await asyncio.to_thread(self._maildir.add, bytes(message))
        except OSError as exc:
            raise DeliveryError(f"cannot write to maildir {self.path}: {exc}") from exc
        # The reply may carry a personal link or code: only pasts reads it
        # (mailbox.Maildir creates its directories 0700, its files 0644).
        try:
            os.chmod(self.file_of(key), 0o600)
        except (KeyError, OSError) as exc:
            log.warning("maildir %s: cannot restrict %s: %s", self.path, key, exc)
        self.keys.append(key)

    def file_of(self, key: str) -> Path:
        """The file holding the message stored under ``key``."""
        # Maildir.add() files plain messages as new/<key>; a reader may have
        # moved it to cur/<key>:<flags> since.
        fresh = self.path / "new" / key
        if fresh.exists():
            return fresh
        for seen in (self.path / "cur").glob(f"{key}:*"):
            return seen
        raise KeyError(key)

    async def aclose(self) -> None:
        """See :meth:`Transport.aclose`; nothing to release."""


def make_transport(cfg: SmtpSettings) -> Transport:
    """The transport ``cfg.url`` asks for."""
    if cfg.scheme == "maildir":
        if cfg.path is None:
            raise SettingsError("maildir: needs a path", key="smtp.url")
        return MaildirTransport(cfg.path)
    return SmtpTransport(cfg)
