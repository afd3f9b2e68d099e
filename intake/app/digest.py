"""The staff digest: what waits for a person, in one mail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from intake.app.bound import WAITING
from intake.app.replies import Replies, now_utc
from intake.app.services import Services
from intake.app.steering import digest_rows
from intake.display import safe
from intake.store.models import Application, IssuedCertificateRow, Outbox, ReceivedMessage
from rules.workflow import Role, field_value

EXPIRY_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class Digest:
    sections: tuple[tuple[str, tuple[str, ...]], ...]
    text: str
    html: str


def collect(rt: Services) -> tuple[tuple[str, tuple[str, ...]], ...]:
    now = now_utc()
    with rt.store.session() as s:
        def apps(*states: str, workflow: str | None = None) -> tuple[str, ...]:
            q = select(Application).where(Application.state.in_(states)).order_by(Application.id)
            if workflow:
                q = q.where(Application.workflow == workflow)
            return tuple(
                f"{a.reference}  {a.workflow}  "
                f"{field_value(rt.config.workflow(a.workflow), a.form_values, Role.ORG_NAME) or a.applicant_email}"
                + (f"  (since {a.updated_at:%Y-%m-%d})" if a.updated_at else "")
                for a in s.scalars(q)
                if workflow or a.workflow != "consultation"
            )

        warnings = tuple(
            f"{a.reference}  {a.extra['verification_warning']}"
            for a in s.scalars(select(Application).order_by(Application.id))
            if (a.extra or {}).get("verification_warning")
        )
        expiring = tuple(
            f"{c.serial_hex[:16]}…  {c.subject}  expires {c.not_after:%Y-%m-%d}"
            for c in s.scalars(select(IssuedCertificateRow).where(
                IssuedCertificateRow.revoked_at.is_(None),
                IssuedCertificateRow.not_after <= now + EXPIRY_WINDOW,
            ).order_by(IssuedCertificateRow.not_after))
        )
        undeliverable = tuple(
            f"{a.reference}  {a.extra['undeliverable'].get('address')}  "
            f"{str(a.extra['undeliverable'].get('reason') or '')[:80]}"
            for a in s.scalars(select(Application).order_by(Application.id))
            if (a.extra or {}).get("undeliverable")
        )
        quarantined = tuple(
            f"ledger #{m.id}  {m.mailbox}  {m.sender}  {m.subject or ''}  {(m.last_error or '')[:80]}"
            for m in s.scalars(select(ReceivedMessage).where(
                ReceivedMessage.status == "quarantined").order_by(ReceivedMessage.id))
        )
        failed = tuple(
            f"{o.message_id}  to {', '.join(o.recipients)}  {(o.last_error or '')[:80]}"
            for o in s.scalars(select(Outbox).where(Outbox.status == "failed").order_by(Outbox.id))
        ) + tuple(
            # Sent, but a PEC receipt says it did not reach the applicant (SPEC section 2).
            f"{o.message_id}  to {', '.join(o.recipients)}  PEC "
            + ", ".join(str(r.get("kind")) for r in o.pec_receipts or [])
            for o in s.scalars(select(Outbox).where(Outbox.pec_status == "failed")
                               .order_by(Outbox.id))
        )

        held, refused = digest_rows(s)
        waiting = tuple(
            f"{o.message_id}  to {', '.join(o.recipients)}  "
            f"{o.application.reference if o.application else '(no application)'}  "
            f"queued {o.created_at:%Y-%m-%d %H:%M}"
            for o in s.scalars(select(Outbox).where(Outbox.status == WAITING).order_by(Outbox.id))
        )
        sections = (
            ("Applications waiting for staff review", apps("in-review")),
            ("Changes held for the contact's confirmation", held),
            ("Requests refused (NEW LINK, confirmation links)", refused),
            ("Open questions (consultation)", apps("received", "in-review", workflow="consultation")),
            ("Addresses verified for another person", warnings),
            ("Certificates expiring within 30 days", expiring),
            ("Quarantined messages", quarantined),
            ("Replies that could not be delivered", failed),
            ("Answers waiting for the per-recipient bound (smtp.rate_limit_per_hour)", waiting),
            ("Applicants no reply can be written to", undeliverable),
        )
        # Organisation names, senders, subjects and errors come from mail: the
        # text digest (and the HTML beside it) shows their control characters
        # escaped, so a row is one row.
        return tuple((title, tuple(safe(row) for row in rows)) for title, rows in sections)


def build_digest(rt: Services) -> Digest:
    from mailer.compose import ReplySpec, compose

    sections = collect(rt)
    msg = compose(ReplySpec(
        to=rt.config.smtp.sender, sender=rt.config.smtp.sender, template="digest",
        language=rt.config.daemon.language, message_id="<digest-preview@localhost>",
        context={"sections": [(title, list(rows)) for title, rows in sections]},
        auto_submitted="auto-generated", date=now_utc(),
    ))
    text_part = msg.get_body(("plain",))
    html_part = msg.get_body(("html",))
    text = text_part.get_content() if text_part is not None else ""
    html = html_part.get_content() if html_part is not None else ""
    return Digest(sections, text, html)


def queue_digest(rt: Services, digest: Digest | None = None) -> None:
    digest = digest or build_digest(rt)
    stamp = now_utc().strftime("%Y-%m-%dT%H:%M")
    with rt.store.session() as s:
        for recipient in rt.config.digest.recipients:
            Replies(rt.config).queue(
                s, key=f"digest:{stamp}:{recipient}", to=recipient, template="digest", app=None,
                language=rt.config.daemon.language, kind="digest",
                auto_submitted="auto-generated",
                context={"sections": [(t, list(r)) for t, r in digest.sections]},
            )


