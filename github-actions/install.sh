#!/usr/bin/env bash
# Step "install": fetch the imagegate release archive, check it against a pinned SHA-256, and
# put the binary under $RUNNER_TEMP. A mismatch installs nothing. Inputs come from env only.
set -euo pipefail

# Exit codes as imagegate's: 2 for a wrong input, 3 when the install could not be done.
fail() {
    local code=$1
    shift
    printf '::error title=imagegate install::%s\n' "$*"
    exit "$code"
}

case "$INPUT_INSTALL" in
    container)
        echo "path=" >> "$GITHUB_OUTPUT"
        exit 0
        ;;
    binary) ;;
    *) fail 2 "install is '$INPUT_INSTALL'; it must be binary or container" ;;
esac

[[ "$INPUT_VERSION" =~ ^[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$ ]] \
    || fail 2 "version '$INPUT_VERSION' is not a release version such as 0.1.0"
[[ "${RUNNER_OS:-Linux}" == Linux ]] \
    || fail 2 "imagegate releases are built for Linux; this runner is ${RUNNER_OS}"
case "${RUNNER_ARCH:-X64}" in
    X64) target=x86_64-unknown-linux-gnu ;;
    ARM64) target=aarch64-unknown-linux-gnu ;;
    *) fail 2 "no imagegate release for ${RUNNER_ARCH}" ;;
esac
archive="imagegate-${INPUT_VERSION}-${target}.tar.gz"

expected="${INPUT_CHECKSUM,,}"
if [[ -z "$expected" ]]; then
    expected=$(awk -v f="$archive" '$2 == f { print $1 }' "$GITHUB_ACTION_PATH/checksums.txt")
fi
[[ -n "$expected" ]] \
    || fail 2 "no pinned SHA-256 for $archive in this action's checksums.txt; pass the checksum input (or use a version the action lists)"
[[ "$expected" =~ ^[0-9a-f]{64}$ ]] || fail 2 "the checksum '$expected' is not a SHA-256 (64 hex digits)"

dir="$RUNNER_TEMP/imagegate/${INPUT_VERSION}/${target}"
if [[ -x "$dir/imagegate" && "$(cat "$dir/.sha256" 2>/dev/null)" == "$expected" ]]; then
    echo "imagegate ${INPUT_VERSION} is already installed in $dir"
else
    url="${INPUT_DOWNLOAD_URL//\{version\}/$INPUT_VERSION}"
    url="${url//\{target\}/$target}"
    work=$(mktemp -d "$RUNNER_TEMP/imagegate-download.XXXXXX")
    trap 'rm -rf "$work"' EXIT
    echo "downloading $url"
    curl --proto '=https,file' --fail --silent --show-error --location --retry 3 \
        --output "$work/$archive" "$url" || fail 3 "downloading $url failed"
    actual=$(sha256sum "$work/$archive" | cut -d' ' -f1)
    [[ "$actual" == "$expected" ]] \
        || fail 3 "checksum mismatch for $archive: expected $expected, got $actual; refusing to install it"
    mkdir -p "$work/unpacked"
    tar -xzf "$work/$archive" -C "$work/unpacked" imagegate || fail 3 "$archive holds no imagegate binary"
    mkdir -p "$dir"
    install -m 0755 "$work/unpacked/imagegate" "$dir/imagegate"
    printf '%s' "$expected" > "$dir/.sha256"
fi
reported=$("$dir/imagegate" --version) || fail 3 "the installed imagegate does not run"
[[ "$reported" == "imagegate ${INPUT_VERSION}" ]] \
    || fail 3 "the archive's binary says '$reported', not imagegate ${INPUT_VERSION}"
echo "$reported installed in $dir"
echo "path=$dir/imagegate" >> "$GITHUB_OUTPUT"
echo "$dir" >> "$GITHUB_PATH"
