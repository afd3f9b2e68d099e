"""ASiC-E containers (XAdES, and CAdES) judged with the codes of a signed PDF, on the real test PKI.

Containers are signed here with :func:`signing.testing.xades.make_asice` by the demo
PKI's signers, time-stamped by the fixture's RFC 3161 service, and validated
with OCSP and CRLs fetched from the fixture's loopback server. The corpus's
real containers must end in a verdict or :class:`UnreadableInput`, never a crash.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import pickle
import struct
import warnings
import zipfile
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import pytest
from lxml import etree
from pyhanko.sign.timestamps import TimeStamper

from signing.asic.container import ASIC_E_MIMETYPE, ASIC_NS, DS_NS, XADES_NS, read_container
from signing.settings import VerifierSettings
from signing.status import AsicVerdict, UnreadableInput
from signing.testing.pki import QUALIFIED_2_PERSONAL_CODE, QUALIFIED_PERSONAL_CODE
from signing.testing.xades import async_sign_xades, make_asice, pack_asice
from signing.verifier import InProcessVerifier
from tests.fixtures.pki import PkiFixture
from tests.judged import pickled_parsers, unreadable_codes, verifier_codes, verifier_ok
from tests.shared import CORPUS

FORM = "pieteikums.pdf"
ASIC_SUFFIXES = (".asice", ".edoc", ".bdoc", ".sce")
CORPUS_CONTAINERS = sorted(p for p in CORPUS.glob("**/*") if p.suffix in ASIC_SUFFIXES)


def verify(pki: PkiFixture, data: bytes, **settings: object) -> AsicVerdict:
    return asyncio.run(InProcessVerifier(pki.settings(**settings)).verify_asic(data))


def files(pki: PkiFixture, *extra: tuple[str, bytes]) -> list[tuple[str, bytes]]:
    return [(FORM, pki.form_pdf()), *extra]


def signature(
    pki: PkiFixture,
    signed_files: list[tuple[str, bytes]],
    signer: str = "qualified",
    *,
    timestamper: TimeStamper | None = None,
    timestamp: bool = True,
) -> bytes:
    """A ``signatures.xml`` document by ``signer`` over ``signed_files``."""
    stamper = (timestamper or pki.timestamper) if timestamp else None
    return asyncio.run(async_sign_xades(signed_files, pki.signer(signer), timestamper=stamper))


def container(
    pki: PkiFixture,
    signer: str = "qualified",
    *,
    timestamper: TimeStamper | None = None,
    timestamp: bool = True,
) -> bytes:
    stamper = (timestamper or pki.timestamper) if timestamp else None
    return make_asice(files(pki), pki.signer(signer), timestamper=stamper)


def _edit_signature(document: bytes, tag: str, edit: str) -> bytes:
    """Replace the text of the first ``tag`` (``{ns}local``) in a signature document."""
    root = etree.fromstring(document)
    node = next(root.iter(tag))
    node.text = edit
    result: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    return result


# -- valid containers ---------------------------------------------------------------------


def test_valid_qualified_xades_bt_container_is_ok(pki: PkiFixture) -> None:
    form = pki.form_pdf({"org_name": "SIA Bērziņi", "contact_email": "anna@example.lv"})
    data = make_asice([(FORM, form)], pki.signer("qualified"), timestamper=pki.timestamper)
    result = verify(pki, data)
    assert verifier_codes(result) == (), result.verdict.signatures[0].notes
    assert verifier_ok(result)
    (status,) = result.verdict.signatures
    assert status.kind == "xades" and status.intact and status.valid and status.trusted
    assert status.timestamp_present and status.timestamp_valid and status.timestamp_trusted
    assert status.signing_time is not None
    assert result.signer is not None
    assert result.signer.personal_code == QUALIFIED_PERSONAL_CODE
    assert result.signer.common_name == "Anna Ozola"
    assert result.form_name == FORM and result.form_bytes == form
    assert result.verdict.signed_revision == form
    assert result.documents == ((FORM, form),)
    # The verdict crosses process boundaries (signing.isolation) intact.
    assert pickle.loads(pickle.dumps(result)) == result


def test_several_files_odd_names_and_two_signatures_are_ok(pki: PkiFixture) -> None:
    # Names with "+", spaces and diacritics are URI-encoded in the references.
    signed = files(pki, ("test+test.txt", b"plus"), ("Pielikums ā 1.txt", "ā".encode()))
    first = signature(pki, signed, "qualified")
    second = signature(pki, signed, "qualified-2")
    result = verify(pki, pack_asice(signed, [first, second]))
    assert verifier_codes(result) == ()
    assert len(result.verdict.signatures) == 2
    assert [name for name, _ in result.documents] == [FORM, "test+test.txt", "Pielikums ā 1.txt"]
    # The last signature's signer is the verdict's signer.
    assert result.signer is not None and result.signer.personal_code == QUALIFIED_2_PERSONAL_CODE
    assert result.verdict.signed_revision == result.form_bytes


def test_container_without_timestamp_has_no_timestamp(pki: PkiFixture) -> None:
    # The fact; TS-MISSING is the rules' (tests/test_qualification_rules.py).
    result = verify(pki, container(pki, timestamp=False))
    assert verifier_codes(result) == ()
    (sig,) = result.verdict.signatures
    assert not sig.timestamp_present and sig.timestamp_time is None


# -- the signed content ---------------------------------------------------------------------


def test_data_file_changed_after_signing_is_sig_invalid(pki: PkiFixture) -> None:
    original = files(pki)
    changed = [(FORM, pki.form_pdf({"org_name": "SIA Forged", "contact_email": "x@y.lv"}))]
    result = verify(pki, pack_asice(changed, [signature(pki, original)]))
    assert "SIG-INVALID" in verifier_codes(result)
    (status,) = result.verdict.signatures
    assert not status.intact and status.valid
    # The changed form is not what anyone signed: there is no signed form to read.
    assert result.verdict.signed_revision is None


def test_extra_unsigned_data_file_is_sig_invalid(pki: PkiFixture) -> None:
    signed = files(pki)
    data = pack_asice([*signed, ("extra.txt", b"added later")], [signature(pki, signed)])
    result = verify(pki, data)
    assert verifier_codes(result) == ("SIG-INVALID",)
    assert any("'extra.txt' is not covered" in note for note in result.verdict.signatures[0].notes)


def test_signed_file_removed_from_container_is_sig_invalid(pki: PkiFixture) -> None:
    signed = files(pki, ("annex.txt", b"annex"))
    result = verify(pki, pack_asice(signed[:1], [signature(pki, signed)]))
    assert "SIG-INVALID" in verifier_codes(result)
    assert any(
        "'annex.txt' is not in the container" in n for n in result.verdict.signatures[0].notes
    )


def test_broken_signature_value_is_sig_invalid(pki: PkiFixture) -> None:
    signed = files(pki)
    document = signature(pki, signed, timestamp=False)
    value = etree.fromstring(document).find(f".//{{{DS_NS}}}SignatureValue")
    assert value is not None and value.text is not None
    raw = bytearray(base64.b64decode(value.text))
    raw[10] ^= 0x01
    broken = _edit_signature(document, f"{{{DS_NS}}}SignatureValue", base64.b64encode(raw).decode())
    result = verify(pki, pack_asice(signed, [broken]))
    assert verifier_codes(result) == ("SIG-INVALID",)
    assert not result.verdict.signatures[0].valid


def test_changed_signed_property_is_sig_invalid(pki: PkiFixture) -> None:
    signed = files(pki)
    document = signature(pki, signed)
    forged = _edit_signature(document, f"{{{XADES_NS}}}SigningTime", "2001-01-01T00:00:00Z")
    result = verify(pki, pack_asice(signed, [forged]))
    assert "SIG-INVALID" in verifier_codes(result)
    assert not result.verdict.signatures[0].intact


def test_unreferenced_signed_properties_are_sig_invalid(pki: PkiFixture) -> None:
    # Properties the signature does not reference could say anything.
    signed = files(pki)
    root = etree.fromstring(signature(pki, signed))
    properties = next(root.iter(f"{{{XADES_NS}}}SignedProperties"))
    properties.set("Id", "look-alike")
    document = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    result = verify(pki, pack_asice(signed, [document]))
    assert "SIG-INVALID" in verifier_codes(result)
    assert result.verdict.signed_revision is None


def test_container_without_signature_is_sig_missing(pki: PkiFixture) -> None:
    result = verify(pki, pack_asice(files(pki), []))
    assert verifier_codes(result) == ("SIG-MISSING",)
    assert not verifier_ok(result) and result.signer is None
    assert result.form_name == FORM


# -- the signer ---------------------------------------------------------------------------------


def test_nonqualified_signer_is_judged_not_qualified(pki: PkiFixture) -> None:
    # The fact; SIG-NOT-QUALIFIED is the rules' (tests/test_qualification_rules.py).
    result = verify(pki, container(pki, "nonqualified"))
    assert verifier_codes(result) == ()
    (sig,) = result.verdict.signatures
    assert sig.trusted
    assert sig.qualification is not None and not sig.qualification.qualified


def test_untrusted_signer_is_sig_untrusted(pki: PkiFixture) -> None:
    result = verify(pki, container(pki, "untrusted"))
    assert verifier_codes(result) == ("SIG-UNTRUSTED",)


def test_expired_signer_is_sig_cert_expired(pki: PkiFixture) -> None:
    assert verifier_codes(verify(pki, container(pki, "expired"))) == ("SIG-CERT-EXPIRED",)


def test_revoked_signer_is_sig_cert_revoked(pki: PkiFixture) -> None:
    data = container(pki, "revoked")
    assert verifier_codes(verify(pki, data)) == ("SIG-CERT-REVOKED",)
    # Without revocation checking the same container passes: the code came from OCSP/CRL.
    assert verifier_ok(verify(pki, data, revocation="off"))


# -- the time-stamp --------------------------------------------------------------------------------


def test_timestamp_over_other_bytes_is_ts_invalid(pki: PkiFixture) -> None:
    signed = files(pki)
    token = asyncio.run(
        pki.timestamper.async_timestamp(hashlib.sha256(b"other data").digest(), "sha256")
    )
    document = _edit_signature(
        signature(pki, signed),
        f"{{{XADES_NS}}}EncapsulatedTimeStamp",
        base64.b64encode(token.dump()).decode(),
    )
    result = verify(pki, pack_asice(signed, [document]))
    assert verifier_codes(result) == ("TS-INVALID",)
    status = result.verdict.signatures[0]
    assert status.intact and status.valid and status.timestamp_present


def test_garbled_timestamp_is_ts_invalid(pki: PkiFixture) -> None:
    signed = files(pki)
    document = _edit_signature(
        signature(pki, signed), f"{{{XADES_NS}}}EncapsulatedTimeStamp", "bm90IGEgdG9rZW4="
    )
    assert verifier_codes(verify(pki, pack_asice(signed, [document]))) == ("TS-INVALID",)


def test_untrusted_tsa_is_ts_untrusted(pki: PkiFixture) -> None:
    result = verify(pki, container(pki, timestamper=pki.untrusted_timestamper))
    assert verifier_codes(result) == ("TS-UNTRUSTED",)
    assert result.verdict.signatures[0].timestamp_valid


def test_timestamp_time_is_reported_for_the_age_limit(pki: PkiFixture) -> None:
    # The fact; SIG-TOO-OLD is the rules' (tests/test_qualification_rules.py).
    before = datetime.now(UTC) - timedelta(minutes=1)
    data = container(pki)
    later = datetime.now(UTC) + timedelta(days=200)
    result = asyncio.run(InProcessVerifier(pki.settings(), now=lambda: later).verify_asic(data))
    assert verifier_codes(result) == ()
    (sig,) = result.verdict.signatures
    assert sig.timestamp_valid and sig.timestamp_time is not None
    assert before <= sig.timestamp_time <= datetime.now(UTC)


# -- CAdES in ASiC-E ----------------------------------------------------------------------------


def _cades_container(
    pki: PkiFixture, signed: list[tuple[str, bytes]], packed: list[tuple[str, bytes]]
) -> bytes:
    """An ASiC-E with a CAdES signature over an ``ASiCManifest`` of ``signed``; holding ``packed``."""
    manifest = etree.Element(f"{{{ASIC_NS}}}ASiCManifest", nsmap={"asic": ASIC_NS, "ds": DS_NS})
    etree.SubElement(manifest, f"{{{ASIC_NS}}}SigReference", URI="META-INF/signature001.p7s")
    for name, content in signed:
        reference = etree.SubElement(manifest, f"{{{ASIC_NS}}}DataObjectReference", URI=name)
        etree.SubElement(
            reference,
            f"{{{DS_NS}}}DigestMethod",
            Algorithm="http://www.w3.org/2001/04/xmlenc#sha256",
        )
        value = etree.SubElement(reference, f"{{{DS_NS}}}DigestValue")
        value.text = base64.b64encode(hashlib.sha256(content).digest()).decode()
    manifest_bytes = etree.tostring(manifest, xml_declaration=True, encoding="UTF-8")
    cms = asyncio.run(
        pki.signer("qualified").async_sign_general_data(
            manifest_bytes, "sha256", detached=True, use_cades=True, timestamper=pki.timestamper
        )
    )
    out = BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("mimetype", ASIC_E_MIMETYPE)
        for name, content in packed:
            archive.writestr(name, content)
        archive.writestr("META-INF/ASiCManifest.xml", manifest_bytes)
        archive.writestr("META-INF/signature001.p7s", cms.dump())
    return out.getvalue()


def test_cades_asice_is_judged_like_a_detached_signature(pki: PkiFixture) -> None:
    signed = files(pki)
    result = verify(pki, _cades_container(pki, signed, signed))
    assert verifier_codes(result) == (), result.verdict.signatures[0].notes
    assert result.verdict.signatures[0].kind == "cms"
    assert result.signer is not None and result.signer.personal_code == QUALIFIED_PERSONAL_CODE
    assert result.verdict.signed_revision == result.form_bytes

    changed = [(FORM, pki.form_pdf({"org_name": "SIA Forged"}))]
    assert verifier_codes(verify(pki, _cades_container(pki, signed, changed))) == ("SIG-INVALID",)


# -- unreadable containers ------------------------------------------------------------------------


def _zip(entries: list[tuple[str, bytes]]) -> bytes:
    out = BytesIO()
    with warnings.catch_warnings():
        # zipfile warns about duplicate names, which one case wants.
        warnings.filterwarnings("ignore", message="Duplicate name", category=UserWarning,
                                module="zipfile")
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
            for name, content in entries:
                archive.writestr(zipfile.ZipInfo(name), content, compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def _lie_about_sizes(data: bytes, size: int) -> bytes:
    """Rewrite every local and central header's uncompressed size to ``size``."""
    patched = bytearray(data)
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        start = patched.find(signature)
        while start != -1:
            struct.pack_into("<I", patched, start + offset, size)
            start = patched.find(signature, start + 4)
    return bytes(patched)


MIMETYPE = ("mimetype", ASIC_E_MIMETYPE.encode())
BOMB = ("bomb.pdf", b"\x00" * (16 * 1024 * 1024))


@pytest.mark.parametrize(
    "kind",
    [
        "not-a-zip",
        "truncated",
        "no-mimetype",
        "wrong-mimetype",
        "path-traversal",
        "absolute-path",
        "duplicate-name",
        "zip-bomb",
        "lying-sizes",
        "too-many-entries",
        "too-large",
    ],
)
def test_unreadable_containers_raise(pki: PkiFixture, kind: str) -> None:
    settings: dict[str, object] = {}
    if kind == "not-a-zip":
        data = pki.form_pdf()
    elif kind == "truncated":
        data = container(pki, timestamp=False)[:300]
    elif kind == "no-mimetype":
        data = _zip([(FORM, b"%PDF-1.7")])
    elif kind == "wrong-mimetype":
        data = _zip([("mimetype", b"application/vnd.etsi.asic-s+zip"), (FORM, b"%PDF-1.7")])
    elif kind == "path-traversal":
        data = _zip([MIMETYPE, ("../../etc/pieteikums.pdf", b"%PDF-1.7")])
    elif kind == "absolute-path":
        data = _zip([MIMETYPE, ("/tmp/pieteikums.pdf", b"%PDF-1.7")])
    elif kind == "duplicate-name":
        data = _zip([MIMETYPE, (FORM, b"%PDF-1.7 signed"), (FORM, b"%PDF-1.7 forged")])
    elif kind == "zip-bomb":
        # 16 MiB of zeros deflate to a few KiB; the default budget is 15 MiB.
        data = _zip([MIMETYPE, BOMB])
        assert len(data) < 100_000
    elif kind == "lying-sizes":
        # Headers claim a few bytes: reading stops there and the CRC check fails.
        data = _lie_about_sizes(_zip([MIMETYPE, BOMB]), 31)
    elif kind == "too-many-entries":
        data = _zip([MIMETYPE, *((f"f{i}.txt", b"") for i in range(1001))])
    else:
        data = container(pki)
        settings["max_pdf_bytes"] = 1000
    with pytest.raises(UnreadableInput) as excinfo:
        verify(pki, data, **settings)
    assert unreadable_codes(excinfo.value) == ("FORM-UNREADABLE",)


_ENTITY_ATTACK = b"""<?xml version="1.0"?>
<!DOCTYPE x [
 <!ENTITY a "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa">
 <!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">
 <!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">
 <!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;">
 <!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">
 <!ENTITY f "&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;&e;">
 <!ENTITY xxe SYSTEM "file:///etc/passwd">
]>
<asic:XAdESSignatures xmlns:asic="http://uri.etsi.org/02918/v1.2.1#"
 xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><ds:Signature Id="S0">&f;&xxe;</ds:Signature>
</asic:XAdESSignatures>"""


@pytest.mark.parametrize("document", [
    _ENTITY_ATTACK,
    _ENTITY_ATTACK.replace(b"&f;&xxe;", b"<x/>"),  # a DTD alone, no entity used
])
def test_signature_file_with_entities_is_sig_invalid_unexpanded(pki: PkiFixture,
                                                                 document: bytes) -> None:
    """Billion laughs and an external entity: refused, nothing expanded or read."""
    container = pack_asice([(FORM, pki.form_pdf())], [document])
    verdict = InProcessVerifier(pki.settings()).verify_asic_sync(container)
    assert verifier_codes(verdict) == ("SIG-INVALID",)
    text = " ".join(verdict.verdict.notes + tuple(n for s in verdict.verdict.signatures
                                                 for n in s.notes))
    assert "root:" not in text and "aaaaaaaaaa" not in text


def test_reader_keeps_data_files_apart_from_meta_inf(pki: PkiFixture) -> None:
    data = container(pki)
    read = read_container(data, max_bytes=10_000_000)
    assert read.mimetype == ASIC_E_MIMETYPE
    assert [name for name, _ in read.data_files] == [FORM]
    assert [name for name, _ in read.signature_files] == ["META-INF/signatures0.xml"]
    assert [name for name, _ in read.meta_files] == ["META-INF/manifest.xml"]
    assert read.notes == ()


# -- the corpus's real containers ------------------------------------------------------------------


def _corpus(name: str) -> Path:
    (path,) = [p for p in CORPUS_CONTAINERS if p.name == name]
    return path


def _verify_corpus(path: Path) -> AsicVerdict | UnreadableInput:
    # No anchors and no network: real signers can never be trusted here.
    settings = VerifierSettings(trust_roots=(), allow_fetching=False, timeout_seconds=60.0)
    try:
        return asyncio.run(InProcessVerifier(settings).verify_asic(path.read_bytes()))
    except UnreadableInput as exc:
        return exc


def test_corpus_has_containers() -> None:
    assert len(CORPUS_CONTAINERS) >= 20


@pytest.mark.parametrize("path", CORPUS_CONTAINERS, ids=[p.name for p in CORPUS_CONTAINERS])
def test_every_corpus_container_ends_in_a_verdict(path: Path) -> None:
    result = _verify_corpus(path)
    if isinstance(result, AsicVerdict):
        assert verifier_codes(result) == tuple(sorted(set(verifier_codes(result))))
        assert pickled_parsers(result) == set()
        assert not verifier_ok(result)
        assert verifier_codes(result)  # SIG-MISSING at least, without anchors
        for status in result.verdict.signatures:
            assert verifier_codes(status) == tuple(sorted(verifier_codes(status)))


@pytest.mark.parametrize(
    "name",
    [
        # The signature references a file the container does not hold.
        "signature_does_not_cover_datafile.asice",
        # The second signature's signed properties do not match their digest.
        "two_signatures_one_invalid.bdoc",
        # Files replaced by others, signed file removed.
        "multifiles-wrong-file.asice",
        "removed-doc.asice",
        # CAdES: an ASiCManifest digest that does not match the file.
        "brokenReference.asice",
        # A nested ZIP bomb: 16 unsigned archives beside the one signed file.
        "zip-bomb.asice",
    ],
)
def test_corpus_broken_containers_are_sig_invalid(name: str) -> None:
    result = _verify_corpus(_corpus(name))
    assert isinstance(result, AsicVerdict)
    assert "SIG-INVALID" in verifier_codes(result)


def test_corpus_nested_zip_bomb_is_read_but_not_unpacked() -> None:
    result = _verify_corpus(_corpus("zip-bomb.asice"))
    assert isinstance(result, AsicVerdict)
    # The inner archives stay opaque bytes (about 35 KB each); nothing recurses into them.
    assert len(result.documents) == 17
    assert all(len(content) < 100_000 for _, content in result.documents)


def test_corpus_timestamp_over_wrong_signature_value_is_ts_invalid() -> None:
    result = _verify_corpus(_corpus("TS-02_23634_TS_wrong_SignatureValue.asice"))
    assert isinstance(result, AsicVerdict)
    assert "TS-INVALID" in verifier_codes(result)
    assert "SIG-INVALID" not in verifier_codes(result)


@pytest.mark.parametrize(
    "name",
    [
        "test+test.edoc",
        "PSS-signature.asice",
        "valid-asice-esteid2018.asice",
        "valid-asice-lta.asice",
        "latvian_T_signature.asice",
        "latvian_LT_signature_with_44h_difference_between_TS_and_OCSP.asice",
        "Signature-A-EE_AS-6.asice",
        "hello.bdoc",
    ],
)
def test_corpus_valid_signatures_verify_but_are_untrusted(name: str) -> None:
    result = _verify_corpus(_corpus(name))
    assert isinstance(result, AsicVerdict)
    assert "SIG-INVALID" not in verifier_codes(result) and "TS-INVALID" not in verifier_codes(result)
    assert "SIG-UNTRUSTED" in verifier_codes(result)
    for status in result.verdict.signatures:
        assert status.intact and status.valid
        if status.timestamp_present:
            assert status.timestamp_valid


def test_corpus_latvian_edoc_yields_the_signer() -> None:
    result = _verify_corpus(_corpus("test+test.edoc"))
    assert isinstance(result, AsicVerdict)
    assert [name for name, _ in result.documents] == ["test+test.txt"]
    assert result.signer is not None
    assert result.signer.country == "LV"
    assert result.signer.personal_code is not None
    assert result.signer.personal_code.startswith("PNOLV-")
    assert "LV eID ICA 2021" in result.signer.issuer
    (status,) = result.verdict.signatures
    assert status.timestamp_present and status.timestamp_valid and not status.timestamp_trusted
