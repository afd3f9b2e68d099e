"""A small, offline demo PKI: CAs, a TSA, signer certificates, CRLs and OCSP answers.

The demo (``pasts demo``) and the test fixtures both build their signed
applications with it. Everything is made with ``cryptography`` into a directory
of PEM files with fixed names, so a second :meth:`DemoPki.create` on the same
directory loads what the first one made. No server is needed: time-stamps come
from pyHanko's :class:`DummyTimeStamper`, and the CRL / OCSP helpers return
bytes that a caller may serve over HTTP (the test fixture does) or embed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID
from pyhanko.sign import signers
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from signing.qc import QC_STATEMENTS_OID, encode_qc_statements

# The personal codes of the two qualified demo signers (ETSI EN 319 412-1 semantics).
QUALIFIED_PERSONAL_CODE = "PNOLV-010190-12345"
QUALIFIED_2_PERSONAL_CODE = "PNOLV-150585-23456"

# The issuing certificate authorities, each issued by the root named here.
_CAS: dict[str, tuple[str, str | None]] = {
    # name: (common name, issuer name or None for self-signed)
    "root": ("Pasts Demo Root", None),
    "ca-qualified": ("Pasts Demo Qualified CA", "root"),
    "ca-nonqualified": ("Pasts Demo Non-Qualified CA", "root"),
    "untrusted-root": ("Untrusted Root", None),
    "untrusted-ca": ("Untrusted Issuing CA", "untrusted-root"),
}

# The end-entity certificates: name -> issuer.
_END_ENTITIES: dict[str, str] = {
    "tsa": "root",
    "untrusted-tsa": "untrusted-root",
    "qualified": "ca-qualified",
    "qualified-2": "ca-qualified",
    "nonqualified": "ca-nonqualified",
    "expired": "ca-qualified",
    "revoked": "ca-qualified",
    "untrusted": "untrusted-ca",
}

# The names :meth:`DemoPki.signer` accepts.
SIGNER_NAMES = ("qualified", "qualified-2", "nonqualified", "expired", "revoked", "untrusted")

_METADATA = "pki.json"


def _name(common_name: str, **extra: str) -> x509.Name:
    """Build a subject name; ``extra`` maps attribute names to values."""
    oids = {
        "given_name": NameOID.GIVEN_NAME,
        "surname": NameOID.SURNAME,
        "serial_number": NameOID.SERIAL_NUMBER,
        "organization": NameOID.ORGANIZATION_NAME,
    }
    attributes = [x509.NameAttribute(NameOID.COUNTRY_NAME, "LV")]
    for key, value in extra.items():
        attributes.append(x509.NameAttribute(oids[key], value))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attributes)


def _subjects() -> dict[str, x509.Name]:
    """The subject of every end-entity certificate."""
    return {
        "tsa": _name("Pasts Demo TSA", organization="Pasts Demo"),
        "untrusted-tsa": _name("Untrusted TSA"),
        "qualified": _name(
            "Anna Ozola", given_name="Anna", surname="Ozola", serial_number=QUALIFIED_PERSONAL_CODE
        ),
        "qualified-2": _name(
            "Jānis Bērziņš",
            given_name="Jānis",
            surname="Bērziņš",
            serial_number=QUALIFIED_2_PERSONAL_CODE,
        ),
        "nonqualified": _name(
            "Pēteris Kalniņš",
            given_name="Pēteris",
            surname="Kalniņš",
            serial_number="PNOLV-020280-34567",
        ),
        "expired": _name(
            "Ilze Liepa", given_name="Ilze", surname="Liepa", serial_number="PNOLV-030370-45678"
        ),
        "revoked": _name(
            "Māris Krūmiņš",
            given_name="Māris",
            surname="Krūmiņš",
            serial_number="PNOLV-040460-56789",
        ),
        "untrusted": _name(
            "Eve Mallory", given_name="Eve", surname="Mallory", serial_number="PNOLV-050550-67890"
        ),
    }


def _key_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class DemoPki:
    """A demo PKI on disk, with its certificates and keys loaded."""

    directory: Path
    """Where the PEM files (``NAME.cert.pem``, ``NAME.key.pem``) and ``pki.json`` live."""

    certificates: Mapping[str, x509.Certificate] = field(repr=False)
    """Every certificate by name (``root``, ``ca-qualified``, ``qualified``, ``tsa``, ...)."""

    keys: Mapping[str, rsa.RSAPrivateKey] = field(repr=False)
    """Every private key by the name of its certificate."""

    issuers: Mapping[str, str] = field(repr=False)
    """The issuer name of every non-root certificate."""

    revocations: Mapping[str, datetime] = field(repr=False)
    """Revoked certificates by name, with their revocation time."""

    ocsp_url: str | None = None
    """The OCSP responder URL written into the certificates, if any."""

    crl_url: str | None = None
    """The CRL base URL (``{crl_url}/{ca}.crl``) written into the certificates, if any."""

    @property
    def trust_roots(self) -> tuple[Path, ...]:
        """The only anchors a daemon configuration should list (not the untrusted root)."""
        return (self.cert_path("root"),)

    def cert_path(self, name: str) -> Path:
        """Path of the PEM certificate called ``name``."""
        return self.directory / f"{name}.cert.pem"

    def key_path(self, name: str) -> Path:
        """Path of the PEM (unencrypted PKCS#8) private key called ``name``."""
        return self.directory / f"{name}.key.pem"

    def chain(self, name: str) -> list[x509.Certificate]:
        """The certificate ``name`` followed by its issuers up to the root."""
        result = [self.certificates[name]]
        while name in self.issuers:
            name = self.issuers[name]
            result.append(self.certificates[name])
        return result

    def asn1_certificate(self, name: str) -> asn1_x509.Certificate:
        """The certificate ``name`` as an asn1crypto object (what pyHanko wants)."""
        der = self.certificates[name].public_bytes(serialization.Encoding.DER)
        return asn1_x509.Certificate.load(der)

    def asn1_key(self, name: str) -> asn1_keys.PrivateKeyInfo:
        """The private key ``name`` as an asn1crypto object."""
        der = self.keys[name].private_bytes(
            serialization.Encoding.DER,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        return asn1_keys.PrivateKeyInfo.load(der)

    def signer(self, name: str) -> signers.SimpleSigner:
        """A pyHanko signer for one of :data:`SIGNER_NAMES`, carrying its chain."""
        if name not in SIGNER_NAMES:
            raise KeyError(f"unknown signer {name!r}; choose one of {SIGNER_NAMES}")
        chain = [self.asn1_certificate(n) for n in self._chain_names(name)[1:]]
        return signers.SimpleSigner(
            signing_cert=self.asn1_certificate(name),
            signing_key=self.asn1_key(name),
            cert_registry=SimpleCertificateStore.from_certs(chain),  # type: ignore[no-untyped-call]
        )

    def timestamper(self, name: str = "tsa") -> DummyTimeStamper:
        """An offline time-stamper acting as the TSA ``name`` (``tsa`` or ``untrusted-tsa``)."""
        chain = [self.asn1_certificate(n) for n in self._chain_names(name)]
        return DummyTimeStamper(
            tsa_cert=self.asn1_certificate(name),
            tsa_key=self.asn1_key(name),
            certs_to_embed=SimpleCertificateStore.from_certs(chain),  # type: ignore[no-untyped-call]
        )

    def validation_context(self, **kwargs: Any) -> ValidationContext:
        """A validation context trusting only the demo root (for B-LT signing)."""
        kwargs.setdefault("trust_roots", [self.asn1_certificate("root")])
        kwargs.setdefault(
            "other_certs",
            [self.asn1_certificate(n) for n in ("ca-qualified", "ca-nonqualified")],
        )
        return ValidationContext(**kwargs)

    def _chain_names(self, name: str) -> list[str]:
        names = [name]
        while name in self.issuers:
            name = self.issuers[name]
            names.append(name)
        return names

    # -- revocation material -------------------------------------------------

    def crl(self, ca: str, *, now: datetime | None = None) -> bytes:
        """A DER CRL issued by ``ca`` listing the revoked certificates it issued."""
        now = now or datetime.now(UTC)
        issuer = self.certificates[ca]
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(issuer.subject)
            .last_update(now - timedelta(minutes=5))
            .next_update(now + timedelta(days=1))
            .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.keys[ca].public_key()),
                critical=False,
            )
        )
        for name, when in self.revocations.items():
            if self.issuers.get(name) != ca:
                continue
            revoked = (
                x509.RevokedCertificateBuilder()
                .serial_number(self.certificates[name].serial_number)
                .revocation_date(when)
                .add_extension(x509.CRLReason(x509.ReasonFlags.key_compromise), critical=False)
                .build()
            )
            builder = builder.add_revoked_certificate(revoked)
        return builder.sign(self.keys[ca], hashes.SHA256()).public_bytes(serialization.Encoding.DER)

    def ocsp_response(self, request_der: bytes, *, now: datetime | None = None) -> bytes:
        """Answer a DER OCSP request; the issuing CA signs its own responses."""
        now = now or datetime.now(UTC)
        try:
            request = ocsp.load_der_ocsp_request(request_der)
        except ValueError:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.MALFORMED_REQUEST
            ).public_bytes(serialization.Encoding.DER)
        ca = self._ca_for_key_hash(request.issuer_key_hash, request.hash_algorithm)
        if ca is None:
            return ocsp.OCSPResponseBuilder.build_unsuccessful(
                ocsp.OCSPResponseStatus.UNAUTHORIZED
            ).public_bytes(serialization.Encoding.DER)
        target = next(
            (
                name
                for name, issuer in self.issuers.items()
                if issuer == ca and self.certificates[name].serial_number == request.serial_number
            ),
            None,
        )
        revoked_at = self.revocations.get(target) if target else None
        if target is None:
            status = ocsp.OCSPCertStatus.UNKNOWN
        elif revoked_at is not None:
            status = ocsp.OCSPCertStatus.REVOKED
        else:
            status = ocsp.OCSPCertStatus.GOOD
        builder = ocsp.OCSPResponseBuilder().add_response_by_hash(
            issuer_name_hash=request.issuer_name_hash,
            issuer_key_hash=request.issuer_key_hash,
            serial_number=request.serial_number,
            algorithm=request.hash_algorithm,
            cert_status=status,
            this_update=now - timedelta(minutes=1),
            next_update=now + timedelta(hours=12),
            revocation_time=revoked_at,
            revocation_reason=x509.ReasonFlags.key_compromise if revoked_at else None,
        )
        builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, self.certificates[ca])
        for extension in request.extensions:
            if isinstance(extension.value, x509.OCSPNonce):
                builder = builder.add_extension(extension.value, critical=False)
        response = builder.sign(self.keys[ca], hashes.SHA256())
        return response.public_bytes(serialization.Encoding.DER)

    def _ca_for_key_hash(self, key_hash: bytes, algorithm: hashes.HashAlgorithm) -> str | None:
        for name in _CAS:
            public = (
                self.certificates[name]
                .public_key()
                .public_bytes(
                    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
                )
            )
            spki = asn1_keys.PublicKeyInfo.load(public)
            digest = hashes.Hash(algorithm)
            digest.update(bytes(spki["public_key"].contents[1:]))
            if digest.finalize() == key_hash:
                return name
        return None

    # -- creation --------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: Path,
        *,
        now: datetime | None = None,
        ocsp_url: str | None = None,
        crl_url: str | None = None,
    ) -> DemoPki:
        """Make the PKI in ``directory``, or load it if it is already there."""
        directory = Path(directory)
        if (directory / _METADATA).exists():
            return cls.load(directory)
        directory.mkdir(parents=True, exist_ok=True)
        now = (now or datetime.now(UTC)).replace(microsecond=0)
        subjects = _subjects()
        keys: dict[str, rsa.RSAPrivateKey] = {}
        certs: dict[str, x509.Certificate] = {}
        issuers: dict[str, str] = {}

        def aia_and_cdp(builder: x509.CertificateBuilder, issuer: str) -> x509.CertificateBuilder:
            # Revocation pointers are only written when the caller serves them.
            if ocsp_url:
                builder = builder.add_extension(
                    x509.AuthorityInformationAccess(
                        [
                            x509.AccessDescription(
                                AuthorityInformationAccessOID.OCSP,
                                x509.UniformResourceIdentifier(ocsp_url),
                            )
                        ]
                    ),
                    critical=False,
                )
            if crl_url:
                builder = builder.add_extension(
                    x509.CRLDistributionPoints(
                        [
                            x509.DistributionPoint(
                                full_name=[
                                    x509.UniformResourceIdentifier(
                                        f"{crl_url.rstrip('/')}/{issuer}.crl"
                                    )
                                ],
                                relative_name=None,
                                reasons=None,
                                crl_issuer=None,
                            )
                        ]
                    ),
                    critical=False,
                )
            return builder

        for name, (common_name, issuer) in _CAS.items():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            keys[name] = key
            subject = _name(common_name, organization="Pasts Demo")
            builder = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(certs[issuer].subject if issuer else subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - timedelta(days=3650))
                .not_valid_after(now + timedelta(days=3650))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=True,
                        crl_sign=True,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(
                    x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
                )
            )
            if issuer:
                issuers[name] = issuer
                builder = builder.add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(keys[issuer].public_key()),
                    critical=False,
                )
                builder = aia_and_cdp(builder, issuer)
            certs[name] = builder.sign(keys[issuer or name], hashes.SHA256())

        revocations: dict[str, datetime] = {"revoked": now - timedelta(days=5)}
        for name, issuer in _END_ENTITIES.items():
            key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            keys[name] = key
            issuers[name] = issuer
            not_before = now - timedelta(days=30)
            not_after = now + timedelta(days=730)
            if name == "expired":
                not_before, not_after = now - timedelta(days=400), now - timedelta(days=35)
            is_tsa = name.endswith("tsa")
            builder = (
                x509.CertificateBuilder()
                .subject_name(subjects[name])
                .issuer_name(certs[issuer].subject)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(not_before)
                .not_valid_after(not_after)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        content_commitment=not is_tsa,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=False,
                        crl_sign=False,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
                .add_extension(
                    x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False
                )
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(keys[issuer].public_key()),
                    critical=False,
                )
            )
            if is_tsa:
                builder = builder.add_extension(
                    x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True
                )
            if issuer == "ca-qualified":
                builder = builder.add_extension(
                    x509.UnrecognizedExtension(
                        x509.ObjectIdentifier(QC_STATEMENTS_OID), encode_qc_statements()
                    ),
                    critical=False,
                )
            builder = aia_and_cdp(builder, issuer)
            certs[name] = builder.sign(keys[issuer], hashes.SHA256())

        for name in certs:
            (directory / f"{name}.cert.pem").write_bytes(
                certs[name].public_bytes(serialization.Encoding.PEM)
            )
            key_file = directory / f"{name}.key.pem"
            key_file.write_bytes(_key_pem(keys[name]))
            key_file.chmod(0o600)
        metadata = {
            "created": now.isoformat(),
            "issuers": issuers,
            "revocations": {name: when.isoformat() for name, when in revocations.items()},
            "ocsp_url": ocsp_url,
            "crl_url": crl_url,
        }
        (directory / _METADATA).write_text(json.dumps(metadata, indent=2), encoding="utf-8")
        return cls.load(directory)

    @classmethod
    def load(cls, directory: Path) -> DemoPki:
        """Load a PKI that :meth:`create` made earlier."""
        directory = Path(directory)
        metadata = json.loads((directory / _METADATA).read_text(encoding="utf-8"))
        certs: dict[str, x509.Certificate] = {}
        keys: dict[str, rsa.RSAPrivateKey] = {}
        for name in (*_CAS, *_END_ENTITIES):
            certs[name] = x509.load_pem_x509_certificate(
                (directory / f"{name}.cert.pem").read_bytes()
            )
            key = serialization.load_pem_private_key(
                (directory / f"{name}.key.pem").read_bytes(), password=None
            )
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ValueError(f"{name}.key.pem is not an RSA key")
            keys[name] = key
        return cls(
            directory=directory,
            certificates=certs,
            keys=keys,
            issuers=dict(metadata["issuers"]),
            revocations={
                name: datetime.fromisoformat(when) for name, when in metadata["revocations"].items()
            },
            ocsp_url=metadata.get("ocsp_url"),
            crl_url=metadata.get("crl_url"),
        )
