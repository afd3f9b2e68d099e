"""The ``[trust]`` settings, as plain values (no parser is imported to read them).

:mod:`intake.config` builds them; :mod:`signing.trust.trustlists` fetches and
reads the lists they name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path


@dataclass(frozen=True)
class TrustSettings:
    """The ``[trust]`` configuration, as plain values."""

    lotl: str
    """URL (``https://``) or file path of the EU List of Trusted Lists."""

    cache_dir: Path
    """Where verified lists and their state are kept (created with mode 0700)."""

    lotl_signers: tuple[Path, ...] = ()
    """PEM files of the certificates allowed to sign the LOTL (empty: the OJ-published set)."""

    max_age_hours: float = 48.0
    """A list last fetched and verified longer ago than this is stale."""

    territories: tuple[str, ...] = ()
    """Only these national lists are loaded (country codes; empty: every list)."""

    timeout_seconds: float = 20.0
    """Bound on each fetch (connect and read)."""

    max_list_bytes: int = 32 * 1024 * 1024
    """A list larger than this is refused unread."""

    @property
    def max_age(self) -> timedelta:
        return timedelta(hours=self.max_age_hours)

    @property
    def offline(self) -> bool:
        """The LOTL is a local file: national lists may then be files too."""
        return not self.lotl.startswith(("http://", "https://"))
