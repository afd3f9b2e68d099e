"""Italian signed files and PEC in the judgement: the pipeline's helpers (issue 11).

SPEC section 2: an enveloping ``.p7m`` (DER, PEM or base64, nested), a ``.tsd``
or a ``.m7m`` is judged like a signed PDF -- the PDF inside is the form -- and a
PEC envelope is unwrapped to the applicant's mail (``intake.mime.parse``), its
provider's signature kept as transport evidence. :class:`intake.pipeline.Pipeline`
calls these; they hold no state and open no session.

* :func:`with_inner_pdf` -- the levels' verdict and the inner PDF's own PAdES one.
* :func:`signed_file_record` -- what ``pasts show`` prints of the file.
* :func:`pec_record`, :func:`transport_signature` -- the envelope and the
  provider's S/MIME signature, judged by a verifier anchored only in
  ``signing.pec_anchors`` (never the applicant's signature, never the form's).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from intake.mime.types import Attachment, ParsedMail
from rules.signature import timestamp_codes, verdict_codes

if TYPE_CHECKING:
    from signing.status import FormVerdict, SignedFile
    from signing.verifier import Verifier

log = logging.getLogger(__name__)


def with_inner_pdf(found: SignedFile, inner: FormVerdict) -> FormVerdict:
    """The verdict on a signed file whose content is a PDF: every level's signatures and,
    when the PDF carries its own (PAdES), those too -- the PDF read as if it arrived alone."""
    from signing.status import FormVerdict

    verdict = found.verdict
    if not inner.signatures:
        # The PDF's values, as its verification read them from the whole file.
        return replace(verdict, signed_fields=inner.final_fields, final_fields=inner.final_fields)
    # Inside a .p7m every byte of the PDF is signed; under a .tsd alone only
    # the PAdES signature's revision is.
    whole = bool(found.levels)
    return FormVerdict(
        signatures=(*inner.signatures, *verdict.signatures),
        signer=verdict.signer or inner.signer,
        signed_revision=None if whole else inner.signed_revision,
        notes=(*inner.notes, *verdict.notes),
        timestamps=(*inner.timestamps, *verdict.timestamps),
        signed_fields=inner.final_fields if whole else inner.signed_fields,
        final_fields=inner.final_fields,
    )


def signed_file_record(name: str, found: SignedFile, tsr: Attachment | None) -> dict[str, Any]:
    """What ``pasts show`` tells of an Italian signed file: its levels and time-stamps."""
    return {
        "name": name,
        "container": found.container,
        "content": found.content_type,
        "levels": [{"depth": level.depth, "encoding": level.encoding,
                    "content_type": level.content_type, "content_size": level.content_size}
                   for level in found.levels],
        "timestamps": [{
            "source": stamp.source, "index": stamp.index,
            "time": stamp.time.isoformat() if stamp.time else None,
            "valid": stamp.valid, "trusted": stamp.trusted,
            "tsa": stamp.tsa.common_name if stamp.tsa is not None else None,
            "qualification": (stamp.qualification.to_record()
                              if stamp.qualification is not None else None),
            "codes": list(timestamp_codes(stamp)), "notes": list(stamp.notes),
        } for stamp in found.timestamps],
        "tsr": tsr.filename if tsr is not None else None,
        "notes": list(found.notes),
    }


def pec_record(mail: ParsedMail, transport: Callable[[], Verifier] | None) -> dict[str, Any] | None:
    """The PEC envelope ``mail`` was unwrapped from, with the provider's signature judged."""
    pec = mail.pec
    if pec is None or pec.kind != "envelope":
        return None
    signature = transport_signature(transport, pec.signed)
    log.info("message %s from %s came in the PEC envelope %s of %s; provider's signature %s",
             mail.message_id, mail.from_addr, pec.envelope_message_id, pec.envelope_from,
             "missing" if signature is None else
             "trusted" if signature["trusted"] else "intact, not trusted" if signature["intact"]
             else "broken")
    return {
        "transport": pec.transport, "envelope_message_id": pec.envelope_message_id,
        "envelope_from": pec.envelope_from, "daticert": pec.daticert,
        "notes": list(pec.notes), "transport_signature": signature,
    }


def transport_signature(transport: Callable[[], Verifier] | None,
                        signed: tuple[bytes, bytes] | None) -> dict[str, Any] | None:
    """A PEC provider's S/MIME signature judged by ``transport()`` (anchored in
    ``signing.pec_anchors``); ``None`` when unsigned or there is no such verifier."""
    if signed is None or transport is None:
        return None
    from signing.status import UnreadableInput

    content, signature = signed
    try:
        verdict = transport().verify_detached_sync(content, signature, kind="smime")
    except UnreadableInput as exc:
        return {"intact": False, "valid": False, "trusted": False, "signer": None,
                "codes": ["SIG-INVALID"], "notes": [str(exc)]}
    statuses = verdict.signatures
    signer = verdict.signer
    return {
        "intact": bool(statuses) and all(s.intact for s in statuses),
        "valid": bool(statuses) and all(s.valid for s in statuses),
        "trusted": bool(statuses) and all(s.trusted for s in statuses),
        "signer": None if signer is None else {
            "name": signer.common_name, "organisation": signer.organisation,
            "issuer": signer.issuer, "serial_number": format(signer.serial_number, "x")},
        "codes": list(verdict_codes(verdict)),
        "notes": [note for s in statuses for note in s.notes],
    }
