//! The result model both rule families produce: a [`Finding`] per evaluated policy rule, and the
//! [`Verdict`] they add up to.

pub mod kyverno;
pub mod stackrox;

use std::fmt;

use serde::Serialize;

use crate::oci::Platform;

/// Where a rule comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Source {
    /// A StackRox/ACS policy (exported JSON, or imagegate's built-in defaults).
    StackRox,
    /// A Kyverno ClusterPolicy or Policy.
    Kyverno,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::StackRox => "stackrox",
            Source::Kyverno => "kyverno",
        })
    }
}

/// Severity as roxctl prints it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Low => "LOW",
            Severity::Medium => "MEDIUM",
            Severity::High => "HIGH",
            Severity::Critical => "CRITICAL",
        })
    }
}

/// What evaluating one rule against one image gave.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum Outcome {
    /// The image satisfies the rule.
    Pass,
    /// The image violates the rule; `Finding::messages` say how.
    Violated,
    /// The rule could not be judged: data it needs is missing (no scanner report, a keyless
    /// attestor offline, a KMS that could not be reached). Never counted as a pass.
    NotEvaluated(String),
    /// The rule does not apply here (another lifecycle stage, a disabled policy, an excluded
    /// image or namespace), with the reason.
    Skipped(String),
}

/// One evaluated rule of one policy, for one image (and platform).
#[derive(Clone, Debug, Serialize)]
pub struct Finding {
    pub source: Source,
    /// The policy's name.
    pub policy: String,
    /// The rule within the policy (Kyverno rules; `None` for StackRox policies).
    pub rule: Option<String>,
    pub severity: Severity,
    /// A violation breaks the build (StackRox FAIL_BUILD_ENFORCEMENT, Kyverno Enforce).
    pub enforced: bool,
    pub outcome: Outcome,
    /// How the image violates the rule, one line each, in the source's own wording.
    pub messages: Vec<String>,
    pub description: String,
    pub remediation: String,
    /// The platform judged, when an index was judged per platform.
    pub platform: Option<Platform>,
    /// The file the policy came from (`builtin` for the built-in set).
    pub origin: String,
}

impl Finding {
    pub fn is_violation(&self) -> bool {
        self.outcome == Outcome::Violated
    }

    /// A violation that breaks the build.
    pub fn breaks_build(&self) -> bool {
        self.enforced && self.is_violation()
    }
}

/// What the findings add up to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Verdict {
    /// No rule that breaks the build was violated (warnings may exist).
    Pass,
    /// At least one rule that breaks the build was violated.
    Fail,
    /// Some rule that matters could not be evaluated and `--require-data` asked for all of them.
    Incomplete,
}

impl Verdict {
    /// The verdict for `findings`; rules not evaluated count as incomplete only when
    /// `require_data` is set.
    pub fn of(findings: &[Finding], require_data: bool) -> Verdict {
        if findings.iter().any(Finding::breaks_build) {
            Verdict::Fail
        } else if require_data
            && findings
                .iter()
                .any(|f| matches!(f.outcome, Outcome::NotEvaluated(_)))
        {
            Verdict::Incomplete
        } else {
            Verdict::Pass
        }
    }
}
