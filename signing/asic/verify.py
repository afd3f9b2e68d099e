"""The verdict on an ASiC-E container: every XAdES and CAdES signature, and what they cover."""

from __future__ import annotations

from lxml import etree

from signing.asic.cades import cades_signatures, verify_cades
from signing.asic.container import DS_NS, parse_xml, read_container
from signing.asic.xades import broken_status, verify_signature
from signing.judgement import broken
from signing.status import AsicVerdict, FormVerdict, SignatureStatus
from signing.trust.context import TrustContext


async def verify_container(trust: TrustContext, data: bytes) -> AsicVerdict:
    """Verify every signature in an ASiC-E container (the body of ``InProcessVerifier.verify_asic``).

    XAdES signatures are verified here; CAdES signatures (``META-INF/signature*.p7s``
    over an ``ASiCManifest``) by the detached-CMS path, their manifest's
    digests here. Raises only :class:`UnreadableInput`.
    """
    container = read_container(data, max_bytes=trust.settings.max_pdf_bytes)
    documents = container.data_files
    form_name, form_bytes = next(
        ((name, content) for name, content in documents if name.lower().endswith(".pdf")),
        (None, None),
    )
    doc_notes = list(container.notes)

    xades: list[tuple[str, etree._Element | None, str | None]] = []
    for name, content in container.signature_files:
        try:
            root = parse_xml(content)
        except Exception as exc:  # an unparsable signature file is SIG-INVALID.
            xades.append((name, None, f"{name} cannot be parsed: {exc}"))
            continue
        found = (
            [root] if root.tag == f"{{{DS_NS}}}Signature" else root.findall(f"{{{DS_NS}}}Signature")
        )
        if not found:
            xades.append((name, None, f"{name} holds no ds:Signature"))
        xades.extend((name, element, None) for element in found)
    cades = cades_signatures(container, doc_notes)

    if not xades and not cades:
        return AsicVerdict(
            verdict=FormVerdict(
                signatures=(), signer=None, notes=tuple(doc_notes)
            ),
            documents=documents,
            form_name=form_name,
            form_bytes=form_bytes,
        )

    statuses: list[tuple[SignatureStatus, frozenset[str]]] = []
    fetching = trust.fetching()
    try:
        for name, element, problem in xades:
            if element is None:
                statuses.append((broken_status(name, problem or "no signature"), frozenset()))
                continue
            label = f"{name}#{element.get('Id')}" if element.get("Id") else name
            try:
                statuses.extend(
                    await verify_signature(trust, element, label, container, fetching)
                )
            except RecursionError:
                statuses.append((broken_status(label, "signature nested too deeply"), frozenset()))
            except Exception as exc:  # every validator error is SIG-INVALID.
                statuses.append(
                    (broken_status(label, f"signature validation failed: {exc!r}"), frozenset())
                )
    finally:
        if fetching is not None:
            await fetching.close()
    for signature_name, manifest in cades:
        try:
            statuses.extend(await verify_cades(trust, signature_name, manifest, container))
        except Exception as exc:  # a broken manifest is SIG-INVALID.
            note = f"signature validation failed: {exc!r}"
            statuses.append((broken(signature_name, note, kind="cms"), frozenset()))

    covers_form = form_name is not None and all(form_name in covered for _, covered in statuses)
    verdict = FormVerdict(
        signatures=tuple(status for status, _ in statuses),
        signer=statuses[-1][0].signer,
        signed_revision=form_bytes if covers_form else None,
        notes=tuple(doc_notes),
    )
    return AsicVerdict(
        verdict=verdict, documents=documents, form_name=form_name, form_bytes=form_bytes
    )

