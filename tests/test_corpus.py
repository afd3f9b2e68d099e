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

from signing.verify import FormVerdict, UnreadableInput, Verifier, VerifierSettings
from tests.shared import CORPUS

PYHANKO_ROOT = CORPUS / "pyhanko" / "certs" / "testing-ca-root.cert.pem"
PYHANKO_NOW = datetime(2020, 11, 1, tzinfo=UTC)
TIMEOUT = 60.0
PDFS = sorted(CORPUS.glob("**/*.pdf"))


def _verifier(path: Path, **overrides: object) -> Verifier:
    pyhanko_file = path.parent.name == "pdf" and path.parent.parent.name == "pyhanko"
    values: dict[str, object] = {
        "trust_roots": (PYHANKO_ROOT,) if pyhanko_file else (),
        "allow_fetching": False,
        "timeout_seconds": TIMEOUT,
    }
    values.update(overrides)
    now = (lambda: PYHANKO_NOW) if pyhanko_file else None
    return Verifier(VerifierSettings(**values), now=now)  # type: ignore[arg-type]


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
        assert result.codes == tuple(sorted(set(result.codes)))
        # Without anchors nothing outside pyHanko's own files can be fully accepted.
        if path.parent.name != "pdf":
            assert not result.ok


def _by_name(name: str) -> Path:
    (path,) = [p for p in PDFS if p.name == name]
    return path


def test_form_filled_after_signing_is_modified() -> None:
    result = _verify(_by_name("pades-signed-filled-form.pdf"))
    assert isinstance(result, FormVerdict)
    assert "SIG-MODIFIED" in result.codes


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
    result = _verify(_by_name(name), require_qualified=False, require_timestamp=False)
    if isinstance(result, FormVerdict):
        assert not result.ok
        assert "SIG-INVALID" in result.codes or "SIG-MODIFIED" in result.codes, result.codes


def test_pades_bes_lacks_timestamp_and_trust() -> None:
    result = _verify(_by_name("pades-bes.pdf"))
    assert isinstance(result, FormVerdict)
    assert {"TS-MISSING", "SIG-UNTRUSTED"} <= set(result.codes)
    assert "SIG-INVALID" not in result.codes


def test_pyhanko_lta_file_is_valid_and_trusted() -> None:
    result = _verify(_by_name("pades-lta-dss-indirect-arrs-test.pdf"), require_qualified=False)
    assert isinstance(result, FormVerdict)
    (status,) = result.signatures
    assert status.intact and status.valid and status.trusted, status.notes
    assert status.timestamp_present
    assert "SIG-INVALID" not in result.codes and "SIG-UNTRUSTED" not in result.codes


def test_bb_signature_extended_by_document_timestamp_is_not_modified() -> None:
    """DSS's B-B signature extended to T by a document time-stamp (its own PKI, untrusted here)."""
    result = _verify(_by_name("pades-t-level-extended.pdf"))
    assert isinstance(result, FormVerdict)
    assert "SIG-MODIFIED" not in result.codes
    assert "TS-MISSING" not in result.codes
    (status,) = result.signatures
    assert status.timestamp_present and not status.modified_after
    assert {"SIG-UNTRUSTED", "TS-UNTRUSTED"} <= set(result.codes)
