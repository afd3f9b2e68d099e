"""No one steers another's application: which mail may change one, and the rest held.

A ``From:`` header proves nothing, and a thread's Message-IDs or a reference
are no secret from whoever was copied in. So a resubmission changes an
application only when the mail is *authenticated*:

* it carries a newly signed form: a signature without problems, time-stamped
  after the application's last change, by a representative of the
  application's organisation in the registry; or
* the receiving server's ``Authentication-Results`` (RFC 8601; the one whose
  ``authserv-id`` is ``[[mailbox]] authserv_id``) says ``dmarc=pass`` for the
  domain of a ``From:`` address that is one of the application's addresses; or
* its PEC provider, trusted under ``signing.pec_anchors``, certifies one of the
  application's addresses as its sender (those three: :mod:`intake.app.authentication`).

Anything else is *held*: recorded as a :class:`~intake.store.models.HeldChange`
and applied only when the application's contact confirms it through a
single-use link (the e-mail verification machinery: the link's token is put
in when the mail is sent). A new CSR key is always confirmed so, whoever
sends it. Link mails per application are bounded
(``verification.max_links_per_day``), whatever asks for them.
"""

from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake.app.authentication import sender_authenticated
from intake.app.outcome import Outcome, csr_record
from intake.app.replies import (
    Replies,
    link_mail,
    now_utc,
    transition,
)
from intake.app.states import RESUBMITTABLE
from intake.app.tokens import LINK_PLACEHOLDER, hash_token, link_key, link_token, person_key
from intake.config import Config
from intake.mime.types import ParsedMail
from intake.store.models import (
    Application,
    HeldChange,
    ReceivedMessage,
    VerificationToken,
    VerifiedAddress,
)
from rules import Finding
from rules.workflow import Role, WorkflowConfig, field_value

log = logging.getLogger(__name__)

#: At most this many CSR keys are kept in an application's history.
MAX_CSR_HISTORY = 50


def csr_fingerprint(app: Application) -> str | None:
    return (((app.verdicts or {}).get("csr") or {}).get("public_key_sha256")) or None


def proposal(app: Application, sub: Any) -> tuple[dict[str, Any], bytes | None]:
    """What judging ``sub`` sets on ``app`` (JSON-able), and the CSR's DER."""

    case = sub.case
    judgement = sub.judgement
    values: dict[str, Any] = {}
    if case.workflow is not None:
        values["workflow"] = case.workflow.id
        if case.workflow.language:
            values["language"] = case.workflow.language
    values["form_values"] = dict(case.fields) if case.fields else dict(app.form_values or {})
    values["form_sha256"] = sub.form_sha256
    from intake.pipeline import signer_to_record

    values["signer"] = signer_to_record(getattr(case.verdict, "signer", None))
    values["verdicts"] = {"signature": sub.verdict_record, "csr": csr_record(case.csr),
                          "form_error": case.form_error}
    if getattr(sub, "pec_record", None) is not None:
        # The PEC envelope it came in: transport evidence beside the verdicts.
        values["verdicts"]["pec"] = sub.pec_record
    values["codes"] = list(judgement.codes)
    values["passed"] = list(judgement.passed)
    values["findings"] = [[f.code, f.detail] for f in judgement.findings]
    addresses = list(app.addresses or [])
    contact = field_value(case.workflow, case.fields, Role.CONTACT_EMAIL).lower()
    if contact and contact not in addresses:
        addresses.append(contact)
    values["addresses"] = addresses
    der = case.csr.der if case.csr is not None and getattr(case.csr, "der", None) else None
    return values, der


def apply_proposal(app: Application, values: dict[str, Any], csr_der: bytes | None, *,
                   source: str) -> None:
    """Set what a judged (or confirmed) resubmission changes; the CSR key goes in its history."""
    before = csr_fingerprint(app)
    for key in ("workflow", "language"):
        if key in values:
            setattr(app, key, values[key])
    if values.get("form_values"):
        app.form_values = dict(values["form_values"])
    app.form_sha256 = values.get("form_sha256")
    app.signer = values.get("signer")
    app.verdicts = dict(values.get("verdicts") or {})
    app.codes = list(values.get("codes") or [])
    app.passed = list(values.get("passed") or [])
    if csr_der:
        app.csr_der = csr_der
    app.addresses = list(values.get("addresses") or app.addresses or [])
    after = csr_fingerprint(app)
    if after and after != before:
        record_csr(app, after, source)


def record_csr(app: Application, fingerprint: str, source: str) -> None:
    """Note a CSR key on the application's history (``pasts show``, ``pasts approve``)."""
    extra = dict(app.extra or {})
    history = list(extra.get("csr_history") or [])
    history.append({"at": now_utc().isoformat(timespec="seconds"),
                    "public_key_sha256": fingerprint, "source": source[:300]})
    extra["csr_history"] = history[-MAX_CSR_HISTORY:]
    app.extra = extra


def changes(app: Application, values: dict[str, Any], csr_der: bytes | None) -> list[str]:
    """What ``values`` would change on ``app``, in words (empty: nothing)."""
    said: list[str] = []
    if values.get("form_sha256") != app.form_sha256:
        said.append("the form")
    new_fp = ((values.get("verdicts") or {}).get("csr") or {}).get("public_key_sha256")
    if csr_der and new_fp and new_fp != csr_fingerprint(app):
        said.append("the certificate request (CSR)")
    if set(values.get("addresses") or []) - set(app.addresses or []):
        said.append("the addresses of the application")
    if list(values.get("codes") or []) != list(app.codes or []) and not said:
        said.append("the open problems")
    return said


def csr_changes(app: Application, values: dict[str, Any], csr_der: bytes | None) -> bool:
    new_fp = ((values.get("verdicts") or {}).get("csr") or {}).get("public_key_sha256")
    old_fp = csr_fingerprint(app)
    return bool(csr_der and new_fp and old_fp and new_fp != old_fp)


# -- links: who may have one, and how many -------------------------------------------


def links_today(s: Session, app: Application) -> int:
    """Link mails (verification and confirmation) the application had in 24 hours."""
    since = now_utc() - timedelta(hours=24)
    return int(s.scalar(select(func.count(VerificationToken.id)).where(
        VerificationToken.application_id == app.id,
        VerificationToken.created_at >= since)) or 0)


def link_allowed(config: Config, s: Session, app: Application) -> bool:
    return links_today(s, app) < config.verification.max_links_per_day


def note_refused(app: Application, what: str, sender: str, why: str) -> None:
    """Count a refused request on the application, for staff (``pasts show``, digest)."""
    extra = dict(app.extra or {})
    refused = dict(extra.get("refused") or {})
    entry = dict(refused.get(what) or {"count": 0})
    entry["count"] = int(entry.get("count", 0)) + 1
    entry["last"] = {"at": now_utc().isoformat(timespec="seconds"), "from": sender[:320],
                     "why": why[:300]}
    refused[what] = entry
    extra["refused"] = refused
    app.extra = extra
    log.warning("%s: %s from %r refused: %s", app.reference, what, sender, why)


def contact_address(s: Session, app: Application, workflow: WorkflowConfig | None) -> str:
    """Who confirms changes: the address verified for the application, else its contact."""
    verified = s.scalars(select(VerificationToken.email).where(
        VerificationToken.application_id == app.id, VerificationToken.status == "verified",
        VerificationToken.purpose == "verify").order_by(VerificationToken.id.desc())).first()
    if verified:
        return str(verified)
    contact = field_value(workflow, app.form_values, Role.CONTACT_EMAIL).lower()
    return contact or app.applicant_email


def contact_verified(s: Session, app: Application, workflow: WorkflowConfig | None) -> bool:
    """Whether the application has a verified contact (who must confirm a new CSR key)."""

    if s.scalars(select(VerificationToken.id).where(
            VerificationToken.application_id == app.id, VerificationToken.status == "verified",
            VerificationToken.purpose == "verify")).first() is not None:
        return True
    contact = field_value(workflow, app.form_values, Role.CONTACT_EMAIL).lower()
    return bool(contact) and s.scalars(select(VerifiedAddress.id).where(
        VerifiedAddress.email == contact, VerifiedAddress.person == person_key(app, workflow))).first() \
        is not None


def supersede_held(s: Session, app: Application) -> None:
    """Changes still held for ``app`` are replaced (a newer mail came); their links die."""
    for old in s.scalars(select(HeldChange).where(HeldChange.application_id == app.id,
                                                  HeldChange.status == "held")):
        old.status = "superseded"
        old.decided_at = now_utc()
        for tok in s.scalars(select(VerificationToken).where(
                VerificationToken.change_id == old.id, VerificationToken.status == "pending")):
            tok.status = "superseded"


# -- holding and confirming ------------------------------------------------------------


class Steering:
    """Holds unauthenticated resubmissions and applies them once confirmed."""

    def __init__(self, config: Config, replies: Replies):
        self.config = config
        self.replies = replies

    def gate(self, s: Session, row: ReceivedMessage, mail: ParsedMail, app: Application,
             sub: Any) -> Any:
        """None if the resubmission ``sub`` may change ``app`` now; else the Outcome of holding it."""

        values, der = proposal(app, sub)
        said = changes(app, values, der)
        auth = sender_authenticated(self.config, s, row, mail, app, sub)
        if auth.ok and not (csr_changes(app, values, der)
                            and contact_verified(s, app, self.config.workflow(app.workflow))):
            # A new CSR key is confirmed by the verified contact; where no one is
            # verified yet, the contact verification that follows confirms it.
            log.info("%s: resubmission %s authenticated: %s", app.reference, mail.message_id,
                     auth.how)
            # Confirming an older held change later would undo this one.
            supersede_held(s, app)
            return None
        if not said:
            # The same form and CSR again: nothing to change, the status is the answer.
            link_mail(s, app, mail.message_id, "in", "resubmission without changes")
            self.replies.queue(
                s, key=f"in:{row.id}", to=mail.reply_address, template="status", app=app,
                language=app.language, findings=[Finding(c) for c in app.codes or []],
                original_subject=mail.subject, in_reply_to=mail.message_id,
                references=mail.references, rate_limit=True)
            return Outcome("processed", f"{app.reference}: resubmission changes nothing", app.id)
        reason = auth.how if not auth.ok else f"a new CSR key ({auth.how})"
        return self.hold(s, row, mail, app, values, der, reason=reason, said=said)

    def hold(self, s: Session, row: ReceivedMessage, mail: ParsedMail, app: Application,
             values: dict[str, Any], der: bytes | None, *, reason: str, said: list[str]) -> Any:

        supersede_held(s, app)
        new_fp = ((values.get("verdicts") or {}).get("csr") or {}).get("public_key_sha256")
        change = HeldChange(
            application_id=app.id, received_id=row.id, message_id=mail.message_id,
            sender=mail.reply_address[:320], subject=mail.subject[:2000],
            reason=f"{reason}; it changes {', '.join(said)}", proposed=values, csr_der=der,
            status="held",
        )
        s.add(change)
        s.flush()
        link_mail(s, app, mail.message_id, "in", f"resubmission held (#{change.id}): {reason}")
        contact = contact_address(s, app, self.config.workflow(app.workflow))
        confirm_to: str | None = None
        if link_allowed(self.config, s, app):
            now = now_utc()
            token = VerificationToken(
                application_id=app.id, email=contact, person="", purpose="confirm",
                change_id=change.id, token_hash=secrets.token_hex(32),
                created_at=now, expires_at=now + self.config.verification.ttl)
            s.add(token)
            s.flush()
            token.token_hash = hash_token(link_token(link_key(self.config), token))
            url = f"{self.config.verification.public_url}/verify/{LINK_PLACEHOLDER}"
            self.replies.queue(
                s, key=f"confirm:{token.id}", to=contact, template="confirm-change", app=app,
                language=app.language, original_subject=mail.subject,
                # In the thread of the held mail: to its sender, this is the answer.
                in_reply_to=mail.message_id or app.thread_root,
                references=tuple(mail.references) or
                ((app.thread_root,) if app.thread_root else ()),
                kind="verification", auto_submitted="auto-generated",
                context={"confirm_url": url, "held_from": mail.reply_address,
                         "changes": ", ".join(said), "csr_fingerprint": new_fp if der else None,
                         "expires_at": token.expires_at.isoformat(timespec="minutes")})
            confirm_to = contact
        else:
            note_refused(app, "confirmation link", mail.reply_address,
                         f"over verification.max_links_per_day for held change #{change.id}")
        if confirm_to != mail.reply_address:
            self.replies.queue(
                s, key=f"in:{row.id}", to=mail.reply_address, template="change-held", app=app,
                language=app.language, original_subject=mail.subject,
                in_reply_to=mail.message_id, references=mail.references, rate_limit=True,
                context={"confirm_to": confirm_to})
        log.warning("%s: resubmission %s from %r held as change #%d: %s", app.reference,
                    mail.message_id, mail.reply_address, change.id, reason)
        return Outcome("processed", f"{app.reference}: resubmission held for confirmation "
                                    f"(#{change.id}): {reason}", app.id)

    def confirm(self, s: Session, token: VerificationToken, verification: Any) -> None:
        """The contact confirmed held change ``token.change_id``: apply it as if judged now."""
        change = s.get(HeldChange, token.change_id) if token.change_id else None
        app = s.get(Application, token.application_id)
        assert app is not None
        token.status = "verified"
        token.used_at = now_utc()
        if change is None or change.status != "held":
            return

        if app.state not in RESUBMITTABLE:
            # Staff decided meanwhile: a late confirmation changes nothing.
            change.status = "stale"
            change.decided_at = now_utc()
            change.decided_by = f"link:{token.email}"
            log.warning("%s: held change #%d confirmed in state %s: not applied",
                        app.reference, change.id, app.state)
            return
        change.status = "confirmed"
        change.decided_at = now_utc()
        change.decided_by = f"link:{token.email}"
        values = dict(change.proposed or {})
        apply_proposal(app, values, change.csr_der,
                       source=f"held change #{change.id} from {change.sender}, "
                              f"confirmed by {token.email}")
        findings = [Finding(code, detail or "") for code, detail in values.get("findings") or []]
        actor = f"link:{token.email}"
        thread = dict(in_reply_to=change.message_id or app.thread_root,
                      references=tuple(r for r in (app.thread_root, change.message_id) if r))
        if findings:
            codes = ", ".join(f.code for f in findings)
            transition(s, app, "incomplete", actor=actor,
                       reason=f"held change #{change.id} confirmed: {codes}")
            template = "form-missing" if "FORM-MISSING" in values.get("codes", []) else "rejected"
            self.replies.queue(
                s, key=f"applied:{change.id}", to=change.sender, template=template, app=app,
                language=app.language, findings=findings, original_subject=change.subject,
                context={"support_address": self.config.daemon.support_address
                         or self.config.smtp.sender}, **thread)  # type: ignore[arg-type]
            return
        contact = field_value(self.config.workflow(app.workflow), app.form_values,
                              Role.CONTACT_EMAIL).lower()
        if contact and self.config.verification.required:

            person = person_key(app, self.config.workflow(app.workflow))
            done = s.scalars(select(VerifiedAddress).where(
                VerifiedAddress.email == contact)).all()
            if not any(v.person == person for v in done):
                if contact == token.email and not done:
                    # The click came from the mail sent to this very address: it
                    # is verified, and a verification link still open is not needed.
                    s.add(VerifiedAddress(email=contact, person=person,
                                          application_id=app.id))
                    for open_link in s.scalars(select(VerificationToken).where(
                            VerificationToken.application_id == app.id,
                            VerificationToken.status == "pending",
                            VerificationToken.purpose == "verify")):
                        open_link.status = "superseded"
                else:
                    verification.issue(s, app, contact, person,
                                       in_reply_to=thread["in_reply_to"],
                                       references=thread["references"],
                                       subject=change.subject)
                    return
        transition(s, app, "in-review", actor=actor,
                   reason=f"held change #{change.id} confirmed")
        self.replies.queue(
            s, key=f"applied:{change.id}", to=change.sender, template="in-review", app=app,
            language=app.language, original_subject=change.subject,
            **thread)  # type: ignore[arg-type]

    def expire(self, s: Session, token: VerificationToken) -> None:
        token.status = "expired"
        change = s.get(HeldChange, token.change_id) if token.change_id else None
        if change is not None and change.status == "held":
            change.status = "expired"
            change.decided_at = now_utc()
            log.info("held change #%d expired unconfirmed", change.id)


def held_changes(s: Session, app: Application) -> list[HeldChange]:
    return list(s.scalars(select(HeldChange).where(HeldChange.application_id == app.id)
                          .order_by(HeldChange.id)))


def held_counts(s: Session) -> dict[int, int]:
    """Application id -> changes held for confirmation (``pasts list``)."""
    rows = s.execute(select(HeldChange.application_id, func.count(HeldChange.id))
                     .where(HeldChange.status == "held")
                     .group_by(HeldChange.application_id)).all()
    return {int(a): int(n) for a, n in rows}


def csr_lines(app: Application) -> list[str]:
    """The CSR key's fingerprint and its history, for ``pasts show`` and ``pasts approve``."""
    if not csr_fingerprint(app) and not (app.extra or {}).get("csr_history"):
        return []
    lines = [f"  csr key:    sha256 {csr_fingerprint(app) or '(none)'}"]
    for entry in (app.extra or {}).get("csr_history") or []:
        lines.append(f"    {entry.get('at')}  sha256 {entry.get('public_key_sha256')}  "
                     f"{entry.get('source')}")
    return lines


def show_steering(s: Session, app: Application, p: Any) -> None:
    """``pasts show``: the CSR key history, held changes and refused requests."""
    for line in csr_lines(app):
        p(line)
    changes_ = held_changes(s, app)
    if changes_:
        p("held changes:")
        for c in changes_:
            fp = ((c.proposed or {}).get("verdicts") or {}).get("csr") or {}
            key = f"; csr key sha256 {fp.get('public_key_sha256')}" if c.csr_der else ""
            p(f"  #{c.id} {c.status:<10} {c.created_at:%Y-%m-%d %H:%M:%S} from {c.sender} "
              f"{c.message_id or ''}: {c.reason}{key}"
              + (f" ({c.decided_by})" if c.decided_by else ""))
    for what, entry in ((app.extra or {}).get("refused") or {}).items():
        last = entry.get("last") or {}
        p(f"  refused {what}: {entry.get('count')} time(s), last {last.get('at')} "
          f"from {last.get('from')}: {last.get('why')}")


def digest_rows(s: Session) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The digest's rows: changes held now, and applications with refused requests."""
    held = tuple(
        f"{app.reference}  #{c.id}  from {c.sender}  {c.reason[:120]}"
        for c, app in s.execute(select(HeldChange, Application)
                                .join(Application, Application.id == HeldChange.application_id)
                                .where(HeldChange.status == "held").order_by(HeldChange.id))
    )
    refused = tuple(
        f"{app.reference}  {what}: {entry.get('count')} time(s), last from "
        f"{(entry.get('last') or {}).get('from')}"
        for app in s.scalars(select(Application).order_by(Application.id))
        for what, entry in ((app.extra or {}).get("refused") or {}).items()
    )
    return held, refused


def approval_notes(s: Session, app: Application) -> list[str]:
    """What ``pasts approve`` says about the key it certifies."""
    history = (app.extra or {}).get("csr_history") or []
    notes: list[str] = []
    if csr_fingerprint(app) or history:
        notes.append(f"CSR key sha256 {csr_fingerprint(app) or '(none)'}"
                     + (f", {len(history)} key(s) on record: "
                        + ", ".join(f"{str(h.get('public_key_sha256'))[:16]}… "
                                    f"({h.get('source')})" for h in history) if history else ""))
    held = [c for c in held_changes(s, app) if c.status == "held"]
    if held:
        notes.append(f"{len(held)} change(s) held unconfirmed, not included: "
                     + ", ".join(f"#{c.id} from {c.sender}" for c in held))
    return notes
