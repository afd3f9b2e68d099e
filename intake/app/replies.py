"""Applications in the store: references, state transitions, thread links, replies.

Everything here works inside a caller's session, so a message's outcome, its
state change and its queued reply commit together or not at all.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import weakref
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.orm import Session

from intake.app import bound
from intake.app.states import check_transition
from intake.config import Config
from intake.errors import NotFound
from intake.store.models import (
    Application,
    KeyValue,
    MailLink,
    Organisation,
    Outbox,
    ReferenceCounter,
    Transition,
)
from intake.store.models import utcnow as now_utc
from mailer.addresses import UnusableAddress, usable_address
from mailer.compose import Finding as MailFinding
from mailer.compose import ReplySpec, compose_wire
from rules import Finding, OrganisationRecord

log = logging.getLogger(__name__)

BRACKETED_RE = re.compile(r"\[([A-Z][A-Z0-9]{0,9}-\d{4}-\d{6})\]")
STATUS_RE = re.compile(r"\bSTATUS\s+\[?([A-Z][A-Z0-9]{0,9}-\d{4}-\d{6})\]?", re.IGNORECASE)

SYSTEM = "system"


def next_reference(session: Session, prefix: str, when: datetime | None = None) -> str:
    """Allocate ``PREFIX-YYYY-NNNNNN``; safe with several workers (row update)."""
    year = (when or now_utc()).year
    # On the table: a Core UPDATE, without the ORM's bulk-update machinery.
    table: Table = ReferenceCounter.__table__  # type: ignore[assignment]
    counters = table.c
    bump = (
        update(table)
        .where(counters.prefix == prefix, counters.year == year)
        .values(last=counters.last + 1)
        .returning(counters.last)
    )
    number = session.execute(bump).scalar()
    if number is None:
        # First reference of the year: create the counter. A concurrent worker
        # doing the same hits the primary key and retries the update.
        from sqlalchemy.exc import IntegrityError

        try:
            with session.begin_nested():
                session.add(ReferenceCounter(prefix=prefix, year=year, last=1))
            number = 1
        except IntegrityError:
            number = session.execute(bump).scalar_one()
    return f"{prefix}-{year}-{number:06d}"


def find_application(session: Session, reference: str) -> Application | None:
    return session.scalars(
        select(Application).where(Application.reference == reference.upper())
    ).first()


def load_application(session: Session, reference: str) -> Application:
    """The application ``reference``; NotFound (exit 1 on the command line) if there is none."""
    app = find_application(session, reference)
    if app is None:
        raise NotFound(f"no application {reference}")
    return app


def application_for_thread(session: Session, message_ids: Iterable[str]) -> Application | None:
    ids = [m for m in message_ids if m]
    if not ids:
        return None
    link = session.scalars(
        select(MailLink).where(MailLink.message_id.in_(ids)).order_by(MailLink.id.desc())
    ).first()
    return link.application if link is not None else None


def transition(
    session: Session, app: Application, to_state: str, *, actor: str = SYSTEM, reason: str = ""
) -> None:
    """Change state and record it (time, actor, reason)."""
    check_transition(app.state if app.id is not None else None, to_state)
    session.add(
        Transition(
            application=app,
            from_state=app.state if app.id is not None else None,
            to_state=to_state,
            actor=actor,
            reason=reason,
        )
    )
    app.state = to_state


#: ``Session.info`` key: what this transaction made (see :func:`made_here`).
_MADE = "pasts.made-here"


def _made(session: Session) -> dict[str, Any]:
    """The objects made in the session's current transaction, by kind (reset by a new one)."""
    transaction = session.get_transaction()
    made = session.info.get(_MADE)
    if made is None or made["transaction"] is not transaction:
        made = session.info[_MADE] = {"transaction": transaction, "applications": set(),
                                      "outbox": {}}
    return made


def made_here(session: Session, app: Application) -> None:
    """Note that ``app`` was created in the session's current transaction.

    No other transaction can see it, so its thread links are exactly those in
    ``app.links`` (loaded empty at creation, appended to by each new link):
    :func:`link_mail` asks no query for it.
    """
    _made(session)["applications"].add(app)


def link_mail(session: Session, app: Application, message_id: str | None, direction: str,
              summary: str) -> None:
    if not message_id:
        return
    if app in _made(session)["applications"] and app in session:
        exists = any(link.message_id == message_id for link in app.links)
    else:
        exists = session.scalars(
            select(MailLink.id).where(
                MailLink.application_id == app.id, MailLink.message_id == message_id
            )
        ).first() is not None
    if not exists:
        session.add(MailLink(application=app, message_id=message_id, direction=direction,
                             summary=summary[:500]))


def organisation_record(session: Session, reg_no: str) -> OrganisationRecord | None:
    # The columns, not an ORM object: the record is all the caller keeps.
    table: Table = Organisation.__table__  # type: ignore[assignment]
    org = session.execute(select(table.c.reg_no, table.c.name, table.c.test_env_completed,
                                 table.c.agreement_received, table.c.representatives)
                          .where(table.c.reg_no == reg_no)).first()
    if org is None:
        return None
    return OrganisationRecord(
        reg_no=org.reg_no,
        name=org.name,
        test_env_completed=org.test_env_completed,
        agreement_received=org.agreement_received,
        representatives=tuple(org.representatives or ()),
    )


def duplicate_reference(session: Session, form_sha256: str,
                        exclude: str | None = None) -> str | None:
    """The first application holding this signed form, other than ``exclude``."""
    query = select(Application.reference).where(Application.form_sha256 == form_sha256)
    if exclude is not None:
        query = query.where(Application.reference != exclude)
    return session.scalars(query.order_by(Application.id)).first()


def record_undeliverable(app: Application, address: str, reason: str) -> None:
    """Note on ``app`` that no reply can be written to ``address`` (SPEC section 5).

    Staff see it in ``pasts show`` and the digest; the message that caused
    the reply is processed all the same, never quarantined for it.
    """
    extra = dict(app.extra or {})
    extra["undeliverable"] = {"address": address[:320], "reason": reason[:500],
                              "at": now_utc().isoformat(timespec="seconds")}
    # A new dict: the JSON column sees a replaced value, not an edited one.
    app.extra = extra
    log.warning("%s: no reply can be written to %r: %s", app.reference, address, reason)


#: The ``key_value`` row holding the secret that pasts Message-IDs derive from.
MESSAGE_ID_KEY = "message-id-key"


def message_id_secret(session: Session) -> bytes:
    """The secret for Message-IDs: made once (migration 0002 or first use), kept in the store.

    In the database rather than a file so that every worker sharing the
    database derives the same Message-ID for the same reply.
    """
    value = session.get(KeyValue, MESSAGE_ID_KEY)
    if value is None:
        from sqlalchemy.exc import IntegrityError

        try:
            with session.begin_nested():
                session.add(KeyValue(key=MESSAGE_ID_KEY, value=secrets.token_hex(32)))
        except IntegrityError:
            pass  # another worker made it first: use theirs
        value = session.get(KeyValue, MESSAGE_ID_KEY)
        assert value is not None
    return bytes.fromhex(value.value)


def stable_message_id(config: Config, key: str, secret: bytes) -> str:
    """The same cause always gets the same Message-ID (idempotent replies).

    HMAC under a secret of the store: a reply's Message-ID, hence the thread
    of an application, cannot be computed by anyone who knows only the
    ledger row behind it (``in:<row>`` is a small sequential number).
    """
    domain = config.smtp.sender.rpartition("@")[2] or "localhost"
    digest = hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()[:32]
    return f"<pasts.{digest}@{domain}>"


class Replies:
    """Queues replies in the outbox, inside the caller's transaction."""

    def __init__(self, config: Config):
        self.config = config
        #: The Message-ID secret of each database (made once, never changed:
        #: read once per engine, not once per reply).
        self._secrets: weakref.WeakKeyDictionary[Any, bytes] = weakref.WeakKeyDictionary()

    def secret(self, session: Session) -> bytes:
        """:func:`message_id_secret` of the session's database, read once."""
        engine = session.get_bind()
        found = self._secrets.get(engine)
        if found is not None:
            return found
        stored = session.get(KeyValue, MESSAGE_ID_KEY)
        if stored is None:
            # Made in this transaction, which may yet roll back: not kept.
            return message_id_secret(session)
        found = self._secrets[engine] = bytes.fromhex(stored.value)
        return found

    def queue(
        self,
        session: Session,
        *,
        key: str,
        to: str,
        template: str,
        app: Application | None,
        language: str = "en",
        findings: Sequence[Finding] = (),
        original_subject: str = "",
        in_reply_to: str | None = None,
        references: Sequence[str] = (),
        context: Mapping[str, Any] | None = None,
        attachments: Sequence[tuple[str, str, bytes]] = (),
        related: Sequence[tuple[str, str, bytes]] = (),
        kind: str = "reply",
        auto_submitted: str = "auto-replied",
        rate_limit: bool = False,
        trusted: bool = False,
        fresh: bool = False,
    ) -> Outbox | None:
        """Compose and queue one mail; a second call with the same key does nothing.

        ``rate_limit`` marks an automatic answer to inbound mail: it counts
        against the per-recipient bound (:mod:`intake.app.bound`; RFC 3834, what
        stops backscatter to forged senders) and, over it, is queued
        ``waiting`` until the bound allows, never dropped. ``trusted`` (the
        answer to a mail whose signature chains to a trust anchor) is released
        at once. Staff decisions and verification links are not limited.

        ``fresh`` says that no committed row can hold ``key`` (the answer to the
        ledger row being decided: its key is queued only in the transaction
        that decides it): only this transaction's own rows are looked at. The
        outbox's unique key refuses a second row whatever the caller says.
        """
        queued: dict[str, Outbox] = _made(session)["outbox"]
        existing = queued.get(key)
        if existing is not None and existing not in session:
            existing = None  # rolled back with a savepoint: not queued after all
        if existing is None and not fresh:
            existing = session.scalars(select(Outbox).where(Outbox.key == key)).first()
        if existing is not None:
            return existing
        try:
            usable_address(to)
        except UnusableAddress as exc:
            # No reply can be written: recorded for staff, never retried.
            if app is not None:
                record_undeliverable(app, to, exc.reason)
            else:
                log.warning("no reply can be written to %r (%s): %s", to, key, exc.reason)
            return None
        message_id = stable_message_id(self.config, key, self.secret(session))
        ctx: dict[str, Any] = dict(context or {})
        if app is not None:
            workflow = self.config.workflow(app.workflow)
            ctx.setdefault("workflow_title", workflow.title if workflow else app.workflow)
            ctx.setdefault("fields", dict(app.form_values or {}))
        spec = ReplySpec(
            to=to,
            sender=self.config.smtp.sender,
            template=template,
            language=language,
            message_id=message_id,
            reference=app.reference if app is not None else None,
            status=app.state if app is not None else None,
            findings=tuple(MailFinding(f.code, f.detail) for f in findings),
            original_subject=original_subject,
            in_reply_to=in_reply_to,
            references=tuple(references),
            context=ctx,
            attachments=tuple(attachments),
            related=tuple(related),
            auto_submitted=auto_submitted,
            date=now_utc(),
        )
        raw = compose_wire(spec)
        row = Outbox(
            key=key,
            message_id=message_id,
            application=app,
            sender=self.config.smtp.sender,
            recipients=[to],
            to_addr=to,
            raw=raw,
            kind=kind,
        )
        if rate_limit:
            bound.place(self.config, session, row, trusted=trusted)
        session.add(row)
        queued[key] = row
        if app is not None:
            link_mail(session, app, message_id, "out", f"{template} to {to}")
        return row
