"""Write the golden ``.eml`` corpus and its expected parses.

Run from the repository root to regenerate (the S/MIME and ``.p7s``
signatures use a fresh key each time, so those files change; everything
else is byte-for-byte reproducible)::

    .venv/bin/python tests/messages/make_corpus.py

Each ``NAME.eml`` gets a ``NAME.json`` holding what ``parse_message`` must
return. The expectations are written here by hand, next to the message they
describe; only hashes of the bytes put into a message are computed.
Messages imitate what real clients send (Outlook, Thunderbird, Gmail, Apple
Mail), with CRLF line ends as IMAP delivers them. ``malformed/`` holds
broken input that must parse with defects and never raise.
"""

from __future__ import annotations

import base64
import hashlib
import json
import quopri
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

HERE = Path(__file__).parent
CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpus"
PDF = (CORPUS / "pyhanko/pdf/minimal-with-simple-form.pdf").read_bytes()
CSR_PEM = (CORPUS / "cryptography-vectors/csr/rsa_sha256.pem").read_bytes()
CSR_DER = (CORPUS / "cryptography-vectors/csr/rsa_sha256.der").read_bytes()
ASICE = (CORPUS / "digidoc4j/latvian_T_signature.asice").read_bytes()
# A second, different PDF: the form with an extra comment line appended.
PDF2 = PDF + b"\n%pasts second form\n"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def b64(data: bytes) -> str:
    text = base64.b64encode(data).decode("ascii")
    return "\n".join(text[i : i + 76] for i in range(0, len(text), 76))


def crlf(text: str) -> bytes:
    return text.replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8")


def att(kind: str, filename: str | None, ctype: str, data: bytes, depth: int = 0) -> dict[str, Any]:
    return {
        "kind": kind,
        "filename": filename,
        "content_type": ctype,
        "sha256": sha(data),
        "depth": depth,
    }


def expect(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "message_id": None,
        "from_addr": "",
        "from_name": "",
        "reply_to": None,
        "subject": "",
        "in_reply_to": None,
        "references": [],
        "auto_submitted": False,
        "bulk": False,
        "bounce": False,
        "attachments": [],
        "form": None,
        "csr": None,
        "p7s": None,
        "asice": None,
        "smime": None,
        "body_contains": [],
        "defects": "none",
    }
    unknown = set(kw) - set(base)
    assert not unknown, unknown
    base.update(kw)
    return base


MESSAGES: dict[str, tuple[bytes, dict[str, Any]]] = {}


def add(name: str, raw: bytes, expected: dict[str, Any]) -> None:
    MESSAGES[name] = (raw, expected)


# --- Outlook: mixed > alternative (plain + html), RFC 2047 names, winmail.dat.
outlook_name = "Pieteikums ražošanas vidē.pdf"
outlook_text = "Labdien!\n\nPielikumā parakstīts pieteikums un CSR.\n\nAr cieņu,\nJānis\n".encode()
TNEF = b'x\x9f>"\x10\x00\x00\x00fake tnef'
outlook_enc = "=?utf-8?B?" + base64.b64encode(outlook_name.encode()).decode() + "?="
add(
    "outlook",
    crlf(f"""From: =?utf-8?Q?J=C4=81nis_B=C4=93rzi=C5=86=C5=A1?= <Janis.Berzins@Iestade.LV>
To: "pasts" <pasts@agency.example>
Subject: =?utf-8?Q?Pieteikums_e-adreses_ra=C5=BEo=C5=A1anas_videi?=
Thread-Topic: Pieteikums e-adreses ražošanas videi
Thread-Index: AdlXyZ0K7n2mQ0PZS0S7E1nAqkFlbQ==
Date: Tue, 14 Mar 2023 09:12:44 +0000
Message-ID: <DB9PR01MB1234ABCD@DB9PR01MB1234.eurprd01.prod.exchangelabs.com>
Accept-Language: lv-LV, en-US
Content-Language: lv-LV
X-MS-Has-Attach: yes
X-MS-TNEF-Correlator:
X-Auto-Response-Suppress: All
Content-Type: multipart/mixed;
\tboundary="_004_DB9PR01MB1234ABCD_"
MIME-Version: 1.0

--_004_DB9PR01MB1234ABCD_
Content-Type: multipart/alternative;
\tboundary="_000_DB9PR01MB1234ABCD_"

--_000_DB9PR01MB1234ABCD_
Content-Type: text/plain; charset="utf-8"
Content-Transfer-Encoding: base64

{b64(outlook_text)}

--_000_DB9PR01MB1234ABCD_
Content-Type: text/html; charset="utf-8"
Content-Transfer-Encoding: quoted-printable

<html><head><style>p {{ margin: 0 }}</style></head><body><p>Labdien!</p><p>Pielikum=
=C4=81 parakst=C4=ABts pieteikums.</p></body></html>

--_000_DB9PR01MB1234ABCD_--

--_004_DB9PR01MB1234ABCD_
Content-Type: application/pdf; name="{outlook_enc}"
Content-Description: {outlook_enc}
Content-Disposition: attachment; filename="{outlook_enc}"; size={len(PDF)};
\tcreation-date="Tue, 14 Mar 2023 09:11:02 GMT"
Content-Transfer-Encoding: base64

{b64(PDF)}

--_004_DB9PR01MB1234ABCD_
Content-Type: application/octet-stream; name="iestade.csr"
Content-Disposition: attachment; filename="iestade.csr"
Content-Transfer-Encoding: base64

{b64(CSR_PEM)}

--_004_DB9PR01MB1234ABCD_
Content-Type: application/ms-tnef; name="winmail.dat"
Content-Disposition: attachment; filename="winmail.dat"
Content-Transfer-Encoding: base64

{b64(TNEF)}

--_004_DB9PR01MB1234ABCD_--
"""),
    expect(
        message_id="<DB9PR01MB1234ABCD@DB9PR01MB1234.eurprd01.prod.exchangelabs.com>",
        from_addr="janis.berzins@iestade.lv",
        from_name="Jānis Bērziņš",
        subject="Pieteikums e-adreses ražošanas videi",
        attachments=[
            att("form", outlook_name, "application/pdf", PDF),
            att("csr", "iestade.csr", "application/octet-stream", CSR_PEM),
            att("other", "winmail.dat", "application/ms-tnef", TNEF),
        ],
        form=outlook_name,
        csr=sha(CSR_PEM),
        body_contains=["Pielikumā parakstīts pieteikums un CSR."],
    ),
)

# --- Thunderbird: RFC 2231 file name with continuations and Latvian letters.
tb_name = "pieteikums_ē-adrese.pdf"
add(
    "thunderbird",
    crlf(f"""Message-ID: <7f3b2a1c-1111-4c2d-9e0f-aabbccddeeff@iestade.lv>
Date: Wed, 15 Mar 2023 14:02:11 +0200
MIME-Version: 1.0
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:102.0) Gecko/20100101
 Thunderbird/102.8.0
Content-Language: lv
To: pasts@agency.example
From: Ilze Kalniņa <ilze.kalnina@iestade.lv>
Reply-To: Atbalsts <IT-Atbalsts@Iestade.lv>
Subject: =?UTF-8?Q?Pieteikums_=C4=93-adresei?=
Content-Type: multipart/mixed; boundary="------------Wb3nG9Xb0HSzXgZq0bZ4sE1k"

This is a multi-part message in MIME format.
--------------Wb3nG9Xb0HSzXgZq0bZ4sE1k
Content-Type: text/plain; charset=UTF-8; format=flowed
Content-Transfer-Encoding: 8bit

Sveiki,

pielikumā pieteikums.

--------------Wb3nG9Xb0HSzXgZq0bZ4sE1k
Content-Type: application/pdf;
 name*0*=UTF-8''%70%69%65%74%65%69%6B%75%6D%73%5F%C4%93;
 name*1*=%2D%61%64%72%65%73%65%2E%70%64%66
Content-Disposition: attachment;
 filename*0*=UTF-8''%70%69%65%74%65%69%6B%75%6D%73%5F%C4%93;
 filename*1*=%2D%61%64%72%65%73%65%2E%70%64%66
Content-Transfer-Encoding: base64

{b64(PDF)}

--------------Wb3nG9Xb0HSzXgZq0bZ4sE1k--
"""),
    expect(
        message_id="<7f3b2a1c-1111-4c2d-9e0f-aabbccddeeff@iestade.lv>",
        from_addr="ilze.kalnina@iestade.lv",
        from_name="Ilze Kalniņa",
        reply_to="it-atbalsts@iestade.lv",
        subject="Pieteikums ē-adresei",
        attachments=[att("form", tb_name, "application/pdf", PDF)],
        form=tb_name,
        body_contains=["pielikumā pieteikums."],
    ),
)

# --- Gmail: mixed > alternative + attachments, RFC 2231 simple filename*.
add(
    "gmail",
    crlf(f"""MIME-Version: 1.0
Date: Thu, 16 Mar 2023 10:20:30 +0100
Message-ID: <CAOr1x2y3z4=abc+DEF@mail.gmail.com>
Subject: Richiesta accesso API
From: Marco Rossi <marco.rossi@gmail.com>
To: pasts@agency.example
Content-Type: multipart/mixed; boundary="000000000000a1b2c3d4e5f60708"

--000000000000a1b2c3d4e5f60708
Content-Type: multipart/alternative; boundary="000000000000a1b2c3d4e5f60706"

--000000000000a1b2c3d4e5f60706
Content-Type: text/plain; charset="UTF-8"
Content-Transfer-Encoding: quoted-printable

Buongiorno,
in allegato il modulo firmato.
Cordiali saluti

--000000000000a1b2c3d4e5f60706
Content-Type: text/html; charset="UTF-8"

<div dir=3D"ltr">Buongiorno,<br>in allegato il modulo firmato.</div>

--000000000000a1b2c3d4e5f60706--
--000000000000a1b2c3d4e5f60708
Content-Type: application/pdf; name="modulo_firmato.pdf"
Content-Disposition: attachment; filename*=UTF-8''modulo%20firmato%20%C3%A0.pdf
Content-Transfer-Encoding: base64
Content-ID: <f_lf9abc0>
X-Attachment-Id: f_lf9abc0

{b64(PDF)}
--000000000000a1b2c3d4e5f60708
Content-Type: application/x-x509-ca-cert; name="richiesta.pem"
Content-Disposition: attachment; filename="richiesta.pem"
Content-Transfer-Encoding: base64

{b64(CSR_PEM)}
--000000000000a1b2c3d4e5f60708--
"""),
    expect(
        message_id="<CAOr1x2y3z4=abc+DEF@mail.gmail.com>",
        from_addr="marco.rossi@gmail.com",
        from_name="Marco Rossi",
        subject="Richiesta accesso API",
        attachments=[
            att("form", "modulo firmato à.pdf", "application/pdf", PDF),
            att("csr", "richiesta.pem", "application/x-x509-ca-cert", CSR_PEM),
        ],
        form="modulo firmato à.pdf",
        csr=sha(CSR_PEM),
        body_contains=["in allegato il modulo firmato."],
    ),
)

# --- Apple Mail: an inline PDF between two text parts.
add(
    "apple_mail",
    crlf(f"""Content-Type: multipart/mixed;
\tboundary="Apple-Mail=_5D6E7F80-1A2B-4C3D-9E8F-001122334455"
Mime-Version: 1.0 (Mac OS X Mail 16.0 \\(3731.400.51.1.1\\))
Subject: Service card
From: Anna Liepa <anna@liepa.lv>
Date: Fri, 17 Mar 2023 16:45:00 +0200
Message-Id: <A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF@liepa.lv>
To: pasts@agency.example
X-Mailer: Apple Mail (2.3731.400.51.1.1)

--Apple-Mail=_5D6E7F80-1A2B-4C3D-9E8F-001122334455
Content-Transfer-Encoding: 7bit
Content-Type: text/plain;
\tcharset=us-ascii

Hello, the card is here:

--Apple-Mail=_5D6E7F80-1A2B-4C3D-9E8F-001122334455
Content-Disposition: inline;
\tfilename=service-card.pdf
Content-Type: application/pdf;
\tx-unix-mode=0644;
\tname="service-card.pdf"
Content-Transfer-Encoding: base64

{b64(PDF)}
--Apple-Mail=_5D6E7F80-1A2B-4C3D-9E8F-001122334455
Content-Transfer-Encoding: 7bit
Content-Type: text/plain;
\tcharset=us-ascii

Best regards, Anna
--Apple-Mail=_5D6E7F80-1A2B-4C3D-9E8F-001122334455--
"""),
    expect(
        message_id="<A1B2C3D4-E5F6-4711-8899-AABBCCDDEEFF@liepa.lv>",
        from_addr="anna@liepa.lv",
        from_name="Anna Liepa",
        subject="Service card",
        attachments=[att("form", "service-card.pdf", "application/pdf", PDF)],
        form="service-card.pdf",
        body_contains=["Hello, the card is here:", "Best regards, Anna"],
    ),
)

# --- A PDF sent as application/octet-stream under a name with no extension.
add(
    "octet_stream_pdf",
    crlf(f"""From: robots@firma.lv
To: pasts@agency.example
Subject: form
Message-ID: <octet-1@firma.lv>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain

See attached.
--b1
Content-Type: application/octet-stream
Content-Disposition: attachment; filename="veidlapa"
Content-Transfer-Encoding: base64

{b64(PDF)}
--b1--
"""),
    expect(
        message_id="<octet-1@firma.lv>",
        from_addr="robots@firma.lv",
        subject="form",
        attachments=[att("form", "veidlapa", "application/octet-stream", PDF)],
        form="veidlapa",
        body_contains=["See attached."],
    ),
)

# --- A DER CSR named .req; an unrelated binary named .der that is no CSR.
add(
    "der_csr",
    crlf(f"""From: "SIA Piemērs" <info@piemers.lv>
To: pasts@agency.example
Subject: API pieteikums
Message-ID: <der-csr-1@piemers.lv>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="xyz"

--xyz
Content-Type: application/pdf; name="api.pdf"
Content-Disposition: attachment; filename="api.pdf"
Content-Transfer-Encoding: base64

{b64(PDF)}
--xyz
Content-Type: application/octet-stream; name="platform.req"
Content-Disposition: attachment; filename="platform.req"
Content-Transfer-Encoding: base64

{b64(CSR_DER)}
--xyz
Content-Type: application/octet-stream; name="random.der"
Content-Disposition: attachment; filename="random.der"
Content-Transfer-Encoding: base64

{b64(bytes(range(64)))}
--xyz--
"""),
    expect(
        message_id="<der-csr-1@piemers.lv>",
        from_addr="info@piemers.lv",
        from_name="SIA Piemērs",
        subject="API pieteikums",
        attachments=[
            att("form", "api.pdf", "application/pdf", PDF),
            att("csr", "platform.req", "application/octet-stream", CSR_DER),
            att("other", "random.der", "application/octet-stream", bytes(range(64))),
        ],
        form="api.pdf",
        csr=sha(CSR_DER),
    ),
)

# --- A CSR pasted into the body (the PEM is rewrapped; its bytes are compared).
pasted = CSR_PEM.decode().replace("\n", "\n> ").rstrip("> ")
csr_lines = CSR_PEM.decode().strip().splitlines()
body_b64 = "".join(csr_lines[1:-1])
normalised_csr = (
    "-----BEGIN CERTIFICATE REQUEST-----\n"
    + "\n".join(body_b64[i : i + 64] for i in range(0, len(body_b64), 64))
    + "\n-----END CERTIFICATE REQUEST-----\n"
).encode()
add(
    "inline_csr",
    crlf(f"""From: Pēteris <peteris@iestade.lv>
To: pasts@agency.example
Subject: CSR
Message-ID: <inline-csr@iestade.lv>
In-Reply-To: <EA-2023-0042@agency.example>
References: <first@iestade.lv>
 <EA-2023-0042@agency.example>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="p"

--p
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Here is my request:

{CSR_PEM.decode()}
Thanks.
--p
Content-Type: application/pdf; name="form.pdf"
Content-Transfer-Encoding: base64

{b64(PDF)}
--p--
"""),
    expect(
        message_id="<inline-csr@iestade.lv>",
        from_addr="peteris@iestade.lv",
        from_name="Pēteris",
        subject="CSR",
        in_reply_to="<EA-2023-0042@agency.example>",
        references=["<first@iestade.lv>", "<EA-2023-0042@agency.example>"],
        attachments=[att("form", "form.pdf", "application/pdf", PDF)],
        form="form.pdf",
        csr=sha(normalised_csr),
        body_contains=["Here is my request:", "Thanks."],
    ),
)
del pasted

# --- Quoted-printable Latvian subject and body; Italian in ISO-8859-1.
lv_body = "Lūdzu, apstipriniet ģimenes ārsta pieteikumu. Paldies! Ķēķis, ļoti, ņemot, žūžot.\n"
add(
    "qp_latvian",
    crlf(f"""From: =?utf-8?q?Zane_=C4=B6irse?= <zane@kirse.lv>
To: pasts@agency.example
Subject: =?utf-8?q?Jaut=C4=81jums_par_=C4=A3ener=C4=93to_atsl=C4=93gu?=
Message-ID: <qp-lv@kirse.lv>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

{quopri.encodestring(lv_body.encode()).decode()}"""),
    expect(
        message_id="<qp-lv@kirse.lv>",
        from_addr="zane@kirse.lv",
        from_name="Zane Ķirse",
        subject="Jautājums par ģenerēto atslēgu",
        body_contains=[
            "Lūdzu, apstipriniet ģimenes ārsta pieteikumu.",
            "Ķēķis, ļoti, ņemot, žūžot.",
        ],
    ),
)
it_body = "Perché la città di Forlì non è più attiva? Così sia.\n"
add(
    "qp_italian",
    crlf(f"""From: Lucia Bianchi <lucia@comune.example.it>
To: pasts@agency.example
Subject: =?ISO-8859-1?Q?Perch=E9_la_citt=E0=3F?=
Message-ID: <qp-it@comune.example.it>
MIME-Version: 1.0
Content-Type: text/plain; charset=ISO-8859-1
Content-Transfer-Encoding: quoted-printable

{quopri.encodestring(it_body.encode("latin-1")).decode()}"""),
    expect(
        message_id="<qp-it@comune.example.it>",
        from_addr="lucia@comune.example.it",
        from_name="Lucia Bianchi",
        subject="Perché la città?",
        body_contains=["Perché la città di Forlì non è più attiva? Così sia."],
    ),
)


# --- S/MIME multipart/signed over a mixed part with the form, and a .p7s.
def _signer() -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Kārlis Ozols")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=3650))
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _detached(data: bytes) -> bytes:
    cert, key = _signer()
    return (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(data)
        .add_signer(cert, key, hashes.SHA256())
        .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature])
    )


signed_part = crlf(f"""Content-Type: multipart/mixed; boundary="inner-mixed"

--inner-mixed
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Parakstīts S/MIME.
--inner-mixed
Content-Type: application/pdf; name="smime-form.pdf"
Content-Disposition: attachment; filename="smime-form.pdf"
Content-Transfer-Encoding: base64

{b64(PDF)}
--inner-mixed--
""")
smime_sig = _detached(signed_part)
add(
    "smime_signed",
    crlf("""From: Kārlis Ozols <karlis@ozols.lv>
To: pasts@agency.example
Subject: Signed
Message-ID: <smime-1@ozols.lv>
MIME-Version: 1.0
Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256;
 boundary="----SIGNED-BOUNDARY"

This is an S/MIME signed message

------SIGNED-BOUNDARY
""")
    + signed_part
    + crlf(f"""
------SIGNED-BOUNDARY
Content-Type: application/pkcs7-signature; name="smime.p7s"
Content-Transfer-Encoding: base64
Content-Disposition: attachment; filename="smime.p7s"

{b64(smime_sig)}

------SIGNED-BOUNDARY--
"""),
    expect(
        message_id="<smime-1@ozols.lv>",
        from_addr="karlis@ozols.lv",
        from_name="Kārlis Ozols",
        subject="Signed",
        attachments=[att("form", "smime-form.pdf", "application/pdf", PDF)],
        form="smime-form.pdf",
        smime={"content": sha(signed_part), "signature": sha(smime_sig)},
        body_contains=["Parakstīts S/MIME."],
    ),
)

p7s = _detached(PDF)
add(
    "p7s_and_asice",
    crlf(f"""From: dokumenti@iestade.lv
To: pasts@agency.example
Subject: eDoc
Message-ID: <edoc@iestade.lv>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="e"

--e
Content-Type: application/octet-stream; name="pieteikums.edoc"
Content-Disposition: attachment; filename="pieteikums.edoc"
Content-Transfer-Encoding: base64

{b64(ASICE)}
--e
Content-Type: application/pdf; name="form.pdf"
Content-Disposition: attachment; filename="form.pdf"
Content-Transfer-Encoding: base64

{b64(PDF)}
--e
Content-Type: application/x-pkcs7-signature; name="form.pdf.p7s"
Content-Disposition: attachment; filename="form.pdf.p7s"
Content-Transfer-Encoding: base64

{b64(p7s)}
--e--
"""),
    expect(
        message_id="<edoc@iestade.lv>",
        from_addr="dokumenti@iestade.lv",
        subject="eDoc",
        attachments=[
            att("asice", "pieteikums.edoc", "application/octet-stream", ASICE),
            att("form", "form.pdf", "application/pdf", PDF),
            att("p7s", "form.pdf.p7s", "application/x-pkcs7-signature", p7s),
        ],
        form="form.pdf",
        p7s="form.pdf.p7s",
        asice="pieteikums.edoc",
    ),
)

# --- Forwarded mail: the forwarded form is used only when the outer has none.
inner = f"""From: Old Sender <old@iestade.lv>
To: pasts@agency.example
Subject: old application
Message-ID: <old@iestade.lv>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="in"

--in
Content-Type: text/plain

Inner body.
--in
Content-Type: application/pdf; name="old.pdf"
Content-Disposition: attachment; filename="old.pdf"
Content-Transfer-Encoding: base64

{b64(PDF)}
--in--
"""
add(
    "forwarded",
    crlf(f"""From: Boss <boss@iestade.lv>
To: pasts@agency.example
Subject: Fwd: old application
Message-ID: <fwd-1@iestade.lv>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="out"

--out
Content-Type: text/plain

Forwarding the application below.
--out
Content-Type: message/rfc822
Content-Disposition: attachment; filename="old application.eml"

{inner}
--out--
"""),
    expect(
        message_id="<fwd-1@iestade.lv>",
        from_addr="boss@iestade.lv",
        from_name="Boss",
        subject="Fwd: old application",
        attachments=[att("form", "old.pdf", "application/pdf", PDF, depth=1)],
        form="old.pdf",
        body_contains=["Forwarding the application below."],
    ),
)
add(
    "forwarded_with_own_form",
    crlf(f"""From: Boss <boss@iestade.lv>
To: pasts@agency.example
Subject: Fwd: old application, new form
Message-ID: <fwd-2@iestade.lv>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="out"

--out
Content-Type: text/plain

The old mail is attached; the new form is the last attachment.
--out
Content-Type: message/rfc822

{inner}
--out
Content-Type: application/pdf; name="new.pdf"
Content-Disposition: attachment; filename="new.pdf"
Content-Transfer-Encoding: base64

{b64(PDF2)}
--out--
"""),
    expect(
        message_id="<fwd-2@iestade.lv>",
        from_addr="boss@iestade.lv",
        from_name="Boss",
        subject="Fwd: old application, new form",
        attachments=[
            att("form", "old.pdf", "application/pdf", PDF, depth=1),
            att("form", "new.pdf", "application/pdf", PDF2),
        ],
        form="new.pdf",
        body_contains=["the new form is the last attachment."],
    ),
)

# --- HTML only: the body is stripped to text; script and style are dropped.
add(
    "html_only",
    crlf("""From: web@portal.lv
To: pasts@agency.example
Subject: HTML
Message-ID: <html@portal.lv>
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8

<html><head><title>T</title><style>.x{color:red}</style></head>
<body><script>alert("no")</script><p>Sveiki &amp; labdien,</p><div>otrā&nbsp;rinda</div></body></html>
"""),
    expect(
        message_id="<html@portal.lv>",
        from_addr="web@portal.lv",
        subject="HTML",
        body_contains=["Sveiki & labdien,", "otrā rinda"],
    ),
)

# --- Mail that must never be answered automatically.
add(
    "auto_reply",
    crlf("""From: Jānis <janis@iestade.lv>
To: pasts@agency.example
Subject: Automatic reply: EA-2023-0001
Message-ID: <auto-1@iestade.lv>
In-Reply-To: <EA-2023-0001@agency.example>
References: <EA-2023-0001@agency.example>
Auto-Submitted: auto-replied
X-Auto-Response-Suppress: All
Content-Type: text/plain; charset=utf-8

Esmu atvaļinājumā.
"""),
    expect(
        message_id="<auto-1@iestade.lv>",
        from_addr="janis@iestade.lv",
        from_name="Jānis",
        subject="Automatic reply: EA-2023-0001",
        in_reply_to="<EA-2023-0001@agency.example>",
        references=["<EA-2023-0001@agency.example>"],
        auto_submitted=True,
        body_contains=["Esmu atvaļinājumā."],
    ),
)
add(
    "oof_bulk",
    crlf("""From: Out Of Office <oof@iestade.lv>
To: pasts@agency.example
Subject: Out of office
Message-ID: <oof-1@iestade.lv>
Precedence: bulk
Content-Type: text/plain

Away until Monday.
"""),
    expect(
        message_id="<oof-1@iestade.lv>",
        from_addr="oof@iestade.lv",
        from_name="Out Of Office",
        subject="Out of office",
        bulk=True,
        body_contains=["Away until Monday."],
    ),
)
add(
    "list_mail",
    crlf("""From: Newsletter <news@lists.example.org>
To: pasts@agency.example
Subject: [news] Weekly digest
Message-ID: <list-1@lists.example.org>
List-Id: News <news.lists.example.org>
List-Unsubscribe: <mailto:news-leave@lists.example.org>
Content-Type: text/plain

Digest.
"""),
    expect(
        message_id="<list-1@lists.example.org>",
        from_addr="news@lists.example.org",
        from_name="Newsletter",
        subject="[news] Weekly digest",
        bulk=True,
        body_contains=["Digest."],
    ),
)
add(
    "dsn_bounce",
    crlf("""Return-Path: <>
From: Mail Delivery System <MAILER-DAEMON@mx.agency.example>
To: pasts@agency.example
Subject: Undelivered Mail Returned to Sender
Message-ID: <20230318100000.ABC@mx.agency.example>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
 boundary="dsn"

--dsn
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

--dsn
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.agency.example

Final-Recipient: rfc822; nobody@iestade.lv
Action: failed
Status: 5.1.1

--dsn
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: pasts@agency.example
To: nobody@iestade.lv
Subject: EA-2023-0001

--dsn--
"""),
    expect(
        message_id="<20230318100000.ABC@mx.agency.example>",
        from_addr="mailer-daemon@mx.agency.example",
        from_name="Mail Delivery System",
        subject="Undelivered Mail Returned to Sender",
        auto_submitted=True,
        bounce=True,
        body_contains=["could not\nbe delivered"],
    ),
)

# --- Malformed input: parsed with defects, never raising.
MALFORMED: dict[str, tuple[bytes, dict[str, Any]]] = {}
MALFORMED["truncated_multipart"] = (
    crlf(f"""From: cut@iestade.lv
Subject: truncated
Message-ID: <cut@iestade.lv>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="never-closed"

--never-closed
Content-Type: text/plain

Body before the cut.
--never-closed
Content-Type: application/pdf; name="cut.pdf"
Content-Transfer-Encoding: base64

{b64(PDF)}
"""),
    expect(
        message_id="<cut@iestade.lv>",
        from_addr="cut@iestade.lv",
        subject="truncated",
        attachments=[att("form", "cut.pdf", "application/pdf", PDF)],
        form="cut.pdf",
        body_contains=["Body before the cut."],
        defects="some",
    ),
)
MALFORMED["bad_base64"] = (
    crlf("""From: b64@iestade.lv
Subject: bad base64
Message-ID: <b64@iestade.lv>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="z"

--z
Content-Type: text/plain

Broken file follows.
--z
Content-Type: application/pdf; name="broken.pdf"
Content-Transfer-Encoding: base64

JVBERi0xLjQK!!!!####$$$$%%%%this is not base64 at all@@@@
JVBERi0x=LjQK=
--z--
"""),
    expect(
        message_id="<b64@iestade.lv>",
        from_addr="b64@iestade.lv",
        subject="bad base64",
        body_contains=["Broken file follows."],
        defects="some",
    ),
)
MALFORMED["header_injection"] = (
    crlf("""From: first@iestade.lv, second@evil.example
To: pasts@agency.example
Subject: =?UTF-8?Q?a=0D=0ABcc:_x@evil?=
Message-ID: <inj@iestade.lv>
Content-Type: text/plain

Hi.
"""),
    expect(
        message_id="<inj@iestade.lv>",
        from_addr="first@iestade.lv",
        subject="a Bcc: x@evil",
        body_contains=["Hi."],
        defects="some",
    ),
)
MALFORMED["no_from"] = (
    crlf("""To: pasts@agency.example
Subject: who am I
Message-ID: <nofrom@nowhere>
Content-Type: text/plain

No sender.
"""),
    expect(
        message_id="<nofrom@nowhere>",
        subject="who am I",
        body_contains=["No sender."],
        defects="some",
    ),
)
MALFORMED["garbage"] = (
    bytes(random.Random(20230318).getrandbits(8) for _ in range(4096)),
    expect(defects="some"),
)
MALFORMED["latin1_headers"] = (
    "From: Niccolò Bianchi <niccolo@comune.example.it>\r\n"
    "To: pasts@agency.example\r\n"
    "Subject: Richiesta città\r\n"
    "Message-ID: <latin1@comune.example.it>\r\n"
    "Content-Type: text/plain; charset=iso-8859-1\r\n"
    "\r\n"
    "Perché no.\r\n".encode("latin-1"),
    expect(
        message_id="<latin1@comune.example.it>",
        from_addr="niccolo@comune.example.it",
        from_name="Niccolò Bianchi",
        subject="Richiesta città",
        body_contains=["Perché no."],
        defects="some",
    ),
)
MALFORMED["empty"] = (b"", expect(defects="some"))
MALFORMED["multipart_without_boundary"] = (
    crlf("""From: nob@iestade.lv
Subject: no boundary
Message-ID: <nob@iestade.lv>
MIME-Version: 1.0
Content-Type: multipart/mixed

--whatever
Content-Type: text/plain

text
--whatever--
"""),
    expect(
        message_id="<nob@iestade.lv>",
        from_addr="nob@iestade.lv",
        subject="no boundary",
        body_contains=["text"],
        defects="some",
    ),
)
MALFORMED["invalid_from"] = (
    crlf("""From: "Nobody" <not an address>
Subject: =?x-unknown?Q?odd_charset?=
Message-ID: <badfrom@iestade.lv>
Date: yesterday-ish
Content-Type: text/plain; charset=x-no-such-charset

Odd.
"""),
    expect(
        message_id="<badfrom@iestade.lv>",
        subject="odd charset",
        body_contains=["Odd."],
        defects="some",
    ),
)


def main() -> None:
    (HERE / "malformed").mkdir(exist_ok=True)
    for folder, table in ((HERE, MESSAGES), (HERE / "malformed", MALFORMED)):
        for name, (raw, expected) in table.items():
            (folder / f"{name}.eml").write_bytes(raw)
            (folder / f"{name}.json").write_text(
                json.dumps(expected, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
            )
    print(f"wrote {len(MESSAGES)} messages and {len(MALFORMED)} malformed ones")


if __name__ == "__main__":
    main()
