"""The states of an application (SPEC section 4) and the transitions between them, declared.

``received`` → ``awaiting-verification`` → ``in-review`` → ``approved``/``active``, with the side
exits ``incomplete``, ``rejected`` (final), ``restricted`` and ``verification-expired``.
:data:`TRANSITIONS` names, for every state, the states an application may come to it from;
:func:`intake.app.replies.transition`, the one place a state changes, refuses any other move.
A new state or move is one line here (and its reply template in ``mailer/``).
"""

from __future__ import annotations

from intake.errors import PastsError

#: States (SPEC section 4).
STATES = (
    "received",
    "awaiting-verification",
    "in-review",
    "approved",
    "active",
    "incomplete",
    "rejected",
    "restricted",
    "verification-expired",
)
FINAL_STATES = ("rejected",)

#: States in which a corrected form is judged again on the same reference.
RESUBMITTABLE = ("received", "incomplete", "awaiting-verification", "verification-expired",
                 "in-review")
#: States staff may approve from, and restrict (revoke) from.
APPROVABLE = ("in-review",)
RESTRICTABLE = ("approved", "active")

#: to-state -> the states it may be reached from (None: a new application).
TRANSITIONS: dict[str, tuple[str | None, ...]] = {
    "received": (None,),
    # A judged (re)submission: deficient, waiting for its e-mail link, or complete.
    "incomplete": RESUBMITTABLE,
    "awaiting-verification": RESUBMITTABLE,
    "in-review": RESUBMITTABLE,
    # The link mailed for the contact address was not used in time.
    "verification-expired": ("awaiting-verification",),
    # Staff: approve (``active`` for a publication), restrict after a compliance check, reject.
    "approved": APPROVABLE,
    "active": APPROVABLE,
    "restricted": RESTRICTABLE,
    "rejected": tuple(s for s in STATES if s not in FINAL_STATES),
}


class StaffActionError(PastsError):
    """The action does not fit the application's state."""


def check_transition(from_state: str | None, to_state: str) -> None:
    """ValueError unless :data:`TRANSITIONS` allows ``from_state`` → ``to_state``."""
    if to_state not in TRANSITIONS:
        raise ValueError(f"unknown state {to_state!r}")
    if from_state not in TRANSITIONS[to_state]:
        raise ValueError(f"no transition from {from_state!r} to {to_state!r} (intake.app.states)")
