"""Throughput of :meth:`signing.verify.Verifier.verify_pdf` against bare pyHanko.

Generates N signed forms (PAdES B-T, offline demo PKI) and validates them with
the pasts verifier in this process, with the same verifier in a child process
(as the daemon runs it, :mod:`signing.isolation`), and with
``pyhanko.sign.validation.validate_pdf_signature`` in this process, then prints
forms per second for each and the ratios against bare pyHanko.

Run: ``.venv/bin/python bench/bench_verify.py --n 50``
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyhanko.pdf_utils.reader import PdfFileReader  # noqa: E402
from pyhanko.sign.validation import validate_pdf_signature  # noqa: E402

from signing.isolation import IsolatedVerifier  # noqa: E402
from signing.pki import DemoPki, make_form_pdf, sign_pdf  # noqa: E402
from signing.verify import Verifier, VerifierSettings  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=50, help="number of signed forms")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        pki = DemoPki.create(Path(tmp))
        signer = pki.signer("qualified")
        timestamper = pki.timestamper()
        started = time.perf_counter()
        forms = [
            sign_pdf(
                make_form_pdf({"org_name": f"SIA Nr. {i}", "contact_email": f"x{i}@example.lv"}),
                signer,
                timestamper=timestamper,
            )
            for i in range(args.n)
        ]
        print(f"signed {args.n} forms in {time.perf_counter() - started:.2f} s")

        verifier = Verifier(VerifierSettings(trust_roots=pki.trust_roots, allow_fetching=False))

        async def run_pasts() -> int:
            ok = 0
            for data in forms:
                ok += (await verifier.verify_pdf(data)).ok
            return ok

        started = time.perf_counter()
        ok = asyncio.run(run_pasts())
        pasts_seconds = time.perf_counter() - started

        # What the daemon runs: the same verifier in a child process (pickling
        # each form over and each verdict back); the first call starts the child.
        isolated = IsolatedVerifier(verifier.settings, memory_bytes=1536 * 1024 * 1024)
        try:
            started = time.perf_counter()
            isolated.verify_pdf_sync(forms[0])
            print(f"child process start + first form: {time.perf_counter() - started:.2f} s "
                  "(not counted below)")
            started = time.perf_counter()
            isolated_ok = sum(isolated.verify_pdf_sync(data).ok for data in forms)
            isolated_seconds = time.perf_counter() - started
        finally:
            isolated.close()

        started = time.perf_counter()
        bare_ok = 0
        for data in forms:
            reader = PdfFileReader(BytesIO(data), strict=False)
            status = validate_pdf_signature(reader.embedded_signatures[0], pki.validation_context())
            bare_ok += status.bottom_line
        bare_seconds = time.perf_counter() - started

    pasts_rate = args.n / pasts_seconds
    bare_rate = args.n / bare_seconds
    print(f"pasts Verifier.verify_pdf : {pasts_rate:8.1f} forms/s ({ok}/{args.n} ok)")
    print(f"bare validate_pdf_signature: {bare_rate:8.1f} forms/s ({bare_ok}/{args.n} ok)")
    isolated_rate = args.n / isolated_seconds
    print(f"pasts in a child process   : {isolated_rate:8.1f} forms/s ({isolated_ok}/{args.n} ok)")
    print(f"ratio pasts/bare           : {pasts_rate / bare_rate:8.2f}")
    print(f"ratio child-process/bare   : {isolated_rate / bare_rate:8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
