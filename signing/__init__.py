"""Signature verification and the demo PKI: a leaf package over bytes and plain settings.

``signing`` imports nothing from ``intake``, ``rules`` or ``mailer``.
"""

from signing.verify import (
    FormVerdict,
    SignatureStatus,
    SignerIdentity,
    UnreadableInput,
    Verifier,
    VerifierSettings,
)

__all__ = [
    "FormVerdict",
    "SignatureStatus",
    "SignerIdentity",
    "UnreadableInput",
    "Verifier",
    "VerifierSettings",
]
