"""The rules themselves (``rules/``): every rule object, ``judge()``, and registry-rule selection.

Rules judge plain records, so these tests build :class:`rules.Case` values by
hand, with the real verdict and CSR report types of ``signing``.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from intake.config import default_workflows
from rules import Case, Finding, OrganisationRecord, all_rules, judge
from rules.workflow import WorkflowConfig
from signing.csr import CsrReport
from signing.status import FormVerdict, SignatureStatus
from signing.trust.qualification import Qualification, TimestampQualification
from tests.shared import SPEC

WORKFLOWS = {w.id: w for w in default_workflows()}
EA = WORKFLOWS["eaddress-production"]
API = WORKFLOWS["api-access"]
SP = WORKFLOWS["service-publication"]

SIGNER = "PNOLV-010190-12345"
REG_NO = "40003123456"

EA_FIELDS = {
    "form_id": EA.id, "org_name": "SIA Ērgļu Māja", "org_reg_no": REG_NO,
    "contact_name": "Jānis Bērziņš", "contact_email": "janis@ergli.example",
    "contact_phone": "+371 2000 0000", "solution_name": "Perché sì — Ēdoc 2.1",
    "test_env_completed": "yes", "csr_common_name": "ergli-connector.example.lv",
}
SP_FIELDS = {
    "form_id": SP.id, "org_name": "SIA Ērgļu Māja", "org_reg_no": REG_NO,
    "service_name": "Būvatļauju pārbaude",
    "service_description": "Pārbauda būvatļaujas statusu pēc kadastra numura — perché sì.",
    "department": "Digitālo pakalpojumu nodaļa", "contact_email": "ilze@ergli.example",
    "privacy_url": "https://ergli.example/privatums",
}
API_FIELDS = {
    "form_id": API.id, "org_name": "SIA Ērgļu Māja", "org_reg_no": REG_NO,
    "contact_name": "Jānis Bērziņš", "contact_email": "janis@ergli.example",
    "data_provider": "VID", "data_provider_email": "api@vid.example",
    "apis": "lursoft, vid-status", "csr_common_name": "ergli-api.example.lv",
}
ORGANISATION = OrganisationRecord(reg_no=REG_NO, name="SIA Ērgļu Māja", test_env_completed=True,
                                  agreement_received=True, representatives=(SIGNER,))


#: The policy's codes: signing gives the facts, the rules compute these.
POLICY_CODES = {"SIG-NOT-QUALIFIED", "TS-MISSING", "TS-NOT-QUALIFIED", "SIG-TOO-OLD"}
#: When the hand-built cases are judged.
JUDGED_AT = datetime(2026, 1, 6, tzinfo=UTC)
QUALIFIED = Qualification(source="trust-roots", qualified=True, qc_type="esign", qscd=True)
NOT_QUALIFIED = Qualification(source="trust-roots", qualified=False, qc_type=None, qscd=False,
                              reasons=("no QcCompliance",))
QTST = TimestampQualification(True, "trust-roots")
NO_QTST = TimestampQualification(False, "none", reasons=("the TSA is on no trusted list",))


def signature(*codes: str, notes: tuple[str, ...] = ()) -> SignatureStatus:
    """One PAdES signature status whose facts raise ``codes`` (the policy's from facts)."""
    stamped = datetime(2025, 1, 5, tzinfo=UTC) if "SIG-TOO-OLD" in codes else \
        datetime(2026, 1, 5, tzinfo=UTC)
    given = tuple(sorted(set(codes) - POLICY_CODES))
    chain = {"SIG-CERT-REVOKED": "revoked", "SIG-CERT-EXPIRED": "expired",
             "SIG-REVOCATION-UNKNOWN": "revocation-unknown", "SIG-UNTRUSTED": "untrusted"}
    problems = [chain[code] for code in codes if code in chain]
    return SignatureStatus(
        field_name="Signature1", kind="pades", intact="SIG-INVALID" not in codes,
        valid="SIG-INVALID" not in codes, trusted=not codes, signer=None,
        signing_time=datetime(2026, 1, 5, tzinfo=UTC), timestamp_present="TS-MISSING" not in codes,
        timestamp_valid="TS-INVALID" not in codes, timestamp_trusted="TS-UNTRUSTED" not in codes,
        timestamp_time=stamped, modified_after="SIG-MODIFIED" in codes,
        covered_bytes=1000, notes=notes or tuple(f"{c}!" for c in given),
        qualification=NOT_QUALIFIED if "SIG-NOT-QUALIFIED" in codes else QUALIFIED,
        timestamp_qualification=NO_QTST if "TS-NOT-QUALIFIED" in codes else QTST,
        chain_problem=problems[0] if problems else None,
    )


def verdict(*codes: str) -> FormVerdict:
    if codes == ("SIG-MISSING",):
        return FormVerdict(signatures=(), signer=None)
    return FormVerdict(signatures=(signature(*codes),), signer=None)


def csr_report(*codes: str) -> CsrReport:
    return CsrReport(codes=tuple(sorted(codes)), notes=tuple(f"{c} note" for c in codes),
                     common_name=EA_FIELDS["csr_common_name"], organisation=EA_FIELDS["org_name"],
                     key_type="RSA-2048", public_key_sha256="00" * 32, requested_sans=(),
                     requested_extensions=())


def good(wf: WorkflowConfig = EA, **changes: Any) -> Case:
    """A case that passes every rule of ``wf``; ``changes`` replace Case fields."""
    fields = {EA.id: EA_FIELDS, SP.id: SP_FIELDS, API.id: API_FIELDS}[wf.id]
    case = Case(
        workflow=wf, form_present=True, fields=dict(fields), verdict=verdict(),
        csr=csr_report() if "csr" in wf.requires else None, signer_code=SIGNER,
        organisation=ORGANISATION, judged_at=JUDGED_AT,
    )
    return replace(case, **changes)


def with_fields(case: Case, **values: str) -> Case:
    return replace(case, fields={**case.fields, **values})


def codes(case: Case) -> tuple[str, ...]:
    return judge(case).codes


# -- the catalogue ---------------------------------------------------------------------


def spec_codes() -> set[str]:
    text = SPEC.read_text(encoding="utf-8")
    section = text.split("## 3. Rule codes", 1)[1].split("\n## ", 1)[0]
    return {m.split(":", 1)[0] for m in re.findall(r"^\| `([A-Z:<>a-z-]+)` \|", section, re.M)}


def test_there_is_one_rule_per_spec_code() -> None:
    expected = spec_codes()
    assert len(expected) == 26
    assert set(all_rules()) == expected


@pytest.mark.parametrize("code", sorted(all_rules()))
def test_every_rule_has_its_code_and_a_description(code: str) -> None:
    rule = all_rules()[code]
    assert rule.code == code
    assert rule.description.strip() and "\n" not in rule.description


# -- each rule: a case that triggers it, and one that does not ---------------------------

#: code -> (a case that triggers it, the exact finding codes the rule gives).
TRIGGERS: dict[str, tuple[Case, tuple[str, ...]]] = {
    "FORM-MISSING": (good(form_present=False, fields={}, verdict=None), ("FORM-MISSING",)),
    "FORM-UNREADABLE": (good(form_error="the PDF is encrypted", fields={}, verdict=None),
                        ("FORM-UNREADABLE",)),
    "FORM-UNKNOWN": (good(workflow=None, fields={"form_id": "no-such-form"}),
                     ("FORM-UNKNOWN",)),
    "FORM-FIELD-MISSING": (with_fields(good(), solution_name="  ", contact_name=""),
                           ("FORM-FIELD-MISSING:contact_name",
                            "FORM-FIELD-MISSING:solution_name")),
    "FORM-FIELD-INVALID": (with_fields(good(), org_reg_no="4000312345X",
                                       contact_email="janis at ergli"),
                           ("FORM-FIELD-INVALID:contact_email", "FORM-FIELD-INVALID:org_reg_no")),
    "DUPLICATE": (good(duplicate_of="EA-2026-000007"), ("DUPLICATE",)),
    "CSR-MISSING": (good(csr=None), ("CSR-MISSING",)),
    "TEST-ENV-NOT-COMPLETED": (with_fields(good(), test_env_completed="nē"),
                               ("TEST-ENV-NOT-COMPLETED",)),
    "SIGNER-NOT-AUTHORISED": (good(signer_code="PNOLV-150585-23456"),
                              ("SIGNER-NOT-AUTHORISED",)),
    "CONTRACT-MISSING": (good(SP, organisation=replace(ORGANISATION, agreement_received=False)),
                         ("CONTRACT-MISSING",)),
}
for _code in ("SIG-MISSING", "SIG-INVALID", "SIG-MODIFIED", "SIG-UNTRUSTED", "SIG-NOT-QUALIFIED",
              "SIG-CERT-EXPIRED", "SIG-CERT-REVOKED", "SIG-REVOCATION-UNKNOWN", "TS-MISSING",
              "TS-INVALID", "TS-UNTRUSTED", "SIG-TOO-OLD", "TS-NOT-QUALIFIED"):
    TRIGGERS[_code] = (good(verdict=verdict(_code)), (_code,))
for _code in ("CSR-INVALID", "CSR-KEY-WEAK", "CSR-SUBJECT-MISMATCH"):
    TRIGGERS[_code] = (good(csr=csr_report(_code)), (_code,))


def test_every_rule_has_a_trigger_here() -> None:
    assert set(TRIGGERS) == set(all_rules())


@pytest.mark.parametrize("code", sorted(TRIGGERS))
def test_rule_finds_its_defect(code: str) -> None:
    rule = all_rules()[code]
    case, expected = TRIGGERS[code]
    assert rule.applies(case)
    found = list(rule.check(case))
    assert all(isinstance(f, Finding) for f in found)
    assert sorted(f.code for f in found) == list(expected)
    assert {f.base_code for f in found} == {code}
    # judge() reports it as well, and only that code for this rule.
    judgement = judge(case)
    assert set(expected) <= set(judgement.codes)
    assert code not in judgement.passed


@pytest.mark.parametrize("code", sorted(TRIGGERS))
def test_rule_passes_a_good_case(code: str) -> None:
    rule = all_rules()[code]
    workflow = SP if code == "CONTRACT-MISSING" else EA
    case = good(workflow)
    assert rule.applies(case)
    assert list(rule.check(case)) == []
    assert code in judge(case).passed


@pytest.mark.parametrize("workflow", [EA, API, SP], ids=lambda w: w.id)
def test_a_good_case_has_no_findings_in_every_workflow(workflow: WorkflowConfig) -> None:
    judgement = judge(good(workflow))
    assert judgement.findings == ()
    assert judgement.codes == ()
    assert list(judgement.passed) == sorted(judgement.passed)
    assert set(workflow.rules) <= set(judgement.passed)


def test_verdict_findings_carry_the_signature_notes() -> None:
    case = good(verdict=FormVerdict(
        signatures=(signature("SIG-CERT-REVOKED", notes=("revoked on 2026-01-01",)),),
        signer=None))
    [finding] = judge(case).findings
    assert finding == Finding("SIG-CERT-REVOKED", "revoked on 2026-01-01")


def test_values_changed_after_signing_are_sig_modified_once() -> None:
    # Even when the signature analysis saw nothing, differing values are SIG-MODIFIED.
    assert codes(good(fields_changed_after_signing=True)) == ("SIG-MODIFIED",)
    both = good(verdict=verdict("SIG-MODIFIED"), fields_changed_after_signing=True)
    assert [f.code for f in judge(both).findings] == ["SIG-MODIFIED"]


def test_form_id_of_another_procedure_is_invalid() -> None:
    case = with_fields(good(), form_id=API.id)
    assert codes(case) == ("FORM-FIELD-INVALID:form_id",)


def test_length_limits_of_the_service_card() -> None:
    case = with_fields(good(SP), service_name="x" * 81, service_description="Par īsu.")
    assert codes(case) == ("FORM-FIELD-INVALID:service_description",
                           "FORM-FIELD-INVALID:service_name")
    assert codes(with_fields(good(SP), service_name="x" * 80)) == ()


def test_optional_field_is_checked_only_when_filled() -> None:
    assert codes(with_fields(good(SP), tos_url="")) == ()
    assert codes(with_fields(good(SP), tos_url="http://ergli.example/tos")) == (
        "FORM-FIELD-INVALID:tos_url",)


@pytest.mark.parametrize("organisation, declared", [
    (None, "yes"),
    (replace(ORGANISATION, test_env_completed=False), "yes"),
    (ORGANISATION, "no"),
], ids=["not-in-registry", "registry-says-no", "form-says-no"])
def test_test_env_not_completed_sources(organisation: OrganisationRecord | None,
                                        declared: str) -> None:
    case = with_fields(good(organisation=organisation), test_env_completed=declared)
    assert "TEST-ENV-NOT-COMPLETED" in codes(case)


def test_unknown_organisation_fails_every_registry_rule_it_runs() -> None:
    assert codes(good(organisation=None)) == ("SIGNER-NOT-AUTHORISED", "TEST-ENV-NOT-COMPLETED")
    assert codes(good(SP, organisation=None)) == ("CONTRACT-MISSING", "SIGNER-NOT-AUTHORISED")


# -- judge(): everything at once, sorted -------------------------------------------------


def test_judge_reports_every_deficiency_at_once_sorted() -> None:
    case = good(
        fields={**EA_FIELDS, "contact_email": "", "contact_phone": "zvaniet",
                "test_env_completed": "no"},
        verdict=verdict("SIG-NOT-QUALIFIED", "TS-MISSING"),
        csr=csr_report("CSR-KEY-WEAK", "CSR-SUBJECT-MISMATCH"),
        signer_code="PNOLV-150585-23456",
        duplicate_of="EA-2026-000001",
    )
    judgement = judge(case)
    expected = ("CSR-KEY-WEAK", "CSR-SUBJECT-MISMATCH", "DUPLICATE",
                "FORM-FIELD-INVALID:contact_phone", "FORM-FIELD-MISSING:contact_email",
                "SIG-NOT-QUALIFIED", "SIGNER-NOT-AUTHORISED", "TEST-ENV-NOT-COMPLETED",
                "TS-MISSING")
    assert judgement.codes == expected
    assert tuple(f.code for f in judgement.findings) == expected
    # Rules that ran and found nothing are recorded as passed; none is both.
    assert "SIG-INVALID" in judgement.passed and "CSR-MISSING" in judgement.passed
    assert not {f.base_code for f in judgement.findings} & set(judgement.passed)
    assert list(judgement.passed) == sorted(judgement.passed)


def test_judge_sorts_findings_whatever_order_the_rules_give() -> None:
    case = with_fields(good(), org_name="", contact_name="", solution_name="",
                       org_reg_no="12", contact_email="x")
    judgement = judge(case)
    found = [f.code for f in judgement.findings]
    assert found == sorted(found)
    assert found == ["FORM-FIELD-INVALID:contact_email", "FORM-FIELD-INVALID:org_reg_no",
                     "FORM-FIELD-MISSING:contact_name", "FORM-FIELD-MISSING:org_name",
                     "FORM-FIELD-MISSING:solution_name"]


def test_unreadable_form_is_judged_on_nothing_it_cannot_read() -> None:
    case = good(form_error="encrypted", fields={}, verdict=None, signer_code=None,
                organisation=None)
    judgement = judge(case)
    assert judgement.codes == ("FORM-UNREADABLE",)
    for code in ("FORM-UNKNOWN", "FORM-FIELD-MISSING", "SIG-MISSING", "TEST-ENV-NOT-COMPLETED",
                 "SIGNER-NOT-AUTHORISED"):
        assert code not in judgement.passed


def test_no_form_for_a_csr_workflow_is_form_and_csr_missing() -> None:
    case = Case(workflow=EA, form_present=False)
    assert codes(case) == ("CSR-MISSING", "FORM-MISSING")
    assert codes(Case(workflow=None, form_present=False)) == ("FORM-MISSING",)


def test_consultation_needs_no_form() -> None:
    assert codes(Case(workflow=WORKFLOWS["consultation"], form_present=False)) == ()


# -- registry rules: only where the workflow lists them, only with a good reg. no. ---------

REGISTRY_CODES = ("CONTRACT-MISSING", "SIGNER-NOT-AUTHORISED", "TEST-ENV-NOT-COMPLETED")
#: An organisation that fails every registry rule.
NOBODY = OrganisationRecord(reg_no=REG_NO, name="SIA Ērgļu Māja", test_env_completed=False,
                            agreement_received=False, representatives=())


@pytest.mark.parametrize("workflow", [EA, API, SP], ids=lambda w: w.id)
def test_registry_rules_run_only_where_the_workflow_lists_them(workflow: WorkflowConfig) -> None:
    judgement = judge(good(workflow, organisation=NOBODY))
    found = {c for c in judgement.codes if c in REGISTRY_CODES}
    assert found == set(workflow.rules)
    for code in set(REGISTRY_CODES) - set(workflow.rules):
        assert code not in judgement.passed
        assert not all_rules()[code].applies(good(workflow, organisation=NOBODY))


def test_workflow_listing_a_rule_turns_it_on() -> None:
    custom = replace(API, rules=("CONTRACT-MISSING",))
    assert codes(good(API, workflow=custom, organisation=NOBODY)) == ("CONTRACT-MISSING",)


@pytest.mark.parametrize("reg_no", ["123", "", "4000312345", "400031234567", "4000312345A",
                                    "٤٠٠٠٣١٢٣٤٥٦"])
@pytest.mark.parametrize("workflow", [EA, SP], ids=lambda w: w.id)
def test_registry_rules_skipped_when_reg_no_is_malformed(workflow: WorkflowConfig,
                                                         reg_no: str) -> None:
    case = with_fields(good(workflow, organisation=None), org_reg_no=reg_no)
    judgement = judge(case)
    for code in REGISTRY_CODES:
        assert code not in judgement.codes
        assert code not in judgement.passed
    # The malformed number is its own finding.
    field = "FORM-FIELD-MISSING:org_reg_no" if not reg_no else "FORM-FIELD-INVALID:org_reg_no"
    assert judgement.codes == (field,)


def test_registry_rules_skipped_without_a_readable_form() -> None:
    for case in (good(organisation=NOBODY, form_present=False),
                 good(organisation=NOBODY, form_error="broken")):
        judgement = judge(case)
        assert not set(REGISTRY_CODES) & (set(judgement.codes) | set(judgement.passed))


def test_signer_rule_skipped_without_a_signer() -> None:
    # An unsigned form is SIG-MISSING; who signed it cannot be asked.
    case = good(verdict=verdict("SIG-MISSING"), signer_code=None)
    judgement = judge(case)
    assert judgement.codes == ("SIG-MISSING",)
    assert "SIGNER-NOT-AUTHORISED" not in judgement.passed


def _stamped(days_ago: int) -> Case:
    """A good e-address case whose one signature was time-stamped ``days_ago`` days ago."""
    now = datetime(2026, 11, 22, tzinfo=UTC)
    sig = replace(signature(), timestamp_time=now - timedelta(days=days_ago))
    return good(verdict=FormVerdict(signatures=(sig,), signer=None), judged_at=now)


def test_workflow_max_age_days_judges_sig_too_old_itself() -> None:
    strict = replace(EA, max_age_days=7)
    assert "SIG-TOO-OLD" in judge(replace(_stamped(8), workflow=strict)).codes
    assert "SIG-TOO-OLD" not in judge(replace(_stamped(6), workflow=strict)).codes


def test_workflow_max_age_days_overrides_the_global_verdict() -> None:
    """A procedure allowing a year accepts a form the global limit refused."""
    lenient = replace(EA, max_age_days=365)
    case = _stamped(120)
    assert "SIG-TOO-OLD" in judge(case).codes  # no workflow limit: [signing]'s 90 days
    assert "SIG-TOO-OLD" not in judge(replace(case, workflow=lenient)).codes
