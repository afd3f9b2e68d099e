"""Mail sources against a real Dovecot and a real Maildir++ tree (no mocks)."""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from intake.config import MailboxConfig
from intake.errors import MailboxError
from intake.sources import imap as mailbox_module
from intake.sources import open_source
from intake.sources.base import RawMessage
from intake.sources.imap import ImapSource, is_loopback, plan_transport
from intake.sources.maildir import MaildirSource
from tests.fixtures.dovecot import DovecotServer, ImapAccount, free_ports, start_dovecot

ConfigFactory = Callable[..., MailboxConfig]


def message(n: int, extra: bytes = b"") -> bytes:
    """A distinct CRLF message with 8-bit text, trailing blanks and an odd header fold."""
    head = (
        f"From: Applicant {n} <applicant{n}@example.org>\r\n"
        "To: pasts@example.test\r\n"
        f"Subject: application {n}\r\n"
        "X-Folded: one\r\n\t two   \r\n"
        f"Message-ID: <{n}.{uuid.uuid4().hex}@example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: 8bit\r\n"
        "\r\n"
    )
    return head.encode() + f"Labdien, ā č ē — {n}\r\ntrailing   \r\n".encode() + extra


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def wait_in_thread(src: Any, timeout: float) -> tuple[threading.Thread, dict[str, Any]]:
    """Run ``src.wait(timeout)`` in a thread; the dict gets its result and duration."""
    out: dict[str, Any] = {}

    def run() -> None:
        start = time.monotonic()
        try:
            out["result"] = src.wait(timeout)
        except BaseException as exc:  # reported to the test below.
            out["error"] = exc
        out["seconds"] = time.monotonic() - start

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, out


# -- connecting ------------------------------------------------------------------


def test_auto_uses_starttls_when_offered(
    imap_account: ImapAccount, imap_mailbox_config: ConfigFactory
) -> None:
    cfg = imap_mailbox_config(imap_account)
    assert cfg.starttls == "auto"
    with open_source(cfg) as src:
        assert isinstance(src, ImapSource)
        assert src.transport == "starttls"
        assert isinstance(src._client().client.sock, ssl.SSLSocket)
        assert list(src.fetch()) == []


def test_starttls_required(imap_account: ImapAccount, imap_mailbox_config: ConfigFactory) -> None:
    imap_account.server.append(imap_account.login, message(1))
    with open_source(imap_mailbox_config(imap_account, starttls="require")) as src:
        assert isinstance(src, ImapSource)
        assert src.transport == "starttls"
        assert isinstance(src._client().client.sock, ssl.SSLSocket)
        assert len(list(src.fetch())) == 1


def test_imaps_with_fixture_ca(
    imap_account: ImapAccount, imap_mailbox_config: ConfigFactory
) -> None:
    imap_account.server.append(imap_account.login, message(1))
    cfg = imap_mailbox_config(imap_account, scheme="imaps")
    assert cfg.port == imap_account.server.imaps_port
    with open_source(cfg) as src:
        assert isinstance(src, ImapSource)
        assert src.transport == "tls"
        assert isinstance(src._client().client.sock, ssl.SSLSocket)
        assert len(list(src.fetch())) == 1


def test_imaps_without_trusting_the_ca_fails(
    imap_account: ImapAccount, imap_mailbox_config: ConfigFactory
) -> None:
    cfg = imap_mailbox_config(imap_account, scheme="imaps", tls_ca=None)
    with pytest.raises(MailboxError) as err:
        open_source(cfg).connect()
    assert cfg.name in str(err.value)
    assert "CERTIFICATE_VERIFY_FAILED" in str(err.value)


def test_plain_on_loopback(imap_account: ImapAccount, imap_mailbox_config: ConfigFactory) -> None:
    imap_account.server.append(imap_account.login, message(1))
    with open_source(imap_mailbox_config(imap_account, starttls="off")) as src:
        assert isinstance(src, ImapSource)
        assert src.transport == "plain"
        assert not isinstance(src._client().client.sock, ssl.SSLSocket)
        assert len(list(src.fetch())) == 1


def test_transport_plan_refuses_clear_text_over_the_network(
    imap_mailbox_config: ConfigFactory, imap_account: ImapAccount
) -> None:
    remote = imap_mailbox_config(imap_account, host="mail.example.org")
    local = imap_mailbox_config(imap_account, host="localhost")
    assert plan_transport(remote, True) == "starttls"
    assert plan_transport(remote, None) == "starttls"
    assert plan_transport(local, False) == "plain"
    with pytest.raises(MailboxError) as err:
        plan_transport(remote, False)
    assert remote.name in str(err.value) and "STARTTLS" in str(err.value)
    off = imap_mailbox_config(imap_account, host="mail.example.org", starttls="off")
    assert plan_transport(off, True) == "plain"
    required = imap_mailbox_config(imap_account, host="localhost", starttls="require")
    assert plan_transport(required, False) == "starttls"
    assert plan_transport(imap_mailbox_config(imap_account, scheme="imaps"), False) == "tls"
    assert [is_loopback(h) for h in ("127.0.0.1", "127.8.9.1", "::1", "[::1]", "localhost")] == [
        True
    ] * 5
    assert [is_loopback(h) for h in ("10.0.0.1", "mail.example.org", "localhost.example.org")] == [
        False
    ] * 3


def test_wrong_password_names_the_mailbox_not_the_password(
    imap_account: ImapAccount, imap_mailbox_config: ConfigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = imap_mailbox_config(imap_account)
    assert cfg.password_env is not None
    wrong = "Wr0ng-" + uuid.uuid4().hex
    monkeypatch.setenv(cfg.password_env, wrong)
    with pytest.raises(MailboxError) as err:
        open_source(cfg).connect()
    text = str(err.value)
    assert cfg.name in text and "LOGIN" in text
    assert wrong not in text and imap_account.password not in text
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_connection_refused_is_a_mailbox_error(
    imap_account: ImapAccount, imap_mailbox_config: ConfigFactory
) -> None:
    (port,) = free_ports(1)
    cfg = imap_mailbox_config(imap_account, port=port)
    with pytest.raises(MailboxError) as err:
        open_source(cfg).connect()
    assert cfg.name in str(err.value) and "connecting" in str(err.value)


# -- fetching and moving ---------------------------------------------------------------


def test_fetch_returns_exact_bytes_oldest_first_unseen(
    imap_account: ImapAccount, imap_mailbox_config: ConfigFactory
) -> None:
    server, login = imap_account.server, imap_account.login
    sent = [message(n) for n in range(3)]
    # A message without a final line break must come back byte for byte too.
    sent.append(message(3, extra=b"no final newline"))
    uids = [server.append(login, raw) for raw in sent]
    with open_source(imap_mailbox_config(imap_account)) as src:
        got = list(src.fetch())
        assert [m.uid for m in got] == [str(u) for u in uids]
        assert [sha(m.raw) for m in got] == [sha(raw) for raw in sent]
        assert {m.uidvalidity for m in got} == {server.uidvalidity(login)} == {src.uidvalidity()}
        assert [m.raw for m in src.fetch(limit=2)] == sent[:2]
        assert list(src.fetch(limit=0)) == []
    # Nothing was marked \Seen by reading.
    assert all("\\Seen" not in flags for flags, _ in server.fetch_with_flags(login))


def test_message_over_max_bytes_is_fetched_header_only(
    imap_account: ImapAccount, imap_mailbox_config: ConfigFactory
) -> None:
    server, login = imap_account.server, imap_account.login
    small, big = message(1), message(2, extra=b"x" * 200_000)
    server.append(login, small)
    server.append(login, big)
    with open_source(imap_mailbox_config(imap_account)) as src:
        got = list(src.fetch(max_bytes=100_000))
    assert [m.oversized for m in got] == [None, len(big)]
    assert got[0].raw == small
    header = big[: big.index(b"\r\n\r\n") + 4]
    assert got[1].raw == header


def test_fetch_in_small_chunks_keeps_order(
    imap_account: ImapAccount, imap_mailbox_config: ConfigFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, login = imap_account.server, imap_account.login
    sent = [message(n) for n in range(7)]
    big = message(99, extra=b"x" * 3000 + b"\r\n")
    sent.insert(3, big)
    for raw in sent:
        server.append(login, raw)
    monkeypatch.setattr(mailbox_module, "FETCH_CHUNK_MESSAGES", 3)
    monkeypatch.setattr(mailbox_module, "FETCH_CHUNK_BYTES", 2000)
    monkeypatch.setattr(mailbox_module, "SIZE_CHUNK_UIDS", 2)
    with open_source(imap_mailbox_config(imap_account)) as src:
        assert isinstance(src, ImapSource)
        uids = [int(m.uid) for m in src.fetch()]
        chunks = list(src._chunks(uids, src._sizes(uids)))
        assert [m.raw for m in src.fetch()] == sent
    assert sum(chunks, []) == uids
    assert all(len(c) <= 3 for c in chunks)
    # The big message is fetched on its own.
    assert [uids[3]] in chunks


def test_folders_are_created(imap_account: ImapAccount, imap_mailbox_config: ConfigFactory) -> None:
    server, login = imap_account.server, imap_account.login
    assert server.folders(login) == ["INBOX"]
    cfg = imap_mailbox_config(imap_account, processed_folder="Done", quarantine_folder="Held")
    with open_source(cfg):
        pass
    assert sorted(server.folders(login)) == ["Done", "Held", "INBOX"]
    # A second connection finds them and creates nothing new.
    with open_source(cfg):
        pass
    assert sorted(server.folders(login)) == ["Done", "Held", "INBOX"]


def test_move_is_a_real_uid_move_that_expunges_nothing_else(
    imap_account: ImapAccount, imap_mailbox_config: ConfigFactory
) -> None:
    server, login = imap_account.server, imap_account.login
    a, b, c = message(1), message(2), message(3)
    uid_a, uid_b, uid_c = (server.append(login, raw) for raw in (a, b, c))
    # Another client flagged b \Deleted but did not expunge it.
    server.store_flags(login, uid_b, "\\Deleted")
    cfg = imap_mailbox_config(imap_account)
    with open_source(cfg) as src:
        assert isinstance(src, ImapSource)
        assert "MOVE" in src.capabilities
        src.move(str(uid_a), cfg.processed_folder)
        src.move(str(uid_c), cfg.quarantine_folder)
        # Moving again is harmless: the UID is simply gone.
        src.move(str(uid_a), cfg.processed_folder)
        assert [m.raw for m in src.fetch()] == [b]
    assert server.fetch_all(login, "Processed") == [a]
    assert server.fetch_all(login, "Quarantine") == [c]
    assert server.list_uids(login, "INBOX") == [uid_b]
    ((flags, raw),) = server.fetch_with_flags(login, "INBOX")
    assert raw == b and "\\Deleted" in flags


def test_move_errors_name_the_mailbox(
    imap_account: ImapAccount, imap_mailbox_config: ConfigFactory
) -> None:
    uid = imap_account.server.append(imap_account.login, message(1))
    cfg = imap_mailbox_config(imap_account)
    with open_source(cfg) as src:
        with pytest.raises(MailboxError) as err:
            src.move(str(uid), "No/Such/Folder")
        assert cfg.name in str(err.value) and "moving UID" in str(err.value)
        with pytest.raises(MailboxError):
            src.move("not-a-uid", cfg.processed_folder)
        # The connection is still usable after a refused command.
        assert [m.uid for m in src.fetch()] == [str(uid)]


@pytest.mark.parametrize(
    ("capabilities", "expunged"),
    [("IMAP4rev1 IDLE UIDPLUS", True), ("IMAP4rev1 IDLE", False)],
    ids=["uidplus", "bare"],
)
def test_move_without_move_capability(
    imap_mailbox_config: ConfigFactory, capabilities: str, expunged: bool
) -> None:
    with start_dovecot(f"imap_capability = {capabilities}\n") as server:
        login, password = server.user("fallback")
        account = ImapAccount(server, login, password)
        a, b, c = message(1), message(2), message(3)
        uid_a, uid_b, uid_c = (server.append(login, raw) for raw in (a, b, c))
        server.store_flags(login, uid_b, "\\Deleted")
        with open_source(imap_mailbox_config(account)) as src:
            assert isinstance(src, ImapSource)
            assert "MOVE" not in src.capabilities
            src.move(str(uid_a), "Processed")
            fetched = [m.raw for m in src.fetch()]
        assert server.fetch_all(login, "Processed") == [a]
        if expunged:
            # UID EXPUNGE removed a only; b, flagged \Deleted by someone else, stays.
            assert server.list_uids(login) == [uid_b, uid_c]
            assert fetched == [b, c]
        else:
            # No UIDPLUS: a stays flagged \Deleted, and deleted mail is not fetched.
            assert server.list_uids(login) == [uid_a, uid_b, uid_c]
            assert fetched == [c]


def test_uidvalidity_changes_after_reset(
    imap_account: ImapAccount, imap_mailbox_config: ConfigFactory
) -> None:
    server, login = imap_account.server, imap_account.login
    server.append(login, message(1), folder="Intake")
    cfg = imap_mailbox_config(imap_account, folder="Intake")
    with open_source(cfg) as src:
        before = src.uidvalidity()
        assert before == server.uidvalidity(login, "Intake")
        assert [m.uidvalidity for m in src.fetch()] == [before]
    server.reset_uidvalidity(login, "Intake")
    server.append(login, message(2), folder="Intake")
    with open_source(cfg) as src:
        after = src.uidvalidity()
        assert after != before
        assert after == server.uidvalidity(login, "Intake")
        assert [(m.uid, m.uidvalidity) for m in src.fetch()] == [("1", after)]


def test_reconnects_after_the_server_drops_the_connection(
    imap_account: ImapAccount, imap_mailbox_config: ConfigFactory
) -> None:
    imap_account.server.append(imap_account.login, message(1))
    with open_source(imap_mailbox_config(imap_account)) as src:
        assert isinstance(src, ImapSource)
        src._client().client.sock.shutdown(socket.SHUT_RDWR)
        with pytest.raises(MailboxError):
            list(src.fetch())
        assert not src.connected
        assert len(list(src.fetch())) == 1


# -- waiting ---------------------------------------------------------------------


def test_idle_wakes_on_append_from_another_connection(
    imap_account: ImapAccount, imap_mailbox_config: ConfigFactory
) -> None:
    server, login = imap_account.server, imap_account.login
    with open_source(imap_mailbox_config(imap_account)) as src:
        assert isinstance(src, ImapSource)
        assert "IDLE" in src.capabilities
        assert list(src.fetch()) == []
        thread, out = wait_in_thread(src, 30)
        time.sleep(0.5)
        raw = message(1)
        server.append(login, raw)
        thread.join(10)
        assert not thread.is_alive()
        assert out.get("error") is None
        assert out["result"] is True
        assert out["seconds"] < 5
        # The connection is back out of IDLE and usable.
        assert [m.raw for m in src.fetch()] == [raw]


def test_idle_times_out_without_mail(
    imap_account: ImapAccount, imap_mailbox_config: ConfigFactory
) -> None:
    with open_source(imap_mailbox_config(imap_account)) as src:
        start = time.monotonic()
        assert src.wait(1.5) is False
        assert 1.4 < time.monotonic() - start < 4


def test_wait_reports_mail_that_arrived_after_the_last_fetch(
    imap_account: ImapAccount, imap_mailbox_config: ConfigFactory
) -> None:
    server, login = imap_account.server, imap_account.login
    first = server.append(login, message(1))
    with open_source(imap_mailbox_config(imap_account)) as src:
        assert len(list(src.fetch())) == 1
        server.append(login, message(2))
        # The MOVE's answer carries the new EXISTS; wait must not sleep through it.
        src.move(str(first), "Processed")
        start = time.monotonic()
        assert src.wait(20) is True
        assert time.monotonic() - start < 3
        assert len(list(src.fetch())) == 1


@pytest.mark.parametrize("idle", [True, False], ids=["idle", "polling"])
def test_stop_event_ends_wait_promptly(
    imap_account: ImapAccount, imap_mailbox_config: ConfigFactory, idle: bool
) -> None:
    stop = threading.Event()
    cfg = imap_mailbox_config(imap_account, idle=idle, poll_seconds=60.0)
    with open_source(cfg, stop_event=stop) as src:
        thread, out = wait_in_thread(src, 60)
        time.sleep(0.3)
        stop.set()
        thread.join(5)
        assert not thread.is_alive()
        assert out.get("error") is None
        assert out["result"] is False
        assert out["seconds"] < 2.5
        # Once stopped, waits return at once, and the connection still works.
        assert src.wait(60) is False
        assert list(src.fetch()) == []


def test_polling_sleeps_poll_seconds_without_idle(
    imap_account: ImapAccount, imap_mailbox_config: ConfigFactory
) -> None:
    with open_source(imap_mailbox_config(imap_account, idle=False, poll_seconds=1.0)) as src:
        start = time.monotonic()
        assert src.wait(30) is False
        assert 0.9 < time.monotonic() - start < 3


def test_set_stop_event_after_construction(
    imap_account: ImapAccount, imap_mailbox_config: ConfigFactory
) -> None:
    stop = threading.Event()
    stop.set()
    with open_source(imap_mailbox_config(imap_account)) as src:
        src.set_stop_event(stop)
        start = time.monotonic()
        assert src.wait(30) is False
        assert time.monotonic() - start < 0.5


# -- maildir -----------------------------------------------------------------------


def maildir_config(root: Path, **overrides: Any) -> MailboxConfig:
    values: dict[str, Any] = {
        "name": "local-inbox",
        "url": f"maildir:{root}",
        "scheme": "maildir",
        "host": None,
        "port": None,
        "username": None,
        "folder": "",
        "path": root,
        "poll_seconds": 1.0,
    }
    values.update(overrides)
    return MailboxConfig(**values)


def deliver(
    root: Path, key: str, raw: bytes, mtime: float, sub: str = "new", info: str = ""
) -> Path:
    """Deliver like an MTA: write in tmp/, rename into new/ (or cur/ with info)."""
    tmp = root / "tmp" / key
    tmp.write_bytes(raw)
    target = root / sub / (key + info)
    os.rename(tmp, target)
    os.utime(target, (mtime, mtime))
    return target


def test_maildir_fetch_is_exact_and_oldest_first(tmp_path: Path) -> None:
    root = tmp_path / "inbox"
    with open_source(maildir_config(root)) as src:
        assert isinstance(src, MaildirSource)
        assert src.uidvalidity() == 0
        assert list(src.fetch()) == []
        now = time.time()
        # Bare LF, CRLF and a NUL-free binary tail: bytes are returned untouched.
        newest = deliver(root, "1000.a.host", b"Subject: c\n\nlf only\n", now)
        oldest = deliver(root, "1000.c.host", message(1), now - 100)
        middle = deliver(
            root, "1000.b.host", message(2) + bytes(range(1, 256)), now - 50, sub="cur", info=":2,S"
        )
        got = list(src.fetch())
        assert [m.uid for m in got] == ["1000.c.host", "1000.b.host", "1000.a.host"]
        assert [m.raw for m in got] == [p.read_bytes() for p in (oldest, middle, newest)]
        assert all(m.uidvalidity == 0 for m in got)
        assert [m.uid for m in src.fetch(limit=1)] == ["1000.c.host"]
        # Reading neither moved nor renamed anything.
        assert oldest.exists() and middle.exists() and newest.exists()


def test_maildir_move_to_maildirplusplus_subfolders(tmp_path: Path) -> None:
    root = tmp_path / "inbox"
    cfg = maildir_config(root)
    with open_source(cfg) as src:
        now = time.time()
        a = message(1)
        b = message(2)
        deliver(root, "1.a", a, now - 10)
        deliver(root, "2.b", b, now - 5, sub="cur", info=":2,S")
        src.move("1.a", cfg.processed_folder)
        src.move("2.b", cfg.quarantine_folder)
        src.move("1.a", cfg.processed_folder)  # Already gone: nothing happens.
        assert list(src.fetch()) == []
        with pytest.raises(MailboxError):
            src.move("2.b", "../escape")
    assert (root / ".Processed" / "new" / "1.a").read_bytes() == a
    assert (root / ".Quarantine" / "cur" / "2.b:2,S").read_bytes() == b
    for folder in (".Processed", ".Quarantine"):
        assert (root / folder / "maildirfolder").exists()
        assert {p.name for p in (root / folder).iterdir() if p.is_dir()} == {"new", "cur", "tmp"}
    assert list((root / "new").iterdir()) == [] and list((root / "cur").iterdir()) == []


def test_maildir_moves_of_a_fetched_backlog_list_the_inbox_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 12: moving each of n fetched messages must not list all n files again."""
    root = tmp_path / "inbox"
    cfg = maildir_config(root)
    now = time.time()
    with open_source(cfg) as src:
        for i in range(30):
            deliver(root, f"{i}.k", message(i), now - 100 + i)
        listings: list[int] = []
        real = src._entries
        monkeypatch.setattr(src, "_entries", lambda: listings.append(1) or real())
        for m in src.fetch():
            src.move(m.uid, cfg.processed_folder)
        assert len(listings) == 1
        # A message renamed since the fetch (flagged by a client) is still found.
        deliver(root, "late.k", message(99), now)
        fetched = list(src.fetch())
        os.rename(root / "new" / "late.k", root / "cur" / "late.k:2,S")
        src.move(fetched[0].uid, cfg.processed_folder)
    assert len(list((root / ".Processed" / "new").iterdir())) == 30
    assert (root / ".Processed" / "cur" / "late.k:2,S").exists()
    assert list((root / "new").iterdir()) == [] and list((root / "cur").iterdir()) == []


def test_maildir_wait_wakes_on_new_mail_and_on_stop(tmp_path: Path) -> None:
    root = tmp_path / "inbox"
    stop = threading.Event()
    with open_source(maildir_config(root, poll_seconds=30.0), stop_event=stop) as src:
        thread, out = wait_in_thread(src, 30)
        time.sleep(0.3)
        deliver(root, "3.c", message(3), time.time())
        thread.join(5)
        assert out["result"] is True and out["seconds"] < 3
        thread, out = wait_in_thread(src, 30)
        time.sleep(0.3)
        stop.set()
        thread.join(5)
        assert out["result"] is False and out["seconds"] < 2.5
    quiet = maildir_config(tmp_path / "other", poll_seconds=1.0)
    with open_source(quiet) as src:
        start = time.monotonic()
        assert src.wait(30) is False
        assert 0.9 < time.monotonic() - start < 3


def test_open_source_picks_the_class(
    tmp_path: Path, imap_mailbox_config: ConfigFactory, imap_account: ImapAccount
) -> None:
    assert isinstance(open_source(maildir_config(tmp_path / "m")), MaildirSource)
    assert isinstance(open_source(imap_mailbox_config(imap_account)), ImapSource)
    assert RawMessage("1", 5, b"secret body").__repr__().count("secret body") == 0


def test_dovecot_fixture_helpers(dovecot_server: DovecotServer) -> None:
    login, password = dovecot_server.user("helpers")
    assert dovecot_server.user("helpers") == (login, password)
    assert login.endswith("@example.test")
    uid1 = dovecot_server.append(login, message(1))
    uid2 = dovecot_server.append(login, message(2), folder="Other")
    assert dovecot_server.list_uids(login) == [uid1]
    assert dovecot_server.list_uids(login, "Other") == [uid2]
    before = dovecot_server.uidvalidity(login, "Other")
    dovecot_server.reset_uidvalidity(login, "Other")
    assert dovecot_server.uidvalidity(login, "Other") != before
    assert dovecot_server.list_uids(login, "Other") == []


def test_maildir_file_over_max_bytes_is_read_header_only(tmp_path: Path) -> None:
    big = message(7, extra=b"y" * 200_000)
    for sub in ("new", "cur", "tmp"):
        (tmp_path / "box" / sub).mkdir(parents=True)
    deliver(tmp_path / "box", "1.big", big, time.time())
    with open_source(maildir_config(tmp_path / "box")) as src:
        [got] = list(src.fetch(max_bytes=100_000))
        assert got.oversized == len(big)
        assert got.raw == big[: big.index(b"\r\n\r\n") + 4]
        [whole] = list(src.fetch())
        assert whole.raw == big and whole.oversized is None
