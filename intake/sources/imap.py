"""An IMAP mailbox as a mail source (imap-tools).

:class:`ImapSource` speaks IMAP over implicit TLS (``imaps://``), STARTTLS or,
on loopback only (or with ``starttls = "off"``), plain text. It moves with the
atomic ``UID MOVE`` (RFC 6851) where offered, else ``UID COPY`` + ``\\Deleted``
+ ``UID EXPUNGE`` of that one UID (UIDPLUS, RFC 4315). ``wait`` uses IDLE
(RFC 2177) when allowed and offered, else it sleeps for ``poll_seconds``.
The protocol it implements is :class:`intake.sources.base.MailSource`.
"""

from __future__ import annotations

import contextlib
import imaplib
import ipaddress
import logging
import re
import ssl
import threading
import time
from collections.abc import Iterator
from typing import Literal

from imap_tools import MailBox, MailBoxStartTls, MailBoxUnencrypted
from imap_tools.errors import ImapToolsError
from imap_tools.mailbox import BaseMailBox
from imap_tools.utils import encode_folder

from intake.config import MailboxConfig
from intake.errors import MailboxError
from intake.sources.base import STOP_CHECK_SECONDS, RawMessage

log = logging.getLogger(__name__)

#: IDLE is ended and re-issued after this long; RFC 2177 asks for < 29 minutes.
IDLE_RENEW_SECONDS = 28 * 60
#: Socket timeout for every IMAP command (IDLE polls use their own timeout).
IMAP_TIMEOUT_SECONDS = 60.0
#: A body FETCH asks for at most this many messages ...
FETCH_CHUNK_MESSAGES = 50
#: ... and at most about this many bytes (a single larger message is fetched alone).
FETCH_CHUNK_BYTES = 8 * 1024 * 1024
#: UIDs per UID FETCH of sizes.
SIZE_CHUNK_UIDS = 500

Transport = Literal["tls", "starttls", "plain"]


class _Refused(Exception):
    """The server answered NO or BAD (or nonsense); wrapped into MailboxError by ``_step``."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine (127.0.0.0/8, ::1 or localhost)."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def plan_transport(config: MailboxConfig, server_offers_starttls: bool | None) -> Transport:
    """How to protect the connection, or MailboxError if no acceptable way exists.

    ``server_offers_starttls`` is None before the greeting was read; it only
    matters for ``starttls = "auto"``. Plain text is used only when the
    operator said ``starttls = "off"`` or, for "auto", when a loopback server
    does not offer STARTTLS: a password is never sent in clear over a network.
    """
    if config.scheme == "imaps":
        return "tls"
    if config.starttls == "require":
        return "starttls"
    if config.starttls == "off":
        return "plain"
    if server_offers_starttls is None or server_offers_starttls:
        return "starttls"
    if is_loopback(config.host or ""):
        return "plain"
    raise MailboxError(
        f"mailbox {config.name!r}: server {config.host}:{config.port} does not offer "
        "STARTTLS, and sending the password in clear is allowed only to a loopback host; "
        'use an imaps:// URL, or set starttls = "off" to accept plain text'
    )


def tls_context(config: MailboxConfig) -> ssl.SSLContext:
    """A verifying client context: the system roots plus ``tls_ca`` if configured."""
    ctx = ssl.create_default_context()
    if config.tls_ca is not None:
        try:
            ctx.load_verify_locations(cafile=str(config.tls_ca))
        except (OSError, ssl.SSLError) as exc:
            raise MailboxError(
                f"mailbox {config.name!r}: cannot load tls_ca {config.tls_ca}: {exc}"
            ) from exc
    return ctx


def _uid_set(uids: list[int]) -> str:
    """An IMAP sequence set for ascending ``uids``, with runs folded into ranges."""
    parts: list[str] = []
    start = prev = uids[0]
    for uid in uids[1:] + [-1]:
        if uid == prev + 1:
            prev = uid
            continue
        parts.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = uid
    return ",".join(parts)


_UID_RE = re.compile(rb"\bUID (\d+)")
_SIZE_RE = re.compile(rb"\bRFC822\.SIZE (\d+)")
_EXISTS_RE = re.compile(rb"^\* \d+ EXISTS")


def _parse_fetch(data: list[object]) -> dict[int, tuple[bytes, bytes | None]]:
    """UID -> (metadata text, literal or None) from an imaplib FETCH answer.

    imaplib returns ``(b'7 (UID 42 BODY[] {123}', literal)`` tuples followed by
    ``b')'``, or plain bytes for answers without a literal. The UID may also
    come after the literal, in the closing bytes item.
    """
    found: dict[int, tuple[bytes, bytes | None]] = {}
    items = list(data)
    i = 0
    while i < len(items):
        item = items[i]
        literal: bytes | None = None
        if isinstance(item, tuple) and len(item) == 2:
            head = bytes(item[0])
            literal = bytes(item[1])
            rest = items[i + 1] if i + 1 < len(items) else None
            if isinstance(rest, bytes):
                # The rest of this response line, e.g. b')' or b' UID 42)'.
                head += b" " + rest
                i += 1
        elif isinstance(item, bytes):
            head = item
        else:
            i += 1
            continue
        m = _UID_RE.search(head)
        if m:
            found[int(m.group(1))] = (head, literal)
        i += 1
    return found


class ImapSource:
    """An IMAP mailbox read with imap-tools; see the module docstring."""

    def __init__(self, config: MailboxConfig, *, stop_event: threading.Event | None = None):
        if config.scheme not in ("imap", "imaps"):
            raise MailboxError(f"mailbox {config.name!r}: not an IMAP URL: {config.url}")
        self.config = config
        self._stop = stop_event or threading.Event()
        self._mb: BaseMailBox | None = None
        self._password: str | None = None
        self._uidvalidity = 0
        #: Capabilities after login (MOVE, UIDPLUS and IDLE are offered only then).
        self.capabilities: frozenset[str] = frozenset()
        #: How the current connection is protected.
        self.transport: Transport | None = None
        # Without MOVE and UIDPLUS a moved message stays, flagged \Deleted,
        # until someone expunges; it must then not be fetched again.
        self._skip_deleted = False

    # -- life cycle ------------------------------------------------------------

    def set_stop_event(self, event: threading.Event) -> None:
        """Use ``event`` (set on SIGTERM) to end a ``wait`` early."""
        self._stop = event

    def __enter__(self) -> ImapSource:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._mb is not None

    def connect(self) -> None:
        """Connect, log in, create the target folders and select the inbox folder."""
        if self._mb is not None:
            return
        cfg = self.config
        if not cfg.host or not cfg.username:
            raise MailboxError(f"mailbox {cfg.name!r}: the URL needs a user and a host: {cfg.url}")
        password = cfg.password
        if password is None:
            raise MailboxError(
                f"mailbox {cfg.name!r}: no password; set password_env to a variable holding it"
            )
        self._password = password
        mb = self._open_transport()
        try:
            self._login(mb, cfg.username, password)
            with self._step("CAPABILITY"):
                self._refresh_capabilities(mb)
            self.capabilities = frozenset(mb.client.capabilities)
            for folder in (cfg.processed_folder, cfg.quarantine_folder):
                with self._step(f"creating folder {folder!r}"):
                    self._ensure_folder(mb, folder)
            with self._step(f"SELECT {cfg.folder!r}"):
                mb.folder.set(cfg.folder)
                self._uidvalidity = self._selected_uidvalidity(mb)
            # From here on an EXISTS answer means mail arrived after SELECT.
            mb.client.untagged_responses.pop("EXISTS", None)
        except BaseException:
            self._shutdown(mb)
            raise
        self._mb = mb
        self._skip_deleted = not ({"MOVE", "UIDPLUS"} & self.capabilities)
        log.info(
            "mailbox %s: connected to %s:%s over %s as %s (UIDVALIDITY %d, MOVE=%s, IDLE=%s)",
            cfg.name,
            cfg.host,
            cfg.port,
            self.transport,
            cfg.username,
            self._uidvalidity,
            "MOVE" in self.capabilities,
            "IDLE" in self.capabilities,
        )

    def close(self) -> None:
        """Log out (best effort); the next call would connect again."""
        mb, self._mb = self._mb, None
        if mb is None:
            return
        try:
            mb.logout()
        except Exception as exc:  # logging out must never fail the caller.
            log.debug("mailbox %s: logout failed: %s", self.config.name, exc)
            self._shutdown(mb)

    # -- the MailSource protocol -----------------------------------------------

    def uidvalidity(self) -> int:
        """UIDVALIDITY of the inbox folder as selected by this connection."""
        self._client()
        return self._uidvalidity

    def fetch(self, *, limit: int | None = None,
              max_bytes: int | None = None) -> Iterator[RawMessage]:
        """Exact bytes of each message in the folder, by ascending UID, not marked seen.

        UIDs are searched first; bodies are then fetched with ``BODY.PEEK[]`` in
        chunks bounded by count and size, so a large inbox is never held in
        memory at once. A message over ``max_bytes`` (by RFC822.SIZE) has only
        its header fetched. A message moved away meanwhile is skipped.
        """
        mb = self._client()
        client = mb.client
        with self._step("UID SEARCH"):
            # New-mail notices up to now are answered by this search.
            client.untagged_responses.pop("EXISTS", None)
            criteria = "UNDELETED" if self._skip_deleted else "ALL"
            typ, data = client.uid("SEARCH", criteria)
            self._check(typ, data, "UID SEARCH")
        uids = sorted(int(u) for u in b" ".join(d for d in data if d).split())
        if limit is not None:
            uids = uids[: max(0, limit)]
        uidvalidity = self._uidvalidity
        sizes = self._sizes(uids)
        for chunk in self._chunks(uids, sizes):
            big = {u for u in chunk if max_bytes is not None and sizes.get(u, 0) > max_bytes}
            bodies: dict[int, tuple[bytes, bytes | None]] = {}
            for part, item in ((sorted(set(chunk) - big), "BODY.PEEK[]"),
                               (sorted(big), "BODY.PEEK[HEADER]")):
                if not part:
                    continue
                with self._step("UID FETCH"):
                    typ, data = client.uid("FETCH", _uid_set(part), f"(UID {item})")
                    self._check(typ, data, "UID FETCH")
                bodies.update(_parse_fetch(data))
            for uid in chunk:
                _, raw = bodies.get(uid, (b"", None))
                if raw is None:
                    log.debug("mailbox %s: UID %d vanished before FETCH", self.config.name, uid)
                    continue
                yield RawMessage(str(uid), uidvalidity, raw,
                                 oversized=sizes[uid] if uid in big else None)

    def move(self, uid: str, folder: str) -> None:
        """Move message ``uid`` to ``folder``; never expunges any other message.

        With MOVE this is one atomic ``UID MOVE``. Without it: ``UID COPY``,
        ``UID STORE +FLAGS (\\Deleted)`` and ``UID EXPUNGE`` of this UID only
        (UIDPLUS). A server with neither keeps the copy flagged ``\\Deleted``
        for its own clients to expunge; this source then skips deleted mail.
        Moving a UID that is no longer in the folder does nothing.
        """
        self.move_many([uid], folder)

    def move_many(self, uids: list[str], folder: str) -> None:
        """:meth:`move` of several UIDs in one command each (a UID set, RFC 3501 9)."""
        for uid in uids:
            if not uid.isdigit():
                raise MailboxError(f"mailbox {self.config.name!r}: not an IMAP UID: {uid!r}")
        if not uids:
            return
        uid = ",".join(uids)
        mb = self._client()
        client = mb.client
        target = encode_folder(folder).decode("ascii")
        with self._step(f"moving UID {uid} to {folder!r}"):
            if "MOVE" in self.capabilities:
                typ, data = client.uid("MOVE", uid, target)
                self._check(typ, data, "UID MOVE")
                return
            typ, data = client.uid("COPY", uid, target)
            self._check(typ, data, "UID COPY")
            typ, data = client.uid("STORE", uid, "+FLAGS.SILENT", r"(\Deleted)")
            self._check(typ, data, "UID STORE")
            if "UIDPLUS" in self.capabilities:
                typ, data = client.uid("EXPUNGE", uid)
                self._check(typ, data, "UID EXPUNGE")
            else:
                log.warning(
                    "mailbox %s: server offers neither MOVE nor UIDPLUS; UID %s was copied "
                    "to %s and left flagged \\Deleted in %s",
                    self.config.name,
                    uid,
                    folder,
                    self.config.folder,
                )

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for new mail; True if the server reported some.

        With IDLE (allowed by ``config.idle`` and offered by the server) the
        server pushes ``EXISTS``; IDLE is re-issued every 28 minutes. Without
        it this sleeps ``min(timeout, poll_seconds)`` and returns False, so the
        caller should fetch after every wait. Setting the stop event ends the
        wait within about a second (returning False).
        """
        if self._stop.is_set():
            return False
        mb = self._client()
        if mb.client.untagged_responses.pop("EXISTS", None):
            # Mail arrived after the last search (reported during a MOVE, say).
            return True
        if not (self.config.idle and "IDLE" in self.capabilities):
            self._stop.wait(max(0.0, min(timeout, self.config.poll_seconds)))
            return False
        deadline = time.monotonic() + max(0.0, timeout)
        while not self._stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._idle_once(mb, min(remaining, IDLE_RENEW_SECONDS)):
                return True
        return False

    # -- helpers ---------------------------------------------------------------

    def _client(self) -> BaseMailBox:
        if self._mb is None:
            self.connect()
        assert self._mb is not None
        return self._mb

    def _open_transport(self) -> BaseMailBox:
        cfg = self.config
        host, port = cfg.host or "", cfg.port or (993 if cfg.scheme == "imaps" else 143)
        planned = plan_transport(cfg, None)
        mb: BaseMailBox
        with self._step(f"connecting to {host}:{port}"):
            if planned == "tls":
                mb = MailBox(host, port, timeout=IMAP_TIMEOUT_SECONDS, ssl_context=tls_context(cfg))
            elif planned == "starttls" and cfg.starttls == "require":
                mb = MailBoxStartTls(
                    host, port, timeout=IMAP_TIMEOUT_SECONDS, ssl_context=tls_context(cfg)
                )
            else:
                mb = MailBoxUnencrypted(host, port, timeout=IMAP_TIMEOUT_SECONDS)
        if planned == "plain" or cfg.starttls != "auto":
            self.transport = planned
            return mb
        # "auto": STARTTLS if the greeting offers it, plain only on loopback.
        try:
            offered = "STARTTLS" in mb.client.capabilities
            self.transport = plan_transport(cfg, offered)
            if self.transport == "starttls":
                with self._step("STARTTLS"):
                    typ, data = mb.client.starttls(tls_context(cfg))
                    self._check(typ, data, "STARTTLS")
        except BaseException:
            self._shutdown(mb)
            raise
        return mb

    def _login(self, mb: BaseMailBox, username: str, password: str) -> None:
        try:
            mb.login(username, password, initial_folder=None)
        except (imaplib.IMAP4.error, ImapToolsError, OSError, EOFError) as exc:
            # Not chained: nothing that saw the password travels on.
            raise MailboxError(self._describe(f"LOGIN as {username!r}", exc)) from None

    @staticmethod
    def _refresh_capabilities(mb: BaseMailBox) -> None:
        # imaplib keeps the pre-login list, which lacks MOVE on Dovecot, and
        # imap-tools would then fall back to an EXPUNGE of the whole mailbox.
        typ, data = mb.client.capability()
        if typ != "OK" or not data or not data[-1]:
            raise _Refused(f"CAPABILITY answered {typ} {data!r}")
        mb.client.capabilities = tuple(bytes(data[-1]).decode("ascii", "replace").upper().split())

    def _ensure_folder(self, mb: BaseMailBox, folder: str) -> None:
        if mb.folder.exists(folder):
            return
        try:
            mb.folder.create(folder)
        except ImapToolsError:
            # Another client may have created it meanwhile.
            if not mb.folder.exists(folder):
                raise
        log.info("mailbox %s: created folder %s", self.config.name, folder)

    @staticmethod
    def _selected_uidvalidity(mb: BaseMailBox) -> int:
        typ, data = mb.client.response("UIDVALIDITY")
        if data and data[-1]:
            return int(data[-1])
        status = mb.folder.status(None, ["UIDVALIDITY"])
        return int(status["UIDVALIDITY"])

    def _idle_once(self, mb: BaseMailBox, seconds: float) -> bool:
        """One IDLE command of at most ``seconds``, polled in short slices."""
        end = time.monotonic() + seconds
        woke = False
        with self._step("IDLE"):
            mb.idle.start()
            woke = bool(mb.client.untagged_responses.pop("EXISTS", None))
            while not woke and not self._stop.is_set():
                left = end - time.monotonic()
                if left <= 0:
                    break
                lines = mb.idle.poll(timeout=min(STOP_CHECK_SECONDS, left))
                woke = any(_EXISTS_RE.match(line) for line in lines)
            # Answers that came while ending IDLE are kept by imaplib as untagged.
            mb.idle.stop()
            woke = bool(mb.client.untagged_responses.pop("EXISTS", None)) or woke
        return woke

    def _sizes(self, uids: list[int]) -> dict[int, int]:
        """RFC822.SIZE of each message, by UID."""
        sizes: dict[int, int] = {}
        if not uids:
            return sizes
        client = self._client().client
        for i in range(0, len(uids), SIZE_CHUNK_UIDS):
            part = uids[i : i + SIZE_CHUNK_UIDS]
            with self._step("UID FETCH RFC822.SIZE"):
                typ, data = client.uid("FETCH", _uid_set(part), "(UID RFC822.SIZE)")
                self._check(typ, data, "UID FETCH RFC822.SIZE")
            for uid, (head, _) in _parse_fetch(data).items():
                m = _SIZE_RE.search(head)
                if m:
                    sizes[uid] = int(m.group(1))
        return sizes

    @staticmethod
    def _chunks(uids: list[int], sizes: dict[int, int]) -> Iterator[list[int]]:
        """``uids`` in groups whose bodies together stay near FETCH_CHUNK_BYTES."""
        chunk: list[int] = []
        total = 0
        for uid in uids:
            size = sizes.get(uid, 0)
            if chunk and (len(chunk) >= FETCH_CHUNK_MESSAGES or total + size > FETCH_CHUNK_BYTES):
                yield chunk
                chunk, total = [], 0
            chunk.append(uid)
            total += size
        if chunk:
            yield chunk

    @staticmethod
    def _check(typ: str, data: object, what: str) -> None:
        if typ != "OK":
            raise _Refused(f"{what} answered {typ}: {data!r}")

    def _describe(self, what: str, exc: BaseException) -> str:
        cfg = self.config
        text = f"mailbox {cfg.name!r} ({cfg.host}:{cfg.port}): {what} failed: {exc}"
        if self._password:
            text = text.replace(self._password, "***")
        return text

    @contextlib.contextmanager
    def _step(self, what: str) -> Iterator[None]:
        """Turn any IMAP, socket or TLS failure inside the block into MailboxError."""
        try:
            yield
        except MailboxError:
            raise
        except (imaplib.IMAP4.abort, OSError, EOFError) as exc:
            # The connection is gone or in an unknown state: start afresh next time.
            mb, self._mb = self._mb, None
            if mb is not None:
                self._shutdown(mb)
            raise MailboxError(self._describe(what, exc)) from exc
        except (_Refused, imaplib.IMAP4.error, ImapToolsError, ValueError) as exc:
            raise MailboxError(self._describe(what, exc)) from exc

    @staticmethod
    def _shutdown(mb: BaseMailBox) -> None:
        with contextlib.suppress(Exception):
            mb.client.shutdown()
