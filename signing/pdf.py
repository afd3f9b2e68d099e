"""PAdES: strict verification of the approval signatures in a PDF and their time-stamps.

Judgement is strict: a later revision that changes form data, pages or
annotations after the last signature is ``SIG-MODIFIED`` even when pyHanko would
call it harmless form filling, because the daemon must read exactly the values
the signature covers (see :attr:`~signing.status.FormVerdict.signed_revision`).

A PDF signature whose CMS carries several SignerInfos is judged signer by
signer, each in a copy that holds it alone. Document time-stamps are not
signatures; one over a signature without its own time-stamp dates it. The
chain, qualification and time-stamp judgement is :mod:`signing.judgement`'s,
shared with CMS and ASiC.
"""

from __future__ import annotations

from dataclasses import replace
from io import BytesIO

from asn1crypto import cms
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.decode_limits import DecodePurpose
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.validation import async_validate_pdf_signature, async_validate_pdf_timestamp
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.sign.validation.errors import NoDSSFoundError
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import SignatureCoverageLevel, TimestampSignatureStatus

from signing.formfields import field_values, form_fields, read_pdf_fields
from signing.hexstrings import fast_hex_strings
from signing.judgement import (
    MAX_SIGNERS,
    adobe_revinfo,
    broken,
    judge_integrity,
    judge_signed_attributes_der,
    judge_signer_and_timestamp,
    judge_trust,
    only_revocation_unknown,
    signer_certificate,
    timestamp_time,
)
from signing.report import pdf_report
from signing.status import FormFields, FormVerdict, SignatureStatus, UnreadableInput
from signing.trust.context import TrustContext
from signing.trust.fetching import MessageFetching

# The SubFilters of approval signatures this intake accepts.
_ACCEPTED_SUBFILTERS = ("/ETSI.CAdES.detached", "/adbe.pkcs7.detached")
# Modification levels after a signature that leave the signed content untouched.
_HARMLESS_LEVELS = (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES)


def open_pdf(data: bytes) -> PdfFileReader:
    """Open ``data`` as a PDF; raises :class:`UnreadableInput` when it cannot be read."""
    if not data.lstrip()[:5].startswith(b"%PDF"):
        raise UnreadableInput("not a PDF file")
    try:
        reader = PdfFileReader(BytesIO(data), strict=False)
        if reader.encrypted:
            raise UnreadableInput("the PDF is encrypted")
        # Touch the structures every later step needs, so breakage shows here.
        _ = reader.root
        _ = reader.xrefs.total_revisions
    except UnreadableInput:
        raise
    except Exception as exc:  # any parser failure means unreadable.
        raise UnreadableInput(f"the PDF cannot be parsed: {exc}") from exc
    return reader


async def verify_pdf(trust: TrustContext, data: bytes) -> FormVerdict:
    """Verify every approval signature of a PDF; raises only :class:`UnreadableInput`.

    Run it inside the verifier's bound (:meth:`signing.verifier.InProcessVerifier.verify_pdf`).
    pyHanko reads the PDF's hex strings (the signatures' ``/Contents``) in
    one pass meanwhile (:mod:`signing.hexstrings`).
    """
    with fast_hex_strings():
        return await _verify_pdf(trust, data)


async def _verify_pdf(trust: TrustContext, data: bytes) -> FormVerdict:
    reader = open_pdf(data)
    try:
        # Plain names: pyHanko's are TextStringObjects that refer to the reader,
        # which a verdict sent to the daemon would carry (pickled) with it.
        sig_fields = [(str(name), value, ref)
                      for name, value, ref in enumerate_sig_fields(reader, filled_status=True)]
    except RecursionError as exc:
        raise UnreadableInput("form field tree is nested too deeply") from exc
    except Exception as exc:  # the form tree itself is unreadable.
        raise UnreadableInput(f"the form structure cannot be read: {exc}") from exc

    embedded: list[tuple[str, EmbeddedPdfSignature | None, str | None]] = []
    doc_notes: list[str] = []
    for fq_name, sig_obj, sig_field in sig_fields:
        try:
            sig_dict = sig_obj.get_object()
            sig_type = sig_dict.get("/Type", "/Sig")
            # Some producers write /Type /Sig on a document time-stamp; its
            # SubFilter still says what it is.
            if sig_type == "/DocTimeStamp" or sig_dict.get("/SubFilter") == "/ETSI.RFC3161":
                embedded.append(
                    (fq_name, EmbeddedPdfSignature(reader, sig_field, fq_name), "doc-ts")
                )
                continue
            subfilter = sig_dict.get("/SubFilter")
            if subfilter not in _ACCEPTED_SUBFILTERS:
                embedded.append((fq_name, None, f"unsupported signature type {subfilter}"))
                continue
            signers = _signer_count(sig_dict)
            if signers > MAX_SIGNERS:
                embedded.append((fq_name, None, f"the signature carries {signers} SignerInfos, "
                                                f"more than the {MAX_SIGNERS} judged"))
                continue
            if signers > 1:
                embedded.extend(_each_signer(data, fq_name, sig_dict, signers, doc_notes))
                continue
            embedded.append((fq_name, EmbeddedPdfSignature(reader, sig_field, fq_name), None))
        except Exception as exc:  # a broken signature is SIG-INVALID.
            embedded.append((fq_name, None, f"signature cannot be parsed: {exc!r}"))

    approvals = [item for item in embedded if item[2] not in ("doc-ts", "signer")]
    approvals += [(name, emb, None) for name, emb, kind in embedded if kind == "signer"]
    if not approvals:
        if any(item[2] == "doc-ts" for item in embedded):
            doc_notes.append("only document time-stamps found; they are not signatures")
        fields = form_fields(reader.root)
        return FormVerdict(
            signatures=(),
            signer=None,
            signed_revision=None,
            notes=tuple(doc_notes),
            signed_fields=fields,
            final_fields=fields,
        )

    # The outermost signature is the one in the latest revision.
    def revision(item: tuple[str, EmbeddedPdfSignature | None, str | None]) -> int:
        return item[1].signed_revision if item[1] is not None else -1

    approvals.sort(key=revision)
    last_index = max(range(len(approvals)), key=lambda i: revision(approvals[i]))

    fetching = trust.fetching()
    try:
        dss_certs: list[asn1_x509.Certificate] = []
        dss_crls: list[asn1_crl.CertificateList] = []
        dss_ocsps: list[asn1_ocsp.OCSPResponse] = []
        try:
            dss = DocumentSecurityStore.read_dss(reader)
            dss_certs = list(dss.load_certs())
            dss_crls = [
                asn1_crl.CertificateList.load(ref.get_object().read_data(DecodePurpose.CRL))
                for ref in dss.crls
            ]
            dss_ocsps = [
                asn1_ocsp.OCSPResponse.load(
                    ref.get_object().read_data(DecodePurpose.OCSP_RESPONSE)
                )
                for ref in dss.ocsps
            ]
        except NoDSSFoundError:
            pass
        except Exception as exc:  # a broken DSS only loses embedded revinfo.
            doc_notes.append(f"the document security store cannot be read: {exc!r}")

        try:
            final_values = field_values(reader.root)
        except Exception:  # unreadable fields are compared as empty.
            final_values = {}

        # Document time-stamps first: one over a signature without its own
        # time-stamp gives it its B-T time (ETSI EN 319 142-1, 5.3).
        doc_stamps: list[tuple[int, TimestampSignatureStatus]] = []
        for fq_name, emb, kind in embedded:
            if kind != "doc-ts" or emb is None:
                continue
            note, stamp = await _doc_timestamp(trust, fq_name, emb, fetching, dss_certs)
            doc_notes.append(note)
            if stamp is not None:
                doc_stamps.append((emb.signed_revision, stamp))

        statuses: list[SignatureStatus] = []
        for fq_name, emb, problem in approvals:
            if emb is None:
                statuses.append(broken(fq_name, problem or "signature cannot be parsed"))
                continue
            try:
                status = await _one_pdf_signature(
                    trust,
                    reader,
                    emb,
                    later_signature_fields={
                        other.field_name
                        for _name, other, _ in embedded
                        if other is not None and other.signed_revision > emb.signed_revision
                    },
                    final_values=final_values,
                    doc_timestamp=min(
                        (item for item in doc_stamps if item[0] > emb.signed_revision),
                        key=lambda item: item[0],
                        default=(0, None),
                    )[1],
                    fetching=fetching,
                    dss=(dss_certs, dss_crls, dss_ocsps),
                )
                # One signer of several is named by its place among them.
                if status.field_name != fq_name:
                    status = replace(status, field_name=fq_name)
            except RecursionError:
                status = broken(fq_name, "signature structure is nested too deeply")
            except Exception as exc:  # every validator error is SIG-INVALID.
                status = broken(fq_name, f"signature validation failed: {exc!r}")
            statuses.append(status)
    finally:
        if fetching is not None:
            await fetching.close()

    last = statuses[last_index]
    signed_revision = data[: last.covered_bytes] if last.covered_bytes else None
    final_fields = form_fields(reader.root)
    return FormVerdict(
        signatures=tuple(statuses),
        signer=last.signer,
        signed_revision=signed_revision,
        notes=tuple(doc_notes),
        signed_fields=_signed_fields(
            data, signed_revision, last, approvals[last_index][1], final_fields),
        final_fields=final_fields,
    )


def _signed_fields(
    data: bytes, signed_revision: bytes | None, last: SignatureStatus,
    emb: EmbeddedPdfSignature | None, final_fields: FormFields,
) -> FormFields:
    """The form fields of ``signed_revision``, the bytes the last signature covers.

    Over the whole file (or without a coverage) they are the final ones; over a
    whole earlier revision, that revision's catalog in the reader already open;
    over anything else (a broken signature, SIG-INVALID) those bytes read alone.
    """
    if signed_revision is None or len(signed_revision) == len(data):
        return final_fields
    if emb is not None and last.covers_all:
        try:
            root = emb.reader.get_historical_root(emb.signed_revision)
        except (Exception, RecursionError) as exc:
            return FormFields(error=f"the PDF cannot be read: {type(exc).__name__}: {exc}")
        return form_fields(root)
    return read_pdf_fields(signed_revision)


def _each_signer(
    data: bytes, fq_name: str, sig_dict: generic.DictionaryObject, count: int,
    doc_notes: list[str],
) -> list[tuple[str, EmbeddedPdfSignature | None, str | None]]:
    """One entry per SignerInfo of a signature whose CMS carries several.

    pyHanko judges one SignerInfo per PDF signature. A SignedData with
    several (co-signers, or one signer twice) is judged signer by signer:
    for each, a copy of the PDF whose ``/Contents`` holds the same
    SignedData with that SignerInfo alone. ``/Contents`` lies outside the
    ByteRange, so the signed bytes, the coverage and the revisions of the
    copy are the original's; only which signer is judged differs.
    """
    doc_notes.append(
        f"signature {fq_name} carries {count} SignerInfos; each is judged on its own"
    )
    entries: list[tuple[str, EmbeddedPdfSignature | None, str | None]] = []
    for index in range(count):
        label = f"{fq_name} (signer {index + 1} of {count})"
        try:
            copy = _with_one_signer(data, sig_dict, index)
            copy_reader = open_pdf(copy)
            field = next(
                sig_field
                for name, _obj, sig_field in enumerate_sig_fields(copy_reader)
                if name == fq_name
            )
            entries.append((label, EmbeddedPdfSignature(copy_reader, field, fq_name), "signer"))
        except Exception as exc:  # that signer is SIG-INVALID.
            entries.append((label, None, f"signature cannot be parsed: {exc!r}"))
    return entries


async def _doc_timestamp(
    trust: TrustContext, fq_name: str,
    emb: EmbeddedPdfSignature,
    fetching: MessageFetching | None,
    dss_certs: list[asn1_x509.Certificate],
) -> tuple[str, TimestampSignatureStatus | None]:
    """Validate one document time-stamp: a note, and its status (``None`` if unreadable)."""
    try:
        status = await async_validate_pdf_timestamp(
            emb,
            validation_context=trust.validation_context(
                moment=None, fetching=fetching, other_certs=dss_certs
            ),
        )
    except Exception as exc:  # reported as a note only.
        return f"document time-stamp {fq_name} cannot be validated: {exc!r}", None
    verdict = "valid" if status.intact and status.valid else "BROKEN"
    trusted = "trusted" if status.trusted else "untrusted"
    return (
        f"document time-stamp {fq_name} at {status.timestamp.isoformat()}: {verdict}, {trusted}",
        status,
    )


async def _one_pdf_signature(
    trust: TrustContext, reader: PdfFileReader,
    emb: EmbeddedPdfSignature,
    *,
    later_signature_fields: set[str],
    final_values: dict[str, str],
    doc_timestamp: TimestampSignatureStatus | None,
    fetching: MessageFetching | None,
    dss: tuple[
        list[asn1_x509.Certificate], list[asn1_crl.CertificateList], list[asn1_ocsp.OCSPResponse]
    ],
) -> SignatureStatus:
    dss_certs, dss_crls, dss_ocsps = dss
    notes: list[str] = []

    # The byte range must be four non-negative integers starting at 0.
    byte_range = [int(x) for x in emb.byte_range]
    covered = byte_range[2] + byte_range[3] if len(byte_range) == 4 else None

    own_token = True
    try:
        ts_time = timestamp_time(emb.signer_info)
        own_token = ts_time is not None
    except Exception as exc:  # a broken token shows up as TS-INVALID below.
        ts_time = None
        notes.append(f"time-stamp token cannot be read: {exc!r}")
    # Without a signature time-stamp of its own, a document time-stamp over
    # the signature's revision dates it instead.
    fallback = None if own_token else doc_timestamp
    if fallback is not None:
        ts_time = fallback.timestamp
        notes.append("dated by the document time-stamp over it")
    adobe_crls, adobe_ocsps = adobe_revinfo(emb.signer_info)
    embedded_certs = [*dss_certs, *emb.other_embedded_certs]
    # The signer's certificate is judged at the time-stamp's time when there
    # is one (a time-stamp in the future is not believed), else now.
    now = trust.now()
    moment = ts_time if ts_time is not None and ts_time <= now else now
    revinfo = trust.revinfo(
        signer_certificate(emb.signed_data), ts_time and moment,
        [*dss_crls, *adobe_crls], [*dss_ocsps, *adobe_ocsps], notes,
    )
    signer_ctx = trust.validation_context(
        moment=moment, fetching=fetching, other_certs=embedded_certs, revinfo=revinfo
    )
    # The TSA's certificate is judged at the time-stamp's own time as well.
    ts_ctx = trust.validation_context(
        moment=moment, fetching=fetching, other_certs=embedded_certs, revinfo=revinfo
    )
    status = await async_validate_pdf_signature(
        emb, signer_validation_context=signer_ctx, ts_validation_context=ts_ctx
    )

    judge_integrity(status, "the signed bytes do not match the signature's digest", notes)
    der = judge_signed_attributes_der(emb.signer_info, notes)
    covers_all = status.coverage in (
        SignatureCoverageLevel.ENTIRE_REVISION,
        SignatureCoverageLevel.ENTIRE_FILE,
    )
    if not covers_all:
        notes.append(f"the byte range does not cover a whole revision ({status.coverage})")

    unknown = await only_revocation_unknown(
            trust, status, moment, embedded_certs, revinfo)
    chain = judge_trust(trust, status, notes, moment, fetching, revocation_unknown=unknown)

    # Modifications after signing. pyHanko's FORM_FILLING level is accepted
    # only when the fields it saw change are the fields of later signatures
    # and document time-stamps (B-T/B-LTA extensions, counter-signers), and
    # no form value differs from the signed revision's.
    level = status.modification_level
    modified = False
    if level is None or level not in _HARMLESS_LEVELS:
        diff = status.diff_result
        changed = getattr(diff, "changed_form_fields", None)
        if (
            level is not ModificationLevel.FORM_FILLING
            or changed is None
            or not set(changed) <= later_signature_fields
        ):
            modified = True
        else:
            signed_values = field_values(emb.reader.get_historical_root(emb.signed_revision))
            modified = signed_values != final_values
    if modified:
        notes.append(
            f"the document was changed after this signature (modification level {level})"
        )

    common = judge_signer_and_timestamp(
            trust, status, ts_time, notes, now, fallback=fallback
    )
    # The ETSI report is made from this one validation (no second, AdES pass).
    report_xml = (
        pdf_report(emb, status, signer_ctx, notes) if trust.settings.validation_report else None
    )
    return SignatureStatus(
        field_name=emb.field_name,
        kind="pades",
        report_xml=report_xml,
        **common,
        modified_after=modified,
        covered_bytes=covered,
        chain_problem=chain,
        signed_attributes_der=der,
        covers_all=covers_all,
        notes=tuple(notes),
    )


def _signer_count(sig_dict: generic.DictionaryObject) -> int:
    """How many SignerInfos the CMS in a signature dictionary carries (0 if unreadable)."""
    try:
        content_info = cms.ContentInfo.load(bytes(sig_dict["/Contents"]))
        return len(content_info["content"]["signer_infos"])
    except Exception:  # an unreadable CMS is pyHanko's to report.
        return 0



def _with_one_signer(data: bytes, sig_dict: generic.DictionaryObject, index: int) -> bytes:
    """``data`` with the signature's ``/Contents`` holding only SignerInfo ``index``.

    The new SignedData is shorter than the old one and is written, zero
    padded, into the same hex string between the ByteRange's two parts.
    """
    byte_range = [int(x) for x in sig_dict["/ByteRange"]]
    if len(byte_range) != 4 or byte_range[0] != 0:
        raise ValueError("the signature's ByteRange is not two parts from the start")
    start, end = byte_range[1], byte_range[2]
    gap = data[start:end]
    if not (gap.startswith(b"<") and gap.endswith(b">")) or end > len(data):
        raise ValueError("the ByteRange gap is not the /Contents hex string")
    content_info = cms.ContentInfo.load(bytes(sig_dict["/Contents"]))
    signed_data = content_info["content"]
    single = signed_data.copy()
    single["signer_infos"] = cms.SignerInfos([signed_data["signer_infos"][index].copy()])
    der: bytes = cms.ContentInfo({"content_type": "signed_data", "content": single}).dump()
    encoded = der.hex()
    room = len(gap) - 2
    if len(encoded) > room:
        raise ValueError("the single-signer CMS does not fit the signature's /Contents")
    return data[:start] + b"<" + encoded.encode("ascii").ljust(room, b"0") + b">" + data[end:]

