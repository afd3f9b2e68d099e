"""Genuine signatures judged genuine, and one broken one judged broken (issue 14).

* Estonian ID-card certificates of 2011-2015 encode the RSA modulus as a
  negative INTEGER: their PAdES and XAdES signatures are intact (SIG-UNTRUSTED
  without an anchor), and still broken when their bytes are changed.
* A PDF signature whose CMS carries more than one SignerInfo is judged signer
  by signer.
* An XAdES data file covered only by a counter-signature is covered.
* An (ECDSA) PAdES signature whose signed attributes are not DER-sorted is
  SIG-INVALID, as DSS and the ETSI plug-tests judge it (HASH_FAILURE).

Real files come from the shared corpus and from tests/data/signed (see its
README); the test PKI builds the rest.
"""

from __future__ import annotations

import base64
import io
import zipfile
from pathlib import Path
from typing import Any

import pytest
from asn1crypto import cms
from lxml import etree
from pyhanko.sign import signers

from intake.demo.samples import filled_form
from signing.asic.container import DS_NS
from signing.settings import VerifierSettings
from signing.status import FormVerdict
from signing.testing.pdfs import sign_pdf
from signing.tolerant import NEGATIVE_MODULUS_NOTE
from signing.verifier import InProcessVerifier
from tests.daemon_env import EA, GOOD
from tests.fixtures.pki import PkiFixture
from tests.judged import verifier_codes
from tests.shared import CORPUS

DATA = Path(__file__).resolve().parent / "data" / "signed"
ESTONIAN_PADES = CORPUS / "digidoc4j" / "hellopades-pades-lt-sha256-sign.pdf"
ESTONIAN_XADES = DATA / "libdigidocpp-tsl.asice"
DOUBLE_SIGNER_INFO = DATA / "eu-dss-pdf-double-signer-info.pdf"
UNSORTED_ECDSA = DATA / "eu-dss-Signature-P-IT_ADO-1-HASH_FAILURE-ECDSA.pdf"
COUNTER_SIGNED = DATA / "eu-dss-container-with-counter-signature.asice"


def untrusting() -> InProcessVerifier:
    """A verifier with no anchor and no network, as for files of foreign PKIs."""
    return InProcessVerifier(VerifierSettings(trust_roots=(), allow_fetching=False))


def notes_of(verdict: FormVerdict) -> list[str]:
    return [note for status in verdict.signatures for note in status.notes]


def signature_value_of(pdf: bytes) -> bytes:
    """The SignerInfo signature inside the PDF's first /Contents (its first signature)."""
    start = pdf.index(b"/Contents <") + len(b"/Contents <")
    end = pdf.index(b">", start)
    content_info = cms.ContentInfo.load(bytes.fromhex(pdf[start:end].decode()))
    value: bytes = content_info["content"]["signer_infos"][0]["signature"].native
    return value


def flip_in_hex(pdf: bytes, raw: bytes) -> bytes:
    """``pdf`` with one bit of ``raw`` flipped where it stands hex-encoded in the file."""
    for spelling in (raw.hex().encode(), raw.hex().upper().encode()):
        if spelling in pdf:
            flipped = bytearray(raw)
            flipped[len(raw) // 2] ^= 0x01
            new = bytes(flipped).hex().encode()
            return pdf.replace(spelling, new if spelling.islower() else new.upper())
    raise AssertionError("signature value not found in the PDF")


# -- negative RSA modulus -------------------------------------------------------------


def test_estonian_negative_modulus_pades_is_intact_and_untrusted() -> None:
    verdict = untrusting().verify_pdf_sync(ESTONIAN_PADES.read_bytes())
    (status,) = verdict.signatures
    assert status.intact and status.valid, status.notes
    assert "SIG-INVALID" not in verifier_codes(verdict)
    assert "SIG-UNTRUSTED" in verifier_codes(verdict)
    assert NEGATIVE_MODULUS_NOTE in status.notes
    assert status.signer is not None and status.signer.personal_code


def test_estonian_negative_modulus_pades_with_changed_signature_is_invalid() -> None:
    data = ESTONIAN_PADES.read_bytes()
    changed = flip_in_hex(data, signature_value_of(data))
    verdict = untrusting().verify_pdf_sync(changed)
    assert "SIG-INVALID" in verifier_codes(verdict)
    assert not verdict.signatures[0].valid


def test_estonian_negative_modulus_xades_is_intact_and_untrusted() -> None:
    verdict = untrusting().verify_asic_sync(ESTONIAN_XADES.read_bytes()).verdict
    (status,) = verdict.signatures
    assert status.intact and status.valid, status.notes
    assert "SIG-INVALID" not in verifier_codes(verdict)
    assert "SIG-UNTRUSTED" in verifier_codes(verdict)
    assert NEGATIVE_MODULUS_NOTE in status.notes


def _rewrite_entry(container: bytes, name: str, edit: Any) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(container)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            content = source.read(info)
            target.writestr(info, edit(content) if info.filename == name else content)
    return out.getvalue()


def test_estonian_negative_modulus_xades_with_changed_signature_is_invalid() -> None:
    def flip(document: bytes) -> bytes:
        root = etree.fromstring(document)
        value = next(root.iter(f"{{{DS_NS}}}SignatureValue"))
        raw = bytearray(base64.b64decode("".join((value.text or "").split())))
        raw[20] ^= 0x01
        value.text = base64.b64encode(bytes(raw)).decode()
        result: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
        return result

    changed = _rewrite_entry(ESTONIAN_XADES.read_bytes(), "META-INF/signatures0.xml", flip)
    verdict = untrusting().verify_asic_sync(changed).verdict
    assert "SIG-INVALID" in verifier_codes(verdict)
    assert not verdict.signatures[0].valid


# -- several SignerInfos in one PDF signature ---------------------------------------------


def test_dss_pdf_with_two_signer_infos_is_judged_signer_by_signer() -> None:
    verdict = untrusting().verify_pdf_sync(DOUBLE_SIGNER_INFO.read_bytes())
    assert [s.field_name for s in verdict.signatures] == [
        "Signature1 (signer 1 of 2)", "Signature1 (signer 2 of 2)"]
    assert all(s.intact and s.valid for s in verdict.signatures)
    assert "SIG-INVALID" not in verifier_codes(verdict)
    assert "SIG-UNTRUSTED" in verifier_codes(verdict)
    assert any("carries 2 SignerInfos" in note for note in verdict.notes)


def _with_signer_infos(pdf: bytes, edit: Any) -> bytes:
    """``pdf`` with its signature's SignerInfos replaced by ``edit(signer_infos)``."""
    start = pdf.rindex(b"/Contents <") + len(b"/Contents <")
    end = pdf.index(b">", start)
    content_info = cms.ContentInfo.load(bytes.fromhex(pdf[start:end].decode()))
    signed_data = content_info["content"]
    signed_data["signer_infos"] = cms.SignerInfos(edit(list(signed_data["signer_infos"])))
    encoded = content_info.dump(force=False).hex().encode()
    assert len(encoded) <= end - start
    return pdf[:start] + encoded.ljust(end - start, b"0") + pdf[end:]


def _second_signer_info(info: cms.SignerInfo, *, broken: bool) -> cms.SignerInfo:
    copy = info.copy()
    if broken:
        value = bytearray(copy["signature"].native)
        value[5] ^= 0x01
        copy["signature"] = bytes(value)
    return copy


def test_two_signer_infos_of_a_genuine_signer_are_both_sound(pki: PkiFixture) -> None:
    signed = pki.sign(filled_form(EA, GOOD), bytes_reserved=32768)
    twice = _with_signer_infos(signed, lambda infos: [infos[0], _second_signer_info(
        infos[0], broken=False)])
    verdict = InProcessVerifier(pki.settings()).verify_pdf_sync(twice)
    assert len(verdict.signatures) == 2
    assert verifier_codes(verdict) == (), notes_of(verdict)


def test_a_broken_second_signer_info_is_sig_invalid_on_that_signer_only(
        pki: PkiFixture) -> None:
    signed = pki.sign(filled_form(EA, GOOD), bytes_reserved=32768)
    twice = _with_signer_infos(signed, lambda infos: [infos[0], _second_signer_info(
        infos[0], broken=True)])
    verdict = InProcessVerifier(pki.settings()).verify_pdf_sync(twice)
    # A SET OF is written sorted, so either may come first. The broken copy's
    # time-stamp is over the original SignatureValue: TS-INVALID as well.
    assert sorted(verifier_codes(s) for s in verdict.signatures) == [(), ("SIG-INVALID", "TS-INVALID")]
    assert verifier_codes(verdict) == ("SIG-INVALID", "TS-INVALID")


# -- counter-signatures ---------------------------------------------------------------------


def test_data_file_covered_by_a_counter_signature_is_covered() -> None:
    verdict = untrusting().verify_asic_sync(COUNTER_SIGNED.read_bytes()).verdict
    main, counter = verdict.signatures
    assert "counter-signature" in (counter.field_name or "")
    assert counter.intact and counter.valid, counter.notes
    assert "SIG-INVALID" not in verifier_codes(verdict), notes_of(verdict)
    assert "SIG-UNTRUSTED" in verifier_codes(verdict)
    assert any("covered by a counter-signature only" in note for note in main.notes)


def test_changed_file_under_a_counter_signature_is_sig_invalid() -> None:
    changed = _rewrite_entry(COUNTER_SIGNED.read_bytes(), "service-body.json",
                             lambda content: content.replace(b"1", b"2", 1))
    verdict = untrusting().verify_asic_sync(changed).verdict
    assert "SIG-INVALID" in verifier_codes(verdict)
    main, counter = verdict.signatures
    assert "SIG-INVALID" in verifier_codes(counter) and "SIG-INVALID" in verifier_codes(main)


# -- signed attributes not in DER order --------------------------------------------------------


def test_dss_ecdsa_signature_with_unsorted_signed_attributes_is_sig_invalid() -> None:
    verdict = untrusting().verify_pdf_sync(UNSORTED_ECDSA.read_bytes())
    assert "SIG-INVALID" in verifier_codes(verdict)
    assert any("not DER-encoded" in note for note in notes_of(verdict))


class UnsortedAttributesSigner(signers.SimpleSigner):
    """Signs its signed attributes in reversed, non-DER SET order."""

    async def signed_attrs(self, *args: Any, **kwargs: Any) -> cms.CMSAttributes:
        attributes = await super().signed_attrs(*args, **kwargs)
        encodings = sorted(attribute.dump() for attribute in attributes)
        body = b"".join(reversed(encodings))
        assert encodings != list(reversed(encodings))
        return cms.CMSAttributes.load(b"\x31" + _der_length(len(body)) + body)


def _der_length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    octets = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(octets)]) + octets


@pytest.mark.parametrize("unsorted", [False, True], ids=["sorted", "unsorted"])
def test_test_pki_signature_with_unsorted_signed_attributes_is_sig_invalid(
        pki: PkiFixture, unsorted: bool) -> None:
    base = pki.signer("qualified")
    signer: signers.SimpleSigner = base
    if unsorted:
        signer = UnsortedAttributesSigner(signing_cert=base.signing_cert,
                                          signing_key=base.signing_key,
                                          cert_registry=base.cert_registry)
    signed = sign_pdf(filled_form(EA, GOOD), signer, timestamper=pki.timestamper)
    verdict = InProcessVerifier(pki.settings()).verify_pdf_sync(signed)
    (status,) = verdict.signatures
    # The bytes verify either way; only the encoding differs.
    assert status.intact and status.valid
    assert verifier_codes(verdict) == (("SIG-INVALID",) if unsorted else ()), status.notes


# -- a negative modulus under a trust anchor (the test PKI) -----------------------------------


def _negative_modulus_signer(pki: PkiFixture) -> signers.SimpleSigner:
    """The qualified test signer re-issued (same serial) for a key whose modulus
    is encoded without DER's leading zero octet, i.e. as a negative INTEGER."""
    from asn1crypto import keys
    from asn1crypto import x509 as asn1_x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    demo = pki.pki
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.public_key().public_numbers()
    modulus = numbers.n.to_bytes(256, "big")
    assert modulus[0] & 0x80  # DER would need a leading zero here; it is left out.
    exponent = numbers.e.to_bytes(3, "big")
    rsa_key = (b"\x30\x82" + (4 + 256 + 2 + 3).to_bytes(2, "big")
               + b"\x02\x82\x01\x00" + modulus + b"\x02\x03" + exponent)
    bit_string = b"\x03\x82" + (len(rsa_key) + 1).to_bytes(2, "big") + b"\x00" + rsa_key
    algorithm = bytes.fromhex("300d06092a864886f70d0101010500")
    spki = b"\x30\x82" + (len(algorithm) + len(bit_string)).to_bytes(2, "big") + algorithm \
        + bit_string
    public_key = keys.PublicKeyInfo.load(spki)
    assert public_key["public_key"].parsed["modulus"].native < 0

    original = demo.asn1_certificate("qualified")
    tbs = original["tbs_certificate"].copy()
    tbs["subject_public_key_info"] = public_key
    issuer_key = demo.keys["ca-qualified"]
    assert isinstance(issuer_key, rsa.RSAPrivateKey)
    value = issuer_key.sign(tbs.dump(), padding.PKCS1v15(), hashes.SHA256())
    certificate = asn1_x509.Certificate({
        "tbs_certificate": tbs,
        "signature_algorithm": original["signature_algorithm"],
        "signature_value": value,
    })
    private = keys.PrivateKeyInfo.load(key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    base = pki.signer("qualified")
    return signers.SimpleSigner(signing_cert=certificate, signing_key=private,
                                cert_registry=base.cert_registry)


def test_negative_modulus_signer_under_an_anchor_is_accepted(pki: PkiFixture) -> None:
    signed = sign_pdf(filled_form(EA, GOOD), _negative_modulus_signer(pki),
                      timestamper=pki.timestamper)
    verdict = InProcessVerifier(pki.settings()).verify_pdf_sync(signed)
    (status,) = verdict.signatures
    assert verifier_codes(verdict) == (), status.notes
    assert status.trusted and status.intact and status.valid
    assert NEGATIVE_MODULUS_NOTE in status.notes


# -- several SignerInfos in a detached .p7s -------------------------------------------------


def co_signed(content: bytes, pki: PkiFixture, *, broken_second: bool = False) -> bytes:
    """One detached CMS over ``content`` by two signers (qualified, qualified-2)."""
    from intake.demo.samples import detached_signature

    first = cms.ContentInfo.load(detached_signature(content, pki.signer("qualified"),
                                                    pki.timestamper))
    second = cms.ContentInfo.load(detached_signature(content, pki.signer("qualified-2"),
                                                     pki.timestamper))
    other = second["content"]["signer_infos"][0].copy()
    if broken_second:
        other = _second_signer_info(other, broken=True)
    signed_data = first["content"]
    known = {c.dump() for c in signed_data["certificates"]}
    certificates = list(signed_data["certificates"]) + [
        c for c in second["content"]["certificates"] if c.dump() not in known]
    signed_data["certificates"] = cms.CertificateSet(certificates)
    signed_data["signer_infos"] = cms.SignerInfos(
        [signed_data["signer_infos"][0].copy(), other])
    return bytes(first.dump(force=False))


def test_co_signed_p7s_is_judged_signer_by_signer(pki: PkiFixture) -> None:
    form = filled_form(EA, GOOD)
    verdict = InProcessVerifier(pki.settings()).verify_detached_sync(form, co_signed(form, pki))
    assert len(verdict.signatures) == 2
    assert verifier_codes(verdict) == (), notes_of(verdict)
    codes = {s.signer.personal_code for s in verdict.signatures if s.signer is not None}
    assert len(codes) == 2


def test_co_signed_p7s_with_one_broken_signer_is_sig_invalid(pki: PkiFixture) -> None:
    form = filled_form(EA, GOOD)
    verdict = InProcessVerifier(pki.settings()).verify_detached_sync(
        form, co_signed(form, pki, broken_second=True))
    assert "SIG-INVALID" in verifier_codes(verdict)
    assert sorted("SIG-INVALID" in verifier_codes(s) for s in verdict.signatures) == [False, True]
