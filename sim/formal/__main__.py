"""``python -m sim.formal [proof ...] [--list] [--jobs N]``: run the bounded proofs and report.

Prints one line per proof as it finishes, writes ``build/formal/summary.json`` and exits
non-zero when a proof does not pass (a proof marked ``xfail`` may fail).
"""

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from .proofs import PROOFS, get_proof
from .runner import DEFAULT_BUILD_DIR, write_summary


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sim.formal",
                                     description="Bounded proofs of the stream contract.")
    parser.add_argument("proofs", nargs="*", metavar="PROOF", help="proofs to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the proofs and exit")
    parser.add_argument("--jobs", "-j", type=int, default=min(2, os.cpu_count() or 1),
                        help="proofs run at once (default: %(default)s)")
    parser.add_argument("--build-dir", type=Path, default=DEFAULT_BUILD_DIR,
                        help="work folder (default: build/formal in the project)")
    args = parser.parse_args(argv)

    if args.list:
        for proof in PROOFS.values():
            note = f"  [xfail: {proof.xfail}]" if proof.xfail else ""
            print(f"{proof.name:17} depth {proof.depth:2}  {proof.description}{note}")
        return 0
    try:
        proofs = [get_proof(name) for name in args.proofs] or list(PROOFS.values())
    except ValueError as exc:
        parser.error(str(exc))

    start = time.monotonic()
    results = {}
    unexpected = 0
    # each proof is a separate SymbiYosys process tree, so threads are enough to overlap them
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(proof.run, build_dir=args.build_dir): proof for proof in proofs}
        for future in as_completed(futures):
            proof = futures[future]
            result = results[proof.name] = future.result()
            tasks = " ".join(f"{task}={status}" for task, status in result.tasks.items())
            note = f"  (xfail: {proof.xfail})" if proof.xfail else ""
            print(f"{result.status:5} {proof.name:17} {result.seconds:6.1f} s  depth "
                  f"{proof.depth:2}  {tasks}{note}", flush=True)
            if not result.passed:
                for line in result.detail:
                    print(f"      {line}")
                print(f"      work folder: {result.workdir}", flush=True)
            unexpected += not (result.passed or (proof.xfail and result.status == "FAIL"))

    ordered = [results[proof.name] for proof in proofs]
    summary = args.build_dir / "summary.json"
    write_summary(ordered, summary)
    passed = sum(result.passed for result in ordered)
    print(f"{passed}/{len(ordered)} proofs passed in {time.monotonic() - start:.1f} s;"
          f" summary in {summary}")
    return 1 if unexpected else 0


if __name__ == "__main__":
    sys.exit(main())
