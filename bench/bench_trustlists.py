"""Parsing time of real EU trusted lists with the calls ``pasts trust refresh`` makes.

Reads pyHanko's stored real lists (``/work/shared/corpus/pyhanko/tl/`` or
``--dir``): the EU LOTL (parsed, as the refresh does after its signature
check) and one national list, whose XAdES signature is verified with the
certificates the LOTL gives for it and whose content is then parsed into a
pyHanko TSP registry, as :func:`signing.trust.trustlists.refresh` and
:func:`signing.trust.trustlists.load_snapshot` do. Prints the best of ``--rounds``.
The real LOTL names about 30 national lists; a full refresh is roughly the
national-list time times 30 plus the downloads.

Run: ``.venv/bin/python bench/bench_trustlists.py [--territory BE]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyhanko.sign.validation.qualified import eutl_parse

from signing.trust.trustlists import verify_list

FILES = {"BE": "tsl-be-v6.xml", "EE": "tsl-ee.xml"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dir", type=Path, default=Path("/work/shared/corpus/pyhanko/tl"))
    parser.add_argument("--territory", default="BE", choices=sorted(FILES))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    lotl_xml = (args.dir / "eu-lotl.xml").read_text(encoding="utf-8")
    tl_xml = (args.dir / FILES[args.territory]).read_text(encoding="utf-8")
    best = {"lotl-parse": float("inf"), "tl-verify": float("inf"), "tl-parse": float("inf")}
    services = 0
    for _ in range(args.rounds):
        started = time.perf_counter()
        lotl = eutl_parse.parse_lotl_unsafe(lotl_xml)
        best["lotl-parse"] = min(best["lotl-parse"], time.perf_counter() - started)
        (ref,) = [r for r in lotl.references if r.territory == args.territory]
        started = time.perf_counter()
        try:
            signed = verify_list(tl_xml, list(ref.tlso_certs))
        except ValueError as exc:
            print(f"{args.territory}: {exc}; timing the parse of the unverified list")
            signed = tl_xml
        best["tl-verify"] = min(best["tl-verify"], time.perf_counter() - started)
        started = time.perf_counter()
        registry, _errors = eutl_parse.trust_list_to_registry_unsafe(signed)
        best["tl-parse"] = min(best["tl-parse"], time.perf_counter() - started)
        services = len(list(registry.known_certificate_authorities)) + len(
            list(registry.known_timestamp_authorities))
    print(f"LOTL: {len(lotl_xml)} chars, {len(lotl.references)} pointers")
    print(f"{args.territory}: {len(tl_xml)} chars, {services} CA/TSA authorities in the registry")
    for name, seconds in best.items():
        print(f"{name:<11} {seconds * 1000:8.1f} ms (best of {args.rounds})")
    total = sum(best.values())
    national = best["tl-verify"] + best["tl-parse"]
    print(f"total       {total * 1000:8.1f} ms; LOTL + 30 such national lists: about "
          f"{best['lotl-parse'] + 30 * national:.1f} s of parsing (downloads not counted)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
