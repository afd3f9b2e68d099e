"""Italian enveloping signatures: ``.p7m`` (CAdES, content inside), nested, time-stamped.

An Italian signed file (``modulo.pdf.p7m``) is a CMS SignedData whose
``encapContentInfo`` carries the signed file itself. It is recognised by its
content (:func:`read_cms`): DER, PEM, or base64 text of a SignedData *with*
eContent -- never by the ``%PDF-`` bytes that show through the DER, and a
``.p7s`` (no eContent) is not one.

Each level is judged by :func:`signing.cms.detached.judge_signed_data`, the judgement of a
detached ``.p7s`` (pyHanko digests the eContent as it would detached content),
so strictness, anchors, trusted lists, qualification, signature time-stamps,
revocation and the DER rules are the same: an altered eContent is an invalid
signature, a signer without a time-stamp has none. A ``.p7m.p7m`` (a second
signer wrapping the first file) is unwrapped level by level, every level
judged, at most :data:`MAX_DEPTH` levels. The innermost content is handed back
with its detected type so that the caller reads the PDF as if it had arrived
alone (its own PAdES signature, if any, is judged there).

A ``.tsd`` (RFC 5544), a ``.m7m`` or a detached ``.tsr`` (:mod:`signing.cms.tsd`)
time-stamps the whole signed file: its token is judged like a signature
time-stamp, and it dates the signers that carry no signature time-stamp of
their own, as a document time-stamp dates a PDF signature.

The results are facts (:class:`~signing.status.SignedFile`,
:class:`~signing.status.EnvelopeLevel`, :class:`~signing.status.FileTimestamp`);
the workflow's rules read them.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from asn1crypto import cms, core

from signing.cms.detached import judge_signed_data
from signing.cms.envelope import detached, econtent, read_cms
from signing.cms.tsd import (
    is_m7m,
    is_tsd,
    judge_file_timestamp,
    read_m7m,
    read_token,
    read_tsd,
)
from signing.judgement import TimestampFacts
from signing.status import (
    Container,
    ContentKind,
    EnvelopeLevel,
    FileTimestamp,
    SignedFile,
    UnreadableInput,
)
from signing.trust.context import TrustContext

#: More nested ``.p7m`` levels than this are not unwrapped (the file is unreadable).
MAX_DEPTH = 4


# -- recognition (pure) --------------------------------------------------------------------


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
        except Exception:  # a mail-like file that is not a bundle.
            return None
        return "m7m"
    return None


# -- judgement -------------------------------------------------------------------------------


async def unwrap(
    trust: TrustContext, data: bytes, *, fallback: TimestampFacts | None = None, max_depth: int = MAX_DEPTH,
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
        verdict = await judge_signed_data(
            trust, inner, detached(signed_data), "p7m", fallback=fallback)
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
    except Exception:  # unreadable attributes are the validator's to judge.
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
    trust: TrustContext, data: bytes, timestamp: bytes | None = None,
) -> SignedFile:
    """Unwrap and judge a ``.p7m``, ``.tsd`` or ``.m7m`` (``timestamp``: a ``.tsr`` beside it).

    Run inside the verifier's bound (:meth:`signing.verifier.InProcessVerifier.verify_signed_file`).
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
        except Exception as exc:  # an unreadable .tsd is an unreadable file.
            raise UnreadableInput(f"the .tsd cannot be read: {exc}") from exc
        notes.extend(tsd.notes)
        file_name = tsd.file_name
        for index, (token, covered) in enumerate(tsd.tokens):
            stamps.append(await judge_file_timestamp(
                trust, token, covered, source="tsd", index=index, crls=tsd.crls))
        signed = tsd.content
    elif read_cms(data) is not None:
        container = "p7m"
        signed = data
        if timestamp is not None:
            stamps.append(await _detached_timestamp(trust, timestamp, data, notes))
    elif is_m7m(data):
        container = "m7m"
        try:
            signed, tsr = read_m7m(data)
        except Exception as exc:  # an unreadable bundle is an unreadable file.
            raise UnreadableInput(f"the .m7m cannot be read: {exc}") from exc
        stamps.append(await _detached_timestamp(trust, tsr, signed, notes, source="m7m"))
    else:
        raise UnreadableInput("not a .p7m, .tsd or .m7m file")
    if timestamp is not None and container != "p7m":
        notes.append(f"a .tsr beside a .{container} is not paired with it")
    # The first time-stamp over the content dates signers without their own.
    fallback = next((stamp.status for stamp in stamps if stamp.index == 0), None)
    levels, content = await unwrap(trust, signed, fallback=fallback)
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
    trust: TrustContext, tsr: bytes, covered: bytes, notes: list[str], *,
    source: Literal["m7m", "tsr"] = "tsr",
) -> FileTimestamp:
    """The judgement of a ``.tsr`` over ``covered`` (the ``.p7m``'s bytes as they arrived)."""
    try:
        token = read_token(tsr)
    except Exception as exc:  # an unreadable .tsr is a broken time-stamp.
        token = cms.ContentInfo({"content_type": "data", "content": b""})
        notes.append(f"the .{source} time-stamp cannot be read: {exc}"[:300])
    return await judge_file_timestamp(trust, token, covered, source=source)
