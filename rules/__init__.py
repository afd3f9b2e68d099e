"""The rules: one small object per SPEC code, all run on every case.

The registry is built by scanning this package for modules with a ``RULES``
tuple; two rules claiming one code is a start-up error.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass

from rules.base import Case, Finding, OrganisationRecord, Rule

__all__ = ["Case", "Finding", "Judgement", "OrganisationRecord", "Rule", "all_rules", "judge"]


def _scan() -> dict[str, Rule]:
    found: dict[str, Rule] = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name == "base":
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        for rule in getattr(module, "RULES", ()):
            if rule.code in found:
                raise RuntimeError(f"two rules claim the code {rule.code}")
            found[rule.code] = rule
    return found


_RULES = _scan()


def all_rules() -> dict[str, Rule]:
    return dict(_RULES)


@dataclass(frozen=True)
class Judgement:
    """The outcome of running every rule: what failed and what passed."""

    findings: tuple[Finding, ...]
    passed: tuple[str, ...]

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(sorted({f.code for f in self.findings}))


def judge(case: Case) -> Judgement:
    """Run every rule that applies; never stop at the first failure."""
    findings: list[Finding] = []
    passed: list[str] = []
    for code, rule in sorted(_RULES.items()):
        if not rule.applies(case):
            continue
        got = list(rule.check(case))
        if got:
            findings.extend(got)
        else:
            passed.append(code)
    findings.sort(key=lambda f: f.code)
    return Judgement(tuple(findings), tuple(passed))
