#!/usr/bin/env bash
# Times the whole `imagegate gate` (digest + sign + confirm + check with the built-in rules and
# one Kyverno policy) against what a pipeline runs without it: `cosign sign` + `cosign verify`
# + `skopeo inspect`, on the same image in a loopback registry. The .sig manifest is deleted
# before every run so each one signs for real.
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

GATE="$IMAGEGATE -q --insecure-registry $REGISTRY gate $IMAGE --key $KEY --policy $BENCH_ROOT/examples/policies/disallow-latest-tag.yaml --vulns $BENCH_ROOT/examples/webapp.trivy.json --warn-only -o json=$WORK/report.json"
WITHOUT="$COSIGN sign --yes --key $KEY --tlog-upload=false --allow-http-registry $IMAGE && $COSIGN verify --key $PUB --insecure-ignore-tlog=true --allow-http-registry $IMAGE && skopeo inspect --tls-verify=false docker://$IMAGE"
compare "the whole gate vs cosign sign + cosign verify + skopeo inspect ($RUNS runs)" \
    "imagegate gate=$GATE" \
    "cosign+cosign+skopeo=$WITHOUT"
