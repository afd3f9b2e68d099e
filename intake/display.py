"""Text for people: values from mail and forms, made safe for a terminal or a log.

A form value, a sender or a subject is written by whoever sent the mail. On
the staff terminal an ESC sequence in it could print a fake "state:
approved" or clear the screen, a CR or LF could add fake rows to ``pasts
list`` or a log, and a bidi override could show a name backwards. Every
human-facing output (``pasts list``, ``pasts show``, the text digest, log
lines that carry mail-supplied values) passes such values through
:func:`safe`, which writes each control character as a visible escape.
"""

from __future__ import annotations

import logging

#: C0 controls, DEL, C1 controls, and the Unicode formatting characters that
#: reorder or break text: bidi embeddings and overrides (U+202A-U+202E),
#: bidi isolates (U+2066-U+2069), the directional marks, and the line and
#: paragraph separators.
CONTROL_CODEPOINTS = (
    *range(0x00, 0x20),
    0x7F,
    *range(0x80, 0xA0),
    0x061C,
    0x200E,
    0x200F,
    0x2028,
    0x2029,
    *range(0x202A, 0x202F),
    *range(0x2066, 0x206A),
)


def _escape(cp: int) -> str:
    return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}"


_TABLE = {cp: _escape(cp) for cp in CONTROL_CODEPOINTS}


def safe(value: object) -> str:
    """``value`` as text with every control character escaped (``\\x1b``, ``\\u202e``).

    The work is one pass over the text, however hostile it is.
    """
    return str(value).translate(_TABLE)


class SafeFormatter(logging.Formatter):
    """Log lines with control characters escaped; a traceback below stays as it is.

    Log messages carry senders, subjects, addresses and exception texts from
    mail: a CR or LF in one must not forge a second log line.
    """

    def formatMessage(self, record: logging.LogRecord) -> str:  # logging's name
        return safe(super().formatMessage(record))
