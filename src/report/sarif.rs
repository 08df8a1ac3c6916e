//! SARIF 2.1.0 for code scanning (GitHub's upload-sarif, GitLab): one rule per violated policy
//! rule, one result per violation, `security-severity` for GitHub's severity levels, and the
//! location set to the Containerfile when one is given (else the image reference, as roxctl).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Report;
use crate::policy::{Finding, Severity};

/// GitHub's scale: over 9.0 is critical, 7.0–8.9 high, 4.0–6.9 medium, below that low.
fn security_severity(s: Severity) -> &'static str {
    match s {
        Severity::Critical => "9.5",
        Severity::High => "8.0",
        Severity::Medium => "5.5",
        Severity::Low => "2.0",
    }
}

/// roxctl's mapping: CRITICAL and HIGH are errors, MEDIUM a warning, LOW a note.
fn level(f: &Finding) -> &'static str {
    match f.severity {
        Severity::Critical | Severity::High => "error",
        Severity::Medium => "warning",
        Severity::Low => "note",
    }
}

fn rule_id(f: &Finding) -> String {
    match &f.rule {
        Some(rule) => format!("{}/{}/{rule}", f.source, f.policy),
        None => format!("{}/{}", f.source, f.policy),
    }
}

/// The SARIF document; `containerfile` is a path relative to the repository root.
pub fn render(report: &Report, containerfile: Option<&str>) -> String {
    let mut rules: BTreeMap<String, Value> = BTreeMap::new();
    let mut results = Vec::new();
    for image in &report.images {
        for f in image.violations() {
            let id = rule_id(f);
            rules.entry(id.clone()).or_insert_with(|| {
                let help = format!(
                    "Policy: {}\nSeverity: {}\nBreaks the build: {}\nRemediation: {}",
                    f.policy,
                    f.severity,
                    if f.enforced { "yes" } else { "no" },
                    if f.remediation.is_empty() { "-" } else { f.remediation.as_str() }
                );
                json!({
                    "id": id,
                    "name": "PolicyViolation",
                    "shortDescription": {"text": f.policy},
                    "fullDescription": {"text": if f.description.is_empty() { f.policy.clone() } else { f.description.clone() }},
                    "help": {"text": help},
                    "defaultConfiguration": {"level": level(f)},
                    "properties": {
                        "precision": "very-high",
                        "tags": ["security", "policy-violation", f.source.to_string(), f.severity.to_string()],
                        "security-severity": security_severity(f.severity),
                    },
                })
            });
            let uri = containerfile
                .map(str::to_string)
                .unwrap_or_else(|| image.image.clone());
            let mut text = format!("{} ({}): {}", f.policy, image.image, f.messages.join("; "));
            if let Some(p) = &f.platform {
                text.push_str(&format!(" [{p}]"));
            }
            // A stable identity for the same violation across runs, so GitHub tracks it.
            let fingerprint = crate::digest::Digest::sha256_of(
                format!("{}|{}|{}", id, image.image, f.messages.join("|")).as_bytes(),
            );
            results.push(json!({
                "ruleId": id,
                "level": level(f),
                "message": {"text": text},
                "locations": [{
                    "physicalLocation": {
                        "artifactLocation": {"uri": uri},
                        "region": {"startLine": 1, "startColumn": 1},
                    },
                }],
                "partialFingerprints": {"primaryLocationLineHash": fingerprint.hex()},
            }));
        }
    }
    let rule_ids: Vec<&String> = rules.keys().collect();
    for r in &mut results {
        let index = rule_ids
            .iter()
            .position(|id| Some(id.as_str()) == r["ruleId"].as_str())
            .unwrap_or(0);
        r["ruleIndex"] = json!(index);
    }
    let doc = json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "imagegate",
                "fullName": "imagegate container image gate",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://example.invalid/imagegate",
                "rules": rules.into_values().collect::<Vec<_>>(),
            }},
            "automationDetails": {"id": format!("imagegate/{}", report.images.iter().map(|i| i.image.as_str()).collect::<Vec<_>>().join(","))},
            "results": results,
        }],
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    text
}
