"""rules/ and mailer/ on their own, a workflow entirely as data, and errors by what comes next.

* ``rules`` and ``mailer`` load in a fresh interpreter without anything of ``intake``;
* a workflow whose fields have other names is judged, verified and approved
  by the *roles* its fields declare, never by field names written in code;
* approval is the workflow's ``approval`` table;
* a configuration error met while processing a message stops the command and
  does not count against the message; bad input that no retry mends is kept
  for staff at once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from intake.config import parse_config
from intake.demo.samples import application_mail, filled_form
from intake.errors import TRANSIENT, ConfigurationError, DeliveryError, PermanentError
from intake.runner import Intake
from intake.store.models import ReceivedMessage
from mailer.settings import SmtpSettings
from rules import Case, OrganisationRecord, judge
from rules.workflow import Approval, Role, WorkflowConfig, field_value
from tests.daemon_env import ROOT, TO, Deployment, good_mail, reference_of, text_of

SHIPPED = tomllib.loads((ROOT / "rules" / "workflows.toml").read_text("utf-8"))["workflow"]
REG_NO = "40003123456"
SIGNER = "PNOLV-010190-12345"


def shipped(wid: str) -> dict[str, Any]:
    return dict(next(w for w in SHIPPED if w["id"] == wid))


def renamed(wid: str, names: dict[str, str]) -> dict[str, Any]:
    """The shipped workflow ``wid`` as a [[workflow]] table with fields renamed (roles kept)."""
    table = shipped(wid)
    table["fields"] = [{**f, "name": names.get(f["name"], f["name"])} for f in table["fields"]]
    return table


def parsed(tmp_path: Path, *workflows: dict[str, Any]) -> dict[str, WorkflowConfig]:
    config = parse_config({"workflow": list(workflows)}, tmp_path / "config.toml")
    return {w.id: w for w in config.workflows}


# -- the packages stand on their own -------------------------------------------------------


def test_rules_and_mailer_load_without_intake() -> None:
    probe = (
        "import sys, rules, rules.workflow, rules.formats, mailer, mailer.transport, "
        "mailer.settings, mailer.addresses; "
        "bad = sorted(m for m in sys.modules if m == 'intake' or m.startswith('intake.')); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    run = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=False)
    assert run.returncode == 0, run.stdout + run.stderr


def test_smtp_settings_never_show_the_password_variable() -> None:
    settings = SmtpSettings(url="smtp://mail.example:587", scheme="smtp", host="mail.example",
                            port=587, password_env="SECRET_SMTP_PASSWORD")
    assert "SECRET_SMTP_PASSWORD" not in repr(settings)


def test_the_mailers_delivery_error_is_transient_for_intake() -> None:
    assert issubclass(DeliveryError, TRANSIENT)
    assert DeliveryError.__module__ == "mailer.transport"


# -- field roles ------------------------------------------------------------------------------


def test_a_workflow_with_other_field_names_is_judged_by_its_roles(tmp_path: Path) -> None:
    names = {"org_name": "organisation", "org_reg_no": "reg_number",
             "test_env_completed": "tests_done", "form_id": "procedure"}
    wf = parsed(tmp_path, renamed("eaddress-production", names))["eaddress-production"]
    assert wf.field_for(Role.ORG_REG_NO) == "reg_number"
    fields = {"procedure": wf.id, "organisation": "SIA Cita", "reg_number": REG_NO,
              "contact_name": "Jānis", "contact_email": "janis@ergli.example",
              "solution_name": "x", "tests_done": "no", "csr_common_name": "c.example.lv"}
    organisation = OrganisationRecord(reg_no=REG_NO, name="SIA Ērgļu Māja",
                                      test_env_completed=True, agreement_received=True,
                                      representatives=(SIGNER,))
    case = Case(workflow=wf, form_present=True, fields=fields, signer_code=SIGNER,
                organisation=organisation)
    codes = judge(case).codes
    # The registry rules found the number and the declaration under their new names ...
    assert "TEST-ENV-NOT-COMPLETED" in codes
    # ... and the organisation name is judged against the registry under its new name.
    assert "FORM-FIELD-INVALID:organisation" in codes
    good = replace(case, fields={**fields, "organisation": "SIA Ērgļu Māja", "tests_done": "yes"})
    assert not [c for c in judge(good).codes if c.startswith(("FORM-", "TEST-ENV"))]


def test_every_reader_asks_the_role_map_not_a_field_name() -> None:
    # The field names of the shipped forms live in rules/workflows.toml (and the
    # demo's sample values), not in the code that reads them.
    names = ("contact_email", "contact_name", "org_reg_no", "csr_common_name", "org_name",
             "test_env_completed", "data_provider_email")
    readers = [p for pkg in ("rules", "mailer", "intake") for p in (ROOT / pkg).rglob("*.py")
               if "demo" not in p.relative_to(ROOT).parts]
    assert ROOT / "intake" / "app" / "steering.py" in readers
    found = []
    for path in readers:
        text = path.read_text("utf-8")
        for name in names:
            for quote in ('"', "'"):
                if f"get({quote}{name}{quote}" in text:
                    found.append(f"{path.relative_to(ROOT)}: {name}")
    assert found == []


def test_field_value_of_a_role_the_workflow_lacks_is_empty(tmp_path: Path) -> None:
    wf = parsed(tmp_path)["consultation"]
    assert field_value(wf, {"contact_email": "a@b.example"}, Role.CONTACT_EMAIL) == ""
    assert field_value(None, {"contact_email": "a@b.example"}, Role.CONTACT_EMAIL) == ""


@pytest.mark.parametrize(("change", "key"), [
    ({"role": "contact-mail"}, "workflow[0].fields[4].role"),
    ({"format": "e-mail"}, "workflow[0].fields[4].format"),
])
def test_a_misspelt_role_or_format_is_refused_at_start_naming_the_key(
        tmp_path: Path, change: dict[str, str], key: str) -> None:
    table = shipped("eaddress-production")
    fields = list(table["fields"])
    assert fields[4]["name"] == "contact_email"
    fields[4] = {**fields[4], **change}
    table["fields"] = fields
    with pytest.raises(ConfigurationError) as err:
        parsed(tmp_path, table)
    assert err.value.key == key


def test_two_fields_of_one_role_are_refused(tmp_path: Path) -> None:
    table = renamed("api-access", {})
    table["fields"] = [*table["fields"], {"name": "second_contact", "role": "contact-email"}]
    with pytest.raises(ConfigurationError, match="contact-email") as err:
        parsed(tmp_path, table)
    assert err.value.key == "workflow[0].fields"


# -- approval as data --------------------------------------------------------------------------


def test_approval_defaults_to_the_outcomes_and_is_read_from_the_table(tmp_path: Path) -> None:
    workflows = parsed(tmp_path)
    assert workflows["eaddress-production"].approval == Approval(certificate=True)
    assert workflows["api-access"].approval.account_series == "DX"
    assert workflows["service-publication"].approval.state == "active"
    table = {"id": "permit", "prefix": "PM", "outcome": "publication"}
    assert parsed(tmp_path, table)["permit"].approval == Approval(state="active")
    table = {**table, "approval": {"state": "approved", "notify": ["contact-email"]}}
    assert parsed(tmp_path, table)["permit"].approval == Approval(
        state="approved", notify=(Role.CONTACT_EMAIL,))
    with pytest.raises(ConfigurationError) as err:
        parsed(tmp_path, {**table, "approval": {"state": "done"}})
    assert err.value.key == "workflow[0].approval.state"


NAMES = {"contact_email": "reply_address", "org_reg_no": "registration", "org_name": "company",
         "test_env_completed": "tested", "csr_common_name": "certificate_name"}
ROLE_VALUES = {
    "company": "SIA Ērgļu Māja", "registration": REG_NO, "contact_name": "Jānis Bērziņš",
    "reply_address": "ilze@ergli.example", "contact_phone": "+371 2000 0000",
    "solution_name": "Ēdoc", "tested": "jā", "certificate_name": "ergli-connector.example.lv",
}


@pytest.mark.sections(verification={"required": False},
                      workflow=[{**renamed("eaddress-production", NAMES),
                                 "approval": {"certificate": False, "state": "active"}}])
def test_renamed_fields_and_a_declared_approval_drive_a_real_application(
        deployment: Deployment, pki: Any) -> None:
    from intake.demo.samples import make_csr

    wf = deployment.config.workflow("eaddress-production")
    assert wf is not None and wf.field_for(Role.CONTACT_EMAIL) == "reply_address"
    form = pki.sign(filled_form(wf, {"form_id": wf.id, **ROLE_VALUES}), signer="qualified",
                    timestamp=True)
    raw = application_mail(sender="janis@ergli.example", to=TO, subject="Pieteikums",
                           form=form, csr=make_csr("ergli-connector.example.lv", "SIA Ērgļu Māja"))
    deployment.deliver(raw)
    assert deployment.run_once() == 0
    [ack] = deployment.replies()
    assert ack["X-Pasts-Status"] == "in-review", text_of(ack)
    ref = reference_of(ack)

    code, out = deployment.cli("approve", ref, "--user", "ilze")
    assert code == 0, out
    assert f"{ref}: active" in out and "certificate serial" not in out
    decided = deployment.replies()[1:]
    # The decision goes to the contact address the form's contact-email field names.
    assert {str(r["To"]) for r in decided} == {"ilze@ergli.example", "janis@ergli.example"}
    contact = next(r for r in decided if str(r["To"]) == "ilze@ergli.example")
    assert contact["X-Pasts-Status"] == "active"
    assert not [p for p in contact.iter_attachments() if p.get_filename()]


# -- errors by what the daemon does next ----------------------------------------------------------


def ledger_rows(dep: Deployment) -> list[tuple[str, int]]:
    with dep.runtime() as rt, rt.store.session() as s:
        return [(r.status, r.attempts) for r in s.scalars(select(ReceivedMessage))]


def test_a_configuration_error_while_processing_stops_and_does_not_count_against_the_mail(
        deployment: Deployment, pki: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    deployment.deliver(good_mail(pki))
    decide = Intake.decide

    def misconfigured(*args: Any, **kwargs: Any) -> Any:
        raise ConfigurationError("no such trust root file", key="signing.trust_roots")

    monkeypatch.setattr(Intake, "decide", misconfigured)
    for _ in range(4):  # more than daemon.max_attempts
        with pytest.raises(ConfigurationError, match="signing.trust_roots"):
            deployment.run_once()
    assert ledger_rows(deployment) == [("received", 0)]
    assert deployment.replies() == [] and len(deployment.inbox()) == 1

    monkeypatch.setattr(Intake, "decide", decide)  # the operator fixes the configuration
    assert deployment.run_once() == 0
    [reply] = deployment.replies()
    assert reply["X-Pasts-Status"] == "awaiting-verification", text_of(reply)
    assert [status for status, _ in ledger_rows(deployment)] == ["processed"]


def test_the_daemon_stops_on_a_configuration_error_while_processing(
        deployment: Deployment, pki: Any, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """`pasts run` meets the operator's mistake in a mailbox thread: it stops naming the
    key (exit 2) rather than reconnecting for ever, and the mail waits, uncounted."""
    deployment.deliver(good_mail(pki))

    def misconfigured(*args: Any, **kwargs: Any) -> Any:
        raise ConfigurationError("no such trust root file", key="signing.trust_roots")

    monkeypatch.setattr(Intake, "decide", misconfigured)
    # The guard: a daemon that went on retrying is stopped by SIGTERM (and exits 0).
    handlers = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    guard = threading.Timer(30, os.kill, (os.getpid(), signal.SIGTERM))
    guard.start()
    started = time.monotonic()
    try:
        code, _out = deployment.cli("run")
    finally:
        guard.cancel()
        signal.signal(signal.SIGTERM, handlers[0])
        signal.signal(signal.SIGINT, handlers[1])
    assert code == 2
    assert "signing.trust_roots" in capsys.readouterr().err
    assert time.monotonic() - started < 30
    assert ledger_rows(deployment) == [("received", 0)]
    assert deployment.replies() == [] and len(deployment.inbox()) == 1


def test_bad_input_no_retry_mends_is_kept_for_staff_at_once(
        deployment: Deployment, pki: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    deployment.deliver(good_mail(pki))

    def unreadable(*args: Any, **kwargs: Any) -> Any:
        raise PermanentError("registry record unreadable", code="FORM-UNREADABLE")

    monkeypatch.setattr(Intake, "decide", unreadable)
    deployment.run_once()
    assert ledger_rows(deployment) == [("quarantined", 1)]
    assert len(deployment.inbox("Quarantine")) == 1 and deployment.inbox() == []
