# Shared by the bench scripts: builds imagegate, installs the test bed, starts a loopback
# docker-registry, and compares commands with hyperfine. Source it; do not run it.
set -euo pipefail

BENCH_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${BENCH_RUNS:-30}
WARMUP=${BENCH_WARMUP:-3}

bench_setup() {
    cd "$BENCH_ROOT"
    TESTBED=$(scripts/install-testbed.sh | tail -n 1)
    COSIGN="$TESTBED/bin/cosign"
    COSIGN3="$TESTBED/bin/cosign3"
    SKOPEO_SIGSTORE="$TESTBED/bin/skopeo-sigstore"
    echo "building imagegate (release)..." >&2
    cargo build --release --locked --quiet
    IMAGEGATE="$BENCH_ROOT/target/release/imagegate"
    WORK=$(mktemp -d)
    trap bench_cleanup EXIT
}

bench_cleanup() {
    if [ -n "${REGISTRY_PID:-}" ]; then kill "$REGISTRY_PID" 2>/dev/null || true; wait "$REGISTRY_PID" 2>/dev/null || true; fi
    [ -n "${WORK:-}" ] && rm -rf "$WORK"
}

# Starts docker-registry on a free loopback port; sets REGISTRY (host:port) and REGISTRY_LOG.
start_registry() {
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    mkdir -p "$WORK/registry"
    cat > "$WORK/registry/config.yml" <<YAML
version: 0.1
log: {level: info, accesslog: {disabled: true}}
storage:
  filesystem: {rootdirectory: $WORK/registry/data}
  delete: {enabled: true}
http: {addr: 127.0.0.1:$port, secret: not-a-secret}
YAML
    REGISTRY_LOG="$WORK/registry/registry.log"
    docker-registry serve "$WORK/registry/config.yml" >"$REGISTRY_LOG" 2>&1 &
    REGISTRY_PID=$!
    REGISTRY="127.0.0.1:$port"
    for _ in $(seq 100); do
        curl -fsS "http://$REGISTRY/v2/" >/dev/null 2>&1 && return 0
        sleep 0.05
    done
    echo "docker-registry did not start" >&2
    exit 1
}

# Pushes the repository's example image as $1 (repo:tag).
push_example() {
    skopeo copy --quiet --dest-tls-verify=false oci:examples/webapp:1.0 "docker://$REGISTRY/$1"
}

# Counts the requests the registry answered to user agents starting with $1 while running "${@:2}".
count_requests() {
    local agent=$1; shift
    local before after
    before=$(wc -l <"$REGISTRY_LOG")
    "$@" >/dev/null 2>&1
    sleep 0.3
    after=$(tail -n +"$((before + 1))" "$REGISTRY_LOG" | grep -c "msg=\"response completed.*useragent=\"\\?$agent" || true)
    echo "$after"
}

# Peak resident memory (KiB) of one run of "$@".
peak_kib() {
    /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -n 1
}

# Runs hyperfine on NAME=COMMAND pairs and prints a table: median, peak memory, requests, ratio
# to the first command.
compare() {
    local title=$1; shift
    local json="$WORK/$(echo "$title" | tr -c 'a-z0-9' '_').json"
    local names=() cmds=() args=()
    while [ $# -gt 0 ]; do
        names+=("${1%%=*}"); cmds+=("${1#*=}"); shift
    done
    for i in "${!names[@]}"; do args+=(-n "${names[$i]}" "${cmds[$i]}"); done
    local prepare=()
    [ -n "${BENCH_PREPARE:-}" ] && prepare=(--prepare "$BENCH_PREPARE")
    hyperfine --style none --warmup "$WARMUP" --runs "$RUNS" "${prepare[@]}" --export-json "$json" "${args[@]}" >/dev/null
    local extra="$WORK/extra.tsv"; : >"$extra"
    for i in "${!names[@]}"; do
        local agent
        case "${names[$i]}" in
            imagegate*) agent="imagegate/" ;;
            skopeo*) agent="skopeo/" ;;
            cosign+*) agent="\\(cosign\\|skopeo\\)/" ;;
            cosign*) agent="cosign/" ;;
            *) agent="-" ;;
        esac
        local mem reqs
        [ -n "${BENCH_PREPARE:-}" ] && "$BENCH_PREPARE"
        mem=$(peak_kib bash -c "${cmds[$i]}")
        [ -n "${BENCH_PREPARE:-}" ] && "$BENCH_PREPARE"
        reqs=$(count_requests "$agent" bash -c "${cmds[$i]}")
        printf '%s\t%s\t%s\n' "${names[$i]}" "$mem" "$reqs" >>"$extra"
    done
    python3 - "$title" "$json" "$extra" <<'PY'
import json, sys
title, path, extra = sys.argv[1], sys.argv[2], sys.argv[3]
rows = {l.split("\t")[0]: l.rstrip("\n").split("\t")[1:] for l in open(extra)}
results = json.load(open(path))["results"]
base = results[0]["median"]
print(f"\n## {title}\n")
print(f"| command | median ms | min ms | max ms | peak RSS MiB | registry requests | vs {results[0]['command']} |")
print("|---|---:|---:|---:|---:|---:|---:|")
for r in results:
    mem, reqs = rows.get(r["command"], ["?", "?"])
    print(f"| {r['command']} | {r['median']*1000:.1f} | {r['min']*1000:.1f} | {r['max']*1000:.1f} | {int(mem)/1024:.1f} | {reqs} | {r['median']/base:.2f}x |")
PY
}
