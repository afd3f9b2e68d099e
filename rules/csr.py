"""Rules that read the CSR report (CSR-* codes)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from rules.base import Case, Finding


@dataclass(frozen=True)
class CsrRule:
    code: str
    description: str

    def applies(self, case: Case) -> bool:
        return (
            case.workflow is not None and "csr" in case.workflow.requires and not case.unopened
        )

    def check(self, case: Case) -> Iterable[Finding]:
        codes = ("CSR-MISSING",) if case.csr is None else case.csr.codes
        if self.code in codes:
            notes = () if case.csr is None else case.csr.notes
            yield Finding(self.code, "; ".join(notes)[:500])


RULES = (
    CsrRule("CSR-MISSING", "A certificate signing request is attached."),
    CsrRule("CSR-INVALID", "The CSR parses and its self-signature verifies."),
    CsrRule("CSR-KEY-WEAK", "The CSR's key meets the key policy."),
    CsrRule("CSR-SUBJECT-MISMATCH", "The CSR's subject matches the form."),
)
