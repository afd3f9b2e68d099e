"""Files only pasts may read: the database, the state directory, maildirs, keys.

They hold every applicant's mail and personal codes, so pasts creates them
0600 (files) and 0700 (directories) whatever the umask, and warns at start,
naming the path, when an existing one is open to group or others.
"""

from __future__ import annotations

import logging
import os
import secrets
import stat
from pathlib import Path

from mailer.private import private_dir

__all__ = ["FILE_MODE", "exposed", "make_private", "private_file", "secret_key",
           "warn_if_exposed"]

log = logging.getLogger(__name__)

FILE_MODE = 0o600


def private_file(path: Path) -> Path:
    """Create ``path`` empty and 0600 if it does not exist (its directory 0700 if missing)."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    except FileExistsError:
        return path
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    return path


def make_private(path: Path) -> None:
    """chmod a file pasts has just written to 0600."""
    os.chmod(path, FILE_MODE)


def exposed(path: Path) -> bool:
    """Whether ``path`` exists and group or others have any access to it."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return False
    return bool(mode & (stat.S_IRWXG | stat.S_IRWXO))


def warn_if_exposed(path: Path, what: str) -> bool:
    """Log a warning naming ``path`` when others may read it; True if so."""
    if not exposed(path):
        return False
    mode = path.stat().st_mode
    fix = "700" if stat.S_ISDIR(mode) else "600"
    log.warning("%s %s is open to group or others (mode %s); it holds applicants' data: "
                "chmod %s %s", what, path, stat.filemode(mode), fix, path)
    return True


def secret_key(path: Path, size: int = 32) -> bytes:
    """The random key kept in ``path`` (0600), made at first use.

    Two processes starting at once agree: the file is created exclusively
    and written completely before it is renamed into place.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        data = b""
    if len(data) >= size:
        return data[:size]
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        os.write(fd, secrets.token_bytes(size))
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        # link() fails if another process has put its key in place first.
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return path.read_bytes()[:size]
