"""Appearance streams of text fields: size from ``/DA``, wrapping, colours, the text operators.
"""

from __future__ import annotations

import re
from typing import Any

from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    IndirectObject,
    NameObject,
)

from intake.forms.embed import _encode, _font_resources, _hex, _text_width
from intake.forms.fields import FONT_RESOURCE
from intake.forms.fonts import metrics

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
