"""`router policy check FILE`."""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse


def run_policy(args: argparse.Namespace) -> int:
    from router.policy import load_policy
    policy = load_policy(args.file)
    print(f"{args.file}: ok, {len(policy.machines)} machines, threshold {policy.threshold:g}s, "
          f"over -> {policy.route['over']}, under -> {policy.route['under']}")
    return 0


def add_policy(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["check"])
    p.add_argument("file")
