"""Several messages judged at once (issue 12), end to end: real Dovecot, SMTP and PKI.

With ``limits.verify_workers = 2`` (or 3) the daemon prepares several mails in
bounded children while it decides them one at a time, in the order they
arrived. These tests check correctness of that path, never its speed: every
message answered once and in order, a kill with several children in flight
still safe (and costing no attempt to the mails only being prepared), a
hostile PDF still bounded.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from intake.demo.samples import application_mail, filled_form, make_csr
from intake.runner import DECIDE_BATCH
from intake.sources import open_source
from intake.store.engine import open_store
from intake.store.models import Application, ReceivedMessage
from signing.testing.ca import make_test_ca
from tests.daemon_env import (
    EA,
    GOOD,
    ROOT,
    TO,
    Deployment,
    good_mail,
    message_id_of,
    to_toml,
)


def codes_of(reply: Any) -> set[str]:
    return set(str(reply["X-Pasts-Codes"] or "").split(",")) - {""}


def backlog(pki: Any, n: int) -> list[bytes]:
    """``n`` applications from different senders, every third signed non-qualified."""
    csr = make_csr(GOOD["csr_common_name"], GOOD["org_name"])
    mails = []
    for i in range(n):
        sender = f"kontakts{i}@ergli.example"
        signer = "nonqualified" if i % 3 == 2 else "qualified"
        form = pki.sign(filled_form(EA, {**GOOD, "contact_email": sender}), signer=signer,
                        timestamp=True)
        mails.append(application_mail(sender=sender, to=TO, subject=f"Pieteikums {i}",
                                      form=form, csr=csr))
    return mails


def command_line_config(tmp_path: Path, pki: Any, *, signing: dict[str, Any] | None = None,
                        **sections: Any) -> Path:
    """A config.toml for the command line in a subprocess: maildirs, SQLite, the test PKI."""
    ca_cert, ca_key = make_test_ca(tmp_path / "ca")
    config = tmp_path / "config.toml"
    config.write_text(to_toml({
        "database": {"url": f"sqlite:///{tmp_path / 'pasts.db'}"},
        "mailbox": [{"name": "applications", "url": f"maildir:{tmp_path / 'inbox'}",
                     "workflow": "eaddress-production"}],
        "smtp": {"url": f"maildir:{tmp_path / 'outbox'}", "from": "pasts@agency.test"},
        "signing": {"trust_roots": [str(p) for p in pki.trust_roots], **(signing or {})},
        "ca": {"certificate": str(ca_cert), "key": str(ca_key), "crl": str(tmp_path / "crl.pem")},
        "digest": {"recipients": ["staff@agency.test"]},
        "daemon": {"state_dir": str(tmp_path / "state")},
        **sections,
    }), encoding="utf-8")
    return config


def ledger(dep: Deployment) -> list[ReceivedMessage]:
    store = open_store(dep.config.database.connect_url, migrate=False)
    try:
        with store.session() as s:
            return list(s.scalars(select(ReceivedMessage).order_by(ReceivedMessage.id)))
    finally:
        store.dispose()


def references_by_message(dep: Deployment) -> dict[str, str]:
    store = open_store(dep.config.database.connect_url, migrate=False)
    try:
        with store.session() as s:
            rows = s.execute(select(ReceivedMessage.message_id, Application.reference)
                             .join(Application, Application.id == ReceivedMessage.application_id))
            return {str(mid): str(ref) for mid, ref in rows}
    finally:
        store.dispose()


def run(dep: Deployment, **env: str) -> int:
    proc = dep.spawn("run", "--once", **env)
    _, err = proc.communicate(timeout=400)
    if proc.returncode not in (0, -signal.SIGKILL):
        raise AssertionError(err.decode())
    return proc.returncode


@pytest.mark.sections(verification={"required": False}, limits={"verify_workers": 2})
def test_every_message_of_a_backlog_is_answered_once_in_arrival_order(
        deployment: Deployment, pki: Any) -> None:
    dep = deployment
    mails = backlog(pki, 7)
    question = application_mail(sender="peteris@example.lv", to=TO, subject="Kā pieteikties?")
    mails.insert(3, question)
    for raw in mails:
        dep.deliver(raw)
    assert dep.run_once() == 0

    ids = [message_id_of(raw) for raw in mails]
    replies = dep.replies()
    assert Counter(str(r["In-Reply-To"]) for r in replies) == Counter(ids)
    assert dep.inbox() == [] and len(dep.inbox("Processed")) == len(mails)
    # Each non-qualified signature is caught, each qualified one is not.
    for i, raw in enumerate(m for m in mails if m is not question):
        (reply,) = dep.replies_to(message_id_of(raw))
        assert ("SIG-NOT-QUALIFIED" in codes_of(reply)) == (i % 3 == 2), codes_of(reply)
    # Decided in the order they arrived: the references count up with it.
    refs = references_by_message(dep)
    in_order = [refs[mid] for mid in ids if mid in refs]
    assert len(in_order) == len(mails) - 1
    assert in_order == sorted(in_order)
    assert all(row.attempts == 1 and row.moved for row in ledger(dep))


@pytest.mark.sections(verification={"required": False}, limits={"verify_workers": 3},
                      daemon={"max_attempts": 2})
@pytest.mark.parametrize("point", ["after-persist:3", "after-claim:2", "before-commit:2",
                                   "before-move:2"])
def test_killed_with_several_children_in_flight_every_message_answered_exactly_once(
        deployment: Deployment, pki: Any, point: str) -> None:
    dep = deployment
    mails = backlog(pki, 6)
    for raw in mails:
        dep.deliver(raw)
    assert run(dep, PASTS_CRASH_AT=point) == -signal.SIGKILL
    # Only the messages being decided (claimed together, DECIDE_BATCH at most)
    # have had an attempt, one each; the ones being prepared in the children
    # meanwhile have not.
    attempts = [row.attempts for row in ledger(dep)]
    assert max(attempts) <= 1 and sum(attempts) <= DECIDE_BATCH, attempts
    # With max_attempts = 2 no message may end in quarantine for this one kill.
    assert run(dep) == 0
    assert run(dep) == 0

    ids = [message_id_of(raw) for raw in mails]
    deliveries = Counter(str(r["In-Reply-To"]) for r in dep.replies())
    assert deliveries == Counter(ids)
    assert set(Counter(str(r["Message-ID"]) for r in dep.replies()).values()) == {1}
    assert dep.inbox() == [] and len(dep.inbox("Processed")) == len(mails)


@pytest.mark.sections(verification={"required": False}, limits={"verify_workers": 2},
                      daemon={"max_attempts": 2})
def test_a_crash_in_flight_again_and_again_quarantines_only_the_message_being_decided(
        deployment: Deployment, pki: Any) -> None:
    dep = deployment
    mails = backlog(pki, 4)
    for raw in mails:
        dep.deliver(raw)
    for _ in range(2):
        assert run(dep, PASTS_CRASH_AT="before-commit:1") == -signal.SIGKILL
    assert run(dep) == 0
    assert [message_id_of(m) for m in dep.inbox("Quarantine")] == [message_id_of(mails[0])]
    answered = {str(r["In-Reply-To"]) for r in dep.replies()}
    assert answered == {message_id_of(raw) for raw in mails[1:]}


@pytest.mark.sections(verification={"required": False},
                      limits={"verify_workers": 2, "verify_timeout_seconds": 0.001})
def test_a_verification_that_overruns_in_the_pool_is_answered_unreadable(
        deployment: Deployment, pki: Any) -> None:
    """Every form overruns its (tiny) bound inside the children: each mail is
    still answered once, FORM-UNREADABLE, and the mail behind it too."""
    dep = deployment
    mails = [good_mail(pki, sender=f"kontakts{i}@ergli.example") for i in range(3)]
    behind = application_mail(sender="peteris@example.lv", to=TO, subject="Kā pieteikties?")
    for raw in (*mails, behind):
        dep.deliver(raw)
    assert dep.run_once() == 0
    for raw in mails:
        (reply,) = dep.replies_to(message_id_of(raw))
        assert "FORM-UNREADABLE" in codes_of(reply)
    assert len(dep.replies_to(message_id_of(behind))) == 1
    assert dep.inbox() == []


def test_pasts_list_loads_neither_pyhanko_nor_the_mail_and_web_stacks(
        tmp_path: Path, pki: Any) -> None:
    """Issue 12: ``pasts list`` starts without the verifier (pyHanko, pypdf),
    Alembic (the schema is current) or the web listener (aiohttp)."""
    config = command_line_config(tmp_path, pki)
    probe = ("import sys\nfrom daemon import main\n"
             f"code = main(['--config', {str(config)!r}, 'list'])\n"
             "heavy = {'pyhanko', 'aiohttp', 'alembic', 'pypdf'}\n"
             "print(sorted({m.split('.')[0] for m in sys.modules} & heavy), code)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                           text=True, timeout=120, check=True)
    assert "no applications" in first.stdout
    # The second start finds the schema current: nothing heavy is imported.
    again = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                           text=True, timeout=120, check=True)
    assert again.stdout.strip().splitlines()[-1] == "[] 0", again.stdout


def test_run_once_judges_in_the_children_without_loading_pyhanko_in_the_daemon(
        tmp_path: Path, pki: Any) -> None:
    """Issue 12 (start-up): ``pasts run`` starts the verifiers' fork server before it
    imports the daemon, and the daemon's own process never loads pyHanko (the
    verdicts it decides on arrive from the children, as plain values: no PDF
    object, let alone the reader it belongs to, is unpickled in the daemon)
    nor pyHanko's certificate validator (the qualification facts are plain
    dataclasses of signing.status) nor APScheduler (its jobs run once); the
    CSRs are judged in the children too (the daemon's own check_csr refuses). Still every
    application is judged (a non-qualified signer is caught) and answered."""
    import mailbox as stdlib_mailbox

    inbox = stdlib_mailbox.Maildir(str(tmp_path / "inbox"), create=True)
    for mail in backlog(pki, 3):
        inbox.add(mail)
    config = command_line_config(
        tmp_path, pki, signing={"revocation": "soft-fail", "allow_fetching": False},
        verification={"required": False})
    # A CSR judged in the daemon's process would fail its decision.
    probe = ("import sys\nimport signing.csr\n"
             "def parsed_here(*_a, **_k):\n    raise AssertionError('a CSR parsed in the daemon')\n"
             "signing.csr.check_csr = parsed_here\n"
             "from daemon import main\n"
             f"code = main(['--config', {str(config)!r}, 'run', '--once'])\n"
             "print(sorted(m for m in sys.modules if m.startswith(('pyhanko', 'apscheduler'))),"
             " code)\n")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True,
                          text=True, timeout=300, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[] 0", done.stdout + done.stderr
    outbox = stdlib_mailbox.Maildir(str(tmp_path / "outbox"), create=False)
    replies = list(outbox.itervalues())
    assert len(replies) == 3
    caught = [r for r in replies if "SIG-NOT-QUALIFIED" in codes_of(r)]
    assert len(caught) == 1, [r["X-Pasts-Codes"] for r in replies]


@pytest.mark.sections(verification={"required": False}, limits={"verify_workers": 2})
def test_a_copy_in_the_same_decision_batch_rolls_it_back_and_each_is_decided_alone(
        deployment: Deployment, pki: Any, caplog: pytest.LogCaptureFixture) -> None:
    """Two copies of one mail under two UIDs, claimed and decided in one batch:
    the batch's transaction meets the unique identity of the second, is rolled
    back, and its messages are decided again one at a time on the claims they
    hold (no attempt counted twice): the first copy answered, the second filed
    as its duplicate, the others answered once, in their order."""
    dep = deployment
    mails = backlog(pki, 3)
    mails.insert(2, mails[1])
    for raw in mails:
        dep.deliver(raw)
    mailbox = dep.config.mailboxes[0]
    with dep.runtime() as runtime:
        intake = runtime.intake()
        with open_source(mailbox) as source:
            messages = list(source.fetch())
            rows = [intake.record(mailbox, message) for message in messages]
            with ThreadPoolExecutor(max_workers=2) as pool:
                futures = [pool.submit(intake.prepare, mailbox.name, m) for m in messages]
                wait(futures)
            with caplog.at_level(logging.INFO, logger="intake.runner"):
                statuses = intake.process_batch(mailbox, list(zip(rows, messages, futures,
                                                                  strict=True)))
    assert statuses == ["processed", "processed", "ignored", "processed"]
    assert "deciding them one at a time" in caplog.text
    assert dep.run_once() == 0

    answered = [message_id_of(raw) for i, raw in enumerate(mails) if i != 2]
    assert Counter(str(r["In-Reply-To"]) for r in dep.replies()) == Counter(answered)
    recorded = ledger(dep)
    assert recorded[2].outcome == f"duplicate delivery of ledger #{recorded[1].id}"
    assert [row.attempts for row in recorded] == [1, 1, 1, 1]
    refs = references_by_message(dep)
    assert [refs[mid] for mid in dict.fromkeys(answered)] == sorted(refs.values())
