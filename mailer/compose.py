"""Composing replies: a :class:`ReplySpec` in, a complete MIME message out.

The composer only turns data it is given into a message (SPEC section 5); it
neither judges an application nor sends anything.  Its output is stable: the
same spec always gives the same bytes, so a reply stored in the outbox can be
rebuilt and compared, and a retried send carries the same ``Message-ID``.

Every value that may come from an applicant (subject, names, form values,
finding details, message ids of the incoming mail) is treated as hostile:
control characters never reach a header, HTML output is autoescaped, and
addresses are checked before use.
"""

from __future__ import annotations

import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from mailer.addresses import UnusableAddress, usable_address
from mailer.related import add_related
from mailer.wire import COMPOSE, WIRE, WIRE_UTF8, boundary, fill_in, set_boundaries, wire_bytes

__all__ = [
    "EVENTS",
    "LANGUAGES",
    "WIRE",
    "WIRE_UTF8",
    "Finding",
    "ReplySpec",
    "codes_header",
    "compose",
    "compose_wire",
    "explain",
    "fill_in",
    "render",
    "wire_bytes",
]

#: The languages replies are written in; anything else falls back to English.
LANGUAGES = ("en", "lv", "it")
DEFAULT_LANGUAGE = "en"

#: Every template (event) name the composer knows.
EVENTS = (
    "received",
    "in-review",
    "rejected",
    "rejected-final",
    "form-missing",
    "duplicate",
    "status",
    "status-unknown",
    "approved",
    "active",
    "restricted",
    "verify-email",
    "verification-expired",
    "verify-reminder",
    "certificate-expiry",
    "confirm-change",
    "change-held",
    "digest",
)

#: At most this many message ids are kept in ``References`` (RFC 5322 3.6.4
#: allows trimming; the first id, the thread root, is always kept).
MAX_REFERENCES = 12

#: Subjects are cut to this many characters before the reference is added.
MAX_SUBJECT_CHARS = 180

_HERE = Path(__file__).resolve().parent
_TEMPLATES = _HERE / "templates"
_CODES = _HERE / "codes"

# A message id as it appears in headers: "<left@right>" without whitespace.
_MSGID_RE = re.compile(r"<[^<>\s@]+@[^<>\s@]+>")
# A reply prefix such as "Re:", "RE :", "AW:", "SV:" or "Fwd:" repeated.
_REPLY_PREFIX_RE = re.compile(r"^\s*(?:(?:re|aw|sv|vs|ri|atb|fwd?)\s*(?:\[\d+\])?\s*:\s*)+", re.I)


@dataclass(frozen=True)
class Finding:
    """One deficiency to explain in a reply."""

    #: A SPEC section 3 code, possibly with a field: ``FORM-FIELD-MISSING:org_reg_no``.
    code: str
    #: Optional extra text; it may come from the applicant and is escaped in HTML.
    detail: str = ""


@dataclass(frozen=True)
class ReplySpec:
    """Everything needed to compose one reply; see :func:`compose`."""

    #: Recipient addr-spec (``user@example.lv``); validated.
    to: str
    #: From addr-spec (``smtp.from`` of the configuration); validated.
    sender: str
    #: Event name, one of :data:`EVENTS`.
    template: str
    #: "en", "lv" or "it"; anything else falls back to "en".
    language: str
    #: Stable ``<...@domain>`` id chosen by the caller (idempotency).
    message_id: str
    #: Application reference such as ``EA-2026-000042``.
    reference: str | None = None
    #: SPEC section 4 state such as ``incomplete``.
    status: str | None = None
    #: Deficiencies to list (and to put into ``X-Pasts-Codes``).
    findings: tuple[Finding, ...] = ()
    #: Subject of the message being answered (user-supplied).
    original_subject: str = ""
    #: Message-ID of the message being answered (user-supplied).
    in_reply_to: str | None = None
    #: References header of the message being answered (user-supplied).
    references: tuple[str, ...] = ()
    #: Extra template values (workflow title, fields, verification URL, ...).
    context: Mapping[str, Any] = field(default_factory=dict)
    #: Attachments as (filename, MIME type "a/b", data).
    attachments: tuple[tuple[str, str, bytes], ...] = ()
    #: Parts the HTML body shows inline, as (Content-ID without <>, MIME type
    #: "image/png", data): the HTML part becomes multipart/related holding
    #: them (RFC 2387), referenced from the HTML as ``cid:<Content-ID>``.
    related: tuple[tuple[str, str, bytes], ...] = ()
    #: RFC 3834 value: "auto-replied", or "auto-generated" for digests and
    #: verification mail.
    auto_submitted: str = "auto-replied"
    #: The Date header; defaults to now (UTC).  Naive values are taken as UTC.
    date: datetime | None = None


# --------------------------------------------------------------------------
# Cleaning of user-supplied values.


def clean_header_text(value: object, limit: int | None = None) -> str:
    """``value`` as one line of text fit for a header.

    Every control character (CR, LF, NUL, tab, the Unicode line and paragraph
    separators, bidi overrides) becomes a space, runs of whitespace collapse,
    and the result is cut to ``limit`` characters.
    """
    text = str(value)
    out = []
    for ch in text:
        cat = unicodedata.category(ch)
        # Cc = control, Cf = format (bidi overrides, zero-width), Zl/Zp = separators.
        if cat in ("Cc", "Cf", "Zl", "Zp", "Cs"):
            out.append(" ")
        else:
            out.append(ch)
    cleaned = " ".join("".join(out).split())
    if limit is not None and len(cleaned) > limit:
        cleaned = cleaned[: limit - 1].rstrip() + "…"
    return cleaned


def check_address(addr: str, what: str = "address") -> str:
    """Return ``addr`` as the addr-spec to write, or raise ValueError.

    The one definition of a usable address is
    :func:`mailer.addresses.usable_address`: no quoting, comments or display
    names; an internationalised domain becomes its ASCII (IDNA) form; a
    non-ASCII local part stays UTF-8 and the message needs SMTPUTF8.
    """
    try:
        result = usable_address(addr).spec
    except UnusableAddress as exc:
        raise ValueError(f"{what} is not a usable address ({exc.reason}): {addr!r}") from None
    # The stdlib must write back exactly the address we checked.
    local, _, domain = result.rpartition("@")
    try:
        parsed = Address(username=local, domain=domain)
    except (HeaderParseError, ValueError, IndexError):
        raise ValueError(f"{what} is not an e-mail address: {addr!r}") from None
    if parsed.addr_spec != result:
        raise ValueError(f"{what} is not an e-mail address: {addr!r}")
    return result


def check_message_id(value: str) -> str:
    """The caller's ``Message-ID``; it must be one ``<left@right>`` id."""
    if not isinstance(value, str) or not _MSGID_RE.fullmatch(value) or not value.isascii():
        raise ValueError(f"message_id must look like <unique@domain>: {value!r}")
    return value


def message_ids(values: Iterable[str | None]) -> list[str]:
    """Every well-formed ``<...@...>`` id found in ``values``, in order, once each.

    Anything else (text, control characters, half ids) is dropped, so a
    hostile ``References`` header cannot smuggle content into ours.
    """
    seen: set[str] = set()
    out: list[str] = []
    for value in values:
        if not value:
            continue
        for mid in _MSGID_RE.findall(str(value)):
            if mid.isascii() and mid not in seen and len(mid) <= 250:
                seen.add(mid)
                out.append(mid)
    return out


def thread_references(references: Iterable[str], in_reply_to: str | None) -> list[str]:
    """The ``References`` list of a reply: the original's plus its Message-ID.

    Long lists keep the first id (the thread root) and the last ones.
    """
    ids = message_ids([*references, in_reply_to])
    if len(ids) > MAX_REFERENCES:
        ids = ids[:1] + ids[-(MAX_REFERENCES - 1) :]
    return ids


def normalise_language(language: str | None) -> str:
    """``lv-LV`` -> ``lv``; unknown languages -> ``en``."""
    lang = (language or "").strip().lower().replace("_", "-").split("-")[0]
    return lang if lang in LANGUAGES else DEFAULT_LANGUAGE


# --------------------------------------------------------------------------
# Catalogs: rule codes and short strings.


@cache
def _catalog(language: str) -> dict[str, Any]:
    with (_CODES / f"{language}.toml").open("rb") as fh:
        return tomllib.load(fh)


@cache
def _strings(language: str) -> dict[str, Any]:
    with (_TEMPLATES / language / "strings.toml").open("rb") as fh:
        return tomllib.load(fh)


def language_strings(language: str) -> dict[str, Any]:
    """The ``strings.toml`` of ``language`` (a known one; see :func:`normalise_language`)."""
    return _strings(normalise_language(language))


def catalog_codes(language: str) -> frozenset[str]:
    """The rule codes the catalog of ``language`` explains (without ``*``)."""
    return frozenset(k for k in _catalog(normalise_language(language)) if k != "*")


def explain(code: str, language: str) -> tuple[str, str]:
    """(sentence, how to fix) for ``code`` in ``language``.

    ``CODE:field`` forms put the field into the text.  A code missing from
    the language's catalog falls back to English, then to a generic sentence
    that names the code; this never raises for any string.
    """
    lang = normalise_language(language)
    base, _, field_name = str(code).partition(":")
    base = clean_header_text(base, 80)
    field_name = clean_header_text(field_name, 80)
    entry = _catalog(lang).get(base) or _catalog(DEFAULT_LANGUAGE).get(base)
    generic = _catalog(lang)["*"]
    if entry is None:
        entry = generic
    shown_field = field_name or generic.get("field_unknown", "")

    def fill(text: str) -> str:
        # Plain replacement, not str.format: the code is user-influenced and
        # braces in it must not be read as placeholders.
        return text.replace("{field}", shown_field).replace("{code}", base)

    return fill(str(entry["sentence"])), fill(str(entry["fix"]))


def codes_header(findings: Iterable[Finding | str]) -> str:
    """The ``X-Pasts-Codes`` value: sorted, comma-separated, each code once."""
    codes = set()
    for f in findings:
        code = f.code if isinstance(f, Finding) else str(f)
        cleaned = clean_header_text(code, 120).replace(",", "").replace(" ", "")
        if cleaned:
            codes.add(cleaned)
    return ",".join(sorted(codes))


def state_label(status: str | None, language: str) -> str:
    """The human name of a SPEC state in ``language`` (the code itself if unknown)."""
    if not status:
        return ""
    states = _strings(normalise_language(language)).get("states", {})
    return str(states.get(status, status))


def template_title(template: str, language: str) -> str:
    """The subject used when there is no original subject."""
    subjects = _strings(normalise_language(language)).get("subjects", {})
    return str(subjects.get(template, template))


# --------------------------------------------------------------------------
# Templates.


@cache
def _environments() -> tuple[jinja2.Environment, jinja2.Environment]:
    loader = jinja2.FileSystemLoader(str(_TEMPLATES))
    # The templates ship with the code: compiled once, never looked at again
    # (auto_reload stats every file of a template at each render).
    # Text bodies are not HTML: no escaping, but undefined names still fail.
    text_env = jinja2.Environment(
        loader=loader,
        autoescape=False,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    html_env = jinja2.Environment(
        loader=loader,
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    return text_env, html_env


def _template_values(spec: ReplySpec, language: str, subject: str) -> dict[str, Any]:
    findings = []
    for f in spec.findings:
        sentence, fix = explain(f.code, language)
        base, _, field_name = f.code.partition(":")
        findings.append(
            {
                "code": f.code,
                "base": base,
                "field": field_name,
                "sentence": sentence,
                "fix": fix,
                "detail": f.detail,
            }
        )
    strings = _strings(language)
    values: dict[str, Any] = dict(spec.context)
    values.update(
        ctx=spec.context,
        language=language,
        reference=spec.reference or "",
        status=spec.status or "",
        status_label=state_label(spec.status, language),
        findings=findings,
        original_subject=clean_header_text(spec.original_subject, MAX_SUBJECT_CHARS),
        subject=subject,
        title=template_title(spec.template, language),
        labels=strings.get("labels", {}),
        to=spec.to,
    )
    return values


#: Mail to staff, not to applicants: written in one language only.
STAFF_TEMPLATES = ("digest",)
#: The line between a reply's first language and the English version below it.
ENGLISH_BELOW = "—— In English ——"


def _render_one(spec: ReplySpec, language: str, subject: str, *,
                embedded: bool = False) -> tuple[str, str]:
    values = _template_values(spec, language, subject)
    # An embedded HTML body is the inside of <body> only, to follow another.
    values["embedded"] = embedded
    text_env, html_env = _environments()
    try:
        text = text_env.get_template(f"{language}/{spec.template}.txt.j2").render(values)
        html = html_env.get_template(f"{language}/{spec.template}.html.j2").render(values)
    except jinja2.UndefinedError as exc:
        raise ValueError(f"template {spec.template!r} needs a context value: {exc}") from None
    return text, html


def render(spec: ReplySpec) -> tuple[str, str]:
    """The (text, HTML) bodies of ``spec``.

    A reply to an applicant in another language carries the English version
    below the first, in the text and in the HTML part; an English reply has
    it once. Raises ValueError for an unknown template or a template value
    the caller did not supply.
    """
    if spec.template not in EVENTS:
        raise ValueError(f"unknown reply template {spec.template!r}")
    language = normalise_language(spec.language)
    subject = subject_for(spec)
    text, html = _render_one(spec, language, subject)
    if language == DEFAULT_LANGUAGE or spec.template in STAFF_TEMPLATES:
        return text, html
    en_text, en_html = _render_one(spec, DEFAULT_LANGUAGE, subject, embedded=True)
    text = f"{text.rstrip()}\n\n\n{ENGLISH_BELOW}\n\n{en_text}"
    head, body_end, tail = html.rpartition("</body>")
    html = (f'{head}<hr style="border: 0; border-top: 2px solid #999; margin: 2em 0;">\n'
            f'<div lang="{DEFAULT_LANGUAGE}">\n<p style="color: #555;">{ENGLISH_BELOW}</p>\n'
            f"{en_html.strip()}\n</div>\n{body_end}{tail}")
    return text, html


# --------------------------------------------------------------------------
# The message.


def subject_for(spec: ReplySpec) -> str:
    """``Re: <original subject> [REF]`` or ``<template title> [REF]``."""
    ref = clean_header_text(spec.reference or "", 60)
    original = clean_header_text(spec.original_subject, MAX_SUBJECT_CHARS)
    if original:
        # One "Re: " only, however many prefixes the thread has collected.
        stripped = _REPLY_PREFIX_RE.sub("", original).strip()
        subject = f"Re: {stripped}" if stripped else "Re:"
    else:
        subject = template_title(spec.template, normalise_language(spec.language))
    if ref and f"[{ref}]" not in subject:
        subject = f"{subject} [{ref}]"
    return subject


def _clean_filename(name: str) -> str:
    cleaned = clean_header_text(name, 120).replace("/", "_").replace("\\", "_").strip(". ")
    return cleaned or "attachment"


def _set_text_header(msg: EmailMessage, name: str, value: str) -> None:
    """Set an unstructured header whose value is already cleaned of controls.

    Non-ASCII values are encoded here as RFC 2047 words with the spaces
    inside them: the stdlib folder of Python 3.11 can put a space between
    two encoded words, where a reader drops it ("perché è" came back as
    "perchéè").  A pre-folded raw value is written out unchanged.
    """
    if value.isascii():
        _set_header(msg, name, value)
    else:
        msg.set_raw(name, Header(value, "utf-8", header_name=name).encode(linesep="\r\n"))


#: A header value the header registry's parse and fold give back unchanged:
#: printable ASCII words between single spaces, short of every policy's line.
_VERBATIM_RE = re.compile(r"[!-~]+(?: [!-~]+)*")


def _set_header(msg: EmailMessage, name: str, value: str) -> None:
    """``msg[name] = value``, without parsing a value that is written as it is.

    Setting a header parses it into the registry's structure only for it to be
    folded back at serialisation; a short ASCII value without an encoded-word
    comes back as it went in, so it is stored raw and written unchanged (and
    parsed, like any header, only if read). Anything else is set the usual way.
    """
    if len(name) + 2 + len(value) <= 78 and "=?" not in value and _VERBATIM_RE.fullmatch(value):
        msg.set_raw(name, value)
    else:
        msg[name] = value


def compose(spec: ReplySpec) -> EmailMessage:
    """Build the reply described by ``spec`` (SPEC section 5).

    The result serialises with ``as_bytes(policy=email.policy.SMTP)`` to the
    same bytes every time for the same spec.  Raises ValueError for an
    invalid ``to``/``sender`` address, a malformed ``message_id``, an
    unknown template or a missing template value.
    """
    msg = _build(spec)
    set_boundaries(msg, spec.message_id)
    return msg


def compose_wire(spec: ReplySpec) -> bytes:
    """``wire_bytes(compose(spec))``, serialised once.

    Each multipart gets its first boundary (salt 0) unchecked, and the
    message is serialised; the first boundaries are the ones :func:`compose`
    keeps unless one of them occurs in the content, and then it occurs in
    these bytes more often than its multipart's delimiters and its
    ``Content-Type`` parameter do. Only then is the message composed again
    the checked way, so the bytes are always those of ``compose``.
    """
    msg = _build(spec)
    expected: list[tuple[bytes, int]] = []
    for index, part in enumerate(msg.walk()):
        if part.is_multipart():
            first = boundary(spec.message_id, f"{index}", 0)
            part.set_boundary(first)
            # Its Content-Type parameter, one delimiter per part, the closing one.
            expected.append((first.encode(), len(part.get_payload()) + 2))
    raw = wire_bytes(msg)
    if all(raw.count(first) == count for first, count in expected):
        return raw
    return wire_bytes(compose(spec))


def _build(spec: ReplySpec) -> EmailMessage:
    """The message of ``spec`` without its multipart boundaries."""
    if spec.template == "status-unknown":
        # This answer must reveal nothing about the reference asked for.
        spec = replace(spec, status=None, findings=())
    to = check_address(spec.to, "to")
    sender = check_address(spec.sender, "sender")
    message_id = check_message_id(spec.message_id)
    language = normalise_language(spec.language)
    text, html = render(spec)

    msg = EmailMessage(policy=COMPOSE)
    _set_header(msg, "From", sender)
    _set_header(msg, "To", to)
    _set_text_header(msg, "Subject", subject_for(spec))
    date = spec.date or datetime.now(UTC)
    if date.tzinfo is None:
        date = date.replace(tzinfo=UTC)
    _set_header(msg, "Date", format_datetime(date.astimezone(UTC)))
    _set_header(msg, "Message-ID", message_id)
    parent = message_ids([spec.in_reply_to])
    if parent:
        _set_header(msg, "In-Reply-To", parent[0])
    refs = thread_references(spec.references, spec.in_reply_to)
    if refs:
        _set_header(msg, "References", " ".join(refs))
    auto = clean_header_text(spec.auto_submitted, 40).lower()
    _set_header(msg, "Auto-Submitted",
                auto if auto in ("auto-replied", "auto-generated") else "auto-replied")
    _set_header(msg, "X-Auto-Response-Suppress", "All")
    if spec.reference:
        _set_text_header(msg, "X-Pasts-Reference", clean_header_text(spec.reference, 60))
    if spec.status:
        _set_text_header(msg, "X-Pasts-Status", clean_header_text(spec.status, 40))
    codes = codes_header(spec.findings)
    if codes:
        _set_header(msg, "X-Pasts-Codes", codes)

    msg.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    msg.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    if spec.related:
        add_related(msg, spec.related)
    for filename, mime_type, data in spec.attachments:
        maintype, sep, subtype = clean_header_text(mime_type, 100).lower().partition("/")
        if (
            not sep
            or not maintype
            or not subtype
            or not re.fullmatch(r"[a-z0-9.+-]+", maintype + subtype)
        ):
            maintype, subtype = "application", "octet-stream"
        msg.add_attachment(
            bytes(data), maintype=maintype, subtype=subtype, filename=_clean_filename(filename)
        )
    # The stdlib adds MIME-Version to every part it creates; only the top
    # level needs it (RFC 2045 section 4).
    for part in msg.walk():
        if part is not msg:
            del part["MIME-Version"]
    # Set last: making a multipart moves every Content-* header into the
    # first body part.
    msg["Content-Language"] = language
    return msg

