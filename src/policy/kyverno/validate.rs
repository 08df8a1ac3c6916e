//! `validate` rules judged against the synthetic workload (`validate_resource.go`): `deny`
//! conditions, `pattern`, `anyPattern` and `foreach`, with Kyverno's messages.
//!
//! A rule that never mentions an image (labels, security settings…) is skipped as "not about
//! the image". A rule that does, but also reads something an image gate cannot know, is not
//! evaluated, and says what it would need.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::anchors::{PatternOutcome, match_pattern};
use super::cfg::{ConditionBlock, ContextEntry, Deny, ForEachValidation, Rule, Validation};
use super::conditions::{Truth, evaluate_block};
use super::eval::{RuleResult, Verdict};
use super::vars::{self, Scope};
use super::workload::{Workload, is_known_resource_path};

static MENTIONS_IMAGE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\bimages?\b").expect("static regex"));

/// Whether anything in the validate block or the rule's preconditions talks about images.
fn mentions_image(rule: &Rule, v: &Validation) -> bool {
    let mut text = serde_json::to_string(&(
        &v.pattern,
        &v.any_pattern,
        v.deny.as_ref().map(|d| &d.conditions),
        v.foreach.as_deref().map(foreach_text),
        &v.message,
    ))
    .unwrap_or_default();
    text.push_str(&serde_json::to_string(&rule.preconditions).unwrap_or_default());
    // Image data from the registry is about the image even when the rule's own text only
    // says `imageData`.
    let reads_registry = rule.context.iter().any(|e| e.image_registry.is_some())
        || v.foreach
            .iter()
            .flatten()
            .any(|f| f.context.iter().any(|e| e.image_registry.is_some()));
    reads_registry || MENTIONS_IMAGE.is_match(&text)
}

fn foreach_text(list: &[ForEachValidation]) -> Vec<Value> {
    list.iter()
        .map(|f| {
            serde_json::json!([
                f.list,
                f.pattern,
                f.any_pattern,
                f.deny.as_ref().map(|d| &d.conditions),
                f.preconditions,
                f.foreach.as_deref().map(foreach_text),
            ])
        })
        .collect()
}

/// Loads `context` entries into the scope: inline variables are computed; ConfigMaps, API
/// calls, registry lookups and global entries cannot be read offline.
pub fn load_context(scope: &mut Scope, entries: &[ContextEntry]) {
    for e in entries {
        if let Some(var) = &e.variable {
            match variable_value(scope, var) {
                Ok(v) => scope.set_known(&e.name, v),
                Err(why) => scope.set_unknown(&e.name, why),
            }
            continue;
        }
        let source = if let Some(cm) = &e.config_map {
            format!("ConfigMap {}/{}", cm.namespace, cm.name)
        } else if e.api_call.is_some() {
            "an API call".to_string()
        } else if e.image_registry.is_some() {
            "image data from the registry (imageRegistry)".to_string()
        } else {
            "a global context entry".to_string()
        };
        scope.set_unknown(
            &e.name,
            format!(
                "reads context entry `{}`, which comes from {source}; imagegate does not read cluster data",
                e.name
            ),
        );
    }
}

fn variable_value(scope: &Scope, var: &super::cfg::ContextVariable) -> Result<Value, String> {
    let value = match &var.value {
        Some(v) => Some(scope.substitute(v)?),
        None => None,
    };
    let result = match (&var.jmes_path, value) {
        (Some(expr), Some(v)) => {
            let expr = match scope.substitute_str(expr)? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let compiled = vars::compile(&expr)?;
            let data = jmespath::Variable::try_from(v).map_err(|e| e.to_string())?;
            let found = compiled.search(data).map_err(|e| e.to_string())?;
            serde_json::to_value(&*found).map_err(|e| e.to_string())?
        }
        (Some(expr), None) => scope.query(expr.trim())?,
        (None, Some(v)) => v,
        (None, None) => Value::Null,
    };
    if result.is_null()
        && let Some(d) = &var.default
    {
        return scope.substitute(d);
    }
    Ok(result)
}

/// Kyverno's failure text for a pattern (`buildErrorMessage`).
fn error_message(rule: &Rule, v: &Validation, scope: &Scope, path: &str, error: &str) -> String {
    let Some(message) = v.message.as_deref().filter(|m| !m.is_empty()) else {
        return if path.is_empty() {
            format!(
                "validation error: rule {} execution error: {error}",
                rule.name
            )
        } else {
            format!("validation error: rule {} failed at path {path}", rule.name)
        };
    };
    let mut msg = substitute_message(scope, message);
    if !msg.ends_with('.') {
        msg.push('.');
    }
    if path.is_empty() {
        format!(
            "validation error: {msg} rule {} execution error: {error}",
            rule.name
        )
    } else {
        format!(
            "validation error: {msg} rule {} failed at path {path}",
            rule.name
        )
    }
}

/// The rule message with variables substituted; kept as written when they cannot be.
fn substitute_message(scope: &Scope, message: &str) -> String {
    match scope.substitute_str(message) {
        Ok(Value::String(s)) => s,
        Ok(other) => other.to_string(),
        Err(_) => message.to_string(),
    }
}

/// Evaluates a validate rule for the workload.
pub fn evaluate(rule: &Rule, v: &Validation, w: &Workload, base: &Scope) -> RuleResult {
    let mut notes = Vec::new();
    if v.pod_security.is_some() {
        return skip("podSecurity checks a Pod's security settings, not its image");
    }
    if v.manifests.is_some() {
        return skip("manifests verification checks signed resource YAML, not the image");
    }
    if v.cel.is_some() {
        return RuleResult::new(Verdict::Unknown(
            "validate.cel expressions are not evaluated offline".into(),
        ));
    }
    if v.assert.is_some() {
        return RuleResult::new(Verdict::Unknown(
            "validate.assert is not evaluated offline".into(),
        ));
    }
    if !mentions_image(rule, v) {
        return skip("the rule does not look at container images; an image gate cannot judge it");
    }

    let mut scope = base.clone();
    load_context(&mut scope, &rule.context);
    if let Some(pre) = &rule.preconditions {
        match preconditions(&scope, pre) {
            Err(verdict) => return RuleResult::new(verdict),
            Ok(Some(note)) => notes.push(note),
            Ok(None) => {}
        }
    }

    let verdict = if let Some(deny) = &v.deny {
        deny_verdict(rule, v, &scope, deny)
    } else if v.pattern.is_some() || v.any_pattern.is_some() {
        patterns(rule, v, &scope, w, &w.resource(), &[])
    } else if let Some(foreach) = &v.foreach {
        foreach_verdict(rule, v, &scope, w, foreach, &mut notes)
    } else {
        Verdict::Error(format!(
            "validation error: rule {} has nothing to check",
            rule.name
        ))
    };
    RuleResult { verdict, notes }
}

fn skip(why: &str) -> RuleResult {
    RuleResult::new(Verdict::Skip(why.to_string()))
}

/// Preconditions: `Err` ends the rule (skip or error); `Ok(Some(note))` when they could not be
/// evaluated and are assumed to hold.
pub fn preconditions(scope: &Scope, raw: &Value) -> Result<Option<String>, Verdict> {
    let block = ConditionBlock::from_value(raw)
        .map_err(|e| Verdict::Error(format!("failed to evaluate preconditions: {e}")))?;
    match evaluate_block(scope, &block) {
        Truth::True(_) => Ok(None),
        Truth::False(msg) => {
            let mut s = "preconditions not met".to_string();
            if !msg.is_empty() {
                s.push_str("; ");
                s.push_str(&msg);
            }
            Err(Verdict::Skip(s))
        }
        Truth::Unknown(why) => Ok(Some(format!(
            "preconditions could not be evaluated offline ({why}); assumed they hold"
        ))),
    }
}

fn deny_verdict(rule: &Rule, v: &Validation, scope: &Scope, deny: &Deny) -> Verdict {
    let Some(raw) = &deny.conditions else {
        return Verdict::Error("failed to check deny conditions: invalid condition".into());
    };
    let block = match ConditionBlock::from_value(raw) {
        Ok(b) => b,
        Err(e) => return Verdict::Error(format!("failed to check deny conditions: {e}")),
    };
    match evaluate_block(scope, &block) {
        Truth::True(msg) => Verdict::Fail(vec![deny_message(rule, v, scope, &msg)]),
        Truth::False(_) => Verdict::Pass,
        Truth::Unknown(why) => Verdict::Unknown(why),
    }
}

/// `getDenyMessage` for a denied request.
fn deny_message(rule: &Rule, v: &Validation, scope: &Scope, condition_msg: &str) -> String {
    let message = v.message.as_deref().unwrap_or("");
    if message.is_empty() && condition_msg.is_empty() {
        return format!("validation error: rule {} failed", rule.name);
    }
    let joined: Vec<&str> = [message, condition_msg]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect();
    substitute_message(scope, &joined.join("; "))
}

/// The resource fields (keys only, anchors removed) a pattern's leaves test.
fn leaf_paths(pattern: &Value, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    match pattern {
        Value::Object(map) => {
            for (k, v) in map {
                let key = strip_anchor(k);
                prefix.push(key.to_string());
                leaf_paths(v, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for item in items {
                leaf_paths(item, prefix, out);
            }
        }
        _ => out.push(prefix.clone()),
    }
}

fn strip_anchor(key: &str) -> &str {
    let body = key.strip_prefix(['+', '<', '=', 'X', '^']).unwrap_or(key);
    body.strip_prefix('(')
        .and_then(|b| b.strip_suffix(')'))
        .unwrap_or(key)
}

/// Checks that every field a pattern tests is known for the synthetic workload. `base` is
/// where the pattern applies (empty for the resource root, the list's path for a foreach
/// element).
fn unknown_fields(pattern: &Value, base: &[Vec<String>], w: &Workload) -> Vec<String> {
    let mut leaves = Vec::new();
    leaf_paths(pattern, &mut Vec::new(), &mut leaves);
    let mut unknown = Vec::new();
    let roots: Vec<Vec<String>> = if base.is_empty() {
        vec![Vec::new()]
    } else {
        base.to_vec()
    };
    for leaf in leaves {
        for root in &roots {
            let mut full = root.clone();
            full.extend(leaf.iter().cloned());
            if !is_known_resource_path(&full, w) {
                let dotted = full.join(".");
                if !unknown.contains(&dotted) {
                    unknown.push(dotted);
                }
            }
        }
    }
    unknown
}

/// `pattern` / `anyPattern` against `resource` (the workload, or a foreach element).
fn patterns(
    rule: &Rule,
    v: &Validation,
    scope: &Scope,
    w: &Workload,
    resource: &Value,
    base: &[Vec<String>],
) -> Verdict {
    patterns_of(
        rule,
        v,
        scope,
        w,
        resource,
        base,
        &v.pattern,
        &v.any_pattern,
    )
}

#[allow(clippy::too_many_arguments)]
fn patterns_of(
    rule: &Rule,
    v: &Validation,
    scope: &Scope,
    w: &Workload,
    resource: &Value,
    base: &[Vec<String>],
    pattern: &Option<Value>,
    any_pattern: &Option<Value>,
) -> Verdict {
    if let Some(raw) = pattern {
        let pattern = match scope.substitute(raw) {
            Ok(p) => p,
            Err(why) => return Verdict::Unknown(why),
        };
        let unknown = unknown_fields(&pattern, base, w);
        if !unknown.is_empty() {
            return Verdict::Unknown(format!(
                "besides the image, the pattern checks {}, which an image gate does not see",
                unknown.join(", ")
            ));
        }
        return match match_pattern(resource, &pattern) {
            PatternOutcome::Pass => Verdict::Pass,
            PatternOutcome::Fail { path, error } => {
                Verdict::Fail(vec![error_message(rule, v, scope, &path, &error)])
            }
            PatternOutcome::Skip { error } => Verdict::Skip(error),
            PatternOutcome::Error { error } => {
                Verdict::Error(error_message(rule, v, scope, "", &error))
            }
        };
    }
    let Some(raw) = any_pattern else {
        return Verdict::Pass;
    };
    let Value::Array(list) = (match scope.substitute(raw) {
        Ok(p) => p,
        Err(why) => return Verdict::Unknown(why),
    }) else {
        return Verdict::Error("failed to deserialize anyPattern, expected type array".to_string());
    };
    let mut failed = Vec::new();
    let mut skipped = Vec::new();
    let mut unknown = None;
    for (idx, p) in list.iter().enumerate() {
        let fields = unknown_fields(p, base, w);
        if !fields.is_empty() {
            unknown = unknown.or(Some(format!(
                "anyPattern[{idx}] checks {}, which an image gate does not see",
                fields.join(", ")
            )));
            continue;
        }
        match match_pattern(resource, p) {
            PatternOutcome::Pass => return Verdict::Pass,
            PatternOutcome::Skip { error } => {
                skipped.push(format!("rule {}[{idx}] skipped: {error}", rule.name));
            }
            PatternOutcome::Fail { path, .. } if !path.is_empty() => {
                failed.push(format!("rule {}[{idx}] failed at path {path}", rule.name));
            }
            PatternOutcome::Fail { error, .. } | PatternOutcome::Error { error } => {
                failed.push(format!("rule {}[{idx}] failed: {error}", rule.name));
            }
        }
    }
    if let Some(why) = unknown {
        // Another alternative might pass; without it the answer is not known.
        return Verdict::Unknown(why);
    }
    if !skipped.is_empty() && failed.is_empty() {
        return Verdict::Skip(skipped.join(" "));
    }
    if failed.is_empty() {
        return Verdict::Pass;
    }
    let errors = failed.join(" ");
    let message = match v.message.as_deref().filter(|m| !m.is_empty()) {
        None => format!("validation error: {errors}"),
        Some(m) => {
            let msg = substitute_message(scope, m);
            if msg.ends_with('.') {
                format!("validation error: {msg} {errors}")
            } else {
                format!("validation error: {msg}. {errors}")
            }
        }
    };
    Verdict::Fail(vec![message])
}

fn foreach_verdict(
    rule: &Rule,
    v: &Validation,
    scope: &Scope,
    w: &Workload,
    foreach: &[ForEachValidation],
    notes: &mut Vec<String>,
) -> Verdict {
    let mut applied = 0;
    let mut unknown: Option<String> = None;
    for fe in foreach {
        let list_expr = fe.list.trim();
        let elements = match scope.query(list_expr) {
            Ok(Value::Array(items)) => items,
            Ok(other) => vec![other],
            Err(why) => {
                unknown = unknown.or(Some(why));
                continue;
            }
        };
        // Where the elements sit in the resource, for checking what element patterns test.
        let base: Vec<Vec<String>> = vars::compile(list_expr)
            .map(|e| vars::read_paths(e.as_ast()))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| match p.split_first() {
                Some((first, rest))
                    if first == "request" && rest.first().is_some_and(|o| o == "object") =>
                {
                    Some(rest[1..].to_vec())
                }
                _ => None,
            })
            .collect();
        match elements_verdict(rule, v, scope, w, fe, list_expr, &elements, &base, notes) {
            (Verdict::Pass, n) => applied += n,
            (Verdict::Unknown(why), n) => {
                applied += n;
                unknown = unknown.or(Some(why));
            }
            (other, _) => return other,
        }
    }
    if let Some(why) = unknown {
        return Verdict::Unknown(why);
    }
    if applied == 0 {
        // Kyverno gives no response at all for the rule.
        return Verdict::Skip("no element of the foreach lists was checked".into());
    }
    Verdict::Pass
}

/// One foreach entry over its elements; returns the verdict and how many elements applied.
#[allow(clippy::too_many_arguments)]
fn elements_verdict(
    rule: &Rule,
    v: &Validation,
    scope: &Scope,
    w: &Workload,
    fe: &ForEachValidation,
    list_expr: &str,
    elements: &[Value],
    base: &[Vec<String>],
    notes: &mut Vec<String>,
) -> (Verdict, usize) {
    let mut applied = 0;
    let mut unknown = None;
    for (index, element) in elements.iter().enumerate() {
        if element.is_null() {
            continue;
        }
        let mut s = scope.clone();
        s.set_element("element", element.clone(), list_expr);
        s.set_known("elementIndex", serde_json::json!(index));
        load_context(&mut s, &fe.context);
        if let Some(pre) = &fe.preconditions {
            match preconditions(&s, pre) {
                Err(Verdict::Skip(_)) => continue,
                Err(Verdict::Error(_)) => continue,
                Err(other) => return (other, applied),
                Ok(Some(note)) => {
                    if !notes.contains(&note) {
                        notes.push(note);
                    }
                }
                Ok(None) => {}
            }
        }
        // Patterns apply to the element itself when it is a map (elementScope defaults to
        // true for maps), else to the whole resource.
        let scoped = fe.element_scope.unwrap_or(element.is_object()) && element.is_object();
        let (resource, pattern_base) = if scoped {
            (element.clone(), base.to_vec())
        } else {
            (w.resource(), Vec::new())
        };
        let verdict = if let Some(deny) = &fe.deny {
            deny_verdict(rule, v, &s, deny)
        } else if fe.pattern.is_some() || fe.any_pattern.is_some() {
            patterns_of(
                rule,
                v,
                &s,
                w,
                &resource,
                &pattern_base,
                &fe.pattern,
                &fe.any_pattern,
            )
        } else if let Some(nested) = &fe.foreach {
            foreach_verdict(rule, v, &s, w, nested, notes)
        } else {
            Verdict::Skip("empty foreach".into())
        };
        match verdict {
            Verdict::Pass => applied += 1,
            Verdict::Skip(_) => {}
            Verdict::Unknown(why) => unknown = unknown.or(Some(why)),
            Verdict::Fail(msgs) => {
                return (
                    Verdict::Fail(
                        msgs.into_iter()
                            .map(|m| format!("validation failure: {m}"))
                            .collect(),
                    ),
                    applied,
                );
            }
            Verdict::Error(msg) => {
                return (
                    Verdict::Error(format!("validation failure: {msg}")),
                    applied,
                );
            }
        }
    }
    match unknown {
        Some(why) => (Verdict::Unknown(why), applied),
        None => (Verdict::Pass, applied),
    }
}
