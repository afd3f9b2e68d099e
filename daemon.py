"""pasts: the signed-mail intake daemon (command line and wiring only).

Run ``pasts --help`` (or ``python daemon.py --help``) for the commands.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import io
import logging
import os
import sys
from pathlib import Path
from typing import TextIO, cast

DESCRIPTION = """\
pasts reads applications from agency mailboxes, verifies their qualified
e-signatures and time-stamps, checks the form and the CSR against the
procedure's rules, and answers every applicant once, in thread.

Start here:
  pasts demo                      try everything locally (no server needed)
  pasts run --once                process the mailboxes once and exit
  pasts run                       the daemon (stop with Ctrl-C or SIGTERM)
  pasts list --state in-review    what waits for staff
  pasts show EA-2026-000001       one application: fields, signer, history, mails
  pasts approve EA-2026-000001    staff approval (issues the certificate)
"""

EPILOG = """\
Exit status: 0 success, 2 usage or configuration error (the message names the
key and the file), 1 any other failure. Secrets come from environment
variables named by *_env keys in the configuration.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pasts", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="PATH", default=os.environ.get("PASTS_CONFIG", "config.toml"),
                        help="configuration file (default: ./config.toml, or $PASTS_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser("run", help="run the daemon (mailboxes, outbox, scheduler, web endpoint)",
                         description="Run the daemon until SIGTERM/SIGINT; the message in hand is "
                         "finished first. With --once: process every message now in the mailboxes, "
                         "send every queued reply, run due jobs, and exit.")
    run.add_argument("--once", action="store_true", help="one pass, then exit 0")

    demo = sub.add_parser("demo", help="make a demo PKI and sample applications, process them",
                          description="On a fresh checkout with no server: creates a demo PKI, "
                          "signed sample applications (good and bad) in a maildir, processes them "
                          "with SQLite, and prints what happened and where the replies are.")
    demo.add_argument("--dir", type=Path, default=Path("var/demo"),
                      help="where the demo keeps its files (default: var/demo)")

    ls = sub.add_parser("list", help="applications, a line each")
    ls.add_argument("--state", help="only this state (e.g. in-review, incomplete)")
    ls.add_argument("--workflow", help="only this workflow (e.g. eaddress-production)")

    show = sub.add_parser("show", help="one application: fields, signer, verdicts, history, mails")
    show.add_argument("reference")
    show.add_argument("--report", type=Path, metavar="FILE",
                      help="also write the stored validation report (ETSI TS 119 102-2 XML)")

    for name, text in (("approve", "staff approval; issues the certificate where the workflow has one"),
                       ("reject", "final rejection with a code and a note"),
                       ("restrict", "compliance failure: revoke the certificate, update the CRL, notify")):
        p = sub.add_parser(name, help=text)
        p.add_argument("reference")
        if name == "reject":
            p.add_argument("--code", required=True, help="the rule code (SPEC section 3)")
        p.add_argument("--note", required=(name != "approve"), help="the reason, sent to the applicant")
        p.add_argument("--user", default=getpass.getuser(), help="staff user recorded in the history")

    reg = sub.add_parser("registry", help="the organisation registry")
    reg_sub = reg.add_subparsers(dest="registry_command", metavar="ACTION", required=True)
    imp = reg_sub.add_parser("import", help="import or update organisations from a UTF-8 CSV",
                             description="CSV header: org_reg_no,org_name,test_env_completed,"
                             "agreement_received,representatives (yes/no; representatives as "
                             "';'-separated personal codes such as PNOLV-010190-12345).")
    imp.add_argument("file", type=Path)

    dig = sub.add_parser("digest", help="the staff digest (print; --send mails it)")
    dig.add_argument("--send", action="store_true", help="mail it to digest.recipients")
    dig.add_argument("--html", type=Path, metavar="FILE", help="also write the HTML version here")

    purge = sub.add_parser(
        "purge", help="purge raw mail of applications closed longer than daemon.retention_days",
        description="GDPR retention: removes the raw mail, reply copies, validation reports and "
        "CSRs of applications closed (approved, active, rejected, restricted, "
        "verification-expired) longer than daemon.retention_days, keeping the decision record "
        "(state, history, codes, reference, dates). Lists each application with counts.")
    purge.add_argument("--dry-run", action="store_true",
                       help="list what would be purged, with counts; change nothing")

    trust = sub.add_parser("trust", help="the EU trusted lists ([trust])")
    trust_sub = trust.add_subparsers(dest="trust_command", metavar="ACTION", required=True)
    trust_sub.add_parser("refresh", help="fetch and verify the LOTL and the national lists, cache them",
                         description="Exit status 1 when the LOTL or a national list cannot be "
                         "fetched or its signature does not verify (the last good copy stays).")
    trust_sub.add_parser("status", help="each list's sequence number, dates and freshness",
                         description="Exit status 1 when any configured list is stale or missing.")

    forms = sub.add_parser("forms", help="form templates")
    forms_sub = forms.add_subparsers(dest="forms_command", metavar="ACTION", required=True)
    render = forms_sub.add_parser("render", help="write the blank fillable form of a workflow")
    render.add_argument("workflow")
    render.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    return parser


class ReaderGoneQuiet:
    """Standard output for the commands that outlives its reader.

    ``pasts list | head`` closes the pipe after ten lines. The command then
    finishes its work (a ``run --once`` still sends its replies) and exits
    with its own status, without a BrokenPipeError traceback: what is
    written after the reader went away goes to the null device.
    """

    def __init__(self, stream: TextIO):
        self.stream = stream
        self.reader_gone = False

    def write(self, text: str) -> int:
        if not self.reader_gone:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._silence()
        return len(text)

    def flush(self) -> None:
        if not self.reader_gone:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._silence()

    def _silence(self) -> None:
        self.reader_gone = True
        # The interpreter flushes sys.stdout once more at exit; pointing its
        # descriptor at the null device keeps that flush quiet too.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
        except OSError:
            return
        try:
            os.dup2(devnull, self.stream.fileno())
        except (OSError, ValueError, io.UnsupportedOperation):
            pass
        finally:
            os.close(devnull)


#: Set when a ``run --once`` has finished and closed everything (:func:`command_line`).
_FINISHED_RUN_ONCE: list[bool] = []


def main(argv: list[str] | None = None) -> int:
    out = ReaderGoneQuiet(sys.stdout)
    try:
        return _main(argv, cast(TextIO, out))
    finally:
        out.flush()


def command_line() -> None:
    """The ``pasts`` command: :func:`main`, then exit with its code.

    After a ``run --once`` (every transaction committed, the verification
    children stopped, the log flushed) the process ends at once rather than
    tearing the interpreter down object by object, which took longer than
    deciding 20 applications (issue 12). Every other command exits normally.
    """
    code = main()
    if _FINISHED_RUN_ONCE:
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
        os._exit(code)
    sys.exit(code)


def _main(argv: list[str] | None, out: TextIO) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "run":
        # The verification children's fork server imports pyHanko in a process of
        # its own while this one imports the daemon: the two start-ups overlap.
        from intake.tasks import VERIFY_TASKS
        from signing.isolation import start_fork_server

        start_fork_server(VERIFY_TASKS)
    from intake import logs

    # Log lines carry values from mail; the formatter escapes their control
    # characters so that none can forge a line or drive the terminal.
    handler = logging.StreamHandler(sys.stderr)
    logs.configure(handler, "text")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        handlers=[handler])
    for noisy in ("apscheduler", "alembic", "aiosmtplib"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # pyHanko logs each failed check with a traceback; the verdict's codes and
    # notes already say it (see `pasts show`).
    for noisy in ("pyhanko", "pyhanko_certvalidator"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose else logging.ERROR)

    from intake import cli
    from intake.config import load_config
    from intake.errors import ConfigurationError, NotFound, PastsError

    try:
        if args.command == "demo":
            from intake.demo.run import run_demo

            # The demo prints its own story; the log only shows problems.
            if not args.verbose:
                logging.getLogger().setLevel(logging.WARNING)

            return run_demo(args.dir, out=out, config_path=Path(args.config))
        config = load_config(args.config)
        logging.getLogger().setLevel(logging.DEBUG if args.verbose else config.daemon.log_level)
        logs.configure(handler, config.daemon.log_format)
        if args.command == "trust":
            from intake.trust import cmd_trust_refresh, cmd_trust_status

            if args.trust_command == "refresh":
                return cmd_trust_refresh(config, out=out)
            return cmd_trust_status(config, out=out)
        from intake.runtime import Runtime

        with Runtime.open(config) as rt:
            if args.command == "run":
                code = cli.cmd_run(rt, once=args.once, out=out)
                # Read by command_line once the runtime is closed (leaving the block).
                if args.once:
                    _FINISHED_RUN_ONCE.append(True)
                return code
            if args.command == "list":
                return cli.cmd_list(rt, state=args.state, workflow=args.workflow, out=out)
            if args.command == "show":
                return cli.cmd_show(rt, args.reference, out=out, report=args.report)
            if args.command in ("approve", "reject", "restrict"):
                return cli.cmd_staff(rt, args.command, args.reference, user=args.user,
                                          code=getattr(args, "code", None), note=args.note, out=out)
            if args.command == "registry":
                return cli.cmd_registry_import(rt, args.file, out=out)
            if args.command == "digest":
                return cli.cmd_digest(rt, send=args.send, html=args.html, out=out)
            if args.command == "purge":
                return cli.cmd_purge(rt, dry_run=args.dry_run, out=out)
            if args.command == "forms":
                return cli.cmd_forms_render(rt, args.workflow, args.output, out=out)
        parser.error(f"unknown command {args.command}")
    except ConfigurationError as exc:
        print(f"pasts: configuration error: {exc}", file=sys.stderr)
        return 2
    except NotFound as exc:
        print(f"pasts: {exc}", file=sys.stderr)
        return 1
    except PastsError as exc:
        print(f"pasts: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    command_line()
