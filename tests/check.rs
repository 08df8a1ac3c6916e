//! `imagegate check` end to end: images in the real test-bed registry, the built-in StackRox
//! defaults, the real Trivy reports from ../shared, signature integrations, every output.

mod testbed;

use std::path::PathBuf;

use testbed::fixtures::{self, ImageSpec, Step};
use testbed::registry::Registry;
use testbed::{Imagegate, temp_dir, write_file};

fn step(created_by: &str, layer: bool) -> Step {
    Step {
        created_by: created_by.to_string(),
        layer,
    }
}

/// Runs as root, built in 2023, ADDs its root filesystem, installs curl with apt-get after an
/// `apt-get update`, and exposes port 22 — as BuildKit writes the history.
fn careless_image() -> ImageSpec {
    ImageSpec {
        user: String::new(),
        created: "2023-05-01T12:00:00Z".into(),
        steps: vec![
            step("/bin/sh -c #(nop) ADD file:aa1b2c3d in / ", true),
            step("/bin/sh -c #(nop)  CMD [\"bash\"]", false),
            step("RUN /bin/sh -c apt-get update # buildkit", true),
            step("RUN /bin/sh -c apt-get install -y curl # buildkit", true),
            step("EXPOSE map[22/tcp:{}]", false),
        ],
        ..ImageSpec::rich()
    }
}

fn shared(path: &str) -> Option<PathBuf> {
    let p = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures")).join(path);
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

fn check(registry: &Registry) -> Imagegate {
    Imagegate::new().args(["--insecure-registry", &registry.host(), "check"])
}

/// The violated policies of a JSON report, sorted.
fn violated(json: &str) -> Vec<String> {
    let doc: serde_json::Value = serde_json::from_str(json).expect("JSON report");
    let mut names: Vec<String> = doc["images"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["outcome"] == "violated")
        .map(|f| f["policy"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn a_careless_image_shows_exactly_the_expected_default_policies() {
    let registry = Registry::start();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "latest", &careless_image());
    fixtures::push(&layout, &registry, "careless:latest");

    let out = check(&registry)
        .args([
            &registry.image("careless:latest"),
            "-o",
            "json",
            "-o",
            "table",
        ])
        .run();
    out.expect_code(0); // none of these breaks the build by default
    let json_end = out
        .stdout
        .find("\nPolicy check results")
        .expect("table after the JSON");
    let (json, table) = out.stdout.split_at(json_end);
    assert_eq!(
        violated(json),
        vec![
            "90-Day Image Age",
            "Docker CIS 4.1: Ensure That a User for the Container Has Been Created",
            "Docker CIS 4.7: Alert on Update Instruction",
            "Latest tag",
            "Secure Shell (ssh) Port Exposed in Image",
        ]
    );
    assert!(table.contains("Image has tag 'latest'"), "{table}");
    assert!(
        table.contains("Dockerfile line 'EXPOSE 22/tcp' found"),
        "{table}"
    );
    assert!(
        table.contains("(TOTAL: 5, LOW: 4, MEDIUM: 0, HIGH: 1, CRITICAL: 0)"),
        "{table}"
    );
    assert!(
        out.stderr
            .contains("WARN:\tA total of 5 policies have been violated"),
        "{}",
        out.stderr
    );
    // Policies that need a scanner report say so instead of passing.
    assert!(
        out.stderr.contains("could not be evaluated"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("needs vulnerability data: pass --vulns FILE"),
        "{}",
        out.stderr
    );

    // --require-data turns that into a failure.
    check(&registry)
        .args([&registry.image("careless:latest"), "--require-data"])
        .run()
        .expect_code(1);
}

#[test]
fn the_debian_buster_report_breaks_the_build_and_centos_7_does_not() {
    let (Some(buster), Some(centos)) = (
        shared("scanners/trivy/debian-buster.json.golden"),
        shared("scanners/trivy/centos-7.json.golden"),
    ) else {
        return;
    };
    let registry = Registry::start();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "v1", &ImageSpec::rich());
    fixtures::push(&layout, &registry, "app:v1");

    let out = check(&registry)
        .args([
            &registry.image("app:v1"),
            "--vulns",
            &buster.display().to_string(),
        ])
        .run();
    out.expect_code(1);
    assert!(
        out.stdout.contains("Fixable Severity at least Important"),
        "{}",
        out.stdout
    );
    assert!(
        out.stderr.contains(
            "ERROR:\tfailed policies found: 1 policies violated that are failing the check"
        ),
        "{}",
        out.stderr
    );

    let out = check(&registry)
        .args([
            &registry.image("app:v1"),
            "--vulns",
            &centos.display().to_string(),
        ])
        .run();
    out.expect_code(0);
    assert!(
        !out.stdout.contains("Fixable Severity at least Important"),
        "{}",
        out.stdout
    );

    // --warn-only reports the violation and exits 0.
    let out = check(&registry)
        .args([
            &registry.image("app:v1"),
            "--vulns",
            &buster.display().to_string(),
            "--warn-only",
        ])
        .run();
    out.expect_code(0);
    assert!(out.stdout.contains("Fixable Severity at least Important"));
}

#[test]
fn every_output_is_written_whole_and_the_counts_agree() {
    let Some(buster) = shared("scanners/trivy/debian-buster.json.golden") else {
        return;
    };
    let registry = Registry::start();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "latest", &careless_image());
    fixtures::push(&layout, &registry, "app:latest");
    let out_dir = temp_dir();
    let file = |n: &str| out_dir.path().join(n).display().to_string();
    let out = check(&registry)
        .args([
            &registry.image("app:latest"),
            "--vulns",
            &buster.display().to_string(),
        ])
        .args(["-o", &format!("junit={}", file("report.xml"))])
        .args(["-o", &format!("json={}", file("report.json"))])
        .args(["-o", &format!("sarif={}", file("report.sarif"))])
        .args(["-o", &format!("markdown={}", file("report.md"))])
        .args(["-o", &format!("konflux={}", file("test-output.json"))])
        .run();
    out.expect_code(1);
    assert!(
        out.stdout.is_empty(),
        "no table when every output goes to a file: {}",
        out.stdout
    );
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file("report.json")).unwrap()).unwrap();
    let violated = json["summary"]["violated"].as_u64().unwrap();
    let breaking = json["summary"]["breaksBuild"].as_u64().unwrap();
    assert_eq!(json["exitCode"], 1);
    assert_eq!(json["verdict"], "fail");
    let junit = std::fs::read_to_string(file("report.xml")).unwrap();
    assert_eq!(junit.matches("<failure ").count() as u64, breaking);
    assert_eq!(
        junit.matches("<skipped ").count() as u64,
        violated - breaking
    );
    let sarif: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file("report.sarif")).unwrap()).unwrap();
    assert_eq!(
        sarif["runs"][0]["results"].as_array().unwrap().len() as u64,
        violated
    );
    let konflux: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file("test-output.json")).unwrap()).unwrap();
    assert_eq!(konflux["result"], "FAILURE");
    assert_eq!(konflux["failures"].as_u64().unwrap(), breaking);
    let markdown = std::fs::read_to_string(file("report.md")).unwrap();
    assert!(markdown.starts_with("## ❌ imagegate"), "{markdown}");
}

#[test]
fn signature_integrations_decide_image_signature_verified_by() {
    let registry = Registry::start();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "v1", &ImageSpec::rich());
    fixtures::push(&layout, &registry, "app:v1");
    let keys = temp_dir();
    let prefix = keys.path().join("release");
    Imagegate::new()
        .env("COSIGN_PASSWORD", "pw")
        .args([
            "generate-key-pair",
            "--output-key-prefix",
            &prefix.display().to_string(),
        ])
        .run()
        .expect_code(0);
    let public = std::fs::read_to_string(keys.path().join("release.pub")).unwrap();
    let id = "io.stackrox.signatureintegration.9b2b3a1c-1111-4a5b-8c6d-0123456789ab";
    let integrations = write_file(
        keys.path(),
        "integrations.json",
        &serde_json::json!({"integrations": [{"id": id, "name": "release key", "cosign": {"publicKeys": [{"name": "release", "publicKeyPemEnc": public}]}}]}).to_string(),
    );
    let policy = write_file(
        keys.path(),
        "signed.json",
        &serde_json::json!({
            "name": "Images must be signed by the release key",
            "description": "Only signed images go to production.",
            "remediation": "Sign the image in the release pipeline.",
            "categories": ["Supply Chain Security"],
            "lifecycleStages": ["BUILD"],
            "severity": "HIGH_SEVERITY",
            "enforcementActions": ["FAIL_BUILD_ENFORCEMENT"],
            "policyVersion": "1.1",
            "policySections": [{"policyGroups": [{"fieldName": "Image Signature Verified By", "values": [{"value": id}]}]}],
        })
        .to_string(),
    );
    let run = || {
        check(&registry)
            .args([
                &registry.image("app:v1"),
                "--rules",
                &policy.display().to_string(),
            ])
            .args([
                "--signature-integrations",
                &integrations.display().to_string(),
            ])
            .run()
    };
    let out = run();
    out.expect_code(1);
    assert!(
        out.stdout
            .contains("Images must be signed by the release key"),
        "{}",
        out.stdout
    );

    Imagegate::new()
        .env("COSIGN_PASSWORD", "pw")
        .args([
            "--insecure-registry",
            &registry.host(),
            "sign",
            &registry.image("app:v1"),
        ])
        .args([
            "--key",
            &keys.path().join("release.key").display().to_string(),
        ])
        .run()
        .expect_code(0);
    let out = run();
    out.expect_code(0);
    assert!(out.stdout.contains("(TOTAL: 0"), "{}", out.stdout);
}

#[test]
fn several_images_are_checked_at_once_and_an_index_per_platform() {
    let registry = Registry::start();
    let (a, b) = (temp_dir(), temp_dir());
    let single = fixtures::write_image(a.path(), "latest", &careless_image());
    fixtures::push(&single, &registry, "one:latest");
    let index = fixtures::write_index(
        b.path(),
        "v2",
        &[
            ImageSpec::rich(),
            ImageSpec {
                user: String::new(),
                ..ImageSpec::rich().for_platform("arm64", Some("v8"))
            },
        ],
    );
    fixtures::push(&index, &registry, "two:v2");
    let out = check(&registry)
        .args([&registry.image("one:latest"), &registry.image("two:v2")])
        .run();
    out.expect_code(0);
    assert_eq!(
        out.stdout
            .matches("Policy check results for image:")
            .count(),
        2,
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("[linux/arm64/v8]"), "{}", out.stdout);

    // The arm64 image runs as root, the amd64 one does not: only its finding says so.
    let out = check(&registry)
        .args([&registry.image("two:v2"), "-o", "json"])
        .run();
    out.expect_code(0);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let root_user: Vec<(&str, &str)> = doc["images"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["policy"].as_str().unwrap().starts_with("Docker CIS 4.1"))
        .map(|f| {
            (
                f["platform"].as_str().unwrap(),
                f["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        root_user,
        vec![("linux/amd64", "passed"), ("linux/arm64/v8", "violated")]
    );
}

#[test]
fn bad_policies_and_reports_are_exit_2_naming_the_file() {
    let registry = Registry::start();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "v1", &ImageSpec::rich());
    fixtures::push(&layout, &registry, "app:v1");
    let files = temp_dir();
    let broken = write_file(
        files.path(),
        "broken.json",
        "{\n  \"name\": \"x\",\n  \"severity\": \n}\n",
    );
    let out = check(&registry)
        .args([
            &registry.image("app:v1"),
            "--rules",
            &broken.display().to_string(),
        ])
        .run();
    out.expect_code(2);
    assert!(
        out.stderr.contains("broken.json:4:1"),
        "file, line and column: {}",
        out.stderr
    );

    let invalid = write_file(
        files.path(),
        "invalid.json",
        r#"{"name":"No version","severity":"LOW_SEVERITY","categories":["x"],"lifecycleStages":["BUILD"],"policySections":[{"policyGroups":[{"fieldName":"Image Tag","values":[{"value":"latest"}]}]}]}"#,
    );
    let out = check(&registry)
        .args([
            &registry.image("app:v1"),
            "--rules",
            &invalid.display().to_string(),
        ])
        .run();
    out.expect_code(2);
    assert!(
        out.stderr.contains("invalid.json") && out.stderr.contains("No version"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("policyVersion"), "{}", out.stderr);

    let not_a_report = write_file(files.path(), "vulns.json", r#"{"hello": "world"}"#);
    let out = check(&registry)
        .args([
            &registry.image("app:v1"),
            "--vulns",
            &not_a_report.display().to_string(),
        ])
        .run();
    out.expect_code(2);
    assert!(out.stderr.contains("vulns.json"), "{}", out.stderr);

    let out = check(&registry)
        .args([
            &registry.image("app:v1"),
            "--categories",
            "No Such Category",
        ])
        .run();
    out.expect_code(2);
    assert!(out.stderr.contains("No Such Category"), "{}", out.stderr);

    let out = check(&registry)
        .args([&registry.image("app:v1"), "-o", "xml"])
        .run();
    out.expect_code(2);
    assert!(
        out.stderr.contains("unknown output format 'xml'"),
        "{}",
        out.stderr
    );
}
