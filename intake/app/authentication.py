"""Whether a mail may change an application: the ways it is *authenticated* (see
:mod:`intake.app.steering`, which holds every other change for the contact).

* a newly signed form by a representative of the organisation
  (:func:`signature_authenticated`);
* a DMARC pass reported by the receiving server for one of the application's
  addresses (:func:`dmarc_authenticated`);
* a PEC provider trusted under ``signing.pec_anchors`` certifying one of them
  as the sender (:func:`pec_authenticated`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

from sqlalchemy.orm import Session

from intake.app.replies import organisation_record
from intake.config import Config
from intake.mime.types import ParsedMail
from intake.store.models import Application, ReceivedMessage
from rules.workflow import Role, field_value

log = logging.getLogger(__name__)

#: Codes that say the form's signature does not authenticate its sender.
SIGNATURE_PREFIXES = ("SIG-", "TS-")
#: At most this many Authentication-Results headers are looked at.
MAX_AUTH_HEADERS = 20


@dataclass(frozen=True)
class Authentication:
    """Whether a mail may change an application, and why (for the log and staff)."""

    ok: bool
    how: str


# -- authentication ---------------------------------------------------------------


def authentication_results(raw: bytes) -> list[str]:
    """The raw ``Authentication-Results`` values of a stored mail (its header only)."""
    head, sep, _ = raw.partition(b"\r\n\r\n")
    if not sep:
        head, _, _ = raw.partition(b"\n\n")
    # compat32 returns each value as sent: no RFC 2047 decoding is done here.
    headers = BytesHeaderParser(policy=compat32).parsebytes(head + b"\r\n\r\n")
    values = headers.get_all("Authentication-Results") or []
    return [str(v) for v in values[:MAX_AUTH_HEADERS]]


def dmarc_pass_domain(raw: bytes, authserv_id: str | None) -> set[str]:
    """Domains the trusted server says pass DMARC for this mail (``header.from``).

    Only headers whose authserv-id is ``authserv_id`` count; the receiving
    server must remove any it did not write (RFC 8601 section 5), which is
    what makes them trustworthy. Parsed with ``authres``, which knows the
    grammar (comments, quoting, versions) a hand-written split gets wrong.
    """
    if not authserv_id:
        return set()
    import authres

    domains: set[str] = set()
    for value in authentication_results(raw):
        try:
            header = authres.AuthenticationResultsHeader.parse_value(
                " ".join(value.split()))
        except Exception as exc:  # authres raises several kinds on malformed input
            log.info("unreadable Authentication-Results ignored: %s", exc)
            continue
        if (header.authserv_id or "").lower() != authserv_id:
            continue
        for result in header.results:
            if result.method != "dmarc" or (result.result or "").lower() != "pass":
                continue
            for prop in result.properties:
                if prop.type == "header" and prop.name == "from" and prop.value:
                    domains.add(str(prop.value).strip().lower().rstrip("."))
    return domains


def dmarc_authenticated(config: Config, row: ReceivedMessage, mail: ParsedMail,
                        app: Application) -> Authentication | None:
    """A DMARC-aligned pass for one of ``app``'s addresses, or None."""
    mailbox = config.mailbox(row.mailbox)
    authserv_id = mailbox.authserv_id if mailbox is not None else None
    sender = mail.from_addr
    if not authserv_id or not sender or sender not in (app.addresses or []):
        return None
    domain = sender.rpartition("@")[2].lower()
    if domain in dmarc_pass_domain(row.raw, authserv_id):
        return Authentication(True, f"DMARC pass for {domain} at {authserv_id}")
    return None


def pec_authenticated(mail: ParsedMail, app: Application, sub: Any) -> Authentication | None:
    """A PEC envelope whose provider (trusted under ``signing.pec_anchors``, its seal intact)
    certifies that one of ``app``'s addresses sent the mail, or None.

    The provider authenticated the sender before certifying it in ``daticert.xml``
    (its ``mittente``): as strong as a DMARC pass for that address.
    """
    record = getattr(sub, "pec_record", None) or {}
    seal = record.get("transport_signature") or {}
    certified = str((record.get("daticert") or {}).get("sender") or "").strip().lower()
    if not (seal.get("intact") and seal.get("valid") and seal.get("trusted")):
        return None
    if not certified or certified != mail.from_addr or certified not in (app.addresses or []):
        return None
    provider = (record.get("daticert") or {}).get("provider") or record.get("envelope_from")
    return Authentication(True, f"PEC: {certified} certified by {provider} "
                                f"({(record.get('daticert') or {}).get('identifier')})")


def last_change(app: Application) -> datetime:
    """When the application last changed (state, form, anything)."""
    times = [app.created_at, app.updated_at]
    times += [t.at for t in app.transitions if t.at is not None]
    return max(t for t in times if t is not None)


def signature_authenticated(s: Session, app: Application, sub: Any) -> Authentication | None:
    """A newly signed form by a representative of the application's organisation, or None."""
    verdict = sub.case.verdict
    judgement = sub.judgement
    if verdict is None or not getattr(verdict, "signatures", None) or judgement is None:
        return None
    if any(c.startswith(SIGNATURE_PREFIXES) or c == "SIGNER-NOT-AUTHORISED"
           for c in judgement.codes):
        return None
    stamps = [sig.timestamp_time for sig in verdict.signatures if sig.timestamp_time]
    if not stamps or min(stamps) <= last_change(app):
        return None
    code = sub.case.signer_code
    if not code:
        return None
    # A representative of the new form's organisation, and of the application's
    # own when the registry knows it (a number that is not registered is what
    # the resubmission may be correcting).
    workflow = sub.case.workflow
    current = field_value(workflow, app.form_values, Role.ORG_REG_NO)
    given = field_value(workflow, sub.case.fields, Role.ORG_REG_NO)
    if not given:
        return None
    for reg_no in dict.fromkeys((given, current)):
        if not reg_no:
            continue
        record = organisation_record(s, reg_no)
        if record is None and reg_no != given:
            continue
        if record is None or code not in record.representatives:
            return None
    return Authentication(True, f"form newly signed by {code} at "
                                f"{min(stamps).isoformat(timespec='seconds')}")


def sender_authenticated(config: Config, s: Session, row: ReceivedMessage, mail: ParsedMail,
                         app: Application, sub: Any = None) -> Authentication:
    """Whether ``mail`` may change ``app`` without a confirmation."""
    if sub is not None:
        signed = signature_authenticated(s, app, sub)
        if signed is not None:
            return signed
    dmarc = dmarc_authenticated(config, row, mail, app)
    if dmarc is not None:
        return dmarc
    certified = pec_authenticated(mail, app, sub) if sub is not None else None
    if certified is not None:
        return certified
    mailbox = config.mailbox(row.mailbox)
    if mailbox is None or not mailbox.authserv_id:
        why = ("no form newly signed by an authorised signer, and no Authentication-Results "
               "trusted for this mailbox")
    else:
        why = ("no form newly signed by an authorised signer, and no DMARC pass for an "
               "address of the application")
    return Authentication(False, why)


# -- what a resubmission would change ----------------------------------------------
