"""Inline parts of an HTML body: the HTML part becomes multipart/related (RFC 2387).

The staff digest's chart travels this way: a ``cid:`` reference in the HTML,
the PNG beside it, and the text part before both untouched (the
multipart/alternative stays text first, so a text reader never sees it).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.message import EmailMessage

_CONTENT_ID_RE = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+")
_SUBTYPE_RE = re.compile(r"[a-z0-9.+-]+")


def add_related(msg: EmailMessage, related: Iterable[tuple[str, str, bytes]]) -> None:
    """Put each ``(Content-ID without <>, "image/…", data)`` beside ``msg``'s HTML body.

    Raises ValueError for a Content-ID that is not ``left@right``, a part
    that is not an image, or a message without an HTML body.
    """
    html_part = msg.get_body(("html",))
    if not isinstance(html_part, EmailMessage):
        raise ValueError("related parts need an HTML body")
    for content_id, mime_type, data in related:
        if not _CONTENT_ID_RE.fullmatch(content_id):
            raise ValueError(f"related part needs a Content-ID such as chart@host: {content_id!r}")
        maintype, _, subtype = mime_type.partition("/")
        if maintype != "image" or not _SUBTYPE_RE.fullmatch(subtype):
            raise ValueError(f"related part must be an image/*: {mime_type!r}")
        html_part.add_related(bytes(data), maintype=maintype, subtype=subtype,
                              cid=f"<{content_id}>", disposition="inline")
