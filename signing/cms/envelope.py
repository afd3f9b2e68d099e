"""Enveloping CMS (``.p7m``) recognised by content: DER, PEM or base64 text (pure).

A ``.p7m`` is a CMS SignedData *with* eContent; a ``.p7s`` (no eContent) is
not one, and the ``%PDF-`` bytes that show through the DER say nothing.
"""

from __future__ import annotations

import base64
import binascii
import re

from asn1crypto import cms, core, pem

from signing.status import Encoding

_BASE64_RE = re.compile(rb"[A-Za-z0-9+/=\s]+")
_PEM_TYPES = ("PKCS7", "CMS", "PKCS #7 SIGNED DATA")




#: The DER of the signedData OID (1.2.840.113549.1.7.2), which opens a CMS SignedData.
_SIGNED_DATA_OID = bytes.fromhex("06092a864886f70d010702")


def _signed_data_head(text: bytes) -> bool:
    """Whether base64 ``text`` (its first KB) starts a DER SignedData: checked before a
    whole large text attachment is matched and decoded (a 4 MB text took 0.2 s)."""
    head = re.sub(rb"\s+", b"", text)[:64]
    try:
        der = base64.b64decode(head[: len(head) - len(head) % 4], validate=True)
    except (binascii.Error, ValueError):
        return False
    return der[:1] == b"\x30" and _SIGNED_DATA_OID in der[:24]


def _enveloping(der: bytes) -> cms.SignedData | None:
    """The SignedData of ``der`` when it is one with encapsulated content, else ``None``."""
    if len(der) < 16 or der[:1] != b"\x30":
        return None
    try:
        info = cms.ContentInfo.load(der)
        if info["content_type"].native != "signed_data":
            return None
        if der[len(info.dump()):].strip(b"\x00\r\n\t "):
            return None
        signed_data = info["content"]
        content = signed_data["encap_content_info"]["content"]
        if content is None or isinstance(content, core.Void):
            return None
        len(signed_data["signer_infos"])  # parse it now: a broken one is not recognised
        return signed_data
    except Exception:  # anything unreadable is not a .p7m.
        return None


def read_cms(data: bytes) -> tuple[Encoding, cms.SignedData] | None:
    """Recognise an enveloping CMS SignedData by content: DER, PEM or base64 text.

    Returns how it was written and the SignedData, or ``None`` (a PDF, a
    ``.p7s`` without eContent, anything else).
    """
    signed = _enveloping(data)
    if signed is not None:
        return "der", signed
    stripped = data.strip()
    if stripped.startswith(b"-----BEGIN"):
        try:
            kind, _headers, der = pem.unarmor(stripped)
        except Exception:  # not PEM after all.
            return None
        signed = _enveloping(der) if kind in _PEM_TYPES else None
        return ("pem", signed) if signed is not None else None
    if len(stripped) >= 24 and _BASE64_RE.fullmatch(stripped[:4096]) and _signed_data_head(
        stripped[:4096]
    ) and _BASE64_RE.fullmatch(stripped):
        try:
            der = base64.b64decode(re.sub(rb"\s+", b"", stripped), validate=True)
        except (binascii.Error, ValueError):
            return None
        signed = _enveloping(der)
        return ("base64", signed) if signed is not None else None
    return None


def econtent(signed_data: cms.SignedData) -> bytes:
    """The encapsulated content's bytes (a constructed BER OCTET STRING joined)."""
    value = signed_data["encap_content_info"]["content"]
    return bytes(value)


def detached(signed_data: cms.SignedData) -> cms.SignedData:
    """A copy of ``signed_data`` without its eContent (pyHanko judges detached SignedData).

    The signature covers the signed attributes (the eContent's digest and its
    type), or the eContent itself; neither is in the encapContentInfo's
    encoding, so judging the copy over the eContent judges the original.
    """
    copy = signed_data.copy()
    info = signed_data["encap_content_info"]
    # asn1crypto types it as ContentInfo or EncapsulatedContentInfo by version.
    copy["encap_content_info"] = type(info)({"content_type": info["content_type"].dotted})
    return copy
