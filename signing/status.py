"""The facts verification returns: frozen, picklable status types with a docstring per field.

Every verifier (:class:`signing.verifier.InProcessVerifier`, and
:class:`signing.isolation.IsolatedVerifier` across a process boundary)
answers with these types and raises only :class:`UnreadableInput`. They hold
facts (``intact``, ``valid``, ``trusted``, ``chain_problem``, coverage, times,
identities, qualification) and notes, never a SPEC code: :mod:`rules.signature`
computes every SIG-*/TS-* code from them (and from the workflow's signature
policy), and the ``FORM-UNREADABLE`` of an :class:`UnreadableInput` is intake's.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    # Only a type here: the daemon's process reads verdicts without loading pyHanko's signer stack.
    from pyhanko.sign.validation.status import TimestampSignatureStatus

#: How an enveloping level of a ``.p7m`` was written.
Encoding = Literal["der", "pem", "base64"]
#: What a signed file's innermost content is, by its bytes.
ContentKind = Literal["pdf", "p7m", "tsd", "xml", "zip", "other"]
#: What kind of Italian signed file arrived.
Container = Literal["p7m", "tsd", "m7m"]
#: Where a time-stamp over a whole file came from.
Source = Literal["tsd", "m7m", "tsr"]
#: Where a signature came from.
Kind = Literal["pades", "cms", "smime", "xades", "p7m"]
#: Why the signer's chain was not accepted (see :attr:`SignatureStatus.chain_problem`).
ChainProblem = Literal["revoked", "expired", "revocation-unknown", "untrusted"]


# -- qualification (the facts signing.trust.qualification finds) ----------------

QcKind = Literal["esign", "eseal", "web"]


@dataclass(frozen=True)
class Qualification:
    """Whether a signer's certificate was qualified at the signing time, and why."""

    source: Literal["trust-roots", "trusted-list", "qc-statements"]
    """What judged it: QcStatements under a ``trust_roots`` anchor, a trusted list, or
    QcStatements alone (a chain that reaches no anchor)."""

    qualified: bool
    """The certificate is an EU qualified certificate at the signing time."""

    qc_type: QcKind | None
    """What it is qualified for: e-signatures, e-seals or websites (``None``: not qualified)."""

    qscd: bool
    """The private key is on a qualified signature (or seal) creation device."""

    service: str | None = None
    """The trusted list's service that granted the qualification (``TERRITORY: name``)."""

    stale_list: str | None = None
    """Why the list that would judge this certificate is stale (then nothing is qualified)."""

    reasons: tuple[str, ...] = ()
    """Sentences for staff: how the conclusion was reached."""

    def to_record(self) -> dict[str, Any]:
        return {
            "source": self.source, "qualified": self.qualified, "qc_type": self.qc_type,
            "qscd": self.qscd, "service": self.service, "stale_list": self.stale_list,
            "reasons": list(self.reasons),
        }


@dataclass(frozen=True)
class TimestampQualification:
    """Whether a signature time-stamp comes from a qualified time-stamping service."""

    qualified: bool
    """The TSA is a granted QTST at the time-stamp's time (or under a ``trust_roots`` anchor)."""

    source: Literal["trust-roots", "trusted-list", "none"]
    """What judged it."""

    service: str | None = None
    """The QTST service on the list (``TERRITORY: name``)."""

    reasons: tuple[str, ...] = ()
    """Sentences for staff."""

    def to_record(self) -> dict[str, Any]:
        return {"qualified": self.qualified, "source": self.source, "service": self.service,
                "reasons": list(self.reasons)}


class UnreadableInput(ValueError):
    """The input cannot be read at all (not a PDF, truncated, encrypted, over limits).

    A fact, not a code: intake records it as the form's ``form_error``, which the
    rules answer with ``FORM-UNREADABLE`` (:mod:`rules.form`).
    """


class VerificationTimeout(UnreadableInput):
    """Verification overran its time limit; its thread may still be running."""


@dataclass(frozen=True)
class SignerIdentity:
    """Who signed, as the signer's certificate states it (strings NFC-normalised)."""

    common_name: str
    """Subject commonName."""

    given_name: str | None
    """Subject givenName."""

    surname: str | None
    """Subject surname."""

    personal_code: str | None
    """Subject serialNumber as-is, e.g. ``PNOLV-010190-12345`` (ETSI EN 319 412-1)."""

    organisation: str | None
    """Subject organizationName (for seals or organisation-bound certificates)."""

    organisation_identifier: str | None
    """Subject organizationIdentifier (2.5.4.97), e.g. ``NTRLV-40003000000``."""

    country: str | None
    """Subject countryName."""

    issuer: str
    """The issuer's distinguished name in RFC 4514 form."""

    serial_number: int
    """The certificate's serial number."""

    not_before: datetime
    """Start of the certificate's validity (UTC)."""

    not_after: datetime
    """End of the certificate's validity (UTC)."""

    qc_compliance: bool
    """The certificate declares QcCompliance (EU qualified certificate)."""

    qc_esign: bool
    """The certificate's QcType includes e-signature (``id-etsi-qct-esign``)."""

    qc_sscd: bool
    """The certificate declares the key is held in a QSCD."""

    certificate_der: bytes = field(repr=False)
    """The signer's certificate, DER-encoded."""


@dataclass(frozen=True)
class SignatureStatus:
    """The verdict on one signature."""

    field_name: str | None
    """Fully qualified name of the PDF signature field (``None`` for detached CMS)."""

    kind: Kind
    """Where the signature came from: a PDF, a detached ``.p7s``, S/MIME, an ASiC-E container,
    or an enveloping CAdES file (``.p7m``, see :mod:`signing.cms.p7m`)."""

    intact: bool
    """The signed data's digest matches the digest the signature covers."""

    valid: bool
    """The cryptographic signature verifies against the signer's public key."""

    trusted: bool
    """The signer's chain reaches a configured anchor and passed path validation."""

    signer: SignerIdentity | None
    """The signer's identity, or ``None`` when no signer certificate could be read."""

    signing_time: datetime | None
    """The signing time the signer claims (signed attribute or ``/M``); not proof."""

    timestamp_present: bool
    """A signature time-stamp token is attached to the signature (or, for a PDF, a document
    time-stamp or a time-stamp over the whole file stands in for it). Without one the
    signature has no proof of its time (``TS-MISSING`` where the policy requires one)."""

    timestamp_valid: bool
    """The time-stamp token is intact, its signature verifies and its imprint matches
    (only then is ``timestamp_time`` proof of the time, and the age limit judged from it)."""

    timestamp_trusted: bool
    """The time-stamp authority's chain reaches a configured anchor."""

    timestamp_time: datetime | None
    """The time the time-stamp token asserts (``genTime``); ``SIG-TOO-OLD`` is judged from it."""

    modified_after: bool
    """A later revision changed form data, pages or annotations after this signature."""

    covered_bytes: int | None
    """End of the ByteRange: the PDF prefix this signature covers (``None`` for CMS)."""

    notes: tuple[str, ...]
    """Human-readable reasons for logs and staff."""

    qualification: Qualification | None = None
    """The signer certificate's qualified status at the signing time (the time-stamp's time,
    else the verification time): whether it is qualified, for e-signatures, e-seals or
    websites (``qc_type``), on a QSCD (``qscd``), a stale list, and the reasons.
    ``None``: it could not be judged (no readable signer certificate)."""

    timestamp_qualification: TimestampQualification | None = None
    """Whether the signature time-stamp's TSA is a qualified service at its time, and why
    (``None``: no time-stamp, or one that is not valid and trusted, so not judged)."""

    validated: bool = True
    """The signature could be validated at all (``False``: it is broken beyond reading; the
    rules say only ``SIG-INVALID`` of it and apply no policy to its other facts)."""

    chain_problem: ChainProblem | None = None
    """Why the signer's chain was not accepted (``None``: ``trusted``, or the signature
    could not be validated): ``revoked`` (the certificate was revoked), ``expired`` (not
    valid at the signing time), ``revocation-unknown`` (its revocation status could not
    be established, under ``signing.revocation`` hard-fail), ``untrusted`` (the chain
    reaches no configured anchor, or another path problem)."""

    signed_attributes_der: bool = True
    """The CMS signed attributes are in DER order (RFC 5652 5.4: a sorted SET OF); the
    signature is computed over their DER encoding, so unsorted ones are ``SIG-INVALID``
    even when the bytes verify (DSS and the ETSI plug-tests: HASH_FAILURE)."""

    covers_all: bool = True
    """The signature covers everything it must: a PDF signature's ByteRange a whole
    revision; an ASiC-E signature every data file of the container (itself or through a
    counter-signature that verifies). ``False`` is ``SIG-INVALID``."""

    timestamp_trust_problem: str | None = None
    """Why a valid time-stamp's TSA is not trusted: pyHanko's AdES sub-indication
    (e.g. ``NO_CERTIFICATE_CHAIN_FOUND``); ``None`` when trusted, absent or not valid."""

    report_xml: str | None = field(default=None, repr=False)
    """pyHanko's ETSI TS 119 102-2 validation report of this signature (PAdES only)."""


@dataclass(frozen=True)
class FormFields:
    """The AcroForm values of one revision of a PDF, read by :mod:`signing.formfields`."""

    values: dict[str, str] = field(default_factory=dict, hash=False)
    """The decoded value of every terminal text, choice and button field, by qualified name."""

    pages: int = 0
    """The pages of that revision (intake refuses a form over ``limits.max_pdf_pages``)."""

    error: str | None = None
    """Why the fields cannot be read (intake's ``FORM-UNREADABLE``), else ``None``."""


@dataclass(frozen=True)
class FormVerdict:
    """The verdict on a signed document: every signature, and the time-stamps over the whole file."""

    signatures: tuple[SignatureStatus, ...]
    """One status per approval signature, in signing order (document time-stamps excluded)."""

    signer: SignerIdentity | None
    """The identity of the last (outermost) signature's signer."""

    signed_revision: bytes | None = field(default=None, repr=False)
    """``pdf[:covered_bytes]`` of the last signature: form fields must be read from this."""

    notes: tuple[str, ...] = ()
    """Document-level notes (document time-stamps, ignored signature fields)."""

    timestamps: tuple[FileTimestamp, ...] = ()
    """Time-stamps over the whole signed file (``.tsd``, ``.m7m``, ``.tsr``; see
    :attr:`SignedFile.timestamps`), judged by the rules beside the signatures."""

    signed_fields: FormFields | None = None
    """The form fields of :attr:`signed_revision` (of the whole PDF when it is ``None``), read
    from the reader the PDF was verified with; ``None`` when the verifier read no PDF form
    (a container, a detached signature's content): the caller reads them itself."""

    final_fields: FormFields | None = None
    """The form fields of the final revision: :attr:`signed_fields` itself when the last
    signature covers the whole file (or there is none); compared with it for a value
    changed after signing."""


@dataclass(frozen=True)
class AsicVerdict:
    """The verdict on an ASiC-E container: its signatures and the files they sign."""

    verdict: FormVerdict
    """The signatures' verdict, with the facts of a signed PDF's (each status has
    ``kind="xades"``, or ``kind="cms"`` for a CAdES signature)."""

    documents: tuple[tuple[str, bytes], ...] = field(repr=False)
    """Every data file as ``(name, content)``, in container order (``META-INF`` excluded)."""

    form_name: str | None
    """The name of the first ``.pdf`` data file, or ``None`` without one."""

    form_bytes: bytes | None = field(repr=False)
    """The content of that PDF, or ``None``."""

    @property
    def signer(self) -> SignerIdentity | None:
        """The identity of the last signature's signer."""
        return self.verdict.signer


@dataclass(frozen=True)
class FileTimestamp:
    """The judgement of one time-stamp over a whole file (not over a signature value)."""

    source: Source
    """Where it came from: a ``.tsd``, a ``.m7m`` or a ``.tsr`` beside the file."""

    index: int
    """Its place among the file's tokens (0: over the content; later: renewals)."""

    time: datetime | None
    """The ``genTime`` the token asserts."""

    imprint_matches: bool
    """The token's message imprint is the digest of what it must cover."""

    valid: bool
    """The token is intact, its imprint matches and its signature verifies."""

    trusted: bool
    """The TSA's chain reaches a configured anchor (or a trusted list's TSA)."""

    tsa: SignerIdentity | None
    """The time-stamping authority, as its certificate states it."""

    qualification: TimestampQualification | None
    """Whether the TSA is a qualified service (``None``: not judged, token not valid)."""

    notes: tuple[str, ...]
    """Human-readable reasons."""

    status: TimestampSignatureStatus | None = field(default=None, repr=False, compare=False)
    """pyHanko's ``TimestampSignatureStatus`` (``None`` when it could not be validated).

    It dates a signer of the file that has no signature time-stamp of its own;
    it is not kept when the facts cross a process boundary."""

    trust_problem: str | None = None
    """Why a valid token's TSA is not trusted (pyHanko's AdES sub-indication); ``None``
    when it is trusted or the token is not valid."""

    def __reduce__(self) -> tuple[Callable[[dict[str, object]], FileTimestamp], tuple[object]]:
        # pyHanko's status holds validation paths that need not pickle; the
        # facts above are what crosses from a child verifier.
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values["status"] = None
        return (_rebuild_timestamp, (values,))


def _rebuild_timestamp(values: dict[str, object]) -> FileTimestamp:
    return FileTimestamp(**values)  # type: ignore[arg-type]


@dataclass(frozen=True)
class EnvelopeLevel:
    """One enveloping SignedData of a ``.p7m`` and the verdict on its signers."""

    depth: int
    """1 for the outermost level (the last signer), 2 for the one inside it, ..."""

    encoding: Encoding
    """How this level was written: DER, PEM or bare base64 text."""

    content_type: str
    """The eContentType (dotted OID, or asn1crypto's name such as ``data``)."""

    content_size: int
    """Bytes of the eContent this level signs."""

    verdict: FormVerdict
    """Each SignerInfo of this level judged over the eContent (``kind="p7m"``)."""


@dataclass(frozen=True)
class SignedFile:
    """An Italian signed file unwrapped: every level judged, and what was signed."""

    container: Container
    """What arrived: a ``.p7m`` (with or without a ``.tsr`` beside it), a ``.tsd``, a ``.m7m``."""

    levels: tuple[EnvelopeLevel, ...]
    """The ``.p7m`` levels, outermost first (empty: a ``.tsd`` over an unsigned file)."""

    timestamps: tuple[FileTimestamp, ...]
    """Time-stamps over the whole file (``.tsd``, ``.m7m``, ``.tsr``), first over the content."""

    content: bytes = field(repr=False)
    """The innermost content: the file that was signed (the form PDF, normally)."""

    content_type: ContentKind
    """What the innermost content is, by its bytes."""

    file_name: str | None = None
    """The file name a ``.tsd`` records for its content (``metaData.fileName``)."""

    notes: tuple[str, ...] = ()
    """Notes on the container for staff."""

    @property
    def verdict(self) -> FormVerdict:
        """All levels' signatures as one verdict, in signing order (innermost first).

        It carries the file time-stamps (``timestamps``) for the rules;
        ``signer`` is the outermost level's signer. Without a level it holds
        no signature (``SIG-MISSING`` to the rules).
        """
        statuses: list[SignatureStatus] = []
        for level in reversed(self.levels):
            statuses.extend(level.verdict.signatures)
        notes = [*self.notes]
        for level in self.levels:
            notes.extend(level.verdict.notes)
        return FormVerdict(
            signatures=tuple(statuses),
            signer=self.levels[0].verdict.signer if self.levels else None,
            signed_revision=None,
            notes=tuple(notes),
            timestamps=self.timestamps,
        )
