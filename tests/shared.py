"""Where the shared folder (SPEC.md, corpus/) is: beside the checkout.

CI clones the repository with ``shared/`` beside it; a developer's checkout
has it at ``../shared`` too. ``PASTS_SHARED`` overrides both.
"""

from __future__ import annotations

import os
from pathlib import Path

_CANDIDATES = [
    Path(os.environ["PASTS_SHARED"]) if os.environ.get("PASTS_SHARED") else None,
    Path(__file__).resolve().parent.parent.parent / "shared",
    Path("/work/shared"),
]

SHARED = next((p for p in _CANDIDATES if p is not None and (p / "SPEC.md").exists()),
              Path(__file__).resolve().parent.parent.parent / "shared")
CORPUS = SHARED / "corpus"
SPEC = SHARED / "SPEC.md"
