"""The `router` command: parse arguments, hand off to the command's module, turn errors into
one line and an exit code. Commands are listed in router.cli.commands; only the module of the
command being run is imported, so `router submit` costs a Python start and a socket round
trip (its fast path does not even build a parser)."""

from __future__ import annotations

import os
import sys
TYPE_CHECKING = False   # typing itself costs ~13 ms at start-up; these are annotations only
if TYPE_CHECKING:
    import argparse
    from typing import Any

from router.errors import RouterError

EXIT_ROUTER = RouterError.exit_code
CLIENT_COMMANDS = ("submit", "jobs", "status", "follow", "cancel")


def _common_options() -> argparse.ArgumentParser:
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
    return common


def _parser_class() -> type[argparse.ArgumentParser]:
    import argparse

    class Parser(argparse.ArgumentParser):
        """Usage errors in one line and router's own exit code, not argparse's 2 (which
        a job returns often)."""

        def error(self, message: str) -> None:   # type: ignore[override]
            self.exit(EXIT_ROUTER, f"{self.prog}: {message} (see {self.prog} --help)\n")

    return Parser


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or with only the subcommand `only` filled in (building every
    subcommand's arguments costs each run ~15 ms of argparse and the imports of every
    command module)."""
    import importlib

    from router import __version__
    from router.cli.commands import COMMANDS
    common = _common_options()
    parser = _parser_class()(prog="router", parents=[common],
                             description="Route jobs to a cheap or a fast machine by a cost "
                             "model learned from measured runs.")
    parser.add_argument("--version", action="version", version=f"router {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, cmd in COMMANDS.items():
        if only is not None and name != only:
            sub.add_parser(name, help=cmd.help, add_help=False)
            continue
        p = sub.add_parser(name, parents=[common], help=cmd.help, description=cmd.description)
        getattr(importlib.import_module(cmd.module), f"add_{name}")(p)
    return parser


def handler(name: str) -> Any:
    import importlib

    from router.cli.commands import COMMANDS
    return getattr(importlib.import_module(COMMANDS[name].module), f"run_{name}")


def _strip_dashdash(args: argparse.Namespace) -> None:
    cmd = getattr(args, "cmd", None)
    if cmd and cmd[0] == "--":
        args.cmd = cmd[1:]


def _parse(argv: list[str]) -> argparse.Namespace | None:
    from router.cli.commands import COMMANDS
    only = argv[0] if argv[:1] and argv[0] in COMMANDS else None
    parser = build_parser(only or "")
    if not argv:
        parser.print_help()
        return None
    if only is None and not any(a in COMMANDS for a in argv):
        parser.parse_args(argv)          # --version, --help, or a one-line error
        parser.error("give a command")
    args = (parser if only else build_parser()).parse_args(argv)
    for name, default in (("store", None), ("model", None), ("policy", None), ("verbose", 0)):
        if not hasattr(args, name):
            setattr(args, name, default)
    _strip_dashdash(args)
    return args


def _logging(command: str, verbose: int) -> None:
    import logging
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=int(os.environ.get("ROUTER_LOG_LEVEL", level)),
                        format=f"router {command}: %(message)s", stream=sys.stderr)


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
    args = _parse(argv)
    if args is None:
        return 0
    if args.command not in CLIENT_COMMANDS:   # the submit path stays free of logging's import
        _logging(args.command, args.verbose)
    try:
        return int(handler(args.command)(args))
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
