"""The staff digest (issue 13): numbers, ages, changes, the chart, the mail and its rendering.

A real SQLite database is seeded with direct inserts of applications and their
transitions (so ages and days are exact), then read through the real CLI:
``pasts list`` and ``pasts digest`` must agree, ``--send`` goes through the real
SMTP server (STARTTLS), and ``--html`` is rendered in headless Chromium.
"""

from __future__ import annotations

import base64
import io
import re
import subprocess
from collections import Counter
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from intake.app.digest import collect
from intake.app.digest.collect import LAST_SENT_KEY
from intake.store.models import Application, KeyValue, Transition, VerificationToken
from tests.daemon_env import Deployment

NOW = datetime.now(UTC)
SHOW_WF = {"EA": "eaddress-production", "API": "api-access", "SP": "service-publication",
           "Q": "consultation"}


def ago(**kw: float) -> datetime:
    return NOW - timedelta(**kw)


def seed(dep: Deployment, rows: list[dict[str, Any]]) -> None:
    """Insert applications with their transitions: ``history`` is [(state, when, reason)]."""
    with dep.runtime() as rt, rt.store.session() as s:
        for row in rows:
            history = row["history"]
            app = Application(
                reference=row["ref"], workflow=SHOW_WF[row["ref"].split("-")[0]],
                state=history[-1][0], applicant_email=row.get("email", "janis@ergli.example"),
                form_values={"org_name": row.get("org", "SIA Ērgļu Māja")},
                codes=row.get("codes", []), created_at=history[0][1], updated_at=history[-1][1],
                extra=row.get("extra", {}))
            s.add(app)
            previous = None
            for state, at, reason in history:
                s.add(Transition(application=app, from_state=previous, to_state=state, at=at,
                                 actor="system", reason=reason))
                previous = state
            s.flush()
            for hours in row.get("link_expires_in_hours", ()):
                s.add(VerificationToken(application_id=app.id, email=app.applicant_email,
                                        person="Jānis", token_hash=f"{row['ref']}-{hours}",
                                        expires_at=NOW + timedelta(hours=hours)))


#: A day's work: three in review (two past the five days of digest.sla_days), one
#: incomplete, a link about to expire, one verification-expired, an approval, a
#: staff rejection, an open question, and one application older than the chart.
SEEDED: list[dict[str, Any]] = [
    {"ref": "EA-2026-000101", "history": [("received", ago(days=8), ""),
                                          ("in-review", ago(days=7, hours=2), "all checks passed")]},
    {"ref": "EA-2026-000102", "org": "SIA Ozols",
     "history": [("received", ago(days=2), ""), ("in-review", ago(days=1, hours=1), "ok")]},
    {"ref": "API-2026-000103", "history": [("received", ago(days=10), ""),
                                           ("incomplete", ago(days=9), "SIG-NOT-QUALIFIED"),
                                           ("in-review", ago(days=6, hours=3), "resubmitted")]},
    {"ref": "EA-2026-000104", "codes": ["SIG-NOT-QUALIFIED", "FORM-FIELD-MISSING:org_reg_no"],
     "history": [("received", ago(days=3), ""),
                 ("incomplete", ago(days=3),
                  "SIG-NOT-QUALIFIED, FORM-FIELD-MISSING:org_reg_no")]},
    {"ref": "SP-2026-000105", "link_expires_in_hours": (5,),
     "history": [("received", ago(days=2, hours=19), ""),
                 ("awaiting-verification", ago(days=2, hours=19), "link sent")]},
    {"ref": "EA-2026-000106", "history": [("received", ago(days=5), ""),
                                          ("awaiting-verification", ago(days=5), "link sent"),
                                          ("verification-expired", ago(days=2), "72 h")]},
    {"ref": "API-2026-000107", "history": [("received", ago(days=4), ""),
                                           ("in-review", ago(days=4), "ok"),
                                           ("approved", ago(hours=12), "approved")]},
    {"ref": "EA-2026-000108", "history": [("received", ago(days=20), ""),
                                          ("in-review", ago(days=20), "ok"),
                                          ("rejected", ago(days=19),
                                           "SIG-NOT-QUALIFIED: the seal of a person")]},
    {"ref": "Q-2026-000109", "email": "peteris@example.lv",
     "history": [("received", ago(days=3), "")]},
    {"ref": "EA-2026-000110", "history": [("received", ago(days=40), ""),
                                          ("in-review", ago(days=40), "ok"),
                                          ("approved", ago(days=39), "approved")]},
]


def section(text: str, title: str) -> list[str]:
    """The lines of the digest text's section whose heading starts with ``title``."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"== {title}"))
    out = []
    for line in lines[start + 1:]:
        if line.startswith("== ") or not line.strip():
            break
        out.append(line)
    return out


def counts_in_digest(text: str) -> Counter[tuple[str, str]]:
    header, *rows = section(text, "Applications by workflow and state")
    states = header.split()[1:-1]
    found: Counter[tuple[str, str]] = Counter()
    for row in rows[:-1]:  # the last row is the totals
        workflow, *numbers = row.split()
        for state, n in zip(states, numbers[:-1], strict=True):
            if int(n):
                found[(workflow, state)] = int(n)
        assert int(numbers[-1]) == sum(int(n) for n in numbers[:-1])
    return found


def counts_in_list(dep: Deployment) -> Counter[tuple[str, str]]:
    code, listed = dep.cli("list")
    assert code == 0
    found: Counter[tuple[str, str]] = Counter()
    for line in listed.splitlines():
        _, state, workflow = line.split()[:3]
        found[(workflow, state)] += 1
    return found


def test_digest_numbers_match_pasts_list_and_the_seeded_database(deployment: Deployment) -> None:
    seed(deployment, SEEDED)
    code, text = deployment.cli("digest")
    assert code == 0, text

    expected = Counter((SHOW_WF[r["ref"].split("-")[0]], r["history"][-1][0]) for r in SEEDED)
    assert counts_in_list(deployment) == expected
    assert counts_in_digest(text) == expected
    with deployment.runtime() as rt:
        facts = collect(rt)
    assert facts.counts.total == len(SEEDED) == sum(expected.values())
    assert facts.counts.count("eaddress-production", "in-review") == 2

    # Waiting for staff: oldest first, age in days, the two past five days marked.
    staff = section(text, "Waiting for staff review")
    assert [re.search(r"(EA|API)-2026-\d+", line).group(0) for line in staff] == [  # type: ignore[union-attr]
        "EA-2026-000101", "API-2026-000103", "EA-2026-000102"]
    assert [line.split()[:2] for line in staff] == [["!!", "7"], ["!!", "6"], ["-", "1"]]
    assert "past the service level of 5 d" in staff[0] and "service level" not in staff[2]
    # Each reference with what `pasts show` says of it in one line.
    assert "EA-2026-000102  in-review  eaddress-production  SIA Ozols <janis@ergli.example>" in staff[2]
    assert section(text, "Open questions")[0].endswith(
        "Q-2026-000109  received  consultation  peteris@example.lv")

    # Waiting for applicants: incomplete with its codes, the link expiring within a day,
    # the verification-expired one.
    [incomplete] = section(text, "Waiting for the applicant: incomplete")
    assert "EA-2026-000104  incomplete" in incomplete
    assert "[SIG-NOT-QUALIFIED, FORM-FIELD-MISSING:org_reg_no]" in incomplete
    [link] = section(text, "Waiting for the applicant: confirmation links expiring")
    assert "SP-2026-000105  awaiting-verification" in link and "link to janis@ergli.example" in link
    [expired] = section(text, "Waiting for the applicant: confirmation link expired")
    assert "EA-2026-000106  verification-expired" in expired

    # Why applications fail (30 days): the 9-day-old incomplete, the 3-day-old one and
    # the staff rejection of 19 days ago; the field of a code is not counted apart.
    codes = section(text, "Why applications fail")
    assert codes[0].split()[:2] == ["3", "SIG-NOT-QUALIFIED:"]
    assert codes[1].split() == ["1", "FORM-FIELD-MISSING:", "org_reg_no", "1"]
    assert facts.top_codes == (("SIG-NOT-QUALIFIED", 3), ("FORM-FIELD-MISSING", 1))
    assert facts.code_fields == (("FORM-FIELD-MISSING", (("org_reg_no", 1),)),)

    # The chart's numbers, in the text too: 9 of the 10 arrived within 30 days.
    assert facts.daily.total() == 9
    per_outcome = dict((o, sum(c)) for o, c in facts.daily.series)
    assert per_outcome == {"approved": 1, "open": 5, "incomplete": 1, "expired": 1, "rejected": 1}
    chart = [line for line in text.splitlines() if line.startswith("== Applications per day")]
    assert chart == ["== Applications per day, last 30 days, by outcome (30 days: approved 1, "
                     "open 5, incomplete 1, link expired 1, rejected 1)"]
    day = ago(days=3).strftime("%Y-%m-%d")
    assert re.search(rf"^  {day}\s+\d+  \(open \d, incomplete 1\)$", text, re.M), text


@pytest.mark.sections(digest={"sla_days": 10})
def test_sla_days_is_the_operators(deployment: Deployment) -> None:
    seed(deployment, SEEDED)
    code, text = deployment.cli("digest")
    assert code == 0
    staff = section(text, "Waiting for staff review")
    assert len(staff) == 3 and not any(line.lstrip().startswith("!!") for line in staff)


def test_sla_days_must_be_positive(deployment: Deployment) -> None:
    from intake.config import load_config
    from intake.errors import ConfigurationError

    path = deployment.config_path
    path.write_text(path.read_text(encoding="utf-8").replace(
        "[digest]\n", "[digest]\nsla_days = 0\n"), encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"digest\.sla_days"):
        load_config(path)


def test_changes_since_the_last_send_cover_a_missed_day(deployment: Deployment) -> None:
    # The last digest went out 50 hours ago; yesterday's was missed (the daemon was down).
    seed(deployment, [
        {"ref": "EA-2026-000201", "history": [("received", ago(hours=60), ""),
                                              ("in-review", ago(hours=60), "ok"),
                                              ("approved", ago(hours=40), "approved")]},
        {"ref": "EA-2026-000202", "history": [("received", ago(hours=30), ""),
                                              ("incomplete", ago(hours=30), "CSR-MISSING")]},
        {"ref": "EA-2026-000203", "history": [("received", ago(hours=55), ""),
                                              ("in-review", ago(hours=55), "ok"),
                                              ("rejected", ago(hours=52), "CSR-MISSING: x")]},
    ])
    with deployment.runtime() as rt, rt.store.session() as s:
        s.add(KeyValue(key=LAST_SENT_KEY, value=ago(hours=50).isoformat()))

    def changes() -> dict[str, int]:
        code, text = deployment.cli("digest")
        assert code == 0
        rows = section(text, "Changes since the last digest")
        return {line.rsplit(None, 1)[0].strip(): int(line.rsplit(None, 1)[1]) for line in rows}

    # Both days since the last send are counted; the rejection before it is not.
    assert changes() == {"received": 1, "approved or active": 1, "incomplete": 1,
                         "rejected": 0, "confirmation link expired": 0}
    # Printing is not sending: the same again.
    assert changes()["approved or active"] == 1

    before = len(deployment.smtp.messages)
    code, out = deployment.cli("digest", "--send")
    assert code == 0 and "outbox: 1 sent, 0 failed" in out, out
    assert len(deployment.smtp.messages) == before + 1
    with deployment.runtime() as rt, rt.store.session() as s:
        stored = datetime.fromisoformat(s.get(KeyValue, LAST_SENT_KEY).value)  # type: ignore[union-attr]
    assert NOW < stored <= datetime.now(UTC)

    # After the send: only what happens later counts.
    seed(deployment, [{"ref": "EA-2026-000204",
                       "history": [("received", datetime.now(UTC), ""),
                                   ("incomplete", datetime.now(UTC), "CSR-MISSING")]}])
    assert changes() == {"received": 1, "approved or active": 0, "incomplete": 1,
                         "rejected": 0, "confirmation link expired": 0}


def png_is_a_chart(data: bytes) -> Image.Image:
    """``data`` decodes as a PNG and is not blank: many non-white pixels, dark and mid greys."""
    image = Image.open(io.BytesIO(data))
    image.load()
    assert image.format == "PNG"
    grey = image.convert("L")
    histogram = grey.histogram()
    total = grey.width * grey.height
    non_white = total - sum(histogram[250:])
    assert non_white > total * 0.03, f"only {non_white} of {total} pixels are not white"
    assert sum(histogram[:80]) > 100 and sum(histogram[80:230]) > 100  # bars, hatches, text
    return image


def test_the_mail_has_a_standalone_text_part_and_the_chart_as_a_related_png(
        deployment: Deployment) -> None:
    seed(deployment, SEEDED)
    before = len(deployment.smtp.messages)
    code, out = deployment.cli("digest", "--send")
    assert code == 0, out
    [envelope] = deployment.smtp.messages[before:]
    assert tuple(envelope.rcpt_tos) == ("staff@agency.test",) and envelope.tls
    [mail] = deployment.replies()[before:]
    assert mail["Auto-Submitted"] == "auto-generated"

    # multipart/alternative: text/plain first, then multipart/related (HTML + PNG).
    assert mail.get_content_type() == "multipart/alternative"
    text_part, related = list(mail.iter_parts())
    assert text_part.get_content_type() == "text/plain"
    assert related.get_content_type() == "multipart/related"
    html_part, image = list(related.iter_parts())  # type: ignore[attr-defined]
    assert html_part.get_content_type() == "text/html"
    assert image.get_content_type() == "image/png"
    cid = image["Content-ID"].strip("<>")
    html = html_part.get_content()
    assert f'src="cid:{cid}"' in html and "data:image" not in html
    png_is_a_chart(image.get_content())

    # The text stands alone: counts, waiting references, codes and the chart's numbers.
    text = text_part.get_content()
    assert "cid:" not in text and "<img" not in text
    assert counts_in_digest(text) == counts_in_list(deployment)
    for row in SEEDED:
        if row["ref"] not in ("API-2026-000107", "EA-2026-000108", "EA-2026-000110"):
            assert row["ref"] in text, row["ref"]
    assert "3  SIG-NOT-QUALIFIED:" in text and "approved 1, open 5" in text
    assert isinstance(mail, EmailMessage)


def chromium(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
         "--force-device-scale-factor=1", f"--user-data-dir={cwd / 'chromium-profile'}",
         "--window-size=1000,2000", *args],
        capture_output=True, text=True, timeout=180, check=False, cwd=cwd)


def test_html_digest_renders_in_chromium_with_the_chart(deployment: Deployment,
                                                        tmp_path: Path) -> None:
    seed(deployment, SEEDED)
    page = tmp_path / "digest.html"
    code, out = deployment.cli("digest", "--html", str(page))
    assert code == 0, out
    html = page.read_text(encoding="utf-8")
    assert "cid:" not in html
    match = re.search(r'<img id="chart" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert match, html[:2000]
    png_is_a_chart(base64.b64decode(match.group(1)))
    # The SLA mark in the HTML too, and every waiting reference.
    assert html.count("&#9888;") == 2 and "past the service level of 5" in html
    for ref in ("EA-2026-000101", "API-2026-000103", "EA-2026-000102", "Q-2026-000109",
                "EA-2026-000104", "SP-2026-000105", "EA-2026-000106"):
        assert ref in html

    # Where the chart is laid out: the same page with a script that writes the
    # image's box into the title, read back from Chromium's DOM dump.
    probe = tmp_path / "digest-probe.html"
    probe.write_text(html.replace("</body>", (
        "<script>const r = document.getElementById('chart').getBoundingClientRect();"
        "document.title = ['box', r.left, r.top, r.width, r.height].join(' ');</script></body>")),
        encoding="utf-8")
    dumped = chromium("--dump-dom", probe.as_uri(), cwd=tmp_path)
    box = re.search(r"<title>box ([\d.]+) ([\d.]+) ([\d.]+) ([\d.]+)</title>", dumped.stdout)
    assert box, dumped.stderr[-2000:]
    left, top, width, height = (float(v) for v in box.groups())
    assert width > 300 and height > 100 and top + height < 2000

    shot = tmp_path / "digest-screenshot.png"
    done = chromium(f"--screenshot={shot}", page.as_uri(), cwd=tmp_path)
    assert shot.is_file(), done.stderr[-2000:]
    print(f"digest screenshot: {shot}")
    screen = Image.open(shot).convert("L")
    assert screen.size == (1000, 2000)
    histogram = screen.histogram()
    assert screen.width * screen.height - sum(histogram[250:]) > 10_000, "the page is blank"
    chart = screen.crop((int(left) + 2, int(top) + 2, int(left + width) - 2, int(top + height) - 2))
    chart_histogram = chart.histogram()
    non_white = chart.width * chart.height - sum(chart_histogram[250:])
    assert non_white > chart.width * chart.height * 0.03, "the chart region is empty"
    assert sum(chart_histogram[:80]) > 100, "no dark bars in the chart region"


def test_the_scheduled_job_sends_it_once_and_records_the_send_time(
        deployment: Deployment) -> None:
    from intake.app.digest import build_digest, queue_digest
    from intake.jobs import StaffDigest, run_job

    seed(deployment, SEEDED)
    before = len(deployment.smtp.messages)
    with deployment.runtime() as rt:
        assert run_job(rt, StaffDigest())
        assert rt.flush_outbox() == (1, 0)
        with rt.store.session() as s:
            row = s.get(KeyValue, LAST_SENT_KEY)
            assert row is not None
            sent_at = datetime.fromisoformat(row.value)
        assert sent_at > NOW
        # The same minute's digest again (a retried tick, a second daemon): no second
        # mail, and the recorded send time stays the first one's.
        assert queue_digest(rt, build_digest(rt, now=sent_at)) == 0
        assert rt.flush_outbox() == (0, 0)
        with rt.store.session() as s:
            assert s.get(KeyValue, LAST_SENT_KEY).value == sent_at.isoformat()  # type: ignore[union-attr]
    [mail] = deployment.replies()[before:]
    assert mail["To"] == "staff@agency.test"
    assert "EA-2026-000101" in mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    # The next digest's changes start at the recorded time.
    code, text = deployment.cli("digest")
    assert code == 0
    assert "(the first digest" not in text
    assert section(text, "Changes since the last digest")[1].split()[-1] == "0"


@pytest.mark.sections(trust={"lotl": "missing-lotl.xml", "cache_dir": "trust-cache"})
def test_trusted_list_freshness_is_in_the_digest(deployment: Deployment) -> None:
    code, text = deployment.cli("digest")
    assert code == 0, text
    rows = section(text, "Trusted lists (freshness)")
    assert rows and all("fresh" in row or "STALE" in row or "no trusted list" in row
                        for row in rows), rows
    assert any("STALE" in row or "no trusted list" in row for row in rows), rows


def test_every_language_names_every_digest_heading() -> None:
    from mailer.compose import language_strings

    def keys(table: dict[str, Any], prefix: str = "") -> set[str]:
        out = set()
        for key, value in table.items():
            out |= keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key}
        return out

    english = keys(language_strings("en")["digest"])
    assert {"sections.staff", "sections.trust", "sections.notices", "outcomes.expired"} <= english
    for language in ("lv", "it"):
        assert keys(language_strings(language)["digest"]) == english, language


@pytest.mark.sections(daemon={"language": "lv"})
def test_the_digest_is_in_the_daemons_language(deployment: Deployment, tmp_path: Path) -> None:
    seed(deployment, SEEDED)
    page = tmp_path / "digest.html"
    code, text = deployment.cli("digest", "--html", str(page))
    assert code == 0, text
    assert text.startswith("Pārskats darbiniekiem")
    assert "== Pieteikumi pēc procedūras un stāvokļa (10)" in text
    assert "== Gaida darbinieku izskatīšanu, vecākie vispirms (3)" in text
    assert "pārsniegts pakalpojuma līmenis: 5 d." in text
    assert "apstiprināti 1, atvērti 5" in text
    assert "In English" not in text  # mail to staff is in one language
    assert '<html lang="lv">' in page.read_text(encoding="utf-8")


def test_a_long_queue_is_counted_in_full_and_cut_for_reading(deployment: Deployment) -> None:
    from intake.app.digest.render import MAX_ROWS

    n = MAX_ROWS + 5
    seed(deployment, [{"ref": f"EA-2026-{300 + i:06d}",
                       "history": [("received", ago(days=9, minutes=i), ""),
                                   ("in-review", ago(days=8, minutes=i), "ok")]}
                      for i in range(n)])
    code, text = deployment.cli("digest")
    assert code == 0
    heading = next(line for line in text.splitlines() if line.startswith("== Waiting for staff"))
    assert heading.endswith(f"({n})")
    staff = section(text, "Waiting for staff review")
    assert len(staff) == MAX_ROWS + 1
    assert staff[-1].strip() == "… and 5 more (pasts list shows them all)"
    # Oldest first: the one received last of all (i = n - 1) is the oldest in review.
    assert f"EA-2026-{300 + n - 1:06d}" in staff[0]
    assert counts_in_digest(text) == counts_in_list(deployment)


def test_the_same_numbers_on_postgresql(tmp_path: Path, imap_account: Any,
                                        imap_mailbox_config: Any, smtp_server: Any, pki: Any,
                                        postgres_db: str) -> None:
    from tests.daemon_env import make_deployment

    dep = make_deployment(tmp_path, imap_account, imap_mailbox_config, smtp_server, pki,
                          database={"url": postgres_db})
    seed(dep, SEEDED)
    code, text = dep.cli("digest")
    assert code == 0, text
    assert counts_in_digest(text) == counts_in_list(dep)
    with dep.runtime() as rt:
        facts = collect(rt)
    assert facts.top_codes == (("SIG-NOT-QUALIFIED", 3), ("FORM-FIELD-MISSING", 1))
    assert [w.reference for w in facts.waiting_staff] == [
        "EA-2026-000101", "API-2026-000103", "EA-2026-000102"]
    assert [w.late for w in facts.waiting_staff] == [True, True, False]
    assert dict(facts.changes)["approved"] == 1
    assert facts.daily.total() == 9


def test_mail_that_needs_a_person_is_listed_with_its_application(deployment: Deployment) -> None:
    from intake.store.models import (
        CertificateNotice,
        IssuedCertificateRow,
        Outbox,
        ReceivedMessage,
    )

    seed(deployment, [
        {"ref": "EA-2026-000401", "extra": {"undeliverable": {"address": "bad@@x",
                                                              "reason": "two @"}},
         "history": [("received", ago(days=1), ""), ("in-review", ago(days=1), "ok")]},
        {"ref": "EA-2026-000402", "extra": {"verification_warning":
                                            "anna@example.lv was verified for another person"},
         "history": [("received", ago(days=1), ""), ("in-review", ago(days=1), "ok")]},
    ])
    with deployment.runtime() as rt, rt.store.session() as s:
        app = s.query(Application).filter_by(reference="EA-2026-000402").one()
        s.add(Outbox(key="k-failed", message_id="<failed-1@agency.test>", application=app,
                     sender="pasts@agency.test", recipients=["anna@example.lv"],
                     to_addr="anna@example.lv", raw=b"x", status="failed",
                     last_error="550 mailbox unavailable"))
        cert = IssuedCertificateRow(application_id=app.id, serial_hex="ab" * 16,
                                    subject="CN=ergli-connector.example.lv",
                                    not_before=ago(days=340), not_after=NOW + timedelta(days=20),
                                    pem="", chain_pem="")
        s.add(cert)
        s.flush()
        # The certificate-lifecycle job's notice, queued within the last day: listed.
        s.add(CertificateNotice(certificate_id=cert.id, threshold_days=30,
                                recipient="anna@example.lv", message_id="<n-1@agency.test>",
                                queued_at=ago(hours=3)))
        s.add(ReceivedMessage(mailbox="applications", uidvalidity=1, uid="7",
                              message_id="<poison@example.lv>", sha256="0" * 64, raw=b"x",
                              sender="mallory@example.lv", subject="Pieteikums\x1b[2J",
                              status="quarantined", last_error="parse timeout"))
    code, text = deployment.cli("digest")
    assert code == 0, text
    [failed] = section(text, "Replies that could not be delivered")
    assert "<failed-1@agency.test>" in failed and "550 mailbox unavailable" in failed
    assert "EA-2026-000402  in-review  eaddress-production" in failed
    [conflict] = section(text, "Addresses verified for another person")
    assert "EA-2026-000402  in-review" in conflict and "verified for another person" in conflict
    [undeliverable] = section(text, "Applicants no reply can be written to")
    assert "EA-2026-000401  in-review" in undeliverable and "bad@@x: two @" in undeliverable
    [expiring] = section(text, "Certificates expiring within 30 days")
    assert "abababababababab…  CN=ergli-connector.example.lv  expires" in expiring
    assert "EA-2026-000402  in-review" in expiring
    [notice] = section(text, "Certificate expiry notices sent since the last digest")
    assert "abababababababab…  expires" in notice and "30-day notice to anna@example.lv" in notice
    assert "EA-2026-000402  in-review" in notice
    [quarantined] = section(text, "Quarantined messages")
    assert "<poison@example.lv>" in quarantined and "parse timeout" in quarantined
    assert "\x1b" not in text and "Pieteikums\\x1b[2J" in quarantined
