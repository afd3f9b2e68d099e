"""The trust a verification runs under: anchors, trusted lists, revocation policy and fetching.

One :class:`TrustContext` is made per verifier. It reads the anchors once,
parses the trusted lists when first needed (and again when a refresh has
rewritten their cache), and builds the fresh, cheap pyHanko validation
contexts that PDF, CMS and ASiC verification all judge chains in. It never
uses the operating system's certificate store.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from asn1crypto import crl as asn1_crl
from asn1crypto import ocsp as asn1_ocsp
from asn1crypto import x509 as asn1_x509
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.policy_decl import (
    NO_REVOCATION,
    CertRevTrustPolicy,
)
from pyhanko_certvalidator.registry import SimpleTrustManager

from signing.settings import VerifierSettings
from signing.tolerant import TolerantKeyPolicy, TolerantSignatureValidator
from signing.trust.anchors import load_trust_roots
from signing.trust.fetching import FetchSettings, MessageFetching, withhold_stale
from signing.trust.qualification import ListsAndRootsTrustManager
from signing.trust.trustlists import TrustSnapshot, load_snapshot, state_mtime

#: Parsed certificates kept for reuse by their encoding (see :meth:`TrustContext.parsed`).
PARSED_CERTIFICATES = 256
#: Certificates longer than this are never kept.
PARSED_CERTIFICATE_BYTES = 16 * 1024


def _settled(cert: asn1_x509.Certificate) -> bool:
    """Parse ``cert`` through, with the facts validation asks of it; ``False`` if it breaks.

    asn1crypto parses lazily and builds some facts in several steps (the
    extensions); a certificate shared between verifications is settled first,
    by the one thread that still owns it. One that cannot be parsed is not shared.
    """
    try:
        _ = cert.native
        _ = (cert.key_identifier, cert.authority_key_identifier, cert.issuer_serial)
        _ = (cert.sha1, cert.sha256, cert.public_key.sha1, cert.subject.hashable)
    except Exception:  # left to the validation, unshared.
        return False
    return True


@dataclass(frozen=True)
class Revinfo:
    """The revocation data one signature carries, as the validator is to be given it."""

    crls: tuple[asn1_crl.CertificateList, ...] = ()
    """CRLs embedded in the signature or the document."""

    ocsps: tuple[asn1_ocsp.OCSPResponse, ...] = ()
    """OCSP responses embedded in the signature or the document."""

    fresh_after: datetime | None = None
    """The signature time-stamp's time: cached answers issued before it are not reused."""


class TrustContext:
    """Anchors, trusted lists and revocation policy of one verifier (thread-safe)."""

    def __init__(
        self, settings: VerifierSettings, *, now: Callable[[], datetime] | None = None
    ) -> None:
        self.settings = settings
        self._now = now or (lambda: datetime.now(UTC))
        # The anchors are read once; each verification builds fresh contexts.
        self.anchors = load_trust_roots(settings.trust_roots)
        #: SHA-256 digests of the configured anchors (qualification asks for them).
        self.root_digests = frozenset(cert.sha256 for cert in self.anchors)
        # The anchors' trust manager, built once: it holds the roots and an
        # index of them by subject, nothing a validation adds to (the paths,
        # certificates and revocation data of one signature stay in its own
        # ValidationContext's registry and managers).
        self._roots_manager = SimpleTrustManager.build(trust_roots=list(self.anchors))
        # The trusted lists are parsed when first needed and again whenever a
        # refresh has rewritten the cache's state file.
        self._snapshot: TrustSnapshot | None = None
        self._snapshot_key: tuple[float | None, int] | None = None
        self._trust_manager: ListsAndRootsTrustManager | None = None
        self._snapshot_lock = threading.Lock()
        self._parsed: OrderedDict[bytes, asn1_x509.Certificate] = OrderedDict()
        self._parsed_lock = threading.Lock()

    def now(self) -> datetime:
        """The current time (a test may give its own clock)."""
        return self._now()

    def snapshot(self) -> TrustSnapshot | None:
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
                self._trust_manager = ListsAndRootsTrustManager(self.anchors, self._snapshot)
            return self._snapshot

    def validation_context(
        self,
        *,
        moment: datetime | None,
        fetching: MessageFetching | None,
        other_certs: Iterable[asn1_x509.Certificate] = (),
        revinfo: Revinfo | None = None,
        revocation: str | None = None,
    ) -> ValidationContext:
        """A validation context over the configured anchors only (never the OS store).

        With ``fetching``, revocation data is fetched for certificates whose
        chain reaches an anchor (see :mod:`signing.trust.fetching`); a cached
        answer issued before ``revinfo.fresh_after`` (the signature
        time-stamp) is not reused. ``revocation`` overrides ``signing.revocation``.
        """
        revinfo = revinfo or Revinfo()
        crls, ocsps = list(revinfo.crls), list(revinfo.ocsps)
        backend = (
            fetching.backend(revinfo.fresh_after, crls=crls, ocsps=ocsps)
            if fetching is not None
            else None
        )
        certificates = self.parsed(other_certs)
        kwargs: dict[str, Any] = {
            "trust_manager": self._roots_manager,
            "other_certs": certificates,
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
        if self.snapshot() is not None and self._trust_manager is not None:
            kwargs["trust_manager"] = self._trust_manager
            certificates.extend(self._trust_manager.certificates())
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

    def parsed(self, certificates: Iterable[asn1_x509.Certificate]) -> list[asn1_x509.Certificate]:
        """``certificates``, each replaced by an earlier parse of the same bytes if one is kept.

        Every message carries its CA and TSA certificates again, and pyHanko
        parses each afresh: its extensions, key identifiers and digests (which
        asn1crypto computes once per object) were worked out again for every
        signature. An object kept here is only ever given in place of one with
        the very same encoding, so a validation sees the certificates its own
        message carries and no others; only their parsing is shared. An object
        is fully parsed before it is kept (:func:`_settled`), so verifications
        on other threads only read it. Bounded:
        :data:`PARSED_CERTIFICATES` objects of at most
        :data:`PARSED_CERTIFICATE_BYTES`, least recently used dropped first.
        """
        result: list[asn1_x509.Certificate] = []
        for cert in certificates:
            der: bytes = cert.dump()
            kept = None
            if len(der) <= PARSED_CERTIFICATE_BYTES:
                with self._parsed_lock:
                    kept = self._parsed.get(der)
                    if kept is not None:
                        self._parsed.move_to_end(der)
                if kept is None and _settled(cert):
                    with self._parsed_lock:
                        kept = self._parsed.setdefault(der, cert)
                        while len(self._parsed) > PARSED_CERTIFICATES:
                            self._parsed.popitem(last=False)
            result.append(kept if kept is not None else cert)
        return result

    def fetching(self) -> MessageFetching | None:
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

    @staticmethod
    def revinfo(
        signer: asn1_x509.Certificate | None,
        fresh_after: datetime | None,
        crls: Iterable[asn1_crl.CertificateList],
        ocsps: Iterable[asn1_ocsp.OCSPResponse],
        notes: list[str],
    ) -> Revinfo:
        """The revocation data a signature carries, as the validator is to be given it.

        ``fresh_after`` is the signature time-stamp's time (``None`` without
        one): the signer's data issued before it is withheld as no proof.
        """
        kept_crls, kept_ocsps, stale = withhold_stale(signer, fresh_after, crls, ocsps)
        notes.extend(stale)
        return Revinfo(crls=tuple(kept_crls), ocsps=tuple(kept_ocsps), fresh_after=fresh_after)
