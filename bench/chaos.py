"""Chaos: the faults of tests/faults/ (kill -9 of the daemon and of the spawner, SIGHUP with
bad policies, a client that stops reading, the store's disk filling up and failing read-only:
those as root with loop devices, else left out and named), N rounds (default 20, `--rounds`)
each at a random moment of a mixed load, against one real daemon. A summary line per round; last
line JSON with jobs_lost, jobs_duplicated, orphans, hangs, crashes (the goal: all 0)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "faults"))
import disk  # noqa: E402
from harness import FAULTS, NEEDS_DISK, Chaos, Tally  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--jobs", type=int, default=12, help="jobs per round")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    total = Tally()
    why_not = disk.why_not()
    faults = [f for f in FAULTS if why_not is None or f not in NEEDS_DISK]
    if why_not:
        print(f"left out {sorted(NEEDS_DISK)}: {why_not}", flush=True)
    with tempfile.TemporaryDirectory(prefix="router-chaos-") as tmp:
        ext4 = disk.Ext4Disk(Path(tmp)) if why_not is None else None
        chaos = Chaos(Path(tmp), seed=args.seed, disk=ext4)
        chaos.daemon.start()
        try:
            for n in range(args.rounds):
                fault = chaos.rng.choice(faults)
                tally = chaos.run_round(fault, args.jobs)
                print(f"round {n + 1} {fault}: {tally.line()}", flush=True)
                total.add(tally)
        finally:
            total.add(chaos.close())
            if ext4 is not None:
                ext4.remove()
    print(f"total: {total.line()}")
    print(json.dumps({"rounds": args.rounds, "faults": faults, "jobs_submitted": total.submitted,
                      "jobs_recorded": total.recorded, "jobs_lost": total.lost,
                      "jobs_duplicated": total.duplicated, "unfinished": total.unfinished,
                      "ended_unseen": total.ended_unseen, "orphans": total.orphans,
                      "hangs": total.hangs, "crashes": total.crashes}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
