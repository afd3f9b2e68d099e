"""Reading RSA keys whose modulus is DER-encoded as a negative INTEGER.

Estonian ID-card certificates of 2011–2015 (ESTEID-SK 2011 and its
successors) encode the RSA modulus without the leading zero octet DER needs
for a positive INTEGER, so the modulus reads as negative. pyca/cryptography
refuses such a key and asn1crypto's key size is a math domain error, while
DSS and digidoc4j accept the signatures. Verification here reads the
modulus octets as the unsigned number the issuer meant, for *verification
only*: the certificate's bytes are untouched, so its own signature, its
digest in the signing-certificate attribute and everything issued stay as
they are.

Two pieces plug this into pyHanko's validation context: a signature
validator that verifies with the repaired key, and an algorithm policy that
judges the repaired key's size. Both behave exactly like pyHanko's defaults
for every other key.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from asn1crypto import algos, keys
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pyhanko_certvalidator.policy_decl import (
    AlgorithmUsageConstraint,
    AlgorithmUsagePolicy,
    DisallowWeakAlgorithmsPolicy,
)
from pyhanko_certvalidator.sig_validate import (
    DEFAULT_VALIDATION_CONTEXT,
    DefaultSignatureValidator,
    SignatureValidationContext,
)
from pyhanko_certvalidator.util import (
    get_pyca_cryptography_hash_for_signing,
    process_pss_params,
)

#: The note a verdict carries when a key was read this way.
NEGATIVE_MODULUS_NOTE = (
    "the signer's certificate encodes its RSA modulus as a negative INTEGER (not DER, as "
    "Estonian ID-card certificates of 2011-2015 do); the key was read as unsigned for "
    "verification only"
)


def _rsa_numbers(public_key: keys.PublicKeyInfo) -> tuple[int, int] | None:
    """``(modulus, exponent)`` read as unsigned when the modulus is encoded negative, else None."""
    try:
        if public_key.algorithm not in ("rsa", "rsassa_pss"):
            return None
        parsed = public_key["public_key"].parsed
        modulus = parsed["modulus"]
        if modulus.native >= 0:
            return None
        return int.from_bytes(modulus.contents, "big"), int(parsed["public_exponent"].native)
    except (ValueError, KeyError, TypeError):
        return None


def has_negative_modulus(certificate: asn1_x509.Certificate | None) -> bool:
    """Whether the certificate's RSA modulus is DER-encoded as a negative INTEGER."""
    return certificate is not None and _rsa_numbers(certificate.public_key) is not None


def tolerant_rsa_key(certificate: asn1_x509.Certificate) -> rsa.RSAPublicKey | None:
    """The certificate's RSA key read as unsigned when its modulus is encoded negative, else None."""
    numbers = _rsa_numbers(certificate.public_key)
    if numbers is None:
        return None
    modulus, exponent = numbers
    return rsa.RSAPublicNumbers(exponent, modulus).public_key()


def repaired_public_key(public_key: keys.PublicKeyInfo) -> keys.PublicKeyInfo:
    """The key with its modulus re-encoded as the positive number meant; others as they are."""
    numbers = _rsa_numbers(public_key)
    if numbers is None:
        return public_key
    modulus, exponent = numbers
    return keys.PublicKeyInfo.wrap(
        keys.RSAPublicKey({"modulus": modulus, "public_exponent": exponent}), "rsa"
    )


class TolerantSignatureValidator(DefaultSignatureValidator):
    """pyHanko's signature validator, verifying negative-modulus RSA keys as unsigned."""

    def validate_signature(
        self,
        signature: bytes,
        signed_data: bytes,
        public_key_info: keys.PublicKeyInfo,
        signature_algorithm: algos.SignedDigestAlgorithm,
        context: SignatureValidationContext = DEFAULT_VALIDATION_CONTEXT,
    ) -> None:
        numbers = _rsa_numbers(public_key_info)
        if numbers is None:
            super().validate_signature(
                signature, signed_data, public_key_info, signature_algorithm, context
            )
            return
        modulus, exponent = numbers
        key = rsa.RSAPublicNumbers(exponent, modulus).public_key()
        try:
            mechanism = signature_algorithm.signature_algo
        except ValueError:
            mechanism = signature_algorithm["algorithm"].native
        if mechanism == "rsassa_pss":
            pss, digest = process_pss_params(
                signature_algorithm["parameters"], prehashed=context.prehashed
            )
            key.verify(signature, signed_data, pss, digest)
            return
        if mechanism != "rsassa_pkcs1v15":
            # An RSA key with another mechanism: what pyHanko would say.
            super().validate_signature(
                signature, signed_data, repaired_public_key(public_key_info),
                signature_algorithm, context,
            )
            return
        try:
            hash_algo = signature_algorithm.hash_algo
        except ValueError:
            hash_algo = context.contextual_md_algorithm
        digest = get_pyca_cryptography_hash_for_signing(hash_algo, prehashed=context.prehashed)
        key.verify(signature, signed_data, padding.PKCS1v15(), digest)


class TolerantKeyPolicy(AlgorithmUsagePolicy):
    """An algorithm policy judging a negative-modulus RSA key by the size of the number meant."""

    def __init__(self, inner: AlgorithmUsagePolicy | None = None) -> None:
        self.inner = inner or DisallowWeakAlgorithmsPolicy()  # type: ignore[no-untyped-call]

    def digest_algorithm_allowed(
        self, algo: algos.DigestAlgorithm, moment: datetime | None
    ) -> AlgorithmUsageConstraint:
        return self.inner.digest_algorithm_allowed(algo, moment)

    def signature_algorithm_allowed(
        self,
        algo: algos.SignedDigestAlgorithm,
        moment: datetime | None,
        public_key: keys.PublicKeyInfo | None,
    ) -> AlgorithmUsageConstraint:
        if public_key is not None:
            public_key = repaired_public_key(public_key)
        return self.inner.signature_algorithm_allowed(algo, moment, public_key)

    def __getattr__(self, name: str) -> Any:
        # Anything else pyHanko asks of a policy is the inner policy's.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


__all__ = [
    "NEGATIVE_MODULUS_NOTE",
    "TolerantKeyPolicy",
    "TolerantSignatureValidator",
    "has_negative_modulus",
    "repaired_public_key",
    "tolerant_rsa_key",
]
