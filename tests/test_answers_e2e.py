"""Answers that say the right thing, end to end: real Dovecot, real SMTP, real PKI and CA.

* A signed container without a form whose signature is broken is told so
  (SIG-INVALID beside FORM-MISSING), not only that the form is missing.
* A CSR whose organisation is written without diacritics, or as the Latin-1
  mojibake ``openssl req`` writes without ``-utf8``, matches the form.
* A form whose ``org_name`` is not the registry's name for its ``org_reg_no``
  is FORM-FIELD-INVALID:org_name; an approved certificate's O is the
  registry's name, whatever the form wrote.
"""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID

from intake.demo.samples import application_mail, filled_form, make_csr
from signing.testing.xades import async_sign_xades, pack_asice
from tests.daemon_env import EA, GOOD, TO, Deployment, message_id_of, reference_of, text_of

NO_VERIFICATION = pytest.mark.sections(verification={"required": False})
#: GOOD's organisation as the registry writes it (tests/daemon_env.py REGISTRY).
REGISTRY_NAME = GOOD["org_name"]


def codes_of(reply: Any) -> list[str]:
    return str(reply["X-Pasts-Codes"] or "").split(",") if reply["X-Pasts-Codes"] else []


def one_reply(dep: Deployment, raw: bytes) -> Any:
    replies = dep.replies_to(message_id_of(raw))
    assert len(replies) == 1, [r["Subject"] for r in replies]
    return replies[0]


def form_mail(pki: Any, sender: str, *, csr: bytes, **values: str) -> bytes:
    form = pki.sign(filled_form(EA, {**GOOD, **values}), signer="qualified", timestamp=True)
    return application_mail(sender=sender, to=TO, subject="Pieteikums e-adresei", form=form,
                            csr=csr)


def openssl_csr(tmp_path: Path, organisation: str) -> bytes:
    """A CSR made by ``openssl req`` without ``-utf8``: the O is UTF-8 bytes read as Latin-1."""
    key = tmp_path / "key.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True,
                   capture_output=True, timeout=60)
    done = subprocess.run(
        ["openssl", "req", "-new", "-key", str(key),
         "-subj", f"/CN={GOOD['csr_common_name']}/O={organisation}"],
        check=True, capture_output=True, timeout=60)
    csr = x509.load_pem_x509_csr(done.stdout)
    (o,) = csr.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    # The mojibake this test is about, as the CSR carries it.
    assert o.value != organisation and "Ä" in str(o.value)
    return done.stdout


def test_broken_container_without_form_is_told_its_signature_is_broken(
        deployment: Deployment, pki: Any) -> None:
    signed = [("pieteikums.txt", "Lūdzu pieslēgt e-adresi.".encode())]
    document = asyncio.run(async_sign_xades(signed, pki.signer("qualified"),
                                            timestamper=pki.timestamper))
    # The data file swapped after signing.
    swapped = pack_asice([("pieteikums.txt", b"something else")], [document])
    raw = application_mail(sender="edoc@applicant.example", to=TO, subject="Pieteikums",
                           attachments=[("pieteikums.edoc", "application/vnd.etsi.asic-e+zip",
                                         swapped)])
    deployment.deliver(raw)
    assert deployment.run_once() == 0
    reply = one_reply(deployment, raw)
    assert codes_of(reply) == ["CSR-MISSING", "FORM-MISSING", "SIG-INVALID"]
    assert "SIG-INVALID" in text_of(reply)


@NO_VERIFICATION
def test_csr_organisation_written_as_a_person_would_matches_the_form(
        deployment: Deployment, pki: Any, tmp_path: Path) -> None:
    plain = form_mail(pki, "plain@applicant.example",
                      csr=make_csr(GOOD["csr_common_name"], "sia ergļu maja"))
    mojibake = form_mail(pki, "openssl@applicant.example",
                         csr=openssl_csr(tmp_path, GOOD["org_name"]))
    other = form_mail(pki, "other@applicant.example",
                      csr=make_csr(GOOD["csr_common_name"], "SIA Cita Māja"))
    for raw in (plain, mojibake, other):
        deployment.deliver(raw)
    assert deployment.run_once() == 0
    for raw in (plain, mojibake):
        reply = one_reply(deployment, raw)
        assert reply["X-Pasts-Status"] == "in-review", text_of(reply)
        assert codes_of(reply) == []
    assert codes_of(one_reply(deployment, other)) == ["CSR-SUBJECT-MISMATCH"]


@NO_VERIFICATION
def test_form_naming_another_organisation_than_the_registry_is_field_invalid(
        deployment: Deployment, pki: Any) -> None:
    raw = form_mail(pki, "bank@applicant.example", org_name="Latvijas Banka",
                    csr=make_csr(GOOD["csr_common_name"], "Latvijas Banka"))
    deployment.deliver(raw)
    assert deployment.run_once() == 0
    reply = one_reply(deployment, raw)
    assert codes_of(reply) == ["FORM-FIELD-INVALID:org_name"]
    assert reply["X-Pasts-Status"] == "incomplete"
    code, shown = deployment.cli("show", reference_of(reply))
    assert code == 0
    assert "form:       Latvijas Banka" in shown
    assert f"registry:   {REGISTRY_NAME} ({GOOD['org_reg_no']}): DIFFERENT" in shown


@NO_VERIFICATION
def test_certificate_organisation_is_the_registry_name(deployment: Deployment,
                                                        pki: Any) -> None:
    written = "sia „Ērgļu  māja”"
    raw = form_mail(pki, "janis@ergli.example", org_name=written,
                    csr=make_csr(GOOD["csr_common_name"], written))
    deployment.deliver(raw)
    assert deployment.run_once() == 0
    reply = one_reply(deployment, raw)
    assert reply["X-Pasts-Status"] == "in-review", text_of(reply)
    ref = reference_of(reply)
    code, shown = deployment.cli("show", ref)
    assert f"registry:   {REGISTRY_NAME} ({GOOD['org_reg_no']}): same" in shown
    before = len(deployment.replies())
    code, out = deployment.cli("approve", ref, "--user", "ilze")
    assert code == 0, out
    [approved] = deployment.replies()[before:]
    pem = next(p.get_payload(decode=True) for p in approved.iter_attachments()
               if p.get_filename() == f"{ref}.pem")
    leaf = x509.load_pem_x509_certificates(pem)[0]
    (o,) = leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    assert o.value == REGISTRY_NAME
    (org_id,) = leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)
    assert GOOD["org_reg_no"] in str(org_id.value)


@NO_VERIFICATION
def test_co_signed_p7s_over_the_form_is_answered_as_sound(deployment: Deployment,
                                                           pki: Any) -> None:
    from tests.test_genuine_signatures import co_signed

    form = filled_form(EA, GOOD)
    raw = application_mail(
        sender="janis@ergli.example", to=TO, subject="Pieteikums ar .p7s", form=form,
        csr=make_csr(GOOD["csr_common_name"], GOOD["org_name"]),
        attachments=[("pieteikums.pdf.p7s", "application/pkcs7-signature",
                      co_signed(form, pki))])
    deployment.deliver(raw)
    assert deployment.run_once() == 0
    reply = one_reply(deployment, raw)
    # Both signatures are sound (which of the two is "the" signer for the
    # registry depends on the SET's order; qualified-2 is no representative).
    assert not [c for c in codes_of(reply) if c.startswith(("SIG-", "TS-"))], codes_of(reply)
    code, shown = deployment.cli("show", reference_of(reply))
    assert "signature 1 (signer 1 of 2): ok" in shown
    assert "signature 2 (signer 2 of 2): ok" in shown
