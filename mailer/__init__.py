"""Replies: composing them from data (``compose``) and sending them (``transport``).

The mailer neither verifies nor judges: it turns a :class:`ReplySpec` into a
MIME message and delivers bytes through a :class:`Transport`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mailer.compose import Finding, ReplySpec, codes_header, compose, explain
    from mailer.transport import Transport, make_transport

#: Imported when first used (issue 12): ``import mailer.transport`` for an error
#: class must not load Jinja2 and the templates for a command that sends nothing.
_WHERE = {
    "Finding": "mailer.compose", "ReplySpec": "mailer.compose", "codes_header": "mailer.compose",
    "compose": "mailer.compose", "explain": "mailer.compose",
    "Transport": "mailer.transport", "make_transport": "mailer.transport",
}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'mailer' has no attribute {name!r}")


__all__ = [
    "Finding",
    "ReplySpec",
    "Transport",
    "codes_header",
    "compose",
    "explain",
    "make_transport",
]
