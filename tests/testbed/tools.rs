//! The test bed's tools. cosign 2.5 and 3, skopeo 1.18 and moto_server come from the cache
//! folder that `scripts/install-testbed.sh` fills; docker-registry, skopeo 1.9, htpasswd and
//! openssl are Debian packages. A missing tool fails the test with a message that says how to install it.

use std::path::PathBuf;
use std::process::Command;

/// The cache folder of `scripts/install-testbed.sh`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("IMAGEGATE_TESTBED_CACHE") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| "/root".into());
    home.join(".cache").join("imagegate-testbed")
}

fn missing(tool: &str, from: &str) -> ! {
    panic!(
        "\n\n*** The test bed tool `{tool}` is missing ({from}).\n*** Run `scripts/test.sh` (the README's test command), or `scripts/install-testbed.sh` once, then the tests again.\n\n"
    )
}

fn cached(name: &str) -> PathBuf {
    let path = cache_dir().join("bin").join(name);
    if !path.exists() {
        missing(name, &format!("expected at {}", path.display()));
    }
    path
}

fn system(name: &str) -> PathBuf {
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    for dir in ["/usr/bin", "/usr/sbin", "/bin"] {
        let candidate = PathBuf::from(dir).join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    missing(name, "not on PATH; it is a Debian package")
}

/// cosign 2.5 from Debian trixie.
pub fn cosign() -> PathBuf {
    cached("cosign")
}

/// cosign 3 from Debian forky: signs into Sigstore bundles stored as OCI referrers by default.
pub fn cosign3() -> PathBuf {
    cached("cosign3")
}

/// skopeo 1.18 from Debian trixie (built with sigstore support), through trixie's loader.
pub fn skopeo_sigstore() -> PathBuf {
    cached("skopeo-sigstore")
}

pub fn moto_server() -> PathBuf {
    cached("moto_server")
}

/// Debian bookworm's skopeo 1.9: pushes and inspects (no sigstore).
pub fn skopeo() -> PathBuf {
    system("skopeo")
}

pub fn docker_registry() -> PathBuf {
    system("docker-registry")
}

pub fn htpasswd() -> PathBuf {
    system("htpasswd")
}

pub fn openssl() -> PathBuf {
    system("openssl")
}

pub fn command(path: PathBuf) -> Command {
    Command::new(path)
}
