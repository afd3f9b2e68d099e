"""Log lines: text for a terminal, or one JSON object a line (``daemon.log_format``).

Which message a line is about comes from context variables, set where the
message is in hand (:func:`about`): the ledger row id, the application's
reference, the mailbox, the outbox row. A :class:`ContextFilter` on the
handler copies them onto every record logged in that context, in whatever
module the call is, so no log call has to pass them itself (a call may still
give ``extra={"ledger": ..., "reference": ...}``, which wins). Threads start
with an empty context, so one mailbox thread's message never labels another
thread's lines.

The JSON lines are written by python-json-logger (a maintained formatter that
handles exceptions, stack info and non-string values) rather than by hand:
each has ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message`` and,
when known, ``ledger``, ``reference``, ``mailbox`` and ``outbox``; a
traceback is in ``exc_info``. JSON escapes every control character, so a
value from mail cannot forge a second line.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pythonjsonlogger.json import JsonFormatter

from intake.display import SafeFormatter

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: The context fields, in the order a JSON line shows them.
FIELDS = ("ledger", "reference", "mailbox", "outbox")

_CONTEXT: dict[str, ContextVar[Any]] = {name: ContextVar(f"pasts_log_{name}", default=None)
                                        for name in FIELDS}

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextmanager
def about(**values: Any) -> Iterator[None]:
    """Label the log lines of this block (``ledger=12, reference="EA-2026-000001"``).

    ``None`` values leave a field as it is; the previous values come back at
    the end of the block.
    """
    for name in values:
        if name not in _CONTEXT:
            raise TypeError(f"unknown log context field {name!r}")
    # Every field is set (to itself when not given) so that what :func:`bind`
    # adds inside the block is undone at its end too.
    tokens = [(var, var.set(values.get(name) if values.get(name) is not None else var.get()))
              for name, var in _CONTEXT.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def bind(**values: Any) -> None:
    """Set fields for the rest of the current context (the reference, once it is known).

    Inside an :func:`about` block the block's end undoes them; an asyncio
    task (the outbox flush) has a context of its own, so they end with it.
    ``None`` clears a field.
    """
    for name, value in values.items():
        if name not in _CONTEXT:
            raise TypeError(f"unknown log context field {name!r}")
        _CONTEXT[name].set(value)


def reference_of(session: Session, application_id: int | None) -> str | None:
    """The reference of an application row, for :func:`bind` (None for none)."""
    if application_id is None:
        return None
    from sqlalchemy import select

    from intake.store.models import Application

    # An application of this transaction answers from the identity map; any
    # other is asked for its reference alone, not loaded whole (its verdicts
    # are kilobytes of JSON: the outbox sender loaded one per reply sent).
    loaded = session.identity_map.get(session.identity_key(Application, application_id))
    if isinstance(loaded, Application):
        return loaded.reference
    reference: str | None = session.scalar(
        select(Application.reference).where(Application.id == application_id))
    return reference


def current() -> dict[str, Any]:
    """The context fields set now."""
    return {name: var.get() for name, var in _CONTEXT.items() if var.get() is not None}


class ContextFilter(logging.Filter):
    """Copies the context fields onto each record (an explicit ``extra=`` wins)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, var in _CONTEXT.items():
            if getattr(record, name, None) is None:
                setattr(record, name, var.get())
        return True


class JsonLines(JsonFormatter):
    """One JSON object a line: time, level, logger, message, then the context fields."""

    def __init__(self) -> None:
        super().__init__("%(message)s", json_ensure_ascii=False)

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        super().add_fields(log_data, record, message_dict)
        rest = dict(log_data)
        log_data.clear()
        log_data["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(
            timespec="milliseconds").replace("+00:00", "Z")
        log_data["level"] = record.levelname
        log_data["logger"] = record.name
        log_data["message"] = rest.pop("message", record.getMessage())
        for name in FIELDS:
            value = rest.pop(name, None)
            if value is not None:
                log_data[name] = value
        # Anything else a call gave in ``extra=``, and the traceback.
        log_data.update(rest)


def formatter(log_format: str) -> logging.Formatter:
    """The formatter for ``daemon.log_format`` ("text" or "json")."""
    if log_format == "json":
        return JsonLines()
    return SafeFormatter(TEXT_FORMAT)


def configure(handler: logging.Handler, log_format: str) -> None:
    """Give ``handler`` the format and the context filter (idempotent)."""
    handler.setFormatter(formatter(log_format))
    if not any(isinstance(f, ContextFilter) for f in handler.filters):
        handler.addFilter(ContextFilter())
