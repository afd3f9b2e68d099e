"""Field formats, and reading, rendering and filling AcroForm PDFs.

Everything runs on real PDFs: forms rendered by ``render_form``, the
pyHanko corpus form, PDFs built with pypdf, and a pyHanko signature over a
filled form.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    ByteStringObject,
    DecodedStreamObject,
    DictionaryObject,
    FloatObject,
    NameObject,
    NumberObject,
    TextStringObject,
)

from intake.config import default_workflows
from intake.errors import PermanentError
from intake.forms.fill import fill_form
from intake.forms.read import form_values, read_form_fields
from intake.forms.render import render_form
from rules import formats
from rules.workflow import FieldSpec, WorkflowConfig
from signing.settings import VerifierSettings
from signing.verifier import InProcessVerifier
from tests.shared import CORPUS

SIMPLE_FORM = CORPUS / "pyhanko/pdf/minimal-with-simple-form.pdf"

LATVIAN = "Valsts reģionālās attīstības aģentūra – ĀČĒĢĪĶĻŅŠŪŽ āčēģīķļņšūž"
ITALIAN = "Città di Forlì: perché è così più àèéìòù"

# ---------------------------------------------------------------------------
# Formats.


@pytest.mark.parametrize(
    ("fmt", "value", "ok"),
    [
        ("email", "janis@iestade.lv", True),
        ("email", " Anna.Liepa+pasts@sub.iestade.lv ", True),
        ("email", "user@ģimene.lv", True),
        ("email", "Jānis <janis@iestade.lv>", False),
        ("email", "a@b.lv, c@d.lv", False),
        ("email", "janis@iestade", False),
        ("email", "janis@iestade.lv\r\nBcc: x@evil.lv", False),
        ("email", "janis@@iestade.lv", False),
        ("email", "@iestade.lv", False),
        ("email", "", False),
        ("reg-no", "40003000001", True),
        ("reg-no", " 40003000001 ", True),
        ("reg-no", "4000300000", False),
        ("reg-no", "400030000012", False),
        ("reg-no", "40003 000001", False),
        ("reg-no", "٤0003000001", False),  # An Arabic-Indic digit is not ASCII.
        ("yes-no", "yes", True),
        ("yes-no", "NO", True),
        ("yes-no", "Jā", True),
        ("yes-no", "nē", True),
        ("yes-no", "sì", True),
        ("yes-no", "si", True),
        ("yes-no", "maybe", False),
        ("yes-no", "", False),
        ("https-url", "https://iestade.lv/privatuma-politika", True),
        ("https-url", "HTTPS://example.it:8443/x?y=1", True),
        ("https-url", "http://iestade.lv/", False),
        ("https-url", "https:///path", False),
        ("https-url", "https://iestade.lv/a b", False),
        ("https-url", "https://exa mple.lv/", False),
        ("https-url", "https://iestade.lv:99999/", False),
        ("https-url", "javascript:alert(1)", False),
        ("phone", "+371 67 000 000", True),
        ("phone", "+39 06-1234-5678", True),
        ("phone", "67000000", True),
        ("phone", "12345", False),
        ("phone", "+371 6700 0000 ext 5", False),
        ("phone", "+" + "1" * 21, False),
        ("phone", "--1234567", False),
        ("list", "vdaa-api, e-adrese", True),
        ("list", "one", True),
        ("list", "a,,b", False),
        ("list", " , ", False),
        ("list", "", False),
    ],
)
def test_formats(fmt: str, value: str, ok: bool) -> None:
    assert formats.check(fmt, value) is ok


def test_unknown_format_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="unknown field format 'e-mail'"):
        formats.check("e-mail", "x@y.lv")


def test_normalise_yes_no() -> None:
    assert formats.normalise_yes_no(" JĀ ") is True
    assert formats.normalise_yes_no("ja\u0304") is True  # Decomposed ā.
    assert formats.normalise_yes_no("Sì") is True
    assert formats.normalise_yes_no("Nē") is False
    assert formats.normalise_yes_no("no") is False
    assert formats.normalise_yes_no("?") is None
    assert formats.split_list(" a , b,c ") == ["a", "b", "c"]


def test_shipped_workflows_use_known_formats() -> None:
    for wf in default_workflows():
        for spec in wf.fields:
            if spec.format:
                assert spec.format in formats.FORMATS, (wf.id, spec.name)


# ---------------------------------------------------------------------------
# Rendering and filling.

FORM_WORKFLOWS = [w for w in default_workflows() if w.needs_form and w.fields]


def _values_for(wf: WorkflowConfig) -> dict[str, str]:
    """Latvian and Italian values for every visible field of ``wf``."""
    values = {}
    for i, spec in enumerate(s for s in wf.fields if s.name != "form_id"):
        text = LATVIAN if i % 2 == 0 else ITALIAN
        if spec.max_length:
            text = text[: spec.max_length]
        if spec.min_length:
            text = (text + " ") * 3
        values[spec.name] = text
    return values


def _appearance_text(pdf: bytes, field_name: str) -> str:
    """The text pypdf extracts from a field's normal appearance stream.

    The appearance XObject is drawn on a fresh page, so that pypdf's own text
    extraction (through the font's encoding and ToUnicode) decodes it.
    """
    reader = PdfReader(BytesIO(pdf))
    for page in reader.pages:
        for annot_ref in page.get("/Annots", []):
            annot = annot_ref.get_object()
            if annot.get("/T") == field_name:
                normal = annot["/AP"]["/N"]
                writer = PdfWriter()
                out_page = writer.add_blank_page(width=600, height=200)
                xobj = normal.get_object().clone(writer).indirect_reference
                out_page[NameObject("/Resources")] = DictionaryObject(
                    {
                        NameObject("/XObject"): DictionaryObject({NameObject("/Fm0"): xobj}),
                    }
                )
                content = DecodedStreamObject()
                content.set_data(b"q 1 0 0 1 10 10 cm /Fm0 Do Q")
                out_page[NameObject("/Contents")] = writer._add_object(content)
                buf = BytesIO()
                writer.write(buf)
                return PdfReader(buf).pages[0].extract_text()
    raise AssertionError(f"no widget for {field_name}")


@pytest.mark.parametrize("wf", FORM_WORKFLOWS, ids=lambda w: w.id)
@pytest.mark.parametrize("language", ["en", "lv", "it"])
def test_render_blank_form(wf: WorkflowConfig, language: str) -> None:
    pdf = render_form(wf, language=language)
    assert pdf.startswith(b"%PDF-")
    fields = read_form_fields(pdf)
    assert fields["form_id"] == wf.id
    assert set(fields) == {s.name for s in wf.fields} | {"form_id"}
    assert all(v == "" for k, v in fields.items() if k != "form_id")
    # The form_id widget is hidden and read-only; the labels are on the page.
    reader = PdfReader(BytesIO(pdf))
    page_text = "".join(p.extract_text() for p in reader.pages)
    for spec in wf.fields:
        if spec.name != "form_id":
            assert (spec.label or spec.name) in page_text.replace("\n", " ")
    form_id = next(
        a.get_object()
        for a in reader.pages[0].get("/Annots", ArrayObject())  # type: ignore[attr-defined]
        if a.get_object().get("/T") == "form_id"
    )
    assert form_id["/F"] & 2 and form_id["/Ff"] & 1


@pytest.mark.parametrize("wf", FORM_WORKFLOWS, ids=lambda w: w.id)
def test_fill_and_read_back_unicode(wf: WorkflowConfig) -> None:
    values = _values_for(wf)
    filled = fill_form(render_form(wf), values)
    read = read_form_fields(filled)
    assert read == {**values, "form_id": wf.id}
    first = next(iter(values))
    assert values[first] in _appearance_text(filled, first).replace("\n", "")


def test_multiline_appearance_wraps_and_shows_all_words() -> None:
    wf = next(w for w in default_workflows() if w.id == "service-publication")
    text = "Pakalpojums ļauj iesniegt pieteikumus elektroniski un saņemt atbildi e-adresē. " * 2
    filled = fill_form(render_form(wf), {"service_description": text})
    shown = _appearance_text(filled, "service_description")
    assert len(shown.strip().splitlines()) >= 2
    assert shown.split() == text.split()


def test_characters_outside_the_font_keep_their_value() -> None:
    wf = WorkflowConfig(id="t", prefix="T", fields=(FieldSpec(name="name"),))
    value = "Ştefan Ærøskøbing Дмитрий"
    filled = fill_form(render_form(wf), {"name": value})
    assert read_form_fields(filled)["name"] == value
    shown = _appearance_text(filled, "name")
    # Accented letters fall back to their base letter; Cyrillic shows as "?".
    assert shown.startswith("Stefan Ærøskøbing ???????")


def test_fill_rejects_unknown_fields() -> None:
    wf = FORM_WORKFLOWS[0]
    with pytest.raises(ValueError, match="no_such_field"):
        fill_form(render_form(wf), {"no_such_field": "x"})


def test_render_without_fields_and_many_fields() -> None:
    empty = WorkflowConfig(id="empty", prefix="E")
    assert read_form_fields(render_form(empty)) == {"form_id": "empty"}
    many = WorkflowConfig(
        id="many", prefix="M", fields=tuple(FieldSpec(name=f"f{i}") for i in range(60))
    )
    pdf = render_form(many)
    assert len(PdfReader(BytesIO(pdf)).pages) > 1
    assert len(read_form_fields(pdf)) == 61


# ---------------------------------------------------------------------------
# Signing a filled form with pyHanko.


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "Jānis Bērziņš"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "LV"),
        ]
    )
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(key, hashes.SHA256())
    )
    key_file = tmp_path / "key.pem"
    cert_file = tmp_path / "cert.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_file, cert_file


def test_filled_form_signs_with_pyhanko_and_validates(tmp_path: Path) -> None:
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign import signers
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    wf = next(w for w in default_workflows() if w.id == "eaddress-production")
    values = _values_for(wf)
    filled = fill_form(render_form(wf, language="lv"), values)
    key_file, cert_file = _self_signed(tmp_path)
    signer = signers.SimpleSigner.load(str(key_file), str(cert_file))
    assert signer is not None
    writer = IncrementalPdfFileWriter(BytesIO(filled))
    signed = signers.sign_pdf(
        writer, signers.PdfSignatureMetadata(field_name="Signature1"), signer=signer
    ).getvalue()
    assert signed.startswith(filled)  # An incremental update over the whole fill.

    # The daemon reads the same values from the signed file.
    assert read_form_fields(signed) == {**values, "form_id": wf.id}
    reader = PdfFileReader(BytesIO(signed))
    (sig,) = reader.embedded_signatures
    assert signer.signing_cert is not None
    status = validate_pdf_signature(sig, ValidationContext(trust_roots=[signer.signing_cert]))
    assert status.intact and status.valid
    assert status.coverage is not None and status.coverage.name == "ENTIRE_FILE"


# ---------------------------------------------------------------------------
# Reading foreign and broken PDFs.


def test_corpus_form_reads_and_fills() -> None:
    template = SIMPLE_FORM.read_bytes()
    assert read_form_fields(template) == {"TextField1": ""}
    filled = fill_form(template, {"TextField1": LATVIAN})
    assert read_form_fields(filled) == {"TextField1": LATVIAN}
    assert LATVIAN in _appearance_text(filled, "TextField1").replace("\n", "")


def test_signed_corpus_pdf_reads() -> None:
    # Only signature fields: no form data, and no error.
    assert (
        read_form_fields((CORPUS / "pyhanko/pdf/minimal-two-fields-signed-twice.pdf").read_bytes())
        == {}
    )


def _pdf_with_fields(fields: list[DictionaryObject]) -> bytes:
    writer = PdfWriter()
    page = writer.add_blank_page(width=300, height=300)
    refs = ArrayObject()
    for f in fields:
        f[NameObject("/P")] = page.indirect_reference
        refs.append(writer._add_object(f))
    page[NameObject("/Annots")] = refs
    writer.root_object[NameObject("/AcroForm")] = DictionaryObject({NameObject("/Fields"): refs})
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def _widget(name: str, ft: str, **extra: object) -> DictionaryObject:
    d = DictionaryObject(
        {
            NameObject("/Type"): NameObject("/Annot"),
            NameObject("/Subtype"): NameObject("/Widget"),
            NameObject("/FT"): NameObject(ft),
            NameObject("/T"): TextStringObject(name),
            NameObject("/Rect"): ArrayObject(
                [FloatObject(10), FloatObject(10), FloatObject(200), FloatObject(30)]
            ),
        }
    )
    for key, value in extra.items():
        d[NameObject("/" + key)] = value  # type: ignore[assignment]
    return d


def test_text_string_encodings() -> None:
    """PDFDocEncoding, UTF-16BE with BOM and UTF-8 with BOM all read as Unicode."""
    pdf = _pdf_with_fields(
        [
            _widget("pdfdoc", "/Tx", V=ByteStringObject("Città più".encode("latin-1"))),
            _widget("utf16", "/Tx", V=ByteStringObject(b"\xfe\xff" + LATVIAN.encode("utf-16-be"))),
            _widget("utf8", "/Tx", V=ByteStringObject(b"\xef\xbb\xbf" + ITALIAN.encode("utf-8"))),
            # Decomposed input is normalised to NFC.
            _widget("nfd", "/Tx", V=TextStringObject("ša\u0304")),
        ]
    )
    assert read_form_fields(pdf) == {
        "pdfdoc": "Città più",
        "utf16": LATVIAN,
        "utf8": ITALIAN,
        "nfd": "šā",
    }


def test_buttons_choices_and_hierarchy() -> None:
    def box(name: str, state: str) -> DictionaryObject:
        normal = DictionaryObject(
            {NameObject("/On"): DecodedStreamObject(), NameObject("/Off"): DecodedStreamObject()}
        )
        return _widget(
            name,
            "/Btn",
            V=NameObject(state),
            AS=NameObject(state),
            AP=DictionaryObject({NameObject("/N"): normal}),
        )

    kid = _widget("city", "/Tx", V=TextStringObject("Rīga"))
    del kid["/FT"]
    parent_kids = ArrayObject()
    parent = DictionaryObject(
        {
            NameObject("/T"): TextStringObject("address"),
            NameObject("/FT"): NameObject("/Tx"),
            NameObject("/Kids"): parent_kids,
        }
    )
    pdf_writer_fields = [
        box("agree", "/On"),
        box("decline", "/Off"),
        _widget(
            "lang",
            "/Ch",
            V=TextStringObject("Latviešu"),
            Opt=ArrayObject([TextStringObject("Latviešu")]),
        ),
        _widget("push", "/Btn", Ff=NumberObject(1 << 16)),
    ]
    writer = PdfWriter()
    page = writer.add_blank_page(width=300, height=300)
    refs = ArrayObject()
    for f in pdf_writer_fields:
        refs.append(writer._add_object(f))
    parent_ref = writer._add_object(parent)
    kid[NameObject("/Parent")] = parent_ref
    kid_ref = writer._add_object(kid)
    parent_kids.append(kid_ref)
    refs.append(parent_ref)
    page[NameObject("/Annots")] = ArrayObject([*refs[:4], kid_ref])
    writer.root_object[NameObject("/AcroForm")] = DictionaryObject({NameObject("/Fields"): refs})
    out = BytesIO()
    writer.write(out)
    pdf = out.getvalue()
    assert read_form_fields(pdf) == {
        "agree": "yes",
        "decline": "no",
        "lang": "Latviešu",
        "address.city": "Rīga",
    }
    # Check boxes fill with yes/no in any of the three languages.
    refilled = fill_form(pdf, {"agree": "nē", "decline": "sì", "address.city": "Forlì"})
    assert read_form_fields(refilled) == {
        "agree": "no",
        "decline": "yes",
        "lang": "Latviešu",
        "address.city": "Forlì",
    }
    with pytest.raises(ValueError, match="check box"):
        fill_form(pdf, {"agree": "perhaps"})


def _encrypted() -> bytes:
    writer = PdfWriter(clone_from=PdfReader(SIMPLE_FORM))
    writer.encrypt(user_password="", owner_password="owner", algorithm="AES-128")
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: b"", id="empty"),
        pytest.param(lambda: b"not a pdf at all" * 100, id="garbage"),
        pytest.param(lambda: SIMPLE_FORM.read_bytes()[:300], id="truncated"),
        pytest.param(lambda: b"%PDF-1.7\n" + bytes(range(256)) * 20, id="header-then-noise"),
        pytest.param(_encrypted, id="encrypted"),
    ],
)
def test_unreadable_pdfs(make: object) -> None:
    data = make()  # type: ignore[operator]
    with pytest.raises(PermanentError) as info:
        read_form_fields(data)
    assert info.value.code == "FORM-UNREADABLE"
    with pytest.raises(PermanentError) as info2:
        fill_form(data, {})
    assert info2.value.code == "FORM-UNREADABLE"


def test_page_limit() -> None:
    pdf = render_form(FORM_WORKFLOWS[0])
    with pytest.raises(PermanentError) as info:
        read_form_fields(pdf, max_pages=0)
    assert info.value.code == "FORM-UNREADABLE"
    assert read_form_fields(pdf, max_pages=1)["form_id"] == FORM_WORKFLOWS[0].id


def test_field_tree_cycle_is_not_followed() -> None:
    writer = PdfWriter()
    writer.add_blank_page(width=100, height=100)
    node = DictionaryObject(
        {NameObject("/T"): TextStringObject("loop"), NameObject("/FT"): NameObject("/Tx")}
    )
    ref = writer._add_object(node)
    node[NameObject("/Kids")] = ArrayObject([ref])
    writer.root_object[NameObject("/AcroForm")] = DictionaryObject(
        {NameObject("/Fields"): ArrayObject([ref])}
    )
    out = BytesIO()
    writer.write(out)
    # The self-reference is skipped; the node reads as one empty field.
    assert read_form_fields(out.getvalue()) == {"loop": ""}


def _nested_fields(depth: int) -> bytes:
    """A blank page whose one field has ``depth`` levels of named kids under it."""
    writer = PdfWriter()
    writer.add_blank_page(width=100, height=100)
    top = DictionaryObject({NameObject("/T"): TextStringObject("n0")})
    node = top
    for level in range(1, depth + 1):
        kid = DictionaryObject({NameObject("/T"): TextStringObject(f"n{level}"),
                                NameObject("/FT"): NameObject("/Tx")})
        node[NameObject("/Kids")] = ArrayObject([writer._add_object(kid)])
        node = kid
    writer.root_object[NameObject("/AcroForm")] = DictionaryObject(
        {NameObject("/Fields"): ArrayObject([writer._add_object(top)])}
    )
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def test_a_deep_field_tree_is_unreadable_but_still_verified() -> None:
    assert list(read_form_fields(_nested_fields(30))) == [".".join(f"n{i}" for i in range(31))]
    deep = _nested_fields(40)
    with pytest.raises(PermanentError) as info:
        read_form_fields(deep)
    assert info.value.code == "FORM-UNREADABLE"
    assert "too deep" in str(info.value)
    # The verifier reads the same facts: verification is not refused, the fields are.
    verdict = InProcessVerifier(VerifierSettings(trust_roots=(), allow_fetching=False)
                                ).verify_pdf_sync(deep)
    assert verdict.signatures == ()
    assert verdict.signed_fields is not None
    assert verdict.signed_fields.error == "form field tree is too deep"
    with pytest.raises(PermanentError) as again:
        form_values(verdict.signed_fields, max_pages=200)
    assert again.value.code == "FORM-UNREADABLE"


def test_a_page_tree_cycle_is_unreadable() -> None:
    writer = PdfWriter()
    writer.add_blank_page(width=100, height=100)
    pages = writer.root_object["/Pages"].get_object()
    kids = pages["/Kids"]
    kids.append(writer.root_object.raw_get("/Pages"))  # the tree holds itself
    out = BytesIO()
    writer.write(out)
    with pytest.raises(PermanentError) as info:
        read_form_fields(out.getvalue())
    assert info.value.code == "FORM-UNREADABLE"
