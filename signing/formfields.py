"""The one walker of a PDF's AcroForm field tree (pyHanko's object model), for verification.

A signature's verdict compares the form values of the signed revision with
the final ones (:func:`field_values`): a later revision that changes a value
is ``SIG-MODIFIED`` even where pyHanko calls it harmless form filling.
"""

from __future__ import annotations

from pyhanko.pdf_utils import generic

# A bound on the depth of the AcroForm field tree walked.
_MAX_FIELD_DEPTH = 32


def field_values(root: generic.DictionaryObject) -> dict[str, str]:
    """Map fully qualified names of non-signature form fields to their ``/V`` values."""
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
