"""`pasts demo` (what `make demo` runs) on a copy of the shipped config.toml.

It must keep running on a fresh checkout with no server, and show every
procedure with good and bad applications: this test holds it to that.
"""

from __future__ import annotations

import io
from contextlib import redirect_stdout
from pathlib import Path

from sqlalchemy import select

from daemon import main
from intake.config import load_config
from intake.store.engine import open_store
from intake.store.models import Application, ReceivedMessage
from tests.daemon_env import ROOT, free_port

#: Codes the demo's bad samples must show, at least once each.
SHOWN_CODES = {
    "SIG-MODIFIED", "SIG-MISSING", "SIG-NOT-QUALIFIED", "SIG-UNTRUSTED", "SIG-CERT-REVOKED",
    "TS-MISSING", "FORM-MISSING", "FORM-UNKNOWN", "FORM-UNREADABLE",
    "FORM-FIELD-MISSING:contact_email", "FORM-FIELD-INVALID:org_reg_no",
    "CSR-MISSING", "CSR-KEY-WEAK", "CSR-SUBJECT-MISMATCH",
    "TEST-ENV-NOT-COMPLETED", "SIGNER-NOT-AUTHORISED", "CONTRACT-MISSING",
}


def test_demo_runs_every_procedure_offline(tmp_path: Path) -> None:
    port = free_port()
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    config_path = tmp_path / "config.toml"
    config_path.write_text(text.replace("127.0.0.1:8025", f"127.0.0.1:{port}"), encoding="utf-8")

    out = io.StringIO()
    with redirect_stdout(out):
        code = main(["--config", str(config_path), "demo", "--dir", str(tmp_path / "var/demo")])
    printed = out.getvalue()
    assert code == 0, printed
    assert "replies written to" in printed

    config = load_config(config_path)
    store = open_store(config.database.url)
    with store.session() as s:
        apps = list(s.scalars(select(Application)))
        states = {(a.workflow, a.state) for a in apps}
        codes = {c for a in apps for c in a.codes or []}
        outcomes = [r.outcome or "" for r in s.scalars(select(ReceivedMessage))]
    # Each procedure's good application is approved by the demo's staff step.
    assert ("eaddress-production", "approved") in states
    assert ("api-access", "approved") in states
    assert ("service-publication", "active") in states
    assert ("consultation", "received") in states
    # ... and each has at least two bad ones.
    for workflow in ("eaddress-production", "api-access", "service-publication"):
        assert sum(1 for a in apps if a.workflow == workflow and a.state == "incomplete") >= 2
    assert "data-exchange id DX-" in printed
    # Forms signed by .p7s, S/MIME and .edoc reach review as well.
    ea_reviewed = [a for a in apps if a.workflow == "eaddress-production"
                   and a.state == "in-review"]
    kinds = {sig["kind"] for a in ea_reviewed for sig in a.verdicts["signature"]["signatures"]}
    assert {"cms", "smime", "xades"} <= kinds
    missing = SHOWN_CODES - codes
    assert not missing, f"the demo no longer shows {sorted(missing)}"
    assert any(o.startswith("duplicate of EA-") for o in outcomes)
    assert any("auto-submitted" in o for o in outcomes)
