//! Leaf values of validate patterns (`pkg/engine/pattern`, `pkg/engine/operator`): a string
//! pattern is tried for exact equality first, then split on `|` (any) and `&` (all); each part
//! may start with an operator (`!`, `>=`, `<=`, `>`, `<`) or be a range (`a-b`, `a!-b`), and is
//! compared as a Go duration, then as a Kubernetes quantity, then as a wildcard string.

use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

use super::wildcard;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Equal,
    NotEqual,
    MoreEqual,
    LessEqual,
    More,
    Less,
    InRange,
    NotInRange,
}

static IN_RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([-|\+]?\d+(?:\.\d+)?[A-Za-z]*)-([-|\+]?\d+(?:\.\d+)?[A-Za-z]*)$")
        .expect("static regex")
});
static NOT_IN_RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^([-|\+]?\d+(?:\.\d+)?[A-Za-z]*)!-([-|\+]?\d+(?:\.\d+)?[A-Za-z]*)$")
        .expect("static regex")
});

/// `GetOperatorFromStringPattern`, with the prefix length to strip.
fn operator_of(pattern: &str) -> (Op, usize) {
    if pattern.len() < 2 {
        return (Op::Equal, 0);
    }
    if pattern.starts_with(">=") {
        (Op::MoreEqual, 2)
    } else if pattern.starts_with("<=") {
        (Op::LessEqual, 2)
    } else if pattern.starts_with('>') {
        (Op::More, 1)
    } else if pattern.starts_with('<') {
        (Op::Less, 1)
    } else if pattern.starts_with('!') {
        (Op::NotEqual, 1)
    } else if NOT_IN_RANGE.is_match(pattern) {
        (Op::NotInRange, 0)
    } else if IN_RANGE.is_match(pattern) {
        (Op::InRange, 0)
    } else {
        (Op::Equal, 0)
    }
}

/// Whether the pattern is a plain range `a-b` (`operator.InRange`).
pub fn is_range(pattern: &str) -> bool {
    operator_of(pattern).0 == Op::InRange
}

/// `pattern.Validate`: whether a resource value satisfies a leaf pattern.
pub fn validate(value: &Value, pattern: &Value) -> bool {
    match pattern {
        Value::Bool(p) => value.as_bool() == Some(*p),
        Value::Number(n) => match n.as_i64() {
            Some(p) => int_pattern(value, p),
            None => n.as_f64().is_some_and(|p| float_pattern(value, p)),
        },
        Value::Null => match value {
            Value::Null => true,
            Value::Number(n) => n.as_f64() == Some(0.0),
            Value::String(s) => s.is_empty(),
            Value::Bool(b) => !b,
            Value::Array(_) | Value::Object(_) => false,
        },
        Value::Object(_) => value.is_object(),
        Value::String(p) => string_patterns(value, p),
        Value::Array(_) => false,
    }
}

fn int_pattern(value: &Value, p: i64) -> bool {
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(v) => v == p,
            None => n.as_f64().is_some_and(|v| v.trunc() == v && v as i64 == p),
        },
        Value::String(s) => s.parse::<i64>().is_ok_and(|v| v == p),
        _ => false,
    }
}

fn float_pattern(value: &Value, p: f64) -> bool {
    match value {
        Value::Number(n) => match n.as_i64() {
            Some(v) => p.trunc() == p && p as i64 == v,
            None => n.as_f64() == Some(p),
        },
        Value::String(s) => s.parse::<f64>().is_ok_and(|v| v == p),
        _ => false,
    }
}

/// `validateStringPatterns`.
pub fn string_patterns(value: &Value, pattern: &str) -> bool {
    if value.as_str() == Some(pattern) {
        return true;
    }
    pattern.split('|').any(|alternative| {
        alternative
            .trim_matches(' ')
            .split('&')
            .all(|part| string_pattern(value, part.trim_matches(' ')))
    })
}

fn string_pattern(value: &Value, pattern: &str) -> bool {
    match operator_of(pattern) {
        (Op::InRange, _) => match IN_RANGE.captures(pattern) {
            Some(c) => {
                string_pattern(value, &format!(">= {}", &c[1]))
                    && string_pattern(value, &format!("<= {}", &c[2]))
            }
            None => false,
        },
        (Op::NotInRange, _) => match NOT_IN_RANGE.captures(pattern) {
            Some(c) => {
                string_pattern(value, &format!("< {}", &c[1]))
                    || string_pattern(value, &format!("> {}", &c[2]))
            }
            None => false,
        },
        (op, len) => {
            let rest = pattern.get(len..).unwrap_or("").trim();
            if let Some(r) = compare_duration(value, rest, op) {
                return r;
            }
            if let Some(r) = compare_quantity(value, rest, op) {
                return r;
            }
            compare_string(value, rest, op)
        }
    }
}

/// `convertNumberToString`: what a value looks like as a duration or quantity operand.
fn number_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => Some("0".to_string()),
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Some(i.to_string()),
            None => n.as_f64().map(|f| format!("{f:.6}")),
        },
        _ => None,
    }
}

fn ordered<T: PartialOrd>(value: T, pattern: T, op: Op) -> Option<bool> {
    match op {
        Op::Equal => Some(value == pattern),
        Op::NotEqual => Some(value != pattern),
        Op::More => Some(value > pattern),
        Op::Less => Some(value < pattern),
        Op::MoreEqual => Some(value >= pattern),
        Op::LessEqual => Some(value <= pattern),
        Op::InRange | Op::NotInRange => None,
    }
}

fn compare_duration(value: &Value, pattern: &str, op: Op) -> Option<bool> {
    let p = parse_go_duration(pattern)?;
    let v = parse_go_duration(&number_text(value)?)?;
    ordered(v, p, op)
}

fn compare_quantity(value: &Value, pattern: &str, op: Op) -> Option<bool> {
    let p = parse_quantity(pattern)?;
    let v = parse_quantity(&number_text(value)?)?;
    ordered(v, p, op)
}

fn compare_string(value: &Value, pattern: &str, op: Op) -> bool {
    if op != Op::Equal && op != Op::NotEqual {
        // Kyverno: ">, >=, <, <= are not applicable to strings".
        return false;
    }
    let text = match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.to_string(),
            None => n.as_f64().map(go_float_e).unwrap_or_default(),
        },
        // Kyverno refuses to compare anything else, for `!` too.
        _ => return false,
    };
    let matched = wildcard::matches(pattern, &text);
    if op == Op::NotEqual {
        !matched
    } else {
        matched
    }
}

/// Go's `strconv.FormatFloat(v, 'E', -1, 64)`: `1.5E+00`.
fn go_float_e(v: f64) -> String {
    let s = format!("{v:E}");
    match s.split_once('E') {
        Some((mantissa, exp)) => {
            let (sign, digits) = match exp.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', exp),
            };
            format!("{mantissa}E{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// Go's `time.ParseDuration`, in nanoseconds.
pub fn parse_go_duration(s: &str) -> Option<i128> {
    let (negative, mut rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total: i128 = 0;
    while !rest.is_empty() {
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let int: i128 = if int_len > 0 {
            rest[..int_len].parse().ok()?
        } else {
            0
        };
        rest = &rest[int_len..];
        let (mut frac, mut scale, mut frac_len) = (0i128, 1i128, 0);
        if let Some(after) = rest.strip_prefix('.') {
            frac_len = after.bytes().take_while(u8::is_ascii_digit).count();
            for d in after[..frac_len].bytes().take(18) {
                frac = frac * 10 + i128::from(d - b'0');
                scale *= 10;
            }
            rest = &after[frac_len..];
        }
        if int_len == 0 && frac_len == 0 {
            return None;
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit: i128 = match &rest[..unit_len] {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total
            .checked_add(int.checked_mul(unit)?)?
            .checked_add(frac * unit / scale)?;
        if total > i128::from(i64::MAX) {
            return None;
        }
    }
    Some(if negative { -total } else { total })
}

/// A Kubernetes resource quantity (`resource.ParseQuantity`) as a number.
pub fn parse_quantity(s: &str) -> Option<f64> {
    let body = s.strip_prefix(['+', '-']).unwrap_or(s);
    let negative = s.starts_with('-');
    let num_len = body
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(body.len());
    let number = &body[..num_len];
    if number.is_empty() || number == "." || number.matches('.').count() > 1 {
        return None;
    }
    let base: f64 = number.parse().ok()?;
    let suffix = &body[num_len..];
    let factor = match suffix {
        "" => 1.0,
        "Ki" => 1024f64,
        "Mi" => 1024f64.powi(2),
        "Gi" => 1024f64.powi(3),
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        "n" => 1e-9,
        "u" => 1e-6,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        other => {
            let exp = other.strip_prefix(['e', 'E'])?;
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            10f64.powi(exp.parse::<i32>().ok()?)
        }
    };
    let v = base * factor;
    Some(if negative { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn image_string_patterns() {
        let img = |s: &str| json!(s);
        let cases = [
            ("nginx:latest", "!*:latest", false),
            ("nginx:1.25", "!*:latest", true),
            ("nginx", "*:*", false),
            ("localhost:5000/app", "*:*", true),
            ("eu.foo.io/app:1", "eu.foo.io/* | bar.io/*", true),
            ("bar.io/x/y:2", "eu.foo.io/* | bar.io/*", true),
            ("docker.io/nginx", "eu.foo.io/* | bar.io/*", false),
            ("nginx@sha256:abc", "*@*", true),
            ("ghcr.io/a:1", "ghcr.io/* & !*:latest", true),
            ("ghcr.io/a:latest", "ghcr.io/* & !*:latest", false),
            ("a|b", "a|b", true),
        ];
        for (value, pattern, want) in cases {
            assert_eq!(
                string_patterns(&img(value), pattern),
                want,
                "{value:?} against {pattern:?}"
            );
        }
    }

    #[test]
    fn numbers_durations_quantities() {
        assert!(validate(&json!(3), &json!(">2")));
        assert!(!validate(&json!(3), &json!("<2")));
        assert!(validate(&json!("2Gi"), &json!(">1Gi")));
        assert!(validate(&json!("1500m"), &json!("1-2")));
        assert!(!validate(&json!("3"), &json!("1-2")));
        assert!(validate(&json!("3"), &json!("1!-2")));
        assert!(validate(&json!("90s"), &json!(">1m")));
        assert!(validate(&json!(5), &json!(5)));
        assert!(validate(&json!("5"), &json!(5)));
        assert!(validate(&json!(null), &json!(null)));
        assert!(!validate(&json!("abc"), &json!(">a")));
        assert!(!validate(&json!(null), &json!("!x")));
        assert!(validate(&json!(true), &json!("true")));
    }

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_go_duration("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_go_duration("-2ms"), Some(-2_000_000));
        assert_eq!(parse_go_duration("0"), Some(0));
        assert_eq!(parse_go_duration("5"), None);
        assert_eq!(parse_go_duration("1d"), None);
        assert_eq!(parse_go_duration(""), None);
    }

    #[test]
    fn quantities() {
        assert_eq!(parse_quantity("1Ki"), Some(1024.0));
        assert_eq!(parse_quantity("500m"), Some(0.5));
        assert_eq!(parse_quantity("1e3"), Some(1000.0));
        assert_eq!(parse_quantity("nginx"), None);
        assert_eq!(parse_quantity("1.2.3"), None);
        assert_eq!(go_float_e(1.5), "1.5E+00");
    }
}
