"""Italian enveloping signatures: ``.p7m`` (CAdES, content inside), nested, time-stamped.

An Italian signed file (``modulo.pdf.p7m``) is a CMS SignedData whose
``encapContentInfo`` carries the signed file itself. It is recognised by its
content (:func:`read_cms`): DER, PEM, or base64 text of a SignedData *with*
eContent -- never by the ``%PDF-`` bytes that show through the DER, and a
``.p7s`` (no eContent) is not one.

Each level is judged by :meth:`Verifier.judge_signed_data`, the judgement of a
detached ``.p7s`` (pyHanko digests the eContent as it would detached content),
so strictness, anchors, trusted lists, qualification, signature time-stamps,
revocation and the DER rules are the same: an altered eContent is an invalid
signature, a signer without a time-stamp has none. A ``.p7m.p7m`` (a second
signer wrapping the first file) is unwrapped level by level, every level
judged, at most :data:`MAX_DEPTH` levels. The innermost content is handed back
with its detected type so that the caller reads the PDF as if it had arrived
alone (its own PAdES signature, if any, is judged there).

A ``.tsd`` (RFC 5544), a ``.m7m`` or a detached ``.tsr`` (:mod:`signing.tsd`)
time-stamps the whole signed file: its token is judged like a signature
time-stamp, and it dates the signers that carry no signature time-stamp of
their own, as a document time-stamp dates a PDF signature.

These are facts (frozen dataclasses holding the verifier's own
:class:`SignatureStatus`/:class:`FormVerdict`); the workflow's rules read them.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from asn1crypto import cms, core, pem

from signing.tsd import (
    FileTimestamp,
    is_m7m,
    is_tsd,
    judge_file_timestamp,
    read_m7m,
    read_token,
    read_tsd,
)
from signing.verify import FormVerdict, SignatureStatus, UnreadableInput

if TYPE_CHECKING:
    from signing.verify import Verifier

#: More nested ``.p7m`` levels than this are not unwrapped (the file is unreadable).
MAX_DEPTH = 4

Encoding = Literal["der", "pem", "base64"]
ContentKind = Literal["pdf", "p7m", "tsd", "xml", "zip", "other"]
Container = Literal["p7m", "tsd", "m7m"]

_BASE64_RE = re.compile(rb"[A-Za-z0-9+/=\s]+")
_PEM_TYPES = ("PKCS7", "CMS", "PKCS #7 SIGNED DATA")


@dataclass(frozen=True)
class EnvelopeLevel:
    """One enveloping SignedData of a ``.p7m`` and the verdict on its signers."""

    depth: int
    """1 for the outermost level (the last signer), 2 for the one inside it, ..."""

    encoding: Encoding
    """How this level was written: DER, PEM or bare base64 text."""

    content_type: str
    """The eContentType (dotted OID, or asn1crypto's name such as ``data``)."""

    content_size: int
    """Bytes of the eContent this level signs."""

    verdict: FormVerdict
    """Each SignerInfo of this level judged over the eContent (``kind="p7m"``)."""


@dataclass(frozen=True)
class SignedFile:
    """An Italian signed file unwrapped: every level judged, and what was signed."""

    container: Container
    """What arrived: a ``.p7m`` (with or without a ``.tsr`` beside it), a ``.tsd``, a ``.m7m``."""

    levels: tuple[EnvelopeLevel, ...]
    """The ``.p7m`` levels, outermost first (empty: a ``.tsd`` over an unsigned file)."""

    timestamps: tuple[FileTimestamp, ...]
    """Time-stamps over the whole file (``.tsd``, ``.m7m``, ``.tsr``), first over the content."""

    content: bytes = field(repr=False)
    """The innermost content: the file that was signed (the form PDF, normally)."""

    content_type: ContentKind
    """What the innermost content is, by its bytes."""

    file_name: str | None = None
    """The file name a ``.tsd`` records for its content (``metaData.fileName``)."""

    notes: tuple[str, ...] = ()
    """Notes on the container for staff."""

    @property
    def verdict(self) -> FormVerdict:
        """All levels' signatures as one verdict, in signing order (innermost first).

        Its codes are the union of the signatures' codes and the file
        time-stamps'; ``signer`` is the outermost level's signer. Without a
        level the verdict is the verifier's "no signature" one.
        """
        statuses: list[SignatureStatus] = []
        for level in reversed(self.levels):
            statuses.extend(level.verdict.signatures)
        codes = {code for status in statuses for code in status.codes}
        codes |= {code for stamp in self.timestamps for code in stamp.codes}
        notes = [*self.notes]
        for level in self.levels:
            notes.extend(level.verdict.notes)
        if not statuses:
            codes.add("SIG-MISSING")
        return FormVerdict(
            signatures=tuple(statuses),
            codes=tuple(sorted(codes)),
            signer=self.levels[0].verdict.signer if self.levels else None,
            signed_revision=None,
            notes=tuple(notes),
        )


# -- recognition (pure) --------------------------------------------------------------------


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
        return signed_data  # type: ignore[no-any-return]
    except Exception:  # noqa: BLE001 - anything unreadable is not a .p7m.
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
        except Exception:  # noqa: BLE001 - not PEM after all.
            return None
        signed = _enveloping(der) if kind in _PEM_TYPES else None
        return ("pem", signed) if signed is not None else None
    if len(stripped) >= 24 and _BASE64_RE.fullmatch(stripped[:4096]) and (
        _BASE64_RE.fullmatch(stripped)
    ):
        try:
            der = base64.b64decode(re.sub(rb"\s+", b"", stripped), validate=True)
        except (binascii.Error, ValueError):
            return None
        signed = _enveloping(der)
        return ("base64", signed) if signed is not None else None
    return None


def content_kind(data: bytes) -> ContentKind:
    """What a file is, by its bytes."""
    if data.lstrip()[:5].startswith(b"%PDF"):
        return "pdf"
    if read_cms(data) is not None:
        return "p7m"
    if is_tsd(data):
        return "tsd"
    if data.startswith(b"PK\x03\x04"):
        return "zip"
    if data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1] == b"<":
        return "xml"
    return "other"


def sniff(data: bytes) -> Container | None:
    """Whether ``data`` is a ``.p7m``, a ``.tsd`` or a ``.m7m``, by content (``None``: neither)."""
    if read_cms(data) is not None:
        return "p7m"
    if is_tsd(data):
        return "tsd"
    if is_m7m(data):
        try:
            read_m7m(data)
        except Exception:  # noqa: BLE001 - a mail-like file that is not a bundle.
            return None
        return "m7m"
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


# -- judgement -------------------------------------------------------------------------------


async def unwrap(
    verifier: Verifier, data: bytes, *, fallback: Any = None, max_depth: int = MAX_DEPTH,
) -> tuple[tuple[EnvelopeLevel, ...], bytes]:
    """Judge every enveloping level of ``data``; the levels (outermost first) and the content.

    ``fallback`` (pyHanko's status of a time-stamp over the whole file) dates
    the signers without a signature time-stamp. Raises :class:`UnreadableInput`
    when the file is nested deeper than ``max_depth`` levels.
    """
    levels: list[EnvelopeLevel] = []
    current = data
    while True:
        found = read_cms(current)
        if found is None:
            break
        if len(levels) >= max_depth:
            raise UnreadableInput(f"the .p7m is nested deeper than {max_depth} levels")
        encoding, signed_data = found
        inner = econtent(signed_data)
        verdict = await verifier.judge_signed_data(
            inner, detached(signed_data), "p7m", fallback=fallback)
        countersigned = _countersignatures(signed_data)
        if countersigned:
            verdict = replace(verdict, notes=(
                *verdict.notes,
                f"{countersigned} countersignature(s) (controfirma) not judged: they sign a "
                "signature, not the file"))
        content_type = signed_data["encap_content_info"]["content_type"]
        levels.append(EnvelopeLevel(
            depth=len(levels) + 1,
            encoding=encoding,
            content_type=str(content_type.native or content_type.dotted),
            content_size=len(inner),
            verdict=verdict,
        ))
        current = inner
    if len(levels) > 1:
        levels = [_labelled(level, len(levels)) for level in levels]
    return tuple(levels), current


def _countersignatures(signed_data: cms.SignedData) -> int:
    """How many countersignatures (RFC 5652 11.4, unsigned attributes) the signers carry."""
    count = 0
    try:
        for signer_info in signed_data["signer_infos"]:
            attributes = signer_info["unsigned_attrs"]
            if isinstance(attributes, core.Void):
                continue
            for attribute in attributes:
                if attribute["type"].native == "counter_signature":
                    count += len(attribute["values"])
    except Exception:  # noqa: BLE001 - unreadable attributes are the validator's to judge.
        return count
    return count


def _labelled(level: EnvelopeLevel, count: int) -> EnvelopeLevel:
    """Name each signature of a nested file by its level (``level 1 of 2``, outermost first)."""
    name = f"level {level.depth} of {count}"
    statuses = tuple(
        replace(status, field_name=f"{name} ({status.field_name})" if status.field_name else name)
        for status in level.verdict.signatures
    )
    return replace(level, verdict=replace(level.verdict, signatures=statuses))


async def read_signed_file(
    verifier: Verifier, data: bytes, timestamp: bytes | None = None,
) -> SignedFile:
    """Unwrap and judge a ``.p7m``, ``.tsd`` or ``.m7m`` (``timestamp``: a ``.tsr`` beside it).

    Run inside the verifier's bound (:meth:`Verifier.verify_signed_file`).
    Raises :class:`UnreadableInput` when the file is none of these or cannot
    be read.
    """
    notes: list[str] = []
    stamps: list[FileTimestamp] = []
    file_name = None
    if is_tsd(data):
        container: Container = "tsd"
        try:
            tsd = read_tsd(data)
        except Exception as exc:  # noqa: BLE001 - an unreadable .tsd is an unreadable file.
            raise UnreadableInput(f"the .tsd cannot be read: {exc}") from exc
        notes.extend(tsd.notes)
        file_name = tsd.file_name
        for index, (token, covered) in enumerate(tsd.tokens):
            stamps.append(await judge_file_timestamp(
                verifier, token, covered, source="tsd", index=index, crls=tsd.crls))
        signed = tsd.content
    elif read_cms(data) is not None:
        container = "p7m"
        signed = data
        if timestamp is not None:
            stamps.append(await _detached_timestamp(verifier, timestamp, data, notes))
    elif is_m7m(data):
        container = "m7m"
        try:
            signed, tsr = read_m7m(data)
        except Exception as exc:  # noqa: BLE001 - an unreadable bundle is an unreadable file.
            raise UnreadableInput(f"the .m7m cannot be read: {exc}") from exc
        stamps.append(await _detached_timestamp(verifier, tsr, signed, notes, source="m7m"))
    else:
        raise UnreadableInput("not a .p7m, .tsd or .m7m file")
    if timestamp is not None and container != "p7m":
        notes.append(f"a .tsr beside a .{container} is not paired with it")
    # The first time-stamp over the content dates signers without their own.
    fallback = next((stamp.status for stamp in stamps if stamp.index == 0), None)
    levels, content = await unwrap(verifier, signed, fallback=fallback)
    if not levels and container == "tsd":
        notes.append("the .tsd time-stamps a file that carries no enveloping signature")
    return SignedFile(
        container=container,
        levels=levels,
        timestamps=tuple(stamps),
        content=content,
        content_type=content_kind(content),
        file_name=file_name,
        notes=tuple(notes),
    )


async def _detached_timestamp(
    verifier: Verifier, tsr: bytes, covered: bytes, notes: list[str], *,
    source: Literal["m7m", "tsr"] = "tsr",
) -> FileTimestamp:
    """The judgement of a ``.tsr`` over ``covered`` (the ``.p7m``'s bytes as they arrived)."""
    try:
        token = read_token(tsr)
    except Exception as exc:  # noqa: BLE001 - an unreadable .tsr is a broken time-stamp.
        token = cms.ContentInfo({"content_type": "data", "content": b""})
        notes.append(f"the .{source} time-stamp cannot be read: {exc}"[:300])
    return await judge_file_timestamp(verifier, token, covered, source=source)
