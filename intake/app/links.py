"""E-mail verification (SPEC section 6): single-use links valid ``ttl_hours``.

A link carries 256 random bits; only their SHA-256 is stored and the lookup
is by that hash, compared again in constant time. Opening a link (GET) only
shows a confirmation page, so mail scanners that pre-fetch links verify
nothing; the POST from that page verifies. Expiry is enforced when a link is
used and by the scheduled sweep (:meth:`Verification.expire_due`).
"""

from __future__ import annotations

import hmac
import logging
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.app.authentication import sender_authenticated
from intake.app.backscatter import answers_anchored
from intake.app.outcome import Outcome
from intake.app.replies import Replies, link_mail, now_utc, transition
from intake.app.steering import Steering, link_allowed, note_refused
from intake.app.tokens import LINK_PLACEHOLDER, hash_token, link_key, link_token, person_key
from intake.config import Config
from intake.errors import DeliveryError
from intake.mime.types import ParsedMail
from intake.store.models import (
    Application,
    Outbox,
    ReceivedMessage,
    VerificationToken,
    VerifiedAddress,
)
from mailer.compose import fill_in
from rules.workflow import Role, field_value

log = logging.getLogger(__name__)

NEW_LINK_WORDS = ("NEW LINK", "JAUNA SAITE", "NUOVO LINK")


@dataclass(frozen=True)
class LinkState:
    """What a link is, for the web page: unknown, used, expired, or pending."""

    state: str
    token: VerificationToken | None = None
    reference: str | None = None


class Verification:
    def __init__(self, config: Config, replies: Replies):
        self.config = config
        self.replies = replies

    # -- starting -----------------------------------------------------------

    def start(self, s: Session, app: Application, row: ReceivedMessage, mail: ParsedMail) -> bool:
        """Send a link for an unverified contact address; True if the application now waits."""
        if not self.config.verification.required:
            return False
        email = field_value(self.config.workflow(app.workflow), app.form_values,
                            Role.CONTACT_EMAIL).lower()
        if not email:
            return False
        person = person_key(app, self.config.workflow(app.workflow))
        done = s.scalars(
            select(VerifiedAddress).where(VerifiedAddress.email == email,
                                          VerifiedAddress.person == person)
        ).first()
        if done is not None:
            return False
        self.issue(s, app, email, person, in_reply_to=mail.message_id,
                   references=mail.references, subject=mail.subject)
        if mail.reply_address != email:
            # The applicant hears where the link went, in the thread.
            self.replies.queue(
                s, key=f"in:{row.id}", to=mail.reply_address, template="status", app=app,
                language=app.language, original_subject=mail.subject,
                in_reply_to=mail.message_id, references=mail.references, rate_limit=True,
                trusted=answers_anchored(mail, app),
            )
        return True

    def issue(self, s: Session, app: Application, email: str, person: str, *,
              in_reply_to: str | None, references: Any, subject: str) -> str:
        """Create a fresh link (superseding open ones) and queue the mail with it."""
        # Every open link of the application is superseded, not only those for
        # this address: a resubmission may name another contact, and the
        # application waits on its current contact alone. A link left open for
        # the old address would keep it from going to review when the new one
        # is confirmed, and would later "expire" it.
        for old in s.scalars(
            select(VerificationToken).where(VerificationToken.application_id == app.id,
                                            VerificationToken.status == "pending",
                                            VerificationToken.purpose == "verify")
        ):
            old.status = "superseded"
        other = s.scalars(
            select(VerifiedAddress).where(VerifiedAddress.email == email,
                                          VerifiedAddress.person != person)
        ).first()
        now = now_utc()
        row = VerificationToken(
            application_id=app.id, email=email, person=person,
            # A stand-in no presented token can match, until the row has its id.
            token_hash=secrets.token_hex(32),
            created_at=now, expires_at=now + self.config.verification.ttl,
            other_person=other is not None,
        )
        s.add(row)
        s.flush()
        token = link_token(link_key(self.config), row)
        row.token_hash = hash_token(token)
        if app.state != "awaiting-verification":
            transition(s, app, "awaiting-verification",
                       reason=f"verification link sent to {email}")
        # The outbox row holds the placeholder; the sender puts the token in.
        url = f"{self.config.verification.public_url}/verify/{LINK_PLACEHOLDER}"
        self.replies.queue(
            s, key=f"verify:{row.id}", to=email, template="verify-email", app=app,
            language=app.language, original_subject=subject, in_reply_to=in_reply_to,
            references=tuple(references or ()), kind="verification",
            auto_submitted="auto-generated",
            context={"verification_url": url, "expires_at": row.expires_at.isoformat(
                timespec="minutes"), "warning_other_person": row.other_person,
                "ttl_hours": self.config.verification.ttl_hours},
        )
        return token

    def outgoing(self, s: Session, row: Outbox) -> bytes:
        """The bytes to send for outbox ``row``: a verification mail gets its live link here.

        The token is derived again from the link's row and the state key, so
        each attempt sends the same bytes. A worker whose key differs from
        the one that issued the link (``daemon.state_dir`` not shared) takes
        the link over with its own token, so the mail it sends works.
        """
        kind, _, token_id = row.key.partition(":")
        # "verify:N" verifies an address, "confirm:N" confirms a held change,
        # "remind:N" reminds of link N before it expires (the same link).
        if (row.kind != "verification" or kind not in ("verify", "confirm", "remind")
                or not token_id.isdigit()):
            return row.raw
        link = s.get(VerificationToken, int(token_id))
        if link is None:
            raise DeliveryError(f"verification mail {row.key} has no link row", permanent=True)
        try:
            key = link_key(self.config)
        except OSError as exc:
            raise DeliveryError(f"cannot read the verification-link key: {exc}") from exc
        token = link_token(key, link)
        if link.token_hash != hash_token(token):
            log.warning("%s: link %d was issued under another daemon.state_dir key; it is "
                        "re-keyed by this worker", row.key, link.id)
            link.token_hash = hash_token(token)
        try:
            return fill_in(row.raw, LINK_PLACEHOLDER, token)
        except ValueError:
            # Queued before links were filled in at send time: it holds its link.
            return row.raw

    def wants_new_link(self, mail: ParsedMail, app: Application) -> bool:
        subject = mail.subject.upper()
        return app.state in ("awaiting-verification", "verification-expired") and any(
            w in subject for w in NEW_LINK_WORDS
        )

    def resend(self, s: Session, row: ReceivedMessage, mail: ParsedMail, app: Application) -> Any:
        """``NEW LINK``: only from the contact's own address or an authenticated sender,
        and at most ``verification.max_links_per_day`` link mails a day; otherwise the
        open link stays as it is, the request is counted for staff, the status is the answer."""

        email = field_value(self.config.workflow(app.workflow), app.form_values,
                            Role.CONTACT_EMAIL).lower()
        refusal = None
        if mail.reply_address != email:
            auth = sender_authenticated(self.config, s, row, mail, app)
            if not auth.ok:
                refusal = f"not the contact's address and not authenticated ({auth.how})"
        if refusal is None and not link_allowed(self.config, s, app):
            refusal = (f"already {self.config.verification.max_links_per_day} link mails in "
                       "24 hours (verification.max_links_per_day)")
        if refusal is not None:
            note_refused(app, "NEW LINK", mail.reply_address, refusal)
            link_mail(s, app, mail.message_id, "in", f"new verification link refused: {refusal}")
            self.replies.queue(
                s, key=f"in:{row.id}", to=mail.reply_address, template="status", app=app,
                language=app.language, original_subject=mail.subject,
                in_reply_to=mail.message_id, references=mail.references, rate_limit=True)
            return Outcome("processed", f"{app.reference}: new link refused: {refusal}", app.id)
        link_mail(s, app, mail.message_id, "in", "new verification link asked")
        self.issue(s, app, email, person_key(app, self.config.workflow(app.workflow)), in_reply_to=mail.message_id,
                   references=mail.references, subject=mail.subject)
        return Outcome("processed", f"{app.reference}: new verification link sent", app.id)

    # -- using a link --------------------------------------------------------

    def lookup(self, s: Session, token: str) -> LinkState:
        digest = hash_token(token)
        row = s.scalars(select(VerificationToken).where(VerificationToken.token_hash == digest)).first()
        if row is None or not hmac.compare_digest(row.token_hash, digest):
            return LinkState("unknown")
        app = s.get(Application, row.application_id)
        ref = app.reference if app else None
        if row.status == "verified":
            return LinkState("used", row, ref)
        if row.status == "superseded":
            return LinkState("superseded", row, ref)
        if row.status == "expired" or row.expires_at <= now_utc():
            return LinkState("expired", row, ref)
        return LinkState("pending", row, ref)

    def confirm(self, s: Session, token: str, *, confirmed_other_person: bool) -> LinkState:
        """POST: verify the address. Expiry is enforced here as well as by the sweep."""
        state = self.lookup(s, token)
        if state.state == "expired" and state.token is not None:
            self.expire(s, state.token)
            return state
        if state.state != "pending" or state.token is None:
            return state
        row = state.token
        if row.purpose == "confirm":

            Steering(self.config, self.replies).confirm(s, row, self)
            log.info("%s: held change confirmed by %s", state.reference, row.email)
            return LinkState("verified", row, state.reference)
        if row.other_person and not confirmed_other_person:
            return LinkState("needs-confirmation", row, state.reference)
        row.status = "verified"
        row.used_at = now_utc()
        s.add(VerifiedAddress(email=row.email, person=row.person, application_id=row.application_id))
        app = s.get(Application, row.application_id)
        assert app is not None
        extra = dict(app.extra or {})
        if row.other_person:
            # Staff see this in the digest.
            extra["verification_warning"] = f"{row.email} was verified for another person"
            app.extra = extra
        open_tokens = s.scalars(
            select(VerificationToken).where(VerificationToken.application_id == app.id,
                                            VerificationToken.status == "pending",
                                            VerificationToken.purpose == "verify")
        ).all()
        if app.state == "awaiting-verification" and not open_tokens:
            transition(s, app, "in-review", actor=f"link:{row.email}",
                       reason=f"{row.email} verified")
            self.replies.queue(
                s, key=f"verified:{row.id}", to=app.applicant_email, template="in-review",
                app=app, language=app.language, in_reply_to=app.thread_root,
                references=(app.thread_root,) if app.thread_root else (),
            )
        log.info("%s: %s verified", app.reference, row.email)
        return LinkState("verified", row, app.reference)

    # -- expiry ---------------------------------------------------------------

    def expire(self, s: Session, row: VerificationToken) -> None:
        if row.status != "pending":
            return
        if row.purpose == "confirm":

            Steering(self.config, self.replies).expire(s, row)
            return
        row.status = "expired"
        app = s.get(Application, row.application_id)
        if app is None:
            return
        if app.state == "awaiting-verification":
            transition(s, app, "verification-expired",
                       reason=f"link for {row.email} expired unused")
            self.replies.queue(
                s, key=f"expired:{row.id}", to=app.applicant_email,
                template="verification-expired", app=app, language=app.language,
                in_reply_to=app.thread_root,
                references=(app.thread_root,) if app.thread_root else (),
                context={"request_hint": f"NEW LINK [{app.reference}]"},
            )

    def remind_due(self, s: Session) -> int:
        """The scheduled sweep: remind of every pending link due a reminder and not reminded.

        Due means expiring within ``verification.remind_hours_before`` and not
        yet expired; a link issued with no more time than that left gets none
        (its first mail says as much). ``reminded_at`` is set in the
        transaction that queues the mail, so a link is reminded of once, on
        whichever run first finds it due: after a downtime the run that
        comes back sends what fell due meanwhile, once. On PostgreSQL the due
        rows are locked (``SKIP LOCKED``), so two sweeps at once share them.
        """
        before = self.config.verification.remind_before
        if before is None:
            return 0
        now = now_utc()
        query = select(VerificationToken).where(
            VerificationToken.status == "pending", VerificationToken.purpose == "verify",
            VerificationToken.reminded_at.is_(None),
            VerificationToken.expires_at > now, VerificationToken.expires_at <= now + before,
        ).order_by(VerificationToken.id)
        if s.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        sent = 0
        for link in s.scalars(query).all():
            if link.expires_at - link.created_at <= before:
                continue
            app = s.get(Application, link.application_id)
            link.reminded_at = now
            if app is None or app.state != "awaiting-verification":
                continue
            key = f"remind:{link.id}"
            if s.scalars(select(Outbox.id).where(Outbox.key == key)).first() is not None:
                continue  # queued by a sweep that did not get to commit reminded_at
            url = f"{self.config.verification.public_url}/verify/{LINK_PLACEHOLDER}"
            queued = self.replies.queue(
                s, key=key, to=link.email, template="verify-reminder", app=app,
                language=app.language, in_reply_to=app.thread_root,
                references=(app.thread_root,) if app.thread_root else (),
                kind="verification", auto_submitted="auto-generated",
                context={"verification_url": url,
                         "expires_at": link.expires_at.isoformat(timespec="minutes"),
                         "request_hint": f"NEW LINK [{app.reference}]"},
            )
            if queued is not None:
                sent += 1
                log.info("%s: reminder queued for link %d to %s (expires %s)", app.reference,
                         link.id, link.email, link.expires_at.isoformat(timespec="minutes"))
        return sent

    def expire_due(self, s: Session) -> int:
        """The scheduled sweep: expire every pending link past its time."""
        due = s.scalars(
            select(VerificationToken).where(VerificationToken.status == "pending",
                                            VerificationToken.expires_at <= now_utc())
        ).all()
        for row in due:
            self.expire(s, row)
        return len(due)
