"""XML-DSig pieces of a XAdES signature: certificates, embedded validation data,
canonicalisation, algorithm policy, counter-signatures, and signxml tolerant of
RSA keys whose modulus is a negative INTEGER."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from asn1crypto import algos
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from lxml import etree
from pyhanko_certvalidator.util import get_pyca_cryptography_hash
from signxml.algorithms import (
    CanonicalizationMethod,
    DigestAlgorithm,
    SignatureMethod,
    digest_algorithm_implementations,
)
from signxml.exceptions import InvalidSignature
from signxml.xades.xades import XAdESVerifier

from signing.asic.container import NS, b64, xml_parser

_V = TypeVar("_V")

# The canonicalisation of a time-stamped ds:SignatureValue when none is named
# (ETSI EN 319 132-1, 5.3: Canonical XML 1.0 without comments).
DEFAULT_TS_C14N = CanonicalizationMethod.CANONICAL_XML_1_0.value


def keyinfo_certificates(signature: etree._Element) -> list[asn1_x509.Certificate]:
    """The certificates in ``ds:KeyInfo/ds:X509Data``, in document order."""
    return [
        asn1_x509.Certificate.load(b64(node.text))
        for node in signature.iterfind("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS)
    ]


def signing_certificate(
    certificates: list[asn1_x509.Certificate], signed_properties: etree._Element
) -> asn1_x509.Certificate | None:
    """The KeyInfo certificate named by the first ``xades:SigningCertificate(V2)/xades:Cert``.

    Without that property the first KeyInfo certificate is returned (and the
    signature is then refused by signxml, which requires the property).
    """
    cert_digest = signed_properties.find(
        "xades:SignedSignatureProperties/xades:SigningCertificateV2/xades:Cert/xades:CertDigest",
        NS,
    )
    if cert_digest is None:
        cert_digest = signed_properties.find(
            "xades:SignedSignatureProperties/xades:SigningCertificate/xades:Cert/xades:CertDigest",
            NS,
        )
    if cert_digest is None:
        return certificates[0] if certificates else None
    method = cert_digest.find("ds:DigestMethod", NS)
    value = cert_digest.find("ds:DigestValue", NS)
    if method is None or value is None:
        return None
    algorithm = DigestAlgorithm(method.get("Algorithm"))
    expected = b64(value.text)
    for certificate in certificates:
        digest = hashes.Hash(digest_algorithm_implementations[algorithm]())
        digest.update(certificate.dump())
        if digest.finalize() == expected:
            return certificate
    # None matches: the first one stands in, and the check of the signed
    # properties rejects the signature with signxml's own words.
    return certificates[0] if certificates else None


def load_certificate(der: bytes) -> asn1_x509.Certificate:
    certificate = asn1_x509.Certificate.load(der)
    # Touch what path building reads, so that breakage shows here.
    _ = certificate.subject, certificate.issuer, certificate.public_key
    return certificate


def load_crl(der: bytes) -> asn1_crl.CertificateList:
    crl = asn1_crl.CertificateList.load(der)
    _ = crl.issuer, crl["tbs_cert_list"]["this_update"].native
    return crl


def load_ocsp(der: bytes) -> asn1_ocsp.OCSPResponse:
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


def _embedded(
    signature: etree._Element, tag: str, load: Callable[[bytes], _V], notes: list[str]
) -> list[_V]:
    """The ``xades:{tag}`` values of the signature that load (a note for each that does not)."""
    found: list[_V] = []
    for node in signature.iterfind(f"ds:Object/xades:QualifyingProperties//xades:{tag}", NS):
        try:
            found.append(load(b64(node.text)))
        except Exception as exc:  # a broken value only loses that value.
            notes.append(f"an embedded {tag} cannot be read: {exc!r}")
    return found


def embedded_validation_data(
    signature: etree._Element, certificates: Iterable[asn1_x509.Certificate], notes: list[str]
) -> tuple[
    list[asn1_x509.Certificate], list[asn1_crl.CertificateList], list[asn1_ocsp.OCSPResponse]
]:
    """Certificates, CRLs and OCSP responses the signature carries (XAdES -LT values)."""
    certs = [
        *certificates,
        *_embedded(signature, "EncapsulatedX509Certificate", load_certificate, notes),
    ]
    crls = _embedded(signature, "EncapsulatedCRLValue", load_crl, notes)
    ocsps = _embedded(signature, "EncapsulatedOCSPValue", load_ocsp, notes)
    return certs, crls, ocsps


def canonicalise(element: etree._Element, method: etree._Element | None) -> bytes:
    """Canonicalise ``element`` in its document by the ``ds:CanonicalizationMethod`` given.

    lxml implements Canonical XML 1.0; it stands in for 1.1, which differs only
    in the handling of inherited ``xml:`` attributes.
    """
    uri = method.get("Algorithm") if method is not None else DEFAULT_TS_C14N
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


def imprint_of(data: bytes) -> Callable[[str], bytes]:
    def digest(algorithm: str) -> bytes:
        hasher = hashes.Hash(get_pyca_cryptography_hash(algorithm))
        hasher.update(data)
        return hasher.finalize()

    return digest


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def algorithm_problem(
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


class TolerantXAdESVerifier(XAdESVerifier):
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
            super()._match_key_values(key_value, der_encoded_key_value, signing_cert,  # type: ignore[no-untyped-call]
                                      signature_alg)
        elif key_value is not None or der_encoded_key_value is not None:
            # The certificate's key cannot be loaded to compare a KeyValue with.
            raise InvalidSignature("a KeyValue beside a certificate whose key is not DER")


@dataclass(frozen=True)
class Countersigned:
    """Where a counter-signature sits: what it countersigns, and how signxml finds it."""

    signature_value_id: str | None
    """The ``Id`` of the countersigned ``ds:SignatureValue``."""

    document: etree._Element
    """A copy of the signature document, wrapped so its root is not a ``ds:Signature``."""

    location: str
    """The ElementPath (signxml's ``location``) of the counter-signature's parent."""


#: What a reference to the countersigned SignatureValue is typed (EN 319 132-1, 5.2.7.2).
COUNTERSIGNED_TYPE = "http://uri.etsi.org/01903#CountersignedSignature"
UNSIGNED_PATH = (
    "ds:Object/xades:QualifyingProperties/xades:UnsignedProperties/"
    "xades:UnsignedSignatureProperties"
)


def counter_signatures(signature: etree._Element) -> list[tuple[etree._Element, Countersigned]]:
    """The ``xades:CounterSignature/ds:Signature`` elements of a top-level signature."""
    counters = signature.findall(f"{UNSIGNED_PATH}/xades:CounterSignature/ds:Signature", NS)
    if not counters:
        return []
    value = signature.find("ds:SignatureValue", NS)
    root = signature.getroottree().getroot()
    if root is signature:
        path = "./ds:Signature[1]/"
    else:
        siblings = root.findall("ds:Signature", NS)
        path = f"./ds:Signature[{siblings.index(signature) + 1}]/"
    # A copy of the whole document keeps the namespaces in scope for
    # canonicalisation; a wrapper makes signxml look for the signature by path.
    document = etree.Element("{urn:pasts:asic}wrapper")
    document.append(etree.fromstring(etree.tostring(root), parser=xml_parser()))
    if root is not signature:
        name = etree.QName(root)
        step = f"{{{name.namespace}}}{name.localname}" if name.namespace else name.localname
        path = f"./{step}/{path[2:]}"
    found = []
    for index, element in enumerate(counters, 1):
        location = f"{path}{UNSIGNED_PATH}/xades:CounterSignature[{index}]/"
        found.append((element, Countersigned(
            value.get("Id") if value is not None else None, document, location)))
    return found
