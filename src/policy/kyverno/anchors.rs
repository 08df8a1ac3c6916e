//! Validate patterns over a resource tree (`pkg/engine/validate`, `pkg/engine/anchor`):
//! maps and lists are walked in step with the pattern, leaves go to [`super::pattern`], and the
//! anchors `(key)` (conditional), `<(key)` (global), `=(key)` (if present), `X(key)`
//! (negation) and `^(key)` (existence) change what a missing or mismatching key means.
//! Paths are reported as Kyverno reports them: `/spec/containers/0/image/`.

use std::collections::BTreeSet;

use serde_json::Value;

use super::pattern;

/// What matching a pattern against a resource gave (`validate.MatchPattern`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PatternOutcome {
    Pass,
    /// The resource violates the pattern at `path`.
    Fail {
        path: String,
        error: String,
    },
    /// A conditional or global anchor did not match: the rule does not apply.
    Skip {
        error: String,
    },
    /// Kyverno reports a rule error (an anchored key is missing and the pattern failed).
    Error {
        error: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Anchor {
    Condition,
    Global,
    Negation,
    AddIfNotPresent,
    Equality,
    Existence,
}

/// `anchor.Parse`: `^(?P<modifier>[+<=X^])?\((?P<key>.+)\)$`.
fn parse_anchor(key: &str) -> Option<(Anchor, &str)> {
    let (kind, rest) = match key.chars().next()? {
        '+' => (Anchor::AddIfNotPresent, &key[1..]),
        '<' => (Anchor::Global, &key[1..]),
        '=' => (Anchor::Equality, &key[1..]),
        'X' => (Anchor::Negation, &key[1..]),
        '^' => (Anchor::Existence, &key[1..]),
        _ => (Anchor::Condition, key),
    };
    let inner = rest.strip_prefix('(')?.strip_suffix(')')?;
    if inner.is_empty() {
        return None;
    }
    Some((kind, inner))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Plain,
    /// A `PatternError` with `Skip` set (all siblings skipped).
    PatternSkip,
    Conditional,
    Global,
    Negation,
}

#[derive(Clone, Debug)]
struct Mismatch {
    kind: Kind,
    path: String,
    message: String,
}

impl Mismatch {
    fn plain(path: &str, message: String) -> Mismatch {
        Mismatch {
            kind: Kind::Plain,
            path: path.to_string(),
            message,
        }
    }

    /// `skip(err)`: conditional and global anchor errors, also when wrapped.
    fn skips(&self) -> bool {
        matches!(
            self.kind,
            Kind::Conditional | Kind::Global | Kind::PatternSkip
        )
    }
}

/// Anchored keys seen and whether the resource had them (`AnchorMap`).
#[derive(Default)]
struct AnchorKeys {
    missing: BTreeSet<String>,
    found: BTreeSet<String>,
}

/// Matches `resource` against `pattern`, starting at the root path `/`.
pub fn match_pattern(resource: &Value, pattern: &Value) -> PatternOutcome {
    let mut keys = AnchorKeys::default();
    match element(resource, pattern, "/", &mut keys) {
        Ok(()) => PatternOutcome::Pass,
        Err(m) if m.skips() => PatternOutcome::Skip { error: m.message },
        Err(m) if m.kind == Kind::Negation => PatternOutcome::Fail {
            path: m.path,
            error: m.message,
        },
        Err(m) if !keys.missing.is_subset(&keys.found) => {
            PatternOutcome::Error { error: m.message }
        }
        Err(m) => PatternOutcome::Fail {
            path: m.path,
            error: m.message,
        },
    }
}

fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_i64() => "int64",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// A value as Go's `%v` prints it.
fn go_value(v: &Value) -> String {
    match v {
        Value::Null => "<nil>".to_string(),
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(go_value).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(map) => format!(
            "map[{}]",
            map.iter()
                .map(|(k, v)| format!("{k}:{}", go_value(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

fn element(
    resource: &Value,
    pattern: &Value,
    path: &str,
    keys: &mut AnchorKeys,
) -> Result<(), Mismatch> {
    match pattern {
        Value::Object(pmap) => {
            let Value::Object(rmap) = resource else {
                return Err(Mismatch::plain(
                    path,
                    format!(
                        "pattern and resource have different structures. Path: {path}. Expected map[string]interface {{}}, found {}",
                        go_type(resource)
                    ),
                ));
            };
            for key in pmap.keys() {
                if let Some((kind, k)) = parse_anchor(key)
                    && matches!(
                        kind,
                        Anchor::Condition | Anchor::Existence | Anchor::Negation
                    )
                {
                    if rmap.contains_key(k) {
                        keys.found.insert(key.clone());
                    } else if kind != Anchor::Negation {
                        keys.missing.insert(key.clone());
                    }
                }
            }
            map(rmap, pmap, path, keys)
        }
        Value::Array(parr) => {
            let Value::Array(rarr) = resource else {
                return Err(Mismatch::plain(
                    path,
                    format!(
                        "validation rule failed at path {path}, resource does not satisfy the expected overlay pattern"
                    ),
                ));
            };
            array(rarr, parr, path, keys)
        }
        leaf => {
            let ok = match resource {
                Value::Array(items) => items.iter().all(|i| pattern::validate(i, leaf)),
                other => pattern::validate(other, leaf),
            };
            if ok {
                Ok(())
            } else {
                Err(Mismatch::plain(
                    path,
                    format!(
                        "resource value '{}' does not match '{}' at path {path}",
                        go_value(resource),
                        go_value(leaf)
                    ),
                ))
            }
        }
    }
}

fn has_nested_anchors(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.iter().any(|(k, v)| {
            parse_anchor(k).is_some_and(|(kind, _)| kind != Anchor::AddIfNotPresent)
                || has_nested_anchors(v)
        }),
        Value::Array(items) => items.iter().any(has_nested_anchors),
        _ => false,
    }
}

fn map(
    rmap: &serde_json::Map<String, Value>,
    pmap: &serde_json::Map<String, Value>,
    path: &str,
    keys: &mut AnchorKeys,
) -> Result<(), Mismatch> {
    // Phase 1: anchors (conditional, existence, equality, negation), in key order.
    let mut skipped: Vec<Mismatch> = Vec::new();
    let mut applied = 0;
    for (key, pat) in pmap {
        let Some((kind, k)) = parse_anchor(key) else {
            continue;
        };
        let current = format!("{path}{k}/");
        let result = match kind {
            Anchor::Negation => {
                if rmap.contains_key(k) {
                    Err(Mismatch {
                        kind: Kind::Negation,
                        path: current.clone(),
                        message: format!(
                            "negation anchor matched in resource: {current} is not allowed"
                        ),
                    })
                } else {
                    Ok(())
                }
            }
            Anchor::Equality => match rmap.get(k) {
                Some(v) => element(v, pat, &current, keys),
                None => Ok(()),
            },
            Anchor::Condition => match rmap.get(k) {
                Some(v) => element(v, pat, &current, keys).map_err(|e| Mismatch {
                    kind: Kind::Conditional,
                    path: e.path,
                    message: format!("conditional anchor mismatch: {}", e.message),
                }),
                None => Err(Mismatch {
                    kind: Kind::Conditional,
                    path: current.clone(),
                    message: "conditional anchor mismatch: conditional anchor key doesn't exist in the resource".into(),
                }),
            },
            Anchor::Existence => match rmap.get(k) {
                Some(v) => existence(v, pat, &current, keys),
                None => Ok(()),
            },
            Anchor::Global | Anchor::AddIfNotPresent => continue,
        };
        match result {
            Ok(()) => applied += 1,
            Err(e) if e.skips() => skipped.push(e),
            Err(e) => {
                let direct_skip = skipped
                    .iter()
                    .any(|s| matches!(s.kind, Kind::Conditional | Kind::Global));
                if !direct_skip {
                    return Err(e);
                }
            }
        }
    }
    if !skipped.is_empty() {
        let direct_skip = skipped
            .iter()
            .any(|s| matches!(s.kind, Kind::Conditional | Kind::Global));
        if applied == 0 || direct_skip {
            return Err(Mismatch {
                kind: Kind::PatternSkip,
                path: path.to_string(),
                message: skipped
                    .iter()
                    .map(|s| s.message.clone())
                    .collect::<Vec<_>>()
                    .join("; "),
            });
        }
    }

    // Phase 2: the other keys; global anchors and keys holding anchors first.
    let mut first = Vec::new();
    let mut later = Vec::new();
    for (key, pat) in pmap {
        match parse_anchor(key) {
            Some((Anchor::Global, _)) => first.push((key, pat)),
            Some((kind, _)) if kind != Anchor::AddIfNotPresent => {}
            _ if has_nested_anchors(pat) => first.push((key, pat)),
            _ => later.push((key, pat)),
        }
    }
    // Kyverno pushes these to the front one by one, which reverses their sorted order.
    first.reverse();
    for (key, pat) in first.into_iter().chain(later) {
        if let Some((Anchor::Global, k)) = parse_anchor(key) {
            let current = format!("{path}{k}/");
            if let Some(v) = rmap.get(k) {
                element(v, pat, &current, keys).map_err(|e| Mismatch {
                    kind: Kind::Global,
                    path: e.path,
                    message: format!("global anchor mismatch: {}", e.message),
                })?;
            }
            continue;
        }
        let current = format!("{path}{key}/");
        let value = rmap.get(key.as_str()).unwrap_or(&Value::Null);
        if pat.as_str() == Some("*") {
            if value.is_null() {
                return Err(Mismatch::plain(path, format!("{path}/{key} not found")));
            }
            continue;
        }
        element(value, pat, &current, keys)?;
    }
    Ok(())
}

fn existence(
    value: &Value,
    pat: &Value,
    current: &str,
    keys: &mut AnchorKeys,
) -> Result<(), Mismatch> {
    let Value::Array(items) = value else {
        return Err(Mismatch::plain(
            current,
            format!(
                "invalid resource type {}: Existence ^ () anchor can be used only on list/array type resource",
                go_type(value)
            ),
        ));
    };
    let Value::Array(patterns) = pat else {
        return Err(Mismatch::plain(
            current,
            format!(
                "invalid pattern type {}: Pattern has to be of list to compare against resource",
                go_type(pat)
            ),
        ));
    };
    for p in patterns {
        if !p.is_object() {
            return Err(Mismatch::plain(
                current,
                format!(
                    "invalid pattern type {}: Pattern has to be of type map to compare against items in resource",
                    go_type(pat)
                ),
            ));
        }
        let any = items
            .iter()
            .enumerate()
            .any(|(i, item)| element(item, p, &format!("{current}{i}/"), keys).is_ok());
        if !any {
            return Err(Mismatch::plain(
                current,
                format!("existence anchor validation failed at path {current}"),
            ));
        }
    }
    Ok(())
}

fn array(
    rarr: &[Value],
    parr: &[Value],
    path: &str,
    keys: &mut AnchorKeys,
) -> Result<(), Mismatch> {
    let Some(first) = parr.first() else {
        return Err(Mismatch::plain(path, "pattern Array empty".into()));
    };
    match first {
        Value::Object(_) => {
            let mut applied = 0;
            let mut skipped = Vec::new();
            for (i, item) in rarr.iter().enumerate() {
                match element(item, first, &format!("{path}{i}/"), keys) {
                    Ok(()) => applied += 1,
                    Err(e) if e.skips() => skipped.push(e.message),
                    Err(e) => return Err(e),
                }
            }
            if applied == 0 && !skipped.is_empty() {
                return Err(Mismatch {
                    kind: Kind::PatternSkip,
                    path: path.to_string(),
                    message: skipped.join("; "),
                });
            }
            Ok(())
        }
        Value::Array(_) => {
            if rarr.len() < parr.len() {
                return Err(Mismatch::plain(
                    "",
                    format!(
                        "validate Array failed, array length mismatch, resource Array len is {} and pattern Array len is {}",
                        rarr.len(),
                        parr.len()
                    ),
                ));
            }
            let mut applied = 0;
            let mut skipped = Vec::new();
            for (i, p) in parr.iter().enumerate() {
                match element(&rarr[i], p, &format!("{path}{i}/"), keys) {
                    Ok(()) => applied += 1,
                    Err(e) if e.skips() => skipped.push(e.message),
                    Err(e) => return Err(e),
                }
            }
            if applied == 0 && !skipped.is_empty() {
                return Err(Mismatch {
                    kind: Kind::PatternSkip,
                    path: path.to_string(),
                    message: skipped.join("; "),
                });
            }
            Ok(())
        }
        leaf => element(&Value::Array(rarr.to_vec()), leaf, path, keys),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(image: &str) -> Value {
        json!({"spec": {"containers": [{"name": "app", "image": image}]}})
    }

    #[test]
    fn registry_pattern_with_if_present_anchors() {
        let pattern = json!({"spec": {
            "=(ephemeralContainers)": [{"image": "eu.foo.io/* | bar.io/*"}],
            "=(initContainers)": [{"image": "eu.foo.io/* | bar.io/*"}],
            "containers": [{"image": "eu.foo.io/* | bar.io/*"}],
        }});
        assert_eq!(
            match_pattern(&pod("bar.io/app:1"), &pattern),
            PatternOutcome::Pass
        );
        assert_eq!(
            match_pattern(&pod("docker.io/app:1"), &pattern),
            PatternOutcome::Fail {
                path: "/spec/containers/0/image/".into(),
                error: "resource value 'docker.io/app:1' does not match 'eu.foo.io/* | bar.io/*' at path /spec/containers/0/image/".into(),
            }
        );
        let mut with_init = pod("bar.io/app:1");
        with_init["spec"]["initContainers"] = json!([{"name": "i", "image": "quay.io/x"}]);
        assert!(matches!(
            match_pattern(&with_init, &pattern),
            PatternOutcome::Fail { path, .. } if path == "/spec/initContainers/0/image/"
        ));
    }

    #[test]
    fn conditional_anchor_skips_and_negation_fails() {
        let pattern = json!({"spec": {"containers": [{"(name)": "db", "image": "*:*"}]}});
        assert!(matches!(
            match_pattern(&pod("nginx"), &pattern),
            PatternOutcome::Skip { .. }
        ));
        let pattern = json!({"spec": {"containers": [{"(name)": "app", "image": "*:*"}]}});
        assert!(matches!(
            match_pattern(&pod("nginx"), &pattern),
            PatternOutcome::Fail { .. }
        ));
        let pattern = json!({"spec": {"containers": [{"X(image)": "null"}]}});
        assert!(matches!(
            match_pattern(&pod("nginx"), &pattern),
            PatternOutcome::Fail { path, .. } if path == "/spec/containers/0/image/"
        ));
    }

    #[test]
    fn missing_list_fails_at_its_path() {
        let pattern = json!({"spec": {"volumes": [{"name": "*"}]}});
        assert!(matches!(
            match_pattern(&pod("nginx"), &pattern),
            PatternOutcome::Fail { path, .. } if path == "/spec/volumes/"
        ));
    }
}
