"""Secrets and state: what pasts refuses at start, and the modes of what it creates."""

from __future__ import annotations

import logging
import mailbox
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from daemon import main
from intake.demo.samples import application_mail
from signing.testing.ca import make_test_ca
from tests.daemon_env import ROOT, Deployment, good_mail, to_toml


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, under which files are world-readable unless pasts says otherwise."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def write_config(tmp_path: Path, **sections: dict[str, Any]) -> Path:
    """A maildir-only deployment: SQLite, a maildir inbox, replies to a maildir."""
    data: dict[str, Any] = {
        "database": {"url": "sqlite:///var/pasts.db"},
        "mailbox": [{"name": "applications", "url": "maildir:var/mail/inbox",
                     "workflow": "eaddress-production"}],
        "smtp": {"url": "maildir:var/mail/outbox", "from": "pasts@agency.test"},
        "daemon": {"state_dir": "var/state"},
    }
    for name, values in sections.items():
        data.setdefault(name, {}).update(values)
    path = tmp_path / "config.toml"
    path.write_text(to_toml(data), encoding="utf-8")
    return path


def run_cli(config: Path, *args: str) -> int:
    return main(["--config", str(config), *args])


# -- configuration refused at start -------------------------------------------------


def test_password_inside_database_url_is_refused_naming_the_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, database={
        "url": "postgresql+psycopg://pasts:s3cret@127.0.0.1:5432/pasts"})
    assert run_cli(config, "list") == 2
    err = capsys.readouterr().err
    assert "database.url" in err and "password_env" in err
    assert "s3cret" not in err


def test_database_password_comes_from_password_env(
        postgres_db: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from intake.config import load_config
    from intake.runtime import Runtime

    config = write_config(tmp_path, database={"url": postgres_db,
                                              "password_env": "PASTS_TEST_DB_PASSWORD"})
    assert run_cli(config, "list") == 2
    assert "database.password_env" in capsys.readouterr().err

    monkeypatch.setenv("PASTS_TEST_DB_PASSWORD", "from-the-environment")
    assert run_cli(config, "list") == 0
    with Runtime.open(load_config(config)) as rt:
        assert rt.store.engine.url.password == "from-the-environment"
        assert rt.store.engine.dialect.name == "postgresql"


def test_ca_without_a_crl_is_refused_naming_the_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cert, key = make_test_ca(tmp_path / "ca")
    config = write_config(tmp_path, ca={"certificate": str(cert), "key": str(key)})
    assert run_cli(config, "run", "--once") == 2
    assert "ca.crl" in capsys.readouterr().err


def test_shipped_config_lists_crl_url_and_state_dir() -> None:
    from intake.config import load_config

    shipped = load_config(ROOT / "config.toml")
    assert shipped.ca.crl_url and shipped.ca.crl is not None
    assert shipped.daemon.state_dir == ROOT / "var" / "demo" / "state"
    text = (ROOT / "config.toml").read_text("utf-8")
    assert "crl_url =" in text and "state_dir =" in text and "password_env" in text


def test_unusable_state_dir_stops_pasts_run_naming_the_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_config(tmp_path, daemon={"state_dir": "var/not-a-directory"})
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "not-a-directory").write_text("a file")
    assert run_cli(config, "run", "--once") == 2
    assert "daemon.state_dir" in capsys.readouterr().err


def test_unset_smtp_password_env_stops_pasts_run_at_start(tmp_path: Path) -> None:
    config = write_config(tmp_path, smtp={"url": "smtp://pasts@127.0.0.1:1",
                                          "password_env": "PASTS_TEST_UNSET_SMTP_PASSWORD"})
    env = {k: v for k, v in os.environ.items() if k != "PASTS_TEST_UNSET_SMTP_PASSWORD"}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen([sys.executable, str(ROOT / "daemon.py"), "--config", str(config),
                             "run"], env=env, cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError("pasts run kept running with smtp.password_env unset") from None
    assert proc.returncode == 2
    assert b"smtp.password_env" in err


# -- file modes ------------------------------------------------------------------------


def modes_under(root: Path) -> dict[Path, int]:
    found = {root: stat.S_IMODE(root.stat().st_mode)}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            found[p] = stat.S_IMODE(p.stat().st_mode)
    return found


def deliver(tmp_path: Path, raw: bytes) -> Path:
    """Put a mail in the inbox as the MTA would (its own file, its own mode)."""
    inbox = tmp_path / "var" / "mail" / "inbox"
    inbox.parent.mkdir(parents=True, exist_ok=True)
    box = mailbox.Maildir(str(inbox), create=True)
    key = box.add(raw)
    return inbox / "new" / key


def test_fresh_deployment_creates_database_state_and_maildirs_private(
        tmp_path: Path, umask_022: None) -> None:
    config = write_config(tmp_path)
    delivered = deliver(tmp_path, application_mail(
        sender="peteris@example.lv", to="pasts@agency.test", subject="Kā pieteikties?"))
    assert run_cli(config, "run", "--once") == 0

    var = tmp_path / "var"
    db = var / "pasts.db"
    assert stat.S_IMODE(db.stat().st_mode) == 0o600
    for suffix in ("-wal", "-shm"):
        side = db.with_name(db.name + suffix)
        if side.exists():
            assert stat.S_IMODE(side.stat().st_mode) == 0o600, side
    assert stat.S_IMODE((var / "state").stat().st_mode) == 0o700
    outbox = modes_under(var / "mail" / "outbox")
    assert any(p.parent.name == "new" for p in outbox)  # the FORM-MISSING notice
    processed = modes_under(var / "mail" / "inbox" / ".Processed")
    for path, mode in {**outbox, **processed}.items():
        if path.name == delivered.name:
            continue  # the MTA's file, moved as it is
        want = 0o700 if path.is_dir() else 0o600
        assert mode == want, f"{path}: {oct(mode)}"


def test_existing_database_open_to_others_is_named_in_a_warning(
        tmp_path: Path, umask_022: None, caplog: pytest.LogCaptureFixture) -> None:
    config = write_config(tmp_path)
    db = tmp_path / "var" / "pasts.db"
    db.parent.mkdir(parents=True)
    db.touch(mode=0o644)
    os.chmod(db, 0o644)
    with caplog.at_level(logging.WARNING, logger="intake.private"):
        assert run_cli(config, "run", "--once") == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "intake.private"]
    assert any(str(db) in w and "-rw-r--r--" in w for w in warnings), warnings
    # pasts does not change the operator's file behind their back.
    assert stat.S_IMODE(db.stat().st_mode) == 0o644


# -- the verification link is composed when it is sent ---------------------------------


def _database_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in (db, db.with_name(db.name + "-wal")) if p.exists())


def test_outbox_holds_no_live_link_while_smtp_is_down_and_the_sent_link_works(
        deployment: Deployment, pki: Any) -> None:
    from email import message_from_bytes
    from email.policy import default as default_policy

    from sqlalchemy import select

    from intake.app.replies import now_utc
    from intake.app.tokens import LINK_KEY_FILE
    from intake.store.models import Outbox
    from intake.web.server import start_web
    from tests.test_e2e import fetch, verification_link

    deployment.smtp.stop()
    deployment.deliver(good_mail(pki))
    for _ in range(3):  # three attempts with the SMTP server down
        assert deployment.run_once() == 0
        with deployment.runtime() as rt, rt.store.session() as s:
            for row in s.scalars(select(Outbox)):
                row.next_try_at = now_utc() - timedelta(seconds=1)
    assert deployment.replies() == []

    with deployment.runtime() as rt, rt.store.session() as s:
        [row] = s.scalars(select(Outbox).where(Outbox.kind == "verification")).all()
        assert row.status == "pending" and row.attempts == 3
        queued = message_from_bytes(row.raw, policy=default_policy)
    texts = [part.get_content() for part in queued.walk()
             if part.get_content_maintype() == "text"]
    assert texts and all("/verify/link-filled-in-when-sent" in t for t in texts)
    db = deployment.directory / "pasts.db"
    while_down = _database_bytes(db)

    deployment.smtp.restart()
    assert deployment.run_once() == 0
    [reply] = deployment.replies()
    url = verification_link(reply)
    token = url.rsplit("/", 1)[1]
    assert len(token) >= 43
    # Neither the database while SMTP was down nor after sending holds the link.
    for stored in (while_down, _database_bytes(db)):
        assert token[:16].encode() not in stored
    # Once sent, the verification row keeps no text; other replies keep theirs.
    from intake.outbox import SCRUBBED

    with deployment.runtime() as rt, rt.store.session() as s:
        rows = s.scalars(select(Outbox)).all()
        assert {(r.kind == "verification", r.status, r.raw == SCRUBBED) for r in rows} <= {
            (True, "sent", True), (False, "sent", False), (False, "pending", False)}
        assert any(r.kind == "verification" for r in rows)
    key = deployment.directory / "var" / LINK_KEY_FILE
    assert stat.S_IMODE(key.stat().st_mode) == 0o600

    web = start_web(deployment.runtime())
    try:
        status, page = fetch(url)
        assert status == 200 and "Confirm" in page
        status, page = fetch(url, data=b"")
        assert status == 200 and "Address confirmed" in page
    finally:
        web.shutdown()
