"""The organisation registry: ``pasts registry import FILE.csv`` (SPEC section 7)."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from pathlib import Path

from intake.errors import PermanentError
from intake.store.engine import Store
from intake.store.models import Organisation

HEADER = ("org_reg_no", "org_name", "test_env_completed", "agreement_received", "representatives")
PERSONAL_CODE = re.compile(r"^[A-Z]{3}[A-Z]{2}-[A-Za-z0-9-]+$")
YES = {"yes": True, "no": False, "jā": True, "ja": True, "nē": False, "ne": False,
       "sì": True, "si": True, "true": True, "false": False, "1": True, "0": False}


class RegistryFileError(PermanentError):
    def __init__(self, message: str):
        super().__init__(message, code="REGISTRY-INVALID")


def _yes_no(value: str, where: str) -> bool:
    v = value.strip().casefold()
    if v not in YES:
        raise RegistryFileError(f"{where}: expected yes or no, got {value!r}")
    return YES[v]


def import_registry(store: Store, path: Path) -> tuple[int, int]:
    """Add or update organisations; the whole file is checked before anything is written."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise RegistryFileError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise RegistryFileError(f"{path}: not UTF-8 ({exc})") from None
    reader = csv.DictReader(io.StringIO(text))
    if tuple(h.strip() for h in (reader.fieldnames or ())) != HEADER:
        raise RegistryFileError(f"{path}: the header must be {','.join(HEADER)}")
    rows: dict[str, Organisation] = {}
    for n, rec in enumerate(reader, start=2):
        where = f"{path}:{n}"
        reg_no = (rec["org_reg_no"] or "").strip()
        if not reg_no.isdigit():
            raise RegistryFileError(f"{where}: org_reg_no must be digits, got {reg_no!r}")
        reps = [r.strip() for r in (rec["representatives"] or "").split(";") if r.strip()]
        for code in reps:
            if not PERSONAL_CODE.match(code):
                raise RegistryFileError(
                    f"{where}: {code!r} is not a personal code like PNOLV-010190-12345")
        rows[reg_no] = Organisation(
            reg_no=reg_no,
            name=unicodedata.normalize("NFC", (rec["org_name"] or "").strip()),
            test_env_completed=_yes_no(rec["test_env_completed"] or "", where),
            agreement_received=_yes_no(rec["agreement_received"] or "", where),
            representatives=reps,
        )
    added = updated = 0
    with store.session() as s:
        for reg_no, new in rows.items():
            old = s.get(Organisation, reg_no)
            if old is None:
                s.add(new)
                added += 1
            else:
                old.name = new.name
                old.test_env_completed = new.test_env_completed
                old.agreement_received = new.agreement_received
                old.representatives = new.representatives
                updated += 1
    return added, updated
