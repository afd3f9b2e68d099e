"""Decisions: what a judged message does to its application, and the reply.

The decider routes a message by the declared table :data:`ROUTES` (status
query, NEW LINK, reply in a thread, resubmission, new application, ...), runs
the pipeline where a form must be judged, stores the outcome and queues exactly
one reply, all in the caller's transaction. A new kind of inbound mail is a new
:class:`Route`, a row in :data:`ROUTES`, a test in :meth:`Decider.route` and a
case in :meth:`Decider.decide`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from intake.app.backscatter import answers_anchored, echo_subject, junk_reason
from intake.app.links import Verification
from intake.app.outcome import Outcome
from intake.app.receipts import record_receipt
from intake.app.replies import (
    BRACKETED_RE,
    STATUS_RE,
    SYSTEM,
    Replies,
    application_for_thread,
    find_application,
    link_mail,
    made_here,
    next_reference,
    transition,
)
from intake.app.states import RESTRICTABLE, RESUBMITTABLE
from intake.app.steering import Steering, apply_proposal, proposal
from intake.config import Config, MailboxConfig
from intake.mime.types import ParsedMail
from intake.pipeline import Pipeline, Submission
from intake.store.models import Application, Outbox, ReceivedMessage, Transition
from rules import Finding
from rules.workflow import WorkflowConfig

log = logging.getLogger(__name__)

#: Used for a reference when no workflow fits at all.
FALLBACK_PREFIX = "GEN"


class Route(StrEnum):
    """The way an inbound mail goes; see :data:`ROUTES`."""

    NOT_ANSWERED = "not-answered"
    STATUS_QUERY = "status-query"
    RESUBMISSION = "resubmission"
    RENEWAL = "renewal"
    NEW_LINK = "new-link"
    STATUS = "status"
    STATUS_UNKNOWN = "status-unknown"
    NEW_APPLICATION = "new-application"


#: The route table of an inbound mail: the first row whose condition holds is taken
#: (:meth:`Decider.route`), and :meth:`Decider.decide` does what its row says.
#: "Its application" is the one named as ``[REF]`` in the subject, else the one whose
#: thread the mail answers; "its address" is one of that application's addresses.
ROUTES: tuple[tuple[Route, str, str], ...] = (
    (Route.NOT_ANSWERED, "an RFC 3834 robot, list mail, bounce, report or PEC receipt",
     "recorded on the thread it answers (a PEC receipt on the reply it is for); no reply"),
    (Route.STATUS_QUERY, "STATUS REF in the subject",
     "the status, if the sender is one of the application's addresses, else status-unknown"),
    (Route.RESUBMISSION, "its application, from its address, with a form, a CSR or an oversized "
     "part, in a RESUBMITTABLE state",
     "judged again on the same reference (changes from an unauthenticated sender are held)"),
    (Route.RENEWAL, "its application, from its address, with a form, approved or active "
     "(the answer to a certificate expiry notice)",
     "judged as a new application in the same thread, noted as renewing the old reference"),
    (Route.NEW_LINK, "its application, from its address, NEW LINK in the subject, awaiting "
     "verification or expired", "a new e-mail link, within verification.max_links_per_day"),
    (Route.STATUS, "its application, from its address, otherwise", "the status"),
    (Route.STATUS_UNKNOWN, "someone else's application without a form, or an unknown [REF] "
     "without a form", "the answer an unknown reference gets: nothing is learnt"),
    (Route.NEW_APPLICATION, "anything else",
     "judged (Decider.judge): a question to a form-less workflow is a consultation, a copy "
     "of a judged form a duplicate, a mail without any form junk (the FORM-MISSING notice, "
     "no application), the rest a new application"),
)


@dataclass(frozen=True)
class Routed:
    route: Route
    app: Application | None = None
    #: The reference a status query names.
    reference: str | None = None


class Decider:
    def __init__(self, config: Config):
        self.config = config
        self.replies = Replies(config)
        self.verification = Verification(config, self.replies)
        self.steering = Steering(config, self.replies)

    # -- routing ------------------------------------------------------------

    def route(self, s: Session, mail: ParsedMail) -> Routed:
        """Which row of :data:`ROUTES` ``mail`` takes, and the application it is about."""
        thread_ids = [m for m in (mail.in_reply_to, *mail.references) if m]
        if mail.no_reply_reason is not None:
            if mail.pec_receipt is not None and mail.pec_receipt[1]:
                # SPEC section 2: a PEC receipt for one of our replies is kept
                # on that reply as proof of delivery (pasts show lists it).
                thread_ids.insert(0, mail.pec_receipt[1])
            return Routed(Route.NOT_ANSWERED, application_for_thread(s, thread_ids))

        status = STATUS_RE.search(mail.subject)
        if status:
            return Routed(Route.STATUS_QUERY, None, status.group(1).upper())

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
                    return Routed(Route.RESUBMISSION, app)
                if mail.carries_form and app.state in RESTRICTABLE:
                    return Routed(Route.RENEWAL, app)
                if self.verification.wants_new_link(mail, app):
                    return Routed(Route.NEW_LINK, app)
                return Routed(Route.STATUS, app)
            if not mail.carries_form:
                # A stranger replying in someone's thread learns nothing.
                return Routed(Route.STATUS_UNKNOWN)
        elif bracketed and not mail.carries_form:
            # Nor does one naming a reference that does not exist: the same answer
            # either way, so a reference cannot be probed.
            return Routed(Route.STATUS_UNKNOWN)
        return Routed(Route.NEW_APPLICATION)

    def decide(self, s: Session, pipeline: Pipeline, mailbox: MailboxConfig,
               row: ReceivedMessage, mail: ParsedMail) -> Outcome:
        routed = self.route(s, mail)
        app = routed.app
        match routed.route:
            case Route.NOT_ANSWERED:
                reason = mail.no_reply_reason
                summary = f"not answered: {reason}"
                if mail.pec_receipt is not None:
                    kind, about = mail.pec_receipt
                    summary = f"PEC receipt {kind} for {about or '(no X-Riferimento-Message-ID)'}"
                    signed = mail.pec.signed if mail.pec is not None else None
                    reply = record_receipt(s, mail, pipeline.transport_signature(signed))
                    if reply is not None:
                        summary += f" (recorded on the reply: {reply.pec_status})"
                        app = app or reply.application
                if app is not None:
                    link_mail(s, app, mail.message_id, "in", summary)
                return Outcome("ignored", f"not answered: {reason}", app.id if app else None)
            case Route.STATUS_QUERY:
                assert routed.reference is not None
                return self.status_query(s, row, mail, routed.reference)
            case Route.RESUBMISSION:
                return self.judge(s, pipeline, mailbox, row, mail, app=app)
            case Route.RENEWAL:
                assert app is not None
                return self.renewal(s, pipeline, mailbox, row, mail, app)
            case Route.NEW_LINK:
                assert app is not None
                return self.verification.resend(s, row, mail, app)
            case Route.STATUS:
                assert app is not None
                return self.answer_status(s, row, mail, app)
            case Route.STATUS_UNKNOWN:
                return self.status_unknown(s, row, mail)
            case Route.NEW_APPLICATION:
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

    def renewal(self, s: Session, pipeline: Pipeline, mailbox: MailboxConfig,
                row: ReceivedMessage, mail: ParsedMail, old: Application) -> Outcome:
        """A new application answering an approved one's thread (its certificate's renewal)."""
        outcome = self.judge(s, pipeline, mailbox, row, mail, app=None)
        new = s.get(Application, outcome.application_id) if outcome.application_id else None
        if new is not None and new.id != old.id:
            new.extra = {**(new.extra or {}), "renews": old.reference}
            log.info("%s: renews %s (a new application in its thread)", new.reference,
                     old.reference)
        return outcome

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
            # Made empty here, kept loaded: link_mail looks in them, not the store.
            links=[],
            transitions=[],
        )
        s.add(app)
        made_here(s, app)
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
            # The row is being decided: only this transaction queues its answer.
            fresh=True,
        )
