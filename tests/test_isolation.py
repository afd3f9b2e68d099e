"""Verification in child processes: same verdicts, and runaway work is stopped.

Real child processes (through the fork server) verify real signed forms of the
test PKI; nothing is mocked.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from intake.config import parse_config
from intake.errors import ConfigurationError
from signing.isolation import IsolatedVerifier, VerifierCrashed
from signing.status import UnreadableInput
from signing.testing.pki import QUALIFIED_PERSONAL_CODE
from signing.verifier import InProcessVerifier, Verifier
from tests.fixtures.pki import PkiFixture
from tests.judged import verifier_codes, verifier_ok


@pytest.fixture
def isolated(pki: PkiFixture) -> Iterator[IsolatedVerifier]:
    verifier = IsolatedVerifier(pki.settings(), memory_bytes=1536 * 1024 * 1024)
    yield verifier
    verifier.close()


def test_both_verifiers_meet_the_verifier_protocol(
        pki: PkiFixture, isolated: IsolatedVerifier) -> None:
    """Callers (intake's pipeline) hold either one as a Verifier; both answer alike."""
    here = InProcessVerifier(pki.settings())
    for verifier in (here, isolated):
        assert isinstance(verifier, Verifier)
    signed = pki.sign(pki.form_pdf())
    assert verifier_codes(isolated.verify_pdf_sync(signed)) == verifier_codes(here.verify_pdf_sync(signed)) == ()


def test_verdict_is_the_in_process_verdict(pki: PkiFixture, isolated: IsolatedVerifier) -> None:
    for signed in (pki.sign(pki.form_pdf()), pki.sign(pki.form_pdf(), "nonqualified")):
        here = InProcessVerifier(pki.settings()).verify_pdf_sync(signed)
        there = isolated.verify_pdf_sync(signed)
        assert verifier_codes(there) == verifier_codes(here)
        assert there.signer == here.signer
        assert there.signed_revision == here.signed_revision
    assert verifier_codes(there) == ()
    (sig,) = there.signatures
    assert sig.qualification == here.signatures[0].qualification
    assert sig.qualification is not None and not sig.qualification.qualified
    # One child served both calls.
    assert isolated.children_started == 1


def test_detached_and_unreadable_inputs_cross_the_process_boundary(
        pki: PkiFixture, isolated: IsolatedVerifier) -> None:
    from intake.demo.samples import detached_signature

    content = "Pieteikums: Jānis Bērziņš".encode()
    signature = detached_signature(content, pki.signer("qualified"), pki.timestamper)
    verdict = isolated.verify_detached_sync(content, signature, kind="smime")
    assert verifier_codes(verdict) == ()
    assert verdict.signatures[0].kind == "smime"
    assert verdict.signer is not None and verdict.signer.personal_code == QUALIFIED_PERSONAL_CODE
    with pytest.raises(UnreadableInput, match="not a PDF"):
        isolated.verify_pdf_sync(b"GIF89a not a PDF")
    # An unreadable input is an answer, not a reason to replace the child.
    assert isolated.children_started == 1


def test_overrun_inside_the_child_ends_the_child(pki: PkiFixture) -> None:
    """The verifier's own limit fires; its thread may run on, so the child exits."""
    verifier = IsolatedVerifier(pki.settings(timeout_seconds=0.001), grace_seconds=30)
    try:
        with pytest.raises(UnreadableInput, match="did not finish within 0.001 s"):
            verifier.verify_pdf_sync(pki.sign(pki.form_pdf()))
        with pytest.raises(UnreadableInput):
            verifier.verify_pdf_sync(pki.sign(pki.form_pdf()))
        assert verifier.children_started == 2
    finally:
        verifier.close()


def test_child_that_does_not_answer_in_time_is_killed(pki: PkiFixture) -> None:
    """With no grace the parent's deadline passes first and it kills the child."""
    verifier = IsolatedVerifier(pki.settings(timeout_seconds=0.001), grace_seconds=0)
    try:
        with pytest.raises(UnreadableInput, match="did not finish within 0.001 s"):
            verifier.verify_pdf_sync(pki.sign(pki.form_pdf()))
        assert verifier._idle == []  # the killed child is not reused
    finally:
        verifier.close()


def test_child_out_of_memory_is_form_unreadable_and_the_next_call_works(
        pki: PkiFixture) -> None:
    starved = IsolatedVerifier(pki.settings(), memory_bytes=16 * 1024 * 1024)
    try:
        with pytest.raises(UnreadableInput, match="memory"):
            starved.verify_pdf_sync(pki.sign(pki.form_pdf()))
    finally:
        starved.close()
    healthy = IsolatedVerifier(pki.settings(), memory_bytes=1536 * 1024 * 1024)
    try:
        assert verifier_ok(healthy.verify_pdf_sync(pki.sign(pki.form_pdf())))
    finally:
        healthy.close()


@pytest.mark.parametrize(("value", "accepted"), [(0, True), (256, True), (100, False), (-1, False)])
def test_memory_limit_key_is_checked_at_start(tmp_path: Path, value: int, accepted: bool) -> None:
    data = {"smtp": {"url": "maildir:./outbox", "from": "pasts@agency.test"},
            "limits": {"verify_memory_mb": value}}
    if accepted:
        assert parse_config(data, tmp_path / "config.toml").limits.verify_memory_mb == value
    else:
        with pytest.raises(ConfigurationError, match=r"limits\.verify_memory_mb"):
            parse_config(data, tmp_path / "config.toml")


def test_child_ignores_a_group_stop_signal_and_is_not_blamed_on_the_form(
        pki: PkiFixture, isolated: IsolatedVerifier) -> None:
    """Ctrl-C or systemd signal the whole group: the parent decides when to stop."""
    form = pki.sign(pki.form_pdf())
    assert verifier_ok(isolated.verify_pdf_sync(form))
    [child] = isolated._idle
    os.kill(child.process.pid, signal.SIGTERM)
    os.kill(child.process.pid, signal.SIGINT)
    assert verifier_ok(isolated.verify_pdf_sync(form))  # the same child, still serving
    assert isolated.children_started == 1


def test_child_stopped_from_outside_mid_call_is_a_crash_to_retry(
        pki: PkiFixture, isolated: IsolatedVerifier) -> None:
    """A child that dies of SIGHUP says nothing about the form: no FORM-UNREADABLE."""
    form = pki.sign(pki.form_pdf())
    assert verifier_ok(isolated.verify_pdf_sync(form))
    [child] = isolated._idle
    # Paused, with a hang-up pending that strikes as soon as it resumes.
    os.kill(child.process.pid, signal.SIGSTOP)
    os.kill(child.process.pid, signal.SIGHUP)
    def wake() -> None:
        with contextlib.suppress(ProcessLookupError):  # already gone is fine too
            os.kill(child.process.pid, signal.SIGCONT)

    # Long enough that the parent has handed the paused child its request
    # even on a loaded machine; woken earlier, the child dies idle and a
    # fresh one serves the call instead.
    resume = threading.Timer(2.0, wake)
    resume.start()
    try:
        with pytest.raises(VerifierCrashed, match="stopped"):
            isolated.verify_pdf_sync(form)
    finally:
        resume.join()
    assert verifier_ok(isolated.verify_pdf_sync(form))  # a fresh child takes over
    assert isolated.children_started == 2


def test_the_fork_servers_quick_exit_applies_to_the_fork_server_only() -> None:
    """signing.forkexit ends the fork server without its teardown; imported by
    any other process (a test run, a command) it must not touch the exit code."""
    import subprocess
    import sys

    probe = "import sys, signing.forkexit\nsys.exit(3)\n"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)})
    assert done.returncode == 3, done.stderr
