"""Staff decisions: approve, reject, restrict (``pasts approve|reject|restrict``)."""

from __future__ import annotations

from sqlalchemy.orm import Session

from intake.app.certificates import issue_for, regenerate_crl, revoke_for
from intake.app.replies import Replies, load_application, next_reference, transition
from intake.app.services import Services
from intake.app.states import APPROVABLE, RESTRICTABLE, StaffActionError
from intake.app.steering import approval_notes
from intake.store.models import Application
from rules import Finding
from rules.workflow import Approval, Role, field_value


def _reply(rt: Services, s: Session, app: Application, action: str, template: str, *,
           to: str | None = None, findings: tuple[Finding, ...] = (),
           context: dict[str, object] | None = None,
           attachments: tuple[tuple[str, str, bytes], ...] = ()) -> None:
    Replies(rt.config).queue(
        s, key=f"staff:{app.id}:{action}:{len(app.transitions)}:{to or ''}",
        to=to or app.applicant_email, template=template, app=app, language=app.language,
        findings=findings, in_reply_to=app.thread_root,
        references=(app.thread_root,) if app.thread_root else (),
        context=context, attachments=attachments,
    )


def approve(rt: Services, reference: str, *, user: str, code: str | None = None,
            note: str | None = None) -> str:
    with rt.store.session() as s:
        app = load_application(s, reference)
        if app.state not in APPROVABLE:
            raise StaffActionError(f"{app.reference} is {app.state}; only applications in review "
                                   "can be approved")
        workflow = rt.config.workflow(app.workflow)
        # What approval does is the workflow's (rules/workflows.toml `approval`).
        approval = workflow.approval if workflow else Approval()
                # The staff member sees which key is certified, where it came from,
        # and any change still held for the contact.
        lines = approval_notes(s, app)
        values = app.form_values
        contact = (field_value(workflow, values, Role.CONTACT_EMAIL)
                   or app.applicant_email).strip().lower()
        attachments: tuple[tuple[str, str, bytes], ...] = ()
        extra = dict(app.extra or {})
        if approval.certificate:
            cert = issue_for(rt, s, app)
            attachments = ((f"{app.reference}.pem", "application/x-pem-file",
                            cert.chain_pem.encode()),)
            lines.append(f"certificate serial {cert.serial_hex} issued")
        if approval.account_series:
            extra["data_exchange_id"] = next_reference(s, approval.account_series)
            extra["portal_account"] = contact
            lines.append(f"data-exchange id {extra['data_exchange_id']}")
        app.extra = extra
        new_state = approval.state
        transition(s, app, new_state, actor=user, reason=note or "approved")
        context = {"certificate": bool(attachments), "note": note or "", **extra}
        _reply(rt, s, app, "approve", "active" if new_state == "active" else "approved",
               to=contact, context=context, attachments=attachments)
        if contact != app.applicant_email:
            _reply(rt, s, app, "approve", "status", to=app.applicant_email)
        for role in approval.notify:
            notified = field_value(workflow, values, role).lower()
            if notified:
                _reply(rt, s, app, "approve", "approved", to=notified,
                       context={**context, "certificate": False, "provider_notice": True})
        return f"{app.reference}: {new_state}" + (f" ({'; '.join(lines)})" if lines else "")


def reject(rt: Services, reference: str, *, user: str, code: str | None = None,
           note: str | None = None) -> str:
    with rt.store.session() as s:
        app = load_application(s, reference)
        if app.state == "rejected":
            raise StaffActionError(f"{app.reference} is already rejected")
        code = (code or "").strip().upper()
        if not code:
            raise StaffActionError("reject needs --code")
        app.codes = sorted(set(app.codes or []) | {code})
        transition(s, app, "rejected", actor=user, reason=f"{code}: {note or ''}")
        _reply(rt, s, app, "reject", "rejected-final", findings=(Finding(code, note or ""),),
               context={"note": note or ""})
        return f"{app.reference}: rejected ({code})"


def restrict(rt: Services, reference: str, *, user: str, code: str | None = None,
             note: str | None = None) -> str:
    with rt.store.session() as s:
        app = load_application(s, reference)
        if app.state not in RESTRICTABLE:
            raise StaffActionError(f"{app.reference} is {app.state}; only approved applications "
                                   "can be restricted")
        revoked = revoke_for(s, app, reason="privilege_withdrawn", note=note or "")
        if revoked and rt.config.ca.crl is not None:
            regenerate_crl(rt, s)
        transition(s, app, "restricted", actor=user, reason=note or "compliance check failed")
        _reply(rt, s, app, "restrict", "restricted", context={"note": note or ""})
        serials = ", ".join(r.serial_hex for r in revoked) or "none"
        return f"{app.reference}: restricted; revoked certificate(s): {serials}"
