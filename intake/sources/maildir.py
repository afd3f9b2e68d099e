"""A local Maildir++ directory as a mail source (``maildir:PATH``).

Moved messages go to the ``.Processed``/``.Quarantine`` subfolders.
"""

from __future__ import annotations

import errno
import logging
import mailbox
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from intake.config import MailboxConfig
from intake.errors import MailboxError
from intake.private import private_dir
from intake.sources.base import STOP_CHECK_SECONDS, RawMessage

log = logging.getLogger(__name__)

#: How much of an oversized message's start is read to find its header.
HEADER_READ_BYTES = 256 * 1024


def _read_header(path: Path) -> bytes:
    """The header block of a message file (up to the first empty line), bounded."""
    with path.open("rb") as handle:
        start = handle.read(HEADER_READ_BYTES)
    end = re.search(rb"\r?\n\r?\n", start)
    return start[: end.end()] if end else start


class MaildirSource:
    """A local Maildir++ directory (``maildir:PATH``); see the module docstring.

    The UID of a message is its Maildir key (the file name up to the ``:2,``
    info). ``move`` renames the file into ``.<folder>/new`` or ``.<folder>/cur``,
    which is atomic and keeps the bytes. Only if the subfolder is on another
    file system (a symlink) is the message copied and then removed; a crash
    between those two steps leaves a duplicate, which the ledger recognises by
    Message-ID and sha256 of the raw bytes.
    """

    def __init__(self, config: MailboxConfig, *, stop_event: threading.Event | None = None):
        if config.scheme != "maildir" or config.path is None:
            raise MailboxError(f"mailbox {config.name!r}: not a maildir: URL: {config.url}")
        self.config = config
        self.root: Path = config.path
        self._stop = stop_event or threading.Event()
        self._md: mailbox.Maildir | None = None
        self._known: dict[str, Path] = {}

    def set_stop_event(self, event: threading.Event) -> None:
        """Use ``event`` (set on SIGTERM) to end a ``wait`` early."""
        self._stop = event

    def __enter__(self) -> MaildirSource:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def connect(self) -> None:
        """Open the Maildir, creating ``new``, ``cur`` and ``tmp`` if missing."""
        if self._md is None:
            try:
                # Missing parents are made 0700; mailbox.Maildir makes its own 0700.
                private_dir(self.root.parent)
                self._md = mailbox.Maildir(str(self.root), factory=None, create=True)
            except OSError as exc:
                raise self._error(f"opening {self.root}", exc) from exc

    def close(self) -> None:
        self._md = None

    def uidvalidity(self) -> int:
        return 0

    def fetch(self, *, limit: int | None = None,
              max_bytes: int | None = None) -> Iterator[RawMessage]:
        """Exact file bytes of each message, oldest first (file mtime, then key).

        A file over ``max_bytes`` has only its header read.
        """
        entries = self._entries()
        if limit is not None:
            entries = entries[: max(0, limit)]
        # Where each fetched message is, so that moving it does not list the
        # whole inbox again (a backlog of n would cost n listings of n files).
        self._known = {key: path for _, key, path in entries}
        for _, key, path in entries:
            try:
                size = path.stat().st_size
                if max_bytes is not None and size > max_bytes:
                    yield RawMessage(key, 0, _read_header(path), oversized=size)
                    continue
                raw = path.read_bytes()
            except FileNotFoundError:
                # Moved or flagged (renamed) by someone else meanwhile.
                continue
            except OSError as exc:
                raise self._error(f"reading {path}", exc) from exc
            yield RawMessage(key, 0, raw)

    def move(self, uid: str, folder: str) -> None:
        """Move message ``uid`` into the Maildir++ subfolder ``.folder``; a missing uid is a no-op."""
        if not folder or "/" in folder or folder.startswith(".") or folder != folder.strip():
            raise MailboxError(f"mailbox {self.config.name!r}: bad folder name {folder!r}")
        known = self._known.pop(uid, None)
        source = known if known is not None and known.exists() else next(
            (p for _, key, p in self._entries() if key == uid), None)
        if source is None:
            log.debug("mailbox %s: %s is no longer in the inbox", self.config.name, uid)
            return
        target_dir = self._folder(folder) / source.parent.name
        target = target_dir / source.name
        try:
            try:
                os.rename(source, target)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                # Another file system: write a copy through tmp/, then remove the original.
                tmp = self._folder(folder) / "tmp" / source.name
                shutil.copyfile(source, tmp)
                os.rename(tmp, target)
                os.unlink(source)
        except FileNotFoundError:
            log.debug("mailbox %s: %s vanished while moving", self.config.name, uid)
        except OSError as exc:
            raise self._error(f"moving {uid} to {folder!r}", exc) from exc

    def move_many(self, uids: list[str], folder: str) -> None:
        """:meth:`move` of each of ``uids`` (a rename each; nothing to batch on disk)."""
        for uid in uids:
            self.move(uid, folder)

    def wait(self, timeout: float) -> bool:
        """Sleep up to ``min(timeout, poll_seconds)``; True as soon as a new message appears."""
        if self._stop.is_set():
            return False
        known = {key for _, key, _ in self._entries()}
        end = time.monotonic() + max(0.0, min(timeout, self.config.poll_seconds))
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return False
            if self._stop.wait(min(STOP_CHECK_SECONDS, left)):
                return False
            if {key for _, key, _ in self._entries()} - known:
                return True

    def _maildir(self) -> mailbox.Maildir:
        self.connect()
        assert self._md is not None
        return self._md

    def _entries(self) -> list[tuple[float, str, Path]]:
        """(mtime, key, path) of every message in new/ and cur/, oldest first."""
        colon = self._maildir().colon
        found: list[tuple[float, str, Path]] = []
        for sub in ("new", "cur"):
            directory = self.root / sub
            try:
                names = os.listdir(directory)
            except OSError as exc:
                raise self._error(f"listing {directory}", exc) from exc
            for name in names:
                if name.startswith("."):
                    continue
                path = directory / name
                try:
                    mtime = path.stat().st_mtime
                except FileNotFoundError:
                    continue
                found.append((mtime, name.split(colon)[0], path))
        found.sort(key=lambda e: (e[0], e[1]))
        return found

    def _folder(self, name: str) -> Path:
        """The Maildir++ subfolder ``.name``, created (with tmp/new/cur) if missing."""
        md = self._maildir()
        try:
            if name not in md.list_folders():
                md.add_folder(name)
                # mailbox.Maildir makes the folder 0700 but its marker file 0644.
                marker = self.root / f".{name}" / "maildirfolder"
                if marker.exists():
                    os.chmod(marker, 0o600)
        except OSError as exc:
            raise self._error(f"creating folder {name!r}", exc) from exc
        return self.root / f".{name}"

    def _error(self, what: str, exc: BaseException) -> MailboxError:
        return MailboxError(f"mailbox {self.config.name!r} ({self.root}): {what} failed: {exc}")
