"""Headers in undeclared 8-bit charsets read right, and the reply's subject says so.

Old clients and Windows offices write raw 8-bit headers in their own code
page (windows-1257 in Latvia and Lithuania, windows-1251 or KOI8-R for
Russian) without RFC 2047 encoding. They used to be read as Latin-1
("Re: ÔÅÓÔ" for a KOI8-R "тест").
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from intake.demo.samples import make_csr
from intake.mime.parse import parse_message
from intake.mime.text import guess_charset
from intake.store.models import ReceivedMessage
from tests.daemon_env import TO, Deployment, reference_of

HELDOUT = Path(__file__).parent / "messages" / "heldout"
RUSSIAN = HELDOUT / "rt--russian-subject-no-content-type.eml"


def raw_mail(name: str, subject: str, charset: str, *, declared: str | None = None,
             body: str = "Labdien!") -> bytes:
    content_type = f"Content-Type: text/plain; charset={declared}\r\n" if declared else ""
    return (b"From: " + name.encode(charset) + b" <birojs@ziemelu.example>\r\n"
            + f"To: {TO}\r\nMessage-ID: <8bit-{charset}@ziemelu.example>\r\n".encode()
            + b"Subject: " + subject.encode(charset) + b"\r\n"
            + f"MIME-Version: 1.0\r\n{content_type}\r\n".encode()
            + body.encode(charset) + b"\r\n")


@pytest.mark.parametrize(
    ("name", "subject", "charset"),
    [
        ("SIA Ziemeļu Pārvaldnieks", "Pieteikums e-adresei ražošanas videi", "cp1257"),
        ("Pārvaldnieks", "Pārvaldnieks", "cp1257"),
        ("Jonas Žukauskas", "Prašymas dėl el. adreso", "cp1257"),
        ("Mari Tamm", "Taotlus: Jõgeva vallavalitsus", "cp1257"),
        ("Пётр Иванов", "Заявка на подключение", "cp1251"),
        ("Иван", "тест тест", "koi8-r"),
        ("Niccolò Bianchi", "Richiesta città", "cp1252"),
        ("Jürgen Müller", "Antrag für Straße", "cp1252"),
    ],
)
def test_undeclared_8bit_headers(name: str, subject: str, charset: str) -> None:
    mail = parse_message(raw_mail(name, subject, charset))
    assert (mail.from_name, mail.subject) == (name, subject)
    assert mail.from_addr == "birojs@ziemelu.example"
    # It is still recorded that the sender broke RFC 5322.
    assert any("not UTF-8" in d for d in mail.defects)


def test_the_body_declared_charset_is_the_hint() -> None:
    # "Ðàäèî" is what these windows-1251 bytes give read as windows-1252.
    mail = parse_message(raw_mail("Радио", "Радио", "cp1251", declared="windows-1251",
                                  body="Радио"))
    assert mail.subject == "Радио" and mail.body_text == "Радио"
    # A wrong or unknown declaration falls back to the guess.
    mail = parse_message(raw_mail("Pārvaldnieks", "Pārvaldnieks", "cp1257",
                                  declared="x-unknown"))
    assert mail.subject == "Pārvaldnieks"


def test_utf8_headers_are_read_as_utf8() -> None:
    raw = "From: Jānis <janis@example.lv>\r\nSubject: Ērgļu Māja\r\n\r\nx\r\n".encode()
    mail = parse_message(raw)
    assert (mail.from_name, mail.subject, mail.defects) == ("Jānis", "Ērgļu Māja", ())


def test_rt_russian_subject_without_content_type() -> None:
    mail = parse_message(RUSSIAN.read_bytes())
    assert mail.subject == "тест тест"
    assert mail.body_text == "ТЕСТ"


def test_the_guess_is_bounded() -> None:
    # Megabytes of 8-bit text are weighed by their first few kilobytes.
    assert guess_charset("Pārvaldnieks ".encode("cp1257") * 200_000) == "cp1257"


def test_reply_subjects_at_the_smtp_server(deployment: Deployment) -> None:
    # A form-less application (it carries a CSR) is answered with its own subject.
    csr = make_csr("ziemelu-connector.example.lv").decode().replace("\n", "\r\n")
    latvian = raw_mail("SIA Ziemeļu Pārvaldnieks", "Pieteikums: Pārvaldnieks", "cp1257",
                       body="Labdien!\r\n" + csr)
    deployment.deliver(latvian)
    deployment.deliver(RUSSIAN.read_bytes())
    deployment.run_once()
    replies = {str(r["To"]): r for r in deployment.replies()}
    lv = replies["birojs@ziemelu.example"]
    assert lv["Subject"].replace(f" [{reference_of(lv)}]", "") == "Re: Pieteikums: Pārvaldnieks"
    # Bare words are junk (issue 10): the reply does not repeat their subject,
    # and the ledger keeps it, read right.
    assert "тест" not in str(replies["mitya@fling-wing.example.com"]["Subject"])
    with deployment.runtime() as rt, rt.store.session() as s:
        subjects = {m.sender: m.subject for m in s.scalars(select(ReceivedMessage))}
    assert subjects["mitya@fling-wing.example.com"] == "тест тест"
    code, listed = deployment.cli("show", reference_of(lv))
    assert code == 0
