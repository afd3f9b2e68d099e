"""ASiC-E containers with XAdES signatures: safe reading, verification and a builder.

An applicant may send the form PDF inside an ASiC-E container (``.asice``,
``.edoc``, ``.sce``, ``.bdoc``) instead of a PAdES-signed PDF. The container is
a ZIP file holding a ``mimetype`` entry, the data files, and one or more
``META-INF/*signatures*.xml`` documents whose ``ds:Signature`` elements sign the
data files by detached references (ETSI EN 319 162-1, XAdES per EN 319 132-1).

Verification is judged with the same rule codes, and by the same shared
judgement (:meth:`Verifier._judge_trust`, :meth:`Verifier._judge_signer_and_timestamp`),
as a signed PDF. The container is read under the verifier's size limit, chunk by
chunk, so a ZIP bomb cannot exhaust memory; only a container that cannot be read
at all raises :class:`~signing.verify.UnreadableInput`. Every problem with one
signature becomes codes and notes on that signature:

* a reference whose digest does not match, a referenced file that is missing, a
  data file that a signature does not cover, or a broken ``SignatureValue`` is
  ``SIG-INVALID``;
* the signer's certificate is validated by pyHanko's certificate validator in
  the verifier's own validation context, with the revocation data and
  certificates embedded in the signature, at the signature time-stamp's time;
* the signature time-stamp (``xades:SignatureTimeStamp``) must time-stamp the
  canonicalised ``ds:SignatureValue`` element.

CAdES signatures in ASiC-E (``META-INF/signature*.p7s`` signing an
``ASiCManifest``) are verified by the verifier's detached-CMS path, and the
manifest's digests here; their statuses have ``kind="cms"``.

Counter-signatures (``xades:CounterSignature``) are verified as signatures of
their own over the countersigned ``ds:SignatureValue``; a data file covered
only by a counter-signature that verifies counts as covered.

Not supported, and reported as notes where present: archive time-stamps
(XAdES-LTA, ``ASiCArchiveManifest``), counter-signatures of counter-signatures,
``ds:Manifest`` references, and XAdES 1.1.1 (whose signatures are ``SIG-INVALID``).

:func:`make_asice` builds containers (tests and the demo sign with it).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import mimetypes
import re
import zipfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from io import BytesIO
from typing import Any
from urllib.parse import quote, unquote

from asn1crypto import algos, cms, tsp
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from lxml import etree
from pyhanko.sign import signers
from pyhanko.sign.ades.report import AdESIndeterminate
from pyhanko.sign.general import get_pyca_cryptography_hash
from pyhanko.sign.timestamps import TimeStamper
from pyhanko.sign.validation.generic_cms import validate_cert_usage, validate_tst_signed_data
from pyhanko.sign.validation.status import (
    RevocationDetails,
    StandardCMSSignatureStatus,
    TimestampSignatureStatus,
)
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureMethod,
    digest_algorithm_implementations,
)
from signxml.exceptions import InvalidDigest, InvalidSignature
from signxml.xades import XAdESSignatureConfiguration, XAdESVerifier

from signing.fetching import MessageFetching
from signing.tolerant import tolerant_rsa_key
from signing.verify import (
    FormVerdict,
    SignatureStatus,
    SignerIdentity,
    UnreadableInput,
    Verifier,
    _broken,
)

# The ``mimetype`` values of the containers this intake accepts (ASiC-E and BDOC).
ASIC_E_MIMETYPE = "application/vnd.etsi.asic-e+zip"
ACCEPTED_MIMETYPES = (ASIC_E_MIMETYPE, "application/vnd.bdoc-1.0", "application/vnd.bdoc-1.1")
# More entries than this and the container is refused unread.
MAX_ENTRIES = 1000
# The size of the pieces in which entries are decompressed.
_CHUNK = 64 * 1024

# XML namespaces.
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XADES_NS = "http://uri.etsi.org/01903/v1.3.2#"
XADES141_NS = "http://uri.etsi.org/01903/v1.4.1#"
ASIC_NS = "http://uri.etsi.org/02918/v1.2.1#"
_MANIFEST_NS = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"
_NS = {"ds": DS_NS, "xades": XADES_NS, "xades141": XADES141_NS}
_SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"

# Digest algorithms a reference may use (anything else is SIG-INVALID).
_REFERENCE_DIGESTS = frozenset(
    {DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512}
)
# Signature methods checked mathematically; the validation context's algorithm
# policy then judges them as it judges a PDF signature's (SHA-1 is untrusted).
_SIGNATURE_METHODS = frozenset(m for m in SignatureMethod if not m.name.startswith("HMAC"))
# The canonicalisation of a time-stamped ds:SignatureValue when none is named
# (ETSI EN 319 132-1, 5.3: Canonical XML 1.0 without comments).
_DEFAULT_TS_C14N = CanonicalizationMethod.CANONICAL_XML_1_0.value
# XML parsing that neither expands entities, nor fetches, nor accepts huge trees.
_PARSER_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "huge_tree": False,
    "load_dtd": False,
    "remove_comments": False,
}
# A path segment a container entry may not have.
_BAD_SEGMENTS = {"", ".", ".."}


def _parser() -> etree.XMLParser:
    return etree.XMLParser(**_PARSER_OPTIONS)


def _xml(data: bytes) -> etree._Element:
    """Parse an XML document from the container; raises ``ValueError`` on DTDs and entities."""
    root = etree.fromstring(data, parser=_parser())
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise ValueError("DTD declarations are not allowed")
    return root


# -- reading the container -------------------------------------------------------------


@dataclass(frozen=True)
class AsicContainer:
    """The parts of an ASiC-E container, read under the size limits."""

    mimetype: str
    """The content of the ``mimetype`` entry."""

    data_files: tuple[tuple[str, bytes], ...] = field(repr=False)
    """The signed content: every file outside ``META-INF/`` except ``mimetype``, in ZIP order."""

    signature_files: tuple[tuple[str, bytes], ...] = field(repr=False)
    """The XAdES signature documents, ``META-INF/*signatures*.xml``, sorted by name."""

    meta_files: tuple[tuple[str, bytes], ...] = field(repr=False)
    """Every other file under ``META-INF/`` (manifests, CAdES signatures, time-stamps)."""

    notes: tuple[str, ...] = ()
    """Oddities that do not stop verification (``mimetype`` not first, no manifest)."""

    def entry(self, name: str) -> bytes | None:
        """The content of a data or ``META-INF`` file by its name in the ZIP."""
        for entry_name, content in (*self.data_files, *self.meta_files):
            if entry_name == name:
                return content
        return None


def _check_name(name: str) -> None:
    """Refuse names that could escape a directory or mean different files to different tools."""
    if "\x00" in name or "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UnreadableInput(f"the container holds an unsafe file name {name!r}")
    segments = name.rstrip("/").split("/")
    if any(segment in _BAD_SEGMENTS for segment in segments):
        raise UnreadableInput(f"the container holds an unsafe file name {name!r}")


def _is_signature_file(name: str) -> bool:
    """``META-INF/*signatures*.xml`` (EN 319 162-1, 4.4.3.2); CAdES ``signature*.p7s`` is not."""
    if not name.startswith("META-INF/"):
        return False
    base = name[len("META-INF/") :]
    return "/" not in base and "signatures" in base and base.endswith(".xml")


def read_container(data: bytes, *, max_bytes: int) -> AsicContainer:
    """Read an ASiC-E container; raises :class:`UnreadableInput` if it cannot be read safely.

    ``max_bytes`` bounds both the container and the total uncompressed size of
    its entries; entries are decompressed in chunks and reading stops as soon
    as the total goes over it. Nested archives stay opaque data files.

    The ``mimetype`` entry must be present and name ASiC-E or BDOC. That it is
    not the first entry, as the standard wants, is only a note: real containers
    (DSS-made, BDOC) often put it elsewhere. Unsafe or duplicate names,
    encrypted entries and compression other than stored/deflated are refused.
    """
    if len(data) > max_bytes:
        raise UnreadableInput(f"container is {len(data)} bytes, over the limit of {max_bytes}")
    try:
        archive = zipfile.ZipFile(BytesIO(data))
    except Exception as exc:  # noqa: BLE001 - any ZIP parser failure means unreadable.
        raise UnreadableInput(f"not a ZIP container: {exc}") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            raise UnreadableInput(f"the container has {len(infos)} entries, over {MAX_ENTRIES}")
        seen: set[str] = set()
        declared = 0
        for info in infos:
            _check_name(info.filename)
            if info.filename in seen:
                raise UnreadableInput(f"the container holds {info.filename!r} twice")
            seen.add(info.filename)
            if info.flag_bits & 0x1:
                raise UnreadableInput(f"{info.filename!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise UnreadableInput(f"{info.filename!r} uses an unsupported compression method")
            declared += info.file_size
        if declared > max_bytes:
            raise UnreadableInput(
                f"the container's files would unpack to {declared} bytes, over {max_bytes}"
            )

        total = 0
        entries: list[tuple[str, bytes]] = []
        for info in infos:
            if info.is_dir():
                continue
            chunks: list[bytes] = []
            try:
                with archive.open(info) as stream:
                    while chunk := stream.read(_CHUNK):
                        total += len(chunk)
                        if total > max_bytes:
                            raise UnreadableInput(
                                f"the container's files unpack to more than {max_bytes} bytes"
                            )
                        chunks.append(chunk)
            except UnreadableInput:
                raise
            except Exception as exc:  # noqa: BLE001 - a corrupt entry means unreadable.
                raise UnreadableInput(f"{info.filename!r} cannot be unpacked: {exc}") from exc
            entries.append((info.filename, b"".join(chunks)))

    notes: list[str] = []
    contents = dict(entries)
    if "mimetype" not in contents:
        raise UnreadableInput("the container has no mimetype entry")
    mimetype = contents["mimetype"].decode("ascii", "replace").strip()
    if mimetype not in ACCEPTED_MIMETYPES:
        raise UnreadableInput(f"not an ASiC-E container (mimetype {mimetype[:80]!r})")
    if infos[0].filename != "mimetype":
        notes.append("the mimetype entry is not the first in the container")
    if "META-INF/manifest.xml" not in contents:
        notes.append("the container has no META-INF/manifest.xml")

    data_files = tuple(
        (name, content)
        for name, content in entries
        if name != "mimetype" and not name.startswith("META-INF/")
    )
    signature_files = tuple(
        sorted((item for item in entries if _is_signature_file(item[0])), key=lambda i: i[0])
    )
    meta_files = tuple(
        (name, content)
        for name, content in entries
        if name.startswith("META-INF/") and not _is_signature_file(name)
    )
    return AsicContainer(
        mimetype=mimetype,
        data_files=data_files,
        signature_files=signature_files,
        meta_files=meta_files,
        notes=tuple(notes),
    )


# -- the verdict ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AsicVerdict:
    """The verdict on an ASiC-E container: its signatures and the files they sign."""

    verdict: FormVerdict
    """The signatures' verdict, with the codes of a signed PDF (each status has ``kind="xades"``)."""

    documents: tuple[tuple[str, bytes], ...] = field(repr=False)
    """Every data file as ``(name, content)``, in container order (``META-INF`` excluded)."""

    form_name: str | None
    """The name of the first ``.pdf`` data file, or ``None`` without one."""

    form_bytes: bytes | None = field(repr=False)
    """The content of that PDF, or ``None``."""

    @property
    def codes(self) -> tuple[str, ...]:
        """The verdict's sorted codes."""
        return self.verdict.codes

    @property
    def signer(self) -> SignerIdentity | None:
        """The identity of the last signature's signer."""
        return self.verdict.signer

    @property
    def ok(self) -> bool:
        """True when the container is signed and no code was raised."""
        return self.verdict.ok


@dataclass(frozen=True)
class _XadesValidation:
    """What the shared judgement reads from a validation status, under pyHanko's names."""

    intact: bool
    valid: bool
    signing_cert: asn1_x509.Certificate | None
    trust_problem_indic: Any
    validation_path: Any
    revocation_details: RevocationDetails | None
    timestamp_validity: Any
    signer_reported_dt: datetime | None

    @property
    def trusted(self) -> bool:
        return (
            self.valid
            and self.intact
            and self.trust_problem_indic is None
            and self.validation_path is not None
        )

    @property
    def revoked(self) -> bool:
        return self.revocation_details is not None


@dataclass(frozen=True)
class _BrokenTimestamp:
    """A time-stamp token that is present but cannot be validated at all."""

    intact: bool = False
    valid: bool = False
    trusted: bool = False
    timestamp: datetime | None = None
    trust_problem_indic: Any = None


# -- verification ----------------------------------------------------------------------------


async def verify_container(verifier: Verifier, data: bytes) -> AsicVerdict:
    """Verify every signature in an ASiC-E container (the body of ``Verifier.verify_asic``).

    XAdES signatures are verified here; CAdES signatures (``META-INF/signature*.p7s``
    over an ``ASiCManifest``) by the verifier's detached-CMS path, their manifest's
    digests here. Raises only :class:`UnreadableInput`.
    """
    container = read_container(data, max_bytes=verifier.settings.max_pdf_bytes)
    documents = container.data_files
    form_name, form_bytes = next(
        ((name, content) for name, content in documents if name.lower().endswith(".pdf")),
        (None, None),
    )
    doc_notes = list(container.notes)

    xades: list[tuple[str, etree._Element | None, str | None]] = []
    for name, content in container.signature_files:
        try:
            root = _xml(content)
        except Exception as exc:  # noqa: BLE001 - an unparsable signature file is SIG-INVALID.
            xades.append((name, None, f"{name} cannot be parsed: {exc}"))
            continue
        found = (
            [root] if root.tag == f"{{{DS_NS}}}Signature" else root.findall(f"{{{DS_NS}}}Signature")
        )
        if not found:
            xades.append((name, None, f"{name} holds no ds:Signature"))
        xades.extend((name, element, None) for element in found)
    cades = _cades_signatures(container, doc_notes)

    if not xades and not cades:
        return AsicVerdict(
            verdict=FormVerdict(
                signatures=(), codes=("SIG-MISSING",), signer=None, notes=tuple(doc_notes)
            ),
            documents=documents,
            form_name=form_name,
            form_bytes=form_bytes,
        )

    statuses: list[tuple[SignatureStatus, frozenset[str]]] = []
    fetching = verifier._fetching()
    try:
        for name, element, problem in xades:
            if element is None:
                statuses.append((_broken_status(name, problem or "no signature"), frozenset()))
                continue
            label = f"{name}#{element.get('Id')}" if element.get("Id") else name
            try:
                statuses.extend(
                    await _verify_signature(verifier, element, label, container, fetching)
                )
            except RecursionError:
                statuses.append((_broken_status(label, "signature nested too deeply"), frozenset()))
            except Exception as exc:  # noqa: BLE001 - every validator error is SIG-INVALID.
                statuses.append(
                    (_broken_status(label, f"signature validation failed: {exc!r}"), frozenset())
                )
    finally:
        if fetching is not None:
            await fetching.close()
    for signature_name, manifest in cades:
        try:
            statuses.extend(await _verify_cades(verifier, signature_name, manifest, container))
        except Exception as exc:  # noqa: BLE001 - a broken manifest is SIG-INVALID.
            note = f"signature validation failed: {exc!r}"
            statuses.append((_broken(signature_name, note, kind="cms"), frozenset()))

    codes = tuple(sorted({code for status, _ in statuses for code in status.codes}))
    covers_form = form_name is not None and all(form_name in covered for _, covered in statuses)
    verdict = FormVerdict(
        signatures=tuple(status for status, _ in statuses),
        codes=codes,
        signer=statuses[-1][0].signer,
        signed_revision=form_bytes if covers_form else None,
        notes=tuple(doc_notes),
    )
    return AsicVerdict(
        verdict=verdict, documents=documents, form_name=form_name, form_bytes=form_bytes
    )


def _cades_signatures(
    container: AsicContainer, notes: list[str]
) -> list[tuple[str, tuple[str, bytes] | None]]:
    """Each ``META-INF/signature*.p7s`` with the ``ASiCManifest`` that names it (or ``None``)."""
    manifests: dict[str, tuple[str, bytes]] = {}
    for name, content in container.meta_files:
        base = name[len("META-INF/") :]
        if not (base.startswith("ASiCManifest") and base.endswith(".xml")):
            if "ArchiveManifest" in base or base.endswith(".tst"):
                notes.append(f"{name}: container time-stamps are not validated")
            continue
        try:
            reference = _xml(content).find(f"{{{ASIC_NS}}}SigReference")
        except Exception as exc:  # noqa: BLE001 - an unreadable manifest signs nothing.
            notes.append(f"{name} cannot be parsed: {exc}")
            continue
        if reference is not None and reference.get("URI"):
            manifests[unquote(reference.get("URI") or "")] = (name, content)
    return [
        (name, manifests.get(name))
        for name, _content in container.meta_files
        if name[len("META-INF/") :].startswith("signature") and name.endswith(".p7s")
    ]


async def _verify_cades(
    verifier: Verifier,
    signature_name: str,
    manifest: tuple[str, bytes] | None,
    container: AsicContainer,
) -> list[tuple[SignatureStatus, frozenset[str]]]:
    """A CAdES signature over an ``ASiCManifest``, and the manifest's digests of the data files.

    One entry per signer of the CMS (usually one), each with the manifest's findings.
    """
    signature = container.entry(signature_name) or b""
    if manifest is None:
        status = _broken(signature_name, "no ASiCManifest names this signature", kind="cms")
        return [(status, frozenset())]
    manifest_name, manifest_bytes = manifest
    verdict = await verifier._verify_detached(manifest_bytes, signature, "cms")
    found = []
    for status in verdict.signatures:
        label = signature_name if len(verdict.signatures) == 1 else (
            f"{signature_name} {status.field_name}")
        found.append(_judge_manifest(status, label, manifest_name, manifest_bytes, container))
    return found


def _judge_manifest(
    status: SignatureStatus, label: str, manifest_name: str, manifest_bytes: bytes,
    container: AsicContainer,
) -> tuple[SignatureStatus, frozenset[str]]:
    """A CAdES signer's status with the manifest's digests judged, and the files covered."""
    codes = set(status.codes)
    notes = list(status.notes)
    referenced: set[str] = set()
    intact = True
    for reference in _xml(manifest_bytes).iterfind(f"{{{ASIC_NS}}}DataObjectReference"):
        name = unquote(reference.get("URI") or "")
        method = reference.find("ds:DigestMethod", _NS)
        value = reference.find("ds:DigestValue", _NS)
        content = container.entry(name)
        algorithm = method.get("Algorithm") if method is not None else None
        if algorithm not in {digest.value for digest in _REFERENCE_DIGESTS}:
            intact = False
            notes.append(
                f"{manifest_name}: reference {name!r} uses the digest algorithm {algorithm}"
            )
        elif content is None:
            intact = False
            notes.append(f"{manifest_name}: the signed file {name!r} is not in the container")
        elif (
            value is None
            or _b64(value.text)
            != hashlib.new(
                digest_algorithm_implementations[DigestAlgorithm(algorithm)]().name, content
            ).digest()
        ):
            intact = False
            notes.append(f"{manifest_name}: the digest of {name!r} does not match")
        referenced.add(name)
    for name, _content in container.data_files:
        if name not in referenced:
            intact = False
            notes.append(f"the data file {name!r} is not covered by this signature")
    if not intact:
        codes.add("SIG-INVALID")
    status = replace(
        status,
        field_name=label,
        intact=status.intact and intact,
        codes=tuple(sorted(codes)),
        notes=tuple(notes),
    )
    covered = frozenset(referenced) if status.intact and status.valid else frozenset()
    return status, covered


def _broken_status(label: str | None, note: str) -> SignatureStatus:
    """The status of a XAdES signature that could not be validated at all."""
    return replace(_broken(label, note), kind="xades")


def _b64(text: str | None) -> bytes:
    return base64.b64decode("".join((text or "").split()), validate=True)


def _certificates(signature: etree._Element) -> list[asn1_x509.Certificate]:
    """The certificates in ``ds:KeyInfo/ds:X509Data``, in document order."""
    return [
        asn1_x509.Certificate.load(_b64(node.text))
        for node in signature.iterfind("ds:KeyInfo/ds:X509Data/ds:X509Certificate", _NS)
    ]


def _signing_certificate(
    certificates: list[asn1_x509.Certificate], signed_properties: etree._Element
) -> asn1_x509.Certificate | None:
    """The KeyInfo certificate named by the first ``xades:SigningCertificate(V2)/xades:Cert``.

    Without that property the first KeyInfo certificate is returned (and the
    signature is then refused by signxml, which requires the property).
    """
    cert_digest = signed_properties.find(
        "xades:SignedSignatureProperties/xades:SigningCertificateV2/xades:Cert/xades:CertDigest",
        _NS,
    )
    if cert_digest is None:
        cert_digest = signed_properties.find(
            "xades:SignedSignatureProperties/xades:SigningCertificate/xades:Cert/xades:CertDigest",
            _NS,
        )
    if cert_digest is None:
        return certificates[0] if certificates else None
    method = cert_digest.find("ds:DigestMethod", _NS)
    value = cert_digest.find("ds:DigestValue", _NS)
    if method is None or value is None:
        return None
    algorithm = DigestAlgorithm(method.get("Algorithm"))
    expected = _b64(value.text)
    for certificate in certificates:
        digest = hashes.Hash(digest_algorithm_implementations[algorithm]())
        digest.update(certificate.dump())
        if digest.finalize() == expected:
            return certificate
    # None matches: the first one stands in, and the check of the signed
    # properties rejects the signature with signxml's own words.
    return certificates[0] if certificates else None


def _load_certificate(der: bytes) -> asn1_x509.Certificate:
    certificate = asn1_x509.Certificate.load(der)
    # Touch what path building reads, so that breakage shows here.
    _ = certificate.subject, certificate.issuer, certificate.public_key
    return certificate


def _load_crl(der: bytes) -> asn1_crl.CertificateList:
    crl = asn1_crl.CertificateList.load(der)
    _ = crl.issuer, crl["tbs_cert_list"]["this_update"].native
    return crl


def _load_ocsp(der: bytes) -> asn1_ocsp.OCSPResponse:
    """An ``OCSPResponse``; a bare ``BasicOCSPResponse`` (some signers embed one) is wrapped."""
    try:
        response = asn1_ocsp.OCSPResponse.load(der)
        _ = response["response_status"].native
    except ValueError:
        basic = asn1_ocsp.BasicOCSPResponse.load(der)
        response = asn1_ocsp.OCSPResponse(
            {
                "response_status": "successful",
                "response_bytes": {"response_type": "basic_ocsp_response", "response": basic},
            }
        )
    # Touch what revocation checking reads (not every extension: real responders
    # encode nonces loosely), so that breakage shows here.
    _ = response.basic_ocsp_response["tbs_response_data"]["produced_at"].native
    return response


def _embedded_validation_data(
    signature: etree._Element, certificates: Iterable[asn1_x509.Certificate], notes: list[str]
) -> tuple[list[Any], list[Any], list[Any]]:
    """Certificates, CRLs and OCSP responses the signature carries (XAdES -LT values)."""
    certs: list[Any] = list(certificates)
    crls: list[Any] = []
    ocsps: list[Any] = []
    loaders: list[tuple[str, Callable[[bytes], Any], list[Any]]] = [
        ("EncapsulatedX509Certificate", _load_certificate, certs),
        ("EncapsulatedCRLValue", _load_crl, crls),
        ("EncapsulatedOCSPValue", _load_ocsp, ocsps),
    ]
    for tag, load, into in loaders:
        for node in signature.iterfind(f"ds:Object/xades:QualifyingProperties//xades:{tag}", _NS):
            try:
                value = load(_b64(node.text))
            except Exception as exc:  # noqa: BLE001 - a broken value only loses that value.
                notes.append(f"an embedded {tag} cannot be read: {exc!r}")
                continue
            into.append(value)
    return certs, crls, ocsps


def _canonicalise(element: etree._Element, method: etree._Element | None) -> bytes:
    """Canonicalise ``element`` in its document by the ``ds:CanonicalizationMethod`` given.

    lxml implements Canonical XML 1.0; it stands in for 1.1, which differs only
    in the handling of inherited ``xml:`` attributes.
    """
    uri = method.get("Algorithm") if method is not None else _DEFAULT_TS_C14N
    algorithm = CanonicalizationMethod(uri)
    exclusive = algorithm.value.startswith("http://www.w3.org/2001/10/xml-exc-c14n#")
    prefixes = None
    if exclusive and method is not None:
        inclusive = method.find("{http://www.w3.org/2001/10/xml-exc-c14n#}InclusiveNamespaces")
        if inclusive is not None:
            prefixes = (inclusive.get("PrefixList") or "").split()
    result: bytes = etree.tostring(
        element,
        method="c14n",
        exclusive=exclusive,
        with_comments=algorithm.value.endswith("#WithComments"),
        inclusive_ns_prefixes=prefixes,
    )
    return result


def _imprint_of(data: bytes) -> Callable[[str], bytes]:
    def digest(algorithm: str) -> bytes:
        hasher = hashes.Hash(get_pyca_cryptography_hash(algorithm))
        hasher.update(data)
        return hasher.finalize()

    return digest


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _algorithm_problem(
    verifier_policy: Any,
    method: SignatureMethod,
    certificate: asn1_x509.Certificate,
    moment: datetime,
) -> str | None:
    """Why the validation context's algorithm policy refuses this signature method, if it does."""
    hash_name = digest_algorithm_implementations[method]().name.replace("-", "_")
    key_algorithm = certificate.public_key.algorithm
    signature_name = {"rsa": "rsassa_pkcs1v15", "rsassa_pss": "rsassa_pkcs1v15"}.get(
        key_algorithm, "ecdsa" if key_algorithm == "ec" else key_algorithm
    )
    try:
        allowed = verifier_policy.signature_algorithm_allowed(
            algos.SignedDigestAlgorithm({"algorithm": signature_name}),
            moment,
            certificate.public_key,
        )
        if allowed:
            allowed = verifier_policy.digest_algorithm_allowed(
                algos.DigestAlgorithm({"algorithm": hash_name}), moment
            )
    except ValueError as exc:
        return f"the signature method {method.name} cannot be judged: {exc}"
    if allowed:
        return None
    reason = getattr(allowed, "failure_reason", None) or f"{method.name} is not allowed"
    return f"the signature algorithm is refused by policy: {reason}"


class _TolerantXAdESVerifier(XAdESVerifier):
    """signxml's XAdES verifier, verifying with a repaired RSA key where one is given.

    A signer's certificate whose RSA modulus is DER-encoded as a negative
    INTEGER (:mod:`signing.tolerant`) cannot give pyca/cryptography a public
    key; the SignatureValue is then verified here with the key read as
    unsigned, and everything else (references, signed properties, the
    signing-certificate digest) by signxml as usual.
    """

    def __init__(self, key: rsa.RSAPublicKey | None) -> None:
        super().__init__()
        self._tolerant_key = key

    def _verify_signature_with_pubkey(self, **kwargs: Any) -> Any:
        key = self._tolerant_key
        method = kwargs.get("signature_alg")
        if (key is None or kwargs.get("signing_certificate") is None
                or kwargs.get("der_encoded_key_value") is not None
                or not isinstance(method, SignatureMethod)
                or not method.name.startswith(("RSA_", "SHA"))):
            return super()._verify_signature_with_pubkey(**kwargs)
        digest = digest_algorithm_implementations[method]()
        pad: padding.AsymmetricPadding = (
            padding.PKCS1v15() if method.name.startswith("RSA_")
            else padding.PSS(mgf=padding.MGF1(digest), salt_length=digest.digest_size)
        )
        signed_info = kwargs["signed_info_c14n"]
        key.verify(kwargs["raw_signature"], signed_info, pad, digest)
        return signed_info, key

    def _match_key_values(self, key_value: Any, der_encoded_key_value: Any,
                          signing_cert: Any, signature_alg: Any) -> None:
        if self._tolerant_key is None:
            super()._match_key_values(key_value, der_encoded_key_value, signing_cert,
                                      signature_alg)
        elif key_value is not None or der_encoded_key_value is not None:
            # The certificate's key cannot be loaded to compare a KeyValue with.
            raise InvalidSignature("a KeyValue beside a certificate whose key is not DER")


@dataclass(frozen=True)
class _Countersigned:
    """Where a counter-signature sits: what it countersigns, and how signxml finds it."""

    signature_value_id: str | None
    """The ``Id`` of the countersigned ``ds:SignatureValue``."""

    document: etree._Element
    """A copy of the signature document, wrapped so its root is not a ``ds:Signature``."""

    location: str
    """The ElementPath (signxml's ``location``) of the counter-signature's parent."""


#: What a reference to the countersigned SignatureValue is typed (EN 319 132-1, 5.2.7.2).
_COUNTERSIGNED_TYPE = "http://uri.etsi.org/01903#CountersignedSignature"
_UNSIGNED_PATH = (
    "ds:Object/xades:QualifyingProperties/xades:UnsignedProperties/"
    "xades:UnsignedSignatureProperties"
)


def _counter_signatures(signature: etree._Element) -> list[tuple[etree._Element, _Countersigned]]:
    """The ``xades:CounterSignature/ds:Signature`` elements of a top-level signature."""
    counters = signature.findall(f"{_UNSIGNED_PATH}/xades:CounterSignature/ds:Signature", _NS)
    if not counters:
        return []
    value = signature.find("ds:SignatureValue", _NS)
    root = signature.getroottree().getroot()
    if root is signature:
        path = "./ds:Signature[1]/"
    else:
        siblings = root.findall("ds:Signature", _NS)
        path = f"./ds:Signature[{siblings.index(signature) + 1}]/"
    # A copy of the whole document keeps the namespaces in scope for
    # canonicalisation; a wrapper makes signxml look for the signature by path.
    document = etree.Element("{urn:pasts:asic}wrapper")
    document.append(etree.fromstring(etree.tostring(root), parser=_parser()))
    if root is not signature:
        name = etree.QName(root)
        step = f"{{{name.namespace}}}{name.localname}" if name.namespace else name.localname
        path = f"./{step}/{path[2:]}"
    found = []
    for index, element in enumerate(counters, 1):
        location = f"{path}{_UNSIGNED_PATH}/xades:CounterSignature[{index}]/"
        found.append((element, _Countersigned(
            value.get("Id") if value is not None else None, document, location)))
    return found


async def _verify_signature(
    verifier: Verifier,
    signature: etree._Element,
    label: str,
    container: AsicContainer,
    fetching: MessageFetching | None,
    countersigned: _Countersigned | None = None,
) -> list[tuple[SignatureStatus, frozenset[str]]]:
    """Verify one ``ds:Signature`` and its counter-signatures.

    Returns the status of the signature and the data files it verifiably
    covers, then the same for each counter-signature. A data file covered by
    a counter-signature that verifies is covered by the signature it
    countersigns (a counter-signature signs the SignatureValue, so the two
    stand together); counter-signatures of counter-signatures are not followed.
    """
    notes: list[str] = []
    codes: set[str] = set()

    # The signed properties: exactly one set, inside this signature.
    qualifying = signature.findall("ds:Object/xades:QualifyingProperties", _NS)
    signed_props = signature.findall(
        "ds:Object/xades:QualifyingProperties/xades:SignedProperties", _NS
    )
    if len(qualifying) != 1 or len(signed_props) != 1:
        return [(_broken_status(
            label, "expected one xades:SignedProperties (XAdES 1.3.2)"
        ), frozenset())]
    signed_properties = signed_props[0]
    unsigned = qualifying[0].find("xades:UnsignedProperties/xades:UnsignedSignatureProperties", _NS)
    if unsigned is not None:
        for tag, what in (
            (f"{{{XADES141_NS}}}ArchiveTimeStamp", "archive time-stamps are not validated"),
            (f"{{{XADES_NS}}}ArchiveTimeStamp", "archive time-stamps are not validated"),
        ):
            if unsigned.find(tag) is not None:
                notes.append(what)
        if countersigned is not None and unsigned.find(f"{{{XADES_NS}}}CounterSignature") is not None:
            notes.append("counter-signatures of a counter-signature are not validated")

    # The references: detached ones name container files and carry no transforms.
    detached: dict[str, str] = {}
    problems: list[str] = []
    signed_info = signature.find("ds:SignedInfo", _NS)
    if signed_info is None:
        return [(_broken_status(label, "the signature has no ds:SignedInfo"), frozenset())]
    for reference in signed_info.iterfind("ds:Reference", _NS):
        uri = reference.get("URI")
        method = reference.find("ds:DigestMethod", _NS)
        digest_uri = method.get("Algorithm") if method is not None else None
        if digest_uri not in {algorithm.value for algorithm in _REFERENCE_DIGESTS}:
            problems.append(f"reference {uri!r} uses the digest algorithm {digest_uri}")
        if uri is None or uri == "" or uri.startswith("#"):
            if reference.get("Type") == "http://www.w3.org/2000/09/xmldsig#Manifest":
                notes.append("ds:Manifest references are not followed")
            continue
        name = unquote(uri)
        if reference.find("ds:Transforms", _NS) is not None:
            problems.append(f"reference to {name!r} has transforms")
        if container.entry(name) is None:
            problems.append(f"the signed file {name!r} is not in the container")
        detached[uri] = name

    # The signer's certificate: the KeyInfo certificate SigningCertificate(V2) names.
    certificates = _certificates(signature)
    signing_cert = _signing_certificate(certificates, signed_properties)
    if signing_cert is None:
        return [(
            _broken_status(label, "the signer's certificate is not in ds:KeyInfo"),
            frozenset(),
        )]
    method_node = signed_info.find("ds:SignatureMethod", _NS)
    signature_method = SignatureMethod(
        method_node.get("Algorithm") if method_node is not None else ""
    )

    # The mathematics: every reference digest and the SignatureValue (signxml);
    # certificate validity is judged below, so signxml checks it at issuance.
    # The properties read below (signing time, signing certificate) must be
    # the ones the signature covers, not a look-alike beside them.
    props_id = signed_properties.get("Id")
    if not props_id or not any(
        reference.get("URI") == f"#{props_id}"
        for reference in signed_info.iterfind("ds:Reference", _NS)
    ):
        problems.append("the xades:SignedProperties are not referenced by the signature")
    if countersigned is not None and not any(
        reference.get("Type") == _COUNTERSIGNED_TYPE
        and countersigned.signature_value_id is not None
        and reference.get("URI") == f"#{countersigned.signature_value_id}"
        for reference in signed_info.iterfind("ds:Reference", _NS)
    ):
        problems.append("the counter-signature does not reference the SignatureValue it countersigns")

    intact = valid = True
    if problems:
        # Not verified at all: neither the digests nor the SignatureValue count.
        intact = valid = False
        notes.extend(problems)
    else:
        crypto_cert = x509.load_der_x509_certificate(signing_cert.dump())
        config = XAdESSignatureConfiguration(
            expect_references=True,
            digest_algorithms=_REFERENCE_DIGESTS,
            signature_methods=_SIGNATURE_METHODS,
            verification_time=crypto_cert.not_valid_before_utc,
        )
        if countersigned is not None:
            # A counter-signature is found by its path in the whole document,
            # where the SignatureValue it references is.
            config = replace(config, location=countersigned.location)

        def resolve(uri: str) -> bytes | None:
            name = detached.get(uri, unquote(uri))
            return container.entry(name)

        try:
            _TolerantXAdESVerifier(tolerant_rsa_key(signing_cert)).verify(
                signature if countersigned is None else countersigned.document,
                x509_cert=crypto_cert,
                uri_resolver=resolve,
                validate_schema=False,
                expect_config=config,
            )
        except InvalidDigest as exc:
            # signxml checks the SignatureValue before the references.
            intact = False
            notes.append(f"a signed digest does not match: {exc}")
        except Exception as exc:  # noqa: BLE001 - any other failure is a broken signature.
            intact = valid = False
            notes.append(f"the signature does not verify: {exc}")
    if not intact or not valid:
        codes.add("SIG-INVALID")

    referenced = frozenset(detached.values())
    covered = referenced if intact and valid else frozenset()
    counters: list[tuple[SignatureStatus, frozenset[str]]] = []
    if countersigned is None:
        for index, (element, where) in enumerate(_counter_signatures(signature), 1):
            counter_label = f"{label} counter-signature {element.get('Id') or index}"
            try:
                found = await _verify_signature(
                    verifier, element, counter_label, container, fetching, where
                )
            except Exception as exc:  # noqa: BLE001 - a broken counter-signature is SIG-INVALID.
                note = f"counter-signature validation failed: {exc!r}"
                found = [(_broken_status(counter_label, note), frozenset())]
            counters.extend(found)
        by_counters = frozenset().union(*(files for _, files in counters))
        # The counter-signatures cover what this signature covers, through
        # its SignatureValue, when both verify.
        counters = [
            (status, files | covered if files else files) for status, files in counters
        ]
        for name, _content in container.data_files:
            if name not in referenced and name not in by_counters:
                codes.add("SIG-INVALID")
                notes.append(f"the data file {name!r} is not covered by this signature")
            elif name not in referenced:
                notes.append(f"the data file {name!r} is covered by a counter-signature only")
        covered = covered | by_counters if covered else covered

    # The signature time-stamp(s) over the canonicalised ds:SignatureValue.
    stamps = unsigned.findall("xades:SignatureTimeStamp", _NS) if unsigned is not None else []
    tokens: list[tuple[cms.SignedData | None, bytes | None]] = []
    ts_time: datetime | None = None
    signature_value = signature.find("ds:SignatureValue", _NS)
    for stamp in stamps:
        try:
            encapsulated = stamp.find("xades:EncapsulatedTimeStamp", _NS)
            if encapsulated is None:
                raise ValueError("no xades:EncapsulatedTimeStamp")
            content_info = cms.ContentInfo.load(_b64(encapsulated.text))
            signed_data = content_info["content"]
            if not isinstance(signed_data, cms.SignedData):
                raise ValueError("the token is not a CMS SignedData")
            tst_info = signed_data["encap_content_info"]["content"].parsed
            if not isinstance(tst_info, tsp.TSTInfo):
                raise ValueError("the token does not hold a TSTInfo")
            gen_time = tst_info["gen_time"].native
            if ts_time is None and isinstance(gen_time, datetime):
                ts_time = gen_time
            if signature_value is None:
                raise ValueError("the signature has no ds:SignatureValue")
            c14n = _canonicalise(signature_value, stamp.find("ds:CanonicalizationMethod", _NS))
            tokens.append((signed_data, c14n))
        except Exception as exc:  # noqa: BLE001 - a broken token is TS-INVALID below.
            notes.append(f"the signature time-stamp cannot be read: {exc!r}")
            tokens.append((None, None))

    # The validation contexts, over the signature's own certificates and revocation data.
    certs, crls, ocsps = _embedded_validation_data(
        signature, (c for c in certificates if c.dump() != signing_cert.dump()), notes
    )
    now = verifier._now()
    moment = ts_time if ts_time is not None and ts_time <= now else now
    revinfo = verifier._revinfo(signing_cert, ts_time and moment, crls, ocsps, notes)

    trust_problem: Any = None
    path: Any = None
    revocation: RevocationDetails | None = None
    if intact and valid:
        signer_ctx = verifier._context(
            moment=moment, fetching=fetching, other_certs=certs, **revinfo
        )
        refusal = _algorithm_problem(
            signer_ctx.algorithm_policy, signature_method, signing_cert, moment
        )
        if refusal is not None:
            trust_problem = AdESIndeterminate.CRYPTO_CONSTRAINTS_FAILURE
            notes.append(refusal)
        else:
            result = await validate_cert_usage(
                signing_cert,
                signer_ctx,
                StandardCMSSignatureStatus.default_usage_constraints(),
                signer_ctx.path_builder.async_build_paths_lazy(signing_cert),
            )
            trust_problem = result.error_subindic
            revocation = result.revo_details
            path = result.success_result or result.error_path

    timestamp: Any = None
    for signed_data, stamped in tokens:
        if signed_data is None or stamped is None:
            timestamp = _BrokenTimestamp()
            continue
        ts_ctx = verifier._context(
            moment=moment, fetching=fetching, other_certs=certs, **revinfo
        )
        try:
            kwargs = await validate_tst_signed_data(signed_data, ts_ctx, _imprint_of(stamped))
            timestamp = TimestampSignatureStatus(**kwargs)
        except Exception as exc:  # noqa: BLE001 - a token that fails validation is TS-INVALID.
            notes.append(f"the signature time-stamp does not validate: {exc!r}")
            timestamp = _BrokenTimestamp()
            continue
        if timestamp.trusted:
            break

    status = _XadesValidation(
        intact=intact,
        valid=valid,
        signing_cert=signing_cert,
        trust_problem_indic=trust_problem,
        validation_path=path,
        revocation_details=revocation,
        timestamp_validity=timestamp,
        signer_reported_dt=_parse_time(
            signed_properties.findtext(
                "xades:SignedSignatureProperties/xades:SigningTime", None, _NS
            )
        ),
    )
    unknown = await verifier._only_revocation_unknown(status, moment, certs, revinfo)
    verifier._judge_trust(status, codes, notes, moment, fetching, revocation_unknown=unknown)
    common = verifier._judge_signer_and_timestamp(status, ts_time, codes, notes, now)
    return [
        (
            SignatureStatus(
                field_name=label,
                kind="xades",
                **common,
                modified_after=False,
                covered_bytes=None,
                codes=tuple(sorted(codes)),
                notes=tuple(notes),
            ),
            covered,
        ),
        *counters,
    ]


# -- building containers (tests and the demo) -------------------------------------------------

_EXC_C14N = CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0.value
_XML_SIGNATURE_METHODS = {
    ("rsa", "sha256"): SignatureMethod.RSA_SHA256,
    ("rsa", "sha384"): SignatureMethod.RSA_SHA384,
    ("rsa", "sha512"): SignatureMethod.RSA_SHA512,
    ("ec", "sha256"): SignatureMethod.ECDSA_SHA256,
    ("ec", "sha384"): SignatureMethod.ECDSA_SHA384,
    ("ec", "sha512"): SignatureMethod.ECDSA_SHA512,
}
_XML_DIGESTS = {
    "sha256": DigestAlgorithm.SHA256,
    "sha384": DigestAlgorithm.SHA384,
    "sha512": DigestAlgorithm.SHA512,
}


def _ds(parent: etree._Element, tag: str, text: str | None = None, **attrs: str) -> etree._Element:
    node = etree.SubElement(parent, f"{{{DS_NS}}}{tag}", attrs)
    node.text = text
    return node


def _xades(
    parent: etree._Element, tag: str, text: str | None = None, **attrs: str
) -> etree._Element:
    node = etree.SubElement(parent, f"{{{XADES_NS}}}{tag}", attrs)
    node.text = text
    return node


def _media_type(name: str) -> str:
    return mimetypes.guess_type(name)[0] or "application/octet-stream"


async def async_sign_xades(
    files: Sequence[tuple[str, bytes]],
    signer: signers.Signer,
    *,
    timestamper: TimeStamper | None = None,
    signing_time: datetime | None = None,
    signature_id: str = "S0",
    md_algorithm: str = "sha256",
) -> bytes:
    """A ``META-INF/signatures*.xml`` document: one XAdES B-B (or B-T) signature over ``files``.

    The signer's key signs through pyHanko (RSA PKCS#1 v1.5 or ECDSA);
    ``ds:KeyInfo`` carries its certificate and the chain in its registry. With a
    ``timestamper`` a signature time-stamp makes it XAdES B-T.
    """
    certificate = signer.signing_cert
    if certificate is None:
        raise ValueError("the signer has no certificate")
    key_kind = certificate.public_key.algorithm
    method = _XML_SIGNATURE_METHODS.get((key_kind, md_algorithm))
    if method is None:
        raise ValueError(f"cannot sign XAdES with a {key_kind} key and {md_algorithm}")
    digest = _XML_DIGESTS[md_algorithm]
    signing_time = (signing_time or datetime.now(UTC)).replace(microsecond=0)

    def b64_digest(data: bytes) -> str:
        return base64.b64encode(hashlib.new(md_algorithm, data).digest()).decode("ascii")

    root = etree.Element(f"{{{ASIC_NS}}}XAdESSignatures", nsmap={"asic": ASIC_NS})
    signature = etree.SubElement(
        root, f"{{{DS_NS}}}Signature", {"Id": signature_id}, nsmap={"ds": DS_NS}
    )
    signed_info = _ds(signature, "SignedInfo")
    _ds(signed_info, "CanonicalizationMethod", Algorithm=_EXC_C14N)
    _ds(signed_info, "SignatureMethod", Algorithm=method.value)
    references = []
    for index, (name, content) in enumerate(files):
        reference = _ds(signed_info, "Reference", Id=f"{signature_id}-ref-{index}", URI=quote(name))
        _ds(reference, "DigestMethod", Algorithm=digest.value)
        _ds(reference, "DigestValue", b64_digest(content))
        references.append((reference, name))
    props_reference = _ds(
        signed_info,
        "Reference",
        Type=_SIGNED_PROPERTIES_TYPE,
        URI=f"#{signature_id}-SignedProperties",
    )
    transforms = _ds(props_reference, "Transforms")
    _ds(transforms, "Transform", Algorithm=_EXC_C14N)
    _ds(props_reference, "DigestMethod", Algorithm=digest.value)
    props_digest = _ds(props_reference, "DigestValue")
    signature_value = _ds(signature, "SignatureValue", Id=f"{signature_id}-SIG")
    key_info = _ds(signature, "KeyInfo")
    x509_data = _ds(key_info, "X509Data")
    # The signer's certificate first, then the chain the signer carries.
    chain = [certificate, *(c for c in signer.cert_registry if c.dump() != certificate.dump())]
    for member in chain:
        _ds(x509_data, "X509Certificate", base64.b64encode(member.dump()).decode("ascii"))

    ds_object = _ds(signature, "Object")
    qualifying = etree.SubElement(
        ds_object,
        f"{{{XADES_NS}}}QualifyingProperties",
        {"Target": f"#{signature_id}"},
        nsmap={"xades": XADES_NS},
    )
    signed_properties = _xades(
        qualifying, "SignedProperties", Id=f"{signature_id}-SignedProperties"
    )
    signature_properties = _xades(signed_properties, "SignedSignatureProperties")
    _xades(signature_properties, "SigningTime", signing_time.strftime("%Y-%m-%dT%H:%M:%SZ"))
    cert_v2 = _xades(signature_properties, "SigningCertificateV2")
    cert_digest = _xades(_xades(cert_v2, "Cert"), "CertDigest")
    _ds(cert_digest, "DigestMethod", Algorithm=digest.value)
    _ds(cert_digest, "DigestValue", b64_digest(certificate.dump()))
    object_properties = _xades(signed_properties, "SignedDataObjectProperties")
    for reference, name in references:
        object_format = _xades(
            object_properties, "DataObjectFormat", ObjectReference=f"#{reference.get('Id')}"
        )
        _xades(object_format, "MimeType", _media_type(name))

    props_digest.text = b64_digest(etree.tostring(signed_properties, method="c14n", exclusive=True))
    signed_info_c14n = etree.tostring(signed_info, method="c14n", exclusive=True)
    raw = await signer.async_sign_raw(signed_info_c14n, md_algorithm)
    if key_kind == "ec":
        # XML-DSig wants r || s, each as long as the curve's order.
        r, s = decode_dss_signature(raw)
        size = (certificate.public_key.bit_size + 7) // 8
        raw = r.to_bytes(size, "big") + s.to_bytes(size, "big")
    signature_value.text = base64.b64encode(raw).decode("ascii")

    if timestamper is not None:
        unsigned = _xades(_xades(qualifying, "UnsignedProperties"), "UnsignedSignatureProperties")
        stamp = _xades(unsigned, "SignatureTimeStamp", Id=f"{signature_id}-TS")
        _ds(stamp, "CanonicalizationMethod", Algorithm=_EXC_C14N)
        imprint = hashlib.new(
            md_algorithm, etree.tostring(signature_value, method="c14n", exclusive=True)
        ).digest()
        token = await timestamper.async_timestamp(imprint, md_algorithm)
        _xades(stamp, "EncapsulatedTimeStamp", base64.b64encode(token.dump()).decode("ascii"))

    document: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", standalone=False)
    return document


def pack_asice(
    files: Sequence[tuple[str, bytes]],
    signatures: Sequence[bytes],
    *,
    mimetype: str = ASIC_E_MIMETYPE,
) -> bytes:
    """Zip ``files`` and signature documents into an ASiC-E container.

    The ``mimetype`` entry comes first and uncompressed; the signature documents
    become ``META-INF/signatures0.xml``, ``signatures1.xml``, ...; an ODF
    ``META-INF/manifest.xml`` lists the files.
    """
    manifest = etree.Element(
        f"{{{_MANIFEST_NS}}}manifest",
        {f"{{{_MANIFEST_NS}}}version": "1.2"},
        nsmap={"manifest": _MANIFEST_NS},
    )
    entries = [("/", mimetype), *((name, _media_type(name)) for name, _ in files)]
    for path, media_type in entries:
        etree.SubElement(
            manifest,
            f"{{{_MANIFEST_NS}}}file-entry",
            {f"{{{_MANIFEST_NS}}}full-path": path, f"{{{_MANIFEST_NS}}}media-type": media_type},
        )
    out = BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr(zipfile.ZipInfo("mimetype"), mimetype.encode("ascii"))
        for name, content in files:
            archive.writestr(name, content, compress_type=zipfile.ZIP_DEFLATED)
        archive.writestr(
            "META-INF/manifest.xml",
            etree.tostring(manifest, xml_declaration=True, encoding="UTF-8"),
            compress_type=zipfile.ZIP_DEFLATED,
        )
        for index, document in enumerate(signatures):
            archive.writestr(
                f"META-INF/signatures{index}.xml", document, compress_type=zipfile.ZIP_DEFLATED
            )
    return out.getvalue()


async def async_make_asice(
    files: Sequence[tuple[str, bytes]],
    signer: signers.Signer,
    *,
    timestamper: TimeStamper | None = None,
    signing_time: datetime | None = None,
) -> bytes:
    """An ASiC-E container of ``files`` with one XAdES signature by ``signer`` over all of them."""
    document = await async_sign_xades(
        files, signer, timestamper=timestamper, signing_time=signing_time
    )
    return pack_asice(files, [document])


def make_asice(
    files: Sequence[tuple[str, bytes]],
    signer: signers.Signer,
    *,
    timestamper: TimeStamper | None = None,
    signing_time: datetime | None = None,
) -> bytes:
    """Synchronous :func:`async_make_asice` (not inside a running event loop)."""
    return asyncio.run(
        async_make_asice(files, signer, timestamper=timestamper, signing_time=signing_time)
    )


__all__ = [
    "ACCEPTED_MIMETYPES",
    "ASIC_E_MIMETYPE",
    "AsicContainer",
    "AsicVerdict",
    "async_make_asice",
    "async_sign_xades",
    "make_asice",
    "pack_asice",
    "read_container",
    "verify_container",
]
