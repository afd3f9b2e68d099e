""":func:`fill_form` sets field values and writes their appearance streams, and returns a fresh,
complete PDF that pyHanko can then sign incrementally (the demo and the tests use it).
"""

from __future__ import annotations

import unicodedata
import warnings
from collections.abc import Mapping
from io import BytesIO
from typing import Any

from pypdf import PdfReader, PdfWriter
from pypdf.errors import PdfReadWarning
from pypdf.generic import (
    BooleanObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    TextStringObject,
)

from intake.errors import PermanentError
from intake.forms.appearance import _da_size, _set_appearance, _text_appearance
from intake.forms.embed import _add_font
from intake.forms.fields import (
    FF_MULTILINE,
    FF_PUSHBUTTON,
    FF_RADIO,
    FONT_RESOURCE,
    _fields,
    _text_value,
)
from intake.forms.fonts import metrics
from intake.forms.read import _unreadable

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
            # Recoverable damage of the template, repaired by strict=False (see read.py).
            warnings.filterwarnings("ignore", category=PdfReadWarning)
            reader = PdfReader(BytesIO(template), strict=False)
            if reader.is_encrypted:
                raise _unreadable("the PDF is encrypted")
            writer = PdfWriter(clone_from=reader)
    except PermanentError:
        raise
    except (Exception, RecursionError) as exc:
        raise _unreadable(f"the PDF cannot be read: {type(exc).__name__}: {exc}") from exc

    # Imported here: formats has no PDF dependencies and forms uses only this.
    from rules.formats import normalise_yes_no

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
