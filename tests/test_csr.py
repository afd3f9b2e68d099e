"""Tests for signing.csr: CSRs made by the openssl command line, plus the corpus."""

from __future__ import annotations

import hashlib
import subprocess
import unicodedata
from collections.abc import Callable
from pathlib import Path

import pytest
from asn1crypto import csr as asn1_csr

from signing.csr import (
    CsrError,
    KeyPolicy,
    check_csr,
    extract_inline_csr,
    load_csr,
)
from tests.shared import CORPUS as SHARED_CORPUS

OPENSSL = "/usr/bin/openssl"
CORPUS = SHARED_CORPUS / "cryptography-vectors" / "csr"
POLICY = KeyPolicy()

# The key arguments of `openssl req -newkey` for each key kind used below.
KEY_ARGS: dict[str, list[str]] = {
    "rsa1024": ["-newkey", "rsa:1024"],
    "rsa2048": ["-newkey", "rsa:2048"],
    "rsa4096": ["-newkey", "rsa:4096"],
    "p256": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    "p384": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
    "secp256k1": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:secp256k1"],
    "ed25519": ["-newkey", "ed25519"],
}

MakeCsr = Callable[..., bytes]


@pytest.fixture(scope="module")
def make_csr(tmp_path_factory: pytest.TempPathFactory) -> MakeCsr:
    """Return a function that makes a CSR with openssl and returns its bytes."""
    counter = iter(range(1_000_000))

    def _make(
        key: str = "rsa2048",
        subj: str = "/CN=eadrese.example.lv/O=SIA Example",
        *,
        extra: tuple[str, ...] = (),
        der: bool = False,
    ) -> bytes:
        directory = tmp_path_factory.mktemp(f"csr{next(counter)}")
        out = directory / "req.out"
        cmd = [
            OPENSSL,
            "req",
            "-new",
            *KEY_ARGS[key],
            "-nodes",
            "-keyout",
            str(directory / "key.pem"),
            "-utf8",
            "-subj",
            subj,
            *extra,
            "-outform",
            "DER" if der else "PEM",
            "-out",
            str(out),
        ]
        subprocess.run(cmd, check=True, capture_output=True)
        return out.read_bytes()

    return _make


def _check(
    data: bytes | None,
    *,
    expected_cn: str | None = "eadrese.example.lv",
    expected_org: str | None = "SIA Example",
    policy: KeyPolicy = POLICY,
) -> tuple[str, ...]:
    return check_csr(data, expected_cn=expected_cn, expected_org=expected_org, policy=policy).codes


@pytest.mark.parametrize(
    ("key", "key_type", "codes"),
    [
        ("rsa1024", "RSA-1024", ("CSR-KEY-WEAK",)),
        ("rsa2048", "RSA-2048", ()),
        ("rsa4096", "RSA-4096", ()),
        ("p256", "EC-secp256r1", ()),
        ("p384", "EC-secp384r1", ()),
        ("secp256k1", "EC-secp256k1", ("CSR-KEY-WEAK",)),
        ("ed25519", "Ed25519", ("CSR-KEY-WEAK",)),
    ],
)
def test_key_policy(make_csr: MakeCsr, key: str, key_type: str, codes: tuple[str, ...]) -> None:
    report = check_csr(
        make_csr(key), expected_cn="eadrese.example.lv", expected_org="SIA Example", policy=POLICY
    )
    assert report.codes == codes, report.notes
    assert report.key_type == key_type
    assert report.common_name == "eadrese.example.lv"
    assert report.organisation == "SIA Example"


def test_ed25519_allowed_by_policy(make_csr: MakeCsr) -> None:
    data = make_csr("ed25519")
    assert _check(data, policy=KeyPolicy(allow_ed25519=True)) == ()


def test_rsa_minimum_follows_policy(make_csr: MakeCsr) -> None:
    data = make_csr("rsa2048")
    report = check_csr(
        data, expected_cn=None, expected_org=None, policy=KeyPolicy(rsa_min_bits=3072)
    )
    assert report.codes == ("CSR-KEY-WEAK",)
    assert "3072" in report.notes[0]


def test_public_key_digest_matches_openssl(make_csr: MakeCsr, tmp_path: Path) -> None:
    data = make_csr("p256")
    path = tmp_path / "req.pem"
    path.write_bytes(data)
    spki_der = subprocess.run(
        [OPENSSL, "req", "-in", str(path), "-pubkey", "-noout"],
        check=True,
        capture_output=True,
    ).stdout
    der = subprocess.run(
        [OPENSSL, "pkey", "-pubin", "-outform", "DER"],
        input=spki_der,
        check=True,
        capture_output=True,
    ).stdout
    report = check_csr(data, expected_cn=None, expected_org=None, policy=POLICY)
    assert report.public_key_sha256 == hashlib.sha256(der).hexdigest()


def test_unicode_subject_in_nfd_matches_nfc_form_values(make_csr: MakeCsr) -> None:
    cn = "ēadrese.example.lv"
    org = "SIA Ķīmija"
    nfd = unicodedata.normalize("NFD", f"/CN={cn}/O={org}")
    assert nfd != f"/CN={cn}/O={org}"
    data = make_csr("p256", nfd)
    nfc_cn = unicodedata.normalize("NFC", cn)
    nfc_org = unicodedata.normalize("NFC", org)
    report = check_csr(data, expected_cn=nfc_cn, expected_org=nfc_org, policy=POLICY)
    assert report.codes == (), report.notes
    # The report shows the CSR's own spelling; only the comparison normalises.
    assert report.common_name == unicodedata.normalize("NFD", cn)


def test_unicode_subject_nfc(make_csr: MakeCsr) -> None:
    data = make_csr("p256", "/CN=ēadrese.example.lv/O=SIA Ķīmija")
    report = check_csr(
        data, expected_cn="ēadrese.example.lv", expected_org="sia  ķīmija", policy=POLICY
    )
    assert report.codes == (), report.notes
    assert report.common_name == "ēadrese.example.lv"
    assert report.organisation == "SIA Ķīmija"


def test_dns_like_common_name_is_case_insensitive_and_idna_aware(make_csr: MakeCsr) -> None:
    data = make_csr("p256", "/CN=Ēadrese.Example.LV/O=SIA Ķīmija")
    a_label = "ēadrese.example.lv".encode("idna").decode("ascii")
    assert a_label.startswith("xn--")
    for expected in ("ēadrese.example.lv", a_label):
        assert _check(data, expected_cn=expected, expected_org="SIA Ķīmija") == ()


def test_non_dns_common_name_is_exact(make_csr: MakeCsr) -> None:
    data = make_csr("p256", "/CN=Jānis Bērziņš/O=SIA Example")
    assert _check(data, expected_cn="Jānis Bērziņš") == ()
    assert _check(data, expected_cn="jānis bērziņš") == ("CSR-SUBJECT-MISMATCH",)


def test_wrong_common_name(make_csr: MakeCsr) -> None:
    report = check_csr(
        make_csr("p256", "/CN=other.example.lv/O=SIA Example"),
        expected_cn="eadrese.example.lv",
        expected_org="SIA Example",
        policy=POLICY,
    )
    assert report.codes == ("CSR-SUBJECT-MISMATCH",)
    assert "other.example.lv" in report.notes[0]


def test_wrong_organisation(make_csr: MakeCsr) -> None:
    data = make_csr("p256", "/CN=eadrese.example.lv/O=SIA Cits")
    assert _check(data) == ("CSR-SUBJECT-MISMATCH",)


def test_organisation_absent_is_fine(make_csr: MakeCsr) -> None:
    data = make_csr("p256", "/CN=eadrese.example.lv")
    assert _check(data) == ()


def test_missing_common_name(make_csr: MakeCsr) -> None:
    data = make_csr("p256", "/O=SIA Example")
    assert _check(data) == ("CSR-SUBJECT-MISMATCH",)


def test_extra_sans_are_recorded(make_csr: MakeCsr) -> None:
    data = make_csr(
        "p256",
        extra=("-addext", "subjectAltName=DNS:evil.example,DNS:eadrese.example.lv,IP:10.0.0.1"),
    )
    report = check_csr(data, expected_cn="eadrese.example.lv", expected_org=None, policy=POLICY)
    assert report.codes == ()
    assert report.requested_sans == ("DNS:evil.example", "DNS:eadrese.example.lv", "IP:10.0.0.1")
    assert "subjectAltName" in report.requested_extensions
    restricted = check_csr(
        data,
        expected_cn="eadrese.example.lv",
        expected_org=None,
        policy=POLICY,
        allowed_san_dns=lambda name: name.endswith(".lv"),
    )
    assert restricted.codes == ("CSR-SUBJECT-MISMATCH",)
    assert any("evil.example" in note for note in restricted.notes)


def test_ca_request_is_invalid(make_csr: MakeCsr) -> None:
    data = make_csr("p256", extra=("-addext", "basicConstraints=critical,CA:TRUE"))
    report = check_csr(data, expected_cn="eadrese.example.lv", expected_org=None, policy=POLICY)
    assert report.codes == ("CSR-INVALID",)
    assert "CA certificate" in report.notes[0]


def test_sha1_signature_is_invalid(make_csr: MakeCsr) -> None:
    data = make_csr("rsa2048", extra=("-sha1",))
    report = check_csr(data, expected_cn="eadrese.example.lv", expected_org=None, policy=POLICY)
    assert report.codes == ("CSR-INVALID",)
    assert "SHA1" in report.notes[0]


def test_corrupted_signature_is_invalid(make_csr: MakeCsr, tmp_path: Path) -> None:
    der = make_csr("rsa2048", der=True)
    signature = asn1_csr.CertificationRequest.load(der)["signature"]
    # The signature BIT STRING is the last element, so its final content byte
    # is the last byte of the DER.
    assert der.endswith(signature.contents)
    corrupted = der[:-1] + bytes([der[-1] ^ 0x01])
    path = tmp_path / "bad.der"
    path.write_bytes(corrupted)
    verify = subprocess.run(
        [OPENSSL, "req", "-inform", "DER", "-in", str(path), "-noout", "-verify"],
        capture_output=True,
    )
    # OpenSSL 3.0 exits 0 here but says so on stderr.
    assert b"verify failure" in verify.stderr
    report = check_csr(
        corrupted, expected_cn="eadrese.example.lv", expected_org=None, policy=POLICY
    )
    assert report.codes == ("CSR-INVALID",)
    assert "self-signature" in report.notes[0]
    # What can be read is still reported.
    assert report.common_name == "eadrese.example.lv"
    assert report.key_type == "RSA-2048"


def test_der_and_pem_give_the_same_report(make_csr: MakeCsr, tmp_path: Path) -> None:
    pem = make_csr("p256")
    path = tmp_path / "req.pem"
    path.write_bytes(pem)
    der = subprocess.run(
        [OPENSSL, "req", "-in", str(path), "-outform", "DER"], check=True, capture_output=True
    ).stdout
    from_pem = check_csr(pem, expected_cn="eadrese.example.lv", expected_org=None, policy=POLICY)
    from_der = check_csr(der, expected_cn="eadrese.example.lv", expected_org=None, policy=POLICY)
    assert from_pem.codes == from_der.codes == ()
    assert from_pem.der == from_der.der == der
    assert from_pem.public_key_sha256 == from_der.public_key_sha256
    assert load_csr(der).subject == load_csr(pem).subject


def test_pem_with_crlf_text_around_and_legacy_header(make_csr: MakeCsr) -> None:
    pem = make_csr("p256").decode("ascii")
    legacy = pem.replace("CERTIFICATE REQUEST", "NEW CERTIFICATE REQUEST")
    wrapped = "Dear agency,\r\n\r\n" + legacy.replace("\n", "\r\n  ") + "\r\nRegards\r\n"
    assert _check(wrapped.encode("ascii"), expected_org=None) == ()


def test_inline_csr_in_mail_body(make_csr: MakeCsr) -> None:
    pem = make_csr("p256").decode("ascii")
    quoted = "\n".join("> " + line for line in pem.splitlines())
    body = f"Hello,\r\nhere is our request:\r\n{quoted}\r\nThank you.\r\n"
    extracted = extract_inline_csr(body)
    assert extracted is not None
    assert load_csr(extracted).subject == load_csr(pem.encode("ascii")).subject
    assert _check(extracted, expected_org=None) == ()
    assert extract_inline_csr("no request here") is None
    assert extract_inline_csr("-----BEGIN CERTIFICATE REQUEST-----\n!!\n") is None


def test_missing_csr() -> None:
    report = check_csr(None, expected_cn="x.example", expected_org=None, policy=POLICY)
    assert report.codes == ("CSR-MISSING",)
    assert check_csr(b"  \n", expected_cn=None, expected_org=None, policy=POLICY).codes == (
        "CSR-MISSING",
    )


@pytest.mark.parametrize(
    "data",
    [
        b"garbage",
        b"\x30\x03\x02\x01\x00",
        b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n",
        b"\xff" * 50,
    ],
)
def test_garbage_is_invalid(data: bytes) -> None:
    report = check_csr(data, expected_cn="x.example", expected_org=None, policy=POLICY)
    assert report.codes == ("CSR-INVALID",)
    with pytest.raises(CsrError) as info:
        load_csr(data)
    assert info.value.code == "CSR-INVALID"


def test_mutations_never_raise(make_csr: MakeCsr) -> None:
    der = make_csr("p256", der=True)
    seen: set[tuple[str, ...]] = set()
    for cut in range(0, len(der), 7):
        seen.add(_check(der[:cut]))
    for position in range(0, len(der), 3):
        mutated = der[:position] + bytes([der[position] ^ 0xA5]) + der[position + 1 :]
        seen.add(_check(mutated))
    assert ("CSR-INVALID",) in seen


CORPUS_EXPECTED: dict[str, str] = {
    # File name -> the code that must be among the report's codes ("" = clean).
    "bad-version.pem": "CSR-INVALID",
    "basic_constraints.pem": "CSR-INVALID",
    "challenge-invalid.der": "CSR-INVALID",
    "challenge-multi-valued.der": "CSR-INVALID",
    "challenge-unstructured.pem": "",
    "challenge.pem": "",
    "dsa_sha1.pem": "CSR-KEY-WEAK",
    "ec_sha256.pem": "",
    "ec_sha256_old_header.pem": "",
    "freeipa-bad-critical.pem": "CSR-INVALID",
    "invalid_signature.pem": "CSR-INVALID",
    "long-form-attribute.pem": "CSR-INVALID",
    "rsa_md4.pem": "CSR-INVALID",
    "rsa_sha1.pem": "CSR-INVALID",
    "rsa_sha256.der": "",
    "rsa_sha256.pem": "",
    "san_rsa_sha1.pem": "CSR-INVALID",
    "two_basic_constraints.pem": "CSR-INVALID",
    "unsupported_extension.pem": "CSR-INVALID",
    "unsupported_extension_critical.pem": "CSR-INVALID",
    "zero-element-attribute.pem": "CSR-INVALID",
}


def test_corpus_is_complete() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(CORPUS_EXPECTED)


@pytest.mark.parametrize("name", sorted(CORPUS_EXPECTED))
def test_corpus_gives_a_report(name: str) -> None:
    report = check_csr(
        (CORPUS / name).read_bytes(), expected_cn=None, expected_org=None, policy=POLICY
    )
    expected = CORPUS_EXPECTED[name]
    if expected:
        assert expected in report.codes, report.notes
        assert report.notes
    else:
        assert report.codes == (), report.notes
        assert report.der is not None
        assert report.public_key_sha256 is not None


def test_corpus_subjects_and_keys() -> None:
    report = check_csr(
        (CORPUS / "ec_sha256_old_header.pem").read_bytes(),
        expected_cn="cryptography.io",
        expected_org="pyca",
        policy=POLICY,
    )
    assert report.codes == ()
    assert report.key_type == "EC-secp384r1"
    # An unreadable CSR still reports what asn1crypto can read.
    broken = check_csr(
        (CORPUS / "bad-version.pem").read_bytes(),
        expected_cn=None,
        expected_org=None,
        policy=POLICY,
    )
    assert broken.key_type == "EC-secp256r1"
    assert broken.public_key_sha256 is not None
    unknown_critical = check_csr(
        (CORPUS / "unsupported_extension_critical.pem").read_bytes(),
        expected_cn=None,
        expected_org=None,
        policy=POLICY,
    )
    assert any("unknown critical extension 1.2.3.4" in n for n in unknown_critical.notes)
