"""Reading and judging certificate signing requests (PKCS#10).

The daemon receives CSRs as mail attachments (PEM or DER) or pasted into a
mail body. :func:`check_csr` turns any bytes into a :class:`CsrReport`
carrying the SPEC section 3 codes ``CSR-MISSING``, ``CSR-INVALID``,
``CSR-KEY-WEAK`` and ``CSR-SUBJECT-MISMATCH``; it never raises on bad input.

Decisions taken here (the SPEC leaves them open):

* A CSR signed with MD2, MD4, MD5, SHA-1 or an algorithm the library does not
  know is ``CSR-INVALID`` ("signature algorithm not accepted"): its proof of
  possession cannot be trusted.
* A CSR asking for a CA certificate (basicConstraints CA:TRUE) or carrying an
  unknown *critical* extension is ``CSR-INVALID``: the agency would never issue
  what it asks for, so the request is not one the agency can honour.
* Malformed attributes or extensions (wrong ASN.1, multi-valued or empty
  attribute sets, duplicate extensions) are ``CSR-INVALID``.
* The common name is compared after NFC normalisation. When the expected name
  looks like a DNS name (dot-separated labels, no spaces) the comparison is
  case-insensitive and IDNA-aware (``xn--`` A-labels equal their Unicode
  form); otherwise it is exact.
* The organisation (O), where the CSR has one, is compared as a person would
  (:func:`signing.names.same_organisation`: diacritics, quotes, case and
  spacing ignored, UTF-8 read as Latin-1 repaired); the issued subject never
  comes from the CSR, so this loosens nothing that is certified.
* Requested subjectAltNames are recorded in the report but never copied into
  an issued certificate. When ``allowed_san_dns`` is given, a requested DNS
  name it refuses is ``CSR-SUBJECT-MISMATCH``.

This module is a leaf: it imports nothing from the rest of the project
but the name comparison of :mod:`signing.names`.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field

from asn1crypto import csr as asn1_csr
from asn1crypto import keys as asn1_keys
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.x509.oid import NameOID

from signing.names import same_organisation

__all__ = [
    "CSR_INVALID",
    "CSR_KEY_WEAK",
    "CSR_MISSING",
    "CSR_SUBJECT_MISMATCH",
    "CsrError",
    "CsrReport",
    "KeyPolicy",
    "check_csr",
    "extract_inline_csr",
    "load_csr",
    "public_key_sha256",
]

CSR_MISSING = "CSR-MISSING"
CSR_INVALID = "CSR-INVALID"
CSR_KEY_WEAK = "CSR-KEY-WEAK"
CSR_SUBJECT_MISMATCH = "CSR-SUBJECT-MISMATCH"

# A PEM block with either the RFC 7468 label or the legacy Netscape/Microsoft
# "NEW CERTIFICATE REQUEST" label. The body may contain any whitespace, CRLF
# line ends and mail quoting ("> ") which are stripped before decoding.
_PEM_RE = re.compile(
    r"-----BEGIN (?:NEW )?CERTIFICATE REQUEST-----(?P<body>.*?)"
    r"-----END (?:NEW )?CERTIFICATE REQUEST-----",
    re.DOTALL,
)

# Signature hashes that no longer prove possession of the key.
_WEAK_HASHES = frozenset({"md2", "md4", "md5", "sha1"})

# Upper bound on the input size: a CSR is a few kilobytes at most.
_MAX_INPUT = 256 * 1024


class CsrError(ValueError):
    """The bytes are not a readable certificate signing request.

    The ``code`` is always ``CSR-INVALID``; the message says why.
    """

    def __init__(self, message: str, *, code: str = CSR_INVALID) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class KeyPolicy:
    """Which subject keys the agency accepts (see ``[csr]`` in config)."""

    #: The smallest accepted RSA modulus in bits.
    rsa_min_bits: int = 2048
    #: Accepted EC curves by their SEC names, e.g. ``secp256r1``.
    ec_curves: tuple[str, ...] = ("secp256r1", "secp384r1")
    #: Whether Ed25519 keys are accepted.
    allow_ed25519: bool = False


@dataclass(frozen=True)
class CsrReport:
    """What :func:`check_csr` found in one CSR.

    The report is filled as far as the input allows, also when it carries
    ``CSR-INVALID``.
    """

    #: Sorted SPEC rule codes; empty when the CSR is acceptable.
    codes: tuple[str, ...]
    #: Human-readable reasons, one sentence each, in the order found.
    notes: tuple[str, ...]
    #: The subject common name, when exactly one could be read.
    common_name: str | None
    #: The subject organisation (O), when one could be read.
    organisation: str | None
    #: The key type, e.g. ``RSA-2048``, ``EC-secp256r1``, ``Ed25519``, ``DSA-1024``.
    key_type: str | None
    #: Hex SHA-256 over the SubjectPublicKeyInfo DER, to match issued certificates.
    public_key_sha256: str | None
    #: Requested subjectAltNames such as ``DNS:a.example`` (recorded, never issued).
    requested_sans: tuple[str, ...]
    #: Names (or dotted OIDs) of the requested extensions.
    requested_extensions: tuple[str, ...]
    #: The CSR re-encoded as DER when it could be read.
    der: bytes | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """True when the CSR carries no rule code."""
        return not self.codes


def public_key_sha256(spki_der: bytes) -> str:
    """Return the hex SHA-256 digest of a SubjectPublicKeyInfo DER encoding."""
    return hashlib.sha256(spki_der).hexdigest()


def _decode_pem_body(body: str) -> bytes:
    """Decode the base64 body of a PEM block, tolerating mail artefacts.

    Header lines (``Key: value``) are skipped and a leading ``>`` quote marker
    on each line is removed.
    """
    chunks: list[str] = []
    for raw_line in body.splitlines():
        line = raw_line.strip()
        while line.startswith(">"):
            line = line[1:].strip()
        if not line or ":" in line:
            continue
        chunks.append("".join(line.split()))
    joined = "".join(chunks)
    try:
        return base64.b64decode(joined, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CsrError(f"the PEM block is not valid base64 ({exc})") from exc


def _to_der(data: bytes) -> bytes:
    """Return the DER bytes of a CSR given as PEM (anywhere in text) or DER."""
    if isinstance(data, str):
        # Callers holding a mail body as text may pass it unencoded.
        data = data.encode("utf-8", errors="replace")
    if not isinstance(data, bytes | bytearray | memoryview):
        raise CsrError(f"expected bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > _MAX_INPUT:
        raise CsrError(f"the CSR is too large ({len(data)} bytes)")
    if b"-----BEGIN" in data:
        text = data.decode("ascii", errors="replace")
        match = _PEM_RE.search(text)
        if match is None:
            raise CsrError("the PEM text holds no CERTIFICATE REQUEST block")
        return _decode_pem_body(match.group("body"))
    stripped = data.strip()
    if stripped[:1] == b"\x30":
        return data
    # Bare base64 without armour is seen in web forms; accept it if it decodes
    # to something that looks like DER.
    try:
        decoded = base64.b64decode(b"".join(stripped.split()), validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if decoded[:1] == b"\x30":
        return decoded
    raise CsrError("the data is neither PEM nor DER")


def load_csr(data: bytes) -> x509.CertificateSigningRequest:
    """Load a CSR from PEM (any label variant, text around it) or DER.

    Raises :class:`CsrError` (``code="CSR-INVALID"``) when the bytes cannot
    be read as a CSR.
    """
    der = _to_der(data)
    try:
        return x509.load_der_x509_csr(der)
    except Exception as exc:  # InvalidVersion, ValueError and friends.
        raise CsrError(f"the CSR cannot be parsed ({exc})") from exc


def extract_inline_csr(text: str) -> bytes | None:
    """Return the first CSR pasted into a mail body as normalised PEM bytes.

    Returns None when the text holds no complete, decodable
    ``BEGIN/END CERTIFICATE REQUEST`` block.
    """
    for match in _PEM_RE.finditer(text):
        try:
            der = _decode_pem_body(match.group("body"))
        except CsrError:
            continue
        if not der:
            continue
        body = base64.encodebytes(der).decode("ascii").replace("\n", "")
        lines = [body[i : i + 64] for i in range(0, len(body), 64)]
        pem = (
            "-----BEGIN CERTIFICATE REQUEST-----\n"
            + "\n".join(lines)
            + "\n-----END CERTIFICATE REQUEST-----\n"
        )
        return pem.encode("ascii")
    return None


def _nfc(value: str) -> str:
    return unicodedata.normalize("NFC", value)


_DNS_LABEL_RE = re.compile(r"[^\W_](?:[\w-]*[^\W_])?")


def _looks_like_dns(value: str) -> bool:
    """True for dot-separated labels of letters, digits and hyphens."""
    labels = value.rstrip(".").split(".")
    return len(labels) >= 2 and all(_DNS_LABEL_RE.fullmatch(label) for label in labels)


def _dns_key(value: str) -> str:
    """Return a comparison key for a DNS-like name (IDNA A-labels, lower case)."""
    value = _nfc(value).rstrip(".")
    try:
        # Python's IDNA 2003 codec lower-cases through nameprep and turns each
        # Unicode label into its xn-- form; ASCII labels pass through as-is.
        return value.encode("idna").decode("ascii").lower()
    except UnicodeError:
        return value.casefold()


def names_equal(actual: str, expected: str) -> bool:
    """Compare a CSR common name with the expected one (see module docstring)."""
    a, e = _nfc(actual).strip(), _nfc(expected).strip()
    if a == e:
        return True
    if _looks_like_dns(a) and _looks_like_dns(e):
        return _dns_key(a) == _dns_key(e)
    return False


def organisations_equal(actual: str, expected: str) -> bool:
    """Compare organisation names as a person would (:func:`signing.names.same_organisation`)."""
    return same_organisation(actual, expected)


@dataclass
class _Findings:
    """Mutable collector used while one CSR is judged."""

    codes: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    def add(self, code: str, note: str) -> None:
        self.codes.add(code)
        self.notes.append(note)


def _describe_key(key: object) -> tuple[str, str | None]:
    """Return the key type string and a policy-independent problem or None.

    The problem is a weakness no policy accepts, such as an unusable RSA
    exponent; policy checks happen in :func:`_check_key_policy`.
    """
    if isinstance(key, rsa.RSAPublicKey):
        e = key.public_numbers().e
        problem = None if e >= 3 and e % 2 == 1 else f"the RSA public exponent {e} is unusable"
        return f"RSA-{key.key_size}", problem
    if isinstance(key, ec.EllipticCurvePublicKey):
        return f"EC-{key.curve.name}", None
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", None
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", None
    if isinstance(key, dsa.DSAPublicKey):
        return f"DSA-{key.key_size}", None
    return type(key).__name__, None


def _describe_spki(spki_der: bytes) -> str | None:
    """Name a key from its SubjectPublicKeyInfo with asn1crypto (fallback path)."""
    try:
        info = asn1_keys.PublicKeyInfo.load(spki_der)
        algorithm = info.algorithm
        if algorithm == "rsa":
            return f"RSA-{info.bit_size}"
        if algorithm == "ec":
            kind, curve = info.curve
            return f"EC-{curve}" if kind == "named" else "EC-explicit"
        if algorithm == "dsa":
            return f"DSA-{info.bit_size}"
        if algorithm == "ed25519":
            return "Ed25519"
        if algorithm == "ed448":
            return "Ed448"
        return str(algorithm)
    except Exception:
        return None


def _check_key_policy(key_type: str, policy: KeyPolicy, findings: _Findings) -> None:
    """Add CSR-KEY-WEAK when the key type is outside the policy."""
    if key_type.startswith("RSA-"):
        bits = int(key_type[4:])
        if bits < policy.rsa_min_bits:
            findings.add(
                CSR_KEY_WEAK,
                f"The RSA key has {bits} bits; at least {policy.rsa_min_bits} are required.",
            )
        return
    if key_type.startswith("EC-"):
        curve = key_type[3:]
        if curve not in policy.ec_curves:
            findings.add(
                CSR_KEY_WEAK,
                f"The EC curve {curve} is not accepted; use one of {', '.join(policy.ec_curves)}.",
            )
        return
    if key_type == "Ed25519":
        if not policy.allow_ed25519:
            findings.add(CSR_KEY_WEAK, "Ed25519 keys are not accepted by this agency.")
        return
    findings.add(CSR_KEY_WEAK, f"The key type {key_type} is not accepted.")


def _format_general_name(name: x509.GeneralName) -> str:
    if isinstance(name, x509.DNSName):
        return f"DNS:{name.value}"
    if isinstance(name, x509.RFC822Name):
        return f"email:{name.value}"
    if isinstance(name, x509.UniformResourceIdentifier):
        return f"URI:{name.value}"
    if isinstance(name, x509.IPAddress):
        return f"IP:{name.value}"
    if isinstance(name, x509.DirectoryName):
        return f"DirName:{name.value.rfc4514_string()}"
    if isinstance(name, x509.RegisteredID):
        return f"RID:{name.value.dotted_string}"
    if isinstance(name, x509.OtherName):
        return f"othername:{name.type_id.dotted_string}"
    return repr(name)


def _extension_name(oid: x509.ObjectIdentifier) -> str:
    name = getattr(oid, "_name", "Unknown OID")
    return oid.dotted_string if name == "Unknown OID" else str(name)


def _subject_values(csr: x509.CertificateSigningRequest, oid: x509.ObjectIdentifier) -> list[str]:
    return [
        v.decode("latin-1") if isinstance(v, bytes) else str(v)
        for v in (a.value for a in csr.subject.get_attributes_for_oid(oid))
    ]


def _fallback_report(
    der: bytes | None, findings: _Findings
) -> tuple[str | None, str | None, str | None, str | None]:
    """Read CN, O, key type and key digest with asn1crypto when cryptography cannot.

    Returns ``(common_name, organisation, key_type, public_key_sha256)``, each
    None when it cannot be read.
    """
    cn = org = key_type = digest = None
    if not der:
        return cn, org, key_type, digest
    try:
        info = asn1_csr.CertificationRequest.load(der)["certification_request_info"]
    except Exception:
        return cn, org, key_type, digest
    try:
        subject = info["subject"].native
        if isinstance(subject, dict):
            cn_value = subject.get("common_name")
            org_value = subject.get("organization_name")
            cn = cn_value if isinstance(cn_value, str) else None
            org = org_value if isinstance(org_value, str) else None
    except Exception:
        findings.notes.append("The subject name cannot be read.")
    try:
        spki = info["subject_pk_info"].dump()
        digest = public_key_sha256(spki)
        key_type = _describe_spki(spki)
    except Exception:
        pass
    return cn, org, key_type, digest


def _report(
    findings: _Findings,
    *,
    cn: str | None = None,
    org: str | None = None,
    key_type: str | None = None,
    digest: str | None = None,
    sans: tuple[str, ...] = (),
    extensions: tuple[str, ...] = (),
    der: bytes | None = None,
) -> CsrReport:
    return CsrReport(
        codes=tuple(sorted(findings.codes)),
        notes=tuple(findings.notes),
        common_name=cn,
        organisation=org,
        key_type=key_type,
        public_key_sha256=digest,
        requested_sans=sans,
        requested_extensions=extensions,
        der=der,
    )


def check_csr(
    data: bytes | None,
    *,
    expected_cn: str | None,
    expected_org: str | None,
    policy: KeyPolicy,
    allowed_san_dns: Callable[[str], bool] | None = None,
) -> CsrReport:
    """Judge one CSR against the form's values and the key policy.

    ``data`` is the attachment (PEM, DER or text holding a PEM block) or None
    when no CSR came with the application (``CSR-MISSING``). ``expected_cn``
    and ``expected_org`` come from the signed form; None skips that check.
    Never raises on any input bytes.
    """
    findings = _Findings()
    if data is None or (isinstance(data, bytes | str) and not data.strip()):
        findings.add(CSR_MISSING, "No certificate signing request was attached.")
        return _report(findings)

    # Step 1: get DER bytes and a parsed request; fall back to asn1crypto so
    # that a broken request still reports what can be read.
    try:
        der: bytes | None = _to_der(data)
    except CsrError as exc:
        findings.add(CSR_INVALID, f"The CSR cannot be read: {exc}.")
        return _report(findings)
    try:
        csr = x509.load_der_x509_csr(der or b"")
    except Exception as exc:
        findings.add(CSR_INVALID, f"The CSR cannot be parsed ({exc}).")
        fb_cn, fb_org, fb_key_type, fb_digest = _fallback_report(der, findings)
        return _report(findings, cn=fb_cn, org=fb_org, key_type=fb_key_type, digest=fb_digest)

    with contextlib.suppress(Exception):
        der = csr.public_bytes(serialization.Encoding.DER)

    # Step 2: the subject key and the proof of possession.
    key_type: str | None = None
    digest: str | None = None
    try:
        key = csr.public_key()
        spki = key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        digest = public_key_sha256(spki)
        key_type, key_problem = _describe_key(key)
        if key_problem:
            findings.add(CSR_KEY_WEAK, f"The key is not usable: {key_problem}.")
        _check_key_policy(key_type, policy, findings)
    except Exception as exc:
        # The key is broken or of a kind the library cannot use; name it from
        # the raw SubjectPublicKeyInfo for the report.
        _, _, key_type, digest = _fallback_report(der, _Findings())
        findings.add(CSR_INVALID, f"The subject public key cannot be loaded ({exc}).")

    # A weak or unknown signature algorithm is refused outright; the
    # self-signature is then not checked (the library refuses SHA-1 anyway).
    algorithm_ok = True
    try:
        hash_algorithm = csr.signature_hash_algorithm
        if hash_algorithm is not None and hash_algorithm.name in _WEAK_HASHES:
            algorithm_ok = False
            findings.add(
                CSR_INVALID,
                f"The signature algorithm is not accepted: {hash_algorithm.name.upper()} "
                "is too weak to prove possession of the key.",
            )
    except Exception:
        algorithm_ok = False
        oid = "unknown"
        with contextlib.suppress(Exception):
            oid = csr.signature_algorithm_oid.dotted_string
        findings.add(CSR_INVALID, f"The signature algorithm {oid} is not accepted.")
    try:
        signature_ok = csr.is_signature_valid
    except Exception:
        signature_ok = False
    if algorithm_ok and not signature_ok:
        findings.add(
            CSR_INVALID,
            "The CSR's self-signature does not verify (no proof of possession of the key).",
        )

    # Step 3: attributes and extensions must at least be well formed.
    try:
        list(csr.attributes)
    except Exception as exc:
        findings.add(CSR_INVALID, f"The CSR attributes are malformed ({exc}).")
    sans: list[str] = []
    extension_names: list[str] = []
    try:
        extensions = list(csr.extensions)
    except Exception as exc:
        findings.add(CSR_INVALID, f"The requested extensions are malformed ({exc}).")
        extensions = []
    for ext in extensions:
        extension_names.append(_extension_name(ext.oid))
        value = ext.value
        if isinstance(value, x509.BasicConstraints) and value.ca:
            findings.add(CSR_INVALID, "The CSR asks for a CA certificate, which is never issued.")
        elif isinstance(value, x509.UnrecognizedExtension) and ext.critical:
            findings.add(
                CSR_INVALID,
                f"The CSR requests an unknown critical extension {ext.oid.dotted_string}.",
            )
        elif isinstance(value, x509.SubjectAlternativeName):
            sans.extend(_format_general_name(name) for name in value)

    # Step 4: the subject must match the signed form.
    cn: str | None = None
    org: str | None = None
    try:
        cns = _subject_values(csr, NameOID.COMMON_NAME)
        orgs = _subject_values(csr, NameOID.ORGANIZATION_NAME)
    except Exception as exc:
        findings.add(CSR_INVALID, f"The subject name cannot be read ({exc}).")
        cns, orgs = [], []
    else:
        cn = cns[0] if len(cns) == 1 else None
        org = orgs[0] if orgs else None
        if expected_cn is not None:
            if not cns:
                findings.add(CSR_SUBJECT_MISMATCH, "The CSR subject has no common name (CN).")
            elif len(cns) > 1:
                findings.add(CSR_SUBJECT_MISMATCH, "The CSR subject has more than one CN.")
            elif not names_equal(cns[0], expected_cn):
                findings.add(
                    CSR_SUBJECT_MISMATCH,
                    f"The CSR common name {cns[0]!r} differs from the form's {expected_cn!r}.",
                )
        if expected_org is not None:
            for value in orgs:
                if not organisations_equal(value, expected_org):
                    findings.add(
                        CSR_SUBJECT_MISMATCH,
                        f"The CSR organisation {value!r} differs from the form's {expected_org!r}.",
                    )
    if allowed_san_dns is not None:
        for san in sans:
            if san.startswith("DNS:") and not allowed_san_dns(san[4:]):
                findings.add(
                    CSR_SUBJECT_MISMATCH,
                    f"The requested name {san[4:]!r} is not one this applicant may use.",
                )

    return _report(
        findings,
        cn=cn,
        org=org,
        key_type=key_type,
        digest=digest,
        sans=tuple(sans),
        extensions=tuple(extension_names),
        der=der,
    )
