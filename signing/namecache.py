"""X.509 name equality with asn1crypto's own semantics, prepared once per name (issue 12).

asn1crypto compares two ``Name`` objects as RFC 5280 §7.1 says: RDN by RDN,
each attribute value after the LDAP string preparation of RFC 4518
(``NameTypeAndValue.prepped_value``, ``_ldap_string_prep``). The prepared
value is kept on the parsed attribute object only, and pyHanko parses every
certificate and CMS structure of every signature afresh, so the same issuer
name was prepared again at each of its many comparisons
(``pyhanko.sign.general.match_issuer_serial`` from ``check_ess_certid``,
``extract_certificate_info``, ``_partition_certs``, the signer predicate, the
time-stamp token's checks): a third of a PDF signature's validation.
Neither asn1crypto (1.5.1) nor pyHanko offers a hook for this.

:func:`install` replaces ``asn1crypto.x509.Name.__eq__`` (upstream:
``asn1crypto/x509.py``, ``Name.__eq__`` → ``RDNSequence.__eq__`` →
``RelativeDistinguishedName.__eq__``) and ``Name.hashable`` (the prepared
string pyhanko-certvalidator's registries key certificates by:
``RDNSequence.hashable``) by ones that cannot give another result:

- ``other`` that is not a ``Name`` is unequal, as upstream.
- Each name's *comparison key* is what upstream's comparison reads, computed
  with upstream's own code: per RDN, its number of attributes and
  ``RelativeDistinguishedName._get_values`` (attribute type → prepared
  value; its keys are upstream's ``_get_types``). Two names are equal exactly
  when their keys are (upstream: same RDN count, and per RDN the same
  length, the same types and the same prepared value per type).
- The key is a pure function of the RDN sequence's encoding: on a miss it is
  computed from a fresh parse of those bytes (never from the object at
  hand, so the cache holds what those bytes mean), then kept in a bounded
  LRU (:data:`MAX_ENTRIES` keys, names of at most :data:`MAX_DER_BYTES`).
  Equal encodings therefore share a key and are equal; ``hashable`` is
  upstream's ``RDNSequence.hashable`` of that same fresh parse.
- A name too long to cache, or whose key cannot be computed (upstream's
  preparation raises for prohibited characters; a broken encoding), is
  compared (and keyed) by upstream's code itself, which raises or answers
  as it always did.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from asn1crypto import x509

#: Names (the RDN sequence's encoding) longer than this are compared upstream's way.
MAX_DER_BYTES = 4096
#: Comparison keys kept (least recently used dropped first).
MAX_ENTRIES = 2048

_Key = tuple[tuple[int, tuple[tuple[str, str], ...]], ...]
_Entry = tuple[_Key, str]
_UNKNOWN = object()

_UPSTREAM_EQ: Callable[[x509.Name, object], bool] = x509.Name.__eq__
_UPSTREAM_HASHABLE: property = x509.Name.hashable
_cache: OrderedDict[bytes, _Entry | None] = OrderedDict()
_lock = threading.Lock()


def _compute(der: bytes) -> _Entry | None:
    """Key and ``hashable`` of the RDN sequence encoded as ``der`` (``None``: ask upstream)."""
    try:
        rdns = x509.RDNSequence.load(der)
        get_values = x509.RelativeDistinguishedName._get_values
        key = tuple(
            (len(rdn), tuple(sorted(get_values(rdn, rdn).items()))) for rdn in rdns
        )
        hashable: str = rdns.hashable
    except Exception:  # upstream raises (or answers) on its own for such a name.
        return None
    return key, hashable


def _entry(name: x509.Name) -> _Entry | None:
    """``name``'s cached key and ``hashable`` (``None``: use upstream's code for it)."""
    chosen = name.chosen
    if not isinstance(chosen, x509.RDNSequence):
        return None
    der: bytes = chosen.dump()
    if len(der) > MAX_DER_BYTES:
        return None
    with _lock:
        entry = _cache.get(der, _UNKNOWN)
        if entry is not _UNKNOWN:
            _cache.move_to_end(der)
            return entry  # type: ignore[return-value]
    entry = _compute(der)
    with _lock:
        _cache[der] = entry
        while len(_cache) > MAX_ENTRIES:
            _cache.popitem(last=False)
    return entry


def comparison_key(name: x509.Name) -> _Key | None:
    """``name``'s comparison key (``None``: it is compared with upstream's code)."""
    entry = _entry(name)
    return entry[0] if entry is not None else None


def _name_eq(self: x509.Name, other: object) -> bool:
    if not isinstance(other, x509.Name):
        return False
    mine, theirs = _entry(self), _entry(other)
    if mine is not None and theirs is not None:
        return mine[0] == theirs[0]
    return _UPSTREAM_EQ(self, other)


def _name_hashable(self: x509.Name) -> str:
    entry = _entry(self)
    if entry is not None:
        return entry[1]
    result: str = _UPSTREAM_HASHABLE.fget(self)  # type: ignore[misc]
    return result


_HASHABLE = property(_name_hashable, doc=_UPSTREAM_HASHABLE.__doc__)


def install() -> None:
    """Compare and key ``asn1crypto.x509.Name`` objects through the cache (idempotent)."""
    name_class: Any = x509.Name
    if name_class.__eq__ is not _name_eq:
        name_class.__eq__ = _name_eq
    if name_class.__dict__["hashable"] is not _HASHABLE:
        name_class.hashable = _HASHABLE


def uninstall() -> None:
    """Give ``asn1crypto.x509.Name`` upstream's comparison back (for benchmarks of bare pyHanko)."""
    name_class: Any = x509.Name
    name_class.__eq__ = _UPSTREAM_EQ
    name_class.hashable = _UPSTREAM_HASHABLE


def cached() -> int:
    """How many comparison keys are kept now (for tests)."""
    with _lock:
        return len(_cache)
