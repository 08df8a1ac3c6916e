//! StackRox/ACS policies: the exported JSON, validated as StackRox validates it, evaluated
//! offline for the BUILD lifecycle against [`crate::facts::ImageFacts`], the way
//! `roxctl image check` would have Central evaluate them.
//!
//! # Use
//!
//! ```no_run
//! use std::path::PathBuf;
//! use imagegate::policy::stackrox::{self, EvalOptions, PolicySet, SignatureIntegrations};
//! # fn facts() -> imagegate::facts::ImageFacts { unimplemented!() }
//! # fn main() -> Result<(), stackrox::StackRoxError> {
//! // `builtin` adds the default BUILD policies; files and folders add exported policies.
//! let mut set = PolicySet::load(&[PathBuf::from("builtin"), PathBuf::from("policies/")])?;
//! set.filter_categories(&["Vulnerability Management".to_string()])?; // roxctl --categories
//! let integrations = SignatureIntegrations::load("integrations.json".as_ref())?;
//! // The keys the gather step must verify the image's signatures with:
//! let keys = stackrox::required_keys(&set, Some(&integrations));
//! # let _ = keys;
//! let options = EvalOptions { now: chrono::Utc::now(), integrations: Some(integrations) };
//! let findings = stackrox::evaluate(&set, &facts(), &options);
//! # let _ = findings;
//! # Ok(()) }
//! ```
//!
//! - [`PolicySet::builtin`], [`PolicySet::load`] (paths; the path `builtin` adds the
//!   built-ins), [`PolicySet::from_json`], [`PolicySet::filter_categories`],
//!   [`PolicySet::list`] (for `imagegate rules list`), [`PolicySet::warnings`].
//! - [`SignatureIntegrations::load`] reads `--signature-integrations FILE`.
//! - [`required_keys`] names the keys whose verification results
//!   ([`crate::facts::SignatureFacts::checks`]) the `Image Signature Verified By` criterion reads.
//! - [`evaluate`] is pure: one [`Finding`] per policy (per platform for an index).
//! - [`summarize_messages`] shortens a long message list for display.
//!
//! All errors are [`StackRoxError`] (bad input: exit code 2).
//!
//! # Semantics
//!
//! Only enabled policies whose lifecycle stages include BUILD are evaluated; the others give
//! [`Outcome::Skipped`]. An image exclusion (`exclusion.image.name`, a prefix of the image's full
//! name `registry/remote:tag`) that has not expired skips the policy too. Sections are ORed and
//! every matching section adds its messages; within a section, groups form a linked
//! conjunction (see `eval.rs`); within a group, values combine with OR or AND and `negate`
//! inverts by De Morgan. Regexes are whole-string and case-insensitive. Criteria whose data is
//! absent (no scanner report, no integrations file, Central-only history) make the policy
//! [`Outcome::NotEvaluated`] with the reason, unless a section matches anyway or fails on the
//! data that is there. Messages follow StackRox's wording; every message is kept (StackRox lists
//! them all), sorted within a section.
//!
//! # Decisions where StackRox gives no offline answer
//!
//! - `Image Age` without a `created` time is not evaluated (StackRox substitutes "now", so it
//!   would silently pass); likewise `Image Scan Age` without a scan time and `Image OS` when the
//!   report names no OS.
//! - A report-wide gap (no vulnerability has a CVSS score, an NVD score, a publication date, or
//!   — among fixable ones — a fix date) makes the matching criterion not evaluated; a single
//!   vulnerability lacking the value simply does not match, as in StackRox.
//! - An image config with an empty history has no Dockerfile lines: `Dockerfile Line` passes.
//! - `Image Signature Verified By`: an integration verified the image when any of its keys has
//!   a verified signature; a key that was not checked or could not be used leaves the verdict
//!   open (not evaluated) unless another listed integration verified the image.
//! - Loading two policies with the same name keeps the later one and records a warning.
//! - Skipped findings (stage, disabled, excluded) are one per policy, without a platform.

mod builtin;
mod cfg;
mod compile;
mod error;
mod eval;
mod fields;
mod integrations;
mod messages;
mod validate;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

pub use cfg::{
    BooleanOperator, DeploymentExclusion, EnforcementAction, Exclusion, ImageExclusion,
    LifecycleStage, Policy, PolicyGroup, PolicySection, PolicySeverity, PolicyValue,
};
pub use error::{Problem, StackRoxError};
pub use integrations::{SignatureIntegration, SignatureIntegrations};
pub use messages::summarize_messages;

use crate::facts::{ImageFacts, KeyId};
use crate::policy::{Finding, Outcome, Severity, Source};
use compile::CompiledPolicy;
use eval::{Context, ImageName, PlatformView, PolicyResult};

/// A policy with the file it came from.
#[derive(Clone, Debug)]
pub struct LoadedPolicy {
    pub policy: Policy,
    /// The file (or `builtin`).
    pub origin: String,
    /// The matchers, for policies with the BUILD stage.
    compiled: Option<CompiledPolicy>,
}

impl LoadedPolicy {
    /// Enabled and with the BUILD stage: evaluated by [`evaluate`].
    pub fn is_evaluated(&self) -> bool {
        !self.policy.disabled && self.policy.applies_at(LifecycleStage::Build)
    }
}

/// What `imagegate rules list` shows for a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicySummary {
    pub name: String,
    pub severity: Severity,
    pub enabled: bool,
    pub breaks_build: bool,
    pub categories: Vec<String>,
    pub lifecycle_stages: Vec<LifecycleStage>,
    pub description: String,
    pub origin: String,
}

/// Validated policies, ready to evaluate.
#[derive(Clone, Debug, Default)]
pub struct PolicySet {
    policies: Vec<LoadedPolicy>,
    warnings: Vec<String>,
}

impl PolicySet {
    /// The built-in default BUILD policies (see `builtin/`).
    pub fn builtin() -> PolicySet {
        let mut set = PolicySet::default();
        if let Err(e) = set.add_builtin() {
            // The built-ins are tested to load; should one ever not, say so instead of
            // dropping it silently.
            set.warnings
                .push(format!("a built-in policy could not be loaded: {e}"));
        }
        set
    }

    /// Loads policies from files and folders, in order; the path `builtin` adds the built-ins.
    /// A policy with the name of one loaded before replaces it (see [`PolicySet::warnings`]).
    pub fn load(paths: &[PathBuf]) -> Result<PolicySet, StackRoxError> {
        let mut set = PolicySet::default();
        for path in paths {
            if path.as_os_str() == builtin::ORIGIN {
                set.add_builtin()?;
                continue;
            }
            for read in cfg::read_path(path)? {
                set.add(read.policy, read.origin)?;
            }
        }
        Ok(set)
    }

    /// Parses and validates policies from JSON text (an export, a policy, or a list);
    /// `origin` names them in findings and errors.
    pub fn from_json(text: &str, origin: &str) -> Result<PolicySet, StackRoxError> {
        let mut set = PolicySet::default();
        for read in cfg::parse_policies(text, Path::new(origin), origin)? {
            set.add(read.policy, read.origin)?;
        }
        Ok(set)
    }

    fn add_builtin(&mut self) -> Result<(), StackRoxError> {
        for (file, text) in builtin::FILES {
            let path = format!("{}/{file}", builtin::ORIGIN);
            for read in cfg::parse_policies(text, Path::new(&path), builtin::ORIGIN)? {
                self.add(read.policy, read.origin)?;
            }
        }
        Ok(())
    }

    /// Validates (and for BUILD policies compiles) `policy` and adds it.
    fn add(&mut self, mut policy: Policy, origin: String) -> Result<(), StackRoxError> {
        // StackRox trims the name before it validates and stores it.
        policy.name = policy.name.trim().to_string();
        let invalid = |problems| StackRoxError::Invalid {
            origin: origin.clone(),
            policy: if policy.name.is_empty() {
                "(no name)".to_string()
            } else {
                policy.name.clone()
            },
            problems,
        };
        let problems = validate::validate(&policy);
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        let compiled = if policy.applies_at(LifecycleStage::Build) {
            Some(compile::compile(&policy).map_err(invalid)?)
        } else {
            None
        };
        let loaded = LoadedPolicy {
            policy,
            origin,
            compiled,
        };
        match self
            .policies
            .iter_mut()
            .find(|p| p.policy.name == loaded.policy.name)
        {
            Some(existing) => {
                self.warnings.push(format!(
                    "policy \"{}\" from {} replaces the one from {}",
                    loaded.policy.name, loaded.origin, existing.origin
                ));
                *existing = loaded;
            }
            None => self.policies.push(loaded),
        }
        Ok(())
    }

    /// Keeps the policies with at least one of `categories` (exact names, as roxctl's
    /// `--categories`); an empty list keeps all. A category no policy has is an error.
    pub fn filter_categories(&mut self, categories: &[String]) -> Result<(), StackRoxError> {
        if categories.is_empty() {
            return Ok(());
        }
        let known: BTreeSet<&String> = self
            .policies
            .iter()
            .flat_map(|p| &p.policy.categories)
            .collect();
        let unmatched: Vec<String> = categories
            .iter()
            .filter(|c| !known.contains(c))
            .cloned()
            .collect();
        if !unmatched.is_empty() {
            return Err(StackRoxError::UnknownCategories {
                unmatched,
                known: known.into_iter().cloned().collect(),
            });
        }
        self.policies
            .retain(|p| p.policy.categories.iter().any(|c| categories.contains(c)));
        Ok(())
    }

    /// One summary per policy, in load order.
    pub fn list(&self) -> Vec<PolicySummary> {
        self.policies
            .iter()
            .map(|p| PolicySummary {
                name: p.policy.name.clone(),
                severity: severity(p.policy.severity),
                enabled: !p.policy.disabled,
                breaks_build: p.policy.breaks_build(),
                categories: p.policy.categories.clone(),
                lifecycle_stages: p.policy.lifecycle_stages.clone(),
                description: p.policy.description.clone(),
                origin: p.origin.clone(),
            })
            .collect()
    }

    pub fn policies(&self) -> &[LoadedPolicy] {
        &self.policies
    }

    pub fn len(&self) -> usize {
        self.policies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty()
    }

    /// Things worth telling the user that are not errors (a policy replaced by a later one of
    /// the same name).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

/// What evaluation needs besides the policies and the image.
#[derive(Clone, Debug)]
pub struct EvalOptions {
    /// "Now" for ages, day counts and exclusion expiry.
    pub now: DateTime<Utc>,
    /// The signature integrations `Image Signature Verified By` refers to.
    pub integrations: Option<SignatureIntegrations>,
}

impl EvalOptions {
    pub fn new(now: DateTime<Utc>) -> EvalOptions {
        EvalOptions {
            now,
            integrations: None,
        }
    }
}

fn severity(severity: PolicySeverity) -> Severity {
    match severity {
        // Validation refuses UNSET; LOW is the harmless reading should one slip through.
        PolicySeverity::Unset | PolicySeverity::Low => Severity::Low,
        PolicySeverity::Medium => Severity::Medium,
        PolicySeverity::High => Severity::High,
        PolicySeverity::Critical => Severity::Critical,
    }
}

/// The keys to verify the image's signatures with: those of every integration named by an
/// evaluated policy's `Image Signature Verified By`. Sorted, without repeats; empty without
/// integrations.
pub fn required_keys(set: &PolicySet, integrations: Option<&SignatureIntegrations>) -> Vec<KeyId> {
    let Some(integrations) = integrations else {
        return Vec::new();
    };
    let mut keys = BTreeSet::new();
    for loaded in set.policies.iter().filter(|p| p.is_evaluated()) {
        let groups = loaded
            .policy
            .policy_sections
            .iter()
            .flat_map(|s| &s.policy_groups)
            .filter(|g| g.field_name == "Image Signature Verified By");
        for value in groups.flat_map(|g| &g.values) {
            if let Some(integration) = integrations.get(value.value.trim()) {
                keys.extend(integration.keys.iter().cloned());
            }
        }
    }
    keys.into_iter().collect()
}

/// Why the policy does not apply to this image, if an unexpired image exclusion covers it.
fn exclusion(policy: &Policy, full_name: &str, now: DateTime<Utc>) -> Option<String> {
    policy.exclusions.iter().find_map(|e| {
        let image = e.image.as_ref()?;
        let expired = e.expiration.is_some_and(|t| t < now);
        if expired || image.name.is_empty() || !full_name.starts_with(&image.name) {
            return None;
        }
        let until = e
            .expiration
            .map(|t| format!(", until {}", t.to_rfc3339()))
            .unwrap_or_default();
        Some(format!(
            "the image is excluded by the policy's exclusion \"{}\" (image names starting with \"{}\"{until})",
            e.name, image.name
        ))
    })
}

/// Evaluates every policy of `set` against the image: one finding per policy, or one per
/// platform and policy when the image is an index with several platforms (scan-based criteria
/// then use the one report for every platform).
pub fn evaluate(set: &PolicySet, facts: &ImageFacts, options: &EvalOptions) -> Vec<Finding> {
    let image = ImageName::of(&facts.name);
    let full_name = image.full_name.clone();
    let ctx = Context::new(
        options.now,
        image,
        facts.scan.as_ref(),
        &facts.signatures,
        options.integrations.as_ref(),
    );
    let per_platform = facts.platforms.len() > 1;
    let views: Vec<(Option<crate::oci::Platform>, PlatformView)> = if facts.platforms.is_empty() {
        vec![(None, PlatformView::new(None))]
    } else {
        facts
            .platforms
            .iter()
            .map(|p| {
                let label = if per_platform {
                    p.platform.clone()
                } else {
                    None
                };
                (label, PlatformView::new(Some(&p.config)))
            })
            .collect()
    };

    let mut findings = Vec::new();
    for loaded in &set.policies {
        let policy = &loaded.policy;
        let finding = |outcome: Outcome, messages: Vec<String>, platform| Finding {
            source: Source::StackRox,
            policy: policy.name.clone(),
            rule: None,
            severity: severity(policy.severity),
            enforced: policy.breaks_build(),
            outcome,
            messages,
            description: policy.description.clone(),
            remediation: policy.remediation.clone(),
            platform,
            origin: loaded.origin.clone(),
        };

        let compiled = match &loaded.compiled {
            Some(compiled) if policy.applies_at(LifecycleStage::Build) => compiled,
            _ => {
                let stages: Vec<&str> =
                    policy.lifecycle_stages.iter().map(|s| s.as_str()).collect();
                findings.push(finding(
                    Outcome::Skipped(format!(
                        "{} policy: not evaluated at build time",
                        stages.join("/")
                    )),
                    Vec::new(),
                    None,
                ));
                continue;
            }
        };
        if policy.disabled {
            findings.push(finding(
                Outcome::Skipped("disabled (\"disabled\": true in the policy)".into()),
                Vec::new(),
                None,
            ));
            continue;
        }
        if let Some(reason) = exclusion(policy, &full_name, options.now) {
            findings.push(finding(Outcome::Skipped(reason), Vec::new(), None));
            continue;
        }
        for (platform, view) in &views {
            let (outcome, messages) = match eval::evaluate_policy(compiled, &ctx, view) {
                PolicyResult::Pass => (Outcome::Pass, Vec::new()),
                PolicyResult::Violated(messages) => (Outcome::Violated, messages),
                PolicyResult::NotEvaluated(reason) => (Outcome::NotEvaluated(reason), Vec::new()),
            };
            findings.push(finding(outcome, messages, platform.clone()));
        }
    }
    findings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_load_without_warnings() {
        let set = PolicySet::builtin();
        assert!(set.warnings().is_empty(), "{:?}", set.warnings());
        assert_eq!(set.len(), builtin::FILES.len());
        assert_eq!(set.len(), 21);
        assert!(set.policies().iter().all(|p| p.origin == "builtin"));
        let breaking: Vec<_> = set
            .list()
            .into_iter()
            .filter(|s| s.enabled && s.breaks_build)
            .map(|s| s.name)
            .collect();
        assert_eq!(breaking, ["Fixable Severity at least Important"]);
    }

    #[test]
    fn categories_filter_like_roxctl() {
        let mut set = PolicySet::builtin();
        let before = set.len();
        let err = set
            .filter_categories(&["Docker CIS".into(), "Nope".into()])
            .unwrap_err();
        assert!(
            err.to_string().contains("[\"Nope\"] did not match"),
            "{err}"
        );
        assert_eq!(set.len(), before, "a failed filter keeps the set");
        set.filter_categories(&["Docker CIS".into()]).unwrap();
        assert!(set.len() < before);
        assert!(
            set.list()
                .iter()
                .all(|s| s.categories.contains(&"Docker CIS".to_string()))
        );
        set.filter_categories(&[]).unwrap();
    }

    #[test]
    fn a_later_policy_of_the_same_name_replaces_the_earlier() {
        let mut set = PolicySet::builtin();
        let text = r#"{"name":"Latest tag","policyVersion":"1.1","severity":"HIGH_SEVERITY","categories":["Mine"],
            "lifecycleStages":["BUILD"],"policySections":[{"policyGroups":[{"fieldName":"Image Tag","values":[{"value":"latest"}]}]}]}"#;
        let mine = PolicySet::from_json(text, "mine.json").unwrap();
        for p in mine.policies {
            set.add(p.policy, p.origin).unwrap();
        }
        assert_eq!(set.len(), 21);
        let latest = set
            .list()
            .into_iter()
            .find(|s| s.name == "Latest tag")
            .unwrap();
        assert_eq!(latest.severity, Severity::High);
        assert_eq!(latest.origin, "mine.json");
        assert_eq!(set.warnings().len(), 1);
        assert!(set.warnings()[0].contains("replaces the one from builtin"));
    }
}
