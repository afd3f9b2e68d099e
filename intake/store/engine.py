"""Opening the store: engine, pragmas, migrations, sessions."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from intake.errors import ConfigurationError, TransientError
from intake.private import private_file

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

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


_REVISION = re.compile(r"^(down_revision|revision)\s*=\s*['\"]?([\w-]+|None)['\"]?", re.M)


def script_heads() -> frozenset[str]:
    """The head revisions of ``migrations/versions``, read from the files' text.

    Alembic loads every revision module to learn this; reading the two
    assignments is enough to tell an up-to-date database without it."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        found = dict((k, v) for k, v in _REVISION.findall(path.read_text(encoding="utf-8")))
        if "revision" in found:
            revisions.add(found["revision"])
        if found.get("down_revision", "None") != "None":
            parents.add(found["down_revision"])
    return frozenset(revisions - parents)


def alembic_config(engine: Engine) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

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

    def current_revisions(self) -> frozenset[str]:
        """The revisions the database says it is at (none before the first migration)."""
        with self.engine.connect() as conn:
            if not self.engine.dialect.has_table(conn, "alembic_version"):
                return frozenset()
            return frozenset(conn.execute(text("SELECT version_num FROM alembic_version"))
                             .scalars())

    def migrate(self) -> None:
        """Bring the schema to the newest revision; an up-to-date one is only checked
        (one query, Alembic is not even imported)."""
        if self.current_revisions() == script_heads():
            return
        from alembic import command

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
        # A pooled PostgreSQL connection may have been dropped by the server
        # (a restart, an idle timeout): pinged at checkout. A SQLite file
        # cannot drop one, and the ping was 5 statements of every message.
        engine = create_engine(url, future=True,
                               pool_pre_ping=not url.startswith("sqlite"))
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
