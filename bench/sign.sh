#!/usr/bin/env bash
# Times `imagegate sign` + `imagegate verify` against `cosign sign` + `cosign verify` with the same
# key on the same image in a loopback docker-registry: medians, peak memory, registry requests.
# Before every signing run the .sig manifest is deleted, so each run does the whole job (resolve,
# read the existing signatures, push payload, config and manifest) rather than finding a duplicate.
source "$(dirname "$0")/lib.sh"
bench_setup
start_registry
push_example webapp:1.0
IMAGE="$REGISTRY/webapp:1.0"
DIGEST=$("$IMAGEGATE" --insecure-registry "$REGISTRY" digest "$IMAGE" | sed 's/.*@//')
SIG_TAG="${DIGEST/:/-}.sig"
export COSIGN_PASSWORD=bench
(cd "$WORK" && "$IMAGEGATE" -q generate-key-pair --output-key-prefix bench)
KEY="$WORK/bench.key"; PUB="$WORK/bench.pub"

cat > "$WORK/clear-sig.sh" <<SH
#!/bin/sh
d=\$(curl -sI -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$REGISTRY/v2/webapp/manifests/$SIG_TAG" | tr -d '\r' | awk -F': ' 'tolower(\$1)=="docker-content-digest"{print \$2}')
[ -n "\$d" ] && curl -s -X DELETE "http://$REGISTRY/v2/webapp/manifests/\$d" >/dev/null
exit 0
SH
chmod +x "$WORK/clear-sig.sh"
export BENCH_PREPARE="$WORK/clear-sig.sh"

compare "sign a tag (digest resolved, signature appended; $RUNS runs)" \
    "imagegate sign=$IMAGEGATE -q --insecure-registry $REGISTRY sign $IMAGE --key $KEY" \
    "cosign sign=$COSIGN sign --yes --key $KEY --tlog-upload=false --allow-http-registry $IMAGE"

unset BENCH_PREPARE
"$IMAGEGATE" -q --insecure-registry "$REGISTRY" sign "$IMAGE" --key "$KEY" >/dev/null
# cosign 3 also looks for Sigstore bundles (referrers) before the .sig tag, as imagegate does.
compare "verify a signed tag ($RUNS runs)" \
    "imagegate verify=$IMAGEGATE -q --insecure-registry $REGISTRY verify $IMAGE --key $PUB" \
    "cosign verify=$COSIGN verify --key $PUB --insecure-ignore-tlog=true --allow-http-registry $IMAGE" \
    "cosign3 verify=$COSIGN3 verify --key $PUB --insecure-ignore-tlog=true --allow-http-registry $IMAGE"
