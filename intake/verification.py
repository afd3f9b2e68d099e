"""E-mail verification (SPEC section 6): single-use links valid ``ttl_hours``.

A link carries 256 random bits; only their SHA-256 is stored and the lookup
is by that hash, compared again in constant time. Opening a link (GET) only
shows a confirmation page, so mail scanners that pre-fetch links verify
nothing; the POST from that page verifies. Expiry is enforced when a link is
used and by the scheduled sweep (:meth:`Verification.expire_due`).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import unicodedata
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.config import Config
from intake.mime import ParsedMail
from intake.models import Application, ReceivedMessage, VerificationToken, VerifiedAddress
from intake.service import Replies, now_utc, transition

log = logging.getLogger(__name__)

NEW_LINK_WORDS = ("NEW LINK", "JAUNA SAITE", "NUOVO LINK")


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def person_key(app: Application) -> str:
    """Whose address it is: the contact person named on the form."""
    values = app.form_values or {}
    name = (values.get("contact_name") or "").strip()
    if name:
        return unicodedata.normalize("NFC", " ".join(name.split())).casefold()
    signer = app.signer or {}
    return str(signer.get("personal_code") or app.applicant_email)


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
        email = ((app.form_values or {}).get("contact_email") or "").strip().lower()
        if not email:
            return False
        person = person_key(app)
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
                                            VerificationToken.status == "pending")
        ):
            old.status = "superseded"
        other = s.scalars(
            select(VerifiedAddress).where(VerifiedAddress.email == email,
                                          VerifiedAddress.person != person)
        ).first()
        token = secrets.token_urlsafe(32)
        now = now_utc()
        row = VerificationToken(
            application_id=app.id, email=email, person=person, token_hash=hash_token(token),
            created_at=now, expires_at=now + self.config.verification.ttl,
            other_person=other is not None,
        )
        s.add(row)
        s.flush()
        if app.state != "awaiting-verification":
            transition(s, app, "awaiting-verification",
                       reason=f"verification link sent to {email}")
        url = f"{self.config.verification.public_url}/verify/{token}"
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

    def wants_new_link(self, mail: ParsedMail, app: Application) -> bool:
        subject = mail.subject.upper()
        return app.state in ("awaiting-verification", "verification-expired") and any(
            w in subject for w in NEW_LINK_WORDS
        )

    def resend(self, s: Session, row: ReceivedMessage, mail: ParsedMail, app: Application) -> Any:
        from intake.decide import Outcome
        from intake.service import link_mail

        email = ((app.form_values or {}).get("contact_email") or "").strip().lower()
        link_mail(s, app, mail.message_id, "in", "new verification link asked")
        self.issue(s, app, email, person_key(app), in_reply_to=mail.message_id,
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
                                            VerificationToken.status == "pending")
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

    def expire_due(self, s: Session) -> int:
        """The scheduled sweep: expire every pending link past its time."""
        due = s.scalars(
            select(VerificationToken).where(VerificationToken.status == "pending",
                                            VerificationToken.expires_at <= now_utc())
        ).all()
        for row in due:
            self.expire(s, row)
        return len(due)
