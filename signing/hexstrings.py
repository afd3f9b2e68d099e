"""Reading a PDF hex string in one pass while a verification runs (issue 12).

pyHanko's reader reads a hex string (``<...>``) one byte at a time through
``read_non_whitespace``; a signature's ``/Contents`` is one of 10 to 30 KiB of
digits, and reading it was about half of what validating a signed form with
pyHanko costs. :func:`fast_hex_strings` makes pyHanko's reader, inside the
``with`` block only (a context variable: other threads, tasks and callers of
pyHanko are untouched), read such a string with one search for its ``>`` and
one ``unhexlify``. It gives the same object pyHanko gives; anything it does
not handle exactly as pyHanko would (a ``%`` inside the string, which pyHanko
reads as a comment, a character that is no hex digit, a string left open at
the end of the file) is handed to pyHanko's own reader from the start, so the
errors stay pyHanko's too.
"""

from __future__ import annotations

import binascii
import contextvars
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any

from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.misc import PDF_WHITESPACE

_CHUNK = 64 * 1024
_active: contextvars.ContextVar[bool] = contextvars.ContextVar("pasts_fast_hex", default=False)
_pyhanko_reader: Callable[[IO[bytes]], Any] = generic.read_hex_string_from_stream


def read_hex_string(stream: IO[bytes]) -> Any:
    """pyHanko's ``read_hex_string_from_stream``, in one pass (see the module's docstring)."""
    start = stream.tell()
    if stream.read(1) != b"<":
        stream.seek(start)
        return _pyhanko_reader(stream)
    parts: list[bytes] = []
    while True:
        chunk = stream.read(_CHUNK)
        if not chunk:  # left open: pyHanko's reader raises its own error.
            stream.seek(start)
            return _pyhanko_reader(stream)
        end = chunk.find(b">")
        if end >= 0:
            parts.append(chunk[:end])
            break
        parts.append(chunk)
    body = b"".join(parts)
    digits = body.translate(None, PDF_WHITESPACE)
    if b"%" in body or digits.translate(None, generic.HEX_DIGITS):
        stream.seek(start)
        return _pyhanko_reader(stream)
    stream.seek(start + 1 + len(body) + 1, os.SEEK_SET)
    if len(digits) % 2:
        digits += b"0"
    return generic.pdf_string(binascii.unhexlify(digits))


def _dispatch(stream: IO[bytes]) -> Any:
    return read_hex_string(stream) if _active.get() else _pyhanko_reader(stream)


@contextmanager
def fast_hex_strings() -> Iterator[None]:
    """Within the block (this thread or task only), pyHanko reads hex strings in one pass."""
    # pyHanko's read_object looks the function up in its module at every call.
    if generic.read_hex_string_from_stream is not _dispatch:
        generic.read_hex_string_from_stream = _dispatch
    token = _active.set(True)
    try:
        yield
    finally:
        _active.reset(token)
