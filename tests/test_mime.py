"""MIME parsing against the golden ``.eml`` corpus in ``tests/messages``.

Each ``x.eml`` is parsed and compared field by field with ``x.json``
(written by hand in ``tests/messages/make_corpus.py``). More checks below
cover limits, S/MIME byte exactness and inputs that must never raise.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from intake.mime.attachments import classify, find_pem_csr
from intake.mime.parse import parse_message
from intake.mime.types import Attachment, ParsedMail
from tests.shared import CORPUS

MESSAGES = Path(__file__).parent / "messages"
CASES = sorted(MESSAGES.glob("*.eml")) + sorted((MESSAGES / "malformed").glob("*.eml"))


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _attachment(a: Attachment) -> dict[str, Any]:
    return {
        "kind": a.kind,
        "filename": a.filename,
        "content_type": a.content_type,
        "sha256": sha(a.data),
        "depth": a.depth,
    }


def test_corpus_is_big_enough() -> None:
    assert len(list(MESSAGES.glob("*.eml"))) >= 15
    assert len(list((MESSAGES / "malformed").glob("*.eml"))) >= 6
    for eml in CASES:
        assert eml.with_suffix(".json").exists(), eml


@pytest.mark.parametrize("eml", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_golden(eml: Path) -> None:
    expected = json.loads(eml.with_suffix(".json").read_text(encoding="utf-8"))
    mail = parse_message(eml.read_bytes())
    assert isinstance(mail, ParsedMail)
    for key in (
        "message_id",
        "from_addr",
        "from_name",
        "reply_to",
        "subject",
        "in_reply_to",
        "auto_submitted",
        "bulk",
        "bounce",
    ):
        assert getattr(mail, key) == expected[key], key
    assert list(mail.references) == expected["references"]
    assert [_attachment(a) for a in mail.attachments] == expected["attachments"]
    assert (mail.form.filename if mail.form else None) == expected["form"]
    assert (mail.p7s.filename if mail.p7s else None) == expected["p7s"]
    assert (mail.asice.filename if mail.asice else None) == expected["asice"]
    assert (sha(mail.csr) if mail.csr is not None else None) == expected["csr"]
    if expected["smime"] is None:
        assert mail.smime is None
    else:
        assert mail.smime is not None
        assert sha(mail.smime[0]) == expected["smime"]["content"]
        assert sha(mail.smime[1]) == expected["smime"]["signature"]
    for fragment in expected["body_contains"]:
        assert fragment in mail.body_text, fragment
    if expected["defects"] == "none":
        assert mail.defects == ()
    else:
        assert mail.defects, "a malformed message must record defects"
    # Header injection defence holds for every message.
    assert "\r" not in mail.subject and "\n" not in mail.subject
    assert "\n" not in mail.from_name and "\n" not in mail.from_addr


def test_no_reply_reasons() -> None:
    def reason(name: str) -> str | None:
        return parse_message((MESSAGES / f"{name}.eml").read_bytes()).no_reply_reason

    assert reason("auto_reply") == "auto-submitted"
    assert reason("oof_bulk") == "bulk or list mail"
    assert reason("list_mail") == "bulk or list mail"
    assert reason("outlook") is None  # X-Auto-Response-Suppress alone is not auto mail.
    assert reason("gmail") is None
    no_from = parse_message((MESSAGES / "malformed" / "no_from.eml").read_bytes())
    assert no_from.no_reply_reason == "no sender address"


@pytest.mark.parametrize(
    ("header", "flag"),
    [
        ("Auto-Submitted: auto-generated", "auto_submitted"),
        ("Auto-Submitted: No", None),
        ("X-Autoreply: yes", "auto_submitted"),
        ("X-Autorespond: vacation", "auto_submitted"),
        ("Precedence: junk", "bulk"),
        ("Precedence: list", "bulk"),
        ("List-Unsubscribe: <https://x.example/u>", "bulk"),
        ("Return-Path: <>", "bounce"),
        ("X-Auto-Response-Suppress: All", None),
    ],
)
def test_flags_from_single_headers(header: str, flag: str | None) -> None:
    raw = f"From: a@b.lv\r\n{header}\r\nSubject: s\r\n\r\nbody\r\n".encode()
    mail = parse_message(raw)
    flags = {"auto_submitted": mail.auto_submitted, "bulk": mail.bulk, "bounce": mail.bounce}
    assert flags == {k: k == flag for k in flags}


def test_postmaster_is_a_bounce() -> None:
    mail = parse_message(b"From: Postmaster <postmaster@mx.lv>\r\nSubject: x\r\n\r\nfailed\r\n")
    assert mail.bounce and mail.no_reply_reason == "bounce or delivery report"


def test_reply_address_prefers_reply_to() -> None:
    mail = parse_message((MESSAGES / "thunderbird.eml").read_bytes())
    assert mail.reply_address == "it-atbalsts@iestade.lv"
    assert mail.date is not None and mail.date.utcoffset() is not None


def test_attachment_over_limit_is_not_kept() -> None:
    raw = (MESSAGES / "gmail.eml").read_bytes()
    mail = parse_message(raw, max_attachment_bytes=1500)
    pdf = next(a for a in mail.attachments if a.content_type == "application/pdf")
    # Its data is dropped, but it is still the form (answered FORM-UNREADABLE).
    assert pdf.kind == "form" and pdf.data == b""
    assert pdf.dropped_size is not None and pdf.dropped_size > 1500
    assert mail.form is pdf
    assert any("too large" in d and "modulo firmato à.pdf" in d for d in mail.defects)
    # The small CSR stays.
    assert mail.csr is not None


def test_smime_content_is_byte_exact() -> None:
    """The signed bytes are exactly the bytes between the boundaries, as CRLF."""
    raw = (MESSAGES / "smime_signed.eml").read_bytes()
    mail = parse_message(raw)
    assert mail.smime is not None
    content, signature = mail.smime
    assert content.startswith(b'Content-Type: multipart/mixed; boundary="inner-mixed"\r\n\r\n')
    assert content.endswith(b"--inner-mixed--\r\n")
    assert content in raw
    # The signature is a DER ContentInfo (SEQUENCE) carrying signedData.
    assert signature[:1] == b"\x30"
    assert bytes.fromhex("2a864886f70d010702") in signature
    # With LF-only line ends (a maildir written on Unix) the bytes are the same.
    lf = parse_message(raw.replace(b"\r\n", b"\n"))
    assert lf.smime is not None and lf.smime[0] == content


def test_opaque_pkcs7_mime_is_a_defect() -> None:
    raw = (
        b"From: a@b.lv\r\nSubject: opaque\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"\r\n'
        b"Content-Transfer-Encoding: base64\r\n\r\nMIIBAAYJKoZIhvcNAQcC\r\n"
    )
    mail = parse_message(raw)
    assert mail.smime is None
    assert any("pkcs7-mime" in d for d in mail.defects)


def test_classify_by_content_then_name() -> None:
    pdf = (CORPUS / "pyhanko/pdf/minimal-with-simple-form.pdf").read_bytes()
    der = (CORPUS / "cryptography-vectors/csr/rsa_sha256.der").read_bytes()
    old = (CORPUS / "cryptography-vectors/csr/ec_sha256_old_header.pem").read_bytes()
    asice = (CORPUS / "digidoc4j/valid-asice-esteid2018.asice").read_bytes()
    assert classify(b"junk" * 10 + pdf, "x.txt", "text/plain") == "form"
    assert classify(pdf, "a.p7s", "application/pkcs7-signature") == "form"
    assert classify(der, "r.p10", "application/octet-stream") == "csr"
    assert classify(der, "r.bin", "application/octet-stream") == "other"
    assert classify(b"\x30\x03\x02\x01\x00", "r.csr", "application/pkcs10") == "other"
    assert classify(old, None, "text/plain") == "csr"
    assert classify(asice, "x.zip", "application/zip") == "asice"
    assert classify(b"PK\x03\x04broken", "c.bdoc", "application/octet-stream") == "asice"
    assert classify(b"PK\x03\x04broken", "c.zip", "application/zip") == "other"
    assert classify(b"\x30\x80", "sig.p7s", "application/octet-stream") == "p7s"


def test_inline_csr_is_a_loadable_pem() -> None:
    mail = parse_message((MESSAGES / "inline_csr.eml").read_bytes())
    assert mail.csr is not None
    csr = x509.load_pem_x509_csr(mail.csr)
    expected = x509.load_pem_x509_csr(
        (CORPUS / "cryptography-vectors/csr/rsa_sha256.pem").read_bytes()
    )
    assert csr.subject == expected.subject
    assert csr.is_signature_valid


def test_find_pem_csr_in_quoted_reply() -> None:
    pem = (CORPUS / "cryptography-vectors/csr/ec_sha256_old_header.pem").read_bytes()
    quoted = b"> " + pem.replace(b"\n", b"\n> ")
    found = find_pem_csr(quoted)
    assert found is not None and found.startswith(b"-----BEGIN NEW CERTIFICATE REQUEST-----\n")
    assert x509.load_pem_x509_csr(found).is_signature_valid
    assert find_pem_csr(b"no csr here") is None


def test_html_body_used_when_no_plain() -> None:
    mail = parse_message((MESSAGES / "html_only.eml").read_bytes())
    assert "alert" not in mail.body_text and "color" not in mail.body_text


def test_deep_nesting_does_not_raise() -> None:
    parts = [b"From: a@b.lv\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"]
    depth = 200
    for i in range(depth):
        parts.append(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode())
    parts.append(b"Content-Type: text/plain\r\n\r\ninnermost\r\n")
    for i in reversed(range(depth)):
        parts.append(f"--b{i}--\r\n".encode())
    mail = parse_message(b"".join(parts))
    assert mail.from_addr == "a@b.lv"
    assert any("too deep" in d for d in mail.defects)


@pytest.mark.parametrize("seed", range(40))
def test_random_mutations_never_raise(seed: int) -> None:
    """Bytes flipped, cut or spliced in real messages still parse to a result."""
    rng = random.Random(seed)
    source = rng.choice(sorted(MESSAGES.glob("*.eml"))).read_bytes()
    data = bytearray(source)
    for _ in range(rng.randint(1, 30)):
        op = rng.random()
        pos = rng.randrange(len(data)) if data else 0
        if op < 0.4 and data:
            data[pos] = rng.randrange(256)
        elif op < 0.7:
            data[pos:pos] = rng.choice([b"\r\n", b"--", b"=?", b"\x00", b"\xff\xfe", b"; name*0*="])
        else:
            del data[pos : pos + rng.randint(1, 200)]
    mail = parse_message(bytes(data))
    assert isinstance(mail, ParsedMail)
    assert "\n" not in mail.subject


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"\r\n\r\n",
        b"\x00" * 100,
        b"From:\r\n\r\n",
        b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n",
    ],
)
def test_degenerate_inputs(raw: bytes) -> None:
    mail = parse_message(raw)
    assert mail.defects
    assert mail.from_addr == ""


def test_message_over_the_limit_keeps_its_header_only() -> None:
    from intake.demo.samples import application_mail

    raw = application_mail(sender="Jānis <janis@ergli.example>", to="pasts@agency.test",
                           subject="Pieteikums", form=b"%PDF-1.7\n" + b"0" * 5000)
    mail = parse_message(raw, max_message_bytes=4000)
    assert mail.oversized == len(raw)
    assert mail.from_addr == "janis@ergli.example" and mail.subject == "Pieteikums"
    assert mail.message_id is not None
    assert mail.form is None and mail.attachments == () and mail.body_text == ""
    assert any("over the limit of 4000" in d for d in mail.defects)
    assert parse_message(raw, max_message_bytes=len(raw)).oversized is None
