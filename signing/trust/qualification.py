"""Qualified status of a signer's certificate and of a time-stamping authority.

Two sources, as SPEC section 8 says:

* a chain ending at an anchor of ``signing.trust_roots`` (the agency's own or a
  test PKI) is judged by the certificate's QcStatements (EN 319 412-5:
  QcCompliance, QcType, QcSSCD), and a time-stamping authority under such an
  anchor counts as qualified;
* a chain ending at a service of an EU trusted list is judged by pyHanko's
  qualification assessor (``QualificationAssessor``, ETSI TS 119 615) against
  that territory's list at the signing time: the CA/QC service must have been
  granted then, and the list's qualifiers may override the certificate's own
  statements. A time-stamp is qualified when its authority is a QTST service
  granted at the time-stamp's time. A stale list judges nothing (fail closed).

The results are facts (:class:`Qualification`, :class:`TimestampQualification`);
the policy (require qualified, QSCD, accept e-seals) is applied to them in
:mod:`rules.signature`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, Literal

from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator.authority import Authority, AuthorityWithCert, TrustAnchor
from pyhanko_certvalidator.path import ValidationPath
from pyhanko_certvalidator.registry import TrustManager

from signing.qc import QC_TYPE_ESEAL_OID, QC_TYPE_ESIGN_OID, QC_TYPE_WEB_OID, qc_info
from signing.status import QcKind, Qualification, TimestampQualification
from signing.trust.trustlists import TrustSnapshot

__all__ = ["Qualification", "TimestampQualification", "from_qc_statements"]

# -- QcStatements --------------------------------------------------------------------------


def from_qc_statements(cert: asn1_x509.Certificate,
                       source: Literal["trust-roots", "qc-statements"]) -> Qualification:
    """Judge by the certificate's QcStatements alone (EN 319 412-5)."""
    qc = qc_info(cert)
    qc_type: QcKind | None = None
    if qc.compliance:
        if QC_TYPE_ESIGN_OID in qc.types:
            qc_type = "esign"
        elif QC_TYPE_ESEAL_OID in qc.types:
            qc_type = "eseal"
        elif QC_TYPE_WEB_OID in qc.types:
            qc_type = "web"
        elif not qc.types:
            # QcCompliance without a QcType is a certificate for e-signatures.
            qc_type = "esign"
    reasons = ["judged by the certificate's QcStatements"]
    if qc.garbled:
        reasons.append("its qcStatements extension cannot be read")
    return Qualification(
        source=source, qualified=qc_type is not None, qc_type=qc_type,
        qscd=bool(qc.sscd and qc_type is not None), reasons=tuple(reasons),
    )


# -- trust manager --------------------------------------------------------------------------


class ListsAndRootsTrustManager(TrustManager):
    """Anchors: the ``trust_roots`` certificates and every CA and TSA the lists name.

    A list's authority anchors a path whatever its service's status or dates:
    whether the service was granted at the signing time is the qualification's
    question, not the chain's.
    """

    def __init__(self, roots: Iterable[asn1_x509.Certificate], snapshot: TrustSnapshot) -> None:
        self._authorities: dict[Authority, TrustAnchor] = {}
        for cert in roots:
            authority = AuthorityWithCert(cert)
            self._authorities[authority] = TrustAnchor(authority)
        for authority in snapshot.authorities():
            self._authorities.setdefault(authority, TrustAnchor(authority))

    def as_trust_anchor(self, authority: Authority) -> TrustAnchor | None:
        return self._authorities.get(authority)

    def find_potential_issuers(self, cert: asn1_x509.Certificate) -> Iterator[TrustAnchor]:
        for authority, anchor in self._authorities.items():
            if authority.is_potential_issuer_of(cert):
                yield anchor

    def certificates(self) -> list[asn1_x509.Certificate]:
        return [a.certificate for a in self._authorities if isinstance(a, AuthorityWithCert)]


# -- judgement ------------------------------------------------------------------------------


def _anchor_cert(path: ValidationPath) -> asn1_x509.Certificate | None:
    try:
        authority = path.trust_anchor.authority
    except Exception:  # an incomplete path has no anchor.
        return None
    return authority.certificate if isinstance(authority, AuthorityWithCert) else None


def _matching_territories(snapshot: TrustSnapshot, path: ValidationPath) -> list[str]:
    """Territories whose list names an authority of ``path`` (at any time)."""
    found = []
    for territory, registry in snapshot.registries.items():
        for authority in path.iter_authorities():
            if next(iter(registry.applicable_service_definitions(authority, None)), None):
                found.append(territory)
                break
    return found


def judge_signer(cert: asn1_x509.Certificate, path: ValidationPath | None, moment: datetime,
                 roots: frozenset[bytes], snapshot: TrustSnapshot | None) -> Qualification:
    """The qualified status of ``cert`` (validated along ``path``) at ``moment``."""
    anchor = _anchor_cert(path) if path is not None else None
    if anchor is not None and anchor.sha256 in roots:
        return from_qc_statements(cert, "trust-roots")
    if snapshot is None or anchor is None or path is None:
        return from_qc_statements(cert, "qc-statements")
    territories = _matching_territories(snapshot, path)
    if not territories:
        return from_qc_statements(cert, "qc-statements")
    fresh = [t for t in territories if t not in snapshot.stale]
    if not fresh:
        return Qualification(source="trusted-list", qualified=False, qc_type=None, qscd=False,
                             stale_list=snapshot.stale[territories[0]],
                             reasons=(snapshot.stale[territories[0]],))
    from pyhanko.sign.validation.qualified.assess import QualificationAssessor
    from pyhanko.sign.validation.qualified.tsp import QcCertType

    territory = fresh[0]
    try:
        result = QualificationAssessor(snapshot.registries[territory]).check_entity_cert_qualified(
            path, moment)
    except Exception as exc:  # an assessment that fails qualifies nothing.
        return Qualification(source="trusted-list", qualified=False, qc_type=None, qscd=False,
                             reasons=(f"the qualification cannot be assessed: {exc!r}",))
    status = result.status
    service = result.service_definition
    if service is None or not status.qualified:
        when = moment.isoformat()
        reason = (f"no qualified CA service granted at {when} on the trusted list {territory}"
                  if service is None else
                  f"the trusted list {territory} does not qualify it at {when} "
                  f"({service.base_info.service_name})")
        return Qualification(source="trusted-list", qualified=False, qc_type=None, qscd=False,
                             reasons=(reason,))
    kinds: dict[Any, QcKind] = {QcCertType.QC_ESIGN: "esign", QcCertType.QC_ESEAL: "eseal",
                                QcCertType.QC_WEB: "web"}
    qc_type = kinds[status.qc_type]
    name = f"{territory}: {service.base_info.service_name}"
    return Qualification(
        source="trusted-list", qualified=True, qc_type=qc_type,
        qscd=status.qc_key_security.is_qscd, service=name,
        reasons=(f"qualified at {moment.isoformat()} by {name} "
                 f"({status.qc_type.name}, key {status.qc_key_security.name})",),
    )


def judge_timestamp(path: ValidationPath | None, moment: datetime, roots: frozenset[bytes],
                    snapshot: TrustSnapshot | None) -> TimestampQualification:
    """Whether the TSA validated along ``path`` was a granted QTST at ``moment``."""
    from pyhanko.sign.validation.qualified.tsp import QTST_URI

    anchor = _anchor_cert(path) if path is not None else None
    if anchor is not None and anchor.sha256 in roots:
        return TimestampQualification(True, "trust-roots",
                                      reasons=("the TSA is under a configured trust root",))
    if path is None or snapshot is None:
        return TimestampQualification(False, "none", reasons=(
            "the time-stamping authority is on no trusted list",))
    leaf = path.leaf
    candidates: list[Authority] = list(path.iter_authorities())
    if isinstance(leaf, asn1_x509.Certificate):
        candidates.insert(0, AuthorityWithCert(leaf))
    stale: str | None = None
    for territory, registry in snapshot.registries.items():
        for authority in candidates:
            for service in registry.applicable_service_definitions(authority, moment):
                if service.base_info.service_type != QTST_URI:
                    continue
                if territory in snapshot.stale:
                    stale = snapshot.stale[territory]
                    continue
                name = f"{territory}: {service.base_info.service_name}"
                return TimestampQualification(True, "trusted-list", service=name, reasons=(
                    f"a qualified time-stamping service at {moment.isoformat()} ({name})",))
    if stale is not None:
        return TimestampQualification(False, "trusted-list", reasons=(
            f"{stale}; the time-stamp's qualified status cannot be established",))
    return TimestampQualification(False, "none", reasons=(
        f"the time-stamping authority is no qualified time-stamping service granted at "
        f"{moment.isoformat()} on the trusted lists",))
