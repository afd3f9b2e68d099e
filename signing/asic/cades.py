"""CAdES signatures in ASiC-E: ``META-INF/signature*.p7s`` over an ``ASiCManifest``.

The CMS is verified as a detached ``.p7s`` over the manifest
(:func:`signing.cms.detached.verify_detached`); the manifest's digests of the
data files are judged here. Their statuses have ``kind="cms"``.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from urllib.parse import unquote

from signxml.algorithms import DigestAlgorithm, digest_algorithm_implementations

from signing.asic.container import (
    ASIC_NS,
    NS,
    REFERENCE_DIGESTS,
    AsicContainer,
    b64,
    parse_xml,
)
from signing.cms.detached import verify_detached
from signing.judgement import broken
from signing.status import SignatureStatus
from signing.trust.context import TrustContext


def cades_signatures(
    container: AsicContainer, notes: list[str]
) -> list[tuple[str, tuple[str, bytes] | None]]:
    """Each ``META-INF/signature*.p7s`` with the ``ASiCManifest`` that names it (or ``None``)."""
    manifests: dict[str, tuple[str, bytes]] = {}
    for name, content in container.meta_files:
        base = name[len("META-INF/") :]
        if not (base.startswith("ASiCManifest") and base.endswith(".xml")):
            if "ArchiveManifest" in base or base.endswith(".tst"):
                notes.append(f"{name}: container time-stamps are not validated")
            continue
        try:
            reference = parse_xml(content).find(f"{{{ASIC_NS}}}SigReference")
        except Exception as exc:  # an unreadable manifest signs nothing.
            notes.append(f"{name} cannot be parsed: {exc}")
            continue
        if reference is not None and reference.get("URI"):
            manifests[unquote(reference.get("URI") or "")] = (name, content)
    return [
        (name, manifests.get(name))
        for name, _content in container.meta_files
        if name[len("META-INF/") :].startswith("signature") and name.endswith(".p7s")
    ]


async def verify_cades(
    trust: TrustContext,
    signature_name: str,
    manifest: tuple[str, bytes] | None,
    container: AsicContainer,
) -> list[tuple[SignatureStatus, frozenset[str]]]:
    """A CAdES signature over an ``ASiCManifest``, and the manifest's digests of the data files.

    One entry per signer of the CMS (usually one), each with the manifest's findings.
    """
    signature = container.entry(signature_name) or b""
    if manifest is None:
        status = broken(signature_name, "no ASiCManifest names this signature", kind="cms")
        return [(status, frozenset())]
    manifest_name, manifest_bytes = manifest
    verdict = await verify_detached(trust, manifest_bytes, signature, "cms")
    found = []
    for status in verdict.signatures:
        label = signature_name if len(verdict.signatures) == 1 else (
            f"{signature_name} {status.field_name}")
        found.append(_judge_manifest(status, label, manifest_name, manifest_bytes, container))
    return found


def _judge_manifest(
    status: SignatureStatus, label: str, manifest_name: str, manifest_bytes: bytes,
    container: AsicContainer,
) -> tuple[SignatureStatus, frozenset[str]]:
    """A CAdES signer's status with the manifest's digests judged, and the files covered."""
    notes = list(status.notes)
    referenced: set[str] = set()
    intact = True
    for reference in parse_xml(manifest_bytes).iterfind(f"{{{ASIC_NS}}}DataObjectReference"):
        name = unquote(reference.get("URI") or "")
        method = reference.find("ds:DigestMethod", NS)
        value = reference.find("ds:DigestValue", NS)
        content = container.entry(name)
        algorithm = method.get("Algorithm") if method is not None else None
        if algorithm not in {digest.value for digest in REFERENCE_DIGESTS}:
            intact = False
            notes.append(
                f"{manifest_name}: reference {name!r} uses the digest algorithm {algorithm}"
            )
        elif content is None:
            intact = False
            notes.append(f"{manifest_name}: the signed file {name!r} is not in the container")
        elif (
            value is None
            or b64(value.text)
            != hashlib.new(
                digest_algorithm_implementations[DigestAlgorithm(algorithm)]().name, content
            ).digest()
        ):
            intact = False
            notes.append(f"{manifest_name}: the digest of {name!r} does not match")
        referenced.add(name)
    for name, _content in container.data_files:
        if name not in referenced:
            intact = False
            notes.append(f"the data file {name!r} is not covered by this signature")
    status = replace(
        status,
        field_name=label,
        intact=status.intact and intact,
        notes=tuple(notes),
    )
    covered = frozenset(referenced) if status.intact and status.valid else frozenset()
    return status, covered

