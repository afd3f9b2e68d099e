"""Rules that compare the form and the signer with the registry."""

from __future__ import annotations

from collections.abc import Iterable

from rules import formats
from rules.base import Case, Finding
from rules.workflow import Role, field_value
from signing.names import same_organisation


def _selected(case: Case, code: str) -> bool:
    # A missing or malformed registration number is already its own finding;
    # the registry cannot be asked about it.
    return (
        case.workflow is not None
        and code in case.workflow.rules
        and case.form_present
        and not case.form_error
        and formats.check("reg-no", field_value(case.workflow, case.fields, Role.ORG_REG_NO))
    )


class TestEnvNotCompleted:
    code = "TEST-ENV-NOT-COMPLETED"
    description = "The organisation has completed the test-environment tests."

    def applies(self, case: Case) -> bool:
        return _selected(case, self.code)

    def check(self, case: Case) -> Iterable[Finding]:
        declared = formats.normalise_yes_no(
            field_value(case.workflow, case.fields, Role.TEST_ENV_COMPLETED))
        if declared is False:
            yield Finding(self.code, "the form says the tests are not done")
        elif case.organisation is None:
            yield Finding(self.code, "the organisation is not in the registry")
        elif not case.organisation.test_env_completed:
            yield Finding(self.code, "the registry has no completed tests")


class SignerNotAuthorised:
    code = "SIGNER-NOT-AUTHORISED"
    description = "The signer is a registered representative or delegate of the organisation."

    def applies(self, case: Case) -> bool:
        return _selected(case, self.code) and case.signer_code is not None

    def check(self, case: Case) -> Iterable[Finding]:
        if case.organisation is None:
            yield Finding(self.code, "the organisation is not in the registry")
        elif case.signer_code not in case.organisation.representatives:
            yield Finding(self.code, f"{case.signer_code} is not listed")


class ContractMissing:
    code = "CONTRACT-MISSING"
    description = "The organisation's agreement has been received."

    def applies(self, case: Case) -> bool:
        return _selected(case, self.code)

    def check(self, case: Case) -> Iterable[Finding]:
        if case.organisation is None:
            yield Finding(self.code, "the organisation is not in the registry")
        elif not case.organisation.agreement_received:
            yield Finding(self.code)


class OrganisationName:
    """The form's organisation name is the registry's name for its registration number.

    The fields are those of the roles ``org-name`` and ``org-reg-no``.

    Its findings are ``FORM-FIELD-INVALID:<field>`` (the field of role ``org-name``), so the field rule
    (:class:`rules.form.FieldInvalid`) runs it; it is not registered under a
    code of its own. It runs wherever the registry was asked (a readable form
    with a well-formed registration number the registry knows), whatever
    registry rules the procedure selects: the certificate's organisation
    comes from the registry, and the applicant must be told when the form
    names another one.
    """

    code = "FORM-FIELD-INVALID"
    description = "The form's organisation name is the registry's name for its number."

    def applies(self, case: Case) -> bool:
        return (
            case.workflow is not None
            and case.form_present
            and not case.form_error
            and case.organisation is not None
            and formats.check("reg-no", field_value(case.workflow, case.fields, Role.ORG_REG_NO))
            and bool(field_value(case.workflow, case.fields, Role.ORG_NAME))
        )

    def check(self, case: Case) -> Iterable[Finding]:
        assert case.organisation is not None and case.workflow is not None
        name = case.workflow.field_for(Role.ORG_NAME)
        given = field_value(case.workflow, case.fields, Role.ORG_NAME)
        if not same_organisation(given, case.organisation.name):
            # The detail reaches the applicant: it names the number, not the
            # registry's name (staff see both in pasts show).
            yield Finding(
                f"{self.code}:{name}",
                f"not the name the registry holds for {case.organisation.reg_no}",
            )


#: Run by the FORM-FIELD-INVALID rule (see :class:`OrganisationName`).
ORGANISATION_NAME = OrganisationName()

RULES = (TestEnvNotCompleted(), SignerNotAuthorised(), ContractMissing())
