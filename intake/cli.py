"""The command handlers behind ``pasts`` (parsing lives in ``daemon.py``)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.app.bound import WAITING
from intake.app.receipts import receipt_lines
from intake.app.replies import load_application
from intake.app.retention import purge
from intake.app.steering import held_counts, show_steering
from intake.display import safe
from intake.errors import ConfigurationError
from intake.runtime import Runtime
from intake.store.models import (
    Application,
    CertificateNotice,
    IssuedCertificateRow,
    Organisation,
    Outbox,
)
from rules.workflow import Role, WorkflowConfig, field_value

log = logging.getLogger(__name__)


def cmd_run(rt: Runtime, *, once: bool, out: TextIO) -> int:
    rt.check_start()
    if once:
        return rt.run_once(progress=lambda line: print(line, file=out))
    return rt.run_forever()


def cmd_list(rt: Runtime, *, state: str | None, workflow: str | None, out: TextIO) -> int:
    with rt.store.session() as s:
        q = select(Application).order_by(Application.id)
        if state:
            q = q.where(Application.state == state)
        if workflow:
            q = q.where(Application.workflow == workflow)
        rows = s.scalars(q).all()

        held = held_counts(s)
        for app in rows:
            org = field_value(rt.config.workflow(app.workflow), app.form_values, Role.ORG_NAME)
            codes = ",".join(app.codes or [])
            if held.get(app.id):
                codes = ",".join(filter(None, [codes, f"HELD:{held[app.id]}"]))
            # The organisation and the address come from the mail: one line each,
            # whatever CR, LF or ESC they hold.
            print(safe(f"{app.reference:<18} {app.state:<22} {app.workflow:<20} "
                       f"{app.created_at:%Y-%m-%d %H:%M}  {app.applicant_email:<30} {org}"
                       + (f"  [{codes}]" if codes else "")), file=out)
        if not rows:
            print("no applications", file=out)
    return 0


def merge_reports(reports: list[str]) -> bytes:
    """One ETSI TS 119 102-2 ValidationReport holding every signature's report."""
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    first = etree.fromstring(reports[0].encode("utf-8"), parser=parser)
    ns = first.nsmap.get("vr") or "http://uri.etsi.org/19102/v1.2.1#"
    objects = first.find(f"{{{ns}}}SignatureValidationObjects")
    for other in reports[1:]:
        root = etree.fromstring(other.encode("utf-8"), parser=parser)
        for report in root.findall(f"{{{ns}}}SignatureValidationReport"):
            position = len(first.findall(f"{{{ns}}}SignatureValidationReport"))
            first.insert(position, report)
        more = root.find(f"{{{ns}}}SignatureValidationObjects")
        if more is not None and objects is not None:
            for item in list(more):
                objects.append(item)
    return bytes(etree.tostring(first, xml_declaration=True, encoding="UTF-8"))


def cmd_show(rt: Runtime, reference: str, *, out: TextIO, report: Path | None = None) -> int:
    with rt.store.session() as s:
        app = load_application(s, reference)
        if report is not None:
            stored = ((app.verdicts or {}).get("signature") or {}).get("reports") or []
            if not stored:
                why = (f" (purged {app.purged_at:%Y-%m-%d}, daemon.retention_days)"
                       if app.purged_at else "")
                print(f"pasts: {reference} has no stored validation report{why}", file=sys.stderr)
                return 1
            report.write_bytes(merge_reports(list(stored)))
        # Nearly every value shown comes from a mail or a signed form: each line
        # is printed with its control characters escaped.
        p = lambda line: print(safe(line), file=out)  # noqa: E731
        p(f"{app.reference}  ({app.workflow})")
        p(f"  state:      {app.state}")
        p(f"  applicant:  {app.applicant_email}")
        p(f"  addresses:  {', '.join(app.addresses or [])}")
        undeliverable = (app.extra or {}).get("undeliverable")
        if undeliverable:
            p(f"  undeliverable: no reply can be written to {undeliverable.get('address')} "
              f"({undeliverable.get('reason')})")
        held = s.scalars(select(Outbox).where(Outbox.application_id == app.id,
                                              Outbox.status == WAITING)).all()
        if held:
            p(f"  waiting:    {len(held)} answer(s) held by the per-recipient bound "
              f"(smtp.rate_limit_per_hour), sent when it allows: "
              + ", ".join(o.message_id for o in held))
        p(f"  created:    {app.created_at:%Y-%m-%d %H:%M:%S %Z}")
        if app.purged_at:
            p(f"  purged:     {app.purged_at:%Y-%m-%d %H:%M:%S %Z}: raw mail, reply copies, "
              "validation reports and CSR removed (daemon.retention_days); the decision "
              "record stays")
        if app.codes:
            p(f"  open codes: {', '.join(app.codes)}")
        p("fields:")
        for k, v in (app.form_values or {}).items():
            p(f"  {k}: {v}")
        show_organisation(s, app, p, rt.config.workflow(app.workflow))
        p("signer:")
        if app.signer:
            for k, v in app.signer.items():
                if v not in (None, ""):
                    p(f"  {k}: {v}")
        else:
            p("  (none)")
        p("verdicts:")
        verdicts = app.verdicts or {}
        sig = verdicts.get("signature")
        if sig:
            for i, one in enumerate(sig.get("signatures", []), 1):
                codes = ", ".join(one["codes"]) or "ok"
                where = one.get("field") or {"cms": ".p7s", "smime": "S/MIME", "xades": "ASiC-E", "p7m": ".p7m"}.get(one.get("kind"))
                p(f"  signature {i} ({where}): {codes}; time-stamp {one.get('timestamp')}")
                for note in one.get("notes", []):
                    p(f"    - {note}")
                q = one.get("qualification")
                if q:
                    what = (f"qualified ({q.get('qc_type')}, "
                            f"{'QSCD' if q.get('qscd') else 'no QSCD'})"
                            if q.get("qualified") else "not qualified")
                    by = f" by {q['service']}" if q.get("service") else ""
                    p(f"    qualification: {what}{by} [{q.get('source')}]")
                    for reason in q.get("reasons", []):
                        p(f"      - {reason}")
                tq = one.get("timestamp_qualification")
                if tq:
                    what = "qualified" if tq.get("qualified") else "not qualified"
                    by = f" ({tq['service']})" if tq.get("service") else ""
                    p(f"    time-stamp: {what}{by} [{tq.get('source')}]")
            sides = (("mail_signature", "mail S/MIME signature"),
                     ("attachment_signature", ".p7s signature"))
            for key, label in sides:
                side = sig.get(key)
                if not side:
                    continue
                signer = side.get("signer") or {}
                who = f"{signer.get('name')} {signer.get('personal_code') or ''}".strip()
                over = f" over {side['over']}" if side.get("over") else ""
                p(f"  {label}{over}: {', '.join(side['codes']) or 'ok'}"
                  f" ({who or 'signer unknown'})")
                for note in side.get("notes", []):
                    p(f"    - {note}")
            container = sig.get("container")
            if container:
                p(f"  container {container['name']}: form {container.get('form')}; "
                  f"files {', '.join(container.get('files', []))}")
            show_signed_file(sig.get("signed_file"), p)
        show_pec(verdicts.get("pec"), p)
        if verdicts.get("csr"):
            csr = verdicts["csr"]
            p(f"  csr: {', '.join(csr['codes']) or 'ok'}; CN={csr.get('common_name')} "
              f"key={csr.get('key_type')}")

        show_steering(s, app, p)
        if verdicts.get("form_error"):
            p(f"  form: {verdicts['form_error']}")
        if app.passed:
            p(f"  passed: {', '.join(app.passed)}")
        outcome = {k: v for k, v in (app.extra or {}).items()
                   if k not in ("undeliverable", "csr_history", "refused")}
        if outcome:
            p("outcome:")
            for k, v in outcome.items():
                p(f"  {k}: {v}")
        certs = s.scalars(select(IssuedCertificateRow).where(
            IssuedCertificateRow.application_id == app.id)).all()
        if certs:
            p("certificates:")
            for c in certs:
                status = f"revoked {c.revoked_at:%Y-%m-%d} ({c.revocation_reason})" if c.revoked_at else "valid"
                p(f"  serial {c.serial_hex}  {c.subject}  until {c.not_after:%Y-%m-%d}  {status}")
                for n in s.scalars(select(CertificateNotice).where(
                        CertificateNotice.certificate_id == c.id).order_by(CertificateNotice.id)):
                    p(f"    expiry notice ({n.threshold_days} days) to {n.recipient} "
                      f"queued {n.queued_at:%Y-%m-%d %H:%M}")
        p("history:")
        for t in app.transitions:
            p(f"  {t.at:%Y-%m-%d %H:%M:%S}  {t.from_state or '-':>22} -> {t.to_state:<22} "
              f"by {t.actor}: {t.reason}")
        p("mails:")
        outbox = {o.message_id: o for o in s.scalars(
            select(Outbox).where(Outbox.application_id == app.id))}
        for link in app.links:
            extra = ""
            o = outbox.get(link.message_id)
            if o is not None:
                kinds = ", ".join(str(r.get("kind")) for r in o.pec_receipts or [])
                extra = f" [{o.status}]" + (f" [PEC: {kinds}; {o.pec_status}]" if kinds else "")
            p(f"  {link.at:%Y-%m-%d %H:%M:%S} {link.direction:>3} {link.message_id}  {link.summary}{extra}")
            if o is not None and link.direction == "out":
                # PEC receipts kept on the reply they name: proof of delivery or failure.
                for line in receipt_lines(o):
                    p(f"      {line}")
    return 0


def show_signed_file(signed: dict[str, Any] | None, p: Callable[..., None]) -> None:
    """An Italian signed file's levels and the time-stamps over the whole file."""
    if not signed:
        return
    levels = signed.get("levels", [])
    encodings = ", ".join(str(level.get("encoding")) for level in levels)
    p(f"  {signed.get('name')}: .{signed.get('container')}, {len(levels)} level(s)"
      + (f" ({encodings})" if encodings else "") + f", content {signed.get('content')}"
      + (f", with {signed['tsr']}" if signed.get("tsr") else ""))
    for stamp in signed.get("timestamps", []):
        p(f"    time-stamp over the file ({stamp.get('source')}): "
          f"{', '.join(stamp.get('codes', [])) or 'ok'} at {stamp.get('time')} "
          f"by {stamp.get('tsa') or 'unknown TSA'}")
        for note in stamp.get("notes", []):
            p(f"      - {note}")
    for note in signed.get("notes", []):
        p(f"    - {note}")


def show_pec(pec: dict[str, Any] | None, p: Callable[..., None]) -> None:
    """The PEC transport an application arrived in (evidence, not the applicant's signature)."""
    if not pec:
        return
    daticert = pec.get("daticert") or {}
    p(f"  PEC envelope {pec.get('envelope_message_id')} from {pec.get('envelope_from')}: "
      f"certified sender {daticert.get('sender')}, identifier {daticert.get('identifier')}, "
      f"at {daticert.get('time')}, provider {daticert.get('provider')}")
    transport = pec.get("transport_signature")
    if transport:
        signer = transport.get("signer") or {}
        p(f"    provider's signature (transport evidence): "
          f"{'intact' if transport.get('intact') else 'NOT intact'}, "
          f"{'trusted' if transport.get('trusted') else 'not trusted'} "
          f"({signer.get('name') or 'signer unknown'})")
    for note in pec.get("notes", []):
        p(f"    - {note}")


def show_organisation(s: Session, app: Application, p: Callable[..., None],
                      workflow: WorkflowConfig | None) -> None:
    """The form's organisation name beside the registry's (the certificate's O)."""
    values = app.form_values
    reg_no = field_value(workflow, values, Role.ORG_REG_NO)
    if not reg_no and not field_value(workflow, values, Role.ORG_NAME):
        return
    from signing.names import same_organisation

    record = s.get(Organisation, reg_no) if reg_no else None
    given = field_value(workflow, values, Role.ORG_NAME)
    p("organisation:")
    p(f"  form:       {given or '(empty)'}")
    if record is None:
        p(f"  registry:   {reg_no or '(no number)'} is not in the registry")
        return
    verdict = "same" if same_organisation(given, record.name) else "DIFFERENT"
    p(f"  registry:   {record.name} ({record.reg_no}): {verdict}")


def cmd_registry_import(rt: Runtime, path: Path, *, out: TextIO) -> int:
    from intake.app.registry import import_registry

    added, updated = import_registry(rt.store, path)
    print(f"registry: {added} added, {updated} updated from {path}", file=out)
    return 0


def cmd_forms_render(rt: Runtime, workflow_id: str, output: Path, *, out: TextIO) -> int:
    workflow = rt.config.workflow(workflow_id)
    if workflow is None or not workflow.needs_form:
        known = ", ".join(w.id for w in rt.config.workflows if w.needs_form)
        raise ConfigurationError(f"no form workflow {workflow_id!r}; known: {known}",
                                 key="workflow")
    from intake.forms.render import render_form

    output.write_bytes(render_form(workflow, language=rt.config.daemon.language))
    print(f"wrote {output} ({workflow.title or workflow.id})", file=out)
    return 0


def cmd_staff(rt: Runtime, action: str, reference: str, *, user: str, code: str | None,
              note: str | None, out: TextIO) -> int:
    from intake.app import staff

    message = getattr(staff, action)(rt, reference, user=user, code=code, note=note)
    print(safe(message), file=out)
    if action in ("approve", "reject", "restrict"):
        sent, failed = rt.flush_outbox()
        print(f"outbox: {sent} sent, {failed} failed", file=out)
    return 0


def cmd_purge(rt: Runtime, *, dry_run: bool, out: TextIO) -> int:
    """``pasts purge [--dry-run]``: what the retention purge removes, application by application."""
    items = purge(rt, dry_run=dry_run)
    verb = "would purge" if dry_run else "purged"
    for i in items:
        print(safe(f"{i.reference}  {i.state:<20} closed {i.closed_at:%Y-%m-%d}  "
                   f"{i.raw_mails} raw mail(s) ({i.raw_bytes} bytes), {i.replies} reply "
                   f"copies ({i.reply_bytes} bytes), {i.reports} validation report(s), "
                   f"{i.csrs + i.held_csrs} CSR(s)"), file=out)
    print(f"{verb}: {len(items)} application(s), {sum(i.raw_mails for i in items)} raw mail(s) "
          f"({sum(i.raw_bytes for i in items)} bytes), {sum(i.replies for i in items)} reply "
          f"copies, {sum(i.reports for i in items)} validation report(s), "
          f"{sum(i.csrs + i.held_csrs for i in items)} CSR(s); retention "
          f"{rt.config.daemon.retention_days} days", file=out)
    return 0


def cmd_digest(rt: Runtime, *, send: bool, html: Path | None, out: TextIO) -> int:
    from intake.app.digest import build_digest, queue_digest

    digest = build_digest(rt)
    print(digest.text, file=out)
    if html is not None:
        html.write_text(digest.html, encoding="utf-8")
        print(f"wrote {html}", file=out)
    if send:
        if not rt.config.digest.recipients:
            raise ConfigurationError("no recipients to send the digest to", key="digest.recipients")
        queue_digest(rt, digest)
        sent, failed = rt.flush_outbox()
        print(f"digest queued for {', '.join(rt.config.digest.recipients)}; "
              f"outbox: {sent} sent, {failed} failed", file=out)
    return 0
