"""Replies: composing them from data (``compose``) and sending them (``transport``).

The mailer neither verifies nor judges: it turns a :class:`ReplySpec` into a
MIME message and delivers bytes through a :class:`Transport`.
"""

from mailer.compose import Finding, ReplySpec, codes_header, compose, explain
from mailer.transport import Transport, make_transport

__all__ = [
    "Finding",
    "ReplySpec",
    "Transport",
    "codes_header",
    "compose",
    "explain",
    "make_transport",
]
