"""Body text: the text of a leaf part in its charset, and HTML reduced to text.
"""

from __future__ import annotations

import contextlib
import re
from email.message import Message

from intake.mime.text import guess_charset
from intake.mime.types import MAX_HTML_CHARS

# ---------------------------------------------------------------------------
# Bodies.


#: Elements whose text is no part of what the mail says.
_HTML_SKIP = frozenset(["script", "style", "head", "title"])
#: Elements that start and end a line.
_HTML_BLOCKS = frozenset(
    [
        "br", "p", "div", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6",
        "blockquote", "pre", "hr", "section", "article",
    ]
)


def html_to_text(html: str) -> str:
    """Readable text of an HTML body (never raises): script and style dropped,
    blocks become lines.

    libxml2's HTML parser (lxml, already a dependency) reads in linear time
    whatever the markup; the stdlib's html.parser rescans an unterminated tag
    from every ``<`` (24 KB of ``<a <a`` took 31 s). Only the first
    :data:`MAX_HTML_CHARS` characters are read.
    """
    from lxml import etree
    from lxml import html as lxml_html

    parser = lxml_html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True,
                                  no_network=True)
    try:
        root = etree.fromstring(html[:MAX_HTML_CHARS].encode("utf-8", "replace"), parser)
    except Exception:  # An empty document, or one libxml2 gives up on.
        root = None
    if root is None:
        return ""
    parts: list[str] = []
    skip = 0
    for event, element in etree.iterwalk(root, events=("start", "end")):
        tag = element.tag if isinstance(element.tag, str) else ""
        if event == "start":
            if tag in _HTML_SKIP:
                skip += 1
            elif tag in _HTML_BLOCKS:
                parts.append("\n")
            if not skip and tag and element.text:
                parts.append(element.text)
            continue
        if tag in _HTML_SKIP:
            skip = max(0, skip - 1)
        elif tag in _HTML_BLOCKS and tag not in ("br", "hr"):  # void: one line break
            parts.append("\n")
        if not skip and element.tail:
            parts.append(element.tail)
    lines = [re.sub(r"[ \t\xa0]+", " ", line).strip() for line in "".join(parts).split("\n")]
    text = "\n".join(lines)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def _text_of(part: Message, payload: bytes, fallback: str | None = None) -> str:
    """Decode a text part's bytes by its declared charset, leniently.

    Without a declared charset, bytes that are not UTF-8 are read in
    ``fallback`` (the charset of the message's 8-bit headers), else in the
    charset guessed from the part itself.
    """
    declared = None
    with contextlib.suppress(Exception):
        declared = part.get_content_charset()
    if declared:
        try:
            return payload.decode(declared, errors="replace")
        except LookupError:
            pass
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return payload.decode(fallback or guess_charset(payload), errors="replace")
