"""A command line whose output is piped into a reader that stops early exits quietly."""

from __future__ import annotations

import subprocess
import sys

from intake.store.models import Application, ReceivedMessage
from tests.daemon_env import ROOT, Deployment

ROWS = 3000


def test_list_into_a_reader_that_closes_early(deployment: Deployment) -> None:
    with deployment.runtime() as rt, rt.store.session() as s:
        s.add_all(
            Application(reference=f"EA-2026-{i:06d}", workflow="eaddress-production",
                        state="incomplete", applicant_email=f"applicant{i}@example.lv",
                        addresses=[f"applicant{i}@example.lv"],
                        form_values={"org_name": "SIA Ērgļu Māja"}, codes=["FORM-MISSING"])
            for i in range(1, ROWS + 1)
        )
    # The shape of `pasts list | head -3`: the reader takes three lines and
    # closes its end while pasts still has some 300 KB to write.
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "daemon.py"), "--config", str(deployment.config_path),
         "list"],
        env=deployment.subprocess_env(), cwd=deployment.directory,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    head = [proc.stdout.readline() for _ in range(3)]
    proc.stdout.close()
    stderr = proc.stderr.read().decode()
    assert proc.wait(timeout=60) == 0, stderr
    assert all(line.startswith(b"EA-2026-") for line in head)
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert stderr == ""


def test_run_once_through_a_pipe_says_everything_before_it_exits(
        deployment: Deployment) -> None:
    """``run --once`` ends without tearing the interpreter down (issue 12): its
    summary and its log still reach the pipes whole, what it committed is
    there, and the exit code is the run's."""
    from intake.demo.samples import application_mail
    from tests.daemon_env import TO

    deployment.deliver(application_mail(sender="jautajums@example.lv", to=TO,
                                        subject="Kā pieteikties?"))
    done = subprocess.run(
        [sys.executable, str(ROOT / "daemon.py"), "--config", str(deployment.config_path),
         "run", "--once"],
        env=deployment.subprocess_env(), cwd=deployment.directory,
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "outbox: 1 sent, 0 failed", done.stdout
    assert "run --once: stage seconds:" in done.stderr.splitlines()[-1]
    assert len(deployment.replies()) == 1
    with deployment.runtime() as rt, rt.store.session() as s:
        assert s.query(ReceivedMessage.status).one() == ("processed",)
