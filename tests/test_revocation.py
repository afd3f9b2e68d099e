"""Revocation fetching and freshness, against loopback servers the tests run.

An attacker's certificate names URLs on a counting server (nothing may be
fetched); a trusted chain names a black hole (the answer must come within
the timeout and the per-message budget, as SIG-REVOCATION-UNKNOWN); the cache
spares a responder a second request; and an OCSP response produced before
the signature time-stamp does not prove the status at signing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from io import BytesIO
from typing import Any

import pytest
from asn1crypto import ocsp as asn1_ocsp
from pyhanko.sign.validation.dss import DocumentSecurityStore

from signing.isolation import IsolatedVerifier
from signing.settings import VerifierSettings
from signing.status import FormVerdict
from signing.testing.pdfs import sign_pdf
from signing.trust.fetching import CACHE, RevocationCache
from signing.verifier import InProcessVerifier
from tests.fixtures.pki import PkiFixture
from tests.fixtures.revocation import BlackHole, Chain, CountingServer, issue_chain
from tests.judged import verifier_codes
from tests.shared import CORPUS


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    """Every test starts with an empty process cache."""
    CACHE.clear()
    yield
    CACHE.clear()


def verify(pki: PkiFixture, pdf: bytes, **settings: Any) -> tuple[FormVerdict, float]:
    """The verdict on ``pdf`` and the seconds it took."""
    started = time.monotonic()
    verdict = InProcessVerifier(pki.settings(**settings)).verify_pdf_sync(pdf)
    return verdict, time.monotonic() - started


def signed_by(pki: PkiFixture, chain: Chain, pdf: bytes | None = None, *,
              field_name: str = "Signature1", with_chain: bool = True) -> bytes:
    """``pdf`` (a fresh form by default) signed at B-T by ``chain``'s signer."""
    return sign_pdf(pdf if pdf is not None else pki.form_pdf(), chain.signer(
        with_chain=with_chain), timestamper=pki.timestamper, field_name=field_name)


@pytest.mark.parametrize("with_chain", [True, False], ids=["chain-embedded", "signer-only"])
def test_untrusted_certificate_makes_no_request(pki: PkiFixture, with_chain: bool) -> None:
    with CountingServer() as server:
        chain = issue_chain(None, ocsp_url=f"{server.url}/ocsp", crl_url=f"{server.url}/ca.crl",
                            ca_issuers_url=f"{server.url}/ca.cer")
        pdf = signed_by(pki, chain, with_chain=with_chain)
        for mode in ("soft-fail", "hard-fail"):
            verdict, seconds = verify(pki, pdf, revocation=mode)
            assert verifier_codes(verdict) == ("SIG-UNTRUSTED",), verdict.signatures[0].notes
            assert seconds < 2
        # Neither OCSP, nor the CRL, nor the issuer's certificate (AIA) was asked for.
        assert server.total == 0, server.requests


def test_black_hole_responder_is_revocation_unknown_within_the_timeout(
    pki: PkiFixture,
) -> None:
    with BlackHole() as hole:
        pdf = signed_by(pki, issue_chain(pki.pki, ocsp_url=f"{hole.url}/ocsp"))
        verdict, seconds = verify(pki, pdf, revocation="hard-fail", fetch_timeout_seconds=1.0)
        assert hole.connections >= 1
    assert verifier_codes(verdict) == ("SIG-REVOCATION-UNKNOWN",), verdict.signatures[0].notes
    assert seconds < 3
    notes = " ".join(verdict.signatures[0].notes)
    assert "no answer within 1 s" in notes


def test_black_hole_responder_under_soft_fail_is_accepted_with_a_note(pki: PkiFixture) -> None:
    with BlackHole() as hole:
        pdf = signed_by(pki, issue_chain(pki.pki, ocsp_url=f"{hole.url}/ocsp"))
        verdict, seconds = verify(pki, pdf, revocation="soft-fail", fetch_timeout_seconds=1.0)
    assert verifier_codes(verdict) == ()
    assert seconds < 3
    assert any("soft-fail" in note for note in verdict.signatures[0].notes)


def test_several_black_hole_signatures_stay_within_the_budget(pki: PkiFixture) -> None:
    signatures = 4
    with BlackHole() as hole:
        pdf = pki.form_pdf()
        for index in range(signatures):
            chain = issue_chain(pki.pki, ocsp_url=f"{hole.url}/ocsp", name=f"Hole {index}")
            pdf = signed_by(pki, chain, pdf, field_name=f"Signature{index + 1}")
        verdict, seconds = verify(pki, pdf, revocation="hard-fail", fetch_timeout_seconds=1.5,
                                  fetch_budget_seconds=2.0)
    assert len(verdict.signatures) == signatures
    for status in verdict.signatures:
        assert verifier_codes(status) == ("SIG-REVOCATION-UNKNOWN",), status.notes
    # 1.5 s per signature would be six; the budget holds the document to two.
    assert seconds < 4.5
    assert any("budget" in note for status in verdict.signatures for note in status.notes)


def test_two_messages_of_one_signer_cost_the_responder_one_request(pki: PkiFixture) -> None:
    holder: list[Chain] = []
    with CountingServer(answer=lambda request: holder[0].ocsp_response(request)) as server:
        chain = issue_chain(pki.pki, ocsp_url=f"{server.url}/ocsp")
        holder.append(chain)
        # Both forms are signed (and time-stamped) before either is judged,
        # as when two mails wait in the inbox.
        first, second = signed_by(pki, chain), signed_by(pki, chain)
        for pdf in (first, second):
            verdict, _ = verify(pki, pdf, revocation="hard-fail")
            assert verifier_codes(verdict) == (), verdict.signatures[0].notes
        assert server.requests["/ocsp"] == 1, server.requests


def test_the_daemon_s_verification_process_keeps_the_cache(pki: PkiFixture) -> None:
    holder: list[Chain] = []
    with CountingServer(answer=lambda request: holder[0].ocsp_response(request)) as server:
        chain = issue_chain(pki.pki, ocsp_url=f"{server.url}/ocsp", name="Isolated")
        holder.append(chain)
        first, second = signed_by(pki, chain), signed_by(pki, chain)
        verifier = IsolatedVerifier(pki.settings(revocation="hard-fail"))
        try:
            for pdf in (first, second):
                assert verifier_codes(verifier.verify_pdf_sync(pdf)) == ()
        finally:
            verifier.close()
        # The mailbox thread's calls go to the same child, which remembers the answer.
        assert server.requests["/ocsp"] == 1, server.requests


def with_embedded_ocsp(pdf: bytes, response: bytes) -> bytes:
    """``pdf`` with ``response`` added to its document security store (as B-LT does)."""
    out = BytesIO(pdf)
    DocumentSecurityStore.add_dss(out, None, ocsps=[asn1_ocsp.OCSPResponse.load(response)],
                                  force_write=True)
    return out.getvalue()


@pytest.mark.parametrize(("offset", "expected"), [
    (timedelta(minutes=-10), ("SIG-REVOCATION-UNKNOWN",)),
    (timedelta(seconds=5), ()),
], ids=["produced-before-the-time-stamp", "produced-after-the-time-stamp"])
def test_ocsp_response_must_be_produced_after_the_time_stamp(
    pki: PkiFixture, offset: timedelta, expected: tuple[str, ...],
) -> None:
    # The signer names an OCSP responder that refuses connections, so the
    # embedded response is all there is (the time-stamp authority's status
    # is fetched from the PKI fixture).
    chain = issue_chain(pki.pki, ocsp_url="http://127.0.0.1:9/ocsp", ca_pointers=False)
    pdf = signed_by(pki, chain)
    (stamped,) = {s.timestamp_time for s in verify(pki, pdf, revocation="off")[0].signatures}
    assert stamped is not None
    pdf = with_embedded_ocsp(pdf, chain.ocsp_response(produced_at=stamped + offset))
    verdict, _ = verify(pki, pdf, revocation="hard-fail")
    assert verifier_codes(verdict) == expected, verdict.signatures[0].notes
    if expected:
        assert any("before the signature time-stamp" in n for n in verdict.signatures[0].notes)


# -- real Latvian containers (digidoc4j's test data) ---------------------------------------------

DIGIDOC4J = CORPUS / "digidoc4j"


@pytest.mark.parametrize(("name", "stale"), [
    # digidoc4j: INVALID, the OCSP response was produced before the time-stamp.
    ("edoc2_lv-eId_sha256.edoc", True),
    ("latvian_signed_container.edoc", True),
    # digidoc4j: VALID (the OCSP response comes after the time-stamp).
    ("latvian_LT_signature_with_44h_difference_between_TS_and_OCSP.asice", False),
    ("latvian_signed_container.asice", False),
])
def test_real_latvian_ocsp_before_the_time_stamp_is_not_proof(name: str, stale: bool) -> None:
    settings = VerifierSettings(trust_roots=(), allow_fetching=False, timeout_seconds=60.0)
    result = InProcessVerifier(settings).verify_asic_sync((DIGIDOC4J / name).read_bytes())
    notes = [note for status in result.verdict.signatures for note in status.notes]
    withheld = [note for note in notes if "before the signature time-stamp" in note]
    assert bool(withheld) == stale, notes


def test_cache_keeps_an_answer_until_its_next_update_or_the_ttl() -> None:
    clock = [datetime(2026, 1, 1, 12, 0, tzinfo=UTC)]
    cache = RevocationCache(now=lambda: clock[0])
    issued = clock[0]
    cache.put(("u", b"a"), "soon", issued=issued, next_update=issued + timedelta(minutes=1),
              ttl_seconds=300)
    cache.put(("u", b"b"), "late", issued=issued, next_update=issued + timedelta(days=1),
              ttl_seconds=300)
    assert cache.get(("u", b"a"), None) == "soon"
    # Not for a signature time-stamped after the answer was issued.
    assert cache.get(("u", b"a"), issued + timedelta(seconds=30)) is None
    clock[0] += timedelta(minutes=2)
    assert cache.get(("u", b"a"), None) is None  # past its nextUpdate
    assert cache.get(("u", b"b"), None) == "late"
    clock[0] += timedelta(minutes=4)
    assert cache.get(("u", b"b"), None) is None  # past the TTL
