"""Decisions: what a judged message does to its application, and the reply.

The decider routes a message (status query, reply in a thread, resubmission,
new application), runs the pipeline where a form must be judged, stores the
outcome and queues exactly one reply, all in the caller's transaction.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from intake.app.backscatter import answers_anchored, echo_subject, junk_reason
from intake.app.links import Verification
from intake.app.outcome import RESUBMITTABLE, Outcome
from intake.app.replies import (
    BRACKETED_RE,
    STATUS_RE,
    SYSTEM,
    Replies,
    application_for_thread,
    find_application,
    link_mail,
    next_reference,
    transition,
)
from intake.app.steering import Steering, apply_proposal, proposal
from intake.config import Config, MailboxConfig, WorkflowConfig
from intake.mime.types import ParsedMail
from intake.pipeline import Pipeline, Submission
from intake.store.models import Application, Outbox, ReceivedMessage, Transition
from rules import Finding

#: Used for a reference when no workflow fits at all.
FALLBACK_PREFIX = "GEN"


class Decider:
    def __init__(self, config: Config):
        self.config = config
        self.replies = Replies(config)
        self.verification = Verification(config, self.replies)
        self.steering = Steering(config, self.replies)

    # -- routing ------------------------------------------------------------

    def decide(self, s: Session, pipeline: Pipeline, mailbox: MailboxConfig,
               row: ReceivedMessage, mail: ParsedMail) -> Outcome:
        thread_ids = [m for m in (mail.in_reply_to, *mail.references) if m]
        reason = mail.no_reply_reason
        if reason is not None:
            summary = f"not answered: {reason}"
            if mail.pec_receipt is not None:
                # SPEC section 2: a PEC receipt for one of our replies is kept
                # on that reply as proof of delivery (pasts show lists it).
                kind, about = mail.pec_receipt
                if about:
                    thread_ids.insert(0, about)
                summary = f"PEC receipt {kind} for {about or '(no X-Riferimento-Message-ID)'}"
            app = application_for_thread(s, thread_ids)
            if app is not None:
                link_mail(s, app, mail.message_id, "in", summary)
            return Outcome("ignored", f"not answered: {reason}", app.id if app else None)

        status = STATUS_RE.search(mail.subject)
        if status:
            return self.status_query(s, row, mail, status.group(1).upper())

        app = None
        bracketed = BRACKETED_RE.search(mail.subject)
        if bracketed:
            app = find_application(s, bracketed.group(1))
        if app is None:
            app = application_for_thread(s, thread_ids)
        if app is not None:
            if mail.reply_address in (app.addresses or []):
                submits = mail.carries_form or mail.csr is not None or mail.oversized
                if submits and app.state in RESUBMITTABLE:
                    return self.judge(s, pipeline, mailbox, row, mail, app=app)
                if self.verification.wants_new_link(mail, app):
                    return self.verification.resend(s, row, mail, app)
                return self.answer_status(s, row, mail, app)
            if not mail.carries_form:
                # A stranger replying in someone's thread learns nothing.
                return self.status_unknown(s, row, mail)
        elif bracketed and not mail.carries_form:
            # Nor does one naming a reference that does not exist: the same answer
            # either way, so a reference cannot be probed.
            return self.status_unknown(s, row, mail)
        return self.judge(s, pipeline, mailbox, row, mail, app=None)

    # -- status -------------------------------------------------------------

    def status_query(self, s: Session, row: ReceivedMessage, mail: ParsedMail,
                     reference: str) -> Outcome:
        app = find_application(s, reference)
        if app is None or mail.reply_address not in (app.addresses or []):
            return self.status_unknown(s, row, mail)
        return self.answer_status(s, row, mail, app)

    def answer_status(self, s: Session, row: ReceivedMessage, mail: ParsedMail,
                      app: Application) -> Outcome:
        link_mail(s, app, mail.message_id, "in", "status query")
        self.reply(s, row, mail, app, "status",
                   findings=[Finding(c) for c in app.codes or []])
        return Outcome("processed", f"status of {app.reference} ({app.state}) sent", app.id)

    def status_unknown(self, s: Session, row: ReceivedMessage, mail: ParsedMail) -> Outcome:
        self.reply(s, row, mail, None, "status-unknown")
        return Outcome("processed", "status query from an address not on the application")

    # -- judging ------------------------------------------------------------

    def judge(self, s: Session, pipeline: Pipeline, mailbox: MailboxConfig,
              row: ReceivedMessage, mail: ParsedMail, *, app: Application | None) -> Outcome:
        default = pipeline.default_workflow(mailbox)
        if (app is None and not mail.carries_form and default is not None
                and not default.needs_form):
            return self.consultation(s, row, mail, default)

        sub = pipeline.run(mail, mailbox, resubmits=app.reference if app is not None else None)
        case = sub.case
        judgement = sub.judgement
        assert judgement is not None

        if case.duplicate_of:
            original = find_application(s, case.duplicate_of)
            assert original is not None
            link_mail(s, original, mail.message_id, "in", "duplicate submission")
            self.reply(s, row, mail, original, "duplicate", findings=[Finding("DUPLICATE")])
            return Outcome("processed", f"duplicate of {original.reference}", original.id)

        if app is not None:
            # Only an authenticated mail changes an application; the rest is held.
            held = self.steering.gate(s, row, mail, app, sub)
            if held is not None:
                return held

        if app is None and (junk := junk_reason(mail, threaded=False)) is not None:
            procedure = case.workflow or default
            language = procedure.language if procedure is not None else None
            return self.junk(s, row, mail, junk, list(judgement.findings), language)

        workflow = case.workflow or (app and self.config.workflow(app.workflow)) or default
        resubmission = app is not None
        if app is None:
            app = self.new_application(s, mail, workflow, row)
        self.store_judgement(app, sub)
        link_mail(s, app, mail.message_id, "in",
                  "resubmission" if resubmission else "application")

        findings = list(judgement.findings)
        if findings:
            reason = ", ".join(judgement.codes)
            transition(s, app, "incomplete", reason=("resubmitted: " if resubmission else "") + reason)
            template = "form-missing" if "FORM-MISSING" in judgement.codes else "rejected"
            self.reply(s, row, mail, app, template, findings=findings,
                       context={"support_address": self.support_address()})
            return Outcome("processed", f"{app.reference} incomplete: {reason}", app.id)

        if self.verification.start(s, app, row, mail):
            return Outcome("processed", f"{app.reference} awaiting e-mail verification", app.id)
        transition(s, app, "in-review", reason="all checks passed")
        self.reply(s, row, mail, app, "in-review")
        return Outcome("processed", f"{app.reference} in review", app.id)

    def consultation(self, s: Session, row: ReceivedMessage, mail: ParsedMail,
                     workflow: WorkflowConfig) -> Outcome:
        app = self.new_application(s, mail, workflow, row)
        app.form_values = {"subject": mail.subject, "question": mail.body_text[:20000]}
        link_mail(s, app, mail.message_id, "in", "question")
        self.reply(s, row, mail, app, "received")
        return Outcome("processed", f"{app.reference} question received", app.id)

    def junk(self, s: Session, row: ReceivedMessage, mail: ParsedMail, reason: str,
             findings: list[Finding], language: str | None) -> Outcome:
        """Answer junk with the FORM-MISSING notice, within the bound, and make no application.

        The ledger row keeps why (``reason``); staff's lists stay clean.
        """
        queued = self.reply(s, row, mail, None, "form-missing",
                            findings=findings or [Finding("FORM-MISSING")],
                            context={"support_address": self.support_address()},
                            language=language)
        if queued is None:
            return Outcome("processed", f"{reason}: no reply can be written to "
                           f"{mail.reply_address[:320]!r}, no application made")
        return Outcome("processed", f"{reason}: FORM-MISSING notice, no application made")

    def new_application(self, s: Session, mail: ParsedMail, workflow: WorkflowConfig | None,
                        row: ReceivedMessage) -> Application:
        prefix = workflow.prefix if workflow else FALLBACK_PREFIX
        app = Application(
            reference=next_reference(s, prefix),
            workflow=workflow.id if workflow else "unknown",
            state="received",
            language=(workflow.language if workflow and workflow.language
                      else self.config.daemon.language),
            applicant_email=mail.reply_address,
            addresses=[mail.reply_address],
            thread_root=mail.message_id,
        )
        s.add(app)
        s.add(Transition(application=app, from_state=None, to_state="received", actor=SYSTEM,
                         reason=f"mail {mail.message_id or '(no Message-ID)'}"))
        s.flush()
        return app

    def store_judgement(self, app: Application, sub: Submission) -> None:
        values, der = proposal(app, sub)
        apply_proposal(app, values, der, source=f"mail {sub.mail.message_id or '(no Message-ID)'}")

    # -- replies ------------------------------------------------------------

    def support_address(self) -> str:
        """Where applicants ask questions: the consultation mailbox, else our sender."""
        return self.config.daemon.support_address or self.config.smtp.sender

    def reply(self, s: Session, row: ReceivedMessage, mail: ParsedMail, app: Application | None,
              template: str, *, findings: list[Finding] | None = None,
              context: dict[str, Any] | None = None,
              language: str | None = None) -> Outbox | None:
        """Queue the one answer to inbound message ``row`` (idempotent by its id, bounded)."""
        return self.replies.queue(
            s, key=f"in:{row.id}", to=mail.reply_address, template=template, app=app,
            language=(app.language if app is not None
                      else language or self.config.daemon.language),
            findings=findings or (), original_subject=echo_subject(mail),
            in_reply_to=mail.message_id, references=mail.references, context=context,
            rate_limit=True, trusted=answers_anchored(mail, app),
        )
