"""Tests for signing.ca: issuing from openssl-made CSRs, checked by openssl."""

from __future__ import annotations

import os
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from signing.ca import (
    CaError,
    CertificateAuthority,
    CertificateProfile,
    IssuedCertificate,
    write_crl,
)
from signing.csr import CsrError
from signing.testing.ca import make_test_ca

OPENSSL = "/usr/bin/openssl"
FORM_SUBJECT = {
    "common_name": "ēadrese.example.lv",
    "organisation": "SIA Ķīmija",
    "organisation_identifier": "NTRLV-40003000001",
    "country": "LV",
    "email": "janis@example.lv",
}


def _openssl(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run([OPENSSL, *args], capture_output=True, text=True, check=check)


@pytest.fixture(scope="module")
def ca_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A plain (unencrypted key) test CA made once for this module."""
    return make_test_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def ca(ca_files: tuple[Path, Path]) -> CertificateAuthority:
    return CertificateAuthority.load(*ca_files, password=None)


def _make_csr(
    directory: Path,
    key: str = "rsa",
    subj: str = "/CN=evil.example/O=Evil Corp",
    extra: tuple[str, ...] = (),
) -> Path:
    """Make a CSR with the openssl command line; return its PEM path."""
    key_args = (
        ["-newkey", "rsa:2048"]
        if key == "rsa"
        else ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    )
    path = directory / f"req-{key}-{len(list(directory.iterdir()))}.pem"
    _openssl(
        "req",
        "-new",
        *key_args,
        "-nodes",
        "-keyout",
        str(path.with_suffix(".key")),
        "-utf8",
        "-subj",
        subj,
        *extra,
        "-out",
        str(path),
    )
    return path


def _issue(
    ca: CertificateAuthority, csr_path: Path, profile: CertificateProfile | None = None
) -> IssuedCertificate:
    return ca.issue(
        csr_path.read_bytes(), subject=FORM_SUBJECT, profile=profile or CertificateProfile()
    )


def test_issue_verifies_with_openssl(
    ca: CertificateAuthority, ca_files: tuple[Path, Path], tmp_path: Path
) -> None:
    csr_path = _make_csr(tmp_path)
    issued = _issue(ca, csr_path)
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(issued.pem)
    result = _openssl("verify", "-CAfile", str(ca_files[0]), str(leaf), check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("OK")
    # The chain is the leaf followed by the CA certificate.
    assert issued.chain_pem == issued.pem + ca_files[0].read_text()
    chain = x509.load_pem_x509_certificates(issued.chain_pem.encode("ascii"))
    assert [c.subject for c in chain] == [chain[0].subject, ca.certificate.subject]


def test_public_key_comes_from_csr(ca: CertificateAuthority, tmp_path: Path) -> None:
    csr_path = _make_csr(tmp_path, "ec")
    issued = _issue(ca, csr_path)
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(issued.pem)
    from_csr = _openssl("req", "-in", str(csr_path), "-pubkey", "-noout").stdout
    from_cert = _openssl("x509", "-in", str(leaf), "-pubkey", "-noout").stdout
    assert from_csr == from_cert
    assert from_cert.startswith("-----BEGIN PUBLIC KEY-----")


def test_subject_comes_from_form_not_csr(ca: CertificateAuthority, tmp_path: Path) -> None:
    csr_path = _make_csr(
        tmp_path, extra=("-addext", "subjectAltName=DNS:evil.example,DNS:bank.example")
    )
    issued = _issue(ca, csr_path)
    cert = x509.load_pem_x509_certificate(issued.pem.encode("ascii"))
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "ēadrese.example.lv"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "SIA Ķīmija"
    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)[0].value == (
        "NTRLV-40003000001"
    )
    assert "Evil" not in issued.subject and "evil" not in issued.subject
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    # Only the approved e-mail is issued; the requested DNS names are not.
    assert list(san) == [x509.RFC822Name("janis@example.lv")]


def test_serial_is_random_and_below_2_159(ca: CertificateAuthority, tmp_path: Path) -> None:
    csr_path = _make_csr(tmp_path, "ec")
    first = _issue(ca, csr_path)
    second = _issue(ca, csr_path)
    for issued in (first, second):
        assert 0 < issued.serial < 2**159
        cert = x509.load_pem_x509_certificate(issued.pem.encode("ascii"))
        assert cert.serial_number == issued.serial
    assert first.serial != second.serial


def test_extensions_as_openssl_sees_them(ca: CertificateAuthority, tmp_path: Path) -> None:
    csr_path = _make_csr(tmp_path)
    profile = CertificateProfile(crl_url="http://pki.example.lv/agency.crl")
    issued = _issue(ca, csr_path, profile)
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(issued.pem)
    text = _openssl("x509", "-in", str(leaf), "-noout", "-text").stdout
    assert "TLS Web Client Authentication" in text
    assert "CA:FALSE" in text
    assert "X509v3 Key Usage: critical" in text
    assert "Digital Signature, Key Encipherment" in text
    assert "X509v3 Basic Constraints: critical" in text
    assert "URI:http://pki.example.lv/agency.crl" in text
    assert "X509v3 Subject Key Identifier" in text
    assert "X509v3 Authority Key Identifier" in text

    cert = x509.load_pem_x509_certificate(issued.pem.encode("ascii"))
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ca_ski = ca.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ca_ski.digest
    assert issued.not_after - issued.not_before == timedelta(days=365, minutes=5)


def test_ec_key_gets_no_key_encipherment(ca: CertificateAuthority, tmp_path: Path) -> None:
    issued = _issue(ca, _make_csr(tmp_path, "ec"))
    cert = x509.load_pem_x509_certificate(issued.pem.encode("ascii"))
    usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical
    assert usage.value.digital_signature
    assert not usage.value.key_encipherment


def test_validity_and_now(ca: CertificateAuthority, tmp_path: Path) -> None:
    now = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    issued = ca.issue(
        _make_csr(tmp_path, "ec").read_bytes(),
        subject={"common_name": "x.example.lv"},
        profile=CertificateProfile(validity_days=30),
        now=now,
    )
    assert issued.not_before == now - timedelta(minutes=5)
    assert issued.not_after == now + timedelta(days=30)
    # A validity beyond the CA's own end is capped.
    long = ca.issue(
        _make_csr(tmp_path, "ec").read_bytes(),
        subject={"common_name": "x.example.lv"},
        profile=CertificateProfile(validity_days=100_000),
    )
    assert long.not_after == ca.certificate.not_valid_after_utc


def test_issue_refuses_bad_csr_and_bad_subject(ca: CertificateAuthority, tmp_path: Path) -> None:
    pem = _make_csr(tmp_path).read_bytes()
    der = x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER)
    corrupted = der[:-1] + bytes([der[-1] ^ 0x01])
    with pytest.raises(CsrError):
        ca.issue(corrupted, subject=FORM_SUBJECT, profile=CertificateProfile())
    with pytest.raises(CsrError):
        ca.issue(b"not a csr", subject=FORM_SUBJECT, profile=CertificateProfile())
    with pytest.raises(ValueError, match="unknown subject keys: nickname"):
        ca.issue(der, subject={"common_name": "a", "nickname": "b"}, profile=CertificateProfile())
    with pytest.raises(ValueError, match="common_name"):
        ca.issue(der, subject={"organisation": "b"}, profile=CertificateProfile())
    with pytest.raises(ValueError, match="key usage"):
        ca.issue(
            der,
            subject={"common_name": "a"},
            profile=CertificateProfile(key_usage=("key_cert_sign",)),
        )


def test_encrypted_ca_key(tmp_path: Path) -> None:
    cert_path, key_path = make_test_ca(tmp_path / "enc", password="s3cret-ķ")
    assert b"ENCRYPTED" in key_path.read_bytes()
    assert key_path.stat().st_mode & 0o777 == 0o600
    ca = CertificateAuthority.load(cert_path, key_path, password="s3cret-ķ")
    issued = _issue(ca, _make_csr(tmp_path, "ec"))
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(issued.pem)
    assert _openssl("verify", "-CAfile", str(cert_path), str(leaf)).returncode == 0
    with pytest.raises(CaError, match="wrong password") as info:
        CertificateAuthority.load(cert_path, key_path, password="wrong")
    assert str(key_path) in str(info.value)
    with pytest.raises(CaError, match="is encrypted"):
        CertificateAuthority.load(cert_path, key_path, password=None)


def test_password_for_plain_key(ca_files: tuple[Path, Path]) -> None:
    with pytest.raises(CaError, match="not encrypted"):
        CertificateAuthority.load(*ca_files, password="x")


def test_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    cert_path, key_path = make_test_ca(tmp_path)
    os.chmod(key_path, 0o644)
    with pytest.raises(CaError) as info:
        CertificateAuthority.load(cert_path, key_path, password=None)
    message = str(info.value)
    assert str(key_path) in message
    assert "chmod 600" in message
    os.chmod(key_path, 0o640)
    with pytest.raises(CaError, match="readable by others"):
        CertificateAuthority.load(cert_path, key_path, password=None)
    os.chmod(key_path, 0o600)
    CertificateAuthority.load(cert_path, key_path, password=None)


def test_missing_and_mismatched_files(tmp_path: Path) -> None:
    cert_a, key_a = make_test_ca(tmp_path / "a")
    cert_b, key_b = make_test_ca(tmp_path / "b")
    with pytest.raises(CaError, match="does not belong") as info:
        CertificateAuthority.load(cert_a, key_b, password=None)
    assert str(key_b) in str(info.value)
    missing = tmp_path / "nope.pem"
    with pytest.raises(CaError, match="does not exist") as info:
        CertificateAuthority.load(missing, key_a, password=None)
    assert str(missing) in str(info.value)
    with pytest.raises(CaError, match="does not exist"):
        CertificateAuthority.load(cert_a, tmp_path / "nope.key", password=None)
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    with pytest.raises(CaError, match="not a certificate"):
        CertificateAuthority.load(garbage, key_a, password=None)


def test_leaf_certificate_is_refused_as_ca(ca: CertificateAuthority, tmp_path: Path) -> None:
    csr_path = _make_csr(tmp_path, "ec")
    issued = _issue(ca, csr_path)
    leaf = tmp_path / "leaf.pem"
    leaf.write_text(issued.pem)
    # The leaf's own key (written by openssl) stands in as the "CA" key.
    key_path = csr_path.with_suffix(".key")
    os.chmod(key_path, 0o600)
    with pytest.raises(CaError, match="not a CA certificate"):
        CertificateAuthority.load(leaf, key_path, password=None)


def test_revoke_crl_checked_by_openssl(
    ca: CertificateAuthority, ca_files: tuple[Path, Path], tmp_path: Path
) -> None:
    revoked = _issue(ca, _make_csr(tmp_path, "ec"))
    kept = _issue(ca, _make_csr(tmp_path, "ec"))
    revoked_at = datetime.now(UTC) - timedelta(minutes=1)
    crl_der = ca.sign_crl(
        [(revoked.serial, revoked_at, "key_compromise")],
        next_update=timedelta(days=7),
        crl_number=42,
    )
    crl_path = tmp_path / "pub" / "agency.crl"
    write_crl(crl_path, crl_der)
    assert crl_path.read_text().startswith("-----BEGIN X509 CRL-----")
    assert [p.name for p in crl_path.parent.iterdir()] == ["agency.crl"]

    result = _openssl("crl", "-in", str(crl_path), "-CAfile", str(ca_files[0]), "-noout", "-text")
    assert "verify OK" in result.stdout + result.stderr
    assert f"Serial Number: {revoked.serial:X}" in result.stdout
    assert "Key Compromise" in result.stdout
    assert f"{kept.serial:X}" not in result.stdout
    assert "X509v3 CRL Number" in result.stdout and "42" in result.stdout
    assert "X509v3 Authority Key Identifier" in result.stdout

    revoked_leaf = tmp_path / "revoked.pem"
    revoked_leaf.write_text(revoked.pem)
    kept_leaf = tmp_path / "kept.pem"
    kept_leaf.write_text(kept.pem)
    check = ["verify", "-crl_check", "-CAfile", str(ca_files[0]), "-CRLfile", str(crl_path)]
    refused = _openssl(*check, str(revoked_leaf), check=False)
    assert refused.returncode != 0
    assert "certificate revoked" in refused.stdout + refused.stderr
    accepted = _openssl(*check, str(kept_leaf), check=False)
    assert accepted.returncode == 0, accepted.stderr


def test_crl_reasons_and_pem(
    ca: CertificateAuthority, ca_files: tuple[Path, Path], tmp_path: Path
) -> None:
    when = datetime(2029, 5, 6, 7, 8, 9, tzinfo=UTC)
    pem = ca.sign_crl_pem(
        [
            (1001, when, "cessation_of_operation"),
            (1002, when, "privilege_withdrawn"),
            (1003, when, "unspecified"),
        ],
        next_update=timedelta(hours=168),
        now=when,
        crl_number=7,
    )
    crl = x509.load_pem_x509_crl(pem.encode("ascii"))
    assert crl.is_signature_valid(ca.certificate.public_key())  # type: ignore[arg-type]
    assert crl.last_update_utc == when
    assert crl.next_update_utc == when + timedelta(hours=168)
    reasons: dict[int, x509.ReasonFlags | None] = {}
    for entry in crl:
        try:
            reasons[entry.serial_number] = entry.extensions.get_extension_for_class(
                x509.CRLReason
            ).value.reason
        except x509.ExtensionNotFound:
            reasons[entry.serial_number] = None
    assert reasons == {
        1001: x509.ReasonFlags.cessation_of_operation,
        1002: x509.ReasonFlags.privilege_withdrawn,
        1003: None,
    }
    path = tmp_path / "c.pem"
    path.write_text(pem)
    text = _openssl("crl", "-in", str(path), "-CAfile", str(ca_files[0]), "-noout", "-text")
    assert "verify OK" in text.stdout + text.stderr
    assert "Cessation Of Operation" in text.stdout
    with pytest.raises(ValueError, match="unknown revocation reason"):
        ca.sign_crl([(1, when, "bored")], next_update=timedelta(days=1), crl_number=1)
