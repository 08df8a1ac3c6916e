//! Conditions (`preconditions`, `deny.conditions`, attestation `conditions`) and their
//! operators (`pkg/engine/variables/operator`), including Kyverno's quirks: `Equals` treats
//! the value as a wildcard pattern, `In`-family operators match wildcards both ways, strings
//! that parse as durations or quantities compare as such.
//!
//! Numbers are handled as Go's `float64`, which is what Kyverno sees after JSON decoding.

use std::cmp::Ordering;

use serde_json::Value;

use super::cfg::{AnyAllConditions, Condition, ConditionBlock};
use super::pattern::{self, parse_go_duration, parse_quantity};
use super::vars::{Scope, Unknown};
use super::wildcard;

/// What a set of conditions evaluated to, with the messages Kyverno would collect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Truth {
    True(String),
    False(String),
    /// A variable could not be resolved offline.
    Unknown(Unknown),
}

/// Preconditions / deny conditions (`EvaluateConditions`).
pub fn evaluate_block(scope: &Scope, block: &ConditionBlock) -> Truth {
    match block {
        ConditionBlock::AnyAll(aa) => evaluate_any_all(scope, aa),
        ConditionBlock::Legacy(list) => {
            let mut truth_msgs = Vec::new();
            let mut unknown = None;
            for c in list {
                match evaluate(scope, c) {
                    Ok((true, msg)) => truth_msgs.push(msg),
                    Ok((false, msg)) => return Truth::False(msg),
                    Err(u) => unknown = unknown.or(Some(u)),
                }
            }
            match unknown {
                Some(u) => Truth::Unknown(u),
                None => Truth::True(join_non_empty(&truth_msgs, ";")),
            }
        }
    }
}

/// A list of `{any, all}` blocks that must all hold (attestation conditions).
pub fn evaluate_list(scope: &Scope, list: &[AnyAllConditions]) -> Truth {
    let mut truth_msgs = Vec::new();
    let mut unknown = None;
    for aa in list {
        match evaluate_any_all(scope, aa) {
            Truth::True(m) => truth_msgs.push(m),
            Truth::False(m) => return Truth::False(m),
            Truth::Unknown(u) => unknown = unknown.or(Some(u)),
        }
    }
    match unknown {
        Some(u) => Truth::Unknown(u),
        None => Truth::True(join_non_empty(&truth_msgs, ";")),
    }
}

fn evaluate_any_all(scope: &Scope, aa: &AnyAllConditions) -> Truth {
    let mut false_msgs = Vec::new();
    let mut true_msgs = Vec::new();
    let mut unknown: Option<Unknown> = None;

    // `any`: one true condition is enough; absent means true.
    let any_result = match &aa.any {
        None => Some(true),
        Some(list) => {
            let mut result = Some(false);
            let mut any_unknown = None;
            for c in list {
                match evaluate(scope, c) {
                    Ok((true, msg)) => {
                        true_msgs.push(msg);
                        result = Some(true);
                        any_unknown = None;
                        break;
                    }
                    Ok((false, msg)) => false_msgs.push(msg),
                    Err(u) => any_unknown = any_unknown.or(Some(u)),
                }
            }
            if let Some(u) = any_unknown {
                unknown = Some(u);
                None
            } else {
                result
            }
        }
    };

    // `all`: one false condition decides.
    let mut all_result = Some(true);
    for c in aa.all.iter().flatten() {
        match evaluate(scope, c) {
            Ok((true, msg)) => true_msgs.push(msg),
            Ok((false, msg)) => {
                false_msgs.push(msg);
                all_result = Some(false);
                break;
            }
            Err(u) => {
                unknown = unknown.or(Some(u));
                all_result = all_result.and(None);
            }
        }
    }

    match (any_result, all_result) {
        (Some(false), _) | (_, Some(false)) => Truth::False(join_non_empty(&false_msgs, "; ")),
        (Some(true), Some(true)) => Truth::True(join_non_empty(&true_msgs, "; ")),
        _ => Truth::Unknown(unknown.unwrap_or_else(|| "a condition is unknown".into())),
    }
}

fn join_non_empty(msgs: &[String], sep: &str) -> String {
    msgs.iter()
        .filter(|m| !m.is_empty())
        .cloned()
        .collect::<Vec<_>>()
        .join(sep)
}

/// One condition: substitute variables in key and value, then apply the operator.
pub fn evaluate(scope: &Scope, c: &Condition) -> Result<(bool, String), Unknown> {
    let key = scope.substitute(c.key.as_ref().unwrap_or(&Value::Null))?;
    let value = scope.substitute(c.value.as_ref().unwrap_or(&Value::Null))?;
    let result = apply(&c.operator, &key, &value)
        .ok_or_else(|| format!("unknown condition operator `{}`", c.operator))?;
    Ok((result, c.message.clone()))
}

/// Applies a condition operator (case-insensitive, as Kyverno matches them); `None` for an
/// operator Kyverno does not know.
pub fn apply(operator: &str, key: &Value, value: &Value) -> Option<bool> {
    use Ordering::{Greater, Less};
    let cmp = |o: Option<Ordering>, want: &[Ordering]| o.is_some_and(|o| want.contains(&o));
    let result = match operator.to_lowercase().as_str() {
        "equal" | "equals" => equal(key, value),
        "notequal" | "notequals" => not_equal(key, value),
        "in" => in_op(key, value, false),
        "notin" => in_op(key, value, true),
        "anyin" => any_in(key, value, false),
        "anynotin" => any_in(key, value, true),
        "allin" => all_in(key, value, false),
        "allnotin" => all_in(key, value, true),
        "greaterthan" => cmp(numeric(key, value), &[Greater]),
        "greaterthanorequals" => cmp(numeric(key, value), &[Greater, Ordering::Equal]),
        "lessthan" => cmp(numeric(key, value), &[Less]),
        "lessthanorequals" => cmp(numeric(key, value), &[Less, Ordering::Equal]),
        "durationgreaterthan" => cmp(duration(key, value), &[Greater]),
        "durationgreaterthanorequals" => cmp(duration(key, value), &[Greater, Ordering::Equal]),
        "durationlessthan" => cmp(duration(key, value), &[Less]),
        "durationlessthanorequals" => cmp(duration(key, value), &[Less, Ordering::Equal]),
        _ => return None,
    };
    Some(result)
}

/// Go's `fmt.Sprint` of a JSON value.
fn sprint(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.as_f64().map(go_float).unwrap_or_default(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "<nil>".into(),
        other => other.to_string(),
    }
}

fn go_float(f: f64) -> String {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// JSON equality with numbers compared as float64 (`datautils.DeepEqual` after decoding).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| json_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| json_eq(v, w)))
        }
        _ => a == b,
    }
}

/// `parseDuration(key, value)`: at least one side must be a duration string (not "0"); the
/// other may be a number of seconds.
fn durations(key: &Value, value: &Value) -> Option<(i128, i128)> {
    let as_duration = |v: &Value| match v {
        Value::String(s) if s != "0" => parse_go_duration(s),
        _ => None,
    };
    let seconds = |v: &Value| {
        v.as_f64()
            .map(|f| i128::from(f.trunc() as i64) * 1_000_000_000)
    };
    let (k, v) = (as_duration(key), as_duration(value));
    if k.is_none() && v.is_none() {
        return None;
    }
    Some((k.or_else(|| seconds(key))?, v.or_else(|| seconds(value))?))
}

fn equal(key: &Value, value: &Value) -> bool {
    match key {
        Value::Bool(k) => value.as_bool() == Some(*k),
        Value::Number(k) => {
            let k = k.as_f64().unwrap_or(f64::NAN);
            match value {
                Value::Number(v) => v.as_f64() == Some(k),
                Value::String(s) => s.parse::<f64>().is_ok_and(|v| v == k),
                _ => false,
            }
        }
        Value::String(k) => {
            if let Some((a, b)) = durations(key, value) {
                return a == b;
            }
            if let Some(kq) = parse_quantity(k)
                && let Value::String(v) = value
            {
                return parse_quantity(v).is_some_and(|vq| vq == kq);
            }
            match value {
                Value::String(v) => wildcard::matches(v, k),
                _ => false,
            }
        }
        Value::Object(_) => value.is_object() && json_eq(key, value),
        Value::Array(_) => value.is_array() && json_eq(key, value),
        Value::Null => false,
    }
}

fn not_equal(key: &Value, value: &Value) -> bool {
    match key {
        Value::Bool(k) => value.as_bool().is_none_or(|v| v != *k),
        Value::Number(k) => {
            let k = k.as_f64().unwrap_or(f64::NAN);
            match value {
                Value::Number(v) => v.as_f64() != Some(k),
                Value::String(s) => s.parse::<f64>() != Ok(k),
                _ => true,
            }
        }
        Value::String(k) => {
            if let Some((a, b)) = durations(key, value) {
                return a != b;
            }
            if let Some(kq) = parse_quantity(k)
                && let Value::String(v) = value
            {
                if v.is_empty() {
                    return !wildcard::matches(v, k);
                }
                return parse_quantity(v).is_none_or(|vq| vq != kq);
            }
            match value {
                Value::String(v) => !wildcard::matches(v, k),
                _ => true,
            }
        }
        Value::Object(_) | Value::Array(_) => !json_eq(key, value),
        Value::Null => false,
    }
}

fn is_scalar(v: &Value) -> bool {
    matches!(v, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// A string value read as a list: JSON text when it is valid JSON, else the string itself.
/// `None` when it is JSON but not a list of strings (Kyverno: invalid type).
fn string_as_list(s: &str, json_only: bool) -> Option<Vec<String>> {
    match serde_json::from_str::<Value>(s) {
        Ok(v) => serde_json::from_value::<Vec<String>>(v).ok(),
        Err(_) if json_only => None,
        Err(_) => Some(vec![s.to_string()]),
    }
}

fn either_way(a: &str, b: &str) -> bool {
    wildcard::matches(a, b) || wildcard::matches(b, a)
}

/// `In` / `NotIn` (deprecated): exact set membership for list keys.
fn in_op(key: &Value, value: &Value, negate: bool) -> bool {
    if is_scalar(key) {
        let k = sprint(key);
        let exists = match value {
            Value::Array(vals) => vals.iter().any(|v| either_way(&sprint(v), &k)),
            Value::String(s) => {
                if wildcard::matches(s, &k) {
                    true
                } else {
                    match string_as_list(s, true) {
                        Some(list) => list.contains(&k),
                        None => return false,
                    }
                }
            }
            _ => return false,
        };
        return exists != negate;
    }
    let Value::Array(keys) = key else {
        return false;
    };
    let Some(keys) = keys
        .iter()
        .map(|k| k.as_str().map(str::to_string))
        .collect::<Option<Vec<String>>>()
    else {
        return false;
    };
    let set: Vec<String> = match value {
        Value::Array(vals) => match vals
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
        {
            Some(s) => s,
            None => return false,
        },
        Value::String(s) => {
            if keys.len() == 1 && &keys[0] == s {
                return true;
            }
            match string_as_list(s, true) {
                Some(list) => list,
                None => return false,
            }
        }
        _ => return false,
    };
    if negate {
        keys.iter().any(|k| !set.contains(k))
    } else {
        keys.iter().all(|k| set.contains(k))
    }
}

/// Whether a string value is a range (`1-6`) for the `In` family.
fn is_in_range_pattern(s: &str) -> bool {
    pattern::is_range(s)
}

fn in_range_of(k: &str, range: &str) -> bool {
    pattern::validate(
        &Value::String(k.to_string()),
        &Value::String(range.to_string()),
    )
}

/// `AnyIn` / `AnyNotIn`.
fn any_in(key: &Value, value: &Value, negate: bool) -> bool {
    if is_scalar(key) {
        let k = sprint(key);
        let exists = match value {
            Value::Array(vals) => vals.iter().any(|v| either_way(&sprint(v), &k)),
            Value::String(s) => {
                if wildcard::matches(s, &k) {
                    true
                } else if is_in_range_pattern(s) {
                    in_range_of(&k, s)
                } else {
                    match string_as_list(s, false) {
                        Some(list) => list.contains(&k),
                        None => return false,
                    }
                }
            }
            _ => return false,
        };
        return exists != negate;
    }
    let Value::Array(keys) = key else {
        return false;
    };
    let keys: Vec<String> = keys.iter().map(sprint).collect();
    let values: Vec<String> = match value {
        Value::Array(vals) => vals.iter().map(sprint).collect(),
        Value::Number(_) | Value::Bool(_) => vec![sprint(value)],
        Value::String(s) => {
            if keys.len() == 1 && &keys[0] == s {
                return !negate;
            }
            if is_in_range_pattern(s) {
                return if negate {
                    let not_range = s.replacen('-', "!-", 1);
                    keys.iter().any(|k| in_range_of(k, &not_range))
                } else {
                    keys.iter().any(|k| in_range_of(k, s))
                };
            }
            match string_as_list(s, false) {
                Some(list) => list,
                None => return false,
            }
        }
        _ => return false,
    };
    let found = |k: &String| values.iter().any(|v| either_way(k, v));
    if negate {
        keys.iter().any(|k| !found(k))
    } else {
        keys.iter().any(found)
    }
}

/// `AllIn` / `AllNotIn`.
fn all_in(key: &Value, value: &Value, negate: bool) -> bool {
    if is_scalar(key) {
        // A single key: same lookup as AnyIn.
        let k = sprint(key);
        let exists = match value {
            Value::Array(vals) => vals.iter().any(|v| either_way(&sprint(v), &k)),
            Value::String(s) => {
                if wildcard::matches(s, &k) {
                    true
                } else if is_in_range_pattern(s) {
                    in_range_of(&k, s)
                } else {
                    match string_as_list(s, false) {
                        Some(list) => list.contains(&k),
                        None => return false,
                    }
                }
            }
            _ => return false,
        };
        return exists != negate;
    }
    let Value::Array(keys) = key else {
        return false;
    };
    let keys: Vec<String> = keys.iter().map(sprint).collect();
    let values: Vec<String> = match value {
        Value::Array(vals) => vals.iter().map(sprint).collect(),
        Value::String(s) => {
            if keys.len() == 1 && &keys[0] == s {
                return !negate;
            }
            if is_in_range_pattern(s) {
                let inside = keys.iter().filter(|k| in_range_of(k, s)).count();
                return if negate {
                    inside == 0
                } else {
                    inside == keys.len()
                };
            }
            match string_as_list(s, false) {
                Some(list) => list,
                None => return false,
            }
        }
        _ => return false,
    };
    let found = |k: &String| values.iter().any(|v| either_way(k, v));
    if negate {
        !keys.iter().any(found)
    } else {
        keys.iter().all(found)
    }
}

fn parse_f64(s: &str) -> Option<f64> {
    s.parse::<f64>().ok()
}

/// `GreaterThan` & co: durations, then quantities, then numbers, then semantic versions.
fn numeric(key: &Value, value: &Value) -> Option<Ordering> {
    match key {
        Value::Number(k) => {
            let k = k.as_f64()?;
            match value {
                Value::Number(v) => k.partial_cmp(&v.as_f64()?),
                Value::String(s) => match durations(key, value) {
                    Some((a, b)) => Some(a.cmp(&b)),
                    None => k.partial_cmp(&parse_f64(s)?),
                },
                _ => None,
            }
        }
        Value::String(k) => {
            if let Some((a, b)) = durations(key, value) {
                return Some(a.cmp(&b));
            }
            if let (Some(kq), Some(vq)) =
                (parse_quantity(k), value.as_str().and_then(parse_quantity))
            {
                return kq.partial_cmp(&vq);
            }
            if let Some(kf) = parse_f64(k) {
                return numeric(&serde_json::json!(kf), value);
            }
            let kv = semver(k)?;
            let vv = semver(value.as_str()?)?;
            Some(kv.cmp(&vv))
        }
        _ => None,
    }
}

/// A strict semantic version (`major.minor.patch[-pre][+build]`) as a comparable key.
fn semver(s: &str) -> Option<(u64, u64, u64, Vec<PreId>)> {
    let core_and_pre = s.split('+').next()?;
    let (core, pre) = match core_and_pre.split_once('-') {
        Some((c, p)) => (c, Some(p)),
        None => (core_and_pre, None),
    };
    let mut parts = core.split('.');
    let mut num = || -> Option<u64> {
        let p = parts.next()?;
        if p.is_empty() || (p.len() > 1 && p.starts_with('0')) {
            return None;
        }
        p.parse().ok()
    };
    let (major, minor, patch) = (num()?, num()?, num()?);
    if parts.next().is_some() {
        return None;
    }
    let pre_ids = match pre {
        None => vec![PreId::Release],
        Some(p) => p
            .split('.')
            .map(|id| match id.parse::<u64>() {
                Ok(n) => PreId::Num(n),
                Err(_) => PreId::Text(id.to_string()),
            })
            .collect(),
    };
    Some((major, minor, patch, pre_ids))
}

/// Pre-release identifiers order: numbers before text, and a release after any pre-release.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum PreId {
    Num(u64),
    Text(String),
    Release,
}

/// `DurationGreaterThan` & co.
fn duration(key: &Value, value: &Value) -> Option<Ordering> {
    let secs = |v: &Value| {
        v.as_f64()
            .map(|f| i128::from(f.trunc() as i64) * 1_000_000_000)
    };
    let k = match key {
        Value::Number(_) => secs(key)?,
        Value::String(s) => parse_go_duration(s)?,
        _ => return None,
    };
    let v = match value {
        Value::Number(_) => secs(value)?,
        Value::String(s) => parse_go_duration(s)?,
        _ => return None,
    };
    Some(k.cmp(&v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sample_any_not_in() {
        let allowed = json!(["myknownimage", "kyverno"]);
        assert!(apply("AnyNotIn", &json!(["nginx"]), &allowed).unwrap());
        assert!(!apply("AnyNotIn", &json!(["kyverno"]), &allowed).unwrap());
        assert!(apply("AnyNotIn", &json!(["kyverno", "nginx"]), &allowed).unwrap());
        assert!(!apply("AnyNotIn", &json!([]), &allowed).unwrap());
    }

    #[test]
    fn operators() {
        assert!(apply("Equals", &json!("ghcr.io/a"), &json!("ghcr.io/*")).unwrap());
        assert!(!apply("Equals", &json!("ghcr.io/*"), &json!("ghcr.io/a")).unwrap());
        assert!(apply("NotEquals", &json!("a"), &json!("b")).unwrap());
        assert!(apply("Equals", &json!(3), &json!("3")).unwrap());
        assert!(apply("Equals", &json!("1h"), &json!("60m")).unwrap());
        assert!(apply("AnyIn", &json!(["a", "x"]), &json!(["x*"])).unwrap());
        assert!(!apply("AllIn", &json!(["a", "x"]), &json!(["x*"])).unwrap());
        assert!(apply("AllIn", &json!(["xa", "xb"]), &json!(["x*"])).unwrap());
        assert!(apply("AllNotIn", &json!(["a", "b"]), &json!(["c"])).unwrap());
        assert!(!apply("AllNotIn", &json!(["a", "c"]), &json!(["c"])).unwrap());
        assert!(apply("In", &json!("b"), &json!(["a", "b"])).unwrap());
        assert!(apply("NotIn", &json!("c"), &json!(["a", "b"])).unwrap());
        assert!(apply("GreaterThan", &json!(5), &json!(3)).unwrap());
        assert!(apply("LessThanOrEquals", &json!("1Gi"), &json!("1024Mi")).unwrap());
        assert!(apply("GreaterThan", &json!("1.10.0"), &json!("1.9.3")).unwrap());
        assert!(apply("GreaterThan", &json!("1.0.0"), &json!("1.0.0-rc1")).unwrap());
        assert!(apply("DurationGreaterThan", &json!("2h"), &json!("90m")).unwrap());
        assert!(!apply("DurationLessThan", &json!("2h"), &json!(3600)).unwrap());
        assert!(apply("AnyIn", &json!(5), &json!("1-6")).unwrap());
        assert!(!apply("AnyIn", &json!(7), &json!("1-6")).unwrap());
        assert!(apply("AnyNotIn", &json!([7]), &json!("1-6")).unwrap());
        assert!(apply("Nope", &json!(1), &json!(1)).is_none());
    }
}
