"""Short strings of the mail to staff (the digest), in the daemon's language."""

from __future__ import annotations

from typing import Any

from mailer.compose import DEFAULT_LANGUAGE, language_strings, normalise_language


def staff_strings(language: str) -> dict[str, Any]:
    """The ``[digest]`` strings of ``language``, each missing one taken from English.

    The staff digest's headings, column names and chart labels; intake's
    digest puts them into the template context and the chart's legend.
    """
    merged: dict[str, Any] = {}
    for lang in (DEFAULT_LANGUAGE, normalise_language(language)):
        for key, value in language_strings(lang).get("digest", {}).items():
            merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    return merged
