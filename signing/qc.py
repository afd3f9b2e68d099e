"""Qualified-certificate statements (ETSI EN 319 412-5) read from an X.509 certificate.

The ASN.1 of ``QCStatements`` is pyHanko's (``pyhanko.sign.ades.qualified_asn1``,
the definitions its own qualification assessor reads); this module adds what
pyHanko's reader does not: tolerance. An absent, duplicated or garbled
``qcStatements`` extension, or a QcType statement that lists several types
(pyHanko raises ``NotImplementedError`` there), yields facts marked
``garbled`` instead of an exception, so a hostile certificate can only ever
make a signature *less* acceptable.
"""

from __future__ import annotations

from dataclasses import dataclass

from asn1crypto import core, x509

# pyHanko's ASN.1 (``pyhanko.sign.ades.qualified_asn1``) is imported where it is used:
# importing any ``pyhanko.sign`` module loads its whole signer stack (0.4 s), and the
# daemon's process reads verdicts (their qualification) without ever parsing a statement.

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
GARBLED = QcInfo(compliance=False, esign=False, sscd=False, garbled=True)


def encode_qc_statements(
    *, compliance: bool = True, esign: bool = True, sscd: bool = True
) -> bytes:
    """Return the DER of a ``QCStatements`` extension value with the given statements."""
    from pyhanko.sign.ades.qualified_asn1 import QcCertificateType, QcStatements

    statements: list[dict[str, object]] = []
    if compliance:
        statements.append({"statement_id": "qc_compliance"})
    if esign:
        statements.append(
            {"statement_id": "qc_type", "statement_info": QcCertificateType(["qct_esign"])}
        )
    if sscd:
        statements.append({"statement_id": "qc_sscd"})
    encoded: bytes = QcStatements(statements).dump()
    return encoded


def parse_qc_statements(extension_value: bytes) -> QcInfo:
    """Parse the DER of a ``QCStatements`` extension value; never raises."""
    from pyhanko.sign.ades.qualified_asn1 import QcStatements

    compliance = sscd = False
    types: list[str] = []
    garbled = False
    try:
        statements = QcStatements.load(extension_value)
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
                    types.extend(type_oid.dotted for type_oid in info)
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
        return GARBLED
    if not found:
        return NOT_QUALIFIED
    if len(found) > 1:
        # RFC 5280 forbids duplicate extensions; refuse to pick one.
        return GARBLED
    try:
        # The extension's OCTET STRING contents are the DER of the extension value.
        value = bytes(found[0]["extn_value"].contents)
    except (ValueError, TypeError):
        return GARBLED
    return parse_qc_statements(value)
