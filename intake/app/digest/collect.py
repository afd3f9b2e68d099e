"""The digest's facts: what the store says, read once, as plain frozen data.

Everything the staff digest shows comes from here (the rendering and the
chart only lay it out), so a test can check the numbers against a seeded
database without parsing a mail. Values that come from mail (organisation
names, senders, subjects, errors) are escaped with :func:`intake.display.safe`
where a row is built, so a row stays one row.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from intake import trust
from intake.app import expiry
from intake.app.bound import WAITING
from intake.app.replies import now_utc
from intake.app.services import Services
from intake.app.states import STATES
from intake.app.steering import digest_rows
from intake.display import safe
from intake.store.models import (
    Application,
    IssuedCertificateRow,
    KeyValue,
    Outbox,
    ReceivedMessage,
    Transition,
    VerificationToken,
)
from rules.workflow import Role, field_value

#: The ``key_value`` row holding when the last digest was sent (ISO 8601, UTC).
LAST_SENT_KEY = "digest-last-sent"
#: Certificates expiring within this window are listed.
EXPIRY_WINDOW = timedelta(days=30)
#: Verification links expiring within this window are listed.
LINK_WINDOW = timedelta(days=1)
#: The chart and the code counts look back this many days (today included).
HISTORY_DAYS = 30
#: The first digest (none sent before) counts the changes of this last stretch.
FIRST_PERIOD = timedelta(days=1)
#: How many of the most frequent codes are shown.
TOP_CODES = 10

#: What became of an application, by its state: the chart's stacks, bottom up.
OUTCOMES = ("approved", "open", "incomplete", "expired", "rejected")
OUTCOME_OF_STATE = {
    "approved": "approved", "active": "approved",
    "received": "open", "awaiting-verification": "open", "in-review": "open",
    "incomplete": "incomplete",
    "verification-expired": "expired",
    "rejected": "rejected", "restricted": "rejected",
}
#: What changed since the last digest: a name and the states counted in it
#: (``received`` counts new applications, whatever state they reached).
CHANGES = (
    ("received", ()),
    ("approved", ("approved", "active")),
    ("incomplete", ("incomplete",)),
    ("rejected", ("rejected",)),
    ("expired", ("verification-expired",)),
)
#: Workflows whose applications are questions: listed apart from the review queue.
QUESTION_WORKFLOWS = ("consultation",)

_CODE_RE = re.compile(r"[A-Z][A-Z0-9]*(?:-[A-Z0-9]+)+(?::[A-Za-z0-9_.-]+)?")


@dataclass(frozen=True)
class Waiting:
    """An application waiting for a person, with what ``pasts show`` would say of it."""

    reference: str
    line: str
    #: Whole days since it reached its state.
    age_days: int
    #: Past ``digest.sla_days``.
    late: bool = False


@dataclass(frozen=True)
class CountTable:
    """Applications by workflow (rows) and state (columns): the numbers ``pasts list`` gives."""

    states: tuple[str, ...]
    rows: tuple[tuple[str, tuple[int, ...], int], ...]
    totals: tuple[int, ...]
    total: int

    def count(self, workflow: str, state: str) -> int:
        for wf, counts, _ in self.rows:
            if wf == workflow:
                return counts[self.states.index(state)] if state in self.states else 0
        return 0


@dataclass(frozen=True)
class Daily:
    """Applications received per day, by what became of them (the chart)."""

    days: tuple[date, ...]
    #: outcome -> one count per day of ``days``.
    series: tuple[tuple[str, tuple[int, ...]], ...]

    def total(self) -> int:
        return sum(sum(counts) for _, counts in self.series)


@dataclass(frozen=True)
class DigestFacts:
    now: datetime
    #: The last digest's send time (or ``now - FIRST_PERIOD`` before the first).
    since: datetime
    first: bool
    sla_days: int
    counts: CountTable
    #: (change, count) in the order of :data:`CHANGES`.
    changes: tuple[tuple[str, int], ...]
    waiting_staff: tuple[Waiting, ...]
    questions: tuple[Waiting, ...]
    incomplete: tuple[str, ...]
    expiring_links: tuple[str, ...]
    verification_expired: tuple[str, ...]
    #: (code, count), most frequent first, over :data:`HISTORY_DAYS`.
    top_codes: tuple[tuple[str, int], ...]
    #: (code, ((field, count), ...)) for the top codes that name a form field.
    code_fields: tuple[tuple[str, tuple[tuple[str, int], ...]], ...]
    daily: Daily
    #: The other lists, by section key (titles in ``mailer`` strings ``[digest.sections]``).
    lists: tuple[tuple[str, tuple[str, ...]], ...] = field(default_factory=tuple)


def show_line(rt: Services, app: Application) -> str:
    """What ``pasts show`` says of ``app`` in one line: reference, state, workflow, who, open codes."""
    who = field_value(rt.config.workflow(app.workflow), app.form_values, Role.ORG_NAME)
    applicant = f"{who} <{app.applicant_email}>" if who else app.applicant_email
    codes = f"  [{', '.join(app.codes)}]" if app.codes else ""
    return safe(f"{app.reference}  {app.state}  {app.workflow}  {applicant}{codes}")


def last_sent(s: Session) -> datetime | None:
    row = s.get(KeyValue, LAST_SENT_KEY)
    if row is None:
        return None
    try:
        return datetime.fromisoformat(row.value)
    except ValueError:
        return None


def record_sent(s: Session, when: datetime) -> None:
    """Store ``when`` as the last digest's send time (in the caller's transaction)."""
    row = s.get(KeyValue, LAST_SENT_KEY)
    if row is None:
        s.add(KeyValue(key=LAST_SENT_KEY, value=when.isoformat()))
    else:
        row.value = when.isoformat()


def count_table(s: Session) -> CountTable:
    pairs = Counter[tuple[str, str]]()
    for workflow, state, n in s.execute(
            select(Application.workflow, Application.state, func.count())
            .group_by(Application.workflow, Application.state)):
        pairs[(workflow, state)] += int(n)
    present = {state for _, state in pairs}
    states = tuple(st for st in STATES if st in present) + tuple(
        sorted(present - set(STATES)))
    workflows = sorted({wf for wf, _ in pairs})
    rows = tuple(
        (wf, tuple(pairs[(wf, st)] for st in states), sum(pairs[(wf, st)] for st in states))
        for wf in workflows)
    totals = tuple(sum(pairs[(wf, st)] for wf in workflows) for st in states)
    return CountTable(states, rows, totals, sum(totals))


def changes_since(s: Session, since: datetime) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    for name, states in CHANGES:
        if not states:
            n = s.scalar(select(func.count()).select_from(Application)
                         .where(Application.created_at > since))
        else:
            n = s.scalar(select(func.count(func.distinct(Transition.application_id)))
                         .where(Transition.to_state.in_(states), Transition.at > since))
        out.append((name, int(n or 0)))
    return tuple(out)


def entered(s: Session, state: str) -> dict[int, datetime]:
    """When each application last entered ``state``."""
    return {
        app_id: at for app_id, at in s.execute(
            select(Transition.application_id, func.max(Transition.at))
            .where(Transition.to_state == state).group_by(Transition.application_id))
    }


def waiting_in(rt: Services, s: Session, now: datetime, states: Iterable[str], *,
               questions: bool) -> tuple[Waiting, ...]:
    sla = timedelta(days=rt.config.digest.sla_days)
    states = tuple(states)
    since: dict[int, datetime] = {}
    for state in states:
        since.update(entered(s, state))
    apps = s.scalars(select(Application).where(Application.state.in_(states))).all()
    rows = []
    for app in apps:
        if (app.workflow in QUESTION_WORKFLOWS) != questions:
            continue
        start = since.get(app.id) or app.updated_at or app.created_at
        age = now - start
        rows.append((start, app.id, Waiting(app.reference, show_line(rt, app),
                                            max(age.days, 0), age > sla)))
    return tuple(w for _, _, w in sorted(rows, key=lambda r: (r[0], r[1])))


def codes_of(transition: Transition) -> list[str]:
    """The SPEC codes a transition to ``incomplete`` or ``rejected`` gave as its reason."""
    reason = transition.reason or ""
    if transition.to_state == "rejected":
        reason = reason.partition(": ")[0]
    else:
        reason = reason.rpartition(": ")[2] if ": " in reason else reason
    return [m.group(0) for part in reason.split(",")
            if (m := _CODE_RE.fullmatch(part.strip()))]


def top_codes(s: Session, start: datetime) -> tuple[
        tuple[tuple[str, int], ...], tuple[tuple[str, tuple[tuple[str, int], ...]], ...]]:
    """The most frequent codes since ``start`` (a field's code counted once as its code),
    and for each code given with fields, how often each field was named."""
    counter: Counter[str] = Counter()
    fields: dict[str, Counter[str]] = {}
    for t in s.scalars(select(Transition).where(
            Transition.to_state.in_(("incomplete", "rejected")), Transition.at >= start)):
        for code in codes_of(t):
            base, _, name = code.partition(":")
            counter[base] += 1
            if name:
                fields.setdefault(base, Counter())[name] += 1
    top = tuple(sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_CODES])
    named = tuple((code, tuple(sorted(fields[code].items(), key=lambda kv: (-kv[1], kv[0]))))
                  for code, _ in top if code in fields)
    return top, named


def daily(s: Session, today: date) -> Daily:
    days = tuple(today - timedelta(days=n) for n in range(HISTORY_DAYS - 1, -1, -1))
    index = {d: i for i, d in enumerate(days)}
    counts = {o: [0] * len(days) for o in OUTCOMES}
    start = datetime.combine(days[0], datetime.min.time(), tzinfo=now_utc().tzinfo)
    for created, state in s.execute(select(Application.created_at, Application.state)
                                    .where(Application.created_at >= start)):
        i = index.get(created.date())
        if i is not None:
            counts[OUTCOME_OF_STATE.get(state, "open")][i] += 1
    return Daily(days, tuple((o, tuple(counts[o])) for o in OUTCOMES))


def notices_sent(rt: Services, s: Session, since: datetime, until: datetime) -> tuple[str, ...]:
    """The certificate expiry notices queued since the last digest, one row each."""
    rows = []
    for notice in expiry.notices_sent(s, since, until):
        app = s.scalars(select(Application).where(
            Application.reference == notice.reference)).first()
        about = show_line(rt, app) if app is not None else notice.reference
        rows.append(safe(
            f"{notice.serial_hex[:16]}…  expires {notice.not_after:%Y-%m-%d}  "
            f"{notice.threshold_days}-day notice to {notice.recipient} "
            f"{notice.queued_at:%Y-%m-%d %H:%M}  {about}"))
    return tuple(rows)


def collect(rt: Services, *, now: datetime | None = None) -> DigestFacts:
    now = now or now_utc()
    with rt.store.session() as s:
        previous = last_sent(s)
        since = previous or now - FIRST_PERIOD
        history = now - timedelta(days=HISTORY_DAYS)
        codes, code_fields = top_codes(s, history)

        incomplete = tuple(
            show_line(rt, a) for a in s.scalars(
                select(Application).where(Application.state == "incomplete")
                .order_by(Application.updated_at, Application.id)))
        expiring_links = tuple(
            safe(f"{show_line(rt, t_app)}  — link to {t.email} expires {t.expires_at:%Y-%m-%d %H:%M}")
            for t, t_app in s.execute(
                select(VerificationToken, Application)
                .join(Application, Application.id == VerificationToken.application_id)
                .where(VerificationToken.status == "pending", VerificationToken.used_at.is_(None),
                       VerificationToken.expires_at > now,
                       VerificationToken.expires_at <= now + LINK_WINDOW)
                .order_by(VerificationToken.expires_at)))
        verification_expired = tuple(
            show_line(rt, a) for a in s.scalars(
                select(Application).where(Application.state == "verification-expired")
                .order_by(Application.updated_at, Application.id)))

        everyone = s.scalars(select(Application).order_by(Application.id)).all()
        conflicts = tuple(
            safe(f"{show_line(rt, a)}  — {a.extra['verification_warning']}")
            for a in everyone if (a.extra or {}).get("verification_warning"))
        undeliverable = tuple(
            safe(f"{show_line(rt, a)}  — {a.extra['undeliverable'].get('address')}: "
                 f"{str(a.extra['undeliverable'].get('reason') or '')[:80]}")
            for a in everyone if (a.extra or {}).get("undeliverable"))
        expiring = tuple(
            safe(f"{c.serial_hex[:16]}…  {c.subject}  expires {c.not_after:%Y-%m-%d}  "
                 f"{show_line(rt, c_app)}")
            for c, c_app in s.execute(
                select(IssuedCertificateRow, Application)
                .join(Application, Application.id == IssuedCertificateRow.application_id)
                .where(IssuedCertificateRow.revoked_at.is_(None),
                       IssuedCertificateRow.not_after <= now + EXPIRY_WINDOW)
                .order_by(IssuedCertificateRow.not_after)))
        quarantined = tuple(
            safe(f"ledger #{m.id}  {m.mailbox}  {m.message_id or ''}  {m.sender}  "
                 f"{m.subject or ''}  {(m.last_error or '')[:80]}")
            for m in s.scalars(select(ReceivedMessage).where(
                ReceivedMessage.status == "quarantined").order_by(ReceivedMessage.id)))

        def reply_row(o: Outbox, what: str) -> str:
            about = show_line(rt, o.application) if o.application else "(no application)"
            return safe(f"{o.message_id}  to {', '.join(o.recipients)}  {what}  {about}")

        failed = tuple(reply_row(o, (o.last_error or "")[:80]) for o in s.scalars(
            select(Outbox).where(Outbox.status == "failed").order_by(Outbox.id))) + tuple(
            # Sent, but a PEC receipt says it did not reach the applicant (SPEC section 2).
            reply_row(o, "PEC " + ", ".join(str(r.get("kind")) for r in o.pec_receipts or []))
            for o in s.scalars(select(Outbox).where(Outbox.pec_status == "failed")
                               .order_by(Outbox.id)))
        waiting = tuple(reply_row(o, f"queued {o.created_at:%Y-%m-%d %H:%M}") for o in s.scalars(
            select(Outbox).where(Outbox.status == WAITING).order_by(Outbox.id)))
        held, refused = digest_rows(s)

        facts = DigestFacts(
            now=now, since=since, first=previous is None, sla_days=rt.config.digest.sla_days,
            counts=count_table(s),
            changes=changes_since(s, since),
            waiting_staff=waiting_in(rt, s, now, ("in-review",), questions=False),
            questions=waiting_in(rt, s, now, ("received", "in-review"), questions=True),
            incomplete=incomplete,
            expiring_links=expiring_links,
            verification_expired=verification_expired,
            top_codes=codes,
            code_fields=code_fields,
            daily=daily(s, now.date()),
            lists=(
                ("held", tuple(safe(r) for r in held)),
                ("refused", tuple(safe(r) for r in refused)),
                ("conflicts", conflicts),
                ("expiring", expiring),
                ("notices", notices_sent(rt, s, since, now)),
                ("quarantined", quarantined),
                ("failed", failed),
                ("waiting", waiting),
                ("undeliverable", undeliverable),
                *((("trust", trust),) if (trust := trust_rows(rt)) is not None else ()),
            ),
        )
    return facts


def trust_rows(rt: Services) -> tuple[str, ...] | None:
    """Each trusted list's freshness (``[trust]``); ``None`` when no list is configured."""
    ok, body = trust.readiness(rt.config)
    if not body.get("configured"):
        return None
    lists = body.get("lists")
    rows = []
    if isinstance(lists, dict):
        for territory, item in sorted(lists.items()):
            if not isinstance(item, dict):
                continue
            age = item.get("age_hours")
            state = "fresh" if item.get("fresh") else f"STALE: {item.get('reason')}"
            rows.append(safe(f"{territory}  {state}"
                             + (f"  (verified {age} h ago)" if age is not None else "")))
    if not ok and not rows:
        rows.append("no trusted list loaded: run `pasts trust refresh`")
    return tuple(rows)
