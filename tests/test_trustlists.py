"""EU trusted lists: fetched from a file and over loopback HTTP, verified, cached, judged.

The lists are built in the test run (``tests.fixtures.trustlist``), signed with
signxml by scheme-operator certificates made here, and read back with
pyHanko's own parser. Real lists from pyHanko's test data (the corpus) check
the same calls against what the EU and Belgium publish.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from asn1crypto import x509 as asn1_x509
from pyhanko.sign.validation.qualified import eutl_parse
from pyhanko.sign.validation.qualified.assess import QualificationAssessor
from pyhanko.sign.validation.qualified.q_status import QcPrivateKeyManagementType
from pyhanko.sign.validation.qualified.tsp import QcCertType
from pyhanko_certvalidator.authority import AuthorityWithCert, TrustAnchor
from pyhanko_certvalidator.path import ValidationPath

from daemon import main
from signing.settings import VerifierSettings
from signing.testing.pdfs import make_form_pdf, sign_pdf
from signing.trust.trustlists import (
    TrustListError,
    TrustSettings,
    load_snapshot,
    refresh,
    status,
    verify_list,
)
from signing.verifier import InProcessVerifier
from tests.fixtures.trustlist import TrustLists, TrustListServer, TrustPki, build_lists
from tests.judged import signature_codes, verifier_codes

CORPUS = Path("/work/shared/corpus/pyhanko")
if not CORPUS.exists():
    CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "pyhanko"


@pytest.fixture(scope="module")
def trust_pki() -> TrustPki:
    return TrustPki.create()


@pytest.fixture
def lists(trust_pki: TrustPki, tmp_path: Path) -> TrustLists:
    return build_lists(trust_pki, tmp_path / "lists")


def settings_for(lists: TrustLists, cache: Path, **overrides: object) -> TrustSettings:
    values: dict[str, object] = {"lotl": str(lists.lotl_path), "cache_dir": cache,
                                 "lotl_signers": (lists.lotl_signer_pem,)}
    values.update(overrides)
    return TrustSettings(**values)  # type: ignore[arg-type]


def write_config(tmp_path: Path, settings: TrustSettings) -> Path:
    signers = ", ".join(f'"{p}"' for p in settings.lotl_signers)
    path = tmp_path / "config.toml"
    path.write_text(
        f'[database]\nurl = "sqlite:///{tmp_path / "pasts.db"}"\n\n'
        f'[trust]\nlotl = "{settings.lotl}"\nlotl_signers = [{signers}]\n'
        f'cache_dir = "{settings.cache_dir}"\nmax_age_hours = {settings.max_age_hours}\n',
        encoding="utf-8")
    return path


def cli(config: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(["--config", str(config), *args])
    return code, capsys.readouterr().out


# -- the built lists -----------------------------------------------------------------


def test_pyhankos_parser_reads_the_built_lists(lists: TrustLists, trust_pki: TrustPki) -> None:
    lotl = eutl_parse.validate_and_parse_lotl(lists.lotl_path.read_text(encoding="utf-8"),
                                              [trust_pki.asn1("lotl-operator")])
    (national,) = [r for r in lotl.references if r.territory == "LV"]
    registry, errors = eutl_parse.trust_list_to_registry(
        lists.tl_path.read_text(encoding="utf-8"), national.tlso_certs)
    assert errors == []
    assert len(list(registry.known_certificate_authorities)) == 2
    assert len(list(registry.known_timestamp_authorities)) == 1


def test_refresh_from_a_file_caches_verified_lists_privately(
        lists: TrustLists, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    settings = settings_for(lists, tmp_path / "cache")
    config = write_config(tmp_path, settings)
    code, out = cli(config, "trust", "refresh", capsys=capsys)
    assert code == 0, out
    assert stat.S_IMODE((tmp_path / "cache").stat().st_mode) == 0o700
    code, out = cli(config, "trust", "status", capsys=capsys)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].startswith("EU ") and "seq 300" in lines[0] and lines[0].endswith("fresh")
    assert lines[1].startswith("LV ") and "seq 7" in lines[1] and lines[1].endswith("fresh")
    assert "LV" in load_snapshot(settings).registries


def test_refresh_over_loopback_http(trust_pki: TrustPki, tmp_path: Path) -> None:
    served = tmp_path / "served"
    with TrustListServer(served) as server:
        lists = build_lists(trust_pki, served, tl_url=f"{server.base_url}/tl-lv.xml")
        settings = settings_for(lists, tmp_path / "cache", lotl=f"{server.base_url}/lotl.xml")
        result = refresh(settings)
    assert result.ok, result.errors
    assert [s.territory for s in result.lists] == ["EU", "LV"]
    assert result.lists[1].location.startswith("http://127.0.0.1:")
    assert all(item.stale is None for item in status(settings))


def test_http_list_may_not_point_at_local_files(trust_pki: TrustPki, tmp_path: Path) -> None:
    """A LOTL fetched over HTTP naming a file: location is refused (files are for offline runs)."""
    served = tmp_path / "served"
    with TrustListServer(served) as server:
        lists = build_lists(trust_pki, served)  # the LOTL points at a file: URI
        settings = settings_for(lists, tmp_path / "cache", lotl=f"{server.base_url}/lotl.xml")
        result = refresh(settings)
    assert not result.ok
    assert "only http(s)" in result.errors[0]


def test_lotl_signed_by_a_certificate_not_in_lotl_signers_is_refused(
        trust_pki: TrustPki, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lists = build_lists(trust_pki, tmp_path / "lists", lotl_operator="rogue-operator")
    settings = settings_for(lists, tmp_path / "cache")
    config = write_config(tmp_path, settings)
    code, out = cli(config, "trust", "refresh", capsys=capsys)
    assert code == 1
    assert "FAILED: signature does not verify" in out
    # Nothing was loaded: no national list, and the status says so.
    assert load_snapshot(settings).registries == {}
    assert not (tmp_path / "cache" / "LV.xml").exists()
    code, out = cli(config, "trust", "status", capsys=capsys)
    assert code == 1
    assert "STALE: the trusted list EU has never been fetched and verified" in out


def test_a_failed_refresh_keeps_the_last_good_copy(trust_pki: TrustPki, tmp_path: Path) -> None:
    lists = build_lists(trust_pki, tmp_path / "lists")
    settings = settings_for(lists, tmp_path / "cache")
    assert refresh(settings).ok
    # The national list is replaced by one its operator did not sign.
    build_lists(trust_pki, tmp_path / "lists", sequence=8, operator="rogue-operator")
    result = refresh(settings)
    assert not result.ok and "LV" in result.errors[0]
    lv = next(s for s in result.lists if s.territory == "LV")
    assert lv.sequence == 7 and lv.error and "signature does not verify" in lv.error
    assert "LV" in load_snapshot(settings).registries


def test_stale_lists_fail_closed(lists: TrustLists, trust_pki: TrustPki, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    settings = settings_for(lists, tmp_path / "cache", max_age_hours=1.0)
    # Verified three hours ago: past max_age_hours, though before NextUpdate.
    assert refresh(settings, now=datetime.now(UTC) - timedelta(hours=3)).ok
    code, out = cli(write_config(tmp_path, settings), "trust", "status", capsys=capsys)
    assert code == 1
    assert "STALE: the trusted list LV was last verified" in out
    verifier = InProcessVerifier(VerifierSettings(trust_roots=(), trust=settings, allow_fetching=False))
    signed = sign_pdf(make_form_pdf({"org_name": "SIA Ērgļi"}), trust_pki.signer("tl-qualified"),
                      timestamper=trust_pki.timestamper("qtst"))
    verdict = verifier.verify_pdf_sync(signed)
    (sig,) = verdict.signatures
    assert verifier_codes(sig) == ()
    assert signature_codes(verdict) == ("SIG-NOT-QUALIFIED", "TS-NOT-QUALIFIED")
    assert sig.qualification is not None and sig.qualification.stale_list
    assert "the trusted list LV was last verified" in sig.qualification.stale_list


def test_past_next_update_is_stale(trust_pki: TrustPki, tmp_path: Path) -> None:
    lists = build_lists(trust_pki, tmp_path / "lists",
                        next_update=datetime.now(UTC) - timedelta(minutes=5))
    settings = settings_for(lists, tmp_path / "cache")
    assert refresh(settings).ok
    lv = next(item for item in status(settings) if item.state.territory == "LV")
    assert lv.stale and "past its next update" in lv.stale


# -- real lists (pyHanko's test data) -------------------------------------------------------


@pytest.fixture(scope="module")
def belgian_registry() -> Iterator[object]:
    operator = _belgian_operator()
    xml = (CORPUS / "tl" / "tsl-be-v6.xml").read_text(encoding="utf-8")
    registry, _errors = eutl_parse.trust_list_to_registry_unsafe(verify_list(xml, operator))
    yield registry


def _belgian_operator() -> list[asn1_x509.Certificate]:
    """The certificates the real LOTL gives for the Belgian list."""
    lotl = eutl_parse.parse_lotl_unsafe((CORPUS / "tl" / "eu-lotl.xml").read_text(encoding="utf-8"))
    (be,) = [r for r in lotl.references if r.territory == "BE"]
    return list(be.tlso_certs)


def test_real_belgian_certificate_is_qualified_with_qscd(belgian_registry: object) -> None:
    cert = asn1_x509.Certificate.load((CORPUS / "certs" / "real-qcert.cer").read_bytes())
    registry = belgian_registry
    issuer = next(a for a in registry.known_certificate_authorities  # type: ignore[attr-defined]
                  if a.is_potential_issuer_of(cert))
    path = ValidationPath(trust_anchor=TrustAnchor(issuer), interm=[], leaf=cert)
    result = QualificationAssessor(registry).check_entity_cert_qualified(  # type: ignore[arg-type]
        path, moment=datetime(2025, 8, 6, tzinfo=UTC))
    assert result.status.qualified
    assert result.status.qc_type == QcCertType.QC_ESIGN
    assert result.status.qc_key_security == QcPrivateKeyManagementType.QSCD


def test_real_estonian_list_does_not_verify_with_the_belgian_operator() -> None:
    xml = (CORPUS / "tl" / "tsl-ee.xml").read_text(encoding="utf-8")
    with pytest.raises(TrustListError, match="signature does not verify"):
        verify_list(xml, _belgian_operator())


def test_real_belgian_qtst_unit_is_a_qualified_time_stamping_service(
        belgian_registry: object) -> None:
    from signing.trust.qualification import judge_timestamp
    from signing.trust.trustlists import TrustSnapshot

    cert = asn1_x509.Certificate.load((CORPUS / "certs" / "real-qtst-cert.cer").read_bytes())
    path = ValidationPath(trust_anchor=TrustAnchor(AuthorityWithCert(cert)), interm=[], leaf=None)
    snapshot = TrustSnapshot(registries={"BE": belgian_registry})
    verdict = judge_timestamp(path, datetime(2025, 8, 6, tzinfo=UTC), frozenset(), snapshot)
    assert verdict.qualified, verdict.reasons
    stale = replace(snapshot, stale={"BE": "the trusted list BE is stale"})
    assert not judge_timestamp(path, datetime(2025, 8, 6, tzinfo=UTC), frozenset(),
                               stale).qualified


# -- the same judgement for .p7s and ASiC-E, and in a long-lived verifier -----------------


@pytest.fixture
def refreshed(lists: TrustLists, tmp_path: Path) -> TrustSettings:
    settings = settings_for(lists, tmp_path / "cache", max_age_hours=2.0)
    assert refresh(settings).ok
    return settings


def test_detached_cms_and_asic_e_are_judged_by_the_lists(refreshed: TrustSettings,
                                                         trust_pki: TrustPki) -> None:
    from intake.demo.samples import detached_signature
    from signing.testing.xades import make_asice

    verifier = InProcessVerifier(VerifierSettings(trust_roots=(), trust=refreshed, allow_fetching=False))
    form = make_form_pdf({"org_name": "SIA Ērgļi"})
    p7s = detached_signature(form, trust_pki.signer("tl-noqscd"), trust_pki.timestamper("qtst"))
    verdict = verifier.verify_detached_sync(form, p7s)
    assert verifier_codes(verdict) == ()
    q = verdict.signatures[0].qualification
    assert q is not None and q.qualified and q.qc_type == "esign" and not q.qscd
    assert signature_codes(verdict) == ("SIG-NOT-QUALIFIED",)
    p7s = detached_signature(form, trust_pki.signer("tl-qualified"),
                             trust_pki.timestamper("tl-plain-tsa"))
    verdict = verifier.verify_detached_sync(form, p7s)
    ts = verdict.signatures[0].timestamp_qualification
    assert ts is not None and not ts.qualified
    assert signature_codes(verdict) == ("TS-NOT-QUALIFIED",)
    container = make_asice((("pieteikums.pdf", form),), trust_pki.signer("tl-qualified"),
                           timestamper=trust_pki.timestamper("qtst"))
    assert signature_codes(verifier.verify_asic_sync(container).verdict) == ()
    container = make_asice((("pieteikums.pdf", form),), trust_pki.signer("tl-withdrawn"),
                           timestamper=trust_pki.timestamper("qtst"))
    verdict = verifier.verify_asic_sync(container).verdict
    assert verifier_codes(verdict) == () and not verdict.signatures[0].qualification.qualified
    assert signature_codes(verdict) == ("SIG-NOT-QUALIFIED",)


def test_a_running_verifier_fails_closed_when_its_lists_go_stale(
        refreshed: TrustSettings, trust_pki: TrustPki) -> None:
    clock = [datetime.now(UTC)]
    verifier = InProcessVerifier(VerifierSettings(trust_roots=(), trust=refreshed, allow_fetching=False),
                        now=lambda: clock[0])
    signed = sign_pdf(make_form_pdf({"org_name": "SIA Ērgļi"}), trust_pki.signer("tl-qualified"),
                      timestamper=trust_pki.timestamper("qtst"))
    assert signature_codes(verifier.verify_pdf_sync(signed)) == ()
    # Three hours on, the lists verified two hours ago are stale: nothing is qualified.
    clock[0] += timedelta(hours=3)
    verdict = verifier.verify_pdf_sync(signed)
    (sig,) = verdict.signatures
    assert sig.qualification is not None and sig.qualification.stale_list
    assert "trusted list LV" in sig.qualification.stale_list
    assert "SIG-NOT-QUALIFIED" in signature_codes(verdict, judged_at=clock[0])


def test_fetch_is_bounded_in_size_and_scheme(lists: TrustLists, tmp_path: Path) -> None:
    from signing.trust.trustlists import fetch

    with TrustListServer(lists.directory) as server:
        url = f"{server.base_url}/tl-lv.xml"
        assert fetch(url, timeout=5, max_bytes=10_000_000, allow_files=False).startswith("<?xml")
        with pytest.raises(TrustListError, match="over"):
            fetch(url, timeout=5, max_bytes=1000, allow_files=False)
    with pytest.raises(TrustListError, match="only http"):
        fetch(lists.tl_path.as_uri(), timeout=5, max_bytes=10_000_000, allow_files=False)
    with pytest.raises(TrustListError, match="only http"):
        fetch("ftp://example.test/lotl.xml", timeout=5, max_bytes=1000, allow_files=True)
