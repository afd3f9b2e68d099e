"""EU trusted lists: fetch, verify and cache the LOTL and the national lists it names.

The List of Trusted Lists (LOTL) is read from ``trust.lotl`` (an https URL in
production, a file offline), its XAdES signature is checked against
``trust.lotl_signers`` (by default the LOTL signing certificates the EU
publishes in the Official Journal, which pyHanko ships in its package), and
then every national list it points to is fetched and checked against the
certificates the LOTL gives for that list. What verified is cached in
``trust.cache_dir``: the signed content of each list (``EU.xml``, ``LV.xml``,
...) and ``state.json`` with each list's sequence number, issue date, next
update and when it was last fetched and verified. A list that cannot be
fetched or does not verify keeps its last good copy; the failure is recorded.

Parsing ETSI TS 119 612 and verifying its signature is pyHanko's work
(``pyhanko.sign.validation.qualified.eutl_parse``, incubating: the version is
pinned in ``pyproject.toml`` and the tests cover the calls made here).

This module never raises on hostile list content: every problem becomes an
error string of the refresh, and a list with problems is simply not updated.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from asn1crypto import x509 as asn1_x509
from lxml import etree

from signing.trust.settings import TrustSettings

# The territory code under which the LOTL itself is recorded.
LOTL_TERRITORY = "EU"
# The TS 119 612 namespace.
_TSL = "http://uri.etsi.org/02231/v2#"
# The state file in the cache directory.
_STATE = "state.json"


class TrustListError(ValueError):
    """A list could not be fetched, verified or parsed (the message says which and why)."""


@dataclass(frozen=True)
class ListState:
    """What is known about one cached list (the LOTL has territory ``EU``)."""

    territory: str
    """Country code of the list (``EU`` for the LOTL)."""

    location: str
    """Where the list was fetched from."""

    sequence: int | None = None
    """TSLSequenceNumber of the cached copy."""

    issued: datetime | None = None
    """ListIssueDateTime of the cached copy."""

    next_update: datetime | None = None
    """NextUpdate of the cached copy (``None``: the list is closed)."""

    verified_at: datetime | None = None
    """When the cached copy was last fetched and its signature verified."""

    error: str | None = None
    """Why the last refresh of this list failed (``None``: it succeeded)."""

    sha256: str | None = None
    """Digest of the cached signed content."""

    def stale_reason(self, now: datetime, max_age: timedelta) -> str | None:
        """Why this list is stale at ``now``, or ``None`` when it is fresh."""
        if self.verified_at is None or self.sha256 is None:
            return f"the trusted list {self.territory} has never been fetched and verified"
        if self.next_update is None:
            return f"the trusted list {self.territory} has no next update (closed)"
        if now > self.next_update:
            return (f"the trusted list {self.territory} is past its next update "
                    f"{self.next_update.isoformat()}")
        if now - self.verified_at > max_age:
            return (f"the trusted list {self.territory} was last verified "
                    f"{self.verified_at.isoformat()}, more than {max_age} ago")
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "territory": self.territory, "location": self.location, "sequence": self.sequence,
            "issued": _iso(self.issued), "next_update": _iso(self.next_update),
            "verified_at": _iso(self.verified_at), "error": self.error, "sha256": self.sha256,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ListState:
        return cls(
            territory=str(data["territory"]), location=str(data.get("location", "")),
            sequence=data.get("sequence"), issued=_dt(data.get("issued")),
            next_update=_dt(data.get("next_update")), verified_at=_dt(data.get("verified_at")),
            error=data.get("error"), sha256=data.get("sha256"),
        )


@dataclass(frozen=True)
class RefreshResult:
    """The outcome of :func:`refresh`."""

    lists: tuple[ListState, ...]
    """The state of the LOTL and of every national list after the refresh."""

    errors: tuple[str, ...] = ()
    """Every list that could not be fetched or did not verify, with the reason."""

    seconds: float = 0.0
    """Wall-clock time of the refresh."""

    @property
    def ok(self) -> bool:
        return not self.errors


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _dt(value: Any) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(str(value))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# -- signers ---------------------------------------------------------------------------


def _certs_from_pem(data: bytes) -> list[asn1_x509.Certificate]:
    from pyhanko.keys import load_certs_from_pemder_data

    return list(load_certs_from_pemder_data(data))


def lotl_signers(settings: TrustSettings) -> list[asn1_x509.Certificate]:
    """The certificates allowed to sign the LOTL: configured, or the OJ-published set.

    The default is the LOTL scheme operator's certificates published in the Official
    Journal of the EU (OJ C 276, 16.8.2019 and the re-anchoring of OJ C/2026/1944), as
    shipped inside pyHanko's package (``pyhanko/sign/validation/qualified/lotl-certs/``).
    """
    if settings.lotl_signers:
        certs: list[asn1_x509.Certificate] = []
        for path in settings.lotl_signers:
            certs.extend(_certs_from_pem(Path(path).read_bytes()))
        return certs
    from pyhanko.sign.validation.qualified import eutl_parse

    seen: set[bytes] = set()
    result = []
    for cert in (*eutl_parse.latest_known_lotl_tlso_certs(),
                 *eutl_parse.ojeu_bootstrap_lotl_tlso_certs(anchor=1)):
        if cert.sha256 not in seen:
            seen.add(cert.sha256)
            result.append(cert)
    return result


# -- fetching --------------------------------------------------------------------------


class _HttpOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) locations only (urllib would also follow ftp:)."""

    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any,
                         newurl: str) -> Any:
        if urlsplit(newurl).scheme not in ("http", "https"):
            raise TrustListError(f"redirected to a location that is not http(s): {newurl}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_HttpOnlyRedirects())


def fetch(location: str, *, timeout: float, max_bytes: int, allow_files: bool) -> str:
    """The text of the list at ``location`` (http(s) URL, or a file where ``allow_files``).

    ``timeout`` bounds the whole download, not only each socket operation, so
    a server that drips bytes cannot hold a refresh.
    """
    parts = urlsplit(location)
    if parts.scheme in ("http", "https"):
        request = urllib.request.Request(location, headers={
            "Accept": "application/vnd.etsi.tsl+xml, text/xml, application/xml",
            "User-Agent": "pasts-trustlists",
        })
        deadline = time.monotonic() + timeout
        try:
            with _OPENER.open(request, timeout=timeout) as response:
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > max_bytes:
                    raise TrustListError(f"{location}: {declared} bytes, over {max_bytes}")
                chunks: list[bytes] = []
                size = 0
                while size <= max_bytes:
                    chunk = response.read(min(65536, max_bytes + 1 - size))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                    if time.monotonic() > deadline:
                        raise TrustListError(f"{location}: not fetched within {timeout} s")
                data = b"".join(chunks)
        except TrustListError:
            raise
        except Exception as exc:  # every network failure is a fetch failure.
            raise TrustListError(f"{location} cannot be fetched: {exc}") from exc
    elif allow_files and parts.scheme in ("", "file"):
        path = Path(urllib.request.url2pathname(parts.path) if parts.scheme else location)
        try:
            with path.open("rb") as fh:
                data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise TrustListError(f"{location} cannot be read: {exc}") from exc
    else:
        raise TrustListError(f"{location}: only http(s) locations are fetched")
    if len(data) > max_bytes:
        raise TrustListError(f"{location}: over the size limit of {max_bytes} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TrustListError(f"{location}: not UTF-8 XML") from exc


# -- reading the scheme information ----------------------------------------------------------


def scheme_facts(signed_xml: str) -> tuple[int | None, datetime | None, datetime | None, str | None]:
    """(sequence number, issue date, next update, territory) of a list's signed content."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False,
                             huge_tree=False, remove_comments=True)
    root = etree.fromstring(signed_xml.encode("utf-8"), parser=parser)
    ns = {"t": _TSL}

    def text(path: str) -> str | None:
        found = root.find(path, ns)
        return found.text.strip() if found is not None and found.text else None

    sequence = text("t:SchemeInformation/t:TSLSequenceNumber")
    issued = text("t:SchemeInformation/t:ListIssueDateTime")
    next_update = text("t:SchemeInformation/t:NextUpdate/t:dateTime")
    territory = text("t:SchemeInformation/t:SchemeTerritory")
    return (
        int(sequence) if sequence and sequence.isdigit() else None,
        _xml_dt(issued), _xml_dt(next_update), territory,
    )


def _xml_dt(value: str | None) -> datetime | None:
    if not value:
        return None
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def verify_list(xml: str, signers: list[asn1_x509.Certificate]) -> str:
    """The signed content of ``xml`` when one of ``signers`` signed it; else TrustListError."""
    from pyhanko.sign.validation.qualified import eutl_parse

    try:
        # pyHanko's own check of a list's XAdES signature (the function
        # trust_list_to_registry and validate_and_parse_lotl call): it returns
        # the signed content, so that only what the signature covers is read.
        return eutl_parse._validate_and_extract_tl_data_multiple_certs(xml, signers, None)
    except Exception as exc:  # any verification failure refuses the list.
        message = getattr(exc, "failure_message", None) or str(exc)
        raise TrustListError(f"signature does not verify: {message}") from exc


# -- the cache -------------------------------------------------------------------------


class TrustCache:
    """The cache directory: signed list contents and ``state.json``."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def ensure(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)

    @property
    def state_path(self) -> Path:
        return self.directory / _STATE

    def read_state(self) -> dict[str, ListState]:
        try:
            data = json.loads(self.state_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {k: ListState.from_json(v) for k, v in data.get("lists", {}).items()}

    def write_state(self, lists: dict[str, ListState]) -> None:
        self._atomic(self.state_path, json.dumps(
            {"lists": {k: v.to_json() for k, v in sorted(lists.items())}}, indent=2,
        ).encode("utf-8"))

    def list_path(self, territory: str) -> Path:
        safe = "".join(c for c in territory.upper() if c.isalnum())[:8] or "XX"
        return self.directory / f"{safe}.xml"

    def read_list(self, state: ListState) -> str | None:
        """The cached signed content of a list, if its digest still matches."""
        try:
            data = self.list_path(state.territory).read_bytes()
        except OSError:
            return None
        if hashlib.sha256(data).hexdigest() != state.sha256:
            return None
        return data.decode("utf-8")

    def write_list(self, territory: str, content: str) -> str:
        data = content.encode("utf-8")
        self._atomic(self.list_path(territory), data)
        return hashlib.sha256(data).hexdigest()

    def _atomic(self, path: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp, 0o600)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise


# -- refresh -----------------------------------------------------------------------------


def refresh(settings: TrustSettings, *, now: datetime | None = None) -> RefreshResult:
    """Fetch and verify the LOTL and its national lists; cache what verified.

    A list that fails keeps its last good copy; the LOTL failing leaves every
    cached list as it was (nothing new is loaded from a LOTL that did not
    verify).
    """
    started = time.monotonic()
    now = now or datetime.now(UTC)
    cache = TrustCache(settings.cache_dir)
    cache.ensure()
    states = cache.read_state()
    errors: list[str] = []
    fetch_args: dict[str, Any] = {"timeout": settings.timeout_seconds,
                                  "max_bytes": settings.max_list_bytes}

    def failed(territory: str, location: str, message: str) -> None:
        errors.append(f"{territory} ({location}): {message}")
        old = states.get(territory) or ListState(territory=territory, location=location)
        states[territory] = _replace(old, error=message)

    try:
        raw = fetch(settings.lotl, allow_files=settings.offline, **fetch_args)
        signed_lotl = verify_list(raw, lotl_signers(settings))
        from pyhanko.sign.validation.qualified import eutl_parse

        parsed = eutl_parse.parse_lotl_unsafe(signed_lotl)
    except Exception as exc:  # the LOTL failing is reported, never raised.
        failed(LOTL_TERRITORY, settings.lotl, str(exc))
        cache.write_state(states)
        return RefreshResult(tuple(states.values()), tuple(errors), time.monotonic() - started)

    sequence, issued, next_update, _ = scheme_facts(signed_lotl)
    digest = cache.write_list(LOTL_TERRITORY, signed_lotl)
    states[LOTL_TERRITORY] = ListState(
        territory=LOTL_TERRITORY, location=settings.lotl, sequence=sequence, issued=issued,
        next_update=next_update, verified_at=now, sha256=digest)

    wanted = {t.upper() for t in settings.territories}
    seen: set[str] = set()
    from pyhanko.sign.validation.qualified.eutl_parse import LOTL_RULE

    for ref in parsed.references:
        territory = ref.territory.upper()
        if LOTL_RULE in ref.scheme_rules or territory == LOTL_TERRITORY:
            continue
        if wanted and territory not in wanted:
            continue
        seen.add(territory)
        try:
            xml = fetch(ref.location_uri, allow_files=settings.offline, **fetch_args)
            signed = verify_list(xml, list(ref.tlso_certs))
            sequence, issued, next_update, declared = scheme_facts(signed)
            if declared and declared.upper() != territory:
                raise TrustListError(f"the list says it is {declared}, the LOTL says {territory}")
        except Exception as exc:  # one list failing keeps its last copy.
            failed(territory, ref.location_uri, str(exc))
            continue
        digest = cache.write_list(territory, signed)
        states[territory] = ListState(
            territory=territory, location=ref.location_uri, sequence=sequence, issued=issued,
            next_update=next_update, verified_at=now, sha256=digest)
    for territory in sorted(wanted - seen):
        failed(territory, settings.lotl, "the LOTL names no list for this territory")
    cache.write_state(states)
    return RefreshResult(tuple(states[k] for k in sorted(states)), tuple(errors),
                         time.monotonic() - started)


def _replace(state: ListState, **changes: Any) -> ListState:
    from dataclasses import replace

    return replace(state, **changes)


# -- status ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ListStatus:
    """One line of ``pasts trust status``."""

    state: ListState
    stale: str | None
    """Why the list is stale (or missing), ``None`` when it is fresh."""


def status(settings: TrustSettings, *, now: datetime | None = None) -> tuple[ListStatus, ...]:
    """Every configured list (the LOTL first) with its freshness at ``now``."""
    now = now or datetime.now(UTC)
    states = TrustCache(settings.cache_dir).read_state()
    result: list[ListStatus] = []
    lotl = states.get(LOTL_TERRITORY) or ListState(LOTL_TERRITORY, settings.lotl)
    result.append(ListStatus(lotl, lotl.stale_reason(now, settings.max_age)))
    territories = {t.upper() for t in settings.territories} or {
        k for k in states if k != LOTL_TERRITORY}
    for territory in sorted(territories):
        state = states.get(territory) or ListState(territory, "")
        result.append(ListStatus(state, state.stale_reason(now, settings.max_age)))
    return tuple(result)


# -- loading for verification ----------------------------------------------------------------


@dataclass
class TrustSnapshot:
    """The cached lists as pyHanko registries, one per territory, with their freshness."""

    registries: dict[str, Any] = field(default_factory=dict)
    """``pyhanko...tsp.TSPRegistry`` of every cached national list, by territory."""

    stale: dict[str, str] = field(default_factory=dict)
    """Territories whose list is stale (or whose LOTL is), with the reason."""

    errors: tuple[str, ...] = ()
    """Problems met while loading (unreadable cache entries)."""

    parsed: dict[str, Any] = field(default_factory=dict)
    """Registries by the SHA-256 of the cached content, reused by the next load."""

    def authorities(self) -> Iterable[Any]:
        """Every CA and time-stamping authority the lists name (anchors for path building)."""
        for registry in self.registries.values():
            yield from registry.known_certificate_authorities
            yield from registry.known_timestamp_authorities


def load_snapshot(settings: TrustSettings, *, now: datetime | None = None,
                  previous: TrustSnapshot | None = None) -> TrustSnapshot:
    """Parse the cached lists; stale lists are loaded but marked (they judge nothing).

    Lists whose cached content is unchanged since ``previous`` are not parsed
    again, so re-judging freshness costs only the state file.
    """
    from pyhanko.sign.validation.qualified import eutl_parse

    now = now or datetime.now(UTC)
    cache = TrustCache(settings.cache_dir)
    snapshot = TrustSnapshot()
    errors: list[str] = []
    states = cache.read_state()
    lotl = states.get(LOTL_TERRITORY) or ListState(LOTL_TERRITORY, settings.lotl)
    lotl_stale = lotl.stale_reason(now, settings.max_age)
    wanted = {t.upper() for t in settings.territories}
    for territory, state in sorted(states.items()):
        if territory == LOTL_TERRITORY or (wanted and territory not in wanted):
            continue
        registry = previous.parsed.get(state.sha256 or "") if previous is not None else None
        if registry is None:
            content = cache.read_list(state)
            if content is None:
                errors.append(f"the cached trusted list {territory} cannot be read")
                continue
            try:
                registry, _problems = eutl_parse.trust_list_to_registry_unsafe(content)
            except Exception as exc:  # a broken cache entry loads nothing.
                errors.append(f"the cached trusted list {territory} cannot be parsed: {exc}")
                continue
        snapshot.registries[territory] = registry
        snapshot.parsed[state.sha256 or ""] = registry
        reason = state.stale_reason(now, settings.max_age) or lotl_stale
        if reason is not None:
            snapshot.stale[territory] = reason
    snapshot.errors = tuple(errors)
    return snapshot


def state_mtime(settings: TrustSettings) -> float | None:
    """Modification time of the state file (the verifier reloads when it changes)."""
    try:
        return TrustCache(settings.cache_dir).state_path.stat().st_mtime
    except OSError:
        return None
