//! The composite GitHub Action (`github-actions/`), run step by step as the runner would
//! (`packaging_support::github`), against the test bed: the install step fetches the release
//! archive from a `file://` download URL (the binary under test, no network), checks its
//! SHA-256 and refuses a wrong one; the gate step signs with an `awskms://` key in moto (the
//! AWS variables are what aws-actions/configure-aws-credentials exports after its OIDC
//! exchange) and writes the step outputs, the step summary, annotations and SARIF.

mod packaging_support;
mod testbed;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use packaging_support::github::{self, Job, REPO, run_action};
use testbed::fixtures::{self, ImageSpec, Layout};
use testbed::moto::Moto;
use testbed::registry::{Registry, free_port};
use testbed::{Output, run_with_timeout, temp_dir, tools, write_file};

fn action_dir() -> PathBuf {
    Path::new(REPO).join("github-actions")
}

fn file_url(dir: &Path) -> String {
    format!(
        "file://{}/imagegate-{{version}}-{{target}}.tar.gz",
        dir.display()
    )
}

fn push(registry: &Registry, repo_and_tag: &str) -> (tempfile::TempDir, Layout) {
    let dir = temp_dir();
    let tag = repo_and_tag.rsplit(':').next().unwrap();
    let layout = fixtures::write_image(dir.path(), tag, &ImageSpec::rich());
    fixtures::push(&layout, registry, repo_and_tag);
    (dir, layout)
}

fn cosign_verify(image: &str, public_pem: &str) -> Output {
    let dir = temp_dir();
    let public = write_file(dir.path(), "cosign.pub", public_pem);
    let mut cmd = Command::new(tools::cosign());
    cmd.args([
        "verify",
        "--key",
        &public.display().to_string(),
        "--insecure-ignore-tlog=true",
        "--allow-http-registry",
        image,
    ]);
    run_with_timeout(cmd, Duration::from_secs(60))
}

/// A checkout with the team's Kyverno policies under policies/kyverno/.
fn checkout(job: &Job, policies: &[&str]) {
    let kyverno = job.workspace.path().join("policies/kyverno");
    std::fs::create_dir_all(&kyverno).unwrap();
    for p in policies {
        std::fs::copy(
            Path::new(REPO).join("examples/policies").join(p),
            kyverno.join(p),
        )
        .unwrap();
    }
    write_file(job.workspace.path(), "Containerfile", "FROM scratch\n");
}

#[test]
fn installs_the_pinned_binary_and_gates_with_an_aws_kms_key() {
    let (dist, _archive, sha) = github::release_archive();
    let registry = Registry::start();
    let (_dir, layout) = push(&registry, "app:v1");
    let moto = Moto::start();
    let key = moto.create_key("imagegate");
    let mut job = Job::new();
    for (k, v) in moto.env() {
        job = job.env(k, v);
    }
    // configure-aws-credentials exports a session token with the role's keys.
    job = job.env("AWS_SESSION_TOKEN", "session-token-from-oidc-not-real");
    checkout(&job, &["disallow-latest-tag.yaml"]);
    let image = registry.image("app:v1");
    let args = format!("--insecure-registry {}", registry.host());
    let run = run_action(
        &action_dir(),
        &[
            ("image", &image),
            ("key", "awskms:///alias/imagegate"),
            ("policy", "policies/kyverno"),
            ("containerfile", "Containerfile"),
            ("sarif", "imagegate.sarif"),
            ("args", &args),
            ("checksum", &sha),
            ("download-url", &file_url(&dist)),
        ],
        &job,
    );
    assert!(run.succeeded(), "{run:#?}");

    // install: the binary in RUNNER_TEMP, on PATH for later steps, and the path as output.
    let installed = job.runner_temp.path().join(format!(
        "imagegate/{}/x86_64-unknown-linux-gnu",
        env!("CARGO_PKG_VERSION")
    ));
    assert_eq!(
        run.step("install").outputs["path"],
        installed.join("imagegate").display().to_string()
    );
    assert_eq!(run.path_added, [installed.display().to_string()]);

    // gate: outputs, summary, SARIF, and a signature cosign accepts with the KMS key.
    let pinned = format!("{}@{}", registry.image("app"), layout.digest);
    assert_eq!(run.outputs["digest"], layout.digest);
    assert_eq!(run.outputs["ref"], pinned);
    assert_eq!(run.outputs["verdict"], "pass");
    assert_eq!(run.outputs["sarif"], "imagegate.sarif");
    let sarif: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(job.workspace.path().join("imagegate.sarif")).unwrap(),
    )
    .unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    assert!(run.summary().contains("imagegate"), "{}", run.summary());
    let verified = cosign_verify(&pinned, &key.public_pem);
    assert_eq!(verified.code, 0, "cosign verify: {}", verified.stderr);
    let logs = run.logs();
    for (name, value) in moto.env() {
        if name == "AWS_SECRET_ACCESS_KEY" {
            assert!(!logs.contains(&value), "the AWS secret in the log");
        }
    }
    assert!(!logs.contains("session-token-from-oidc-not-real"));

    // A second run in the same job reuses the checked binary.
    let again = run_action(
        &action_dir(),
        &[
            ("image", &image),
            ("dry-run", "true"),
            ("args", &args),
            ("checksum", &sha),
            ("download-url", "file:///nonexistent/{version}/{target}"),
        ],
        &job,
    );
    assert!(again.succeeded(), "{again:#?}");
    assert!(
        again
            .step("install")
            .output
            .stdout
            .contains("already installed")
    );
}

#[test]
fn the_checksum_check_refuses_a_wrong_binary() {
    let (dist, _archive, sha) = github::release_archive();
    let registry = Registry::start();
    let (_dir, _layout) = push(&registry, "app:v1");
    let image = registry.image("app:v1");

    // An archive with another "imagegate" in it: a script that even claims the right version.
    let evil = temp_dir();
    let stage = evil.path().join("stage");
    std::fs::create_dir_all(&stage).unwrap();
    let fake = write_file(
        &stage,
        "imagegate",
        &format!(
            "#!/bin/sh\necho imagegate {}\nexit 0\n",
            env!("CARGO_PKG_VERSION")
        ),
    );
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    github::make_archive(
        &stage,
        &evil.path().join(format!(
            "imagegate-{}-x86_64-unknown-linux-gnu.tar.gz",
            env!("CARGO_PKG_VERSION")
        )),
    );
    let job = Job::new();
    let run = run_action(
        &action_dir(),
        &[
            ("image", &image),
            ("dry-run", "true"),
            ("checksum", &sha),
            ("download-url", &file_url(evil.path())),
        ],
        &job,
    );
    assert_eq!(run.code, 3, "{run:#?}");
    assert!(!run.ran("gate"), "the gate must not run: {run:#?}");
    let install = &run.step("install").output;
    assert!(
        install
            .stdout
            .contains("::error title=imagegate install::checksum mismatch"),
        "{install:#?}"
    );
    assert!(
        !job.runner_temp.path().join("imagegate").exists(),
        "nothing is installed"
    );
    assert!(run.path_added.is_empty());

    // Without a checksum input, a version this action's checksums.txt does not list is refused.
    let run = run_action(
        &action_dir(),
        &[
            ("image", &image),
            ("dry-run", "true"),
            ("download-url", &file_url(&dist)),
        ],
        &job,
    );
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(
        run.step("install")
            .output
            .stdout
            .contains("no pinned SHA-256")
    );

    // A copy of the action whose checksums.txt lists the archive installs it without one.
    let copy = temp_dir();
    for file in ["action.yml", "install.sh", "gate.sh"] {
        std::fs::copy(action_dir().join(file), copy.path().join(file)).unwrap();
    }
    let listed = format!(
        "{}\n{sha}  imagegate-{}-x86_64-unknown-linux-gnu.tar.gz\n",
        std::fs::read_to_string(action_dir().join("checksums.txt")).unwrap(),
        env!("CARGO_PKG_VERSION")
    );
    write_file(copy.path(), "checksums.txt", &listed);
    let args = format!("--insecure-registry {}", registry.host());
    let run = run_action(
        copy.path(),
        &[
            ("image", &image),
            ("dry-run", "true"),
            ("args", &args),
            ("download-url", &file_url(&dist)),
        ],
        &job,
    );
    assert!(run.succeeded(), "{run:#?}");
    assert_eq!(run.outputs["verdict"], "pass");
}

#[test]
fn the_gates_exit_code_is_the_actions_last_word() {
    let (dist, _archive, sha) = github::release_archive();
    let registry = Registry::start();
    let (_dir, layout) = push(&registry, "app:v1");
    let job = Job::new();
    // The image is not from registry.example.com: restrict-image-registries is violated.
    checkout(&job, &["restrict-image-registries.yaml"]);
    let image = registry.image("app:v1");
    let args = format!("--insecure-registry {}", registry.host());
    let url = file_url(&dist);
    let run_with = |strict: &str, image: &str, args: &str| {
        run_action(
            &action_dir(),
            &[
                ("image", image),
                ("dry-run", "true"),
                ("policy", "policies/kyverno"),
                ("containerfile", "Containerfile"),
                ("strict", strict),
                ("args", args),
                ("checksum", &sha),
                ("download-url", &url),
            ],
            &job,
        )
    };

    // strict: the violation fails the action with exit code 1; outputs and annotations are
    // there all the same.
    let run = run_with("true", &image, &args);
    assert_eq!(run.code, 1, "{run:#?}");
    assert_eq!(run.outputs["verdict"], "fail");
    assert_eq!(
        run.outputs["ref"],
        format!("{}@{}", registry.image("app"), layout.digest)
    );
    let gate = &run.step("gate").output;
    let errors: Vec<&str> = gate
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error "))
        .collect();
    assert!(
        errors
            .iter()
            .any(|l| l.starts_with("::error file=Containerfile,title=restrict-image-registries")),
        "{}",
        gate.stdout
    );
    assert!(errors.len() <= 10);
    assert!(
        run.summary().contains("restrict-image-registries"),
        "{}",
        run.summary()
    );

    // not strict: reported, the action passes.
    let run = run_with("false", &image, &args);
    assert!(run.succeeded(), "{run:#?}");
    assert_eq!(run.outputs["verdict"], "fail");

    // A gate that could not judge fails even when not strict.
    let closed = free_port();
    let run = run_with(
        "false",
        &format!("127.0.0.1:{closed}/app:v1"),
        &format!("--insecure-registry 127.0.0.1:{closed} --retries 0"),
    );
    assert_eq!(run.code, 3, "{run:#?}");
    let run = run_with("maybe", &image, &args);
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.step("gate").output.stdout.contains("strict is 'maybe'"));
}

#[test]
fn inputs_reach_the_scripts_through_env_only() {
    let action = github::action(&action_dir());
    let mut env_text = String::new();
    let steps = action["runs"]["steps"].as_sequence().unwrap();
    for step in steps {
        assert!(!step["run"].as_str().unwrap().contains("${{"));
        for (_, v) in step["env"].as_mapping().unwrap() {
            env_text.push_str(v.as_str().unwrap());
            env_text.push('\n');
        }
    }
    for (name, _) in action["inputs"].as_mapping().unwrap() {
        let name = name.as_str().unwrap();
        assert!(
            env_text.contains(&format!("${{{{ inputs.{name} }}}}")),
            "input {name} reaches no step"
        );
    }
    assert_eq!(
        action["inputs"]["version"]["default"],
        env!("CARGO_PKG_VERSION"),
        "the action installs this release by default"
    );
    assert!(
        action["inputs"]["container-image"]["default"]
            .as_str()
            .unwrap()
            .ends_with(":{version}")
    );
    // The gate is the last step: nothing after it can turn its failure into a success.
    assert_eq!(steps.last().unwrap()["id"], "gate");
    for script in ["install.sh", "gate.sh"] {
        let mut cmd = Command::new("bash");
        cmd.arg("-n").arg(action_dir().join(script));
        run_with_timeout(cmd, Duration::from_secs(10)).expect_code(0);
    }

    // An input with shell syntax in it stays a value.
    let (dist, _archive, sha) = github::release_archive();
    let job = Job::new();
    let marker = job.workspace.path().join("pwned");
    let image = format!("x$(touch {m}); touch {m}", m = marker.display());
    let run = run_action(
        &action_dir(),
        &[
            ("image", &image),
            ("dry-run", "true"),
            ("policy", &format!("$(touch {})", marker.display())),
            ("checksum", &sha),
            ("download-url", &file_url(&dist)),
        ],
        &job,
    );
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(!marker.exists(), "an input ran as shell code");
}

#[test]
fn the_example_workflow_uploads_sarif_without_masking_the_gate() {
    let text =
        std::fs::read_to_string(Path::new(REPO).join("github-actions/examples/awskms-oidc.yml"))
            .unwrap();
    let readme = std::fs::read_to_string(Path::new(REPO).join("README.md")).unwrap();
    assert!(
        readme.contains(text.trim()),
        "README.md does not show github-actions/examples/awskms-oidc.yml as it is"
    );
    let workflow: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    assert_eq!(workflow["permissions"]["id-token"], "write");
    assert_eq!(workflow["permissions"]["security-events"], "write");
    let steps = workflow["jobs"]["image"]["steps"].as_sequence().unwrap();
    let position = |needle: &str| {
        steps
            .iter()
            .position(|s| s["uses"].as_str().is_some_and(|u| u.starts_with(needle)))
            .unwrap_or_else(|| panic!("no step uses {needle}"))
    };
    let gate = position("example/imagegate/github-actions@");
    assert!(position("aws-actions/configure-aws-credentials@") < gate);
    let upload = position("github/codeql-action/upload-sarif@");
    assert!(upload > gate);
    assert!(
        steps[upload]["if"]
            .as_str()
            .unwrap()
            .starts_with("always()")
    );
    assert_eq!(
        steps[upload]["with"]["sarif_file"],
        "${{ steps.gate.outputs.sarif }}"
    );
    // Every input the example sets is one the action declares; the key is a KMS key.
    let action = github::action(&action_dir());
    for (name, _) in steps[gate]["with"].as_mapping().unwrap() {
        assert!(
            action["inputs"].get(name).is_some(),
            "the example sets an unknown input {name:?}"
        );
    }
    assert!(
        steps[gate]["with"]["key"]
            .as_str()
            .unwrap()
            .starts_with("awskms://")
    );
    assert_eq!(
        steps[gate]["uses"],
        format!(
            "example/imagegate/github-actions@v{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    // Later steps read the pinned reference through env, never ${{ }} in run:.
    for step in steps {
        if let Some(run) = step["run"].as_str() {
            assert!(!run.contains("${{"), "{run}");
        }
    }
}
