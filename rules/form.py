"""Rules about the form itself: present, readable, known, fields filled and well-formed."""

from __future__ import annotations

from collections.abc import Iterable

from rules import formats
from rules.base import Case, Finding
from rules.registry import ORGANISATION_NAME
from rules.workflow import Role

#: The field that names the form's workflow before any workflow is known.
FORM_ID_FIELD = "form_id"


class FormMissing:
    code = "FORM-MISSING"
    description = "A PDF form must be attached."

    def applies(self, case: Case) -> bool:
        return case.workflow is None or case.workflow.needs_form

    def check(self, case: Case) -> Iterable[Finding]:
        if not case.form_present:
            yield Finding(self.code)


class FormUnreadable:
    code = "FORM-UNREADABLE"
    description = "The PDF form must open: not broken, encrypted or over the limits."

    def applies(self, case: Case) -> bool:
        return case.form_present

    def check(self, case: Case) -> Iterable[Finding]:
        if case.form_error:
            yield Finding(self.code, case.form_error)


class FormUnknown:
    code = "FORM-UNKNOWN"
    description = "The form must be the form of a configured procedure."

    def applies(self, case: Case) -> bool:
        return case.form_present and not case.form_error

    def check(self, case: Case) -> Iterable[Finding]:
        if case.workflow is None:
            # No workflow, so no role map: the form id is the field every
            # shipped form names so (FORM_ID_FIELD of intake.forms).
            found = case.fields.get(FORM_ID_FIELD, "")
            yield Finding(self.code, f"{FORM_ID_FIELD}={found!r}" if found
                          else f"no {FORM_ID_FIELD} field")


def _readable_form(case: Case) -> bool:
    return case.form_present and not case.form_error and case.workflow is not None


class FieldMissing:
    code = "FORM-FIELD-MISSING"
    description = "Every required field of the form is filled."

    def applies(self, case: Case) -> bool:
        return _readable_form(case)

    def check(self, case: Case) -> Iterable[Finding]:
        assert case.workflow is not None
        for spec in case.workflow.fields:
            if spec.required and not case.fields.get(spec.name, "").strip():
                yield Finding(f"{self.code}:{spec.name}")


class FieldInvalid:
    code = "FORM-FIELD-INVALID"
    description = "Every filled field has its format; the organisation is the registry's."

    def applies(self, case: Case) -> bool:
        return _readable_form(case)

    def check(self, case: Case) -> Iterable[Finding]:
        assert case.workflow is not None
        found: set[str] = set()
        for finding in self._formats(case):
            found.add(finding.code)
            yield finding
        # The organisation name against the registry's (a field judged by a
        # registry lookup rather than by its format).
        if ORGANISATION_NAME.applies(case):
            for finding in ORGANISATION_NAME.check(case):
                if finding.code not in found:
                    yield finding

    def _formats(self, case: Case) -> Iterable[Finding]:
        assert case.workflow is not None
        for spec in case.workflow.fields:
            value = case.fields.get(spec.name, "").strip()
            if not value:
                continue
            if spec.role == Role.FORM_ID and value != case.workflow.id:
                yield Finding(f"{self.code}:{spec.name}", f"{spec.name} {value!r}")
            elif spec.format and not formats.check(spec.format, value):
                yield Finding(f"{self.code}:{spec.name}", f"not a valid {spec.format}")
            elif spec.max_length is not None and len(value) > spec.max_length:
                yield Finding(f"{self.code}:{spec.name}", f"longer than {spec.max_length} characters")
            elif spec.min_length is not None and len(value) < spec.min_length:
                yield Finding(f"{self.code}:{spec.name}", f"shorter than {spec.min_length} characters")


class Duplicate:
    code = "DUPLICATE"
    description = "The same signed form is not submitted twice."

    def applies(self, case: Case) -> bool:
        return case.form_present

    def check(self, case: Case) -> Iterable[Finding]:
        if case.duplicate_of:
            yield Finding(self.code, case.duplicate_of)


RULES = (FormMissing(), FormUnreadable(), FormUnknown(), FieldMissing(), FieldInvalid(), Duplicate())
