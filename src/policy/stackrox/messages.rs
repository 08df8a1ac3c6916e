//! Violation messages in StackRox's wording (`pkg/booleanpolicy/violationmessages/printer`), for
//! the BUILD stage (no container names; vulnerability messages carry the CVE, CVSS, severity and
//! component, plus the fix when the policy asks about fixes and NVD CVSS when it asks about
//! that).

use chrono::{DateTime, Utc};

use crate::facts::{Component, DockerfileLine, Vulnerability};

/// StackRox cuts Dockerfile line values after this many bytes.
const MAX_LINE_LENGTH: usize = 32;
/// Label values are cut after this many bytes.
const MAX_LABEL_VALUE_LENGTH: usize = 64;
/// "Found labels" lists at most this many labels.
const MAX_LISTED_LABELS: usize = 3;

/// A float as StackRox prints it: at most three decimals, trailing zeros and dot removed.
pub(crate) fn readable_float(value: f64) -> String {
    let text = format!("{value:.3}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        text
    }
}

/// A time as StackRox prints it: UTC, to the second.
pub(crate) fn readable_time(time: DateTime<Utc>) -> String {
    time.format("%Y-%m-%d %H:%M:%S").to_string()
}

/// `a`, `a and b`, `a, b, and c`.
pub(crate) fn sentence(parts: &[String]) -> String {
    match parts {
        [] => String::new(),
        [one] => one.clone(),
        [a, b] => format!("{a} and {b}"),
        [init @ .., last] => {
            let mut text: String = init.iter().map(|p| format!("{p}, ")).collect();
            text.push_str("and ");
            text.push_str(last);
            text
        }
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a character boundary.
fn cut(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Registry, remote and tag in one sentence: `Image has registry 'quay.io' and tag 'latest'`.
pub(crate) fn image_details(
    registry: Option<&str>,
    remote: Option<&str>,
    tag: Option<&str>,
) -> String {
    let mut parts = Vec::new();
    if let Some(tag) = tag {
        parts.push(if tag.is_empty() {
            "an empty tag".to_string()
        } else {
            format!("tag '{tag}'")
        });
    }
    if let Some(remote) = remote {
        parts.push(format!("remote '{remote}'"));
    }
    if let Some(registry) = registry {
        parts.push(format!("registry '{registry}'"));
    }
    parts.sort();
    format!("Image has {}", sentence(&parts))
}

pub(crate) fn image_user(user: &str) -> String {
    format!("Image has user '{user}'")
}

pub(crate) fn image_age(created: DateTime<Utc>) -> String {
    format!("Image was created at {} (UTC)", readable_time(created))
}

pub(crate) fn scan_age(scanned: DateTime<Utc>) -> String {
    format!("Image was last scanned at {} (UTC)", readable_time(scanned))
}

pub(crate) fn image_os(os: &str) -> String {
    format!("Image has base OS '{os}'")
}

pub(crate) fn unscanned(scanned: bool) -> String {
    if scanned {
        "Image has been scanned".to_string()
    } else {
        "Image has not been scanned".to_string()
    }
}

pub(crate) fn dockerfile_line(line: &DockerfileLine) -> String {
    let value = cut(&line.value, MAX_LINE_LENGTH);
    let ellipsis = if value.len() < line.value.len() {
        "..."
    } else {
        ""
    };
    format!(
        "Dockerfile line '{} {value}{ellipsis}' found",
        line.instruction
    )
}

pub(crate) fn component(component: &Component) -> String {
    if component.version.is_empty() {
        format!("Image includes component '{}'", component.name)
    } else {
        format!(
            "Image includes component '{}' (version {})",
            component.name, component.version
        )
    }
}

/// `Fixable CVE-1 (CVSS 9.8, NVD CVSS 9.1) (severity Critical) found in component 'c' (version
/// 1), resolved by version 2`. `show_fix`: the policy asks about fixes; `show_nvd`: it asks
/// about NVD CVSS.
pub(crate) fn vulnerability(
    vuln: &Vulnerability,
    component: &Component,
    show_fix: bool,
    show_nvd: bool,
) -> String {
    let fixed_by = if show_fix {
        vuln.fixed_by.as_deref().filter(|f| !f.is_empty())
    } else {
        None
    };
    let mut text = String::new();
    if fixed_by.is_some() {
        text.push_str("Fixable ");
    }
    text.push_str(&vuln.id);
    let cvss = vuln
        .cvss
        .map(|c| format!("CVSS {}", readable_float(f64::from(c))));
    let nvd = if show_nvd {
        vuln.nvd_cvss
            .map(|c| format!("NVD CVSS {}", readable_float(f64::from(c))))
    } else {
        None
    };
    let scores: Vec<String> = cvss.into_iter().chain(nvd).collect();
    if !scores.is_empty() {
        text.push_str(&format!(" ({})", scores.join(", ")));
    }
    text.push_str(&format!(" (severity {}) found", vuln.severity.label()));
    if !component.name.is_empty() {
        text.push_str(&format!(
            " in component '{}' (version {})",
            component.name, component.version
        ));
    }
    if let Some(fixed_by) = fixed_by {
        text.push_str(&format!(", resolved by version {fixed_by}"));
    }
    text
}

/// `k=v` pairs as StackRox lists them, values cut to 64 bytes.
fn key_values<'a>(pairs: impl Iterator<Item = (&'a String, &'a String)>) -> Vec<String> {
    pairs
        .map(|(k, v)| format!("{k}={}", cut(v, MAX_LABEL_VALUE_LENGTH)))
        .collect()
}

/// The labels a "required label" message shows: the first three by key, then how many more.
pub(crate) fn found_labels(labels: &std::collections::BTreeMap<String, String>) -> String {
    if labels.is_empty() {
        return "<empty>".to_string();
    }
    let mut text = key_values(labels.iter().take(MAX_LISTED_LABELS)).join(", ");
    if labels.len() > MAX_LISTED_LABELS {
        text.push_str(&format!(" and {} more", labels.len() - MAX_LISTED_LABELS));
    }
    text
}

/// The matching labels of one disallowed-label value, sorted by key.
pub(crate) fn matching_labels<'a>(pairs: impl Iterator<Item = (&'a String, &'a String)>) -> String {
    key_values(pairs).join(", ")
}

pub(crate) fn required_label(found: &str) -> String {
    format!("Required label not found (found labels: {found})")
}

pub(crate) fn disallowed_labels(matches: &[String]) -> String {
    format!("Disallowed labels found: {}", matches.join("; "))
}

/// The signature message; `others` are integrations (not named by the policy) that did verify.
pub(crate) fn signature_not_verified(others: &[String]) -> String {
    let mut text =
        "Image signature is not verified by the specified signature integration(s)".to_string();
    if !others.is_empty() {
        let mut others = others.to_vec();
        others.sort();
        text.push_str(&format!(
            " (it is verified by other integration(s): {})",
            sentence(&others)
        ));
    }
    text.push('.');
    text
}

/// Keeps the first `max` messages and says how many were left out: for renderers that must
/// stay readable when an image has thousands of vulnerabilities. [`crate::policy::Finding`]s
/// themselves keep every message.
pub fn summarize_messages(messages: &[String], max: usize) -> Vec<String> {
    if messages.len() <= max {
        return messages.to_vec();
    }
    let mut shown = messages[..max].to_vec();
    shown.push(format!(
        "... and {} more violations (see the JSON or SARIF report for all)",
        messages.len() - max
    ));
    shown
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::VulnSeverity;

    fn vuln(cvss: Option<f32>, nvd: Option<f32>, fixed_by: Option<&str>) -> Vulnerability {
        Vulnerability {
            id: "CVE-2021-44228".into(),
            severity: VulnSeverity::Critical,
            cvss,
            nvd_cvss: nvd,
            fixed_by: fixed_by.map(str::to_string),
            published: None,
            fix_available: None,
            link: None,
        }
    }

    fn log4j() -> Component {
        Component {
            name: "log4j".into(),
            version: "2.14.1".into(),
            vulnerabilities: Vec::new(),
        }
    }

    #[test]
    fn vulnerability_messages() {
        let c = log4j();
        assert_eq!(
            vulnerability(
                &vuln(Some(10.0), Some(10.0), Some("2.15.0")),
                &c,
                true,
                true
            ),
            "Fixable CVE-2021-44228 (CVSS 10, NVD CVSS 10) (severity Critical) found in component 'log4j' (version 2.14.1), resolved by version 2.15.0"
        );
        assert_eq!(
            vulnerability(
                &vuln(Some(7.8), Some(10.0), Some("2.15.0")),
                &c,
                false,
                false
            ),
            "CVE-2021-44228 (CVSS 7.8) (severity Critical) found in component 'log4j' (version 2.14.1)"
        );
        assert_eq!(
            vulnerability(&vuln(None, Some(9.25), None), &c, true, true),
            "CVE-2021-44228 (NVD CVSS 9.25) (severity Critical) found in component 'log4j' (version 2.14.1)"
        );
        assert_eq!(
            vulnerability(&vuln(None, None, None), &c, true, true),
            "CVE-2021-44228 (severity Critical) found in component 'log4j' (version 2.14.1)"
        );
    }

    #[test]
    fn image_messages() {
        assert_eq!(
            image_details(None, None, Some("latest")),
            "Image has tag 'latest'"
        );
        assert_eq!(
            image_details(Some("quay.io"), Some("a/b"), Some("")),
            "Image has an empty tag, registry 'quay.io', and remote 'a/b'"
        );
        assert_eq!(image_user("root"), "Image has user 'root'");
        assert_eq!(unscanned(false), "Image has not been scanned");
        let line = DockerfileLine {
            instruction: "RUN".into(),
            value: "apt-get update && apt-get install -y curl wget".into(),
        };
        assert_eq!(
            dockerfile_line(&line),
            "Dockerfile line 'RUN apt-get update && apt-get instal...' found"
        );
        let created = DateTime::parse_from_rfc3339("2019-09-11T23:21:51.56Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            image_age(created),
            "Image was created at 2019-09-11 23:21:51 (UTC)"
        );
        assert_eq!(
            component(&log4j()),
            "Image includes component 'log4j' (version 2.14.1)"
        );
    }

    #[test]
    fn label_messages() {
        let mut labels = std::collections::BTreeMap::new();
        assert_eq!(found_labels(&labels), "<empty>");
        for (k, v) in [("d", "4"), ("a", "1"), ("c", "3"), ("b", &"x".repeat(70))] {
            labels.insert(k.to_string(), v.to_string());
        }
        let found = found_labels(&labels);
        assert_eq!(found, format!("a=1, b={}, c=3 and 1 more", "x".repeat(64)));
        assert_eq!(
            required_label(&found),
            format!("Required label not found (found labels: {found})")
        );
        assert_eq!(
            disallowed_labels(&["a=1".into(), "c=3, d=4".into()]),
            "Disallowed labels found: a=1; c=3, d=4"
        );
    }

    #[test]
    fn signature_messages() {
        assert_eq!(
            signature_not_verified(&[]),
            "Image signature is not verified by the specified signature integration(s)."
        );
        assert_eq!(
            signature_not_verified(&["b".into(), "a".into()]),
            "Image signature is not verified by the specified signature integration(s) (it is verified by other integration(s): a and b)."
        );
    }

    #[test]
    fn numbers_and_sentences() {
        assert_eq!(readable_float(7.0), "7");
        assert_eq!(readable_float(f64::from(7.8f32)), "7.8");
        assert_eq!(readable_float(0.0), "0");
        assert_eq!(readable_float(9.8765), "9.877");
        assert_eq!(
            sentence(&["a".into(), "b".into(), "c".into()]),
            "a, b, and c"
        );
    }

    #[test]
    fn summaries_keep_the_first_messages() {
        let messages: Vec<String> = (0..5).map(|i| format!("m{i}")).collect();
        assert_eq!(summarize_messages(&messages, 10), messages);
        let short = summarize_messages(&messages, 2);
        assert_eq!(short.len(), 3);
        assert_eq!(short[..2], messages[..2]);
        assert!(short[2].contains("3 more"));
    }
}
