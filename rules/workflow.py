"""A workflow (a procedure) as the rules and the application code see it: plain frozen data.

``intake.config`` builds these from ``rules/workflows.toml`` (the shipped
procedures) and the ``[[workflow]]`` tables of ``config.toml``; nothing here
reads a file. Code never names a form field: it asks the workflow which
field plays a :class:`Role` (:meth:`WorkflowConfig.field_for`,
:func:`field_value`), and what approval does (:class:`Approval`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

__all__ = [
    "APPROVAL_BY_OUTCOME",
    "OUTCOMES",
    "Approval",
    "FieldSpec",
    "Role",
    "SigningDefaults",
    "WorkflowConfig",
    "field_value",
]


class Role(StrEnum):
    """What a form field means to pasts, whatever the workflow calls it."""

    #: The form's own id: the workflow's ``id`` (FORM-UNKNOWN, FORM-FIELD-INVALID).
    FORM_ID = "form-id"
    #: The organisation's name, compared with the registry's.
    ORG_NAME = "org-name"
    #: The organisation's registration number (11 digits): the registry key.
    ORG_REG_NO = "org-reg-no"
    #: The contact person's name (greets the contact in link mails).
    CONTACT_NAME = "contact-name"
    #: The contact's e-mail address: verified, and where decisions go.
    CONTACT_EMAIL = "contact-email"
    #: The common name the CSR's subject must carry (CSR-SUBJECT-MISMATCH).
    CSR_COMMON_NAME = "csr-common-name"
    #: The applicant's yes/no that the test-environment tests are done.
    TEST_ENV_COMPLETED = "test-env-completed"
    #: A data provider told of an approval (see :attr:`Approval.notify`).
    DATA_PROVIDER_EMAIL = "data-provider-email"


#: What approval does, by kind; a workflow's ``approval`` table overrides it.
OUTCOMES = ("certificate", "account", "publication", "answer", "review")


@dataclass(frozen=True)
class Approval:
    """What ``pasts approve`` does for a workflow's application."""

    #: Issue a certificate for the application's CSR and attach it to the reply.
    certificate: bool = False
    #: Open a portal account for the contact with a data-exchange id taken
    #: from this reference series (None: no account).
    account_series: str | None = None
    #: The state approval leads to: "approved", or "active" (in force at once).
    state: str = "approved"
    #: Roles of fields whose addresses are told of the approval besides the contact.
    notify: tuple[Role, ...] = ()


#: The approval of each outcome kind when a workflow declares none.
APPROVAL_BY_OUTCOME: Mapping[str, Approval] = {
    "certificate": Approval(certificate=True),
    "account": Approval(certificate=True, account_series="DX",
                        notify=(Role.DATA_PROVIDER_EMAIL,)),
    "publication": Approval(state="active"),
    "answer": Approval(),
    "review": Approval(),
}


@dataclass(frozen=True)
class FieldSpec:
    """One AcroForm field of a workflow's form."""

    name: str
    required: bool = False
    #: A named format (see :mod:`rules.formats`) checked by FORM-FIELD-INVALID.
    format: str | None = None
    label: str = ""
    min_length: int | None = None
    max_length: int | None = None
    #: What the field means to pasts (None: only shown and stored).
    role: Role | None = None


class SigningDefaults(Protocol):
    """``[signing]``: the signature policy a workflow may override."""

    @property
    def require_timestamp(self) -> bool: ...

    @property
    def require_qualified(self) -> bool: ...

    @property
    def require_qscd(self) -> bool: ...

    @property
    def require_qualified_timestamp(self) -> bool: ...

    @property
    def max_age_days(self) -> int: ...


@dataclass(frozen=True)
class WorkflowConfig:
    """A procedure, as data."""

    id: str
    prefix: str
    title: str = ""
    fields: tuple[FieldSpec, ...] = ()
    #: Attachment kinds the applicant must send besides the form: "csr".
    requires: tuple[str, ...] = ()
    #: Registry rules to run (TEST-ENV-NOT-COMPLETED, SIGNER-NOT-AUTHORISED,
    #: CONTRACT-MISSING); form, signature, CSR and DUPLICATE rules always run.
    rules: tuple[str, ...] = ()
    #: The kind of procedure (one of :data:`OUTCOMES`); it gives the default approval.
    outcome: str = "review"
    #: What approval does (by default :data:`APPROVAL_BY_OUTCOME` of ``outcome``).
    approval: Approval = field(default_factory=Approval)
    #: Whether a form is needed at all (false for consultation).
    needs_form: bool = True
    #: The first language of its replies ("en", "lv", "it"; English follows
    #: the others); None: ``[daemon] language``.
    language: str | None = None
    #: SIG-TOO-OLD for this procedure: how many days a time-stamp may be old
    #: (None: ``[signing] max_age_days``).
    max_age_days: int | None = None
    #: Overrides of ``[signing]`` for this procedure (None: the [signing] value).
    require_timestamp: bool | None = None
    require_qualified: bool | None = None
    require_qscd: bool | None = None
    require_qualified_timestamp: bool | None = None
    #: Qualified e-seals (an organisation signing) count as qualified signatures.
    accept_eseals: bool = False

    def field_for(self, role: Role) -> str | None:
        """The name of the field playing ``role`` (None: the form has none)."""
        return next((f.name for f in self.fields if f.role == role), None)


def field_value(workflow: WorkflowConfig | None, values: Mapping[str, str | None] | None,
                role: Role) -> str:
    """The stripped value of the field playing ``role`` in ``values`` ("" when none)."""
    name = workflow.field_for(role) if workflow is not None else None
    if name is None or not values:
        return ""
    return (values.get(name) or "").strip()
