"""Each workflow answers in its own language, with the English version below.

SPEC section 1: the VRAA procedures are Latvian (lv), the PagoPA one
(service-publication) Italian (it); consultation answers in the daemon's
language. Every automatic reply carries English below its first language.
"""

from __future__ import annotations

import tomllib
from typing import Any

import markupsafe
import pytest

from intake.config import default_workflows
from intake.demo.samples import application_mail, filled_form
from mailer.compose import ENGLISH_BELOW, Finding, ReplySpec, compose, render, wire_bytes
from tests.daemon_env import ROOT, TO, Deployment, text_of

SP = next(w for w in default_workflows() if w.id == "service-publication")
SERVICE = {
    "org_name": "SIA Ērgļu Māja", "org_reg_no": "40003123456",
    "service_name": "Verifica dei permessi di costruzione",
    "service_description": "Verifica lo stato del permesso di costruzione dal numero catastale.",
    "department": "Ufficio servizi digitali", "contact_email": "lucia@comune.example.it",
    "privacy_url": "http://comune.example.it/privacy",
}


def catalog(language: str) -> dict[str, Any]:
    return tomllib.loads((ROOT / "mailer" / "codes" / f"{language}.toml").read_text("utf-8"))


def test_workflows_name_their_languages() -> None:
    languages = {w.id: w.language for w in default_workflows()}
    assert languages == {"eaddress-production": "lv", "api-access": "lv",
                         "service-publication": "it", "consultation": None}


def spec(language: str, template: str = "rejected") -> ReplySpec:
    return ReplySpec(to="lucia@comune.example.it", sender="pasts@agency.test", template=template,
                     language=language, message_id="<r1@agency.test>", reference="IO-2026-000001",
                     status="incomplete", findings=(Finding("FORM-FIELD-INVALID:privacy_url"),),
                     original_subject="Domanda", context={"workflow_title": SP.title})


@pytest.mark.parametrize("language", ["lv", "it"])
def test_english_follows_the_first_language(language: str) -> None:
    text, html = render(spec(language))
    first, _, english = text.partition(ENGLISH_BELOW)
    own = catalog(language)["FORM-FIELD-INVALID"]["sentence"].replace("{field}", "privacy_url")
    en = catalog("en")["FORM-FIELD-INVALID"]["sentence"].replace("{field}", "privacy_url")
    assert own in first and en not in first
    assert en in english and own not in english
    # One HTML document: the English version inside the first one's body.
    assert html.count("<html") == 1 and html.count("</body>") == 1
    assert f'<html lang="{language}">' in html and '<div lang="en">' in html
    assert (html.index(str(markupsafe.escape(own))) < html.index(ENGLISH_BELOW)
            < html.index(str(markupsafe.escape(en))))


def test_english_is_said_once() -> None:
    text, html = render(spec("en"))
    assert ENGLISH_BELOW not in text and ENGLISH_BELOW not in html
    assert text.count(catalog("en")["FORM-FIELD-INVALID"]["sentence"].replace(
        "{field}", "privacy_url")) == 1


def test_headers_are_those_of_the_first_language() -> None:
    msg = compose(spec("it"))
    assert msg["X-Pasts-Codes"] == "FORM-FIELD-INVALID:privacy_url"
    assert msg["Content-Language"] == "it"
    assert wire_bytes(msg) == wire_bytes(compose(spec("it")))


def test_the_staff_digest_is_in_one_language() -> None:
    digest = ReplySpec(to="staff@agency.test", sender="pasts@agency.test", template="digest",
                       language="lv", message_id="<d1@agency.test>",
                       context={"sections": [("x", ["y"])]})
    text, _ = render(digest)
    assert ENGLISH_BELOW not in text


def test_italian_service_card_gets_italian_then_english(deployment: Deployment, pki: Any) -> None:
    form = pki.sign(filled_form(SP, SERVICE), signer="qualified", timestamp=True)
    deployment.deliver(application_mail(sender="lucia@comune.example.it", to=TO,
                                        subject="Domanda di pubblicazione", form=form))
    deployment.deliver(application_mail(sender="peteris@example.lv", to=TO,
                                        subject="Kā pieteikties?"))
    deployment.run_once()
    replies = {r["To"]: r for r in deployment.replies()}

    italian = replies["lucia@comune.example.it"]
    assert italian["X-Pasts-Codes"] == "FORM-FIELD-INVALID:privacy_url"
    assert italian["X-Pasts-Reference"].startswith("IO-")
    first, _, english = text_of(italian).partition(ENGLISH_BELOW)
    assert catalog("it")["FORM-FIELD-INVALID"]["sentence"].replace(
        "{field}", "privacy_url") in first
    assert catalog("en")["FORM-FIELD-INVALID"]["sentence"].replace(
        "{field}", "privacy_url") in english
    html = str(italian.get_body(("html",)).get_content())
    assert '<html lang="it">' in html and '<div lang="en">' in html

    # A form-less mail to the e-address mailbox is answered in Latvian, then English.
    latvian = replies["peteris@example.lv"]
    assert latvian["X-Pasts-Codes"] == "CSR-MISSING,FORM-MISSING"
    first, _, english = text_of(latvian).partition(ENGLISH_BELOW)
    assert catalog("lv")["FORM-MISSING"]["sentence"] in first
    assert catalog("en")["FORM-MISSING"]["sentence"] in english
    # Bare words make no application (issue 10, junk): the notice names no reference.
    assert latvian["X-Pasts-Reference"] is None
