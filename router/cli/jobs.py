"""`router daemon`, `submit`, `jobs`, `status`, `follow`, `cancel`: the dispatcher's commands.
Kept apart from the model's commands; `submit` itself mostly takes client.fast_submit."""

from __future__ import annotations


from router.cli.main import (REMAINDER, command, _policy_path, _socket_path, _stdin_lines,
                        _store_path)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any


@command("daemon")
def _daemon(args: argparse.Namespace) -> int:
    from router.daemon.lifecycle import main as daemon_main
    return daemon_main(_policy_path(args), store=args.store, model=args.model, sock=args.socket)


@command("submit")
def _submit(args: argparse.Namespace) -> int:
    from router.client import client
    from router.errors import DaemonUnavailable, UsageError

    if not args.cmd:
        raise UsageError("submit: give a command after --, e.g. router submit -- ./prog 42")
    sock = _socket_path(args)
    try:
        if args.each:
            return client.submit_each(sock, args.cmd, _stdin_lines(), detach=args.detach,
                                      as_json=args.json)
        return client.submit(sock, args.cmd, detach=args.detach, dry_run=args.dry_run,
                             as_json=args.json, parsable=args.parsable)
    except DaemonUnavailable:
        if args.no_fallback or args.each or args.detach:
            raise
        from router import paths
        return client.run_here(args.cmd, _policy_path(args), _store_path(args),
                               str(args.model or paths.model()))


def _socket_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--socket", metavar="PATH", help="daemon socket (default: $ROUTER_SOCKET, "
                   "$RUNTIME_DIRECTORY or $XDG_RUNTIME_DIR /router.sock)")


def _add_daemon(sub: Any) -> None:
    p = sub.add_parser("daemon", help="run the dispatcher daemon (systemd: Type=notify)",
                       description="Accept jobs on a unix socket, route them per the policy, "
                       "run and record them. SIGHUP reloads policy and model; SIGTERM drains.")
    _socket_arg(p)


def _add_submit(sub: Any) -> None:
    p = sub.add_parser("submit", help="run a job where the policy sends it",
                       description="Submit CMD to the daemon. Streams its output and exits "
                       "with its exit code (128+N if killed by signal N), like srun.")
    _socket_arg(p)
    p.add_argument("--detach", action="store_true", help="print the job id and return")
    p.add_argument("--parsable", action="store_true", help="print only the job id")
    p.add_argument("--dry-run", action="store_true", help="print the decision, run nothing")
    p.add_argument("--each", action="store_true", help="one job per stdin line (words "
                   "appended to CMD) over one connection, their output interleaved by whole "
                   "lines; exit 123 if any failed")
    p.add_argument("--json", action="store_true", help="decisions and results as JSON")
    p.add_argument("--no-fallback", action="store_true",
                   help="fail when no daemon answers instead of running here")
    p.add_argument("cmd", nargs=REMAINDER, help="-- CMD ARGS...")


def _job_line(job: dict[str, Any]) -> str:
    import shlex
    p = "-" if job.get("p_over") is None else f"{job['p_over']:.2f}"
    return (f"{job['id']:>8} {job['user']:<10} {job['state']:<9} {job['machine']:<10} "
            f"{p:>5} {shlex.join(job['argv'])}")


@command("jobs")
def _jobs(args: argparse.Namespace) -> int:
    import json

    from router.client import client
    reply = client.call(_socket_path(args), {"op": "jobs", "all": args.all})
    if args.json:
        for job in reply["jobs"]:
            print(json.dumps(job))
        return 0
    if not args.noheader:
        print(f"{'JOBID':>8} {'USER':<10} {'STATE':<9} {'MACHINE':<10} {'P':>5} COMMAND")
    for job in reply["jobs"]:
        print(_job_line(job))
    return 0


@command("status")
def _status(args: argparse.Namespace) -> int:
    import json

    from router.client import client
    reply = client.call(_socket_path(args), {"op": "status", "id": args.id})
    job = reply.get("job") or reply["daemon"]
    if args.json:
        print(json.dumps(job))
    else:
        for key, value in job.items():
            print(f"{key:>14}: {value}")
    return 0


@command("follow")
def _follow(args: argparse.Namespace) -> int:
    from router.client import client
    return client.follow(_socket_path(args), args.id)


@command("cancel")
def _cancel(args: argparse.Namespace) -> int:
    from router.client import client
    client.call(_socket_path(args), {"op": "cancel", "id": args.id})
    return 0


def _add_job_commands(sub: Any) -> None:
    p = sub.add_parser("jobs", help="list queued and running jobs (like squeue)")
    _socket_arg(p)
    p.add_argument("--all", action="store_true", help="also the last 100 finished jobs")
    p.add_argument("--json", action="store_true", help="one JSON object per job")
    p.add_argument("--noheader", action="store_true", help="no header line")
    for name, text in (("status", "one job's record; with no id, the daemon's: model, "
                                   "queues, recent accuracy per template"),
                       ("follow", "a job's output, live"),
                       ("cancel", "cancel a job (its owner or root)")):
        q = sub.add_parser(name, help=text, description=text)
        _socket_arg(q)
        q.add_argument("id", type=int, help="job id", **({"nargs": "?"} if name == "status"
                                                         else {}))
        if name == "status":
            q.add_argument("--json", action="store_true")


ADDERS = [_add_daemon, _add_submit, _add_job_commands]
