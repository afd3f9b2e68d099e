"""What an attachment is (form, CSR, p7s, ASiC, other), sniffed from its content first, then its name
and type; the linear PEM scanner; file names and dispositions.
"""

from __future__ import annotations

import contextlib
import re
import unicodedata
import zipfile
from email.header import decode_header, make_header
from email.message import Message
from io import BytesIO
from typing import Any

from intake.mime.text import _clean, _unsurrogate
from intake.mime.types import (
    _PEM_BEGIN,
    _PEM_ENDS,
    _PEM_LABELS,
    ASIC_EXTENSIONS,
    DER_CSR_EXTENSIONS,
    P7S_TYPES,
    TSR_TYPES,
    AttachmentKind,
)


def _pem_csr_block(data: bytes) -> tuple[bool, bytes] | None:
    """(NEW label?, text between the armour lines) of the first PEM CSR, or None.

    The block ends at the first END line after the first BEGIN line, and
    starts at the last BEGIN line before that END. Each step is one
    ``bytes.find``/``rfind`` per label: linear in ``data``.
    """
    begins = [at for label in _PEM_LABELS if (at := data.find(_PEM_BEGIN + label)) >= 0]
    if not begins:
        return None
    first = min(begins)
    ends = [at for marker in _PEM_ENDS if (at := data.find(marker, first)) >= 0]
    if not ends:
        return None
    end = min(ends)
    start, new = first, False
    for label in _PEM_LABELS:
        at = data.rfind(_PEM_BEGIN + label, first, end)
        if at >= start:
            start, new = at, label.startswith(b"NEW")
    begin_len = len(_PEM_BEGIN) + len(_PEM_LABELS[1] if new else _PEM_LABELS[0])
    return new, data[start + begin_len : end]


def find_pem_csr(data: bytes) -> bytes | None:
    """The first PEM CSR block in ``data``, re-wrapped with clean line ends."""
    block = _pem_csr_block(data)
    if block is None:
        return None
    new, armoured = block
    label = b"NEW CERTIFICATE REQUEST" if new else b"CERTIFICATE REQUEST"
    body = re.sub(rb"[^A-Za-z0-9+/=]", b"", armoured)
    if not body:
        return None
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        b"-----BEGIN "
        + label
        + b"-----\n"
        + b"\n".join(lines)
        + b"\n-----END "
        + label
        + b"-----\n"
    )


# ---------------------------------------------------------------------------
# Attachment kinds.


def _is_asic(data: bytes, name: str) -> bool:
    if not data.startswith(b"PK\x03\x04"):
        return False
    try:
        with zipfile.ZipFile(BytesIO(data)) as zf:
            if "mimetype" not in zf.namelist():
                return name.endswith(ASIC_EXTENSIONS)
            with zf.open("mimetype") as fh:
                mimetype = fh.read(200)
    except (zipfile.BadZipFile, OSError, ValueError, RuntimeError, NotImplementedError, EOFError):
        return name.endswith(ASIC_EXTENSIONS)
    return b"asic" in mimetype.lower() or name.endswith(ASIC_EXTENSIONS)


def _is_der_csr(data: bytes) -> bool:
    from cryptography import x509

    try:
        x509.load_der_x509_csr(data)
    except Exception:
        return False
    return True


def _is_signed_file(data: bytes) -> bool:
    """An Italian ``.p7m`` (DER, PEM or base64 CMS SignedData with eContent), ``.tsd`` or ``.m7m``.

    By content: the ``%PDF-`` showing through a ``.p7m``'s DER says nothing.
    """
    from signing.cms.p7m import sniff

    return sniff(data) is not None


def _is_timestamp_reply(data: bytes, name: str, content_type: str) -> bool:
    """An RFC 3161 ``.tsr`` (TimeStampResp or bare token), by content."""
    if data[:1] != b"\x30" and not name.endswith(".tsr") and content_type not in TSR_TYPES:
        return False
    from signing.cms.tsd import read_token

    try:
        read_token(data)
    except Exception:  # not a time-stamp.
        return False
    return True


def classify(data: bytes, filename: str | None, content_type: str) -> AttachmentKind:
    """What an attachment is: content sniffed first, then its name and type."""
    name = (filename or "").lower()
    if data.lstrip()[:5].startswith(b"%PDF"):
        return "form"
    if _is_signed_file(data):
        return "signed-file"
    if b"%PDF-" in data[:1024]:
        return "form"
    if _pem_csr_block(data[:65536]) is not None:
        return "csr"
    if _is_asic(data, name):
        return "asice"
    if content_type in P7S_TYPES or name.endswith(".p7s"):
        return "p7s"
    if name.endswith(DER_CSR_EXTENSIONS) and _is_der_csr(data):
        return "csr"
    if _is_timestamp_reply(data, name, content_type):
        return "tsr"
    return "other"


def _filename(part: Message, defects: list[str], charset: str | None = None) -> str | None:
    """The decoded, path-free file name of a part (RFC 2231 and RFC 2047)."""
    try:
        name = part.get_filename()
    except Exception as exc:
        defects.append(f"file name unreadable: {exc}")
        name = None
    if name is None:
        return None
    name = str(name)
    if "=?" in name:
        with contextlib.suppress(Exception):
            name = str(make_header(decode_header(name)))
    name, _ = _unsurrogate(name, charset or "latin-1")
    name = _clean(unicodedata.normalize("NFC", name))
    # Keep only the last path component: a name is never a path.
    name = re.split(r"[/\\]", name)[-1].strip()
    return name or None


def _disposition(part: Message) -> str:
    try:
        return (part.get_content_disposition() or "").lower()
    except Exception:
        return ""


def _content_type(part: Message) -> str:
    try:
        return part.get_content_type().lower()
    except Exception:
        return "application/octet-stream"


def _defect_text(where: str, defect: Any) -> str:
    doc = (type(defect).__doc__ or "").strip().splitlines()
    detail = str(defect) or (doc[0] if doc else "")
    return f"{where}: {type(defect).__name__}" + (f" ({detail})" if detail else "")
