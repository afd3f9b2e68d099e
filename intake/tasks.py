"""The work on untrusted bytes that the verification children run besides verifying.

Names and ``module:function`` targets only, importing nothing: ``pasts run`` starts
the verifiers' fork server from them (it imports these modules and pyHanko once)
before it imports the rest of the daemon, so the two start-ups overlap
(:func:`signing.isolation.start_fork_server`).
"""

from __future__ import annotations

#: The MIME parse of a mail in a bounded child (:mod:`intake.runner`'s step-by-step path).
PARSE_TASK = "parse_message"
#: Parse, verify and read a mail in one round trip (:mod:`intake.prepare`).
PREPARE_TASK = "prepare_message"

#: Every task of the verifier the daemon builds (:func:`intake.runtime.make_verifier`).
VERIFY_TASKS: dict[str, str] = {
    PARSE_TASK: "intake.mime.parse:parse_message",
    PREPARE_TASK: "intake.prepare:prepare_message",
}
