"""``[[workflow]]``: the procedures, built into :mod:`rules.workflow`'s types.

The shipped procedures are ``rules/workflows.toml`` (rules/ owns the data,
this module reads it with the same strict reader as ``config.toml``'s
``[[workflow]]`` tables, so that one parser names the key and the file of
any mistake in either).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from intake.config.section import REPLY_LANGUAGES, Section
from mailer.addresses import is_usable
from rules import formats
from rules.workflow import APPROVAL_BY_OUTCOME, OUTCOMES, Approval, FieldSpec, Role, WorkflowConfig

__all__ = ["SHIPPED_WORKFLOWS", "default_workflows", "parse_workflow"]

# The ``email`` field format is the mailer's one definition of a usable address.
formats.use_address_check(is_usable)

#: The procedures pasts ships (SPEC section 1).
SHIPPED_WORKFLOWS = Path(formats.__file__).with_name("workflows.toml")


def parse_field(s: Section) -> FieldSpec:
    """One entry of a workflow's ``fields``."""
    role = s.get("role", str, None)
    if role is not None and role not in {r.value for r in Role}:
        raise s.error("role", f"must be one of {', '.join(r.value for r in Role)}; got {role!r}")
    fmt = s.get("format", str, None)
    if fmt is not None and fmt not in formats.FORMATS:
        raise s.error("format", f"must be one of {', '.join(sorted(formats.FORMATS))}; "
                                f"got {fmt!r}")
    spec = FieldSpec(
        name=s.get("name", str),
        required=s.get("required", bool, False),
        format=fmt,
        label=s.get("label", str, ""),
        min_length=s.positive("min_length", int, None),
        max_length=s.positive("max_length", int, None),
        role=Role(role) if role is not None else None,
    )
    s.finish()
    return spec


def parse_approval(s: Section, outcome: str) -> Approval:
    """A workflow's ``approval`` table; absent keys take the outcome's default."""
    default = APPROVAL_BY_OUTCOME[outcome]
    notify = s.str_list("notify", [r.value for r in default.notify])
    for role in notify:
        if role not in {r.value for r in Role}:
            raise s.error("notify", f"names no field role: {role!r}")
    series = s.get("account_series", str, default.account_series)
    if series is not None and not (series.isalnum() and series.isupper()):
        raise s.error("account_series", f"must be upper-case letters/digits; got {series!r}")
    approval = Approval(
        certificate=s.get("certificate", bool, default.certificate),
        account_series=series,
        state=s.choice("state", ("approved", "active"), default.state),
        notify=tuple(Role(r) for r in notify),
    )
    s.finish()
    return approval


def parse_workflow(s: Section) -> WorkflowConfig:
    """One ``[[workflow]]`` table."""
    wid = s.get("id", str)
    fields_raw = s.get("fields", list, [])
    fields = tuple(
        parse_field(Section(f, f"{s.key('fields')}[{i}]", s.path))
        for i, f in enumerate(fields_raw)
    )
    roles = [f.role for f in fields if f.role is not None]
    for role in set(roles):
        if roles.count(role) > 1:
            raise s.error("fields", f"two fields play the role {role.value!r}")
    outcome = s.choice("outcome", OUTCOMES, "review")
    cfg = WorkflowConfig(
        id=wid,
        prefix=s.get("prefix", str),
        title=s.get("title", str, ""),
        fields=fields,
        requires=s.str_list("requires", []),
        rules=s.str_list("rules", []),
        outcome=outcome,
        approval=parse_approval(s.sub("approval"), outcome),
        needs_form=s.get("needs_form", bool, True),
        language=s.get("language", str, None),
        max_age_days=s.positive("max_age_days", int, None),
        require_timestamp=s.get("require_timestamp", bool, None),
        require_qualified=s.get("require_qualified", bool, None),
        require_qscd=s.get("require_qscd", bool, None),
        require_qualified_timestamp=s.get("require_qualified_timestamp", bool, None),
        accept_eseals=s.get("accept_eseals", bool, False),
    )
    if cfg.language is not None and cfg.language not in REPLY_LANGUAGES:
        raise s.error("language", f"must be one of {', '.join(REPLY_LANGUAGES)}; "
                      f"got {cfg.language!r}")
    if not cfg.prefix.isalnum() or not cfg.prefix.isupper():
        raise s.error("prefix", f"must be upper-case letters/digits; got {cfg.prefix!r}")
    s.finish()
    return cfg


def default_workflows() -> tuple[WorkflowConfig, ...]:
    """The procedures pasts ships (SPEC section 1), from ``rules/workflows.toml``."""
    path = SHIPPED_WORKFLOWS
    with path.open("rb") as fh:
        data = tomllib.load(fh)
    top = Section(data, "", path)
    raw = top.get("workflow", list)
    top.finish()
    return tuple(parse_workflow(Section(w, f"workflow[{i}]", path)) for i, w in enumerate(raw))
