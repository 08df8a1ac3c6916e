//! Konflux's TEST_OUTPUT result (ADR-0030): `result`, `timestamp`, `successes`, `failures`,
//! `warnings`, `note`.

use serde_json::json;

use super::Report;
use crate::policy::{Outcome, Verdict};

pub fn render(report: &Report) -> String {
    let findings = || report.images.iter().flat_map(|i| &i.findings);
    let successes = findings().filter(|f| f.outcome == Outcome::Pass).count();
    let failures = findings().filter(|f| f.breaks_build()).count();
    let warnings = findings()
        .filter(|f| {
            (f.is_violation() && !f.enforced) || matches!(f.outcome, Outcome::NotEvaluated(_))
        })
        .count();
    let result = match report.verdict {
        Verdict::Fail => "FAILURE",
        Verdict::Incomplete => "ERROR",
        Verdict::Pass if warnings > 0 => "WARNING",
        Verdict::Pass => "SUCCESS",
    };
    let note = format!(
        "imagegate: {failures} violation(s) break the build, {warnings} warning(s), {successes} rule(s) passed; see the JUnit or JSON report for details"
    );
    let doc = json!({
        "result": result,
        "timestamp": report.generated_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        "successes": successes,
        "failures": failures,
        "warnings": warnings,
        "note": note,
    });
    serde_json::to_string(&doc).unwrap_or_else(|_| "{}".into())
}
