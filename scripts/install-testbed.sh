#!/usr/bin/env bash
# Installs everything imagegate's tests need on a fresh Debian/Ubuntu machine, and nothing else.
#
#   - from the machine's own Debian release: docker-registry (distribution 2.8), skopeo (to push
#     fixtures), apache2-utils (htpasswd), openssl, hyperfine, libxml2-utils (xmllint), time;
#     buildah, podman and runc (to build the Containerfile and run the image), debootstrap;
#   - from Debian's next releases, unpacked into a cache folder without touching the system's
#     apt configuration: cosign 2.5 and skopeo 1.18 from trixie (bookworm's skopeo cannot sign
#     or verify sigstore signatures: Debian builds it with sigstore disabled), and cosign 3 from
#     forky (which stores signatures as Sigstore bundles, OCI referrers, by default);
#   - from PyPI, into a virtualenv in the cache folder: moto[server] for the AWS KMS tests;
#   - from the Debian mirror, with debootstrap: a minimal Debian bookworm root file system as a
#     tarball, the local stand-in for the Containerfile's builder and base images (no container
#     registry can be reached here). Needs root, as debootstrap does.
#
# The cache folder ($IMAGEGATE_TESTBED_CACHE, default ~/.cache/imagegate-testbed) is reused between
# runs. On success the last line printed is the cache folder; tests find the tools there.
set -euo pipefail

CACHE="${IMAGEGATE_TESTBED_CACHE:-$HOME/.cache/imagegate-testbed}"
mkdir -p "$CACHE"
log() { printf 'install-testbed: %s\n' "$*" >&2; }
die() { printf 'install-testbed: error: %s\n' "$*" >&2; exit 1; }

as_root() {
    if [ "$(id -u)" = 0 ]; then "$@"
    elif command -v sudo >/dev/null 2>&1; then sudo "$@"
    else die "need root to run: $* (run this script as root, or install sudo)"
    fi
}

# --- 1. packages of this Debian release -----------------------------------------------------
APT_PACKAGES=(docker-registry skopeo apache2-utils openssl hyperfine libxml2-utils time ca-certificates python3-venv
              buildah podman runc debootstrap)
missing=()
for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    command -v apt-get >/dev/null 2>&1 || die "apt-get not found: install ${missing[*]} by hand (Debian/Ubuntu packages)"
    log "installing ${missing[*]}"
    as_root apt-get update -qq || die "apt-get update failed: check the machine's apt sources and network"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
        || die "apt-get install ${missing[*]} failed"
fi

# --- 2. cosign 2.5 and skopeo 1.18 from Debian trixie, cosign 3 from forky ---------------------
# fetch_debs SUITE DIR PACKAGE...: downloads the packages from SUITE through the machine's own
# Debian mirror entry (suite switched), with apt state kept under DIR, and unpacks them into
# DIR/root. The system's apt configuration is not touched.
fetch_debs() {
    local suite=$1 dir=$2; shift 2
    mkdir -p "$dir/parts" "$dir/lists/partial" "$dir/cache/archives/partial" "$dir/debs"
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        awk 'BEGIN{RS="";ORS="\n\n"} NR==1' /etc/apt/sources.list.d/debian.sources \
            | sed -e "s/^Suites:.*/Suites: $suite/" > "$dir/parts/$suite.sources"
    elif [ -f /etc/apt/sources.list ]; then
        grep -E '^deb ' /etc/apt/sources.list | grep -v -- '-security' | head -n1 \
            | awk -v s="$suite" '{print $1, $2, s, "main"}' > "$dir/parts/$suite.list"
    else
        die "no apt source found (/etc/apt/sources.list.d/debian.sources or /etc/apt/sources.list)"
    fi
    local O=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$dir/parts"
       -o "Dir::State::Lists=$dir/lists" -o "Dir::Cache=$dir/cache"
       -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
    log "fetching $* from Debian $suite into $dir"
    apt-get "${O[@]}" update -qq || die "apt-get update for $suite failed (is the Debian mirror reachable?)"
    (cd "$dir/debs" && apt-get "${O[@]}" download "$@" >/dev/null) \
        || die "downloading $* from $suite failed"
    rm -rf "$dir/root"; mkdir -p "$dir/root"
    for deb in "$dir"/debs/*.deb; do dpkg-deb -x "$deb" "$dir/root"; done
}

TRIXIE="$CACHE/trixie"
ROOT="$TRIXIE/root"
if [ ! -x "$ROOT/usr/bin/cosign" ] || [ ! -x "$ROOT/usr/bin/skopeo" ]; then
    fetch_debs trixie "$TRIXIE" cosign skopeo libc6 libgpgme11t64 libassuan9 libgpg-error0 libsqlite3-0
fi
# skopeo 1.18 needs trixie's glibc: a wrapper runs it through trixie's own loader.
LIBDIR="$ROOT/usr/lib/$(uname -m)-linux-gnu"
LOADER=$(ls "$LIBDIR"/ld-linux*.so.* 2>/dev/null | head -n1)
[ -n "$LOADER" ] || die "trixie's dynamic loader not found under $LIBDIR"
mkdir -p "$CACHE/bin"
cat > "$CACHE/bin/skopeo-sigstore" <<WRAP
#!/bin/sh
exec "$LOADER" --library-path "$LIBDIR" "$ROOT/usr/bin/skopeo" "\$@"
WRAP
chmod +x "$CACHE/bin/skopeo-sigstore"
ln -sf "$ROOT/usr/bin/cosign" "$CACHE/bin/cosign"
"$CACHE/bin/cosign" version >/dev/null 2>&1 || die "cosign from trixie does not run"
"$CACHE/bin/skopeo-sigstore" --version >/dev/null 2>&1 || die "skopeo from trixie does not run"
# cosign 3 (Debian forky) signs into Sigstore bundles stored as OCI referrers by default.
FORKY="$CACHE/forky"
if [ ! -x "$FORKY/root/usr/bin/cosign" ]; then
    fetch_debs forky "$FORKY" cosign
fi
ln -sf "$FORKY/root/usr/bin/cosign" "$CACHE/bin/cosign3"
"$CACHE/bin/cosign3" version >/dev/null 2>&1 || die "cosign from forky does not run"

# --- 3. moto_server from PyPI -----------------------------------------------------------------
VENV="$CACHE/venv"
# jsonschema validates the SARIF reports against the SARIF 2.1.0 schema.
if [ ! -x "$VENV/bin/moto_server" ] || ! "$VENV/bin/python" -c 'import jsonschema' 2>/dev/null; then
    log "installing moto[server], boto3 and jsonschema from PyPI into $VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed (install python3-venv)"
    "$VENV/bin/pip" install -q 'moto[server]>=5.1,<6' boto3 'jsonschema>=4' || die "pip install moto[server] jsonschema failed"
fi
ln -sf "$VENV/bin/moto_server" "$CACHE/bin/moto_server"
# The venv's python (with boto3 and jsonschema) creates KMS keys in moto and validates SARIF.
ln -sf "$VENV/bin/python" "$CACHE/bin/moto-python"

# --- 4. a Debian bookworm root file system for the container image tests ------------------------
# The Containerfile's test builds FROM images made from this tarball: minbase (what the official
# debian:bookworm-slim image is made of) plus ca-certificates (which rust:*-slim carries).
ROOTFS_TAR="$CACHE/rootfs/debian-bookworm-minbase.tar"
if [ ! -s "$ROOTFS_TAR" ]; then
    MIRROR=""
    if [ -f /etc/apt/sources.list.d/debian.sources ]; then
        MIRROR=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
    elif [ -f /etc/apt/sources.list ]; then
        MIRROR=$(awk '$1 == "deb" && $3 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
    fi
    case "$MIRROR" in
        *debian*) ;;
        *) MIRROR=http://deb.debian.org/debian ;;  # Ubuntu and other mirrors carry no bookworm
    esac
    STAGE="$CACHE/rootfs/stage"
    as_root rm -rf "$STAGE"
    mkdir -p "$CACHE/rootfs"
    log "building a Debian bookworm minbase root file system from $MIRROR with debootstrap"
    as_root debootstrap --variant=minbase --include=ca-certificates bookworm "$STAGE" "$MIRROR" \
        >"$CACHE/rootfs/debootstrap.log" 2>&1 \
        || die "debootstrap failed (see $CACHE/rootfs/debootstrap.log): is the Debian mirror reachable?"
    # Package lists and downloaded packages are not part of an image.
    as_root sh -c 'rm -rf "$1"/var/cache/apt/archives/*.deb "$1"/var/lib/apt/lists/*' sh "$STAGE"
    as_root tar --numeric-owner -C "$STAGE" -cf "$ROOTFS_TAR.part" . || die "packing $STAGE failed"
    as_root chown "$(id -u):$(id -g)" "$ROOTFS_TAR.part"
    mv "$ROOTFS_TAR.part" "$ROOTFS_TAR"
    as_root rm -rf "$STAGE"
fi
buildah --version >/dev/null 2>&1 || die "buildah does not run"
podman --version >/dev/null 2>&1 || die "podman does not run"

log "ready: cosign $(dpkg-deb -f "$TRIXIE"/debs/cosign_*.deb Version) and $(dpkg-deb -f "$FORKY"/debs/cosign_*.deb Version), $("$CACHE/bin/skopeo-sigstore" --version), $("$VENV/bin/python" -c 'import moto; print("moto", moto.__version__)'), $(buildah --version), $(podman --version)"
echo "$CACHE"
