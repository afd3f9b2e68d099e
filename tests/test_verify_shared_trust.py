"""One verifier, many messages: what a message embeds never helps another's chain.

A :class:`~signing.trust.context.TrustContext` builds the anchors' trust
manager once and a fresh pyHanko ``ValidationContext`` for every signature
(issue 12); the certificates and revocation data one message carries live in
that context only.
"""

from __future__ import annotations

from pyhanko.sign import signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

from signing.testing.pdfs import sign_pdf
from signing.verifier import InProcessVerifier
from tests.fixtures.pki import PkiFixture
from tests.judged import verifier_codes, verifier_ok


def _without_intermediate(pki: PkiFixture, form: bytes) -> bytes:
    """``form`` signed by the qualified signer, its issuing CA left out of the CMS."""
    signer = signers.SimpleSigner(
        signing_cert=pki.pki.asn1_certificate("qualified"),
        signing_key=pki.pki.asn1_key("qualified"),
        cert_registry=SimpleCertificateStore(),  # type: ignore[no-untyped-call]
    )
    return sign_pdf(form, signer, timestamper=pki.timestamper)


def test_an_intermediate_embedded_in_one_message_does_not_validate_the_next(
    pki: PkiFixture,
) -> None:
    settings = pki.settings(allow_fetching=False)
    with_chain = pki.sign(pki.form_pdf({"org_name": "SIA A"}), "qualified")
    bare = _without_intermediate(pki, pki.form_pdf({"org_name": "SIA B"}))
    alone = InProcessVerifier(settings).verify_pdf_sync(bare)
    assert verifier_codes(alone) == ("SIG-UNTRUSTED",)

    verifier = InProcessVerifier(settings)
    assert verifier_ok(verifier.verify_pdf_sync(with_chain))
    after = verifier.verify_pdf_sync(bare)
    assert verifier_codes(after) == ("SIG-UNTRUSTED",)
    assert after.signatures[0].chain_problem == alone.signatures[0].chain_problem
    # And the message with its chain is still judged on its own afterwards.
    assert verifier_ok(verifier.verify_pdf_sync(with_chain))
