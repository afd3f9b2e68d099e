"""Mail that must not be answered (RFC 3834): list and bulk mail, bounces and reports, out-of-office
replies, no-reply senders, PEC receipts.
"""

from __future__ import annotations

import re

from intake.mime.headers import _Headers, _msg_ids
from intake.mime.text import _clean

# ---------------------------------------------------------------------------
# Automatic mail (SPEC section 5: no reply to mail that is itself automatic).

#: Headers that only list and list-manager software writes: RFC 2369 and
#: RFC 2919, ezmlm's Mailing-List, fml's X-ML-Name, SmartList's X-Mailing-List.
_LIST_HEADERS = (
    "List-Id", "List-Unsubscribe", "List-Subscribe", "List-Help", "List-Post", "List-Owner",
    "List-Archive", "Mailing-List", "X-ML-Name", "X-Mailing-List",
)
#: X-Auto-Response-Suppress values ([MS-OXCMAIL] 2.2.3.2.20) that ask for no
#: automatic answer: everything, out-of-office and auto replies, delivery and
#: read receipts.
_SUPPRESS = frozenset({"all", "oof", "autoreply", "dr", "ndr", "rn", "nrn"})
#: Body parts that only reports carry (RFC 3464 DSN, RFC 5965 ARF, RFC 8098 MDN
#: and their RFC 6533 forms).
REPORT_TYPES = (
    "message/delivery-status", "message/global-delivery-status", "message/feedback-report",
    "message/disposition-notification", "message/global-disposition-notification",
)
#: Out-of-office and automatic-reply subjects in the languages the agencies
#: see (lv, en, it, de, ru, fr, et, lt), as clients write them at the start of
#: the subject, followed by a colon, a bracket or nothing ("Out of Office
#: AutoReply:" joins two). Lotus Notes writes "AUTO:", RFC 3834 suggests "Auto:".
_OOF_PHRASES = (
    # English.
    r"out of (?:the )?office", r"automatic reply", r"auto[- ]?reply", r"auto[- ]?respon[sd]e?",
    r"automatic response", r"autoresponder", r"vacation(?: reply| response| notice)?",
    r"away from (?:the )?office", r"on vacation", r"on holiday", r"auto",
    # Latvian.
    r"autom[aā]tisk[aā] atbilde", r"promb[uū]tn[eē]", r"[aā]rpus biroja",
    r"atva[lļ]in[aā]jum[aā]",
    # Italian.
    r"risposta automatica", r"fuori (?:sede|ufficio)", r"assente(?: dall'ufficio)?",
    r"in ferie",
    # German.
    r"automatische antwort", r"abwesenheitsnotiz", r"abwesenheit(?:snotiz)?", r"abwesend",
    r"au(?:ß|ss)er haus", r"nicht im b[üu]ro",
    # Russian.
    r"автоматический ответ", r"автоответ", r"нет на месте", r"вне офиса", r"в отпуске",
    r"отсутствую", r"отсутствие",
    # French.
    r"r[ée]ponse automatique", r"absen(?:t|te|ce) du bureau", r"message d'absence",
    r"absent(?:e)?", r"en cong[ée]s?",
    # Estonian.
    r"automaatne vastus", r"kontorist v[äa]ljas", r"puhkusel", r"eemal",
    # Lithuanian.
    r"automatinis atsakymas", r"ne biure", r"n[ėe]ra biure", r"atostogose", r"atostogos",
)
_OOF_PHRASE = "(?:" + "|".join(_OOF_PHRASES) + ")"
_OOF_SUBJECT_RE = re.compile(
    r"^\s*[\[(]?\s*" + _OOF_PHRASE + r"(?:\s+" + _OOF_PHRASE + r")?\s*[\])]?\s*(?::|$)"
    r"|\b(?:is|am) out of (?:the )?office\b",
    re.IGNORECASE,
)
#: No-reply sender local parts: no-reply, noreply, do-not-reply, donotreply, ...
_NOREPLY_RE = re.compile(r"^(?:no|do[-_.]?not|dont)[-_.]?reply(?:$|[-_.+])", re.IGNORECASE)


def _is_list_mail(headers: _Headers) -> bool:
    return any(headers.raw_first(name) is not None for name in _LIST_HEADERS)


def _automatic(headers: _Headers) -> str | None:
    """A firm sign, besides Auto-Submitted, lists and reports, that a program wrote the mail."""
    apple = (headers.raw_first("X-Apple-Action") or "").strip().upper()
    if apple == "VACATION":
        return "vacation reply (X-Apple-Action: VACATION)"
    receipt = headers.raw_first("X-Ricevuta")
    if receipt is not None:
        return f"PEC receipt (X-Ricevuta: {_clean(receipt)[:40]})"
    if (headers.raw_first("X-Trasporto") or "").strip().lower() == "errore":
        return "PEC error notice (X-Trasporto: errore)"
    return None


def _pec_receipt(headers: _Headers) -> tuple[str, str | None] | None:
    """(kind, Message-ID it is about) of a PEC receipt, or None."""
    kind = headers.raw_first("X-Ricevuta")
    if kind is None:
        return None
    about = next(iter(_msg_ids(headers.raw_first("X-Riferimento-Message-ID"))), None)
    return _clean(kind)[:40].lower(), about


def _no_auto_reply(headers: _Headers, subject: str, reply_address: str) -> str | None:
    """A weaker sign that the mail is automatic or wants no automatic answer."""
    suppress = headers.raw_first("X-Auto-Response-Suppress")
    if suppress is not None:
        values = {v.strip().lower() for v in re.split(r"[,;\s]+", suppress) if v.strip()}
        asked = sorted(values & _SUPPRESS)
        if asked:
            return f"automatic answers suppressed (X-Auto-Response-Suppress: {', '.join(asked)})"
    # Whitespace runs collapsed and the length cut first: the pattern then
    # runs in bounded time whatever the subject.
    if _OOF_SUBJECT_RE.search(" ".join(subject[:2000].split())[:200]):
        return "out-of-office or automatic reply (subject)"
    if _NOREPLY_RE.match(reply_address.partition("@")[0]):
        return "no-reply sender address"
    return None
