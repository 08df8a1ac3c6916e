#!/usr/bin/env bash
# Runs every benchmark of imagegate and prints one Markdown table each.
set -euo pipefail
cd "$(dirname "$0")"
for b in digest.sh sign.sh check.sh gate.sh; do
    bash "$b"
done
