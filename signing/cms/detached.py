"""Detached CMS signatures: a ``.p7s`` beside a file, S/MIME, and each level of a ``.p7m``.

pyHanko validates each SignerInfo over the bytes it is given (the detached
content, or a ``.p7m``'s eContent); the chain, qualification and time-stamp
judgement is :mod:`signing.judgement`'s, as for a PDF. A SignedData with
several SignerInfos is judged signer by signer, each in a copy that holds it
alone.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Literal

from asn1crypto import cms, pem
from pyhanko.sign.validation import async_validate_detached_cms
from pyhanko.sign.validation.status import StandardCMSSignatureStatus

from signing.judgement import (
    MAX_SIGNERS,
    TimestampFacts,
    adobe_revinfo,
    broken,
    judge_integrity,
    judge_signed_attributes_der,
    judge_signer_and_timestamp,
    judge_trust,
    only_revocation_unknown,
    other_certificates,
    signer_certificate,
    timestamp_time,
)
from signing.status import FormVerdict, SignatureStatus
from signing.trust.context import TrustContext


async def verify_detached(
    trust: TrustContext, content: bytes, signature_der: bytes, kind: Literal["cms", "smime"]
) -> FormVerdict:
    """Verify a detached CMS signature (``.p7s`` or S/MIME, PEM or DER) over ``content``.

    Raises nothing: an unreadable signature is a ``SIG-INVALID`` verdict.
    """
    try:
        data = signature_der
        if pem.detect(data):
            _, _, data = pem.unarmor(data)
        content_info = cms.ContentInfo.load(data)
        if content_info["content_type"].native != "signed_data":
            raise ValueError("not a CMS SignedData")
        signed_data = content_info["content"]
        signer_infos = signed_data["signer_infos"]
        count = len(signer_infos)
        if count == 0:
            raise ValueError("the SignedData has no SignerInfo")
        if count > MAX_SIGNERS:
            raise ValueError(f"{count} SignerInfos, more than the {MAX_SIGNERS} judged")
    except Exception as exc:  # a broken container is SIG-INVALID.
        status = broken(None, f"the CMS signature cannot be parsed: {exc!r}", kind=kind)
        return FormVerdict(signatures=(status,), signer=None)
    return await judge_signed_data(trust, content, signed_data, kind)


async def judge_signed_data(
    trust: TrustContext, content: bytes, signed_data: cms.SignedData,
    kind: Literal["cms", "smime", "p7m"], *, fallback: TimestampFacts | None = None,
) -> FormVerdict:
    """Judge every SignerInfo of ``signed_data`` over ``content``, signer by signer.

    The judgement of a ``.p7s``: ``content`` is the detached content or,
    for an enveloping ``.p7m``, its eContent (pyHanko digests the bytes it
    is given either way). ``fallback`` is pyHanko's status of a time-stamp
    over the whole file (RFC 5544 ``.tsd``, ``.m7m``, a ``.tsr`` beside it):
    it dates a signer that carries no signature time-stamp of its own, as
    a document time-stamp dates a PDF signature. Run it inside the
    verifier's bound (the public ``verify_*`` methods do).
    """
    signer_infos = signed_data["signer_infos"]
    count = len(signer_infos)
    if count == 0 or count > MAX_SIGNERS:
        note = ("the SignedData has no SignerInfo" if count == 0
                else f"{count} SignerInfos, more than the {MAX_SIGNERS} judged")
        status = broken(None, note, kind=kind)
        return FormVerdict(signatures=(status,), signer=None)
    if count == 1:
        status = await _one_detached(
            trust, content, signed_data, signer_infos[0], kind, fallback=fallback)
        return FormVerdict(signatures=(status,), signer=status.signer)
    # Several signers (co-signers of one file): each is judged on its own,
    # in a copy of the SignedData that holds its SignerInfo alone.
    statuses = []
    for index in range(count):
        single = signed_data.copy()
        single["signer_infos"] = cms.SignerInfos([signer_infos[index].copy()])
        status = await _one_detached(
            trust, content, single, single["signer_infos"][0], kind, fallback=fallback)
        statuses.append(replace(status, field_name=f"signer {index + 1} of {count}"))
    return FormVerdict(
        signatures=tuple(statuses),
        signer=statuses[-1].signer,
        notes=(f"the CMS signature carries {count} SignerInfos; each is judged on its own",),
    )


async def _one_detached(
    trust: TrustContext, content: bytes, signed_data: cms.SignedData, signer_info: cms.SignerInfo,
    kind: Literal["cms", "smime", "p7m"], *, fallback: TimestampFacts | None = None,
) -> SignatureStatus:
    """The status of a detached SignedData's only SignerInfo (see :meth:`judge_signed_data`)."""
    notes: list[str] = []
    fetching = trust.fetching()
    try:
        own_token = True
        try:
            ts_time = timestamp_time(signer_info)
            own_token = ts_time is not None
        except Exception as exc:  # reported as TS-INVALID below.
            ts_time = None
            notes.append(f"time-stamp token cannot be read: {exc!r}")
        if own_token:
            fallback = None
        elif fallback is not None:
            ts_time = fallback.timestamp
            notes.append("dated by the time-stamp over the whole file")
        adobe_crls, adobe_ocsps = adobe_revinfo(signer_info)
        now = trust.now()
        moment = ts_time if ts_time is not None and ts_time <= now else now
        revinfo = trust.revinfo(
            signer_certificate(signed_data), ts_time and moment,
            adobe_crls, adobe_ocsps, notes,
        )
        try:
            result: StandardCMSSignatureStatus = await async_validate_detached_cms(
                content,
                signed_data,
                signer_validation_context=trust.validation_context(
                    moment=moment, fetching=fetching, revinfo=revinfo
                ),
                ts_validation_context=trust.validation_context(
                    moment=moment, fetching=fetching, revinfo=revinfo
                ),
            )
        except Exception as exc:  # every validator error is SIG-INVALID.
            return broken(None, f"signature validation failed: {exc!r}", kind=kind)
    finally:
        if fetching is not None:
            await fetching.close()

    judge_integrity(result, "the signed content does not match the signature's digest", notes)
    der = judge_signed_attributes_der(signer_info, notes)
    unknown = await only_revocation_unknown(
        trust, result, moment, other_certificates(signed_data), revinfo
    )
    chain = judge_trust(trust, result, notes, moment, fetching, revocation_unknown=unknown)
    common = judge_signer_and_timestamp(
        trust, result, ts_time, notes, now, fallback=fallback)
    return SignatureStatus(
        field_name=None,
        kind=kind,
        **common,
        modified_after=False,
        covered_bytes=None,
        chain_problem=chain,
        signed_attributes_der=der,
        notes=tuple(notes),
    )
