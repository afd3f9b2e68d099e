"""The SPEC codes of a signing verdict as the rules give them (for tests of ``signing/``).

``signing`` returns facts and the policy-free codes; ``SIG-NOT-QUALIFIED``,
``TS-MISSING``, ``TS-NOT-QUALIFIED`` and ``SIG-TOO-OLD`` are computed by
:mod:`rules.signature` under a policy. Tests that want "the codes a procedure
sees" for a verdict ask this, not the verdict.
"""

from __future__ import annotations

import io
import pickle
from datetime import UTC, datetime
from typing import Any

from rules import Case, judge
from rules.signature import RULES, Policy, status_codes, timestamp_codes, verdict_codes
from signing.status import FileTimestamp, FormVerdict, SignatureStatus


def signature_codes(verdict: Any, *, judged_at: datetime | None = None,
                    **policy: Any) -> tuple[str, ...]:
    """Every SIG-*/TS-* code the signature rules find in ``verdict`` under ``policy``
    (:class:`rules.signature.Policy`'s fields, by default its defaults)."""
    chosen = Policy(**policy)
    case = Case(workflow=None, form_present=True, verdict=verdict,
                judged_at=judged_at or datetime.now(UTC), signing=_Defaults(chosen))
    return tuple(sorted({f.code for rule in RULES if rule.applies(case)
                         for f in rule.check(case)}))


class _Defaults:
    """A :class:`rules.workflow.SigningDefaults` holding ``policy``'s values."""

    def __init__(self, policy: Policy) -> None:
        self.require_timestamp = policy.require_timestamp
        self.require_qualified = policy.require_qualified
        self.require_qscd = policy.require_qscd
        self.require_qualified_timestamp = policy.require_qualified_timestamp
        self.max_age_days = policy.max_age_days


def verifier_codes(found: Any) -> tuple[str, ...]:
    """The codes the facts of ``found`` raise whatever the policy (:func:`rules.signature.
    verdict_codes`): what the verifier itself used to list. ``found`` is a
    :class:`~signing.status.FormVerdict`, an ``AsicVerdict`` or a ``SignedFile`` (their
    ``verdict``), a :class:`~signing.status.SignatureStatus` or a ``FileTimestamp``."""
    if isinstance(found, SignatureStatus):
        codes = status_codes(found)
    elif isinstance(found, FileTimestamp):
        codes = timestamp_codes(found)
    else:
        codes = verdict_codes(found if isinstance(found, FormVerdict) else found.verdict)
    return codes


def verifier_ok(found: Any) -> bool:
    """A verdict with at least one signature whose facts raise no code."""
    verdict = found if isinstance(found, FormVerdict) else found.verdict
    return bool(verdict.signatures) and not verifier_codes(verdict)


def unreadable_codes(error: Exception) -> tuple[str, ...]:
    """The codes a submission whose form raised ``error`` (``UnreadableInput``) gets: the
    pipeline records it as the form's ``form_error`` and the rules answer it."""
    return judge(Case(workflow=None, form_present=True, form_error=str(error))).codes


def pickled_parsers(value: Any) -> set[str]:
    """The PDF/XML parser modules whose classes ``value`` pickles with.

    A verdict crosses from a verification child to the daemon as a pickle; it
    must be plain values, not pyHanko or pypdf objects (a pyHanko string keeps
    its whole reader, the parsed hostile PDF, and the daemon would unpickle it).
    """
    found: set[str] = set()

    class _Names(pickle.Unpickler):
        def find_class(self, module: str, name: str) -> Any:
            if module.split(".")[0] in {"pyhanko", "pypdf", "lxml"}:
                found.add(module)
            return super().find_class(module, name)

    _Names(io.BytesIO(pickle.dumps(value))).load()
    return found
