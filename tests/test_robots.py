"""Mail that is itself automatic gets no answer (SPEC section 5); mail people write does.

The table runs over real mail from other projects' test data
(``tests/messages/heldout``, sources in its README): bounces, reports,
vacation and out-of-office replies, list traffic, and ordinary mail from the
same collections that must still be answered. The end-to-end test sends some
of them through Dovecot and the SMTP server.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.demo.samples import application_mail, make_csr
from intake.mime.parse import parse_message
from intake.store.models import ReceivedMessage
from tests.daemon_env import TO, Deployment, good_mail

HELDOUT = Path(__file__).parent / "messages" / "heldout"

AUTO = "auto-submitted"
BULK = "bulk or list mail"
BOUNCE = "bounce or delivery report"
OOF = "out-of-office or automatic reply (subject)"
NOREPLY = "no-reply sender address"

#: Each real message and the reason it is not answered (None: it is answered).
TABLE = [
    # Lotus Notes out-of-office: only its "AUTO:" subject says so.
    ("bounceparser--warning-6", OOF),
    ("bounceparser--aol-vacation", AUTO),
    ("bounceparser--autoreply", BULK),
    ("bounceparser--domino-unknown", BOUNCE),
    ("bounceparser--qmail-unknown", BOUNCE),
    # An MDN (multipart/report; report-type=disposition-notification).
    ("flanker--disposition-notification", BOUNCE),
    ("flanker--complaints-aol", BULK),
    ("flanker--bounce-gmail-no-dns", BOUNCE),
    ("mailgem--report_422", AUTO),
    ("mailgem--multipart_report_multiple_status", BOUNCE),
    ("mailparser--delivery-status", BOUNCE),
    ("mimekit--bounce", AUTO),
    ("pigeonhole--vacation-xars-all",
     "automatic answers suppressed (X-Auto-Response-Suppress: all)"),
    ("pigeonhole--vacation-xars-dr-oof-rn",
     "automatic answers suppressed (X-Auto-Response-Suppress: dr, oof, rn)"),
    ("pigeonhole--vacation-auto-submitted-yes", AUTO),
    ("pigeonhole--vacation-list-id", BULK),
    ("rt--multipart-report", AUTO),
    # An ARF feedback report.
    ("sisimai--arf-01", BOUNCE),
    # fml's "not a member" answer: Mailing-List, List-Subscribe, X-ML-Name.
    ("sisimai--lhost-fml-02", BULK),
    ("sisimai--lhost-kddi-01", NOREPLY),
    ("sisimai--lhost-amazonses-09", NOREPLY),
    # A plain-text bounce from post_master@.
    ("sisimai--lhost-verizon-02", BOUNCE),
    ("sisimai--lhost-notes-01", BOUNCE),
    ("sisimai--lhost-office365-01", AUTO),
    ("sisimai--rfc3834-01", AUTO),
    ("sisimai--rfc3834-02", BOUNCE),
    # iCloud vacation: X-Apple-Action: VACATION and nothing else.
    ("sisimai--rfc3834-03", "vacation reply (X-Apple-Action: VACATION)"),
    ("sisimai--rfc3834-06", AUTO),
    # Written by people.
    ("sisimai--is-not-bounce-01", None),
    ("sisimai--is-not-bounce-02", None),
    ("pigeonhole--vacation-normal-mail", None),
    ("flanker--iphone", None),
    ("flanker--outlook-express", None),
    ("rt--text-html-with-umlaut", None),
    # A person forwarding a bounce is a person.
    ("sisimai--lhost-sendmail-14", None),
    # flufl.bounce calls this one a bounce; it is a person's mail.
    ("rt--notes-uuencoded", None),
    ("mailgem--raw_email_reply", None),
    ("mimekit--japanese", None),
]


def test_every_copied_message_is_in_a_table() -> None:
    used = {name for name, _ in TABLE} | {name for name, _ in ADDRESSES} | CHARSETS
    assert {p.stem for p in HELDOUT.glob("*.eml")} == used


@pytest.mark.parametrize(("name", "reason"), TABLE, ids=[n for n, _ in TABLE])
def test_real_mail(name: str, reason: str | None) -> None:
    mail = parse_message((HELDOUT / f"{name}.eml").read_bytes())
    assert mail.no_reply_reason == reason


#: Used by tests/test_addresses.py and tests/test_charsets.py.
ADDRESSES = [("mailgem--utf8_headers", None), ("mailgem--japanese_shift_jis", None)]
CHARSETS = {"rt--russian-subject-no-content-type"}


def _mail(headers: str, *, sender: str = "anna@example.lv", subject: str = "Jautājums",
          body: str = "Labdien!\r\n") -> bytes:
    return (f"From: {sender}\r\nTo: {TO}\r\nSubject: {subject}\r\n{headers}"
            f"Message-ID: <m1@example.lv>\r\n\r\n{body}").encode()


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ("X-Auto-Response-Suppress: All\r\n",
         "automatic answers suppressed (X-Auto-Response-Suppress: all)"),
        ("X-Auto-Response-Suppress: OOF\r\n",
         "automatic answers suppressed (X-Auto-Response-Suppress: oof)"),
        ("X-Auto-Response-Suppress: AutoReply\r\n",
         "automatic answers suppressed (X-Auto-Response-Suppress: autoreply)"),
        ("X-Auto-Response-Suppress: DR, RN, NRN\r\n",
         "automatic answers suppressed (X-Auto-Response-Suppress: dr, nrn, rn)"),
        ("X-Auto-Response-Suppress: None\r\n", None),
        ("X-Apple-Action: VACATION\r\n", "vacation reply (X-Apple-Action: VACATION)"),
        ("List-Subscribe: <mailto:l-subscribe@example.org>\r\n", BULK),
        ("List-Help: <mailto:l-help@example.org>\r\n", BULK),
        ("List-Post: <mailto:l@example.org>\r\n", BULK),
        ("Mailing-List: contact l-help@example.org; run by ezmlm\r\n", BULK),
        ("X-ML-Name: neko-nyaan\r\n", BULK),
        ("X-Mailing-List: <l@example.org> archive/latest/7\r\n", BULK),
        ("X-Ricevuta: accettazione\r\nX-Trasporto: posta-certificata\r\n",
         "PEC receipt (X-Ricevuta: accettazione)"),
        ("X-Ricevuta: avvenuta-consegna\r\n", "PEC receipt (X-Ricevuta: avvenuta-consegna)"),
        ("X-Ricevuta: errore-consegna\r\n", "PEC receipt (X-Ricevuta: errore-consegna)"),
        ("X-Trasporto: errore\r\n", "PEC error notice (X-Trasporto: errore)"),
        ("X-Trasporto: posta-certificata\r\n", None),
    ],
)
def test_headers(headers: str, reason: str | None) -> None:
    assert parse_message(_mail(headers)).no_reply_reason == reason


@pytest.mark.parametrize(
    "subject",
    [
        "AUTO: Jānis Bērziņš is out of the office (returning 05/01/2027)",
        "Out of Office: Pieteikums", "Out of Office AutoReply: Pieteikums",
        "Automatic reply: Pieteikums", "Auto reply: x", "Autoreply: x", "Auto: x",
        "I am out of the office until Monday",
        "Automātiskā atbilde: Pieteikums", "Prombūtnē: Pieteikums", "Atvaļinājumā",
        "Risposta automatica: Domanda", "Fuori sede: Domanda", "Assente: Domanda",
        "Automatische Antwort: Antrag", "Abwesenheitsnotiz: Antrag", "Nicht im Büro: x",
        "Автоматический ответ: Заявка", "Автоответ: Заявка", "Нет на месте",
        "Réponse automatique : Demande", "Absent du bureau: Demande", "Message d'absence",
        "Automaatne vastus: Taotlus", "Kontorist väljas: Taotlus", "Puhkusel",
        "Automatinis atsakymas: Prašymas", "Ne biure: Prašymas", "Atostogose",
    ],
)
def test_out_of_office_subjects(subject: str) -> None:
    assert parse_message(_mail("", subject=subject)).no_reply_reason == OOF


@pytest.mark.parametrize(
    "subject",
    ["Automātiskās atbildes netiek saņemtas", "Auto registration question", "Out of order",
     "Jautājums par prombūtnes iesniegumu", "Re: Absent signature on my form?",
     "Ausfall des Servers", "Vacation days request form"],
)
def test_subjects_people_write(subject: str) -> None:
    assert parse_message(_mail("", subject=subject)).no_reply_reason is None


def test_the_subject_check_is_bounded() -> None:
    # A run of spaces once made the pattern quadratic (7 s for 40 000).
    started = time.perf_counter()
    for filler in (" " * 400_000, "\t " * 200_000):
        parse_message(_mail("", subject=f"Auto{filler}reply: x"))
    assert time.perf_counter() - started < 2


@pytest.mark.parametrize(
    ("sender", "reason"),
    [
        ("no-reply@portal.example", NOREPLY), ("noreply@portal.example", NOREPLY),
        ("do-not-reply@portal.example", NOREPLY), ("donotreply@portal.example", NOREPLY),
        ("no_reply+123@portal.example", NOREPLY),
        ("noreplyanna@example.lv", None), ("anna.noreply.fan@example.lv", None),
        ("postmaster@mx.example", BOUNCE), ("post_master@mx.example", BOUNCE),
        ("MAILER-DAEMON@mx.example", BOUNCE),
    ],
)
def test_senders(sender: str, reason: str | None) -> None:
    assert parse_message(_mail("", sender=sender)).no_reply_reason == reason


def test_a_form_outweighs_the_weaker_signs(pki: object) -> None:
    """A person's form is answered even when the client asks for no auto replies."""
    raw = good_mail(pki)
    for header in (b"X-Auto-Response-Suppress: All", b"Subject: Automatic reply: x",
                   b"Reply-To: no-reply@ergli.example"):
        mail = parse_message(header + b"\n" + raw)
        assert mail.no_auto_reply is not None, header
        assert mail.no_reply_reason is None, header
    # The firm signs still hold with a form.
    mail = parse_message(b"X-Ricevuta: accettazione\n" + raw)
    assert mail.no_reply_reason == "PEC receipt (X-Ricevuta: accettazione)"


ROBOTS = {
    "sisimai--rfc3834-03": "vacation reply (X-Apple-Action: VACATION)",
    "bounceparser--warning-6": OOF,
    "pigeonhole--vacation-xars-dr-oof-rn":
        "automatic answers suppressed (X-Auto-Response-Suppress: dr, oof, rn)",
    "sisimai--lhost-fml-02": BULK,
    "sisimai--lhost-verizon-02": BOUNCE,
    "sisimai--lhost-kddi-01": NOREPLY,
    "sisimai--arf-01": BOUNCE,
}
PEOPLE = {"pigeonhole--vacation-normal-mail": "timo@example.com",
          "flanker--iphone": "someone@somewhere.com"}


def test_robots_through_dovecot_get_no_answer_and_no_application(
        deployment: Deployment) -> None:
    for name in [*ROBOTS, *PEOPLE]:
        deployment.deliver((HELDOUT / f"{name}.eml").read_bytes())
    pec = application_mail(sender="posta-certificata@pec.example.it", to=TO,
                           subject="ACCETTAZIONE: Domanda",
                           headers={"X-Ricevuta": "accettazione",
                                    "X-Trasporto": "posta-certificata"})
    deployment.deliver(pec)
    deployment.run_once()

    replies = deployment.replies()
    assert sorted(r["To"] for r in replies) == sorted(PEOPLE.values())
    assert all("FORM-MISSING" in r["X-Pasts-Codes"] for r in replies)
    code, listed = deployment.cli("list")
    assert code == 0
    # Neither robots nor bare mail from people make applications (issue 10:
    # junk is recorded in the ledger); the people are answered all the same.
    assert listed.strip() == "no applications", listed
    assert deployment.inbox() == []

    with deployment.runtime() as rt, rt.store.session() as s:
        rows = s.scalars(select(ReceivedMessage)).all()
        outcomes = {r.sender: (r.status, r.outcome) for r in rows}
    for name, reason in ROBOTS.items():
        sender = parse_message((HELDOUT / f"{name}.eml").read_bytes()).from_addr
        assert outcomes[sender] == ("ignored", f"not answered: {reason}"), name
    assert outcomes["posta-certificata@pec.example.it"] == (
        "ignored", "not answered: PEC receipt (X-Ricevuta: accettazione)")
    for sender in PEOPLE.values():
        status, outcome = outcomes[sender]
        assert status == "processed" and (outcome or "").startswith("junk:"), outcome


def test_pec_receipt_is_kept_on_the_reply_it_is_about(deployment: Deployment) -> None:
    """SPEC section 2: a PEC receipt is never answered and is proof of delivery."""
    # A form-less application (it carries a CSR): bare words would be junk,
    # answered without an application.
    deployment.deliver(application_mail(sender="comune.forli@pec.example.it", to=TO,
                                        subject="Domanda", csr=make_csr("comune.example.it")))
    deployment.run_once()
    [reply] = deployment.replies()
    reference = reply["X-Pasts-Reference"]
    receipt = application_mail(
        sender="posta-certificata@pec.example.it", to=TO,
        subject=f"CONSEGNA: {reply['Subject']}",
        headers={"X-Ricevuta": "avvenuta-consegna", "X-Trasporto": "posta-certificata",
                 "X-Riferimento-Message-ID": reply["Message-ID"]})
    deployment.deliver(receipt)
    deployment.run_once()
    assert len(deployment.replies()) == 1
    code, shown = deployment.cli("show", reference)
    assert code == 0
    line = next(x for x in shown.splitlines() if reply["Message-ID"] in x and " out " in x)
    assert "[PEC: avvenuta-consegna" in line, shown
