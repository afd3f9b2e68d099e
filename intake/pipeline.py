"""The judgement pipeline, declared in one place.

A submission flows through these stages, top to bottom; each stage takes the
frozen :class:`~rules.base.Case` built so far and returns a new one
(``dataclasses.replace``). Lookups that need the database (registry,
duplicates) are handed in as plain functions, so the stages stay free of I/O
apart from the verifier's revocation fetching.

    verify_signature ─▶ read_form ─▶ place_workflow ─▶ check_csr ─▶ look_up_registry
        ─▶ find_duplicate ─▶ judge

The form's signature is PAdES inside the PDF, or else a detached ``.p7s`` or
the mail's S/MIME signature over it; an S/MIME signature beside a PAdES one is
recorded (signer and verdict) but does not judge the form.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from intake.config import Config, MailboxConfig
from intake.errors import PermanentError
from intake.italian import pec_record, signed_file_record, transport_signature, with_inner_pdf
from intake.mime.types import Attachment, ParsedMail
from rules import Case, Judgement, OrganisationRecord, judge
from rules.form import FORM_ID_FIELD
from rules.signature import policy_codes, status_codes, verdict_codes
from rules.workflow import Role, WorkflowConfig, field_value

if TYPE_CHECKING:
    from signing.csr import CsrReport
    from signing.status import FormVerdict, Qualification, SignerIdentity, TimestampQualification
    from signing.verifier import Verifier

log = logging.getLogger(__name__)


#: ``read_form_fields``'s signature: a PDF's field values by name.
FieldReader = Callable[..., dict[str, str]]
#: ``signing.csr.check_csr``'s signature: the report on a CSR's bytes.
CsrChecker = Callable[..., "CsrReport"]


def read_form_fields(pdf: bytes, *, max_pages: int = 200) -> dict[str, str]:
    """:func:`intake.forms.read.read_form_fields`, pyHanko imported when first needed
    (a command that judges nothing does not load it)."""
    from intake.forms.read import read_form_fields as read

    return read(pdf, max_pages=max_pages)


@dataclass(frozen=True)
class Lookups:
    """What the pipeline may ask of the store (plain functions, no session)."""

    organisation: Callable[[str], OrganisationRecord | None]
    #: The reference of an application with this form hash, other than the
    #: one given (the application being resubmitted), if any.
    duplicate: Callable[[str, str | None], str | None]


@dataclass(frozen=True)
class Submission:
    """One message under judgement: the mail, what was read of it, and the case."""

    mail: ParsedMail
    mailbox: MailboxConfig
    case: Case
    #: The form PDF's bytes: the attachment, or the PDF inside an ASiC-E container.
    form_data: bytes | None = field(default=None, repr=False)
    #: SHA-256 of what was signed, the PDF or the container (DUPLICATE).
    form_sha256: str | None = None
    #: The whole verdict as plain data for the store (signatures, notes).
    verdict_record: dict[str, Any] | None = None
    judgement: Judgement | None = None
    #: The application this mail resubmits to, if any (its own form is no duplicate).
    resubmits: str | None = None
    #: The PEC envelope it arrived in: daticert.xml and the provider's signature
    #: judged as transport evidence (never the applicant's signature).
    pec_record: dict[str, Any] | None = None


class Pipeline:
    """Runs the stages with the verifier, key policy and lookups it was given."""

    def __init__(self, config: Config, verifier: Verifier, lookups: Lookups, *,
                 transport: Callable[[], Verifier] | None = None,
                 read_fields: FieldReader = read_form_fields,
                 check_csr: CsrChecker | None = None):
        self.config = config
        self.verifier = verifier
        self.lookups = lookups
        #: Makes the verifier of PEC providers' signatures (``signing.pec_anchors``).
        self.transport = transport
        #: Reads a PDF's form fields (the bounded children read them ahead: intake.prepare).
        self.read_fields = read_fields
        #: Judges a CSR's bytes (the children judge them ahead: intake.prepare);
        #: ``signing.csr.check_csr`` when not given.
        self.csr_checker = check_csr
        self.stages: tuple[tuple[str, Callable[[Submission], Submission]], ...] = (
            ("verify-signature", self.verify_signature),
            ("read-form", self.read_form),
            ("place-workflow", self.place_workflow),
            ("check-csr", self.check_csr),
            ("look-up-registry", self.look_up_registry),
            ("find-duplicate", self.find_duplicate),
            ("judge", self.judge),
        )

    def run(self, mail: ParsedMail, mailbox: MailboxConfig, *,
            resubmits: str | None = None) -> Submission:
        """Judge one mail; ``resubmits`` names the application it is a resubmission to."""
        sub = self.start(mail, mailbox, resubmits=resubmits)
        for name, stage in self.stages:
            sub = stage(sub)
            log.debug("stage %s done for %s", name, mail.message_id)
        return sub

    def read_signed(self, mail: ParsedMail, mailbox: MailboxConfig) -> Submission:
        """Only the stages that read the mail's bytes (``verify-signature``,
        ``read-form``, and ``check-csr`` after the workflow it needs is placed):
        what :mod:`intake.prepare` runs ahead in a bounded child."""
        sub = self.read_form(self.verify_signature(self.start(mail, mailbox)))
        return self.check_csr(self.place_workflow(sub))

    def start(self, mail: ParsedMail, mailbox: MailboxConfig, *,
              resubmits: str | None = None) -> Submission:
        """The submission before any stage has run."""
        signed = mail.form or mail.asice or mail.signed_file
        return Submission(
            mail=mail,
            mailbox=mailbox,
            resubmits=resubmits,
            # An oversized mail was not opened: whatever it carried is unreadable.
            case=Case(workflow=None,
                      form_present=mail.carries_form or mail.oversized is not None,
                      judged_at=datetime.now(UTC), signing=self.config.signing),
            form_data=mail.form.data if mail.form is not None else None,
            form_sha256=hashlib.sha256(signed.data).hexdigest() if signed is not None else None,
            pec_record=self.pec_record(mail),
        )

    # -- stages -----------------------------------------------------------

    def verify_signature(self, sub: Submission) -> Submission:
        """Judge the form's signature: PAdES in the PDF, else a ``.p7s`` or S/MIME over it."""
        mail = sub.mail
        form = mail.form
        if mail.oversized is not None:
            limit = self.config.limits.max_message_bytes
            error = f"the message is {mail.oversized} bytes, over the limit of {limit} bytes"
            return _unreadable(sub, error, unopened=True)
        if form is None and mail.asice is not None:
            return self.verify_container(sub, mail.asice)
        if form is None and mail.signed_file is not None:
            return self.verify_signed_file(sub, mail.signed_file)
        if form is None:
            return sub
        from signing.status import UnreadableInput

        if form.dropped_size is not None:
            return _unreadable(sub, self.over_limit("the PDF", form))
        try:
            verdict = self.verifier.verify_pdf_sync(form.data)
            if not verdict.signatures:
                detached = self.detached_form_signature(mail, form)
                if detached is not None:
                    # A detached signature covers every byte of the PDF: its values
                    # are the ones the PDF's own verification read from the whole file.
                    verdict = replace(detached, signed_fields=verdict.signed_fields,
                                      final_fields=verdict.final_fields)
        except UnreadableInput as exc:
            if mail.asice is None:
                return _unreadable(sub, str(exc) or "unreadable PDF")
            verdict = None
        if (verdict is None or not verdict.signatures) and mail.asice is not None:
            # An unsigned (or broken) copy of the PDF beside the signed container:
            # the container is what was signed.
            return self.verify_container(sub, mail.asice)
        if (verdict is None or not verdict.signatures) and mail.signed_file is not None:
            # The same for an unsigned PDF beside its signed .p7m.
            return self.verify_signed_file(sub, mail.signed_file)
        assert verdict is not None
        record = verdict_to_record(verdict)
        kinds = {s.kind for s in verdict.signatures}
        if mail.smime is not None and "smime" not in kinds:
            record["mail_signature"] = self.side_signature_record(*mail.smime, kind="smime")
        if mail.p7s is not None and "cms" not in kinds:
            target = self.p7s_target(mail, mail.p7s)
            if target is not None:
                side = self.side_signature_record(target.data, mail.p7s.data, kind="cms")
                record["attachment_signature"] = {**side, "over": target.filename}
        return _verified(sub, verdict, record)

    def pec_record(self, mail: ParsedMail) -> dict[str, Any] | None:
        """The PEC envelope ``mail`` came in, the provider's signature judged (:mod:`intake.italian`)."""
        return pec_record(mail, self.transport)

    def transport_signature(self, signed: tuple[bytes, bytes] | None) -> dict[str, Any] | None:
        """A PEC provider's signature judged against ``signing.pec_anchors`` (:mod:`intake.italian`)."""
        return transport_signature(self.transport, signed)

    def over_limit(self, what: str, attachment: Attachment) -> str:
        limit = self.config.limits.max_attachment_bytes
        return f"{what} is {attachment.dropped_size} bytes, over the limit of {limit} bytes"

    def verify_container(self, sub: Submission, container: Attachment) -> Submission:
        """Judge an ASiC-E container's signatures; the PDF inside becomes the form."""
        from signing.status import UnreadableInput

        name = container.filename or "container"
        if container.dropped_size is not None:
            return _unreadable(sub, self.over_limit(name, container))
        try:
            asic = self.verifier.verify_asic_sync(container.data)
        except UnreadableInput as exc:
            return _unreadable(sub, f"{name} cannot be read: {exc}")
        record = verdict_to_record(asic.verdict)
        record["container"] = {
            "name": name, "form": asic.form_name, "files": [n for n, _ in asic.documents],
        }
        # What was signed is the container: DUPLICATE compares its bytes.
        sub = replace(sub, form_sha256=hashlib.sha256(container.data).hexdigest())
        if asic.form_bytes is None:
            # A signed container without the form is a mail without the form,
            # but its signatures are still judged: a broken one is said too
            # (SPEC section 3: a notice lists every code that applies).
            case = replace(sub.case, form_present=False, verdict=asic.verdict)
            return replace(sub, case=case, verdict_record=record)
        return _verified(replace(sub, form_data=asic.form_bytes), asic.verdict, record)

    def verify_signed_file(self, sub: Submission, signed: Attachment) -> Submission:
        """Judge an Italian ``.p7m``/``.tsd``/``.m7m``: every level, and the PDF inside as a form.

        Every enveloping level's signers are judged as a ``.p7s`` is (strictness,
        trust, qualification, time-stamps, revocation); a ``.tsr`` beside a
        ``.p7m`` is paired with it; the innermost PDF is read as if it had
        arrived alone, its own PAdES signature judged beside the levels'.
        """
        from signing.status import UnreadableInput

        name = signed.filename or "signed file"
        if signed.dropped_size is not None:
            return _unreadable(sub, self.over_limit(name, signed))
        tsr = sub.mail.timestamp_reply
        try:
            found = self.verifier.verify_signed_file_sync(
                signed.data, timestamp=tsr.data if tsr is not None else None)
        except UnreadableInput as exc:
            return _unreadable(sub, f"{name} cannot be read: {exc}")
        verdict = found.verdict
        sub = replace(sub, form_sha256=hashlib.sha256(signed.data).hexdigest())
        if found.content_type != "pdf":
            # A signed file around something else is a mail without the form;
            # its signatures are still judged, as a container's are.
            record = verdict_to_record(verdict)
            record["signed_file"] = signed_file_record(name, found, tsr)
            case = replace(sub.case, form_present=False, verdict=verdict)
            return replace(sub, case=case, verdict_record=record)
        try:
            inner = self.verifier.verify_pdf_sync(found.content)
        except UnreadableInput as exc:
            return _unreadable(sub, f"the PDF inside {name} cannot be read: {exc}")
        verdict = with_inner_pdf(found, inner)
        record = verdict_to_record(verdict)
        record["signed_file"] = signed_file_record(name, found, tsr)
        return _verified(replace(sub, form_data=found.content), verdict, record)

    def detached_form_signature(self, mail: ParsedMail, form: Attachment) -> FormVerdict | None:
        """The verdict of a signature outside an unsigned form PDF, or ``None``.

        A ``.p7s`` counts when it is over the form (``form.pdf.p7s``, or any
        ``.p7s`` not named after another attachment); an S/MIME signature counts
        when the form is inside the signed content. Either covers the whole PDF,
        so every value read from it is signed.
        """
        p7s = mail.p7s
        if p7s is not None and self.p7s_target(mail, p7s) is form:
            return self.verifier.verify_detached_sync(form.data, p7s.data, kind="cms")
        if mail.smime is not None and form.in_smime:
            content, signature = mail.smime
            return self.verifier.verify_detached_sync(content, signature, kind="smime")
        return None

    @staticmethod
    def p7s_target(mail: ParsedMail, p7s: Attachment) -> Attachment | None:
        """The attachment a detached signature is over: named by it, else the form."""
        name = (p7s.filename or "").lower()
        if name.endswith(".p7s"):
            stem = name[: -len(".p7s")]
            named = [a for a in mail.attachments if (a.filename or "").lower() == stem]
            if named:
                return named[0]
        return mail.form

    def side_signature_record(self, content: bytes, signature: bytes, *,
                              kind: Literal["cms", "smime"]) -> dict[str, Any]:
        """A signature that does not sign the form (the mail's S/MIME, a ``.p7s``
        over another attachment): verified and recorded with its signer, not judged."""
        from signing.status import UnreadableInput

        try:
            verdict = self.verifier.verify_detached_sync(content, signature, kind=kind)
        except UnreadableInput as exc:
            return {"codes": ["SIG-INVALID"], "notes": [str(exc)], "signer": None}
        # Several signers of one .p7s are told together (codes of all, the last signer).
        return {
            "codes": list(verdict_codes(verdict)),
            "notes": [note for status in verdict.signatures for note in status.notes],
            "signer": signer_to_record(verdict.signer),
        }

    def read_form(self, sub: Submission) -> Submission:
        data = sub.form_data
        if data is None or sub.case.form_error:
            return sub

        from intake.forms.read import form_values

        max_pages = self.config.limits.max_pdf_pages
        verdict = sub.case.verdict
        # The values we act on are the values the signature covers: read them
        # from the signed revision, never from a later update.
        try:
            if (verdict is not None and verdict.signed_fields is not None
                    and verdict.final_fields is not None):
                # Read by the verifier from the reader it verified with (signing.formfields).
                fields = form_values(verdict.signed_fields, max_pages=max_pages)
                changed = form_values(verdict.final_fields, max_pages=max_pages) != fields
            else:
                # A PDF no verifier opened (inside an ASiC-E container).
                signed = verdict.signed_revision if verdict is not None else None
                fields = self.read_fields(signed or data, max_pages=max_pages)
                changed = False
                # A signature over the whole file leaves nothing after it to read again.
                if signed and signed != data:
                    changed = self.read_fields(data, max_pages=max_pages) != fields
        except PermanentError as exc:
            return replace(sub, case=replace(sub.case, form_error=str(exc)))
        return replace(
            sub, case=replace(sub.case, fields=fields, fields_changed_after_signing=changed)
        )

    def place_workflow(self, sub: Submission) -> Submission:
        if not sub.case.form_present or sub.case.form_error:
            return replace(sub, case=replace(sub.case, workflow=self.default_workflow(sub.mailbox)))
        workflow = self.workflow_for(sub.case.fields, sub.mailbox)
        return replace(sub, case=replace(sub.case, workflow=workflow))

    def workflow_for(self, fields: Any, mailbox: MailboxConfig) -> WorkflowConfig | None:
        form_id = (fields.get(FORM_ID_FIELD) or "").strip()
        if form_id:
            return self.config.workflow(form_id)
        default = self.default_workflow(mailbox)
        return default if default is not None and default.needs_form else None

    def default_workflow(self, mailbox: MailboxConfig) -> WorkflowConfig | None:
        return self.config.workflow(mailbox.workflow) if mailbox.workflow else None

    def check_csr(self, sub: Submission) -> Submission:
        workflow = sub.case.workflow
        if workflow is None or "csr" not in workflow.requires:
            return sub
        from signing.csr import KeyPolicy, check_csr

        policy = KeyPolicy(
            rsa_min_bits=self.config.csr.rsa_min_bits,
            ec_curves=self.config.csr.ec_curves,
            allow_ed25519=self.config.csr.allow_ed25519,
        )
        report = (self.csr_checker or check_csr)(
            sub.mail.csr,
            expected_cn=field_value(workflow, sub.case.fields, Role.CSR_COMMON_NAME) or None,
            expected_org=field_value(workflow, sub.case.fields, Role.ORG_NAME) or None,
            policy=policy,
        )
        return replace(sub, case=replace(sub.case, csr=report))

    def look_up_registry(self, sub: Submission) -> Submission:
        reg_no = field_value(sub.case.workflow, sub.case.fields, Role.ORG_REG_NO)
        if not reg_no:
            return sub
        return replace(sub, case=replace(sub.case, organisation=self.lookups.organisation(reg_no)))

    def find_duplicate(self, sub: Submission) -> Submission:
        # Only a signed form that verified is a "signed form already submitted";
        # a signed container without a form is no form at all.
        verdict = sub.case.verdict
        if (sub.form_sha256 is None or not sub.case.form_present or verdict is None
                or not verdict.signatures):
            return sub
        original = self.lookups.duplicate(sub.form_sha256, sub.resubmits)
        return replace(sub, case=replace(sub.case, duplicate_of=original))

    def judge(self, sub: Submission) -> Submission:
        return replace(sub, judgement=judge(sub.case),
                       verdict_record=_with_policy_codes(sub.verdict_record, sub.case))


def _unreadable(sub: Submission, error: str, *, unopened: bool = False) -> Submission:
    """The submission with a FORM-UNREADABLE reason."""
    return replace(sub, case=replace(sub.case, form_error=error, unopened=unopened))


def _verified(sub: Submission, verdict: FormVerdict, record: dict[str, Any]) -> Submission:
    """The submission with its form's signature verdict and its signer's personal code."""
    signer = verdict.signer
    return replace(
        sub,
        case=replace(
            sub.case,
            verdict=verdict,
            signer_code=signer.personal_code if signer is not None else None,
        ),
        verdict_record=record,
    )


def _with_policy_codes(record: dict[str, Any] | None, case: Case) -> dict[str, Any] | None:
    """The record with each signature's policy codes (``SIG-NOT-QUALIFIED``, ``TS-*``,
    ``SIG-TOO-OLD``, computed by the rules under the workflow's policy) beside the
    verifier's, so that ``pasts show`` tells which signature raised them."""
    if record is None or case.verdict is None:
        return record
    sigs = record.get("signatures", [])
    found = policy_codes(case)
    if len(found) != len(sigs):
        return record
    signatures = [{**one, "codes": sorted({*one["codes"], *codes})}
                  for one, codes in zip(sigs, found, strict=True)]
    every = {*record.get("codes", []), *(c for codes in found for c in codes)}
    return {**record, "signatures": signatures, "codes": sorted(every)}


def verdict_to_record(verdict: FormVerdict) -> dict[str, Any]:
    """The verdict as JSON-able data for the application row and `pasts show`."""
    sigs = []
    for s in verdict.signatures:
        sigs.append(
            {
                "field": s.field_name,
                "kind": s.kind,
                "intact": s.intact,
                "valid": s.valid,
                "trusted": s.trusted,
                "timestamp": s.timestamp_time.isoformat() if s.timestamp_time else None,
                "signing_time": s.signing_time.isoformat() if s.signing_time else None,
                "modified_after": s.modified_after,
                "codes": list(status_codes(s)),
                "notes": list(s.notes),
                "qualification": _record_of(s.qualification),
                "timestamp_qualification": _record_of(s.timestamp_qualification),
            }
        )
    reports = [s.report_xml for s in verdict.signatures if s.report_xml]
    record: dict[str, Any] = {"codes": list(verdict_codes(verdict)), "signatures": sigs}
    if reports:
        # The ETSI TS 119 102-2 reports, for `pasts show REF --report FILE`.
        record["reports"] = reports
    return record


def _record_of(fact: Qualification | TimestampQualification | None) -> dict[str, Any] | None:
    """A qualification fact of :mod:`signing.trust.qualification` as JSON-able data."""
    return fact.to_record() if fact is not None else None


def signer_to_record(signer: SignerIdentity | None) -> dict[str, Any] | None:
    if signer is None:
        return None
    return {
        "name": signer.common_name,
        "given_name": signer.given_name,
        "surname": signer.surname,
        "personal_code": signer.personal_code,
        "organisation": signer.organisation,
        "organisation_identifier": signer.organisation_identifier,
        "country": signer.country,
        "issuer": signer.issuer,
        "serial_number": format(signer.serial_number, "x"),
        "not_after": signer.not_after.isoformat(),
        "qc_compliance": signer.qc_compliance,
        "qc_esign": signer.qc_esign,
        "qc_sscd": signer.qc_sscd,
    }
