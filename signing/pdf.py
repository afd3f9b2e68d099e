"""Strict verification of PAdES / CMS signatures and their time-stamps.

The verifier turns pyHanko's rich status objects into the SPEC's rule codes
(``SIG-*`` and ``TS-*``) and into frozen result objects that rules read. It
raises only :class:`UnreadableInput`, and only when the input cannot be read at
all; every problem with one signature becomes codes and notes on that
signature.

Judgement is strict: a later revision that changes form data, pages or
annotations after the last signature is ``SIG-MODIFIED`` even when pyHanko would
call it harmless form filling, because the daemon must read exactly the values
the signature covers (see :attr:`FormVerdict.signed_revision`).

Signed attributes must be DER: a SET that is not sorted is ``SIG-INVALID``,
although its bytes verify. A CMS with several SignerInfos (a PDF signature or
a ``.p7s``) is judged signer by signer, each in a copy that holds it alone.
RSA keys whose modulus is encoded as a negative INTEGER are read as unsigned
for verification only (:mod:`signing.tolerant`), with a note.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from asn1crypto import cms, core, pem
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.decode_limits import DecodePurpose
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign.diff_analysis import ModificationLevel
from pyhanko.sign.fields import enumerate_sig_fields
from pyhanko.sign.general import extract_certificate_info, find_unique_cms_attribute
from pyhanko.sign.validation import (
    async_validate_detached_cms,
    async_validate_pdf_signature,
    async_validate_pdf_timestamp,
)
from pyhanko.sign.validation.dss import DocumentSecurityStore, NoDSSFoundError
from pyhanko.sign.validation.generic_cms import (
    extract_tst_data_iter,
    validate_cert_usage,
    validate_tst_signed_data,
)
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.status import (
    SignatureCoverageLevel,
    StandardCMSSignatureStatus,
    TimestampSignatureStatus,
)
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.policy_decl import (
    NO_REVOCATION,
    CertRevTrustPolicy,
)
from pyhanko_certvalidator.util import get_pyca_cryptography_hash

from signing.fetching import FetchSettings, MessageFetching, withhold_stale
from signing.qc import qc_info
from signing.qualification import (
    ListsAndRootsTrustManager,
    Qualification,
    TimestampQualification,
    judge_signer,
    judge_timestamp,
    signer_problems,
)
from signing.tolerant import (
    NEGATIVE_MODULUS_NOTE,
    TolerantKeyPolicy,
    TolerantSignatureValidator,
    has_negative_modulus,
)
from signing.trustlists import TrustSettings, TrustSnapshot, load_snapshot, state_mtime

if TYPE_CHECKING:
    from signing.asic import AsicVerdict
    from signing.p7m import SignedFile

# The SubFilters of approval signatures this intake accepts.
_ACCEPTED_SUBFILTERS = ("/ETSI.CAdES.detached", "/adbe.pkcs7.detached")
# Modification levels after a signature that leave the signed content untouched.
_HARMLESS_LEVELS = (ModificationLevel.NONE, ModificationLevel.LTA_UPDATES)
# Trust problems meaning "the certificate was not valid at the validation time".
_EXPIRY_PROBLEMS = {
    "EXPIRED",
    "NOT_YET_VALID",
    "OUT_OF_BOUNDS_NO_POE",
    "OUT_OF_BOUNDS_NOT_REVOKED",
}
# Trust problems meaning "revoked".
_REVOCATION_PROBLEMS = {"REVOKED", "REVOKED_NO_POE", "REVOKED_CA_NO_POE"}
# Trust problems meaning "revocation status could not be determined".
_REVINFO_UNAVAILABLE = {"TRY_LATER", "REVOCATION_OUT_OF_BOUNDS_NO_POE"}
# The trust problem pyHanko reports for missing revocation data, among others.
_GENERAL_FAILURE = "CERTIFICATE_CHAIN_GENERAL_FAILURE"
# The SPEC code for a revocation status that could not be established.
REVOCATION_UNKNOWN = "SIG-REVOCATION-UNKNOWN"
# More SignerInfos than this in one PDF signature are not judged one by one
# (each is a copy of the PDF parsed again).
_MAX_SIGNERS = 8
# A bound on the depth of the AcroForm field tree we walk ourselves.
_MAX_FIELD_DEPTH = 32


class UnreadableInput(ValueError):
    """The input cannot be read at all (not a PDF, truncated, encrypted, over limits)."""

    code = "FORM-UNREADABLE"


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

    kind: Literal["pades", "cms", "smime", "xades", "p7m"]
    """Where the signature came from: a PDF, a detached ``.p7s``, S/MIME, an ASiC-E container,
    or an enveloping CAdES file (``.p7m``, see :mod:`signing.p7m`)."""

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
    """A signature time-stamp token is attached to the signature."""

    timestamp_valid: bool
    """The time-stamp token is intact, its signature verifies and its imprint matches."""

    timestamp_trusted: bool
    """The time-stamp authority's chain reaches a configured anchor."""

    timestamp_time: datetime | None
    """The time the time-stamp token asserts (``genTime``)."""

    modified_after: bool
    """A later revision changed form data, pages or annotations after this signature."""

    covered_bytes: int | None
    """End of the ByteRange: the PDF prefix this signature covers (``None`` for CMS)."""

    codes: tuple[str, ...]
    """The SPEC rule codes (``SIG-*``, ``TS-*``) raised by this signature, sorted."""

    notes: tuple[str, ...]
    """Human-readable reasons for logs and staff."""

    qualification: Qualification | None = None
    """The signer certificate's qualified status at the signing time (``None``: not judged)."""

    timestamp_qualification: TimestampQualification | None = None
    """Whether the signature time-stamp is from a qualified service (``None``: no time-stamp)."""

    report_xml: str | None = field(default=None, repr=False)
    """pyHanko's ETSI TS 119 102-2 validation report of this signature (PAdES only)."""

    @property
    def ok(self) -> bool:
        """True when this signature raised no code."""
        return not self.codes


@dataclass(frozen=True)
class FormVerdict:
    """The verdict on a signed document: every signature and the union of codes."""

    signatures: tuple[SignatureStatus, ...]
    """One status per approval signature, in signing order (document time-stamps excluded)."""

    codes: tuple[str, ...]
    """Sorted union of the signatures' codes; ``("SIG-MISSING",)`` without a signature."""

    signer: SignerIdentity | None
    """The identity of the last (outermost) signature's signer."""

    signed_revision: bytes | None = field(default=None, repr=False)
    """``pdf[:covered_bytes]`` of the last signature: form fields must be read from this."""

    notes: tuple[str, ...] = ()
    """Document-level notes (document time-stamps, ignored signature fields)."""

    @property
    def ok(self) -> bool:
        """True when there is at least one signature and no code was raised."""
        return bool(self.signatures) and not self.codes


@dataclass(frozen=True)
class VerifierSettings:
    """The ``[signing]`` configuration, as plain values."""

    trust_roots: tuple[Path, ...]
    """PEM/DER certificate files or directories of them: the only trust anchors."""

    require_timestamp: bool = True
    """Raise ``TS-MISSING`` when a signature has no signature time-stamp."""

    require_qualified: bool = True
    """Raise ``SIG-NOT-QUALIFIED`` unless the signer's certificate is qualified for e-signatures."""

    require_qscd: bool = True
    """Also raise ``SIG-NOT-QUALIFIED`` when the signer's key is not on a QSCD."""

    require_qualified_timestamp: bool = True
    """Raise ``TS-NOT-QUALIFIED`` unless the time-stamp is from a qualified service."""

    trust: TrustSettings | None = None
    """The EU trusted lists (``[trust]``); ``None``: only ``trust_roots`` anchor chains."""

    validation_report: bool = True
    """Also make pyHanko's ETSI TS 119 102-2 report of each PAdES signature (costs a second,
    AdES validation pass: about twice the time of the verdict itself)."""

    revocation: Literal["hard-fail", "soft-fail", "off"] = "soft-fail"
    """How to treat unknown revocation status: untrusted, accept with a note, or skip."""

    max_age_days: int = 90
    """Raise ``SIG-TOO-OLD`` when the time-stamp is older than this."""

    allow_fetching: bool = True
    """Fetch OCSP responses and CRLs named in certificates whose chain reaches an anchor."""

    fetch_timeout_seconds: float = 5.0
    """Connect-and-read limit of one OCSP or CRL request."""

    fetch_budget_seconds: float = 15.0
    """Total time the revocation requests of one document may take."""

    fetch_cache_seconds: float = 300.0
    """How long a fetched answer is reused (less when its nextUpdate comes sooner)."""

    max_pdf_bytes: int = 15 * 1024 * 1024
    """Inputs larger than this are refused unread."""

    timeout_seconds: float = 60.0
    """Upper bound on the verification of one document."""


def _load_anchor_file(path: Path) -> list[asn1_x509.Certificate]:
    data = path.read_bytes()
    if pem.detect(data):
        return [
            asn1_x509.Certificate.load(der)
            for kind, _headers, der in pem.unarmor(data, multiple=True)
            if kind == "CERTIFICATE"
        ]
    return [asn1_x509.Certificate.load(data)]


def load_trust_roots(paths: Iterable[Path]) -> tuple[asn1_x509.Certificate, ...]:
    """Load anchors from PEM/DER files and directories (``*.pem``, ``*.crt``, ``*.cer``)."""
    roots: list[asn1_x509.Certificate] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.suffix.lower() in (".pem", ".crt", ".cer", ".der") and child.is_file():
                    roots.extend(_load_anchor_file(child))
        else:
            roots.extend(_load_anchor_file(path))
    return tuple(roots)


def _nfc(value: str | None) -> str | None:
    return unicodedata.normalize("NFC", value) if value is not None else None


def _attribute(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    values = name.get_attributes_for_oid(oid)
    if not values:
        return None
    value = values[0].value
    return _nfc(value if isinstance(value, str) else value.decode("utf-8", "replace"))


def signer_identity(certificate: asn1_x509.Certificate) -> SignerIdentity:
    """Describe the signer from their certificate; raises ``ValueError`` if unparsable."""
    der = certificate.dump()
    cert = x509.load_der_x509_certificate(der)
    subject = cert.subject
    qc = qc_info(certificate)
    return SignerIdentity(
        common_name=_attribute(subject, NameOID.COMMON_NAME) or "",
        given_name=_attribute(subject, NameOID.GIVEN_NAME),
        surname=_attribute(subject, NameOID.SURNAME),
        personal_code=_attribute(subject, NameOID.SERIAL_NUMBER),
        organisation=_attribute(subject, NameOID.ORGANIZATION_NAME),
        organisation_identifier=_attribute(subject, x509.ObjectIdentifier("2.5.4.97")),
        country=_attribute(subject, NameOID.COUNTRY_NAME),
        issuer=_nfc(cert.issuer.rfc4514_string()) or "",
        serial_number=cert.serial_number,
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        qc_compliance=qc.compliance,
        qc_esign=qc.esign,
        qc_sscd=qc.sscd,
        certificate_der=der,
    )


def _timestamp_time(signer_info: cms.SignerInfo) -> datetime | None:
    """The ``genTime`` of the first signature time-stamp token, without validating it."""
    for signed_data in extract_tst_data_iter(signer_info, signed=False):
        tst_info = signed_data["encap_content_info"]["content"].parsed
        gen_time = tst_info["gen_time"].native
        if isinstance(gen_time, datetime):
            return gen_time
    return None


def _adobe_revinfo(signer_info: cms.SignerInfo) -> tuple[list[Any], list[Any]]:
    """CRLs and OCSP responses from an ``adbe-revocationInfoArchival`` signed attribute."""
    crls: list[Any] = []
    ocsps: list[Any] = []
    try:
        value = find_unique_cms_attribute(
            signer_info["signed_attrs"], "adobe_revocation_info_archival"
        )
    except Exception:  # noqa: BLE001 - an absent or broken attribute just adds nothing.
        return crls, ocsps
    for item in value["crl"] or ():
        crls.append(item)
    for item in value["ocsp"] or ():
        ocsps.append(item)
    return crls, ocsps


def _field_values(root: Any) -> dict[str, str]:
    """Map fully qualified names of non-signature form fields to their ``/V`` values."""
    values: dict[str, str] = {}

    def walk(kids: Any, prefix: str, inherited_type: Any, depth: int, seen: set[int]) -> None:
        if depth > _MAX_FIELD_DEPTH:
            raise RecursionError("form field tree too deep")
        for kid_ref in kids:
            kid = kid_ref.get_object()
            if not isinstance(kid, generic.DictionaryObject) or id(kid) in seen:
                continue
            seen.add(id(kid))
            partial = kid.get("/T")
            name = f"{prefix}.{partial}" if prefix and partial else str(partial or prefix)
            field_type = kid.get("/FT", inherited_type)
            if "/Kids" in kid:
                walk(kid["/Kids"], name, field_type, depth + 1, seen)
            if field_type != "/Sig" and "/V" in kid:
                values[name] = repr(kid.raw_get("/V").get_object())

    try:
        fields = root["/AcroForm"]["/Fields"]
    except KeyError:
        return values
    walk(fields, "", None, 0, set())
    return values


class Verifier:
    """Verifies signed PDFs and detached CMS signatures against configured anchors."""

    def __init__(
        self, settings: VerifierSettings, *, now: Callable[[], datetime] | None = None
    ) -> None:
        self.settings = settings
        self._now = now or (lambda: datetime.now(UTC))
        # The anchors are read once; each verification builds fresh, cheap contexts.
        self._anchors = load_trust_roots(settings.trust_roots)
        self._root_digests = frozenset(cert.sha256 for cert in self._anchors)
        # The trusted lists are parsed when first needed and again whenever a
        # refresh has rewritten the cache's state file.
        self._snapshot: TrustSnapshot | None = None
        self._snapshot_key: tuple[float | None, int] | None = None
        self._trust_manager: ListsAndRootsTrustManager | None = None
        self._snapshot_lock = threading.Lock()

    def trust_snapshot(self) -> TrustSnapshot | None:
        """The trusted lists as last cached (``None`` without ``[trust]``)."""
        trust = self.settings.trust
        if trust is None:
            return None
        now = self._now()
        # Freshness changes with time alone: judge it again every minute (the
        # lists themselves are parsed again only when their content changed).
        key = (state_mtime(trust), int(now.timestamp() // 60))
        with self._snapshot_lock:
            if self._snapshot is None or key != self._snapshot_key:
                self._snapshot = load_snapshot(trust, now=now, previous=self._snapshot)
                self._snapshot_key = key
                self._trust_manager = ListsAndRootsTrustManager(self._anchors, self._snapshot)
            return self._snapshot

    # -- public API --------------------------------------------------------------

    async def verify_pdf(self, data: bytes) -> FormVerdict:
        """Verify every signature in a PDF; raises only :class:`UnreadableInput`."""
        if len(data) > self.settings.max_pdf_bytes:
            raise UnreadableInput(
                f"PDF is {len(data)} bytes, over the limit of {self.settings.max_pdf_bytes}"
            )
        return await self._bounded(self._verify_pdf, data)

    async def verify_detached(
        self,
        content: bytes,
        signature_der: bytes,
        *,
        kind: Literal["cms", "smime"] = "cms",
    ) -> FormVerdict:
        """Verify a detached CMS signature (``.p7s`` or S/MIME) over ``content``."""
        if len(content) + len(signature_der) > self.settings.max_pdf_bytes:
            raise UnreadableInput("signed content is over the size limit")
        return await self._bounded(self._verify_detached, content, signature_der, kind)

    def verify_pdf_sync(self, data: bytes) -> FormVerdict:
        """Synchronous :meth:`verify_pdf` for command-line use (not inside a running loop)."""
        return asyncio.run(self.verify_pdf(data))

    def verify_detached_sync(
        self, content: bytes, signature_der: bytes, *, kind: Literal["cms", "smime"] = "cms"
    ) -> FormVerdict:
        """Synchronous :meth:`verify_detached` for command-line use."""
        return asyncio.run(self.verify_detached(content, signature_der, kind=kind))

    # -- plumbing --------------------------------------------------------------------

    async def _bounded(self, function: Callable[..., Any], *args: Any) -> FormVerdict:
        """Run ``function`` on a thread of its own with its own loop, under the time limit.

        Parsing and difference analysis are CPU-bound; running them on a worker
        keeps the caller's event loop responsive and lets the time limit fire.
        A thread that overruns cannot be killed: it is abandoned (a daemon
        thread, not an executor's, so no loop shutdown waits for it) and
        :class:`VerificationTimeout` is raised. Where runaway work must really
        stop, run the verifier in a child process (:mod:`signing.isolation`).
        """
        loop = asyncio.get_running_loop()
        outcome: asyncio.Future[FormVerdict] = loop.create_future()

        def settle(error: BaseException | None, result: FormVerdict | None) -> None:
            if outcome.done():  # the caller gave up waiting
                return
            if error is not None:
                outcome.set_exception(error)
            else:
                outcome.set_result(result)  # type: ignore[arg-type]

        def run() -> None:
            error: BaseException | None = None
            result: FormVerdict | None = None
            try:
                result = asyncio.run(function(*args))
            except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller.
                error = exc
            with contextlib.suppress(RuntimeError):  # the caller's loop is already closed
                loop.call_soon_threadsafe(settle, error, result)

        threading.Thread(target=run, name="pasts-verify", daemon=True).start()
        try:
            return await asyncio.wait_for(outcome, timeout=self.settings.timeout_seconds)
        except TimeoutError as exc:
            raise VerificationTimeout(
                f"verification did not finish within {self.settings.timeout_seconds} s"
            ) from exc
        except RecursionError as exc:
            raise UnreadableInput("document structure is nested too deeply") from exc
        except MemoryError as exc:
            raise UnreadableInput("document needs too much memory to verify") from exc

    def _context(
        self,
        *,
        moment: datetime | None,
        fetching: MessageFetching | None,
        other_certs: Iterable[asn1_x509.Certificate] = (),
        crls: Iterable[Any] = (),
        ocsps: Iterable[Any] = (),
        fresh_after: datetime | None = None,
        revocation: str | None = None,
    ) -> ValidationContext:
        """A validation context over the configured anchors only (never the OS store).

        With ``fetching``, revocation data is fetched for certificates whose
        chain reaches an anchor (see :mod:`signing.fetching`); a cached answer
        issued before ``fresh_after`` (the signature time-stamp) is not reused.
        ``revocation`` overrides ``signing.revocation``.
        """
        crls, ocsps = list(crls), list(ocsps)
        backend = (
            fetching.backend(fresh_after, crls=crls, ocsps=ocsps) if fetching is not None else None
        )
        kwargs: dict[str, Any] = {
            "trust_roots": list(self._anchors),
            "other_certs": list(other_certs),
            "crls": crls,
            "ocsps": ocsps,
            "moment": moment,
            "allow_fetching": backend is not None,
            "fetcher_backend": backend,
            # RSA keys whose modulus is encoded as a negative INTEGER are read
            # as unsigned for verification (signing.tolerant); others as usual.
            "signature_validator": TolerantSignatureValidator(),
            "algorithm_usage_policy": TolerantKeyPolicy(),
        }
        # With trusted lists, their CAs and TSAs anchor paths beside trust_roots.
        if self.trust_snapshot() is not None and self._trust_manager is not None:
            del kwargs["trust_roots"]
            kwargs["trust_manager"] = self._trust_manager
            kwargs["other_certs"].extend(self._trust_manager.certificates())
        mode = revocation or self.settings.revocation
        if mode == "off":
            kwargs["revinfo_policy"] = CertRevTrustPolicy(NO_REVOCATION)
        else:
            kwargs["revocation_mode"] = mode
            # Revocation information issued after the signing time still tells
            # whether the certificate had been revoked before it.
            kwargs["retroactive_revinfo"] = True
        context = ValidationContext(**kwargs)
        if backend is not None:
            backend.bind(context)
        return context

    def _fetching(self) -> MessageFetching | None:
        """The fetching of one document, or ``None`` when fetching is off."""
        if not self.settings.allow_fetching or self.settings.revocation == "off":
            return None
        return MessageFetching(
            FetchSettings(
                timeout_seconds=self.settings.fetch_timeout_seconds,
                budget_seconds=self.settings.fetch_budget_seconds,
                cache_seconds=self.settings.fetch_cache_seconds,
            )
        )

    # -- PDF ---------------------------------------------------------------------------

    def _open(self, data: bytes) -> PdfFileReader:
        if not data.lstrip()[:5].startswith(b"%PDF"):
            raise UnreadableInput("not a PDF file")
        try:
            reader = PdfFileReader(BytesIO(data), strict=False)
            if reader.encrypted:
                raise UnreadableInput("the PDF is encrypted")
            # Touch the structures every later step needs, so breakage shows here.
            _ = reader.root
            _ = reader.xrefs.total_revisions
        except UnreadableInput:
            raise
        except Exception as exc:  # noqa: BLE001 - any parser failure means unreadable.
            raise UnreadableInput(f"the PDF cannot be parsed: {exc}") from exc
        return reader

    async def _verify_pdf(self, data: bytes) -> FormVerdict:
        reader = self._open(data)
        try:
            sig_fields = list(enumerate_sig_fields(reader, filled_status=True))
        except RecursionError as exc:
            raise UnreadableInput("form field tree is nested too deeply") from exc
        except Exception as exc:  # noqa: BLE001 - the form tree itself is unreadable.
            raise UnreadableInput(f"the form structure cannot be read: {exc}") from exc

        embedded: list[tuple[str, EmbeddedPdfSignature | None, str | None]] = []
        doc_notes: list[str] = []
        for fq_name, sig_obj, sig_field in sig_fields:
            try:
                sig_dict = sig_obj.get_object()
                sig_type = sig_dict.get("/Type", "/Sig")
                # Some producers write /Type /Sig on a document time-stamp; its
                # SubFilter still says what it is.
                if sig_type == "/DocTimeStamp" or sig_dict.get("/SubFilter") == "/ETSI.RFC3161":
                    embedded.append(
                        (fq_name, EmbeddedPdfSignature(reader, sig_field, fq_name), "doc-ts")
                    )
                    continue
                subfilter = sig_dict.get("/SubFilter")
                if subfilter not in _ACCEPTED_SUBFILTERS:
                    embedded.append((fq_name, None, f"unsupported signature type {subfilter}"))
                    continue
                signers = _signer_count(sig_dict)
                if signers > _MAX_SIGNERS:
                    embedded.append((fq_name, None, f"the signature carries {signers} SignerInfos, "
                                                    f"more than the {_MAX_SIGNERS} judged"))
                    continue
                if signers > 1:
                    embedded.extend(self._each_signer(data, fq_name, sig_dict, signers, doc_notes))
                    continue
                embedded.append((fq_name, EmbeddedPdfSignature(reader, sig_field, fq_name), None))
            except Exception as exc:  # noqa: BLE001 - a broken signature is SIG-INVALID.
                embedded.append((fq_name, None, f"signature cannot be parsed: {exc!r}"))

        approvals = [item for item in embedded if item[2] not in ("doc-ts", "signer")]
        approvals += [(name, emb, None) for name, emb, kind in embedded if kind == "signer"]
        if not approvals:
            if any(item[2] == "doc-ts" for item in embedded):
                doc_notes.append("only document time-stamps found; they are not signatures")
            return FormVerdict(
                signatures=(),
                codes=("SIG-MISSING",),
                signer=None,
                signed_revision=None,
                notes=tuple(doc_notes),
            )

        # The outermost signature is the one in the latest revision.
        def revision(item: tuple[str, EmbeddedPdfSignature | None, str | None]) -> int:
            return item[1].signed_revision if item[1] is not None else -1

        approvals.sort(key=revision)
        last_index = max(range(len(approvals)), key=lambda i: revision(approvals[i]))

        fetching = self._fetching()
        try:
            dss_certs: list[Any] = []
            dss_crls: list[Any] = []
            dss_ocsps: list[Any] = []
            try:
                dss = DocumentSecurityStore.read_dss(reader)
                dss_certs = list(dss.load_certs())
                dss_crls = [
                    asn1_crl.CertificateList.load(ref.get_object().read_data(DecodePurpose.CRL))
                    for ref in dss.crls
                ]
                dss_ocsps = [
                    asn1_ocsp.OCSPResponse.load(
                        ref.get_object().read_data(DecodePurpose.OCSP_RESPONSE)
                    )
                    for ref in dss.ocsps
                ]
            except NoDSSFoundError:
                pass
            except Exception as exc:  # noqa: BLE001 - a broken DSS only loses embedded revinfo.
                doc_notes.append(f"the document security store cannot be read: {exc!r}")

            try:
                final_values = _field_values(reader.root)
            except Exception:  # noqa: BLE001 - unreadable fields are compared as empty.
                final_values = {}

            # Document time-stamps first: one over a signature without its own
            # time-stamp gives it its B-T time (ETSI EN 319 142-1, 5.3).
            doc_stamps: list[tuple[int, Any]] = []
            for fq_name, emb, kind in embedded:
                if kind != "doc-ts" or emb is None:
                    continue
                note, stamp = await self._doc_timestamp(fq_name, emb, fetching, dss_certs)
                doc_notes.append(note)
                if stamp is not None:
                    doc_stamps.append((emb.signed_revision, stamp))

            statuses: list[SignatureStatus] = []
            for fq_name, emb, problem in approvals:
                if emb is None:
                    statuses.append(_broken(fq_name, problem or "signature cannot be parsed"))
                    continue
                try:
                    status = await self._one_pdf_signature(
                        reader,
                        emb,
                        later_signature_fields={
                            other.field_name
                            for _name, other, _ in embedded
                            if other is not None and other.signed_revision > emb.signed_revision
                        },
                        final_values=final_values,
                        doc_timestamp=min(
                            (item for item in doc_stamps if item[0] > emb.signed_revision),
                            key=lambda item: item[0],
                            default=(0, None),
                        )[1],
                        fetching=fetching,
                        dss=(dss_certs, dss_crls, dss_ocsps),
                    )
                    # One signer of several is named by its place among them.
                    if status.field_name != fq_name:
                        status = replace(status, field_name=fq_name)
                except RecursionError:
                    status = _broken(fq_name, "signature structure is nested too deeply")
                except Exception as exc:  # noqa: BLE001 - every validator error is SIG-INVALID.
                    status = _broken(fq_name, f"signature validation failed: {exc!r}")
                statuses.append(status)
        finally:
            if fetching is not None:
                await fetching.close()

        last = statuses[last_index]
        codes = tuple(sorted({code for status in statuses for code in status.codes}))
        signed_revision = data[: last.covered_bytes] if last.covered_bytes else None
        return FormVerdict(
            signatures=tuple(statuses),
            codes=codes,
            signer=last.signer,
            signed_revision=signed_revision,
            notes=tuple(doc_notes),
        )

    def _each_signer(
        self, data: bytes, fq_name: str, sig_dict: Any, count: int, doc_notes: list[str]
    ) -> list[tuple[str, EmbeddedPdfSignature | None, str | None]]:
        """One entry per SignerInfo of a signature whose CMS carries several.

        pyHanko judges one SignerInfo per PDF signature. A SignedData with
        several (co-signers, or one signer twice) is judged signer by signer:
        for each, a copy of the PDF whose ``/Contents`` holds the same
        SignedData with that SignerInfo alone. ``/Contents`` lies outside the
        ByteRange, so the signed bytes, the coverage and the revisions of the
        copy are the original's; only which signer is judged differs.
        """
        doc_notes.append(
            f"signature {fq_name} carries {count} SignerInfos; each is judged on its own"
        )
        entries: list[tuple[str, EmbeddedPdfSignature | None, str | None]] = []
        for index in range(count):
            label = f"{fq_name} (signer {index + 1} of {count})"
            try:
                copy = _with_one_signer(data, sig_dict, index)
                copy_reader = self._open(copy)
                field = next(
                    sig_field
                    for name, _obj, sig_field in enumerate_sig_fields(copy_reader)
                    if name == fq_name
                )
                entries.append((label, EmbeddedPdfSignature(copy_reader, field, fq_name), "signer"))
            except Exception as exc:  # noqa: BLE001 - that signer is SIG-INVALID.
                entries.append((label, None, f"signature cannot be parsed: {exc!r}"))
        return entries

    async def _doc_timestamp(
        self,
        fq_name: str,
        emb: EmbeddedPdfSignature,
        fetching: MessageFetching | None,
        dss_certs: list[Any],
    ) -> tuple[str, Any]:
        """Validate one document time-stamp: a note, and its status (``None`` if unreadable)."""
        try:
            status = await async_validate_pdf_timestamp(
                emb,
                validation_context=self._context(
                    moment=None, fetching=fetching, other_certs=dss_certs
                ),
            )
        except Exception as exc:  # noqa: BLE001 - reported as a note only.
            return f"document time-stamp {fq_name} cannot be validated: {exc!r}", None
        verdict = "valid" if status.intact and status.valid else "BROKEN"
        trust = "trusted" if status.trusted else "untrusted"
        return (
            f"document time-stamp {fq_name} at {status.timestamp.isoformat()}: {verdict}, {trust}",
            status,
        )

    async def _one_pdf_signature(
        self,
        reader: PdfFileReader,
        emb: EmbeddedPdfSignature,
        *,
        later_signature_fields: set[str],
        final_values: dict[str, str],
        doc_timestamp: Any,
        fetching: MessageFetching | None,
        dss: tuple[list[Any], list[Any], list[Any]],
    ) -> SignatureStatus:
        dss_certs, dss_crls, dss_ocsps = dss
        notes: list[str] = []
        codes: set[str] = set()

        # The byte range must be four non-negative integers starting at 0.
        byte_range = [int(x) for x in emb.byte_range]
        covered = byte_range[2] + byte_range[3] if len(byte_range) == 4 else None

        own_token = True
        try:
            ts_time = _timestamp_time(emb.signer_info)
            own_token = ts_time is not None
        except Exception as exc:  # noqa: BLE001 - a broken token shows up as TS-INVALID below.
            ts_time = None
            notes.append(f"time-stamp token cannot be read: {exc!r}")
        # Without a signature time-stamp of its own, a document time-stamp over
        # the signature's revision dates it instead.
        fallback = None if own_token else doc_timestamp
        if fallback is not None:
            ts_time = fallback.timestamp
            notes.append("dated by the document time-stamp over it")
        adobe_crls, adobe_ocsps = _adobe_revinfo(emb.signer_info)
        embedded_certs = [*dss_certs, *emb.other_embedded_certs]
        # The signer's certificate is judged at the time-stamp's time when there
        # is one (a time-stamp in the future is not believed), else now.
        now = self._now()
        moment = ts_time if ts_time is not None and ts_time <= now else now
        revinfo = self._revinfo(
            _signer_certificate(emb.signed_data), ts_time and moment,
            [*dss_crls, *adobe_crls], [*dss_ocsps, *adobe_ocsps], notes,
        )
        signer_ctx = self._context(
            moment=moment, fetching=fetching, other_certs=embedded_certs, **revinfo
        )
        # The TSA's certificate is judged at the time-stamp's own time as well.
        ts_ctx = self._context(
            moment=moment, fetching=fetching, other_certs=embedded_certs, **revinfo
        )
        status = await async_validate_pdf_signature(
            emb, signer_validation_context=signer_ctx, ts_validation_context=ts_ctx
        )

        self._judge_integrity(
            status, "the signed bytes do not match the signature's digest", codes, notes
        )
        _judge_signed_attributes_der(emb.signer_info, codes, notes)
        if status.coverage not in (
            SignatureCoverageLevel.ENTIRE_REVISION,
            SignatureCoverageLevel.ENTIRE_FILE,
        ):
            codes.add("SIG-INVALID")
            notes.append(f"the byte range does not cover a whole revision ({status.coverage})")

        unknown = await self._only_revocation_unknown(status, moment, embedded_certs, revinfo)
        self._judge_trust(status, codes, notes, moment, fetching, revocation_unknown=unknown)

        # Modifications after signing. pyHanko's FORM_FILLING level is accepted
        # only when the fields it saw change are the fields of later signatures
        # and document time-stamps (B-T/B-LTA extensions, counter-signers), and
        # no form value differs from the signed revision's.
        level = status.modification_level
        modified = False
        if level is None or level not in _HARMLESS_LEVELS:
            diff = status.diff_result
            changed = getattr(diff, "changed_form_fields", None)
            if (
                level is not ModificationLevel.FORM_FILLING
                or changed is None
                or not set(changed) <= later_signature_fields
            ):
                modified = True
            else:
                signed_values = _field_values(emb.reader.get_historical_root(emb.signed_revision))
                modified = signed_values != final_values
        if modified:
            codes.add("SIG-MODIFIED")
            notes.append(
                f"the document was changed after this signature (modification level {level})"
            )

        common = self._judge_signer_and_timestamp(
            status, ts_time, codes, notes, now, fallback=fallback
        )
        report_xml = None
        if self.settings.validation_report:
            report_xml = await self._validation_report(emb, signer_ctx, embedded_certs, notes)
        return SignatureStatus(
            field_name=emb.field_name,
            kind="pades",
            report_xml=report_xml,
            **common,
            modified_after=modified,
            covered_bytes=covered,
            codes=tuple(sorted(codes)),
            notes=tuple(notes),
        )

    # -- judgement shared by PDF and CMS ----------------------------------------------

    def _judge_signer_and_timestamp(
        self, status: Any, ts_time: datetime | None, codes: set[str], notes: list[str],
        now: datetime, *, fallback: Any = None,
    ) -> dict[str, Any]:
        """Judge the signer's qualification and the signature time-stamp.

        ``status`` is pyHanko's validation status of a PDF or a CMS signature;
        ``fallback`` the status of a document time-stamp standing in for a
        missing signature time-stamp. Returns the :class:`SignatureStatus`
        fields both kinds fill alike.
        """
        signer = self._identity(status.signing_cert, notes)
        if has_negative_modulus(status.signing_cert):
            notes.append(NEGATIVE_MODULUS_NOTE)
        ts = status.timestamp_validity or fallback
        # Qualification is judged at the time-stamp's time (a time-stamp in the
        # future is not believed), else now.
        stamped = ts.timestamp if ts is not None else ts_time
        moment = stamped if stamped is not None and stamped <= now else now
        qualification = self._qualification(status, moment, notes)
        problems = signer_problems(
            qualification,
            require_qualified=self.settings.require_qualified,
            require_qscd=self.settings.require_qscd,
            accept_eseals=False,
        )
        if problems:
            codes.add("SIG-NOT-QUALIFIED")
            notes.extend(problems)
        return {
            "qualification": qualification,
            "intact": bool(status.intact),
            "valid": bool(status.valid),
            "trusted": bool(status.trusted),
            "signer": signer,
            "signing_time": status.signer_reported_dt,
            **self.judge_timestamp_status(ts, ts_time, moment, codes, notes, now),
        }

    def judge_timestamp_status(
        self, ts: Any, ts_time: datetime | None, moment: datetime, codes: set[str],
        notes: list[str], now: datetime,
    ) -> dict[str, Any]:
        """Judge one time-stamp as a signature time-stamp is judged.

        ``ts`` is pyHanko's status of the token (``None`` when there is none or
        it could not be validated; ``ts_time`` then tells whether one was
        there), ``moment`` the time the TSA's qualification is judged at. Adds
        the ``TS-*`` (and ``SIG-TOO-OLD``) codes to ``codes`` and returns the
        ``timestamp_*`` fields of :class:`SignatureStatus`. Also used for the
        time-stamps over a whole file (``.tsd``, ``.m7m``, ``.tsr``).
        """
        ts_present = ts is not None or ts_time is not None
        ts_valid = bool(ts is not None and ts.intact and ts.valid)
        ts_trusted = bool(ts is not None and ts.trusted)
        self._judge_timestamp(ts, ts_present, ts_valid, ts_trusted, codes, notes, now)
        ts_qualification = None
        if ts is not None and ts_valid and ts_trusted:
            ts_qualification = judge_timestamp(
                getattr(ts, "validation_path", None), moment, self._root_digests,
                self.trust_snapshot())
            if self.settings.require_qualified_timestamp and not ts_qualification.qualified:
                codes.add("TS-NOT-QUALIFIED")
                notes.extend(ts_qualification.reasons)
        return {
            "timestamp_qualification": ts_qualification,
            "timestamp_present": ts_present,
            "timestamp_valid": ts_valid,
            "timestamp_trusted": ts_trusted,
            "timestamp_time": ts.timestamp if ts is not None else ts_time,
        }

    async def _validation_report(self, emb: EmbeddedPdfSignature, ctx: ValidationContext,
                                 certs: list[Any], notes: list[str]) -> str | None:
        """The ETSI TS 119 102-2 report of pyHanko's AdES validation of one PDF signature.

        It is evidence for staff, made with the same anchors, revocation
        policy and embedded certificates as the verdict, never fetching; its
        indication is pyHanko's own (EN 319 102-1) and may be stricter than
        the codes, which stay the verdict. pyHanko's report generation is
        incubating and covers PDF signatures only.
        """
        try:
            from pyhanko.sign.validation.ades import ades_lta_validation
            from pyhanko.sign.validation.policy_decl import (
                LocalKnowledge,
                PdfSignatureValidationSpec,
                RevinfoOnlineFetchingRule,
                RevocationInfoGatheringSpec,
                SignatureValidationSpec,
            )
            from pyhanko.sign.validation.report.tools import generate_report
            from pyhanko_certvalidator.context import CertValidationPolicySpec

            policy = CertValidationPolicySpec(
                trust_manager=ctx.path_builder.trust_manager,
                revinfo_policy=ctx.revinfo_policy,
            )
            spec = PdfSignatureValidationSpec(SignatureValidationSpec(
                cert_validation_policy=policy,
                revinfo_gathering_policy=RevocationInfoGatheringSpec(
                    online_fetching_rule=RevinfoOnlineFetchingRule.LOCAL_ONLY),
                local_knowledge=LocalKnowledge(known_certs=list(certs)),
            ))
            result = await ades_lta_validation(emb, spec)
            return generate_report(emb, result)
        except Exception as exc:  # noqa: BLE001 - the report is evidence, never the verdict.
            notes.append(f"no validation report: {exc!r}"[:300])
            return None

    def _qualification(self, status: Any, moment: datetime,
                       notes: list[str]) -> Qualification | None:
        """The signer certificate's qualified status at ``moment`` (see :mod:`signing.qualification`)."""
        cert = status.signing_cert
        if cert is None:
            return None
        try:
            return judge_signer(cert, getattr(status, "validation_path", None), moment,
                                self._root_digests, self.trust_snapshot())
        except Exception as exc:  # noqa: BLE001 - an odd certificate is simply not qualified.
            notes.append(f"the qualified status cannot be judged: {exc!r}")
            return None

    @staticmethod
    def _judge_integrity(status: Any, mismatch: str, codes: set[str], notes: list[str]) -> None:
        """SIG-INVALID unless the digest matches (else note ``mismatch``) and the signature verifies."""
        if not status.intact:
            codes.add("SIG-INVALID")
            notes.append(mismatch)
        if not status.valid:
            codes.add("SIG-INVALID")
            notes.append("the cryptographic signature does not verify")

    @staticmethod
    def _revinfo(
        signer: asn1_x509.Certificate | None, fresh_after: datetime | None,
        crls: list[Any], ocsps: list[Any], notes: list[str],
    ) -> dict[str, Any]:
        """The ``_context`` keywords for the revocation data a signature carries.

        ``fresh_after`` is the signature time-stamp's time (``None`` without
        one): the signer's data issued before it is withheld as no proof.
        """
        crls, ocsps, stale = withhold_stale(signer, fresh_after, crls, ocsps)
        notes.extend(stale)
        return {"crls": crls, "ocsps": ocsps, "fresh_after": fresh_after}

    async def _only_revocation_unknown(
        self, status: Any, moment: datetime, other_certs: Iterable[Any], revinfo: dict[str, Any]
    ) -> bool:
        """Whether the signer's chain fails under hard-fail only for want of revocation data.

        pyHanko reports missing revocation data as a general chain failure,
        like other path problems; the chain is judged again without fetching
        under soft-fail, and when that passes, nothing but the revocation
        status was missing (``SIG-REVOCATION-UNKNOWN``, not ``SIG-UNTRUSTED``).
        """
        if status.trusted or self.settings.revocation != "hard-fail":
            return False
        cert = getattr(status, "signing_cert", None)
        problem = getattr(status.trust_problem_indic, "name", None)
        if cert is None or problem not in _REVINFO_UNAVAILABLE | {_GENERAL_FAILURE}:
            return False
        context = self._context(
            moment=moment, fetching=None, other_certs=other_certs, revocation="soft-fail",
            **revinfo,
        )
        try:
            result = await validate_cert_usage(
                cert, context, StandardCMSSignatureStatus.default_usage_constraints(),
                context.path_builder.async_build_paths_lazy(cert),
            )
        except Exception:  # noqa: BLE001 - then the chain has problems of its own.
            return False
        return result.success_result is not None

    def _judge_trust(
        self, status: Any, codes: set[str], notes: list[str], moment: datetime,
        fetching: MessageFetching | None = None, *, revocation_unknown: bool = False,
    ) -> None:
        if status.trusted:
            if fetching is not None and fetching.failures and self.settings.revocation == "soft-fail":
                notes.append("accepted under soft-fail although revocation data could not be "
                             "fetched: " + "; ".join(fetching.failures))
            return
        problem = status.trust_problem_indic
        problem_name = getattr(problem, "name", str(problem))
        if status.revoked or problem_name in _REVOCATION_PROBLEMS:
            details = status.revocation_details
            when = f" on {details.revocation_date.isoformat()}" if details is not None else ""
            codes.add("SIG-CERT-REVOKED")
            notes.append(f"the signer's certificate was revoked{when}")
        elif problem_name in _EXPIRY_PROBLEMS:
            codes.add("SIG-CERT-EXPIRED")
            notes.append(
                f"the signer's certificate was not valid at {moment.isoformat()} ({problem_name})"
            )
        elif problem_name in _REVINFO_UNAVAILABLE or revocation_unknown:
            codes.add(REVOCATION_UNKNOWN)
            notes.append(
                "the revocation status of the signer's certificate at "
                f"{moment.isoformat()} could not be established ({problem_name})"
            )
            if fetching is not None:
                notes.extend(fetching.failures)
            elif not self.settings.allow_fetching:
                notes.append("fetching revocation data is off (signing.allow_fetching)")
        elif status.intact and status.valid:
            codes.add("SIG-UNTRUSTED")
            notes.append(f"the signer's chain does not reach a configured anchor ({problem_name})")

    def _judge_timestamp(
        self,
        ts: Any,
        present: bool,
        valid: bool,
        trusted: bool,
        codes: set[str],
        notes: list[str],
        now: datetime,
    ) -> None:
        if not present:
            if self.settings.require_timestamp:
                codes.add("TS-MISSING")
                notes.append("the signature carries no signature time-stamp")
            return
        if ts is None or not valid:
            codes.add("TS-INVALID")
            notes.append("the time-stamp token is broken or does not match the signature")
            return
        if not trusted:
            codes.add("TS-UNTRUSTED")
            notes.append(
                "the time-stamp authority is not trusted "
                f"({getattr(ts.trust_problem_indic, 'name', ts.trust_problem_indic)})"
            )
        if now - ts.timestamp > timedelta(days=self.settings.max_age_days):
            codes.add("SIG-TOO-OLD")
            notes.append(
                f"the time-stamp {ts.timestamp.isoformat()} is older than "
                f"{self.settings.max_age_days} days"
            )

    @staticmethod
    def _identity(certificate: Any, notes: list[str]) -> SignerIdentity | None:
        if certificate is None:
            return None
        try:
            return signer_identity(certificate)
        except Exception as exc:  # noqa: BLE001 - an odd certificate loses only the identity.
            notes.append(f"the signer's certificate cannot be described: {exc!r}")
            return None

    # -- detached CMS --------------------------------------------------------------------

    async def _verify_detached(
        self, content: bytes, signature_der: bytes, kind: Literal["cms", "smime"]
    ) -> FormVerdict:
        try:
            data = signature_der
            if pem.detect(data):
                _, _, data = pem.unarmor(data)
            content_info = cms.ContentInfo.load(data)
            if content_info["content_type"].native != "signed_data":
                raise ValueError("not a CMS SignedData")
            signed_data = content_info["content"]
            signer_infos = signed_data["signer_infos"]
            count = len(signer_infos)
            if count == 0:
                raise ValueError("the SignedData has no SignerInfo")
            if count > _MAX_SIGNERS:
                raise ValueError(f"{count} SignerInfos, more than the {_MAX_SIGNERS} judged")
        except Exception as exc:  # noqa: BLE001 - a broken container is SIG-INVALID.
            status = _broken(None, f"the CMS signature cannot be parsed: {exc!r}", kind=kind)
            return FormVerdict(signatures=(status,), codes=status.codes, signer=None)
        return await self.judge_signed_data(content, signed_data, kind)

    async def judge_signed_data(
        self, content: bytes, signed_data: cms.SignedData,
        kind: Literal["cms", "smime", "p7m"], *, fallback: Any = None,
    ) -> FormVerdict:
        """Judge every SignerInfo of ``signed_data`` over ``content``, signer by signer.

        The judgement of a ``.p7s``: ``content`` is the detached content or,
        for an enveloping ``.p7m``, its eContent (pyHanko digests the bytes it
        is given either way). ``fallback`` is pyHanko's status of a time-stamp
        over the whole file (RFC 5544 ``.tsd``, ``.m7m``, a ``.tsr`` beside it):
        it dates a signer that carries no signature time-stamp of its own, as
        a document time-stamp dates a PDF signature. Run it inside
        :meth:`_bounded` (the public ``verify_*`` methods do).
        """
        signer_infos = signed_data["signer_infos"]
        count = len(signer_infos)
        if count == 0 or count > _MAX_SIGNERS:
            note = ("the SignedData has no SignerInfo" if count == 0
                    else f"{count} SignerInfos, more than the {_MAX_SIGNERS} judged")
            status = _broken(None, note, kind=kind)
            return FormVerdict(signatures=(status,), codes=status.codes, signer=None)
        if count == 1:
            status = await self._one_detached(
                content, signed_data, signer_infos[0], kind, fallback=fallback)
            return FormVerdict(signatures=(status,), codes=status.codes, signer=status.signer)
        # Several signers (co-signers of one file): each is judged on its own,
        # in a copy of the SignedData that holds its SignerInfo alone.
        statuses = []
        for index in range(count):
            single = signed_data.copy()
            single["signer_infos"] = cms.SignerInfos([signer_infos[index].copy()])
            status = await self._one_detached(
                content, single, single["signer_infos"][0], kind, fallback=fallback)
            statuses.append(replace(status, field_name=f"signer {index + 1} of {count}"))
        return FormVerdict(
            signatures=tuple(statuses),
            codes=tuple(sorted({code for status in statuses for code in status.codes})),
            signer=statuses[-1].signer,
            notes=(f"the CMS signature carries {count} SignerInfos; each is judged on its own",),
        )

    async def _one_detached(
        self, content: bytes, signed_data: cms.SignedData, signer_info: cms.SignerInfo,
        kind: Literal["cms", "smime", "p7m"], *, fallback: Any = None,
    ) -> SignatureStatus:
        """The status of a detached SignedData's only SignerInfo (see :meth:`judge_signed_data`)."""
        notes: list[str] = []
        codes: set[str] = set()
        fetching = self._fetching()
        try:
            own_token = True
            try:
                ts_time = _timestamp_time(signer_info)
                own_token = ts_time is not None
            except Exception as exc:  # noqa: BLE001 - reported as TS-INVALID below.
                ts_time = None
                notes.append(f"time-stamp token cannot be read: {exc!r}")
            if own_token:
                fallback = None
            elif fallback is not None:
                ts_time = fallback.timestamp
                notes.append("dated by the time-stamp over the whole file")
            adobe_crls, adobe_ocsps = _adobe_revinfo(signer_info)
            now = self._now()
            moment = ts_time if ts_time is not None and ts_time <= now else now
            revinfo = self._revinfo(
                _signer_certificate(signed_data), ts_time and moment,
                adobe_crls, adobe_ocsps, notes,
            )
            try:
                result: StandardCMSSignatureStatus = await async_validate_detached_cms(
                    content,
                    signed_data,
                    signer_validation_context=self._context(
                        moment=moment, fetching=fetching, **revinfo
                    ),
                    ts_validation_context=self._context(moment=moment, fetching=fetching, **revinfo),
                )
            except Exception as exc:  # noqa: BLE001 - every validator error is SIG-INVALID.
                return _broken(None, f"signature validation failed: {exc!r}", kind=kind)
        finally:
            if fetching is not None:
                await fetching.close()

        self._judge_integrity(
            result, "the signed content does not match the signature's digest", codes, notes
        )
        _judge_signed_attributes_der(signer_info, codes, notes)
        unknown = await self._only_revocation_unknown(
            result, moment, _other_certificates(signed_data), revinfo
        )
        self._judge_trust(result, codes, notes, moment, fetching, revocation_unknown=unknown)
        common = self._judge_signer_and_timestamp(
            result, ts_time, codes, notes, now, fallback=fallback)
        return SignatureStatus(
            field_name=None,
            kind=kind,
            **common,
            modified_after=False,
            covered_bytes=None,
            codes=tuple(sorted(codes)),
            notes=tuple(notes),
        )

    # -- time-stamps over a whole file (.tsd, .m7m, .tsr) -------------------------------

    async def file_timestamp_status(
        self, token: cms.SignedData, data: bytes, fetching: MessageFetching | None,
        *, crls: Iterable[Any] = (),
    ) -> Any:
        """pyHanko's status of an RFC 3161 token whose imprint must be the digest of ``data``.

        The TSA's chain is judged at the token's ``genTime`` (a time in the
        future is not believed), with the configured anchors, trusted lists and
        revocation policy, as a signature time-stamp's is. Raises when the
        token is not a time-stamp token at all.
        """
        tst_info = token["encap_content_info"]["content"].parsed
        gen_time = tst_info["gen_time"].native
        now = self._now()
        moment = gen_time if isinstance(gen_time, datetime) and gen_time <= now else now
        context = self._context(
            moment=moment, fetching=fetching, other_certs=_other_certificates(token), crls=crls
        )

        def imprint(algorithm: str) -> bytes:
            digest = hashes.Hash(get_pyca_cryptography_hash(algorithm))
            digest.update(data)
            return digest.finalize()

        kwargs = await validate_tst_signed_data(token, context, imprint)
        return TimestampSignatureStatus(**kwargs)

    # -- Italian signed files (.p7m, .tsd, .m7m) ---------------------------------------

    async def verify_signed_file(self, data: bytes, *, timestamp: bytes | None = None) -> SignedFile:
        """Unwrap and judge a ``.p7m``, ``.tsd`` or ``.m7m`` (see :mod:`signing.p7m`).

        ``timestamp`` is a detached ``.tsr`` over ``data`` found beside it.
        Raises only :class:`UnreadableInput`.
        """
        from signing.p7m import read_signed_file

        size = len(data) + len(timestamp or b"")
        if size > self.settings.max_pdf_bytes:
            raise UnreadableInput(
                f"signed file is {size} bytes, over the limit of {self.settings.max_pdf_bytes}"
            )
        return cast("SignedFile", await self._bounded(read_signed_file, self, data, timestamp))

    def verify_signed_file_sync(self, data: bytes, *, timestamp: bytes | None = None) -> SignedFile:
        """Synchronous :meth:`verify_signed_file` (not inside a running loop)."""
        return asyncio.run(self.verify_signed_file(data, timestamp=timestamp))

    # -- ASiC-E --------------------------------------------------------------------------

    async def verify_asic(self, data: bytes) -> AsicVerdict:
        """Verify the XAdES signatures of an ASiC-E container (see :mod:`signing.asic`)."""
        from signing.asic import verify_container

        return cast("AsicVerdict", await self._bounded(verify_container, self, data))

    def verify_asic_sync(self, data: bytes) -> AsicVerdict:
        """Synchronous :meth:`verify_asic` (not inside a running loop)."""
        return asyncio.run(self.verify_asic(data))


def _other_certificates(signed_data: Any) -> list[asn1_x509.Certificate]:
    """The SignedData's certificates other than the signer's."""
    try:
        return list(extract_certificate_info(signed_data).other_certs)
    except Exception:  # noqa: BLE001 - without them the chain is judged on the anchors.
        return []


def _signer_certificate(signed_data: Any) -> asn1_x509.Certificate | None:
    """The signer's certificate among the SignedData's certificates, if it is there."""
    try:
        return extract_certificate_info(signed_data).signer_cert
    except Exception:  # noqa: BLE001 - validation reports a missing certificate itself.
        return None
def _signer_count(sig_dict: Any) -> int:
    """How many SignerInfos the CMS in a signature dictionary carries (0 if unreadable)."""
    try:
        content_info = cms.ContentInfo.load(bytes(sig_dict["/Contents"]))
        return len(content_info["content"]["signer_infos"])
    except Exception:  # noqa: BLE001 - an unreadable CMS is pyHanko's to report.
        return 0


def _with_one_signer(data: bytes, sig_dict: Any, index: int) -> bytes:
    """``data`` with the signature's ``/Contents`` holding only SignerInfo ``index``.

    The new SignedData is shorter than the old one and is written, zero
    padded, into the same hex string between the ByteRange's two parts.
    """
    byte_range = [int(x) for x in sig_dict["/ByteRange"]]
    if len(byte_range) != 4 or byte_range[0] != 0:
        raise ValueError("the signature's ByteRange is not two parts from the start")
    start, end = byte_range[1], byte_range[2]
    gap = data[start:end]
    if not (gap.startswith(b"<") and gap.endswith(b">")) or end > len(data):
        raise ValueError("the ByteRange gap is not the /Contents hex string")
    content_info = cms.ContentInfo.load(bytes(sig_dict["/Contents"]))
    signed_data = content_info["content"]
    single = signed_data.copy()
    single["signer_infos"] = cms.SignerInfos([signed_data["signer_infos"][index].copy()])
    encoded = cms.ContentInfo({"content_type": "signed_data", "content": single}).dump().hex()
    room = len(gap) - 2
    if len(encoded) > room:
        raise ValueError("the single-signer CMS does not fit the signature's /Contents")
    return data[:start] + b"<" + encoded.encode("ascii").ljust(room, b"0") + b">" + data[end:]


def _der_ordered(a: bytes, b: bytes) -> bool:
    """``a`` may precede ``b`` in a DER SET OF (X.690 11.6: shorter padded with zero octets)."""
    size = max(len(a), len(b))
    return a.ljust(size, b"\x00") <= b.ljust(size, b"\x00")


def _judge_signed_attributes_der(
    signer_info: cms.SignerInfo, codes: set[str], notes: list[str]
) -> None:
    """SIG-INVALID when the signed attributes are not in DER order (RFC 5652 5.4).

    The signature is computed over the DER encoding of the signed attributes;
    a SET OF whose members are not sorted is not DER, and DSS and the ETSI
    plug-tests judge such a signature HASH_FAILURE, though its bytes verify.
    """
    attributes = signer_info["signed_attrs"]
    if attributes is None or isinstance(attributes, core.Void) or not len(attributes):
        return
    encodings = [attribute.dump() for attribute in attributes]
    if all(_der_ordered(a, b) for a, b in zip(encodings, encodings[1:], strict=False)):
        return
    codes.add("SIG-INVALID")
    notes.append(
        "the signed attributes are not DER-encoded (their SET is not sorted, RFC 5652 5.4); "
        "the signed data is not what DER gives (DSS: HASH_FAILURE)"
    )


def _broken(
    field_name: str | None, note: str, *, kind: Literal["pades", "cms", "smime", "p7m"] = "pades"
) -> SignatureStatus:
    """The status of a signature that could not be validated at all."""
    return SignatureStatus(
        field_name=field_name,
        kind=kind,
        intact=False,
        valid=False,
        trusted=False,
        signer=None,
        signing_time=None,
        timestamp_present=False,
        timestamp_valid=False,
        timestamp_trusted=False,
        timestamp_time=None,
        modified_after=False,
        covered_bytes=None,
        codes=("SIG-INVALID",),
        notes=(note,),
    )
