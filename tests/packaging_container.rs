//! The Containerfile, built with buildah and run with podman, as OpenShift would run it: under
//! a random UID in group 0.
//!
//! No container registry can be reached here, so the builder and base images are made locally
//! from a Debian bookworm minbase root file system (`scripts/install-testbed.sh` builds it with
//! debootstrap from the Debian mirror; it is what the official `debian:bookworm-slim` image is
//! made of, plus `ca-certificates`, which `rust:*-slim` has). The build stage does not compile:
//! `PREBUILT` hands it the binary under test (debug info stripped), so the build takes seconds;
//! everything else in the Containerfile runs as written.
//!
//! The machine's limits shape two flags: buildah builds with `--isolation chroot` and the `vfs`
//! storage driver (no daemon, no overlay mounts), and podman runs containers with runc (crun
//! refuses this VM's hybrid cgroup v1/v2 layout) and with `--ulimit` values below the VM's hard
//! limits (the VM withholds CAP_SYS_RESOURCE, and podman sets RLIMIT_NOFILE and RLIMIT_NPROC on
//! every container). Neither changes what is built or what runs inside.

mod packaging_support;
mod testbed;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use packaging_support::github::{Job, run_action};
use testbed::fixtures::{self, ImageSpec};
use testbed::registry::Registry;
use testbed::{Output, raw, run_with_timeout, temp_dir, tools, write_file};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
/// An OpenShift-style UID from a namespace's range, in group 0.
const RANDOM_UID: &str = "1000650000";

/// buildah and podman sharing one throw-away storage.
struct Engine {
    storage: tempfile::TempDir,
}

impl Engine {
    fn new() -> Engine {
        Engine {
            storage: temp_dir(),
        }
    }

    fn global_flags(&self) -> Vec<String> {
        let dir = self.storage.path();
        vec![
            format!("--root={}", dir.join("root").display()),
            format!("--runroot={}", dir.join("run").display()),
            "--storage-driver=vfs".into(),
        ]
    }

    fn buildah(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(tool("buildah"));
        cmd.args(self.global_flags())
            .args(args)
            .env("BUILDAH_ISOLATION", "chroot");
        run_with_timeout(cmd, Duration::from_secs(600))
    }

    /// podman's global flags and `run`'s own, as this machine needs them (see the module
    /// comment).
    fn podman_run_prefix(&self) -> Vec<String> {
        let mut args = self.global_flags();
        args.extend(
            [
                "--runtime=runc",
                "--cgroup-manager=cgroupfs",
                "--events-backend=none",
            ]
            .map(String::from),
        );
        args.push(format!(
            "--tmpdir={}",
            self.storage.path().join("libpod").display()
        ));
        args.extend(
            [
                "run",
                "--ulimit=nofile=1024:1024",
                "--ulimit=nproc=1024:1024",
            ]
            .map(String::from),
        );
        args
    }

    /// `podman run --rm --network=host` with `args`.
    fn run(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new(tool("podman"));
        cmd.args(self.podman_run_prefix())
            .args(["--rm", "--network=host"])
            .args(args);
        run_with_timeout(cmd, Duration::from_secs(120))
    }

    /// A folder with a `docker` that runs `docker run …` with podman on this storage, for the
    /// GitHub action's container mode.
    fn docker_shim(&self) -> tempfile::TempDir {
        let dir = temp_dir();
        let prefix: Vec<String> = self
            .podman_run_prefix()
            .iter()
            .map(|a| format!("'{a}'"))
            .collect();
        let shim = write_file(
            dir.path(),
            "docker",
            &format!(
                "#!/bin/sh\n[ \"$1\" = run ] || {{ echo \"docker shim: only docker run\" >&2; exit 125; }}\nshift\nexec '{}' {} \"$@\"\n",
                tool("podman").display(),
                prefix.join(" ")
            ),
        );
        std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        dir
    }
}

fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let path = Path::new(dir).join(name);
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "\n\n*** `{name}` is missing (a Debian package).\n*** Run `scripts/test.sh` (the README's test command), or `scripts/install-testbed.sh` once.\n\n"
    )
}

fn rootfs_tar() -> PathBuf {
    let path = tools::cache_dir().join("rootfs/debian-bookworm-minbase.tar");
    assert!(
        path.is_file(),
        "\n\n*** The Debian root file system {} is missing.\n*** Run `scripts/test.sh` (the README's test command), or `scripts/install-testbed.sh` once.\n\n",
        path.display()
    );
    path
}

/// Imports the Debian root file system as the image `name`, as `docker import` would.
fn import_base(engine: &Engine, name: &str) {
    let out = engine.buildah(&["from", "scratch"]);
    out.expect_code(0);
    let container = out.stdout.trim().to_string();
    let tar = rootfs_tar().display().to_string();
    engine
        .buildah(&["add", &container, &tar, "/"])
        .expect_code(0);
    engine
        .buildah(&[
            "config",
            "--env",
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "--cmd",
            "/bin/sh",
            &container,
        ])
        .expect_code(0);
    engine
        .buildah(&["commit", "--rm", &container, name])
        .expect_code(0);
}

/// The build context: the repository's files (what `.containerignore` lets through matters
/// little, as nothing is compiled) and `dist/imagegate`, the binary under test without its
/// debug info.
fn build_context() -> tempfile::TempDir {
    let context = temp_dir();
    copy_tree(Path::new(REPO), context.path(), true);
    let dist = context.path().join("dist");
    std::fs::create_dir_all(&dist).unwrap();
    let binary = dist.join("imagegate");
    let stripped = Command::new("objcopy")
        .arg("--strip-debug")
        .arg(env!("CARGO_BIN_EXE_imagegate"))
        .arg(&binary)
        .status()
        .is_ok_and(|s| s.success());
    if !stripped {
        std::fs::copy(env!("CARGO_BIN_EXE_imagegate"), &binary).unwrap();
    }
    context
}

fn copy_tree(from: &Path, to: &Path, top: bool) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if top && (name == "target" || name == ".git") {
            continue;
        }
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            copy_tree(&entry.path(), &to.join(&name), false);
        } else if kind.is_file() {
            std::fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

#[test]
fn the_image_builds_and_runs_under_a_random_uid() {
    let engine = Engine::new();
    let base = "localhost/imagegate-test/debian:bookworm";
    import_base(&engine, base);
    let context = build_context();
    let image = "localhost/imagegate-test/imagegate:test";
    let version = env!("CARGO_PKG_VERSION");
    let containerfile = context.path().join("Containerfile").display().to_string();
    let context_dir = context.path().display().to_string();
    let build = engine.buildah(&[
        "build",
        "--isolation=chroot",
        "--build-arg",
        &format!("BUILDER_IMAGE={base}"),
        "--build-arg",
        &format!("BASE_IMAGE={base}"),
        "--build-arg",
        "PREBUILT=dist/imagegate",
        "--build-arg",
        &format!("VERSION={version}"),
        "--build-arg",
        "REVISION=0123456789abcdef0123456789abcdef01234567",
        "--build-arg",
        "CREATED=2026-01-02T03:04:05Z",
        "-f",
        &containerfile,
        "-t",
        image,
        &context_dir,
    ]);
    build.expect_code(0);

    // What the image says about itself.
    let inspect = engine.buildah(&["inspect", "--type", "image", image]);
    inspect.expect_code(0);
    let inspected: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    let config = &inspected["OCIv1"]["config"];
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!(["/usr/local/bin/imagegate"]),
        "exec-form ENTRYPOINT: {config}"
    );
    assert_eq!(config["User"], "10001:0", "{config}");
    assert!(
        config["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "HOME=/home/imagegate"),
        "{config}"
    );
    let labels = &config["Labels"];
    for (key, value) in [
        ("org.opencontainers.image.title", "imagegate"),
        ("org.opencontainers.image.version", version),
        (
            "org.opencontainers.image.revision",
            "0123456789abcdef0123456789abcdef01234567",
        ),
        ("org.opencontainers.image.created", "2026-01-02T03:04:05Z"),
        ("org.opencontainers.image.licenses", "Apache-2.0"),
        ("org.opencontainers.image.base.name", base),
        ("io.k8s.display-name", "imagegate"),
        ("name", "imagegate"),
        ("version", version),
        ("release", "1"),
    ] {
        assert_eq!(labels[key], value, "label {key}: {labels}");
    }
    for key in [
        "org.opencontainers.image.description",
        "org.opencontainers.image.source",
        "io.k8s.description",
        "io.openshift.tags",
        "summary",
        "description",
        "vendor",
    ] {
        assert!(
            labels[key].as_str().is_some_and(|v| !v.is_empty()),
            "label {key}: {labels}"
        );
    }

    // The ENTRYPOINT, as `docker run IMAGE --version` uses it, under a random UID.
    let out = engine.run(&["--user", &format!("{RANDOM_UID}:0"), image, "--version"]);
    out.expect_code(0);
    assert_eq!(out.stdout.trim(), format!("imagegate {version}"));

    // As GitLab runs a job (`entrypoint: [""]`, the script piped into `sh`) and Tekton a
    // `script`: a shell, imagegate on PATH, a writable HOME, CA certificates, the licence.
    let out = engine.run(&[
        "--user",
        &format!("{RANDOM_UID}:0"),
        "--entrypoint",
        "",
        image,
        "sh",
        "-c",
        "set -e; id -u; id -g; echo \"$HOME\"; echo probe > \"$HOME/probe\"; cat \"$HOME/probe\"; \
         command -v imagegate; test -s /etc/ssl/certs/ca-certificates.crt && echo certificates; \
         cat /licenses/LICENSE",
    ]);
    out.expect_code(0);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(
        &lines[..6],
        [
            RANDOM_UID,
            "0",
            "/home/imagegate",
            "probe",
            "/usr/local/bin/imagegate",
            "certificates"
        ],
        "{}",
        out.stdout
    );
    let licence = std::fs::read_to_string(Path::new(REPO).join("LICENSE")).unwrap();
    assert_eq!(lines[6..].join("\n").trim(), licence.trim());
    assert!(licence.contains("Apache License") && licence.contains("Version 2.0"));

    // Without --user the image's own user, never root.
    let out = engine.run(&["--entrypoint", "", image, "id", "-u"]);
    out.expect_code(0);
    assert_eq!(out.stdout.trim(), "10001");

    // A dry-run gate inside the container against the test bed's registry, reports written to
    // a mounted folder as the random UID.
    let registry = Registry::start();
    let layouts = temp_dir();
    let layout = fixtures::write_image(layouts.path(), "v1", &ImageSpec::rich());
    fixtures::push(&layout, &registry, "app:v1");
    let tags_before = raw::tags(&registry.image("app"));
    let out_dir = temp_dir();
    std::fs::set_permissions(
        out_dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let volume = format!("{}:/out", out_dir.path().display());
    let target = registry.image("app:v1");
    let out = engine.run(&[
        "--user",
        &format!("{RANDOM_UID}:0"),
        "-v",
        &volume,
        image,
        "--insecure-registry",
        &registry.host(),
        "gate",
        &target,
        "--dry-run",
        "--results-dir",
        "/out",
        "-o",
        "junit=/out/junit.xml",
    ]);
    out.expect_code(0);
    assert!(out.stderr.contains("imagegate: PASSED"), "{}", out.stderr);
    let pinned = format!("{}@{}", registry.image("app"), layout.digest);
    assert_eq!(
        std::fs::read_to_string(out_dir.path().join("IMAGE_REF")).unwrap(),
        pinned
    );
    let junit = out_dir.path().join("junit.xml");
    let junit_text = std::fs::read_to_string(&junit).unwrap();
    assert!(junit_text.contains("<testsuites"), "{junit_text}");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&std::fs::metadata(&junit).unwrap()),
        RANDOM_UID.parse::<u32>().unwrap(),
        "written by the random UID"
    );
    assert_eq!(
        raw::tags(&registry.image("app")),
        tags_before,
        "a dry run writes nothing"
    );

    // The README's dry run from the container image, on the example image.
    let readme = std::fs::read_to_string(Path::new(REPO).join("README.md")).unwrap();
    assert!(
        readme.contains(
            "podman run --rm -v \"$PWD/examples:/examples:ro\" imagegate \\\n    gate oci:/examples/webapp:1.0 --dry-run \\\n    --image-name registry.example.com/web/webapp:1.0 \\\n    --policy /examples/policies --vulns /examples/webapp.trivy.json"
        ),
        "the README's container dry run changed: change this test with it"
    );
    let examples = format!("{}/examples:/examples:ro", REPO);
    let out = engine.run(&[
        "--user",
        &format!("{RANDOM_UID}:0"),
        "-v",
        &examples,
        image,
        "gate",
        "oci:/examples/webapp:1.0",
        "--dry-run",
        "--image-name",
        "registry.example.com/web/webapp:1.0",
        "--policy",
        "/examples/policies",
        "--vulns",
        "/examples/webapp.trivy.json",
    ]);
    out.expect_code(1);
    assert!(
        out.stdout.contains("Fixable Severity at least Important"),
        "{}",
        out.stdout
    );

    // The GitHub action with `install: container`: `docker run -u UID:GID` (podman here), the
    // step outputs and summary written from inside the container.
    let shim = engine.docker_shim();
    let mut job = Job::new();
    job.path.push(shim.path().to_path_buf());
    let args = format!("--insecure-registry {}", registry.host());
    let run = run_action(
        &Path::new(REPO).join("github-actions"),
        &[
            ("image", &target),
            ("dry-run", "true"),
            ("args", &args),
            ("install", "container"),
            ("container-image", image),
            ("sarif", "out/imagegate.sarif"),
        ],
        &job,
    );
    assert!(run.succeeded(), "{run:#?}");
    assert_eq!(run.step("install").outputs["path"], "");
    assert_eq!(run.outputs["ref"], pinned);
    assert_eq!(run.outputs["verdict"], "pass");
    assert!(run.summary().contains("imagegate"), "{}", run.summary());
    assert!(job.workspace.path().join("out/imagegate.sarif").is_file());
}

#[test]
fn the_readmes_local_dry_run_does_what_it_says() {
    let readme = std::fs::read_to_string(Path::new(REPO).join("README.md")).unwrap();
    assert!(
        readme.contains(
            "./target/release/imagegate gate oci:examples/webapp:1.0 --dry-run \\\n    --image-name registry.example.com/web/webapp:1.0 \\\n    --policy examples/policies --vulns examples/webapp.trivy.json"
        ),
        "the README's dry run changed: change this test with it"
    );
    // From the repository's folder, with a clean environment and a HOME of its own.
    let home = temp_dir();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_imagegate"));
    cmd.current_dir(REPO)
        .env_clear()
        .env("HOME", home.path())
        .env("PATH", "/usr/bin:/bin")
        .args([
            "gate",
            "oci:examples/webapp:1.0",
            "--dry-run",
            "--image-name",
            "registry.example.com/web/webapp:1.0",
            "--policy",
            "examples/policies",
            "--vulns",
            "examples/webapp.trivy.json",
        ]);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    out.expect_code(1);
    assert!(out.stdout.contains("Fixable Severity at least Important"));
    assert!(out.stdout.contains("CVE-2023-38545"));
    assert!(out.stderr.contains("dry run: signed"), "{}", out.stderr);
    assert!(
        !out.stdout.contains("disallow-latest-tag")
            && !out.stdout.contains("restrict-image-registries"),
        "the Kyverno examples pass: {}",
        out.stdout
    );
}

/// The parts of the Containerfile that a build here cannot show: defaults that must follow the
/// crate, and what the build context leaves out.
#[test]
fn the_containerfile_follows_the_crate() {
    let text = std::fs::read_to_string(Path::new(REPO).join("Containerfile")).unwrap();
    let arg = |name: &str| -> String {
        let prefix = format!("ARG {name}=");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap_or_else(|| panic!("no `ARG {name}=` default in the Containerfile"))
            .to_string()
    };
    assert_eq!(arg("VERSION"), env!("CARGO_PKG_VERSION"));
    // The builder's toolchain is the crate's minimum Rust version, so it builds what the crate
    // promises and nothing newer sneaks in.
    let builder = arg("BUILDER_IMAGE");
    let rust = builder
        .split_once(":")
        .and_then(|(_, tag)| tag.split('-').next())
        .unwrap();
    assert_eq!(rust, env!("CARGO_PKG_RUST_VERSION"), "{builder}");
    // The builder and the base share a Debian release, so the binary finds its glibc.
    let base = arg("BASE_IMAGE");
    let release = builder.rsplit('-').next().unwrap();
    assert!(base.contains(release), "{builder} vs {base}");

    let from: Vec<&str> = text.lines().filter(|l| l.starts_with("FROM ")).collect();
    assert_eq!(
        from,
        ["FROM ${BUILDER_IMAGE} AS build", "FROM ${BASE_IMAGE}"],
        "two stages, both images from build arguments"
    );
    let user = text
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .unwrap();
    let (uid, gid) = user.split_once(':').unwrap();
    assert!(
        uid.parse::<u32>().unwrap() > 0 && gid == "0",
        "numeric non-root UID (so runAsNonRoot can check it), group 0: {user}"
    );
    let entrypoint = text
        .lines()
        .filter_map(|l| l.strip_prefix("ENTRYPOINT "))
        .next_back()
        .unwrap();
    let parsed: Vec<String> = serde_json::from_str(entrypoint).expect("exec form (a JSON array)");
    assert_eq!(parsed, ["/usr/local/bin/imagegate"]);

    let ignore = std::fs::read_to_string(Path::new(REPO).join(".containerignore")).unwrap();
    for pattern in ["target/", ".git"] {
        assert!(
            ignore.lines().any(|l| l.trim() == pattern),
            ".containerignore lacks {pattern}"
        );
    }
}
