//! The table and summary lines against roxctl's own output for the same alerts
//! (../shared/fixtures/stackrox/roxctl-image-check, from roxctl's test data).

use std::path::PathBuf;

use imagegate::policy::{Finding, Outcome, Severity, Source};
use imagegate::report::ImageReport;
use imagegate::report::table::{self, TableStyle};

fn fixtures() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/stackrox/roxctl-image-check"
    ));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "\n*** SKIPPED: {} is absent; the roxctl compatibility tests need ../shared ***\n",
            dir.display()
        );
        None
    }
}

/// The findings behind a roxctl JSON result, as imagegate's model holds them.
fn findings_from_roxctl_json(path: &PathBuf) -> (String, Vec<Finding>) {
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    let result = &json["results"][0];
    let findings = result["violatedPolicies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| Finding {
            source: Source::StackRox,
            policy: p["name"].as_str().unwrap().into(),
            rule: None,
            severity: match p["severity"].as_str().unwrap() {
                "LOW" => Severity::Low,
                "MEDIUM" => Severity::Medium,
                "HIGH" => Severity::High,
                _ => Severity::Critical,
            },
            enforced: p["failingCheck"].as_bool().unwrap(),
            outcome: Outcome::Violated,
            messages: p["violation"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_string())
                .collect(),
            description: p["description"].as_str().unwrap_or_default().into(),
            remediation: p["remediation"].as_str().unwrap_or_default().into(),
            platform: None,
            origin: "roxctl fixture".into(),
        })
        .collect();
    ("nginx:test".to_string(), findings)
}

#[test]
fn the_table_is_roxctls_table() {
    let Some(dir) = fixtures() else { return };
    for case in ["testAlertsWithFailure", "testAlertsWithoutFailure"] {
        let (image, mut findings) = findings_from_roxctl_json(&dir.join(format!("{case}.json")));
        // Shuffle: the renderer must sort as roxctl does, not rely on input order.
        findings.reverse();
        let report = ImageReport {
            image,
            digest: None,
            findings,
        };
        let ours = table::render(&report, TableStyle::default());
        let theirs = std::fs::read_to_string(dir.join(format!("{case}.txt"))).unwrap();
        assert_eq!(ours.trim_end(), theirs.trim_end(), "{case}:\n{ours}");
    }
}

#[test]
fn the_stderr_summary_is_roxctls() {
    let Some(dir) = fixtures() else { return };
    let (image, findings) = findings_from_roxctl_json(&dir.join("testAlertsWithFailure.json"));
    let lines = table::summary_lines(&[ImageReport {
        image,
        digest: None,
        findings,
    }]);
    assert_eq!(
        lines,
        vec![
            "WARN:\tA total of 7 policies have been violated".to_string(),
            "ERROR:\tfailed policies found: 1 policies violated that are failing the check"
                .to_string(),
            "ERROR:\tPolicy \"policy 1\" - Possible remediation: \"policy 1 for testing\""
                .to_string(),
        ]
    );
}
