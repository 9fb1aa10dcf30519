"""The policy: which machines exist, the cost threshold, and the decision rule.

The schema lives here once, with its defaults. Validation walks the YAML node tree, so every
error names the file, the line and the key's path; unknown keys are errors. `decide()` is the
one function from (template, features, model, policy, and for the objective rule the machines'
expected waits) to a machine and a short reason.
"""

from __future__ import annotations

import fnmatch
import grp
import pwd
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from router import duration, objective
from router.errors import PolicyError
from router.objective import CostDistribution

BACKENDS = ("local", "ssh", "slurm")
RULES = ("threshold", "objective")

# key: (type, default); a dict value is a nested section; ("map", schema) a name -> section map
MACHINE = {
    "backend": (str, "local"), "price": (float, 1.0), "speed": (float, 1.0), "slots": (int, 1),
    "fallback": (str, None), "start_latency": (float, 0.0), "options": (dict, {}),
    "time_limit": ("duration", None),
}
SCHEMA: dict[str, Any] = {
    "version": (int, 1),
    "machines": ("map", MACHINE),
    "threshold": (float, 1.0),
    "templates": ("list", {"match": (str, None), "threshold": (float, None),
                           "value_of_time": (float, None)}),
    "route": {
        "over": (str, None), "under": (str, None), "no_model": (str, None),
        "unknown_template": (str, None), "uncertain": (str, None), "max_sd": (float, 0.25),
        "p_over": (float, 0.5), "rule": (str, "threshold"), "value_of_time": (float, 0.0),
    },
    "access": {"users": (list, []), "groups": (list, [])},
    "daemon": {
        "socket": (str, None), "socket_group": (str, None), "socket_mode": (int, 0o660),
        "store": (str, None), "model": (str, None), "metrics_port": (int, None),
        "metrics_address": (str, "127.0.0.1"), "metrics_templates": (int, 20),
        "drain_timeout": (float, 30.0), "model_poll_s": (float, 2.0),
        "watchdog": (bool, True), "spool_days": (float, 7.0), "show_others_jobs": (bool, False),
    },
    "retrain": {
        "margin": (float, 0.02), "holdout": (int, 200), "min_accuracy": (float, 0.8),
        "drift_window": (int, 50), "lock": (str, None),
    },
}


@dataclass
class Machine:
    name: str
    backend: str
    price: float
    speed: float
    slots: int
    fallback: str | None
    start_latency: float
    options: dict[str, Any]
    time_limit: float | None = None     # seconds; a submit without --time gets it


@dataclass
class Decision:
    """Where a job goes and why; the reason is short and stable enough to count in metrics."""

    machine: str
    reason: str
    p_over: float | None = None
    sd: float | None = None
    threshold: float | None = None
    kind: str = "over"   # over | under | no_model | unknown_template | uncertain | objective
    cost: float | None = None                  # the objective rule's: expected cost, ref. CPU s
    waits: dict[str, float] | None = None      # expected wait per machine it weighed, s
    dist: CostDistribution | None = None


@dataclass
class Policy:
    path: str
    machines: dict[str, Machine]
    threshold: float
    templates: list[dict[str, Any]]
    route: dict[str, Any]
    access: dict[str, list[str]]
    daemon: dict[str, Any]
    retrain: dict[str, Any]
    raw: dict[str, Any] = field(default_factory=dict)

    def threshold_for(self, argv: list[str]) -> float:
        """The first template rule that matches the command line and sets a threshold, else
        the global one."""
        return self._template_value(argv, "threshold", self.threshold)

    def value_of_time_for(self, argv: list[str]) -> float:
        """Money per second of completion, per template like the threshold."""
        return self._template_value(argv, "value_of_time", self.route["value_of_time"])

    def _template_value(self, argv: list[str], key: str, default: float) -> float:
        line = shlex.join(argv)
        for rule in self.templates:
            if rule[key] is not None and fnmatch.fnmatchcase(line, rule["match"]):
                return float(rule[key])
        return default

    def allows(self, uid: int) -> bool:
        users, groups = self.access["users"], self.access["groups"]
        if not users and not groups:
            return True
        try:
            pw = pwd.getpwuid(uid)
        except KeyError:
            return False
        if pw.pw_name in users or str(uid) in map(str, users):
            return True
        names = {g.gr_name for g in grp.getgrall() if pw.pw_name in g.gr_mem}
        try:
            names.add(grp.getgrgid(pw.pw_gid).gr_name)
        except KeyError:
            pass
        return bool(names & set(groups))


class _Checker:
    """Walks YAML nodes against the schema, collecting every error with its line."""

    def __init__(self, path: str, root: yaml.Node):
        self.path = path
        self.root = root
        self.errors: list[str] = []
        self.nodes: dict[str, yaml.Node] = {}   # key path -> its value, for later checks

    def at(self, path: str) -> yaml.Node:
        """The node of `path`, or of its nearest parent in the file (a key left out)."""
        while path not in self.nodes:
            parent = re.sub(r"(\.[^.\[]*|\[\d+\])$", "", path)
            if parent == path:          # a top-level key: its parent is the file
                return self.root
            path = parent
        return self.nodes[path]

    def error(self, node: yaml.Node, key: str, message: str) -> None:
        line = node.start_mark.line + 1 if node.start_mark else 1   # None: an empty file
        self.errors.append(f"{self.path}:{line}: {key}: {message}")

    def scalar(self, node: yaml.Node, kind: Any, key: str, default: Any) -> Any:
        if kind is dict:
            if not isinstance(node, yaml.MappingNode):
                self.error(node, key, "expected a mapping")
                return default
            return yaml.safe_load(yaml.serialize(node))
        if kind is list:
            if not isinstance(node, yaml.SequenceNode):
                self.error(node, key, "expected a list")
                return default
            return [str(n.value) for n in node.value]
        value = yaml.safe_load(yaml.serialize(node)) if isinstance(node, yaml.ScalarNode) else node
        if value is None:
            return None
        if kind == "duration":
            return self.duration(node, key, value)
        ok = {float: (int, float), int: (int,), str: (str,), bool: (bool,)}[kind]
        if isinstance(value, bool) and kind is not bool or not isinstance(value, ok):
            self.error(node, key, f"expected {kind.__name__}, got {value!r}")
            return default
        return kind(value)

    def duration(self, node: yaml.Node, key: str, value: Any) -> float | None:
        """Seconds, or a string in Slurm's --time spellings (`30`, `1:30:00`, `2-0`)."""
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value)
        try:
            if isinstance(value, str):
                return duration.seconds(value)
            raise ValueError(f"expected seconds or {duration.SPELLINGS}")
        except ValueError as exc:
            self.error(node, key, f"{value!r}: {exc}")
            return None

    def section(self, node: yaml.Node, schema: dict[str, Any], prefix: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if not isinstance(node, yaml.MappingNode):
            self.error(node, prefix or "(top)", "expected a mapping")
            node = yaml.MappingNode("tag:yaml.org,2002:map", [])
        seen = {}
        for knode, vnode in node.value:
            key = str(knode.value)
            path = f"{prefix}.{key}" if prefix else key
            if key not in schema:
                self.error(knode, path, f"unknown key (known: {', '.join(schema)})")
                continue
            seen[key] = vnode
            self.nodes[path] = vnode
            spec = schema[key]
            if isinstance(spec, dict):
                out[key] = self.section(vnode, spec, path)
            elif spec[0] == "map":
                out[key] = self.named(vnode, spec[1], path)
            elif spec[0] == "list":
                items = vnode.value if isinstance(vnode, yaml.SequenceNode) else []
                if not isinstance(vnode, yaml.SequenceNode):
                    self.error(vnode, path, "expected a list")
                self.nodes.update((f"{path}[{n}]", i) for n, i in enumerate(items))
                out[key] = [self.section(i, spec[1], f"{path}[{n}]") for n, i in enumerate(items)]
            else:
                out[key] = self.scalar(vnode, spec[0], path, spec[1])
        for key, spec in schema.items():
            if key not in seen:
                out[key] = (self.section(yaml.MappingNode("tag:yaml.org,2002:map", []), spec, key)
                            if isinstance(spec, dict) else [] if spec[0] in ("map", "list")
                            else spec[1])
        return out

    def named(self, node: yaml.Node, schema: dict[str, Any], prefix: str) -> dict[str, Any]:
        if not isinstance(node, yaml.MappingNode):
            self.error(node, prefix, "expected a mapping of names")
            return {}
        self.nodes.update((f"{prefix}.{k.value}", v) for k, v in node.value)
        return {str(k.value): (k, self.section(v, schema, f"{prefix}.{k.value}"))
                for k, v in node.value}


def _check_meaning(c: _Checker, raw: dict[str, Any]) -> None:
    """Checks across keys: machines named in route exist, numbers are in range. Each error
    points at the key's line, or at its section's where the key was left out."""
    def error(path: str, message: str) -> None:
        c.error(c.at(path), path, message)

    machines = {name: m for name, (_, m) in raw["machines"].items()}
    if not machines:
        error("machines", "at least one machine is required")
    for name, (_, m) in raw["machines"].items():
        where = f"machines.{name}"
        if m["backend"] not in BACKENDS:
            error(f"{where}.backend", f"unknown backend {m['backend']!r} "
                  f"(known: {', '.join(BACKENDS)})")
        for key in ("price", "speed"):
            if m[key] is None or m[key] <= 0:
                error(f"{where}.{key}", "must be > 0")
        if m["slots"] is None or m["slots"] < 1:
            error(f"{where}.slots", "must be >= 1")
        if m["fallback"] is not None and m["fallback"] not in machines:
            error(f"{where}.fallback", f"no machine named {m['fallback']!r}")
        if m["start_latency"] is None or m["start_latency"] < 0:
            error(f"{where}.start_latency", "must be >= 0")
        if raw["route"]["rule"] == "objective" and f"{where}.speed" not in c.nodes:
            error(f"{where}.speed", "the objective rule needs every machine's speed "
                  "(`router calibrate --write` measures it)")
    for key in ("over", "under", "no_model", "unknown_template", "uncertain"):
        value = raw["route"][key]
        if value is not None and value not in machines:
            error(f"route.{key}", f"no machine named {value!r}")
    if raw["route"]["rule"] not in RULES:
        error("route.rule", f"expected one of {', '.join(RULES)}")
    for n, rule in enumerate(raw["templates"]):
        if not rule["match"] or rule["threshold"] is None and rule["value_of_time"] is None:
            error(f"templates[{n}]", "needs match and a threshold or a value_of_time")
        if rule["value_of_time"] is not None and rule["value_of_time"] < 0:
            error(f"templates[{n}].value_of_time", "must be >= 0 (money per second)")
    if raw["route"]["value_of_time"] is None or raw["route"]["value_of_time"] < 0:
        error("route.value_of_time", "must be >= 0 (money per second)")
    if raw["threshold"] is None or raw["threshold"] <= 0:
        error("threshold", "must be > 0")


def _defaults(raw: dict[str, Any], machines: dict[str, Machine]) -> None:
    """Route targets default to the cheapest and the fastest machine."""
    if not machines:
        return
    cheapest = min(machines.values(), key=lambda m: (m.price, -m.speed)).name
    fastest = max(machines.values(), key=lambda m: (m.speed, -m.price)).name
    route = raw["route"]
    route["under"] = route["under"] or cheapest
    route["over"] = route["over"] or fastest
    for key in ("no_model", "unknown_template"):
        route[key] = route[key] or route["under"]
    route["uncertain"] = route["uncertain"] or route["over"]


def parse_policy(text: str, path: str = "<policy>") -> Policy:
    """Validate a policy text; every error at once, each with file:line and key path."""
    try:
        root = yaml.compose(text) or yaml.MappingNode("tag:yaml.org,2002:map", [])
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark else ""
        raise PolicyError(f"{path}{line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    c = _Checker(path, root)
    raw = c.section(root, SCHEMA, "")
    if not isinstance(raw["machines"], dict):
        raw["machines"] = {}
    _check_meaning(c, raw)
    if c.errors:
        raise PolicyError("\n".join(c.errors))
    machines = {name: Machine(name=name, **m) for name, (_, m) in raw["machines"].items()}
    _defaults(raw, machines)
    return Policy(path, machines, raw["threshold"], raw["templates"], raw["route"],
                  raw["access"], raw["daemon"], raw["retrain"], raw)


def load_policy(path: str | Path) -> Policy:
    try:
        text = Path(path).read_bytes().decode()
    except OSError as exc:
        raise PolicyError(f"cannot read policy {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        line = exc.object.count(b"\n", 0, exc.start) + 1
        raise PolicyError(f"{path}:{line}: not UTF-8 text (byte {exc.start})") from None
    return parse_policy(text, str(path))


def decide(template: str, features: tuple[float, ...] | list[float], argv: list[str],
           model: Any, policy: Policy, waits: dict[str, float] | None = None,
           down: set[str] | frozenset[str] = frozenset()) -> Decision:
    """The routing rule. `model` is a ModelFile or None; no JAX is needed here. `waits` and
    `down` are the daemon's live view of its machines, for the objective rule."""
    route = policy.route
    threshold = policy.threshold_for(argv)
    if model is None:
        return Decision(route["no_model"], "no model", threshold=threshold, kind="no_model")
    if model.threshold(template) is None:
        return Decision(route["unknown_template"], "no model for template", threshold=threshold,
                        kind="unknown_template")
    if len(features) != model.n_features[model.index[template]]:
        return Decision(route["unknown_template"], "model for other features",
                        threshold=threshold, kind="unknown_template")
    pred = model.predict(template, features, threshold)   # a cost distribution: any threshold
    dist = CostDistribution.of(pred)
    p, sd = pred.p_over, pred.sd
    if sd > route["max_sd"]:
        return Decision(route["uncertain"], f"uncertain: sd {sd:.2f}", p, sd, threshold,
                        "uncertain")
    if route["rule"] == "objective" and dist is not None:
        return _objective(dist, p, sd, threshold, argv, policy, waits or {}, down)
    why = "no cost distribution (retrain): " if route["rule"] == "objective" else ""
    if p >= route["p_over"]:
        return Decision(route["over"], f"{why}model p={p:.2f} >= {route['p_over']:.2f}", p, sd,
                        threshold)
    return Decision(route["under"], f"{why}model p={p:.2f} < {route['p_over']:.2f}", p, sd,
                    threshold, "under")


def _objective(dist: CostDistribution, p: float, sd: float, threshold: float, argv: list[str],
               policy: Policy, waits: dict[str, float], down: set[str] | frozenset[str]
               ) -> Decision:
    """Least expected money + value_of_time x completion over the machines that are up."""
    candidates = [m for m in policy.machines.values() if m.name not in down] \
        or list(policy.machines.values())
    cost = dist.mean()
    best, ranked = objective.choose(cost, candidates, waits, policy.value_of_time_for(argv))
    return Decision(best.machine, objective.reason(ranked), p, sd, threshold, "objective",
                    cost=cost, waits={e.machine: round(e.wait, 6) for e in ranked}, dist=dist)


def route(argv: list[str], model: Any, policy: Policy, cwd: str | None = None) -> dict[str, Any]:
    """Shape and decide one command: what `predict --json`, `serve` and `--dry-run` print."""
    from router.features import shape

    sh = shape(argv, cwd)
    d = decide(sh.template, sh.features, argv, model, policy)
    return {"argv": list(argv), "template": sh.template, "features": list(sh.features),
            "p_over": d.p_over, "sd": d.sd, "machine": d.machine, "reason": d.reason,
            "threshold": d.threshold, "predicted_cost": d.cost,
            "model_version": model.version if model else None}
