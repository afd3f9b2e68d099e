"""The pipeline's read-form stage takes the values the verifier read (issue 12): the PDF is
parsed once, in the verification, and the values acted on are the signed revision's."""

from __future__ import annotations

from pathlib import Path

import pytest

from intake.config import Config, load_config
from intake.demo.samples import application_mail
from intake.mime.parse import parse_message
from intake.pipeline import Lookups, Pipeline, Submission
from signing.verifier import InProcessVerifier
from tests.fixtures.pki import PkiFixture
from tests.test_forms import _nested_fields
from tests.test_verify import _fill_field

ROOT = Path(__file__).resolve().parent.parent
NO_LOOKUPS = Lookups(organisation=lambda _reg_no: None, duplicate=lambda _sha, _exclude: None)


def _never(_pdf: bytes, *, max_pages: int) -> dict[str, str]:
    raise AssertionError("the PDF was parsed again after its verification")


@pytest.fixture(scope="module")
def config() -> Config:
    return load_config(ROOT / "config.toml")


def read(config: Config, pki: PkiFixture, pdf: bytes) -> Submission:
    pipeline = Pipeline(config, InProcessVerifier(pki.settings(allow_fetching=False)),
                        NO_LOOKUPS, read_fields=_never)
    mail = parse_message(application_mail(sender="anna@ergli.example", to="pasts@agency.example",
                                          subject="Pieteikums", form=pdf))
    return pipeline.read_signed(mail, config.mailboxes[0])


def test_signed_values_are_the_verifiers(config: Config, pki: PkiFixture) -> None:
    sub = read(config, pki, pki.sign(pki.form_pdf({"org_name": "SIA Bērziņi"})))
    assert sub.case.form_error is None
    assert sub.case.fields["org_name"] == "SIA Bērziņi"
    assert not sub.case.fields_changed_after_signing


def test_a_value_changed_after_signing_is_reported_and_not_acted_on(
        config: Config, pki: PkiFixture) -> None:
    signed = pki.sign(pki.form_pdf({"org_name": "SIA Original"}))
    sub = read(config, pki, _fill_field(signed, "org_name", "SIA Forged"))
    assert sub.case.fields["org_name"] == "SIA Original"
    assert sub.case.fields_changed_after_signing


def test_an_unsigned_form_is_read_by_the_verifier_too(config: Config, pki: PkiFixture) -> None:
    sub = read(config, pki, pki.form_pdf({"org_name": "SIA Bez Paraksta"}))
    assert sub.case.verdict is not None and sub.case.verdict.signatures == ()
    assert sub.case.fields["org_name"] == "SIA Bez Paraksta"


def test_a_hostile_field_tree_is_form_unreadable(config: Config, pki: PkiFixture) -> None:
    sub = read(config, pki, _nested_fields(40))
    assert sub.case.form_error is not None and "too deep" in sub.case.form_error
    assert not sub.case.fields
