"""What rules judge and what they find.

A rule is a small object with a stable ``code`` (SPEC section 3), a one-line
``description`` and ``check(case) -> Iterable[Finding]``. Rules judge plain
records: no I/O, no mail, no database session inside a rule. Every rule runs;
the decision is taken once, on all findings together.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from rules.workflow import SigningDefaults, WorkflowConfig

if TYPE_CHECKING:  # rules -> signing for types only
    from signing.csr import CsrReport
    from signing.status import FormVerdict


@dataclass(frozen=True)
class Finding:
    """One deficiency: a SPEC code (``CODE`` or ``CODE:field``) and a detail for staff."""

    code: str
    detail: str = ""

    @property
    def base_code(self) -> str:
        return self.code.split(":", 1)[0]


@dataclass(frozen=True)
class OrganisationRecord:
    """A registry entry, as rules see it."""

    reg_no: str
    name: str
    test_env_completed: bool
    agreement_received: bool
    representatives: tuple[str, ...]


@dataclass(frozen=True)
class Case:
    """Everything known about one submission when the rules run.

    Built by the intake pipeline from the mail, the form, the signature
    verdict, the CSR report and the registry; rules only read it.
    """

    #: The workflow the form belongs to (None: FORM-UNKNOWN or no form).
    workflow: WorkflowConfig | None
    #: A form PDF was attached.
    form_present: bool = False
    #: Why the form could not be read (FORM-UNREADABLE), else None.
    form_error: str | None = None
    #: The mail was over the message size limit and not opened at all, so
    #: nothing is known of its attachments (only FORM-UNREADABLE is said).
    unopened: bool = False
    #: The form's field values, read from the revision the signature covers.
    fields: Mapping[str, str] = field(default_factory=dict)
    #: The signature verdict of the form, or of a signed container that holds
    #: no form (an ASiC-E container's or a ``.p7m``'s ``verdict``); None when
    #: nothing was verified. Facts only: the SIG-*/TS-* codes are the rules'.
    verdict: FormVerdict | None = None
    #: The latest revision's field values differ from the signed revision's.
    fields_changed_after_signing: bool = False
    #: The CSR report (None when the workflow needs no CSR, or none was attached).
    csr: CsrReport | None = None
    #: The signer's personal code (e.g. PNOLV-010190-12345), from the verdict.
    signer_code: str | None = None
    #: The organisation in the registry, by the field of role ``org-reg-no`` (None: not found).
    organisation: OrganisationRecord | None = None
    #: The reference of an application that already has this exact signed form.
    duplicate_of: str | None = None
    #: When the case is judged (the "now" of age limits); None: not known.
    judged_at: datetime | None = None
    #: ``[signing]``: the defaults a workflow may override (None: the
    #: verifier's codes stand as they are).
    signing: SigningDefaults | None = None


class Rule(Protocol):
    """The interface every rule implements (see rules/ for the shipped ones)."""

    #: The SPEC code this rule produces (the part before any ``:field``).
    code: str
    #: One line saying what the rule checks.
    description: str

    def applies(self, case: Case) -> bool:
        """Whether the rule has anything to judge for this case."""
        ...

    def check(self, case: Case) -> Iterable[Finding]:
        """The findings (none when the case passes)."""
        ...
