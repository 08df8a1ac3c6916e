//! JUnit XML for GitLab, Jenkins and most CI servers: one `<testsuite>` per image (and
//! platform), one `<testcase>` per evaluated rule — passes included, because GitLab users want
//! the pass count (roxctl lists violations only). A violation that breaks the build is a
//! `<failure>`, any other violation is `<skipped>` (as roxctl writes them), a rule that could
//! not be evaluated is an `<error>`. `classname` is `source/policy`, which GitLab shows as the
//! suite. The document is valid against the Ant JUnit XSD (`<properties>`, `system-out`,
//! `system-err` present; a zone-less timestamp).
//!
//! Written with quick-xml: the `junit-report` crate writes no `<properties>` and an RFC 3339
//! timestamp with a zone, both of which the XSD refuses, and its API can change neither.

use std::collections::BTreeMap;

use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use super::{ImageReport, Report};
use crate::policy::{Finding, Outcome};

/// The JUnit document for `report`.
pub fn render(report: &Report) -> String {
    let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
    // Writing to a Vec cannot fail; the results are ignored on purpose.
    let _ = w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    let _ = w.write_event(Event::Start(BytesStart::new("testsuites")));
    let timestamp = report.generated_at.format("%Y-%m-%dT%H:%M:%S").to_string();
    let mut id = 0;
    for image in &report.images {
        for (platform, findings) in by_platform(image) {
            write_suite(
                &mut w,
                id,
                image,
                platform.as_deref(),
                &findings,
                &timestamp,
            );
            id += 1;
        }
    }
    let _ = w.write_event(Event::End(BytesEnd::new("testsuites")));
    let mut text = String::from_utf8(w.into_inner()).unwrap_or_default();
    text.push('\n');
    text
}

/// An image's findings grouped by the platform they were judged for (one group when none).
fn by_platform(image: &ImageReport) -> BTreeMap<Option<String>, Vec<&Finding>> {
    let mut groups: BTreeMap<Option<String>, Vec<&Finding>> = BTreeMap::new();
    for f in &image.findings {
        if matches!(f.outcome, Outcome::Skipped(_)) {
            continue;
        }
        groups
            .entry(f.platform.as_ref().map(|p| p.to_string()))
            .or_default()
            .push(f);
    }
    if groups.is_empty() {
        groups.insert(None, Vec::new());
    }
    groups
}

fn write_suite(
    w: &mut Writer<Vec<u8>>,
    id: usize,
    image: &ImageReport,
    platform: Option<&str>,
    findings: &[&Finding],
    timestamp: &str,
) {
    let name = match platform {
        Some(p) => format!("{} [{p}]", image.image),
        None => image.image.clone(),
    };
    let failures = findings.iter().filter(|f| f.breaks_build()).count();
    let skipped = findings
        .iter()
        .filter(|f| f.is_violation() && !f.enforced)
        .count();
    let errors = findings
        .iter()
        .filter(|f| matches!(f.outcome, Outcome::NotEvaluated(_)))
        .count();
    let mut suite = BytesStart::new("testsuite");
    suite.push_attribute(("id", id.to_string().as_str()));
    suite.push_attribute(("name", token(&name).as_str()));
    suite.push_attribute(("package", token(&name).as_str()));
    suite.push_attribute(("timestamp", timestamp));
    suite.push_attribute(("hostname", "imagegate"));
    suite.push_attribute(("tests", findings.len().to_string().as_str()));
    suite.push_attribute(("failures", failures.to_string().as_str()));
    suite.push_attribute(("errors", errors.to_string().as_str()));
    suite.push_attribute(("skipped", skipped.to_string().as_str()));
    suite.push_attribute(("time", "0"));
    let _ = w.write_event(Event::Start(suite));

    let _ = w.write_event(Event::Start(BytesStart::new("properties")));
    let mut properties = vec![("image", image.image.clone())];
    if let Some(d) = &image.digest {
        properties.push(("digest", d.clone()));
    }
    if let Some(p) = platform {
        properties.push(("platform", p.to_string()));
    }
    for (k, v) in properties {
        let mut p = BytesStart::new("property");
        p.push_attribute(("name", k));
        p.push_attribute(("value", v.as_str()));
        let _ = w.write_event(Event::Empty(p));
    }
    let _ = w.write_event(Event::End(BytesEnd::new("properties")));

    for f in findings {
        write_case(w, f);
    }
    for tag in ["system-out", "system-err"] {
        let _ = w.write_event(Event::Empty(BytesStart::new(tag)));
    }
    let _ = w.write_event(Event::End(BytesEnd::new("testsuite")));
}

fn write_case(w: &mut Writer<Vec<u8>>, f: &Finding) {
    let name = match &f.rule {
        Some(rule) => format!("{} / {rule}", f.policy),
        None => f.policy.clone(),
    };
    let mut case = BytesStart::new("testcase");
    case.push_attribute(("name", token(&name).as_str()));
    case.push_attribute((
        "classname",
        token(&format!("{}/{}", f.source, f.policy)).as_str(),
    ));
    case.push_attribute(("time", "0"));
    let body = f
        .messages
        .iter()
        .map(|m| format!("- {m}"))
        .collect::<Vec<_>>()
        .join("\n");
    let first = f.messages.first().cloned().unwrap_or_default();
    let child = match &f.outcome {
        Outcome::Pass => None,
        Outcome::Violated if f.enforced => Some(("failure", Some("violation"), first, body)),
        Outcome::Violated => Some(("skipped", None, format!("warning: {first}"), body)),
        Outcome::NotEvaluated(reason) => Some((
            "error",
            Some("not-evaluated"),
            format!("not evaluated: {reason}"),
            String::new(),
        )),
        Outcome::Skipped(_) => None,
    };
    match child {
        None => {
            let _ = w.write_event(Event::Empty(case));
        }
        Some((tag, kind, message, text)) => {
            let _ = w.write_event(Event::Start(case));
            let mut el = BytesStart::new(tag);
            if let Some(kind) = kind {
                el.push_attribute(("type", kind));
            }
            el.push_attribute(("message", message.as_str()));
            if text.is_empty() {
                let _ = w.write_event(Event::Empty(el));
            } else {
                let _ = w.write_event(Event::Start(el));
                let _ = w.write_event(Event::Text(BytesText::new(&text)));
                let _ = w.write_event(Event::End(BytesEnd::new(tag)));
            }
            let _ = w.write_event(Event::End(BytesEnd::new("testcase")));
        }
    }
}

/// `xs:token`: no line breaks or tabs, no leading, trailing or doubled spaces.
fn token(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}
