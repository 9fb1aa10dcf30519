"""The `router` command: parse arguments, hand off to one library function, turn errors into
one line and an exit code. Heavy modules are imported inside each handler, never at the top,
so `router submit` costs a Python start and a socket round trip."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
TYPE_CHECKING = False   # typing itself costs ~13 ms at start-up; these are annotations only
if TYPE_CHECKING:
    import argparse
    from typing import Any

from router.errors import RouterError

Handler = Callable[["argparse.Namespace"], int]
REMAINDER = "..."          # argparse.REMAINDER, without importing argparse on the submit path
CLIENT_COMMANDS = ("submit", "jobs", "status", "follow", "cancel")
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
    p.add_argument("--output", type=_path, metavar="DIR", help="keep each run's output here")
    p.add_argument("--text", action="store_true", help="print 'INPUT COST' lines, not JSON")
    p.add_argument("--machine", default="local", help="machine name recorded with each run")
    p.add_argument("--speed", type=float, default=1.0,
                   help="this machine's speed relative to the reference (cost = CPU x speed)")
    p.add_argument("cmd", nargs=REMAINDER, help="-- CMD ARGS...")


def _path(text: str) -> Any:
    from pathlib import Path
    return Path(text)


def _threshold_for(args: argparse.Namespace) -> Any:
    """--threshold for every template, else the policy's rules."""
    if args.threshold is not None:
        if args.threshold <= 0:
            from router.errors import UsageError
            raise UsageError("--threshold must be > 0")
        return lambda argv: args.threshold
    return _load_policy(args).threshold_for


def _training_data(args: argparse.Namespace) -> Any:
    from router import dataset
    threshold_for = _threshold_for(args)
    if args.data is not None:
        if args.data == "-":
            return dataset.from_lines(_stdin_lines(), threshold_for, args.cmd or None)
        try:
            with open(args.data) as f:
                return dataset.from_lines(f, threshold_for, args.cmd or None)
        except OSError as exc:
            from router.errors import UsageError
            raise UsageError(f"cannot read {args.data}: {exc.strerror}") from None
    from router.store import Store
    with Store(_store_path(args)) as store:
        data = dataset.from_runs(store.runs(), threshold_for)
    if not len(data):
        from router.errors import DataError
        raise DataError(f"no finished runs in {_store_path(args)}: run `router collect` first")
    return data


@command("train")
def _train(args: argparse.Namespace) -> int:
    import json

    from router import modelfile
    from router.train import TrainOptions, fit

    data = _training_data(args)
    opts = TrainOptions(seed=args.seed, devices=args.devices, progress=sys.stderr.isatty())
    if args.epochs:
        opts.epochs, opts.val_fraction = args.epochs, 0.0
    model = fit(data, opts)
    modelfile.save(model, _model_path(args))
    m = model.meta
    summary = {"model": _model_path(args), "version": model.version, "samples": m["samples"],
               "templates": len(model.templates), "val_accuracy": round(m["val_accuracy"], 4),
               "calibration_error": round(m["calibration_error"], 4), "epochs": m["epochs"],
               "devices": m["devices"]}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{summary['model']}: {model.version}, {m['samples']} samples, "
              f"{len(model.templates)} templates, val accuracy {m['val_accuracy']:.3f}, "
              f"calibration error {m['calibration_error']:.3f}, {m['epochs']} epochs")
    return 0


def _add_train(sub: Any) -> None:
    p = sub.add_parser("train", help="train the cost model from the history or from lines",
                       description="Train the cost model. Labels: each run's cost against its "
                       "template's threshold. --data reads JSON lines (collect's output) or "
                       "'INPUT | LABEL' lines; -- CMD names the program for INPUT lines.")
    p.add_argument("--data", metavar="FILE", help="JSONL or 'INPUT | LABEL' lines; - for stdin")
    p.add_argument("--threshold", type=float, metavar="SECONDS",
                   help="one threshold for every template (instead of the policy's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--devices", type=int, help="devices to shard over (default: all "
                   "accelerators, or one CPU)")
    p.add_argument("--epochs", type=int, help="fixed number of epochs (default: early stopping)")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("cmd", nargs=REMAINDER, help="-- CMD for 'INPUT | LABEL' lines")


def _load_model_or_none(args: argparse.Namespace) -> Any:
    """The model, or None when there is none yet (the policy's no_model rule applies)."""
    from router import modelfile
    path = _model_path(args)
    if args.model is None and not os.path.exists(path):
        return None
    return modelfile.load(path)


@command("predict")
def _predict(args: argparse.Namespace) -> int:
    import json
    import shlex

    from router.errors import UsageError
    from router.policy import route

    if not args.cmd:
        raise UsageError("predict: give a command after --, e.g. router predict -- ./prog 42")
    policy = _load_policy(args)
    if args.threshold is not None:
        policy.threshold, policy.templates = args.threshold, []
    model = _load_model_or_none(args)
    if len(args.cmd) > 1:
        commands = [args.cmd]
    else:
        commands = []
        for lineno, line in enumerate(_stdin_lines(), 1):
            try:
                commands.append(args.cmd + shlex.split(line))
            except ValueError as exc:
                raise UsageError(f"stdin line {lineno}: cannot parse {line!r}: {exc}") from None
    for argv in commands:
        out = route(argv, model, policy)
        if args.json:
            print(json.dumps(out), flush=True)
        else:
            p = "-" if out["p_over"] is None else f"{out['p_over']:.3f}"
            sd = "-" if out["sd"] is None else f"{out['sd']:.3f}"
            print(f"{shlex.join(argv[1:])}\t{p}\t{sd}\t{out['machine']}\t{out['reason']}",
                  flush=True)
    return 0


def _add_predict(sub: Any) -> None:
    p = sub.add_parser("predict", help="probability of being over the threshold, and machine",
                       description="Print, per command, the probability that it costs more "
                       "than its threshold, the ensemble's spread, the machine the policy "
                       "picks and why. With no arguments after CMD, reads argument lines "
                       "from stdin: seq 1 100 | router predict -- ./prog")
    p.add_argument("--json", action="store_true", help="one JSON object per input")
    p.add_argument("--threshold", type=float, metavar="SECONDS",
                   help="one threshold for every template (instead of the policy's)")
    p.add_argument("cmd", nargs=REMAINDER, help="-- CMD [ARGS...]")


@command("serve")
def _serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from router.serve import serve
    serve(_load_policy(args), Path(_model_path(args)), args.port)
    return 0


def _add_serve(sub: Any) -> None:
    p = sub.add_parser("serve", help="answer POST /predict on 127.0.0.1",
                       description="Serve POST /predict with {\"argv\": [...]} on 127.0.0.1; "
                       "replies as predict --json does.")
    p.add_argument("--port", type=int, default=8787)


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


@command("daemon")
def _daemon(args: argparse.Namespace) -> int:
    from router.daemon import main as daemon_main
    return daemon_main(_policy_path(args), store=args.store, model=args.model, sock=args.socket)


@command("submit")
def _submit(args: argparse.Namespace) -> int:
    from router import client
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
                   "appended to CMD) over one connection; exit 123 if any failed")
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

    from router import client
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

    from router import client
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
    from router import client
    return client.follow(_socket_path(args), args.id)


@command("cancel")
def _cancel(args: argparse.Namespace) -> int:
    from router import client
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

    from router import usage
    from router.store import Store

    policy = _load_policy(args)
    with Store(_store_path(args)) as store:
        rows = store.all_runs(since_time=_since(args.since))
    if args.json or args.text:
        s = usage.summary(rows, policy)
        print(json.dumps(s) if args.json else usage.text(s))
        return 0
    from router.report import write_report
    path = write_report(rows, policy, args.out, _model_path(args))
    print(path)
    return 0


def _add_report(sub: Any) -> None:
    p = sub.add_parser("report", help="HTML report of where jobs went and what they cost",
                       description="One self-contained HTML page (no network needed to view "
                       "it): jobs and CPU per machine over time, cost against always-fast, "
                       "always-cheap and the hindsight oracle, routing accuracy, model "
                       "versions, top templates, decision latency.")
    p.add_argument("--since", metavar="WHEN", help="only jobs since: 24h, 7d, ISO date")
    p.add_argument("--out", default="report.html", help="output file (default report.html)")
    p.add_argument("--text", action="store_true", help="the summary for a terminal")
    p.add_argument("--json", action="store_true", help="the summary as JSON")


@command("retrain")
def _retrain(args: argparse.Namespace) -> int:
    import json

    from router import retrain
    from router.train import TrainOptions

    outcome = retrain.run(_store_path(args), _load_policy(args), _model_path(args),
                          full=args.full, opts=TrainOptions(seed=args.seed))
    print(json.dumps(retrain.as_dict(outcome)) if args.json else outcome.line())
    return 0


def _add_retrain(sub: Any) -> None:
    p = sub.add_parser("retrain", help="learn from the jobs finished since the model's watermark",
                       description="Incremental by default: start from the current model and "
                       "train on the runs finished since its watermark plus a fixed-size sample "
                       "of older history. The candidate replaces the model only if it is not "
                       "worse on the most recent jobs by more than the policy's margin; else it "
                       "is kept as MODEL.rejected.")
    p.add_argument("--full", action="store_true", help="retrain from scratch on everything")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="the outcome as JSON")


@command("calibrate")
def _calibrate(args: argparse.Namespace) -> int:
    import json

    from router.calibrate import calibrate
    results = calibrate(_load_policy(args), args.reference, args.repeat)
    if args.json:
        print(json.dumps(results))
        return 0
    print(f"{'MACHINE':<12} {'SPEED':>6} {'CPU_S':>8} {'WALL_S':>8}")
    for name, r in results.items():
        if "error" in r:
            print(f"{name:<12} {'-':>6} {'-':>8} {'-':>8}  {r['error']}")
        else:
            print(f"{name:<12} {r['speed']:>6.3f} {r['cpu_s']:>8.3f} {r['wall_s']:>8.3f}")
    print("# set machines.NAME.speed in the policy to these speeds", file=sys.stderr)
    return 0


def _add_calibrate(sub: Any) -> None:
    p = sub.add_parser("calibrate", help="measure each machine's speed with a reference workload",
                       description="Run a fixed CPU-bound workload on every machine of the "
                       "policy through its backend; print each machine's speed relative to "
                       "the reference machine (CPU seconds there over CPU seconds here) and the "
                       "wall time, where a CPU cap shows.")
    p.add_argument("--reference", metavar="MACHINE", help="default: the policy's under machine")
    p.add_argument("--repeat", type=int, default=3, help="runs per machine (best counts)")
    p.add_argument("--json", action="store_true")


def build_parser() -> argparse.ArgumentParser:
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

    def add_parser(name: str, **kw: Any) -> argparse.ArgumentParser:
        return _real_add_parser(name, parents=[common], **kw)

    sub.add_parser = add_parser  # type: ignore[method-assign]
    for adder in ADDERS:
        adder(sub)
    return parser


ADDERS: list[Callable[[Any], None]] = [_add_collect, _add_train, _add_predict, _add_serve,
                                        _add_policy, _add_daemon, _add_submit, _add_job_commands,
                                        _add_report, _add_retrain, _add_calibrate]


def _strip_dashdash(args: argparse.Namespace) -> None:
    cmd = getattr(args, "cmd", None)
    if cmd and cmd[0] == "--":
        args.cmd = cmd[1:]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["submit"]:
        from router.client import fast_submit
        try:
            code = fast_submit(argv[1:])
        except KeyboardInterrupt:
            return 130
        if code is not None:
            return code
    args = build_parser().parse_args(argv)
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
