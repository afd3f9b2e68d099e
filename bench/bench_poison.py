"""Time (and peak memory) of parse_message on the poison mails of issue 10.

    .venv/bin/python bench/bench_poison.py [KIB ...]
    PYTHONPATH=<other checkout> .venv/bin/python bench/bench_poison.py ...   # to compare

The tiny-parts case is what is left for the parse's bounded child
(``limits.parse_timeout_seconds``): linear, but slow per part in the stdlib.

Each case is built at the sizes given (KiB of the hostile part) and parsed in
a fresh child process, so the peak resident size is the parse's own.
"""

from __future__ import annotations

import multiprocessing
import resource
import sys
import time


def csr_body(size: int) -> bytes:
    line = b"-----BEGIN CERTIFICATE REQUEST-----\n"
    body = line * (size // len(line))
    return (b"From: a@example.lv\r\nTo: pasts@agency.test\r\nSubject: x\r\n"
            b"Message-ID: <p1@example.lv>\r\nContent-Type: text/plain\r\n\r\n" + body)


def csr_attachment(size: int) -> bytes:
    import base64
    line = b"-----BEGIN CERTIFICATE REQUEST-----\n"
    data = base64.encodebytes(line * (size // len(line)))
    return (b"From: a@example.lv\r\nTo: pasts@agency.test\r\nSubject: x\r\n"
            b"Message-ID: <p2@example.lv>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
            b"Content-Type: text/plain\r\n\r\nhi\r\n--b\r\n"
            b"Content-Type: application/octet-stream\r\n"
            b"Content-Disposition: attachment; filename=x.bin\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + data + b"\r\n--b--\r\n")


def html_tags(size: int) -> bytes:
    return (b"From: a@example.lv\r\nTo: pasts@agency.test\r\nSubject: x\r\n"
            b"Message-ID: <p3@example.lv>\r\nContent-Type: text/html\r\n\r\n"
            + b"<a " * (size // 3))


def subject_words(size: int) -> bytes:
    word = b"=?utf-8?q?a?= "
    return (b"From: a@example.lv\r\nTo: pasts@agency.test\r\nSubject: "
            + word * (size // len(word))
            + b"\r\nMessage-ID: <p4@example.lv>\r\nContent-Type: text/plain\r\n\r\nhi\r\n")


def tiny_parts(size: int) -> bytes:
    part = b"--b\r\nContent-Type: text/plain; n=%d\r\n\r\nx\r\n"
    count = size // len(part % 100000)
    return (b"From: a@example.lv\r\nTo: pasts@agency.test\r\nSubject: x\r\n"
            b"Message-ID: <p5@example.lv>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
            + b"".join(part % n for n in range(count)) + b"--b--\r\n")


CASES = {"csr-body": csr_body, "csr-attachment": csr_attachment, "html-tags": html_tags,
         "subject-words": subject_words, "tiny-parts": tiny_parts}


def _child(raw: bytes, out: object) -> None:
    from intake.mime.parse import parse_message
    start = time.perf_counter()
    parse_message(raw)
    elapsed = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    out.send((elapsed, peak))  # type: ignore[attr-defined]


def measure(raw: bytes, timeout: float) -> str:
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(raw, child))
    start = time.perf_counter()
    proc.start()
    if not parent.poll(timeout):
        proc.kill()
        proc.join()
        return f"> {timeout:.0f} s (killed)"
    elapsed, peak = parent.recv()
    proc.join()
    return f"{elapsed:7.2f} s, peak RSS {peak} MiB (wall {time.perf_counter() - start:.2f} s)"


def main(argv: list[str]) -> None:
    sizes = [int(a) for a in argv] or [24, 144]
    timeout = 60.0
    for name, build in CASES.items():
        for kib in sizes:
            raw = build(kib * 1024)
            print(f"{name:15} {kib:6} KiB ({len(raw):9} bytes): {measure(raw, timeout)}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
