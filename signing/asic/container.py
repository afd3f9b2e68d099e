"""ASiC-E containers (ETSI EN 319 162-1): reading them safely, and the XML they hold.

An applicant may send the form PDF inside an ASiC-E container (``.asice``,
``.edoc``, ``.sce``, ``.bdoc``) instead of a PAdES-signed PDF. The container is
a ZIP file holding a ``mimetype`` entry, the data files, and one or more
``META-INF/*signatures*.xml`` documents whose ``ds:Signature`` elements sign the
data files by detached references (XAdES, :mod:`signing.asic.xades`), or
``META-INF/signature*.p7s`` CAdES signatures over an ``ASiCManifest``
(:mod:`signing.asic.cades`).

The container is read under the verifier's size limit, chunk by chunk, so a
ZIP bomb cannot exhaust memory; only a container that cannot be read at all
raises :class:`~signing.status.UnreadableInput`. XML is parsed without
entities, DTDs or network access.
"""

from __future__ import annotations

import base64
import re
import zipfile
from dataclasses import dataclass, field
from io import BytesIO

from lxml import etree
from signxml.algorithms import DigestAlgorithm

from signing.status import UnreadableInput

# The ``mimetype`` values of the containers this intake accepts (ASiC-E and BDOC).
ASIC_E_MIMETYPE = "application/vnd.etsi.asic-e+zip"
ACCEPTED_MIMETYPES = (ASIC_E_MIMETYPE, "application/vnd.bdoc-1.0", "application/vnd.bdoc-1.1")
# More entries than this and the container is refused unread.
MAX_ENTRIES = 1000
# The size of the pieces in which entries are decompressed.
_CHUNK = 64 * 1024

# XML namespaces.
DS_NS = "http://www.w3.org/2000/09/xmldsig#"
XADES_NS = "http://uri.etsi.org/01903/v1.3.2#"
XADES141_NS = "http://uri.etsi.org/01903/v1.4.1#"
ASIC_NS = "http://uri.etsi.org/02918/v1.2.1#"
MANIFEST_NS = "urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"
NS = {"ds": DS_NS, "xades": XADES_NS, "xades141": XADES141_NS}
SIGNED_PROPERTIES_TYPE = "http://uri.etsi.org/01903#SignedProperties"

# Digest algorithms a reference may use (anything else is SIG-INVALID).
REFERENCE_DIGESTS = frozenset(
    {DigestAlgorithm.SHA256, DigestAlgorithm.SHA384, DigestAlgorithm.SHA512}
)
# XML parsing that neither expands entities, nor fetches, nor accepts huge trees.
_PARSER_OPTIONS: dict[str, bool] = {
    "resolve_entities": False,
    "no_network": True,
    "huge_tree": False,
    "load_dtd": False,
    "remove_comments": False,
}
# A path segment a container entry may not have.
_BAD_SEGMENTS = {"", ".", ".."}


def xml_parser() -> etree.XMLParser:
    """A parser that neither expands entities, nor fetches, nor accepts huge trees."""
    return etree.XMLParser(**_PARSER_OPTIONS)


def parse_xml(data: bytes) -> etree._Element:
    """Parse an XML document from the container; raises ``ValueError`` on DTDs and entities."""
    root = etree.fromstring(data, parser=xml_parser())
    docinfo = root.getroottree().docinfo
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise ValueError("DTD declarations are not allowed")
    return root



def b64(text: str | None) -> bytes:
    """The bytes of base64 ``text`` (whitespace ignored, anything else refused)."""
    return base64.b64decode("".join((text or "").split()), validate=True)



# -- reading the container -------------------------------------------------------------


@dataclass(frozen=True)
class AsicContainer:
    """The parts of an ASiC-E container, read under the size limits."""

    mimetype: str
    """The content of the ``mimetype`` entry."""

    data_files: tuple[tuple[str, bytes], ...] = field(repr=False)
    """The signed content: every file outside ``META-INF/`` except ``mimetype``, in ZIP order."""

    signature_files: tuple[tuple[str, bytes], ...] = field(repr=False)
    """The XAdES signature documents, ``META-INF/*signatures*.xml``, sorted by name."""

    meta_files: tuple[tuple[str, bytes], ...] = field(repr=False)
    """Every other file under ``META-INF/`` (manifests, CAdES signatures, time-stamps)."""

    notes: tuple[str, ...] = ()
    """Oddities that do not stop verification (``mimetype`` not first, no manifest)."""

    def entry(self, name: str) -> bytes | None:
        """The content of a data or ``META-INF`` file by its name in the ZIP."""
        for entry_name, content in (*self.data_files, *self.meta_files):
            if entry_name == name:
                return content
        return None


def _check_name(name: str) -> None:
    """Refuse names that could escape a directory or mean different files to different tools."""
    if "\x00" in name or "\\" in name or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        raise UnreadableInput(f"the container holds an unsafe file name {name!r}")
    segments = name.rstrip("/").split("/")
    if any(segment in _BAD_SEGMENTS for segment in segments):
        raise UnreadableInput(f"the container holds an unsafe file name {name!r}")


def _is_signature_file(name: str) -> bool:
    """``META-INF/*signatures*.xml`` (EN 319 162-1, 4.4.3.2); CAdES ``signature*.p7s`` is not."""
    if not name.startswith("META-INF/"):
        return False
    base = name[len("META-INF/") :]
    return "/" not in base and "signatures" in base and base.endswith(".xml")


def read_container(data: bytes, *, max_bytes: int) -> AsicContainer:
    """Read an ASiC-E container; raises :class:`UnreadableInput` if it cannot be read safely.

    ``max_bytes`` bounds both the container and the total uncompressed size of
    its entries; entries are decompressed in chunks and reading stops as soon
    as the total goes over it. Nested archives stay opaque data files.

    The ``mimetype`` entry must be present and name ASiC-E or BDOC. That it is
    not the first entry, as the standard wants, is only a note: real containers
    (DSS-made, BDOC) often put it elsewhere. Unsafe or duplicate names,
    encrypted entries and compression other than stored/deflated are refused.
    """
    if len(data) > max_bytes:
        raise UnreadableInput(f"container is {len(data)} bytes, over the limit of {max_bytes}")
    try:
        archive = zipfile.ZipFile(BytesIO(data))
    except Exception as exc:  # any ZIP parser failure means unreadable.
        raise UnreadableInput(f"not a ZIP container: {exc}") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            raise UnreadableInput(f"the container has {len(infos)} entries, over {MAX_ENTRIES}")
        seen: set[str] = set()
        declared = 0
        for info in infos:
            _check_name(info.filename)
            if info.filename in seen:
                raise UnreadableInput(f"the container holds {info.filename!r} twice")
            seen.add(info.filename)
            if info.flag_bits & 0x1:
                raise UnreadableInput(f"{info.filename!r} is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise UnreadableInput(f"{info.filename!r} uses an unsupported compression method")
            declared += info.file_size
        if declared > max_bytes:
            raise UnreadableInput(
                f"the container's files would unpack to {declared} bytes, over {max_bytes}"
            )

        total = 0
        entries: list[tuple[str, bytes]] = []
        for info in infos:
            if info.is_dir():
                continue
            chunks: list[bytes] = []
            try:
                with archive.open(info) as stream:
                    while chunk := stream.read(_CHUNK):
                        total += len(chunk)
                        if total > max_bytes:
                            raise UnreadableInput(
                                f"the container's files unpack to more than {max_bytes} bytes"
                            )
                        chunks.append(chunk)
            except UnreadableInput:
                raise
            except Exception as exc:  # a corrupt entry means unreadable.
                raise UnreadableInput(f"{info.filename!r} cannot be unpacked: {exc}") from exc
            entries.append((info.filename, b"".join(chunks)))

    notes: list[str] = []
    contents = dict(entries)
    if "mimetype" not in contents:
        raise UnreadableInput("the container has no mimetype entry")
    mimetype = contents["mimetype"].decode("ascii", "replace").strip()
    if mimetype not in ACCEPTED_MIMETYPES:
        raise UnreadableInput(f"not an ASiC-E container (mimetype {mimetype[:80]!r})")
    if infos[0].filename != "mimetype":
        notes.append("the mimetype entry is not the first in the container")
    if "META-INF/manifest.xml" not in contents:
        notes.append("the container has no META-INF/manifest.xml")

    data_files = tuple(
        (name, content)
        for name, content in entries
        if name != "mimetype" and not name.startswith("META-INF/")
    )
    signature_files = tuple(
        sorted((item for item in entries if _is_signature_file(item[0])), key=lambda i: i[0])
    )
    meta_files = tuple(
        (name, content)
        for name, content in entries
        if name.startswith("META-INF/") and not _is_signature_file(name)
    )
    return AsicContainer(
        mimetype=mimetype,
        data_files=data_files,
        signature_files=signature_files,
        meta_files=meta_files,
        notes=tuple(notes),
    )
