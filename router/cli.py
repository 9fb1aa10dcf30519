"""The `router` command: parse arguments, hand off to one library function, turn errors into
one line and an exit code. Heavy modules are imported inside each handler, never at the top,
so `router submit` costs a Python start and a socket round trip."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from router.errors import RouterError

Handler = Callable[[argparse.Namespace], int]
HANDLERS: dict[str, Handler] = {}


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
            logging.getLogger("router").warning("interrupted after %d runs; all kept", sweep.done)
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
    p.add_argument("--output", type=_path, metavar="DIR", help="keep each run's output here")
    p.add_argument("--text", action="store_true", help="print 'INPUT COST' lines, not JSON")
    p.add_argument("--machine", default="local", help="machine name recorded with each run")
    p.add_argument("--speed", type=float, default=1.0,
                   help="this machine's speed relative to the reference (cost = CPU x speed)")
    p.add_argument("cmd", nargs=argparse.REMAINDER, help="-- CMD ARGS...")


def _path(text: str) -> Any:
    from pathlib import Path
    return Path(text)


def build_parser() -> argparse.ArgumentParser:
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

    def add_parser(name: str, **kw: Any) -> argparse.ArgumentParser:
        return _real_add_parser(name, parents=[common], **kw)

    sub.add_parser = add_parser  # type: ignore[method-assign]
    for adder in ADDERS:
        adder(sub)
    return parser


ADDERS: list[Callable[[Any], None]] = [_add_collect]


def _strip_dashdash(args: argparse.Namespace) -> None:
    cmd = getattr(args, "cmd", None)
    if cmd and cmd[0] == "--":
        args.cmd = cmd[1:]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    for name, default in (("store", None), ("model", None), ("policy", None), ("verbose", 0)):
        if not hasattr(args, name):
            setattr(args, name, default)
    _strip_dashdash(args)
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
