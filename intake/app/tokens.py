"""The secrets of e-mail links: the key in ``daemon.state_dir``, each link's token and its hash,
and whose address a link confirms (the person key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import unicodedata

from intake.config import Config
from intake.mime.text import fit
from intake.private import secret_key
from intake.store.models import Application, VerificationToken
from rules.workflow import Role, WorkflowConfig, field_value

#: Stands for the link's token in the outbox until the sender fills it in
#: (:meth:`Verification.outgoing`): the database never holds a live link.
LINK_PLACEHOLDER = "link-filled-in-when-sent"
#: The key, in ``daemon.state_dir``, from which each link's token is derived.
LINK_KEY_FILE = "verification-link.key"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("ascii", "replace")).hexdigest()


def link_key(config: Config) -> bytes:
    """The secret the link tokens derive from, kept 0600 in ``daemon.state_dir``."""
    return secret_key(config.daemon.state_dir / LINK_KEY_FILE)


def link_token(key: bytes, row: VerificationToken) -> str:
    """The token of link ``row``: 256 bits, HMAC-SHA256 of the row under ``key``.

    The same row always gives the same token, so a mail sent again after a
    crash carries the same link; without the key, neither the database nor
    its backups can give a live link.
    """
    message = f"pasts verification link\0{row.id}\0{row.application_id}\0{row.email}"
    digest = hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


#: The width of the ``person`` columns; a longer key is stored in its fitted form.
PERSON_KEY_CHARS = 200


def person_key(app: Application, workflow: WorkflowConfig | None) -> str:
    """Whose address it is: the contact person named on the form (``workflow``'s contact-name)."""
    name = field_value(workflow, app.form_values, Role.CONTACT_NAME)
    if name:
        key = unicodedata.normalize("NFC", " ".join(name.split())).casefold()
    else:
        signer = app.signer or {}
        key = str(signer.get("personal_code") or app.applicant_email)
    # A form value of any length still fits the column and compares.
    return fit(key, PERSON_KEY_CHARS)
