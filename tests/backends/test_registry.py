"""The backend registry: every name the policy accepts builds a backend that implements the one
interface, imported only when used, and a local one runs a real job."""

from __future__ import annotations

import asyncio
import importlib
import inspect
import os

import pytest

from router import backends
from router.backends import REGISTRY, create
from router.exec.jobspec import JobSpec
from router.errors import BackendError
from router.policy import BACKENDS, parse_policy

POLICY = """
machines:
  here: {backend: local, price: 1.0}
  far: {backend: ssh, price: 2.0}
  far2: {backend: ssh, price: 2.0, options: {host: 10.0.0.1}}
  queue: {backend: slurm, price: 1.0, options: {partition: cheap}}
route: {over: here, under: here}
"""


def machines():
    return parse_policy(POLICY).machines


def test_the_policy_accepts_exactly_the_registered_backends():
    assert set(BACKENDS) == set(REGISTRY)


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_each_entry_implements_the_interface(name):
    module, _, cls = REGISTRY[name].partition(":")
    backend = getattr(importlib.import_module(module), cls)
    for method in ("start", "close"):
        assert inspect.iscoroutinefunction(getattr(backend, method)), (name, method)
        wanted = list(inspect.signature(getattr(backends.Backend, method)).parameters)
        assert list(inspect.signature(getattr(backend, method)).parameters) == wanted


def test_create_builds_the_named_backend_with_its_options():
    m = machines()
    assert type(create(m["here"])).__name__ == "LocalBackend"
    assert create(m["far2"]).host == "10.0.0.1"
    assert create(m["queue"]).partition == "cheap"


def test_a_machine_missing_a_required_option_is_one_clear_error():
    with pytest.raises(BackendError, match="machine far: ssh backend needs options.host"):
        create(machines()["far"])


def test_a_local_backend_runs_a_real_job_and_measures_it():
    spec = JobSpec(1, ["sh", "-c", "echo hi; exit 4"], "/", dict(os.environ), os.getuid(),
                   os.getgid())
    out: list[bytes] = []

    async def main():
        backend = create(machines()["here"])
        try:
            running = await backend.start(spec, lambda fd, data: out.append(data))
            return await running.wait()
        finally:
            await backend.close()
    usage = asyncio.run(main())
    assert usage.exit == 4 and b"".join(out) == b"hi\n"
