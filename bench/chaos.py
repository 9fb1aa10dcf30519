"""Chaos: the faults of tests/faults/ (kill -9 of the daemon and of the spawner, SIGHUP with
bad policies, a client that stops reading), N rounds (default 20, `--rounds`) each at a
random moment of a mixed load, against one real daemon. A summary line per round; last
line JSON with jobs_lost, jobs_duplicated, orphans, hangs, crashes (the goal: all 0)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "faults"))
from harness import FAULTS, Chaos, Tally  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=12, help="jobs per round")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    total = Tally()
    with tempfile.TemporaryDirectory(prefix="router-chaos-") as tmp:
        chaos = Chaos(Path(tmp), seed=args.seed)
        chaos.daemon.start()
        try:
            for n in range(args.rounds):
                fault = chaos.rng.choice(FAULTS)
                tally = chaos.run_round(fault, args.jobs)
                print(f"round {n + 1} {fault}: {tally.line()}", flush=True)
                total.add(tally)
        finally:
            total.add(chaos.close())
    print(f"total: {total.line()}")
    print(json.dumps({"rounds": args.rounds, "jobs_submitted": total.submitted,
                      "jobs_recorded": total.recorded, "jobs_lost": total.lost,
                      "jobs_duplicated": total.duplicated, "unfinished": total.unfinished,
                      "ended_unseen": total.ended_unseen, "orphans": total.orphans,
                      "hangs": total.hangs, "crashes": total.crashes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
