""":func:`read_form_fields`: the value of every terminal field of a PDF by its fully qualified name;
anything it cannot parse is ``FORM-UNREADABLE``.
"""

from __future__ import annotations

import unicodedata
import warnings
from io import BytesIO

from pypdf import PdfReader
from pypdf.errors import PdfReadWarning
from pypdf.generic import (
    DictionaryObject,
)

from intake.errors import PermanentError
from intake.forms.fields import _field_value, _fields, _unreadable

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
            # pypdf reports recoverable damage as PdfReadWarning; strict=False repairs it.
            # Only those are hushed: a DeprecationWarning of pypdf's must still be seen.
            warnings.filterwarnings("ignore", category=PdfReadWarning)
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
