//! What users read: the findings of one run in every format a pipeline wants. Each format is
//! its own module; all of them render the same [`Report`].

pub mod ci;
pub mod json;
pub mod junit;
pub mod konflux;
pub mod markdown;
pub mod sarif;
pub mod table;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::policy::{Finding, Outcome, Severity, Verdict};

/// Everything a run found, for every image it judged.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub generated_at: DateTime<Utc>,
    pub images: Vec<ImageReport>,
    pub verdict: Verdict,
}

/// The findings for one image.
#[derive(Clone, Debug, Serialize)]
pub struct ImageReport {
    /// The image as the user named it.
    pub image: String,
    /// The digest judged, when it was resolved.
    pub digest: Option<String>,
    /// Every evaluated rule: passes, violations, rules not evaluated and skipped ones.
    pub findings: Vec<Finding>,
}

impl ImageReport {
    /// Violations, most severe first, then by policy name (as roxctl sorts).
    pub fn violations(&self) -> Vec<&Finding> {
        let mut v: Vec<&Finding> = self.findings.iter().filter(|f| f.is_violation()).collect();
        v.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then_with(|| a.policy.cmp(&b.policy))
                .then_with(|| a.rule.cmp(&b.rule))
        });
        v
    }

    pub fn not_evaluated(&self) -> Vec<&Finding> {
        self.findings
            .iter()
            .filter(|f| matches!(f.outcome, Outcome::NotEvaluated(_)))
            .collect()
    }
}

/// Violations counted by severity, as roxctl's summary line has them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub total: usize,
    pub low: usize,
    pub medium: usize,
    pub high: usize,
    pub critical: usize,
}

impl Counts {
    pub fn of<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Counts {
        let mut c = Counts::default();
        for f in findings {
            c.total += 1;
            match f.severity {
                Severity::Low => c.low += 1,
                Severity::Medium => c.medium += 1,
                Severity::High => c.high += 1,
                Severity::Critical => c.critical += 1,
            }
        }
        c
    }
}
