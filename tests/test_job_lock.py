"""Scheduled jobs hold a lock: of two daemons on one SQLite file, one runs a job at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

from intake.jobs import job_lock, lock_id
from intake.store.engine import open_store


def test_a_job_held_elsewhere_is_not_entered_and_is_free_again_after(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'pasts.db'}")
    try:
        with job_lock(store, "refresh-crl") as held:
            assert held
            # Another daemon (another open file description) does not get it.
            with job_lock(store, "refresh-crl") as other:
                assert other is False
            # Other jobs are not blocked by it.
            with job_lock(store, "staff-digest") as digest:
                assert digest
        with job_lock(store, "refresh-crl") as again:
            assert again
    finally:
        store.dispose()


def test_a_job_that_fails_lets_its_lock_go(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'pasts.db'}")
    try:
        with pytest.raises(RuntimeError), job_lock(store, "refresh-crl"):
            raise RuntimeError("boom")
        with job_lock(store, "refresh-crl") as held:
            assert held
    finally:
        store.dispose()


def test_lock_ids_are_stable_and_distinct() -> None:
    assert lock_id("refresh-crl") == lock_id("refresh-crl")
    assert lock_id("refresh-crl") != lock_id("staff-digest")
    assert -(2 ** 63) <= lock_id("refresh-crl") < 2 ** 63
