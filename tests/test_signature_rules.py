"""The signature rules of ``rules/signature.py`` that read facts alone: facts in, code out.

Each test builds :mod:`signing.status` values by hand (no PKI, no verifier)
and asks one rule object, and :func:`rules.signature.verdict_codes`, what the
facts raise. The end-to-end and ``signing`` suites check that the real
verifier's facts give the codes they always gave.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from rules import Case, Finding
from rules.signature import RULES, status_codes, timestamp_codes, verdict_codes
from signing.status import FileTimestamp, FormVerdict, SignatureStatus, SignedFile

RULE = {rule.code: rule for rule in RULES}
SIGNED = datetime(2026, 1, 5, tzinfo=UTC)

#: A signature every fact rule passes.
SOUND = SignatureStatus(
    field_name="Signature1", kind="pades", intact=True, valid=True, trusted=True, signer=None,
    signing_time=SIGNED, timestamp_present=True, timestamp_valid=True, timestamp_trusted=True,
    timestamp_time=SIGNED, modified_after=False, covered_bytes=1000,
    notes=("a note",),
)


def stamp(**facts: Any) -> FileTimestamp:
    values: dict[str, Any] = dict(
        source="tsd", index=0, time=SIGNED, imprint_matches=True, valid=True, trusted=True,
        tsa=None, qualification=None, notes=("stamp note",))
    values.update(facts)
    return FileTimestamp(**values)


def case(*signatures: SignatureStatus, timestamps: tuple[FileTimestamp, ...] = (),
         **changes: Any) -> Case:
    verdict = FormVerdict(signatures=signatures, signer=None, timestamps=timestamps)
    return replace(Case(workflow=None, form_present=True, verdict=verdict), **changes)


def found(code: str, judged: Case) -> list[Finding]:
    rule = RULE[code]
    assert rule.applies(judged)
    return list(rule.check(judged))


def test_a_sound_signature_raises_no_fact_code() -> None:
    assert status_codes(SOUND) == ()
    assert verdict_codes(FormVerdict(signatures=(SOUND,), signer=None)) == ()


# -- TS-INVALID, TS-UNTRUSTED ------------------------------------------------------------------


def test_a_present_time_stamp_that_is_not_valid_is_ts_invalid() -> None:
    broken = replace(SOUND, timestamp_valid=False, timestamp_trusted=False,
                     notes=("the time-stamp token is broken",))
    assert found("TS-INVALID", case(broken)) == [
        Finding("TS-INVALID", "the time-stamp token is broken")]
    # not TS-UNTRUSTED as well: an invalid token's TSA is not judged.
    assert found("TS-UNTRUSTED", case(broken)) == []


def test_no_time_stamp_is_not_ts_invalid() -> None:
    absent = replace(SOUND, timestamp_present=False, timestamp_valid=False,
                     timestamp_trusted=False, timestamp_time=None)
    assert found("TS-INVALID", case(absent)) == []
    assert found("TS-UNTRUSTED", case(absent)) == []


def test_a_valid_time_stamp_of_an_untrusted_tsa_is_ts_untrusted() -> None:
    untrusted = replace(SOUND, timestamp_trusted=False,
                        timestamp_trust_problem="NO_CERTIFICATE_CHAIN_FOUND")
    assert [f.code for f in found("TS-UNTRUSTED", case(untrusted))] == ["TS-UNTRUSTED"]
    assert found("TS-INVALID", case(untrusted)) == []


@pytest.mark.parametrize(("facts", "expected"), [
    ({"valid": False, "trusted": False}, "TS-INVALID"),
    ({"trusted": False, "trust_problem": "NO_CERTIFICATE_CHAIN_FOUND"}, "TS-UNTRUSTED"),
])
def test_a_time_stamp_over_the_whole_file_raises_its_code(facts: dict[str, Any],
                                                          expected: str) -> None:
    judged = case(SOUND, timestamps=(stamp(**facts),))
    assert found(expected, judged) == [Finding(expected, "stamp note")]
    other = ({"TS-INVALID", "TS-UNTRUSTED"} - {expected}).pop()
    assert found(other, judged) == []


# -- SIG-MODIFIED ----------------------------------------------------------------------------


def test_a_signature_modified_after_is_sig_modified_with_its_notes() -> None:
    modified = replace(SOUND, modified_after=True, notes=("changed after signing",))
    assert found("SIG-MODIFIED", case(SOUND, modified)) == [
        Finding("SIG-MODIFIED", "changed after signing")]


def test_values_differing_from_the_signed_revision_are_sig_modified_once() -> None:
    modified = replace(SOUND, modified_after=True)
    for judged in (case(SOUND, fields_changed_after_signing=True),
                   case(modified, fields_changed_after_signing=True)):
        assert found("SIG-MODIFIED", judged) == [
            Finding("SIG-MODIFIED", "form values differ from the signed revision")]


def test_an_unmodified_signature_is_not_sig_modified() -> None:
    assert found("SIG-MODIFIED", case(SOUND)) == []


# -- SIG-MISSING -----------------------------------------------------------------------------


def test_a_verdict_without_signatures_is_sig_missing_with_its_notes() -> None:
    judged = replace(case(), verdict=FormVerdict(
        signatures=(), signer=None, notes=("only document time-stamps found",)))
    assert found("SIG-MISSING", judged) == [
        Finding("SIG-MISSING", "only document time-stamps found")]
    assert found("SIG-MISSING", case(SOUND)) == []


# -- SIG-INVALID -----------------------------------------------------------------------------


@pytest.mark.parametrize("facts", [
    {"validated": False}, {"intact": False}, {"valid": False},
    {"signed_attributes_der": False}, {"covers_all": False},
], ids=lambda facts: next(iter(facts)))
def test_each_broken_fact_is_sig_invalid(facts: dict[str, bool]) -> None:
    broken = replace(SOUND, **facts, notes=("why",))
    assert found("SIG-INVALID", case(SOUND, broken)) == [Finding("SIG-INVALID", "why")]


def test_a_sound_signature_is_not_sig_invalid() -> None:
    assert found("SIG-INVALID", case(SOUND)) == []


# -- the signer's chain ----------------------------------------------------------------------

CHAIN = {"revoked": "SIG-CERT-REVOKED", "expired": "SIG-CERT-EXPIRED",
         "revocation-unknown": "SIG-REVOCATION-UNKNOWN", "untrusted": "SIG-UNTRUSTED"}


@pytest.mark.parametrize("problem", sorted(CHAIN))
def test_each_chain_problem_raises_its_code_alone(problem: str) -> None:
    sig = replace(SOUND, trusted=False, chain_problem=problem, notes=(problem,))
    for fact, code in CHAIN.items():
        expected = [Finding(code, problem)] if fact == problem else []
        assert found(code, case(sig)) == expected


def test_a_broken_signature_is_not_also_untrusted() -> None:
    sig = replace(SOUND, trusted=False, chain_problem="untrusted", intact=False)
    assert found("SIG-UNTRUSTED", case(sig)) == []
    assert [f.code for f in found("SIG-INVALID", case(sig))] == ["SIG-INVALID"]
    # a revoked certificate is said whatever else is wrong.
    revoked = replace(sig, chain_problem="revoked")
    assert [f.code for f in found("SIG-CERT-REVOKED", case(revoked))] == ["SIG-CERT-REVOKED"]


def test_a_trusted_chain_raises_no_chain_code() -> None:
    for code in CHAIN.values():
        assert found(code, case(SOUND)) == []


# -- what the pipeline records: the codes of the facts, whatever the policy --------------------


def test_verdict_codes_are_the_fact_rules_codes_of_every_signature_and_stamp() -> None:
    revoked = replace(SOUND, trusted=False, chain_problem="revoked")
    unsorted = replace(SOUND, signed_attributes_der=False, timestamp_valid=False)
    verdict = FormVerdict(signatures=(revoked, unsorted), signer=None,
                          timestamps=(stamp(trusted=False),))
    assert status_codes(revoked) == ("SIG-CERT-REVOKED",)
    assert status_codes(unsorted) == ("SIG-INVALID", "TS-INVALID")
    assert timestamp_codes(stamp(trusted=False)) == ("TS-UNTRUSTED",)
    assert verdict_codes(verdict) == ("SIG-CERT-REVOKED", "SIG-INVALID", "TS-INVALID",
                                      "TS-UNTRUSTED")
    # the policy's codes are not among them (no time-stamp here, yet no TS-MISSING).
    assert verdict_codes(FormVerdict(signatures=(replace(
        SOUND, timestamp_present=False, timestamp_valid=False, timestamp_trusted=False),),
        signer=None)) == ()


def test_a_signed_file_hands_its_whole_file_time_stamps_to_the_rules() -> None:
    broken = stamp(valid=False, trusted=False)
    signed = SignedFile(container="tsd", levels=(), timestamps=(broken,), content=b"%PDF",
                        content_type="pdf")
    assert signed.verdict.timestamps == (broken,)
    assert verdict_codes(signed.verdict) == ("SIG-MISSING", "TS-INVALID")
