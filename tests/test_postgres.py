"""PostgreSQL: migrations on a real server, and two workers answering each mail exactly once."""

from __future__ import annotations

import contextlib
import re
import subprocess
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select, text

from intake.demo.samples import application_mail, filled_form, make_csr
from intake.runner import Intake
from intake.sources import open_source
from intake.store.engine import open_store
from intake.store.models import Application, Outbox, ReceivedMessage, ReferenceCounter
from tests.daemon_env import EA, GOOD, TO, Deployment, make_deployment, message_id_of

TABLES = {"received_message", "application", "transition", "mail_link", "outbox",
          "reference_counter", "organisation", "alembic_version"}
GOOD_COUNT = 4
MISSING_COUNT = 8
WORKER_TIMEOUT = 240


def test_open_store_migrates_an_empty_database_and_again_is_a_no_op(postgres_db: str) -> None:
    store = open_store(postgres_db)
    try:
        assert store.engine.dialect.name == "postgresql"
        tables = set(inspect(store.engine).get_table_names())
        assert tables >= TABLES, TABLES - tables
        with store.engine.connect() as conn:
            head = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert len(head) == 1
        with store.session() as s:
            s.add(ReferenceCounter(prefix="EA", year=2024, last=7))
    finally:
        store.dispose()

    # Opening again migrates nothing and keeps the data.
    again = open_store(postgres_db)
    try:
        assert set(inspect(again.engine).get_table_names()) == tables
        with again.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() \
                == head
        with again.session() as s:
            assert s.scalars(select(ReferenceCounter.last)).all() == [7]
    finally:
        again.dispose()


def test_postgres_url_is_a_database_named_pasts(postgres_url: str) -> None:
    assert postgres_url.startswith("postgresql+psycopg://postgres@127.0.0.1:")
    assert postgres_url.endswith("/pasts")
    store = open_store(postgres_url, migrate=False)
    try:
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT current_database()")).scalar_one() == "pasts"
    finally:
        store.dispose()


def wait_all(procs: list[subprocess.Popen[bytes]]) -> list[tuple[int, str]]:
    """Wait for every process; return (exit code, stderr) of each; stragglers are killed."""
    results = []
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=WORKER_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        results.append((proc.returncode, err.decode(errors="replace")))
    return results


def test_two_workers_answer_every_application_exactly_once(
        tmp_path: Path, imap_account: Any, imap_mailbox_config: Any, smtp_server: Any, pki: Any,
        postgres_db: str) -> None:
    dep: Deployment = make_deployment(tmp_path, imap_account, imap_mailbox_config, smtp_server,
                                      pki, database={"url": postgres_db},
                                      verification={"required": False})

    mails: list[bytes] = []
    for n in range(GOOD_COUNT):
        values = {**GOOD, "solution_name": f"Ēdoc connector {n}", "contact_name": f"Jānis {n}"}
        form = pki.sign(filled_form(EA, values), signer="qualified", timestamp=True)
        mails.append(application_mail(
            sender=f"janis{n}@ergli.example", to=TO, subject=f"Pieteikums e-adresei {n}",
            form=form, csr=make_csr(GOOD["csr_common_name"], GOOD["org_name"])))
    csr = make_csr(GOOD["csr_common_name"], GOOD["org_name"])
    for n in range(MISSING_COUNT):
        # Form-less applications: each carries a CSR (bare words would be junk).
        mails.append(application_mail(sender=f"peteris{n}@example.lv", to=TO,
                                      subject=f"Kā pieteikties? {n}", csr=csr))
    # Interleave good and form-less mails so both workers meet both kinds.
    mails = mails[::2] + mails[1::2]
    inbound = [message_id_of(raw) for raw in mails]
    assert len(set(inbound)) == len(mails)
    for raw in mails:
        dep.deliver(raw)
    assert len(dep.inbox()) == len(mails)

    workers = [dep.spawn("run", "--once"), dep.spawn("run", "--once")]
    results = wait_all(workers)
    for code, err in results:
        assert code == 0, err
    [(code, err)] = wait_all([dep.spawn("run", "--once")])
    assert code == 0, err

    # The inbox is empty; every mail is in the processed folder exactly once
    # (only the worker holding the move lease moves it).
    assert dep.inbox() == []
    processed = [message_id_of(raw) for raw in dep.inbox("Processed")]
    assert Counter(processed) == Counter(inbound)

    # Every inbound Message-ID got exactly one reply, and no reply was sent twice.
    replies = [r for r in dep.replies() if r["In-Reply-To"] is not None]
    per_inbound = Counter(str(r["In-Reply-To"]) for r in replies)
    assert per_inbound == Counter(inbound), per_inbound
    reply_ids = Counter(str(r["Message-ID"]) for r in dep.replies())
    assert all(n == 1 for n in reply_ids.values()), reply_ids

    # Every application has its own reference; form-less mails are told so.
    by_inbound = {str(r["In-Reply-To"]): r for r in replies}
    references = [str(r["X-Pasts-Reference"]) for r in replies]
    assert all(re.fullmatch(r"EA-\d{4}-\d{6}", ref) for ref in references), references
    assert len(set(references)) == len(mails), references
    for raw in mails:
        reply = by_inbound[message_id_of(raw)]
        codes = str(reply["X-Pasts-Codes"] or "")
        if b"pieteikums.pdf" in raw:
            assert "FORM-MISSING" not in codes and "DUPLICATE" not in codes, codes
        else:
            assert "FORM-MISSING" in codes.split(","), codes

    # The database agrees: one application per mail, unique references without
    # a number beyond the counter, every ledger row final, every outbox row sent.
    store = open_store(postgres_db, migrate=False)
    try:
        with store.session() as s:
            stored = s.scalars(select(Application.reference)).all()
            counters = {(c.prefix, c.year): c.last for c in s.scalars(select(ReferenceCounter))}
            ledger = s.execute(select(ReceivedMessage.message_id, ReceivedMessage.status,
                                      ReceivedMessage.moved)).all()
            outbox = s.execute(select(Outbox.message_id, Outbox.status)).all()
    finally:
        store.dispose()
    assert len(stored) == len(mails)
    assert sorted(stored) == sorted(references)
    numbers: dict[tuple[str, int], list[int]] = {}
    for ref in stored:
        prefix, year, number = ref.split("-")
        numbers.setdefault((prefix, int(year)), []).append(int(number))
    for key, taken in numbers.items():
        assert len(taken) == len(set(taken)), (key, taken)
        assert max(taken) <= counters[key], (key, taken, counters)
        assert min(taken) >= 1
    assert sorted(m for m, _, _ in ledger) == sorted(inbound)
    assert {(status, moved) for _, status, moved in ledger} == {("processed", True)}, ledger
    assert all(status == "sent" for _, status in outbox), outbox
    assert Counter(m for m, _ in outbox) == reply_ids


def test_only_one_worker_moves_a_processed_message(
        tmp_path: Path, imap_account: Any, imap_mailbox_config: Any, smtp_server: Any, pki: Any,
        postgres_db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    dep = make_deployment(tmp_path, imap_account, imap_mailbox_config, smtp_server, pki,
                          database={"url": postgres_db})
    raw = application_mail(sender="peteris@example.lv", to=TO, subject="Kā pieteikties?")
    dep.deliver(raw)
    rt = dep.runtime()
    mailbox = rt.config.mailboxes[0]
    workers = [Intake(rt.config, rt.store, rt.verifier, worker=name) for name in ("a", "b")]
    moves: list[str] = []
    # Both workers reach the IMAP server at the same moment, as two daemons do
    # when the second one finds the outcome committed but the mail not yet moved.
    meet = threading.Barrier(2)
    try:
        with open_source(mailbox) as source_a, open_source(mailbox) as source_b:
            [message] = list(source_a.fetch())
            row_id = workers[0].record(mailbox, message)
            assert workers[0].process(mailbox, row_id, message) == "processed"
            assert workers[1].record(mailbox, message) == row_id
            assert workers[1].process(mailbox, row_id, message) == "processed"
            for name, source in (("a", source_a), ("b", source_b)):
                real_move = source.move

                def move(uid: str, folder: str, name: str = name, real_move: Any = real_move) -> None:
                    moves.append(name)
                    # A broken barrier means the other worker rightly did not move it.
                    with contextlib.suppress(threading.BrokenBarrierError):
                        meet.wait(timeout=5)
                    real_move(uid, folder)

                monkeypatch.setattr(source, "move", move)
            threads = [threading.Thread(target=w.finish_move, args=(src, row_id))
                       for w, src in zip(workers, (source_a, source_b), strict=True)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
    finally:
        rt.store.dispose()
    assert dep.inbox() == []
    assert len(moves) == 1, f"both workers moved ledger #{row_id}: {moves}"
    assert [message_id_of(m) for m in dep.inbox("Processed")] == [message_id_of(raw)]


# -- two workers at scale (issue 14, "Two workers, one message, one answer") --------------

RACE_SIGNED = 6
RACE_FORMLESS = 230
RACE_JUNK = 20
RACE_DUPLICATED_FORMLESS = 4


def test_two_workers_at_scale_with_duplicates_behind_their_originals_answer_each_once(
        tmp_path: Path, imap_account: Any, imap_mailbox_config: Any, smtp_server: Any, pki: Any,
        postgres_db: str) -> None:
    dep: Deployment = make_deployment(tmp_path, imap_account, imap_mailbox_config, smtp_server,
                                      pki, database={"url": postgres_db},
                                      verification={"required": False})
    csr = make_csr(GOOD["csr_common_name"], GOOD["org_name"])
    originals: list[bytes] = []
    for n in range(RACE_SIGNED):
        values = {**GOOD, "solution_name": f"Race connector {n}"}
        form = pki.sign(filled_form(EA, values), signer="qualified", timestamp=True)
        originals.append(application_mail(sender=f"signer{n}@firm{n}.example", to=TO,
                                          subject=f"Pieteikums {n}", form=form, csr=csr))
    for n in range(RACE_FORMLESS):
        originals.append(application_mail(sender=f"applicant{n}@office{n % 40}.example", to=TO,
                                          subject=f"Pieteikums bez formas {n}", csr=csr))
    for n in range(RACE_JUNK):
        originals.append(application_mail(sender=f"someone{n}@junk{n}.example", to=TO,
                                          subject=f"Sveiki {n}"))
    # Spread the signed ones through the inbox; each signed mail and a few
    # form-less ones are delivered twice, the copy right behind its original.
    signed, rest = originals[:RACE_SIGNED], originals[RACE_SIGNED:]
    step = len(rest) // RACE_SIGNED
    ordered: list[bytes] = []
    twice = set(range(0, len(rest), len(rest) // RACE_DUPLICATED_FORMLESS)[:RACE_DUPLICATED_FORMLESS])
    for i, raw in enumerate(rest):
        if i % step == 0 and i // step < RACE_SIGNED:
            ordered += [signed[i // step]] * 2
        ordered += [raw, raw] if i in twice else [raw]
    assert len(ordered) == len(originals) + RACE_SIGNED + RACE_DUPLICATED_FORMLESS
    for raw in ordered:
        dep.deliver(raw)
    inbound = Counter(message_id_of(raw) for raw in originals)

    results = wait_all([dep.spawn("run", "--once"), dep.spawn("run", "--once")])
    for code, err in results:
        assert code == 0, err[-5000:]
        # A job the other worker holds is skipped, a copy is filed: no error, no traceback.
        assert "Traceback" not in err, err[-5000:]
        assert " ERROR " not in err and "ERROR:" not in err, \
            [line for line in err.splitlines() if "ERROR" in line]

    # Both workers together answered every message exactly once; nothing is left.
    replies = [r for r in dep.replies() if r["In-Reply-To"] is not None]
    per_inbound = Counter(str(r["In-Reply-To"]) for r in replies)
    assert per_inbound == inbound, {k: v for k, v in per_inbound.items() if v != 1}
    assert dep.inbox() == []
    assert Counter(message_id_of(raw) for raw in dep.inbox("Processed")) == \
        Counter(message_id_of(raw) for raw in ordered)

    store = open_store(postgres_db, migrate=False)
    try:
        with store.session() as s:
            outbox = s.execute(select(Outbox.status)).scalars().all()
            apps = s.execute(select(Application.reference, Application.thread_root)).all()
            ledger = s.execute(select(ReceivedMessage.status, ReceivedMessage.outcome)).all()
    finally:
        store.dispose()
    assert Counter(outbox) == {"sent": len(originals)}
    # One application per signed and per form-less mail, none for a copy or for junk.
    assert len(apps) == RACE_SIGNED + RACE_FORMLESS
    assert len({root for _, root in apps}) == len(apps)
    copies = [o for status, o in ledger if status == "ignored"]
    assert len(copies) == RACE_SIGNED + RACE_DUPLICATED_FORMLESS, copies
    assert all("duplicate delivery of ledger #" in (o or "") for o in copies)

    # A third run finds nothing to do and sends nothing more.
    [(code, err)] = wait_all([dep.spawn("run", "--once")])
    assert code == 0, err
    assert len([r for r in dep.replies() if r["In-Reply-To"] is not None]) == len(originals)


def test_crl_refresh_in_two_daemons_at_once_takes_one_number(
        tmp_path: Path, imap_account: Any, imap_mailbox_config: Any, smtp_server: Any, pki: Any,
        postgres_db: str) -> None:
    from intake.app.certificates import refresh_crl_if_due
    from intake.store.models import KeyValue

    dep = make_deployment(tmp_path, imap_account, imap_mailbox_config, smtp_server, pki,
                          database={"url": postgres_db})
    runtimes = [dep.runtime(), dep.runtime()]
    meet = threading.Barrier(2)
    errors: list[BaseException] = []

    def refresh(rt: Any) -> None:
        try:
            meet.wait(timeout=10)
            refresh_crl_if_due(rt)
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=refresh, args=(rt,)) for rt in runtimes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert errors == []
        with runtimes[0].store.session() as s:
            number = s.get(KeyValue, "crl_number")
            assert number is not None and number.value == "1"
    finally:
        for rt in runtimes:
            rt.store.dispose()


def test_a_job_another_worker_holds_is_skipped_not_an_error(
        tmp_path: Path, imap_account: Any, imap_mailbox_config: Any, smtp_server: Any, pki: Any,
        postgres_db: str, caplog: pytest.LogCaptureFixture) -> None:
    from intake.jobs import RefreshCrl, job_lock, run_job

    dep = make_deployment(tmp_path, imap_account, imap_mailbox_config, smtp_server, pki,
                          database={"url": postgres_db})
    holder, other = dep.runtime(), dep.runtime()
    try:
        with job_lock(holder.store, "refresh-crl") as held:
            assert held
            with caplog.at_level("INFO"):
                assert run_job(other, RefreshCrl()) is False
        assert "job refresh-crl: another worker is running it; skipped" in caplog.text
        assert not [r for r in caplog.records if r.levelname == "ERROR"]
        # Once let go, the job runs.
        assert run_job(other, RefreshCrl()) is True
    finally:
        holder.store.dispose()
        other.store.dispose()


def test_a_second_outbox_flush_skips_rows_the_first_is_leasing(postgres_db: str) -> None:
    from intake.outbox import OutboxSender

    store = open_store(postgres_db)
    config: Any = None  # choosing rows needs no configuration
    try:
        with store.session() as s:
            for n in range(120):
                s.add(Outbox(key=f"k{n}", message_id=f"<m{n}@x>", sender="pasts@agency.test",
                             recipients=[f"a{n}@x.example"], to_addr=f"a{n}@x.example",
                             raw=b"x"))
        first = OutboxSender(config, store, None, worker="a")
        second = OutboxSender(config, store, None, worker="b")
        # Worker a is choosing its batch: its rows are locked, not yet leased.
        with store.engine.connect() as conn, conn.begin():
            locked = conn.execute(select(Outbox.id).order_by(Outbox.id).limit(50)
                                  .with_for_update()).scalars().all()
            # b neither waits for a's transaction nor takes a's rows.
            taken = second.due()
            assert taken and not set(taken) & set(locked)
        rest = first.due()
        assert not set(rest) & set(taken)
        everything = set(taken) | set(rest)
        while batch := first.due():
            everything |= set(batch)
        assert len(everything) == 120
    finally:
        store.dispose()



def test_two_workers_placing_answers_at_once_keep_the_bound_exact(
        tmp_path: Path, imap_account: Any, imap_mailbox_config: Any, smtp_server: Any, pki: Any,
        postgres_db: str) -> None:
    import time

    from intake.app.bound import place

    dep = make_deployment(tmp_path, imap_account, imap_mailbox_config, smtp_server, pki,
                          database={"url": postgres_db}, smtp={"rate_limit_per_hour": 1})
    config = dep.config
    store = open_store(postgres_db)

    def answer(n: int) -> Outbox:
        return Outbox(key=f"k{n}", message_id=f"<m{n}@x>", sender="pasts@agency.test",
                      recipients=["victim@target.example"], to_addr=f"victim+{n}@target.example",
                      raw=b"x")

    placed: list[str] = []

    def second() -> None:
        with store.session() as s:
            row = answer(2)
            place(config, s, row, trusted=False)
            s.add(row)
            placed.append(row.status)

    try:
        # Worker a has placed its answer (room for one) and not yet committed
        # when worker b places its own: b must see a's, not the room a took.
        with store.session() as s:
            row = answer(1)
            place(config, s, row, trusted=False)
            s.add(row)
            s.flush()
            other = threading.Thread(target=second)
            other.start()
            time.sleep(1.0)
        other.join(timeout=30)
        with store.session() as s:
            statuses = Counter(s.scalars(select(Outbox.status)).all())
    finally:
        store.dispose()
    assert placed == ["waiting"]
    assert statuses == {"pending": 1, "waiting": 1}


def test_two_workers_keep_the_bound_exact_and_drop_nothing(
        tmp_path: Path, imap_account: Any, imap_mailbox_config: Any, smtp_server: Any, pki: Any,
        postgres_db: str) -> None:
    dep = make_deployment(tmp_path, imap_account, imap_mailbox_config, smtp_server, pki,
                          database={"url": postgres_db})
    csr = make_csr(GOOD["csr_common_name"], GOOD["org_name"])
    mails = [application_mail(sender=f"Tester+{n}@Firm.example", to=TO, subject=f"Test {n}",
                              csr=csr) for n in range(30)]
    for raw in mails:
        dep.deliver(raw)
    results = wait_all([dep.spawn("run", "--once"), dep.spawn("run", "--once")])
    for code, err in results:
        assert code == 0, err[-5000:]
        assert "Traceback" not in err, err[-5000:]
    # One mailbox (tags and case folded), bound 20: exactly 20 now, 10 waiting.
    assert len(dep.replies()) == 20
    store = open_store(postgres_db, migrate=False)
    try:
        with store.session() as s:
            statuses = Counter(s.scalars(select(Outbox.status)).all())
    finally:
        store.dispose()
    assert statuses == {"sent": 20, "waiting": 10}
