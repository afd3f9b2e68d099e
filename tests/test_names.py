"""Organisation names compared as a person would (:mod:`signing.names`), and the rules using it."""

from __future__ import annotations

from dataclasses import replace

import pytest

from rules import judge
from signing.names import organisation_key, repair_mojibake, same_organisation
from tests.test_rules import ORGANISATION, good, with_fields

FORM_NAME = "SIA Ziemeļu Pārvaldnieks"


@pytest.mark.parametrize("written", [
    "SIA Ziemelu Parvaldnieks",  # no diacritics
    "sia ziemeļu pārvaldnieks",  # case
    "  SIA   Ziemeļu\tPārvaldnieks ",  # spacing
    "SIA „Ziemeļu Pārvaldnieks”",  # Latvian quotes
    "SIA \"Ziemeļu Pārvaldnieks\"",
    "SIA «Ziemeļu Pārvaldnieks»",
    "SIA 'Ziemelu Parvaldnieks'",
    "SIA ZiemeÄ¼u PÄ\x81rvaldnieks",  # UTF-8 read as Latin-1 (openssl without -utf8)
    "SIA Ziemeļu Pārvaldnieks",  # NFD: combining marks
    "ＳＩＡ Ziemeļu Pārvaldnieks",  # full-width letters (NFKC)
])
def test_names_a_person_reads_as_one_are_one(written: str) -> None:
    assert same_organisation(written, FORM_NAME)
    assert same_organisation(FORM_NAME, written)


@pytest.mark.parametrize("other", ["SIA Dienvidu Pārvaldnieks", "AS Ziemeļu Pārvaldnieks",
                                   "SIA Ziemeļu Pārvaldnieki", "", "  „” "])
def test_other_names_stay_other(other: str) -> None:
    assert not same_organisation(other, FORM_NAME)


def test_genuine_latin1_letters_are_not_repaired() -> None:
    assert repair_mojibake("Ärzte für Ölbau") == "Ärzte für Ölbau"
    assert organisation_key("Ärzte GmbH") == "arzte gmbh"


def test_hostile_length_is_bounded() -> None:
    assert len(organisation_key("Ä" * 100_000)) <= 1000


def test_form_org_name_other_than_the_registry_is_field_invalid() -> None:
    case = with_fields(good(), org_name="Latvijas Banka")
    findings = [f for f in judge(case).findings if f.code == "FORM-FIELD-INVALID:org_name"]
    assert len(findings) == 1
    assert ORGANISATION.reg_no in findings[0].detail
    # The applicant's notice does not tell the registry's name.
    assert ORGANISATION.name not in findings[0].detail


def test_form_org_name_written_loosely_matches_the_registry() -> None:
    case = with_fields(good(), org_name="sia „Ergļu Maja”")
    assert "FORM-FIELD-INVALID:org_name" not in judge(case).codes


def test_org_name_is_not_compared_without_a_registry_record() -> None:
    # SIGNER-NOT-AUTHORISED etc. say "not in the registry"; the name has nothing to match.
    case = replace(with_fields(good(), org_name="Latvijas Banka"), organisation=None)
    assert "FORM-FIELD-INVALID:org_name" not in judge(case).codes
