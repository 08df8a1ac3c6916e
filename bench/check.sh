#!/usr/bin/env bash
# The rules once the facts are in memory (the built-in set plus the 89 StackRox defaults from
# ../shared against 5,000 vulnerabilities: median time and peak memory), and `imagegate check`
# end to end against a loopback registry with a real Trivy report.
source "$(dirname "$0")/lib.sh"
bench_setup
echo "building the evaluation bench..." >&2
cargo bench --locked --bench evaluate --no-run --quiet 2>/dev/null
BIN=$(ls -t "$BENCH_ROOT"/target/release/deps/evaluate-* | grep -v '\.d$' | head -n 1)
OUT="$WORK/evaluate.txt"
/usr/bin/time -f '%M' -o "$WORK/evaluate.mem" "$BIN" >"$OUT"
cat "$OUT"
echo "peak RSS of the evaluation bench (policies, 5,000 vulnerabilities, 30 evaluations): $(( $(cat "$WORK/evaluate.mem") / 1024 )) MiB"

start_registry
push_example webapp:1.0
IMAGE="$REGISTRY/webapp:1.0"
POLICIES="$BENCH_ROOT/../shared/fixtures/stackrox/policies"
RULES="--rules builtin"
[ -d "$POLICIES" ] && RULES="--rules builtin --rules $POLICIES"
VULNS="$BENCH_ROOT/examples/webapp.trivy.json"
BUSTER="$BENCH_ROOT/../shared/fixtures/scanners/trivy/debian-buster.json.golden"
[ -f "$BUSTER" ] && VULNS="$BUSTER"
compare "imagegate check end to end ($RUNS runs; report: $(basename "$VULNS"))" \
    "imagegate check=$IMAGEGATE -q --insecure-registry $REGISTRY check $IMAGE $RULES --vulns $VULNS --warn-only -o json=$WORK/check.json"
