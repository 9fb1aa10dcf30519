"""`router collect`, `report`, `log`: the commands that write or read the history file."""

from __future__ import annotations

import sys

from router.cli.options import (REMAINDER, existing_store, load_policy, model_path, since,
                                stdin_lines, store_path)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any


def run_collect(args: argparse.Namespace) -> int:
    from collectors.sweep import Sweep, SweepOptions, sweep_lines
    from router.errors import UsageError

    if not args.cmd:
        raise UsageError("give a command after --, e.g. router collect -- ./prog")
    if args.jobs < 1 or args.repeat < 1:
        raise UsageError("-j and --repeat must be at least 1")
    opts = SweepOptions(jobs=args.jobs, repeat=args.repeat, timeout=args.timeout,
                        shuffle=args.shuffle, output_dir=args.output, machine=args.machine,
                        speed=args.speed, text=args.text, progress=sys.stderr.isatty())
    lines = sweep_lines(args.sweep) if args.sweep else stdin_lines()
    with _writable(store_path(args)) as store:
        sweep = Sweep(args.cmd, store, opts, sys.stdout)
        try:
            sweep.run(lines)
        except KeyboardInterrupt:
            print(f"router collect: interrupted: {sweep.done} runs recorded, {sweep.killed} "
                  f"unfinished runs killed (not recorded)", file=sys.stderr)
            return 128 + sweep.stopped_by
    if sweep.failed:
        print(f"router collect: {sweep.failed} of {sweep.done} runs failed or timed out "
              f"(recorded as such)", file=sys.stderr)
        return 1
    return 0


def _writable(path: str) -> Any:
    """The store, refused now (not after the first runs were measured) when this user may not
    write it; when it is a history of someone else's (a daemon's), the line says how runs get
    in there."""
    import os

    from router.errors import StoreError
    from router.store import Store
    store = None
    try:
        store = Store(path)
        store.check_writable()
        return store
    except StoreError as exc:
        if store is not None:
            store.close()
        directory = os.path.dirname(os.path.abspath(path))
        if os.access(directory, os.W_OK) and (not os.path.exists(path)
                                              or os.access(path, os.W_OK)):
            raise
        raise StoreError(f"{exc}: a daemon's history takes runs only as its jobs, e.g. "
                         f"router submit --each -- CMD") from None


def add_collect(p: argparse.ArgumentParser) -> None:
    p.add_argument("-j", "--jobs", type=int, default=1, help="runs in parallel (default 1)")
    p.add_argument("--repeat", type=int, default=1, help="runs per input line")
    p.add_argument("--timeout", type=float, help="seconds before a run's session is killed")
    p.add_argument("--shuffle", action="store_true", help="run the inputs in random order")
    p.add_argument("--sweep", metavar="A:B[:STEP]", help="inputs A..B instead of stdin")
    p.add_argument("--output", metavar="DIR", help="keep each run's output here")
    p.add_argument("--text", action="store_true", help="print 'INPUT COST' lines, not JSON "
                   "(a failed run's line ends with its state and exit)")
    p.add_argument("--machine", default="local", help="machine name recorded with each run")
    p.add_argument("--speed", type=float, default=1.0,
                   help="this machine's speed relative to the reference (cost = CPU x speed)")
    p.add_argument("cmd", nargs=REMAINDER, help="-- CMD ARGS...")


def run_report(args: argparse.Namespace) -> int:
    import json

    from router.reports import accounting as usage
    from router.store import Store

    policy = load_policy(args)
    with Store(existing_store(args), readonly=True) as store:
        rows = store.all_runs(since_time=since(args.since))
    if args.json or args.text:
        from router.reports.report import model_inputs
        s = usage.summary(rows, policy, model_inputs(model_path(args))[0])
        print(json.dumps(s) if args.json else usage.text(s))
        return 0
    from router.reports.report import write_report
    print(write_report(rows, policy, args.out, model_path(args)))
    return 0


def add_report(p: argparse.ArgumentParser) -> None:
    p.add_argument("--since", metavar="WHEN", help="only jobs since: 24h, 7d, ISO date")
    p.add_argument("--out", default="report.html", help="output file (default report.html); "
                   "its directory must exist")
    p.add_argument("--text", action="store_true", help="the summary for a terminal")
    p.add_argument("--json", action="store_true", help="the summary as JSON")


def _wait(r: dict[str, Any]) -> float | None:
    """Queue wait: from submission to start (the end less the run's wall time)."""
    if r.get("ended") is None or r.get("wall_s") is None or r.get("time") is None:
        return None
    return max(0.0, r["ended"] - r["wall_s"] - r["time"])


def _fields() -> dict[str, tuple[int, Any, Any]]:
    """-o name -> (width, the raw value for --json, its text)."""
    import shlex

    from router.cli import table
    f3 = lambda v: "-" if v is None else f"{v:.3f}"   # noqa: E731
    return {
        "id": (8, lambda r: r["id"], lambda r: str(r["id"])),
        "user": (10, lambda r: r.get("user"), lambda r: r.get("user") or "-"),
        "state": (9, table.state, table.state),
        "exit": (8, lambda r: r.get("exit") and table.exit_code(r["exit"]), table.exit_text),
        "machine": (10, lambda r: r.get("machine"), lambda r: r.get("machine") or "-"),
        "submitted": (19, lambda r: r.get("time"), lambda r: table.clock(r.get("time"))),
        "wait": (8, _wait, lambda r: table.duration(_wait(r))),
        "wall": (8, lambda r: r.get("wall_s"), lambda r: table.duration(r.get("wall_s"))),
        "cpu": (8, table.cpu, lambda r: table.duration(table.cpu(r))),
        "maxrss": (8, lambda r: r.get("max_rss_kb"), lambda r: table.rss(r.get("max_rss_kb"))),
        "p": (5, lambda r: r.get("p_over"), lambda r: f3(r.get("p_over"))[:4]),
        "threshold": (9, lambda r: r.get("threshold"), lambda r: f3(r.get("threshold"))),
        "cost": (9, lambda r: r.get("cost"), lambda r: f3(r.get("cost"))),
        "source": (7, lambda r: r.get("source"), lambda r: r.get("source") or "-"),
        "reason": (24, lambda r: r.get("reason"), lambda r: r.get("reason") or "-"),
        "template": (0, lambda r: r.get("template"), lambda r: r.get("template") or "-"),
        "command": (0, lambda r: r.get("argv"), lambda r: shlex.join(r.get("argv") or [])),
    }


DEFAULT_FIELDS = "id,user,state,exit,machine,submitted,wait,wall,cpu,maxrss,p,cost,reason," \
                 "template"


def _selected(rows: list[dict[str, Any]], args: argparse.Namespace) -> list[dict[str, Any]]:
    from router.cli import table
    users = set(args.user.split(",")) if args.user else None
    states = set(args.state.split(",")) if args.state else None
    machines = set(args.machine.split(",")) if args.machine else None
    return [r for r in rows
            if (args.source == "all" or r.get("source") == args.source)
            and (users is None or r.get("user") in users)
            and (states is None or table.state(r) in states)
            and (machines is None or r.get("machine") in machines)]


def run_log(args: argparse.Namespace) -> int:
    from router.client import protocol
    from router.errors import UsageError
    from router.store import Store

    fields = _fields()
    names = [n.strip() for n in args.format.split(",") if n.strip()]
    unknown = [n for n in names if n not in fields]
    if unknown or not names:
        raise UsageError(f"-o {args.format!r}: unknown field {', '.join(unknown) or '(none)'}; "
                         f"known: {', '.join(fields)}")
    with Store(existing_store(args)) as store:
        rows = _selected(store.all_runs(since_time=since(args.since)), args)
    if args.json:
        for r in rows:
            print(protocol.dumps({n: fields[n][1](r) for n in names}))
        return 0

    def line(cells: list[str]) -> str:
        return " ".join(c.ljust(fields[n][0]) if fields[n][0] else c
                        for n, c in zip(names, cells)).rstrip()
    if not args.noheader:
        print(line([n.upper() for n in names]))
    for r in rows:
        print(line([fields[n][2](r) for n in names]))
    return 0


def add_log(p: argparse.ArgumentParser) -> None:
    p.add_argument("--user", metavar="NAME[,NAME]", help="only these users' jobs")
    p.add_argument("--since", metavar="WHEN", help="submitted since: 24h, 7d, ISO date")
    p.add_argument("--state", metavar="STATE[,STATE]", help="done, failed, timed_out, "
                   "cancelled, lost, queued, running")
    p.add_argument("--machine", metavar="NAME[,NAME]", help="only jobs that ran there")
    p.add_argument("--source", choices=["job", "collect", "all"], default="job",
                   help="submitted jobs (default), collected runs, or both")
    p.add_argument("-o", "--format", metavar="FIELDS", default=DEFAULT_FIELDS,
                   help=f"comma-separated fields (default {DEFAULT_FIELDS}; also "
                   "threshold, source, command)")
    p.add_argument("--json", action="store_true", help="one JSON object per job, raw values")
    p.add_argument("--noheader", action="store_true", help="no header line")
