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


def _policy(case: Case, key: str, default: bool) -> bool:
    """The workflow's value of ``key``, else ``[signing]``'s, else ``default``."""
    value = getattr(case.workflow, key, None) if case.workflow is not None else None
    if value is None:
        value = getattr(case.signing, key, default) if case.signing is not None else default
    return bool(value)


def _overridden(case: Case, keys: tuple[str, ...]) -> bool:
    """Whether the workflow sets any of ``keys`` differently from what the verifier applied."""
    workflow = case.workflow
    if workflow is None or case.signing is None:
        return False
    return any(
        getattr(workflow, k, None) is not None
        and getattr(workflow, k) != getattr(case.signing, k, None)
        for k in keys
    ) or bool(getattr(workflow, "accept_eseals", False))


@dataclass(frozen=True)
class NotQualified(VerdictRule):
    """SIG-NOT-QUALIFIED under the workflow's policy (SPEC sections 3 and 8).

    The verifier applies ``[signing]`` and accepts no e-seals; a workflow that
    overrides ``require_qualified`` or ``require_qscd``, or accepts qualified
    e-seals, is judged here from each signature's qualification facts.
    """

    KEYS = ("require_qualified", "require_qscd")

    def check(self, case: Case) -> Iterable[Finding]:
        if not _overridden(case, self.KEYS):
            yield from super().check(case)
            return
        from signing.trust.qualification import signer_problems

        for sig in case.verdict.signatures:
            if "SIG-INVALID" in sig.codes:
                # A broken signature keeps the verifier's judgement.
                if self.code in sig.codes:
                    yield Finding(self.code, "; ".join(sig.notes)[:500])
                    return
                continue
            problems = signer_problems(
                getattr(sig, "qualification", None),
                require_qualified=_policy(case, "require_qualified", True),
                require_qscd=_policy(case, "require_qscd", True),
                accept_eseals=bool(getattr(case.workflow, "accept_eseals", False)),
            )
            if problems:
                yield Finding(self.code, "; ".join(problems)[:500])
                return


@dataclass(frozen=True)
class TimestampNotQualified(VerdictRule):
    """TS-NOT-QUALIFIED under the workflow's ``require_qualified_timestamp``."""

    KEYS = ("require_qualified_timestamp",)

    def check(self, case: Case) -> Iterable[Finding]:
        if case.workflow is None or case.signing is None or case.workflow.require_qualified_timestamp in (None, case.signing.require_qualified_timestamp):
            yield from super().check(case)
            return
        if not case.workflow.require_qualified_timestamp:
            return
        for sig in case.verdict.signatures:
            ts = getattr(sig, "timestamp_qualification", None)
            if ts is not None and not ts.qualified:
                yield Finding(self.code, "; ".join(ts.reasons)[:500])
                return


@dataclass(frozen=True)
class TimestampMissing(VerdictRule):
    """TS-MISSING under the workflow's ``require_timestamp``."""

    def check(self, case: Case) -> Iterable[Finding]:
        if case.workflow is None or case.signing is None or case.workflow.require_timestamp in (None, case.signing.require_timestamp):
            yield from super().check(case)
            return
        if not case.workflow.require_timestamp:
            return
        for sig in case.verdict.signatures:
            if not sig.timestamp_present:
                yield Finding(self.code, "the signature carries no signature time-stamp")
                return


RULES = (
    VerdictRule("SIG-MISSING", "The form carries an electronic signature."),
    VerdictRule("SIG-INVALID", "The signature is cryptographically sound."),
    VerdictRule("SIG-MODIFIED", "Nothing in the form changed after it was signed."),
    VerdictRule("SIG-UNTRUSTED", "The signer's certificate chains to a configured trust anchor."),
    NotQualified("SIG-NOT-QUALIFIED",
                 "The signature is qualified at the signing time (qualified certificate, QSCD)."),
    VerdictRule("SIG-CERT-EXPIRED", "The signer's certificate was valid when signing."),
    VerdictRule("SIG-CERT-REVOKED", "The signer's certificate was not revoked when signing."),
    VerdictRule("SIG-REVOCATION-UNKNOWN",
                "The signer's certificate's revocation status at the signing time is known."),
    TimestampMissing("TS-MISSING", "The signature carries a signature time-stamp."),
    VerdictRule("TS-INVALID", "The time-stamp token is sound and matches the signature."),
    VerdictRule("TS-UNTRUSTED", "The time-stamping authority is trusted."),
    TimestampNotQualified("TS-NOT-QUALIFIED",
                          "The time-stamp is from a qualified time-stamping service."),
    TooOld("SIG-TOO-OLD", "The form was signed recently enough for the procedure."),
)
