#!/usr/bin/env bash
# Times `imagegate digest` against `skopeo inspect --raw` and `cosign triangulate` on the same
# image in a loopback docker-registry: medians, peak memory, registry requests, ratios.
source "$(dirname "$0")/lib.sh"
bench_setup
start_registry
push_example webapp:1.0
IMAGE="$REGISTRY/webapp:1.0"
compare "resolve a tag to its digest ($RUNS runs)" \
    "imagegate digest=$IMAGEGATE --insecure-registry $REGISTRY digest $IMAGE" \
    "skopeo inspect --raw=skopeo inspect --raw --tls-verify=false docker://$IMAGE" \
    "cosign triangulate=$COSIGN triangulate --allow-http-registry $IMAGE"
