"""End-to-end throughput of ``pasts run --once`` against bare pyHanko (issue 12).

Generates a backlog of N signed e-address applications with the demo PKI into a
maildir (every tenth signed by the non-qualified signer, which must be caught
as SIG-NOT-QUALIFIED), then, interleaved over ``--rounds``:

* **bare**: one process, ``pyhanko.sign.validation.validate_pdf_signature`` over
  the same N PDFs (read with ``PdfFileReader``), nothing else;
* **pasts**: ``pasts run --once`` as a subprocess (the real CLI, a fresh SQLite
  database and a fresh copy of the maildir each round), every reply composed
  into a maildir outbox.

It prints the wall times, the ratio pasts/bare (median and spread over the
rounds), the per-stage split the runner logs at the end of ``run --once``
(``stage seconds: ...``), and the peak RSS of the daemon's whole process tree
(the daemon and its verification children, sampled from ``/proc``).

With ``--memory 100,1000`` it also runs ``pasts run --once`` once over each of
those backlog sizes and prints the peak RSS of each and their ratio (the
backlog is streamed, so the peak should stay flat). The forms of a large
backlog repeat the first ``--unique`` signed ones (each mail is new, its
Message-ID and sender differ), so generating 10,000 stays quick.

Run: ``.venv/bin/python bench/bench_throughput.py --n 120 --rounds 3 --memory 100,1000``
(``make bench``); add ``--memory 100,1000,10000`` for the large figure.
"""

from __future__ import annotations

import argparse
import json
import mailbox as stdlib_mailbox
import os
import re
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from io import BytesIO
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pyhanko.pdf_utils.reader import PdfFileReader  # noqa: E402
from pyhanko.sign.validation import validate_pdf_signature  # noqa: E402

from intake.config import default_workflows  # noqa: E402
from intake.demo.samples import application_mail, filled_form, make_csr, sign  # noqa: E402
from signing.testing.ca import make_test_ca  # noqa: E402
from signing.testing.pki import DemoPki  # noqa: E402

TO = "pasts@agency.example"
EA = next(w for w in default_workflows() if w.id == "eaddress-production")
VALUES = {
    "org_name": "SIA Ērgļu Māja", "org_reg_no": "40003123456", "contact_name": "Jānis Bērziņš",
    "solution_name": "Ēdoc savienotājs 2.1", "test_env_completed": "yes",
    "csr_common_name": "ergli-connector.example.lv",
}
STAGES = re.compile(r"stage seconds: (.*)$", re.M)


# -- the backlog ----------------------------------------------------------------

def make_forms(pki: DemoPki, n: int) -> list[tuple[bytes, bool]]:
    """``n`` signed forms, (PDF, signed by the qualified signer?)."""
    forms = []
    for i in range(n):
        qualified = i % 10 != 9
        values = {**VALUES, "contact_email": f"kontakts{i}@ergli.example"}
        pdf = sign(filled_form(EA, values), pki, "qualified" if qualified else "nonqualified")
        forms.append((pdf, qualified))
    return forms


def write_maildir(path: Path, forms: list[tuple[bytes, bool]], n: int) -> None:
    csr = make_csr(VALUES["csr_common_name"], VALUES["org_name"])
    box = stdlib_mailbox.Maildir(str(path), create=True)
    for i in range(n):
        pdf, _ = forms[i % len(forms)]
        raw = application_mail(sender=f"kontakts{i}@ergli.example", to=TO,
                               subject=f"Pieteikums e-adresei {i}", form=pdf, csr=csr)
        box.add(raw)
    box.close()


#: ``--no-report``: the [signing] line that turns the ETSI validation report off.
SIGNING_EXTRA = [""]


def write_config(directory: Path, pki: DemoPki, ca: tuple[Path, Path], maildir: Path,
                 workers: int | None) -> Path:
    limits = f"verify_workers = {workers}\n" if workers is not None else ""
    roots = ", ".join(json.dumps(str(p)) for p in pki.trust_roots)
    text = f"""
[database]
url = "sqlite:///{directory / 'pasts.db'}"

[[mailbox]]
name = "applications"
url = "maildir:{maildir}"
workflow = "eaddress-production"

[smtp]
url = "maildir:{directory / 'outbox'}"
from = "pasts@agency.example"

[signing]
trust_roots = [{roots}]
revocation = "soft-fail"
allow_fetching = false
{SIGNING_EXTRA[0]}
[ca]
certificate = "{ca[0]}"
key = "{ca[1]}"
crl = "{directory / 'crl.pem'}"

[verification]
required = false
listen = "127.0.0.1:0"
public_url = "http://127.0.0.1:8025"

[digest]
recipients = ["staff@agency.example"]

[daemon]
state_dir = "{directory / 'state'}"
support_address = "atbalsts@agency.example"

[limits]
{limits}"""
    path = directory / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


# -- the process tree's memory ----------------------------------------------------

def _tree_rss(root: int) -> int:
    """The summed RSS in bytes of ``root`` and all its descendants (from /proc)."""
    parents: dict[int, int] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        pid = int(entry)
        parents[pid] = int(stat[1])
        rss[pid] = int(stat[21]) * os.sysconf("SC_PAGE_SIZE")
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in tree:
                tree.add(pid)
                frontier.append(pid)
    return sum(rss.get(pid, 0) for pid in tree)


#: The checkout whose daemon.py runs (``--pasts-root``: e.g. a copy of main, for a baseline).
PASTS_ROOT = [ROOT]


#: CPU seconds (user + system) of the daemon's own process in each run_pasts, in order.
DAEMON_CPU: list[float] = []


def _children_cpu() -> float:
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def run_pasts(config: Path) -> tuple[float, int, str]:
    """``pasts run --once``: (wall seconds, peak tree RSS bytes, stderr).

    The daemon's CPU goes to :data:`DAEMON_CPU`: the children this process has
    waited for are the daemon alone (its fork server and verification children
    are not its to wait for once it ends with ``os._exit``); its one thread's
    time is what bounds a backlog's pace."""
    root = PASTS_ROOT[0]
    env = {**os.environ, "PYTHONPATH": str(root)}
    cpu_before = _children_cpu()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, str(root / "daemon.py"), "--config", str(config),
                             "run", "--once"], env=env, cwd=config.parent,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.wait(0.05):
            peak = max(peak, _tree_rss(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    _, err = proc.communicate()
    seconds = time.perf_counter() - started
    DAEMON_CPU.append(_children_cpu() - cpu_before)
    done.set()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"pasts run --once failed ({proc.returncode}):\n{err.decode()[-3000:]}")
    return seconds, peak, err.decode()


def check_outcome(directory: Path, n: int, nonqualified: int) -> None:
    """Every message answered once; every non-qualified signature caught."""
    db = sqlite3.connect(directory / "pasts.db")
    try:
        statuses = dict(db.execute("select status, count(*) from received_message group by status"))
        replies = db.execute("select count(*) from outbox").fetchone()[0]
        caught = db.execute("select count(*) from received_message where outcome like "
                            "'%SIG-NOT-QUALIFIED%'").fetchone()[0]
    finally:
        db.close()
    if statuses.get("processed") != n or replies != n:
        raise SystemExit(f"expected {n} processed and {n} replies, got {statuses}, {replies}")
    if caught != nonqualified:
        print(f"  warning: {caught} outcomes name SIG-NOT-QUALIFIED, expected {nonqualified}")


def fresh_run(work: Path, master: Path, pki: DemoPki, ca: tuple[Path, Path], n: int,
              nonqualified: int, workers: int | None) -> tuple[float, int, str]:
    run_dir = work / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir()
    maildir = run_dir / "inbox"
    shutil.copytree(master, maildir)
    config = write_config(run_dir, pki, ca, maildir, workers)
    result = run_pasts(config)
    if os.environ.get("BENCH_DEBUG"):
        print(result[2][-3000:])
    check_outcome(run_dir, n, nonqualified)
    return result


def bare(pdfs: list[bytes], pki: DemoPki) -> float:
    # Bare means upstream's code: pasts' name cache (signing/namecache.py) is
    # installed only where signing.verifier is imported, never in this process.
    from asn1crypto import x509

    if x509.Name.__eq__.__module__ != "asn1crypto.x509":
        raise SystemExit("the bare loop would run under pasts' name cache")
    context = pki.validation_context()
    started = time.perf_counter()
    for data in pdfs:
        reader = PdfFileReader(BytesIO(data), strict=False)
        validate_pdf_signature(reader.embedded_signatures[0], context)
    return time.perf_counter() - started


def stage_split(stderr: str) -> str:
    found = STAGES.findall(stderr)
    return found[-1] if found else "(the runner logged no stage times)"


def compile_sources(root: Path) -> None:
    """Byte-compile the checkout's own modules once, as an installed pasts is.

    ``pip install`` (and the container of ``deploy/Containerfile``) writes
    bytecode at install time; an editable checkout run under
    ``PYTHONDONTWRITEBYTECODE=1`` would compile every module of pasts at each
    start (about half a second of each ``run --once`` on this machine), which
    no deployment pays. ``__pycache__`` is ignored by git.
    """
    import compileall

    for package in ("intake", "signing", "rules", "mailer"):
        compileall.compile_dir(root / package, quiet=1)
    compileall.compile_file(root / "daemon.py", quiet=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=120, help="applications in the timed backlog")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    parser.add_argument("--memory", default="", help="backlog sizes for peak RSS, e.g. 100,1000")
    parser.add_argument("--unique", type=int, default=120,
                        help="signed forms generated; larger backlogs repeat them")
    parser.add_argument("--workers", type=int, default=None,
                        help="limits.verify_workers (default: the config's default)")
    parser.add_argument("--pasts-root", type=Path, default=ROOT,
                        help="the checkout whose daemon.py is run (a baseline: a copy of main)")
    parser.add_argument("--no-report", action="store_true",
                        help="signing.validation_report = false (the ETSI report, made from "
                             "the verdict's validation)")
    args = parser.parse_args()
    if args.no_report:
        SIGNING_EXTRA[0] = "validation_report = false\n"
    PASTS_ROOT[0] = args.pasts_root.resolve()
    compile_sources(PASTS_ROOT[0])
    sizes = [int(s) for s in args.memory.split(",") if s.strip()]

    with tempfile.TemporaryDirectory(prefix="pasts-bench-") as tmp:
        work = Path(tmp)
        pki = DemoPki.create(work / "pki")
        ca = make_test_ca(work / "ca")
        started = time.perf_counter()
        forms = make_forms(pki, max(args.n, min(args.unique, max(sizes, default=0))))
        print(f"signed {len(forms)} forms in {time.perf_counter() - started:.1f} s")
        master = work / "master"
        write_maildir(master, forms, args.n)
        pdfs = [pdf for pdf, _ in forms[:args.n]]
        nonqualified = sum(1 for i in range(args.n) if not forms[i % len(forms)][1])

        bare(pdfs[:5], pki)  # imports and first-use caches, not counted
        bare_times: list[float] = []
        pasts_times: list[float] = []
        peaks: list[int] = []
        stderr = ""
        for r in range(args.rounds):
            bare_times.append(bare(pdfs, pki))
            seconds, peak, stderr = fresh_run(work, master, pki, ca, args.n, nonqualified,
                                              args.workers)
            pasts_times.append(seconds)
            peaks.append(peak)
            print(f"round {r + 1}: bare {bare_times[-1]:6.2f} s, pasts run --once "
                  f"{seconds:6.2f} s (daemon CPU {DAEMON_CPU[-1]:.2f} s), "
                  f"ratio {seconds / bare_times[-1]:.2f}, "
                  f"peak RSS {peak / 2**20:.0f} MiB")
        ratios = [p / b for p, b in zip(pasts_times, bare_times, strict=True)]
        print(f"\n{args.n} applications ({nonqualified} non-qualified), {args.rounds} rounds, "
              f"{os.cpu_count()} cores")
        print(f"bare validate_pdf_signature : median {statistics.median(bare_times):6.2f} s")
        print(f"pasts run --once            : median {statistics.median(pasts_times):6.2f} s")
        print(f"the daemon's own CPU        : median "
              f"{statistics.median(DAEMON_CPU[-args.rounds:]):6.2f} s")
        print(f"ratio pasts/bare            : median {statistics.median(ratios):.2f} "
              f"(min {min(ratios):.2f}, max {max(ratios):.2f})")
        print(f"per-stage split (last round): {stage_split(stderr)}")
        print(f"peak RSS of the process tree: {max(peaks) / 2**20:.0f} MiB")

        memory: dict[int, int] = {}
        for size in sizes:
            shutil.rmtree(master)
            write_maildir(master, forms, size)
            # A repeated form is a DUPLICATE: only each form's first mail is judged afresh.
            nq = sum(1 for i in range(min(size, len(forms))) if not forms[i][1])
            seconds, peak, stderr = fresh_run(work, master, pki, ca, size, nq, args.workers)
            memory[size] = peak
            print(f"backlog {size:>6}: {seconds:7.1f} s, peak RSS {peak / 2**20:6.0f} MiB; "
                  f"{stage_split(stderr)}")
        if len(memory) > 1:
            first = sizes[0]
            for size in sizes[1:]:
                print(f"peak RSS {size} / {first}: {memory[size] / memory[first]:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
