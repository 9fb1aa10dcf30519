# `make demo` and `make test` each set up .venv from scratch when needed, and do nothing
# more than their job when it is already up to date.
# The distribution's Python 3.11+ when it can make a venv (python3-venv): the daemon, its
# spawner and every `router submit` ran 20-30% faster on Debian's optimised build than on a
# plain source build (pyenv's) here. Otherwise, the first python3 on PATH.
PYTHON ?= $(shell /usr/bin/python3 -c 'import ensurepip, sys; assert sys.version_info >= (3, 11)' \
                  2>/dev/null && echo /usr/bin/python3 || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-unit test-private-clone bench docs clean compile

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	$(MAKE) -s compile
	touch $(STAMP)

# Byte-compile once: with PYTHONDONTWRITEBYTECODE set, every `router submit` would otherwise
# recompile router's modules from source (~15 ms of a submit).
compile:
	$(BIN)/python -m compileall -q router collectors

demo: $(STAMP)
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/demo.sh

test: $(STAMP)
	$(BIN)/python -m pytest -q tests

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests --ignore=tests/integration --ignore=tests/faults

# The tests that run commands as other users, from a fresh clone of HEAD in a 0700 directory.
test-private-clone: $(STAMP)
	.ci/private-clone $(BIN)/python

bench: $(STAMP)
	$(BIN)/python -m pip install -q -e '.[test,bench]' --config-settings editable_mode=compat
	for b in bench/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

docs: $(STAMP)
	$(BIN)/python tests/docs.py --write

clean:
	rm -rf $(VENV) .demo build *.egg-info
