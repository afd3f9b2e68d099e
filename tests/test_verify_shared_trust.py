"""One verifier, many messages: what a message embeds never helps another's chain.

A :class:`~signing.trust.context.TrustContext` builds the anchors' trust
manager once, keeps parsed certificates for reuse by their encoding, and makes
a fresh pyHanko ``ValidationContext`` for every signature (issue 12); the
certificates and revocation data one message carries live in that context only.
"""

from __future__ import annotations

import pytest
from asn1crypto import x509
from pyhanko.sign import signers
from pyhanko_certvalidator.registry import SimpleCertificateStore

from signing.testing.pdfs import sign_pdf
from signing.trust import context as context_module
from signing.trust.context import TrustContext
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


def test_a_kept_parse_stands_only_for_the_same_bytes(
    pki: PkiFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    trust = TrustContext(pki.settings(allow_fetching=False))
    ca = pki.pki.asn1_certificate("ca-qualified").dump()
    first, again = x509.Certificate.load(ca), x509.Certificate.load(ca)
    other = x509.Certificate.load(pki.pki.asn1_certificate("ca-nonqualified").dump())
    assert trust.parsed([first])[0] is first
    kept_again, kept_other = trust.parsed([again, other])
    assert kept_again is first and kept_other is other
    # A context over message B's certificates holds B's only, the kept objects among them.
    context = trust.validation_context(moment=None, fetching=None, other_certs=[again])
    registered = {cert.dump() for cert in context.certificate_registry}
    assert ca in registered and other.dump() not in registered

    monkeypatch.setattr(context_module, "PARSED_CERTIFICATES", 2)
    for name in ("qualified", "nonqualified", "tsa"):
        trust.parsed([pki.pki.asn1_certificate(name)])
    assert trust.parsed([again])[0] is again  # the first parse was dropped (least recently used)
    monkeypatch.setattr(context_module, "PARSED_CERTIFICATE_BYTES", 100)
    big = pki.pki.asn1_certificate("qualified")
    assert trust.parsed([big])[0] is big and trust.parsed([big])[0] is big


def test_a_certificate_that_does_not_parse_through_is_not_kept(pki: PkiFixture) -> None:
    # Its keyUsage extension holds an INTEGER where a BIT STRING belongs.
    der = pki.pki.asn1_certificate("ca-qualified").dump()
    at = der.index(bytes.fromhex("0603551d0f"))  # the keyUsage OID
    value = der.index(b"\x04", at + 5)  # its extnValue OCTET STRING
    assert der[value + 2] == 0x03
    broken_der = der[: value + 2] + b"\x02" + der[value + 3 :]
    trust = TrustContext(pki.settings(allow_fetching=False))
    first, again = x509.Certificate.load(broken_der), x509.Certificate.load(broken_der)
    assert trust.parsed([first])[0] is first
    assert trust.parsed([again])[0] is again  # each message keeps its own parse
