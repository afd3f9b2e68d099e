"""Italian signed files: enveloping ``.p7m`` (DER, PEM, base64, nested), ``.tsd``, ``.m7m``, ``.tsr``.

Every file is built with the real test PKI (its OCSP, CRL and TSA services on
loopback) and judged by the verifier; the good ones are also checked with an
independent tool (``openssl cms -verify``, ``openssl ts -verify``).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import subprocess
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms, tsp
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from intake.demo.samples import detached_signature, enveloping_signature, make_csr
from signing.cms.envelope import read_cms
from signing.cms.p7m import MAX_DEPTH, content_kind, sniff
from signing.cms.tsd import TIMESTAMPED_DATA_OID, TimeStampedDataInfo, read_tsd
from signing.isolation import IsolatedVerifier
from signing.status import SignedFile, UnreadableInput
from signing.testing.pki import QUALIFIED_PERSONAL_CODE
from signing.verifier import InProcessVerifier
from tests.fixtures.pki import PkiFixture
from tests.judged import verifier_codes, verifier_ok


def enveloping(pki: PkiFixture, content: bytes, signer: str = "qualified", *,
               timestamp: bool = True, timestamper: Any = None) -> bytes:
    """A CAdES enveloping SignedData (a ``.p7m``) over ``content``, as an Italian signer makes."""
    ts = (timestamper or pki.timestamper) if timestamp else None
    return enveloping_signature(content, pki.signer(signer), ts)


def token_over(pki: PkiFixture, data: bytes, timestamper: Any = None) -> cms.ContentInfo:
    """An RFC 3161 token from the test TSA over ``data``."""
    stamper = timestamper or pki.timestamper
    token: cms.ContentInfo = asyncio.run(
        stamper.async_timestamp(hashlib.sha256(data).digest(), "sha256"))
    return token


def tsd_file(pki: PkiFixture, content: bytes, *, file_name: str = "modulo.pdf.p7m",
             hash_protected: bool = False, timestamper: Any = None) -> bytes:
    """An RFC 5544 ``.tsd`` around ``content`` with one token from the test TSA."""
    meta = tsp.MetaData({"hash_protected": hash_protected, "file_name": file_name,
                         "media_type": "application/pkcs7-mime"})
    covered = (meta.dump() if hash_protected else b"") + content
    token = token_over(pki, covered, timestamper)
    info = TimeStampedDataInfo({
        "content_type": TIMESTAMPED_DATA_OID,
        "content": {
            "version": 1,
            "meta_data": meta,
            "content": content,
            "temporal_evidence": {"tst_evidence": [{"time_stamp": token}]},
        },
    })
    return bytes(info.dump())


def tsr_over(pki: PkiFixture, data: bytes, timestamper: Any = None) -> bytes:
    """A ``.tsr`` (TimeStampResp) over ``data``."""
    response = tsp.TimeStampResp({
        "status": {"status": "granted"}, "time_stamp_token": token_over(pki, data, timestamper)})
    return bytes(response.dump())


def m7m_bundle(p7m: bytes, tsr: bytes) -> bytes:
    """A ``.m7m``: the MIME bundle of a ``.p7m`` and its ``.tsr``."""
    bundle = EmailMessage(policy=SMTP)
    bundle["MIME-Version"] = "1.0"
    bundle.set_content("Marca temporale\n")
    bundle.add_attachment(p7m, maintype="application", subtype="pkcs7-mime",
                          filename="modulo.pdf.p7m")
    bundle.add_attachment(tsr, maintype="application", subtype="timestamp-reply",
                          filename="modulo.pdf.p7m.tsr")
    return bundle.as_bytes()


def altered(p7m: bytes, inner: bytes) -> bytes:
    """``p7m`` with one byte of its eContent (``inner``) flipped, as a relay or an editor would."""
    at = p7m.find(inner) + len(inner) // 2
    assert at > len(inner) // 2
    return p7m[:at] + bytes([p7m[at] ^ 0x01]) + p7m[at + 1:]


def judge(pki: PkiFixture, data: bytes, timestamp: bytes | None = None,
          **settings: Any) -> SignedFile:
    return InProcessVerifier(pki.settings(**settings)).verify_signed_file_sync(data, timestamp=timestamp)


@pytest.fixture(scope="module")
def form(pki: PkiFixture) -> bytes:
    return pki.form_pdf({"org_name": "Comune di Cefalù", "contact_email": "protocollo@pec.example.it"},
                        form_id="service-publication")


def _root_pem(pki: PkiFixture, tmp_path: Path) -> Path:
    bundle = tmp_path / "roots.pem"
    bundle.write_bytes(b"".join(Path(p).read_bytes() for p in pki.trust_roots))
    return bundle


# -- recognition ---------------------------------------------------------------------------


def test_p7m_is_recognised_by_content_not_by_the_pdf_inside(pki: PkiFixture, form: bytes) -> None:
    p7m = enveloping(pki, form)
    assert b"%PDF-" in p7m  # the PDF shows through the DER ...
    assert content_kind(p7m) == "p7m"  # ... but the file is a .p7m
    assert sniff(p7m) == "p7m"
    assert read_cms(p7m) is not None and read_cms(p7m)[0] == "der"  # type: ignore[index]
    # A PDF, a detached .p7s (no eContent) and random DER are not .p7m files.
    assert read_cms(form) is None and content_kind(form) == "pdf"
    assert read_cms(detached_signature(form, pki.signer("qualified"))) is None
    assert read_cms(b"\x30\x03\x02\x01\x01" + b"\x00" * 20) is None
    csr_der = x509.load_pem_x509_csr(make_csr("Comune di Cefalù")).public_bytes(Encoding.DER)
    assert read_cms(csr_der) is None and sniff(csr_der) is None
    assert read_cms(base64.encodebytes(b"just some text that is base64-ish")) is None
    # Bytes after the SignedData (other than padding) are not tolerated.
    assert read_cms(p7m + b"junk") is None
    assert read_cms(p7m + b"\r\n") is not None


def test_good_der_p7m_is_judged_like_a_signed_pdf(pki: PkiFixture, form: bytes,
                                                   tmp_path: Path) -> None:
    p7m = enveloping(pki, form)
    signed = judge(pki, p7m)
    assert signed.container == "p7m"
    assert signed.content == form and signed.content_type == "pdf"
    assert verifier_codes(signed.verdict) == () and verifier_ok(signed.verdict)
    (level,) = signed.levels
    assert level.depth == 1 and level.encoding == "der" and level.content_type == "data"
    (status,) = level.verdict.signatures
    assert status.kind == "p7m" and status.intact and status.valid and status.trusted
    assert status.timestamp_present and status.timestamp_valid and status.timestamp_trusted
    assert status.qualification is not None and status.qualification.qualified
    assert signed.verdict.signer is not None
    assert signed.verdict.signer.personal_code == QUALIFIED_PERSONAL_CODE
    # An independent tool agrees and extracts the same content.
    (tmp_path / "modulo.pdf.p7m").write_bytes(p7m)
    out = tmp_path / "modulo.pdf"
    subprocess.run(
        ["openssl", "cms", "-verify", "-binary", "-inform", "DER",
         "-in", str(tmp_path / "modulo.pdf.p7m"), "-CAfile", str(_root_pem(pki, tmp_path)),
         "-purpose", "any", "-out", str(out)],
        check=True, capture_output=True)
    assert out.read_bytes() == form


def test_base64_and_pem_p7m_are_read(pki: PkiFixture, form: bytes) -> None:
    p7m = enveloping(pki, form)
    for encoded, encoding in (
        (base64.encodebytes(p7m), "base64"),
        (base64.b64encode(p7m), "base64"),
        (b"-----BEGIN PKCS7-----\n" + base64.encodebytes(p7m) + b"-----END PKCS7-----\n", "pem"),
    ):
        signed = judge(pki, encoded)
        assert signed.levels[0].encoding == encoding
        assert verifier_codes(signed.verdict) == ()
        assert signed.content == form


def test_same_codes_as_the_detached_p7s_judgement(pki: PkiFixture, form: bytes) -> None:
    verifier = InProcessVerifier(pki.settings())
    for signer, timestamp in (("qualified", True), ("nonqualified", True), ("qualified", False)):
        p7m = enveloping(pki, form, signer, timestamp=timestamp)
        p7s = detached_signature(form, pki.signer(signer), pki.timestamper if timestamp else None)
        detached = verifier.verify_detached_sync(form, p7s)
        enveloped = verifier.verify_signed_file_sync(p7m).verdict
        assert verifier_codes(enveloped) == verifier_codes(detached), signer


# -- verdicts ----------------------------------------------------------------------------


def test_altered_econtent_is_an_invalid_signature(pki: PkiFixture, form: bytes) -> None:
    signed = judge(pki, altered(enveloping(pki, form), form))
    assert "SIG-INVALID" in verifier_codes(signed.verdict)
    (status,) = signed.levels[0].verdict.signatures
    assert not status.intact
    assert "does not match the signature's digest" in " ".join(status.notes)


def test_signature_without_timestamp_has_no_timestamp(pki: PkiFixture, form: bytes) -> None:
    # The fact; TS-MISSING is the rules' (tests/test_qualification_rules.py).
    signed = judge(pki, enveloping(pki, form, timestamp=False))
    assert verifier_codes(signed.verdict) == ()
    assert not signed.levels[0].verdict.signatures[0].timestamp_present


def test_non_qualified_and_untrusted_signers(pki: PkiFixture, form: bytes) -> None:
    nonqualified = judge(pki, enveloping(pki, form, "nonqualified")).verdict
    assert verifier_codes(nonqualified) == ()
    (sig,) = nonqualified.signatures
    assert sig.trusted and sig.qualification is not None and not sig.qualification.qualified
    untrusted = judge(pki, enveloping(pki, form, "untrusted"))
    assert verifier_codes(untrusted.verdict) == ("SIG-UNTRUSTED",)


def test_revoked_signer_is_revoked(pki: PkiFixture, form: bytes) -> None:
    assert "SIG-CERT-REVOKED" in verifier_codes(judge(pki, enveloping(pki, form, "revoked")).verdict)


def test_nested_p7m_judges_every_level(pki: PkiFixture, form: bytes) -> None:
    inner = enveloping(pki, form, "nonqualified")
    outer = enveloping(pki, inner, "qualified-2")
    signed = judge(pki, base64.encodebytes(outer))
    assert [level.depth for level in signed.levels] == [1, 2]
    assert [level.encoding for level in signed.levels] == ["base64", "der"]
    assert verifier_codes(signed.levels[0].verdict) == ()
    assert verifier_codes(signed.levels[1].verdict) == ()
    qualified = [(s.qualification is not None and s.qualification.qualified)
                 for s in signed.verdict.signatures]
    assert qualified == [False, True]  # the inner (nonqualified) signer first
    # Signing order: the inner signer first; the outermost signer is "the" signer.
    assert [s.field_name for s in signed.verdict.signatures] == ["level 2 of 2", "level 1 of 2"]
    assert signed.verdict.signer is not None
    assert signed.verdict.signer.common_name == "Jānis Bērziņš"
    assert signed.content == form and signed.content_type == "pdf"


def test_altered_inner_level_is_caught_at_its_level(pki: PkiFixture, form: bytes) -> None:
    inner = altered(enveloping(pki, form), form)
    signed = judge(pki, enveloping(pki, inner, "qualified-2"))
    assert verifier_codes(signed.levels[0].verdict) == ()
    assert verifier_codes(signed.levels[1].verdict) == ("SIG-INVALID",)


def test_nesting_is_bounded(pki: PkiFixture, form: bytes) -> None:
    data = form
    for _ in range(MAX_DEPTH):
        data = enveloping(pki, data, timestamp=False)
    assert len(judge(pki, data).levels) == MAX_DEPTH
    with pytest.raises(UnreadableInput, match="nested deeper"):
        judge(pki, enveloping(pki, data, timestamp=False))


def test_not_a_signed_file_is_unreadable(pki: PkiFixture, form: bytes) -> None:
    with pytest.raises(UnreadableInput, match="not a .p7m"):
        judge(pki, form)


# -- time-stamped files ----------------------------------------------------------------------


def test_tsd_dates_a_p7m_without_its_own_timestamp(pki: PkiFixture, form: bytes,
                                                   tmp_path: Path) -> None:
    p7m = enveloping(pki, form, timestamp=False)
    data = tsd_file(pki, p7m)
    assert sniff(data) == "tsd" and content_kind(data) == "tsd"
    parsed = read_tsd(data)
    assert parsed.content == p7m and parsed.file_name == "modulo.pdf.p7m"
    signed = judge(pki, data)
    assert signed.container == "tsd" and signed.file_name == "modulo.pdf.p7m"
    assert verifier_codes(signed.verdict) == ()
    (stamp,) = signed.timestamps
    assert stamp.source == "tsd" and stamp.imprint_matches and stamp.valid and stamp.trusted
    assert stamp.qualification is not None and stamp.qualification.qualified
    assert stamp.tsa is not None and stamp.time is not None
    (status,) = signed.levels[0].verdict.signatures
    assert status.timestamp_present and status.timestamp_time == stamp.time
    assert "dated by the time-stamp over the whole file" in status.notes
    assert signed.content == form
    # openssl agrees with the token over the .p7m.
    token = tmp_path / "token.der"
    token.write_bytes(read_tsd(data).tokens[0][0].dump())
    (tmp_path / "modulo.pdf.p7m").write_bytes(p7m)
    subprocess.run(
        ["openssl", "ts", "-verify", "-token_in", "-in", str(token),
         "-data", str(tmp_path / "modulo.pdf.p7m"), "-CAfile", str(_root_pem(pki, tmp_path))],
        check=True, capture_output=True)


def test_tsd_with_hash_protected_metadata(pki: PkiFixture, form: bytes) -> None:
    data = tsd_file(pki, enveloping(pki, form, timestamp=False), hash_protected=True)
    assert verifier_codes(judge(pki, data).verdict) == ()
    # The file name is protected: renaming it breaks the imprint.
    renamed = data.replace(b"modulo.pdf.p7m", b"modulo.pdf.p7x", 1)
    signed = judge(pki, renamed)
    assert not signed.timestamps[0].imprint_matches
    assert "TS-INVALID" in verifier_codes(signed.verdict)


def test_tsd_over_other_content_is_ts_invalid(pki: PkiFixture, form: bytes) -> None:
    p7m = enveloping(pki, form, timestamp=False)
    good = tsd_file(pki, p7m)
    swapped = good.replace(p7m, altered(p7m, form))  # the content changed after stamping
    assert len(swapped) == len(good) and swapped != good
    signed = judge(pki, swapped)
    assert verifier_codes(signed.timestamps[0]) == ("TS-INVALID",)
    assert not signed.timestamps[0].imprint_matches
    # It dated the signer, whose own signature is broken too.
    assert verifier_codes(signed.levels[0].verdict) == ("SIG-INVALID", "TS-INVALID")


def test_tsd_from_untrusted_tsa_is_ts_untrusted(pki: PkiFixture, form: bytes) -> None:
    data = tsd_file(pki, enveloping(pki, form, timestamp=False),
                    timestamper=pki.untrusted_timestamper)
    signed = judge(pki, data)
    assert "TS-UNTRUSTED" in verifier_codes(signed.timestamps[0])
    assert "TS-UNTRUSTED" in verifier_codes(signed.verdict)


def test_tsd_around_a_bare_pdf_has_no_enveloping_signature(pki: PkiFixture, form: bytes) -> None:
    signed = judge(pki, tsd_file(pki, form, file_name="modulo.pdf"))
    assert signed.levels == () and signed.content == form and signed.content_type == "pdf"
    assert signed.timestamps[0].valid
    assert verifier_codes(signed.verdict) == ("SIG-MISSING",)


def test_tsd_without_embedded_content_is_unreadable(pki: PkiFixture) -> None:
    token = token_over(pki, b"elsewhere")
    info = TimeStampedDataInfo({
        "content_type": TIMESTAMPED_DATA_OID,
        "content": {"version": 1, "data_uri": "https://example.it/modulo.pdf",
                    "temporal_evidence": {"tst_evidence": [{"time_stamp": token}]}},
    })
    with pytest.raises(UnreadableInput, match="does not embed its content"):
        judge(pki, info.dump())


def test_m7m_bundle_is_read_and_paired(pki: PkiFixture, form: bytes, tmp_path: Path) -> None:
    p7m = enveloping(pki, form, timestamp=False)
    tsr = tsr_over(pki, p7m)
    bundle = m7m_bundle(p7m, tsr)
    assert sniff(bundle) == "m7m"
    signed = judge(pki, bundle)
    assert signed.container == "m7m"
    assert verifier_codes(signed.verdict) == ()
    assert signed.timestamps[0].source == "m7m" and signed.timestamps[0].valid
    assert signed.content == form
    (tmp_path / "x.tsr").write_bytes(tsr)
    (tmp_path / "x.p7m").write_bytes(p7m)
    subprocess.run(
        ["openssl", "ts", "-verify", "-in", str(tmp_path / "x.tsr"), "-data",
         str(tmp_path / "x.p7m"), "-CAfile", str(_root_pem(pki, tmp_path))],
        check=True, capture_output=True)


def test_detached_tsr_is_paired_with_its_p7m(pki: PkiFixture, form: bytes) -> None:
    p7m = enveloping(pki, form, timestamp=False)
    alone = judge(pki, p7m).verdict
    assert verifier_codes(alone) == () and not alone.signatures[0].timestamp_present
    paired = judge(pki, p7m, timestamp=tsr_over(pki, p7m))
    assert verifier_codes(paired.verdict) == ()
    # The .tsr dates the signer that has no signature time-stamp of its own.
    assert paired.verdict.signatures[0].timestamp_present
    assert paired.timestamps[0].source == "tsr"
    # A bare token (not a TimeStampResp) is accepted too.
    assert verifier_codes(judge(pki, p7m, timestamp=token_over(pki, p7m).dump()).verdict) == ()
    # A .tsr over other bytes does not date this file.
    wrong = judge(pki, p7m, timestamp=tsr_over(pki, form))
    assert "TS-INVALID" in verifier_codes(wrong.verdict)
    garbage = judge(pki, p7m, timestamp=b"not a time-stamp")
    assert "TS-INVALID" in verifier_codes(garbage.verdict)


def test_signature_timestamp_wins_over_the_file_timestamp(pki: PkiFixture, form: bytes) -> None:
    p7m = enveloping(pki, form)  # has its own signature time-stamp
    signed = judge(pki, p7m, timestamp=tsr_over(pki, p7m, pki.untrusted_timestamper))
    (status,) = signed.levels[0].verdict.signatures
    assert status.timestamp_trusted  # its own token, not the file's
    assert verifier_codes(signed.levels[0].verdict) == ()
    assert verifier_codes(signed.timestamps[0]) == ("TS-UNTRUSTED",)  # still reported


def test_isolated_verifier_returns_the_same_facts(pki: PkiFixture, form: bytes) -> None:
    p7m = enveloping(pki, form, timestamp=False)
    verifier = IsolatedVerifier(pki.settings())
    try:
        signed = verifier.verify_signed_file_sync(tsd_file(pki, p7m))
    finally:
        verifier.close()
    assert verifier_codes(signed.verdict) == ()
    assert signed.content == form and signed.timestamps[0].valid


def test_tsd_structure_is_rfc5544(pki: PkiFixture, form: bytes) -> None:
    """The evidence is the IMPLICIT [0] SEQUENCE OF TimeStampAndCRL, each a ContentInfo token."""
    data = tsd_file(pki, form)
    info = cms.ContentInfo.load(data)
    assert info["content_type"].dotted == TIMESTAMPED_DATA_OID
    tsd = TimeStampedDataInfo.load(data)["content"]
    evidence = tsd["temporal_evidence"]
    assert evidence.name == "tst_evidence"
    assert evidence.chosen.dump()[:1] == b"\xa0"  # [0] IMPLICIT, constructed


def test_openssl_streamed_ber_p7m_is_read(pki: PkiFixture, form: bytes, tmp_path: Path) -> None:
    """``openssl cms -sign -nodetach -stream``: BER, indefinite lengths, chunked eContent.

    Italian signing tools often write this form; the eContent is joined from its
    chunks and the signature judged like any other (no time-stamp: TS-MISSING).
    """
    (tmp_path / "modulo.pdf").write_bytes(form)
    out = tmp_path / "modulo.pdf.p7m"
    demo = pki.pki
    subprocess.run(
        ["openssl", "cms", "-sign", "-nodetach", "-binary", "-stream", "-cades", "-md", "sha256",
         "-in", str(tmp_path / "modulo.pdf"), "-signer", str(demo.cert_path("qualified")),
         "-inkey", str(demo.key_path("qualified")), "-certfile",
         str(demo.cert_path("ca-qualified")), "-outform", "DER", "-out", str(out)],
        check=True, capture_output=True)
    data = out.read_bytes()
    assert data[1:2] == b"\x80"  # indefinite length: BER, not DER
    signed = judge(pki, data)
    assert signed.content == form and signed.content_type == "pdf"
    assert verifier_codes(signed.verdict) == ()
    status = signed.verdict.signatures[0]
    assert status.intact and status.valid and status.trusted
    assert not status.timestamp_present  # the rules' TS-MISSING
    altered_ber = altered(data, form[:512])
    assert "SIG-INVALID" in verifier_codes(judge(pki, altered_ber).verdict)


def test_countersignature_is_noted_not_judged(pki: PkiFixture, form: bytes) -> None:
    p7m = enveloping(pki, form)
    info = cms.ContentInfo.load(p7m)
    signer_info = info["content"]["signer_infos"][0]
    counter = cms.ContentInfo.load(detached_signature(
        signer_info["signature"].native, pki.signer("qualified-2")))["content"]["signer_infos"][0]
    unsigned = list(signer_info["unsigned_attrs"]) if signer_info["unsigned_attrs"].native else []
    unsigned.append(cms.CMSAttribute({"type": "counter_signature", "values": [counter]}))
    signer_info["unsigned_attrs"] = cms.CMSAttributes(unsigned)
    signed = judge(pki, info.dump(force=True))
    assert verifier_codes(signed.verdict) == ()  # the signer's own signature still holds
    assert any("countersignature" in note for note in signed.verdict.notes)
