"""signing.namecache: X.509 names compare and key exactly as asn1crypto's own code does."""

from __future__ import annotations

import itertools

import pytest
from asn1crypto import core, x509

import signing.verifier  # noqa: F401  (installs the cache, as the verifier does)
from signing import namecache


def _ntv(kind: str, value: str, encoding: str = "utf8_string") -> x509.NameTypeAndValue:
    spec = {"utf8_string": core.UTF8String, "printable_string": core.PrintableString,
            "teletex_string": core.TeletexString, "bmp_string": core.BMPString}[encoding]
    return x509.NameTypeAndValue(
        {"type": kind, "value": x509.DirectoryString(name=encoding, value=spec(value))}
    )


def _name(*rdns: list[x509.NameTypeAndValue]) -> x509.Name:
    """A Name of these RDNs, as a certificate parser would see it (encoded, then parsed)."""
    built = x509.Name(
        name="", value=x509.RDNSequence([x509.RelativeDistinguishedName(r) for r in rdns])
    )
    return x509.Name.load(built.dump())


def _rdn_in_order(*values: x509.NameTypeAndValue) -> x509.Name:
    """A Name of one multi-valued RDN whose SET keeps this order (BER: DER would sort it)."""
    body = b"".join(v.dump() for v in values)
    rdn = b"\x31" + bytes([len(body)]) + body
    return x509.Name.load(b"\x30" + bytes([len(rdn)]) + rdn)


def _org(value: str, encoding: str = "utf8_string") -> x509.Name:
    return _name(
        [_ntv("country_name", "LV", "printable_string")],
        [_ntv("organization_name", value, encoding)],
        [_ntv("common_name", "Pasts Demo CA", encoding)],
    )


def _upstream_equal(a: object, b: object) -> bool:
    return namecache._UPSTREAM_EQ(a, b)  # type: ignore[arg-type]


def _upstream_hashable(name: x509.Name) -> str:
    return namecache._UPSTREAM_HASHABLE.fget(name)  # type: ignore[misc, no-any-return]


def test_the_verifier_installs_it() -> None:
    assert x509.Name.__eq__ is namecache._name_eq
    namecache.install()  # twice is once
    assert x509.Name.__eq__ is namecache._name_eq
    namecache.uninstall()  # what bench/bench_verify.py's bare pyHanko runs under
    try:
        assert x509.Name.__eq__ is namecache._UPSTREAM_EQ
        assert x509.Name.__dict__["hashable"] is namecache._UPSTREAM_HASHABLE
    finally:
        namecache.install()
    assert x509.Name.__dict__["hashable"] is namecache._HASHABLE


# Pairs equal after RFC 4518 preparation although encoded differently.
EQUAL = [
    (_org("Pasts Demo", "printable_string"), _org("Pasts Demo", "utf8_string")),
    (_org("Pasts Demo", "utf8_string"), _org("Pasts Demo", "bmp_string")),
    (_org("PASTS demo"), _org("pasts DEMO")),
    (_org("  Pasts   Demo "), _org("Pasts Demo")),
    (_org("Pasts\tDemo"), _org("Pasts Demo")),
    (_org("Ｐａｓｔｓ Demo"), _org("Pasts Demo")),  # NFKC: full-width letters
    (  # a multi-valued RDN's attributes in another order
        _rdn_in_order(_ntv("organization_name", "A"), _ntv("common_name", "B")),
        _rdn_in_order(_ntv("common_name", "B"), _ntv("organization_name", "A")),
    ),
]
UNEQUAL = [
    (_org("Pasts Demo"), _org("Pasts Demos")),
    (_org("Pasts Demo"), _org("Pasts-Demo")),
    (_org("Pasts Demo"), _org("Pāsts Demo")),
    (  # the same attributes, the RDNs in another order
        _name([_ntv("organization_name", "A")], [_ntv("common_name", "B")]),
        _name([_ntv("common_name", "B")], [_ntv("organization_name", "A")]),
    ),
    (  # the same value under another type
        _name([_ntv("organization_name", "A")]), _name([_ntv("common_name", "A")]),
    ),
    (  # one RDN more
        _org("Pasts Demo"),
        _name(
            [_ntv("country_name", "LV", "printable_string")],
            [_ntv("organization_name", "Pasts Demo")],
            [_ntv("common_name", "Pasts Demo CA")],
            [_ntv("serial_number", "1", "printable_string")],
        ),
    ),
    (  # two attributes in one RDN against the same two in two RDNs
        _name([_ntv("organization_name", "A"), _ntv("common_name", "B")]),
        _name([_ntv("organization_name", "A")], [_ntv("common_name", "B")]),
    ),
]


@pytest.mark.parametrize(("a", "b"), EQUAL)
def test_equal_after_preparation_stays_equal(a: x509.Name, b: x509.Name) -> None:
    assert a.dump() != b.dump()
    assert _upstream_equal(a, b)
    assert a == b and b == a and (a != b) is False
    assert a.hashable == _upstream_hashable(a)


@pytest.mark.parametrize(("a", "b"), UNEQUAL)
def test_different_names_stay_unequal(a: x509.Name, b: x509.Name) -> None:
    assert not _upstream_equal(a, b)
    assert a != b and b != a and (a == b) is False


def test_every_pair_answers_as_upstream() -> None:
    names = [n for pair in EQUAL + UNEQUAL for n in pair]
    for a, b in itertools.product(names, repeat=2):
        assert (a == b) == _upstream_equal(a, b), (a.human_friendly, b.human_friendly)
        assert a.hashable == _upstream_hashable(a)


def test_comparison_with_other_things_is_as_before() -> None:
    name = _org("Pasts Demo")
    for other in (None, "Pasts Demo", 1, name.chosen, name.chosen[0], name.native):
        assert (name == other) is False and (name != other) is True
        assert (name == other) == _upstream_equal(name, other)
    assert name == name


def test_a_name_inside_a_general_name_matches_the_certificate_issuer() -> None:
    # pyHanko's match_issuer_serial compares an ESSCertIDv2's directoryName
    # (an explicitly tagged Name) with a certificate's issuer.
    issuer = _org("Pasts Demo", "printable_string")
    general = x509.GeneralName(name="directory_name", value=_org("pasts demo"))
    parsed = x509.GeneralName.load(general.dump()).chosen
    assert parsed.dump() != issuer.dump()
    assert parsed == issuer and issuer == parsed


def test_a_prohibited_character_raises_as_upstream() -> None:
    bad = _org("Pasts \ue000 Demo")  # a private-use character: RFC 4518 prohibits it
    other = _org("Pasts Demo")
    for a, b in ((bad, other), (other, bad), (bad, _org("Pasts \ue000 Demo"))):
        with pytest.raises(ValueError, match="private use"):
            _upstream_equal(a, b)
        with pytest.raises(ValueError, match="private use"):
            _ = a == b
    with pytest.raises(ValueError, match="private use"):
        _ = bad.hashable


def test_a_long_name_is_compared_upstream_and_not_kept() -> None:
    long_value = "x" * (namecache.MAX_DER_BYTES + 10)
    a, b = _org(long_value), _org(long_value.upper(), "utf8_string")
    before = namecache.cached()
    assert a == b and a != _org(long_value + "y")
    assert a.hashable == _upstream_hashable(a)
    assert namecache.comparison_key(a) is None
    assert namecache.cached() == before


def test_the_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(namecache, "MAX_ENTRIES", 16)
    names = [_org(f"Org {i}") for i in range(50)]
    for a, b in zip(names, names[1:], strict=False):
        assert a != b
    assert namecache.cached() <= 16
    # Evicted names are prepared again, with the same answers.
    assert names[0] == _org("ORG 0") and names[0] != names[1]


def test_a_name_changed_after_parsing_compares_by_its_new_value() -> None:
    name = _org("Old Org")
    assert name == _org("old org")
    name.chosen[1][0]["value"] = x509.DirectoryString(
        name="utf8_string", value=core.UTF8String("New Org")
    )
    assert name == _org("new org") and name != _org("Old Org")
    assert name.hashable == _upstream_hashable(name)
    assert _org("Old Org") == _org("OLD ORG")  # the old encoding's key is untouched
