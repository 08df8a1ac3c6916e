#!/usr/bin/env bash
# Runs every test of imagegate. On a fresh Debian/Ubuntu machine it first installs the test bed
# (docker-registry, skopeo, cosign 2.5, skopeo 1.18, moto_server: see scripts/install-testbed.sh);
# later runs reuse what is there. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null 2>&1 || {
    echo "test.sh: cargo not found: install Rust (https://rustup.rs) first" >&2
    exit 1
}
IMAGEGATE_TESTBED_CACHE=$(scripts/install-testbed.sh | tail -n 1)
export IMAGEGATE_TESTBED_CACHE
exec cargo test --locked "$@"
