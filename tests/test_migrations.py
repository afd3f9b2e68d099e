"""The Alembic migrations: they build exactly the tables intake.store.models declares, both ways."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, inspect, text

from intake.store.engine import alembic_config
from intake.store.models import Base


def _differences(engine: Engine) -> list[Any]:
    with engine.connect() as conn:
        return list(compare_metadata(MigrationContext.configure(conn), Base.metadata))


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def _head(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one_or_none()


def _check_round_trip(engine: Engine) -> None:
    cfg = alembic_config(engine)
    command.upgrade(cfg, "head")
    assert _head(engine) == ScriptDirectory.from_config(cfg).get_current_head()
    assert _differences(engine) == []
    assert _tables(engine) == set(Base.metadata.tables)
    assert "job_run" not in _tables(engine)

    # Down to 0005 removes what 0006 added (PEC receipts on the outbox).
    command.downgrade(cfg, "0005")
    assert _head(engine) == "0005"
    assert not {"pec_receipts", "pec_status"} & {
        c["name"] for c in inspect(engine).get_columns("outbox")}
    command.upgrade(cfg, "head")
    assert _differences(engine) == []

    # Down to 0004 removes what 0005 added (reminders, expiry notices, purge marks).
    command.downgrade(cfg, "0004")
    assert _head(engine) == "0004"
    assert "certificate_notice" not in _tables(engine)
    assert "reminded_at" not in {c["name"] for c in inspect(engine).get_columns("verification_token")}
    assert "purged_at" not in {c["name"] for c in inspect(engine).get_columns("application")}
    command.upgrade(cfg, "head")
    assert _differences(engine) == []

    # Down to 0003 brings the dropped table back as 0001 made it; up again drops it.
    command.downgrade(cfg, "0003")
    assert _head(engine) == "0003"
    assert "job_run" in _tables(engine)
    # The comparison is live: at 0003 it sees the table the models no longer have.
    assert "remove_table" in [d[0] for d in _differences(engine)]
    command.upgrade(cfg, "head")
    assert "job_run" not in _tables(engine)

    # All the way down leaves nothing, and all the way up matches the models again.
    command.downgrade(cfg, "base")
    assert _tables(engine) == set()
    command.upgrade(cfg, "head")
    assert _differences(engine) == []


def test_sqlite_migrations_match_the_models_up_and_down(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'pasts.db'}")
    try:
        _check_round_trip(engine)
    finally:
        engine.dispose()


@pytest.mark.slow
def test_postgres_migrations_match_the_models_up_and_down(postgres_db: str) -> None:
    engine = create_engine(postgres_db)
    try:
        _check_round_trip(engine)
    finally:
        engine.dispose()


def test_an_up_to_date_store_is_opened_without_running_alembic(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12: the revision is checked with one query; Alembic runs only to upgrade."""
    from intake.store.engine import open_store, script_heads

    url = f"sqlite:///{tmp_path / 'pasts.db'}"
    engine = create_engine(url)
    cfg = alembic_config(engine)
    # The heads read from the files' text are Alembic's own.
    assert script_heads() == set(ScriptDirectory.from_config(cfg).get_heads())
    command.upgrade(cfg, "0003")
    upgrades: list[str] = []
    real_upgrade = command.upgrade
    monkeypatch.setattr(command, "upgrade",
                        lambda *a, **k: upgrades.append(a[1]) or real_upgrade(*a, **k))
    open_store(url).dispose()  # behind: upgraded
    assert upgrades == ["head"]
    assert _head(engine) == ScriptDirectory.from_config(cfg).get_current_head()
    open_store(url).dispose()  # current: only checked
    open_store(url).dispose()
    assert upgrades == ["head"]
    engine.dispose()
