//! imagegate's JSON report, schema version 1 (documented in the README): every finding of every
//! image, counts, and the verdict with its exit code. Fields are only ever added within a
//! schema version; a removal or change of meaning bumps `schemaVersion`.

use serde::Serialize;

use super::{ImageReport, Report};
use crate::policy::{Finding, Outcome, Verdict};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Document<'a> {
    schema_version: u32,
    tool: Tool,
    generated_at: String,
    verdict: &'static str,
    exit_code: u8,
    summary: Summary,
    images: Vec<Image<'a>>,
}

#[derive(Serialize)]
struct Tool {
    name: &'static str,
    version: &'static str,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct Summary {
    evaluated: usize,
    passed: usize,
    violated: usize,
    breaks_build: usize,
    not_evaluated: usize,
    skipped: usize,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Image<'a> {
    image: &'a str,
    digest: Option<&'a str>,
    summary: Summary,
    findings: Vec<FindingOut<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FindingOut<'a> {
    source: String,
    policy: &'a str,
    rule: Option<&'a str>,
    severity: String,
    breaks_build: bool,
    /// `passed`, `violated`, `not-evaluated` or `skipped`.
    outcome: &'static str,
    /// Why a rule was not evaluated or skipped.
    reason: Option<&'a str>,
    messages: &'a [String],
    description: &'a str,
    remediation: &'a str,
    platform: Option<String>,
    origin: &'a str,
}

fn summary<'a>(findings: impl IntoIterator<Item = &'a Finding>) -> Summary {
    let mut s = Summary::default();
    for f in findings {
        match &f.outcome {
            Outcome::Pass => s.passed += 1,
            Outcome::Violated => {
                s.violated += 1;
                if f.enforced {
                    s.breaks_build += 1;
                }
            }
            Outcome::NotEvaluated(_) => s.not_evaluated += 1,
            Outcome::Skipped(_) => s.skipped += 1,
        }
    }
    s.evaluated = s.passed + s.violated;
    s
}

fn finding(f: &Finding) -> FindingOut<'_> {
    let (outcome, reason) = match &f.outcome {
        Outcome::Pass => ("passed", None),
        Outcome::Violated => ("violated", None),
        Outcome::NotEvaluated(r) => ("not-evaluated", Some(r.as_str())),
        Outcome::Skipped(r) => ("skipped", Some(r.as_str())),
    };
    FindingOut {
        source: f.source.to_string(),
        policy: &f.policy,
        rule: f.rule.as_deref(),
        severity: f.severity.to_string(),
        breaks_build: f.breaks_build(),
        outcome,
        reason,
        messages: &f.messages,
        description: &f.description,
        remediation: &f.remediation,
        platform: f.platform.as_ref().map(|p| p.to_string()),
        origin: &f.origin,
    }
}

pub fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Incomplete => "incomplete",
    }
}

/// The JSON document for `report`, ending with a newline.
pub fn render(report: &Report, exit_code: u8) -> String {
    let images: Vec<Image> = report
        .images
        .iter()
        .map(|i: &ImageReport| Image {
            image: &i.image,
            digest: i.digest.as_deref(),
            summary: summary(&i.findings),
            findings: i.findings.iter().map(finding).collect(),
        })
        .collect();
    let doc = Document {
        schema_version: SCHEMA_VERSION,
        tool: Tool {
            name: "imagegate",
            version: env!("CARGO_PKG_VERSION"),
        },
        generated_at: report
            .generated_at
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        verdict: verdict_word(report.verdict),
        exit_code,
        summary: summary(report.images.iter().flat_map(|i| &i.findings)),
        images,
    };
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_else(|_| "{}".into());
    text.push('\n');
    text
}
