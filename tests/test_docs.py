"""Docs that cannot drift: the README's command reference is the CLI's --help, and every key
of the policy schema is documented in configs/policy.yaml."""

from pathlib import Path

import yaml

import docs
from router.policy import SCHEMA, load_policy

ROOT = Path(__file__).resolve().parent.parent


def test_readme_command_reference_matches_help():
    text = docs.README.read_text()
    assert docs.rendered(text) == text, "README is stale: run `make docs`"


def test_readme_opens_with_the_two_commands():
    head = docs.README.read_text()[:1500]
    assert "make demo" in head and "make test" in head


def _keys(schema: dict, prefix: str = "") -> list[str]:
    out = []
    for key, spec in schema.items():
        path = f"{prefix}{key}"
        out.append(path)
        if isinstance(spec, dict):
            out += _keys(spec, path + ".")
        elif spec[0] == "map":
            out += _keys(spec[1], path + ".*.")
        elif spec[0] == "list":
            out += _keys(spec[1], path + "[].")
    return out


def _documented(doc: object, path: list[str]) -> bool:
    if not path:
        return True
    head, rest = path[0], path[1:]
    if isinstance(doc, list):
        return bool(doc) and all(_documented(item, [head[2:] if head.startswith("[].") else head]
                                               + rest) for item in doc[:1])
    if not isinstance(doc, dict):
        return False
    if head == "*":
        return any(_documented(v, rest) for v in doc.values())
    return head in doc and _documented(doc[head], rest)


def test_every_policy_key_is_in_configs_policy_yaml():
    doc = yaml.safe_load((ROOT / "configs/policy.yaml").read_text())
    missing = []
    for key in _keys(SCHEMA):
        parts = key.replace("[].", ".[].").split(".")
        parts = [p for p in parts if p != "[]"]
        if not _documented(doc, parts):
            missing.append(key)
    assert not missing, f"undocumented policy keys: {missing}"


def test_example_policies_validate():
    for name in ("policy.yaml", "demo.yaml"):
        load_policy(ROOT / "configs" / name)
