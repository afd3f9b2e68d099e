"""What an answer to mail anyone could have sent may carry (issue 10, "Backscatter").

A forged ``From:`` makes pasts answer the forged address. Two things keep
such an answer useless to whoever forged it:

* the answer echoes the inbound subject only when the mail is more than words
  anyone can type: it carries a form, a signed container, a CSR, or a
  signature (:func:`echo_subject`); otherwise the reply's subject is the
  template's title, so a spammer cannot use pasts to deliver his subject line;
* junk (no form, no container, no CSR, no signature, no reference, not in a
  thread) creates no application that would clutter staff's lists: it is
  recorded in the ledger with its reason and answered, within the bound, with
  the FORM-MISSING notice that says what to send (:func:`junk_reason`).
"""

from __future__ import annotations

from intake.app.bound import anchored
from intake.mime.types import ParsedMail
from intake.store.models import Application

JUNK = "junk: no form, no CSR, no signature, no reference"


def substantive(mail: ParsedMail) -> bool:
    """The mail carries something to judge, or a signature of its own."""
    return (mail.carries_form or mail.csr is not None or mail.smime is not None
            or mail.p7s is not None or mail.oversized is not None)


def echo_subject(mail: ParsedMail) -> str:
    """The subject a reply may repeat: the mail's own, or nothing for bare words."""
    return mail.subject if substantive(mail) else ""


def answers_anchored(mail: ParsedMail, app: Application | None) -> bool:
    """The answer is about a signature in *this* mail that chains to a trust anchor.

    Only then does it pass the bound at once: a status query or a bare reply
    in the thread of such an application is bounded like any other mail, so
    a forged ``From:`` cannot flood the applicant with answers.
    """
    return substantive(mail) and anchored(app)


def junk_reason(mail: ParsedMail, *, threaded: bool) -> str | None:
    """Why the mail is junk (no application is made for it), or None."""
    if substantive(mail) or threaded:
        return None
    return JUNK
