"""The ``[signing]`` settings of a verifier, as plain values (intake/config.py builds them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from signing.trust.settings import TrustSettings


@dataclass(frozen=True)
class VerifierSettings:
    """The ``[signing]`` configuration a verifier needs, as plain values.

    The signature policy (``require_qualified``, ``require_qscd``,
    ``require_timestamp``, ``require_qualified_timestamp``, ``max_age_days``)
    is not here: it is applied by :mod:`rules.signature` to the facts the
    verifier returns, with each workflow's overrides.
    """

    trust_roots: tuple[Path, ...]
    """PEM/DER certificate files or directories of them: the only trust anchors."""

    trust: TrustSettings | None = None
    """The EU trusted lists (``[trust]``); ``None``: only ``trust_roots`` anchor chains."""

    validation_report: bool = True
    """Also make pyHanko's ETSI TS 119 102-2 report of each PAdES signature, from the status of
    the verdict's own validation (:mod:`signing.report`; no second validation pass)."""

    revocation: Literal["hard-fail", "soft-fail", "off"] = "soft-fail"
    """How to treat unknown revocation status: untrusted, accept with a note, or skip."""

    allow_fetching: bool = True
    """Fetch OCSP responses and CRLs named in certificates whose chain reaches an anchor."""

    fetch_timeout_seconds: float = 5.0
    """Connect-and-read limit of one OCSP or CRL request."""

    fetch_budget_seconds: float = 15.0
    """Total time the revocation requests of one document may take."""

    fetch_cache_seconds: float = 300.0
    """How long a fetched answer is reused (less when its nextUpdate comes sooner)."""

    max_pdf_bytes: int = 15 * 1024 * 1024
    """Inputs larger than this are refused unread."""

    timeout_seconds: float = 60.0
    """Upper bound on the verification of one document."""
