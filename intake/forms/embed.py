"""The embedded DejaVu Sans subset (``intake/forms/fonts/``): a simple TrueType font with a
``/Differences`` encoding of ASCII, Windows-1252, Latin-1 and the Latvian, Lithuanian and Polish
letters, so Latvian and Italian values display in every viewer; a character the font lacks is drawn
as ``?`` (the field value itself keeps it).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    IndirectObject,
    NameObject,
    NumberObject,
    PdfObject,
)

from intake.forms.fields import FONT_RESOURCE
from intake.forms.fonts import metrics

FONT_FILE = Path(__file__).with_name("fonts") / "DejaVuSans-pasts.ttf"


# ---------------------------------------------------------------------------
# The embedded font.


@lru_cache(maxsize=1)
def _char_codes() -> dict[str, int]:
    """Character -> code in the embedded font's encoding."""
    return {char: code for code, (char, _name, _w) in metrics.ENCODING.items()}


def _encode(text: str) -> bytes:
    """``text`` in the font's one-byte encoding; unknown characters degrade to ``?``.

    A character the font lacks is first tried without its accents (NFKD base
    letter), so that e.g. Romanian "ș" still shows as "s" rather than "?".
    """
    codes = _char_codes()
    out = bytearray()
    for char in unicodedata.normalize("NFC", text):
        code = codes.get(char)
        if code is None:
            base = unicodedata.normalize("NFKD", char)[:1]
            code = codes.get(base, codes["?"])
        out.append(code)
    return bytes(out)


def _text_width(encoded: bytes, size: float) -> float:
    widths = metrics.ENCODING
    return (
        sum(widths[b][2] if b in widths else metrics.MISSING_WIDTH for b in encoded) * size / 1000
    )


def _hex(encoded: bytes) -> str:
    return "<" + encoded.hex().upper() + ">"


def _to_unicode_cmap() -> bytes:
    """A ToUnicode CMap for the font, so text extraction maps codes back."""
    entries = [
        f"<{code:02X}> <{ord(char):04X}>"
        for code, (char, _n, _w) in sorted(metrics.ENCODING.items())
    ]
    chunks = [entries[i : i + 100] for i in range(0, len(entries), 100)]
    body = "".join(f"{len(c)} beginbfchar\n" + "\n".join(c) + "\nendbfchar\n" for c in chunks)
    return (
        "/CIDInit /ProcSet findresource begin\n12 dict begin\nbegincmap\n"
        "/CIDSystemInfo << /Registry (Adobe) /Ordering (UCS) /Supplement 0 >> def\n"
        "/CMapName /Adobe-Identity-UCS def\n/CMapType 2 def\n"
        "1 begincodespacerange\n<00> <FF>\nendcodespacerange\n"
        + body
        + "endcmap\nCMapName currentdict /CMap defineresource pop\nend\nend\n"
    ).encode("ascii")


def _stream(
    writer: PdfWriter, data: bytes, extra: Mapping[str, PdfObject] | None = None
) -> IndirectObject:
    stream = DecodedStreamObject()
    stream.set_data(data)
    for key, value in (extra or {}).items():
        stream[NameObject(key)] = value
    return writer._add_object(stream.flate_encode())


def _add_font(writer: PdfWriter) -> IndirectObject:
    """Add the DejaVu Sans subset as a simple TrueType font; return its reference."""
    ttf = FONT_FILE.read_bytes()
    font_file = _stream(writer, ttf, {"/Length1": NumberObject(len(ttf))})
    base_font = NameObject("/PSTSAA+" + metrics.FONT_NAME)
    descriptor = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/FontDescriptor"),
            NameObject("/FontName"): base_font,
            # Nonsymbolic: glyphs are found by name through the (3,1) cmap.
            NameObject("/Flags"): NumberObject(32),
            NameObject("/FontBBox"): ArrayObject(NumberObject(v) for v in metrics.BBOX),
            NameObject("/ItalicAngle"): NumberObject(0),
            NameObject("/Ascent"): NumberObject(metrics.ASCENT),
            NameObject("/Descent"): NumberObject(metrics.DESCENT),
            NameObject("/CapHeight"): NumberObject(metrics.CAP_HEIGHT),
            NameObject("/StemV"): NumberObject(80),
            NameObject("/MissingWidth"): NumberObject(metrics.MISSING_WIDTH),
            NameObject("/FontFile2"): font_file,
        }
    )
    first, last = min(metrics.ENCODING), max(metrics.ENCODING)
    differences = ArrayObject()
    previous = -2
    for code in range(first, last + 1):
        if code not in metrics.ENCODING:
            continue
        if code != previous + 1:
            differences.append(NumberObject(code))
        differences.append(NameObject("/" + metrics.ENCODING[code][1]))
        previous = code
    widths = ArrayObject(
        NumberObject(metrics.ENCODING[c][2] if c in metrics.ENCODING else 0)
        for c in range(first, last + 1)
    )
    font = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Font"),
            NameObject("/Subtype"): NameObject("/TrueType"),
            NameObject("/BaseFont"): base_font,
            NameObject("/FirstChar"): NumberObject(first),
            NameObject("/LastChar"): NumberObject(last),
            NameObject("/Widths"): widths,
            NameObject("/Encoding"): DictionaryObject(
                {
                    NameObject("/Type"): NameObject("/Encoding"),
                    NameObject("/Differences"): differences,
                }
            ),
            NameObject("/FontDescriptor"): writer._add_object(descriptor),
            NameObject("/ToUnicode"): _stream(writer, _to_unicode_cmap()),
        }
    )
    return writer._add_object(font)


def _font_resources(font: IndirectObject) -> DictionaryObject:
    return DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject(FONT_RESOURCE): font})}
    )
