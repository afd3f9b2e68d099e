"""Named field formats checked by the FORM-FIELD-INVALID rule.

A workflow's :class:`~rules.workflow.FieldSpec` names a format; :func:`check`
tells whether a value has it. An unknown name raises :class:`ValueError`;
``intake.config`` refuses one at startup, naming the key.

The ``email`` format is the mailer's one definition of a usable address
(``mailer.addresses``), which rules/ may not import: the code that builds the
workflows (``intake.config``) hands it over once with :func:`use_address_check`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from urllib.parse import urlsplit

# A label of a host name.
_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")

_YES = {"yes", "jā", "ja", "sì", "si"}
_NO = {"no", "nē", "ne"}


def _is_host(host: str) -> bool:
    """Whether ``host`` is a DNS name with at least two labels (IDNA allowed)."""
    if not host or len(host) > 253 or host.endswith("."):
        return False
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        return False
    labels = ascii_host.split(".")
    if len(labels) < 2 or not labels[-1].isalpha() and not labels[-1].startswith("xn--"):
        return False
    return all(_LABEL_RE.match(label) for label in labels)


_address_check: list[Callable[[str], bool]] = []


def use_address_check(usable: Callable[[str], bool]) -> None:
    """Make ``usable`` (the mailer's definition of an address) the ``email`` format."""
    _address_check[:] = [usable]


def is_email(value: str) -> bool:
    """One bare address ``local@domain.tld`` that replies can be written to.

    The one definition of a usable address is ``mailer.addresses``, handed
    over by :func:`use_address_check`.
    """
    if not _address_check:
        raise RuntimeError("rules.formats: no address check given (use_address_check); "
                           "intake.config hands over mailer.addresses.is_usable")
    return _address_check[0](value.strip())


def is_reg_no(value: str) -> bool:
    """Exactly 11 ASCII digits after stripping surrounding whitespace."""
    v = value.strip()
    return len(v) == 11 and v.isascii() and v.isdigit()


def normalise_yes_no(value: str) -> bool | None:
    """``True`` for yes/jā/ja/sì/si, ``False`` for no/nē/ne, ``None`` otherwise."""
    v = unicodedata.normalize("NFC", value.strip()).casefold()
    if v in _YES:
        return True
    if v in _NO:
        return False
    return None


def is_yes_no(value: str) -> bool:
    """``yes``/``no`` in English, Latvian or Italian, any case."""
    return normalise_yes_no(value) is not None


def is_https_url(value: str) -> bool:
    """An ``https://`` URL with a host and no whitespace."""
    v = value.strip()
    if not v or any(c.isspace() for c in v):
        return False
    try:
        parts = urlsplit(v)
        port = parts.port
    except ValueError:
        return False
    del port
    return (
        parts.scheme.lower() == "https" and bool(parts.hostname) and _is_host(parts.hostname or "")
    )


def is_phone(value: str) -> bool:
    """An optional leading ``+``, then digits with spaces or dashes: 7-20 digits."""
    v = value.strip()
    if v.startswith("+"):
        v = v[1:]
    if not v or not all(c.isdigit() and c.isascii() or c in " -" for c in v):
        return False
    digits = sum(c.isdigit() for c in v)
    return 7 <= digits <= 20 and v[0].isdigit() and v[-1].isdigit()


def is_list(value: str) -> bool:
    """Comma-separated items, none of them empty."""
    items = value.split(",")
    return bool(value.strip()) and all(item.strip() for item in items)


def split_list(value: str) -> list[str]:
    """The items of a ``list`` value, stripped."""
    return [item.strip() for item in value.split(",") if item.strip()]


FORMATS: dict[str, Callable[[str], bool]] = {
    "email": is_email,
    "reg-no": is_reg_no,
    "yes-no": is_yes_no,
    "https-url": is_https_url,
    "phone": is_phone,
    "list": is_list,
}


def check(format_name: str, value: str) -> bool:
    """Whether ``value`` has the named format; ``ValueError`` for an unknown name."""
    try:
        checker = FORMATS[format_name]
    except KeyError:
        known = ", ".join(sorted(FORMATS))
        raise ValueError(f"unknown field format {format_name!r}; known: {known}") from None
    return checker(value)
