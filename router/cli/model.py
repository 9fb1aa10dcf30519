"""`router train`, `predict`, `serve`, `retrain`, `calibrate`: the cost model's commands."""

from __future__ import annotations

import os
import sys

from router.cli.options import (REMAINDER, load_policy as _load_policy,
                                model_path as _model_path, policy_path as _policy_path,
                                stdin_lines as _stdin_lines, store_path as _store_path)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any


def _threshold_for(args: argparse.Namespace) -> Any:
    """--threshold for every template, else the policy's rules."""
    if args.threshold is not None:
        if args.threshold <= 0:
            from router.errors import UsageError
            raise UsageError("--threshold must be > 0")
        return lambda argv: args.threshold
    return _load_policy(args).threshold_for


def _training_data(args: argparse.Namespace) -> Any:
    from router.learn import dataset
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


def _one_blas_thread() -> None:
    """Training's matrix products are small: a second BLAS thread made them no faster here,
    and when jobs kept the cores busy, BLAS threads spinning for each other made one training
    many times slower. Only before NumPy is imported; OPENBLAS_NUM_THREADS, if set, wins."""
    if "numpy" not in sys.modules:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def run_train(args: argparse.Namespace) -> int:
    import json

    _one_blas_thread()

    from router.learn import modelfile
    from router.learn.train import TrainOptions, fit

    from router.learn import verdict

    data = _training_data(args)
    opts = TrainOptions(seed=args.seed, devices=args.devices, progress=sys.stderr.isatty(),
                        p_cut=verdict.cut(_load_policy(args)), trainer=args.trainer)
    if args.epochs:
        opts.epochs = args.epochs
    model = fit(data, opts)
    modelfile.save(model, _model_path(args))
    m = model.meta
    figures = {k: None if m[k] is None else round(m[k], 4)
               for k in ("val_accuracy", "calibration_error", "coverage_10_90")}
    summary = {"model": _model_path(args), "version": model.version, "samples": m["samples"],
               "templates": len(model.templates), **figures, "val_samples": m["val_samples"],
               "epochs": m["epochs"], "trainer": m["trainer"], "devices": m["devices"]}
    if args.json:
        print(json.dumps(summary))
        return 0
    if m["val_accuracy"] is None:
        val = "no held-out figures (fewer than 20 distinct inputs)"
    else:
        cover = m["coverage_10_90"]
        val = (f"on {m['val_samples']} held-out runs: accuracy {m['val_accuracy']:.3f}, "
               f"calibration error {m['calibration_error']:.3f} at the threshold, 10-90% cost "
               f"interval covers {'-' if cover is None else f'{cover:.0%}'} (goal 80%)")
    print(f"{summary['model']}: {model.version}, {m['samples']} samples, "
          f"{len(model.templates)} templates, {m['epochs']} epochs; {val}")
    return 0


def add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", metavar="FILE", help="JSONL or 'INPUT | LABEL' lines; - for stdin")
    p.add_argument("--threshold", type=float, metavar="SECONDS",
                   help="one threshold for every template (instead of the policy's)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--devices", type=int, help="devices to shard over (default: all "
                   "accelerators, or one CPU)")
    p.add_argument("--epochs", type=int,
                   help="fixed number of epochs (default: by the history's size)")
    p.add_argument("--trainer", choices=("auto", "numpy", "jax"), default="auto",
                   metavar="NAME", help="auto (JAX on accelerators or with --devices, NumPy "
                   "on the CPU), numpy, jax")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("cmd", nargs=REMAINDER, help="-- CMD: the program of 'INPUT | LABEL' lines")


def _load_model_or_none(args: argparse.Namespace) -> Any:
    """The model, or None when there is none yet (the policy's no_model rule applies)."""
    from router.learn import modelfile
    path = _model_path(args)
    if args.model is None and not os.path.exists(path):
        return None
    return modelfile.load(path)


def run_predict(args: argparse.Namespace) -> int:
    import json
    import shlex

    from router.errors import UsageError
    from router.policy import route

    if not args.cmd:
        raise UsageError("give a command after --, e.g. router predict -- ./prog 42")
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
        out["cost_p50"], out["cost_p90"] = _cost_quantiles(model, out)
        if args.json:
            print(json.dumps(out), flush=True)
            continue
        cells = [f"{v:.3f}" if v is not None else "-" for v in (out["p_over"], out["sd"])]
        cells += [f"{v:.4g}" if v is not None else "-" for v in (out["cost_p50"], out["cost_p90"])]
        print("\t".join([shlex.join(argv[1:]), *cells, out["machine"], out["reason"]]),
              flush=True)
    return 0


def _cost_quantiles(model: Any, out: dict[str, Any]) -> tuple[float | None, float | None]:
    """The predicted median and 90th percentile cost (reference CPU seconds), where the model
    knows the template and its features."""
    t, f = out["template"], out["features"]
    if model is None or t not in model.index or len(f) != model.n_features[model.index[t]]:
        return None, None
    pred = model.predict(t, f, out["threshold"])
    return round(pred.quantile(0.5), 6), round(pred.quantile(0.9), 6)


def add_predict(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="one JSON object per input")
    p.add_argument("--threshold", type=float, metavar="SECONDS",
                   help="one threshold for every template (instead of the policy's)")
    p.add_argument("cmd", nargs=REMAINDER, help="-- CMD [ARGS...]")


def run_serve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from router.errors import UsageError
    from router.reports.serve import serve
    policy = _load_policy(args)
    try:
        serve(policy, Path(_model_path(args)), args.port)
    except OSError as exc:
        raise UsageError(f"127.0.0.1:{args.port}: {exc.strerror}: pick another --port") \
            from None
    return 0


def add_serve(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=8787)


def run_retrain(args: argparse.Namespace) -> int:
    import json

    _one_blas_thread()

    from router.learn import retrain
    from router.learn.train import TrainOptions

    from router.learn import verdict

    policy = _load_policy(args)
    outcome = retrain.run(_store_path(args), policy, _model_path(args), full=args.full,
                          opts=TrainOptions(seed=args.seed, p_cut=verdict.cut(policy)))
    print(json.dumps(retrain.as_dict(outcome)) if args.json else outcome.line())
    return 0


def add_retrain(p: argparse.ArgumentParser) -> None:
    p.add_argument("--full", action="store_true", help="retrain from scratch on everything")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", action="store_true", help="the outcome as JSON")


def run_calibrate(args: argparse.Namespace) -> int:
    import json

    from router import paths
    from router.reports.calibrate import calibrate, write_speeds
    from router.errors import UsageError

    path = _policy_path(args)
    if args.write and os.path.realpath(path) == os.path.realpath(paths.demo_policy()):
        raise UsageError("--write: give --policy FILE (the embedded demo is read-only)")
    results = calibrate(_load_policy(args), args.reference, args.repeat)
    if args.json:
        print(json.dumps(results))
    else:
        print(f"{'MACHINE':<12} {'SPEED':>6} {'CPU_S':>8} {'WALL_S':>8}")
        for name, r in results.items():
            if "error" in r:
                print(f"{name:<12} {'-':>6} {'-':>8} {'-':>8}  {r['error']}")
            else:
                print(f"{name:<12} {r['speed']:>6.3f} {r['cpu_s']:>8.3f} {r['wall_s']:>8.3f}")
    if args.write:
        write_speeds(path, {n: r["speed"] for n, r in results.items() if "speed" in r})
        print(f"# speeds written to {path}; `systemctl reload router` applies them",
              file=sys.stderr)
    return 0


def add_calibrate(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reference", metavar="MACHINE", help="default: the policy's under machine")
    p.add_argument("--repeat", type=int, default=3, help="runs per machine (best counts)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--write", action="store_true",
                   help="set each machine's speed in the policy file (comments kept)")

