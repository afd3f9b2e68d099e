"""Rules that read the signature verdict (SIG-* and TS-* codes).

``signing`` judges the signature and time-stamp; each code it can give is a
rule object here, so that every code of SPEC section 3 has one place that
says what it means and when it applies.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from rules.base import Case, Finding


@dataclass(frozen=True)
class VerdictRule:
    code: str
    description: str

    def applies(self, case: Case) -> bool:
        # A signature is judged on a form that could be read, and on a signed
        # container that holds no form (its verdict is set without one).
        return case.verdict is not None and not case.form_error and not case.unopened

    def check(self, case: Case) -> Iterable[Finding]:
        # Belt and braces: whatever the diff analysis says, values that differ
        # from the signed revision are a change after signing.
        if self.code == "SIG-MODIFIED" and case.fields_changed_after_signing:
            yield Finding(self.code, "form values differ from the signed revision")
            return
        if self.code in case.verdict.codes:
            notes = []
            for sig in case.verdict.signatures:
                if self.code in sig.codes:
                    notes.extend(sig.notes)
            yield Finding(self.code, "; ".join(notes)[:500])


@dataclass(frozen=True)
class TooOld(VerdictRule):
    """SIG-TOO-OLD against the workflow's own ``max_age_days`` where it sets one.

    The verifier applies ``[signing] max_age_days``; a workflow that sets its
    own limit is judged here instead, from each signature's time-stamp time.
    """

    def check(self, case: Case) -> Iterable[Finding]:
        workflow = case.workflow
        limit = workflow.max_age_days if workflow is not None else None
        if workflow is None or limit is None or case.judged_at is None:
            yield from super().check(case)
            return
        for sig in case.verdict.signatures:
            stamped = sig.timestamp_time
            if stamped is not None and case.judged_at - stamped > timedelta(days=limit):
                yield Finding(self.code, f"time-stamp {stamped.isoformat()} is older than "
                                         f"{limit} days ({workflow.id})")
                return


RULES = (
    VerdictRule("SIG-MISSING", "The form carries an electronic signature."),
    VerdictRule("SIG-INVALID", "The signature is cryptographically sound."),
    VerdictRule("SIG-MODIFIED", "Nothing in the form changed after it was signed."),
    VerdictRule("SIG-UNTRUSTED", "The signer's certificate chains to a configured trust anchor."),
    VerdictRule("SIG-NOT-QUALIFIED", "The signer's certificate is qualified for e-signatures."),
    VerdictRule("SIG-CERT-EXPIRED", "The signer's certificate was valid when signing."),
    VerdictRule("SIG-CERT-REVOKED", "The signer's certificate was not revoked when signing."),
    VerdictRule("TS-MISSING", "The signature carries a signature time-stamp."),
    VerdictRule("TS-INVALID", "The time-stamp token is sound and matches the signature."),
    VerdictRule("TS-UNTRUSTED", "The time-stamping authority is trusted."),
    TooOld("SIG-TOO-OLD", "The form was signed recently enough for the procedure."),
)
