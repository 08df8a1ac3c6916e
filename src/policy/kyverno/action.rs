//! Which failure action a rule resolves to (`engineresponse.go` `ruleAction` /
//! `failureActionForRule`):
//! - validate: `validate.failureActionOverrides` → `validate.failureAction` → spec overrides →
//!   spec `validationFailureAction` (default Audit);
//! - verifyImages: any entry with `failureAction: Enforce` wins → else the first entry that
//!   sets one → spec overrides → spec action.
//!
//! An override that selects namespaces by label cannot be judged without the namespace's
//! labels: one that would enforce is assumed to apply, one that would audit is assumed not to
//! (either way the stricter answer), and the assumption is reported.

use std::collections::BTreeMap;

use super::cfg::{ActionOverride, FailureAction, LabelSelector, Rule};
use super::load::Policy;
use super::wildcard;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub action: FailureAction,
    /// Assumptions made on the way.
    pub notes: Vec<String>,
}

fn selector_matches(sel: &LabelSelector, labels: &BTreeMap<String, String>) -> bool {
    sel.match_labels
        .iter()
        .all(|(k, v)| labels.get(k) == Some(v))
        && sel.match_expressions.iter().all(|req| {
            let value = labels.get(&req.key);
            match req.operator.as_str() {
                "In" => value.is_some_and(|v| req.values.contains(v)),
                "NotIn" => value.is_none_or(|v| !req.values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

/// `matchOverride`: the first override that applies to the namespace.
fn match_override(
    overrides: &[ActionOverride],
    namespace: &str,
    namespace_labels: Option<&BTreeMap<String, String>>,
    notes: &mut Vec<String>,
) -> Option<FailureAction> {
    for o in overrides {
        if !FailureAction::is_valid_spelling(&o.action) {
            continue;
        }
        let action = FailureAction::from_spelling(&o.action);
        let namespace_ok = match &o.namespaces {
            None => true,
            Some(list) => list.iter().any(|p| wildcard::matches(p, namespace)),
        };
        if !namespace_ok {
            continue;
        }
        let Some(sel) = &o.namespace_selector else {
            return Some(action);
        };
        match namespace_labels {
            Some(labels) if selector_matches(sel, labels) => return Some(action),
            Some(_) => continue,
            None if action == FailureAction::Enforce => {
                notes.push(format!(
                    "an Enforce override selects namespaces by label; the labels of namespace {namespace} are not known, so it is assumed to apply"
                ));
                return Some(action);
            }
            None => {
                notes.push(format!(
                    "an Audit override selects namespaces by label; the labels of namespace {namespace} are not known, so it is assumed not to apply"
                ));
            }
        }
    }
    None
}

/// The failure action `rule` of `policy` resolves to in `namespace`.
pub fn resolve(
    policy: &Policy,
    rule: &Rule,
    namespace: &str,
    namespace_labels: Option<&BTreeMap<String, String>>,
) -> Resolved {
    let mut notes = Vec::new();
    let rule_action = if let Some(v) = &rule.validate {
        match_override(
            &v.failure_action_overrides,
            namespace,
            namespace_labels,
            &mut notes,
        )
        .or_else(|| {
            v.failure_action
                .as_deref()
                .map(FailureAction::from_spelling)
        })
    } else if !rule.verify_images.is_empty() {
        let actions: Vec<FailureAction> = rule
            .verify_images
            .iter()
            .filter_map(|iv| iv.failure_action.as_deref())
            .map(FailureAction::from_spelling)
            .collect();
        if actions.contains(&FailureAction::Enforce) {
            Some(FailureAction::Enforce)
        } else {
            actions.first().copied()
        }
    } else {
        None
    };
    let action = rule_action
        .or_else(|| {
            match_override(
                &policy.spec.validation_failure_action_overrides,
                namespace,
                namespace_labels,
                &mut notes,
            )
        })
        .unwrap_or_else(|| policy.spec_action());
    Resolved { action, notes }
}
