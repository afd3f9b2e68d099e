"""``pasts demo``: the whole job on a fresh checkout, with no server.

Makes a demo PKI and agency CA, a registry, good and bad signed applications
for each procedure in the configured maildirs, processes them with SQLite,
confirms the verification links over HTTP, approves the good application of
each procedure (certificate, data-exchange id, publication), and prints what
happened.
"""

from __future__ import annotations

import mailbox as stdlib_mailbox
import re
import shutil
import urllib.request
from dataclasses import dataclass
from email import message_from_bytes
from email.policy import default as default_policy
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import select

from intake.config import Config, load_config
from intake.errors import ConfigurationError

DEMO_MARKER = ".pasts-demo"
TO = "pasts@agency.example"
SUPPORT = "atbalsts@agency.example"

REGISTRY_CSV = """org_reg_no,org_name,test_env_completed,agreement_received,representatives
40003123456,SIA Ērgļu Māja,yes,yes,PNOLV-010190-12345
80001234567,Comune di Forlì,yes,yes,PNOLV-010190-12345
90000012345,Rīgas Pašvaldība,yes,yes,PNOLV-010190-12345
40003999999,SIA Bez Līguma,no,no,
"""

EA_GOOD = {
    "org_name": "SIA Ērgļu Māja", "org_reg_no": "40003123456",
    "contact_name": "Jānis Bērziņš", "contact_email": "janis@ergli.example",
    "contact_phone": "+371 20000000", "solution_name": "Ēdoc savienotājs 2.1",
    "test_env_completed": "yes", "csr_common_name": "ergli-connector.example.lv",
}
API_GOOD = {
    "org_name": "Comune di Forlì", "org_reg_no": "80001234567",
    "contact_name": "Niccolò Ferrè", "contact_email": "niccolo@forli.example",
    "data_provider": "Agenzia delle Entrate", "data_provider_email": "api@entrate.example",
    "apis": "anagrafe, pagamenti", "csr_common_name": "api.forli.example.it",
}
IO_GOOD = {
    "org_name": "Rīgas Pašvaldība", "org_reg_no": "90000012345",
    "service_name": "Pieteikums bērnudārzam",
    "service_description": "Vecāki piesaka bērnu pašvaldības bērnudārzam un seko rindai tiešsaistē.",
    "department": "Izglītības pārvalde", "contact_email": "izglitiba@riga.example",
    "privacy_url": "https://riga.example/privatums",
}

#: An Italian body's service card, sent the Italian way (issue 11).
IO_ITALIAN = {
    "org_name": "Comune di Forlì", "org_reg_no": "80001234567",
    "service_name": "Certificati anagrafici online",
    "service_description": "I cittadini scaricano i certificati anagrafici firmati dal Comune.",
    "department": "Servizi demografici", "contact_email": "anagrafe@comune.forli.example",
    "privacy_url": "https://comune.forli.example/privacy",
}
#: The Italian body's PEC mailbox and its PEC provider's.
PEC_SENDER = "protocollo@pec.comune.forli.example"
PEC_PROVIDER = "posta-certificata@pec.gestore.example"


@dataclass(frozen=True)
class Sample:
    label: str
    sender: str
    mailbox: str
    raw: bytes
    expect: str


def _check_demo_config(config: Config) -> None:
    if not config.database.url.startswith("sqlite:"):
        raise ConfigurationError("the demo runs only on SQLite", key="database.url", path=str(config.path))
    for mb in config.mailboxes:
        if mb.scheme != "maildir":
            raise ConfigurationError("the demo runs only on maildir: mailboxes",
                                     key=f"mailbox {mb.name} url", path=str(config.path))
    if config.smtp.scheme != "maildir":
        raise ConfigurationError("the demo sends only to a maildir:", key="smtp.url", path=str(config.path))


def _reset(demo_dir: Path) -> None:
    if demo_dir.exists():
        if not (demo_dir / DEMO_MARKER).exists() and any(demo_dir.iterdir()):
            raise ConfigurationError(f"{demo_dir} exists and was not made by the demo; not touching it",
                                     key="demo --dir")
        shutil.rmtree(demo_dir)
    demo_dir.mkdir(parents=True)
    (demo_dir / DEMO_MARKER).write_text("made by pasts demo; deleted by the next demo run\n")


def build_samples(config: Config, pki: Any) -> list[Sample]:
    from intake.demo.samples import (
        application_mail,
        change_field_after_signing,
        detached_signature,
        embed_revocation_info,
        filled_form,
        make_csr,
        sign,
        smime_signed_mail,
    )
    from signing.testing.xades import make_asice

    ea = config.workflow("eaddress-production")
    api = config.workflow("api-access")
    io = config.workflow("service-publication")
    assert ea and api and io
    good_ea = sign(filled_form(ea, EA_GOOD), pki)
    samples = [
        Sample("e-address, good", "janis@ergli.example", "applications", application_mail(
            sender="Jānis Bērziņš <janis@ergli.example>", to=TO,
            subject="Pieteikums e-adreses ražošanas videi",
            form=good_ea, csr=make_csr("ergli-connector.example.lv", "SIA Ērgļu Māja")),
            "awaiting-verification, then in-review, then approved with a certificate"),
        Sample("e-address, changed after signing", "liga@ergli.example", "applications",
               application_mail(sender="liga@ergli.example", to=TO, subject="Pieteikums (labots)",
                                form=change_field_after_signing(
                                    sign(filled_form(ea, {**EA_GOOD, "contact_email": "liga@ergli.example"}), pki),
                                    "org_reg_no", "40003000000"),
                                csr=make_csr("ergli-connector.example.lv")),
               "SIG-MODIFIED"),
        Sample("e-address, no form", "peteris@example.lv", "applications", application_mail(
            sender="peteris@example.lv", to=TO, subject="Gribu pieslēgties e-adresei",
            body="Labdien, pielikumā CSR; kā pieslēgties?\n",
            csr=make_csr("peteris-connector.example.lv")), "FORM-MISSING"),
        Sample("junk: no form, no CSR, no signature", "kads@example.lv", "applications",
               application_mail(sender="kads@example.lv", to=TO, subject="Sveiki",
                                body="Labdien, kā pieslēgties?\n"),
               "FORM-MISSING notice, no application (the ledger says why)"),
        Sample("e-address, unsigned with defects", "anna@example.lv", "applications", application_mail(
            sender="anna@example.lv", to=TO, subject="Pieteikums",
            form=filled_form(ea, {**EA_GOOD, "contact_email": "", "org_reg_no": "12345"}),
            csr=make_csr("wrong.example.lv", bits=1024)),
            "SIG-MISSING, FORM-FIELD-MISSING, FORM-FIELD-INVALID, CSR-KEY-WEAK, CSR-SUBJECT-MISMATCH"),
        Sample("e-address, signer not a representative", "karlis@example.lv", "applications",
               application_mail(sender="karlis@example.lv", to=TO, subject="Pieteikums",
                                form=sign(filled_form(ea, {**EA_GOOD, "test_env_completed": "no",
                                                           "contact_email": "karlis@example.lv"}),
                                          pki, "qualified-2", timestamp=False),
                                csr=make_csr("ergli-connector.example.lv")),
               "SIGNER-NOT-AUTHORISED, TEST-ENV-NOT-COMPLETED, TS-MISSING"),
        Sample("API access, good", "niccolo@forli.example", "applications", application_mail(
            sender="Niccolò Ferrè <niccolo@forli.example>", to=TO, subject="Richiesta accesso API Manager",
            body="Buongiorno, in allegato il modulo firmato.\n",
            form=sign(filled_form(api, API_GOOD), pki), form_name="modulo_accesso.pdf",
            csr=make_csr("api.forli.example.it", "Comune di Forlì")),
            "awaiting-verification, then in-review, then approved with a data-exchange id"),
        Sample("API access, non-qualified, no CSR", "dev@forli.example", "applications",
               application_mail(sender="dev@forli.example", to=TO, subject="Richiesta accesso",
                                form=sign(filled_form(api, {**API_GOOD, "contact_email": "dev@forli.example"}),
                                          pki, "nonqualified")),
               "SIG-NOT-QUALIFIED, CSR-MISSING"),
        Sample("API access, fields and CSR wrong", "dev2@forli.example", "applications",
               application_mail(
                   sender="dev2@forli.example", to=TO, subject="Richiesta accesso API",
                   form=sign(filled_form(api, {**API_GOOD, "contact_email": "dev2@forli.example",
                                               "data_provider_email": "entrate at example",
                                               "apis": ""}), pki),
                   csr=make_csr("altro.forli.example.it", "Comune di Forlì")),
               "FORM-FIELD-INVALID, FORM-FIELD-MISSING, CSR-SUBJECT-MISMATCH"),
        Sample("service card, good", "izglitiba@riga.example", "applications", application_mail(
            sender="izglitiba@riga.example", to=TO, subject="Pakalpojuma kartīte",
            form=sign(filled_form(io, IO_GOOD), pki)),
            "awaiting-verification, then in-review, then active"),
        Sample("service card, several defects", "info@bezliguma.example", "applications",
               application_mail(sender="info@bezliguma.example", to=TO, subject="Pakalpojums",
                                form=sign(filled_form(io, {
                                    **IO_GOOD, "org_name": "SIA Bez Līguma", "org_reg_no": "40003999999",
                                    "service_description": "Īss apraksts.",
                                    "privacy_url": "http://bezliguma.example/privacy",
                                    "contact_email": "info@bezliguma.example"}), pki, "untrusted")),
               "SIG-UNTRUSTED, FORM-FIELD-INVALID, CONTRACT-MISSING"),
        Sample("service card, signer not a delegate", "web@riga.example", "applications",
               application_mail(sender="web@riga.example", to=TO, subject="Pakalpojuma kartīte",
                                form=sign(filled_form(io, {
                                    **IO_GOOD, "contact_email": "web@riga.example",
                                    "service_name": "Pieteikums bērnudārzam " * 5,
                                    "department": ""}), pki, "qualified-2")),
               "SIGNER-NOT-AUTHORISED, FORM-FIELD-INVALID:service_name, FORM-FIELD-MISSING"),
        Sample("question to support", "maija@example.lv", "support", application_mail(
            sender="maija@example.lv", to=SUPPORT, subject="Jautājums par e-adresi",
            body="Vai iestādei vajag atsevišķu sertifikātu testa videi?\n"), "received (Q reference)"),
        Sample("out-of-office reply", "janis@ergli.example", "applications", application_mail(
            sender="janis@ergli.example", to=TO, subject="Automatic reply: Pieteikums",
            headers={"Auto-Submitted": "auto-replied"}, body="Esmu atvaļinājumā.\n"),
            "no answer (auto-submitted)"),
    ]
    # Forms signed outside the PDF: a detached .p7s, and an S/MIME signed mail.
    p7s_form = filled_form(ea, {**EA_GOOD, "contact_name": "Edgars Ozols",
                                "contact_email": "edgars@ergli.example"})
    smime_form = filled_form(ea, {**EA_GOOD, "contact_name": "Inese Kalna",
                                  "contact_email": "inese@ergli.example"})
    edoc_form = filled_form(ea, {**EA_GOOD, "contact_name": "Māris Liepa",
                                 "contact_email": "maris@ergli.example"})
    revoked = sign(filled_form(ea, {**EA_GOOD, "contact_email": "juris@ergli.example"}), pki,
                   "revoked")
    samples += [
        Sample("e-address, form signed by a .p7s beside it", "edgars@ergli.example",
               "applications", application_mail(
                   sender="edgars@ergli.example", to=TO, subject="Pieteikums ar .p7s parakstu",
                   form=p7s_form, csr=make_csr("ergli-connector.example.lv"),
                   attachments=(("pieteikums.pdf.p7s", "application/pkcs7-signature",
                                 detached_signature(p7s_form, pki.signer("qualified"),
                                                    pki.timestamper())),)),
               "awaiting-verification (signer read from the .p7s)"),
        Sample("e-address, S/MIME signed mail", "inese@ergli.example", "applications",
               smime_signed_mail(sender="inese@ergli.example", to=TO,
                                 subject="Parakstīts pieteikums", signer=pki.signer("qualified"),
                                 timestamper=pki.timestamper(), form=smime_form,
                                 csr=make_csr("ergli-connector.example.lv")),
               "awaiting-verification (signer read from S/MIME)"),
        Sample("e-address, form in an .edoc (ASiC-E)", "maris@ergli.example",
               "applications", application_mail(
                   sender="maris@ergli.example", to=TO, subject="Pieteikums .edoc formātā",
                   csr=make_csr("ergli-connector.example.lv"),
                   attachments=(("pieteikums.edoc", "application/vnd.etsi.asic-e+zip",
                                 make_asice([("pieteikums.pdf", edoc_form)],
                                            pki.signer("qualified"),
                                            timestamper=pki.timestamper())),)),
               "awaiting-verification (signer read from the XAdES signature)"),
        Sample("e-address, signer's certificate revoked", "juris@ergli.example", "applications",
               application_mail(sender="juris@ergli.example", to=TO, subject="Pieteikums",
                                form=embed_revocation_info(revoked, [pki.crl("ca-qualified")]),
                                csr=make_csr("ergli-connector.example.lv")),
               "SIG-CERT-REVOKED (the CRL travels in the PDF)"),
        Sample("e-address, same signed form in a new mail", "janis@ergli.example",
               "applications", application_mail(
                   sender="janis@ergli.example", to=TO, subject="Pieteikums (vēlreiz)",
                   form=good_ea, csr=make_csr("ergli-connector.example.lv", "SIA Ērgļu Māja")),
               "DUPLICATE (answered with the first reference)"),
        Sample("a form of no configured procedure", "ilze@example.lv", "applications",
               application_mail(sender="ilze@example.lv", to=TO, subject="Būvatļauja",
                                form=sign(filled_form(ea, {**EA_GOOD, "form_id": "building-permit",
                                                           "contact_email": "ilze@example.lv"}),
                                          pki)),
               "FORM-UNKNOWN"),
        Sample("a broken PDF", "oskars@example.lv", "applications", application_mail(
            sender="oskars@example.lv", to=TO, subject="Pieteikums",
            form=good_ea[: len(good_ea) // 3], csr=make_csr("ergli-connector.example.lv")),
            "FORM-UNREADABLE"),
    ]
    samples += italian_samples(io, pki)
    # The same good mail delivered twice: answered once.
    samples.append(Sample("e-address, good (delivered twice)", "janis@ergli.example", "applications",
                          samples[0].raw, "no second answer"))
    return samples


def italian_samples(io: Any, pki: Any) -> list[Sample]:
    """An Italian body's signed ``.p7m`` (base64, as many Italian tools write it), one
    without a time-stamp, and a ``.p7m`` arriving by PEC, inside its provider's envelope."""
    import base64

    from intake.demo.samples import (
        application_mail,
        enveloping_signature,
        filled_form,
        pec_envelope,
    )

    def p7m(values: dict[str, str], *, timestamp: bool = True) -> bytes:
        return enveloping_signature(filled_form(io, {**IO_ITALIAN, **values}),
                                    pki.signer("qualified"),
                                    pki.timestamper() if timestamp else None)

    inner = application_mail(
        sender=f"Comune di Forlì <{PEC_SENDER}>", to=TO, subject="Domanda di pubblicazione",
        body="Buongiorno, si trasmette il modulo firmato digitalmente.\n",
        attachments=(("modulo.pdf.p7m", "application/pkcs7-mime",
                      p7m({"service_name": "Pagamenti PagoPA",
                           "contact_email": "tributi@comune.forli.example"})),))
    return [
        Sample("service card, Italian .pdf.p7m (base64)", "anagrafe@comune.forli.example",
               "applications", application_mail(
                   sender="anagrafe@comune.forli.example", to=TO,
                   subject="Domanda di pubblicazione del servizio",
                   body="In allegato il modulo firmato (CAdES).\n",
                   attachments=(("modulo.pdf.p7m", "application/pkcs7-mime",
                                 base64.encodebytes(p7m({}))),)),
               "awaiting-verification (signer read from the .p7m), then in-review"),
        Sample("service card, .p7m without a time-stamp", "urp@comune.forli.example",
               "applications", application_mail(
                   sender="urp@comune.forli.example", to=TO, subject="Domanda",
                   attachments=(("modulo.pdf.p7m", "application/pkcs7-mime",
                                 p7m({"contact_email": "urp@comune.forli.example",
                                      "service_name": "Prenotazioni URP"},
                                     timestamp=False)),)),
               "TS-MISSING"),
        Sample("service card by PEC (certified mail)", PEC_SENDER, "applications",
               pec_envelope(inner, provider_signer=pki.signer("nonqualified"), to=TO,
                            provider_address=PEC_PROVIDER),
               "answered to the inner sender; the provider's seal is transport evidence only"),
    ]


def pec_receipts(config: Config, pki: Any) -> int:
    """The PEC provider's receipts of the replies to the PEC sender: delivered to the inbox."""
    from intake.demo.samples import pec_receipt

    assert config.smtp.path is not None
    box = stdlib_mailbox.Maildir(str(config.smtp.path), create=True)
    receipts = []
    for key in sorted(box.keys()):
        msg = message_from_bytes(box.get_bytes(key), policy=default_policy)
        if str(msg["To"]) != PEC_SENDER:
            continue
        for kind in ("accettazione", "avvenuta-consegna"):
            receipts.append(Sample(f"PEC receipt {kind}", PEC_PROVIDER, "applications", pec_receipt(
                kind, refers_to=str(msg["Message-ID"]), provider_signer=pki.signer("nonqualified"),
                to=TO, delivered_to=PEC_SENDER, provider_address=PEC_PROVIDER), "not answered"))
    deliver(config, receipts)
    return len(receipts)


def deliver(config: Config, samples: list[Sample]) -> None:
    for sample in samples:
        mb = config.mailbox(sample.mailbox)
        assert mb is not None and mb.path is not None
        mb.path.parent.mkdir(parents=True, exist_ok=True)
        box = stdlib_mailbox.Maildir(str(mb.path), create=True)
        box.add(sample.raw)


def confirm_links(config: Config) -> list[str]:
    """Open and confirm every verification link in the outbox, as applicants would."""
    assert config.smtp.path is not None
    box = stdlib_mailbox.Maildir(str(config.smtp.path), create=True)
    confirmed = []
    for key in sorted(box.keys()):
        msg = message_from_bytes(box.get_bytes(key), policy=default_policy)
        part = msg.get_body(("plain",))
        text = part.get_content() if part is not None else ""
        # A link is given once per language of the mail; it is opened once.
        for url in dict.fromkeys(re.findall(r"https?://\S+/verify/[A-Za-z0-9_-]+", text)):
            with urllib.request.urlopen(url, timeout=10) as page:  # GET: shows the page only
                page.read()
            req = urllib.request.Request(url, data=b"", method="POST")
            with urllib.request.urlopen(req, timeout=10) as page:
                body = page.read().decode()
            if "Address confirmed" in body:
                confirmed.append(str(msg["To"]))
    return confirmed


def run_demo(demo_dir: Path, *, out: TextIO, config_path: Path = Path("config.toml")) -> int:
    from intake.app import staff
    from intake.app.registry import import_registry
    from intake.runtime import Runtime
    from intake.store.models import Application, ReceivedMessage
    from intake.web.server import start_web
    from signing.testing.ca import make_test_ca
    from signing.testing.pki import DemoPki

    config = load_config(config_path)
    _check_demo_config(config)
    _reset(demo_dir)
    p = lambda *a: print(*a, file=out)  # noqa: E731
    p(f"pasts demo — config {config.path}, files in {demo_dir.resolve()}")

    p("1. demo PKI (root, qualified CA, TSA, signers) and agency CA")
    root = config.signing.trust_roots[0]
    # The certificates name a CRL location (never fetched: signing.allow_fetching
    # is off), so a CRL the form carries is binding for them.
    pki = DemoPki.create(root.parent, crl_url="http://crl.pasts-demo.invalid/qualified-ca.crl")
    assert config.ca.certificate is not None
    make_test_ca(config.ca.certificate.parent)

    with Runtime.open(config) as rt:
        registry = demo_dir / "registry.csv"
        registry.write_text(REGISTRY_CSV, encoding="utf-8")
        added, _ = import_registry(rt.store, registry)
        p(f"2. registry: {added} organisations imported from {registry}")

        samples = build_samples(config, pki)
        deliver(config, samples)
        p(f"3. {len(samples)} sample mails delivered to the maildirs:")
        for sample in samples:
            p(f"     {sample.label:<44} expect: {sample.expect}")

        p("4. pasts run --once")
        rt.run_once(progress=lambda line: p(f"     {line}"))

        p(f"   PEC: {pec_receipts(config, pki)} receipts of our replies arrive from the PEC "
          "provider (recorded on those replies, never answered)")
        rt.run_once(progress=lambda line: p(f"     {line}"))

        p("5. applicants open and confirm their verification links (GET, then POST)")
        web = start_web(rt)
        try:
            confirmed = confirm_links(config)
        finally:
            web.shutdown()
        p(f"     confirmed: {', '.join(confirmed) or 'none'}")
        rt.run_once()

        # Staff approve the first good application of each procedure: a
        # certificate, an account with its data-exchange id, a publication.
        refs = []
        with rt.store.session() as s:
            for workflow in ("eaddress-production", "api-access", "service-publication"):
                first = s.scalars(select(Application).where(
                    Application.workflow == workflow, Application.state == "in-review")
                    .order_by(Application.id)).first()
                if first is not None:
                    refs.append(first.reference)
        p(f"6. staff: pasts approve {' / '.join(refs)}")
        for ref in refs:
            p(f"     {staff.approve(rt, ref, user='demo-staff', note='Demo approval')}")
        rt.flush_outbox()

        p("")
        p(f"{'reference':<18} {'workflow':<20} {'state':<22} codes")
        with rt.store.session() as s:
            for app in s.scalars(select(Application).order_by(Application.id)):
                p(f"{app.reference:<18} {app.workflow:<20} {app.state:<22} {', '.join(app.codes or []) or '-'}")
            for row in s.scalars(select(ReceivedMessage).where(
                    ReceivedMessage.outcome.like("duplicate of %"))):
                p(f"{'(DUPLICATE)':<18} {row.sender or '':<20} {row.outcome}")
            ignored = s.scalars(select(ReceivedMessage).where(ReceivedMessage.status == "ignored")).all()
            for row in ignored:
                p(f"{'(not answered)':<18} {row.sender or '':<20} {row.outcome}")
        assert config.smtp.path is not None
        replies = len(stdlib_mailbox.Maildir(str(config.smtp.path), create=True))
        p("")
        p(f"{replies} replies written to {config.smtp.path}/new (one file per mail)")
        if config.ca.crl:
            p(f"agency CA in {config.ca.certificate.parent}; issued certificates are attached to the approval mail")
        p("next: .venv/bin/pasts list    .venv/bin/pasts show <reference>    .venv/bin/pasts digest")
        return 0
