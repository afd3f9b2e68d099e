"""What a handler needs of the running daemon: its configuration and its store.

:class:`intake.runtime.Runtime` is one; a handler (staff action, digest, certificate, job, page)
takes a :class:`Services` rather than the runtime, so it can be called with any pair and the
runtime stays the only module that knows them all.
"""

from __future__ import annotations

from typing import Protocol

from intake.config import Config
from intake.store.engine import Store


class Services(Protocol):
    @property
    def config(self) -> Config: ...

    @property
    def store(self) -> Store: ...
