"""Nothing an outsider sends can stall the daemon (issue 10), through the real path:
Dovecot, the SMTP server, SQLite and PostgreSQL, ``pasts run`` and its web listener.
"""

from __future__ import annotations

import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from intake.demo.samples import application_mail
from intake.mime.types import MAX_MESSAGE_ID_CHARS, MAX_SENDER_CHARS
from intake.store.engine import open_store
from intake.store.models import ReceivedMessage
from tests.daemon_env import TO, Deployment, make_deployment, message_id_of

LONG_ID = "<" + "m" * 1200 + "@example.lv>"
LONG_FROM = "x" * 400 + "@example.lv"


def run_once(dep: Deployment) -> subprocess.CompletedProcess[bytes]:
    proc = dep.spawn("run", "--once")
    out, err = proc.communicate(timeout=240)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_db"))
    return f"sqlite:///{tmp_path / 'pasts.db'}"


def test_long_from_and_message_id_are_stored_and_the_mail_behind_is_answered(
        tmp_path: Path, imap_account: Any, imap_mailbox_config: Any, smtp_server: Any,
        pki: Any, database: str) -> None:
    dep = make_deployment(tmp_path, imap_account, imap_mailbox_config, smtp_server, pki,
                          database={"url": database}, verification={"required": False})
    long_from = application_mail(sender=LONG_FROM, to=TO, subject="Kā pieteikties? (1)")
    plain = application_mail(sender="anna@example.lv", to=TO, subject="Kā pieteikties? (2)")
    long_id = plain.replace(message_id_of(plain).encode(), LONG_ID.encode(), 1)
    behind = application_mail(sender="peteris@example.lv", to=TO, subject="Kā pieteikties? (3)")
    for raw in (long_from, long_id, behind):
        dep.deliver(raw)

    result = run_once(dep)
    assert result.returncode == 0, result.stderr.decode()

    # Every mail was stored, whatever the length of what it carried, and left the inbox.
    assert dep.inbox() == []
    assert len(dep.inbox("Processed")) == 3
    store = open_store(database, migrate=False)
    try:
        with store.session() as s:
            rows = s.scalars(select(ReceivedMessage).order_by(ReceivedMessage.id)).all()
            assert [r.status for r in rows] == ["processed", "processed", "processed"]
            assert rows[0].sender is not None and len(rows[0].sender) <= MAX_SENDER_CHARS
            assert rows[0].sender.startswith("xxxx")
            assert rows[1].message_id is not None
            assert len(rows[1].message_id) <= MAX_MESSAGE_ID_CHARS
            assert rows[1].message_id.startswith("<mmmm")
            assert LONG_ID.encode() in rows[1].raw  # the bytes as they arrived
    finally:
        store.dispose()

    # The mail with the long Message-ID and the one behind are answered; the
    # over-long sender (no address can be 400 characters) cannot be.
    answered = {str(r["To"]) for r in dep.replies()}
    assert answered == {"anna@example.lv", "peteris@example.lv"}
    [reply] = [r for r in dep.replies() if str(r["To"]) == "anna@example.lv"]
    # The composer echoes no id over 250 characters (mailer.compose.message_ids).
    assert reply["In-Reply-To"] is None
    assert dep.replies_to(message_id_of(behind))

    # A second run finds nothing to do and answers nothing twice.
    result = run_once(dep)
    assert result.returncode == 0, result.stderr.decode()
    assert len(dep.replies()) == 2


def _terminate(proc: subprocess.Popen[bytes]) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err.decode(errors="replace")


# -- poison mail against the running daemon ------------------------------------

HEAD = "From: {sender}\r\nTo: pasts@agency.test\r\nSubject: {subject}\r\nMessage-ID: <{mid}@example.lv>\r\n"
BEGIN = b"-----BEGIN CERTIFICATE REQUEST-----\n"
#: A mail of 50 000 tiny MIME parts, each with its own Content-Type (2.3 MB):
#: the stdlib parser needs about 25 s for it, holding the GIL; in its bounded
#: child it is killed at 2 s.
TINY_PARTS = 50_000


def head(mid: str, subject: str = "x", sender: str = "mallory@example.lv") -> bytes:
    return HEAD.format(sender=sender, subject=subject, mid=mid).encode() + b"MIME-Version: 1.0\r\n"


def many_parts_mail() -> bytes:
    return (head("parts") + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
            + b"".join(b"--b\r\nContent-Type: text/plain; n=%d\r\n\r\nx\r\n" % n
                       for n in range(TINY_PARTS))
            + b"--b--\r\n")


def old_poison_mails() -> list[bytes]:
    """The shapes that froze main for seconds to hours (bench/bench_poison.py)."""
    word = b"=?utf-8?q?a?= "
    return [
        head("csr") + b"Content-Type: text/plain\r\n\r\n" + BEGIN * (1024 * 1024 // len(BEGIN)),
        head("html") + b"Content-Type: text/html\r\n\r\n" + b"<a " * (256 * 1024 // 3),
        (HEAD.format(sender="mallory@example.lv", subject="", mid="words").encode()
         .replace(b"Subject: ", b"Subject: " + word * (512 * 1024 // len(word)))
         + b"Content-Type: text/plain\r\n\r\nhi\r\n"),
    ]


class Prober(threading.Thread):
    """GETs the web listener every 50 ms and keeps the slowest answer's time."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            start = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=10) as resp:
                    resp.read()
            except urllib.error.HTTPError as exc:  # an answer all the same (404)
                exc.read()
            except OSError as exc:
                self.failures.append(repr(exc))
            self.latencies.append(time.monotonic() - start)
            time.sleep(0.05)


def wait_for(predicate: Any, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError("timed out waiting")


@pytest.mark.sections(verification={"required": False}, daemon={"max_attempts": 2},
                      limits={"parse_timeout_seconds": 2.0})
def test_poison_mail_is_quarantined_while_the_mail_behind_is_answered_and_web_answers(
        deployment: Deployment) -> None:
    dep = deployment
    poison = many_parts_mail()
    junk = old_poison_mails()
    behind = application_mail(sender="peteris@example.lv", to=TO, subject="Kā pieteikties?")
    for raw in (poison, *junk, behind):
        dep.deliver(raw)
    url = dep.config.verification.public_url.rstrip("/") + "/verify/" + "x" * 43
    daemon = dep.spawn("run")
    prober = Prober(url)
    try:
        # The listener is up before the first mail is read to the end.
        wait_for(lambda: _answers(url), timeout=60)
        prober.start()
        wait_for(lambda: _count(dep, "Quarantine") == 1, timeout=120)
        wait_for(lambda: dep.replies_to(message_id_of(behind)), timeout=60)
        # The old poison shapes are now plain mail: each is answered (FORM-MISSING).
        for raw in junk:
            wait_for(lambda raw=raw: dep.replies_to(message_id_of(raw)), timeout=60)
    finally:
        # The prober's last request ends before the daemon does: a request cut
        # by the shutdown would say nothing about the listener under load.
        prober.stop.set()
        prober.join(15)
        err = _terminate(daemon)
    assert daemon.returncode == 0, err

    assert [message_id_of(m) for m in dep.inbox("Quarantine")] == [message_id_of(poison)]
    assert dep.inbox() == []
    assert not dep.replies_to(message_id_of(poison))
    # The web listener never waited for the parse: every answer within a second.
    assert prober.failures == []
    assert len(prober.latencies) > 20
    print(f"web probes: {len(prober.latencies)}, slowest {max(prober.latencies):.3f} s")
    assert max(prober.latencies) < 1.0, sorted(prober.latencies)[-5:]

    store = open_store(dep.config.database.connect_url, migrate=False)
    try:
        with store.session() as s:
            row = s.scalars(select(ReceivedMessage)
                            .where(ReceivedMessage.message_id == message_id_of(poison))).one()
    finally:
        store.dispose()
    assert row.status == "quarantined" and row.attempts == 2
    assert "did not finish within 2 s" in (row.outcome or "")
    # Staff see who sent it, though it was never parsed.
    assert row.sender == "mallory@example.lv"


def _count(dep: Deployment, folder: str) -> int:
    try:
        return len(dep.inbox(folder))
    except AssertionError:  # the folder is made at the first move into it
        return 0


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


@pytest.mark.sections(verification={"required": False})
def test_a_failure_before_the_ledger_row_leaves_that_mail_and_answers_the_next(
        deployment: Deployment, monkeypatch: pytest.MonkeyPatch) -> None:
    import intake.ledger as processor

    dep = deployment
    first = application_mail(sender="anna@example.lv", to=TO, subject="Kā pieteikties? (1)")
    behind = application_mail(sender="peteris@example.lv", to=TO, subject="Kā pieteikties? (2)")
    dep.deliver(first)
    dep.deliver(behind)
    real = processor.ledger_headers

    def refuse(raw: bytes) -> Any:
        if message_id_of(first).encode() in raw:
            raise ValueError("a value the database refuses")
        return real(raw)

    monkeypatch.setattr(processor, "ledger_headers", refuse)
    dep.run_once()  # returns: the failure was this mail's, not the mailbox's
    assert dep.replies_to(message_id_of(behind))
    assert [message_id_of(m) for m in dep.inbox()] == [message_id_of(first)]

    monkeypatch.setattr(processor, "ledger_headers", real)
    dep.run_once()
    assert dep.replies_to(message_id_of(first)) and dep.inbox() == []
