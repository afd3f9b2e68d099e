""":func:`render_form` draws a workflow's blank fillable form (SPEC section 1: one labelled text field
per :class:`~intake.config.FieldSpec` and the hidden, read-only ``form_id`` field holding the
workflow id).
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    NumberObject,
    TextStringObject,
)

from intake.forms.appearance import _set_appearance, _text_appearance, _wrap
from intake.forms.embed import _add_font, _encode, _font_resources, _hex
from intake.forms.fields import (
    _PAGE_H,
    _PAGE_W,
    F_HIDDEN,
    F_PRINT,
    FF_MULTILINE,
    FF_READ_ONLY,
    FONT_RESOURCE,
)
from rules.form import FORM_ID_FIELD
from rules.workflow import FieldSpec, WorkflowConfig

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
