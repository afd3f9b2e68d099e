"""SIG-NOT-QUALIFIED, TS-NOT-QUALIFIED, TS-MISSING and SIG-TOO-OLD from facts and policy.

The verifier returns facts only (qualification, QSCD, QcType, the time-stamp,
its TSA's qualification, its time); the rules compute these four codes from
them under the workflow's policy (its overrides of ``require_qualified``,
``require_qscd``, ``require_qualified_timestamp``, ``require_timestamp``,
``max_age_days``, ``accept_eseals``, else ``[signing]``). Also the QcStatements
judgement of anchors under ``signing.trust_roots`` and the scheduled refresh.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from intake.config import SigningConfig, TrustConfig, parse_config
from intake.trust import refresh_if_due
from rules import judge
from rules.signature import Policy, policy_of
from signing.qc import QC_STATEMENTS_OID, qc_info
from signing.status import FormVerdict
from signing.trust.qualification import Qualification, TimestampQualification, from_qc_statements
from tests.fixtures.trustlist import TrustPki, _qc_statements, build_lists
from tests.judged import verifier_codes
from tests.test_rules import EA, JUDGED_AT, QTST, QUALIFIED, SP, good, signature, verdict

SIGNING = SigningConfig()
ESEAL = Qualification(source="trusted-list", qualified=True, qc_type="eseal", qscd=True,
                      service="LV: Test QTSP Qualified CA")
NO_QSCD = Qualification(source="trusted-list", qualified=True, qc_type="esign", qscd=False,
                        service="LV: Test QTSP Qualified CA")
NOT_QTST = TimestampQualification(False, "none", reasons=("no QTST",))


def case_with(wf: object, codes: tuple[str, ...], *,
              qualification: Qualification | None = QUALIFIED,
              ts: TimestampQualification | None = QTST, timestamp: bool = True) -> object:
    sig = replace(signature(*codes), qualification=qualification, timestamp_qualification=ts,
                  timestamp_present=timestamp)
    form = replace(verdict(*codes), signatures=(sig,))
    return good(wf, verdict=form, signing=SIGNING)  # type: ignore[arg-type]


def test_an_e_seal_passes_only_where_the_workflow_accepts_seals() -> None:
    assert SP.accept_eseals and not EA.accept_eseals
    sealed_card = case_with(SP, ("SIG-NOT-QUALIFIED",), qualification=ESEAL)
    assert "SIG-NOT-QUALIFIED" not in judge(sealed_card).codes  # type: ignore[arg-type]
    sealed_form = case_with(EA, ("SIG-NOT-QUALIFIED",), qualification=ESEAL)
    assert "SIG-NOT-QUALIFIED" in judge(sealed_form).codes  # type: ignore[arg-type]


def test_a_workflow_may_waive_the_qscd() -> None:
    lenient = replace(EA, require_qscd=False)
    assert "SIG-NOT-QUALIFIED" not in judge(  # type: ignore[arg-type]
        case_with(lenient, ("SIG-NOT-QUALIFIED",), qualification=NO_QSCD)).codes
    strict_sp = replace(SP, require_qscd=True)
    assert "SIG-NOT-QUALIFIED" in judge(  # type: ignore[arg-type]
        case_with(strict_sp, ("SIG-NOT-QUALIFIED",), qualification=NO_QSCD)).codes


def test_a_workflow_may_waive_the_qualified_time_stamp() -> None:
    lenient = replace(EA, require_qualified_timestamp=False)
    assert judge(case_with(lenient, ("TS-NOT-QUALIFIED",), ts=NOT_QTST)).codes == ()  # type: ignore[arg-type]
    assert judge(case_with(EA, ("TS-NOT-QUALIFIED",), ts=NOT_QTST)).codes == (  # type: ignore[arg-type]
        "TS-NOT-QUALIFIED",)
    # A workflow may require one where [signing] does not.
    signing = replace(SIGNING, require_qualified_timestamp=False)
    strict = replace(EA, require_qualified_timestamp=True)
    case = replace(case_with(strict, (), ts=NOT_QTST), signing=signing)  # type: ignore[type-var]
    assert judge(case).codes == ("TS-NOT-QUALIFIED",)  # type: ignore[arg-type]


def test_a_workflow_may_waive_the_time_stamp() -> None:
    lenient = replace(EA, require_timestamp=False)
    assert judge(case_with(lenient, ("TS-MISSING",), timestamp=False)).codes == ()  # type: ignore[arg-type]
    assert judge(case_with(EA, ("TS-MISSING",), timestamp=False)).codes == (  # type: ignore[arg-type]
        "TS-MISSING",)


def test_the_policy_is_the_workflow_s_else_signing_s_else_the_default() -> None:
    assert policy_of(replace(good(), signing=None, workflow=None)) == Policy()
    signing = replace(SIGNING, require_timestamp=False, max_age_days=30)
    assert policy_of(good(EA, signing=signing)) == Policy(require_timestamp=False,
                                                          max_age_days=30)
    lenient = replace(EA, require_timestamp=True, max_age_days=365, require_qscd=False)
    assert policy_of(good(lenient, signing=signing)) == Policy(require_qscd=False,
                                                               max_age_days=365)
    assert policy_of(good(SP)).accept_eseals


def test_the_signing_defaults_decide_where_the_workflow_says_nothing() -> None:
    no_ts = case_with(EA, ("TS-MISSING",), timestamp=False)
    assert judge(no_ts).codes == ("TS-MISSING",)  # type: ignore[arg-type]
    waived = replace(no_ts, signing=replace(SIGNING, require_timestamp=False))  # type: ignore[type-var]
    assert judge(waived).codes == ()  # type: ignore[arg-type]
    unqualified = case_with(EA, ("SIG-NOT-QUALIFIED",), qualification=None)
    assert judge(unqualified).codes == ("SIG-NOT-QUALIFIED",)  # type: ignore[arg-type]
    waived = replace(unqualified, signing=replace(SIGNING, require_qualified=False))  # type: ignore[type-var]
    assert judge(waived).codes == ()  # type: ignore[arg-type]


def test_a_signature_that_could_not_be_validated_is_only_sig_invalid() -> None:
    broken = replace(signature("SIG-INVALID"), validated=False, qualification=None,
                     timestamp_present=False, timestamp_qualification=None)
    case = good(verdict=replace(verdict("SIG-INVALID"), signatures=(broken,)), signing=SIGNING)
    assert judge(case).codes == ("SIG-INVALID",)
    # Validated but without a readable signer certificate: not qualified, as before.
    unreadable = replace(broken, validated=True)
    case = good(verdict=replace(verdict("SIG-INVALID"), signatures=(unreadable,)),
                signing=SIGNING)
    assert judge(case).codes == ("SIG-INVALID", "SIG-NOT-QUALIFIED", "TS-MISSING")


def test_sig_too_old_is_judged_from_a_valid_time_stamp_at_the_judgement_time() -> None:
    old = replace(signature(), timestamp_time=JUDGED_AT - timedelta(days=91))
    case = good(verdict=replace(verdict(), signatures=(old,)), signing=SIGNING)
    assert judge(case).codes == ("SIG-TOO-OLD",)
    assert judge(replace(case, judged_at=JUDGED_AT - timedelta(days=2))).codes == ()
    assert judge(replace(case, judged_at=None)).codes == ()  # no "now": not judged
    broken_ts = replace(old, timestamp_valid=False, timestamp_trusted=False)
    case = good(verdict=FormVerdict(signatures=(broken_ts,), signer=None))
    assert judge(case).codes == ("TS-INVALID",)  # an invalid token proves no time


def test_ts_not_qualified_needs_a_judged_time_stamp() -> None:
    # No qualification fact (no valid, trusted token): TS-INVALID/-UNTRUSTED say it, not this.
    case = case_with(EA, (), ts=None)
    assert judge(case).codes == ()  # type: ignore[arg-type]


def test_workflow_overrides_are_read_from_config(tmp_path: Path) -> None:
    data = {"workflow": [{"id": "api-access", "prefix": "API", "require_qscd": False,
                          "require_qualified_timestamp": False, "accept_eseals": False}],
            "signing": {"require_qscd": True}}
    config = parse_config(data, tmp_path / "config.toml")
    api = config.workflow("api-access")
    assert api is not None and api.require_qscd is False and not api.accept_eseals
    assert config.signing.require_qscd and config.signing.require_qualified_timestamp
    assert config.trust is None


def _cert(qc: bytes | None) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "QC test")])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
               .public_key(key.public_key()).serial_number(1)
               .not_valid_before(datetime.now(UTC) - timedelta(days=1))
               .not_valid_after(datetime.now(UTC) + timedelta(days=1)))
    if qc is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(x509.ObjectIdentifier(QC_STATEMENTS_OID), qc),
            critical=False)
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


def test_qc_compliance_without_a_qc_type_reads_as_e_signature() -> None:
    from asn1crypto import x509 as asn1_x509

    bare = asn1_x509.Certificate.load(_cert(_qc_statements()))
    assert qc_info(bare).esign
    judged = from_qc_statements(bare, "trust-roots")
    assert judged.qualified and judged.qc_type == "esign" and judged.qscd
    seal = asn1_x509.Certificate.load(_cert(_qc_statements(eseal=True, sscd=False)))
    judged = from_qc_statements(seal, "trust-roots")
    assert judged.qc_type == "eseal" and not judged.qscd
    plain = asn1_x509.Certificate.load(_cert(None))
    assert not from_qc_statements(plain, "trust-roots").qualified


def test_a_certificate_listing_several_qc_types_is_read_not_refused() -> None:
    # pyHanko's own assessor raises NotImplementedError on more than one QcType;
    # our reader of the same ASN.1 keeps every type and stays total.
    from asn1crypto import x509 as asn1_x509
    from pyhanko.sign.ades.qualified_asn1 import QcCertificateType, QcStatements

    two = QcStatements([{"statement_id": "qc_compliance"},
                        {"statement_id": "qc_type",
                         "statement_info": QcCertificateType(["qct_eseal", "qct_web"])}]).dump()
    info = qc_info(asn1_x509.Certificate.load(_cert(two)))
    assert info.compliance and not info.esign and not info.garbled
    assert info.types == ("0.4.0.1862.1.6.2", "0.4.0.1862.1.6.3")


def test_the_scheduled_refresh_runs_when_due(tmp_path: Path) -> None:
    lists = build_lists(TrustPki.create(), tmp_path / "lists")
    data = {"trust": {"lotl": str(lists.lotl_path), "lotl_signers": [str(lists.lotl_signer_pem)],
                      "cache_dir": str(tmp_path / "cache"), "max_age_hours": 8}}
    config = parse_config(data, tmp_path / "config.toml")
    assert isinstance(config.trust, TrustConfig)
    now = datetime.now(UTC)
    assert refresh_if_due(config, now=now)
    assert not refresh_if_due(config, now=now + timedelta(hours=1))
    # A quarter of max_age_hours later the lists are fetched again.
    assert refresh_if_due(config, now=now + timedelta(hours=3))


def test_readiness_fails_when_the_lists_are_stale_or_missing(tmp_path: Path) -> None:
    from intake.trust import readiness

    assert readiness(parse_config({}, tmp_path / "config.toml")) == (True, {"configured": False})
    lists = build_lists(TrustPki.create(), tmp_path / "lists")
    data = {"trust": {"lotl": str(lists.lotl_path), "lotl_signers": [str(lists.lotl_signer_pem)],
                      "cache_dir": str(tmp_path / "cache"), "max_age_hours": 8}}
    config = parse_config(data, tmp_path / "config.toml")
    assert readiness(config)[0] is False
    now = datetime.now(UTC)
    assert refresh_if_due(config, now=now)
    ok, body = readiness(config, now=now)
    assert ok and body["lists"]["LV"]["fresh"]  # type: ignore[index]
    ok, body = readiness(config, now=now + timedelta(hours=9))
    assert not ok and not body["lists"]["LV"]["fresh"]  # type: ignore[index]


def test_the_validation_report_can_be_switched_off(tmp_path: Path) -> None:
    from signing.settings import VerifierSettings
    from signing.testing.pdfs import make_form_pdf, sign_pdf
    from signing.testing.pki import DemoPki
    from signing.verifier import InProcessVerifier

    pki = DemoPki.create(tmp_path / "pki")
    signed = sign_pdf(make_form_pdf({"org_name": "SIA Ērgļi"}), pki.signer("qualified"),
                      timestamper=pki.timestamper("tsa"))
    for wanted in (True, False):
        verifier = InProcessVerifier(VerifierSettings(trust_roots=pki.trust_roots, allow_fetching=False,
                                             validation_report=wanted))
        (sig,) = verifier.verify_pdf_sync(signed).signatures
        assert verifier_codes(sig) == ()
        assert (sig.report_xml is not None) is wanted
    config = parse_config({"signing": {"validation_report": False}}, tmp_path / "config.toml")
    assert config.signing.validation_report is False
