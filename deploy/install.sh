#!/bin/sh
# Install router for production from a checkout: runtime dependencies only (no test, bench
# or dashboard extras), into PREFIX/.venv, plus the units, the policy and the group.
# Run as root from the checkout:  sh deploy/install.sh   (PREFIX=/opt/router by default).
# The units name /opt/router; with another PREFIX, edit their ExecStart lines.
set -eu
PREFIX=${PREFIX:-/opt/router}
SRC=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-/usr/bin/python3}

getent group router-users >/dev/null || groupadd --system router-users
install -d -m 0755 "$PREFIX" "$PREFIX/deploy"
test -x "$PREFIX/.venv/bin/python" || "$PYTHON" -m venv "$PREFIX/.venv"
"$PREFIX/.venv/bin/python" -m pip install -q --upgrade pip
"$PREFIX/.venv/bin/python" -m pip install -q "$SRC"           # runtime only: no [test]
"$PREFIX/.venv/bin/python" -m compileall -q "$PREFIX/.venv/lib"
install -m 0644 "$SRC/deploy/README.md" "$PREFIX/deploy/README.md"
if [ ! -e /etc/router/policy.yaml ]; then
    install -D -m 0644 "$SRC/configs/policy.yaml" /etc/router/policy.yaml
fi
"$PREFIX/.venv/bin/router" policy check /etc/router/policy.yaml
install -m 0644 "$SRC"/deploy/systemd/router.service "$SRC"/deploy/systemd/router-spawner.socket \
    "$SRC"/deploy/systemd/router-spawner@.service "$SRC"/deploy/systemd/router-retrain.service \
    "$SRC"/deploy/systemd/router-retrain.timer /etc/systemd/system/
echo "installed; then: systemctl daemon-reload &&" \
     "systemctl enable --now router-spawner.socket router.service router-retrain.timer"
