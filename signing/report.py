"""The ETSI TS 119 102-2 validation report of a PDF signature, from the verdict's own validation.

pyHanko renders the report (:func:`pyhanko.sign.validation.report.tools.generate_report`)
from an AdES validation result. Running pyHanko's AdES validation
(``ades_lta_validation``) for it validated every signature a second time, at
about the cost of the verdict itself (issue 12); the report is made instead
from the status of the one validation the verdict was judged on, wrapped as
the result of a validation with time (EN 319 102-1 5.5, ``LTVM``): the
signature time is the trusted time-stamp's, the indication follows that
status. The report is evidence for staff; the facts and the rules' codes stay
the verdict. pyHanko's report generation is incubating and covers PDF
signatures only.
"""

from __future__ import annotations

from collections.abc import Iterator

from pyhanko.sign.ades.report import AdESFailure, AdESPassed, AdESSubIndic
from pyhanko.sign.validation.ades import AdESWithTimeValidationResult, ValidationObjectSet
from pyhanko.sign.validation.pdf_embedded import EmbeddedPdfSignature
from pyhanko.sign.validation.report import tools
from pyhanko.sign.validation.status import PdfSignatureStatus, SignatureStatus
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.ltv.poe import ValidationObject, ValidationObjectType
from pyhanko_certvalidator.revinfo.archival import CRLContainer, OCSPContainer
from xsdata.formats.dataclass.context import XmlContext
from xsdata.formats.dataclass.serializers import XmlSerializer
from xsdata.formats.dataclass.serializers.config import SerializerConfig

# One serializer for the process: xsdata builds each report class's metadata
# once per XmlContext, and pyHanko's generate_report makes a new context for
# every report (a third of the report's cost). Same config as generate_report's.
_SERIALIZER = XmlSerializer(context=XmlContext(), config=SerializerConfig(indent="  "))


def indication(status: PdfSignatureStatus) -> AdESSubIndic:
    """The EN 319 102-1 sub-indication pyHanko's status of one validation stands for."""
    if not status.intact:
        return AdESFailure.HASH_FAILURE
    if not status.valid:
        return AdESFailure.SIG_CRYPTO_FAILURE
    problem: AdESSubIndic | None = status.trust_problem_indic
    return problem if problem is not None else AdESPassed.OK


def _path_certificates(status: SignatureStatus | None) -> Iterator[ValidationObject]:
    path = status.validation_path if status is not None else None
    if path is not None:
        for cert in path.iter_certs(include_root=True):
            yield ValidationObject(ValidationObjectType.CERTIFICATE, cert)


def _validation_objects(
    status: PdfSignatureStatus, context: ValidationContext
) -> Iterator[ValidationObject]:
    """The certificates of the paths and the revocation data the validation was given."""
    yield from _path_certificates(status)
    yield from _path_certificates(status.timestamp_validity)
    yield from _path_certificates(status.content_timestamp_validity)
    for ocsp in context.ocsps:
        for container in OCSPContainer.load_multi(ocsp):
            yield ValidationObject(ValidationObjectType.OCSP_RESPONSE, container)
    for crl in context.crls:
        yield ValidationObject(ValidationObjectType.CRL, CRLContainer(crl))


def pdf_report(
    emb: EmbeddedPdfSignature, status: PdfSignatureStatus, context: ValidationContext,
    notes: list[str],
) -> str | None:
    """The report of one PDF signature validated once (``context``: the signer's context).

    ``None``, with a note, when pyHanko cannot render it: the report is
    evidence, never the verdict.
    """
    try:
        ts = status.timestamp_validity
        stamped = ts.timestamp if ts is not None and ts.intact and ts.valid and ts.trusted else None
        validation_time = status.validation_time
        best = stamped or validation_time
        if best is None:
            raise ValueError("the validation has no validation time")
        result = AdESWithTimeValidationResult(
            ades_subindic=indication(status),
            api_status=status,
            failure_msg=None,
            validation_objects=ValidationObjectSet(_validation_objects(status, context)),
            best_signature_time=best,
            signature_not_before_time=None,
        )
        return render(emb, result)
    except Exception as exc:  # the report is evidence, never the verdict.
        notes.append(f"no validation report: {exc!r}"[:300])
        return None


def render(emb: EmbeddedPdfSignature, result: AdESWithTimeValidationResult) -> str:
    """pyHanko's ``generate_report`` (pinned 0.38.0), rendered by the process's one serializer."""
    report = tools.ts_11910202.ValidationReport(
        signature_validation_report=(tools._generate_report(emb, result),),
        signature_validation_objects=tools.ts_11910202.ValidationObjectListType(
            tuple(tools._package_validation_object(vo) for vo in result.validation_objects)
        ),
    )
    xml: str = _SERIALIZER.render(report, ns_map=tools.NAMESPACES)
    return xml
