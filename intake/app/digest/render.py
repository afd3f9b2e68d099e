"""The digest as a mail: the facts laid out for the ``digest`` templates, and queued.

:func:`build_digest` gives the text and the HTML (with the chart as a
``data:`` image, for ``pasts digest --html``); :func:`queue_digest` puts one
mail per recipient in the outbox, the chart as a related ``cid:`` part of the
HTML (multipart/related inside multipart/alternative), and records the send
time in the same transaction, so the next digest's changes start where this
one's ended: a missed day is covered by the next digest, never lost.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from intake.app.digest.chart import CONTENT_ID, chart_png
from intake.app.digest.collect import DigestFacts, Waiting, collect, record_sent
from intake.app.replies import Replies
from intake.app.services import Services
from intake.store.models import Outbox
from mailer.compose import ReplySpec, compose, explain
from mailer.staff import staff_strings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Digest:
    facts: DigestFacts
    #: The text part (it stands alone: every number of the chart is in it too).
    text: str
    #: The HTML document, the chart inline as a ``data:`` image.
    html: str
    png: bytes


#: A list shows at most this many rows, then how many more there are (``pasts list`` has all).
MAX_ROWS = 40


def _when(value: Any) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC"


def context(facts: DigestFacts, language: str, chart_src: str) -> dict[str, Any]:
    """The template values of the digest of ``facts`` in ``language``."""
    strings = staff_strings(language)
    titles: dict[str, str] = strings.get("sections", {})
    outcomes: dict[str, str] = strings.get("outcomes", {})
    changes: dict[str, str] = strings.get("changes", {})

    more: str = strings.get("more", "… {n}")

    def capped(rows: tuple[Any, ...]) -> list[Any]:
        # A list longer than a person reads ends in how many more there are.
        shown = list(rows[:MAX_ROWS])
        if len(rows) > MAX_ROWS:
            shown.append(more.replace("{n}", str(len(rows) - MAX_ROWS)))
        return shown

    def section(title: str, rows: tuple[Any, ...]) -> list[Any]:
        return [title, capped(rows), len(rows)]

    def staff(rows: tuple[Waiting, ...]) -> dict[str, Any]:
        return {"rows": [{"line": w.line, "age": w.age_days, "late": w.late}
                         for w in rows[:MAX_ROWS]],
                "total": len(rows),
                "more": capped(rows)[MAX_ROWS:]}

    named = dict(facts.code_fields)

    def code_text(code: str) -> str:
        # A field's code says which fields, not one field's sentence.
        if code in named:
            return ", ".join(f"{name} {n}" for name, n in named[code])
        return explain(code, language)[0]

    table = facts.counts
    chart_days = [
        {"day": f"{day:%Y-%m-%d}", "total": sum(c[i] for _, c in facts.daily.series),
         "parts": [[outcomes.get(o, o), c[i]] for o, c in facts.daily.series if c[i]]}
        for i, day in enumerate(facts.daily.days)
    ]
    totals = [[outcomes.get(o, o), sum(c)] for o, c in facts.daily.series]
    alt = strings.get("chart_alt", "") + ": " + ", ".join(f"{name} {n}" for name, n in totals)
    return {
        "digest": {
            "date": _when(facts.now),
            "since": _when(facts.since),
            "first": facts.first,
            "sla_days": facts.sla_days,
            "s": strings,
            "counts": {
                "states": list(table.states),
                "rows": [[wf, list(n), total] for wf, n, total in table.rows],
                "totals": list(table.totals),
                "total": table.total,
            },
            "changes": [[changes.get(name, name), n] for name, n in facts.changes],
            "staff": staff(facts.waiting_staff),
            "questions": staff(facts.questions),
            "applicants": [
                section(titles.get("incomplete", "incomplete"), facts.incomplete),
                section(titles.get("links", "links"), facts.expiring_links),
                section(titles.get("verification_expired", "verification-expired"),
                        facts.verification_expired),
            ],
            "codes": [[code, n, code_text(code)] for code, n in facts.top_codes],
            "chart_src": chart_src,
            "chart_alt": alt,
            "chart_days": [day for day in chart_days if day["total"]],
            "chart_totals": totals,
        },
        "sections": [section(titles.get(key, key), rows) for key, rows in facts.lists],
    }


def chart_of(facts: DigestFacts, language: str) -> bytes:
    strings = staff_strings(language)
    # The heading above the image names it; the legend names the outcomes.
    return chart_png(facts.daily, strings.get("outcomes", {}))


def build_digest(rt: Services, *, now: datetime | None = None) -> Digest:
    """The digest as of ``now``: text, and HTML with the chart inline."""
    facts = collect(rt, now=now)
    language = rt.config.daemon.language
    png = chart_of(facts, language)
    data_url = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    # The preview is composed as the mail is, the chart inline instead of beside it.
    msg = compose(ReplySpec(
        to=rt.config.smtp.sender, sender=rt.config.smtp.sender, template="digest",
        language=language, message_id="<digest-preview@localhost>",
        context=context(facts, language, data_url), auto_submitted="auto-generated",
        date=facts.now))
    text_part = msg.get_body(("plain",))
    html_part = msg.get_body(("html",))
    text = text_part.get_content() if text_part is not None else ""
    html = html_part.get_content() if html_part is not None else ""
    return Digest(facts, text, html, png)


def queue_digest(rt: Services, digest: Digest | None = None) -> int:
    """Queue the digest for every ``digest.recipients`` address; record the send time.

    Returns how many mails were queued. The send time recorded is the moment
    the digest's facts were read, in the transaction that queues it: the next
    digest counts the changes from there.
    """
    digest = digest or build_digest(rt)
    facts = digest.facts
    language = rt.config.daemon.language
    ctx = context(facts, language, f"cid:{CONTENT_ID}")
    stamp = facts.now.strftime("%Y-%m-%dT%H:%M")
    queued = 0
    with rt.store.session() as s:
        replies = Replies(rt.config)
        for recipient in rt.config.digest.recipients:
            key = f"digest:{stamp}:{recipient}"
            # The same minute's digest queued already (a retried tick): not again, and
            # the send time stays that digest's, so no change falls between the two.
            if s.scalars(select(Outbox.id).where(Outbox.key == key)).first() is not None:
                continue
            row = replies.queue(
                s, key=key, to=recipient, template="digest", app=None,
                language=language, kind="digest", auto_submitted="auto-generated",
                context=ctx, related=((CONTENT_ID, "image/png", digest.png),),
            )
            queued += row is not None
        if queued:
            record_sent(s, facts.now)
    log.info("staff digest of %s queued for %d recipient(s) (key digest:%s:…); "
             "its changes count from %s", _when(facts.now), queued, stamp, _when(facts.since))
    return queued
