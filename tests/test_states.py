"""The declared route table of an inbound mail and the declared state transitions (intake.app)."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path

import pytest

from intake.app.decide import ROUTES, Decider, Route
from intake.app.replies import transition
from intake.app.states import STATES, TRANSITIONS, check_transition
from intake.config import Config, load_config
from intake.mime.parse import parse_message
from intake.store.engine import Store, open_store
from intake.store.models import Application
from tests.daemon_env import ROOT

APPLICANT = "janis@ergli.example"
REF = "EAP-2026-000001"


@pytest.fixture()
def config(tmp_path: Path) -> Config:
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


@pytest.fixture()
def store(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = open_store(f"sqlite:///{tmp_path / 'pasts.db'}")
    yield store
    store.dispose()


def mail(subject: str, sender: str = APPLICANT, *, form: bool = False,
         headers: dict[str, str] | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = "pasts@agency.example"
    msg["Subject"] = subject
    msg["Message-ID"] = "<m1@ergli.example>"
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content("Labdien")
    if form:
        msg.add_attachment(b"%PDF-1.7\n%\xe2\xe3\n1 0 obj\n<<>>\nendobj\n", maintype="application",
                           subtype="pdf", filename="form.pdf")
    return msg.as_bytes()


def add_application(store: Store, state: str) -> None:
    with store.session() as s:
        s.add(Application(reference=REF, workflow="eaddress-production", state=state,
                          language="lv", applicant_email=APPLICANT, addresses=[APPLICANT],
                          thread_root="<root@ergli.example>"))


def route_of(config: Config, store: Store, raw: bytes) -> Route:
    with store.session() as s:
        return Decider(config).route(s, parse_message(raw)).route


def test_every_route_is_declared_once_in_order() -> None:
    assert [row[0] for row in ROUTES] == list(Route)
    assert all(condition and action for _route, condition, action in ROUTES)


@pytest.mark.parametrize(("state", "subject", "sender", "form", "headers", "expected"), [
    ("in-review", "Out of office", APPLICANT, False, {"Auto-Submitted": "auto-replied"},
     Route.NOT_ANSWERED),
    ("in-review", f"STATUS {REF}", APPLICANT, False, None, Route.STATUS_QUERY),
    ("incomplete", f"Re: [{REF}] corrected", APPLICANT, True, None, Route.RESUBMISSION),
    ("awaiting-verification", f"Re: [{REF}] NEW LINK", APPLICANT, False, None, Route.NEW_LINK),
    ("in-review", f"Re: [{REF}] any news?", APPLICANT, False, None, Route.STATUS),
    # A form on an approved reference renews it (the answer to an expiry notice):
    # a new application in the same thread.
    ("approved", f"Re: [{REF}] again", APPLICANT, True, None, Route.RENEWAL),
    ("active", f"Re: [{REF}] renewal", APPLICANT, True, None, Route.RENEWAL),
    # A form on a rejected reference is neither: the status is the answer.
    ("rejected", f"Re: [{REF}] again", APPLICANT, True, None, Route.STATUS),
    ("in-review", f"Re: [{REF}] any news?", "other@example.org", False, None,
     Route.STATUS_UNKNOWN),
    ("in-review", "Re: [EAP-2026-999999] probing", APPLICANT, False, None, Route.STATUS_UNKNOWN),
    ("in-review", "My application", "new@example.org", True, None, Route.NEW_APPLICATION),
])
def test_a_mail_takes_the_first_route_that_fits(
        config: Config, store: Store, state: str, subject: str, sender: str, form: bool,
        headers: dict[str, str] | None, expected: Route) -> None:
    add_application(store, state)
    assert route_of(config, store, mail(subject, sender, form=form, headers=headers)) is expected


def test_the_transition_table_covers_every_state() -> None:
    assert set(TRANSITIONS) == set(STATES)
    reachable = {s for froms in TRANSITIONS.values() for s in froms if s is not None}
    assert reachable | {"received"} >= set(STATES) - {"rejected", "restricted"}


def test_a_transition_outside_the_table_is_refused(store: Store) -> None:
    add_application(store, "rejected")
    with store.session() as s:
        app = s.query(Application).one()
        with pytest.raises(ValueError, match="no transition from 'rejected' to 'in-review'"):
            transition(s, app, "in-review", reason="would reopen a final state")
        assert app.state == "rejected"
    with store.session() as s:
        app = s.query(Application).one()
        app.state = "in-review"
        transition(s, app, "approved", actor="staff", reason="ok")
        assert app.state == "approved"
    check_transition(None, "received")
    with pytest.raises(ValueError, match="unknown state"):
        check_transition("received", "archived")
