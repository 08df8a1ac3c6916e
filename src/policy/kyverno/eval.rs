//! Evaluating a policy set for one image: which rules apply to the Pod (or controller) that
//! runs it, what each concludes, and the findings that reports list.

use std::collections::BTreeMap;

use super::action;
use super::cfg::{FailureAction, Rule};
use super::image::KyvernoImage;
use super::load::{KyvernoSet, Policy, PolicyKind};
use super::matching::applicable_kind;
use super::validate;
use super::verify;
use super::workload::{KINDS, Workload};
use crate::facts::{ImageFacts, SignatureFacts};
use crate::policy::{Finding, Outcome, Severity, Source};

/// Where and how the image is deployed, as far as the caller knows.
#[derive(Clone, Debug)]
pub struct EvalContext {
    /// The namespace the Pod runs in (`default` unless told).
    pub namespace: String,
    /// The image exactly as the user wrote it (what the Pod spec would say); validate patterns
    /// see this string, unchanged.
    pub raw_image: String,
    /// The workload's name, if known (for `match.names`).
    pub workload_name: Option<String>,
    /// The workload's labels, if known (for `selector`).
    pub labels: Option<BTreeMap<String, String>>,
    /// The namespace's labels, if known (for `namespaceSelector` and override selectors).
    pub namespace_labels: Option<BTreeMap<String, String>>,
    /// Signatures and attestations gathered from other repositories, keyed by the repository
    /// as the policy writes it (`verifyImages[].repository` / `attestors[].entries[].repository`).
    pub signatures_by_repository: BTreeMap<String, SignatureFacts>,
}

impl EvalContext {
    /// The image `raw_image` in namespace `default`, nothing else known.
    pub fn new(raw_image: impl Into<String>) -> EvalContext {
        EvalContext {
            namespace: "default".to_string(),
            raw_image: raw_image.into(),
            workload_name: None,
            labels: None,
            namespace_labels: None,
            signatures_by_repository: BTreeMap::new(),
        }
    }

    pub fn in_namespace(mut self, namespace: impl Into<String>) -> EvalContext {
        self.namespace = namespace.into();
        self
    }
}

/// A rule's conclusion in Kyverno's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// The rule fails, with Kyverno's messages.
    Fail(Vec<String>),
    /// Kyverno reports a rule error (which blocks admission under `failurePolicy: Fail`).
    Error(String),
    Skip(String),
    /// Needs something not available offline.
    Unknown(String),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleResult {
    pub verdict: Verdict,
    /// Assumptions made while judging.
    pub notes: Vec<String>,
}

impl RuleResult {
    pub fn new(verdict: Verdict) -> RuleResult {
        RuleResult {
            verdict,
            notes: Vec::new(),
        }
    }
}

/// `policies.kyverno.io/severity`: low, medium, high, critical (`info` counts as low);
/// Medium when absent or unrecognised.
pub fn severity(policy: &Policy) -> Severity {
    match policy
        .annotations
        .get("policies.kyverno.io/severity")
        .map(|s| s.trim().to_lowercase())
        .as_deref()
    {
        Some("low" | "info") => Severity::Low,
        Some("high") => Severity::High,
        Some("critical") => Severity::Critical,
        _ => Severity::Medium,
    }
}

fn description(policy: &Policy) -> String {
    let a = &policy.annotations;
    a.get("policies.kyverno.io/description")
        .or_else(|| a.get("policies.kyverno.io/title"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

fn remediation(policy: &Policy, rule: &Rule) -> String {
    if let Some(msg) = rule
        .validate
        .as_ref()
        .and_then(|v| v.message.as_deref())
        .map(str::trim)
        .filter(|m| !m.is_empty())
    {
        return msg.to_string();
    }
    if !rule.verify_images.is_empty() {
        return format!(
            "Sign the image (and attach the attestations) with the keys rule {} of {} names, so that its attestors verify it; unless the policy sets rekor.ignoreTlog: true, the signature must be uploaded to the transparency log",
            rule.name,
            policy.id()
        );
    }
    format!(
        "Change the image reference so that it satisfies rule {} of {}",
        rule.name,
        policy.id()
    )
}

/// The base workload: kind Pod, the image as written.
fn base_workload(ctx: &EvalContext, image: &str, info: &KyvernoImage) -> Workload {
    Workload {
        kind: KINDS[0],
        namespace: ctx.namespace.clone(),
        name: ctx.workload_name.clone(),
        labels: ctx.labels.clone(),
        namespace_labels: ctx.namespace_labels.clone(),
        image: image.to_string(),
        info: info.clone(),
    }
}

/// Why a whole policy does not apply, if it does not.
fn policy_skip(policy: &Policy, ctx: &EvalContext) -> Option<String> {
    if policy.kind == PolicyKind::Policy
        && policy.namespace.as_deref() != Some(ctx.namespace.as_str())
    {
        return Some(format!(
            "Policy {} applies only in namespace {}, and the image is judged in namespace {}",
            policy.name,
            policy.namespace.as_deref().unwrap_or("default"),
            ctx.namespace
        ));
    }
    if !policy.spec.admission {
        return Some(
            "spec.admission is false: Kyverno applies the policy in background scans only, not when a Pod is admitted".into(),
        );
    }
    None
}

/// Evaluates every rule of every policy for the image: one finding per (policy, rule),
/// including rules that do not apply (Skipped, with the reason).
pub fn evaluate(set: &KyvernoSet, facts: &ImageFacts, ctx: &EvalContext) -> Vec<Finding> {
    let (info, image_note) = match KyvernoImage::parse(&ctx.raw_image) {
        Ok(info) => (info, None),
        Err(e) => (
            KyvernoImage::from_ref(&facts.name),
            Some(format!(
                "the image string {:?} is not a valid reference ({e}); judged as {}",
                ctx.raw_image, facts.name
            )),
        ),
    };
    let raw = if image_note.is_some() {
        info.string()
    } else {
        ctx.raw_image.clone()
    };
    let base = base_workload(ctx, &raw, &info);

    // Kyverno's mutating webhook runs first: a verifyImages rule with mutateDigest pins the
    // image before validate rules see it.
    let digest = facts.digest.to_string();
    let pinned_by = set.policies.iter().find_map(|p| {
        if policy_skip(p, ctx).is_some() {
            return None;
        }
        p.spec.rules.iter().find_map(|r| {
            let applies = !r.verify_images.is_empty() && applicable_kind(r, &base).is_ok();
            (applies && verify::pins(r, &info)).then(|| format!("{} rule {}", p.id(), r.name))
        })
    });
    let (admitted_raw, admitted_info) = match &pinned_by {
        Some(_) => {
            let pinned = info.pinned(&digest);
            (format!("{}@{digest}", info.string()), pinned)
        }
        None => (raw.clone(), info.clone()),
    };
    let admitted = base_workload(ctx, &admitted_raw, &admitted_info);

    let mut findings = Vec::new();
    for policy in &set.policies {
        let apply_one = policy.spec.apply_rules.as_deref() == Some("One");
        let mut applied_rule: Option<String> = None;
        let mut unsure_rules: Vec<String> = Vec::new();
        for rule in &policy.spec.rules {
            let resolved =
                action::resolve(policy, rule, &ctx.namespace, ctx.namespace_labels.as_ref());
            let mut finding = Finding {
                source: Source::Kyverno,
                policy: policy.name.clone(),
                rule: Some(rule.name.clone()),
                severity: severity(policy),
                enforced: resolved.action == FailureAction::Enforce,
                outcome: Outcome::Pass,
                messages: Vec::new(),
                description: description(policy),
                remediation: remediation(policy, rule),
                platform: None,
                origin: policy.origin.display().to_string(),
            };
            if let Some(why) = policy_skip(policy, ctx) {
                finding.outcome = Outcome::Skipped(why);
                findings.push(finding);
                continue;
            }
            if let Some(first) = &applied_rule {
                finding.outcome = Outcome::Skipped(format!(
                    "spec.applyRules is One and rule {first} already applied"
                ));
                findings.push(finding);
                continue;
            }
            let result = judge_rule(rule, facts, ctx, &base, &admitted, &info);
            let mut notes = Vec::new();
            if let Some(n) = &image_note {
                notes.push(n.clone());
            }
            notes.extend(result.notes);
            notes.extend(resolved.notes);
            if let (Some(by), Some(_)) = (&pinned_by, &rule.validate) {
                notes.push(format!(
                    "judged as admitted: Kyverno's mutateDigest ({by}) rewrites the image to {admitted_raw} before validate rules run"
                ));
            }
            if apply_one && !unsure_rules.is_empty() {
                notes.push(format!(
                    "spec.applyRules is One: this rule runs only if {} (not evaluated) did not apply",
                    unsure_rules.join(", ")
                ));
            }
            // Kyverno counts a rule as applied when it passes or fails (not on error or skip).
            match &result.verdict {
                Verdict::Pass | Verdict::Fail(_) if apply_one => {
                    applied_rule = Some(rule.name.clone());
                }
                Verdict::Unknown(_) if apply_one => unsure_rules.push(rule.name.clone()),
                _ => {}
            }
            match result.verdict {
                Verdict::Pass => finding.outcome = Outcome::Pass,
                Verdict::Fail(messages) => {
                    finding.outcome = Outcome::Violated;
                    finding.messages = messages;
                }
                Verdict::Error(message) => {
                    // A rule error blocks admission when the failure policy is Fail, whatever
                    // the failure action, and the Kyverno CLI counts it as an error.
                    finding.outcome = Outcome::Violated;
                    finding.enforced = policy.failure_policy_is_fail()
                        || resolved.action == FailureAction::Enforce;
                    finding.messages = vec![format!("rule error: {message}")];
                }
                Verdict::Skip(why) => finding.outcome = Outcome::Skipped(why),
                Verdict::Unknown(why) => finding.outcome = Outcome::NotEvaluated(why),
            }
            finding
                .messages
                .extend(notes.into_iter().map(|n| format!("note: {n}")));
            findings.push(finding);
        }
    }
    findings
}

fn judge_rule(
    rule: &Rule,
    facts: &ImageFacts,
    ctx: &EvalContext,
    base: &Workload,
    admitted: &Workload,
    info: &KyvernoImage,
) -> RuleResult {
    if rule.mutate.is_some() && rule.validate.is_none() && rule.verify_images.is_empty() {
        return RuleResult::new(Verdict::Skip(
            "mutate rules change resources; they do not decide admission".into(),
        ));
    }
    if rule.generate.is_some() && rule.validate.is_none() && rule.verify_images.is_empty() {
        return RuleResult::new(Verdict::Skip(
            "generate rules create other resources; they do not decide admission".into(),
        ));
    }
    let (kind, match_notes) = match applicable_kind(rule, base) {
        Ok(found) => found,
        Err(why) => return RuleResult::new(Verdict::Skip(why)),
    };
    let mut result = if let Some(v) = &rule.validate {
        let w = Workload {
            kind,
            ..admitted.clone()
        };
        validate::evaluate(rule, v, &w, &w.scope())
    } else {
        let w = Workload {
            kind,
            ..base.clone()
        };
        let mut scope = w.scope();
        validate::load_context(&mut scope, &rule.context);
        let mut pre_note = None;
        if let Some(raw) = &rule.preconditions {
            match validate::preconditions(&scope, raw) {
                Err(verdict) => return RuleResult::new(verdict),
                Ok(note) => pre_note = note,
            }
        }
        let mut r = verify::evaluate(&verify::Input {
            rule,
            facts,
            signatures_by_repository: &ctx.signatures_by_repository,
            image: info,
            scope: &scope,
        });
        if let Some(note) = pre_note {
            r.notes.insert(0, note);
        }
        r
    };
    if kind.kind != "Pod" {
        result.notes.insert(
            0,
            format!(
                "the rule matches {}s (not Pods); judged as the image of a {}",
                kind.kind, kind.kind
            ),
        );
    }
    let mut notes = match_notes
        .into_iter()
        .map(|n| format!("assumed the rule applies: {n}"))
        .collect::<Vec<_>>();
    notes.extend(result.notes);
    result.notes = notes;
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_sets_can_be_shared_between_threads() {
        fn shareable<T: Send + Sync>() {}
        shareable::<KyvernoSet>();
        shareable::<EvalContext>();
    }
}
