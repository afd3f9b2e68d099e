"""The form fields of a received PDF as the rules take them: the values
:mod:`signing.formfields` read (with pyHanko, in the verifier), under the page
limit; anything unreadable is ``FORM-UNREADABLE``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from intake.errors import PermanentError

if TYPE_CHECKING:
    from signing.status import FormFields


def _unreadable(message: str) -> PermanentError:
    """The ``FORM-UNREADABLE`` error (also :mod:`intake.forms.fields`'s, for filling;
    defined here, where no pypdf is imported: the daemon reads values through this module)."""
    return PermanentError(message, code="FORM-UNREADABLE")


def form_values(fields: FormFields, *, max_pages: int) -> dict[str, str]:
    """The values of ``fields``; raises :class:`PermanentError` with code ``FORM-UNREADABLE``
    when they could not be read (the PDF is encrypted, unparseable, its field tree too deep
    or looping) or the PDF has more than ``max_pages`` pages."""
    if fields.pages > max_pages:
        raise _unreadable(f"the PDF has {fields.pages} pages (limit {max_pages})")
    if fields.error is not None:
        raise _unreadable(fields.error)
    return dict(fields.values)


def read_form_fields(pdf: bytes, *, max_pages: int = 200) -> dict[str, str]:
    """Every terminal AcroForm text, choice and button field of a PDF no verifier has read
    (the PDF inside an ASiC-E container), by qualified name: :func:`form_values` of
    :func:`signing.formfields.read_pdf_fields`.

    Text is NFC-normalised; check boxes read ``"yes"`` (any on state) or
    ``"no"``; radio groups read their export value.
    """
    from signing.formfields import read_pdf_fields

    return form_values(read_pdf_fields(pdf), max_pages=max_pages)
