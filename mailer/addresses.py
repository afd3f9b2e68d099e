"""One definition of an e-mail address pasts can write to.

Every check of an address (the sender of an incoming mail, a contact address
in a form, the recipient of a reply, the SMTP envelope) asks
:func:`usable_address`, so an address the intake accepts is one the composer
and the transport accept too. The syntax is email-validator's (RFC 5321 and
RFC 5322 dot-atoms, RFC 6531 internationalised local parts, IDNA 2008
domains), without DNS look-ups.

Not usable: display names, angle brackets, quoted local parts, obsolete
local parts with a dot at an end or two in a row (old Japanese mobile
addresses such as ``taro.@docomo.ne.jp``; a reply would need the quoted form
that many servers refuse), IP-literal domains (a reply to ``[10.0.0.1]``
would go wherever that is seen from our relay), domains without a dot and
special-use names (``localhost``, ``.invalid``, ``.local``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

__all__ = ["MailAddress", "UnusableAddress", "is_usable", "usable_address"]

#: RFC 5321 section 4.5.3.1.3: a path is at most 256 octets, so an address at most 254.
MAX_ADDRESS_CHARS = 254


class UnusableAddress(ValueError):
    """``address`` cannot be written to; ``reason`` says why, in English."""

    def __init__(self, address: str, reason: str):
        self.address = address
        self.reason = reason
        super().__init__(f"{reason}: {address!r}")


@dataclass(frozen=True)
class MailAddress:
    """An address pasts can write to, in the form it is written."""

    #: The addr-spec for headers and the envelope: ASCII (an IDN domain in
    #: its xn-- form) where the local part is ASCII, else UTF-8.
    spec: str
    #: The local part is not ASCII: the reply needs SMTPUTF8 (RFC 6531).
    smtputf8: bool


def usable_address(address: object) -> MailAddress:
    """``address`` as pasts writes it; raises :class:`UnusableAddress`."""
    if not isinstance(address, str):
        raise UnusableAddress(repr(address), "an address must be text")
    if not address or len(address) > MAX_ADDRESS_CHARS:
        raise UnusableAddress(address[:80], "an address has 1 to 254 characters")
    if address != address.strip() or any(c.isspace() for c in address):
        raise UnusableAddress(address, "an address has no whitespace")
    if address.startswith('"') or '"@' in address:
        raise UnusableAddress(address, "quoted local parts are not written to")
    return _validated(address)


@lru_cache(maxsize=4096)
def _validated(address: str) -> MailAddress:
    """email-validator's verdict on ``address``, kept for the next ask.

    A reply's address is checked by the outbox, the composer (twice) and the
    transport; the verdict depends on the text alone. A refusal is not kept
    (it raises), and the cache is bounded in entries and each entry in size.
    """
    try:
        valid = validate_email(
            address,
            check_deliverability=False,
            allow_smtputf8=True,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_display_name=False,
            # Allows the "test" domain of RFC 6761 (test deployments use it);
            # DNS is not asked either way.
            test_environment=True,
        )
    except EmailNotValidError as exc:
        raise UnusableAddress(address, str(exc).rstrip(".")) from None
    if valid.ascii_email:
        return MailAddress(valid.ascii_email, smtputf8=False)
    return MailAddress(valid.normalized, smtputf8=True)


def is_usable(address: object) -> bool:
    """Whether :func:`usable_address` accepts ``address``."""
    try:
        usable_address(address)
    except UnusableAddress:
        return False
    return True
