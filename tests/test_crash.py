"""Crash tests: the daemon is killed with SIGKILL at exact points of a batch.

``PASTS_CRASH_AT=point:N`` makes the process send itself SIGKILL the N-th
time it reaches ``point`` (see ``intake.faults.crash_point``): a real
``kill -9``, no clean-up runs. After a restart every message must be
answered exactly once and nothing may be left in the inbox.
"""

from __future__ import annotations

import signal
from collections import Counter
from typing import Any

import pytest

from intake.demo.samples import application_mail
from tests.daemon_env import TO, Deployment, good_mail, message_id_of

pytestmark = pytest.mark.sections(verification={"required": False})

POINTS = ("after-persist", "after-claim", "before-commit", "before-move", "after-move",
          "after-send")


@pytest.fixture
def batch(deployment: Deployment, pki: Any) -> tuple[Deployment, list[str]]:
    dep = deployment
    mails = [
        good_mail(pki),
        application_mail(sender="peteris@example.lv", to=TO, subject="Kā pieteikties?"),
        application_mail(sender="anna@example.lv", to=TO, subject="Jautājums bez formas"),
        application_mail(sender="janis@ergli.example", to=TO, subject="Automatic reply",
                         headers={"Auto-Submitted": "auto-replied"}),
    ]
    for raw in mails:
        dep.deliver(raw)
    return dep, [message_id_of(raw) for raw in mails]


def run(dep: Deployment, *args: str, **env: str) -> int:
    proc = dep.spawn("run", "--once", *args, **env)
    _, err = proc.communicate(timeout=240)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(err.decode())
    return proc.returncode


@pytest.mark.parametrize("point", POINTS)
def test_killed_mid_batch_every_message_answered_exactly_once(
        batch: tuple[Deployment, list[str]], point: str) -> None:
    dep, ids = batch
    answerable = ids[:3]  # the last one is an auto-reply
    assert run(dep, PASTS_CRASH_AT=f"{point}:2") == -signal.SIGKILL
    assert run(dep) == 0
    assert run(dep) == 0  # a further run finds nothing to do

    assert dep.inbox() == []
    assert len(dep.inbox("Processed")) == len(ids)

    replies = dep.replies()
    by_thread: dict[str, set[str]] = {}
    for r in replies:
        by_thread.setdefault(str(r["In-Reply-To"]), set()).add(str(r["Message-ID"]))
    # Each answerable message got exactly one answer (one Message-ID); the
    # auto-reply got none.
    assert sorted(by_thread) == sorted(answerable)
    assert all(len(mids) == 1 for mids in by_thread.values())
    deliveries = Counter(str(r["Message-ID"]) for r in replies)
    if point == "after-send":
        # Killed after the server took the mail but before the outbox row was
        # marked sent: the same reply (same Message-ID) is sent once more.
        assert sorted(deliveries.values()) == [1, 1, 2]
    else:
        assert set(deliveries.values()) == {1}


def test_message_that_keeps_killing_the_daemon_is_quarantined(
        batch: tuple[Deployment, list[str]]) -> None:
    dep, ids = batch
    for _ in range(3):
        # Every attempt at the first message dies mid-processing.
        assert run(dep, PASTS_CRASH_AT="before-commit:1") == -signal.SIGKILL
    assert run(dep) == 0
    assert len(dep.inbox("Quarantine")) == 1
    assert dep.inbox() == []
    assert len(dep.inbox("Processed")) == len(ids) - 1
    # The loop carried on: the other answerable messages were answered.
    answered = {str(r["In-Reply-To"]) for r in dep.replies()}
    assert answered == set(ids[1:3])
    code, _ = dep.cli("digest")
    assert code == 0
