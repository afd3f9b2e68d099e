"""Tests of the mailer: composing replies (SPEC section 5) and sending them.

Transport tests talk to a real aiosmtpd server on 127.0.0.1 (see
``tests/fixtures/smtp.py``); nothing is mocked.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from email import message_from_bytes
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import SMTP, default
from pathlib import Path
from typing import Any

import aiosmtplib
import pytest

from intake.config import SmtpConfig, parse_config
from intake.errors import DeliveryError
from mailer.compose import (
    EVENTS,
    LANGUAGES,
    MAX_REFERENCES,
    Finding,
    ReplySpec,
    catalog_codes,
    codes_header,
    compose,
    compose_wire,
    explain,
    render,
)
from mailer.settings import SettingsError
from mailer.transport import MaildirTransport, SmtpTransport, make_transport
from tests.fixtures.smtp import SMTP_USER, SmtpTestServer
from tests.shared import SPEC as SHARED_SPEC

SPEC_PATH = SHARED_SPEC
REF = "EA-2026-000042"
FIXED_DATE = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)

#: Context values every template can use, so that each one renders fully.
FULL_CONTEXT: dict[str, Any] = {
    "workflow_title": "E-adrese: ražošanas vide",
    "workflows": ["E-adrese (ražošanas vide)", "API pārvaldnieka piekļuve"],
    "support_address": "atbalsts@agency.test",
    "certificate": True,
    "service_name": "Būvatļaujas",
    "note": "Compliance check failed",
    "verification_url": "https://verify.agency.test/v/AbC123",
    "confirm_url": "https://verify.agency.test/v/CoNf1rm",
    "expires_at": "2026-03-17 09:26 UTC",
    "warning_other_person": True,
    "request_hint": "Reply with NEW LINK in the subject.",
    "serial": "5F3A9C0E11",
    "certificate_subject": "CN=ergli-connector.example.lv,O=SIA Ērgļu Māja",
    "not_after": "2026-04-13",
    "days_left": 30,
    "form_name": "EA-2026-000042-renewal.pdf",
    "sections": [
        ("Open questions", [("Q-2026-000001", "jautājums par API")]),
        ("Waiting for review", ["EA-2026-000042 Ēriks Ķēniņš"]),
        ("Empty section", []),
    ],
}


def make_spec(**overrides: Any) -> ReplySpec:
    values: dict[str, Any] = {
        "to": "applicant@example.lv",
        "sender": "pasts@agency.test",
        "template": "rejected",
        "language": "en",
        "message_id": "<reply-1@agency.test>",
        "reference": REF,
        "status": "incomplete",
        "findings": (Finding("SIG-MODIFIED"), Finding("FORM-FIELD-MISSING:org_reg_no")),
        "original_subject": "Application for e-address",
        "in_reply_to": "<orig-1@example.lv>",
        "references": ("<root@example.lv>",),
        "context": FULL_CONTEXT,
        "date": FIXED_DATE,
    }
    values.update(overrides)
    return ReplySpec(**values)


def wire(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=SMTP)


def parse(data: bytes) -> EmailMessage:
    parsed = BytesParser(policy=default).parsebytes(data)
    assert isinstance(parsed, EmailMessage)
    return parsed


def bodies(msg: EmailMessage) -> tuple[str, str]:
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()  # type: ignore[attr-defined]


def header_block(data: bytes) -> bytes:
    return data.split(b"\r\n\r\n", 1)[0]


# ---------------------------------------------------------------------------
# compose: headers


def test_reply_has_every_spec_header() -> None:
    msg = parse(wire(compose(make_spec())))
    assert msg["From"] == "pasts@agency.test"
    assert msg["To"] == "applicant@example.lv"
    assert msg["Subject"] == f"Re: Application for e-address [{REF}]"
    assert msg["Date"] == "Sat, 14 Mar 2026 09:26:53 +0000"
    assert msg["Message-ID"] == "<reply-1@agency.test>"
    assert msg["In-Reply-To"] == "<orig-1@example.lv>"
    assert msg["References"] == "<root@example.lv> <orig-1@example.lv>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["X-Pasts-Reference"] == REF
    assert msg["X-Pasts-Status"] == "incomplete"
    assert msg["X-Pasts-Codes"] == "FORM-FIELD-MISSING:org_reg_no,SIG-MODIFIED"
    # RFC 3834 section 3.1.8: automatic responses do not use Precedence.
    assert msg["Precedence"] is None
    assert msg.get_content_type() == "multipart/alternative"
    text, html = bodies(msg)
    assert "SIG-MODIFIED" in text and "SIG-MODIFIED" in html


def test_codes_header_is_sorted_and_unique() -> None:
    findings = (
        Finding("TS-MISSING"),
        Finding("CSR-MISSING"),
        Finding("FORM-FIELD-INVALID:org_reg_no"),
        Finding("CSR-MISSING", "second time"),
        Finding("FORM-FIELD-INVALID:contact_email"),
    )
    expected = (
        "CSR-MISSING,FORM-FIELD-INVALID:contact_email,FORM-FIELD-INVALID:org_reg_no,TS-MISSING"
    )
    assert codes_header(findings) == expected
    msg = parse(wire(compose(make_spec(findings=findings))))
    assert msg["X-Pasts-Codes"] == expected
    # Every finding is explained in the notice, not just the first.
    text, _ = bodies(msg)
    for code in (
        "CSR-MISSING",
        "TS-MISSING",
        "FORM-FIELD-INVALID:org_reg_no",
        "FORM-FIELD-INVALID:contact_email",
    ):
        assert f"[{code}]" in text


def test_no_codes_header_without_findings() -> None:
    msg = parse(wire(compose(make_spec(template="in-review", status="in-review", findings=()))))
    assert msg["X-Pasts-Codes"] is None
    assert msg["X-Pasts-Status"] == "in-review"


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        (f"Application [{REF}]", f"Re: Application [{REF}]"),
        (f"Re: RE: Aw: Application [{REF}]", f"Re: Application [{REF}]"),
        ("RE: application", f"Re: application [{REF}]"),
        ("  spaced \t subject  ", f"Re: spaced subject [{REF}]"),
        ("", f"Your application is incomplete [{REF}]"),
    ],
)
def test_subject_carries_reference_once(original: str, expected: str) -> None:
    msg = parse(wire(compose(make_spec(original_subject=original))))
    assert msg["Subject"] == expected
    assert msg["Subject"].count(f"[{REF}]") == 1


def test_references_are_trimmed_keeping_root_and_latest() -> None:
    refs = tuple(f"<m{i}@example.lv>" for i in range(40))
    msg = parse(wire(compose(make_spec(references=refs, in_reply_to="<last@example.lv>"))))
    ids = msg["References"].split()
    assert len(ids) == MAX_REFERENCES
    assert ids[0] == "<m0@example.lv>"
    assert ids[-1] == "<last@example.lv>"
    assert ids[-2] == "<m39@example.lv>"


def test_verification_mail_is_auto_generated_without_thread() -> None:
    spec = make_spec(
        template="verify-email",
        auto_submitted="auto-generated",
        original_subject="",
        in_reply_to=None,
        references=(),
        findings=(),
        status="awaiting-verification",
    )
    msg = parse(wire(compose(spec)))
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg["In-Reply-To"] is None and msg["References"] is None
    assert msg["Subject"] == f"Please confirm your e-mail address [{REF}]"
    text, html = bodies(msg)
    assert "https://verify.agency.test/v/AbC123" in text
    assert 'href="https://verify.agency.test/v/AbC123"' in html
    assert "already confirmed for another person" in text


def test_status_unknown_reveals_nothing() -> None:
    spec = make_spec(
        template="status-unknown",
        status="incomplete",
        findings=(Finding("SIG-MODIFIED"),),
        original_subject=f"STATUS {REF}",
    )
    msg = parse(wire(compose(spec)))
    assert msg["X-Pasts-Status"] is None
    assert msg["X-Pasts-Codes"] is None
    text, html = bodies(msg)
    assert "cannot give information" in text
    for body in (text, html):
        assert "incomplete" not in body and "SIG-MODIFIED" not in body


def test_date_defaults_to_now_and_naive_dates_are_utc() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    msg = parse(wire(compose(make_spec(date=None))))
    sent = msg["Date"].datetime
    assert before <= sent <= datetime.now(UTC) + timedelta(seconds=1)
    naive = parse(wire(compose(make_spec(date=datetime(2026, 1, 2, 3, 4, 5)))))
    assert naive["Date"] == "Fri, 02 Jan 2026 03:04:05 +0000"
    riga = timezone(timedelta(hours=2))
    local = parse(wire(compose(make_spec(date=datetime(2026, 1, 2, 5, 4, 5, tzinfo=riga)))))
    assert local["Date"] == "Fri, 02 Jan 2026 03:04:05 +0000"


# ---------------------------------------------------------------------------
# compose: hostile input


def test_header_injection_is_neutralised() -> None:
    evil = "\r\nBcc: victim@evil.test\r\nX-Evil: 1"
    spec = make_spec(
        original_subject=f"Hello{evil}",
        reference=f"{REF}{evil}",
        status=f"incomplete{evil}",
        findings=(
            Finding(f"SIG-MODIFIED{evil}", detail=evil),
            Finding("CSR-MISSING\nBcc: x@y.test"),
        ),
        in_reply_to=f"<orig@example.lv>{evil}",
        references=(f"<a@example.lv>{evil}", "\nBcc: z@evil.test"),
        context={**FULL_CONTEXT, "workflow_title": f"Title{evil}", "agency_name": f"Agency{evil}"},
        attachments=((f"cert{evil}.pem", f"application/x-pem-file{evil}", b"PEM"),),
        auto_submitted=f"auto-replied{evil}",
        template="approved",
    )
    data = wire(compose(spec))
    msg = parse(data)
    for part in msg.walk():
        assert part["Bcc"] is None
        assert part["X-Evil"] is None
        for name, value in part.items():
            assert "\r" not in str(value) and "\n" not in str(value), name
    # No line of the raw top-level header block starts an injected header
    # (the text body may show the applicant's text, which is harmless there).
    for line in header_block(data).split(b"\r\n"):
        assert not line.lower().startswith((b"bcc:", b"x-evil:"))
    assert msg["In-Reply-To"] == "<orig@example.lv>"
    assert msg["References"] == "<a@example.lv> <orig@example.lv>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Subject"].startswith("Re: Hello Bcc: victim@evil.test")
    assert len(msg["To"].addresses) == 1
    filename = next(msg.iter_attachments()).get_filename()
    assert filename is not None and "\n" not in filename and "\r" not in filename


@pytest.mark.parametrize(
    "bad",
    [
        "applicant@example.lv\r\nBcc: victim@evil.test",
        "applicant@example.lv\nBcc: victim@evil.test",
        "applicant@example.lv, other@example.lv",
        "Applicant <applicant@example.lv>",
        "<applicant@example.lv>",
        "no-at-sign",
        "a b@example.lv",
        "@example.lv",
        "applicant@",
        "applicant@localhost",
        '"quoted"@example.lv',
        "",
    ],
)
def test_invalid_recipient_is_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        compose(make_spec(to=bad))


def test_idn_recipient_domain_is_encoded() -> None:
    msg = parse(wire(compose(make_spec(to="janis@pašvaldība.lv"))))
    assert msg["To"] == "janis@" + "pašvaldība.lv".encode("idna").decode()
    assert msg["To"].startswith("janis@xn--")


def test_bad_message_id_is_refused() -> None:
    for bad in ("no-brackets@x", "<a@b>\r\nBcc: x@y", "<a b@c>", "<nodomain>"):
        with pytest.raises(ValueError):
            compose(make_spec(message_id=bad))


def test_html_escapes_user_values() -> None:
    script = "<script>alert('x')</script>"
    spec = make_spec(
        findings=(Finding("FORM-FIELD-INVALID:service_name", detail=script),),
        context={**FULL_CONTEXT, "workflow_title": script},
        template="rejected",
    )
    text, html = bodies(parse(wire(compose(spec))))
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    # The text body shows the value as the applicant wrote it.
    assert script in text
    digest = make_spec(template="digest", context={"sections": [(script, [(script, "ok")])]})
    _, digest_html = bodies(parse(wire(compose(digest))))
    assert "<script>" not in digest_html and digest_html.count("&lt;script&gt;") == 2


def test_latvian_and_italian_text_survive() -> None:
    subject = "Pieteikums — Ēriks Ķēniņš, perché è così"
    lv = parse(wire(compose(make_spec(language="lv", original_subject=subject))))
    assert lv["Subject"] == f"Re: {subject} [{REF}]"
    text, html = bodies(lv)
    assert "Lūdzu, novērsiet visus trūkumus" in text
    assert "Veidlapa ir mainīta pēc parakstīšanas." in text
    assert 'lang="lv"' in html and "Obligātais lauks" in html
    assert lv["Content-Language"] == "lv"
    it = parse(
        wire(
            compose(
                make_spec(
                    language="it",
                    template="in-review",
                    context={"workflow_title": "Città di Forlì"},
                )
            )
        )
    )
    text, html = bodies(it)
    assert "Città di Forlì" in text and "Città di Forlì" in html
    assert "è ora in esame" in text
    # Headers on the wire are pure ASCII (RFC 2047 encoded words).
    assert header_block(wire(compose(make_spec(language="lv", original_subject=subject)))).isascii()


def test_unknown_language_falls_back_to_english() -> None:
    msg = parse(wire(compose(make_spec(language="de"))))
    text, _ = bodies(msg)
    assert "Unfortunately it is incomplete" in text
    lv_region = parse(wire(compose(make_spec(language="lv-LV"))))
    assert "Diemžēl" in bodies(lv_region)[0]


def test_output_is_byte_stable() -> None:
    spec = make_spec(
        template="approved", attachments=((f"{REF}.pem", "application/x-pem-file", b"x"),)
    )
    first, second = wire(compose(spec)), wire(compose(spec))
    assert first == second
    other = wire(
        compose(
            make_spec(
                message_id="<reply-2@agency.test>",
                template="approved",
                attachments=spec.attachments,
            )
        )
    )
    boundaries = set(re.findall(rb'boundary="([^"]+)"', first))
    assert len(boundaries) == 2
    assert boundaries.isdisjoint(re.findall(rb'boundary="([^"]+)"', other))


def test_boundary_in_user_text_cannot_split_the_message() -> None:
    # An applicant who guesses the boundary and writes it into a form value
    # must not be able to start a MIME part of their own.
    probe = wire(compose(make_spec(template="received", findings=())))
    found = re.search(rb'boundary="([^"]+)"', probe)
    assert found is not None
    boundary = found.group(1).decode()
    evil = f"\r\n--{boundary}\r\nContent-Type: text/html\r\n\r\n<b>fake</b>\r\n--{boundary}--\r\n"
    spec = make_spec(template="received", findings=(), context={"workflow_title": evil})
    data = wire(compose(spec))
    msg = parse(data)
    assert [p.get_content_type() for p in msg.walk()] == [
        "multipart/alternative",
        "text/plain",
        "text/html",
    ]
    assert f"--{boundary}\r\nContent-Type: text/html\r\n\r\n<b>".encode() not in data
    text, html = bodies(msg)
    assert f"--{boundary}" in text and "&lt;b&gt;fake" in html


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("template", EVENTS)
def test_every_template_renders_in_every_language(template: str, language: str) -> None:
    spec = make_spec(template=template, language=language)
    msg = parse(wire(compose(spec)))
    text, html = bodies(msg)
    assert len(text) > 100 and len(html) > 200
    assert html.lstrip().startswith("<!DOCTYPE html>") and f'lang="{language}"' in html
    assert REF in text
    assert msg["Subject"].endswith(f"[{REF}]")
    if language != "en":
        english_text, _ = render(make_spec(template=template, language="en"))
        assert text.strip() != english_text.strip()
    # The templates put no stray Jinja syntax into the output.
    assert "{{" not in text and "{%" not in html


def test_template_without_required_value_is_an_error() -> None:
    with pytest.raises(ValueError, match="verification_url"):
        compose(make_spec(template="verify-email", context={}))
    with pytest.raises(ValueError, match="unknown reply template"):
        compose(make_spec(template="no-such-event"))


def test_certificate_attached_as_pem() -> None:
    pem = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" * 2
    spec = make_spec(
        template="approved",
        status="approved",
        findings=(),
        attachments=((f"{REF}.pem", "application/x-pem-file", pem),),
    )
    msg = parse(wire(compose(spec)))
    assert msg.get_content_type() == "multipart/mixed"
    attachments = list(msg.iter_attachments())
    assert len(attachments) == 1
    att = attachments[0]
    assert att.get_filename() == f"{REF}.pem"
    assert att.get_content_type() == "application/x-pem-file"
    assert att.get_content_disposition() == "attachment"
    assert att.get_payload(decode=True) == pem
    text, html = bodies(msg)
    assert f"{REF}.pem" in text and "private key" in text


# ---------------------------------------------------------------------------
# The rule-code catalog.


def spec_codes() -> set[str]:
    """The codes of SPEC section 3, read from the table in SPEC.md."""
    text = SPEC_PATH.read_text(encoding="utf-8")
    section = text.split("## 3.", 1)[1].split("\n## ", 1)[0]
    codes = set()
    for line in section.splitlines():
        m = re.match(r"^\|\s*`([A-Z][A-Z0-9-]*)(?::<[^>]+>)?`\s*\|", line)
        if m:
            codes.add(m.group(1))
    return codes


def test_spec_table_is_parsed() -> None:
    codes = spec_codes()
    assert len(codes) >= 24
    assert {"FORM-MISSING", "FORM-FIELD-MISSING", "SIG-MODIFIED", "DUPLICATE"} <= codes


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_spec_code_is_explained_in_every_language(language: str) -> None:
    missing = spec_codes() - catalog_codes(language)
    assert not missing, f"{language} catalog lacks {sorted(missing)}"
    generic = explain("NO-SUCH-CODE", language)
    for code in spec_codes():
        sentence, fix = explain(code + ":org_reg_no", language)
        assert sentence and fix and (sentence, fix) != generic
        if code.startswith("FORM-FIELD-"):
            assert "org_reg_no" in sentence and "org_reg_no" in fix
        assert "{" not in sentence + fix


def test_catalog_texts_differ_between_languages() -> None:
    for code in spec_codes():
        texts = {explain(code, lang)[0] for lang in LANGUAGES}
        assert len(texts) == len(LANGUAGES), code


@pytest.mark.parametrize(
    "code", ["NO-SUCH-CODE", "", ":", "::x", "{field}{0}", "X" * 5000, "\x00\r\n"]
)
def test_unknown_codes_fall_back_without_crashing(code: str) -> None:
    sentence, fix = explain(code, "lv")
    assert sentence and fix
    assert "\n" not in sentence and "\x00" not in sentence


def test_field_codes_without_field_still_read_well() -> None:
    sentence, _ = explain("FORM-FIELD-MISSING", "en")
    assert sentence == 'The required field "a field" is empty.'


# ---------------------------------------------------------------------------
# Transport over real SMTP.


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def send_all(cfg: SmtpConfig, *messages: bytes, rcpt: str = "applicant@example.lv") -> None:
    transport = make_transport(cfg)
    try:
        for data in messages:
            await transport.send(data, sender=cfg.sender, recipients=[rcpt])
    finally:
        await transport.aclose()


def test_starttls_send_arrives_intact(smtp_server: SmtpTestServer) -> None:
    data = wire(compose(make_spec(language="lv", original_subject="Pieteikums Ēriks")))
    run(send_all(smtp_server.smtp_config(), data))
    assert len(smtp_server.messages) == 1
    got = smtp_server.messages[0]
    assert got.tls
    assert got.mail_from == "pasts@agency.test"
    assert got.rcpt_tos == ("applicant@example.lv",)
    assert got.content.rstrip(b"\r\n") == data.rstrip(b"\r\n")
    received = parse(got.content)
    for name in (
        "Message-ID",
        "In-Reply-To",
        "References",
        "Auto-Submitted",
        "Subject",
        "X-Pasts-Reference",
        "X-Pasts-Status",
        "X-Pasts-Codes",
    ):
        assert received[name] == parse(data)[name], name


def test_server_refuses_plain_text_send(smtp_server: SmtpTestServer) -> None:
    cfg = smtp_server.smtp_config(starttls="off")
    with pytest.raises(DeliveryError) as err:
        run(send_all(cfg, b"Subject: x\r\n\r\nbody\r\n"))
    assert "530" in str(err.value)
    assert not err.value.permanent
    assert smtp_server.messages == []


def test_client_requires_starttls(smtp_plain_server: SmtpTestServer) -> None:
    cfg = smtp_plain_server.smtp_config(starttls="require")
    with pytest.raises(DeliveryError, match="does not offer STARTTLS") as err:
        run(send_all(cfg, b"Subject: x\r\n\r\nbody\r\n"))
    assert not err.value.permanent
    assert smtp_plain_server.messages == []


def test_starttls_auto_uses_tls_when_offered(
    smtp_server: SmtpTestServer, smtp_plain_server: SmtpTestServer
) -> None:
    data = b"Subject: auto\r\n\r\nbody\r\n"
    run(send_all(smtp_server.smtp_config(starttls="auto"), data))
    run(send_all(smtp_plain_server.smtp_config(starttls="auto"), data))
    assert [m.tls for m in smtp_server.messages] == [True]
    assert [m.tls for m in smtp_plain_server.messages] == [False]


def test_auth_login(smtp_auth_server: SmtpTestServer) -> None:
    cfg = smtp_auth_server.smtp_config()
    run(send_all(cfg, b"Subject: auth\r\n\r\nbody\r\n"))
    assert [m.login for m in smtp_auth_server.messages] == [SMTP_USER]


def test_auth_wrong_password_is_transient(
    smtp_auth_server: SmtpTestServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PASTS_TEST_SMTP_PASSWORD", "wrong")
    with pytest.raises(DeliveryError, match="authentication") as err:
        run(send_all(smtp_auth_server.smtp_config(), b"Subject: x\r\n\r\nbody\r\n"))
    assert not err.value.permanent
    assert smtp_auth_server.messages == []


def test_auth_server_refuses_anonymous_send(smtp_auth_server: SmtpTestServer) -> None:
    cfg = smtp_auth_server.smtp_config(username=None, password_env=None)
    with pytest.raises(DeliveryError) as err:
        run(send_all(cfg, b"Subject: x\r\n\r\nbody\r\n"))
    assert not err.value.permanent
    assert smtp_auth_server.messages == []


def test_rejected_recipient_is_permanent(smtp_server: SmtpTestServer) -> None:
    smtp_server.refuse("gone@example.lv", 550)
    with pytest.raises(DeliveryError, match="550") as err:
        run(
            send_all(
                smtp_server.smtp_config(), b"Subject: x\r\n\r\nbody\r\n", rcpt="gone@example.lv"
            )
        )
    assert err.value.permanent
    assert smtp_server.messages == []


def test_temporary_failure_is_transient_then_succeeds(smtp_server: SmtpTestServer) -> None:
    smtp_server.set_fail(1, 451)
    cfg = smtp_server.smtp_config()
    data = wire(compose(make_spec()))

    async def scenario() -> None:
        transport = make_transport(cfg)
        try:
            with pytest.raises(DeliveryError, match="451") as err:
                await transport.send(data, sender=cfg.sender, recipients=["applicant@example.lv"])
            assert not err.value.permanent
            # The caller's retry on the same transport goes through.
            await transport.send(data, sender=cfg.sender, recipients=["applicant@example.lv"])
        finally:
            await transport.aclose()

    run(scenario())
    assert len(smtp_server.messages) == 1
    assert parse(smtp_server.messages[0].content)["Message-ID"] == "<reply-1@agency.test>"


def test_permanent_data_failure(smtp_server: SmtpTestServer) -> None:
    smtp_server.set_fail(1, 554)
    with pytest.raises(DeliveryError, match="554") as err:
        run(send_all(smtp_server.smtp_config(), b"Subject: x\r\n\r\nbody\r\n"))
    assert err.value.permanent


def test_connection_is_reused_and_reopened(smtp_server: SmtpTestServer) -> None:
    cfg = smtp_server.smtp_config()

    async def scenario() -> None:
        transport = make_transport(cfg)
        try:
            for i in range(2):
                await transport.send(
                    f"Subject: {i}\r\n\r\nx\r\n".encode(),
                    sender=cfg.sender,
                    recipients=["applicant@example.lv"],
                )
            # The server goes away and comes back: the kept connection is dead.
            await asyncio.to_thread(smtp_server.restart)
            await transport.send(
                b"Subject: 2\r\n\r\nx\r\n", sender=cfg.sender, recipients=["applicant@example.lv"]
            )
        finally:
            await transport.aclose()

    run(scenario())
    peers = [m.peer for m in smtp_server.messages]
    assert len(peers) == 3
    assert peers[0] == peers[1] != peers[2]


def test_implicit_tls(make_smtp_server: Any) -> None:
    server = make_smtp_server(implicit_tls=True)
    cfg = server.smtp_config()
    assert cfg.scheme == "smtps"
    run(send_all(cfg, b"Subject: smtps\r\n\r\nbody\r\n"))
    assert [m.tls for m in server.messages] == [True]


def test_untrusted_server_certificate_is_transient(smtp_server: SmtpTestServer) -> None:
    # Without the test CA the system trust store does not know the certificate.
    with pytest.raises(DeliveryError, match="(?i)certificate|TLS") as err:
        run(send_all(smtp_server.smtp_config(tls_ca=None), b"Subject: x\r\n\r\nbody\r\n"))
    assert not err.value.permanent
    assert smtp_server.messages == []


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections but never greets."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        yield int(s.getsockname()[1])


def test_timeout_is_transient(smtp_server: SmtpTestServer, silent_port: int) -> None:
    cfg = smtp_server.smtp_config(port=silent_port, timeout_seconds=0.5)
    started = time.monotonic()
    with pytest.raises(DeliveryError) as err:
        run(send_all(cfg, b"Subject: x\r\n\r\nbody\r\n"))
    assert not err.value.permanent
    assert time.monotonic() - started < 5


def test_connection_refused_is_transient(smtp_server: SmtpTestServer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    with pytest.raises(DeliveryError) as err:
        run(send_all(smtp_server.smtp_config(port=closed_port), b"Subject: x\r\n\r\nbody\r\n"))
    assert not err.value.permanent


def test_envelope_injection_is_refused(smtp_server: SmtpTestServer) -> None:
    cfg = smtp_server.smtp_config()
    for rcpt in ("a@example.lv\r\nRCPT TO:<b@evil.test>", "a@example.lv>", "a b@example.lv"):
        with pytest.raises(DeliveryError) as err:
            run(send_all(cfg, b"Subject: x\r\n\r\nbody\r\n", rcpt=rcpt))
        assert err.value.permanent
    assert smtp_server.messages == []


def test_plain_text_only_on_loopback() -> None:
    cfg = SmtpConfig(
        url="smtp://mail.agency.test:25",
        scheme="smtp",
        host="mail.agency.test",
        port=25,
        starttls="off",
    )
    with pytest.raises(SettingsError, match="starttls"):
        make_transport(cfg)


def test_aiosmtplib_plain_client_gets_530(smtp_server: SmtpTestServer) -> None:
    # The fixture's server really insists on STARTTLS (what the transport relies on).
    with pytest.raises(aiosmtplib.SMTPSenderRefused) as err:
        run(
            aiosmtplib.send(
                b"Subject: x\r\n\r\nbody\r\n",
                sender="a@agency.test",
                recipients=["b@example.lv"],
                hostname=smtp_server.host,
                port=smtp_server.port,
                start_tls=False,
            )
        )
    assert err.value.code == 530


# ---------------------------------------------------------------------------
# Maildir dry run.


def test_maildir_transport_writes_exact_bytes(tmp_path: Path) -> None:
    cfg = parse_config(
        {"smtp": {"url": "maildir:./outbox", "from": "pasts@agency.test"}}, tmp_path / "config.toml"
    ).smtp
    transport = make_transport(cfg)
    assert isinstance(transport, MaildirTransport)
    data = wire(
        compose(
            make_spec(
                language="it",
                template="approved",
                attachments=((f"{REF}.pem", "application/x-pem-file", b"PEM\r\n"),),
            )
        )
    )
    run(transport.send(data, sender=cfg.sender, recipients=["applicant@example.lv"]))
    run(transport.send(b"second", sender=cfg.sender, recipients=["applicant@example.lv"]))
    files = sorted((tmp_path / "outbox" / "new").iterdir())
    assert len(files) == 2
    assert transport.file_of(transport.keys[0]).read_bytes() == data
    assert transport.file_of(transport.keys[1]).read_bytes() == b"second"
    stored = message_from_bytes(transport.file_of(transport.keys[0]).read_bytes())
    assert stored["Message-ID"] == "<reply-1@agency.test>"


def test_maildir_unwritable_is_transient(tmp_path: Path) -> None:
    transport = MaildirTransport(tmp_path / "outbox")
    (tmp_path / "outbox" / "tmp").rmdir()
    (tmp_path / "outbox" / "tmp").write_text("not a directory")
    with pytest.raises(DeliveryError) as err:
        run(transport.send(b"x", sender="a@agency.test", recipients=["b@example.lv"]))
    assert not err.value.permanent


def test_make_transport_smtp(smtp_server: SmtpTestServer) -> None:
    assert isinstance(make_transport(smtp_server.smtp_config()), SmtpTransport)


@pytest.mark.parametrize("language", ["en", "lv", "it"])
def test_link_filled_in_at_sending_gives_the_bytes_composing_with_it_gives(
        language: str) -> None:
    from mailer.compose import WIRE, fill_in

    token = "Zq3" * 14 + "x"
    def link_mail(token: str) -> bytes:
        return compose(make_spec(
            template="verify-email", language=language, findings=(),
            status="awaiting-verification",
            context={**FULL_CONTEXT, "verification_url": f"https://pasts.example.lv/verify/{token}"},
        )).as_bytes(policy=WIRE)

    queued = link_mail("link-filled-in-when-sent")
    assert token.encode() not in queued
    assert fill_in(queued, "link-filled-in-when-sent", token) == link_mail(token)
    with pytest.raises(ValueError):
        fill_in(wire(compose(make_spec())), "link-filled-in-when-sent", token)


@pytest.mark.parametrize(("to", "utf8_headers"), [
    ("applicant@example.lv", False),
    ("jānis@ērgļi.example", True),
])
def test_only_a_non_ascii_address_makes_utf8_headers(to: str, utf8_headers: bool) -> None:
    """RFC 6532: a reply's headers are raw UTF-8 only when an address needs it
    (the reply then goes with SMTPUTF8); otherwise they are ASCII, non-ASCII text
    such as the Latvian subject carried as encoded words."""
    spec = make_spec(to=to, language="lv", original_subject="Pieteikums e-adresei — Ērgļi")
    head = header_block(compose_wire(spec))
    assert head.isascii() is not utf8_headers
    if utf8_headers:
        assert f"To: {to}".encode() in head
    assert parse(compose_wire(spec))["To"] == to
