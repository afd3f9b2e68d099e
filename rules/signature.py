"""Rules that read the signature verdict (SIG-* and TS-* codes).

``signing`` returns facts about each signature (:mod:`signing.status`), never a
code. Every SIG-*/TS-* code of SPEC section 3 is computed here, by one rule
object each: the :class:`FactRule` ones from the facts alone (``SIG-MISSING``,
``SIG-INVALID``, ``SIG-MODIFIED``, the chain's ``SIG-UNTRUSTED``,
``SIG-CERT-*``, ``SIG-REVOCATION-UNKNOWN``, ``TS-INVALID``, ``TS-UNTRUSTED``),
the :class:`PolicyRule` ones (``SIG-NOT-QUALIFIED``, ``TS-MISSING``,
``TS-NOT-QUALIFIED``, ``SIG-TOO-OLD``) from the facts under the workflow's
:class:`Policy` (its overrides, else ``[signing]``), so that every code has one
place that says what it means and when it applies.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from rules.base import Case, Finding

if TYPE_CHECKING:
    from signing.status import FileTimestamp, FormVerdict, Qualification, SignatureStatus


@dataclass(frozen=True)
class SignatureRule:
    """What every SIG-*/TS-* rule shares: it judges the case's signature verdict."""

    code: str
    description: str

    def applies(self, case: Case) -> bool:
        # A signature is judged on a form that could be read, and on a signed
        # container that holds no form (its verdict is set without one).
        return case.verdict is not None and not case.form_error and not case.unopened

    def check(self, case: Case) -> Iterable[Finding]:
        raise NotImplementedError


@dataclass(frozen=True)
class FactRule(SignatureRule):
    """A code computed here from each signature's facts alone, whatever the policy.

    The finding's detail is the notes of the signatures (and of the time-stamps over
    the whole file) that raise it.
    """

    def check(self, case: Case) -> Iterable[Finding]:
        notes = None if case.verdict is None else raised_notes(self, case.verdict)
        if notes is not None:
            yield Finding(self.code, "; ".join(notes)[:500])

    def raised_by(self, sig: SignatureStatus) -> bool:
        """Whether the facts of one signature raise this code."""
        return False

    def raised_by_timestamp(self, stamp: FileTimestamp) -> bool:
        """Whether one time-stamp over the whole file raises this code."""
        return False

    def raised_by_verdict(self, verdict: FormVerdict) -> bool:
        """Whether the verdict as a whole raises it (beside its signatures)."""
        return False


def raised_notes(rule: FactRule, verdict: FormVerdict) -> list[str] | None:
    """The notes of what raises ``rule``'s code in ``verdict``; ``None``: nothing does."""
    notes: list[str] = []
    raised = rule.raised_by_verdict(verdict)
    for sig in verdict.signatures:
        if rule.raised_by(sig):
            raised = True
            notes.extend(sig.notes)
    for stamp in verdict.timestamps:
        if rule.raised_by_timestamp(stamp):
            raised = True
            notes.extend(stamp.notes)
    return notes if raised else None


@dataclass(frozen=True)
class TimestampInvalid(FactRule):
    """TS-INVALID: a time-stamp is there (``timestamp_present``) but is broken or does not
    match (not ``timestamp_valid``); a time-stamp over the whole file that is not ``valid``."""

    def raised_by(self, sig: SignatureStatus) -> bool:
        return sig.validated and sig.timestamp_present and not sig.timestamp_valid

    def raised_by_timestamp(self, stamp: FileTimestamp) -> bool:
        return not stamp.valid


@dataclass(frozen=True)
class TimestampUntrusted(FactRule):
    """TS-UNTRUSTED: a valid time-stamp whose TSA's chain reaches no anchor
    (``timestamp_trusted`` false, ``timestamp_trust_problem`` says why)."""

    def raised_by(self, sig: SignatureStatus) -> bool:
        return sig.validated and sig.timestamp_valid and not sig.timestamp_trusted

    def raised_by_timestamp(self, stamp: FileTimestamp) -> bool:
        return stamp.valid and not stamp.trusted


@dataclass(frozen=True)
class Missing(FactRule):
    """SIG-MISSING: the verdict holds no signature (a PDF with none, or only document
    time-stamps; an ASiC-E container without one; a ``.tsd`` over an unsigned file)."""

    def check(self, case: Case) -> Iterable[Finding]:
        if case.verdict is not None and self.raised_by_verdict(case.verdict):
            yield Finding(self.code, "; ".join(case.verdict.notes)[:500])

    def raised_by_verdict(self, verdict: FormVerdict) -> bool:
        return not verdict.signatures


@dataclass(frozen=True)
class Invalid(FactRule):
    """SIG-INVALID: the signature could not be validated at all (``validated`` false), its
    digest does not match (``intact``), the signature value does not verify (``valid``),
    its signed attributes are not DER (``signed_attributes_der``), or it does not cover
    all it must (``covers_all``: a whole PDF revision, every file of a container)."""

    def raised_by(self, sig: SignatureStatus) -> bool:
        return not (sig.validated and sig.intact and sig.valid
                    and sig.signed_attributes_der and sig.covers_all)


@dataclass(frozen=True)
class ChainRule(FactRule):
    """A code for one outcome of the signer's chain (``chain_problem``): SIG-CERT-REVOKED
    (``revoked``), SIG-CERT-EXPIRED (``expired``), SIG-REVOCATION-UNKNOWN
    (``revocation-unknown``), SIG-UNTRUSTED (``untrusted``). Whether a missing revocation
    status fails the chain is the verifier's setting (``signing.revocation``)."""

    problem: str

    def raised_by(self, sig: SignatureStatus) -> bool:
        return sig.chain_problem == self.problem


@dataclass(frozen=True)
class Untrusted(ChainRule):
    """SIG-UNTRUSTED: the chain of a signature that is otherwise sound (``intact``,
    ``valid``) reaches no configured anchor; a broken signature is only SIG-INVALID."""

    def raised_by(self, sig: SignatureStatus) -> bool:
        return super().raised_by(sig) and sig.intact and sig.valid


@dataclass(frozen=True)
class Modified(FactRule):
    """SIG-MODIFIED: a later revision changed the document after a signature
    (``modified_after``, pyHanko's diff analysis), or the form's values differ from
    the signed revision's (``Case.fields_changed_after_signing``, read by intake).

    The one judgement of a change after signing: either fact raises it, once.
    """

    def check(self, case: Case) -> Iterable[Finding]:
        if case.fields_changed_after_signing:
            yield Finding(self.code, "form values differ from the signed revision")
            return
        yield from super().check(case)

    def raised_by(self, sig: SignatureStatus) -> bool:
        return sig.validated and sig.modified_after


@dataclass(frozen=True)
class Policy:
    """The signature policy one case is judged under (SPEC sections 3 and 8)."""

    require_qualified: bool = True
    """SIG-NOT-QUALIFIED unless the signer's certificate is qualified (for e-signatures)."""

    require_qscd: bool = True
    """Also SIG-NOT-QUALIFIED when the signer's key is not on a QSCD."""

    accept_eseals: bool = False
    """A qualified e-seal (an organisation signing) counts as a qualified signature."""

    require_timestamp: bool = True
    """TS-MISSING when a signature carries no signature time-stamp."""

    require_qualified_timestamp: bool = True
    """TS-NOT-QUALIFIED unless the time-stamp's TSA is a qualified service."""

    max_age_days: int = 90
    """SIG-TOO-OLD when the time-stamp is older than this many days at judgement."""


def policy_of(case: Case) -> Policy:
    """The workflow's value of each policy key, else ``[signing]``'s, else the default."""
    defaults = Policy()
    base = case.signing
    workflow = case.workflow

    def pick(key: str) -> object:
        value = getattr(workflow, key, None) if workflow is not None else None
        if value is None and base is not None:
            value = getattr(base, key, None)
        return getattr(defaults, key) if value is None else value

    return Policy(
        require_qualified=bool(pick("require_qualified")),
        require_qscd=bool(pick("require_qscd")),
        accept_eseals=bool(getattr(workflow, "accept_eseals", False)),
        require_timestamp=bool(pick("require_timestamp")),
        require_qualified_timestamp=bool(pick("require_qualified_timestamp")),
        max_age_days=_days(pick("max_age_days"), defaults.max_age_days),
    )


def _days(value: object, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def signer_problems(q: Qualification | None, policy: Policy) -> list[str]:
    """Why a signer with qualification ``q`` is no qualified signature under ``policy``."""
    if not policy.require_qualified:
        return []
    if q is None:
        return ["the signer's certificate cannot be judged"]
    if q.stale_list is not None:
        return [f"{q.stale_list}; qualified status cannot be established"]
    if not q.qualified:
        return ["the signer's certificate is not a qualified certificate"
                + (f" ({'; '.join(q.reasons)})" if q.reasons else "")]
    allowed = ("esign", "eseal") if policy.accept_eseals else ("esign",)
    problems = []
    if q.qc_type not in allowed:
        what = {"eseal": "electronic seals", "web": "website authentication"}.get(
            q.qc_type or "", str(q.qc_type))
        problems.append(f"the certificate is qualified for {what}, not for e-signatures"
                        + ("" if policy.accept_eseals else " (this procedure accepts no e-seals)"))
    if policy.require_qscd and not q.qscd:
        problems.append("the signer's key is not on a qualified signature creation device")
    return problems


@dataclass(frozen=True)
class PolicyRule(SignatureRule):
    """A code computed here from each signature's facts and the case's :class:`Policy`.

    A signature that could not be validated at all (``validated`` false) is only
    ``SIG-INVALID``; no policy applies to it.
    """

    def check(self, case: Case) -> Iterable[Finding]:
        policy = policy_of(case)
        reasons: list[str] = []
        for sig in case.verdict.signatures if case.verdict is not None else ():
            if sig.validated:
                reasons.extend(self.reasons(sig, policy, case))
        if reasons:
            yield Finding(self.code, "; ".join(dict.fromkeys(reasons))[:500])

    def reasons(self, sig: SignatureStatus, policy: Policy, case: Case) -> Iterator[str]:
        """Why ``sig`` raises this code under ``policy`` (nothing: it does not)."""
        raise NotImplementedError


@dataclass(frozen=True)
class NotQualified(PolicyRule):
    """SIG-NOT-QUALIFIED: qualified certificate (for e-signatures, or e-seals where the
    workflow accepts them) and QSCD, from ``qualification`` (SPEC sections 3 and 8)."""

    def reasons(self, sig: SignatureStatus, policy: Policy, case: Case) -> Iterator[str]:
        yield from signer_problems(sig.qualification, policy)


@dataclass(frozen=True)
class TimestampMissing(PolicyRule):
    """TS-MISSING: no signature time-stamp (``timestamp_present``) where one is required."""

    def reasons(self, sig: SignatureStatus, policy: Policy, case: Case) -> Iterator[str]:
        if policy.require_timestamp and not sig.timestamp_present:
            yield "the signature carries no signature time-stamp"


@dataclass(frozen=True)
class TimestampNotQualified(PolicyRule):
    """TS-NOT-QUALIFIED: a valid, trusted time-stamp whose TSA is no qualified service
    (``timestamp_qualification``) where a qualified one is required."""

    def reasons(self, sig: SignatureStatus, policy: Policy, case: Case) -> Iterator[str]:
        ts = sig.timestamp_qualification
        if policy.require_qualified_timestamp and ts is not None and not ts.qualified:
            yield from ts.reasons or ("the time-stamp is not from a qualified service",)


@dataclass(frozen=True)
class TooOld(PolicyRule):
    """SIG-TOO-OLD: a valid time-stamp (``timestamp_time``) older than ``max_age_days``
    at the time the case is judged (``Case.judged_at``; not judged without it)."""

    def reasons(self, sig: SignatureStatus, policy: Policy, case: Case) -> Iterator[str]:
        stamped = sig.timestamp_time
        if (case.judged_at is None or stamped is None or not sig.timestamp_valid
                or case.judged_at - stamped <= timedelta(days=policy.max_age_days)):
            return
        where = f" ({case.workflow.id})" if case.workflow is not None else ""
        yield (f"the time-stamp {stamped.isoformat()} is older than "
               f"{policy.max_age_days} days{where}")


def policy_codes(case: Case) -> tuple[tuple[str, ...], ...]:
    """For each signature of ``case.verdict``, in order, the policy codes it raises (sorted):
    what staff see beside the verifier's own codes of that signature (``pasts show``)."""
    rules = [rule for rule in RULES if isinstance(rule, PolicyRule)]
    if case.verdict is None or not all(rule.applies(case) for rule in rules):
        return tuple(() for _ in (case.verdict.signatures if case.verdict is not None else ()))
    policy = policy_of(case)
    return tuple(
        tuple(sorted(rule.code for rule in rules
                     if sig.validated
                     and next(iter(rule.reasons(sig, policy, case)), None) is not None))
        for sig in case.verdict.signatures
    )


RULES = (
    Missing("SIG-MISSING", "The form carries an electronic signature."),
    Invalid("SIG-INVALID", "The signature is cryptographically sound."),
    Modified("SIG-MODIFIED", "Nothing in the form changed after it was signed."),
    Untrusted("SIG-UNTRUSTED", "The signer's certificate chains to a configured trust anchor.",
              "untrusted"),
    NotQualified("SIG-NOT-QUALIFIED",
                 "The signature is qualified at the signing time (qualified certificate, QSCD)."),
    ChainRule("SIG-CERT-EXPIRED", "The signer's certificate was valid when signing.", "expired"),
    ChainRule("SIG-CERT-REVOKED", "The signer's certificate was not revoked when signing.",
              "revoked"),
    ChainRule("SIG-REVOCATION-UNKNOWN",
              "The signer's certificate's revocation status at the signing time is known.",
              "revocation-unknown"),
    TimestampMissing("TS-MISSING", "The signature carries a signature time-stamp."),
    TimestampInvalid("TS-INVALID", "The time-stamp token is sound and matches the signature."),
    TimestampUntrusted("TS-UNTRUSTED", "The time-stamping authority is trusted."),
    TimestampNotQualified("TS-NOT-QUALIFIED",
                          "The time-stamp is from a qualified time-stamping service."),
    TooOld("SIG-TOO-OLD", "The form was signed recently enough for the procedure."),
)

#: The rules that read facts alone, whatever the policy.
FACT_RULES: tuple[FactRule, ...] = tuple(rule for rule in RULES if isinstance(rule, FactRule))


def status_codes(sig: SignatureStatus) -> tuple[str, ...]:
    """The codes one signature's facts raise, whatever the policy (sorted)."""
    return tuple(sorted(rule.code for rule in FACT_RULES if rule.raised_by(sig)))


def timestamp_codes(stamp: FileTimestamp) -> tuple[str, ...]:
    """The codes one time-stamp over a whole file raises (sorted)."""
    return tuple(sorted(rule.code for rule in FACT_RULES if rule.raised_by_timestamp(stamp)))


def verdict_codes(verdict: FormVerdict) -> tuple[str, ...]:
    """The codes a verdict's facts raise, whatever the policy (sorted): its signatures',
    its time-stamps over the whole file, and ``SIG-MISSING`` without a signature. What
    the pipeline records of a signature it does not judge (a mail's own S/MIME) and
    what it records beside the policy's codes (:func:`policy_codes`)."""
    return tuple(sorted(rule.code for rule in FACT_RULES
                        if raised_notes(rule, verdict) is not None))
