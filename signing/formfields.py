"""The AcroForm field tree of a PDF in pyHanko's object model, for verification.

Two readings of one tree, both bounded in depth:

* :func:`form_fields` -- the decoded value of every terminal text, choice and
  button field by its fully qualified name, with the document's page count:
  what the rules act on. The verifier reads them from the reader it validated
  with (:mod:`signing.pdf`), for the signed revision and for the final one, so
  a received PDF is parsed once.
* :func:`field_values` -- the raw ``/V`` of every non-signature field: a
  signature's verdict compares the signed revision's with the final ones, and
  a later revision that changes a value is ``SIG-MODIFIED`` even where pyHanko
  calls it harmless form filling.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from io import BytesIO
from typing import Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.reader import PdfFileReader

from signing.status import FormFields

# A bound on the depth of the AcroForm field tree walked.
_MAX_FIELD_DEPTH = 32
# Bounds on the page tree counted (pypdf's defaults, which read forms before).
_MAX_PAGE_DEPTH = 100
_MAX_PAGE_ENTRIES = 100_000

# Field flags (ISO 32000-1, tables 226 and 230).
FF_RADIO = 1 << 15
FF_PUSHBUTTON = 1 << 16


class _Unreadable(Exception):
    """The field tree cannot be read (its message is the FORM-UNREADABLE reason)."""


def read_pdf_fields(data: bytes) -> FormFields:
    """:func:`form_fields` of a PDF not otherwise opened (a container's, or a test's)."""
    try:
        reader = PdfFileReader(BytesIO(data), strict=False)
        if reader.encrypted:
            return FormFields(error="the PDF is encrypted")
        root = reader.root
    except (Exception, RecursionError) as exc:
        return FormFields(error=f"the PDF cannot be read: {type(exc).__name__}: {exc}")
    return form_fields(root)


def form_fields(root: Any) -> FormFields:
    """The decoded values of every terminal field under the catalog ``root``, and its pages.

    Text is NFC-normalised; check boxes read ``"yes"`` (any on state) or
    ``"no"``; radio groups read their export value; push buttons, signature
    fields and fields without a type are left out. Anything that cannot be
    read is the result's ``error`` (nothing raises).
    """
    pages = 0
    try:
        pages = _page_count(root)
        if not isinstance(root, generic.DictionaryObject):
            raise _Unreadable("the PDF has no document catalog")
        values: dict[str, str] = {}
        for name, ft, flags, value in _terminal_fields(root):
            text = _field_value(ft, flags, value)
            if text is not None and name not in values:
                values[unicodedata.normalize("NFC", name)] = text
        return FormFields(values=values, pages=pages)
    except _Unreadable as exc:
        return FormFields(pages=pages, error=str(exc))
    except (Exception, RecursionError) as exc:
        return FormFields(pages=pages,
                          error=f"the PDF cannot be read: {type(exc).__name__}: {exc}")


def _page_count(root: Any) -> int:
    """The leaves of the page tree (not its ``/Count``, which may lie); a cycle is unreadable."""
    if not isinstance(root, generic.DictionaryObject):
        raise _Unreadable("the PDF has no document catalog")
    pages = root.get("/Pages")
    pages = pages.get_object() if pages is not None else None
    if not isinstance(pages, generic.DictionaryObject):
        raise _Unreadable("the PDF cannot be read: invalid object in /Pages")
    count = entries = 0
    ancestors: set[int] = set()
    # (node, iterator over its kids, depth) for each /Pages node on the path.
    stack: list[tuple[generic.DictionaryObject, Iterator[Any], int]] = []
    node: generic.DictionaryObject | None = pages
    depth = 0
    while node is not None:
        if depth > _MAX_PAGE_DEPTH:
            raise _Unreadable("the PDF cannot be read: the page tree is too deep")
        kind = node.get("/Type")
        if kind is not None:
            kind = kind.get_object()
        elif "/Kids" not in node:
            kind = "/Page"  # without /Type and /Kids, a page
        else:
            kind = "/Pages"
        if kind == "/Pages":
            kids = node.get("/Kids")
            kids = kids.get_object() if kids is not None else generic.ArrayObject()
            if isinstance(kids, generic.NullObject):
                kids = generic.ArrayObject()
            if not isinstance(kids, generic.ArrayObject):
                raise _Unreadable("the PDF cannot be read: /Kids is not an array")
            ancestors.add(id(node))
            stack.append((node, iter(kids), depth))
        elif kind == "/Page":
            count += 1
        node = None
        while stack and node is None:
            parent, kids_left, parent_depth = stack[-1]
            for kid_ref in kids_left:
                kid = kid_ref.get_object()
                if not isinstance(kid, generic.DictionaryObject) or not kid:
                    continue
                if id(kid) in ancestors or kid is parent:
                    raise _Unreadable("the PDF cannot be read: cyclic page references")
                entries += 1
                if entries > _MAX_PAGE_ENTRIES:
                    raise _Unreadable("the PDF cannot be read: too many page tree entries")
                node, depth = kid, parent_depth + 1
                break
            else:
                stack.pop()
                ancestors.discard(id(parent))
    return count


def _ref_key(ref: Any) -> tuple[int, int] | int:
    if isinstance(ref, generic.IndirectObject):
        return (ref.idnum, ref.generation)
    return id(ref)


def _decode_name(raw: Any) -> str:
    if raw is None:
        return ""
    if isinstance(raw, generic.ByteStringObject):
        try:
            return bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            return bytes(raw).decode("latin-1")
    return str(raw)


@dataclass(frozen=True)
class _Inherited:
    ft: str | None
    flags: int
    value: Any


def _terminal_fields(root: generic.DictionaryObject) -> Iterator[tuple[str, str | None, int, Any]]:
    acroform = root.get("/AcroForm")
    acroform = acroform.get_object() if acroform is not None else None
    if not isinstance(acroform, generic.DictionaryObject):
        return
    fields = acroform.get("/Fields")
    fields = fields.get_object() if fields is not None else None
    yield from _walk(fields, "", _Inherited(None, 0, None), set(), 0)


def _walk(
    array: Any, parent: str, inherited: _Inherited, seen: set[tuple[int, int] | int], depth: int,
) -> Iterator[tuple[str, str | None, int, Any]]:
    """(name, FT, Ff, V) of the terminal fields under ``array``, FT, Ff and V inherited."""
    if depth > _MAX_FIELD_DEPTH:
        raise _Unreadable("form field tree is too deep")
    if not isinstance(array, generic.ArrayObject):
        return
    for ref in list.__iter__(array):  # the references themselves: a cycle is known by them
        key = _ref_key(ref)
        if key in seen:
            continue
        seen.add(key)
        node = ref.get_object()
        if not isinstance(node, generic.DictionaryObject):
            continue
        partial = _decode_name(node.get("/T")) if "/T" in node else ""
        name = f"{parent}.{partial}" if parent and partial else (partial or parent)
        ft_raw = node.get("/FT", inherited.ft)
        ft = str(ft_raw) if ft_raw is not None else None
        flags_raw = node.get("/Ff", inherited.flags)
        flags = int(flags_raw) if isinstance(flags_raw, (int, float, Decimal)) else 0
        value = node.get("/V", inherited.value)
        kids = node.get("/Kids")
        kids = kids.get_object() if kids is not None else None
        field_kids: list[Any] = []
        has_widgets = False
        if isinstance(kids, generic.ArrayObject):
            for kid_ref in list.__iter__(kids):
                kid = kid_ref.get_object()
                if not isinstance(kid, generic.DictionaryObject):
                    continue
                if "/T" in kid:
                    # A kid already visited (a cycle) is not a field of this node.
                    if _ref_key(kid_ref) not in seen:
                        field_kids.append(kid_ref)
                else:
                    has_widgets = True
        if field_kids:
            yield from _walk(generic.ArrayObject(field_kids), name,
                             _Inherited(ft, flags, value), seen, depth + 1)
        if (has_widgets or not field_kids) and name:
            yield name, ft, flags, value


def _text_value(value: Any) -> str:
    """A field value as NFC text (text strings, byte strings, names or arrays)."""
    if value is None:
        return ""
    value = value.get_object()
    if isinstance(value, generic.ArrayObject):
        return ", ".join(_text_value(v) for v in list.__iter__(value))
    if isinstance(value, generic.NameObject):
        text = str(value)[1:]
    elif isinstance(value, generic.ByteStringObject):
        # Bytes that are no PDFDocEncoding or UTF-16 text: UTF-8, else Latin-1.
        try:
            text = bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            text = bytes(value).decode("latin-1")
    elif isinstance(value, str):
        # pyHanko decodes UTF-16 and (PDF 2.0) UTF-8 with their byte order marks.
        text = str(value)
    else:
        text = ""
    return unicodedata.normalize("NFC", text)


def _field_value(ft: str | None, flags: int, value: Any) -> str | None:
    """The value read from one terminal field, or None to leave it out."""
    if ft == "/Btn":
        if flags & FF_PUSHBUTTON:
            return None
        state = value.get_object() if value is not None else None
        if flags & FF_RADIO:
            return "" if state in (None, "/Off") else _text_value(state)
        return "no" if state in (None, "/Off", "") else "yes"
    if ft in ("/Tx", "/Ch"):
        return _text_value(value)
    # Signature fields and fields without a type carry no form data.
    return None


def field_values(root: generic.DictionaryObject) -> dict[str, str]:
    """Map fully qualified names of non-signature form fields to their raw ``/V`` values."""
    values: dict[str, str] = {}

    def walk(
        kids: generic.ArrayObject, prefix: str, inherited_type: object, depth: int, seen: set[int]
    ) -> None:
        if depth > _MAX_FIELD_DEPTH:
            raise RecursionError("form field tree too deep")
        for kid_ref in kids:
            kid = kid_ref.get_object()
            if not isinstance(kid, generic.DictionaryObject) or id(kid) in seen:
                continue
            seen.add(id(kid))
            partial = kid.get("/T")
            name = f"{prefix}.{partial}" if prefix and partial else str(partial or prefix)
            field_type = kid.get("/FT", inherited_type)
            if "/Kids" in kid:
                walk(kid["/Kids"], name, field_type, depth + 1, seen)
            if field_type != "/Sig" and "/V" in kid:
                values[name] = repr(kid.raw_get("/V").get_object())

    try:
        fields = root["/AcroForm"]["/Fields"]
    except KeyError:
        return values
    walk(fields, "", None, 0, set())
    return values
