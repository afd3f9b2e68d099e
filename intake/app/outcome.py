"""What became of one message, and the CSR report as stored on its application.

The names the router (:mod:`intake.app.decide`), steering and e-mail links share; kept apart so
that none of them imports another to learn them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Outcome:
    """What became of one message (stored on its ledger row)."""

    status: str  # "processed" (answered or recorded) or "ignored" (no answer owed)
    summary: str
    application_id: int | None = None


def csr_record(report: Any) -> dict[str, Any] | None:
    if report is None:
        return None
    return {
        "codes": list(report.codes),
        "notes": list(report.notes),
        "common_name": report.common_name,
        "organisation": report.organisation,
        "key_type": report.key_type,
        "public_key_sha256": report.public_key_sha256,
        "requested_sans": list(report.requested_sans),
    }
