"""The durable store: SQLAlchemy 2 models.

The schema is created and changed only by Alembic migrations
(``intake/store/migrations``), applied at start by :func:`intake.store.engine.open_store`.
The same models run on SQLite (WAL) and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite drops tzinfo)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class ReceivedMessage(Base):
    """The ledger: one row per message seen in a mailbox.

    Keyed by (mailbox, UIDVALIDITY, UID); the raw bytes are kept so nothing
    is lost if the server copy goes away. ``status`` is ``received`` until the
    outcome is committed, then ``processed``, ``ignored`` (no answer owed:
    auto-replies, duplicates) or ``quarantined``. ``moved`` says whether the
    server copy has left the inbox.
    """

    __tablename__ = "received_message"
    __table_args__ = (
        UniqueConstraint("mailbox", "uidvalidity", "uid", name="uq_received_position"),
        Index("ix_received_dedupe", "message_id", "sha256"),
        Index("uq_received_identity", "identity", unique=True),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    mailbox: Mapped[str] = mapped_column(String(100))
    uidvalidity: Mapped[int] = mapped_column(BigInteger)
    uid: Mapped[str] = mapped_column(String(200))
    message_id: Mapped[str | None] = mapped_column(String(998))
    sha256: Mapped[str] = mapped_column(String(64))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    sender: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    status: Mapped[str] = mapped_column(String(20), default="received")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    #: Which worker holds it and until when (multi-worker claim).
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: Target folder once the outcome is committed; ``moved`` once done.
    target_folder: Mapped[str | None] = mapped_column(String(200))
    moved: Mapped[bool] = mapped_column(Boolean, default=False)
    outcome: Mapped[str | None] = mapped_column(Text)
    application_id: Mapped[int | None] = mapped_column(ForeignKey("application.id"))
    #: The message's identity (SHA-256 of its bytes), written in the transaction
    #: that records its outcome. Unique: of two copies of one message, the second
    #: to commit hits this key and is filed as a duplicate, never answered.
    identity: Mapped[str | None] = mapped_column(String(64))


class Application(Base):
    __tablename__ = "application"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(40), unique=True)
    workflow: Mapped[str] = mapped_column(String(100))
    state: Mapped[str] = mapped_column(String(40))
    language: Mapped[str] = mapped_column(String(8), default="en")
    #: The address that sent the application (replies go there).
    applicant_email: Mapped[str] = mapped_column(String(320))
    #: Every address that may ask about this application (STATUS queries).
    addresses: Mapped[list[Any]] = mapped_column(JSON, default=list)
    form_values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: SHA-256 of the signed form PDF (DUPLICATE detection).
    form_sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    signer: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    verdicts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: Open deficiencies (codes) of the last judgement.
    codes: Mapped[list[Any]] = mapped_column(JSON, default=list)
    #: Codes of rules that ran and passed (like Mailman's X-Mailman-Rule-Misses).
    passed: Mapped[list[Any]] = mapped_column(JSON, default=list)
    csr_der: Mapped[bytes | None] = mapped_column(LargeBinary)
    #: Outcome data: data-exchange id, account, publication, staff notes.
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    #: The Message-ID of the mail that started the thread.
    thread_root: Mapped[str | None] = mapped_column(String(998))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)
    #: When the retention purge (``daemon.retention_days``) last removed its raw
    #: mail and verification artefacts; the decision record stays.
    purged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    transitions: Mapped[list[Transition]] = relationship(
        back_populates="application", order_by="Transition.id"
    )
    links: Mapped[list[MailLink]] = relationship(
        back_populates="application", order_by="MailLink.id"
    )


class Transition(Base):
    """State history: every change with time, actor and reason."""

    __tablename__ = "transition"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("application.id"), index=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    from_state: Mapped[str | None] = mapped_column(String(40))
    to_state: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(100))
    reason: Mapped[str] = mapped_column(Text, default="")

    application: Mapped[Application] = relationship(back_populates="transitions")


class MailLink(Base):
    """A message of an application's thread, in or out (threading, `show`)."""

    __tablename__ = "mail_link"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("application.id"), index=True)
    message_id: Mapped[str] = mapped_column(String(998), index=True)
    direction: Mapped[str] = mapped_column(String(3))  # "in" / "out"
    at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    summary: Mapped[str] = mapped_column(Text, default="")

    application: Mapped[Application] = relationship(back_populates="links")


class Outbox(Base):
    """Transactional outbox: a reply is queued in the same commit as its cause."""

    __tablename__ = "outbox"
    __table_args__ = (
        # Covering indexes: choosing the due rows (each batch of a flush) and
        # counting the bound's answers of the last hour never scan the table
        # (every reply kept; on SQLite a column after ``raw`` is read through
        # the reply's overflow page).
        Index("ix_outbox_due", "status", "next_try_at", "claimed_until", "claimed_by"),
        Index("ix_outbox_bound_mailbox", "bound_mailbox", "released_at"),
        Index("ix_outbox_bound_domain", "bound_domain", "released_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: Idempotency key: the same cause never queues two replies.
    key: Mapped[str] = mapped_column(String(300), unique=True)
    message_id: Mapped[str] = mapped_column(String(998))
    application_id: Mapped[int | None] = mapped_column(ForeignKey("application.id"))
    sender: Mapped[str] = mapped_column(String(320))
    recipients: Mapped[list[Any]] = mapped_column(JSON)
    #: The (first) recipient, for the per-sender rate limit.
    to_addr: Mapped[str] = mapped_column(String(320), index=True)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    kind: Mapped[str] = mapped_column(String(40), default="reply")
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_try_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(100))
    claimed_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: The per-recipient bound (intake.app.bound): the recipient's mailbox
    #: (local part without +tag, case-folded) and domain; unset for mail
    #: the bound does not apply to (staff decisions, digests).
    bound_mailbox: Mapped[str | None] = mapped_column(String(320))
    bound_domain: Mapped[str | None] = mapped_column(String(255))
    #: When the row counted against the bound (left ``waiting``, or queued
    #: within it); a ``waiting`` row has none yet.
    released_at: Mapped[datetime | None] = mapped_column(UtcDateTime, index=True)
    #: PEC receipts (X-Ricevuta) that name this reply (X-Riferimento-Message-ID),
    #: in arrival order: kind, time, PEC identifier, delivered-to, error, the
    #: receipt's Message-ID (intake.app.receipts). Proof of delivery, or of failure.
    pec_receipts: Mapped[list[Any] | None] = mapped_column(JSON)
    #: What the receipts say so far: ``accepted`` (by the sender's provider),
    #: ``delivered`` (avvenuta-consegna) or ``failed`` (a failure kind); staff's
    #: digest lists the failed ones.
    pec_status: Mapped[str | None] = mapped_column(String(20), index=True)

    application: Mapped[Application | None] = relationship()


class ReferenceCounter(Base):
    """Next number per (prefix, year) for ``PREFIX-YYYY-NNNNNN``."""

    __tablename__ = "reference_counter"

    prefix: Mapped[str] = mapped_column(String(20), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


class IssuedCertificateRow(Base):
    """A certificate issued by the agency CA (serials exceed 64 bits: kept as hex)."""

    __tablename__ = "issued_certificate"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("application.id"), index=True)
    serial_hex: Mapped[str] = mapped_column(String(80), unique=True)
    subject: Mapped[str] = mapped_column(Text)
    not_before: Mapped[datetime] = mapped_column(UtcDateTime)
    not_after: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    pem: Mapped[str] = mapped_column(Text)
    chain_pem: Mapped[str] = mapped_column(Text)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revocation_reason: Mapped[str | None] = mapped_column(String(40))
    revocation_note: Mapped[str | None] = mapped_column(Text)


class CertificateNotice(Base):
    """An expiry notice queued for an issued certificate, one per (certificate, threshold).

    ``threshold_days`` is the ``ca.expiry_notice_days`` entry it answers; the
    unique key makes a second notice for it impossible, whichever worker tries.
    """

    __tablename__ = "certificate_notice"
    __table_args__ = (
        UniqueConstraint("certificate_id", "threshold_days", name="uq_certificate_notice"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    certificate_id: Mapped[int] = mapped_column(ForeignKey("issued_certificate.id"), index=True)
    threshold_days: Mapped[int] = mapped_column(Integer)
    #: Where the notice went, and its outbox row's Message-ID.
    recipient: Mapped[str] = mapped_column(String(320))
    message_id: Mapped[str | None] = mapped_column(String(998))
    queued_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)


class Organisation(Base):
    """The registry (``pasts registry import``)."""

    __tablename__ = "organisation"

    reg_no: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    test_env_completed: Mapped[bool] = mapped_column(Boolean, default=False)
    agreement_received: Mapped[bool] = mapped_column(Boolean, default=False)
    #: Personal codes (e.g. PNOLV-010190-12345) of representatives and delegates.
    representatives: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class VerificationToken(Base):
    """A single-use e-mail verification link; only its SHA-256 is stored."""

    __tablename__ = "verification_token"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("application.id"), index=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    #: Who the address belongs to (personal code, else name).
    person: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    #: pending / verified / expired / superseded
    status: Mapped[str] = mapped_column(String(20), default="pending")
    #: The address was already verified for another person.
    other_person: Mapped[bool] = mapped_column(Boolean, default=False)
    #: "verify" (the contact address) or "confirm" (a held change, ``change_id``).
    purpose: Mapped[str] = mapped_column(String(20), default="verify", server_default="verify")
    change_id: Mapped[int | None] = mapped_column(ForeignKey("held_change.id"), index=True)
    #: When the reminder before expiry was queued (``verification.remind_hours_before``);
    #: set once, so a link is reminded of once.
    reminded_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class HeldChange(Base):
    """A resubmission that could not be authenticated, held for the contact to confirm.

    ``proposed`` holds what the mail would set on the application (the values
    of :func:`intake.app.steering.proposal`); nothing of it reaches the
    application unless the contact confirms through the link mailed to them.
    ``status``: held / confirmed / superseded / expired / stale (confirmed too late).
    """

    __tablename__ = "held_change"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    application_id: Mapped[int] = mapped_column(ForeignKey("application.id"), index=True)
    received_id: Mapped[int | None] = mapped_column(ForeignKey("received_message.id"))
    message_id: Mapped[str | None] = mapped_column(String(998))
    #: Where the held mail came from (display: truncated) and where its answer goes.
    sender: Mapped[str] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text, default="")
    #: Why it was not applied: which authentication failed, what it changes.
    reason: Mapped[str] = mapped_column(Text, default="")
    proposed: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    csr_der: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), default="held", index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(320))


class VerifiedAddress(Base):
    __tablename__ = "verified_address"
    __table_args__ = (UniqueConstraint("email", "person", name="uq_verified_email_person"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(320), index=True)
    person: Mapped[str] = mapped_column(String(200))
    verified_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    application_id: Mapped[int | None] = mapped_column(ForeignKey("application.id"))


class KeyValue(Base):
    """Small durable counters and markers (CRL number, rate-limit windows)."""

    __tablename__ = "key_value"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
