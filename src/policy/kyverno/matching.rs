//! `match`/`exclude` (`pkg/engine/utils/match.go`): `any` entries are ORed, `all` entries
//! ANDed, the legacy `resources` form is one entry; within an entry every attribute must hold.
//! `exclude` is looked at only when `match` holds.
//!
//! Offline some attributes cannot be known (labels, names, the requesting user…). Each test
//! is three-valued; an unknown is resolved conservatively — the rule is assumed to apply, and
//! an unknown exclusion is assumed not to exclude — and the assumption is reported.

use std::collections::BTreeMap;

use super::cfg::{LabelSelector, MatchResources, ResourceDescription, ResourceFilter, Rule};
use super::wildcard;
use super::workload::{KINDS, Workload, WorkloadKind};

/// Three-valued result of a match test.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tri {
    Yes,
    /// Does not hold, and why.
    No(String),
    /// Cannot be known offline; what would have to hold.
    Maybe(Vec<String>),
}

impl Tri {
    fn and(self, other: Tri) -> Tri {
        match (self, other) {
            (Tri::No(a), _) => Tri::No(a),
            (_, Tri::No(b)) => Tri::No(b),
            (Tri::Maybe(mut a), Tri::Maybe(b)) => {
                a.extend(b);
                Tri::Maybe(a)
            }
            (Tri::Maybe(a), Tri::Yes) | (Tri::Yes, Tri::Maybe(a)) => Tri::Maybe(a),
            (Tri::Yes, Tri::Yes) => Tri::Yes,
        }
    }
}

/// `ParseKindSelector`: `Kind`, `version/Kind`, `group/version/Kind`, with an optional
/// `.subresource` / `/subresource`; returns (group, version, kind, subresource).
fn parse_kind_selector(input: &str) -> (String, String, String, String) {
    let mut parts: Vec<&str> = input.split('/').collect();
    if let Some(last) = parts.pop() {
        parts.extend(last.split('.'));
    }
    let is_version = |s: &str| {
        s == "*" || {
            let rest = s.strip_prefix('v').unwrap_or("");
            let digits = rest.chars().take_while(char::is_ascii_digit).count();
            let tail = &rest[digits..];
            digits > 0
                && (tail.is_empty()
                    || ["alpha", "beta"].iter().any(|w| {
                        tail.strip_prefix(w)
                            .is_some_and(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()))
                    }))
        }
    };
    let s = |x: &str| x.to_string();
    match parts.as_slice() {
        [k] => (s("*"), s("*"), s(k), s("")),
        [a, b] => {
            if *a == "*" && *b == "*" {
                (s("*"), s("*"), s("*"), s("*"))
            } else if *a == "*" && b.to_lowercase() == *b {
                (s("*"), s("*"), s(a), s(b))
            } else if is_version(a) {
                (s("*"), s(a), s(b), s(""))
            } else {
                (s("*"), s("*"), s(a), s(b))
            }
        }
        [a, b, c] => {
            if is_version(a) {
                (s("*"), s(a), s(b), s(c))
            } else {
                (s(a), s(b), s(c), s(""))
            }
        }
        [a, b, c, d] => (s(a), s(b), s(c), s(d)),
        _ => (s(""), s(""), s(""), s("")),
    }
}

/// `CheckKind` for a resource without subresource.
pub fn kind_matches(kinds: &[String], kind: &WorkloadKind) -> bool {
    kinds.iter().any(|k| {
        let (g, v, kd, sub) = parse_kind_selector(k);
        wildcard::matches(&g, kind.group)
            && wildcard::matches(&v, kind.version)
            && wildcard::matches(&kd, kind.kind)
            && wildcard::matches(&sub, "")
    })
}

/// A label selector against labels that may be unknown.
fn selector(sel: &LabelSelector, labels: Option<&BTreeMap<String, String>>, what: &str) -> Tri {
    if sel.match_labels.is_empty() && sel.match_expressions.is_empty() {
        return Tri::Yes;
    }
    let Some(labels) = labels else {
        return Tri::Maybe(vec![format!(
            "the {what} labels are not known; assumed they match the rule's selector"
        )]);
    };
    for (k, v) in &sel.match_labels {
        if labels.get(k) != Some(v) {
            return Tri::No(format!("{what} label {k}={v} is not set"));
        }
    }
    for req in &sel.match_expressions {
        let value = labels.get(&req.key);
        let ok = match req.operator.as_str() {
            "In" => value.is_some_and(|v| req.values.contains(v)),
            "NotIn" => value.is_none_or(|v| !req.values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            other => {
                return Tri::No(format!(
                    "invalid selector operator {other:?} (Kyverno fails to parse the selector)"
                ));
            }
        };
        if !ok {
            return Tri::No(format!(
                "{what} labels do not satisfy {} {} {:?}",
                req.key, req.operator, req.values
            ));
        }
    }
    Tri::Yes
}

fn quoted(list: &[String]) -> String {
    format!("[{}]", list.join(", "))
}

/// One `resources` block plus user info, for a match (`is_match`) or an exclude.
fn filter(f: &ResourceFilter, w: &Workload, is_match: bool) -> Tri {
    let rd: &ResourceDescription = &f.resources;
    if rd.is_empty() && !f.has_user_info() {
        return if is_match {
            Tri::No("match cannot be empty".into())
        } else {
            Tri::No("empty exclude block".into())
        };
    }
    let mut result = Tri::Yes;
    if !rd.operations.is_empty() {
        // The image arrives with a new workload (CREATE) or a rollout of an existing one
        // (UPDATE); either may be what the rule is about.
        let t = if rd.operations.iter().any(|o| o == "CREATE") {
            Tri::Yes
        } else if rd.operations.iter().any(|o| o == "UPDATE") {
            Tri::Maybe(vec![format!(
                "the rule matches operations {}; assumed the image is rolled out as an UPDATE",
                quoted(&rd.operations)
            )])
        } else {
            Tri::No(format!(
                "operation does not match {}",
                quoted(&rd.operations)
            ))
        };
        result = result.and(t);
    }
    if !rd.kinds.is_empty() && !kind_matches(&rd.kinds, &w.kind) {
        result = result.and(Tri::No(format!(
            "kind does not match {}",
            quoted(&rd.kinds)
        )));
    }
    let names: Vec<String> = rd
        .name
        .iter()
        .filter(|n| !n.is_empty())
        .chain(&rd.names)
        .cloned()
        .collect();
    if !names.is_empty() {
        let t = match &w.name {
            Some(name) if names.iter().any(|p| wildcard::matches(p, name)) => Tri::Yes,
            Some(_) => Tri::No(format!("none of the names match {}", quoted(&names))),
            None if names.iter().any(|p| p == "*") => Tri::Yes,
            None => Tri::Maybe(vec![format!(
                "the workload's name is not known; assumed it is one of {}",
                quoted(&names)
            )]),
        };
        result = result.and(t);
    }
    if !rd.namespaces.is_empty() && !wildcard::matches_any(&rd.namespaces, &w.namespace) {
        result = result.and(Tri::No(format!(
            "namespace {} does not match {}",
            w.namespace,
            quoted(&rd.namespaces)
        )));
    }
    if !rd.annotations.is_empty() {
        result = result.and(Tri::Maybe(vec![
            "the workload's annotations are not known; assumed they match the rule's".into(),
        ]));
    }
    if let Some(sel) = &rd.selector {
        result = result.and(selector(sel, w.labels.as_ref(), "workload"));
    }
    if let Some(sel) = &rd.namespace_selector {
        result = result.and(selector(sel, w.namespace_labels.as_ref(), "namespace"));
    }
    if f.has_user_info() {
        result = result.and(Tri::Maybe(vec![
            "who deploys (subjects, roles, clusterRoles) is not known offline; assumed the rule's user filter matches".into(),
        ]));
    }
    result
}

/// Whether the `match` block selects the workload.
fn matches_block(m: &MatchResources, w: &Workload) -> Tri {
    if !m.any.is_empty() {
        let mut maybe = Vec::new();
        let mut reasons = Vec::new();
        for f in &m.any {
            match filter(f, w, true) {
                Tri::Yes => return Tri::Yes,
                Tri::Maybe(why) => maybe.extend(why),
                Tri::No(why) => reasons.push(why),
            }
        }
        if maybe.is_empty() {
            Tri::No(reasons.join("; "))
        } else {
            Tri::Maybe(maybe)
        }
    } else if !m.all.is_empty() {
        m.all
            .iter()
            .fold(Tri::Yes, |acc, f| acc.and(filter(f, w, true)))
    } else {
        filter(&m.legacy_filter(), w, true)
    }
}

/// Whether the `exclude` block excludes the workload (Yes = excluded).
fn excluded_by(m: &MatchResources, w: &Workload) -> Tri {
    if !m.any.is_empty() {
        let mut maybe = Vec::new();
        for f in &m.any {
            match filter(f, w, false) {
                Tri::Yes => return Tri::Yes,
                Tri::Maybe(why) => maybe.extend(why),
                Tri::No(_) => {}
            }
        }
        if maybe.is_empty() {
            Tri::No(String::new())
        } else {
            Tri::Maybe(maybe)
        }
    } else if !m.all.is_empty() {
        m.all
            .iter()
            .fold(Tri::Yes, |acc, f| acc.and(filter(f, w, false)))
    } else {
        let f = m.legacy_filter();
        if f.resources.is_empty() && !f.has_user_info() {
            Tri::No(String::new())
        } else {
            filter(&f, w, false)
        }
    }
}

/// Whether a rule applies to the workload, for one kind.
pub fn rule_applies(rule: &Rule, w: &Workload) -> Tri {
    let matched = matches_block(&rule.match_resources, w);
    if let Tri::No(why) = matched {
        return Tri::No(why);
    }
    let exclusion = match &rule.exclude {
        Some(ex) => excluded_by(ex, w),
        None => Tri::No(String::new()),
    };
    match (matched, exclusion) {
        (_, Tri::Yes) => Tri::No("the workload is excluded by the rule's exclude block".into()),
        (Tri::Yes, Tri::No(_)) => Tri::Yes,
        (Tri::Maybe(a), Tri::No(_)) => Tri::Maybe(a),
        (m, Tri::Maybe(b)) => {
            let mut notes = match m {
                Tri::Maybe(a) => a,
                _ => Vec::new(),
            };
            notes.extend(
                b.into_iter()
                    .map(|why| format!("exclude: {why} (assumed the rule is not excluded)")),
            );
            Tri::Maybe(notes)
        }
        (Tri::No(why), _) => Tri::No(why),
    }
}

/// The first workload kind (Pod, then its controllers) the rule applies to, preferring a kind
/// where that is certain; or why it applies to none.
pub fn applicable_kind(
    rule: &Rule,
    base: &Workload,
) -> Result<(WorkloadKind, Vec<String>), String> {
    let mut first_maybe: Option<(WorkloadKind, Vec<String>)> = None;
    let mut pod_reason = None;
    for kind in KINDS {
        let w = Workload {
            kind,
            ..base.clone()
        };
        match rule_applies(rule, &w) {
            Tri::Yes => return Ok((kind, Vec::new())),
            Tri::Maybe(notes) => {
                if first_maybe.is_none() {
                    first_maybe = Some((kind, notes));
                }
            }
            Tri::No(why) => {
                if pod_reason.is_none() && kind_selected(rule, &kind) {
                    pod_reason = Some(format!("{}: {why}", kind.kind));
                }
            }
        }
    }
    if let Some(found) = first_maybe {
        return Ok(found);
    }
    Err(match pod_reason {
        Some(why) => format!(
            "the rule does not apply in namespace {}: {why}",
            base.namespace
        ),
        None => format!(
            "the rule matches kinds {}, none of which is a Pod or a Pod controller",
            quoted(&rule_kinds(rule))
        ),
    })
}

fn rule_kinds(rule: &Rule) -> Vec<String> {
    let m = &rule.match_resources;
    let mut kinds: Vec<String> = m
        .any
        .iter()
        .chain(&m.all)
        .flat_map(|f| f.resources.kinds.iter().cloned())
        .collect();
    if let Some(r) = &m.resources {
        kinds.extend(r.kinds.iter().cloned());
    }
    kinds
}

/// Whether any match block of the rule names this kind.
fn kind_selected(rule: &Rule, kind: &WorkloadKind) -> bool {
    kind_matches(&rule_kinds(rule), kind)
}

#[cfg(test)]
mod tests {
    use super::super::image::KyvernoImage;
    use super::*;

    fn workload(ns: &str) -> Workload {
        Workload {
            kind: KINDS[0],
            namespace: ns.into(),
            name: None,
            labels: None,
            namespace_labels: None,
            image: "nginx".into(),
            info: KyvernoImage::parse("nginx").unwrap(),
        }
    }

    fn rule(yaml: &str) -> Rule {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn kind_selectors() {
        let pod = &KINDS[0];
        let deploy = &KINDS[1];
        let k = |s: &str| vec![s.to_string()];
        assert!(kind_matches(&k("Pod"), pod));
        assert!(kind_matches(&k("v1/Pod"), pod));
        assert!(kind_matches(&k("*/Pod"), pod));
        assert!(!kind_matches(&k("v1/Pod.status"), pod));
        assert!(kind_matches(&k("apps/v1/Deployment"), deploy));
        assert!(!kind_matches(&k("apps/v1/Deployment"), pod));
        assert!(kind_matches(&k("*"), deploy));
        assert!(kind_matches(&k("Deploy*"), deploy));
        assert!(!kind_matches(&k("Pod/status"), pod));
        assert!(!kind_matches(&k("batch/*/Job"), deploy));
    }

    #[test]
    fn namespaces_and_exclusions() {
        let r = rule(
            "name: r\nmatch: {any: [{resources: {kinds: [Pod], namespaces: [\"prod-*\"]}}]}\nexclude: {any: [{resources: {namespaces: [prod-legacy]}}]}\n",
        );
        assert_eq!(rule_applies(&r, &workload("prod-eu")), Tri::Yes);
        assert!(matches!(rule_applies(&r, &workload("dev")), Tri::No(_)));
        assert!(matches!(
            rule_applies(&r, &workload("prod-legacy")),
            Tri::No(_)
        ));
    }

    #[test]
    fn deployment_only_rules_apply_through_autogen_kinds() {
        let r = rule("name: r\nmatch: {resources: {kinds: [Deployment], namespaces: [prod]}}\n");
        let (kind, notes) = applicable_kind(&r, &workload("prod")).unwrap();
        assert_eq!(kind.kind, "Deployment");
        assert!(notes.is_empty());
        let why = applicable_kind(&r, &workload("dev")).unwrap_err();
        assert!(
            why.contains("Deployment") && why.contains("[prod]"),
            "{why}"
        );
        let r = rule("name: r\nmatch: {resources: {kinds: [Service]}}\n");
        assert!(
            applicable_kind(&r, &workload("dev"))
                .unwrap_err()
                .contains("Service")
        );
    }

    #[test]
    fn unknowns_are_assumed_to_match_and_not_to_exclude() {
        let r = rule(
            "name: r\nmatch: {any: [{resources: {kinds: [Pod], selector: {matchLabels: {app: web}}}}]}\nexclude: {any: [{subjects: [{kind: User, name: admin}]}]}\n",
        );
        let Tri::Maybe(notes) = rule_applies(&r, &workload("default")) else {
            panic!("expected an assumption");
        };
        assert_eq!(notes.len(), 2, "{notes:?}");
        let mut w = workload("default");
        w.labels = Some(BTreeMap::from([("app".into(), "db".into())]));
        assert!(matches!(rule_applies(&r, &w), Tri::No(_)));
    }
}
