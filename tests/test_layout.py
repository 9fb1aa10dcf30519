"""The house limits, checked on the whole tree from the source alone (nothing is imported):
module and function sizes, no import cycle between router's modules (lazy and by-name imports
included), what each room may import, no JAX in the daemon, a stdlib-only submit path, and
tests/ mirroring the rooms. docs/architecture.md describes the same rules."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("router", "collectors")
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 50

# Offenders in main. The lists may only shrink: an entry that no longer offends fails
# test_allowlists_name_only_current_offenders, so whoever fixes it empties it.
ALLOW_LONG_MODULES: set[str] = set()
ALLOW_LONG_FUNCTIONS: set[str] = set()
# Imports that close a cycle today, as (importer, imported): none.
ALLOW_CYCLE_EDGES: set[tuple[str, str]] = set()
# Imports against the rooms' order today (see MAY_IMPORT).
ALLOW_ROOM_EDGES: set[tuple[str, str]] = set()

ALLOW_ROOMS_WITHOUT_TESTS: set[str] = set()

CORE = "core"   # router/errors, atomic, paths, features, policy, store: the modules all rooms share
# What each room may import besides itself (lazy imports included). cli may import anything.
MAY_IMPORT: dict[str, set[str]] = {
    CORE: set(),
    "exec": {CORE},
    "client": {CORE, "exec", "learn"},      # exec and learn only lazily: the no-daemon fallback
    "backends": {CORE, "exec"},
    "learn": {CORE, "exec"},
    "reports": {CORE, "exec", "learn", "backends"},
    "daemon": {CORE, "exec", "learn", "backends", "client", "reports"},
    "collectors": {CORE, "exec"},
}
HEAVY = ("jax", "flax", "optax")
SKIP_DIRS = {".git", ".venv", "__pycache__", "build", "node_modules"}


@dataclass
class Module:
    """One module of router/ or collectors/ and the router modules it imports."""

    name: str
    path: Path
    eager: set[str] = field(default_factory=set)     # at import time
    lazy: set[str] = field(default_factory=set)      # inside functions, or named by a string
    third_party: set[str] = field(default_factory=set)   # top-level names, eager ones only
    third_party_any: set[str] = field(default_factory=set)

    @property
    def imports(self) -> set[str]:
        return self.eager | self.lazy


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def python_files(*tops: str) -> list[Path]:
    """Every .py file under the given top-level directories (the whole tree when none)."""
    starts = [ROOT / t for t in tops] if tops else [ROOT]
    found = []
    for start in starts:
        for path in sorted(start.rglob("*.py")):
            parts = set(path.relative_to(ROOT).parts[:-1])
            if not parts & SKIP_DIRS and not any(p.startswith(".") or p.endswith(".egg-info")
                                                 for p in parts):
                found.append(path)
    return found


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def room(name: str) -> str:
    """The room a module lives in: router/<room>/, collectors, cli (for __main__), or core."""
    parts = name.split(".")
    if parts[0] == "collectors":
        return "collectors"
    if len(parts) > 2 or (ROOT / "router" / parts[-1] / "__init__.py").exists():
        return parts[1]
    return "cli" if parts[-1] == "__main__" else CORE


def _is_type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and isinstance(node.test, ast.Name) \
        and node.test.id == "TYPE_CHECKING"


def _walk(node: ast.AST, lazy: bool = False):
    """Every node with whether it runs only when called; TYPE_CHECKING blocks never run."""
    for child in ast.iter_child_nodes(node):
        if _is_type_checking(child):
            for other in child.orelse:
                yield other, lazy
                yield from _walk(other, lazy)
            continue
        inner = lazy or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        yield child, inner
        yield from _walk(child, inner)


def _targets(node: ast.AST, package: str, known: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            parts = package.split(".")[:len(package.split(".")) - node.level + 1]
            base = ".".join(parts + ([node.module] if node.module else []))
        return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
    if isinstance(node, ast.Constant) and isinstance(node.value, str) \
            and re.fullmatch(r"(router|collectors)(\.\w+)+(:\w+)?", node.value):
        return [node.value.partition(":")[0]]    # a registry entry: imported by name
    return []


@cache
def modules() -> dict[str, Module]:
    paths = python_files(*PACKAGES)
    found = {module_name(p): Module(module_name(p), p) for p in paths}
    for mod in found.values():
        package = mod.name if mod.path.name == "__init__.py" else mod.name.rpartition(".")[0]
        tree = ast.parse(mod.path.read_text(), str(mod.path))
        for node, lazy in _walk(tree):
            is_string = isinstance(node, ast.Constant)
            for target in _targets(node, package, set(found)):
                if target in found and target != mod.name:
                    (mod.lazy if lazy or is_string else mod.eager).add(target)
                elif not is_string and target.split(".")[0] not in PACKAGES and \
                        (not isinstance(node, ast.ImportFrom) or not node.level):
                    top = target.split(".")[0]
                    if top not in sys.stdlib_module_names and top != "__future__":
                        mod.third_party_any.add(top)
                        if not lazy:
                            mod.third_party.add(top)
    return found


def functions(path: Path):
    """(qualified name, lines) of every function and method, nested ones included."""
    def visit(node: ast.AST, prefix: str):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = prefix + child.name
                if not isinstance(child, ast.ClassDef):
                    yield name, child.end_lineno - child.lineno + 1
                yield from visit(child, name + ".")
            else:
                yield from visit(child, prefix)
    yield from visit(ast.parse(path.read_text(), str(path)), "")


def long_modules() -> dict[str, int]:
    lines = {rel(p): len(p.read_text().splitlines()) for p in python_files(*PACKAGES)}
    return {p: n for p, n in lines.items() if n > MAX_MODULE_LINES}


def long_functions() -> dict[str, int]:
    return {f"{rel(p)}:{name}": n for p in python_files() for name, n in functions(p)
            if n > MAX_FUNCTION_LINES}


def graph(skip: set[tuple[str, str]] = frozenset()) -> dict[str, set[str]]:
    return {m.name: {t for t in m.imports if (m.name, t) not in skip}
            for m in modules().values()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while (w := stack.pop()) != v:
                component.append(w)
            component.append(v)
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def reaches(edges: dict[str, set[str]], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        v = todo.pop()
        if v == goal:
            return True
        if v not in seen:
            seen.add(v)
            todo.extend(edges.get(v, ()))
    return False


def closure(start: str, eager_only: bool = False) -> set[str]:
    """Every router module that importing (or, lazily, using) `start` can import."""
    mods, seen, todo = modules(), set(), [start]
    while todo:
        name = todo.pop()
        if name not in seen:
            seen.add(name)
            todo.extend(mods[name].eager if eager_only else mods[name].imports)
    return seen


def room_violations() -> list[str]:
    bad = []
    for mod in modules().values():
        here = room(mod.name)
        if here == "cli":
            continue
        for target in sorted(mod.imports):
            there = room(target)
            if there != here and there not in MAY_IMPORT[here] and \
                    (mod.name, target) not in ALLOW_ROOM_EDGES:
                bad.append(f"{mod.name} ({here}) imports {target} ({there}); {here} may import "
                           f"{sorted(MAY_IMPORT[here]) or 'nothing outside itself'}")
    return bad


def test_no_module_is_over_the_limit():
    over = {p: n for p, n in long_modules().items() if p not in ALLOW_LONG_MODULES}
    assert not over, "\n".join(f"{p}: {n} lines > {MAX_MODULE_LINES}: split it by concept"
                               for p, n in sorted(over.items()))


def test_no_function_is_over_the_limit():
    over = {f: n for f, n in long_functions().items() if f not in ALLOW_LONG_FUNCTIONS}
    assert not over, "\n".join(f"{f}: {n} lines > {MAX_FUNCTION_LINES}"
                               for f, n in sorted(over.items()))


def test_no_import_cycle_lazy_imports_included():
    edges = graph(ALLOW_CYCLE_EDGES)
    found = cycles(edges)
    assert not found, "import cycles (cut one import of each):\n" + "\n".join(
        "  " + ", ".join(f"{a} -> {b}" for a in c for b in sorted(edges[a]) if b in c)
        for c in found)


def test_each_room_imports_only_the_rooms_below_it():
    assert set(MAY_IMPORT) | {"cli"} == {room(m) for m in modules()}, "a room without a rule"
    bad = room_violations()
    assert not bad, "\n".join(bad)


def test_the_daemon_imports_no_jax():
    mods = modules()
    for start in (m for m in mods if room(m) == "daemon"):
        heavy = {f"{m} imports {t}" for m in closure(start) for t in mods[m].third_party_any
                 if t in HEAVY}
        assert not heavy, f"{start} reaches JAX: " + "; ".join(sorted(heavy))


def test_the_submit_path_is_stdlib_only_at_import_time():
    mods = modules()
    reached = closure("router.client.client", eager_only=True)
    assert {room(m) for m in reached} <= {"client", CORE}, sorted(reached)
    heavy = {f"{m} imports {t}" for m in reached for t in mods[m].third_party}
    assert not heavy, "; ".join(sorted(heavy))


# Stdlib modules whose import alone costs a submit milliseconds (measured with -X importtime):
# the submit path speaks through their C halves (_json, _socket) or not at all.
SLOW_STDLIB = ("typing", "json", "socket", "argparse", "pathlib", "subprocess", "dataclasses",
               "enum", "shlex")


def test_the_submit_path_imports_no_slow_stdlib_module():
    code = "import router.cli.main, router.client.client, router.paths"
    r = subprocess.run([sys.executable, "-X", "importtime", "-c", code], cwd=ROOT,
                       capture_output=True, text=True, timeout=60, check=True)
    loaded = {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines() if "|" in line}
    assert not loaded & set(SLOW_STDLIB), sorted(loaded & set(SLOW_STDLIB))


def test_tests_mirror_the_rooms():
    rooms = {p.parent.name for p in (ROOT / "router").glob("*/__init__.py")} | {"collectors"}
    test_dirs = {p.name for p in (ROOT / "tests").iterdir()
                 if p.is_dir() and not p.name.startswith((".", "__"))}
    missing = sorted(rooms - test_dirs - set(ALLOW_ROOMS_WITHOUT_TESTS))
    assert not missing, f"rooms without tests/<room>/: {missing}"
    stray = sorted(test_dirs - rooms - {"integration", "faults"})
    assert not stray, f"tests/ directories that are no room: {stray}"


def test_allowlists_name_only_current_offenders():
    stale = sorted(set(ALLOW_LONG_MODULES) - set(long_modules()))
    stale += sorted(set(ALLOW_LONG_FUNCTIONS) - set(long_functions()))
    stale += sorted(r for r in ALLOW_ROOMS_WITHOUT_TESTS if (ROOT / "tests" / r).is_dir())
    edges = graph()
    stale += [f"{a} -> {b}" for a, b in sorted(ALLOW_CYCLE_EDGES)
              if b not in edges.get(a, ()) or not reaches(edges, b, a)]
    stale += [f"{a} -> {b}" for a, b in sorted(ALLOW_ROOM_EDGES)
              if b not in edges.get(a, ()) or room(b) in MAY_IMPORT[room(a)]]
    assert not stale, "fixed: remove from the allowlists in tests/test_layout.py: " + \
        ", ".join(stale)


def test_the_checker_sees_lazy_and_registered_imports():
    mods = modules()
    assert "router.client.client" in mods["router.cli.main"].lazy     # a function-level import
    assert "router.backends.local" in mods["router.backends"].lazy    # a registry entry
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_room_is_in_the_design_and_the_readme():
    design = (ROOT / "docs" / "architecture.md").read_text()
    readme = (ROOT / "README.md").read_text()
    layout = readme[readme.index("## Layout"):readme.index("## Command reference")]
    rooms = sorted(f"router/{p.parent.name}/" for p in (ROOT / "router").glob("*/__init__.py"))
    for text, where in ((design, "docs/architecture.md"), (layout, "README.md's Layout")):
        missing = [r for r in [*rooms, "collectors/"] if f"`{r}`" not in text]
        assert not missing, f"{where} does not name {missing}"
