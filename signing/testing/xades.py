"""Building ASiC-E containers with XAdES signatures, for tests and the demo (not the product).

:func:`make_asice` signs files with a pyHanko signer (the demo PKI's) into a
container the verifier reads as an applicant's.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import mimetypes
import zipfile
from collections.abc import Sequence
from datetime import UTC, datetime
from io import BytesIO
from urllib.parse import quote

from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from lxml import etree
from pyhanko.sign import signers
from pyhanko.sign.timestamps import TimeStamper
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod

from signing.asic.container import (
    ASIC_E_MIMETYPE,
    ASIC_NS,
    DS_NS,
    MANIFEST_NS,
    SIGNED_PROPERTIES_TYPE,
    XADES_NS,
)

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
        Type=SIGNED_PROPERTIES_TYPE,
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
        f"{{{MANIFEST_NS}}}manifest",
        {f"{{{MANIFEST_NS}}}version": "1.2"},
        nsmap={"manifest": MANIFEST_NS},
    )
    entries = [("/", mimetype), *((name, _media_type(name)) for name, _ in files)]
    for path, media_type in entries:
        etree.SubElement(
            manifest,
            f"{{{MANIFEST_NS}}}file-entry",
            {f"{{{MANIFEST_NS}}}full-path": path, f"{{{MANIFEST_NS}}}media-type": media_type},
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
