"""Opening the store: engine, pragmas, migrations, sessions."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from intake.errors import ConfigurationError, TransientError
from intake.private import private_file

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cur = dbapi_connection.cursor()
    # WAL lets the outbox sender read while the intake loop writes; a busy
    # timeout makes a second process wait for the lock instead of failing.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def alembic_config(engine: Engine) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return cfg


class Store:
    """The database: an engine with migrations applied, and sessions."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self.sessions = sessionmaker(engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits on success and rolls back on error."""
        with self.sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def migrate(self) -> None:
        cfg = alembic_config(self.engine)
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()


def open_store(url: str, *, migrate: bool = True) -> Store:
    """Connect to ``url`` and bring the schema to the newest migration."""
    try:
        if url.startswith("sqlite:///"):
            path = url[len("sqlite:///"):].split("?", 1)[0]
            if path and path != ":memory:":
                # SQLite gives its -wal and -shm files the mode of the database
                # file: creating that 0600 (in a 0700 directory, if pasts makes
                # it) keeps all three private under any umask.
                private_file(Path(path))
        engine = create_engine(url, future=True, pool_pre_ping=True)
    except (ImportError, ValueError) as exc:
        # An unknown dialect or a missing driver is the operator's to fix.
        raise ConfigurationError(f"cannot use this database URL: {exc}", key="database.url") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    store = Store(engine)
    if migrate:
        try:
            store.migrate()
        except SQLAlchemyError as exc:
            raise TransientError(f"database {engine.url.render_as_string()}: {exc}") from exc
    return store
