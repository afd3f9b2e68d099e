"""Qualified status from the EU trusted lists, end to end: real Dovecot, real SMTP.

``[trust]`` points at a LOTL and a national list built and signed in the test
run, and ``signing.trust_roots`` is empty: every anchor and every qualified
status comes from the lists. One deployment serves the module; each mail
carries one defect (or none) and each test reads the reply to its own mail.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
import trustme

from intake.config import default_workflows
from intake.demo.samples import application_mail, enveloping_signature, filled_form, make_csr
from signing.testing.pdfs import sign_pdf
from tests.daemon_env import EA, GOOD, TO, Deployment, make_deployment, message_id_of
from tests.fixtures.dovecot import DovecotServer, ImapAccount
from tests.fixtures.pki import PkiFixture
from tests.fixtures.smtp import SmtpTestServer
from tests.fixtures.trustlist import TL_PERSONAL_CODES, TrustPki, build_lists

SP = next(w for w in default_workflows() if w.id == "service-publication")
#: The organisation of the service card: its agreement is in.
SERVICE = {
    "org_name": "SIA Zīmogs", "org_reg_no": "40003777777",
    "service_name": "Zīmogu pārbaude",
    "service_description": "Pārbauda elektronisko zīmogu derīgumu pēc dokumenta — perché sì.",
    "department": "Digitālo pakalpojumu nodaļa", "contact_email": "ilze@zimogs.example",
    "privacy_url": "https://zimogs.example/privatums",
}
REGISTRY = (
    "org_reg_no,org_name,test_env_completed,agreement_received,representatives\n"
    f"{GOOD['org_reg_no']},{GOOD['org_name']},yes,yes,{';'.join(TL_PERSONAL_CODES.values())}\n"
    f"{SERVICE['org_reg_no']},{SERVICE['org_name']},yes,yes,{TL_PERSONAL_CODES['tl-qualified']}\n"
)


@dataclass(frozen=True)
class Mail:
    #: Who signs, and which TSA stamps.
    signer: str
    tsa: str = "qtst"
    #: The form: e-address (EA) or a service card (SP).
    service_card: bool = False
    #: Signed the Italian way: an enveloping ``modulo.pdf.p7m`` around the unsigned PDF.
    p7m: bool = False


MAILS: dict[str, Mail] = {
    "qualified": Mail("tl-qualified"),
    "no-qscd": Mail("tl-noqscd"),
    "withdrawn": Mail("tl-withdrawn"),
    "eseal-ea": Mail("tl-eseal"),
    "eseal-card": Mail("tl-eseal", service_card=True),
    "plain-tsa": Mail("tl-qualified", tsa="tl-plain-tsa"),
    # Issue 11: a .p7m's signer and TSA are judged by the same lists and rules.
    "p7m-qualified": Mail("tl-qualified", p7m=True),
    "p7m-no-qscd": Mail("tl-noqscd", p7m=True),
    "p7m-plain-tsa": Mail("tl-qualified", tsa="tl-plain-tsa", p7m=True),
}


def build(trust: TrustPki, name: str, mail: Mail) -> bytes:
    sender = f"{name}@applicant.example"
    if mail.p7m:
        signed = enveloping_signature(filled_form(EA, GOOD), trust.signer(mail.signer),
                                      trust.timestamper(mail.tsa))
        return application_mail(sender=sender, to=TO, subject="Pieteikums e-adresei",
                                attachments=[("modulo.pdf.p7m", "application/pkcs7-mime", signed)],
                                csr=make_csr(GOOD["csr_common_name"], GOOD["org_name"]))
    if mail.service_card:
        form = sign_pdf(filled_form(SP, SERVICE), trust.signer(mail.signer),
                        timestamper=trust.timestamper(mail.tsa))
        return application_mail(sender=sender, to=TO, subject="Pakalpojuma karte", form=form)
    form = sign_pdf(filled_form(EA, GOOD), trust.signer(mail.signer),
                    timestamper=trust.timestamper(mail.tsa))
    return application_mail(sender=sender, to=TO, subject="Pieteikums e-adresei", form=form,
                            csr=make_csr(GOOD["csr_common_name"], GOOD["org_name"]))


@dataclass
class Judged:
    deployment: Deployment
    message_ids: dict[str, str]
    refresh: tuple[int, str]

    def reply(self, name: str) -> EmailMessage:
        # The applicant's answer (a verification link may go to the form's contact too).
        replies = [r for r in self.deployment.replies_to(self.message_ids[name])
                   if f"{name}@applicant.example" in str(r["To"])]
        assert len(replies) == 1, [r["Subject"] for r in replies]
        return replies[0]

    def codes(self, name: str) -> list[str]:
        value = self.reply(name)["X-Pasts-Codes"]
        return str(value).split(",") if value else []


@pytest.fixture(scope="module")
def judged(dovecot_server: DovecotServer, pki: PkiFixture, tls_ca: tuple[trustme.CA, Path],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Judged]:
    ca, ca_file = tls_ca
    smtp = SmtpTestServer(ca, ca_file)
    smtp.start()
    login, password = dovecot_server.user(f"trust-{os.getpid()}")
    account = ImapAccount(dovecot_server, login, password)
    env = "PASTS_TEST_IMAP_PW_TRUST_E2E"
    directory = tmp_path_factory.mktemp("trust")
    trust = TrustPki.create()
    lists = build_lists(trust, directory / "lists")

    def mailbox_config(acc: ImapAccount) -> Any:
        server = acc.server
        return SimpleNamespace(
            url=f"imap://{quote(acc.login, safe='')}@{server.host}:{server.port}/INBOX",
            password_env=env, tls_ca=server.ca_file)

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(env, password)
            dep = make_deployment(
                directory, account, mailbox_config, smtp, pki, registry=REGISTRY,
                signing={"trust_roots": [], "allow_fetching": False},
                trust={"lotl": str(lists.lotl_path), "lotl_signers": [str(lists.lotl_signer_pem)],
                       "cache_dir": str(directory / "trust-cache")})
            refreshed = dep.cli("trust", "refresh")
            ids: dict[str, str] = {}
            for name, mail in MAILS.items():
                raw = build(trust, name, mail)
                ids[name] = message_id_of(raw)
                dep.deliver(raw)
            assert dep.run_once() == 0
            assert dep.inbox() == []
            yield Judged(dep, ids, refreshed)
    finally:
        smtp.stop()


def test_refresh_loads_the_lists(judged: Judged) -> None:
    code, out = judged.refresh
    assert code == 0, out
    code, out = judged.deployment.cli("trust", "status")
    assert code == 0, out
    assert "LV " in out and "fresh" in out


def test_qualified_signer_on_a_qscd_with_a_qualified_time_stamp_is_accepted(
        judged: Judged) -> None:
    reply = judged.reply("qualified")
    assert reply["X-Pasts-Codes"] is None
    assert reply["X-Pasts-Status"] == "awaiting-verification"
    code, shown = judged.deployment.cli("show", str(reply["X-Pasts-Reference"]))
    assert code == 0
    assert "qualification: qualified (esign, QSCD) by LV: Test QTSP Qualified CA" in shown
    assert "time-stamp: qualified (LV: Test QTST)" in shown


@pytest.mark.parametrize("name", ["no-qscd", "withdrawn"])
def test_no_qscd_or_a_withdrawn_service_is_not_qualified(judged: Judged, name: str) -> None:
    assert judged.codes(name) == ["SIG-NOT-QUALIFIED"]
    assert judged.reply(name)["X-Pasts-Status"] == "incomplete"


def test_show_tells_which_signature_raised_a_policy_code(judged: Judged) -> None:
    """The rules compute SIG-NOT-QUALIFIED from the verifier's facts; staff still see it on
    the signature that raised it, beside the qualification facts."""
    code, shown = judged.deployment.cli("show", str(judged.reply("no-qscd")["X-Pasts-Reference"]))
    assert code == 0
    assert re.search(r"signature 1 \([^)]*\): SIG-NOT-QUALIFIED; time-stamp", shown), shown
    assert "qualification: qualified (esign, no QSCD)" in shown
    code, shown = judged.deployment.cli("show", str(judged.reply("qualified")["X-Pasts-Reference"]))
    assert re.search(r"signature 1 \([^)]*\): ok; time-stamp", shown), shown


def test_an_e_seal_counts_only_where_the_workflow_accepts_it(judged: Judged) -> None:
    # The e-address procedure wants a person's signature; the seal names no
    # representative either.
    assert "SIG-NOT-QUALIFIED" in judged.codes("eseal-ea")
    # A service card may be sealed by the organisation.
    assert "SIG-NOT-QUALIFIED" not in judged.codes("eseal-card")
    assert str(judged.reply("eseal-card")["X-Pasts-Reference"]).startswith("IO-")


def test_a_tsa_that_is_no_qtst_gives_ts_not_qualified(judged: Judged) -> None:
    assert judged.codes("plain-tsa") == ["TS-NOT-QUALIFIED"]
    body = str(judged.reply("plain-tsa").get_body(("plain",)).get_content())  # type: ignore[union-attr]
    assert "qualified time-stamping service on the EU trusted lists" in " ".join(body.split())




def test_a_p7m_is_judged_by_the_trusted_lists_like_a_signed_pdf(judged: Judged) -> None:
    assert judged.codes("p7m-qualified") == []
    assert judged.reply("p7m-qualified")["X-Pasts-Status"] == "awaiting-verification"
    assert judged.codes("p7m-no-qscd") == ["SIG-NOT-QUALIFIED"]
    assert judged.codes("p7m-plain-tsa") == ["TS-NOT-QUALIFIED"]
    code, shown = judged.deployment.cli(
        "show", str(judged.reply("p7m-qualified")["X-Pasts-Reference"]))
    assert code == 0
    assert "qualification: qualified (esign, QSCD) by LV: Test QTSP Qualified CA" in shown
    assert "time-stamp: qualified (LV: Test QTST)" in shown


def test_show_writes_the_stored_validation_report(judged: Judged, tmp_path: Path) -> None:
    from lxml import etree

    reference = str(judged.reply("qualified")["X-Pasts-Reference"])
    target = tmp_path / "report.xml"
    code, _ = judged.deployment.cli("show", reference, "--report", str(target))
    assert code == 0
    root = etree.fromstring(target.read_bytes())
    vr = "{http://uri.etsi.org/19102/v1.2.1#}"
    assert root.tag == f"{vr}ValidationReport"
    (report,) = root.findall(f"{vr}SignatureValidationReport")
    assert report.find(f"{vr}SignatureValidationStatus/{vr}MainIndication") is not None
