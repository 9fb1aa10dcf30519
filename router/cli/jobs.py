"""`router daemon`, `submit`, `jobs`, `status`, `follow`, `cancel`: the dispatcher's commands.
`submit` mostly takes client.fast_submit; this is its full parser (help, errors, --each,
running here by choice when no daemon answers)."""

from __future__ import annotations

import sys

from router.cli.options import (REMAINDER, policy_path, socket_arg, socket_paths, stdin_lines,
                                store_path)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def run_daemon(args: argparse.Namespace) -> int:
    from router.daemon.lifecycle import main as daemon_main
    return daemon_main(policy_path(args), store=args.store, model=args.model, sock=args.socket)


def add_daemon(p: argparse.ArgumentParser) -> None:
    p.add_argument("--socket", metavar="PATH", help="listen here (default: see above)")


def _each_options(args: argparse.Namespace) -> dict[str, object]:
    from router.client.client import time_limit
    from router.client.each import EachOptions, Halt
    from router.errors import UsageError
    if args.retries < 0:
        raise UsageError("--retries must be 0 or more")
    return {"opts": EachOptions(detach=args.detach or args.parsable, dry_run=args.dry_run,
                                as_json=args.json, machine=args.machine, bar=args.bar,
                                joblog=args.joblog, resume_failed=args.resume_failed,
                                retries=args.retries, halt=Halt.parse(args.halt),
                                limit=time_limit(args.time) if args.time else None)}


def run_submit(args: argparse.Namespace) -> int:
    from router.client import client
    from router.errors import DaemonUnavailable, UsageError

    if not args.cmd:
        raise UsageError("give a command after --, e.g. router submit -- ./prog 42")
    socks = socket_paths(args)
    if args.each:
        from router.client.each import submit_each
        return submit_each(socks, args.cmd, stdin_lines(), **_each_options(args))
    try:
        return client.submit(socks, args.cmd, detach=args.detach, dry_run=args.dry_run,
                             as_json=args.json, parsable=args.parsable, wait=args.wait,
                             machine=args.machine, limit=args.time, after=args.after)
    except DaemonUnavailable as exc:
        if not args.here or args.detach or args.parsable or args.machine:
            raise DaemonUnavailable(f"{exc}: start one (`router daemon`), or pass --here to "
                                    f"run this job on this host") from None
        from router import paths
        return client.run_here(args.cmd, policy_path(args), store_path(args),
                               str(args.model or paths.model()))


def add_submit(p: argparse.ArgumentParser) -> None:
    socket_arg(p)
    p.add_argument("-p", "--machine", metavar="NAME",
                   help="run on this machine of the policy, whatever the model says")
    p.add_argument("-t", "--time", metavar="LIMIT", help="kill the job after it has run this "
                   "long, recorded as timed_out (as Slurm: minutes, MM:SS, HH:MM:SS, D-HH:MM); "
                   "default: the machine's time_limit in the policy")
    p.add_argument("--after", metavar="ID[,ID]", help="queue the job once these jobs have "
                   "ended done; if one did not, it never runs (recorded cancelled)")
    p.add_argument("--detach", action="store_true", help="print 'Submitted job N' and return")
    p.add_argument("--parsable", action="store_true",
                   help="print only the job id and return at once (like sbatch --parsable)")
    p.add_argument("--wait", action="store_true",
                   help="with --parsable or --detach: stay attached, exit with the job's code")
    p.add_argument("--dry-run", action="store_true", help="print the decision, run nothing")
    p.add_argument("--json", action="store_true", help="every event as one JSON line on "
                   "stdout; the job's own output goes to stderr")
    p.add_argument("--here", action="store_true", help="when no daemon answers, decide with "
                   "the same policy and run the job on this host (never done unasked)")
    p.add_argument("--no-fallback", action="store_true", help="the default now; kept so "
                   "scripts that pass it keep working")
    each = p.add_argument_group("one job per stdin line (like xargs -L1 / parallel)")
    each.add_argument("--each", action="store_true", help="one job per stdin line (words "
                      "appended to CMD) over one connection, their output interleaved by whole "
                      "lines; exit codes as xargs (123 if any failed)")
    each.add_argument("--bar", action="store_true", help="a progress bar with ETA on stderr")
    each.add_argument("--joblog", metavar="FILE", help="one line per job in GNU parallel's "
                      "--joblog format (appended)")
    each.add_argument("--resume-failed", action="store_true", help="with --joblog: skip the "
                      "lines that succeeded in FILE, run the failed and the new ones")
    each.add_argument("--retries", type=int, default=0, metavar="N",
                      help="run a failed job up to N more times")
    each.add_argument("--halt", metavar="WHEN", help="now,fail=N or soon,fail=N: stop after "
                      "N failures (now: cancel running jobs; soon: let them end)")
    p.add_argument("cmd", nargs=REMAINDER, help="-- CMD ARGS...")


def _call(args: argparse.Namespace, msg: dict[str, object]) -> dict[str, object]:
    from router.client import client
    return client.call(socket_paths(args), msg)


def run_jobs(args: argparse.Namespace) -> int:
    from router.cli import table
    from router.client import protocol
    reply = _call(args, {"op": "jobs", "all": args.all})
    if args.json:
        for job in reply["jobs"]:
            print(protocol.dumps(job))
        return 0
    if not args.noheader:
        print(table.JOB_HEADER)
    for job in reply["jobs"]:
        print(table.job_line(job))
    return 0


def add_jobs(p: argparse.ArgumentParser) -> None:
    socket_arg(p)
    p.add_argument("--all", action="store_true", help="also the last 100 finished jobs")
    p.add_argument("--json", action="store_true", help="one JSON object per job")
    p.add_argument("--noheader", action="store_true", help="no header line")


def run_status(args: argparse.Namespace) -> int:
    from router.cli import table
    from router.client import protocol
    reply = _call(args, {"op": "status", "id": args.id})
    record = reply.get("job") or reply["daemon"]
    if args.json:
        print(protocol.dumps(record))
        return 0
    lines = table.job_record(record) if "job" in reply else table.daemon_record(record)
    sys.stdout.write("".join(f"{key:>14}: {value}\n" for key, value in lines))
    return 0


def _id_arg(p: argparse.ArgumentParser, **kw: object) -> None:
    socket_arg(p)
    p.add_argument("id", type=int, help="job id", **kw)


def add_status(p: argparse.ArgumentParser) -> None:
    _id_arg(p, nargs="?")
    p.add_argument("--json", action="store_true", help="the record as one JSON object")


def run_follow(args: argparse.Namespace) -> int:
    from router.client import client
    return client.follow(socket_paths(args), args.id)


def add_follow(p: argparse.ArgumentParser) -> None:
    _id_arg(p)


def run_cancel(args: argparse.Namespace) -> int:
    _call(args, {"op": "cancel", "id": args.id})
    return 0


def add_cancel(p: argparse.ArgumentParser) -> None:
    _id_arg(p)
