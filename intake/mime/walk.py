"""The walk of a MIME tree in document order: body, attachments by level, S/MIME's signed bytes.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field, replace
from email.message import Message

from intake.mime.attachments import _content_type, _defect_text, _disposition, _filename, classify
from intake.mime.autoreply import REPORT_TYPES
from intake.mime.bodies import _text_of
from intake.mime.types import (
    _MAX_DEPTH,
    MAX_PARTS,
    P7M_TYPES,
    P7S_TYPES,
    Attachment,
    AttachmentKind,
)

# ---------------------------------------------------------------------------
# The walk.


@dataclass
class _Walk:
    raw: bytes
    limit: int
    defects: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    #: (depth, "plain" | "html", text) body candidates in document order.
    bodies: list[tuple[int, str, str]] = field(default_factory=list)
    smime: tuple[bytes, bytes] | None = None
    report: bool = False
    #: The charset of the message's undeclared 8-bit headers, if any.
    charset: str | None = None
    #: Parts looked at so far (bounded by MAX_PARTS).
    parts: int = 0

    def payload(self, part: Message, ctype: str) -> bytes | None:
        """Decoded bytes of a leaf part, or None (with a defect) if undecodable."""
        before = len(getattr(part, "defects", []))
        try:
            data = part.get_payload(decode=True)
        except Exception as exc:
            self.defects.append(f"{ctype} part could not be decoded: {exc}")
            return None
        new = getattr(part, "defects", [])[before:]
        bad = [d for d in new if "Base64" in type(d).__name__]
        if bad:
            self.defects.append(f"{ctype} part has bad base64 ({type(bad[0]).__name__}); dropped")
            return None
        if data is None:
            return b""
        if isinstance(data, str):
            return data.encode("utf-8", "surrogateescape")
        return bytes(data)

    def walk(self, part: Message, depth: int, nesting: int, body_wanted: bool = True) -> None:
        if nesting > _MAX_DEPTH:
            self.defects.append("MIME nesting too deep; inner parts ignored")
            return
        self.parts += 1
        if self.parts > MAX_PARTS:
            if self.parts == MAX_PARTS + 1:
                self.defects.append(f"more than {MAX_PARTS} MIME parts; the rest ignored")
            return
        ctype = _content_type(part)
        for defect in getattr(part, "defects", []):
            self.defects.append(_defect_text(ctype, defect))
        if ctype == "multipart/report":
            self.report = True
        if ctype in REPORT_TYPES:
            # A report's machine-readable part (DSN, ARF, MDN): it marks the
            # mail as a report and is not a body.
            self.report = True
            return
        if part.is_multipart():
            try:
                children = list(part.iter_parts()) if hasattr(part, "iter_parts") else []
                if not children:
                    sub = part.get_payload()
                    children = (
                        [c for c in sub if isinstance(c, Message)] if isinstance(sub, list) else []
                    )
            except Exception as exc:
                self.defects.append(f"{ctype} parts unreadable: {exc}")
                return
            if ctype == "multipart/signed":
                self._smime_signed(part, children, depth, nesting)
                return
            if ctype == "message/rfc822" or ctype.startswith("message/"):
                for child in children:
                    self.walk(child, depth + 1, nesting + 1)
                return
            if ctype == "multipart/alternative":
                preferred = self._preferred(children)
                for child in children:
                    self.walk(child, depth, nesting + 1, body_wanted and child is preferred)
                return
            for child in children:
                self.walk(child, depth, nesting + 1, body_wanted)
            return
        self._leaf(part, ctype, depth, body_wanted)

    @staticmethod
    def _preferred(children: list[Message]) -> Message | None:
        """The branch of a multipart/alternative that gives the body text."""
        for wanted in ("text/plain", "text/html"):
            for child in children:
                if _content_type(child) == wanted:
                    return child
        # A related/mixed branch (HTML with images) is the best left.
        return children[-1] if children else None

    def _leaf(self, part: Message, ctype: str, depth: int, body_wanted: bool) -> None:
        filename = _filename(part, self.defects, self.charset)
        disposition = _disposition(part)
        if ctype.startswith("multipart/"):
            # A multipart the parser could not split (no boundary): keep it as text.
            ctype = "text/plain"
        is_body = (
            ctype in ("text/plain", "text/html")
            and filename is None
            and disposition != "attachment"
        )
        data = self.payload(part, ctype)
        if data is None:
            return
        if is_body:
            if body_wanted:
                kind = "plain" if ctype == "text/plain" else "html"
                self.bodies.append((depth, kind, _text_of(part, data, self.charset)))
            return
        if ctype.startswith("text/") and filename is None and disposition != "attachment":
            # Other inline text (calendar, vCard, headers of a report): not a body, not a file.
            return
        kind = classify(data, filename, ctype)
        if ctype in P7M_TYPES and kind != "signed-file":
            self.defects.append(
                "S/MIME application/pkcs7-mime (opaque signed or encrypted) is not supported"
            )
        if len(data) > self.limit:
            label = filename or ctype
            self.defects.append(f"attachment {label} too large ({len(data)} bytes)")
            # An over-limit PDF is still the applicant's form: it is answered
            # FORM-UNREADABLE ("over limits", SPEC section 3), not FORM-MISSING.
            dropped: AttachmentKind = (
                kind if kind in ("form", "asice", "signed-file") else "other")
            self.attachments.append(
                Attachment(filename, ctype, dropped, b"", depth, dropped_size=len(data))
            )
            return
        self.attachments.append(Attachment(filename, ctype, kind, data, depth))

    def _smime_signed(
        self, part: Message, children: list[Message], depth: int, nesting: int
    ) -> None:
        protocol = ""
        with contextlib.suppress(Exception):
            protocol = str(part.get_param("protocol") or "").lower()
        if len(children) != 2:
            self.defects.append(f"multipart/signed has {len(children)} parts, not 2")
            for child in children:
                self.walk(child, depth, nesting + 1)
            return
        content, signature = children
        first = len(self.attachments)
        self.walk(content, depth, nesting + 1)
        if protocol not in P7S_TYPES:
            # Not S/MIME (e.g. PGP/MIME): keep the signature as a plain attachment.
            self.walk(signature, depth, nesting + 1, body_wanted=False)
            return
        sig = self.payload(signature, _content_type(signature))
        signed = _signed_bytes(self.raw, part)
        if sig is None:
            return
        if signed is None:
            self.defects.append("multipart/signed content could not be located in the raw message")
            return
        if self.smime is None and depth == 0:
            self.smime = (signed, sig)
            self.attachments[first:] = [
                replace(a, in_smime=True) for a in self.attachments[first:]
            ]


def _signed_bytes(raw: bytes, part: Message) -> bytes | None:
    """The first part of a multipart/signed exactly as sent, CRLF-normalised.

    RFC 1847: the signed bytes run from after the first delimiter line to
    before the CRLF that precedes the next delimiter.
    """
    try:
        boundary = part.get_boundary()
    except Exception:
        return None
    if not boundary:
        return None
    b = re.escape(boundary.encode("utf-8", "surrogateescape"))
    first = re.search(rb"(?:^|\r?\n)--" + b + rb"[ \t]*\r?\n", raw)
    if not first:
        return None
    start = first.end()
    second = re.compile(rb"\r?\n--" + b + rb"(?:--)?[ \t]*(?:\r?\n|$)").search(raw, start)
    if not second:
        return None
    content = raw[start : second.start()]
    return re.sub(rb"(?<!\r)\n", b"\r\n", content)
