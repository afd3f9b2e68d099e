"""What a parsed mail is: :class:`ParsedMail` and its :class:`Attachment` s, and the limits the parse keeps to.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

#: ``signed-file``: an Italian enveloping ``.p7m``, a ``.tsd`` or a ``.m7m`` (by content);
#: ``tsr``: an RFC 3161 time-stamp response or token, paired with the ``.p7m`` beside it.
AttachmentKind = Literal["form", "csr", "p7s", "asice", "signed-file", "tsr", "other"]

ASIC_EXTENSIONS = (".asice", ".asics", ".edoc", ".sce", ".bdoc")
DER_CSR_EXTENSIONS = (".csr", ".req", ".p10", ".der")
P7S_TYPES = ("application/pkcs7-signature", "application/x-pkcs7-signature")
P7M_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")
TSR_TYPES = ("application/timestamp-reply", "application/timestamp-response")

_MAX_DEPTH = 40
#: MIME parts looked at in one mail; the rest are ignored (with a defect).
#: Reading a part's headers costs about 0.3 ms, and no form needs so many.
MAX_PARTS = 1000
#: PEM CSR armour lines. Blocks are found with ``bytes.find`` (linear): a
#: lazy regex from every BEGIN to an END that never comes is quadratic.
_PEM_BEGIN = b"-----BEGIN "
_PEM_LABELS = (b"CERTIFICATE REQUEST-----", b"NEW CERTIFICATE REQUEST-----")
_PEM_ENDS = (b"-----END CERTIFICATE REQUEST-----", b"-----END NEW CERTIFICATE REQUEST-----")
#: The structured parse of one header (RFC 2047 words, address lists) sees at
#: most this many characters: the stdlib parser's time and memory grow faster
#: than linearly in them (many encoded words: 224 KB took 1.75 GB).
MAX_HEADER_CHARS = 8192
#: An HTML body is converted to text up to this many characters.
MAX_HTML_CHARS = 2 * 1024 * 1024
#: Longest Message-ID kept as sent (RFC 5322's line limit); a longer one is
#: shortened with a hash of it (:func:`fit`), as is an over-long sender.
MAX_MESSAGE_ID_CHARS = 998
MAX_SENDER_CHARS = 320
_MSGID_RE = re.compile(r"<[^<>\s]+>")
_CRLF_RE = re.compile(r"[\r\n]+")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: Local parts of the senders of delivery reports (plain-text bounces included).
_BAD_MAILER_LOCALS = ("mailer-daemon", "mailer_daemon", "mailerdaemon", "postmaster",
                      "post_master")


@dataclass(frozen=True)
class Attachment:
    #: Decoded file name (RFC 2231 / RFC 2047 decoded), or None.
    filename: str | None
    #: Lower-case content type as sent (e.g. "application/octet-stream").
    content_type: str
    #: What pasts recognised it as, by content sniffing first, then name/type.
    kind: AttachmentKind
    data: bytes = field(repr=False)
    #: 0 for the mail's own parts, 1+ inside forwarded message/rfc822 parts.
    depth: int = 0
    #: The decoded size of a part over the attachment limit, whose data was not kept.
    dropped_size: int | None = None
    #: The part lies inside the content covered by the mail's S/MIME signature.
    in_smime: bool = False


@dataclass(frozen=True)
class PecTransport:
    """What the PEC provider added to a mail: transport evidence, never the applicant's.

    For an envelope (``X-Trasporto``) the :class:`ParsedMail` around it is the
    inner ``postacert.eml`` (the applicant's mail); for a receipt
    (``X-Ricevuta``) it is the receipt itself.
    """

    #: ``envelope`` (a ``busta di trasporto`` unwrapped) or ``receipt``.
    kind: Literal["envelope", "receipt"]
    #: The ``X-Trasporto`` value (``posta-certificata``) or the ``X-Ricevuta`` kind.
    transport: str
    #: The provider's mail: its Message-ID and its From.
    envelope_message_id: str | None
    envelope_from: str
    #: ``daticert.xml`` as JSON-able data (sender, recipients, identifier, time, ...).
    daticert: dict[str, object] | None
    #: The provider's S/MIME signed bytes and signature DER (``None``: unsigned).
    signed: tuple[bytes, bytes] | None = field(default=None, repr=False)
    #: What was odd about the envelope (``intake.mime.pec.read_pec``'s notes).
    notes: tuple[str, ...] = ()
    #: A receipt's ``X-Riferimento-Message-ID``: the mail it is about.
    refers_to: str | None = None


@dataclass(frozen=True)
class ParsedMail:
    #: Message-ID with angle brackets, e.g. "<abc@host>", or None.
    message_id: str | None
    #: Lower-cased addr-spec of From (or "" if unparseable).
    from_addr: str
    from_name: str
    #: Lower-cased addr-spec of Reply-To if present.
    reply_to: str | None
    #: Where replies go: reply_to or from_addr.
    subject: str
    date: datetime | None
    in_reply_to: str | None
    #: References message-ids in order (angle brackets kept).
    references: tuple[str, ...]
    #: Auto-Submitted present and not "no" (RFC 3834).
    auto_submitted: bool
    #: Precedence bulk/junk/list, or a list header (List-Id, List-Unsubscribe,
    #: List-Subscribe, List-Help, List-Post, Mailing-List, X-ML-Name, ...).
    bulk: bool
    #: A report of any kind (multipart/report: DSN, ARF, MDN), an empty Return-Path
    #: (<>), or from MAILER-DAEMON/postmaster/post_master.
    bounce: bool
    #: The text of the mail (text/plain preferred, else HTML stripped to text).
    body_text: str
    attachments: tuple[Attachment, ...]
    #: The first PDF attachment (the form), if any.
    form: Attachment | None
    #: The CSR (attachment, or PEM pasted inline in the body), DER or PEM bytes.
    csr: bytes | None
    #: Detached CMS signature (.p7s) attachment bytes, if any.
    p7s: Attachment | None
    #: ASiC-E container (.asice/.edoc/.sce/.bdoc), if any.
    asice: Attachment | None
    #: For multipart/signed S/MIME: (signed content bytes as sent, signature DER).
    smime: tuple[bytes, bytes] | None
    #: Parser defects and limit violations, human-readable.
    defects: tuple[str, ...] = ()
    #: The size of a message over the message limit: only its header was read.
    oversized: int | None = None
    #: Why the mail is itself automatic beyond the three flags above (a vacation
    #: reply, a PEC receipt), never answered; None if there is no such sign.
    automatic: str | None = None
    #: Why the mail looks automatic or asks for no automatic answer (an
    #: out-of-office subject, X-Auto-Response-Suppress, a no-reply sender):
    #: weaker signs, which a form, a container or a CSR in the mail outweighs.
    no_auto_reply: str | None = None
    #: A PEC receipt's kind (X-Ricevuta, e.g. "avvenuta-consegna") and the
    #: Message-ID it is about (X-Riferimento-Message-ID), if this is one.
    pec_receipt: tuple[str, str | None] | None = None
    #: An Italian signed file (``.p7m``, ``.tsd``, ``.m7m``), recognised by content.
    signed_file: Attachment | None = None
    #: A detached time-stamp (``.tsr``) beside it, paired with the ``.p7m``.
    timestamp_reply: Attachment | None = None
    #: The PEC transport this mail arrived in (an envelope unwrapped, or a receipt).
    pec: PecTransport | None = None

    @property
    def carries_form(self) -> bool:
        """A form arrived: a PDF, or an ASiC-E container that should hold one."""
        return (self.form is not None or self.asice is not None
                or self.signed_file is not None)

    @property
    def reply_address(self) -> str:
        return self.reply_to or self.from_addr

    @property
    def no_reply_reason(self) -> str | None:
        """Why this mail must never be auto-answered (None = may answer).

        This is the one place that decides it (SPEC section 5: no reply to
        mail that is itself automatic). Firm signs (RFC 3834 Auto-Submitted,
        list and bulk headers, reports and bounces, vacation replies, PEC
        receipts) always win. Weaker signs (an out-of-office subject,
        X-Auto-Response-Suppress, a no-reply address) count only when the
        mail carries nothing to judge: every mail with a form, a container
        or a CSR is answered (SPEC section 5, "No application is left
        unanswered"), and Outlook sets X-Auto-Response-Suppress on some
        mail that people write.
        """
        if self.auto_submitted:
            return "auto-submitted"
        if self.bulk:
            return "bulk or list mail"
        if self.bounce:
            return "bounce or delivery report"
        if self.automatic:
            return self.automatic
        if not self.reply_address:
            return "no sender address"
        submits = self.carries_form or self.csr is not None or self.oversized is not None
        if self.no_auto_reply and not submits:
            return self.no_auto_reply
        return None
