"""The `router` command: parse arguments, hand off to one library function, turn errors into
one line and an exit code. Heavy modules are imported inside each handler, never at the top,
so `router submit` costs a Python start and a socket round trip."""

from __future__ import annotations

import os
import sys
TYPE_CHECKING = False   # typing itself costs ~13 ms at start-up; these are annotations only
if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable
    from typing import Any

    Handler = Callable[[argparse.Namespace], int]

from router.errors import RouterError

REMAINDER = "..."          # argparse.REMAINDER, without importing argparse on the submit path
CLIENT_COMMANDS = ("submit", "jobs", "status", "follow", "cancel")
HANDLERS: dict[str, Handler] = {}     # annotations are strings: no import at run time


def command(name: str) -> Callable[[Handler], Handler]:
    def register(fn: Handler) -> Handler:
        HANDLERS[name] = fn
        return fn
    return register


def _store_path(args: argparse.Namespace) -> str:
    from router import paths
    return str(args.store or paths.store())


def _model_path(args: argparse.Namespace) -> str:
    from router import paths
    return str(args.model or paths.model())


def _load_policy(args: argparse.Namespace) -> Any:
    from router import paths
    from router.policy import load_policy
    return load_policy(args.policy or paths.policy() or paths.demo_policy())


def _stdin_lines() -> Any:
    if sys.stdin is None or sys.stdin.closed:
        return iter(())
    return sys.stdin


@command("collect")
def _collect(args: argparse.Namespace) -> int:
    from collectors.sweep import Sweep, SweepOptions, sweep_lines
    from router.errors import UsageError
    from router.store import Store

    if not args.cmd:
        raise UsageError("collect: give a command after --, e.g. router collect -- ./prog")
    if args.jobs < 1 or args.repeat < 1:
        raise UsageError("collect: -j and --repeat must be at least 1")
    opts = SweepOptions(jobs=args.jobs, repeat=args.repeat, timeout=args.timeout,
                        shuffle=args.shuffle, output_dir=args.output, machine=args.machine,
                        speed=args.speed, text=args.text, progress=sys.stderr.isatty())
    lines = sweep_lines(args.sweep) if args.sweep else _stdin_lines()
    with Store(_store_path(args)) as store:
        sweep = Sweep(args.cmd, store, opts, sys.stdout)
        try:
            sweep.run(lines)
        except KeyboardInterrupt:
            print(f"router: interrupted after {sweep.done} runs; all kept", file=sys.stderr)
            return 130
    return 0


def _add_collect(sub: Any) -> None:
    p = sub.add_parser("collect", help="run CMD once per input line and record its CPU",
                       description="Run CMD once per stdin line (words appended, or put in "
                       "place of {}), measure user+system CPU of it and all its descendants, "
                       "and record each run. One JSON line per run on stdout.")
    p.add_argument("-j", "--jobs", type=int, default=1, help="runs in parallel (default 1)")
    p.add_argument("--repeat", type=int, default=1, help="runs per input line")
    p.add_argument("--timeout", type=float, help="seconds before a run's session is killed")
    p.add_argument("--shuffle", action="store_true", help="run the inputs in random order")
    p.add_argument("--sweep", metavar="A:B[:STEP]", help="inputs A..B instead of stdin")
    p.add_argument("--output", metavar="DIR", help="keep each run's output here")
    p.add_argument("--text", action="store_true", help="print 'INPUT COST' lines, not JSON")
    p.add_argument("--machine", default="local", help="machine name recorded with each run")
    p.add_argument("--speed", type=float, default=1.0,
                   help="this machine's speed relative to the reference (cost = CPU x speed)")
    p.add_argument("cmd", nargs=REMAINDER, help="-- CMD ARGS...")


@command("policy")
def _policy(args: argparse.Namespace) -> int:
    from router.policy import load_policy
    policy = load_policy(args.file)
    print(f"{args.file}: ok, {len(policy.machines)} machines, threshold {policy.threshold:g}s, "
          f"over -> {policy.route['over']}, under -> {policy.route['under']}")
    return 0


def _add_policy(sub: Any) -> None:
    p = sub.add_parser("policy", help="check a policy file",
                       description="router policy check FILE: report every error with "
                       "file:line and the key's path.")
    p.add_argument("action", choices=["check"])
    p.add_argument("file")


def _socket_path(args: argparse.Namespace) -> str:
    from router import paths
    return str(getattr(args, "socket", None) or paths.socket())


def _policy_path(args: argparse.Namespace) -> str:
    from router import paths
    return str(args.policy or paths.policy() or paths.demo_policy())


def _since(text: str | None) -> float | None:
    """`24h`, `7d`, `30m`, an ISO date or time, or epoch seconds."""
    if text is None:
        return None
    import time
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    try:
        if text[-1:] in units and text[:-1].replace(".", "", 1).isdigit():
            return time.time() - float(text[:-1]) * units[text[-1]]
        if text.replace(".", "", 1).isdigit():
            return float(text)
        import datetime as dt
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        from router.errors import UsageError
        raise UsageError(f"--since {text!r}: expected 24h, 7d, an ISO date or epoch seconds") \
            from None


@command("report")
def _report(args: argparse.Namespace) -> int:
    import json

    from router.reports import accounting as usage
    from router.store import Store

    policy = _load_policy(args)
    with Store(_store_path(args), readonly=True) as store:
        rows = store.all_runs(since_time=_since(args.since))
    if args.json or args.text:
        from router.reports.report import model_inputs
        s = usage.summary(rows, policy, model_inputs(_model_path(args))[0])
        print(json.dumps(s) if args.json else usage.text(s))
        return 0
    from router.reports.report import write_report
    path = write_report(rows, policy, args.out, _model_path(args))
    print(path)
    return 0


def _add_report(sub: Any) -> None:
    p = sub.add_parser("report", help="HTML report of where jobs went and what they cost",
                       description="One self-contained HTML page (no network needed to view "
                       "it): cost, wall time and turnaround per machine and against every job "
                       "on one machine or each where its measured cost says; jobs, CPU, cost "
                       "and accuracy over time; per-template table; predicted against "
                       "measured cost; outcomes; model versions; retrains; decision latency.")
    p.add_argument("--since", metavar="WHEN", help="only jobs since: 24h, 7d, ISO date")
    p.add_argument("--out", default="report.html", help="output file (default report.html)")
    p.add_argument("--text", action="store_true", help="the summary for a terminal")
    p.add_argument("--json", action="store_true", help="the summary as JSON")


class _Unused:
    """Stands in for the parser of a subcommand this run does not need: building all of them
    costs every command ~15 ms of argparse."""

    def __getattr__(self, name: str) -> Callable[..., _Unused]:
        return lambda *args, **kw: self


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with only the subcommand `only` filled in."""
    import argparse

    common = argparse.ArgumentParser(add_help=False)
    quiet = argparse.SUPPRESS  # so a subcommand's default never hides a flag given before it
    common.add_argument("--store", metavar="PATH", default=quiet,
                        help="history file (default: $ROUTER_STORE or the XDG data dir)")
    common.add_argument("--model", metavar="PATH", default=quiet,
                        help="model file (default: $ROUTER_MODEL or the XDG data dir)")
    common.add_argument("--policy", metavar="FILE", default=quiet,
                        help="policy YAML (default: $ROUTER_POLICY, ~/.config/router/"
                        "policy.yaml, /etc/router/policy.yaml, else the embedded demo)")
    common.add_argument("-v", "--verbose", action="count", default=quiet, help="more logging")
    parser = argparse.ArgumentParser(prog="router", parents=[common],
                                     description="Route jobs to a cheap or a fast machine "
                                     "by a cost model learned from measured runs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    _real_add_parser = sub.add_parser

    def add_parser(name: str, **kw: Any) -> argparse.ArgumentParser | _Unused:
        if only is not None and name != only:
            return _Unused()
        return _real_add_parser(name, parents=[common], **kw)

    sub.add_parser = add_parser  # type: ignore[method-assign]
    from router.cli import jobs as cli_jobs, model as cli_model   # they register their handlers on import
    for adder in ADDERS + cli_model.ADDERS + cli_jobs.ADDERS:
        adder(sub)
    return parser


ADDERS: list[Callable[[Any], None]] = [_add_collect, _add_policy, _add_report]


def _strip_dashdash(args: argparse.Namespace) -> None:
    cmd = getattr(args, "cmd", None)
    if cmd and cmd[0] == "--":
        args.cmd = cmd[1:]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["submit"]:
        from router.client.client import fast_submit
        try:
            code = fast_submit(argv[1:])
        except KeyboardInterrupt:
            return 130
        if code is not None:
            return code
    from router.cli import jobs as cli_jobs, model as cli_model  # noqa: F401 - they register their handlers
    args = build_parser(argv[0] if argv[:1] and argv[0] in HANDLERS else None).parse_args(argv)
    for name, default in (("store", None), ("model", None), ("policy", None), ("verbose", 0)):
        if not hasattr(args, name):
            setattr(args, name, default)
    _strip_dashdash(args)
    if args.command not in CLIENT_COMMANDS:   # the submit path stays free of logging's import
        import logging
        level = logging.WARNING - 10 * args.verbose
        logging.basicConfig(level=int(os.environ.get("ROUTER_LOG_LEVEL", level)),
                            format="router: %(message)s", stream=sys.stderr)
    try:
        return HANDLERS[args.command](args)
    except RouterError as exc:
        print(f"router {args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
