"""Trust anchors: the certificates of ``signing.trust_roots`` (PEM/DER files and directories)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from asn1crypto import pem
from asn1crypto import x509 as asn1_x509


def _load_anchor_file(path: Path) -> list[asn1_x509.Certificate]:
    data = path.read_bytes()
    if pem.detect(data):
        return [
            asn1_x509.Certificate.load(der)
            for kind, _headers, der in pem.unarmor(data, multiple=True)
            if kind == "CERTIFICATE"
        ]
    return [asn1_x509.Certificate.load(data)]


def load_trust_roots(paths: Iterable[Path]) -> tuple[asn1_x509.Certificate, ...]:
    """Load anchors from PEM/DER files and directories (``*.pem``, ``*.crt``, ``*.cer``)."""
    roots: list[asn1_x509.Certificate] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            for child in sorted(path.iterdir()):
                if child.suffix.lower() in (".pem", ".crt", ".cer", ".der") and child.is_file():
                    roots.extend(_load_anchor_file(child))
        else:
            roots.extend(_load_anchor_file(path))
    return tuple(roots)
