"""The web listener under attack: the real aiohttp listener on loopback, SQLite behind it."""

from __future__ import annotations

import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest

from intake.app.replies import now_utc
from intake.app.tokens import hash_token
from intake.config import parse_config
from intake.runtime import Runtime
from intake.store.models import Application, VerificationToken
from intake.web.server import BODY_SECONDS, GUESSES_PER_MINUTE, IDLE_SECONDS, WebServer, start_web

TOKEN = "T" * 20 + "ok-token-for-tests_0123"
UNKNOWN = "U" * 43


@dataclass
class Listener:
    web: WebServer
    runtime: Runtime

    @property
    def port(self) -> int:
        return self.web.port

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    config = parse_config({
        "database": {"url": f"sqlite:///{tmp_path / 'pasts.db'}"},
        "verification": {"listen": "127.0.0.1:0", "public_url": "http://127.0.0.1"},
        "smtp": {"url": f"maildir:{tmp_path / 'outbox'}", "from": "pasts@agency.test"},
    }, tmp_path / "config.toml")
    runtime = Runtime.open(config)
    with runtime.store.session() as s:
        app = Application(reference="EA-2026-000001", workflow="eaddress-production",
                          state="awaiting-verification", applicant_email="janis@ergli.example")
        s.add(app)
        s.flush()
        s.add(VerificationToken(application_id=app.id, email="janis@ergli.example",
                                person="janis", token_hash=hash_token(TOKEN),
                                expires_at=now_utc() + timedelta(hours=1)))
    web = start_web(runtime)
    try:
        yield Listener(web, runtime)
    finally:
        web.shutdown()
        runtime.close()


def exchange(port: int, request: bytes, *, timeout: float = 3.0,
             source: str = "127.0.0.1") -> bytes:
    """Send ``request`` raw and read until the server closes (or ``timeout``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                  source_address=(source, 0)) as sock:
        sock.sendall(request)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except TimeoutError:
            pass
        return data


def head_of(response: bytes) -> tuple[int, dict[str, str]]:
    head = response.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    status = int(head[0].split()[1])
    headers = {}
    for line in head[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


def get(port: int, path: str, *, method: str = "GET", body: bytes = b"",
        source: str = "127.0.0.1") -> tuple[int, dict[str, str]]:
    request = (f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    return head_of(exchange(port, request, source=source))


def assert_guarded(headers: dict[str, str]) -> None:
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert "form-action 'self'" in csp
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "no-referrer"
    # No product version: "pasts" at most, never aiohttp's or Python's.
    assert headers.get("server", "pasts") == "pasts"


def test_content_length_minus_one_is_refused_at_once_without_reading_the_body(
        listener: Listener) -> None:
    body_mb = 32
    before = _rss_bytes()
    with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as sock:
        sock.sendall(f"POST /verify/{TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n"
                     "\r\n".encode())
        started = time.monotonic()

        # Keep streaming a body the server must not read into memory.
        def stream() -> None:
            chunk = b"a" * 65536
            try:
                for _ in range(body_mb * 16):
                    sock.sendall(chunk)
            except OSError:
                pass

        sender = threading.Thread(target=stream, daemon=True)
        sender.start()
        response = sock.recv(65536)
        elapsed = time.monotonic() - started
        sender.join(timeout=10)
    status, headers = head_of(response)
    assert status == 400
    assert elapsed < 2.0
    assert_guarded(headers)
    assert _rss_bytes() - before < body_mb * 1024 * 1024 // 4


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * 4096


def test_non_numeric_content_length_gets_400_not_silence(listener: Listener) -> None:
    response = exchange(listener.port, f"POST /verify/{TOKEN} HTTP/1.1\r\nHost: x\r\n"
                                       "Content-Length: x\r\n\r\n".encode())
    status, headers = head_of(response)
    assert status == 400
    assert_guarded(headers)


def test_oversized_body_and_headers_are_refused(listener: Listener) -> None:
    status, headers = get(listener.port, f"/verify/{TOKEN}", method="POST",
                          body=b"confirm_other_person=yes&" + b"x" * 100_000)
    assert status == 413
    assert_guarded(headers)
    big = exchange(listener.port, f"GET /verify/{TOKEN} HTTP/1.1\r\nHost: x\r\n"
                                  f"X-Big: {'b' * 20000}\r\n\r\n".encode())
    status, headers = head_of(big)
    assert status in (400, 431)
    assert_guarded(headers)
    # The link was not used by any of it.
    with listener.runtime.store.session() as s:
        assert s.query(VerificationToken).one().status == "pending"


def test_a_body_that_trickles_is_answered_408_within_the_bound(listener: Listener) -> None:
    started = time.monotonic()
    response = exchange(listener.port, f"POST /verify/{TOKEN} HTTP/1.1\r\nHost: x\r\n"
                                       "Content-Length: 100\r\n\r\nconfirm".encode(),
                        timeout=BODY_SECONDS + 5)
    status, headers = head_of(response)
    assert status == 408
    assert time.monotonic() - started < BODY_SECONDS + 2
    assert_guarded(headers)


def test_half_open_connections_neither_block_the_listener_nor_stay_open(
        listener: Listener) -> None:
    socks = []
    try:
        for _ in range(300):
            sock = socket.create_connection(("127.0.0.1", listener.port), timeout=5)
            sock.sendall(f"GET /verify/{TOKEN} HTTP/1.1\r\nHost: x\r\n".encode())
            socks.append(sock)
        started = time.monotonic()
        with urllib.request.urlopen(listener.url(f"/verify/{TOKEN}"), timeout=5) as resp:
            assert resp.status == 200
            assert "Confirm" in resp.read().decode()
        assert time.monotonic() - started < 1.0

        # The server closes every half-open connection within its idle bound.
        deadline = time.monotonic() + IDLE_SECONDS + 5
        closed = 0
        for sock in socks:
            sock.settimeout(max(deadline - time.monotonic(), 0.1))
            try:
                data = sock.recv(65536)
                # Nothing, or at most a refusal page, before the close.
                while data:
                    data = sock.recv(65536)
                closed += 1
            except ConnectionResetError:
                closed += 1
            except TimeoutError:
                pass
        assert closed == 300
    finally:
        for sock in socks:
            sock.close()


def test_every_answer_carries_the_security_headers(listener: Listener) -> None:
    port = listener.port
    status, headers = get(port, f"/verify/{TOKEN}")
    assert status == 200
    assert_guarded(headers)
    status, headers = get(port, f"/verify/{UNKNOWN}")
    assert status == 404
    assert_guarded(headers)
    status, headers = get(port, "/nothing-here")
    assert status == 404
    assert_guarded(headers)
    status, headers = get(port, f"/verify/{TOKEN}", method="PUT")
    assert status == 405
    assert_guarded(headers)
    status, headers = head_of(exchange(port, b"GET / HTTP/1.1\r\nHost x\r\n\r\n"))
    assert status == 400
    assert_guarded(headers)
    # The 200 page still confirms by POST, as before.
    with urllib.request.urlopen(urllib.request.Request(
            listener.url(f"/verify/{TOKEN}"), data=b"", method="POST"), timeout=5) as resp:
        assert "Address confirmed" in resp.read().decode()


def test_token_guessing_is_throttled_per_client_address(listener: Listener) -> None:
    port = listener.port
    for n in range(GUESSES_PER_MINUTE):
        assert get(port, f"/verify/{n:0>43}")[0] == 404
    status, headers = get(port, f"/verify/{UNKNOWN}")
    assert status == 429
    assert_guarded(headers)
    # The guesser learns nothing more, not even about a real link.
    assert get(port, f"/verify/{TOKEN}")[0] == 429
    assert get(port, f"/verify/{TOKEN}", method="POST")[0] == 429
    # Another client address is not held up by it.
    assert get(port, f"/verify/{TOKEN}", source="127.0.0.2")[0] == 200
    with listener.runtime.store.session() as s:
        assert s.query(VerificationToken).one().status == "pending"


def test_urllib_sees_the_same_pages(listener: Listener) -> None:
    try:
        urllib.request.urlopen(listener.url(f"/verify/{UNKNOWN}"), timeout=5)
    except urllib.error.HTTPError as exc:
        assert exc.code == 404
        assert "Unknown link" in exc.read().decode()
    else:
        raise AssertionError("an unknown link must be 404")
