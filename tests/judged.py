"""The SPEC codes of a signing verdict as the rules give them (for tests of ``signing/``).

``signing`` returns facts and the policy-free codes; ``SIG-NOT-QUALIFIED``,
``TS-MISSING``, ``TS-NOT-QUALIFIED`` and ``SIG-TOO-OLD`` are computed by
:mod:`rules.signature` under a policy. Tests that want "the codes a procedure
sees" for a verdict ask this, not the verdict.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rules import Case
from rules.signature import RULES, Policy


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
