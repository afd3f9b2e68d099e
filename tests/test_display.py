"""Control characters from mail are escaped in every human-facing output."""

from __future__ import annotations

import io
import logging

from intake.display import SafeFormatter, safe


def test_every_control_and_bidi_character_is_escaped_and_letters_kept() -> None:
    hostile = "Ērgļu\x00\t\r\n\x1b[2J\x7f\x85\x9b\u202a\u202e\u2066\u2069Māja"
    shown = safe(hostile)
    assert shown == ("Ērgļu\\x00\\x09\\x0d\\x0a\\x1b[2J\\x7f\\x85\\x9b"
                     "\\u202a\\u202e\\u2066\\u2069Māja")
    assert shown.isprintable()
    # Linear: a megabyte of escapes is one pass.
    assert len(safe("\x1b" * 1_000_000)) == 4_000_000


def test_log_lines_cannot_be_forged_but_tracebacks_stay_readable() -> None:
    buf = io.StringIO()
    handler = logging.StreamHandler(buf)
    handler.setFormatter(SafeFormatter("%(levelname)s %(message)s"))
    log = logging.getLogger("tests.display")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("mail from %s", "a@example.lv\r\nINFO approved EA-2026-000001")
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("failed: %s", "subject\x1b[2J")
    finally:
        log.removeHandler(handler)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "WARNING mail from a@example.lv\\x0d\\x0aINFO approved EA-2026-000001"
    assert lines[1] == "ERROR failed: subject\\x1b[2J"
    assert lines[2] == "Traceback (most recent call last):"
