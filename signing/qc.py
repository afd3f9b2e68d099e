"""Qualified-certificate statements (ETSI EN 319 412-5) read from an X.509 certificate.

The parser is deliberately tolerant: an absent, duplicated or garbled
``qcStatements`` extension yields "not qualified" instead of an exception, so a
hostile certificate can only ever make a signature *less* acceptable.
"""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import core, x509

# The certificate extension that carries the statements (RFC 3739).
QC_STATEMENTS_OID = "1.3.6.1.5.5.7.1.3"
# The statement that the certificate is an EU qualified certificate.
QC_COMPLIANCE_OID = "0.4.0.1862.1.1"
# The statement that the private key resides in a qualified signature creation device.
QC_SSCD_OID = "0.4.0.1862.1.4"
# The statement listing the certificate's qualified types.
QC_TYPE_OID = "0.4.0.1862.1.6"
# The qualified type "certificate for electronic signatures".
QC_TYPE_ESIGN_OID = "0.4.0.1862.1.6.1"
# The qualified type "certificate for electronic seals".
QC_TYPE_ESEAL_OID = "0.4.0.1862.1.6.2"
# The qualified type "certificate for website authentication".
QC_TYPE_WEB_OID = "0.4.0.1862.1.6.3"


class _QcStatement(core.Sequence):  # type: ignore[misc]  # asn1crypto is untyped
    """One ``QCStatement``: an identifier and optional statement-specific info."""

    _fields = [
        ("statement_id", core.ObjectIdentifier),
        ("statement_info", core.Any, {"optional": True}),
    ]


class _QcStatements(core.SequenceOf):  # type: ignore[misc]  # asn1crypto is untyped
    """The ``QCStatements`` extension value."""

    _child_spec = _QcStatement


class _QcTypes(core.SequenceOf):  # type: ignore[misc]  # asn1crypto is untyped
    """The ``QcType`` statement info: a sequence of qualified-type identifiers."""

    _child_spec = core.ObjectIdentifier


@dataclass(frozen=True)
class QcInfo:
    """What a certificate's ``qcStatements`` extension declares."""

    compliance: bool
    """The certificate claims to be an EU qualified certificate (QcCompliance)."""

    esign: bool
    """The certificate's QcType includes ``id-etsi-qct-esign``."""

    sscd: bool
    """The key is declared to be held in a QSCD (QcSSCD)."""

    types: tuple[str, ...] = ()
    """Every QcType identifier found, as dotted strings."""

    garbled: bool = False
    """The extension was present but could not be parsed completely."""


NOT_QUALIFIED = QcInfo(compliance=False, esign=False, sscd=False)


def encode_qc_statements(
    *, compliance: bool = True, esign: bool = True, sscd: bool = True
) -> bytes:
    """Return the DER of a ``QCStatements`` extension value with the given statements."""
    statements = []
    if compliance:
        statements.append({"statement_id": QC_COMPLIANCE_OID})
    if esign:
        types = _QcTypes([QC_TYPE_ESIGN_OID])
        statements.append({"statement_id": QC_TYPE_OID, "statement_info": types})
    if sscd:
        statements.append({"statement_id": QC_SSCD_OID})
    encoded: bytes = _QcStatements(statements).dump()
    return encoded


def parse_qc_statements(extension_value: bytes) -> QcInfo:
    """Parse the DER of a ``QCStatements`` extension value; never raises."""
    compliance = esign = sscd = False
    types: list[str] = []
    garbled = False
    try:
        statements = _QcStatements.load(extension_value)
        for statement in statements:
            statement_id = statement["statement_id"].dotted
            if statement_id == QC_COMPLIANCE_OID:
                compliance = True
            elif statement_id == QC_SSCD_OID:
                sscd = True
            elif statement_id == QC_TYPE_OID:
                info = statement["statement_info"]
                if isinstance(info, core.Void):
                    continue
                try:
                    for type_oid in _QcTypes.load(info.dump()):
                        types.append(type_oid.dotted)
                except (ValueError, TypeError):
                    garbled = True
    except (ValueError, TypeError, KeyError, IndexError):
        garbled = True
    # QcCompliance without any QcType is a certificate for e-signatures
    # (EN 319 412-5, 4.2.3; DSS and pyHanko read it so).
    esign = QC_TYPE_ESIGN_OID in types or (compliance and not types and not garbled)
    return QcInfo(
        compliance=compliance, esign=esign, sscd=sscd, types=tuple(types), garbled=garbled
    )


def qc_info(certificate: x509.Certificate | bytes) -> QcInfo:
    """Read the QC statements of a certificate (asn1crypto object or DER); never raises."""
    try:
        cert = (
            certificate
            if isinstance(certificate, x509.Certificate)
            else x509.Certificate.load(certificate)
        )
        extensions = cert["tbs_certificate"]["extensions"]
        found = [ext for ext in extensions if ext["extn_id"].dotted == QC_STATEMENTS_OID]
    except (ValueError, TypeError, KeyError):
        return QcInfo(compliance=False, esign=False, sscd=False, garbled=True)
    if not found:
        return NOT_QUALIFIED
    if len(found) > 1:
        # RFC 5280 forbids duplicate extensions; refuse to pick one.
        return QcInfo(compliance=False, esign=False, sscd=False, garbled=True)
    try:
        # The extension's OCTET STRING contents are the DER of the extension value.
        value = bytes(found[0]["extn_value"].contents)
    except (ValueError, TypeError):
        return QcInfo(compliance=False, esign=False, sscd=False, garbled=True)
    return parse_qc_statements(value)
