"""The states of an application (SPEC section 4) and the error of an action that does not fit one."""

from __future__ import annotations

from intake.errors import PastsError


class StaffActionError(PastsError):
    """The action does not fit the application's state."""
