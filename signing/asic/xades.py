"""XAdES signatures in ASiC-E (ETSI EN 319 132-1), verified as strictly as a signed PDF.

Each ``ds:Signature`` is judged with the same facts, and by the same shared
judgement (:mod:`signing.judgement`), as a PDF signature. Every problem with one
signature becomes facts and notes on that signature (the rules make them codes):

* a reference whose digest does not match, a referenced file that is missing or a
  broken ``SignatureValue`` is not ``intact`` / ``valid``, a data file that a
  signature does not cover is not ``covers_all`` (``SIG-INVALID`` either way);
* the signer's certificate is validated by pyHanko's certificate validator in
  the trust's own validation context, with the revocation data and
  certificates embedded in the signature, at the signature time-stamp's time;
* the signature time-stamp (``xades:SignatureTimeStamp``) must time-stamp the
  canonicalised ``ds:SignatureValue`` element.

Counter-signatures (``xades:CounterSignature``) are verified as signatures of
their own over the countersigned ``ds:SignatureValue``; a data file covered
only by a counter-signature that verifies counts as covered.

Not supported, and reported as notes where present: archive time-stamps
(XAdES-LTA, ``ASiCArchiveManifest``), counter-signatures of counter-signatures,
``ds:Manifest`` references, and XAdES 1.1.1 (whose signatures are ``SIG-INVALID``).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from urllib.parse import unquote

from asn1crypto import cms, tsp
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from lxml import etree
from pyhanko.sign.ades.report import AdESIndeterminate, AdESSubIndic
from pyhanko.sign.validation.generic_cms import validate_cert_usage, validate_tst_signed_data
from pyhanko.sign.validation.status import (
    RevocationDetails,
    StandardCMSSignatureStatus,
    TimestampSignatureStatus,
)
from pyhanko_certvalidator.path import ValidationPath
from signxml.algorithms import (
    SignatureMethod,
)
from signxml.exceptions import InvalidDigest
from signxml.xades.xades import XAdESSignatureConfiguration

from signing.asic.container import (
    NS,
    REFERENCE_DIGESTS,
    XADES141_NS,
    XADES_NS,
    AsicContainer,
    b64,
)
from signing.asic.xmldsig import (
    COUNTERSIGNED_TYPE,
    Countersigned,
    TolerantXAdESVerifier,
    algorithm_problem,
    canonicalise,
    counter_signatures,
    embedded_validation_data,
    imprint_of,
    keyinfo_certificates,
    parse_time,
    signing_certificate,
)
from signing.judgement import (
    TimestampFacts,
    broken,
    judge_signer_and_timestamp,
    judge_trust,
    only_revocation_unknown,
)
from signing.status import SignatureStatus
from signing.tolerant import tolerant_rsa_key
from signing.trust.context import TrustContext
from signing.trust.fetching import MessageFetching

# Signature methods checked mathematically; the validation context's algorithm
# policy then judges them as it judges a PDF signature's (SHA-1 is untrusted).
_SIGNATURE_METHODS = frozenset(m for m in SignatureMethod if not m.name.startswith("HMAC"))


@dataclass(frozen=True)
class _XadesValidation:
    """What the shared judgement reads from a validation status, under pyHanko's names."""

    intact: bool
    valid: bool
    signing_cert: asn1_x509.Certificate | None
    trust_problem_indic: AdESSubIndic | None
    validation_path: ValidationPath | None
    revocation_details: RevocationDetails | None
    timestamp_validity: TimestampFacts | None
    signer_reported_dt: datetime | None

    @property
    def trusted(self) -> bool:
        return (
            self.valid
            and self.intact
            and self.trust_problem_indic is None
            and self.validation_path is not None
        )

    @property
    def revoked(self) -> bool:
        return self.revocation_details is not None


@dataclass(frozen=True)
class _BrokenTimestamp:
    """A time-stamp token that is present but cannot be validated at all."""

    intact: bool = False
    valid: bool = False
    trusted: bool = False
    timestamp: datetime | None = None
    trust_problem_indic: AdESSubIndic | None = None


def broken_status(label: str | None, note: str) -> SignatureStatus:
    """The status of a XAdES signature that could not be validated at all."""
    return replace(broken(label, note), kind="xades")


async def verify_signature(
    trust: TrustContext,
    signature: etree._Element,
    label: str,
    container: AsicContainer,
    fetching: MessageFetching | None,
    countersigned: Countersigned | None = None,
) -> list[tuple[SignatureStatus, frozenset[str]]]:
    """Verify one ``ds:Signature`` and its counter-signatures.

    Returns the status of the signature and the data files it verifiably
    covers, then the same for each counter-signature. A data file covered by
    a counter-signature that verifies is covered by the signature it
    countersigns (a counter-signature signs the SignatureValue, so the two
    stand together); counter-signatures of counter-signatures are not followed.
    """
    notes: list[str] = []

    # The signed properties: exactly one set, inside this signature.
    qualifying = signature.findall("ds:Object/xades:QualifyingProperties", NS)
    signed_props = signature.findall(
        "ds:Object/xades:QualifyingProperties/xades:SignedProperties", NS
    )
    if len(qualifying) != 1 or len(signed_props) != 1:
        return [(broken_status(
            label, "expected one xades:SignedProperties (XAdES 1.3.2)"
        ), frozenset())]
    signed_properties = signed_props[0]
    unsigned = qualifying[0].find("xades:UnsignedProperties/xades:UnsignedSignatureProperties", NS)
    if unsigned is not None:
        for tag, what in (
            (f"{{{XADES141_NS}}}ArchiveTimeStamp", "archive time-stamps are not validated"),
            (f"{{{XADES_NS}}}ArchiveTimeStamp", "archive time-stamps are not validated"),
        ):
            if unsigned.find(tag) is not None:
                notes.append(what)
        if countersigned is not None and unsigned.find(f"{{{XADES_NS}}}CounterSignature") is not None:
            notes.append("counter-signatures of a counter-signature are not validated")

    # The references: detached ones name container files and carry no transforms.
    detached: dict[str, str] = {}
    problems: list[str] = []
    signed_info = signature.find("ds:SignedInfo", NS)
    if signed_info is None:
        return [(broken_status(label, "the signature has no ds:SignedInfo"), frozenset())]
    for reference in signed_info.iterfind("ds:Reference", NS):
        uri = reference.get("URI")
        method = reference.find("ds:DigestMethod", NS)
        digest_uri = method.get("Algorithm") if method is not None else None
        if digest_uri not in {algorithm.value for algorithm in REFERENCE_DIGESTS}:
            problems.append(f"reference {uri!r} uses the digest algorithm {digest_uri}")
        if uri is None or uri == "" or uri.startswith("#"):
            if reference.get("Type") == "http://www.w3.org/2000/09/xmldsig#Manifest":
                notes.append("ds:Manifest references are not followed")
            continue
        name = unquote(uri)
        if reference.find("ds:Transforms", NS) is not None:
            problems.append(f"reference to {name!r} has transforms")
        if container.entry(name) is None:
            problems.append(f"the signed file {name!r} is not in the container")
        detached[uri] = name

    # The signer's certificate: the KeyInfo certificate SigningCertificate(V2) names.
    certificates = keyinfo_certificates(signature)
    signing_cert = signing_certificate(certificates, signed_properties)
    if signing_cert is None:
        return [(
            broken_status(label, "the signer's certificate is not in ds:KeyInfo"),
            frozenset(),
        )]
    method_node = signed_info.find("ds:SignatureMethod", NS)
    signature_method = SignatureMethod(
        method_node.get("Algorithm") if method_node is not None else ""
    )

    # The mathematics: every reference digest and the SignatureValue (signxml);
    # certificate validity is judged below, so signxml checks it at issuance.
    # The properties read below (signing time, signing certificate) must be
    # the ones the signature covers, not a look-alike beside them.
    props_id = signed_properties.get("Id")
    if not props_id or not any(
        reference.get("URI") == f"#{props_id}"
        for reference in signed_info.iterfind("ds:Reference", NS)
    ):
        problems.append("the xades:SignedProperties are not referenced by the signature")
    if countersigned is not None and not any(
        reference.get("Type") == COUNTERSIGNED_TYPE
        and countersigned.signature_value_id is not None
        and reference.get("URI") == f"#{countersigned.signature_value_id}"
        for reference in signed_info.iterfind("ds:Reference", NS)
    ):
        problems.append("the counter-signature does not reference the SignatureValue it countersigns")

    intact = valid = True
    if problems:
        # Not verified at all: neither the digests nor the SignatureValue count.
        intact = valid = False
        notes.extend(problems)
    else:
        crypto_cert = x509.load_der_x509_certificate(signing_cert.dump())
        config = XAdESSignatureConfiguration(
            expect_references=True,
            digest_algorithms=REFERENCE_DIGESTS,
            signature_methods=_SIGNATURE_METHODS,
            verification_time=crypto_cert.not_valid_before_utc,
        )
        if countersigned is not None:
            # A counter-signature is found by its path in the whole document,
            # where the SignatureValue it references is.
            config = replace(config, location=countersigned.location)

        def resolve(uri: str) -> bytes | None:
            name = detached.get(uri, unquote(uri))
            return container.entry(name)

        try:
            TolerantXAdESVerifier(tolerant_rsa_key(signing_cert)).verify(
                signature if countersigned is None else countersigned.document,
                x509_cert=crypto_cert,
                uri_resolver=resolve,
                validate_schema=False,
                expect_config=config,
            )
        except InvalidDigest as exc:
            # signxml checks the SignatureValue before the references.
            intact = False
            notes.append(f"a signed digest does not match: {exc}")
        except Exception as exc:  # any other failure is a broken signature.
            intact = valid = False
            notes.append(f"the signature does not verify: {exc}")

    covers_all = True
    referenced = frozenset(detached.values())
    covered = referenced if intact and valid else frozenset()
    counters: list[tuple[SignatureStatus, frozenset[str]]] = []
    if countersigned is None:
        for index, (element, where) in enumerate(counter_signatures(signature), 1):
            counter_label = f"{label} counter-signature {element.get('Id') or index}"
            try:
                found = await verify_signature(
                    trust, element, counter_label, container, fetching, where
                )
            except Exception as exc:  # a broken counter-signature is SIG-INVALID.
                note = f"counter-signature validation failed: {exc!r}"
                found = [(broken_status(counter_label, note), frozenset())]
            counters.extend(found)
        by_counters = frozenset().union(*(files for _, files in counters))
        # The counter-signatures cover what this signature covers, through
        # its SignatureValue, when both verify.
        counters = [
            (status, files | covered if files else files) for status, files in counters
        ]
        for name, _content in container.data_files:
            if name not in referenced and name not in by_counters:
                covers_all = False
                notes.append(f"the data file {name!r} is not covered by this signature")
            elif name not in referenced:
                notes.append(f"the data file {name!r} is covered by a counter-signature only")
        covered = covered | by_counters if covered else covered

    # The signature time-stamp(s) over the canonicalised ds:SignatureValue.
    stamps = unsigned.findall("xades:SignatureTimeStamp", NS) if unsigned is not None else []
    tokens: list[tuple[cms.SignedData | None, bytes | None]] = []
    ts_time: datetime | None = None
    signature_value = signature.find("ds:SignatureValue", NS)
    for stamp in stamps:
        try:
            encapsulated = stamp.find("xades:EncapsulatedTimeStamp", NS)
            if encapsulated is None:
                raise ValueError("no xades:EncapsulatedTimeStamp")
            content_info = cms.ContentInfo.load(b64(encapsulated.text))
            signed_data = content_info["content"]
            if not isinstance(signed_data, cms.SignedData):
                raise ValueError("the token is not a CMS SignedData")
            tst_info = signed_data["encap_content_info"]["content"].parsed
            if not isinstance(tst_info, tsp.TSTInfo):
                raise ValueError("the token does not hold a TSTInfo")
            gen_time = tst_info["gen_time"].native
            if ts_time is None and isinstance(gen_time, datetime):
                ts_time = gen_time
            if signature_value is None:
                raise ValueError("the signature has no ds:SignatureValue")
            c14n = canonicalise(signature_value, stamp.find("ds:CanonicalizationMethod", NS))
            tokens.append((signed_data, c14n))
        except Exception as exc:  # a broken token is TS-INVALID below.
            notes.append(f"the signature time-stamp cannot be read: {exc!r}")
            tokens.append((None, None))

    # The validation contexts, over the signature's own certificates and revocation data.
    certs, crls, ocsps = embedded_validation_data(
        signature, (c for c in certificates if c.dump() != signing_cert.dump()), notes
    )
    now = trust.now()
    moment = ts_time if ts_time is not None and ts_time <= now else now
    revinfo = trust.revinfo(signing_cert, ts_time and moment, crls, ocsps, notes)

    trust_problem: AdESSubIndic | None = None
    path: ValidationPath | None = None
    revocation: RevocationDetails | None = None
    if intact and valid:
        signer_ctx = trust.validation_context(
            moment=moment, fetching=fetching, other_certs=certs, revinfo=revinfo
        )
        refusal = algorithm_problem(
            signer_ctx.algorithm_policy, signature_method, signing_cert, moment
        )
        if refusal is not None:
            trust_problem = AdESIndeterminate.CRYPTO_CONSTRAINTS_FAILURE
            notes.append(refusal)
        else:
            result = await validate_cert_usage(
                signing_cert,
                signer_ctx,
                StandardCMSSignatureStatus.default_usage_constraints(),
                signer_ctx.path_builder.async_build_paths_lazy(signing_cert),
            )
            trust_problem = result.error_subindic
            revocation = result.revo_details
            path = result.success_result or result.error_path

    timestamp: TimestampFacts | None = None
    for signed_data, stamped in tokens:
        if signed_data is None or stamped is None:
            timestamp = _BrokenTimestamp()
            continue
        ts_ctx = trust.validation_context(
            moment=moment, fetching=fetching, other_certs=certs, revinfo=revinfo
        )
        try:
            kwargs = await validate_tst_signed_data(signed_data, ts_ctx, imprint_of(stamped))
            timestamp = TimestampSignatureStatus(**kwargs)
        except Exception as exc:  # a token that fails validation is TS-INVALID.
            notes.append(f"the signature time-stamp does not validate: {exc!r}")
            timestamp = _BrokenTimestamp()
            continue
        if timestamp.trusted:
            break

    status = _XadesValidation(
        intact=intact,
        valid=valid,
        signing_cert=signing_cert,
        trust_problem_indic=trust_problem,
        validation_path=path,
        revocation_details=revocation,
        timestamp_validity=timestamp,
        signer_reported_dt=parse_time(
            signed_properties.findtext(
                "xades:SignedSignatureProperties/xades:SigningTime", None, NS
            )
        ),
    )
    unknown = await only_revocation_unknown(trust, status, moment, certs, revinfo)
    chain = judge_trust(trust, status, notes, moment, fetching, revocation_unknown=unknown)
    common = judge_signer_and_timestamp(trust, status, ts_time, notes, now)
    return [
        (
            SignatureStatus(
                field_name=label,
                kind="xades",
                **common,
                modified_after=False,
                covered_bytes=None,
                chain_problem=chain,
                covers_all=covers_all,
                notes=tuple(notes),
            ),
            covered,
        ),
        *counters,
    ]

