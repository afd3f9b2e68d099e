"""Poison mail (issue 10, "The daemon must not stall"): every parser of untrusted
bytes runs in linear time and bounded memory.

Before the fix (bench/bench_poison.py, one fresh process per parse):
144 KiB of BEGIN lines without END took 7.1 s in ``find_pem_csr``; 24 KiB of
``<a <a …`` took html.parser 23 s (144 KiB over 60 s); 144 KiB of RFC 2047
words in the Subject used 775 MiB. Each test below parses a megabyte or more
of the same shape within a bound that the old code missed by orders of magnitude.
"""

from __future__ import annotations

import base64
import resource
import time

import pytest
from cryptography import x509

from intake.demo.samples import application_mail, make_csr
from intake.mime.attachments import classify, find_pem_csr
from intake.mime.bodies import html_to_text
from intake.mime.parse import parse_message
from intake.mime.text import fit
from intake.mime.types import MAX_MESSAGE_ID_CHARS, MAX_SENDER_CHARS
from signing.isolation import IsolatedVerifier, TaskFailed
from tests.fixtures.pki import PkiFixture

HEAD = (b"From: a@example.lv\r\nTo: pasts@agency.test\r\nSubject: x\r\n"
        b"Message-ID: <poison@example.lv>\r\nMIME-Version: 1.0\r\n")
BEGIN = b"-----BEGIN CERTIFICATE REQUEST-----\n"
#: Seconds any one of these parses may take (the old code: hours for 1 MiB).
BOUND = 3.0


def timed(raw: bytes) -> float:
    start = time.perf_counter()
    parse_message(raw)
    return time.perf_counter() - start


def test_begin_lines_without_end_in_the_body_parse_in_linear_time() -> None:
    raw = HEAD + b"Content-Type: text/plain\r\n\r\n" + BEGIN * (1024 * 1024 // len(BEGIN))
    assert timed(raw) < BOUND
    assert find_pem_csr(BEGIN * 100_000) is None


def test_begin_lines_without_end_in_attachments_classify_in_linear_time() -> None:
    junk = base64.encodebytes(BEGIN * (60_000 // len(BEGIN)))
    part = (b"--b\r\nContent-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment; filename=x.bin\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + junk + b"\r\n")
    raw = (HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
           + part * 20 + b"--b--\r\n")
    assert timed(raw) < BOUND
    assert classify(BEGIN * 2000, "x.bin", "application/octet-stream") == "other"


def test_pem_csr_is_found_after_stray_armour_lines() -> None:
    pem = make_csr("ergli-connector.example.lv", "SIA Ērgļu Māja")
    noisy = b"-----END CERTIFICATE REQUEST-----\n" + BEGIN * 3 + pem + BEGIN
    found = find_pem_csr(noisy)
    assert found is not None
    assert x509.load_pem_x509_csr(found).public_key() == x509.load_pem_x509_csr(pem).public_key()
    assert classify(noisy, None, "text/plain") == "csr"


def test_unterminated_html_tags_parse_in_linear_time() -> None:
    raw = HEAD + b"Content-Type: text/html\r\n\r\n" + b"<a " * (1024 * 1024 // 3)
    assert timed(raw) < BOUND
    assert html_to_text("<<<<" * 100_000 + "x") is not None


def test_html_text_keeps_blocks_and_drops_scripts() -> None:
    text = html_to_text("<html><head><title>T</title><style>.x{color:red}</style></head><body>"
                        "<script>alert(1)</script><p>Sveiki &amp; labdien,</p>"
                        "<div>otrā&nbsp;rinda<br>trešā</div><!-- c --></body></html>")
    assert text == "Sveiki & labdien,\n\notrā rinda\ntrešā"
    assert html_to_text("") == "" and html_to_text("   ") == ""


def test_many_encoded_words_in_the_subject_parse_in_bounded_memory() -> None:
    word = b"=?utf-8?q?a?= "
    raw = (b"From: a@example.lv\r\nTo: pasts@agency.test\r\nSubject: "
           + word * (1024 * 1024 // len(word))
           + b"\r\nMessage-ID: <w@example.lv>\r\nContent-Type: text/plain\r\n\r\nhi\r\n")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert timed(raw) < BOUND
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    # The old parse of 144 KiB of them peaked at 775 MiB; 1 MiB now stays small.
    assert grown_mib < 200
    mail = parse_message(raw)
    assert mail.subject.startswith("aaaa") and mail.message_id == "<w@example.lv>"


def test_encoded_words_in_every_header_of_every_part_are_bounded() -> None:
    words = b"=?utf-8?q?a?= " * 40_000
    raw = (HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
           b"Content-Type: application/pdf; name=\"" + words + b"\"\r\n"
           b"Content-Disposition: attachment; filename=\"" + words + b"\"\r\n\r\n"
           b"%PDF-1.4\r\n--b--\r\n")
    assert timed(raw) < BOUND


def test_over_long_message_ids_and_senders_fit_their_columns() -> None:
    long_id = "<" + "m" * 3000 + "@example.lv>"
    long_from = "x" * 400 + "@example.lv"
    raw = (f"From: {long_from}\r\nTo: pasts@agency.test\r\nSubject: x\r\n"
           f"Message-ID: {long_id}\r\nIn-Reply-To: {long_id}\r\nReferences: {long_id}\r\n"
           f"Content-Type: text/plain\r\n\r\nhi\r\n").encode()
    mail = parse_message(raw)
    assert mail.message_id is not None and len(mail.message_id) <= MAX_MESSAGE_ID_CHARS
    assert mail.message_id == fit(long_id, MAX_MESSAGE_ID_CHARS)
    assert mail.message_id.startswith("<mmm") and mail.message_id.endswith(">")
    # The same id in the thread headers has the same short form (threads still match).
    assert mail.in_reply_to == mail.message_id and mail.references == (mail.message_id,)
    assert len(mail.from_addr) <= MAX_SENDER_CHARS and mail.from_addr.startswith("xxx")
    assert fit("<short@x>", MAX_MESSAGE_ID_CHARS) == "<short@x>"
    assert fit(long_id, 998) != fit(long_id.replace("m", "n", 1), 998)


# -- the parse in a bounded child ---------------------------------------------

TASKS = {"parse_message": "intake.mime.parse:parse_message", "sleep": "time:sleep",
         "exit": "os:_exit", "allocate": "builtins:bytearray"}


def test_the_parse_runs_in_the_bounded_child_and_each_failure_is_a_task_failure(
        pki: PkiFixture) -> None:
    verifier = IsolatedVerifier(pki.settings(), memory_bytes=512 * 1024 * 1024, tasks=TASKS)
    raw = application_mail(sender="peteris@example.lv", to="pasts@agency.test", subject="Sveiki")
    try:
        assert verifier.run_task("parse_message", raw, timeout=30) == parse_message(raw)
        with pytest.raises(TaskFailed, match="did not finish within 0.5 s"):
            verifier.run_task("sleep", 30, timeout=0.5)
        with pytest.raises(TaskFailed, match="died"):
            verifier.run_task("exit", 3, timeout=30)
        with pytest.raises(TaskFailed, match="out of memory"):
            verifier.run_task("allocate", 2 * 1024 * 1024 * 1024, timeout=30)
        with pytest.raises(ValueError, match="unknown task"):
            verifier.run_task("os:system", "true", timeout=1)
        # A fresh child takes over after each kill.
        assert verifier.run_task("parse_message", raw, timeout=30).subject == "Sveiki"
    finally:
        verifier.close()


def test_a_contact_name_of_any_length_fits_the_person_columns() -> None:
    from intake.app.tokens import PERSON_KEY_CHARS, person_key
    from intake.store.models import Application
    from tests.daemon_env import EA

    long_name = "Jānis " * 100
    app = Application(form_values={"contact_name": long_name}, applicant_email="j@ergli.example")
    key = person_key(app, EA)
    assert len(key) <= PERSON_KEY_CHARS and key.startswith("jānis jānis")
    assert key == person_key(Application(form_values={"contact_name": long_name + " "}), EA)
    assert person_key(Application(form_values={"contact_name": "Jānis  Bērziņš"}), EA) == "jānis bērziņš"


def test_a_mail_of_many_tiny_parts_is_read_up_to_the_part_bound() -> None:
    from intake.mime.types import MAX_PARTS

    part = b"--b\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment\r\n\r\nx\r\n"
    raw = HEAD + b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + part * 5000 + b"--b--\r\n"
    mail = parse_message(raw)
    assert len(mail.attachments) == MAX_PARTS - 1  # the multipart itself is one part
    assert any("MIME parts" in d for d in mail.defects)


def test_the_ledger_keeps_the_senders_address_not_an_encoded_display_name() -> None:
    from intake.mime.headers import ledger_headers

    raw = (b"From: =?utf-8?b?SsSBbmlzIELEk3J6acWGxaE=?= <janis@ergli.example>\r\n"
           b"Subject: x\r\nMessage-ID: <a@b>\r\n\r\nhi\r\n")
    assert ledger_headers(raw).sender == "janis@ergli.example"
    assert ledger_headers(b"From: anna@example.lv\r\n\r\n").sender == "anna@example.lv"
    # Nothing inside the brackets: the value is kept as it came.
    assert ledger_headers(b"From: Anna <>\r\n\r\n").sender == "Anna <>"
