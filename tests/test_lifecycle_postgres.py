"""Two daemons on one PostgreSQL run the reminder and expiry sweeps at once: one mail, not two.

Real PostgreSQL, Dovecot and SMTP server. Each "daemon" is a runtime of its
own (its own engine and connections). The sweeps are run both through the job
lock (``run_job``, as the schedulers do) and bare, at the same instant, so the
row locks (``FOR UPDATE SKIP LOCKED``) and the unique keys are what keeps the
second from sending, not the job lock alone.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from intake.app.expiry import send_expiry_notices
from intake.app.links import Verification
from intake.app.replies import Replies, now_utc
from intake.jobs import CertificateExpiryNotices, RemindVerificationLinks, run_job
from intake.store.models import (
    Application,
    CertificateNotice,
    IssuedCertificateRow,
    VerificationToken,
)
from tests.daemon_env import Deployment, good_mail, make_deployment, message_id_of, reference_of


def at_once(runtimes: list[Any], work: Callable[[Any], object]) -> list[object]:
    """Run ``work(rt)`` for each runtime in its own thread, released together."""
    meet = threading.Barrier(len(runtimes))
    results: list[object] = []
    errors: list[BaseException] = []

    def one(rt: Any) -> None:
        try:
            meet.wait(timeout=10)
            results.append(work(rt))
        except BaseException as exc:  # collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(rt,)) for rt in runtimes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == []
    return results


def subjects(dep: Deployment, word: str) -> list[Any]:
    return [r for r in dep.replies() if word in str(r["Subject"])]


def test_two_daemons_send_one_expiry_notice_per_threshold(
        tmp_path: Path, imap_account: Any, imap_mailbox_config: Any, smtp_server: Any, pki: Any,
        postgres_db: str) -> None:
    dep = make_deployment(tmp_path, imap_account, imap_mailbox_config, smtp_server, pki,
                          database={"url": postgres_db}, verification={"required": False})
    raw = good_mail(pki)
    dep.deliver(raw)
    assert dep.run_once() == 0
    ref = reference_of(dep.replies_to(message_id_of(raw))[0])
    assert dep.cli("approve", ref, "--user", "ilze")[0] == 0
    runtimes = [dep.runtime(), dep.runtime()]
    try:
        with runtimes[0].store.session() as s:
            cert = s.scalars(select(IssuedCertificateRow)).one()
            not_after, cert_id = cert.not_after, cert.id
        # Bare sweeps at the same instant, 30 days before expiry: one notice.
        counts = at_once(runtimes, lambda rt: send_expiry_notices(
            rt, now=not_after - timedelta(days=30)))
        assert sorted(counts) == [0, 1]  # type: ignore[type-var]

        # The schedulers' way, 5 days before expiry: one notice (the 7-day one).
        with runtimes[0].store.session() as s:
            s.get_one(IssuedCertificateRow, cert_id).not_after = now_utc() + timedelta(days=5)
        at_once(runtimes, lambda rt: run_job(rt, CertificateExpiryNotices()))
        assert dep.run_once() == 0
        assert len(subjects(dep, "sertifikāta derīgums")) == 2
        with runtimes[0].store.session() as s:
            assert [n.threshold_days for n in s.scalars(
                select(CertificateNotice).order_by(CertificateNotice.id))] == [30, 7]
    finally:
        for rt in runtimes:
            rt.store.dispose()


def test_two_daemons_remind_of_a_link_once(
        tmp_path: Path, imap_account: Any, imap_mailbox_config: Any, smtp_server: Any, pki: Any,
        postgres_db: str) -> None:
    dep = make_deployment(tmp_path, imap_account, imap_mailbox_config, smtp_server, pki,
                          database={"url": postgres_db})
    raw = good_mail(pki)
    dep.deliver(raw)
    assert dep.run_once() == 0
    ref = reference_of(dep.replies_to(message_id_of(raw))[0])
    runtimes = [dep.runtime(), dep.runtime()]
    try:
        with runtimes[0].store.session() as s:
            app = s.scalars(select(Application).where(Application.reference == ref)).one()
            link = s.scalars(select(VerificationToken).where(
                VerificationToken.application_id == app.id)).one()
            link.created_at = now_utc() - timedelta(hours=50)
            link.expires_at = now_utc() + timedelta(hours=22)

        def bare(rt: Any) -> int:
            with rt.store.session() as s:
                return Verification(rt.config, Replies(rt.config)).remind_due(s)

        assert sorted(at_once(runtimes, bare)) == [0, 1]  # type: ignore[type-var]
        at_once(runtimes, lambda rt: run_job(rt, RemindVerificationLinks()))
        assert dep.run_once() == 0
        assert dep.run_once() == 0
        [reminder] = subjects(dep, "Atgādinājums")
        assert reminder["X-Pasts-Reference"] == ref
    finally:
        for rt in runtimes:
            rt.store.dispose()


def test_purge_on_postgres_and_two_daemons_purging_at_once(
        tmp_path: Path, imap_account: Any, imap_mailbox_config: Any, smtp_server: Any, pki: Any,
        postgres_db: str) -> None:
    from intake.app.retention import PURGED, purge
    from tests.test_retention import age, stored, submit

    dep = make_deployment(tmp_path, imap_account, imap_mailbox_config, smtp_server, pki,
                          database={"url": postgres_db}, daemon={"retention_days": 30})
    ref = submit(dep, pki)
    assert dep.cli("reject", ref, "--user", "ilze", "--code", "CONTRACT-MISSING",
                   "--note", "no agreement")[0] == 0
    age(dep, ref, 45)
    before = stored(dep, ref)
    code, out = dep.cli("purge", "--dry-run")
    assert code == 0 and "would purge: 1 application(s), 1 raw mail(s)" in out
    assert stored(dep, ref) == before
    runtimes = [dep.runtime(), dep.runtime()]
    try:
        at_once(runtimes, purge)
    finally:
        for rt in runtimes:
            rt.store.dispose()
    after = stored(dep, ref)
    assert after["raw"] == [PURGED] and after["csr"] is None
    assert after["history"] == before["history"] and after["state"] == "rejected"
    code, shown = dep.cli("show", ref)
    assert code == 0 and "purged:" in shown
    assert "purged: 0 application(s)" in dep.cli("purge")[1]
