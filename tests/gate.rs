//! `imagegate gate` end to end against the test bed: resolve, sign, confirm, judge, report;
//! cosign verifies what it signed; every report is valid and the reports agree; nothing is
//! half-written when the registry goes away midway; --dry-run writes nothing; the CI outputs
//! (GitHub, Tekton, GitLab) are written where those systems read them.

mod testbed;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use testbed::fixtures::{self, ImageSpec, Step};
use testbed::registry::Registry;
use testbed::stub::{Answer, Stub};
use testbed::{Imagegate, Output, raw, run_with_timeout, temp_dir, tools, write_file};

const PASSWORD: &str = "gate-password";

fn keys(dir: &Path) -> (PathBuf, PathBuf) {
    let prefix = dir.join("gate");
    Imagegate::new()
        .env("COSIGN_PASSWORD", PASSWORD)
        .args([
            "generate-key-pair",
            "--output-key-prefix",
            &prefix.display().to_string(),
        ])
        .run()
        .expect_code(0);
    (dir.join("gate.key"), dir.join("gate.pub"))
}

fn gate(registry_host: &str) -> Imagegate {
    Imagegate::new().env("COSIGN_PASSWORD", PASSWORD).args([
        "--insecure-registry",
        registry_host,
        "--retries",
        "1",
        "gate",
    ])
}

fn careless() -> ImageSpec {
    ImageSpec {
        user: String::new(),
        steps: vec![
            Step {
                created_by: "/bin/sh -c #(nop) ADD file:aa in / ".into(),
                layer: true,
            },
            Step {
                created_by: "RUN /bin/sh -c apt-get update # buildkit".into(),
                layer: true,
            },
            Step {
                created_by: "EXPOSE map[22/tcp:{}]".into(),
                layer: false,
            },
        ],
        ..ImageSpec::rich()
    }
}

fn buster() -> Option<PathBuf> {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/scanners/trivy/debian-buster.json.golden"
    ));
    if p.exists() {
        Some(p)
    } else {
        eprintln!(
            "\n*** SKIPPED: {} is absent; this test needs ../shared ***\n",
            p.display()
        );
        None
    }
}

fn cosign_verify(registry: &Registry, image: &str, public: &Path) -> Output {
    let mut cmd = Command::new(tools::cosign());
    cmd.args([
        "verify",
        "--key",
        &public.display().to_string(),
        "--insecure-ignore-tlog=true",
        "--allow-http-registry",
        &registry.image(image),
    ]);
    run_with_timeout(cmd, Duration::from_secs(60))
}

#[test]
fn a_good_image_passes_and_leaves_a_signature_cosign_verifies() {
    let registry = Registry::start();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "v1", &ImageSpec::rich());
    fixtures::push(&layout, &registry, "good:v1");
    let k = temp_dir();
    let (key, public) = keys(k.path());
    let out_dir = temp_dir();
    let digest_file = out_dir.path().join("digest");
    let out = gate(&registry.host())
        .args([
            &registry.image("good:v1"),
            "--key",
            &key.display().to_string(),
        ])
        .args(["--digest-file", &digest_file.display().to_string()])
        .run();
    out.expect_code(0);
    assert_eq!(
        std::fs::read_to_string(&digest_file).unwrap(),
        layout.digest
    );
    assert!(out.stderr.contains("it verifies"), "{}", out.stderr);
    assert!(out.stderr.contains("imagegate: PASSED"), "{}", out.stderr);
    let verified = cosign_verify(&registry, "good:v1", &public);
    assert_eq!(verified.code, 0, "cosign verify: {}", verified.stderr);
}

#[test]
fn a_bad_image_fails_with_valid_reports_that_agree() {
    let Some(buster) = buster() else { return };
    let registry = Registry::start();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "latest", &careless());
    fixtures::push(&layout, &registry, "bad:latest");
    let k = temp_dir();
    let (key, _) = keys(k.path());
    let out_dir = temp_dir();
    let file = |n: &str| out_dir.path().join(n);
    let out = gate(&registry.host())
        .args([
            &registry.image("bad:latest"),
            "--key",
            &key.display().to_string(),
        ])
        .args([
            "--vulns",
            &buster.display().to_string(),
            "--containerfile",
            "Containerfile",
        ])
        .args(["-o", "table"])
        .args(["-o", &format!("junit={}", file("junit.xml").display())])
        .args(["-o", &format!("sarif={}", file("report.sarif").display())])
        .args(["-o", &format!("json={}", file("report.json").display())])
        .run();
    out.expect_code(1);
    assert!(
        out.stdout.contains("Fixable Severity at least Important"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("imagegate: FAILED"), "{}", out.stderr);

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file("report.json")).unwrap()).unwrap();
    let violated = json["summary"]["violated"].as_u64().unwrap();
    let breaking = json["summary"]["breaksBuild"].as_u64().unwrap();
    let evaluated = json["summary"]["evaluated"].as_u64().unwrap();
    let not_evaluated = json["summary"]["notEvaluated"].as_u64().unwrap();
    assert!(breaking >= 1 && violated > breaking, "{json}");

    let junit = std::fs::read_to_string(file("junit.xml")).unwrap();
    assert!(
        junit.contains(&format!(
            r#"tests="{}" failures="{breaking}" errors="{not_evaluated}" skipped="{}""#,
            evaluated + not_evaluated,
            violated - breaking
        )),
        "{junit}"
    );
    let xsd = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/schemas/JUnit.xsd"
    ));
    let mut cmd = Command::new("xmllint");
    cmd.args(["--noout", "--schema"])
        .arg(&xsd)
        .arg(file("junit.xml"));
    let lint = run_with_timeout(cmd, Duration::from_secs(30));
    assert_eq!(lint.code, 0, "xmllint: {}", lint.stderr);

    let sarif_text = std::fs::read_to_string(file("report.sarif")).unwrap();
    let sarif: serde_json::Value = serde_json::from_str(&sarif_text).unwrap();
    assert_eq!(
        sarif["runs"][0]["results"].as_array().unwrap().len() as u64,
        violated
    );
    let schema = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/schemas/sarif-schema-2.1.0.json"
    ));
    let mut cmd = Command::new(tools::cache_dir().join("bin/moto-python"));
    cmd.args(["-c", "import json,sys,jsonschema\njsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1])))"])
        .arg(&schema)
        .arg(file("report.sarif"));
    let valid = run_with_timeout(cmd, Duration::from_secs(60));
    assert_eq!(valid.code, 0, "SARIF schema: {}", valid.stderr);
}

#[test]
fn a_registry_that_goes_away_midway_is_exit_3_and_no_report_is_written() {
    // A stand-in registry that serves the image and then stops listening: a real registry
    // cannot be stopped between two requests of one run on cue.
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let stub = Stub::start(vec![
        (("GET", "/v2/"), vec![Answer::new(200, "{}")]),
        (
            ("GET", "/v2/app/manifests/v1"),
            vec![
                Answer::new(200, manifest.to_vec())
                    .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
                    .then_stop(),
            ],
        ),
    ]);
    let k = temp_dir();
    let (key, _) = keys(k.path());
    let out_dir = temp_dir();
    let junit = out_dir.path().join("junit.xml");
    let json = out_dir.path().join("report.json");
    let out = gate(&stub.host())
        .args([
            &format!("{}/app:v1", stub.host()),
            "--key",
            &key.display().to_string(),
        ])
        .args([
            "-o",
            &format!("junit={}", junit.display()),
            "-o",
            &format!("json={}", json.display()),
        ])
        .run();
    out.expect_code(3);
    assert!(out.stderr.contains("cannot reach"), "{}", out.stderr);
    assert!(
        !junit.exists() && !json.exists(),
        "no report, not even half of one"
    );
    let leftovers: Vec<_> = std::fs::read_dir(out_dir.path()).unwrap().collect();
    assert!(
        leftovers.is_empty(),
        "no temporary files left: {leftovers:?}"
    );
}

#[test]
fn dry_run_leaves_the_registry_untouched() {
    let registry = Registry::start();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "v1", &ImageSpec::rich());
    fixtures::push(&layout, &registry, "app:v1");
    let before = raw::tags(&registry.image("app"));
    // Without --key: an ephemeral key, printed, then discarded.
    let out = gate(&registry.host())
        .args([&registry.image("app:v1"), "--dry-run"])
        .run();
    out.expect_code(0);
    assert!(out.stderr.contains("dry run: signed"), "{}", out.stderr);
    assert!(
        out.stderr.contains("-----BEGIN PUBLIC KEY-----"),
        "{}",
        out.stderr
    );
    // With --key: the key is used, still nothing is pushed.
    let k = temp_dir();
    let (key, _) = keys(k.path());
    gate(&registry.host())
        .args([
            &registry.image("app:v1"),
            "--dry-run",
            "--key",
            &key.display().to_string(),
        ])
        .run()
        .expect_code(0);
    assert_eq!(raw::tags(&registry.image("app")), before);
    // A local layout works too (the README's main command).
    gate("127.0.0.1:1")
        .args([&format!("oci:{}:v1", dir.path().display()), "--dry-run"])
        .run()
        .expect_code(0);
}

#[test]
fn a_dry_run_signature_counts_for_policies_that_ask_for_the_key() {
    let registry = Registry::start();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "v1", &ImageSpec::rich());
    fixtures::push(&layout, &registry, "app:v1");
    let k = temp_dir();
    let (key, public) = keys(k.path());
    let pem = std::fs::read_to_string(&public).unwrap();
    let policy = write_file(
        k.path(),
        "verify.yaml",
        &format!(
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: signed-by-ci\nspec:\n  validationFailureAction: Enforce\n  rules:\n    - name: verify\n      match:\n        any:\n          - resources:\n              kinds: [Pod]\n      verifyImages:\n        - imageReferences: [\"{}/*\"]\n          attestors:\n            - entries:\n                - keys:\n                    publicKeys: |-\n{}\n                    rekor:\n                      ignoreTlog: true\n",
            registry.host(),
            pem.lines()
                .map(|l| format!("                      {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    );
    // Signed with the policy's key (in memory only): the policy passes.
    gate(&registry.host())
        .args([
            &registry.image("app:v1"),
            "--dry-run",
            "--key",
            &key.display().to_string(),
        ])
        .args(["--rules", "none", "--policy", &policy.display().to_string()])
        .run()
        .expect_code(0);
    // With an ephemeral key instead, it does not.
    let out = gate(&registry.host())
        .args([
            &registry.image("app:v1"),
            "--dry-run",
            "--rules",
            "none",
            "--policy",
            &policy.display().to_string(),
        ])
        .run();
    out.expect_code(1);
    assert!(out.stdout.contains("signed-by-ci"), "{}", out.stdout);
}

/// A Kyverno policy requiring `public`'s signature on images of `host`, read from
/// `repository` when given (the policy's `repository:` field).
fn kyverno_key_policy(dir: &Path, host: &str, public: &Path, repository: Option<&str>) -> PathBuf {
    let pem = std::fs::read_to_string(public).unwrap();
    let repository = repository
        .map(|r| format!("          repository: {r}\n"))
        .unwrap_or_default();
    write_file(
        dir,
        if repository.is_empty() {
            "own.yaml"
        } else {
            "elsewhere.yaml"
        },
        &format!(
            "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: signed-by-ci\nspec:\n  validationFailureAction: Enforce\n  rules:\n    - name: verify\n      match:\n        any:\n          - resources:\n              kinds: [Pod]\n      verifyImages:\n        - imageReferences: [\"{host}/*\"]\n{repository}          attestors:\n            - entries:\n                - keys:\n                    publicKeys: |-\n{}\n                    rekor:\n                      ignoreTlog: true\n",
            pem.lines()
                .map(|l| format!("                      {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
    )
}

#[test]
fn signatures_are_judged_where_the_cluster_reads_them_not_at_cosign_repository() {
    // The pipeline stores signatures in COSIGN_REPOSITORY; the cluster's Kyverno reads the
    // image's own repository unless the policy names another. The gate judges the same way,
    // in a dry run (the signature counts where it would be stored) and for real.
    let registry = Registry::start();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "v1", &ImageSpec::rich());
    fixtures::push(&layout, &registry, "app:v1");
    let k = temp_dir();
    let (key, public) = keys(k.path());
    let signatures = registry.image("signatures");
    let own = kyverno_key_policy(k.path(), &registry.host(), &public, None);
    let elsewhere = kyverno_key_policy(k.path(), &registry.host(), &public, Some(&signatures));
    let run = |policy: &Path, dry_run: bool| {
        let mut ig = gate(&registry.host())
            .env("COSIGN_REPOSITORY", &signatures)
            .args([
                &registry.image("app:v1"),
                "--key",
                &key.display().to_string(),
            ])
            .args(["--rules", "none", "--policy", &policy.display().to_string()]);
        if dry_run {
            ig = ig.arg("--dry-run");
        }
        ig.run()
    };
    run(&own, true).expect_code(1);
    run(&elsewhere, true).expect_code(0);
    run(&own, false).expect_code(1);
    run(&elsewhere, false).expect_code(0);
    // The signature went to COSIGN_REPOSITORY, not next to the image.
    let sig_tag = format!("{}.sig", layout.digest.replace(':', "-"));
    assert!(raw::tags(&signatures).contains(&sig_tag));
    assert!(!raw::tags(&registry.image("app")).contains(&sig_tag));
}

#[test]
fn github_tekton_and_gitlab_outputs_are_written_where_they_are_read() {
    let Some(buster) = buster() else { return };
    let registry = Registry::start();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "latest", &careless());
    fixtures::push(&layout, &registry, "app:latest");
    let k = temp_dir();
    let (key, _) = keys(k.path());
    let ci = temp_dir();
    let github_output = write_file(ci.path(), "github_output", "earlier=value\n");
    let summary = write_file(ci.path(), "summary.md", "");
    let results = ci.path().join("results");
    std::fs::create_dir_all(&results).unwrap();
    let dotenv = ci.path().join("gate.env");
    let out = gate(&registry.host())
        .env("GITHUB_ACTIONS", "true")
        .env("GITHUB_OUTPUT", github_output.display().to_string())
        .env("GITHUB_STEP_SUMMARY", summary.display().to_string())
        .args([
            &registry.image("app:latest"),
            "--key",
            &key.display().to_string(),
        ])
        .args([
            "--vulns",
            &buster.display().to_string(),
            "--containerfile",
            "Containerfile",
        ])
        .args(["--results-dir", &results.display().to_string()])
        .args(["--dotenv", &dotenv.display().to_string()])
        .run();
    out.expect_code(1);
    let pinned = format!("{}@{}", registry.image("app"), layout.digest);

    let outputs = std::fs::read_to_string(&github_output).unwrap();
    assert_eq!(
        outputs,
        format!(
            "earlier=value\ndigest={}\nref={pinned}\nverdict=fail\n",
            layout.digest
        ),
        "appended, not overwritten"
    );
    let summary_text = std::fs::read_to_string(&summary).unwrap();
    assert!(
        summary_text.starts_with("## ❌ imagegate"),
        "{summary_text}"
    );
    let errors = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("::error "))
        .count();
    assert!((1..=10).contains(&errors), "{}", out.stdout);
    assert!(
        out.stdout
            .contains("::error file=Containerfile,title=Fixable Severity at least Important::"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .lines()
            .filter(|l| l.starts_with("::warning "))
            .count()
            <= 10
    );

    assert_eq!(
        std::fs::read_to_string(results.join("IMAGE_REF")).unwrap(),
        pinned,
        "verbatim, no newline"
    );
    let test_output: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(results.join("TEST_OUTPUT")).unwrap())
            .unwrap();
    assert_eq!(test_output["result"], "FAILURE");
    for field in ["timestamp", "successes", "failures", "warnings", "note"] {
        assert!(!test_output[field].is_null(), "TEST_OUTPUT lacks {field}");
    }

    assert_eq!(
        std::fs::read_to_string(&dotenv).unwrap(),
        format!(
            "IMAGEGATE_DIGEST={}\nIMAGEGATE_REF={pinned}\nIMAGEGATE_VERDICT=fail\n",
            layout.digest
        )
    );

    // --warn-only: the same reports, exit 0.
    let out = gate(&registry.host())
        .args([
            &registry.image("app:latest"),
            "--key",
            &key.display().to_string(),
        ])
        .args(["--vulns", &buster.display().to_string(), "--warn-only"])
        .run();
    out.expect_code(0);
    assert!(out.stdout.contains("Fixable Severity at least Important"));
    assert!(
        out.stderr.contains("PASSED (--warn-only)"),
        "{}",
        out.stderr
    );
}

#[test]
fn gate_needs_a_key_or_a_dry_run() {
    let out = Imagegate::new().args(["gate", "127.0.0.1:1/app:v1"]).run();
    out.expect_code(2);
    assert!(out.stderr.contains("--key"), "{}", out.stderr);
    let out = Imagegate::new()
        .args(["gate", "oci:/nonexistent:v1", "--key", "cosign.key"])
        .run();
    out.expect_code(2);
    assert!(out.stderr.contains("--dry-run"), "{}", out.stderr);
}
