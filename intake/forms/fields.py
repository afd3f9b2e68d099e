"""The AcroForm field tree: field and annotation flags, and the one walker over terminal fields that
filling uses (bounded in depth, cycles refused as ``FORM-UNREADABLE``). A received PDF's
values are read by :mod:`signing.formfields`, in pyHanko's object model, by the verifier.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pypdf.generic import (
    ArrayObject,
    ByteStringObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    TextStringObject,
)

from intake.forms.read import _unreadable

#: The resource name of the embedded font in forms that pasts renders.
FONT_RESOURCE = "/PastsSans"

# Field flags (ISO 32000-1, tables 226, 228 and 230).
FF_READ_ONLY = 1
FF_MULTILINE = 1 << 12
FF_RADIO = 1 << 15
FF_PUSHBUTTON = 1 << 16
# Annotation flags (table 165).
F_HIDDEN = 2
F_PRINT = 4

# Deeper field trees than this are treated as hostile.
_MAX_DEPTH = 32

_PAGE_W, _PAGE_H = 595.0, 842.0  # A4 in points.


# ---------------------------------------------------------------------------
# Walking the field tree.


@dataclass
class _Field:
    name: str
    node: DictionaryObject
    ft: str | None
    flags: int
    value: Any
    widgets: list[DictionaryObject] = field(default_factory=list)


def _ref_key(ref: Any) -> tuple[int, int] | int:
    if isinstance(ref, IndirectObject):
        return (ref.idnum, ref.generation)
    return id(ref)


def _decode_name(raw: Any) -> str:
    if raw is None:
        return ""
    if isinstance(raw, ByteStringObject):
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(raw).decode("latin-1")
    return str(raw)


def _walk(
    array: Any,
    parent: str,
    inherited: tuple[str | None, int, Any],
    seen: set[tuple[int, int] | int],
    depth: int,
) -> Iterator[_Field]:
    """Terminal fields under ``array`` with inherited FT, Ff and V resolved."""
    if depth > _MAX_DEPTH:
        raise _unreadable("form field tree is too deep")
    if not isinstance(array, ArrayObject):
        return
    for ref in array:
        key = _ref_key(ref)
        if key in seen:
            continue
        seen.add(key)
        node = ref.get_object() if isinstance(ref, IndirectObject) else ref
        if not isinstance(node, DictionaryObject):
            continue
        partial = _decode_name(node.get("/T")) if "/T" in node else ""
        name = f"{parent}.{partial}" if parent and partial else (partial or parent)
        ft = node.get("/FT", inherited[0])
        ft = str(ft) if ft is not None else None
        flags_raw = node.get("/Ff", inherited[1])
        flags = int(flags_raw) if isinstance(flags_raw, (int, float)) else 0
        value = node.get("/V", inherited[2])
        kids = node.get("/Kids")
        kids = kids.get_object() if isinstance(kids, IndirectObject) else kids
        field_kids: list[Any] = []
        widget_kids: list[DictionaryObject] = []
        if isinstance(kids, ArrayObject):
            for kid_ref in kids:
                kid = kid_ref.get_object()
                if not isinstance(kid, DictionaryObject):
                    continue
                if "/T" in kid:
                    # A kid already visited (a cycle) is not a field of this node.
                    if _ref_key(kid_ref) not in seen:
                        field_kids.append(kid_ref)
                else:
                    widget_kids.append(kid)
        if field_kids:
            yield from _walk(ArrayObject(field_kids), name, (ft, flags, value), seen, depth + 1)
        if widget_kids or not field_kids:
            widgets = widget_kids or ([node] if node.get("/Subtype") == "/Widget" else [])
            if not name:
                continue
            yield _Field(name=name, node=node, ft=ft, flags=flags, value=value, widgets=widgets)


def _fields(root: DictionaryObject) -> Iterator[_Field]:
    acroform = root.get("/AcroForm")
    acroform = acroform.get_object() if acroform is not None else None
    if not isinstance(acroform, DictionaryObject):
        return
    fields = acroform.get("/Fields")
    fields = fields.get_object() if fields is not None else None
    yield from _walk(fields, "", (None, 0, None), set(), 0)


def _text_value(value: Any) -> str:
    """A field value as NFC text (text strings, byte strings, names or arrays)."""
    if value is None:
        return ""
    value = value.get_object() if isinstance(value, IndirectObject) else value
    if isinstance(value, ArrayObject):
        return ", ".join(_text_value(v) for v in value)
    if isinstance(value, NameObject):
        text = str(value)[1:]
    elif isinstance(value, ByteStringObject):
        # pypdf leaves bytes it cannot decode as a text string here.
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            text = bytes(value).decode("latin-1")
    elif isinstance(value, TextStringObject):
        text = str(value)
        # PDF 2.0 allows UTF-8 text strings with a BOM; pypdf reads them as PDFDocEncoding.
        try:
            original = value.get_original_bytes()
        except Exception:
            original = b""
        if original.startswith(b"\xef\xbb\xbf"):
            text = original[3:].decode("utf-8", errors="replace")
    elif isinstance(value, str):
        text = str(value)
    else:
        text = ""
    return unicodedata.normalize("NFC", text)
