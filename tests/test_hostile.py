"""Hostile attachments end to end: each is answered, none stops the daemon.

Each mail goes into the real Dovecot inbox; the daemon (verification in its
bounded child processes) runs once. Every mail must be answered in its thread
with FORM-UNREADABLE or with signature codes, the inbox must end empty, and
nothing may land in quarantine (which would mean the daemon itself failed).
"""

from __future__ import annotations

import zipfile
import zlib
from io import BytesIO
from typing import Any

import pytest
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

from intake.demo.samples import application_mail, filled_form, make_csr
from tests.daemon_env import EA, GOOD, TO, Deployment, message_id_of

BOMB_BYTES = 1 << 30  # what the compressed streams below expand to


def _bomb(n: int = BOMB_BYTES) -> bytes:
    """``n`` zero bytes, deflated (about a thousandth of that) without holding them."""
    packer = zlib.compressobj(9)
    chunk = b"\0" * (1 << 20)
    return b"".join([*(packer.compress(chunk) for _ in range(n >> 20)), packer.flush()])


def _pdf(objects: list[bytes], trailer: bytes = b"") -> bytes:
    """A PDF of numbered ``objects`` (1 is the catalog) with a classic xref table."""
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1, trailer, xref)
    return bytes(out)


def nested_arrays(_pki: Any) -> bytes:
    depth = 100_000
    return _pdf([b"<< /Type /Catalog /Pages 2 0 R /X %s%s >>" % (b"[" * depth, b"]" * depth),
                 b"<< /Type /Pages /Kids [] /Count 0 >>"])


def cyclic_trees(_pki: Any) -> bytes:
    return _pdf([b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields [3 0 R] >> >>",
                 b"<< /Type /Pages /Kids [2 0 R] /Count 1 >>",
                 b"<< /T (org_name) /FT /Tx /V (x) /Kids [3 0 R] >>"])


def xref_loop(_pki: Any) -> bytes:
    base = _pdf([b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [] /Count 0 >>"])
    xref_at = int(base.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    return base.replace(b"/Root 1 0 R ", b"/Root 1 0 R /Prev %d " % xref_at)


def signed_then_bomb(pki: Any) -> bytes:
    """A good signed form with a 1 GiB flate bomb appended in a later revision."""
    writer = IncrementalPdfFileWriter(BytesIO(pki.sign(filled_form(EA, GOOD))), strict=False)
    stream = generic.StreamObject(
        {generic.NameObject("/Filter"): generic.NameObject("/FlateDecode")},
        encoded_data=_bomb())
    writer.root[generic.NameObject("/X")] = writer.add_object(stream)
    writer.update_root()
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def truncated(pki: Any) -> bytes:
    data = pki.sign(filled_form(EA, GOOD))
    return data[: len(data) // 2]


def encrypted(_pki: Any) -> bytes:
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(BytesIO(filled_form(EA, GOOD))))
    writer.encrypt("user-password", "owner-password", algorithm="AES-128")
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def edoc_bomb(_pki: Any) -> bytes:
    """An ASiC-E container whose one entry inflates to 1 GiB."""
    out = BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as container:
        container.writestr("mimetype", "application/vnd.etsi.asic-e+zip",
                           compress_type=zipfile.ZIP_STORED)
        with container.open("pieteikums.pdf", "w", force_zip64=True) as entry:
            chunk = b"\0" * (1 << 20)
            for _ in range(BOMB_BYTES >> 20):
                entry.write(chunk)
    return out.getvalue()


HOSTILE = {
    "nested-arrays.pdf": (nested_arrays, {"FORM-UNREADABLE"}),
    "cyclic-trees.pdf": (cyclic_trees, {"FORM-UNREADABLE"}),
    "xref-loop.pdf": (xref_loop, {"FORM-UNREADABLE", "SIG-MISSING"}),
    "signed-then-bomb.pdf": (signed_then_bomb, {"FORM-UNREADABLE", "SIG-MODIFIED"}),
    "truncated.pdf": (truncated, {"FORM-UNREADABLE"}),
    "encrypted.pdf": (encrypted, {"FORM-UNREADABLE"}),
    "bomb.edoc": (edoc_bomb, {"FORM-UNREADABLE"}),
}


@pytest.mark.sections(limits={"verify_timeout_seconds": 20.0, "verify_memory_mb": 768},
                      verification={"required": False})
def test_hostile_attachments_are_answered_and_the_daemon_carries_on(
        deployment: Deployment, pki: Any) -> None:
    sent = {}
    for index, (name, (build, _codes)) in enumerate(HOSTILE.items()):
        data = build(pki)
        raw = application_mail(
            sender=f"hostile{index}@attacker.example", to=TO, subject=f"Pieteikums {name}",
            csr=make_csr(GOOD["csr_common_name"], GOOD["org_name"]),
            attachments=((name, "application/octet-stream", data),))
        deployment.deliver(raw)
        sent[name] = raw
    assert deployment.run_once() == 0

    for name, raw in sent.items():
        [reply] = deployment.replies_to(message_id_of(raw))
        codes = set((reply["X-Pasts-Codes"] or "").split(","))
        expected = HOSTILE[name][1]
        assert codes & expected, f"{name}: {codes}"
        assert reply["X-Pasts-Status"] == "incomplete", name
    assert deployment.inbox() == []
    assert deployment.inbox("Quarantine") == []
    assert len(deployment.inbox("Processed")) == len(HOSTILE)
