"""The judgement shared by PDF, CMS, ``.p7m``/``.tsd`` and ASiC signatures.

Each format reads its signature its own way and asks pyHanko to validate it;
what pyHanko reports is then judged here, one way for all of them: integrity,
the DER rule for signed attributes, the signer's chain (revoked, expired,
revocation unknown, untrusted), the signer's qualification and the signature
time-stamp. The functions add notes to the list they are given and return the
:class:`~signing.status.SignatureStatus` facts they decide. No SPEC code is
given here: :mod:`rules.signature` computes every SIG-*/TS-* code from these
facts (and the workflow's policy).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import datetime
from typing import Protocol, TypedDict

from asn1crypto import cms, core
from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.x509.oid import NameOID
from pyhanko.sign.ades.report import AdESSubIndic
from pyhanko.sign.general import extract_certificate_info, find_unique_cms_attribute
from pyhanko.sign.validation.generic_cms import extract_tst_data_iter, validate_cert_usage
from pyhanko.sign.validation.status import RevocationDetails, StandardCMSSignatureStatus
from pyhanko_certvalidator.path import ValidationPath

from signing.qc import qc_info
from signing.status import ChainProblem, Kind, SignatureStatus, SignerIdentity
from signing.tolerant import NEGATIVE_MODULUS_NOTE, has_negative_modulus
from signing.trust.context import Revinfo, TrustContext
from signing.trust.fetching import MessageFetching
from signing.trust.qualification import (
    Qualification,
    TimestampQualification,
    judge_signer,
    judge_timestamp,
)

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
#: More SignerInfos than this in one signature are not judged one by one.
MAX_SIGNERS = 8


class _StatusFacts(Protocol):
    """What the judgement reads from any pyHanko validation status (under pyHanko's names)."""

    @property
    def intact(self) -> bool: ...
    @property
    def valid(self) -> bool: ...
    @property
    def trusted(self) -> bool: ...
    @property
    def trust_problem_indic(self) -> AdESSubIndic | None: ...


class TimestampFacts(_StatusFacts, Protocol):
    """What the judgement reads from pyHanko's status of a time-stamp token."""

    @property
    def timestamp(self) -> datetime | None: ...


class ValidationFacts(_StatusFacts, Protocol):
    """What the judgement reads from pyHanko's status of a signature."""

    @property
    def revoked(self) -> bool: ...
    @property
    def signing_cert(self) -> asn1_x509.Certificate | None: ...
    @property
    def validation_path(self) -> ValidationPath | None: ...
    @property
    def revocation_details(self) -> RevocationDetails | None: ...
    @property
    def timestamp_validity(self) -> TimestampFacts | None: ...
    @property
    def signer_reported_dt(self) -> datetime | None: ...


class TimestampFields(TypedDict):
    """The ``timestamp_*`` fields of :class:`~signing.status.SignatureStatus`."""

    timestamp_qualification: TimestampQualification | None
    timestamp_present: bool
    timestamp_valid: bool
    timestamp_trusted: bool
    timestamp_time: datetime | None
    timestamp_trust_problem: str | None


class SignerFields(TimestampFields):
    """The :class:`~signing.status.SignatureStatus` fields every format fills alike."""

    qualification: Qualification | None
    intact: bool
    valid: bool
    trusted: bool
    signer: SignerIdentity | None
    signing_time: datetime | None


# -- the signer's identity ------------------------------------------------------------------


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
    der: bytes = certificate.dump()
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


def identity(certificate: asn1_x509.Certificate | None, notes: list[str]) -> SignerIdentity | None:
    """:func:`signer_identity`, or ``None`` (with a note) when it cannot be described."""
    if certificate is None:
        return None
    try:
        return signer_identity(certificate)
    except Exception as exc:  # an odd certificate loses only the identity.
        notes.append(f"the signer's certificate cannot be described: {exc!r}")
        return None


# -- what a CMS SignerInfo carries -------------------------------------------------------------


def timestamp_time(signer_info: cms.SignerInfo) -> datetime | None:
    """The ``genTime`` of the first signature time-stamp token, without validating it."""
    for signed_data in extract_tst_data_iter(signer_info, signed=False):
        tst_info = signed_data["encap_content_info"]["content"].parsed
        gen_time = tst_info["gen_time"].native
        if isinstance(gen_time, datetime):
            return gen_time
    return None


def adobe_revinfo(
    signer_info: cms.SignerInfo,
) -> tuple[list[asn1_crl.CertificateList], list[asn1_ocsp.OCSPResponse]]:
    """CRLs and OCSP responses from an ``adbe-revocationInfoArchival`` signed attribute."""
    crls: list[asn1_crl.CertificateList] = []
    ocsps: list[asn1_ocsp.OCSPResponse] = []
    try:
        value = find_unique_cms_attribute(
            signer_info["signed_attrs"], "adobe_revocation_info_archival"
        )
    except Exception:  # an absent or broken attribute just adds nothing.
        return crls, ocsps
    for item in value["crl"] or ():
        crls.append(item)
    for item in value["ocsp"] or ():
        ocsps.append(item)
    return crls, ocsps


def other_certificates(signed_data: cms.SignedData) -> list[asn1_x509.Certificate]:
    """The SignedData's certificates other than the signer's."""
    try:
        return list(extract_certificate_info(signed_data).other_certs)
    except Exception:  # without them the chain is judged on the anchors.
        return []


def signer_certificate(signed_data: cms.SignedData) -> asn1_x509.Certificate | None:
    """The signer's certificate among the SignedData's certificates, if it is there."""
    try:
        found: asn1_x509.Certificate | None = extract_certificate_info(signed_data).signer_cert
    except Exception:  # validation reports a missing certificate itself.
        return None
    return found


# -- integrity ------------------------------------------------------------------------------


def judge_integrity(status: ValidationFacts, mismatch: str, notes: list[str]) -> None:
    """Note ``mismatch`` unless the digest matches, and a note unless the signature verifies."""
    if not status.intact:
        notes.append(mismatch)
    if not status.valid:
        notes.append("the cryptographic signature does not verify")


def _der_ordered(a: bytes, b: bytes) -> bool:
    """``a`` may precede ``b`` in a DER SET OF (X.690 11.6: shorter padded with zero octets)."""
    size = max(len(a), len(b))
    return a.ljust(size, b"\x00") <= b.ljust(size, b"\x00")


def judge_signed_attributes_der(signer_info: cms.SignerInfo, notes: list[str]) -> bool:
    """Whether the signed attributes are in DER order (RFC 5652 5.4), with a note if not.

    The signature is computed over the DER encoding of the signed attributes;
    a SET OF whose members are not sorted is not DER, and DSS and the ETSI
    plug-tests judge such a signature HASH_FAILURE, though its bytes verify.
    """
    attributes = signer_info["signed_attrs"]
    if attributes is None or isinstance(attributes, core.Void) or not len(attributes):
        return True
    encodings: list[bytes] = [attribute.dump() for attribute in attributes]
    if all(_der_ordered(a, b) for a, b in zip(encodings, encodings[1:], strict=False)):
        return True
    notes.append(
        "the signed attributes are not DER-encoded (their SET is not sorted, RFC 5652 5.4); "
        "the signed data is not what DER gives (DSS: HASH_FAILURE)"
    )
    return False


def broken(field_name: str | None, note: str, *, kind: Kind = "pades") -> SignatureStatus:
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
        notes=(note,),
        validated=False,
    )


# -- the signer's chain ------------------------------------------------------------------------


def _problem_name(problem: AdESSubIndic | None) -> str | None:
    return getattr(problem, "name", None)


async def only_revocation_unknown(
    trust: TrustContext,
    status: ValidationFacts,
    moment: datetime,
    other_certs: Iterable[asn1_x509.Certificate],
    revinfo: Revinfo,
) -> bool:
    """Whether the signer's chain fails under hard-fail only for want of revocation data.

    pyHanko reports missing revocation data as a general chain failure,
    like other path problems; the chain is judged again without fetching
    under soft-fail, and when that passes, nothing but the revocation
    status was missing (``SIG-REVOCATION-UNKNOWN``, not ``SIG-UNTRUSTED``).
    """
    if status.trusted or trust.settings.revocation != "hard-fail":
        return False
    cert = status.signing_cert
    problem = _problem_name(status.trust_problem_indic)
    if cert is None or problem not in _REVINFO_UNAVAILABLE | {_GENERAL_FAILURE}:
        return False
    context = trust.validation_context(
        moment=moment, fetching=None, other_certs=other_certs, revocation="soft-fail",
        revinfo=revinfo,
    )
    try:
        result = await validate_cert_usage(
            cert, context, StandardCMSSignatureStatus.default_usage_constraints(),
            context.path_builder.async_build_paths_lazy(cert),
        )
    except Exception:  # then the chain has problems of its own.
        return False
    return result.success_result is not None


def judge_trust(
    trust: TrustContext, status: ValidationFacts, notes: list[str],
    moment: datetime, fetching: MessageFetching | None = None, *,
    revocation_unknown: bool = False,
) -> ChainProblem | None:
    """Why the signer's chain is not accepted (``None``: it is trusted), with notes.

    The :attr:`~signing.status.SignatureStatus.chain_problem` fact: revoked, expired,
    revocation status unknown (``revocation_unknown``: see :func:`only_revocation_unknown`)
    or untrusted."""
    settings = trust.settings
    if status.trusted:
        if fetching is not None and fetching.failures and settings.revocation == "soft-fail":
            notes.append("accepted under soft-fail although revocation data could not be "
                         "fetched: " + "; ".join(fetching.failures))
        return None
    problem = status.trust_problem_indic
    problem_name = getattr(problem, "name", str(problem))
    if status.revoked or problem_name in _REVOCATION_PROBLEMS:
        details = status.revocation_details
        when = f" on {details.revocation_date.isoformat()}" if details is not None else ""
        notes.append(f"the signer's certificate was revoked{when}")
        return "revoked"
    if problem_name in _EXPIRY_PROBLEMS:
        notes.append(
            f"the signer's certificate was not valid at {moment.isoformat()} ({problem_name})"
        )
        return "expired"
    if problem_name in _REVINFO_UNAVAILABLE or revocation_unknown:
        notes.append(
            "the revocation status of the signer's certificate at "
            f"{moment.isoformat()} could not be established ({problem_name})"
        )
        if fetching is not None:
            notes.extend(fetching.failures)
        elif not settings.allow_fetching:
            notes.append("fetching revocation data is off (signing.allow_fetching)")
        return "revocation-unknown"
    if status.intact and status.valid:
        notes.append(f"the signer's chain does not reach a configured anchor ({problem_name})")
    return "untrusted"


# -- qualification and the signature time-stamp ----------------------------------------------


def _qualification(
    trust: TrustContext, status: ValidationFacts, moment: datetime, notes: list[str]
) -> Qualification | None:
    """The signer certificate's qualified status at ``moment`` (:mod:`signing.trust.qualification`)."""
    cert = status.signing_cert
    if cert is None:
        return None
    try:
        return judge_signer(cert, status.validation_path, moment,
                            trust.root_digests, trust.snapshot())
    except Exception as exc:  # an odd certificate is simply not qualified.
        notes.append(f"the qualified status cannot be judged: {exc!r}")
        return None


def judge_signer_and_timestamp(
    trust: TrustContext, status: ValidationFacts, ts_time: datetime | None,
    notes: list[str], now: datetime, *, fallback: TimestampFacts | None = None,
) -> SignerFields:
    """Judge the signer's qualification and the signature time-stamp.

    ``status`` is pyHanko's validation status of a PDF or a CMS signature (or
    the same facts of a XAdES signature); ``fallback`` the status of a
    document time-stamp standing in for a missing signature time-stamp.
    Returns the :class:`~signing.status.SignatureStatus` fields every kind fills alike.
    """
    signer = identity(status.signing_cert, notes)
    if has_negative_modulus(status.signing_cert):
        notes.append(NEGATIVE_MODULUS_NOTE)
    ts = status.timestamp_validity or fallback
    # Qualification is judged at the time-stamp's time (a time-stamp in the
    # future is not believed), else now.
    stamped = ts.timestamp if ts is not None else ts_time
    moment = stamped if stamped is not None and stamped <= now else now
    qualification = _qualification(trust, status, moment, notes)
    timestamp = judge_timestamp_status(trust, ts, ts_time, moment, notes)
    return SignerFields(
        qualification=qualification,
        intact=bool(status.intact),
        valid=bool(status.valid),
        trusted=bool(status.trusted),
        signer=signer,
        signing_time=status.signer_reported_dt,
        timestamp_qualification=timestamp["timestamp_qualification"],
        timestamp_present=timestamp["timestamp_present"],
        timestamp_valid=timestamp["timestamp_valid"],
        timestamp_trusted=timestamp["timestamp_trusted"],
        timestamp_time=timestamp["timestamp_time"],
        timestamp_trust_problem=timestamp["timestamp_trust_problem"],
    )


def judge_timestamp_status(
    trust: TrustContext, ts: TimestampFacts | None, ts_time: datetime | None, moment: datetime,
    notes: list[str],
) -> TimestampFields:
    """Judge one time-stamp as a signature time-stamp is judged.

    ``ts`` is pyHanko's status of the token (``None`` when there is none or
    it could not be validated; ``ts_time`` then tells whether one was
    there), ``moment`` the time the TSA's qualification is judged at. Notes
    a broken or untrusted token and returns the ``timestamp_*`` fields of
    :class:`~signing.status.SignatureStatus` (``TS-INVALID`` and ``TS-UNTRUSTED``
    are the rules' judgement of them). Also
    used for the time-stamps over a whole file (``.tsd``, ``.m7m``, ``.tsr``).
    Whether a time-stamp is required, must be qualified or is too old is
    policy, judged in :mod:`rules.signature` from these facts.
    """
    ts_present = ts is not None or ts_time is not None
    ts_valid = bool(ts is not None and ts.intact and ts.valid)
    ts_trusted = bool(ts is not None and ts.trusted)
    _note_timestamp(ts, ts_present, ts_valid, ts_trusted, notes)
    ts_qualification = None
    if ts is not None and ts_valid and ts_trusted:
        ts_qualification = judge_timestamp(
            getattr(ts, "validation_path", None), moment, trust.root_digests, trust.snapshot())
    return TimestampFields(
        timestamp_qualification=ts_qualification,
        timestamp_present=ts_present,
        timestamp_valid=ts_valid,
        timestamp_trusted=ts_trusted,
        timestamp_time=ts.timestamp if ts is not None else ts_time,
        timestamp_trust_problem=(
            _problem_name(ts.trust_problem_indic) or str(ts.trust_problem_indic)
            if ts is not None and ts_valid and not ts_trusted else None),
    )


def _note_timestamp(
    ts: TimestampFacts | None,
    present: bool,
    valid: bool,
    trusted: bool,
    notes: list[str],
) -> None:
    if not present:
        return
    if ts is None or not valid:
        notes.append("the time-stamp token is broken or does not match the signature")
        return
    if not trusted:
        notes.append(
            "the time-stamp authority is not trusted "
            f"({getattr(ts.trust_problem_indic, 'name', ts.trust_problem_indic)})"
        )
