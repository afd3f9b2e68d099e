"""One definition of a usable address; a sender no reply can reach is recorded, never quarantined.

The intake used to accept senders (``jānis@…``, ``jdöe@mächine.example``,
``taro.@docomo.ne.jp``, IP-literal domains) that the composer then refused:
the ValueError was retried three times and the mail quarantined.
"""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from intake.demo.samples import application_mail, make_csr
from intake.mime.parse import parse_message
from intake.store.models import ReceivedMessage
from mailer.addresses import UnusableAddress, is_usable, usable_address
from mailer.compose import check_address
from rules.formats import is_email
from tests.daemon_env import TO, Deployment, make_deployment

HELDOUT = Path(__file__).parent / "messages" / "heldout"

USABLE = [
    ("janis@ergli.example", "janis@ergli.example", False),
    ("Janis.Berzins@Iestade.LV", "Janis.Berzins@iestade.lv", False),
    ("janis@pašvaldība.lv", "janis@xn--pavaldba-fjb94c.lv", False),
    ("jānis@example.lv", "jānis@example.lv", True),
    ("jdöe@mächine.example", "jdöe@mächine.example", True),
    ("xxxxxxx@docomo.ne.jp", "xxxxxxx@docomo.ne.jp", False),
]
UNUSABLE = ["taro.@docomo.ne.jp", "a..b@docomo.ne.jp", "user@[192.0.2.1]", "user@[IPv6:::1]",
            '"taro."@docomo.ne.jp', "applicant@localhost", "a@example.invalid",
            "Applicant <applicant@example.lv>", "a b@example.lv", "a\u202e@example.lv", ""]


@pytest.mark.parametrize(("address", "spec", "smtputf8"), USABLE)
def test_usable(address: str, spec: str, smtputf8: bool) -> None:
    usable = usable_address(address)
    assert (usable.spec, usable.smtputf8) == (spec, smtputf8)
    # The intake, the form check and the composer agree.
    assert is_usable(address) and is_email(address)
    assert check_address(address) == spec


@pytest.mark.parametrize("address", UNUSABLE)
def test_unusable(address: str) -> None:
    with pytest.raises(UnusableAddress):
        usable_address(address)
    assert not is_email(address)
    with pytest.raises(ValueError):
        check_address(address)


@pytest.mark.parametrize("address", ["taro.@docomo.ne.jp", "user@[192.0.2.1]"])
def test_an_unusable_sender_is_still_recorded(address: str) -> None:
    mail = parse_message(f"From: Taro <{address}>\r\nSubject: x\r\n\r\nbody\r\n".encode())
    assert mail.from_addr == address
    assert mail.no_reply_reason is None
    assert any("cannot be written to" in d for d in mail.defects)


def test_a_usable_address_is_preferred() -> None:
    mail = parse_message(b"From: taro.@docomo.ne.jp, taro@docomo.ne.jp\r\nSubject: x\r\n\r\nb\r\n")
    assert mail.from_addr == "taro@docomo.ne.jp"


def test_an_unusable_reply_to_leaves_replies_to_from() -> None:
    mail = parse_message(b"From: taro@docomo.ne.jp\r\nReply-To: taro.@docomo.ne.jp\r\n"
                         b"Subject: x\r\n\r\nb\r\n")
    assert mail.reply_to is None and mail.reply_address == "taro@docomo.ne.jp"


def utf8_mail(sender: str, subject: str, csr: bytes | None = None) -> bytes:
    """A form-less mail from ``sender`` as an RFC 6532 client writes it (UTF-8 headers).

    ``csr`` is pasted into the body (then the mail is an application, not junk).
    """
    pasted = csr.decode().replace("\n", "\r\n") if csr else ""
    return (f"From: {sender}\r\nTo: {TO}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{abs(hash(sender))}@example.lv>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            f"Labdien!\r\n{pasted}").encode()


@pytest.fixture
def ascii_deployment(tmp_path: Path, imap_account: Any, imap_mailbox_config: Any,
                     smtp_ascii_server: Any, pki: Any) -> Deployment:
    """A deployment whose SMTP server does not offer SMTPUTF8."""
    return make_deployment(tmp_path, imap_account, imap_mailbox_config, smtp_ascii_server, pki)


def test_utf8_local_part_is_answered_with_smtputf8(deployment: Deployment) -> None:
    dep = deployment
    dep.deliver(utf8_mail("Jānis <jānis@example.lv>", "Kā pieteikties?"))
    dep.deliver((HELDOUT / "mailgem--utf8_headers.eml").read_bytes())
    dep.deliver((HELDOUT / "mailgem--japanese_shift_jis.eml").read_bytes())
    dep.run_once()
    received = {m.rcpt_tos[0]: m for m in dep.smtp.messages}
    assert set(received) == {"jānis@example.lv", "jdöe@mächine.example", "xxxxxxx@docomo.ne.jp"}
    assert received["jānis@example.lv"].smtputf8 and received["jdöe@mächine.example"].smtputf8
    # SMTPUTF8 only where an address needs it.
    assert not received["xxxxxxx@docomo.ne.jp"].smtputf8
    reply = message_from_bytes(received["jānis@example.lv"].content, policy=default_policy)
    assert reply["To"] == "jānis@example.lv"
    assert "FORM-MISSING" in reply["X-Pasts-Codes"]
    assert dep.inbox("Quarantine") == [] and dep.inbox() == []


def ledger(dep: Deployment) -> dict[str, str]:
    with dep.runtime() as rt, rt.store.session() as s:
        return {str(r.sender): r.status for r in s.scalars(select(ReceivedMessage))}


def test_senders_no_reply_can_reach_are_recorded_not_quarantined(
        ascii_deployment: Deployment) -> None:
    # This server does not offer SMTPUTF8; taro.@ and the IP literal are unusable.
    dep = ascii_deployment
    # Form-less applications (each carries a CSR; bare words would be junk).
    csr = make_csr("connector.example.lv")
    dep.deliver(utf8_mail("jdöe@mächine.example", "Säying Hello", csr))
    dep.deliver(application_mail(sender="taro.@docomo.ne.jp", to=TO, subject="申請", csr=csr))
    dep.deliver(utf8_mail("ops@[192.0.2.7]", "Question", csr))
    for _ in range(4):  # Past daemon.max_attempts: nothing is retried into quarantine.
        dep.run_once()
    assert dep.smtp.messages == []
    assert dep.inbox() == [] and dep.inbox("Quarantine") == []
    assert len(dep.inbox("Processed")) == 3
    assert set(ledger(dep).values()) == {"processed"}

    code, listed = dep.cli("list")
    refs = {line.split()[5]: line.split()[0] for line in listed.strip().splitlines()}
    assert set(refs) == {"jdöe@mächine.example", "taro.@docomo.ne.jp", "ops@[192.0.2.7]"}
    for sender, reason in (("jdöe@mächine.example", "does not offer SMTPUTF8"),
                           ("taro.@docomo.ne.jp", "period immediately before the @-sign"),
                           ("ops@[192.0.2.7]", "bracketed IP address")):
        code, shown = dep.cli("show", refs[sender])
        assert code == 0
        line = next(x for x in shown.splitlines() if "undeliverable:" in x)
        assert sender in line and reason in line, line
    code, digest = dep.cli("digest")
    assert code == 0
    section = digest.split("Applicants no reply can be written to", 1)[1]
    for ref in refs.values():
        assert ref in section
