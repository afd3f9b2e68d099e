"""Signature and time-stamp verification: one test per SPEC code, against the real test PKI."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from io import BytesIO

import pytest
from asn1crypto import cms
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pypdf import PdfReader, PdfWriter

from signing.status import FormVerdict, UnreadableInput
from signing.testing.pki import QUALIFIED_PERSONAL_CODE
from signing.verifier import InProcessVerifier
from tests.fixtures.pki import PkiFixture
from tests.judged import unreadable_codes, verifier_codes, verifier_ok


def verify(pki: PkiFixture, data: bytes, **settings: object) -> FormVerdict:
    return InProcessVerifier(pki.settings(**settings)).verify_pdf_sync(data)


def field_value(pdf: bytes, name: str) -> str:
    fields = PdfReader(BytesIO(pdf)).get_fields() or {}
    return str(fields[name].get("/V"))


def test_valid_qualified_bt_signature_is_ok(pki: PkiFixture) -> None:
    form = pki.form_pdf({"org_name": "SIA Bērziņi", "contact_email": "anna@example.lv"})
    verdict = verify(pki, pki.sign(form, "qualified", level="B-T"))
    assert verifier_codes(verdict) == ()
    assert verifier_ok(verdict)
    (status,) = verdict.signatures
    assert status.kind == "pades" and status.intact and status.valid and status.trusted
    assert status.timestamp_present and status.timestamp_valid and status.timestamp_trusted
    assert not status.modified_after
    assert verdict.signer is not None
    assert verdict.signer.personal_code == QUALIFIED_PERSONAL_CODE
    assert verdict.signer.common_name == "Anna Ozola"
    assert verdict.signer.country == "LV"
    assert verdict.signer.qc_compliance and verdict.signer.qc_esign and verdict.signer.qc_sscd
    assert verdict.signed_revision is not None
    assert field_value(verdict.signed_revision, "org_name") == "SIA Bērziņi"


def test_diacritic_signer_name_survives(pki: PkiFixture) -> None:
    verdict = verify(pki, pki.sign(pki.form_pdf(), "qualified-2"))
    assert verifier_ok(verdict)
    assert verdict.signer is not None
    assert verdict.signer.common_name == "Jānis Bērziņš"
    assert verdict.signer.surname == "Bērziņš"


def test_bb_without_timestamp_has_no_timestamp(pki: PkiFixture) -> None:
    # The fact; TS-MISSING is the rules' (tests/test_qualification_rules.py).
    verdict = verify(pki, pki.sign(pki.form_pdf(), timestamp=False))
    assert verifier_codes(verdict) == ()
    (sig,) = verdict.signatures
    assert not sig.timestamp_present and sig.timestamp_time is None
    assert sig.timestamp_qualification is None


def test_nonqualified_signer_is_judged_not_qualified(pki: PkiFixture) -> None:
    # The fact; SIG-NOT-QUALIFIED is the rules' (tests/test_qualification_rules.py).
    verdict = verify(pki, pki.sign(pki.form_pdf(), "nonqualified"))
    assert verifier_codes(verdict) == ()
    (sig,) = verdict.signatures
    assert sig.trusted
    assert sig.qualification is not None and sig.qualification.source == "trust-roots"
    assert not sig.qualification.qualified and sig.qualification.qc_type is None
    good = verify(pki, pki.sign(pki.form_pdf(), "qualified")).signatures[0].qualification
    assert good is not None and good.qualified and good.qc_type == "esign" and good.qscd


def test_untrusted_chain_is_sig_untrusted(pki: PkiFixture) -> None:
    verdict = verify(pki, pki.sign(pki.form_pdf(), "untrusted"))
    assert verifier_codes(verdict) == ("SIG-UNTRUSTED",)


def test_expired_certificate_is_sig_cert_expired(pki: PkiFixture) -> None:
    verdict = verify(pki, pki.sign(pki.form_pdf(), "expired"))
    assert verifier_codes(verdict) == ("SIG-CERT-EXPIRED",)


def test_revoked_certificate_via_ocsp_is_sig_cert_revoked(pki: PkiFixture) -> None:
    signed = pki.sign(pki.form_pdf(), "revoked")
    verdict = verify(pki, signed)
    assert verifier_codes(verdict) == ("SIG-CERT-REVOKED",)
    # Without revocation checking the same file passes: the code came from OCSP.
    assert verifier_ok(verify(pki, signed, revocation="off"))


def test_untrusted_tsa_is_ts_untrusted(pki: PkiFixture) -> None:
    signed = pki.sign(pki.form_pdf(), timestamper=pki.untrusted_timestamper)
    verdict = verify(pki, signed)
    assert verifier_codes(verdict) == ("TS-UNTRUSTED",)
    assert verdict.signatures[0].timestamp_valid


def _replace_timestamp_token(signed: bytes, token: cms.ContentInfo) -> bytes:
    """Swap the signature time-stamp in /Contents for ``token`` (same byte length)."""
    emb = PdfFileReader(BytesIO(signed)).embedded_signatures[0]
    start, end = int(emb.byte_range[1]), int(emb.byte_range[2])
    content_info = cms.ContentInfo.load(bytes(emb.pkcs7_content))
    signer_info = content_info["content"]["signer_infos"][0]
    signer_info["unsigned_attrs"] = cms.CMSAttributes(
        [{"type": "signature_time_stamp_token", "values": [token]}]
    )
    new_hex = content_info.dump(force=True).hex().encode()
    room = end - start - 2
    assert len(new_hex) <= room
    patched = signed[:start] + b"<" + new_hex + b"0" * (room - len(new_hex)) + b">" + signed[end:]
    assert len(patched) == len(signed)
    return patched


def test_timestamp_over_other_data_is_ts_invalid(pki: PkiFixture) -> None:
    signed = pki.sign(pki.form_pdf(), bytes_reserved=16384)
    token = asyncio.run(
        pki.timestamper.async_timestamp(hashlib.sha256(b"other data").digest(), "sha256")
    )
    patched = _replace_timestamp_token(signed, token)
    verdict = verify(pki, patched)
    assert verifier_codes(verdict) == ("TS-INVALID",)
    assert verdict.signatures[0].intact and verdict.signatures[0].valid


def test_timestamp_time_is_reported_for_the_age_limit(pki: PkiFixture) -> None:
    # The fact; SIG-TOO-OLD is the rules' (tests/test_qualification_rules.py).
    before = datetime.now(UTC) - timedelta(minutes=1)
    signed = pki.sign(pki.form_pdf())
    later = datetime.now(UTC) + timedelta(days=200)
    verdict = InProcessVerifier(pki.settings(), now=lambda: later).verify_pdf_sync(signed)
    assert verifier_codes(verdict) == ()
    (sig,) = verdict.signatures
    assert sig.timestamp_valid and sig.timestamp_time is not None
    assert before <= sig.timestamp_time <= datetime.now(UTC)


def _fill_field(pdf: bytes, name: str, value: str) -> bytes:
    writer = IncrementalPdfFileWriter(BytesIO(pdf))
    for ref in writer.root["/AcroForm"]["/Fields"]:
        form_field = ref.get_object()
        if form_field.get("/T") == name:
            form_field["/V"] = generic.TextStringObject(value)
            writer.mark_update(ref)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def test_field_changed_after_signing_is_sig_modified(pki: PkiFixture) -> None:
    signed = pki.sign(pki.form_pdf({"org_name": "SIA Original", "contact_email": "a@b.lv"}))
    tampered = _fill_field(signed, "org_name", "SIA Forged")
    assert field_value(tampered, "org_name") == "SIA Forged"
    verdict = verify(pki, tampered)
    assert verifier_codes(verdict) == ("SIG-MODIFIED",)
    assert verdict.signatures[0].modified_after
    assert verdict.signed_revision is not None
    assert field_value(verdict.signed_revision, "org_name") == "SIA Original"
    # The values the verifier read: the signed revision's, and the final ones beside them.
    assert verdict.signed_fields is not None and verdict.final_fields is not None
    assert verdict.signed_fields.values["org_name"] == "SIA Original"
    assert verdict.final_fields.values["org_name"] == "SIA Forged"


def test_the_verdict_carries_the_signed_values_read_once(pki: PkiFixture) -> None:
    form = pki.form_pdf({"org_name": "SIA Bērziņi", "contact_email": "anna@example.lv"})
    verdict = verify(pki, pki.sign(form))
    assert verdict.signed_fields is not None
    assert verdict.signed_fields.error is None
    assert verdict.signed_fields.values == {"form_id": "api-access", "org_name": "SIA Bērziņi",
                                            "contact_email": "anna@example.lv"}
    assert verdict.signed_fields.pages == 1
    # The signature covers every byte: one reading is both revisions'.
    assert verdict.final_fields is verdict.signed_fields


def test_an_unsigned_pdf_has_its_values_read_by_the_verifier(pki: PkiFixture) -> None:
    verdict = verify(pki, pki.form_pdf({"org_name": "SIA Bez Paraksta"}))
    assert verdict.signatures == ()
    assert verdict.signed_fields is not None
    assert verdict.signed_fields.values["org_name"] == "SIA Bez Paraksta"
    assert verdict.final_fields is verdict.signed_fields


def test_byte_flipped_inside_signed_range_is_sig_invalid(pki: PkiFixture) -> None:
    signed = pki.sign(pki.form_pdf())
    emb = PdfFileReader(BytesIO(signed)).embedded_signatures[0]
    position = signed.index(b"/MediaBox [0 0 595 842]") + len(b"/MediaBox [0 0 595 84")
    assert position < int(emb.byte_range[1])
    flipped = signed[:position] + b"3" + signed[position + 1 :]
    verdict = verify(pki, flipped)
    assert "SIG-INVALID" in verifier_codes(verdict)
    assert not verdict.signatures[0].intact


def test_blt_is_accepted(pki: PkiFixture) -> None:
    verdict = verify(pki, pki.sign(pki.form_pdf(), level="B-LT"), allow_fetching=False)
    assert verifier_codes(verdict) == (), verdict.signatures[0].notes


def test_blta_is_accepted(pki: PkiFixture) -> None:
    verdict = verify(pki, pki.sign(pki.form_pdf(), level="B-LTA"), revocation="hard-fail")
    assert verifier_codes(verdict) == (), verdict.signatures[0].notes
    assert any("document time-stamp" in note and "valid, trusted" in note for note in verdict.notes)


def test_second_signature_after_first_is_fine(pki: PkiFixture) -> None:
    once = pki.sign(pki.form_pdf(), "qualified", field_name="Signature1")
    twice = pki.sign(once, "qualified-2", field_name="Signature2")
    verdict = verify(pki, twice)
    assert verifier_codes(verdict) == ()
    assert len(verdict.signatures) == 2
    assert verdict.signer is not None and verdict.signer.common_name == "Jānis Bērziņš"


def test_unsigned_form_is_sig_missing(pki: PkiFixture) -> None:
    verdict = verify(pki, pki.form_pdf())
    assert verifier_codes(verdict) == ("SIG-MISSING",)
    assert not verifier_ok(verdict) and verdict.signer is None


def test_document_timestamp_alone_is_sig_missing(pki: PkiFixture) -> None:
    from signing.testing.pdfs import add_document_timestamp

    verdict = verify(pki, add_document_timestamp(pki.form_pdf(), pki.timestamper))
    assert verifier_codes(verdict) == ("SIG-MISSING",)


def test_document_timestamp_over_bb_signature_gives_it_its_time(pki: PkiFixture) -> None:
    """ETSI EN 319 142-1 B-T: a document time-stamp may date a B-B signature."""
    from signing.testing.pdfs import add_document_timestamp

    bb = pki.sign(pki.form_pdf(), timestamp=False)
    verdict = verify(pki, add_document_timestamp(bb, pki.timestamper))
    assert verifier_codes(verdict) == (), verdict.signatures[0].notes
    (status,) = verdict.signatures
    assert status.timestamp_present and status.timestamp_valid and status.timestamp_trusted
    assert not status.modified_after
    assert "dated by the document time-stamp over it" in status.notes


def test_document_timestamp_from_untrusted_tsa_is_ts_untrusted(pki: PkiFixture) -> None:
    from signing.testing.pdfs import add_document_timestamp

    bb = pki.sign(pki.form_pdf(), timestamp=False)
    verdict = verify(pki, add_document_timestamp(bb, pki.untrusted_timestamper))
    assert verifier_codes(verdict) == ("TS-UNTRUSTED",)


def test_field_changed_then_document_timestamped_is_still_modified(pki: PkiFixture) -> None:
    """A document time-stamp does not launder a change made before it."""
    from intake.demo.samples import change_field_after_signing
    from signing.testing.pdfs import add_document_timestamp

    signed = pki.sign(pki.form_pdf({"org_reg_no": "40003000001"}), timestamp=False)
    changed = change_field_after_signing(signed, "org_reg_no", "40003999999")
    verdict = verify(pki, add_document_timestamp(changed, pki.timestamper))
    assert "SIG-MODIFIED" in verifier_codes(verdict)


@pytest.mark.parametrize("kind", ["garbage", "truncated", "encrypted", "too-large"])
def test_unreadable_inputs_raise(pki: PkiFixture, kind: str) -> None:
    signed = pki.sign(pki.form_pdf())
    settings: dict[str, object] = {}
    if kind == "garbage":
        data = b"this is not a PDF at all\x00\xff" * 10
    elif kind == "truncated":
        data = signed[:200]
    elif kind == "encrypted":
        writer = PdfWriter(clone_from=PdfReader(BytesIO(pki.form_pdf())))
        writer.encrypt("user-password", "owner-password", algorithm="AES-128")
        out = BytesIO()
        writer.write(out)
        data = out.getvalue()
    else:
        data = signed
        settings["max_pdf_bytes"] = 1000
    with pytest.raises(UnreadableInput) as excinfo:
        verify(pki, data, **settings)
    assert unreadable_codes(excinfo.value) == ("FORM-UNREADABLE",)


def _detached(pki: PkiFixture, content: bytes, signer: str = "qualified") -> bytes:
    signature = asyncio.run(
        pki.signer(signer).async_sign_general_data(
            content, "sha256", detached=True, use_cades=True, timestamper=pki.timestamper
        )
    )
    return signature.dump()


def test_detached_p7s_valid(pki: PkiFixture) -> None:
    content = "Pieteikums: Jānis Bērziņš".encode()
    signature = _detached(pki, content)
    verifier = InProcessVerifier(pki.settings())
    verdict = asyncio.run(verifier.verify_detached(content, signature))
    assert verifier_codes(verdict) == (), verdict.signatures[0].notes
    assert verdict.signatures[0].kind == "cms"
    assert verdict.signer is not None
    assert verdict.signer.personal_code == QUALIFIED_PERSONAL_CODE


def test_detached_p7s_tampered_content_is_sig_invalid(pki: PkiFixture) -> None:
    content = b"original attachment bytes"
    signature = _detached(pki, content)
    verifier = InProcessVerifier(pki.settings())
    verdict = asyncio.run(verifier.verify_detached(b"Original attachment bytes", signature))
    assert "SIG-INVALID" in verifier_codes(verdict)
    broken = asyncio.run(verifier.verify_detached(content, b"\x30\x03garbage"))
    assert verifier_codes(broken) == ("SIG-INVALID",)


def _report_indication(xml: str) -> tuple[str, str]:
    from lxml import etree

    vr = "{http://uri.etsi.org/19102/v1.2.1#}"
    status = etree.fromstring(xml.encode()).find(
        f"{vr}SignatureValidationReport/{vr}SignatureValidationStatus")
    assert status is not None
    main, sub = status.findtext(f"{vr}MainIndication"), status.findtext(f"{vr}SubIndication")
    assert main is not None and sub is not None
    return main.rsplit(":", 1)[1], sub.rsplit(":", 1)[1]


def test_each_signature_and_timestamp_is_validated_once_with_the_report_on(
    pki: PkiFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Issue 12: the ETSI report used to come from a second, AdES validation
    # of the same signature; it is now made from the verdict's validation.
    from pyhanko.sign.validation import generic_cms

    checked: list[bytes] = []
    original = generic_cms.validate_sig_integrity

    def counting(signer_info: cms.SignerInfo, *args: object, **kwargs: object) -> object:
        checked.append(signer_info["signature"].native)
        return original(signer_info, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(generic_cms, "validate_sig_integrity", counting)
    verdict = verify(pki, pki.sign(pki.form_pdf(), "qualified", level="B-T"), allow_fetching=False)
    assert verifier_ok(verdict)
    (status,) = verdict.signatures
    assert status.report_xml is not None
    # The signer's signature and its time-stamp token, each checked once.
    assert len(checked) == 2 and len(set(checked)) == 2


def test_the_report_states_the_verdicts_validation(pki: PkiFixture) -> None:
    ok = verify(pki, pki.sign(pki.form_pdf(), "qualified", level="B-T"), allow_fetching=False)
    (status,) = ok.signatures
    assert status.report_xml is not None
    assert _report_indication(status.report_xml) == ("total-passed", "OK")
    assert "urn:etsi:019102:validationprocess:LTVM" in status.report_xml
    untrusted = verify(pki, pki.sign(pki.form_pdf(), "untrusted"), allow_fetching=False)
    (status,) = untrusted.signatures
    assert verifier_codes(untrusted) == ("SIG-UNTRUSTED",)
    assert status.report_xml is not None
    assert _report_indication(status.report_xml)[0] == "indeterminate"
    signed = pki.sign(pki.form_pdf())
    position = signed.index(b"/MediaBox [0 0 595 842]") + len(b"/MediaBox [0 0 595 84")
    flipped = verify(pki, signed[:position] + b"3" + signed[position + 1 :])
    (status,) = flipped.signatures
    assert status.report_xml is not None
    assert _report_indication(status.report_xml) == ("total-failed", "HASH_FAILURE")


def test_the_report_is_rendered_as_pyhankos_generate_report_renders_it(
    pki: PkiFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # signing.report renders with one serializer for the process (xsdata's
    # metadata built once); the XML must stay pyHanko's, byte for byte.
    from pyhanko.sign.validation.report.tools import generate_report

    from signing import report

    seen: list[tuple[object, object]] = []
    render = report.render

    def capture(emb: object, result: object) -> str:
        seen.append((emb, result))
        return render(emb, result)  # type: ignore[arg-type]

    monkeypatch.setattr(report, "render", capture)
    for _ in range(2):
        verdict = verify(pki, pki.sign(pki.form_pdf(), "qualified", level="B-T"),
                         allow_fetching=False)
        assert verifier_ok(verdict)
    assert len(seen) == 2
    for emb, result in seen:
        assert render(emb, result) == generate_report(emb, result)  # type: ignore[arg-type]
