"""Revocation fetching that an outsider cannot turn into a weapon.

A certificate names the URLs of its OCSP responder, its CRLs and its
issuer's certificate; in a mail from anyone those URLs are the sender's
choice. pyHanko-certvalidator's own fetchers follow them all, with a
10-second timeout each, and an ``asyncio`` timeout escapes them as a raw
``TimeoutError`` (which used to turn a slow OCSP host into ``SIG-INVALID``).
The backend here replaces them:

* nothing is fetched for a certificate whose chain does not reach a trust
  anchor with the certificates at hand (:func:`chain_is_anchored`), and
  issuer certificates are never fetched (no AIA chasing): an anchored chain
  needs none, and for any other chain the fetch would be a request from the
  agency's network to a host the sender chose;
* every request has a short timeout, and all requests of one message share
  one budget (:class:`MessageFetching`); a request over either fails as
  pyHanko's ``OCSPFetchError`` / ``CRLFetchError`` would, so the revocation
  status is merely unknown;
* answers are cached per process (:data:`CACHE`), keyed by URL and request,
  until the answer's nextUpdate or a short TTL, whichever comes first; a
  cached answer produced before the signature time-stamp is not handed out
  for that signature, since it does not prove the status at signing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncGenerator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from asn1crypto import cms, crl, ocsp, pem, x509
from pyhanko_certvalidator.authority import Authority
from pyhanko_certvalidator.context import ValidationContext
from pyhanko_certvalidator.errors import CRLFetchError, OCSPFetchError, PathBuildingError
from pyhanko_certvalidator.fetchers.aiohttp_fetchers.util import LazySession
from pyhanko_certvalidator.fetchers.api import (
    DEFAULT_USER_AGENT,
    CertificateFetcher,
    CRLFetcher,
    FetcherBackend,
    Fetchers,
    OCSPFetcher,
)
from pyhanko_certvalidator.fetchers.common_utils import (
    enumerate_delivery_point_urls,
    format_ocsp_request,
    process_ocsp_response_data,
)
from pyhanko_certvalidator.util import get_ocsp_urls, get_relevant_crl_dps, issuer_serial

log = logging.getLogger(__name__)

# At most this many answers are cached per process (the oldest go first).
_CACHE_ENTRIES = 1024
# An OCSP answer is small; a CRL of a national eID CA can be several MB.
_MAX_OCSP_BYTES = 256 * 1024
_MAX_CRL_BYTES = 32 * 1024 * 1024
# A certificate names at most this many URLs of each kind that are tried.
_MAX_URLS = 4
# Clock difference allowed between a time-stamp authority and a revocation
# source (whose times are usually whole seconds).
FRESHNESS_TOLERANCE = timedelta(seconds=1)


@dataclass(frozen=True)
class FetchSettings:
    """The ``[signing]`` fetching keys, as plain values."""

    timeout_seconds: float = 5.0
    """Connect-and-read limit of one OCSP or CRL request."""

    budget_seconds: float = 15.0
    """Total time all requests of one message may take."""

    cache_seconds: float = 300.0
    """How long an answer is reused at most (less when its nextUpdate comes sooner)."""


@dataclass
class _Entry:
    value: Any
    issued: datetime | None
    expires: datetime


class RevocationCache:
    """Fetched OCSP responses and CRLs of this process, thread-safe and bounded."""

    def __init__(self, *, now: Callable[[], datetime] | None = None) -> None:
        self._entries: OrderedDict[tuple[str, bytes], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._now = now or (lambda: datetime.now(UTC))
        self.hits = 0

    def get(self, key: tuple[str, bytes], fresh_after: datetime | None) -> Any:
        """The cached answer for ``key``, unless expired or issued before ``fresh_after``."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.expires <= self._now():
                del self._entries[key]
                return None
            if fresh_after is not None and (
                entry.issued is None or entry.issued < fresh_after - FRESHNESS_TOLERANCE
            ):
                return None
            self.hits += 1
            return entry.value

    def put(self, key: tuple[str, bytes], value: Any, *, issued: datetime | None,
            next_update: datetime | None, ttl_seconds: float) -> None:
        """Keep ``value`` until ``next_update`` or ``ttl_seconds`` from now, the sooner."""
        expires = self._now() + timedelta(seconds=ttl_seconds)
        if next_update is not None:
            expires = min(expires, next_update)
        with self._lock:
            self._entries[key] = _Entry(value, issued, expires)
            self._entries.move_to_end(key)
            while len(self._entries) > _CACHE_ENTRIES:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._entries.clear()
            self.hits = 0


#: The cache of this process: verifications of later messages reuse answers.
CACHE = RevocationCache()


async def chain_is_anchored(cert: x509.Certificate, context: ValidationContext) -> bool:
    """True when ``cert`` chains to one of ``context``'s trust anchors locally.

    Only the certificates the context already holds (the anchors, and those
    the signature or document carries) are used; nothing is fetched. Every
    source of anchors a :class:`ValidationContext` accepts counts (the
    configured ``trust_roots``, and a trust manager holding trusted-list
    services), so this is the one place that says whether fetching for a
    certificate is allowed.
    """
    paths = context.path_builder.async_build_paths_lazy(cert)
    try:
        await paths.__anext__()
    except (PathBuildingError, StopAsyncIteration):
        return False
    except Exception:  # a chain that cannot be built is not anchored.
        log.debug("path building for %s failed", cert.subject.human_friendly, exc_info=True)
        return False
    finally:
        await paths.cancel()  # type: ignore[no-untyped-call]
    return True


class _Refused(Exception):
    """A request that is not made (not anchored, no budget left)."""


@dataclass
class MessageFetching:
    """The fetching of one message: one HTTP session, one time budget, a record.

    Make one per verified document, take a :meth:`backend` per validation
    context, and :meth:`close` it at the end.
    """

    settings: FetchSettings
    cache: RevocationCache = field(default_factory=lambda: CACHE)
    clock: Callable[[], float] = time.monotonic
    failures: list[str] = field(default_factory=list)
    """What could not be fetched, for the signature's notes."""

    def __post_init__(self) -> None:
        self._deadline = self.clock() + self.settings.budget_seconds
        self._session = LazySession()  # type: ignore[no-untyped-call]

    def backend(
        self, fresh_after: datetime | None, *, crls: Iterable[Any] = (), ocsps: Iterable[Any] = ()
    ) -> GuardedFetcherBackend:
        """A fetcher backend for one validation context (bind it after making the context).

        ``crls`` and ``ocsps`` are the revocation data the document carries:
        a certificate they cover is not fetched for.
        """
        return GuardedFetcherBackend(self, fresh_after, crls=crls, ocsps=ocsps)

    def remaining(self) -> float:
        """Seconds left of the message's budget."""
        return self._deadline - self.clock()

    async def close(self) -> None:
        await self._session.close()  # type: ignore[no-untyped-call]

    def failed(self, what: str) -> None:
        if what not in self.failures:
            self.failures.append(what)
        log.info("revocation fetch: %s", what)

    async def get(self, url: str, *, data: bytes | None, content_type: str | None,
                  accept: str, limit: int) -> bytes:
        """One bounded HTTP request: ``POST data`` or ``GET``; raises ``_Refused`` or I/O errors."""
        remaining = self.remaining()
        if remaining <= 0:
            raise _Refused(f"{url}: not fetched, the message's fetch budget "
                           f"of {self.settings.budget_seconds:g} s is spent")
        limit_seconds = min(self.settings.timeout_seconds, remaining)
        timeout = aiohttp.ClientTimeout(total=limit_seconds, sock_connect=limit_seconds,
                                        sock_read=limit_seconds)
        headers = {"Accept": accept, "User-Agent": DEFAULT_USER_AGENT}
        if content_type is not None:
            headers["Content-Type"] = content_type
        session = self._session.get_session()  # type: ignore[no-untyped-call]
        try:
            async with session.request(
                "POST" if data is not None else "GET", url, data=data, headers=headers,
                timeout=timeout, raise_for_status=True, allow_redirects=False,
            ) as response:
                if (response.content_length or 0) > limit:
                    raise ValueError(f"{url}: the answer is over {limit} bytes")
                body = bytearray()
                async for chunk in response.content.iter_chunked(65536):
                    body += chunk
                    if len(body) > limit:
                        raise ValueError(f"{url}: the answer is over {limit} bytes")
                return bytes(body)
        except TimeoutError as exc:
            raise _Refused(f"{url}: no answer within {limit_seconds:g} s") from exc


class GuardedFetcherBackend(FetcherBackend):
    """pyHanko's fetcher interface over :class:`MessageFetching`, for one context."""

    def __init__(
        self, fetching: MessageFetching, fresh_after: datetime | None, *,
        crls: Iterable[Any] = (), ocsps: Iterable[Any] = (),
    ) -> None:
        self.fetching = fetching
        self.fresh_after = fresh_after
        self.local_crls = list(crls)
        self.local_ocsps = list(ocsps)
        self.context: ValidationContext | None = None
        self._anchored: dict[bytes, bool] = {}

    def bind(self, context: ValidationContext) -> None:
        """Name the context whose anchors decide what may be fetched."""
        self.context = context

    def get_fetchers(self) -> Fetchers:
        return Fetchers(
            ocsp_fetcher=_OcspFetcher(self),
            crl_fetcher=_CrlFetcher(self),
            cert_fetcher=_NoCertificateFetcher(),
        )

    async def close(self) -> None:
        # The session belongs to the message (MessageFetching.close).
        return None

    def local_ocsp(self, cert: Any) -> ocsp.OCSPResponse | None:
        """An OCSP response the document carries about ``cert``, if any."""
        if not isinstance(cert, x509.Certificate):
            return None
        for response in self.local_ocsps:
            try:
                responses = response.basic_ocsp_response["tbs_response_data"]["responses"]
            except (AttributeError, ValueError, KeyError, TypeError):
                continue
            if any(_names_signer(single["cert_id"], cert) for single in responses):
                return response
        return None

    def has_local_crl(self, cert: Any) -> bool:
        """Whether the document carries a CRL of ``cert``'s issuer."""
        if not isinstance(cert, x509.Certificate):
            return False
        for item in self.local_crls:
            try:
                if item["tbs_cert_list"]["issuer"] == cert.issuer:
                    return True
            except (AttributeError, ValueError, KeyError, TypeError):
                continue
        return False

    async def allowed(self, cert: Any) -> bool:
        """Whether revocation data may be fetched for ``cert`` (its chain is anchored)."""
        if self.context is None or not isinstance(cert, x509.Certificate):
            return False
        key = cert.issuer_serial
        if key not in self._anchored:
            self._anchored[key] = await chain_is_anchored(cert, self.context)
        return self._anchored[key]


def _ocsp_times(response: ocsp.OCSPResponse) -> tuple[datetime | None, datetime | None]:
    """``producedAt`` and the earliest ``nextUpdate`` of a successful response."""
    try:
        data = response.basic_ocsp_response["tbs_response_data"]
        produced = data["produced_at"].native
        updates = [r["next_update"].native for r in data["responses"]]
    except (ValueError, KeyError, TypeError):
        return None, None
    known = [u for u in updates if isinstance(u, datetime)]
    return produced, min(known) if known else None


class _OcspFetcher(OCSPFetcher):
    def __init__(self, owner: GuardedFetcherBackend) -> None:
        self._owner = owner
        self._results: dict[tuple[bytes, Any], ocsp.OCSPResponse] = {}

    async def fetch(
        self, cert: x509.Certificate | cms.AttributeCertificateV2, authority: Authority
    ) -> ocsp.OCSPResponse:
        tag = (issuer_serial(cert), authority.hashable)
        if tag in self._results:
            return self._results[tag]
        owner, fetching = self._owner, self._owner.fetching
        # Embedded data first: pyHanko asks the fetcher before it looks at
        # the document's own responses, and a failed fetch would hide them.
        local = owner.local_ocsp(cert)
        if local is not None:
            return local
        if not await owner.allowed(cert):
            raise OCSPFetchError("not fetched: the certificate's chain reaches no trust anchor")
        urls = get_ocsp_urls(cert)[:_MAX_URLS]
        if not urls:
            raise OCSPFetchError("No URLs to fetch OCSP responses from")
        request = format_ocsp_request(cert, authority, certid_hash_algo="sha1",
                                      request_nonces=True)
        cert_id = request["tbs_request"]["request_list"][0]["req_cert"].dump()
        problems = []
        for url in urls:
            key = (url, b"ocsp:" + cert_id)
            cached = fetching.cache.get(key, owner.fresh_after)
            if cached is not None:
                self._results[tag] = cached
                return cached
            try:
                body = await fetching.get(url, data=request.dump(),
                                          content_type="application/ocsp-request",
                                          accept="application/ocsp-response",
                                          limit=_MAX_OCSP_BYTES)
                response = process_ocsp_response_data(body, ocsp_request=request, ocsp_url=url)
            except (_Refused, aiohttp.ClientError, OSError, ValueError, OCSPFetchError) as exc:
                problem = str(exc) if isinstance(exc, _Refused) else f"{url}: {exc!r}"
                problems.append(problem)
                fetching.failed(f"OCSP {problem}")
                continue
            except Exception as exc:  # an unsuccessful answer, a bad nonce.
                problems.append(f"{url}: {exc}")
                fetching.failed(f"OCSP {url}: {exc}")
                continue
            produced, next_update = _ocsp_times(response)
            fetching.cache.put(key, response, issued=produced, next_update=next_update,
                               ttl_seconds=fetching.settings.cache_seconds)
            self._results[tag] = response
            return response
        raise OCSPFetchError("; ".join(problems) or "no OCSP answer")

    def fetched_responses(self) -> Iterable[ocsp.OCSPResponse]:
        return list(self._results.values())

    def fetched_responses_for_cert(self, cert: x509.Certificate) -> Iterable[ocsp.OCSPResponse]:
        target = issuer_serial(cert)
        return [resp for (subject, _), resp in self._results.items() if subject == target]


class _CrlFetcher(CRLFetcher):
    def __init__(self, owner: GuardedFetcherBackend) -> None:
        self._owner = owner
        self._by_cert: dict[bytes, list[crl.CertificateList]] = {}

    async def fetch(
        self, cert: x509.Certificate | cms.AttributeCertificateV2, *, use_deltas: bool = True
    ) -> Iterable[crl.CertificateList]:
        key_of_cert = issuer_serial(cert)
        if key_of_cert in self._by_cert:
            return self._by_cert[key_of_cert]
        owner, fetching = self._owner, self._owner.fetching
        # Embedded data first: the document's CRLs are read beside these.
        if owner.has_local_crl(cert):
            self._by_cert[key_of_cert] = []
            return []
        if not await owner.allowed(cert):
            raise CRLFetchError("not fetched: the certificate's chain reaches no trust anchor")
        urls = [
            url
            for point in get_relevant_crl_dps(cert, use_deltas=use_deltas)
            for url in enumerate_delivery_point_urls(point)
        ][:_MAX_URLS]
        results: list[crl.CertificateList] = []
        problems = []
        for url in urls:
            key = (url, b"crl")
            cached = fetching.cache.get(key, owner.fresh_after)
            if cached is not None:
                results.append(cached)
                continue
            try:
                body = await fetching.get(url, data=None, content_type=None,
                                          accept="application/pkix-crl", limit=_MAX_CRL_BYTES)
                if pem.detect(body):
                    _, _, body = pem.unarmor(body)
                fetched = crl.CertificateList.load(body)
                tbs = fetched["tbs_cert_list"]
                issued, next_update = tbs["this_update"].native, tbs["next_update"].native
            except (_Refused, aiohttp.ClientError, OSError, ValueError, TypeError) as exc:
                problem = str(exc) if isinstance(exc, _Refused) else f"{url}: {exc!r}"
                problems.append(problem)
                fetching.failed(f"CRL {problem}")
                continue
            except Exception as exc:  # whatever fails, the status is unknown.
                problems.append(f"{url}: {exc!r}")
                fetching.failed(f"CRL {url}: {exc!r}")
                continue
            fetching.cache.put(key, fetched, issued=issued, next_update=next_update,
                               ttl_seconds=fetching.settings.cache_seconds)
            results.append(fetched)
        if urls and not results:
            raise CRLFetchError("; ".join(problems))
        self._by_cert[key_of_cert] = results
        return results

    def fetched_crls(self) -> Iterable[crl.CertificateList]:
        return [item for items in self._by_cert.values() for item in items]

    def fetched_crls_for_cert(self, cert: x509.Certificate) -> Iterable[crl.CertificateList]:
        return self._by_cert[issuer_serial(cert)]


class _NoCertificateFetcher(CertificateFetcher):
    """Issuer certificates are never fetched (no AIA chasing)."""

    async def fetch_cert_issuers(
        self, cert: x509.Certificate | cms.AttributeCertificateV2
    ) -> AsyncGenerator[x509.Certificate, None]:
        for _ in ():
            yield _

    async def fetch_crl_issuers(
        self, certificate_list: crl.CertificateList
    ) -> AsyncGenerator[x509.Certificate, None]:
        for _ in ():
            yield _

    def fetched_certs(self) -> Iterable[x509.Certificate]:
        return ()


def _names_signer(cert_id: ocsp.CertId, signer: x509.Certificate) -> bool:
    """True when an OCSP CertID is about ``signer`` (serial and issuer name hash)."""
    try:
        if cert_id["serial_number"].native != signer.serial_number:
            return False
        algorithm = cert_id["hash_algorithm"]["algorithm"].native
        return bool(cert_id["issuer_name_hash"].native == getattr(signer.issuer, algorithm))
    except (AttributeError, ValueError, KeyError, TypeError):
        return False


def withhold_stale(
    signer: x509.Certificate | None, not_before: datetime | None,
    crls: Iterable[Any], ocsps: Iterable[Any],
) -> tuple[list[Any], list[Any], list[str]]:
    """Drop the signer's revocation data issued before the signature time-stamp.

    An OCSP response produced, or a CRL issued, before ``not_before`` (the
    signature time-stamp's time) says nothing about the status at signing, so
    it is not given to the validator as proof of a good status. Data that
    names the signer's certificate as revoked stays: a revocation is final.
    Data about other certificates of the chain is left as it is. Returns the
    CRLs and OCSP responses to use, and a note per withheld item.
    """
    crls, ocsps = list(crls), list(ocsps)
    if signer is None or not_before is None:
        return crls, ocsps, []
    cutoff = not_before - FRESHNESS_TOLERANCE
    notes: list[str] = []
    kept_ocsps = []
    for response in ocsps:
        try:
            data = response.basic_ocsp_response["tbs_response_data"]
            produced = data["produced_at"].native
            mine = [r for r in data["responses"] if _names_signer(r["cert_id"], signer)]
            revoked = any(r["cert_status"].name == "revoked" for r in mine)
        except (AttributeError, ValueError, KeyError, TypeError):
            kept_ocsps.append(response)
            continue
        if mine and not revoked and isinstance(produced, datetime) and produced < cutoff:
            notes.append(f"an OCSP response produced at {produced.isoformat()}, before the "
                         f"signature time-stamp {not_before.isoformat()}, is not proof")
            continue
        kept_ocsps.append(response)
    kept_crls = []
    for item in crls:
        try:
            tbs = item["tbs_cert_list"]
            issued = tbs["this_update"].native
            mine_crl = tbs["issuer"] == signer.issuer
            lists_signer = mine_crl and any(
                entry["user_certificate"].native == signer.serial_number
                for entry in tbs["revoked_certificates"]
            )
        except (AttributeError, ValueError, KeyError, TypeError):
            kept_crls.append(item)
            continue
        if mine_crl and not lists_signer and isinstance(issued, datetime) and issued < cutoff:
            notes.append(f"a CRL issued at {issued.isoformat()}, before the signature "
                         f"time-stamp {not_before.isoformat()}, is not proof")
            continue
        kept_crls.append(item)
    return kept_crls, kept_ocsps, notes
