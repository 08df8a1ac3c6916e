//! Every report format for one fixed set of findings: snapshots of what users read, and the
//! JUnit and SARIF documents checked against their schemas (../shared/schemas) with xmllint and
//! the jsonschema validator from the test bed.

mod testbed;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use chrono::TimeZone;
use imagegate::oci::Platform;
use imagegate::policy::{Finding, Outcome, Severity, Source, Verdict};
use imagegate::report::table::TableStyle;
use imagegate::report::{ImageReport, Report, json, junit, konflux, markdown, sarif, table};
use testbed::{run_with_timeout, temp_dir, tools, write_file};

fn finding(
    source: Source,
    policy: &str,
    severity: Severity,
    enforced: bool,
    outcome: Outcome,
    messages: &[&str],
) -> Finding {
    Finding {
        source,
        policy: policy.into(),
        rule: (source == Source::Kyverno).then(|| "check-image".to_string()),
        severity,
        enforced,
        outcome,
        messages: messages.iter().map(|m| m.to_string()).collect(),
        description: format!("Checks {policy} <& friends>"),
        remediation: format!("Fix {policy} | carefully"),
        platform: None,
        origin: "policies/test.json".into(),
    }
}

fn report() -> Report {
    let mut arm = finding(
        Source::StackRox,
        "Docker CIS 4.1: Ensure That a User for the Container Has Been Created",
        Severity::Low,
        false,
        Outcome::Violated,
        &["Image has user 'root'"],
    );
    arm.platform = Some(Platform::parse("linux/arm64").unwrap());
    Report {
        generated_at: chrono::Utc
            .with_ymd_and_hms(2026, 11, 24, 12, 0, 0)
            .unwrap(),
        verdict: Verdict::Fail,
        images: vec![ImageReport {
            image: "registry.example.com/team/app:1.0".into(),
            digest: Some(
                "sha256:ffab9c7778f749efed6a7873fb2bf159f8d4101d5946980f5fe0d0fa00d7032b".into(),
            ),
            findings: vec![
                finding(
                    Source::StackRox,
                    "Fixable Severity at least Important",
                    Severity::High,
                    true,
                    Outcome::Violated,
                    &[
                        "Fixable CVE-2021-44228 (CVSS 10) (severity Critical) found in component 'log4j' (version 2.14.1), resolved by version 2.15.0",
                        "Fixable CVE-2022-0778 (CVSS 7.5) (severity Important) found in component 'openssl' (version 1.1.1d), resolved by version 1.1.1n",
                    ],
                ),
                finding(
                    Source::StackRox,
                    "Latest tag",
                    Severity::Low,
                    false,
                    Outcome::Pass,
                    &[],
                ),
                arm,
                finding(
                    Source::Kyverno,
                    "restrict-image-registries",
                    Severity::Medium,
                    true,
                    Outcome::Violated,
                    &[
                        "validation error: Unknown image registry. rule validate-registries failed at path /spec/containers/0/image/",
                    ],
                ),
                finding(
                    Source::Kyverno,
                    "verify-image",
                    Severity::High,
                    true,
                    Outcome::NotEvaluated(
                        "keyless verification needs Fulcio and Rekor online".into(),
                    ),
                    &[],
                ),
                finding(
                    Source::StackRox,
                    "Apache Struts: CVE-2017-5638",
                    Severity::Critical,
                    false,
                    Outcome::Skipped("DEPLOY policy: not evaluated at build time".into()),
                    &[],
                ),
            ],
        }],
    }
}

#[test]
fn table_snapshot() {
    let r = report();
    insta::assert_snapshot!("table", table::render(&r.images[0], TableStyle::default()));
    insta::assert_snapshot!(
        "table_80_columns",
        table::render(
            &r.images[0],
            TableStyle {
                color: false,
                width: Some(80)
            }
        )
    );
    insta::assert_snapshot!("table_stderr", table::summary_lines(&r.images).join("\n"));
}

#[test]
fn json_snapshot() {
    insta::assert_snapshot!("json", json::render(&report(), 1));
}

#[test]
fn markdown_snapshot() {
    insta::assert_snapshot!("markdown", markdown::render(&report()));
}

#[test]
fn konflux_snapshot() {
    insta::assert_snapshot!("konflux", konflux::render(&report()));
}

fn schema(name: &str) -> Option<PathBuf> {
    let path = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/schemas")).join(name);
    if path.exists() {
        Some(path)
    } else {
        eprintln!(
            "\n*** SKIPPED: {} is absent; schema validation needs ../shared ***\n",
            path.display()
        );
        None
    }
}

#[test]
fn junit_is_valid_against_the_ant_xsd() {
    let text = junit::render(&report());
    insta::assert_snapshot!("junit", text);
    let Some(xsd) = schema("JUnit.xsd") else {
        return;
    };
    let dir = temp_dir();
    let file = write_file(dir.path(), "report.xml", &text);
    let mut cmd = Command::new("xmllint");
    cmd.args(["--noout", "--schema"]).arg(&xsd).arg(&file);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    assert_eq!(out.code, 0, "xmllint: {}", out.stderr);
    assert!(out.stderr.contains("validates"), "{}", out.stderr);
    // The counts GitLab reads: for the image, 4 evaluated rules, 2 failures, 1 error; for its
    // arm64 platform, 1 rule violated as a warning (skipped).
    assert!(
        text.contains(r#"tests="4" failures="2" errors="1" skipped="0""#),
        "{text}"
    );
    assert!(
        text.contains(r#"tests="1" failures="0" errors="0" skipped="1""#),
        "{text}"
    );
}

#[test]
fn an_empty_junit_report_is_valid_too() {
    let mut r = report();
    r.images[0].findings.clear();
    let text = junit::render(&r);
    let Some(xsd) = schema("JUnit.xsd") else {
        return;
    };
    let dir = temp_dir();
    let file = write_file(dir.path(), "report.xml", &text);
    let mut cmd = Command::new("xmllint");
    cmd.args(["--noout", "--schema"]).arg(&xsd).arg(&file);
    let out = run_with_timeout(cmd, Duration::from_secs(30));
    assert_eq!(out.code, 0, "xmllint: {}\n{text}", out.stderr);
}

#[test]
fn sarif_is_valid_against_the_schema_and_has_what_github_needs() {
    let text = sarif::render(&report(), Some("Containerfile"));
    insta::assert_snapshot!("sarif", text);
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let run = &doc["runs"][0];
    assert_eq!(
        run["results"].as_array().unwrap().len(),
        3,
        "one result per violation"
    );
    for rule in run["tool"]["driver"]["rules"].as_array().unwrap() {
        for field in ["id", "shortDescription", "fullDescription", "help"] {
            assert!(!rule[field].is_null(), "rule lacks {field}");
        }
        assert!(rule["properties"]["security-severity"].is_string());
    }
    assert_eq!(
        run["results"][0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "Containerfile"
    );
    let Some(schema) = schema("sarif-schema-2.1.0.json") else {
        return;
    };
    let dir = temp_dir();
    let file = write_file(dir.path(), "report.sarif", &text);
    let script = "import json,sys,jsonschema\nschema=json.load(open(sys.argv[1]))\ndoc=json.load(open(sys.argv[2]))\njsonschema.validate(doc, schema)\nprint('valid')";
    let mut cmd = Command::new(tools::cache_dir().join("bin/moto-python"));
    cmd.args(["-c", script]).arg(&schema).arg(&file);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    assert_eq!(out.code, 0, "jsonschema: {}{}", out.stdout, out.stderr);
    // An image with no violations gives an empty, still valid, document (roxctl once failed here).
    let mut clean = report();
    clean.images[0]
        .findings
        .retain(|f| f.outcome == Outcome::Pass);
    let empty = write_file(dir.path(), "empty.sarif", &sarif::render(&clean, None));
    let mut cmd = Command::new(tools::cache_dir().join("bin/moto-python"));
    cmd.args(["-c", script]).arg(&schema).arg(&empty);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    assert_eq!(
        out.code, 0,
        "jsonschema (empty): {}{}",
        out.stdout, out.stderr
    );
}
