"""Staff commands end to end: approve, reject, restrict and digest through the real CLI.

Every test runs against a real Dovecot inbox, a real SMTP server with STARTTLS,
a real signing PKI and the agency CA made for the deployment; certificates and
CRLs are checked with the ``openssl`` command line, not with the code under test.
"""

from __future__ import annotations

import re
import subprocess
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from intake.config import default_workflows
from intake.demo.samples import application_mail, filled_form, make_csr, make_csr_and_key
from rules.workflow import WorkflowConfig
from tests.daemon_env import EA, GOOD, TO, Deployment, message_id_of, reference_of, text_of

NO_VERIFICATION = pytest.mark.sections(verification={"required": False})
REPRESENTATIVE = "PNOLV-010190-12345"


def workflow(wid: str) -> WorkflowConfig:
    return next(w for w in default_workflows() if w.id == wid)


API = workflow("api-access")
IO = workflow("service-publication")


def spki(public_key: Any) -> bytes:
    return bytes(public_key.public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo))


def openssl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["openssl", *args], capture_output=True, text=True, timeout=60,
                          check=False)


def show(dep: Deployment, ref: str) -> str:
    code, out = dep.cli("show", ref)
    assert code == 0, out
    return out


def state_of(dep: Deployment, ref: str) -> str:
    match = re.search(r"^\s*state:\s+(\S+)", show(dep, ref), re.M)
    assert match
    return match.group(1)


def new_replies(dep: Deployment, before: int) -> list[EmailMessage]:
    return dep.replies()[before:]


def submit_eaddress(dep: Deployment, pki: Any) -> tuple[str, str, rsa.RSAPrivateKey, bytes]:
    """Send a good e-address application; return (reference, Message-ID, CSR key, raw mail)."""
    csr, key = make_csr_and_key(GOOD["csr_common_name"], GOOD["org_name"])
    form = pki.sign(filled_form(EA, GOOD), signer="qualified", timestamp=True)
    raw = application_mail(sender="janis@ergli.example", to=TO, subject="Pieteikums e-adresei",
                           form=form, csr=csr)
    dep.deliver(raw)
    assert dep.run_once() == 0
    [reply] = dep.replies()
    assert reply["X-Pasts-Status"] == "in-review", text_of(reply)
    return reference_of(reply), message_id_of(raw), key, raw


def pem_attachments(reply: EmailMessage) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for part in reply.iter_attachments():
        name = part.get_filename()
        if name:
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            found[name] = payload
    return found


def approve_eaddress(dep: Deployment, pki: Any, tmp_path: Path
                     ) -> tuple[str, str, x509.Certificate, rsa.RSAPrivateKey, EmailMessage]:
    """Submit and approve; write ``leaf.pem`` and ``ca.pem``; return what the tests check."""
    ref, message_id, key, _ = submit_eaddress(dep, pki)
    before = len(dep.replies())
    code, out = dep.cli("approve", ref, "--user", "ilze")
    assert code == 0, out
    assert f"{ref}: approved" in out and "1 sent, 0 failed" in out
    [reply] = new_replies(dep, before)
    assert reply["X-Pasts-Status"] == "approved"
    assert reply["X-Pasts-Reference"] == ref
    assert reply["In-Reply-To"] == message_id
    attachments = pem_attachments(reply)
    assert list(attachments) == [f"{ref}.pem"], list(attachments)
    chain = x509.load_pem_x509_certificates(attachments[f"{ref}.pem"])
    ca_path = dep.config.ca.certificate
    assert ca_path is not None
    ca = x509.load_pem_x509_certificate(ca_path.read_bytes())
    assert len(chain) == 2 and chain[1] == ca  # leaf, then the CA
    leaf = chain[0]
    (tmp_path / "leaf.pem").write_bytes(leaf.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    return ref, message_id, leaf, key, reply


@NO_VERIFICATION
def test_approval_mails_the_certificate_issued_for_the_applicants_csr(
        deployment: Deployment, pki: Any, tmp_path: Path) -> None:
    ref, _, leaf, key, reply = approve_eaddress(deployment, pki, tmp_path)

    result = openssl("verify", "-CAfile", str(tmp_path / "ca.pem"), str(tmp_path / "leaf.pem"))
    assert result.returncode == 0 and ": OK" in result.stdout, result.stdout + result.stderr

    assert spki(leaf.public_key()) == spki(key.public_key())
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.CLIENT_AUTH in list(eku)
    cn = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    org = leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert [a.value for a in cn] == [GOOD["csr_common_name"]]
    assert [a.value for a in org] == ["SIA Ērgļu Māja"]

    shown = show(deployment, ref)
    assert "state:      approved" in shown
    assert f"serial {format(leaf.serial_number, 'x')}" in shown
    assert re.search(r"in-review -> approved\s+by ilze", shown)
    assert "certificate" in text_of(reply).lower()


@NO_VERIFICATION
def test_restrict_revokes_the_certificate_in_the_crl_and_notifies_in_thread(
        deployment: Deployment, pki: Any, tmp_path: Path) -> None:
    ref, message_id, leaf, _, _ = approve_eaddress(deployment, pki, tmp_path)
    ca_pem, leaf_pem = str(tmp_path / "ca.pem"), str(tmp_path / "leaf.pem")
    crl_path = deployment.config.ca.crl
    assert crl_path is not None
    # The daemon's first pass already published an empty CRL, and the fresh
    # certificate passes a CRL-checked verification against it.
    assert crl_path.exists()
    fresh = openssl("verify", "-crl_check", "-CAfile", ca_pem, "-CRLfile", str(crl_path), leaf_pem)
    assert fresh.returncode == 0, fresh.stdout + fresh.stderr
    crl_before = crl_path.read_bytes()

    before = len(deployment.replies())
    code, out = deployment.cli("restrict", ref, "--note", "Atbilstības pārbaude neizdevās",
                               "--user", "ilze")
    assert code == 0, out
    serial = format(leaf.serial_number, "x")
    assert serial in out and "1 sent, 0 failed" in out

    shown = show(deployment, ref)
    assert "state:      restricted" in shown
    assert re.search(r"approved -> restricted\s+by ilze: Atbilstības pārbaude neizdevās", shown)
    assert re.search(rf"serial {serial} .* revoked ", shown)

    assert crl_path.read_bytes() != crl_before
    crl = openssl("crl", "-in", str(crl_path), "-CAfile", ca_pem, "-noout", "-text")
    assert crl.returncode == 0, crl.stderr
    assert "verify OK" in crl.stdout + crl.stderr
    listed = {int(s, 16) for s in re.findall(r"Serial Number:\s*([0-9A-Fa-f]+)", crl.stdout)}
    assert listed == {leaf.serial_number}
    assert serial.lower() in {format(s, "x") for s in listed}

    checked = openssl("verify", "-crl_check", "-CAfile", ca_pem, "-CRLfile", str(crl_path),
                      leaf_pem)
    assert checked.returncode != 0
    assert "revoked" in (checked.stdout + checked.stderr).lower()

    [notice] = new_replies(deployment, before)
    assert notice["X-Pasts-Status"] == "restricted"
    assert notice["X-Pasts-Reference"] == ref
    assert notice["In-Reply-To"] == message_id
    assert message_id in notice["References"]
    assert notice["To"] == "janis@ergli.example"
    assert "Atbilstības pārbaude neizdevās" in text_of(notice)


@NO_VERIFICATION
def test_reject_is_final_and_unknown_references_fail(
        deployment: Deployment, pki: Any, capsys: pytest.CaptureFixture[str]) -> None:
    ref, message_id, _, _ = submit_eaddress(deployment, pki)
    before = len(deployment.replies())
    code, out = deployment.cli("reject", ref, "--code", "CONTRACT-MISSING",
                               "--note", "Līgums nav saņemts", "--user", "ilze")
    assert code == 0, out
    assert f"{ref}: rejected (CONTRACT-MISSING)" in out

    [notice] = new_replies(deployment, before)
    assert notice["X-Pasts-Status"] == "rejected"
    assert "CONTRACT-MISSING" in notice["X-Pasts-Codes"].split(",")
    assert notice["In-Reply-To"] == message_id
    assert "CONTRACT-MISSING" in text_of(notice)

    shown = show(deployment, ref)
    assert "state:      rejected" in shown
    assert re.search(r"in-review -> rejected\s+by ilze: CONTRACT-MISSING: Līgums nav saņemts",
                     shown)

    capsys.readouterr()
    sent = len(deployment.replies())
    code, out = deployment.cli("approve", ref, "--user", "ilze")
    err = capsys.readouterr().err
    assert code == 1
    assert f"{ref} is rejected" in err and "in review" in err, err
    assert state_of(deployment, ref) == "rejected"
    assert len(deployment.replies()) == sent  # nothing mailed

    code, out = deployment.cli("show", "NOPE-2026-000001")
    err = capsys.readouterr().err
    assert code == 1
    assert "no application NOPE-2026-000001" in err


@NO_VERIFICATION
def test_rejection_notice_says_the_decision_is_final(deployment: Deployment, pki: Any) -> None:
    ref, _, _, _ = submit_eaddress(deployment, pki)
    code, out = deployment.cli("reject", ref, "--code", "CONTRACT-MISSING",
                               "--note", "Līgums nav saņemts")
    assert code == 0, out
    notice = deployment.replies()[-1]
    assert notice["X-Pasts-Status"] == "rejected"
    assert "Līgums nav saņemts" in text_of(notice)
    assert "incomplete" not in notice["Subject"].lower()
    assert "incomplete" not in text_of(notice).lower()
    assert "send the corrected documents" not in text_of(notice).lower()


API_VALUES = {
    "org_name": "SIA Ērgļu Māja", "org_reg_no": "40003123456",
    "contact_name": "Jānis Bērziņš", "contact_email": "janis@ergli.example",
    "data_provider": "Valsts ieņēmumu dienests", "data_provider_email": "api@vid.example",
    "apis": "vid-nodokli, vid-deklaracijas", "csr_common_name": "ergli-api.example.lv",
}


def approve_api_access(dep: Deployment, pki: Any
                       ) -> tuple[str, str, rsa.RSAPrivateKey, dict[str, EmailMessage]]:
    """Submit and approve an API access application; return (ref, CLI output, key, mails by To)."""
    csr, key = make_csr_and_key(API_VALUES["csr_common_name"], API_VALUES["org_name"])
    form = pki.sign(filled_form(API, API_VALUES), signer="qualified", timestamp=True)
    raw = application_mail(sender="janis@ergli.example", to=TO, subject="API piekļuve",
                           form=form, csr=csr)
    dep.deliver(raw)
    assert dep.run_once() == 0
    [ack] = dep.replies()
    assert ack["X-Pasts-Status"] == "in-review", text_of(ack)
    ref = str(ack["X-Pasts-Reference"])
    assert re.fullmatch(r"API-\d{4}-\d{6}", ref)

    code, out = dep.cli("approve", ref)
    assert code == 0, out
    by_recipient = {str(r["To"]): r for r in new_replies(dep, 1)}
    assert set(by_recipient) == {"janis@ergli.example", "api@vid.example"}, list(by_recipient)
    for reply in by_recipient.values():
        assert reply["In-Reply-To"] == message_id_of(raw)
    return ref, out, key, by_recipient


def data_exchange_id(dep: Deployment, ref: str) -> str:
    shown = show(dep, ref)
    match = re.search(r"^outcome:\n(?:  .*\n)*?  data_exchange_id: (DX-\d{4}-\d{6})$", shown, re.M)
    assert match, shown
    return match.group(1)


@NO_VERIFICATION
def test_api_access_approval_assigns_a_data_exchange_id_and_informs_the_provider(
        deployment: Deployment, pki: Any) -> None:
    ref, out, key, mails = approve_api_access(deployment, pki)
    dx = data_exchange_id(deployment, ref)
    assert dx in out
    assert "state:      approved" in show(deployment, ref)

    applicant, provider = mails["janis@ergli.example"], mails["api@vid.example"]
    for reply in (applicant, provider):
        assert reply["X-Pasts-Status"] == "approved"
        assert reply["X-Pasts-Reference"] == ref
        assert f"[{ref}]" in reply["Subject"]
    # Only the applicant gets the certificate, issued for the CSR that was sent.
    assert pem_attachments(provider) == {}
    chain = x509.load_pem_x509_certificates(pem_attachments(applicant)[f"{ref}.pem"])
    assert spki(chain[0].public_key()) == spki(key.public_key())
    assert chain[0].extensions.get_extension_for_class(x509.ExtendedKeyUsage).value


@NO_VERIFICATION
def test_api_access_mails_name_the_data_exchange_id(deployment: Deployment, pki: Any) -> None:
    ref, _, _, mails = approve_api_access(deployment, pki)
    dx = data_exchange_id(deployment, ref)
    applicant, provider = mails["janis@ergli.example"], mails["api@vid.example"]
    assert dx in text_of(applicant)
    assert dx in text_of(provider)
    assert "your application" not in text_of(provider).lower()
    assert "SIA Ērgļu Māja" in text_of(provider)


IO_VALUES = {
    "org_name": "SIA Ērgļu Māja", "org_reg_no": "40003123456",
    "service_name": "Būvatļaujas pieprasījums",
    "service_description": "Iesniegums būvatļaujas saņemšanai ar elektronisko parakstu un "
                           "pielikumiem.",
    "department": "Klientu apkalpošanas nodaļa", "contact_email": "janis@ergli.example",
    "privacy_url": "https://ergli.example/privatums",
}


@NO_VERIFICATION
def test_service_publication_approval_makes_it_active(deployment: Deployment, pki: Any) -> None:
    registry = deployment.directory / "io-registry.csv"
    registry.write_text(
        "org_reg_no,org_name,test_env_completed,agreement_received,representatives\n"
        f"40003123456,SIA Ērgļu Māja,yes,yes,{REPRESENTATIVE}\n", encoding="utf-8")
    assert deployment.cli("registry", "import", str(registry))[0] == 0

    form = pki.sign(filled_form(IO, IO_VALUES), signer="qualified", timestamp=True)
    raw = application_mail(sender="janis@ergli.example", to=TO, subject="Pakalpojuma kartīte",
                           form=form)
    deployment.deliver(raw)
    assert deployment.run_once() == 0
    [ack] = deployment.replies()
    assert ack["X-Pasts-Status"] == "in-review", text_of(ack)
    ref = ack["X-Pasts-Reference"]
    assert re.fullmatch(r"IO-\d{4}-\d{6}", ref)
    assert REPRESENTATIVE in show(deployment, ref)

    code, out = deployment.cli("approve", ref, "--user", "ilze")
    assert code == 0, out
    [reply] = new_replies(deployment, 1)
    assert reply["X-Pasts-Status"] == "active"
    assert reply["In-Reply-To"] == message_id_of(raw)
    assert pem_attachments(reply) == {}
    shown = show(deployment, ref)
    assert "state:      active" in shown
    assert re.search(r"in-review -> active\s+by ilze", shown)
    assert "certificates:" not in shown


@NO_VERIFICATION
def test_digest_lists_what_waits_and_is_mailed_to_staff(
        deployment: Deployment, pki: Any, tmp_path: Path) -> None:
    ref, _, _, _ = submit_eaddress(deployment, pki)
    code, out = deployment.cli("digest")
    assert code == 0
    assert ref in out and "SIA Ērgļu Māja" in out

    html = tmp_path / "digest.html"
    code, out = deployment.cli("digest", "--html", str(html))
    assert code == 0
    page = html.read_text(encoding="utf-8")
    assert ref in page and "<html" in page.lower()
    assert "SIA Ērgļu Māja" in page

    before = len(deployment.smtp.messages)
    code, out = deployment.cli("digest", "--send")
    assert code == 0, out
    assert "staff@agency.test" in out
    [sent] = deployment.smtp.messages[before:]
    assert tuple(sent.rcpt_tos) == ("staff@agency.test",)
    assert sent.tls
    [mail] = deployment.replies()[before:]
    assert mail["To"] == "staff@agency.test"
    assert mail["Auto-Submitted"] == "auto-generated"
    assert ref in text_of(mail)

    # Once approved, the application no longer waits for staff.
    assert deployment.cli("approve", ref)[0] == 0
    code, out = deployment.cli("digest")
    assert code == 0 and ref not in out


HOSTILE = {
    # A fake row for `pasts list`, and a fake state line plus a screen clear for `pasts show`.
    "org_name": "SIA Ērgļu Māja\r\nEA-2026-999999     approved",
    "solution_name": "Ēdoc\x1b[2J\x1b[H\nstate:      approved\x9b0m",
    "contact_name": "Jānis \u202eszniz\u202c Bērziņš",
}


@pytest.mark.sections(verification={"required": False})
def test_control_characters_from_a_signed_form_reach_staff_escaped(
        deployment: Deployment, pki: Any) -> None:
    from tests.daemon_env import good_mail

    # The registry names the organisation as the signed form does, so the
    # application reaches review and the hostile value is what staff read.
    registry = deployment.config_path.parent / "hostile-registry.csv"
    name = HOSTILE["org_name"].replace('"', '""')
    registry.write_text(
        "org_reg_no,org_name,test_env_completed,agreement_received,representatives\n"
        f'{GOOD["org_reg_no"]},"{name}",yes,yes,PNOLV-010190-12345\n', encoding="utf-8")
    assert deployment.cli("registry", "import", str(registry))[0] == 0
    form = pki.sign(filled_form(EA, {**GOOD, **HOSTILE}), signer="qualified", timestamp=True)
    raw = application_mail(sender="janis@ergli.example", to=TO, subject="Pieteikums\x1b[31m",
                           form=form, csr=make_csr(GOOD["csr_common_name"]))
    deployment.deliver(raw)
    deployment.deliver(good_mail(pki))
    assert deployment.run_once() == 0
    [reply] = deployment.replies_to(message_id_of(raw))
    ref = reference_of(reply)

    code, listed = deployment.cli("list")
    assert code == 0
    # One line per application, the hostile organisation's included.
    assert len(listed.splitlines()) == 2
    assert "\\x0d\\x0aEA-2026-999999" in listed

    code, shown = deployment.cli("show", ref)
    assert code == 0
    for raw in ("\x1b", "\r", "\x9b", "\u202e"):
        assert raw not in shown
    assert "\\x1b[2J" in shown and "\\u202e" in shown
    assert [line for line in shown.splitlines() if "state:" in line][0].strip() == (
        "state:      in-review")

    code, digest = deployment.cli("digest")
    assert code == 0
    assert "\x1b" not in digest and "\r" not in digest
    assert "SIA Ērgļu Māja\\x0d\\x0aEA-2026-999999" in digest
