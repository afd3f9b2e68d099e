"""Every rule code of SPEC section 3, end to end: real Dovecot inbox, real SMTP server, real PKI.

One deployment serves the whole module: every mail below (each with one
defect, as far as the demo PKI allows) is delivered into the IMAP inbox at
once, the daemon runs once, and then each parametrised test reads the one
reply to its own mail from what the SMTP server received.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import quote

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pyhanko.sign.timestamps.dummy_client import DummyTimeStamper
from pyhanko_certvalidator.registry import SimpleCertificateStore

from intake.config import default_workflows
from intake.demo.samples import application_mail, change_field_after_signing, filled_form, make_csr
from signing.testing.pdfs import sign_pdf
from signing.testing.pki import QUALIFIED_PERSONAL_CODE
from tests.daemon_env import (
    EA,
    GOOD,
    ROOT,
    TO,
    Deployment,
    free_port,
    make_deployment,
    message_id_of,
    text_of,
)
from tests.fixtures.dovecot import DovecotServer, ImapAccount
from tests.fixtures.pki import PkiFixture
from tests.fixtures.revocation import issue_chain
from tests.fixtures.smtp import SmtpTestServer
from tests.test_verify import _replace_timestamp_token

SP = next(w for w in default_workflows() if w.id == "service-publication")

#: Reg. no. of an organisation whose agreement has not been received.
NO_CONTRACT = "40003999999"
#: Every demo signer but "qualified-2" represents GOOD's organisation, so that
#: a certificate defect (expired, revoked, not qualified, untrusted) is not
#: also SIGNER-NOT-AUTHORISED.
REPRESENTATIVES = (
    QUALIFIED_PERSONAL_CODE,
    "PNOLV-020280-34567",  # nonqualified
    "PNOLV-030370-45678",  # expired
    "PNOLV-040460-56789",  # revoked
    "PNOLV-050550-67890",  # untrusted
)
REGISTRY = (
    "org_reg_no,org_name,test_env_completed,agreement_received,representatives\n"
    f"{GOOD['org_reg_no']},{GOOD['org_name']},yes,yes,{';'.join(REPRESENTATIVES)}\n"
    f"{NO_CONTRACT},SIA Bez Līguma,yes,no,{QUALIFIED_PERSONAL_CODE}\n"
)
#: A complete service card for the service-publication workflow.
SERVICE = {
    "org_name": "SIA Bez Līguma", "org_reg_no": NO_CONTRACT,
    "service_name": "Būvatļauju pārbaude",
    "service_description": "Pārbauda būvatļaujas statusu pēc kadastra numura — perché sì.",
    "department": "Digitālo pakalpojumu nodaļa", "contact_email": "ilze@bezligu.example",
    "privacy_url": "https://bezligu.example/privatums",
}
#: The time-stamp of the SIG-TOO-OLD mail is this old; the module allows one day.
TOO_OLD = timedelta(days=3)
MAX_AGE_DAYS = 1

CATALOG = tomllib.loads((ROOT / "mailer" / "codes" / "en.toml").read_text(encoding="utf-8"))


def sentence(code: str) -> str:
    """The English catalog sentence for ``code`` (``CODE:field`` fills ``{field}``)."""
    base, _, field = code.partition(":")
    return str(CATALOG[base]["sentence"]).replace("{field}", field)


# -- the defects -----------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """One mail with one defect and what its reply must say."""

    #: The code the defect must produce.
    code: str
    #: Every code the reply must carry (the code alone where the defect is isolated).
    codes: tuple[str, ...]
    #: X-Pasts-Status of the reply.
    status: str
    #: Builds the mail: (pki) -> raw bytes.
    build: Callable[[PkiFixture], bytes]
    #: Name of a case whose mail must be processed first (DUPLICATE).
    after: str | None = None


def ea_mail(sender: str, form: bytes | None, *,
            csr: bytes | None = b"good", **kwargs: Any) -> bytes:
    """An e-address application from ``sender`` with ``form`` and (by default) a good CSR."""
    if csr == b"good":
        csr = make_csr(GOOD["csr_common_name"], GOOD["org_name"])
    return application_mail(sender=sender, to=TO, subject="Pieteikums e-adresei", form=form,
                            csr=csr, **kwargs)


def signed(pki: PkiFixture, values: dict[str, str] | None = None, signer: str = "qualified",
           **kwargs: Any) -> bytes:
    """GOOD's form (with ``values`` changed) signed at B-T by ``signer``."""
    return pki.sign(filled_form(EA, {**GOOD, **(values or {})}), signer, **kwargs)


def sender(code: str) -> str:
    # One sender per mail: replies to one address are rate-limited.
    return code.split(":")[0].lower() + "@applicant.example"


def broken_signature(pki: PkiFixture) -> bytes:
    """One byte of the page (inside the signed range) changed after signing."""
    data = signed(pki)
    old = b"/MediaBox [ 0.0 0.0 595 842 ]"
    assert data.count(old) == 1
    return data.replace(old, b"/MediaBox [ 0.0 0.0 595 843 ]")


def timestamp_over_other_data(pki: PkiFixture) -> bytes:
    data = pki.sign(filled_form(EA, GOOD), bytes_reserved=16384)
    token = asyncio.run(
        pki.timestamper.async_timestamp(hashlib.sha256(b"other data").digest(), "sha256")
    )
    return _replace_timestamp_token(data, token)


def old_timestamp(pki: PkiFixture) -> bytes:
    """Time-stamped by the trusted TSA, but TOO_OLD ago (certificates valid then)."""
    demo = pki.pki
    chain = [demo.asn1_certificate(n) for n in ("tsa", "root")]
    tsa = DummyTimeStamper(tsa_cert=demo.asn1_certificate("tsa"), tsa_key=demo.asn1_key("tsa"),
                           certs_to_embed=SimpleCertificateStore.from_certs(chain),
                           fixed_dt=datetime.now(UTC) - TOO_OLD)
    return pki.sign(filled_form(EA, GOOD), timestamper=tsa)


def unknown_revocation(pki: PkiFixture) -> bytes:
    """GOOD's form signed under the trusted root by a signer whose OCSP responder is down."""
    chain = issue_chain(pki.pki, ocsp_url=f"http://127.0.0.1:{free_port()}/ocsp")
    return sign_pdf(filled_form(EA, GOOD), chain.signer(), timestamper=pki.timestamper)


def corrupted_csr() -> bytes:
    """A DER CSR for the right subject whose self-signature does not verify."""
    pem = make_csr(GOOD["csr_common_name"], GOOD["org_name"])
    der = x509.load_pem_x509_csr(pem).public_bytes(serialization.Encoding.DER)
    # The signature BIT STRING ends the DER: flip its last bit.
    return der[:-1] + bytes([der[-1] ^ 0x01])


def service_card(pki: PkiFixture) -> bytes:
    form = pki.sign(filled_form(SP, SERVICE), "qualified")
    return application_mail(sender=sender("CONTRACT-MISSING"), to=TO, subject="Pakalpojuma karte",
                            form=form)


_DUPLICATED: dict[int, bytes] = {}


def duplicated_form(pki: PkiFixture) -> bytes:
    """One signed form, the same bytes for the first submission and the duplicate."""
    return _DUPLICATED.setdefault(id(pki), signed(pki))


def _case(code: str, build: Callable[[PkiFixture], bytes], *, codes: tuple[str, ...] | None = None,
          status: str = "incomplete", after: str | None = None) -> Case:
    return Case(code, codes or (code,), status, build, after)


def _form_case(code: str, form: Callable[[PkiFixture], bytes], **kwargs: Any) -> Case:
    return _case(code, lambda pki: ea_mail(sender(code), form(pki)), **kwargs)


CASES: dict[str, Case] = {c.code: c for c in (
    # A CSR but no form: FORM-MISSING alone (no CSR would add CSR-MISSING).
    _case("FORM-MISSING", lambda pki: ea_mail(sender("FORM-MISSING"), None)),
    _form_case("FORM-UNREADABLE", lambda pki: b"%PDF-1.7\nthis is no PDF at all\x00\xff" * 20),
    _case("FORM-UNKNOWN", lambda pki: application_mail(
        sender=sender("FORM-UNKNOWN"), to=TO, subject="Pieteikums",
        form=pki.sign(pki.form_pdf(GOOD, form_id="no-such-procedure")))),
    _form_case("FORM-FIELD-MISSING:solution_name", lambda pki: signed(pki, {"solution_name": ""})),
    _form_case("FORM-FIELD-INVALID:contact_phone",
               lambda pki: signed(pki, {"contact_phone": "zvaniet vakarā"})),
    _form_case("SIG-MISSING", lambda pki: filled_form(EA, GOOD)),
    _form_case("SIG-INVALID", broken_signature),
    _form_case("SIG-MODIFIED", lambda pki: change_field_after_signing(
        signed(pki), "solution_name", "Cits risinājums")),
    # The untrusted demo CA issues no QcStatements: not qualified either.
    _form_case("SIG-UNTRUSTED", lambda pki: signed(pki, signer="untrusted"),
               codes=("SIG-NOT-QUALIFIED", "SIG-UNTRUSTED")),
    _form_case("SIG-NOT-QUALIFIED", lambda pki: signed(pki, signer="nonqualified")),
    _form_case("SIG-CERT-EXPIRED", lambda pki: signed(pki, signer="expired")),
    _form_case("SIG-CERT-REVOKED", lambda pki: signed(pki, signer="revoked")),
    # The module runs under revocation = "hard-fail" (every other signer's
    # responder answers): a status that cannot be fetched is this code.
    _form_case("SIG-REVOCATION-UNKNOWN", unknown_revocation),
    _form_case("TS-MISSING", lambda pki: signed(pki, timestamp=False)),
    _form_case("TS-INVALID", timestamp_over_other_data),
    _form_case("TS-UNTRUSTED", lambda pki: signed(pki, timestamper=pki.untrusted_timestamper)),
    _form_case("SIG-TOO-OLD", old_timestamp),
    _case("CSR-MISSING", lambda pki: ea_mail(sender("CSR-MISSING"), signed(pki), csr=None)),
    _case("CSR-INVALID", lambda pki: ea_mail(sender("CSR-INVALID"), signed(pki),
                                             csr=corrupted_csr())),
    _case("CSR-KEY-WEAK", lambda pki: ea_mail(
        sender("CSR-KEY-WEAK"), signed(pki),
        csr=make_csr(GOOD["csr_common_name"], GOOD["org_name"], bits=1024))),
    _case("CSR-SUBJECT-MISMATCH", lambda pki: ea_mail(
        sender("CSR-SUBJECT-MISMATCH"), signed(pki),
        csr=make_csr("someone-else.example.lv", GOOD["org_name"]))),
    _form_case("TEST-ENV-NOT-COMPLETED", lambda pki: signed(pki, {"test_env_completed": "no"})),
    # Jānis Bērziņš (qualified-2) is not a representative of the organisation.
    _form_case("SIGNER-NOT-AUTHORISED", lambda pki: signed(pki, signer="qualified-2")),
    _case("CONTRACT-MISSING", service_card),
    # A complete application first, then the same signed form from someone else.
    _case("ORIGINAL", lambda pki: ea_mail("janis@ergli.example", duplicated_form(pki)),
          codes=(), status="awaiting-verification"),
    _case("DUPLICATE", lambda pki: ea_mail(sender("DUPLICATE"), duplicated_form(pki)),
          status="awaiting-verification", after="ORIGINAL"),
)}

#: Several defects in one mail: unsigned, a malformed and an empty field, and a
#: CSR with a weak key for another name.
SEVERAL = ("CSR-KEY-WEAK", "CSR-SUBJECT-MISMATCH", "FORM-FIELD-INVALID:org_reg_no",
           "FORM-FIELD-MISSING:contact_email", "SIG-MISSING")


def several_defects() -> bytes:
    form = filled_form(EA, {**GOOD, "org_reg_no": "123", "contact_email": ""})
    return ea_mail("several@applicant.example", form, csr=make_csr("wrong.example", bits=1024))


#: A mail with neither form nor CSR to the e-address mailbox: two codes.
NOTHING_FROM = "nothing@applicant.example"


# -- one deployment for the module -----------------------------------------------------


@dataclass
class Judged:
    deployment: Deployment
    #: Message-ID of each case's mail, by case code (and "SEVERAL", "NOTHING").
    message_ids: dict[str, str]

    def reply(self, name: str) -> EmailMessage:
        replies = self.deployment.replies_to(self.message_ids[name])
        assert len(replies) == 1, [r["Subject"] for r in replies]
        return replies[0]


@pytest.fixture(scope="module")
def judged(dovecot_server: DovecotServer, pki: PkiFixture,
           tls_ca: tuple[trustme.CA, Path],
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Judged]:
    ca, ca_file = tls_ca
    smtp = SmtpTestServer(ca, ca_file)
    smtp.start()
    login, password = dovecot_server.user(f"codes-{os.getpid()}")
    account = ImapAccount(dovecot_server, login, password)
    env = "PASTS_TEST_IMAP_PW_CODES_E2E"

    def mailbox_config(acc: ImapAccount) -> Any:
        server = acc.server
        return SimpleNamespace(
            url=f"imap://{quote(acc.login, safe='')}@{server.host}:{server.port}/INBOX",
            password_env=env, tls_ca=server.ca_file)

    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv(env, password)
            dep = make_deployment(tmp_path_factory.mktemp("codes"), account, mailbox_config,
                                  smtp, pki, registry=REGISTRY,
                                  signing={"max_age_days": MAX_AGE_DAYS,
                                           "revocation": "hard-fail",
                                           "fetch_timeout_seconds": 2.0})
            ids: dict[str, str] = {}
            # Cases another case depends on go first (UID order is processing order).
            order = sorted(CASES.values(), key=lambda c: c.after is not None)
            for case in order:
                raw = case.build(pki)
                ids[case.code] = message_id_of(raw)
                dep.deliver(raw)
            for name, raw in (("SEVERAL", several_defects()),
                              ("NOTHING", ea_mail(NOTHING_FROM, None, csr=None))):
                ids[name] = message_id_of(raw)
                dep.deliver(raw)
            assert dep.run_once() == 0
            assert dep.inbox() == []
            yield Judged(dep, ids)
    finally:
        smtp.stop()


# -- the tests -------------------------------------------------------------------------


def codes_of(reply: EmailMessage) -> list[str]:
    value = reply["X-Pasts-Codes"]
    assert value, f"no X-Pasts-Codes in {reply['Subject']!r}"
    return str(value).split(",")


@pytest.mark.parametrize("code", [c for c in CASES if c != "ORIGINAL"])
def test_each_code_is_answered_with_its_code_status_and_sentence(judged: Judged,
                                                                 code: str) -> None:
    case = CASES[code]
    reply = judged.reply(code)
    codes = codes_of(reply)
    assert code in codes
    assert codes == sorted(case.codes), reply["X-Pasts-Codes"]
    assert reply["X-Pasts-Status"] == case.status
    assert reply["In-Reply-To"] == judged.message_ids[code]
    assert reply["X-Pasts-Reference"] and f"[{reply['X-Pasts-Reference']}]" in reply["Subject"]
    body = " ".join(text_of(reply).split())
    for each in case.codes:
        assert sentence(each) in body, (each, body)


def test_duplicate_is_answered_with_the_existing_reference(judged: Judged) -> None:
    original = judged.reply("ORIGINAL")
    duplicate = judged.reply("DUPLICATE")
    assert original["X-Pasts-Codes"] is None
    assert str(original["X-Pasts-Reference"]).startswith("EA-")
    assert duplicate["X-Pasts-Reference"] == original["X-Pasts-Reference"]
    code, listed = judged.deployment.cli("list")
    assert code == 0
    # The duplicate made no application of its own: every other mail did, and
    # all but the service card have the e-address mailbox's EA prefix.
    # NOTHING (no form, no CSR, no signature) is junk: answered, no application.
    others = set(judged.message_ids) - {"DUPLICATE", "CONTRACT-MISSING", "NOTHING"}
    assert len(set(re.findall(r"\bEA-\d{4}-\d{6}\b", listed))) == len(others)
    assert len(set(re.findall(r"\bIO-\d{4}-\d{6}\b", listed))) == 1


def test_service_card_gets_a_service_publication_reference(judged: Judged) -> None:
    assert str(judged.reply("CONTRACT-MISSING")["X-Pasts-Reference"]).startswith("IO-")


def test_several_defects_get_one_notice_listing_every_code_sorted(judged: Judged) -> None:
    reply = judged.reply("SEVERAL")
    codes = codes_of(reply)
    assert codes == sorted(codes)
    assert codes == list(SEVERAL)
    assert reply["X-Pasts-Status"] == "incomplete"
    body = " ".join(text_of(reply).split())
    for code in codes:
        assert code in body
        assert sentence(code) in body


def test_mail_without_form_and_csr_gets_both_codes_explained(judged: Judged) -> None:
    reply = judged.reply("NOTHING")
    assert codes_of(reply) == ["CSR-MISSING", "FORM-MISSING"]
    # Junk (issue 10): answered with every code, but no application is made.
    assert reply["X-Pasts-Status"] is None and reply["X-Pasts-Reference"] is None
    body = " ".join(text_of(reply).split())
    # SPEC 3: a notice lists every code that applies, each with a human sentence.
    for code in ("CSR-MISSING", "FORM-MISSING"):
        assert sentence(code) in body, (code, body)
