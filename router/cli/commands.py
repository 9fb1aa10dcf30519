"""Every `router` command in one table: its name, the module that holds it, its one-line help
and its description. A command module defines `add_NAME(parser)` for its arguments and
`run_NAME(args) -> int` for its work; router.cli.main imports only the module of the command
being run, so a command costs the imports it needs and no more, and no module imports main."""

from __future__ import annotations

from collections import namedtuple

Command = namedtuple("Command", ["module", "help", "description"])

_JOBS, _MODEL, _HISTORY = "router.cli.jobs", "router.cli.model", "router.cli.history"

COMMANDS: dict[str, Command] = {
    "daemon": Command(
        _JOBS, "run the dispatcher daemon (systemd: Type=notify)",
        "Accept jobs on a unix socket, route them per the policy, run and record them. "
        "SIGHUP reloads policy and model; SIGTERM drains. Listens on --socket, else "
        "$ROUTER_SOCKET, $RUNTIME_DIRECTORY/router.sock, $XDG_RUNTIME_DIR/router.sock, "
        "/run/router/router.sock (as root), else the data dir's router.sock."),
    "submit": Command(
        _JOBS, "run a job where the policy sends it (like srun; sbatch with --parsable)",
        "Submit CMD to the daemon. Streams its output and exits with its exit code (128+N if "
        "killed by signal N), like srun. Exit 125: router itself failed (no daemon, refused, "
        "bad arguments); 126: CMD is not executable; 127: CMD not found. With --each, exit as "
        "xargs does: 123 if any job exited 1-125, 124 if one exited 255, 125 if one was "
        "killed by a signal, 126/127 as above."),
    "jobs": Command(
        _JOBS, "list queued and running jobs (like squeue)",
        "Queued and running jobs: id, user, state, machine, the model's p, when submitted, "
        "how long it ran, the command. --all adds the last 100 finished jobs. You see your "
        "own jobs (root sees all) unless the policy's daemon.show_others_jobs is true."),
    "status": Command(
        _JOBS, "one job's record, or the daemon's (like scontrol show job)",
        "One job's record: state, exit, machine and why, CPU, wall time, cost. With no id, "
        "the daemon's: model, queues, counters, recent accuracy per template."),
    "follow": Command(
        _JOBS, "a job's output, live (like tail -f)",
        "Print a job's output so far, then live until it ends; exit with its exit code."),
    "cancel": Command(
        _JOBS, "cancel a job (its owner or root; like scancel)",
        "Cancel a queued or running job: its process group gets SIGTERM, then SIGKILL."),
    "log": Command(
        _HISTORY, "finished jobs from the history (like sacct)",
        "The history of jobs: id, user, template, machine, reason, state, exit, CPU, wall, "
        "queue wait, max RSS, predicted and actual cost. Filters combine (AND)."),
    "collect": Command(
        _HISTORY, "run CMD once per input line and record its CPU",
        "Run CMD once per stdin line (words appended, or put in place of {}), measure user+"
        "system CPU of it and all its descendants, and record each run. One JSON line per run "
        "on stdout. Exits 1 (and says how many) when runs failed or timed out. A history this "
        "user may not write (a daemon's) is refused before anything runs: a daemon's history "
        "takes runs as its jobs (router submit --each)."),
    "report": Command(
        _HISTORY, "HTML report of where jobs went and what they cost",
        "One self-contained HTML page (no network needed to view it): cost, wall time and "
        "turnaround per machine and against every job on one machine or each where its "
        "measured cost says; jobs, CPU, cost and accuracy over time; per-template table; "
        "predicted against measured cost; outcomes; model versions; retrains; decision "
        "latency."),
    "policy": Command(
        "router.cli.policy", "check a policy file",
        "router policy check FILE: report every error with file:line and the key's path."),
    "train": Command(
        _MODEL, "train the cost model from the history or from lines",
        "Train the cost model: the distribution of each run's cost, from measured costs (and, "
        "censored, from timed-out runs and 'INPUT | LABEL' lines, whose label says over or "
        "under the threshold). --data reads JSON lines (collect's output) or 'INPUT | LABEL' "
        "lines, which need -- CMD: the program INPUT is arguments of. Prints the held-out "
        "accuracy, the calibration error at the threshold and the coverage of the predicted "
        "10-90% cost interval."),
    "predict": Command(
        _MODEL, "predicted cost, probability of being over the threshold, and machine",
        "Print, per command: the probability that it costs more than its threshold (the "
        "policy's, at decision time: one model serves every threshold), the ensemble's spread "
        "of it, the predicted median and 90th percentile cost in reference CPU seconds, the "
        "machine the policy picks and why. --json adds cost_p50 and cost_p90. With no "
        "arguments after CMD, reads argument lines from stdin: seq 1 100 | router predict -- "
        "./prog"),
    "serve": Command(
        _MODEL, "answer POST /predict on 127.0.0.1",
        "Serve POST /predict with {\"argv\": [...]} on 127.0.0.1; replies as predict --json "
        "does."),
    "retrain": Command(
        _MODEL, "learn from the jobs finished since the model's watermark",
        "Incremental by default: start from the current model and train on the runs finished "
        "since its watermark plus a fixed-size sample of older history. The candidate replaces "
        "the model only if it is not worse on the most recent jobs by more than the policy's "
        "margin; else it is kept as MODEL.rejected."),
    "calibrate": Command(
        _MODEL, "measure each machine's speed with a reference workload",
        "Run a fixed CPU-bound workload on every machine of the policy through its backend; "
        "print each machine's speed relative to the reference machine (CPU seconds there over "
        "CPU seconds here) and the wall time, where a CPU cap shows."),
}
