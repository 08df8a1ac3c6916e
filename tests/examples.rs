//! The example image under examples/ (the README's main command runs on it) is built by the
//! test bed's fixture code: this test checks that the committed bytes are exactly what that code
//! writes, so the example stays auditable. `IMAGEGATE_WRITE_EXAMPLES=1 cargo test --test
//! examples` writes them anew.

mod testbed;

use std::path::{Path, PathBuf};

use testbed::fixtures::{self, ImageSpec, Step};
use testbed::{Imagegate, temp_dir};

fn step(created_by: &str, layer: bool) -> Step {
    Step {
        created_by: created_by.to_string(),
        layer,
    }
}

/// A web application image with the habits a gate should catch: it runs as root, was built long
/// ago, installs curl and an SSH server with apt-get, uses ADD, and exposes port 22.
pub fn webapp() -> ImageSpec {
    ImageSpec {
        os: "linux".into(),
        architecture: "amd64".into(),
        variant: None,
        created: "2024-03-01T09:00:00Z".into(),
        user: String::new(),
        labels: vec![
            ("maintainer".into(), "web-team@example.com".into()),
            (
                "org.opencontainers.image.source".into(),
                "https://git.example.com/web/webapp".into(),
            ),
            ("org.opencontainers.image.version".into(), "1.0".into()),
        ],
        env: vec![
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
            "APP_ENV=production".into(),
        ],
        exposed_ports: vec!["22/tcp".into(), "8080/tcp".into()],
        // History as BuildKit writes it.
        steps: vec![
            step(
                "/bin/sh -c #(nop) ADD file:7c8d6d8c2f3b1a0e9d4c5b6a7f8e9d0c1b2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7 in / ",
                true,
            ),
            step("/bin/sh -c #(nop)  CMD [\"bash\"]", false),
            step("LABEL maintainer=web-team@example.com", false),
            step("RUN /bin/sh -c apt-get update # buildkit", true),
            step(
                "RUN /bin/sh -c apt-get install -y --no-install-recommends curl openssh-server ca-certificates # buildkit",
                true,
            ),
            step("COPY app/ /app/ # buildkit", true),
            step("ENV APP_ENV=production", false),
            step("EXPOSE map[22/tcp:{}]", false),
            step("EXPOSE map[8080/tcp:{}]", false),
            step("CMD [\"/app/start.sh\"]", false),
        ],
        gzip: false,
    }
}

fn example_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/webapp")
}

fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let rel = path.strip_prefix(dir).unwrap().display().to_string();
                out.push((rel, std::fs::read(&path).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn the_example_layout_is_what_the_fixture_code_writes() {
    let fresh = temp_dir();
    fixtures::write_image(fresh.path(), "1.0", &webapp());
    if std::env::var_os("IMAGEGATE_WRITE_EXAMPLES").is_some() {
        let _ = std::fs::remove_dir_all(example_dir());
        fixtures::write_image(&example_dir(), "1.0", &webapp());
    }
    let committed = files(&example_dir());
    let expected = files(fresh.path());
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&committed),
        names(&expected),
        "the files under examples/webapp"
    );
    for ((name, a), (_, b)) in committed.iter().zip(&expected) {
        assert!(
            a == b,
            "examples/webapp/{name} differs from what the fixture code writes"
        );
    }
}

/// The README's main command, as written there (the `cargo run --release -- …` line).
fn readme_main_command() -> Vec<String> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let line = readme
        .lines()
        .find(|l| l.starts_with("cargo run --release -- "))
        .expect("the README has its main command");
    line.trim_start_matches("cargo run --release -- ")
        .split_whitespace()
        .map(str::to_string)
        .collect()
}

#[test]
fn the_readme_main_command_does_what_the_readme_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = temp_dir();
    // Paths in the command are relative to the repository; reports land in a scratch folder.
    let args: Vec<String> = readme_main_command()
        .into_iter()
        .map(|a| {
            if a.contains("examples/") {
                let (prefix, path) = a.split_at(a.find("examples/").unwrap());
                format!("{prefix}{}", root.join(path).display())
            } else {
                a
            }
        })
        .collect();
    let out = Imagegate::new().current_dir(work.path()).args(&args).run();
    out.expect_code(1);
    assert!(
        out.stdout.contains("Policy check results for image:"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr
            .contains("ERROR:\tPolicy \"Fixable Severity at least Important\""),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.trim_end().ends_with("exit code 1"),
        "{}",
        out.stderr
    );
    let junit =
        std::fs::read_to_string(work.path().join("imagegate-junit.xml")).expect("the JUnit file");
    assert!(junit.contains(r#"<failure type="violation""#), "{junit}");
    assert!(
        junit.contains("kyverno/restrict-image-registries"),
        "the Kyverno policies ran: {junit}"
    );
}

#[test]
fn the_example_resolves_locally() {
    let out = Imagegate::new()
        .args(["digest", &format!("oci:{}:1.0", example_dir().display())])
        .run();
    out.expect_code(0);
    assert!(out.stdout.contains("@sha256:"), "{}", out.stdout);
}
