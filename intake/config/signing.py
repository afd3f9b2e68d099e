"""``[signing]``, ``[trust]``, ``[csr]`` and ``[ca]``: what is trusted, required and issued."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from intake.config.section import Section, read_secret, resolve_path
from signing.trust.settings import TrustSettings

__all__ = ["REVOCATION_MODES", "CaConfig", "CsrConfig", "SigningConfig", "TrustConfig"]

REVOCATION_MODES = ("hard-fail", "soft-fail", "off")


@dataclass(frozen=True)
class SigningConfig:
    #: PEM files or directories of PEM files: the only trust anchors.
    trust_roots: tuple[Path, ...] = ()
    require_timestamp: bool = True
    require_qualified: bool = True
    revocation: Literal["hard-fail", "soft-fail", "off"] = "soft-fail"
    #: Forms time-stamped longer ago than this are SIG-TOO-OLD.
    max_age_days: int = 90
    #: Fetch OCSP/CRL over the network when the file carries none (only for
    #: chains that reach a trust anchor; issuer certificates are never fetched).
    allow_fetching: bool = True
    #: SIG-NOT-QUALIFIED also when the signer's key is not on a QSCD.
    require_qscd: bool = True
    #: TS-NOT-QUALIFIED unless the time-stamp is from a qualified service (QTST).
    require_qualified_timestamp: bool = True
    #: Store pyHanko's ETSI TS 119 102-2 validation report of each PAdES signature.
    validation_report: bool = True
    #: Connect-and-read limit of one OCSP or CRL request.
    fetch_timeout_seconds: float = 5.0
    #: Total time the revocation requests for one document may take.
    fetch_budget_seconds: float = 15.0
    #: How long a fetched OCSP response or CRL is reused (less when its nextUpdate is sooner).
    fetch_cache_seconds: float = 300.0
    #: PEM files or directories of the PEC providers' anchors: their transport
    #: signatures are judged against these only, never the applicants'.
    pec_anchors: tuple[Path, ...] = ()

    @classmethod
    def from_toml(cls, s: Section) -> SigningConfig:
        roots = tuple(resolve_path(p, s.path) for p in s.str_list("trust_roots", []))
        cfg = cls(
            trust_roots=roots,
            require_timestamp=s.get("require_timestamp", bool, True),
            require_qualified=s.get("require_qualified", bool, True),
            require_qscd=s.get("require_qscd", bool, True),
            require_qualified_timestamp=s.get("require_qualified_timestamp", bool, True),
            validation_report=s.get("validation_report", bool, True),
            revocation=s.choice("revocation", REVOCATION_MODES, "soft-fail"),  # type: ignore[arg-type]
            max_age_days=s.positive("max_age_days", int, 90),
            allow_fetching=s.get("allow_fetching", bool, True),
            fetch_timeout_seconds=s.positive("fetch_timeout_seconds", float, 5.0),
            fetch_budget_seconds=s.positive("fetch_budget_seconds", float, 15.0),
            fetch_cache_seconds=s.positive("fetch_cache_seconds", float, 300.0),
            pec_anchors=tuple(resolve_path(p, s.path) for p in s.str_list("pec_anchors", [])),
        )
        for path in cfg.pec_anchors:
            if not path.exists():
                raise s.error("pec_anchors", f"no such file or directory: {path}")
        s.finish()
        return cfg


@dataclass(frozen=True)
class TrustConfig(TrustSettings):
    """``[trust]``: the EU trusted lists as the source of qualified status (SPEC section 8).

    The values are signing's own :class:`~signing.trust.trustlists.TrustSettings`
    (one definition, with a docstring per field); this class only reads them.
    """

    @classmethod
    def from_toml(cls, s: Section) -> TrustConfig:
        lotl = s.get("lotl", str)
        if not lotl.startswith(("https://", "http://")):
            lotl = str(resolve_path(lotl.removeprefix("file://"), s.path))
        territories = tuple(t.upper() for t in s.str_list("territories", []))
        for t in territories:
            if not (len(t) == 2 and t.isalpha()):
                raise s.error("territories", f"must be two-letter country codes; got {t!r}")
        cfg = cls(
            lotl=lotl,
            cache_dir=s.path_value("cache_dir", "var/trust") or Path("var/trust"),
            lotl_signers=tuple(resolve_path(p, s.path) for p in s.str_list("lotl_signers", [])),
            max_age_hours=s.positive("max_age_hours", float, 48.0),
            territories=territories,
            timeout_seconds=s.positive("timeout_seconds", float, 20.0),
            max_list_bytes=s.positive("max_list_bytes", int, 32 * 1024 * 1024),
        )
        for path in cfg.lotl_signers:
            if not path.is_file():
                raise s.error("lotl_signers", f"no such file: {path}")
        s.finish()
        return cfg

    def settings(self) -> TrustSettings:
        """The plain values :mod:`signing.trust.trustlists` works with."""
        return TrustSettings(
            lotl=self.lotl, cache_dir=self.cache_dir, lotl_signers=self.lotl_signers,
            max_age_hours=self.max_age_hours, territories=self.territories,
            timeout_seconds=self.timeout_seconds, max_list_bytes=self.max_list_bytes,
        )


@dataclass(frozen=True)
class CsrConfig:
    """Key policy for certificate requests (CSR-KEY-WEAK)."""

    rsa_min_bits: int = 2048
    #: Allowed EC curves by their SEC names.
    ec_curves: tuple[str, ...] = ("secp256r1", "secp384r1")
    allow_ed25519: bool = False

    @classmethod
    def from_toml(cls, s: Section) -> CsrConfig:
        curves = s.str_list("ec_curves", list(cls.ec_curves))
        known = ("secp256r1", "secp384r1", "secp521r1")
        for c in curves:
            if c not in known:
                raise s.error("ec_curves", f"unknown curve {c!r}; known: {', '.join(known)}")
        cfg = cls(
            rsa_min_bits=s.positive("rsa_min_bits", int, 2048),
            ec_curves=curves,
            allow_ed25519=s.get("allow_ed25519", bool, False),
        )
        s.finish()
        return cfg


@dataclass(frozen=True)
class CaConfig:
    certificate: Path | None = None
    key: Path | None = None
    key_password_env: str | None = field(default=None, repr=False)
    validity_days: int = 365
    crl: Path | None = None
    #: How long a freshly signed CRL is valid (its nextUpdate).
    crl_next_update_hours: float = 168.0
    #: URL written into issued certificates' CRL distribution point.
    crl_url: str | None = None
    #: Days before a certificate expires that its contact is told (one notice each).
    expiry_notice_days: tuple[int, ...] = (30, 7)

    @property
    def key_password(self) -> str | None:
        return read_secret(self.key_password_env, "ca.key_password_env")

    @property
    def enabled(self) -> bool:
        return self.certificate is not None and self.key is not None

    @classmethod
    def from_toml(cls, s: Section) -> CaConfig:
        cfg = cls(
            certificate=s.path_value("certificate", None),
            key=s.path_value("key", None),
            key_password_env=s.env_name("key_password_env"),
            validity_days=s.positive("validity_days", int, 365),
            crl=s.path_value("crl", None),
            crl_next_update_hours=s.positive("crl_next_update_hours", float, 168.0),
            crl_url=s.get("crl_url", str, None),
            expiry_notice_days=_notice_days(s),
        )
        if (cfg.certificate is None) != (cfg.key is None):
            raise s.error("key" if cfg.key is None else "certificate",
                          "ca.certificate and ca.key go together")
        if cfg.enabled and cfg.crl is None:
            # `pasts restrict` revokes certificates of this CA; without a CRL the
            # revocation would reach no relying party.
            raise s.error("crl", "is required when the CA is configured: pasts restrict "
                                 "publishes revoked certificates in this CRL file")
        s.finish()
        return cfg


def _notice_days(s: Section) -> tuple[int, ...]:
    """``ca.expiry_notice_days``: distinct whole days > 0, largest first; [] turns notices off."""
    value = s.get("expiry_notice_days", list, [30, 7])
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value):
        raise s.error("expiry_notice_days", f"must be a list of whole days greater than 0; "
                                            f"got {value!r}")
    return tuple(sorted(set(value), reverse=True))
