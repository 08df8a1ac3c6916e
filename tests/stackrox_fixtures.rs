//! The StackRox engine against the real data in /work/shared/fixtures: StackRox's 89 default
//! policies, and Trivy's and Grype's own report fixtures. Each test skips (loudly) when the
//! fixtures folder is absent.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, TimeZone, Utc};
use imagegate::digest::Digest;
use imagegate::facts::scan::read_report;
use imagegate::facts::{ImageConfig, ImageFacts, PlatformFacts, ScanReport, SignatureFacts};
use imagegate::policy::stackrox::{self, EvalOptions, PolicySet};
use imagegate::policy::{Finding, Outcome};
use imagegate::reference::ImageRef;
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures");

/// The fixture folder `sub`, or `None` (with a loud message) when it is absent.
fn fixtures(sub: &str) -> Option<PathBuf> {
    let path = Path::new(FIXTURES).join(sub);
    if path.is_dir() {
        Some(path)
    } else {
        eprintln!(
            "SKIPPED: fixture folder {} is absent; this test needs the shared fixtures",
            path.display()
        );
        None
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).single().unwrap()
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    files.sort();
    files
}

fn facts(reference: &str, config: ImageConfig, scan: Option<ScanReport>) -> ImageFacts {
    let digest = Digest::sha256_of(reference.as_bytes());
    ImageFacts {
        name: ImageRef::parse(reference).unwrap(),
        digest: digest.clone(),
        platforms: vec![PlatformFacts {
            platform: None,
            digest,
            config,
        }],
        signatures: SignatureFacts::default(),
        signatures_elsewhere: Default::default(),
        scan,
    }
}

fn sample_config() -> ImageConfig {
    ImageConfig {
        created: Some(Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).single().unwrap()),
        user: String::new(),
        labels: BTreeMap::from([("team".to_string(), "web".to_string())]),
        history: vec![
            "/bin/sh -c #(nop) ADD file:abc in / ".to_string(),
            "/bin/sh -c apt-get update".to_string(),
            "/bin/sh -c #(nop)  EXPOSE 22/tcp".to_string(),
            "/bin/sh -c #(nop)  CMD [\"bash\"]".to_string(),
        ],
        ..ImageConfig::default()
    }
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn has_build_stage(policy: &Value) -> bool {
    policy["lifecycleStages"]
        .as_array()
        .is_some_and(|s| s.iter().any(|v| v == "BUILD"))
}

fn finding<'a>(findings: &'a [Finding], policy: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.policy == policy)
        .unwrap_or_else(|| panic!("no finding for {policy}"))
}

#[test]
fn all_default_policies_load_and_build_ones_evaluate() {
    let Some(dir) = fixtures("stackrox/policies") else {
        return;
    };
    let paths = files(&dir, ".json");
    assert_eq!(
        paths.len(),
        89,
        "the reference says StackRox ships 89 policies"
    );

    // Counts taken from the files themselves, independently of the engine.
    let raw: Vec<Value> = paths.iter().map(|p| json(p)).collect();
    let build = raw.iter().filter(|p| has_build_stage(p)).count();
    let build_enabled = raw
        .iter()
        .filter(|p| has_build_stage(p) && p["disabled"] != Value::Bool(true))
        .count();
    // And the reference's table (§3): 21 BUILD policies, 8 of them disabled.
    assert_eq!((build, build_enabled), (21, 13));

    let set = PolicySet::load(std::slice::from_ref(&dir)).unwrap();
    assert_eq!(set.len(), 89);
    assert!(set.warnings().is_empty(), "{:?}", set.warnings());

    let image = facts("docker.io/library/nginx:latest", sample_config(), None);
    let findings = stackrox::evaluate(&set, &image, &EvalOptions::new(now()));
    assert_eq!(
        findings.len(),
        89,
        "one finding per policy for a single-platform image"
    );

    let skipped_stage = findings
        .iter()
        .filter(|f| matches!(&f.outcome, Outcome::Skipped(r) if r.ends_with("policy: not evaluated at build time")))
        .count();
    let skipped_disabled = findings
        .iter()
        .filter(|f| matches!(&f.outcome, Outcome::Skipped(r) if r.starts_with("disabled")))
        .count();
    let evaluated = findings
        .iter()
        .filter(|f| !matches!(f.outcome, Outcome::Skipped(_)))
        .count();
    assert_eq!(skipped_stage, 89 - build);
    assert_eq!(skipped_disabled, build - build_enabled);
    assert_eq!(evaluated, build_enabled);

    // Spot checks on the sample image (root user, tag latest, apt-get update, port 22, no scan).
    let violated = |name: &str| finding(&findings, name).outcome == Outcome::Violated;
    assert!(violated("Latest tag"));
    assert!(violated(
        "Docker CIS 4.1: Ensure That a User for the Container Has Been Created"
    ));
    assert!(violated("Docker CIS 4.7: Alert on Update Instruction"));
    assert!(violated("Secure Shell (ssh) Port Exposed in Image"));
    assert_eq!(
        finding(&findings, "90-Day Image Age").outcome,
        Outcome::Violated,
        "created 2024-01-02, judged 2024-06-01"
    );
    assert_eq!(
        finding(&findings, "Insecure specified in CMD").outcome,
        Outcome::Pass
    );
    let no_scan = finding(&findings, "Fixable Severity at least Important");
    assert!(
        matches!(&no_scan.outcome, Outcome::NotEvaluated(r) if r.contains("--vulns")),
        "{:?}",
        no_scan.outcome
    );
    assert!(no_scan.enforced);
    assert_eq!(
        finding(&findings, "Latest tag").messages,
        ["Image has tag 'latest'"]
    );
    assert_eq!(
        finding(&findings, "OpenShift: Central Admin Secret Accessed").outcome,
        Outcome::Skipped("RUNTIME policy: not evaluated at build time".into())
    );
}

/// The fields of a policy that decide its verdicts, as plain JSON for comparison.
fn decisive(policy: &Value) -> Value {
    let sections: Vec<Value> = policy["policySections"]
        .as_array()
        .map(|sections| {
            sections
                .iter()
                .map(|s| {
                    let groups: Vec<Value> = s["policyGroups"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|g| {
                            serde_json::json!({
                                "fieldName": g["fieldName"],
                                "and": g["booleanOperator"] == "AND",
                                "negate": g["negate"] == true,
                                "values": g["values"],
                            })
                        })
                        .collect();
                    Value::Array(groups)
                })
                .collect()
        })
        .unwrap_or_default();
    let enforcement = policy["enforcementActions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    serde_json::json!({
        "id": policy["id"],
        "name": policy["name"],
        "severity": policy["severity"],
        "disabled": policy["disabled"] == true,
        "enforcement": enforcement,
        "lifecycleStages": policy["lifecycleStages"],
        "categories": policy["categories"],
        "sections": sections,
    })
}

#[test]
fn builtins_match_stackrox_defaults() {
    let Some(dir) = fixtures("stackrox/policies") else {
        return;
    };
    let builtin_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/policy/stackrox/builtin");
    let builtins = files(&builtin_dir, ".json");
    assert_eq!(builtins.len(), 21);
    for path in builtins {
        let name = path.file_name().unwrap();
        let ours = json(&path);
        let upstream = json(&dir.join(name));
        assert_eq!(
            decisive(&ours),
            decisive(&upstream),
            "{} differs from StackRox's",
            name.to_string_lossy()
        );
        // The prose is imagegate's own.
        for field in ["description", "rationale", "remediation"] {
            assert_ne!(
                ours[field],
                upstream[field],
                "{}: {field} copies StackRox's text",
                name.to_string_lossy()
            );
        }
    }
    // Every BUILD default of StackRox has a built-in.
    let upstream_build = files(&dir, ".json")
        .into_iter()
        .filter(|p| has_build_stage(&json(p)))
        .count();
    assert_eq!(upstream_build, PolicySet::builtin().len());
}

#[test]
fn scanner_fixtures_load() {
    let (Some(trivy), Some(grype)) = (fixtures("scanners/trivy"), fixtures("scanners/grype"))
    else {
        return;
    };
    let mut reports = files(&trivy, ".json.golden");
    reports.extend(files(&grype, ".json"));
    assert_eq!(reports.len(), 7);
    for path in reports {
        let report = read_report(&path).unwrap_or_else(|e| panic!("{e}"));
        let raw = json(&path);
        // Every vulnerability the file lists is somewhere in the report (duplicates merged).
        let listed = match raw.get("matches") {
            Some(matches) => matches.as_array().unwrap().len(),
            None => raw["Results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["Vulnerabilities"].as_array().map_or(0, Vec::len))
                .sum(),
        };
        let read: usize = report
            .components
            .iter()
            .map(|c| c.vulnerabilities.len())
            .sum();
        assert!(
            read > 0 && read <= listed,
            "{}: {read} of {listed}",
            path.display()
        );
        assert!(report.scanned_at.is_some(), "{}", path.display());
        assert!(report.operating_system.is_some(), "{}", path.display());
    }
}

#[test]
fn debian_buster_breaks_the_build_and_centos_7_does_not() {
    let Some(trivy) = fixtures("scanners/trivy") else {
        return;
    };
    let set = PolicySet::load(&[PathBuf::from("builtin")]).unwrap();
    let judge = |file: &str| {
        let report = read_report(&trivy.join(file)).unwrap();
        let image = facts(
            "ghcr.io/aquasecurity/trivy-test-images:x",
            sample_config(),
            Some(report),
        );
        stackrox::evaluate(&set, &image, &EvalOptions::new(now()))
    };

    // Debian buster: CVE-2019-18224 in libidn2-0 is CRITICAL with a fix (2.0.5-1+deb10u1).
    let debian = judge("debian-buster.json.golden");
    let important = finding(&debian, "Fixable Severity at least Important");
    assert_eq!(important.outcome, Outcome::Violated);
    assert!(important.enforced && important.breaks_build());
    assert_eq!(
        important.messages,
        [
            "Fixable CVE-2019-18224 (CVSS 9.8) (severity Critical) found in component 'libidn2-0' (version 2.0.5-1), resolved by version 2.0.5-1+deb10u1"
        ]
    );
    assert_eq!(important.origin, "builtin");

    // CentOS 7: the fixable vulnerabilities are MEDIUM and LOW only.
    let centos = judge("centos-7.json.golden");
    let important = finding(&centos, "Fixable Severity at least Important");
    assert_eq!(important.outcome, Outcome::Pass);
    assert!(!centos.iter().any(Finding::breaks_build));
}

#[test]
fn grype_reports_feed_the_same_criteria() {
    let Some(grype) = fixtures("scanners/grype") else {
        return;
    };
    let set = PolicySet::from_json(
        r#"{"name":"Fixable high in uri","policyVersion":"1.1","severity":"HIGH_SEVERITY","categories":["Test"],
            "lifecycleStages":["BUILD"],"enforcementActions":["FAIL_BUILD_ENFORCEMENT"],
            "policySections":[{"policyGroups":[
              {"fieldName":"Image Component","values":[{"value":"uri="}]},
              {"fieldName":"Fixable","values":[{"value":"true"}]},
              {"fieldName":"Severity","values":[{"value":">= IMPORTANT"}]}]}]}"#,
        "test.json",
    )
    .unwrap();
    // chainguard-ruby-test.json: uri 0.10.1 has CVE-2023-28755 (High), fixed in 0.10.2 per the
    // GitHub advisory and of unknown fix state per NVD; the two records merge into one.
    let report = read_report(&grype.join("chainguard-ruby-test.json")).unwrap();
    let image = facts(
        "cgr.dev/chainguard/ruby:latest",
        ImageConfig::default(),
        Some(report),
    );
    let findings = stackrox::evaluate(&set, &image, &EvalOptions::new(now()));
    assert_eq!(findings[0].outcome, Outcome::Violated);
    assert_eq!(
        findings[0].messages,
        [
            "Fixable CVE-2023-28755 (CVSS 7.5) (severity Important) found in component 'uri' (version 0.10.1), resolved by version 0.10.2",
            "Image includes component 'uri' (version 0.10.1)"
        ]
    );
}
