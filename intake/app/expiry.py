"""Certificate expiry notices: the contact is told ``ca.expiry_notice_days`` before expiry.

One notice per (certificate, threshold), recorded in ``certificate_notice``
in the transaction that queues it (its unique key refuses a second, whichever
worker tries). The sweep looks at what is due and not yet done, not at what
is due exactly now: a certificate within a threshold gets the notice of the
*nearest* threshold it is within, unless that one or a nearer one was already
sent. So a daemon that was down while two thresholds passed sends one notice
(the nearer), not one per missed threshold, and a daemon that was up sends
each in turn.

The notice names the serial, the reference and how to renew: reply in the
thread with a new signed form and a new CSR (:data:`intake.app.decide.Route.RENEWAL`
judges it as a new application); the form is attached prefilled with the
application's values.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.app.replies import Replies, now_utc
from intake.app.services import Services
from intake.app.states import RESTRICTABLE
from intake.store.models import Application, CertificateNotice, IssuedCertificateRow
from rules.workflow import Role, WorkflowConfig, field_value

log = logging.getLogger(__name__)

TEMPLATE = "certificate-expiry"


@dataclass(frozen=True)
class SentNotice:
    """A notice queued in a period (for the digest): what, for whom, when."""

    reference: str
    serial_hex: str
    threshold_days: int
    not_after: datetime
    recipient: str
    queued_at: datetime


def due_threshold(thresholds: tuple[int, ...], not_after: datetime, now: datetime) -> int | None:
    """The nearest threshold (in days) ``not_after`` is within at ``now``; None if none."""
    left = not_after - now
    due = [t for t in thresholds if left <= timedelta(days=t)]
    return min(due) if due else None


def renewal_form(workflow: WorkflowConfig | None, app: Application) -> tuple[str, str, bytes] | None:
    """The workflow's form filled with the application's values, or None for a form-less one."""
    if workflow is None or not workflow.needs_form:
        return None
    from intake.forms.fill import fill_form
    from intake.forms.render import render_form

    values = {k: str(v) for k, v in (app.form_values or {}).items() if v not in (None, "")}
    try:
        pdf = fill_form(render_form(workflow, language=app.language), values)
    except Exception:  # a form that cannot be prefilled: the notice goes without it
        log.exception("%s: the renewal form could not be prefilled", app.reference)
        return None
    return (f"{app.reference}-renewal.pdf", "application/pdf", pdf)


def queue_expiry_notices(rt: Services, s: Session, *, now: datetime | None = None) -> int:
    """Queue the expiry notices that are due and not yet sent; the number queued."""
    thresholds = rt.config.ca.expiry_notice_days
    if not thresholds:
        return 0
    now = now or now_utc()
    query = select(IssuedCertificateRow).where(
        IssuedCertificateRow.revoked_at.is_(None),
        IssuedCertificateRow.not_after > now,
        IssuedCertificateRow.not_after <= now + timedelta(days=max(thresholds)),
    ).order_by(IssuedCertificateRow.not_after, IssuedCertificateRow.id)
    if s.get_bind().dialect.name == "postgresql":
        # Two sweeps at once (two daemons) share the certificates, never one twice.
        query = query.with_for_update(skip_locked=True)
    replies = Replies(rt.config)
    queued = 0
    for cert in s.scalars(query).all():
        threshold = due_threshold(thresholds, cert.not_after, now)
        if threshold is None:
            continue
        sent = set(s.scalars(select(CertificateNotice.threshold_days).where(
            CertificateNotice.certificate_id == cert.id)))
        if any(t <= threshold for t in sent):
            continue
        app = s.get(Application, cert.application_id)
        if app is None or app.state not in RESTRICTABLE:
            continue
        workflow = rt.config.workflow(app.workflow)
        to = (field_value(workflow, app.form_values, Role.CONTACT_EMAIL)
              or app.applicant_email).strip().lower()
        form = renewal_form(workflow, app)
        days_left = max(1, math.ceil((cert.not_after - now) / timedelta(days=1)))
        row = replies.queue(
            s, key=f"cert-expiry:{cert.id}:{threshold}", to=to, template=TEMPLATE, app=app,
            language=app.language, in_reply_to=app.thread_root,
            references=(app.thread_root,) if app.thread_root else (),
            kind="notice", auto_submitted="auto-generated",
            context={"serial": cert.serial_hex.upper(), "certificate_subject": cert.subject,
                     "not_after": f"{cert.not_after:%Y-%m-%d}", "days_left": days_left,
                     "threshold_days": threshold,
                     "form_name": form[0] if form else "form"},
            attachments=(form,) if form else (),
        )
        s.add(CertificateNotice(certificate_id=cert.id, threshold_days=threshold, recipient=to,
                                message_id=row.message_id if row is not None else None,
                                queued_at=now))
        s.flush()
        if row is not None:
            queued += 1
        log.info("%s: expiry notice (%d days) for certificate serial %s queued to %s%s",
                 app.reference, threshold, cert.serial_hex, to,
                 "" if row is not None else " (address unusable: recorded for staff)")
    return queued


def send_expiry_notices(rt: Services, *, now: datetime | None = None) -> int:
    """The scheduled sweep in a transaction of its own."""
    with rt.store.session() as s:
        return queue_expiry_notices(rt, s, now=now)


def notices_sent(s: Session, since: datetime, until: datetime | None = None) -> list[SentNotice]:
    """The expiry notices queued in ``[since, until)``, oldest first (the digest lists them)."""
    query = (select(CertificateNotice, IssuedCertificateRow, Application)
             .join(IssuedCertificateRow, CertificateNotice.certificate_id == IssuedCertificateRow.id)
             .join(Application, IssuedCertificateRow.application_id == Application.id)
             .where(CertificateNotice.queued_at >= since)
             .order_by(CertificateNotice.queued_at, CertificateNotice.id))
    if until is not None:
        query = query.where(CertificateNotice.queued_at < until)
    return [
        SentNotice(reference=app.reference, serial_hex=cert.serial_hex,
                   threshold_days=notice.threshold_days, not_after=cert.not_after,
                   recipient=notice.recipient, queued_at=notice.queued_at)
        for notice, cert, app in s.execute(query).all()
    ]
