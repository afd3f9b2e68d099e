"""Every PDF of the shared corpus goes through the verifier without crashing.

Only the pyHanko testing root is ever trusted (for pyHanko's own files, with
time frozen at 2020-11-01 as in pyHanko's tests); everything else is verified
with no anchors at all and must end in codes or :class:`UnreadableInput`.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from signing.settings import VerifierSettings
from signing.status import FormVerdict, UnreadableInput
from signing.verifier import InProcessVerifier
from tests.judged import pickled_parsers, signature_codes, verifier_codes, verifier_ok
from tests.shared import CORPUS

PYHANKO_ROOT = CORPUS / "pyhanko" / "certs" / "testing-ca-root.cert.pem"
PYHANKO_NOW = datetime(2020, 11, 1, tzinfo=UTC)
TIMEOUT = 60.0
PDFS = sorted(CORPUS.glob("**/*.pdf"))


def _is_pyhanko(path: Path) -> bool:
    """pyHanko's test files, judged under its test root at its test time."""
    return path.parent.name == "pdf" and path.parent.parent.name == "pyhanko"


def _verifier(path: Path, **overrides: object) -> InProcessVerifier:
    pyhanko_file = _is_pyhanko(path)
    values: dict[str, object] = {
        "trust_roots": (PYHANKO_ROOT,) if pyhanko_file else (),
        "allow_fetching": False,
        "timeout_seconds": TIMEOUT,
    }
    values.update(overrides)
    now = (lambda: PYHANKO_NOW) if pyhanko_file else None
    return InProcessVerifier(VerifierSettings(**values), now=now)  # type: ignore[arg-type]


def _verify(path: Path, **overrides: object) -> FormVerdict | UnreadableInput:
    try:
        return _verifier(path, **overrides).verify_pdf_sync(path.read_bytes())
    except UnreadableInput as exc:
        return exc


def test_corpus_is_present() -> None:
    assert len(PDFS) >= 30


@pytest.mark.parametrize("path", PDFS, ids=[p.name for p in PDFS])
def test_every_corpus_pdf_ends_in_a_verdict(path: Path) -> None:
    started = time.monotonic()
    result = _verify(path)
    assert time.monotonic() - started < TIMEOUT + 5
    if isinstance(result, FormVerdict):
        assert verifier_codes(result) == tuple(sorted(set(verifier_codes(result))))
        assert pickled_parsers(result) == set()
        # Without anchors nothing outside pyHanko's own files can be fully accepted.
        if path.parent.name != "pdf":
            assert not verifier_ok(result)


def _by_name(name: str) -> Path:
    (path,) = [p for p in PDFS if p.name == name]
    return path


def test_form_filled_after_signing_is_modified() -> None:
    result = _verify(_by_name("pades-signed-filled-form.pdf"))
    assert isinstance(result, FormVerdict)
    assert "SIG-MODIFIED" in verifier_codes(result)


@pytest.mark.parametrize(
    "name",
    [
        "pdf-signed-corrupted.pdf",
        "pdf-signed-out-of-byteRange.pdf",
        "siwa.pdf",
        "signature-gap-too-big.pdf",
        "tail-uncovered.pdf",
    ],
)
def test_tampered_files_are_rejected(name: str) -> None:
    result = _verify(_by_name(name))
    if isinstance(result, FormVerdict):
        assert not verifier_ok(result)
        assert "SIG-INVALID" in verifier_codes(result) or "SIG-MODIFIED" in verifier_codes(result), verifier_codes(result)


def test_pades_bes_lacks_timestamp_and_trust() -> None:
    result = _verify(_by_name("pades-bes.pdf"))
    assert isinstance(result, FormVerdict)
    assert "SIG-UNTRUSTED" in verifier_codes(result) and "SIG-INVALID" not in verifier_codes(result)
    assert not result.signatures[0].timestamp_present
    assert "TS-MISSING" in signature_codes(result)


def test_pyhanko_lta_file_is_valid_and_trusted() -> None:
    result = _verify(_by_name("pades-lta-dss-indirect-arrs-test.pdf"))
    assert isinstance(result, FormVerdict)
    (status,) = result.signatures
    assert status.intact and status.valid and status.trusted, status.notes
    assert status.timestamp_present
    assert "SIG-INVALID" not in verifier_codes(result) and "SIG-UNTRUSTED" not in verifier_codes(result)


def test_bb_signature_extended_by_document_timestamp_is_not_modified() -> None:
    """DSS's B-B signature extended to T by a document time-stamp (its own PKI, untrusted here)."""
    result = _verify(_by_name("pades-t-level-extended.pdf"))
    assert isinstance(result, FormVerdict)
    assert "SIG-MODIFIED" not in verifier_codes(result)
    assert "TS-MISSING" not in signature_codes(result)
    (status,) = result.signatures
    assert status.timestamp_present and not status.modified_after
    assert {"SIG-UNTRUSTED", "TS-UNTRUSTED"} <= set(verifier_codes(result))


# What the corpus README says the source projects expect, in our codes. Files
# whose expectation depends on trust the tests cannot give (foreign roots,
# frozen times) are judged only on integrity.
REJECTED_AS = {
    "pades-bes-no-certificates.pdf": "SIG-INVALID",  # signer certificate not identifiable
    "pades-unsupported-signature-algorithm.pdf": "SIG-INVALID",
    "pdf-adobe-webcapture-x509.rsa_sha1.pdf": "SIG-INVALID",  # legacy, not PAdES
    "pdf-sig-with-econtent.pdf": "SIG-INVALID",  # detached signature with eContent
    "form-update-override-appearance-stream-sneaky.pdf": "SIG-MODIFIED",
    "modified_after_signature.pdf": "SIG-MODIFIED",
    "replace.pdf": "SIG-MODIFIED",  # shadow attack
    "self-issued-qesig.pdf": "SIG-UNTRUSTED",  # EE certificate used as an issuer
    "timestamped_and_signed.pdf": "TS-MISSING",  # the document time-stamp predates the signature
}


@pytest.mark.parametrize("name", sorted(REJECTED_AS))
def test_corpus_file_gets_the_code_its_source_expects(name: str) -> None:
    result = _verify(_by_name(name))
    assert isinstance(result, FormVerdict)
    # The codes a procedure sees: the verifier's and the rules' from its facts.
    codes = signature_codes(result, judged_at=PYHANKO_NOW if _is_pyhanko(_by_name(name)) else None)
    assert REJECTED_AS[name] in codes, codes


@pytest.mark.parametrize("name", ["hello_signed_INCSAVE_signed_EDITED.pdf",
                                  "pdf-byterange-overlap.pdf"])
def test_one_of_two_signatures_broken_is_told_apart(name: str) -> None:
    """DSS: one signature fails, the other is intact; only the broken one is SIG-INVALID."""
    result = _verify(_by_name(name))
    assert isinstance(result, FormVerdict)
    assert len(result.signatures) == 2
    assert sorted("SIG-INVALID" in verifier_codes(s) for s in result.signatures) == [False, True]


@pytest.mark.parametrize("name", ["pdf-signed-original.pdf", "minimal-two-fields-signed-twice.pdf",
                                  "form-update-override-appearance-stream.pdf",
                                  "sig-no-signed-attrs.pdf", "sig-with-ski-sid.pdf",
                                  "pades-with-old-style-signing-cert-attr.pdf"])
def test_intact_corpus_signatures_are_neither_invalid_nor_modified(name: str) -> None:
    result = _verify(_by_name(name))
    assert isinstance(result, FormVerdict)
    assert result.signatures
    assert not {"SIG-INVALID", "SIG-MODIFIED"} & set(verifier_codes(result)), verifier_codes(result)


def test_document_timestamp_typed_as_sig_is_not_an_unsupported_signature() -> None:
    """digidoc4j's file writes /Type /Sig on its /ETSI.RFC3161 document time-stamp."""
    result = _verify(_by_name("hellopades-pades-lt-sha256-sign.pdf"))
    assert isinstance(result, FormVerdict)
    assert len(result.signatures) == 1
    assert any("document time-stamp Signature2" in note for note in result.notes)
