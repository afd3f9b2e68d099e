"""Directories only pasts may read: the replies it writes carry personal links and codes.

``intake.private`` builds its private files and keys on :func:`private_dir`.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DIR_MODE", "private_dir"]

DIR_MODE = 0o700


def private_dir(path: Path) -> Path:
    """Create ``path`` and any missing parents 0700; an existing directory is left as it is."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        if p.parent == p:
            break
        p = p.parent
    for d in reversed(missing):
        try:
            os.mkdir(d, DIR_MODE)
        except FileExistsError:
            continue
        # mkdir's mode is filtered by the umask; the chmod makes it exact.
        os.chmod(d, DIR_MODE)
    return path
