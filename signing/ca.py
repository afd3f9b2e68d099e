"""The agency CA: issuing client certificates from approved CSRs, signing CRLs.

Issuing is kept apart from verifying (see ``signing/csr.py`` for judging a
request). The certificate's subject is built from the approved form data, never
copied from the CSR; only the public key is taken from the request, after its
self-signature has been verified. Requested extensions (subjectAltNames, key
usages, basic constraints) are ignored: the profile decides.

This module is a leaf: it imports nothing from the rest of the project.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from signing.csr import CsrError, load_csr, public_key_sha256

__all__ = [
    "CaError",
    "CertificateAuthority",
    "CertificateProfile",
    "IssuedCertificate",
    "crl_to_pem",
    "write_crl",
]

#: Private key types the agency CA can sign with.
CaPrivateKey: TypeAlias = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
)

# Form-data keys accepted in the subject mapping, in the order the RDNs are
# written (most general first, as is customary).
_SUBJECT_ATTRIBUTES: tuple[tuple[str, ObjectIdentifier], ...] = (
    ("country", NameOID.COUNTRY_NAME),
    ("state", NameOID.STATE_OR_PROVINCE_NAME),
    ("locality", NameOID.LOCALITY_NAME),
    ("organisation", NameOID.ORGANIZATION_NAME),
    ("organisation_identifier", NameOID.ORGANIZATION_IDENTIFIER),
    ("organisational_unit", NameOID.ORGANIZATIONAL_UNIT_NAME),
    ("serial_number", NameOID.SERIAL_NUMBER),
    ("given_name", NameOID.GIVEN_NAME),
    ("surname", NameOID.SURNAME),
    ("common_name", NameOID.COMMON_NAME),
)
# Subject keys that go into the subjectAltName instead of the DN (RFC 5280
# 4.1.2.6 prefers rfc822Name over the legacy emailAddress attribute).
_SAN_KEYS = frozenset({"email"})

_KEY_USAGES = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
)
_KEY_USAGE_ALIASES = {"non_repudiation": "content_commitment"}
# Key usages that only make sense for RSA subject keys (RFC 5480 section 3).
_RSA_ONLY_USAGES = frozenset({"key_encipherment", "data_encipherment"})

_EXTENDED_KEY_USAGES: dict[str, ObjectIdentifier] = {
    "client_auth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "server_auth": ExtendedKeyUsageOID.SERVER_AUTH,
    "email_protection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "code_signing": ExtendedKeyUsageOID.CODE_SIGNING,
    "time_stamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocsp_signing": ExtendedKeyUsageOID.OCSP_SIGNING,
}

# The issuance grace: notBefore lies this far in the past so that a
# relying party with a slightly slow clock accepts the certificate at once.
_BACKDATE = timedelta(minutes=5)


class CaError(Exception):
    """The CA cannot be used: missing or unsafe files, wrong password, mismatch.

    The message names the file concerned and, where there is one, the fix.
    """


@dataclass(frozen=True)
class CertificateProfile:
    """What an issued end-entity certificate contains, apart from subject and key."""

    #: Days from issuance until notAfter (capped at the CA's own notAfter).
    validity_days: int = 365
    #: Key usage names: digital_signature, content_commitment (non_repudiation),
    #: key_encipherment, data_encipherment, key_agreement. The encipherment
    #: usages are dropped for non-RSA keys.
    key_usage: tuple[str, ...] = ("digital_signature", "key_encipherment")
    #: Extended key usage names (client_auth, server_auth, email_protection,
    #: code_signing, time_stamping, ocsp_signing) or dotted OIDs.
    extended_key_usage: tuple[str, ...] = ("client_auth",)
    #: URL written as the CRL distribution point, when set.
    crl_url: str | None = None


@dataclass(frozen=True)
class IssuedCertificate:
    """One certificate the CA has issued."""

    #: The certificate serial number (positive, below 2**159).
    serial: int
    #: The subject as an RFC 4514 string.
    subject: str
    #: Start of validity (UTC).
    not_before: datetime
    #: End of validity (UTC).
    not_after: datetime
    #: The leaf certificate in PEM.
    pem: str
    #: The leaf followed by the CA certificate in PEM: what is mailed as REF.pem.
    chain_pem: str
    #: Hex SHA-256 of the SubjectPublicKeyInfo DER (equals the CSR's).
    public_key_sha256: str


def _utc(now: datetime | None) -> datetime:
    """Return ``now`` (or the current time) as an aware UTC datetime."""
    if now is None:
        return datetime.now(UTC)
    if now.tzinfo is None:
        return now.replace(tzinfo=UTC)
    return now.astimezone(UTC)


def _hash_for(key: CaPrivateKey) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
    """Pick the signature hash for a CA key (None for EdDSA)."""
    if isinstance(key, ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey):
        return None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.key_size > 384:
            return hashes.SHA512()
        if key.curve.key_size > 256:
            return hashes.SHA384()
    return hashes.SHA256()


def _spki(key: object) -> bytes:
    public_bytes = getattr(key, "public_bytes")  # noqa: B009 - all key types have it.
    result: bytes = public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return result


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise CaError(f"The CA {what} file {path} does not exist.") from exc
    except OSError as exc:
        raise CaError(f"The CA {what} file {path} cannot be read: {exc.strerror}.") from exc


class CertificateAuthority:
    """The agency CA: a certificate and its private key, loaded once."""

    def __init__(self, certificate: x509.Certificate, key: CaPrivateKey) -> None:
        self.certificate = certificate
        self._key = key
        self._hash = _hash_for(key)

    def __repr__(self) -> str:
        return f"CertificateAuthority({self.certificate.subject.rfc4514_string()!r})"

    @classmethod
    def load(cls, certificate: Path, key: Path, *, password: str | None) -> CertificateAuthority:
        """Load the CA certificate (PEM or DER) and its private key (PEM or DER).

        The key file must not be readable by group or others, an encrypted key
        needs ``password``, the key must belong to the certificate and the
        certificate must be a CA certificate. Each failure raises
        :class:`CaError` naming the file.
        """
        cert_path, key_path = Path(certificate), Path(key)
        cert_data = _read(cert_path, "certificate")
        try:
            mode = key_path.stat().st_mode
        except FileNotFoundError as exc:
            raise CaError(f"The CA key file {key_path} does not exist.") from exc
        except OSError as exc:
            raise CaError(f"The CA key file {key_path} cannot be read: {exc.strerror}.") from exc
        if mode & 0o077:
            raise CaError(
                f"The CA key file {key_path} is readable by others "
                f"(mode {stat.filemode(mode)}); restrict it with: chmod 600 {key_path}"
            )
        key_data = _read(key_path, "key")

        try:
            if b"-----BEGIN" in cert_data:
                cert = x509.load_pem_x509_certificate(cert_data)
            else:
                cert = x509.load_der_x509_certificate(cert_data)
        except Exception as exc:
            raise CaError(
                f"The CA certificate file {cert_path} is not a certificate: {exc}"
            ) from exc

        secret = password.encode("utf-8") if password is not None else None
        try:
            if b"-----BEGIN" in key_data:
                private_key = serialization.load_pem_private_key(key_data, password=secret)
            else:
                private_key = serialization.load_der_private_key(key_data, password=secret)
        except TypeError as exc:
            # The library says TypeError when a password is missing or superfluous.
            if secret is None:
                message = "is encrypted; set the key password (ca.key_password_env)"
            else:
                message = "is not encrypted, but a password was given; remove the password"
            raise CaError(f"The CA key file {key_path} {message}.") from exc
        except ValueError as exc:
            if secret is not None and b"ENCRYPTED" in key_data:
                raise CaError(
                    f"The CA key file {key_path} cannot be decrypted: wrong password."
                ) from exc
            raise CaError(f"The CA key file {key_path} is not a private key: {exc}") from exc
        except Exception as exc:
            raise CaError(f"The CA key file {key_path} cannot be loaded: {exc}") from exc
        if not isinstance(
            private_key,
            rsa.RSAPrivateKey
            | ec.EllipticCurvePrivateKey
            | ed25519.Ed25519PrivateKey
            | ed448.Ed448PrivateKey,
        ):
            raise CaError(
                f"The CA key file {key_path} holds a {type(private_key).__name__}, "
                "which cannot sign certificates here (use RSA, EC or EdDSA)."
            )
        if _spki(private_key.public_key()) != _spki(cert.public_key()):
            raise CaError(
                f"The CA key file {key_path} does not belong to the certificate {cert_path}."
            )
        try:
            constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            is_ca = constraints.ca
        except x509.ExtensionNotFound:
            is_ca = False
        except Exception as exc:
            raise CaError(
                f"The CA certificate {cert_path} has malformed extensions: {exc}"
            ) from exc
        if not is_ca:
            raise CaError(
                f"The certificate {cert_path} is not a CA certificate (basicConstraints CA:TRUE)."
            )
        return cls(cert, private_key)

    @property
    def certificate_pem(self) -> str:
        """The CA certificate in PEM."""
        return self.certificate.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def _aki(self) -> x509.AuthorityKeyIdentifier:
        try:
            ski = self.certificate.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
            return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski.value)
        except x509.ExtensionNotFound:
            return x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key())

    def issue(
        self,
        csr_der: bytes,
        *,
        subject: Mapping[str, str],
        profile: CertificateProfile,
        now: datetime | None = None,
    ) -> IssuedCertificate:
        """Issue an end-entity certificate for the key in ``csr_der``.

        ``subject`` holds the approved form data (keys ``common_name`` (required),
        ``organisation``, ``organisation_identifier``, ``organisational_unit``,
        ``country``, ``state``, ``locality``, ``serial_number``, ``given_name``,
        ``surname``, ``email``); empty values are left out and ``email`` becomes
        an rfc822Name subjectAltName. Raises :class:`signing.csr.CsrError` when
        the CSR is unreadable or its self-signature does not verify, and
        ``ValueError`` for an unknown subject key or profile name.
        """
        csr = load_csr(csr_der)
        try:
            signature_ok = csr.is_signature_valid
        except Exception:
            signature_ok = False
        if not signature_ok:
            raise CsrError("the CSR's self-signature does not verify")
        try:
            public_key = csr.public_key()
        except Exception as exc:
            raise CsrError(f"the CSR's public key cannot be loaded ({exc})") from exc

        name = _build_subject(subject)
        issued_at = _utc(now)
        not_before = issued_at - _BACKDATE
        not_after = min(
            issued_at + timedelta(days=profile.validity_days),
            self.certificate.not_valid_after_utc,
        )
        serial = secrets.randbits(159) | (1 << 158)

        builder = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(serial)
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(self._aki(), critical=False)
        )
        usages = _key_usage(profile.key_usage, rsa_key=isinstance(public_key, rsa.RSAPublicKey))
        if usages is not None:
            builder = builder.add_extension(usages, critical=True)
        if profile.extended_key_usage:
            builder = builder.add_extension(
                x509.ExtendedKeyUsage([_eku_oid(n) for n in profile.extended_key_usage]),
                critical=False,
            )
        email = (subject.get("email") or "").strip()
        if email:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False
            )
        if profile.crl_url:
            builder = builder.add_extension(
                x509.CRLDistributionPoints(
                    [
                        x509.DistributionPoint(
                            full_name=[x509.UniformResourceIdentifier(profile.crl_url)],
                            relative_name=None,
                            reasons=None,
                            crl_issuer=None,
                        )
                    ]
                ),
                critical=False,
            )
        cert = builder.sign(self._key, self._hash)
        pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        return IssuedCertificate(
            serial=serial,
            subject=cert.subject.rfc4514_string(),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            pem=pem,
            chain_pem=pem + self.certificate_pem,
            public_key_sha256=public_key_sha256(_spki(public_key)),
        )

    def sign_crl(
        self,
        revoked: Iterable[tuple[int, datetime, str]],
        *,
        next_update: timedelta,
        now: datetime | None = None,
        crl_number: int,
    ) -> bytes:
        """Sign a CRL listing ``revoked`` as ``(serial, revoked_at, reason)``; return DER.

        ``reason`` is a RFC 5280 reason name in snake case (``key_compromise``,
        ``cessation_of_operation``, ``privilege_withdrawn``, ``superseded``,
        ``affiliation_changed``, ``unspecified``...). ``unspecified`` is written
        without a reasonCode extension, as RFC 5280 5.3.1 asks. The CRL carries
        the CRL number and authority key identifier extensions.
        """
        if crl_number < 0:
            raise ValueError("the CRL number must not be negative")
        this_update = _utc(now)
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(self.certificate.subject)
            .last_update(this_update)
            .next_update(this_update + next_update)
            .add_extension(x509.CRLNumber(crl_number), critical=False)
            .add_extension(self._aki(), critical=False)
        )
        for serial, revoked_at, reason in revoked:
            flag = _reason_flag(reason)
            entry = (
                x509.RevokedCertificateBuilder()
                .serial_number(serial)
                .revocation_date(_utc(revoked_at))
            )
            if flag is not x509.ReasonFlags.unspecified:
                entry = entry.add_extension(x509.CRLReason(flag), critical=False)
            builder = builder.add_revoked_certificate(entry.build())
        crl = builder.sign(self._key, self._hash)
        return crl.public_bytes(serialization.Encoding.DER)

    def sign_crl_pem(
        self,
        revoked: Iterable[tuple[int, datetime, str]],
        *,
        next_update: timedelta,
        now: datetime | None = None,
        crl_number: int,
    ) -> str:
        """Like :meth:`sign_crl`, but return the CRL in PEM."""
        return crl_to_pem(
            self.sign_crl(revoked, next_update=next_update, now=now, crl_number=crl_number)
        )


def _build_subject(subject: Mapping[str, str]) -> x509.Name:
    """Build the certificate subject from approved form data."""
    known = {key for key, _ in _SUBJECT_ATTRIBUTES} | _SAN_KEYS
    unknown = sorted(set(subject) - known)
    if unknown:
        raise ValueError(f"unknown subject keys: {', '.join(unknown)}")
    if not (subject.get("common_name") or "").strip():
        raise ValueError("the subject needs a common_name")
    attributes: list[x509.NameAttribute[str]] = []
    for key, oid in _SUBJECT_ATTRIBUTES:
        value = (subject.get(key) or "").strip()
        if not value:
            continue
        if oid == NameOID.COUNTRY_NAME:
            value = value.upper()
            if len(value) != 2 or not value.isascii() or not value.isalpha():
                raise ValueError(f"country must be a two-letter code, not {value!r}")
        attributes.append(x509.NameAttribute(oid, value))
    return x509.Name(attributes)


def _key_usage(names: tuple[str, ...], *, rsa_key: bool) -> x509.KeyUsage | None:
    """Map key usage names to the extension; None when nothing remains."""
    chosen: set[str] = set()
    for raw in names:
        usage = _KEY_USAGE_ALIASES.get(raw, raw)
        if usage not in _KEY_USAGES:
            raise ValueError(
                f"key usage {raw!r} is not allowed for end-entity certificates; "
                f"use {', '.join(_KEY_USAGES)}"
            )
        if usage in _RSA_ONLY_USAGES and not rsa_key:
            continue
        chosen.add(usage)
    if not chosen:
        return None
    flags = {usage: usage in chosen for usage in _KEY_USAGES}
    return x509.KeyUsage(
        digital_signature=flags["digital_signature"],
        content_commitment=flags["content_commitment"],
        key_encipherment=flags["key_encipherment"],
        data_encipherment=flags["data_encipherment"],
        key_agreement=flags["key_agreement"],
        key_cert_sign=False,
        crl_sign=False,
        encipher_only=False,
        decipher_only=False,
    )


def _eku_oid(name: str) -> ObjectIdentifier:
    if name in _EXTENDED_KEY_USAGES:
        return _EXTENDED_KEY_USAGES[name]
    try:
        return ObjectIdentifier(name)
    except ValueError as exc:
        raise ValueError(
            f"extended key usage {name!r} is neither a dotted OID nor one of "
            f"{', '.join(_EXTENDED_KEY_USAGES)}"
        ) from exc


def _reason_flag(reason: str) -> x509.ReasonFlags:
    try:
        return x509.ReasonFlags[reason]
    except KeyError:
        names = ", ".join(flag.name for flag in x509.ReasonFlags)
        raise ValueError(f"unknown revocation reason {reason!r}; use one of {names}") from None


def crl_to_pem(crl_der: bytes) -> str:
    """Return a DER CRL as PEM text."""
    crl = x509.load_der_x509_crl(crl_der)
    return crl.public_bytes(serialization.Encoding.PEM).decode("ascii")


def write_atomically(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, mode)
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def write_crl(path: Path, crl_der: bytes) -> None:
    """Write a CRL as PEM to ``path`` atomically (readers never see half a file)."""
    write_atomically(Path(path), crl_to_pem(crl_der).encode("ascii"), 0o644)
