"""How long ``/metrics`` and ``/readyz`` take on a seeded database (SQLite or PostgreSQL).

Seeds ``--messages`` ledger rows, as many outbox rows and half as many
applications into a fresh database, starts the real web listener and times
``--rounds`` requests of each endpoint over HTTP (the scrape work runs on the
listener's thread pool). Prints the median and the worst.

Run: ``.venv/bin/python bench/bench_operations.py [--messages 20000] [--url postgresql+psycopg://…]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert

from intake.app.replies import now_utc
from intake.config import parse_config
from intake.runtime import Runtime
from intake.store.models import Application, Outbox, ReceivedMessage
from intake.web.server import start_web

STATUSES = ("processed", "processed", "processed", "ignored", "quarantined", "received")
REPLIES = ("sent", "sent", "sent", "failed", "pending", "waiting")
STATES = ("in-review", "incomplete", "approved", "awaiting-verification", "rejected")


def seed(rt: Runtime, n: int) -> None:
    now = now_utc()
    with rt.store.session() as s:
        s.execute(insert(ReceivedMessage), [
            {"mailbox": "applications", "uidvalidity": 1, "uid": str(i),
             "message_id": f"<m{i}@bench>", "sha256": f"{i:064x}", "raw": b"x" * 200,
             "status": STATUSES[i % len(STATUSES)], "received_at": now}
            for i in range(n)])
        s.execute(insert(Outbox), [
            {"key": f"k{i}", "message_id": f"<r{i}@pasts>", "sender": "pasts@agency.test",
             "recipients": ["a@example.lv"], "to_addr": "a@example.lv", "raw": b"x" * 200,
             "status": REPLIES[i % len(REPLIES)], "attempts": 0, "kind": "reply",
             "next_try_at": now - timedelta(minutes=i % 50), "created_at": now}
            for i in range(n)])
        s.execute(insert(Application), [
            {"reference": f"EA-2026-{i:06d}", "workflow": "eaddress-production",
             "state": STATES[i % len(STATES)], "applicant_email": "a@example.lv",
             "language": "en", "addresses": [], "form_values": {}, "verdicts": {},
             "codes": [], "passed": [], "extra": {}, "created_at": now, "updated_at": now}
            for i in range(n // 2)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--url", help="database URL (default: a SQLite file in a temporary dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.url or f"sqlite:///{Path(tmp) / 'pasts.db'}"
        config = parse_config({
            "database": {"url": url},
            "verification": {"listen": "127.0.0.1:0", "public_url": "http://127.0.0.1"},
            "smtp": {"url": f"maildir:{Path(tmp) / 'outbox'}", "from": "pasts@agency.test"},
        }, Path(tmp) / "config.toml")
        rt = Runtime.open(config)
        started = time.perf_counter()
        seed(rt, args.messages)
        print(f"{rt.store.engine.dialect.name}: seeded {args.messages} messages, "
              f"{args.messages} replies, {args.messages // 2} applications in "
              f"{time.perf_counter() - started:.1f} s")
        web = start_web(rt)
        try:
            for path in ("/metrics", "/readyz"):
                times = []
                for _ in range(args.rounds):
                    started = time.perf_counter()
                    try:
                        with urllib.request.urlopen(f"http://127.0.0.1:{web.port}{path}",
                                                    timeout=30) as resp:
                            resp.read()
                    except urllib.error.HTTPError as exc:  # /readyz: 503 is an answer
                        exc.read()
                    times.append(time.perf_counter() - started)
                print(f"{path:<9} median {statistics.median(times) * 1000:7.1f} ms, "
                      f"worst {max(times) * 1000:7.1f} ms ({args.rounds} requests)")
        finally:
            web.shutdown()
            rt.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
