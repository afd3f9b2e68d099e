"""A complete pasts set-up for end-to-end tests: real Dovecot, real SMTP, real PKI.

``Deployment`` writes a real ``config.toml`` (so the daemon can also run as a
subprocess, e.g. to be killed with SIGKILL), and offers helpers to deliver
applications into the IMAP inbox and read what the SMTP server received.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import subprocess
import sys
from collections.abc import Callable
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

from intake.config import Config, default_workflows, load_config
from intake.demo.samples import application_mail, filled_form, make_csr
from intake.runtime import Runtime
from signing.testing.ca import make_test_ca

ROOT = Path(__file__).resolve().parent.parent

EA = next(w for w in default_workflows() if w.id == "eaddress-production")
TO = "pasts@agency.test"
#: A complete e-address form, with Latvian and Italian letters.
GOOD = {
    "org_name": "SIA Ērgļu Māja", "org_reg_no": "40003123456",
    "contact_name": "Jānis Bērziņš", "contact_email": "janis@ergli.example",
    "solution_name": "Perché sì — Ēdoc 2.1", "test_env_completed": "yes",
    "csr_common_name": "ergli-connector.example.lv",
}
#: The registry every deployment starts with: GOOD's organisation, the
#: test PKI's qualified signer as its representative.
REGISTRY = (
    "org_reg_no,org_name,test_env_completed,agreement_received,representatives\n"
    "40003123456,SIA Ērgļu Māja,yes,yes,PNOLV-010190-12345\n"
)


def good_mail(pki: Any, sender: str = "janis@ergli.example", **values: str) -> bytes:
    """A complete e-address application, signed (B-T) by the qualified test signer."""
    form = pki.sign(filled_form(EA, {**GOOD, **values}), signer="qualified", timestamp=True)
    return application_mail(sender=sender, to=TO, subject="Pieteikums e-adresei", form=form,
                            csr=make_csr(GOOD["csr_common_name"], GOOD["org_name"]))


def message_id_of(raw: bytes) -> str:
    value = BytesHeaderParser().parsebytes(raw)["Message-ID"]
    assert value
    return str(value).strip()


def reference_of(reply: Any) -> str:
    """The reply's e-address reference, checked in X-Pasts-Reference and the subject."""
    ref = reply["X-Pasts-Reference"]
    assert ref and re.fullmatch(r"EA-\d{4}-\d{6}", ref)
    assert f"[{ref}]" in reply["Subject"]
    return str(ref)


def text_of(reply: Any) -> str:
    return str(reply.get_body(("plain",)).get_content())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value), ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(value)


def to_toml(data: dict[str, Any]) -> str:
    lines: list[str] = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"[{key}]")
            lines += [f"{k} = {toml_value(v)}" for k, v in value.items()]
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            for item in value:
                lines.append(f"[[{key}]]")
                lines += [f"{k} = {toml_value(v)}" for k, v in item.items()]
        else:
            lines.append(f"{key} = {toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


@dataclass
class Deployment:
    directory: Path
    config_path: Path
    imap: Any  # tests.fixtures.dovecot.ImapAccount
    smtp: Any  # tests.fixtures.smtp.SmtpTestServer
    pki: Any  # tests.fixtures.pki.PkiFixture
    env: dict[str, str] = field(default_factory=dict)

    @property
    def config(self) -> Config:
        return load_config(self.config_path)

    def runtime(self) -> Runtime:
        return Runtime.open(self.config)

    # -- mail in ------------------------------------------------------------------

    def deliver(self, raw: bytes, folder: str = "INBOX") -> None:
        self.imap.server.append(self.imap.login, raw, folder)

    def inbox(self, folder: str = "INBOX") -> list[bytes]:
        return list(self.imap.server.fetch_all(self.imap.login, folder))

    # -- mail out -----------------------------------------------------------------

    def replies(self) -> list[EmailMessage]:
        return [
            message_from_bytes(m.content, policy=default_policy)  # type: ignore[misc]
            for m in self.smtp.messages
        ]

    def replies_to(self, message_id: str) -> list[EmailMessage]:
        return [r for r in self.replies() if r["In-Reply-To"] == message_id]

    # -- running ------------------------------------------------------------------

    def run_once(self) -> int:
        with self.runtime() as runtime:
            return runtime.run_once()

    def cli(self, *args: str) -> tuple[int, str]:
        from daemon import main

        buf = io.StringIO()
        with redirect_stdout(buf):
            code = main(["--config", str(self.config_path), *args])
        return code, buf.getvalue()

    def subprocess_env(self, **extra: str) -> dict[str, str]:
        env = dict(os.environ)
        env.update(self.env)
        env.update(extra)
        env["PYTHONPATH"] = str(ROOT)
        return env

    def spawn(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, str(ROOT / "daemon.py"), "--config", str(self.config_path), *args],
            env=self.subprocess_env(**env), cwd=self.directory,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )


def make_deployment(tmp_path: Path, imap_account: Any, imap_mailbox_config: Callable[..., Any],
                    smtp_server: Any, pki: Any, *, registry: str | None = REGISTRY,
                    **sections: dict[str, Any] | list[dict[str, Any]]) -> Deployment:
    """A config.toml for these servers (``sections`` override keys), with ``registry`` imported."""
    mb = imap_mailbox_config(imap_account)
    smtp = smtp_server.smtp_config()
    ca_cert, ca_key = make_test_ca(tmp_path / "ca")
    port = free_port()
    data: dict[str, Any] = {
        "database": {"url": f"sqlite:///{tmp_path / 'pasts.db'}"},
        "mailbox": [{
            "name": "applications", "url": mb.url, "password_env": mb.password_env,
            "tls_ca": str(mb.tls_ca), "workflow": "eaddress-production", "poll_seconds": 0.5,
            "starttls": "require",
        }],
        "smtp": {"url": smtp.url, "from": "pasts@agency.test", "tls_ca": str(smtp.tls_ca),
                 "starttls": "require"},
        "signing": {"trust_roots": [str(p) for p in pki.trust_roots], "revocation": "soft-fail",
                    "allow_fetching": True},
        "ca": {"certificate": str(ca_cert), "key": str(ca_key), "crl": str(tmp_path / "crl.pem")},
        "verification": {"listen": f"127.0.0.1:{port}", "public_url": f"http://127.0.0.1:{port}"},
        "digest": {"recipients": ["staff@agency.test"]},
    }
    for name, values in sections.items():
        if isinstance(values, list):  # an array of tables ([[workflow]]) is given whole
            data[name] = values
        else:
            data.setdefault(name, {}).update(values)
    path = tmp_path / "config.toml"
    path.write_text(to_toml(data), encoding="utf-8")
    env = {mb.password_env: os.environ[mb.password_env]}
    if smtp.password_env:
        env[smtp.password_env] = os.environ[smtp.password_env]
    dep = Deployment(tmp_path, path, imap_account, smtp_server, pki, env)
    if registry is not None:
        csv_path = tmp_path / "registry.csv"
        csv_path.write_text(registry, encoding="utf-8")
        assert dep.cli("registry", "import", str(csv_path))[0] == 0
    return dep
