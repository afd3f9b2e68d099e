"""PEC transport envelopes and receipts, read from raw mail and checked with the test PKI."""

from __future__ import annotations

import asyncio
import email
from email.policy import default

import pytest

from intake.demo.samples import (
    application_mail,
    daticert_xml,
    pec_envelope,
    pec_receipt,
    smime_signed_mail,
)
from intake.mime.parse import parse_message
from intake.mime.pec import (
    MAX_DEPTH,
    PecEnvelope,
    PecReceipt,
    check_transport,
    parse_daticert,
    read_pec,
)
from signing.verifier import InProcessVerifier
from tests.fixtures.pki import PkiFixture
from tests.judged import verifier_codes

APPLICANT = "protocollo@pec.comune.example.it"
PASTS = "pasts@pec.agenzia.example.it"


@pytest.fixture(scope="module")
def inner(pki: PkiFixture) -> bytes:
    return application_mail(
        sender=f"Comune di Cefalù <{APPLICANT}>", to=PASTS, subject="Richiesta pubblicazione",
        body="Buongiorno, in allegato il modulo firmato.\n",
        form=pki.form_pdf(form_id="service-publication"), form_name="modulo.pdf",
    )


def _checked(pki: PkiFixture, raw: bytes) -> PecEnvelope | PecReceipt:
    pec = read_pec(raw)
    assert pec is not None
    return asyncio.run(check_transport(pec, InProcessVerifier(pki.settings())))


def test_envelope_is_unwrapped_to_the_exact_inner_mail(pki: PkiFixture, inner: bytes) -> None:
    raw = pec_envelope(inner, provider_signer=pki.signer("nonqualified"), to=PASTS,
                       identifier="opec21.20261203102030.12345.01.1.1@pec.gestore.example.it")
    pec = read_pec(raw)
    assert isinstance(pec, PecEnvelope)
    assert pec.transport == "posta-certificata"
    assert pec.inner == inner  # byte for byte: its own signatures stay checkable
    assert pec.inner_from == APPLICANT
    assert pec.inner_message_id == email.message_from_bytes(inner, policy=default)["Message-ID"]
    assert pec.envelope_from == "posta-certificata@pec.gestore.example.it"
    assert pec.sender_matches and pec.notes == ()
    assert pec.daticert is not None
    assert pec.daticert.kind == "posta-certificata" and pec.daticert.error == "nessuno"
    assert pec.daticert.sender == APPLICANT
    assert pec.daticert.recipients == ((PASTS, "certificato"),)
    assert pec.daticert.identifier == "opec21.20261203102030.12345.01.1.1@pec.gestore.example.it"
    assert pec.daticert.message_id == pec.inner_message_id
    assert pec.daticert.time is not None and pec.daticert.time.tzinfo is not None
    assert pec.daticert.provider == "Gestore PEC di prova S.p.A."
    # The inner mail is the applicant's application, read as if it arrived alone.
    mail = parse_message(pec.inner)
    assert mail.from_addr == APPLICANT and mail.form is not None


def test_provider_signature_is_transport_evidence(pki: PkiFixture, inner: bytes) -> None:
    pec = _checked(pki, pec_envelope(inner, provider_signer=pki.signer("nonqualified"), to=PASTS))
    assert isinstance(pec, PecEnvelope)
    verdict = pec.transport_signature
    assert verdict is not None
    (status,) = verdict.signatures
    assert status.kind == "smime" and status.field_name == "PEC provider (transport)"
    assert status.intact and status.valid and status.trusted
    # The provider is not the applicant: the inner mail carries no signature of its own.
    assert parse_message(pec.inner or b"").smime is None


def test_tampered_envelope_breaks_the_provider_signature(pki: PkiFixture, inner: bytes) -> None:
    pec = _checked(pki, pec_envelope(inner, provider_signer=pki.signer("nonqualified"),
                                     to=PASTS, tamper=True))
    assert pec.transport_signature is not None
    assert "SIG-INVALID" in verifier_codes(pec.transport_signature)
    assert not pec.transport_signature.signatures[0].intact


def test_forged_provider_is_untrusted(pki: PkiFixture, inner: bytes) -> None:
    pec = _checked(pki, pec_envelope(inner, provider_signer=pki.signer("untrusted"), to=PASTS))
    assert pec.transport_signature is not None
    assert "SIG-UNTRUSTED" in verifier_codes(pec.transport_signature)


def test_applicant_signed_inner_mail_keeps_its_own_signature(pki: PkiFixture) -> None:
    signed_inner = smime_signed_mail(
        sender=APPLICANT, to=PASTS, subject="Modulo firmato", signer=pki.signer("qualified"),
        timestamper=pki.timestamper, form=pki.form_pdf(form_id="service-publication"))
    pec = read_pec(pec_envelope(signed_inner, provider_signer=pki.signer("nonqualified"),
                                to=PASTS))
    assert isinstance(pec, PecEnvelope) and pec.inner == signed_inner
    mail = parse_message(pec.inner)
    assert mail.smime is not None
    verdict = InProcessVerifier(pki.settings()).verify_detached_sync(*mail.smime, kind="smime")
    assert verifier_codes(verdict) == ()
    assert verdict.signer is not None and verdict.signer.common_name == "Anna Ozola"


def test_sender_mismatch_is_noted(pki: PkiFixture, inner: bytes) -> None:
    daticert = daticert_xml(sender="altro@pec.example.it", recipients=[PASTS], subject="x",
                            identifier="id@pec", message_id="<m@x>")
    pec = read_pec(pec_envelope(inner, provider_signer=pki.signer("nonqualified"), to=PASTS,
                                daticert=daticert))
    assert isinstance(pec, PecEnvelope) and not pec.sender_matches
    assert any("is not the inner From" in note for note in pec.notes)


@pytest.mark.parametrize("kind", ["accettazione", "avvenuta-consegna", "errore-consegna",
                                  "non-accettazione", "preavviso-errore-consegna",
                                  "presa-in-carico", "rilevazione-virus"])
def test_receipts_are_recognised(pki: PkiFixture, kind: str) -> None:
    raw = pec_receipt(kind, refers_to="<reply-1@pasts.example>",
                      provider_signer=pki.signer("nonqualified"), to=PASTS,
                      delivered_to=APPLICANT)
    pec = _checked(pki, raw)
    assert isinstance(pec, PecReceipt)
    assert pec.kind == kind and pec.refers_to == "<reply-1@pasts.example>"
    assert pec.delivered == (kind == "avvenuta-consegna")
    assert pec.failed == (kind in ("errore-consegna", "non-accettazione",
                                   "preavviso-errore-consegna", "rilevazione-virus"))
    assert pec.daticert is not None and pec.daticert.kind == kind
    assert pec.daticert.message_id == "<reply-1@pasts.example>"
    assert pec.daticert.delivered_to == APPLICANT
    assert pec.transport_signature is not None
    assert pec.transport_signature.signatures[0].intact
    # The existing MIME reader sees the same receipt.
    assert parse_message(raw).pec_receipt == (kind, "<reply-1@pasts.example>")


def test_ordinary_mail_is_not_pec(inner: bytes) -> None:
    assert read_pec(inner) is None


def test_daticert_parser_refuses_entities_and_dtds() -> None:
    bomb = (b'<?xml version="1.0"?><!DOCTYPE postacert [<!ENTITY a "aaaaaaaaaa">'
            b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]>'
            b"<postacert tipo='posta-certificata' errore='nessuno'><intestazione>"
            b"<mittente>&b;</mittente></intestazione><dati/></postacert>")
    with pytest.raises(ValueError, match="DTD"):
        parse_daticert(bomb)
    external = (b'<?xml version="1.0"?><!DOCTYPE postacert SYSTEM "file:///etc/passwd">'
                b"<postacert><intestazione/><dati/></postacert>")
    with pytest.raises(ValueError):
        parse_daticert(external)
    with pytest.raises(ValueError, match="root"):
        parse_daticert(b"<other/>")
    with pytest.raises(ValueError, match="over"):
        parse_daticert(b"<postacert>" + b" " * 300_000 + b"</postacert>")


def test_envelope_with_bad_daticert_still_unwraps(pki: PkiFixture, inner: bytes) -> None:
    raw = pec_envelope(inner, provider_signer=pki.signer("nonqualified"), to=PASTS,
                       daticert=b"<postacert><broken")
    pec = read_pec(raw)
    assert isinstance(pec, PecEnvelope) and pec.inner == inner and pec.daticert is None
    assert any("daticert.xml cannot be read" in note for note in pec.notes)


def test_bounds_on_size_and_depth(pki: PkiFixture, inner: bytes) -> None:
    raw = pec_envelope(inner, provider_signer=pki.signer("nonqualified"), to=PASTS)
    big = read_pec(raw, max_bytes=1000)
    assert isinstance(big, PecEnvelope) and big.inner is None
    assert any("over 1000" in note for note in big.notes)
    # A MIME tree nested deeper than the bound is not walked.
    deep = b"X-Trasporto: posta-certificata\r\nMessage-ID: <d@x>\r\n"
    body = b"leaf\r\n"
    for level in range(MAX_DEPTH + 3):
        boundary = f"b{level}".encode()
        body = (b"Content-Type: multipart/mixed; boundary=" + boundary + b"\r\n\r\n--" + boundary
                + b"\r\n" + body + b"\r\n--" + boundary + b"--\r\n")
    pec = read_pec(deep + body)
    assert isinstance(pec, PecEnvelope) and pec.inner is None
    assert any("deeper than" in note for note in pec.notes)


def test_unsigned_headers_are_checked_against_the_signed_daticert(pki: PkiFixture) -> None:
    """X-Ricevuta and X-Riferimento-Message-ID lie outside the provider's signature."""
    raw = pec_receipt("errore-consegna", refers_to="<reply-1@pasts.example>",
                      provider_signer=pki.signer("nonqualified"), to=PASTS)
    forged = raw.replace(b"X-Ricevuta: errore-consegna", b"X-Ricevuta: avvenuta-consegna", 1)
    forged = forged.replace(b"X-Riferimento-Message-ID: <reply-1@pasts.example>",
                            b"X-Riferimento-Message-ID: <reply-2@pasts.example>", 1)
    pec = _checked(pki, forged)
    assert isinstance(pec, PecReceipt) and pec.kind == "avvenuta-consegna"
    assert pec.transport_signature is not None and pec.transport_signature.signatures[0].intact
    assert pec.daticert is not None and pec.daticert.kind == "errore-consegna"
    assert any("signed daticert.xml says 'errore-consegna'" in note for note in pec.notes)
    assert any("is not the signed daticert.xml's msgid" in note for note in pec.notes)
    assert read_pec(raw).notes == ()  # type: ignore[union-attr]


def test_anomaly_envelope_is_reported_as_such(pki: PkiFixture, inner: bytes) -> None:
    raw = pec_envelope(inner, provider_signer=pki.signer("nonqualified"), to=PASTS)
    anomaly = read_pec(raw.replace(b"X-Trasporto: posta-certificata", b"X-Trasporto: errore", 1))
    assert isinstance(anomaly, PecEnvelope) and anomaly.transport == "errore"
    assert anomaly.inner == inner


def test_truncated_or_mangled_envelopes_never_raise(pki: PkiFixture, inner: bytes) -> None:
    raw = pec_envelope(inner, provider_signer=pki.signer("nonqualified"), to=PASTS)
    step = max(1, len(raw) // 60)
    for cut in range(0, len(raw), step):
        pec = read_pec(raw[:cut])
        assert pec is None or isinstance(pec, PecEnvelope)
    mangled = raw.replace(b"Content-Transfer-Encoding: base64", b"Content-Transfer-Encoding: base64\r\nX: \xff")
    assert isinstance(read_pec(mangled.replace(b"=\r\n", b"!\r\n")), PecEnvelope)
