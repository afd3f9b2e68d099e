"""Forms signed outside the PDF: a detached ``.p7s`` beside it, or the mail's S/MIME signature.

End to end through the real Dovecot inbox and SMTP server, with the real test
PKI (its OCSP, CRL and TSA services on loopback).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from intake.demo.samples import (
    application_mail,
    detached_signature,
    filled_form,
    make_csr,
    smime_signed_mail,
)
from signing.testing.pki import QUALIFIED_PERSONAL_CODE
from tests.daemon_env import EA, GOOD, TO, Deployment, message_id_of, reference_of

pytestmark = pytest.mark.sections(verification={"required": False})
SENDER = "janis@ergli.example"


def _csr() -> bytes:
    return make_csr(GOOD["csr_common_name"], GOOD["org_name"])


def _answer(deployment: Deployment, raw: bytes) -> Any:
    deployment.deliver(raw)
    assert deployment.run_once() == 0
    [reply] = deployment.replies_to(message_id_of(raw))
    return reply


def _p7s_mail(form: bytes, signature: bytes, name: str = "pieteikums.pdf.p7s",
              extra: tuple[tuple[str, str, bytes], ...] = ()) -> bytes:
    return application_mail(
        sender=SENDER, to=TO, subject="Pieteikums ar .p7s", form=form, csr=_csr(),
        attachments=(*extra, (name, "application/pkcs7-signature", signature)),
    )


def test_unsigned_form_with_p7s_over_it_is_accepted_and_signer_recorded(
        deployment: Deployment, pki: Any) -> None:
    form = filled_form(EA, GOOD)
    reply = _answer(deployment, _p7s_mail(
        form, detached_signature(form, pki.signer("qualified"), pki.timestamper)))
    assert reply["X-Pasts-Codes"] is None
    assert reply["X-Pasts-Status"] == "in-review"
    code, shown = deployment.cli("show", reference_of(reply))
    assert code == 0
    assert QUALIFIED_PERSONAL_CODE in shown
    assert "signature 1 (.p7s): ok" in shown


def test_p7s_over_other_bytes_is_sig_invalid(deployment: Deployment, pki: Any) -> None:
    form = filled_form(EA, GOOD)
    other = filled_form(EA, {**GOOD, "org_reg_no": "40003999999"})
    reply = _answer(deployment, _p7s_mail(
        form, detached_signature(other, pki.signer("qualified"), pki.timestamper)))
    assert reply["X-Pasts-Codes"] == "SIG-INVALID"
    assert reply["X-Pasts-Status"] == "incomplete"


def test_p7s_without_timestamp_is_ts_missing(deployment: Deployment, pki: Any) -> None:
    form = filled_form(EA, GOOD)
    reply = _answer(deployment, _p7s_mail(form, detached_signature(form, pki.signer("qualified"))))
    assert reply["X-Pasts-Codes"] == "TS-MISSING"


def test_p7s_named_after_another_attachment_does_not_sign_the_form(
        deployment: Deployment, pki: Any) -> None:
    notes = "Piezīmes pieteikumam".encode()
    reply = _answer(deployment, _p7s_mail(
        filled_form(EA, GOOD),
        detached_signature(notes, pki.signer("qualified"), pki.timestamper),
        name="piezimes.txt.p7s", extra=(("piezimes.txt", "text/plain", notes),)))
    assert reply["X-Pasts-Codes"] == "SIG-MISSING"
    # It is still verified, and its signer recorded, for staff.
    code, shown = deployment.cli("show", reference_of(reply))
    assert f".p7s signature over piezimes.txt: ok (Anna Ozola {QUALIFIED_PERSONAL_CODE})" in shown


def test_smime_signed_mail_signs_the_unsigned_form_inside(deployment: Deployment,
                                                          pki: Any) -> None:
    raw = smime_signed_mail(sender=SENDER, to=TO, subject="Parakstīts pieteikums",
                            signer=pki.signer("qualified"), timestamper=pki.timestamper,
                            form=filled_form(EA, GOOD), csr=_csr())
    reply = _answer(deployment, raw)
    assert reply["X-Pasts-Codes"] is None
    assert reply["X-Pasts-Status"] == "in-review"
    code, shown = deployment.cli("show", reference_of(reply))
    assert QUALIFIED_PERSONAL_CODE in shown
    assert "signature 1 (S/MIME): ok" in shown


def test_smime_mail_changed_in_transit_is_sig_invalid(deployment: Deployment,
                                                      pki: Any) -> None:
    raw = smime_signed_mail(sender=SENDER, to=TO, subject="Parakstīts pieteikums",
                            signer=pki.signer("qualified"), timestamper=pki.timestamper,
                            form=filled_form(EA, GOOD), csr=_csr(), tamper=True)
    reply = _answer(deployment, raw)
    assert reply["X-Pasts-Codes"] == "SIG-INVALID"


def test_smime_by_a_non_qualified_signer_is_sig_not_qualified(deployment: Deployment,
                                                             pki: Any) -> None:
    raw = smime_signed_mail(sender=SENDER, to=TO, subject="Parakstīts pieteikums",
                            signer=pki.signer("nonqualified"), timestamper=pki.timestamper,
                            form=filled_form(EA, GOOD), csr=_csr())
    codes = _answer(deployment, raw)["X-Pasts-Codes"].split(",")
    assert "SIG-NOT-QUALIFIED" in codes


def test_pades_form_in_smime_mail_is_judged_by_pades_and_mail_signer_recorded(
        deployment: Deployment, pki: Any) -> None:
    form = pki.sign(filled_form(EA, GOOD), signer="qualified")
    raw = smime_signed_mail(sender=SENDER, to=TO, subject="Parakstīts pieteikums",
                            signer=pki.signer("qualified-2"), timestamper=pki.timestamper,
                            form=form, csr=_csr())
    reply = _answer(deployment, raw)
    assert reply["X-Pasts-Codes"] is None
    code, shown = deployment.cli("show", reference_of(reply))
    assert "signature 1 (Signature1): ok" in shown
    assert "mail S/MIME signature: ok (Jānis Bērziņš" in shown


# -- ASiC-E containers (.edoc, .asice) -----------------------------------------------


def _edoc_mail(container: bytes, name: str = "pieteikums.edoc") -> bytes:
    return application_mail(sender=SENDER, to=TO, subject="Pieteikums .edoc formātā",
                            csr=_csr(),
                            attachments=((name, "application/vnd.etsi.asic-e+zip", container),))


def _edoc(pki: Any, files: tuple[tuple[str, bytes], ...], signer: str = "qualified") -> bytes:
    from signing.testing.xades import make_asice

    return make_asice(files, pki.signer(signer), timestamper=pki.timestamper)


def test_edoc_with_the_form_is_judged_like_a_signed_pdf(deployment: Deployment,
                                                        pki: Any) -> None:
    container = _edoc(pki, (("pieteikums.pdf", filled_form(EA, GOOD)),
                            ("pielikums.txt", "Ērgļu pielikums".encode())))
    reply = _answer(deployment, _edoc_mail(container))
    assert reply["X-Pasts-Codes"] is None
    assert reply["X-Pasts-Status"] == "in-review"
    code, shown = deployment.cli("show", reference_of(reply))
    assert QUALIFIED_PERSONAL_CODE in shown
    assert re.search(r"signature 1 \(META-INF/signatures\d*\.xml#[^)]+\): ok", shown), shown
    assert "SIA Ērgļu Māja" in shown  # the fields come from the PDF inside
    assert "container pieteikums.edoc: form pieteikums.pdf; files pieteikums.pdf, " in shown


def test_edoc_whose_form_was_replaced_after_signing_is_sig_invalid(deployment: Deployment,
                                                                   pki: Any) -> None:
    import zipfile
    from io import BytesIO

    container = _edoc(pki, (("pieteikums.pdf", filled_form(EA, GOOD)),))
    changed = BytesIO()
    with zipfile.ZipFile(BytesIO(container)) as src, zipfile.ZipFile(changed, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename == "pieteikums.pdf":
                data = filled_form(EA, {**GOOD, "org_reg_no": "40003999999"})
            dst.writestr(item, data)
    reply = _answer(deployment, _edoc_mail(changed.getvalue()))
    assert "SIG-INVALID" in reply["X-Pasts-Codes"].split(",")
    assert reply["X-Pasts-Status"] == "incomplete"


def test_edoc_without_a_pdf_is_form_missing(deployment: Deployment, pki: Any) -> None:
    container = _edoc(pki, (("pieteikums.txt", "Lūdzu pieslēgt".encode()),))
    reply = _answer(deployment, _edoc_mail(container, "pieteikums.asice"))
    assert "FORM-MISSING" in reply["X-Pasts-Codes"].split(",")


def test_edoc_that_is_not_a_container_is_form_unreadable(deployment: Deployment) -> None:
    reply = _answer(deployment, _edoc_mail(b"PK\x03\x04 this is not really a zip"))
    assert reply["X-Pasts-Codes"] == "FORM-UNREADABLE"


def test_edoc_by_an_untrusted_signer_is_sig_untrusted(deployment: Deployment,
                                                      pki: Any) -> None:
    container = _edoc(pki, (("pieteikums.pdf", filled_form(EA, GOOD)),), signer="untrusted")
    codes = _answer(deployment, _edoc_mail(container))["X-Pasts-Codes"].split(",")
    assert "SIG-UNTRUSTED" in codes


def test_unsigned_pdf_copy_beside_the_edoc_does_not_hide_the_container(
        deployment: Deployment, pki: Any) -> None:
    """Applicants often attach the plain PDF too; the signed container is what counts."""
    form = filled_form(EA, GOOD)
    raw = application_mail(
        sender=SENDER, to=TO, subject="Pieteikums un tā .edoc", form=form, csr=_csr(),
        attachments=(("pieteikums.edoc", "application/vnd.etsi.asic-e+zip",
                      _edoc(pki, (("pieteikums.pdf", form),))),))
    reply = _answer(deployment, raw)
    assert reply["X-Pasts-Codes"] is None
    assert reply["X-Pasts-Status"] == "in-review"
