"""Signed PDFs for the demo and the tests: a form PDF, a PAdES signature, a document time-stamp."""

from __future__ import annotations

from collections.abc import Mapping
from io import BytesIO

from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.sign import signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.signers.pdf_signer import PdfTimeStamper
from pyhanko.sign.timestamps import TimeStamper
from pyhanko_certvalidator import ValidationContext


def sign_pdf(
    pdf: bytes,
    signer: signers.Signer,
    *,
    timestamper: TimeStamper | None = None,
    field_name: str = "Signature1",
    embed_validation_info: bool = False,
    validation_context: ValidationContext | None = None,
    md_algorithm: str = "sha256",
    bytes_reserved: int | None = None,
) -> bytes:
    """Sign ``pdf`` as PAdES (``ETSI.CAdES.detached``) in an incremental update.

    With ``embed_validation_info`` the chain's revocation information is fetched
    through ``validation_context`` and stored in a DSS (PAdES B-LT).
    """
    writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
    metadata = signers.PdfSignatureMetadata(
        field_name=field_name,
        md_algorithm=md_algorithm,
        subfilter=SigSeedSubFilter.PADES,
        embed_validation_info=embed_validation_info,
        validation_context=validation_context,
    )
    output = signers.sign_pdf(
        writer,
        metadata,
        signer=signer,
        timestamper=timestamper,
        bytes_reserved=bytes_reserved,
    )
    signed: bytes = output.getvalue()
    return signed


def add_document_timestamp(
    pdf: bytes,
    timestamper: TimeStamper,
    *,
    validation_context: ValidationContext | None = None,
) -> bytes:
    """Append a PAdES document time-stamp (the archival step of B-LTA)."""
    writer = IncrementalPdfFileWriter(BytesIO(pdf), strict=False)
    output = PdfTimeStamper(timestamper).timestamp_pdf(
        writer, md_algorithm="sha256", validation_context=validation_context
    )
    stamped: bytes = output.getvalue()
    return stamped


def _pdf_text(value: str) -> bytes:
    """Encode a PDF text string as a UTF-16BE hex string (safe for any Unicode)."""
    return b"<FEFF" + value.encode("utf-16-be").hex().upper().encode("ascii") + b">"


def make_form_pdf(fields: Mapping[str, str], *, hidden: Mapping[str, str] | None = None) -> bytes:
    """A one-page PDF with an AcroForm text field per entry, pre-filled with its value.

    ``hidden`` fields get the hidden widget flag (like the shipped ``form_id``).
    """
    all_fields = [(name, value, False) for name, value in fields.items()]
    all_fields += [(name, value, True) for name, value in (hidden or {}).items()]
    objects: list[bytes] = []
    # Object 1 is the catalog, 2 the page tree, 3 the page, 4 the font; fields follow.
    first_field = 5
    field_refs = " ".join(f"{first_field + i} 0 R" for i in range(len(all_fields))).encode()
    objects.append(
        b"<< /Type /Catalog /Pages 2 0 R /AcroForm << /Fields ["
        + field_refs
        + b"] /NeedAppearances true /DA (/Helv 10 Tf 0 g) /DR << /Font << /Helv 4 0 R >> >> >> >>"
    )
    objects.append(b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
    objects.append(
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /Helv 4 0 R >> >> /Annots ["
        + field_refs
        + b"] >>"
    )
    objects.append(
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"
    )
    for index, (name, value, is_hidden) in enumerate(all_fields):
        top = 800 - 30 * index
        flags = 2 if is_hidden else 4
        objects.append(
            b"<< /Type /Annot /Subtype /Widget /FT /Tx /F "
            + str(flags).encode()
            + b" /T "
            + _pdf_text(name)
            + b" /V "
            + _pdf_text(value)
            + f" /Rect [50 {top - 20} 545 {top}] /P 3 0 R /DA (/Helv 10 Tf 0 g) >>".encode()
        )
    out = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref_at = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for offset in offsets:
        out += f"{offset:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref_at}\n%%EOF\n".encode()
    return bytes(out)
