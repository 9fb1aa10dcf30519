#!/usr/bin/env bash
# The whole loop on the embedded default (configs/demo.yaml): sweep, train, predict, start the
# daemon, submit a mix of jobs, stop it, and report where they went and what they cost.
set -euo pipefail
cd "$(dirname "$0")/.."
demo=.demo
rm -rf "$demo" && mkdir -p "$demo"
export ROUTER_STORE=$demo/history.db ROUTER_MODEL=$demo/model.rmod \
       ROUTER_SOCKET=$PWD/$demo/router.sock ROUTER_POLICY=configs/demo.yaml

echo "== 1. sweep: seq 10 64 | router collect --text -- examples/prog   (INPUT COST)"
seq 10 64 | router collect --text -- examples/prog | awk 'NR % 6 == 1'

echo "== 2. train one model on the history (threshold 0.04 s from the policy)"
router train

echo "== 3. predict: seq 12 6 64 | router predict -- examples/prog   (INPUT P SD MACHINE REASON)"
seq 12 6 64 | router predict -- examples/prog

echo "== 4. start the daemon"
router daemon 2> "$demo/daemon.log" &
daemon=$!
trap 'kill $daemon 2>/dev/null || true' EXIT
for _ in $(seq 200); do
    router jobs --noheader >/dev/null 2>&1 && break
    sleep 0.05
done

echo "== 5. submit a mix: shuf -i 10-64 -n 24 | router submit --each -- examples/prog"
shuf -i 10-64 -n 24 --random-source=<(yes) | router submit --each -- examples/prog \
    | tr '\n' ' '
echo
router submit --dry-run -- examples/prog 33
router submit --dry-run -- examples/prog 60

echo "== 6. stop the daemon (SIGTERM drains)"
kill -TERM $daemon
wait $daemon || true
trap - EXIT

echo "== 7. where the jobs went and what they cost: router report --text"
router report --text
router report --out "$demo/report.html" >/dev/null && echo "HTML report: $demo/report.html"
