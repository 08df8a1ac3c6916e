//! Policy validation as StackRox does it on import (`central/policy/service/validator.go`,
//! `pkg/booleanpolicy/validate.go`), with a fix for every problem.
//!
//! Checked: the policy version is "1.1"; the name is 5–128 characters without line breaks or
//! `$`; the description has at most 800 characters and no `$`; at least one lifecycle stage; a
//! severity; at least one category and no duplicates; exclusions (deployment exclusions only for
//! DEPLOY/RUNTIME, image exclusions only for BUILD and with a name); BUILD and DEPLOY policies
//! have no event source; at least one section, each with at least one group; per group: a known
//! criterion, at least one value, the criterion at most once per section, negation and several
//! values only where the criterion allows them, every value in the criterion's syntax, and no
//! `AND` for `Image Signature Verified By`. A BUILD policy may use only criteria that read the
//! image (StackRox refuses to compile others for BUILD).
//!
//! Not checked, because they concern deploy-time and runtime evaluation, which imagegate does
//! not do: the runtime-criteria mix rules and deployment scope contents.

use std::collections::BTreeSet;

use super::cfg::{LifecycleStage, Policy, PolicySeverity};
use super::error::Problem;
use super::fields::{self, Syntax};

const SIGNATURE_FIELD: &str = "Image Signature Verified By";

fn problem(field: &str, section: Option<&str>, message: String, hint: &str) -> Problem {
    Problem {
        field: field.to_string(),
        section: section.map(str::to_string),
        message,
        hint: hint.to_string(),
    }
}

/// How a section is named in messages: `section 2 ("Red Hat registries")`.
pub(crate) fn section_label(index: usize, name: &str) -> String {
    if name.trim().is_empty() {
        format!("section {}", index + 1)
    } else {
        format!("section {} (\"{}\")", index + 1, name)
    }
}

/// Every problem StackRox would report for `policy`; empty when it is valid.
pub(crate) fn validate(policy: &Policy) -> Vec<Problem> {
    let mut problems = Vec::new();
    check_header(policy, &mut problems);
    check_exclusions(policy, &mut problems);
    check_sections(policy, &mut problems);
    problems
}

fn check_header(policy: &Policy, problems: &mut Vec<Problem>) {
    if policy.policy_version.trim() != "1.1" {
        let message = if policy.policy_version.trim().is_empty() {
            "the policy has no policyVersion".to_string()
        } else {
            format!(
                "policy version \"{}\" is not supported; only \"1.1\" is",
                policy.policy_version
            )
        };
        problems.push(problem(
            "policyVersion",
            None,
            message,
            "export the policy again from StackRox (any release since 3.70 writes \"policyVersion\": \"1.1\")",
        ));
    }

    let name = policy.name.trim();
    let name_length = name.chars().count();
    if !(5..=128).contains(&name_length) || name.contains(['\n', '\r', '$']) {
        problems.push(problem(
            "name",
            None,
            format!(
                "the name {name:?} is not accepted: a policy name has 5 to 128 characters, without line breaks or dollar signs"
            ),
            "give the policy a short descriptive name",
        ));
    }
    if policy.description.chars().count() > 800 || policy.description.contains('$') {
        problems.push(problem(
            "description",
            None,
            "the description has more than 800 characters or a dollar sign".into(),
            "shorten the description and leave out '$'",
        ));
    }

    if policy.lifecycle_stages.is_empty() {
        problems.push(problem(
            "lifecycleStages",
            None,
            "a policy must apply to at least one lifecycle stage".into(),
            "add \"lifecycleStages\": [\"BUILD\"] for a policy that judges images",
        ));
    }
    if policy.severity == PolicySeverity::Unset {
        problems.push(problem(
            "severity",
            None,
            "a policy must have a severity".into(),
            "set \"severity\" to LOW_SEVERITY, MEDIUM_SEVERITY, HIGH_SEVERITY or CRITICAL_SEVERITY",
        ));
    }
    if policy.categories.is_empty() {
        problems.push(problem(
            "categories",
            None,
            "a policy must have at least one category".into(),
            "add a category, e.g. \"categories\": [\"Vulnerability Management\"]",
        ));
    } else {
        let unique: BTreeSet<&str> = policy.categories.iter().map(String::as_str).collect();
        if unique.len() != policy.categories.len() {
            problems.push(problem(
                "categories",
                None,
                "a policy cannot contain duplicate categories".into(),
                "list each category once",
            ));
        }
    }

    let build_or_deploy =
        policy.applies_at(LifecycleStage::Build) || policy.applies_at(LifecycleStage::Deploy);
    let event_source = policy.event_source.trim();
    if build_or_deploy && !event_source.is_empty() && event_source != "NOT_APPLICABLE" {
        problems.push(problem(
            "eventSource",
            None,
            format!(
                "event source {event_source} must not be set for build or deploy time policies"
            ),
            "remove \"eventSource\" (or set it to NOT_APPLICABLE)",
        ));
    }
}

fn check_exclusions(policy: &Policy, problems: &mut Vec<Problem>) {
    let build = policy.applies_at(LifecycleStage::Build);
    let deploy_or_runtime =
        policy.applies_at(LifecycleStage::Deploy) || policy.applies_at(LifecycleStage::Runtime);
    for exclusion in &policy.exclusions {
        let label = format!("exclusions (\"{}\")", exclusion.name);
        if exclusion.deployment.is_none() && exclusion.image.is_none() {
            problems.push(problem(
                &label,
                None,
                "all excluded scopes must have some criteria to match on".into(),
                "give the exclusion an \"image\": {\"name\": …} or a \"deployment\"",
            ));
        }
        if exclusion.deployment.is_some() && !deploy_or_runtime {
            problems.push(problem(
                &label,
                None,
                "excluding a deployment is only valid during the DEPLOY and RUNTIME lifecycles"
                    .into(),
                "remove the deployment exclusion, or exclude the image by name instead",
            ));
        }
        if let Some(image) = &exclusion.image {
            if !build {
                problems.push(problem(
                    &label,
                    None,
                    "excluding an image is only valid during the BUILD lifecycle".into(),
                    "remove the image exclusion, or add BUILD to lifecycleStages",
                ));
            }
            if image.name.is_empty() {
                problems.push(problem(
                    &label,
                    None,
                    "image excluded scope must have nonempty name".into(),
                    "set \"image\": {\"name\": \"registry/repository\"} (images whose full name starts with it are excluded)",
                ));
            }
        }
    }
}

fn check_sections(policy: &Policy, problems: &mut Vec<Problem>) {
    if policy.policy_sections.is_empty() {
        problems.push(problem(
            "policySections",
            None,
            "the policy has no policy sections, so it has no criteria".into(),
            "add a section with at least one criterion, e.g. {\"policyGroups\": [{\"fieldName\": \"Image Tag\", \"values\": [{\"value\": \"latest\"}]}]}",
        ));
    }
    let build = policy.applies_at(LifecycleStage::Build);
    let audit_log = policy.event_source.trim() == "AUDIT_LOG_EVENT";
    for (index, section) in policy.policy_sections.iter().enumerate() {
        let label = section_label(index, &section.section_name);
        let at = Some(label.as_str());
        if section.policy_groups.is_empty() {
            problems.push(problem(
                "policyGroups",
                at,
                "the section has no policy criteria".into(),
                "add a criterion to the section, or remove the section",
            ));
        }
        let mut seen = BTreeSet::new();
        for group in &section.policy_groups {
            let name = group.field_name.as_str();
            let Some(field) = fields::find(name) else {
                problems.push(problem(
                    name,
                    at,
                    format!("policy criteria name {name:?} is invalid"),
                    "use a criterion name exactly as StackRox spells it (names are case-sensitive), e.g. \"Image Tag\"",
                ));
                continue;
            };
            if group.values.is_empty() {
                problems.push(problem(
                    name,
                    at,
                    format!("no values for field {name:?}"),
                    "add at least one {\"value\": …}",
                ));
            }
            if !seen.insert(name) {
                problems.push(problem(
                    name,
                    at,
                    format!("field name {name:?} found in multiple groups"),
                    "merge the values into one group (with booleanOperator OR or AND), or move one group to another section",
                ));
            }
            if group.negate && !field.negatable {
                problems.push(problem(
                    name,
                    at,
                    format!("policy criteria {name:?} cannot be negated"),
                    "remove \"negate\": true from this group",
                ));
            }
            if group.values.len() > 1 && !field.multiple {
                problems.push(problem(
                    name,
                    at,
                    format!("policy criteria {name:?} does not support more than one value"),
                    "keep a single value",
                ));
            }
            if name == SIGNATURE_FIELD && group.boolean_operator == super::cfg::BooleanOperator::And
            {
                problems.push(problem(
                    name,
                    at,
                    format!("operator AND is not allowed for field {SIGNATURE_FIELD:?}"),
                    "use \"booleanOperator\": \"OR\" (the image must be verified by one of the listed integrations)",
                ));
            }
            for (i, value) in group.values.iter().enumerate() {
                if !fields::value_is_valid(field.syntax, audit_log, &value.value) {
                    problems.push(problem(
                        name,
                        at,
                        format!(
                            "policy criteria {name:?} has invalid value[{i}]={:?}",
                            value.value
                        ),
                        &syntax_hint(field.syntax, audit_log),
                    ));
                }
            }
            if build && field.criterion.is_none() {
                problems.push(problem(
                    name,
                    at,
                    format!(
                        "policy criteria {name:?} is not available at BUILD time (it describes a deployment or a running container, not an image)"
                    ),
                    &format!(
                        "remove BUILD from lifecycleStages, or use a criterion that reads the image ({}); for ports, \"Dockerfile Line\" with EXPOSE=…",
                        fields::build_field_names().join(", ")
                    ),
                ));
            }
        }
    }
}

/// What a value should look like, in words, with StackRox's pattern.
fn syntax_hint(syntax: Syntax, audit_log: bool) -> String {
    let words = match syntax {
        Syntax::String => "a non-blank regular expression",
        Syntax::KeyValue => {
            "KEY=VALUE with a non-empty key (regular expressions; an empty VALUE matches any)"
        }
        Syntax::Boolean => "true or false",
        Syntax::Integer => "a whole number of days, e.g. 90",
        Syntax::ComparatorDecimal => "a number with an optional comparison, e.g. \">= 7\"",
        Syntax::Severity => {
            "a severity with an optional comparison, e.g. \">= IMPORTANT\" (UNKNOWN, LOW, MODERATE, IMPORTANT, CRITICAL)"
        }
        Syntax::DockerfileLine => {
            "INSTRUCTION=regex, e.g. RUN=apt-get update (the instruction may be empty: =regex)"
        }
        Syntax::SignatureIntegrationId => {
            "a signature integration ID: io.stackrox.signatureintegration.<uuid>"
        }
        Syntax::AbsolutePath => "an absolute path without '..'",
        _ => "one of the values StackRox accepts for this criterion",
    };
    format!(
        "write {words}; StackRox's pattern is ^{}$",
        fields::pattern_text(syntax, audit_log)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::stackrox::cfg::parse_policies;
    use std::path::Path;

    fn policy(json: &str) -> Policy {
        parse_policies(json, Path::new("t.json"), "t.json")
            .unwrap()
            .remove(0)
            .policy
    }

    fn base(groups: &str) -> String {
        format!(
            r#"{{"name":"A good name","policyVersion":"1.1","severity":"LOW_SEVERITY","categories":["C"],
               "lifecycleStages":["BUILD"],"policySections":[{{"policyGroups":[{groups}]}}]}}"#
        )
    }

    fn fields_of(problems: &[Problem]) -> Vec<String> {
        problems.iter().map(|p| p.field.clone()).collect()
    }

    #[test]
    fn a_valid_policy_has_no_problems() {
        let p = policy(&base(
            r#"{"fieldName":"Image Tag","values":[{"value":"latest"}]}"#,
        ));
        assert!(validate(&p).is_empty(), "{:?}", validate(&p));
    }

    #[test]
    fn header_problems() {
        let p = policy(
            r#"{"name":"ab$","policyVersion":"1","categories":["X","X"],"lifecycleStages":[],
                "policySections":[]}"#,
        );
        let problems = validate(&p);
        assert_eq!(
            fields_of(&problems),
            [
                "policyVersion",
                "name",
                "lifecycleStages",
                "severity",
                "categories",
                "policySections"
            ]
        );
        assert!(problems.iter().all(|p| !p.hint.is_empty()));
    }

    #[test]
    fn group_problems() {
        let p = policy(&base(
            r#"{"fieldName":"Image Age","negate":true,"values":[{"value":"9"},{"value":"x"}]},
               {"fieldName":"Image Age","values":[{"value":"1"}]},
               {"fieldName":"Imag Tag","values":[{"value":"x"}]},
               {"fieldName":"Image Tag","values":[]},
               {"fieldName":"Image Signature Verified By","booleanOperator":"AND","values":[{"value":"io.stackrox.signatureintegration.12a37a37-760e-4388-9e79-d62726c075b2"}]},
               {"fieldName":"Privileged Container","values":[{"value":"true"}]}"#,
        ));
        let messages: Vec<String> = validate(&p).iter().map(|p| p.message.clone()).collect();
        let expected = [
            "policy criteria \"Image Age\" cannot be negated",
            "policy criteria \"Image Age\" does not support more than one value",
            "policy criteria \"Image Age\" has invalid value[1]=\"x\"",
            "field name \"Image Age\" found in multiple groups",
            "policy criteria name \"Imag Tag\" is invalid",
            "no values for field \"Image Tag\"",
            "operator AND is not allowed for field \"Image Signature Verified By\"",
            "policy criteria \"Privileged Container\" is not available at BUILD time (it describes a deployment or a running container, not an image)",
        ];
        assert_eq!(messages, expected);
    }

    #[test]
    fn exclusion_problems() {
        let p = policy(
            r#"{"name":"A good name","policyVersion":"1.1","severity":"LOW_SEVERITY","categories":["C"],
               "lifecycleStages":["DEPLOY"],
               "exclusions":[{"name":"img","image":{"name":""}},{"name":"none"}],
               "policySections":[{"policyGroups":[{"fieldName":"Image Tag","values":[{"value":"latest"}]}]}]}"#,
        );
        let messages: Vec<String> = validate(&p).iter().map(|p| p.message.clone()).collect();
        assert_eq!(
            messages,
            [
                "excluding an image is only valid during the BUILD lifecycle",
                "image excluded scope must have nonempty name",
                "all excluded scopes must have some criteria to match on",
            ]
        );
    }
}
