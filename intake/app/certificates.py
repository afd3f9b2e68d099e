"""The agency CA in the daemon: issue for an application, revoke, keep the CRL fresh."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from intake.app.replies import now_utc
from intake.app.services import Services
from intake.app.states import StaffActionError
from intake.errors import ConfigurationError, PermanentError
from intake.store.models import Application, IssuedCertificateRow, KeyValue, Organisation
from rules.workflow import Role, field_value

if TYPE_CHECKING:
    from signing.ca import CertificateAuthority

log = logging.getLogger(__name__)


def load_ca(rt: Services) -> CertificateAuthority:
    from signing.ca import CaError, CertificateAuthority

    ca = rt.config.ca
    if not ca.enabled:
        raise ConfigurationError("no CA configured: set [ca] certificate and key", key="ca.certificate")
    assert ca.certificate is not None and ca.key is not None
    try:
        return CertificateAuthority.load(ca.certificate, ca.key, password=ca.key_password)
    except CaError as exc:
        raise ConfigurationError(str(exc), key="ca.key") from exc


def issue_for(rt: Services, s: Session, app: Application) -> IssuedCertificateRow:
    """Issue a certificate for the application's CSR.

    The common name comes from the approved form; the organisation (O and
    organizationIdentifier) from the registry record of the form's
    registration number (the field of role ``org-reg-no``), never from the
    form's text, so that no one certifies a name the registry does not give them. An application whose organisation
    is not (or no longer) in the registry is not certified.
    """
    from signing.ca import CertificateProfile

    if not app.csr_der:
        raise PermanentError(f"{app.reference} has no CSR to certify", code="CSR-MISSING")
    workflow = rt.config.workflow(app.workflow)
    values = app.form_values
    subject = {"common_name": field_value(workflow, values, Role.CSR_COMMON_NAME)}
    reg_no = field_value(workflow, values, Role.ORG_REG_NO)
    if reg_no or field_value(workflow, values, Role.ORG_NAME):
        organisation = s.get(Organisation, reg_no) if reg_no else None
        if organisation is None:
            raise StaffActionError(
                f"{app.reference}: organisation {reg_no or '(no registration number)'} is not in "
                "the registry; import it (pasts registry import) before approving"
            )
        subject["organisation"] = organisation.name.strip()
        subject["organisation_identifier"] = organisation.reg_no.strip()
    cfg = rt.config.ca
    profile = CertificateProfile(validity_days=cfg.validity_days, crl_url=cfg.crl_url)
    issued = load_ca(rt).issue(app.csr_der, subject=subject, profile=profile)
    row = IssuedCertificateRow(
        application_id=app.id,
        serial_hex=format(issued.serial, "x"),
        subject=issued.subject,
        not_before=issued.not_before,
        not_after=issued.not_after,
        pem=issued.pem,
        chain_pem=issued.chain_pem,
    )
    s.add(row)
    s.flush()
    log.info("%s: issued certificate serial %s until %s", app.reference, row.serial_hex,
             row.not_after.date())
    return row


def revoke_for(s: Session, app: Application, *, reason: str, note: str) -> list[IssuedCertificateRow]:
    rows = list(s.scalars(select(IssuedCertificateRow).where(
        IssuedCertificateRow.application_id == app.id, IssuedCertificateRow.revoked_at.is_(None))))
    for row in rows:
        row.revoked_at = now_utc()
        row.revocation_reason = reason
        row.revocation_note = note
    return rows


def _counter(s: Session, key: str, *, lock: bool = False) -> KeyValue:
    """The counter ``key``, created if missing by an idempotent upsert.

    Two daemons creating it at once both succeed (the second insert does
    nothing), where an ``add`` made one of them fail on ``key_value_pkey``.
    ``lock`` holds the row until the caller's commit (``FOR UPDATE`` on
    PostgreSQL; SQLite serialises writers), so two CRL signings never take
    the same number.
    """
    dialect = s.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    s.execute(insert(KeyValue).values(key=key, value="0").on_conflict_do_nothing(
        index_elements=[KeyValue.key]))
    query = select(KeyValue).where(KeyValue.key == key).execution_options(populate_existing=True)
    if lock and dialect == "postgresql":
        query = query.with_for_update()
    return s.scalars(query).one()


def regenerate_crl(rt: Services, s: Session, *, now: datetime | None = None) -> int:
    """Sign a new CRL listing every revoked certificate; write it to ``ca.crl``."""
    from signing.ca import write_crl

    cfg = rt.config.ca
    if cfg.crl is None:
        raise ConfigurationError("no CRL path configured", key="ca.crl")
    now = now or now_utc()
    number_kv = _counter(s, "crl_number", lock=True)
    number = int(number_kv.value) + 1
    revoked = [
        (int(r.serial_hex, 16), r.revoked_at, r.revocation_reason or "unspecified")
        for r in s.scalars(select(IssuedCertificateRow).where(
            IssuedCertificateRow.revoked_at.is_not(None)))
        if r.revoked_at is not None
    ]
    next_update = timedelta(hours=cfg.crl_next_update_hours)
    der = load_ca(rt).sign_crl(revoked, next_update=next_update, now=now, crl_number=number)
    write_crl(cfg.crl, der)
    number_kv.value = str(number)
    _counter(s, "crl_next_update").value = (now + next_update).isoformat()
    log.info("CRL #%d written to %s (%d revoked)", number, cfg.crl, len(revoked))
    return number


def refresh_crl_if_due(rt: Services) -> bool:
    """Re-sign the CRL when a quarter of its validity is left (or it is missing).

    The CRL number's row is locked before the due check, so of two daemons
    the second sees the first's fresh CRL and does nothing.
    """
    cfg = rt.config.ca
    with rt.store.session() as s:
        _counter(s, "crl_number", lock=True)
        kv = s.get(KeyValue, "crl_next_update")
        due = True
        if kv is not None and cfg.crl is not None and cfg.crl.exists():
            next_update = datetime.fromisoformat(kv.value)
            due = now_utc() >= next_update - timedelta(hours=cfg.crl_next_update_hours / 4)
        if due:
            regenerate_crl(rt, s)
        return due
