"""SPEC section 9 on the real listener: /healthz, /readyz, /metrics, the served CRL, JSON logs.

The listener is the real aiohttp one on loopback with a real SQLite file
behind it; the readiness of mailboxes is checked against a running daemon
(a subprocess) reading the real Dovecot, and the JSON log lines are that
daemon's.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from intake.app.replies import now_utc
from intake.config import parse_config
from intake.runtime import Runtime
from intake.store.models import Application, IssuedCertificateRow, KeyValue, Outbox, ReceivedMessage
from intake.web.health import ensure_current_crl
from intake.web.server import WebServer, start_web
from signing.testing.ca import make_test_ca
from tests.daemon_env import Deployment, free_port, good_mail, message_id_of, reference_of
from tests.test_web import assert_guarded, get

T = TypeVar("T")


@dataclass
class Listener:
    web: WebServer
    runtime: Runtime

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.web.port}{path}"


def fetch(url: str) -> tuple[int, dict[str, str], bytes]:
    try:
        with urllib.request.urlopen(url, timeout=20) as resp:
            return resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def wait_for(probe: Callable[[], T | None], timeout: float = 90.0) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError(f"not within {timeout} s")


def base_config(tmp_path: Path, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "database": {"url": f"sqlite:///{tmp_path / 'pasts.db'}"},
        "verification": {"listen": "127.0.0.1:0", "public_url": "http://127.0.0.1"},
        "smtp": {"url": f"maildir:{tmp_path / 'outbox'}", "from": "pasts@agency.test"},
    }
    data.update(extra)
    return data


@pytest.fixture
def make_listener(tmp_path: Path) -> Iterator[Callable[..., Listener]]:
    started: list[Listener] = []

    def make(**extra: Any) -> Listener:
        runtime = Runtime.open(parse_config(base_config(tmp_path, **extra),
                                            tmp_path / "config.toml"))
        listener = Listener(start_web(runtime), runtime)
        started.append(listener)
        return listener

    yield make
    for listener in started:
        listener.web.shutdown()
        listener.runtime.close()


def metric_values(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, parsed by prometheus_client's own parser."""
    values = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            values[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return values


# -- /healthz and /readyz --------------------------------------------------------------


def test_healthz_and_readyz_answer_with_the_security_headers(
        make_listener: Callable[..., Listener]) -> None:
    listener = make_listener()
    status, headers, body = fetch(listener.url("/healthz"))
    assert status == 200 and json.loads(body) == {"status": "ok"}
    assert_guarded(headers)

    status, headers, body = fetch(listener.url("/readyz"))
    ready = json.loads(body)
    assert status == 200, ready
    assert headers["content-type"].startswith("application/json")
    assert_guarded(headers)
    # Every check is named; those whose feature is not configured pass and say so.
    assert set(ready["checks"]) == {"database", "mailboxes", "outbox", "trusted_lists", "crl"}
    assert ready["ready"] is True and ready["failing"] == []
    assert ready["checks"]["crl"] == {"ok": True, "configured": False}
    assert ready["checks"]["trusted_lists"] == {"ok": True, "configured": False}
    assert ready["checks"]["mailboxes"] == {"ok": True, "configured": False}
    assert ready["checks"]["database"]["ok"] is True

    # An error page of the same listener carries them too, and so does a HEAD.
    status, headers = get(listener.web.port, "/nothing-here")
    assert status == 404
    assert_guarded(headers)
    status, headers = get(listener.web.port, "/metrics", method="HEAD")
    assert status == 200
    assert_guarded(headers)
    status, headers = get(listener.web.port, "/readyz", method="POST")
    assert status == 405
    assert_guarded(headers)


def test_readyz_names_the_outbox_when_a_reply_is_overdue(
        make_listener: Callable[..., Listener], database: dict[str, str]) -> None:
    listener = make_listener(database=database)
    store = listener.runtime.store
    with store.session() as s:
        # Due 50 minutes ago: late, but within the hour SPEC section 9 allows.
        s.add(Outbox(key="late", message_id="<late@pasts>", sender="pasts@agency.test",
                     recipients=["a@example.lv"], to_addr="a@example.lv", raw=b"x",
                     next_try_at=now_utc() - timedelta(minutes=50)))
        # Sent long ago: never counts.
        s.add(Outbox(key="done", message_id="<done@pasts>", sender="pasts@agency.test",
                     recipients=["a@example.lv"], to_addr="a@example.lv", raw=b"x",
                     status="sent", next_try_at=now_utc() - timedelta(days=3)))
    status, _headers, body = fetch(listener.url("/readyz"))
    assert status == 200, body

    with store.session() as s:
        s.add(Outbox(key="overdue", message_id="<overdue@pasts>", sender="pasts@agency.test",
                     recipients=["b@example.lv"], to_addr="b@example.lv", raw=b"x",
                     next_try_at=now_utc() - timedelta(minutes=61)))
    status, headers, body = fetch(listener.url("/readyz"))
    ready = json.loads(body)
    assert status == 503
    assert_guarded(headers)
    assert ready["ready"] is False and ready["failing"] == ["outbox"]
    assert ready["checks"]["outbox"]["overdue"] == 1
    assert "past due" in ready["checks"]["outbox"]["reason"]
    # The other checks are still reported.
    assert ready["checks"]["database"]["ok"] is True


# -- /metrics -------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    if request.param == "sqlite":
        return {"url": f"sqlite:///{tmp_path / 'pasts.db'}"}
    return {"url": str(request.getfixturevalue("postgres_db"))}


def test_metrics_parse_and_match_a_seeded_database(
        make_listener: Callable[..., Listener], database: dict[str, str]) -> None:
    listener = make_listener(database=database)
    now = now_utc()
    ledger = {"processed": 4, "ignored": 2, "quarantined": 1, "received": 3}
    replies = {"sent": 5, "failed": 2, "pending": 3, "waiting": 1}
    states = [("eaddress-production", "in-review")] * 3 + [
        ("eaddress-production", "incomplete"), ("api-access", "approved"),
        ("api-access", "in-review")]
    with listener.runtime.store.session() as s:
        n = 0
        for status, count in ledger.items():
            for _ in range(count):
                n += 1
                s.add(ReceivedMessage(mailbox="applications", uidvalidity=1, uid=str(n),
                                      message_id=f"<m{n}@x>", sha256=f"{n:064x}", raw=b"x",
                                      status=status))
        for status, count in replies.items():
            for i in range(count):
                # Two pending replies are due now; one is for later.
                due = now + timedelta(hours=1) if (status, i) == ("pending", 0) else now
                s.add(Outbox(key=f"{status}{i}", message_id=f"<{status}{i}@pasts>",
                             sender="pasts@agency.test", recipients=["a@example.lv"],
                             to_addr="a@example.lv", raw=b"x", status=status,
                             next_try_at=due - timedelta(minutes=10)))
        for i, (workflow, state) in enumerate(states):
            s.add(Application(reference=f"EA-2026-{i:06d}", workflow=workflow, state=state,
                              applicant_email="a@example.lv"))

    status, headers, body = fetch(listener.url("/metrics"))
    assert status == 200
    assert headers["content-type"].startswith("text/plain; version=")
    assert_guarded(headers)
    values = metric_values(body.decode())

    for outcome, count in ledger.items():
        assert values[("pasts_messages", (("outcome", outcome),))] == count
    for state, count in replies.items():
        assert values[("pasts_replies", (("status", state),))] == count
    assert values[("pasts_queue_depth", (("queue", "intake"),))] == 3
    # Pending and waiting replies due now (one pending is due in 50 minutes).
    assert values[("pasts_queue_depth", (("queue", "outbox"),))] == 3
    assert values[("pasts_queue_depth", (("queue", "review"),))] == 4
    assert values[("pasts_applications", (("state", "in-review"),
                                          ("workflow", "eaddress-production")))] == 3
    assert values[("pasts_applications", (("state", "approved"), ("workflow", "api-access")))] == 1
    assert 590 <= values[("pasts_outbox_oldest_due_seconds", ())] <= 700
    # The in-process families are there from the start (the histogram with its buckets).
    names = {name for name, _labels in values}
    assert "process_resident_memory_bytes" in names
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    assert families["pasts_verification_seconds"].type == "histogram"
    assert families["pasts_job_runs"].type == "counter"

    # The numbers are the database's at scrape time, not a copy made at start.
    with listener.runtime.store.session() as s:
        s.add(ReceivedMessage(mailbox="applications", uidvalidity=1, uid="99",
                              message_id="<m99@x>", sha256="f" * 64, raw=b"x",
                              status="quarantined"))
    values = metric_values(fetch(listener.url("/metrics"))[2].decode())
    assert values[("pasts_messages", (("outcome", "quarantined"),))] == 2

    # A second worker on the same database reports the same deployment numbers.
    other = make_listener(database=database)
    again = metric_values(fetch(other.url("/metrics"))[2].decode())
    for key, value in values.items():
        if key[0].startswith(("pasts_messages", "pasts_replies", "pasts_applications",
                              "pasts_queue_depth")):
            assert again[key] == value, key


# -- the CRL ----------------------------------------------------------------------------


def test_the_crl_is_served_at_the_path_of_crl_url_and_is_current(
        make_listener: Callable[..., Listener], tmp_path: Path) -> None:
    ca_cert, ca_key = make_test_ca(tmp_path / "ca")
    listener = make_listener(ca={"certificate": str(ca_cert), "key": str(ca_key),
                                 "crl": str(tmp_path / "ca" / "agency.crl"),
                                 "crl_url": "http://crl.agency.test/pki/agency.crl"})
    rt = listener.runtime
    # Before the daemon has written one: not ready, and the URL says it cannot serve.
    status, _h, body = fetch(listener.url("/readyz"))
    assert status == 503 and json.loads(body)["failing"] == ["crl"]
    assert fetch(listener.url("/pki/agency.crl"))[0] == 503

    with rt.store.session() as s:
        app = Application(reference="EA-2026-000001", workflow="eaddress-production",
                          state="restricted", applicant_email="a@example.lv")
        s.add(app)
        s.flush()
        s.add(IssuedCertificateRow(application_id=app.id, serial_hex="1a2b3c", subject="CN=x",
                                   not_before=now_utc(), not_after=now_utc() + timedelta(days=1),
                                   pem="", chain_pem="", revoked_at=now_utc(),
                                   revocation_reason="key_compromise"))
    assert ensure_current_crl(rt) is True  # what `pasts run` does at start
    assert ensure_current_crl(rt) is False  # current: not signed again

    status, headers, body = fetch(listener.url("/pki/agency.crl"))
    assert status == 200
    assert headers["content-type"] == "application/pkix-crl"
    assert_guarded(headers)
    crl = x509.load_der_x509_crl(body)
    ca = x509.load_pem_x509_certificate(ca_cert.read_bytes())
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(0x1A2B3C) is not None
    assert crl.next_update_utc is not None and crl.next_update_utc > now_utc()
    with rt.store.session() as s:
        kv = s.get(KeyValue, "crl_number")
        assert kv is not None
        number = int(kv.value)
    assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == number

    status, _h, body = fetch(listener.url("/readyz"))
    ready = json.loads(body)
    assert status == 200, ready
    assert ready["checks"]["crl"]["number"] == number

    # Another worker signed a newer CRL than the file this one serves: not current.
    with rt.store.session() as s:
        kv = s.get(KeyValue, "crl_number")
        assert kv is not None
        kv.value = str(number + 1)
    status, _h, body = fetch(listener.url("/readyz"))
    assert status == 503
    assert "newest signed" in json.loads(body)["checks"]["crl"]["reason"]
    assert ensure_current_crl(rt) is True
    assert fetch(listener.url("/readyz"))[0] == 200


# -- against the running daemon, real Dovecot ---------------------------------------------------


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    status, _h, body = fetch(f"http://127.0.0.1:{port}/readyz")
    return status, json.loads(body)


def listen_port(dep: Deployment) -> int:
    return int(dep.config.verification.listen.rsplit(":", 1)[1])


@pytest.mark.slow
@pytest.mark.sections(daemon={"log_format": "json"},
                      ca={"crl_url": "http://127.0.0.1/ca/agency.crl"})
def test_running_daemon_is_ready_counts_its_work_and_logs_json_lines(
        deployment: Deployment, pki: Any) -> None:
    raw = good_mail(pki)
    deployment.deliver(raw)
    daemon = deployment.spawn("run")
    port = listen_port(deployment)
    try:
        reply = wait_for(lambda: next(iter(deployment.replies()), None))
        ref = reference_of(reply)

        def ready() -> dict[str, Any] | None:
            try:
                status, body = readyz(port)
            except OSError:
                return None
            return body if status == 200 else None

        body = wait_for(ready, timeout=60)
        mailbox = body["checks"]["mailboxes"]["mailboxes"]["applications"]
        assert mailbox["ok"] and mailbox["limit_seconds"] == 1.5
        # Written at start (the scheduled refresh first runs an hour later), and served.
        assert body["checks"]["crl"]["ok"] and body["checks"]["crl"]["number"] >= 1
        status, headers, der = fetch(f"http://127.0.0.1:{port}/ca/agency.crl")
        assert status == 200 and headers["content-type"] == "application/pkix-crl"
        crl = x509.load_der_x509_crl(der)
        assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == \
            body["checks"]["crl"]["number"]

        values = metric_values(fetch(f"http://127.0.0.1:{port}/metrics")[2].decode())
        assert values[("pasts_messages", (("outcome", "processed"),))] == 1
        assert values[("pasts_verification_seconds_count", (("kind", "pdf"),))] >= 1
        assert values[("pasts_applications", (("state", "awaiting-verification"),
                                              ("workflow", "eaddress-production")))] == 1
        assert values[("pasts_mailbox_last_success_timestamp_seconds",
                       (("mailbox", "applications"),))] > time.time() - 60
        wait_for(lambda: metric_values(fetch(f"http://127.0.0.1:{port}/metrics")[2].decode())
                 .get(("pasts_replies", (("status", "sent"),))) == 1)
    finally:
        daemon.terminate()
        _out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err.decode()

    lines = [json.loads(line) for line in err.decode().splitlines() if line.strip()]
    assert lines and all({"time", "level", "logger", "message"} <= set(entry) for entry in lines)
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["time"]) for e in lines)
    mid = message_id_of(raw)
    decided = [e for e in lines if mid in e["message"] and e["logger"] == "intake.runner"]
    assert decided, lines
    with deployment.runtime() as rt, rt.store.session() as s:
        ledger_id = s.query(ReceivedMessage.id).filter_by(message_id=mid).scalar()
    assert decided[-1]["ledger"] == ledger_id
    assert decided[-1]["reference"] == ref
    assert decided[-1]["mailbox"] == "applications"
    sent = [e for e in lines if e["logger"] == "intake.outbox" and e["message"].startswith("sent")]
    assert sent and sent[0]["reference"] == ref and "outbox" in sent[0]
    # A line about nothing in particular carries no stale message fields.
    stopped = [e for e in lines if e["message"] == "pasts stopped"]
    assert stopped and "ledger" not in stopped[0] and "reference" not in stopped[0]


@pytest.mark.slow
def test_readyz_names_a_mailbox_that_cannot_be_polled(
        deployment: Deployment, imap_account: Any, imap_mailbox_config: Any) -> None:
    good = imap_mailbox_config(imap_account)
    closed = free_port()
    broken_url = re.sub(r":\d+/", f":{closed}/", good.url, count=1)
    assert broken_url != good.url
    config_text = deployment.config_path.read_text(encoding="utf-8")
    # A second mailbox, on a port nothing listens on.
    config_text += "\n".join([
        "[[mailbox]]", 'name = "support"', f'url = "{broken_url}"',
        f'password_env = "{good.password_env}"', f'tls_ca = "{good.tls_ca}"',
        'workflow = "eaddress-production"', "poll_seconds = 0.5", 'starttls = "require"', ""])
    deployment.config_path.write_text(config_text, encoding="utf-8")
    daemon = deployment.spawn("run")
    port = listen_port(deployment)
    try:
        def answered() -> tuple[int, dict[str, Any]] | None:
            try:
                status, body = readyz(port)
            except OSError:
                return None
            # Wait until the good mailbox has been polled: then only the broken one fails.
            mailboxes = body["checks"]["mailboxes"]["mailboxes"]
            return (status, body) if mailboxes["applications"]["ok"] else None

        status, body = wait_for(answered, timeout=60)
        assert status == 503
        assert body["failing"] == ["mailboxes"]
        support = body["checks"]["mailboxes"]["mailboxes"]["support"]
        assert support["ok"] is False and support["last_success"] is None
        assert "not polled successfully" in support["reason"]
        assert support.get("last_error")
        # Health is not readiness: the process runs.
        assert fetch(f"http://127.0.0.1:{port}/healthz")[0] == 200
    finally:
        daemon.terminate()
        _out, err = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, err.decode()


def test_readyz_and_metrics_follow_the_trusted_lists(
        make_listener: Callable[..., Listener], tmp_path: Path) -> None:
    from intake.trust import refresh_if_due
    from tests.fixtures.trustlist import TrustPki, build_lists

    lists = build_lists(TrustPki.create(), tmp_path / "lists")
    listener = make_listener(trust={"lotl": str(lists.lotl_path),
                                    "lotl_signers": [str(lists.lotl_signer_pem)],
                                    "cache_dir": str(tmp_path / "trust")})
    # Configured but never fetched: not ready, and the check says which list.
    status, _h, body = fetch(listener.url("/readyz"))
    ready = json.loads(body)
    assert status == 503 and ready["failing"] == ["trusted_lists"], ready
    assert ready["checks"]["trusted_lists"]["configured"] is True

    assert refresh_if_due(listener.runtime.config)
    status, _h, body = fetch(listener.url("/readyz"))
    ready = json.loads(body)
    assert status == 200, ready
    assert ready["checks"]["trusted_lists"]["lists"]["LV"]["fresh"] is True
    values = metric_values(fetch(listener.url("/metrics"))[2].decode())
    assert values[("pasts_trusted_list_fresh", (("territory", "LV"),))] == 1
    assert 0 <= values[("pasts_trusted_list_age_seconds", (("territory", "LV"),))] < 120


def test_log_format_is_checked_and_named(tmp_path: Path) -> None:
    from intake.errors import ConfigurationError

    with pytest.raises(ConfigurationError) as caught:
        parse_config(base_config(tmp_path, daemon={"log_format": "xml"}), tmp_path / "c.toml")
    assert "daemon.log_format" in str(caught.value)
    assert parse_config(base_config(tmp_path), tmp_path / "c.toml").daemon.log_format == "text"


def test_readyz_names_the_database_when_it_is_gone(
        make_listener: Callable[..., Listener], postgres_server: Any, postgres_db: str) -> None:
    listener = make_listener(database={"url": postgres_db})
    assert fetch(listener.url("/readyz"))[0] == 200
    name = postgres_db.rsplit("/", 1)[1]
    with postgres_server.connect() as conn:
        conn.autocommit = True
        conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    status, headers, body = fetch(listener.url("/readyz"))
    ready = json.loads(body)
    assert status == 503
    assert_guarded(headers)
    assert "database" in ready["failing"]
    assert ready["checks"]["database"]["ok"] is False
    assert name in ready["checks"]["database"]["reason"]
    # The process still runs.
    assert fetch(listener.url("/healthz"))[0] == 200


def test_readyz_answers_in_json_when_a_check_hangs(
        make_listener: Callable[..., Listener], monkeypatch: pytest.MonkeyPatch) -> None:
    from intake.web import health, operations

    listener = make_listener()
    # A database that accepts the connection and never answers, in effect.
    monkeypatch.setitem(health.CHECKS, "database", lambda _rt, _now: time.sleep(3) or {"ok": True})
    monkeypatch.setattr(operations, "READY_SECONDS", 0.5)
    started = time.monotonic()
    status, headers, body = fetch(listener.url("/readyz"))
    assert time.monotonic() - started < 2.5
    ready = json.loads(body)
    assert status == 503 and headers["content-type"].startswith("application/json")
    assert ready["ready"] is False and "database" in ready["failing"]
    assert "did not answer within" in ready["checks"]["database"]["reason"]
