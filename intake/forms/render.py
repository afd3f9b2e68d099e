"""AcroForm fields: read them from a PDF, render blank forms, fill them in.

* :func:`read_form_fields` returns the value of every terminal field by its
  fully qualified name; anything it cannot parse is ``FORM-UNREADABLE``.
* :func:`render_form` draws a workflow's blank fillable form (SPEC section 1:
  one labelled text field per :class:`~intake.config.FieldSpec` and the
  hidden, read-only ``form_id`` field holding the workflow id).
* :func:`fill_form` sets field values and writes their appearance streams, and
  returns a fresh, complete PDF that pyHanko can then sign incrementally.

Values are Unicode. Appearances use the embedded DejaVu Sans subset in
``intake/forms/fonts/`` (a simple TrueType font with a ``/Differences`` encoding of
ASCII, Windows-1252, Latin-1 and the Latvian, Lithuanian and Polish letters),
so Latvian and Italian values display in every viewer. The field values
themselves are stored as PDF text strings (UTF-16BE where needed), so a
character the font lacks is only drawn as ``?``; it is never lost.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from io import BytesIO
from pathlib import Path
from typing import Any

from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    BooleanObject,
    ByteStringObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    IndirectObject,
    NameObject,
    NumberObject,
    PdfObject,
    TextStringObject,
)

from intake.config import FieldSpec, WorkflowConfig
from intake.errors import PermanentError
from intake.forms.fonts import metrics

FONT_FILE = Path(__file__).with_name("fonts") / "DejaVuSans-pasts.ttf"
#: The resource name of the embedded font in forms that pasts renders.
FONT_RESOURCE = "/PastsSans"
#: The name of the hidden field that carries the workflow id (SPEC section 1).
FORM_ID_FIELD = "form_id"

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
_MARGIN = 50.0

_TITLES = {
    "en": "Application form",
    "lv": "Pieteikuma veidlapa",
    "it": "Modulo di domanda",
}
_NOTES = {
    "en": "Fill in the fields, sign the file with a qualified e-signature and send it back by e-mail.",
    "lv": "Aizpildiet laukus, parakstiet datni ar drošu e-parakstu un nosūtiet to pa e-pastu.",
    "it": "Compilate i campi, firmate il file con una firma elettronica qualificata e rispeditelo per e-mail.",
}


def _unreadable(message: str) -> PermanentError:
    return PermanentError(message, code="FORM-UNREADABLE")


# ---------------------------------------------------------------------------
# The embedded font.


@lru_cache(maxsize=1)
def _char_codes() -> dict[str, int]:
    """Character -> code in the embedded font's encoding."""
    return {char: code for code, (char, _name, _w) in metrics.ENCODING.items()}


def _encode(text: str) -> bytes:
    """``text`` in the font's one-byte encoding; unknown characters degrade to ``?``.

    A character the font lacks is first tried without its accents (NFKD base
    letter), so that e.g. Romanian "ș" still shows as "s" rather than "?".
    """
    codes = _char_codes()
    out = bytearray()
    for char in unicodedata.normalize("NFC", text):
        code = codes.get(char)
        if code is None:
            base = unicodedata.normalize("NFKD", char)[:1]
            code = codes.get(base, codes["?"])
        out.append(code)
    return bytes(out)


def _text_width(encoded: bytes, size: float) -> float:
    widths = metrics.ENCODING
    return (
        sum(widths[b][2] if b in widths else metrics.MISSING_WIDTH for b in encoded) * size / 1000
    )


def _hex(encoded: bytes) -> str:
    return "<" + encoded.hex().upper() + ">"


def _to_unicode_cmap() -> bytes:
    """A ToUnicode CMap for the font, so text extraction maps codes back."""
    entries = [
        f"<{code:02X}> <{ord(char):04X}>"
        for code, (char, _n, _w) in sorted(metrics.ENCODING.items())
    ]
    chunks = [entries[i : i + 100] for i in range(0, len(entries), 100)]
    body = "".join(f"{len(c)} beginbfchar\n" + "\n".join(c) + "\nendbfchar\n" for c in chunks)
    return (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<00> <FF>\nendcodespacerange\n"
        + body
        + "endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    ).encode("ascii")


def _stream(
    writer: PdfWriter, data: bytes, extra: Mapping[str, PdfObject] | None = None
) -> IndirectObject:
    stream = DecodedStreamObject()
    stream.set_data(data)
    for key, value in (extra or {}).items():
        stream[NameObject(key)] = value
    return writer._add_object(stream.flate_encode())


def _add_font(writer: PdfWriter) -> IndirectObject:
    """Add the DejaVu Sans subset as a simple TrueType font; return its reference."""
    ttf = FONT_FILE.read_bytes()
    font_file = _stream(writer, ttf, {"/Length1": NumberObject(len(ttf))})
    base_font = NameObject("/PSTSAA+" + metrics.FONT_NAME)
    descriptor = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/FontDescriptor"),
            NameObject("/FontName"): base_font,
            # Nonsymbolic: glyphs are found by name through the (3,1) cmap.
            NameObject("/Flags"): NumberObject(32),
            NameObject("/FontBBox"): ArrayObject(NumberObject(v) for v in metrics.BBOX),
            NameObject("/ItalicAngle"): NumberObject(0),
            NameObject("/Ascent"): NumberObject(metrics.ASCENT),
            NameObject("/Descent"): NumberObject(metrics.DESCENT),
            NameObject("/CapHeight"): NumberObject(metrics.CAP_HEIGHT),
            NameObject("/StemV"): NumberObject(80),
            NameObject("/MissingWidth"): NumberObject(metrics.MISSING_WIDTH),
            NameObject("/FontFile2"): font_file,
        }
    )
    first, last = min(metrics.ENCODING), max(metrics.ENCODING)
    differences = ArrayObject()
    previous = -2
    for code in range(first, last + 1):
        if code not in metrics.ENCODING:
            continue
        if code != previous + 1:
            differences.append(NumberObject(code))
        differences.append(NameObject("/" + metrics.ENCODING[code][1]))
        previous = code
    widths = ArrayObject(
        NumberObject(metrics.ENCODING[c][2] if c in metrics.ENCODING else 0)
        for c in range(first, last + 1)
    )
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/TrueType"),
            NameObject("/BaseFont"): base_font,
            NameObject("/FirstChar"): NumberObject(first),
            NameObject("/LastChar"): NumberObject(last),
            NameObject("/Widths"): widths,
            NameObject("/Encoding"): DictionaryObject(
                {
                    NameObject("/Type"): NameObject("/Encoding"),
                    NameObject("/Differences"): differences,
                }
            ),
            NameObject("/FontDescriptor"): writer._add_object(descriptor),
            NameObject("/ToUnicode"): _stream(writer, _to_unicode_cmap()),
        }
    )
    return writer._add_object(font)


def _font_resources(font: IndirectObject) -> DictionaryObject:
    return DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject(FONT_RESOURCE): font})}
    )


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


def _field_value(f: _Field) -> str | None:
    """The value read from one terminal field, or None to leave it out."""
    if f.ft == "/Btn":
        if f.flags & FF_PUSHBUTTON:
            return None
        state = f.value.get_object() if isinstance(f.value, IndirectObject) else f.value
        if f.flags & FF_RADIO:
            return "" if state in (None, "/Off") else _text_value(state)
        return "no" if state in (None, "/Off", "") else "yes"
    if f.ft in ("/Tx", "/Ch"):
        return _text_value(f.value)
    # Signature fields and fields without a type carry no form data.
    return None


# ---------------------------------------------------------------------------
# Reading.


def read_form_fields(pdf: bytes, *, max_pages: int = 200) -> dict[str, str]:
    """Every terminal AcroForm text, choice and button field, by qualified name.

    Text is NFC-normalised; check boxes read ``"yes"`` (any on state) or
    ``"no"``; radio groups read their export value. Raises
    :class:`PermanentError` with code ``FORM-UNREADABLE`` when the file is not
    a parseable PDF, is encrypted, or has more than ``max_pages`` pages.
    """
    try:
        with warnings.catch_warnings():
            # pypdf reports recoverable damage as warnings; strict=False repairs it.
            warnings.simplefilter("ignore")
            reader = PdfReader(BytesIO(pdf), strict=False)
            if reader.is_encrypted:
                raise _unreadable("the PDF is encrypted")
            pages = len(reader.pages)
            if pages > max_pages:
                raise _unreadable(f"the PDF has {pages} pages (limit {max_pages})")
            root = reader.trailer["/Root"].get_object()
            if not isinstance(root, DictionaryObject):
                raise _unreadable("the PDF has no document catalog")
            values: dict[str, str] = {}
            for f in _fields(root):
                value = _field_value(f)
                if value is not None and f.name not in values:
                    values[unicodedata.normalize("NFC", f.name)] = value
            return values
    except PermanentError:
        raise
    except (Exception, RecursionError) as exc:
        raise _unreadable(f"the PDF cannot be read: {type(exc).__name__}: {exc}") from exc


# ---------------------------------------------------------------------------
# Appearance streams.


_DA_FONT_RE = re.compile(rb"/([^\s/]+)\s+([\d.]+)\s+Tf")


def _da_size(node: DictionaryObject, acroform: DictionaryObject | None) -> float:
    """The font size from the field's (or the form's) /DA; 0 means auto."""
    da = node.get("/DA")
    if da is None and acroform is not None:
        da = acroform.get("/DA")
    raw = bytes(da, "latin-1") if isinstance(da, str) else bytes(da or b"")
    match = _DA_FONT_RE.search(raw)
    try:
        return float(match.group(2)) if match else 0.0
    except ValueError:
        return 0.0


def _rect(widget: DictionaryObject) -> tuple[float, float]:
    rect = widget.get("/Rect")
    rect = rect.get_object() if rect is not None else None
    if not isinstance(rect, ArrayObject) or len(rect) != 4:
        return (0.0, 0.0)
    try:
        x1, y1, x2, y2 = (float(v) for v in rect)
    except (TypeError, ValueError):
        return (0.0, 0.0)
    return (abs(x2 - x1), abs(y2 - y1))


def _wrap(text: str, width: float, size: float) -> list[str]:
    """Break ``text`` into lines no wider than ``width`` (words kept whole if possible)."""
    lines: list[str] = []
    for paragraph in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        line = ""
        for word in paragraph.split(" "):
            candidate = f"{line} {word}" if line else word
            if _text_width(_encode(candidate), size) <= width or not line:
                line = candidate
            else:
                lines.append(line)
                line = word
        lines.append(line)
    return lines


def _colour(values: Any, stroke: bool) -> str:
    if not isinstance(values, ArrayObject):
        return ""
    nums = " ".join(f"{float(v):.3f}" for v in values)
    op = {1: "G", 3: "RG", 4: "K"}.get(len(values), "")
    if not op:
        return ""
    return f"{nums} {op if stroke else op.lower()}"


def _text_appearance(
    writer: PdfWriter,
    widget: DictionaryObject,
    text: str,
    size: float,
    multiline: bool,
    font: IndirectObject,
) -> IndirectObject:
    """A /Tx appearance stream drawing ``text`` in the embedded font."""
    w, h = _rect(widget)
    mk = widget.get("/MK")
    mk = mk.get_object() if mk is not None else None
    ops: list[str] = []
    if isinstance(mk, DictionaryObject):
        bg = _colour(mk.get("/BG"), stroke=False)
        if bg and w and h:
            ops.append(f"q {bg} 0 0 {w:.2f} {h:.2f} re f Q")
        bc = _colour(mk.get("/BC"), stroke=True)
        if bc and w and h:
            ops.append(f"q {bc} 1 w 0.5 0.5 {w - 1:.2f} {h - 1:.2f} re S Q")
    ops.append("/Tx BMC q")
    if w > 4 and h > 4:
        ops.append(f"1 1 {w - 2:.2f} {h - 2:.2f} re W n")
    pad = 2.0
    if not multiline:
        text = " ".join(text.replace("\r", " ").replace("\n", " ").split(" "))
    if size <= 0:
        # Auto size: fit the height, then shrink a single line to fit the width.
        size = 10.0 if multiline else max(min(12.0, (h - 2 * pad) * 0.7), 4.0)
        if not multiline:
            natural = _text_width(_encode(text), size)
            if natural > w - 2 * pad > 0:
                size = max(size * (w - 2 * pad) / natural, 4.0)
    ops.append(f"BT {FONT_RESOURCE} {size:.2f} Tf 0 g")
    if multiline:
        leading = size * 1.15
        y = h - pad - size * metrics.ASCENT / 1000
        ops.append(f"{pad:.2f} {y:.2f} Td {leading:.2f} TL")
        for i, line in enumerate(_wrap(text, w - 2 * pad, size)):
            ops.append(("" if i == 0 else "T* ") + f"{_hex(_encode(line))} Tj")
    else:
        encoded = _encode(text)
        quadding = widget.get("/Q", 0)
        x = pad
        if quadding in (1, 2):
            free = w - 2 * pad - _text_width(encoded, size)
            x += free / 2 if quadding == 1 else free
        # Centre the line vertically on the cap height.
        y = (h - size * metrics.CAP_HEIGHT / 1000) / 2
        ops.append(f"{x:.2f} {y:.2f} Td {_hex(encoded)} Tj")
    ops.append("ET Q EMC")
    stream = DecodedStreamObject()
    stream.set_data("\n".join(ops).encode("ascii"))
    stream[NameObject("/Type")] = NameObject("/XObject")
    stream[NameObject("/Subtype")] = NameObject("/Form")
    stream[NameObject("/BBox")] = ArrayObject(
        [FloatObject(0), FloatObject(0), FloatObject(round(w, 2)), FloatObject(round(h, 2))]
    )
    stream[NameObject("/Resources")] = _font_resources(font)
    return writer._add_object(stream.flate_encode())


def _set_appearance(widget: DictionaryObject, normal: IndirectObject) -> None:
    widget[NameObject("/AP")] = DictionaryObject({NameObject("/N"): normal})


# ---------------------------------------------------------------------------
# Rendering blank forms.


def _label(spec: FieldSpec) -> str:
    return spec.label or spec.name.replace("_", " ").capitalize()


def _text_ops(x: float, y: float, size: float, text: str) -> str:
    return f"BT {FONT_RESOURCE} {size:.1f} Tf {x:.2f} {y:.2f} Td {_hex(_encode(text))} Tj ET"


def _fit_lines(text: str, width: float, size: float) -> list[str]:
    return _wrap(text, width, size)


def render_form(workflow: WorkflowConfig, *, language: str = "en") -> bytes:
    """A blank fillable PDF form for ``workflow`` (SPEC section 1).

    One labelled text field per field of the workflow, multi-line where the
    field asks for a long text (``min_length`` of 40 or more), plus the
    hidden, read-only ``form_id`` field pre-filled with the workflow id. The
    page text is in ``language`` where a translation exists (en, lv, it).
    """
    writer = PdfWriter()
    font = _add_font(writer)
    resources = _font_resources(font)
    da = TextStringObject(f"{FONT_RESOURCE} 10 Tf 0 g")
    lang = language if language in _TITLES else "en"
    fields_array = ArrayObject()

    specs = [s for s in workflow.fields if s.name != FORM_ID_FIELD]
    pages: list[tuple[Any, list[str], ArrayObject]] = []

    def new_page() -> tuple[Any, list[str], ArrayObject]:
        page = writer.add_blank_page(width=_PAGE_W, height=_PAGE_H)
        entry: tuple[Any, list[str], ArrayObject] = (page, [], ArrayObject())
        pages.append(entry)
        return entry

    page, ops, annots = new_page()
    y = _PAGE_H - _MARGIN - 16
    ops.append(_text_ops(_MARGIN, y, 16, workflow.title or workflow.id))
    y -= 20
    ops.append(_text_ops(_MARGIN, y, 11, f"{_TITLES[lang]} \u2013 {workflow.id}"))
    y -= 18
    for line in _fit_lines(_NOTES[lang], _PAGE_W - 2 * _MARGIN, 9):
        ops.append(_text_ops(_MARGIN, y, 9, line))
        y -= 12
    y -= 14

    field_x = 230.0
    field_w = _PAGE_W - _MARGIN - field_x
    for spec in specs:
        multiline = (spec.min_length or 0) >= 40
        height = 64.0 if multiline else 20.0
        if y - height < _MARGIN:
            page, ops, annots = new_page()
            y = _PAGE_H - _MARGIN
        top = y
        label = _label(spec) + (" *" if spec.required else "")
        label_lines = _fit_lines(label, field_x - _MARGIN - 8, 10)
        for i, line in enumerate(label_lines):
            ops.append(_text_ops(_MARGIN, top - 14 - 12 * i, 10, line))
        rect = [field_x, top - height, field_x + field_w, top]
        widget = DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Annot"),
                NameObject("/Subtype"): NameObject("/Widget"),
                NameObject("/FT"): NameObject("/Tx"),
                NameObject("/T"): TextStringObject(spec.name),
                NameObject("/TU"): TextStringObject(_label(spec)),
                NameObject("/Rect"): ArrayObject(FloatObject(v) for v in rect),
                NameObject("/F"): NumberObject(F_PRINT),
                NameObject("/Ff"): NumberObject(FF_MULTILINE if multiline else 0),
                NameObject("/DA"): da,
                NameObject("/V"): TextStringObject(""),
                NameObject("/MK"): DictionaryObject(
                    {
                        NameObject("/BC"): ArrayObject([FloatObject(0.45)] * 3),
                        NameObject("/BG"): ArrayObject([FloatObject(0.96)] * 3),
                    }
                ),
                NameObject("/P"): page.indirect_reference,
            }
        )
        if spec.max_length:
            widget[NameObject("/MaxLen")] = NumberObject(spec.max_length)
        _set_appearance(widget, _text_appearance(writer, widget, "", 10, multiline, font))
        ref = writer._add_object(widget)
        annots.append(ref)
        fields_array.append(ref)
        y = top - max(height, 12 * len(label_lines) + 6) - 10

    # The hidden form_id field sits on the first page, zero-sized and read-only.
    first_page = pages[0][0]
    form_id = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Widget"),
            NameObject("/FT"): NameObject("/Tx"),
            NameObject("/T"): TextStringObject(FORM_ID_FIELD),
            NameObject("/Rect"): ArrayObject([FloatObject(0)] * 4),
            NameObject("/F"): NumberObject(F_HIDDEN),
            NameObject("/Ff"): NumberObject(FF_READ_ONLY),
            NameObject("/DA"): da,
            NameObject("/V"): TextStringObject(workflow.id),
            NameObject("/P"): first_page.indirect_reference,
        }
    )
    _set_appearance(form_id, _text_appearance(writer, form_id, workflow.id, 10, False, font))
    form_ref = writer._add_object(form_id)
    pages[0][2].append(form_ref)
    fields_array.append(form_ref)

    for page_obj, page_ops, page_annots in pages:
        content = DecodedStreamObject()
        content.set_data("\n".join(page_ops).encode("ascii"))
        page_obj[NameObject("/Contents")] = writer._add_object(content.flate_encode())
        page_obj[NameObject("/Resources")] = resources
        page_obj[NameObject("/Annots")] = page_annots

    writer.root_object[NameObject("/AcroForm")] = writer._add_object(
        DictionaryObject(
            {
                NameObject("/Fields"): fields_array,
                NameObject("/DR"): resources,
                NameObject("/DA"): da,
            }
        )
    )
    if workflow.title:
        writer.add_metadata({"/Title": workflow.title})
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


# ---------------------------------------------------------------------------
# Filling.


def _on_state(widget: DictionaryObject) -> str:
    """The widget's "on" appearance state name (``/Yes`` if it declares none)."""
    ap = widget.get("/AP")
    ap = ap.get_object() if ap is not None else None
    normal = ap.get("/N") if isinstance(ap, DictionaryObject) else None
    normal = normal.get_object() if normal is not None else None
    if isinstance(normal, DictionaryObject):
        for key in normal:
            if key != "/Off":
                return str(key)
    return "/Yes"


def _existing_font(acroform: Any) -> IndirectObject | None:
    """The embedded font of a form pasts rendered, to reuse instead of adding it again."""
    if not isinstance(acroform, DictionaryObject):
        return None
    dr = acroform.get("/DR")
    dr = dr.get_object() if dr is not None else None
    fonts = dr.get("/Font") if isinstance(dr, DictionaryObject) else None
    fonts = fonts.get_object() if fonts is not None else None
    ref = (
        fonts.raw_get(FONT_RESOURCE)
        if isinstance(fonts, DictionaryObject) and FONT_RESOURCE in fonts
        else None
    )
    if not isinstance(ref, IndirectObject):
        return None
    font = ref.get_object()
    base = str(font.get("/BaseFont", "")) if isinstance(font, DictionaryObject) else ""
    return ref if base.endswith("+" + metrics.FONT_NAME) else None


def fill_form(template: bytes, values: Mapping[str, str]) -> bytes:
    """``template`` with ``values`` set, as a fresh complete PDF.

    Keys are fully qualified field names; a name the form does not have, or
    a signature field, raises :class:`ValueError`. Text and choice fields get
    the value and a new appearance stream in the embedded font; check boxes
    take yes/no (English, Latvian or Italian) and radio groups an export
    value. A template that cannot be read raises ``FORM-UNREADABLE``.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            reader = PdfReader(BytesIO(template), strict=False)
            if reader.is_encrypted:
                raise _unreadable("the PDF is encrypted")
            writer = PdfWriter(clone_from=reader)
    except PermanentError:
        raise
    except (Exception, RecursionError) as exc:
        raise _unreadable(f"the PDF cannot be read: {type(exc).__name__}: {exc}") from exc

    # Imported here: formats has no PDF dependencies and forms uses only this.
    from intake.formats import normalise_yes_no

    root = writer.root_object
    acroform = root.get("/AcroForm")
    acroform = acroform.get_object() if acroform is not None else None
    all_fields = {f.name: f for f in _fields(root)}
    unknown = sorted(set(values) - set(all_fields))
    if unknown:
        raise ValueError(f"the form has no field(s) {', '.join(unknown)}")
    font = _existing_font(acroform)
    for name, raw_value in values.items():
        f = all_fields[name]
        value = unicodedata.normalize("NFC", raw_value)
        if f.ft in ("/Tx", "/Ch"):
            f.node[NameObject("/V")] = TextStringObject(value)
            if font is None:
                font = _add_font(writer)
            size = _da_size(f.node, acroform if isinstance(acroform, DictionaryObject) else None)
            multiline = bool(f.flags & FF_MULTILINE)
            for widget in f.widgets:
                da_size = _da_size(widget, None) or size
                _set_appearance(
                    widget, _text_appearance(writer, widget, value, da_size, multiline, font)
                )
        elif f.ft == "/Btn" and not f.flags & FF_PUSHBUTTON:
            if f.flags & FF_RADIO:
                state = "/" + value if value else "/Off"
                f.node[NameObject("/V")] = NameObject(state)
                for widget in f.widgets:
                    own = _on_state(widget)
                    widget[NameObject("/AS")] = NameObject(own if own == state else "/Off")
            else:
                checked = normalise_yes_no(value)
                if checked is None:
                    raise ValueError(f"field {name} is a check box: give yes or no, not {value!r}")
                on = _on_state(f.widgets[0]) if f.widgets else "/Yes"
                state = on if checked else "/Off"
                f.node[NameObject("/V")] = NameObject(state)
                for widget in f.widgets:
                    widget[NameObject("/AS")] = NameObject(state)
        else:
            raise ValueError(f"field {name} ({f.ft}) cannot be filled")
    if isinstance(acroform, DictionaryObject) and acroform.get("/NeedAppearances"):
        # Give the other filled text fields an appearance too, if they lack one.
        for f in all_fields.values():
            text = _text_value(f.value) if f.ft in ("/Tx", "/Ch") else ""
            for widget in f.widgets if text else []:
                if "/AP" not in widget:
                    if font is None:
                        font = _add_font(writer)
                    size = _da_size(widget, None) or _da_size(f.node, acroform)
                    multiline = bool(f.flags & FF_MULTILINE)
                    _set_appearance(
                        widget, _text_appearance(writer, widget, text, size, multiline, font)
                    )
        # Every filled field has its appearance now; viewers must not rewrite
        # them, since that would change a document after it is signed.
        acroform[NameObject("/NeedAppearances")] = BooleanObject(False)
    out = BytesIO()
    writer.write(out)
    return out.getvalue()
