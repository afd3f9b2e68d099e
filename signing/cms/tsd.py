"""Time-stamped files: RFC 5544 ``.tsd``, the ``.m7m`` bundle and a detached ``.tsr``.

Italian applicants time-stamp a signed ``.p7m`` in three ways:

* ``.tsd`` -- RFC 5544 TimeStampedData: a ContentInfo (``id-ct-timestampedData``)
  holding the file (``content``), optional ``metaData`` and one or more RFC 3161
  tokens (``temporalEvidence``). The first token's imprint is the digest of the
  content, preceded by the DER of ``metaData`` when its ``hashProtected`` is
  true; each later token (a renewal) is over the DER of the previous
  ``TimeStampAndCRL``.
* ``.m7m`` -- a MIME ``multipart`` of the ``.p7m`` and its ``.tsr``.
* a ``.tsr`` beside the ``.p7m`` in the same mail: a TimeStampResp (or a bare
  token) whose imprint is the digest of the ``.p7m`` file.

Parsing is pure and bounded (:func:`read_tsd`, :func:`read_m7m`,
:func:`read_token`); :func:`judge_file_timestamp` validates one token with the
trust's anchors, trusted lists and revocation policy and judges it as a
signature time-stamp is judged (:func:`signing.judgement.judge_timestamp_status`).

asn1crypto's own ``tsp.TimeStampedData`` types ``TimeStampAndCRL.timeStamp`` as
an EncapsulatedContentInfo, whose content is an OCTET STRING; a token is a
ContentInfo whose content is a SignedData, so the structure is declared again
here with ``ContentInfo`` (RFC 5544 section 2), reusing asn1crypto's
``MetaData``.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message

from asn1crypto import cms, core, crl, tsp
from cryptography.hazmat.primitives import hashes
from pyhanko.sign.validation.generic_cms import validate_tst_signed_data
from pyhanko.sign.validation.status import TimestampSignatureStatus
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

from signing.cms.envelope import read_cms
from signing.judgement import identity, judge_timestamp_status, other_certificates
from signing.status import FileTimestamp, Source
from signing.trust.context import Revinfo, TrustContext
from signing.trust.fetching import MessageFetching

#: The content type of RFC 5544 TimeStampedData.
TIMESTAMPED_DATA_OID = "1.2.840.113549.1.9.16.1.31"
#: More tokens than this in one ``.tsd`` are not judged (renewals are rare).
MAX_TOKENS = 8
#: A ``.m7m`` nested deeper, or with more parts, than this is not read.
MAX_MIME_DEPTH = 4
MAX_MIME_PARTS = 16


class TimeStampAndCRL(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """RFC 5544 ``TimeStampAndCRL``: a TimeStampToken (a ContentInfo) and an optional CRL."""

    _fields = [
        ("time_stamp", cms.ContentInfo),
        ("crl", crl.CertificateList, {"optional": True}),
    ]


class TimeStampTokenEvidence(core.SequenceOf):  # type: ignore[misc]  # asn1crypto is untyped
    """RFC 5544 ``TimeStampTokenEvidence``."""

    _child_spec = TimeStampAndCRL


class Evidence(core.Choice):  # type: ignore[misc]  # asn1crypto is untyped
    """RFC 5544 ``Evidence`` (the module uses IMPLICIT tags)."""

    _alternatives = [
        ("tst_evidence", TimeStampTokenEvidence, {"implicit": 0}),
        ("ers_evidence", tsp.EvidenceRecord, {"implicit": 1}),
        ("other_evidence", tsp.OtherEvidence, {"implicit": 2}),
    ]


class TimeStampedData(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """RFC 5544 ``TimeStampedData``."""

    _fields = [
        ("version", core.Integer),
        ("data_uri", core.IA5String, {"optional": True}),
        ("meta_data", tsp.MetaData, {"optional": True}),
        ("content", core.OctetString, {"optional": True}),
        ("temporal_evidence", Evidence),
    ]


class TimeStampedDataInfo(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """The ContentInfo around a TimeStampedData (the whole ``.tsd`` file)."""

    _fields = [
        ("content_type", core.ObjectIdentifier),
        ("content", TimeStampedData, {"explicit": 0}),
    ]


@dataclass(frozen=True)
class TsdFile:
    """A parsed ``.tsd``: its content and tokens, nothing judged yet."""

    content: bytes = field(repr=False)
    """The time-stamped file (often a ``.p7m``)."""

    file_name: str | None
    """``metaData.fileName``, as the producer wrote it."""

    media_type: str | None
    """``metaData.mediaType``."""

    tokens: tuple[tuple[cms.ContentInfo, bytes], ...] = field(repr=False)
    """Each token with the bytes its imprint must be the digest of."""

    crls: tuple[crl.CertificateList, ...] = field(repr=False)
    """The CRLs beside the tokens (evidence for the TSAs' revocation status)."""

    notes: tuple[str, ...] = ()


# -- recognition and parsing (pure) ------------------------------------------------------


def _whole(value: core.Asn1Value, data: bytes) -> bool:
    """``value`` was read from all of ``data`` (trailing padding aside)."""
    return not data[len(value.dump()):].strip(b"\x00\r\n\t ")


def is_tsd(data: bytes) -> bool:
    """Whether ``data`` is a DER RFC 5544 ContentInfo (``id-ct-timestampedData``)."""
    if len(data) < 16 or data[:1] != b"\x30":
        return False
    try:
        info = TimeStampedDataInfo.load(data)
        return bool(info["content_type"].dotted == TIMESTAMPED_DATA_OID)
    except Exception:  # anything unreadable is not a .tsd.
        return False


def read_tsd(data: bytes) -> TsdFile:
    """Parse a ``.tsd``; raises ``ValueError`` when it cannot be read or holds no content."""
    info = TimeStampedDataInfo.load(data)
    if info["content_type"].dotted != TIMESTAMPED_DATA_OID:
        raise ValueError("not an RFC 5544 TimeStampedData")
    if not _whole(info, data):
        raise ValueError("bytes follow the TimeStampedData")
    tsd = info["content"]
    notes: list[str] = []
    if tsd["version"].native != 1:
        notes.append(f"TimeStampedData version {tsd['version'].native}, not v1")
    content = tsd["content"].native if tsd["content"].native is not None else None
    if content is None:
        uri = tsd["data_uri"].native
        raise ValueError(
            "the TimeStampedData does not embed its content"
            + (f" (it names {uri[:100]!r})" if uri else "")
        )
    evidence = tsd["temporal_evidence"]
    if evidence.name != "tst_evidence":
        raise ValueError(f"the TimeStampedData's evidence is {evidence.name}, not time-stamp tokens")
    stamps = list(evidence.chosen)
    if not stamps:
        raise ValueError("the TimeStampedData holds no time-stamp token")
    if len(stamps) > MAX_TOKENS:
        raise ValueError(f"{len(stamps)} time-stamp tokens, more than the {MAX_TOKENS} judged")
    meta = tsd["meta_data"]
    prefix = b""
    file_name = media_type = None
    if not isinstance(meta, core.Void):
        file_name = meta["file_name"].native
        media_type = meta["media_type"].native
        if meta["hash_protected"].native:
            # RFC 5544: the imprint covers the DER of MetaData, then the content.
            prefix = meta.dump(force=True)
    tokens: list[tuple[cms.ContentInfo, bytes]] = []
    crls: list[crl.CertificateList] = []
    covered = prefix + content
    for stamp in stamps:
        tokens.append((stamp["time_stamp"], covered))
        if not isinstance(stamp["crl"], core.Void):
            crls.append(stamp["crl"])
        # A renewal covers the DER of the TimeStampAndCRL before it.
        covered = stamp.dump(force=True)
    return TsdFile(
        content=content, file_name=file_name, media_type=media_type,
        tokens=tuple(tokens), crls=tuple(crls), notes=tuple(notes),
    )


def read_token(data: bytes) -> cms.ContentInfo:
    """The TimeStampToken of a ``.tsr``: a TimeStampResp, or a bare token.

    Raises ``ValueError`` when ``data`` is neither, or the response grants nothing.
    """
    try:
        info = cms.ContentInfo.load(data)
        if info["content_type"].native == "signed_data" and (
            info["content"]["encap_content_info"]["content_type"].native == "tst_info"
        ):
            return info
    except Exception:  # then it may be a TimeStampResp.
        pass
    response = tsp.TimeStampResp.load(data)
    status = response["status"]["status"].native
    if status not in ("granted", "granted_with_mods"):
        raise ValueError(f"the time-stamp response is {status!r}, not granted")
    token = response["time_stamp_token"]
    if isinstance(token, core.Void) or token["content_type"].native != "signed_data":
        raise ValueError("the time-stamp response carries no token")
    return token


def is_m7m(data: bytes) -> bool:
    """Whether ``data`` looks like a MIME entity (a ``.m7m`` bundle): a multipart header."""
    head = data[:4096].lower()
    return b"content-type:" in head and b"multipart/" in head and data[:1] not in (b"\x30", b"%")


def _leaves(part: Message, depth: int, found: list[Message]) -> None:
    if depth > MAX_MIME_DEPTH:
        raise ValueError(f"the bundle is nested deeper than {MAX_MIME_DEPTH} levels")
    if part.is_multipart():
        for child in part.get_payload() or []:
            if isinstance(child, Message):
                _leaves(child, depth + 1, found)
        return
    found.append(part)
    if len(found) > MAX_MIME_PARTS:
        raise ValueError(f"the bundle has more than {MAX_MIME_PARTS} parts")


def read_m7m(data: bytes) -> tuple[bytes, bytes]:
    """The ``.p7m`` and the ``.tsr`` of a ``.m7m`` bundle, by content.

    Raises ``ValueError`` unless there is exactly one signed file and one token.
    """
    message = email.message_from_bytes(data, policy=email.policy.compat32)
    leaves: list[Message] = []
    _leaves(message, 0, leaves)
    signed: list[bytes] = []
    tokens: list[bytes] = []
    for leaf in leaves:
        payload = leaf.get_payload(decode=True)
        if not isinstance(payload, bytes) or not payload:
            continue
        if read_cms(payload) is not None:
            signed.append(payload)
            continue
        try:
            read_token(payload)
        except Exception:  # a text part or anything else is ignored.
            continue
        tokens.append(payload)
    if len(signed) != 1 or len(tokens) != 1:
        raise ValueError(
            f"the .m7m bundle holds {len(signed)} signed files and {len(tokens)} time-stamps, "
            "not one of each"
        )
    return signed[0], tokens[0]


async def file_timestamp_status(
    trust: TrustContext, token: cms.SignedData, data: bytes, fetching: MessageFetching | None,
    *, crls: Iterable[crl.CertificateList] = (),
) -> TimestampSignatureStatus:
    """pyHanko's status of an RFC 3161 token whose imprint must be the digest of ``data``.

    The TSA's chain is judged at the token's ``genTime`` (a time in the
    future is not believed), with the configured anchors, trusted lists and
    revocation policy, as a signature time-stamp's is. Raises when the
    token is not a time-stamp token at all.
    """
    tst_info = token["encap_content_info"]["content"].parsed
    gen_time = tst_info["gen_time"].native
    now = trust.now()
    moment = gen_time if isinstance(gen_time, datetime) and gen_time <= now else now
    context = trust.validation_context(
        moment=moment, fetching=fetching, other_certs=other_certificates(token),
        revinfo=Revinfo(crls=tuple(crls)),
    )

    def imprint(algorithm: str) -> bytes:
        digest = hashes.Hash(get_pyca_cryptography_hash(algorithm))
        digest.update(data)
        return digest.finalize()

    kwargs = await validate_tst_signed_data(token, context, imprint)
    return TimestampSignatureStatus(**kwargs)


# -- judgement -----------------------------------------------------------------------------


async def judge_file_timestamp(
    trust: TrustContext, token: cms.ContentInfo, covered: bytes, *, source: Source, index: int = 0,
    crls: tuple[crl.CertificateList, ...] = (),
) -> FileTimestamp:
    """Validate ``token`` over ``covered`` and judge it as a signature time-stamp is judged."""
    notes: list[str] = []
    now = trust.now()
    fetching = trust.fetching()
    status: TimestampSignatureStatus | None = None
    gen_time: datetime | None = None
    try:
        if token["content_type"].native != "signed_data":
            raise ValueError(f"the token is {token['content_type'].native}, not SignedData")
        signed_data = token["content"]
        gen_time = signed_data["encap_content_info"]["content"].parsed["gen_time"].native
        status = await file_timestamp_status(trust, signed_data, covered, fetching, crls=crls)
    except Exception as exc:  # an unreadable token is TS-INVALID.
        notes.append(f"the time-stamp token cannot be validated: {exc!r}"[:300])
        status = None
    finally:
        if fetching is not None:
            await fetching.close()
    moment = gen_time if gen_time is not None and gen_time <= now else now
    # A token that cannot be validated at all is still "present": TS-INVALID.
    facts = judge_timestamp_status(trust, status, gen_time or now, moment, notes)
    tsa = identity(status.signing_cert if status is not None else None, notes)
    return FileTimestamp(
        source=source,
        index=index,
        time=gen_time,
        imprint_matches=bool(status is not None and status.intact),
        valid=facts["timestamp_valid"],
        trusted=facts["timestamp_trusted"],
        tsa=tsa,
        qualification=facts["timestamp_qualification"],
        trust_problem=facts["timestamp_trust_problem"],
        notes=tuple(notes),
        status=status,
    )
