"""PEC receipts recorded on the reply they are about (SPEC section 2).

A PEC receipt (``X-Ricevuta``: accettazione, avvenuta-consegna, errore-consegna,
...) is automatic mail: it is never answered (``ParsedMail.no_reply_reason``).
One that names one of pasts' replies by ``X-Riferimento-Message-ID`` is kept
on that outbox row (``Outbox.pec_receipts``) as proof of delivery, or of
failure (``Outbox.pec_status``, which the staff digest lists), and
``pasts show`` prints it beside the reply. Recording is idempotent: the same
receipt (by its Message-ID) is kept once.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.mime.pec import FAILURE_KINDS
from intake.mime.types import ParsedMail
from intake.store.models import Outbox

log = logging.getLogger(__name__)

#: ``Outbox.pec_status`` by the receipts so far: a failure outweighs a delivery,
#: a delivery an acceptance.
DELIVERED = "delivered"
FAILED = "failed"
ACCEPTED = "accepted"


def status_of(kinds: list[str]) -> str:
    """What a reply's receipts say together."""
    if any(kind in FAILURE_KINDS for kind in kinds):
        return FAILED
    if "avvenuta-consegna" in kinds:
        return DELIVERED
    return ACCEPTED


def record_receipt(s: Session, mail: ParsedMail,
                   transport: dict[str, Any] | None = None) -> Outbox | None:
    """Keep the PEC receipt ``mail`` on the reply it names; that reply, or ``None``.

    ``transport`` is the provider's signature on the receipt, judged against
    ``signing.pec_anchors`` (a forged receipt is recorded, marked untrusted).
    """
    pec = mail.pec
    if pec is None or pec.kind != "receipt" or not pec.refers_to:
        return None
    row = s.scalars(select(Outbox).where(Outbox.message_id == pec.refers_to)).first()
    if row is None:
        log.info("PEC receipt %s %s is about %s, which pasts did not send: not recorded",
                 pec.transport, mail.message_id, pec.refers_to)
        return None
    daticert = pec.daticert or {}
    receipt = {
        "kind": pec.transport,
        "message_id": pec.envelope_message_id or mail.message_id,
        "time": daticert.get("time"),
        "identifier": daticert.get("identifier"),
        "delivered_to": daticert.get("delivered_to"),
        "error": daticert.get("error"),
        "extended_error": daticert.get("extended_error"),
        "provider": daticert.get("provider"),
        "trusted": bool(transport and transport.get("trusted")),
        "notes": list(pec.notes),
    }
    kept = list(row.pec_receipts or [])
    if receipt["message_id"] and any(r.get("message_id") == receipt["message_id"] for r in kept):
        return row
    kept.append(receipt)
    # A new list, so that the JSON column is written.
    row.pec_receipts = kept
    row.pec_status = status_of([str(r.get("kind")) for r in kept])
    log.info("PEC receipt %s %s recorded on reply %s (outbox #%s, %s): %s",
             pec.transport, mail.message_id, row.message_id, row.id,
             row.application.reference if row.application else "no application", row.pec_status)
    return row


def receipt_lines(row: Outbox) -> list[str]:
    """The receipts of one reply as ``pasts show`` prints them."""
    lines = []
    for r in row.pec_receipts or []:
        where = f" to {r['delivered_to']}" if r.get("delivered_to") else ""
        error = (f" error {r['error']}" if r.get("error") not in (None, "", "nessuno") else "")
        trust = "" if r.get("trusted") else " (provider's signature not trusted)"
        lines.append(f"PEC {r.get('kind')} {r.get('time') or ''}{where}{error}{trust}".strip())
    return lines
