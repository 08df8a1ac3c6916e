//! Policy validation as Kyverno performs it when a policy is created (`pkg/validation/policy`,
//! the `Validate` methods of `api/kyverno/v1`) and as the CRD schema enforces enums. Each
//! problem carries the field path Kyverno names and Kyverno's own words.

use super::cfg::{
    ActionOverride, Attestor, AttestorSet, Condition, ConditionBlock, ContextEntry,
    ForEachValidation, ImageVerification, MatchResources, PolicyDoc, ResourceFilter, Rule,
};
use super::error::FieldPath;
use super::vars;

/// What validation found: problems make Kyverno reject the policy; warnings do not.
#[derive(Debug, Default)]
pub struct Checked {
    pub problems: Vec<(FieldPath, String)>,
    pub warnings: Vec<(FieldPath, String)>,
}

impl Checked {
    fn problem(&mut self, at: FieldPath, message: impl Into<String>) {
        self.problems.push((at, message.into()));
    }

    fn warn(&mut self, at: FieldPath, message: impl Into<String>) {
        self.warnings.push((at, message.into()));
    }
}

const DEPRECATED_ACTION: &str =
    "Validation failure actions enforce/audit are deprecated, use Enforce/Audit instead.";

/// Validates one policy document.
pub fn check(doc: &PolicyDoc) -> Checked {
    let mut c = Checked::default();
    let namespaced = doc.kind == "Policy";
    let spec_path = FieldPath::keys("spec");

    if doc.metadata.name.is_empty() {
        c.problem(
            FieldPath::keys("metadata.name"),
            "Required value: name or generateName is required",
        );
    }
    if doc.kind == "ClusterPolicy"
        && doc
            .metadata
            .namespace
            .as_deref()
            .is_some_and(|n| !n.is_empty())
    {
        c.problem(
            FieldPath::keys("metadata.namespace"),
            "A clusterpolicy should not have the namespace defined",
        );
    }

    let spec = &doc.spec;
    if let Some(action) = &spec.validation_failure_action {
        check_spec_action(&mut c, spec_path.key("validationFailureAction"), action);
    }
    check_overrides(
        &mut c,
        &spec_path.key("validationFailureActionOverrides"),
        &spec.validation_failure_action_overrides,
        true,
    );
    if namespaced && !spec.validation_failure_action_overrides.is_empty() {
        c.problem(
            spec_path.key("validationFailureActionOverrides"),
            "Forbidden: Use of validationFailureActionOverrides is supported only with ClusterPolicy",
        );
    }
    if let Some(fp) = &spec.failure_policy {
        check_enum(
            &mut c,
            spec_path.key("failurePolicy"),
            fp,
            &["Ignore", "Fail"],
        );
        if spec
            .webhook_configuration
            .as_ref()
            .is_some_and(|w| w.failure_policy.is_some())
        {
            c.problem(
                spec_path.key("failurePolicy"),
                "Forbidden: remove the deprecated field and use spec.webhookConfiguration.failurePolicy instead",
            );
        }
    }
    if let Some(fp) = spec
        .webhook_configuration
        .as_ref()
        .and_then(|w| w.failure_policy.as_ref())
    {
        check_enum(
            &mut c,
            spec_path.key("webhookConfiguration").key("failurePolicy"),
            fp,
            &["Ignore", "Fail"],
        );
    }
    if let Some(apply) = &spec.apply_rules {
        check_enum(&mut c, spec_path.key("applyRules"), apply, &["All", "One"]);
    }
    if spec.generate_existing_on_policy_update.is_some() {
        c.problem(
            spec_path.key("generateExistingOnPolicyUpdate"),
            "Forbidden: remove the deprecated field and use spec.generate[*].generateExisting instead",
        );
    }
    if !spec.admission && !spec.background {
        c.problem(
            spec_path.key("admission"),
            "disabling both admission and background processing is not allowed",
        );
    }
    if !spec.admission
        && spec
            .rules
            .iter()
            .any(|r| r.mutate.is_some() || r.generate.is_some() || !r.verify_images.is_empty())
    {
        c.problem(
            spec_path.key("admission"),
            "disabling admission processing is only allowed with validation policies",
        );
    }

    let rules_path = spec_path.key("rules");
    for (i, rule) in spec.rules.iter().enumerate() {
        let at = rules_path.index(i);
        if rule.name.is_empty() {
            c.problem(at.key("name"), "Required value: a rule needs a name");
        } else if spec.rules[..i].iter().any(|r| r.name == rule.name) {
            c.problem(
                at.key("name"),
                format!("Duplicate rule name: '{}'", rule.name),
            );
        }
        check_rule(&mut c, &at, rule, doc);
    }
    c
}

fn check_enum(c: &mut Checked, at: FieldPath, value: &str, allowed: &[&str]) {
    if !allowed.contains(&value) {
        let list: Vec<String> = allowed.iter().map(|a| format!("\"{a}\"")).collect();
        c.problem(
            at,
            format!(
                "Unsupported value: \"{value}\": supported values: {}",
                list.join(", ")
            ),
        );
    }
}

/// The spec-level action: `audit|enforce|Audit|Enforce`, lowercase deprecated.
fn check_spec_action(c: &mut Checked, at: FieldPath, action: &str) {
    check_enum(
        c,
        at.clone(),
        action,
        &["audit", "enforce", "Audit", "Enforce"],
    );
    if action == "audit" || action == "enforce" {
        c.warn(at, DEPRECATED_ACTION);
    }
}

fn check_overrides(c: &mut Checked, at: &FieldPath, overrides: &[ActionOverride], lower_ok: bool) {
    for (i, o) in overrides.iter().enumerate() {
        let allowed: &[&str] = if lower_ok {
            &["audit", "enforce", "Audit", "Enforce"]
        } else {
            &["Audit", "Enforce"]
        };
        check_enum(c, at.index(i).key("action"), &o.action, allowed);
        if o.action == "audit" || o.action == "enforce" {
            c.warn(at.index(i).key("action"), DEPRECATED_ACTION);
        }
    }
}

fn check_rule(c: &mut Checked, at: &FieldPath, rule: &Rule, doc: &PolicyDoc) {
    let types = rule.types();
    if types.is_empty() {
        c.problem(
            at.clone(),
            format!(
                "No operation defined in the rule '{}'.(supported operations: mutate,validate,generate,verifyImages)",
                rule.name
            ),
        );
    } else if types.len() > 1 {
        c.problem(
            at.clone(),
            format!(
                "Multiple operations defined in the rule '{}', only one operation (mutate,validate,generate,verifyImages) is allowed per rule",
                rule.name
            ),
        );
    }
    if rule.image_extractors.is_some() && rule.verify_images.is_empty() {
        c.problem(
            at.key("imageExtractors"),
            format!(
                "Invalid rule spec for rule '{}', imageExtractors can only be defined for verifyImages rule",
                rule.name
            ),
        );
    }

    check_match(c, &at.key("match"), &rule.match_resources, rule, true);
    if let Some(exclude) = &rule.exclude {
        check_match(c, &at.key("exclude"), exclude, rule, false);
    }
    check_context(c, &at.key("context"), &rule.context);
    if let Some(pre) = &rule.preconditions {
        check_condition_block(c, &at.key("preconditions"), pre);
    }

    if let Some(v) = &rule.validate {
        let vp = at.key("validate");
        if let Some(action) = &v.failure_action {
            check_enum(c, vp.key("failureAction"), action, &["Audit", "Enforce"]);
        }
        check_overrides(
            c,
            &vp.key("failureActionOverrides"),
            &v.failure_action_overrides,
            true,
        );
        let count = [
            v.pattern.is_some(),
            v.any_pattern.is_some(),
            v.deny.is_some(),
            v.foreach.is_some(),
            v.pod_security.is_some(),
            v.cel.is_some(),
            v.manifests.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        // `assert` (kyverno-json) is validated elsewhere in Kyverno; count it as present.
        if count == 0 && v.assert.is_none() {
            c.problem(
                vp.clone(),
                "one of pattern, anyPattern, deny, foreach, cel must be specified",
            );
        } else if count > 1 {
            c.problem(
                vp.clone(),
                "only one of pattern, anyPattern, deny, foreach, cel can be specified",
            );
        }
        if let Some(ap) = &v.any_pattern
            && !ap.is_array()
        {
            c.problem(
                vp.key("anyPattern"),
                "failed to deserialize anyPattern, expect array",
            );
        }
        if let Some(deny) = &v.deny
            && let Some(cond) = &deny.conditions
        {
            check_condition_block(c, &vp.key("deny").key("conditions"), cond);
        }
        if let Some(foreach) = &v.foreach {
            check_foreach(c, &vp.key("foreach"), foreach);
        }
    }

    let is_audit_spec = doc
        .spec
        .validation_failure_action
        .as_deref()
        .is_none_or(|a| a != "Enforce" && a != "enforce");
    // Kyverno carries the "is Audit" flag from one entry to the next (the loop variable is
    // only overwritten by entries that set failureAction); reproduced as is.
    let mut is_audit = is_audit_spec;
    for (i, iv) in rule.verify_images.iter().enumerate() {
        let ip = at.key("verifyImages").index(i);
        if let Some(action) = &iv.failure_action {
            check_enum(c, ip.key("failureAction"), action, &["Audit", "Enforce"]);
            is_audit = action != "Enforce";
        }
        check_image_verification(c, &ip, iv, is_audit, &rule.name);
    }
}

fn check_match(c: &mut Checked, at: &FieldPath, m: &MatchResources, rule: &Rule, is_match: bool) {
    if !m.any.is_empty() && !m.all.is_empty() {
        c.problem(at.clone(), "Can't specify any and all together");
    }
    let legacy = m.resources.as_ref().is_some_and(|r| !r.is_empty());
    if (!m.any.is_empty() || !m.all.is_empty()) && legacy {
        c.problem(
            at.clone(),
            "can't specify any/all together with match resources",
        );
    }
    if is_match {
        let kinds_missing = if !m.any.is_empty() {
            m.any.iter().any(|f| f.resources.kinds.is_empty())
        } else if !m.all.is_empty() {
            m.all.iter().any(|f| f.resources.kinds.is_empty())
        } else {
            m.resources.as_ref().is_none_or(|r| r.kinds.is_empty())
        };
        if kinds_missing {
            let message = if only_metadata(rule) {
                "at least one element must be specified in a kind block, the kind attribute is mandatory when working with the resources element"
            } else {
                "policy can only deal with the metadata field of the resource if the rule does not match any kind"
            };
            c.problem(at.clone(), message);
        }
    }
    let filters: Vec<(FieldPath, &ResourceFilter)> = m
        .any
        .iter()
        .enumerate()
        .map(|(i, f)| (at.key("any").index(i), f))
        .chain(
            m.all
                .iter()
                .enumerate()
                .map(|(i, f)| (at.key("all").index(i), f)),
        )
        .collect();
    let section = if is_match { "match" } else { "exclude" };
    let mut has_vars = filters.iter().any(|(_, f)| filter_has_variables(f));
    if let Some(r) = &m.resources {
        has_vars |= r
            .kinds
            .iter()
            .chain(&r.names)
            .chain(&r.namespaces)
            .any(|s| s.contains("{{"));
    }
    if has_vars {
        c.problem(
            at.clone(),
            format!(
                "rule \"{}\" should not have variables in {section} section",
                rule.name
            ),
        );
    }
    for (fp, f) in filters {
        for (j, op) in f.resources.operations.iter().enumerate() {
            check_enum(
                c,
                fp.key("resources").key("operations").index(j),
                op,
                &["CREATE", "CONNECT", "UPDATE", "DELETE"],
            );
        }
    }
}

fn filter_has_variables(f: &ResourceFilter) -> bool {
    let r = &f.resources;
    r.kinds
        .iter()
        .chain(&r.names)
        .chain(&r.namespaces)
        .chain(r.name.iter())
        .any(|s| s.contains("{{"))
}

/// `ruleOnlyDealsWithResourceMetaData`, reduced to what the engine can tell: a validate rule
/// whose pattern has nothing but `metadata`.
fn only_metadata(rule: &Rule) -> bool {
    let Some(v) = &rule.validate else {
        return false;
    };
    let pattern_only_metadata = |p: &serde_json::Value| {
        p.as_object()
            .is_some_and(|m| !m.is_empty() && m.keys().all(|k| k == "metadata"))
    };
    match (&v.pattern, &v.any_pattern) {
        (Some(p), None) => pattern_only_metadata(p),
        (None, Some(serde_json::Value::Array(ps))) => ps.iter().all(pattern_only_metadata),
        _ => false,
    }
}

fn check_context(c: &mut Checked, at: &FieldPath, entries: &[ContextEntry]) {
    for (i, entry) in entries.iter().enumerate() {
        let ep = at.index(i);
        if entry.name.is_empty() {
            c.problem(ep.key("name"), "a name is required for context entries");
            continue;
        }
        for reserved in [
            "images",
            "request",
            "serviceAccountName",
            "serviceAccountNamespace",
            "element",
            "elementIndex",
        ] {
            if entry.name == reserved || entry.name.starts_with(&format!("{reserved}.")) {
                c.problem(
                    ep.key("name"),
                    format!(
                        "entry name {} is invalid as it conflicts with a pre-defined variable {reserved}",
                        entry.name
                    ),
                );
            }
        }
        if entry.sources().len() != 1 {
            c.problem(
                ep.clone(),
                "exactly one of configMap or apiCall or imageRegistry or variable is required for context entries",
            );
            continue;
        }
        if let Some(cm) = &entry.config_map {
            if cm.name.is_empty() {
                c.problem(
                    ep.key("configMap").key("name"),
                    "a name is required for configMap context entry",
                );
            }
            if cm.namespace.is_empty() {
                c.problem(
                    ep.key("configMap").key("namespace"),
                    "a namespace is required for configMap context entry",
                );
            }
        }
        if let Some(var) = &entry.variable {
            let vp = ep.key("variable");
            match (&var.value, &var.jmes_path) {
                (None, None) => c.problem(
                    vp.clone(),
                    "a variable must define a value or a jmesPath expression",
                ),
                (_, Some(expr)) => {
                    if let Err(e) = vars::compile(expr) {
                        c.problem(
                            vp.key("jmesPath"),
                            format!("failed to parse JMESPath {expr}: {e}"),
                        );
                    }
                }
                _ => {}
            }
            if var.default.is_some() && var.jmes_path.is_none() {
                c.problem(
                    vp,
                    "a variable must define a default value only when a jmesPath expression is defined",
                );
            }
        }
    }
}

fn check_foreach(c: &mut Checked, at: &FieldPath, foreach: &[ForEachValidation]) {
    for (i, fe) in foreach.iter().enumerate() {
        let fp = at.index(i);
        if fe.list.is_empty() {
            c.problem(fp.key("list"), "foreach.list is required");
        } else if let Err(e) = vars::compile(fe.list.trim()) {
            c.problem(
                fp.key("list"),
                format!("failed to parse JMESPath {}: {e}", fe.list),
            );
        }
        let count = [
            fe.pattern.is_some(),
            fe.any_pattern.is_some(),
            fe.deny.is_some(),
            fe.foreach.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if count == 0 {
            c.problem(
                fp.clone(),
                "one of pattern, anyPattern, deny, or a nested foreach must be specified",
            );
        } else if count > 1 {
            c.problem(
                fp.clone(),
                "only one of pattern, anyPattern, deny, or a nested foreach can be specified",
            );
        }
        check_context(c, &fp.key("context"), &fe.context);
        if let Some(pre) = &fe.preconditions {
            check_condition_block(c, &fp.key("preconditions"), pre);
        }
        if let Some(deny) = &fe.deny
            && let Some(cond) = &deny.conditions
        {
            check_condition_block(c, &fp.key("deny").key("conditions"), cond);
        }
        if let Some(nested) = &fe.foreach {
            check_foreach(c, &fp.key("foreach"), nested);
        }
    }
}

fn check_condition_block(c: &mut Checked, at: &FieldPath, raw: &serde_json::Value) {
    match ConditionBlock::from_value(raw) {
        Err(e) => c.problem(at.clone(), e),
        Ok(ConditionBlock::Legacy(list)) => check_conditions(c, at, &list),
        Ok(ConditionBlock::AnyAll(aa)) => {
            if let Some(any) = &aa.any {
                check_conditions(c, &at.key("any"), any);
            }
            if let Some(all) = &aa.all {
                check_conditions(c, &at.key("all"), all);
            }
        }
    }
}

/// Every operator Kyverno accepts (`ConditionOperators`).
pub const OPERATORS: [&str; 18] = [
    "Equal",
    "Equals",
    "NotEqual",
    "NotEquals",
    "In",
    "AnyIn",
    "AllIn",
    "NotIn",
    "AnyNotIn",
    "AllNotIn",
    "GreaterThanOrEquals",
    "GreaterThan",
    "LessThanOrEquals",
    "LessThan",
    "DurationGreaterThanOrEquals",
    "DurationGreaterThan",
    "DurationLessThanOrEquals",
    "DurationLessThan",
];

fn check_conditions(c: &mut Checked, at: &FieldPath, conditions: &[Condition]) {
    for (i, cond) in conditions.iter().enumerate() {
        let cp = at.index(i);
        if cond.key.is_none() || cond.value.is_none() || cond.operator.is_empty() {
            c.problem(
                cp,
                "entered value of `key`, `value` or `operator` is missing or misspelled",
            );
            continue;
        }
        if !OPERATORS.contains(&cond.operator.as_str()) {
            let list: Vec<String> = OPERATORS.iter().map(|o| format!("\"{o}\"")).collect();
            c.problem(
                cp.key("operator"),
                format!(
                    "entered value of `operator` is invalid. valid values: [{}]",
                    list.join(" ")
                ),
            );
        } else if cond.operator == "In" || cond.operator == "NotIn" {
            c.warn(
                cp.key("operator"),
                format!(
                    "Operator {} has been deprecated and will be removed soon. Use {} instead.",
                    cond.operator,
                    if cond.operator == "In" {
                        "AllIn or AnyIn"
                    } else {
                        "AllNotIn or AnyNotIn"
                    }
                ),
            );
        }
    }
}

fn check_image_verification(
    c: &mut Checked,
    at: &FieldPath,
    iv: &ImageVerification,
    is_audit: bool,
    rule_name: &str,
) {
    check_enum(
        c,
        at.key("type"),
        &iv.verification_type,
        &["Cosign", "SigstoreBundle", "Notary"],
    );
    let converted = iv.converted();
    if is_audit && iv.mutate_digest {
        c.problem(
            at.key("mutateDigest"),
            "mutateDigest must be set to false for \u{2018}Audit\u{2019} failure action",
        );
    }
    if converted.image_references.is_empty() {
        c.problem(at.clone(), "An image reference is required");
    }
    if converted
        .image_references
        .iter()
        .chain(&converted.skip_image_references)
        .any(|r| r.contains("{{"))
    {
        c.problem(
            at.key("imageReferences"),
            format!("rule \"{rule_name}\" should not have variables in image reference section"),
        );
    }
    for (i, att) in converted.attestations.iter().enumerate() {
        let ap = at.key("attestations").index(i);
        for (j, set) in att.attestors.iter().enumerate() {
            check_attestor_set(c, &ap.key("attestors").index(j), set);
        }
        for (j, cond) in att.conditions.iter().enumerate() {
            let cp = ap.key("conditions").index(j);
            if let Some(any) = &cond.any {
                check_conditions(c, &cp.key("any"), any);
            }
            if let Some(all) = &cond.all {
                check_conditions(c, &cp.key("all"), all);
            }
        }
    }
    for (i, set) in converted.attestors.iter().enumerate() {
        check_attestor_set(c, &at.key("attestors").index(i), set);
    }
    if iv.verification_type == "Notary" {
        for set in &iv.attestors {
            for entry in &set.entries {
                if entry.keyless.is_some() {
                    c.problem(
                        at.key("attestors"),
                        "Keyless field is not allowed for type notary",
                    );
                }
                if entry.keys.is_some() {
                    c.problem(
                        at.key("attestors"),
                        "Keys field is not allowed for type notary",
                    );
                }
            }
        }
    }
    if let Some(deny) = iv.validate.as_ref().and_then(|v| v.deny.as_ref())
        && let Some(cond) = &deny.conditions
    {
        check_condition_block(c, &at.key("validate").key("deny").key("conditions"), cond);
    }
}

fn check_attestor_set(c: &mut Checked, at: &FieldPath, set: &AttestorSet) {
    if let Some(count) = set.count
        && count > i64::try_from(set.entries.len()).unwrap_or(i64::MAX)
    {
        c.problem(at.clone(), "Count cannot exceed length of entries");
    }
    if set.entries.is_empty() {
        c.problem(at.clone(), "An entry is required");
    }
    for (i, entry) in set.entries.iter().enumerate() {
        check_attestor(c, &at.key("entries").index(i), entry);
    }
}

fn check_attestor(c: &mut Checked, at: &FieldPath, a: &Attestor) {
    let present = [
        a.keys.is_some(),
        a.certificates.is_some(),
        a.keyless.is_some(),
        a.attestor.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if present != 1 {
        c.problem(
            at.clone(),
            "keys, certificates, keyless, or a nested attestor is required",
        );
    }
    if let Some(keys) = &a.keys {
        let kp = at.key("keys");
        if keys.public_keys.is_empty() && keys.kms.is_empty() && keys.secret.is_none() {
            c.problem(kp.clone(), "A public key, kms key or secret is required");
        }
        if !keys.public_keys.is_empty()
            && let Some(alg) = &keys.signature_algorithm
            && !["", "sha224", "sha256", "sha384", "sha512"].contains(&alg.as_str())
        {
            c.problem(kp, "Invalid signature algorithm provided");
        }
    }
    if let Some(certs) = &a.certificates
        && certs.cert.is_empty()
        && certs.cert_chain.is_empty()
    {
        c.problem(at.key("certificates"), "cert or certChain required");
    }
    if let Some(keyless) = &a.keyless {
        if keyless.rekor.is_none() && keyless.roots.is_empty() {
            c.problem(at.key("keyless"), "Either Rekor URL or roots are required");
        }
        if keyless.rekor.as_ref().is_some_and(|r| r.url.is_empty()) {
            c.problem(at.key("keyless"), "An URL is required");
        }
    }
    if let Some(nested) = &a.attestor {
        check_attestor_set(c, &at.key("attestor"), nested);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(yaml: &str) -> Vec<String> {
        let doc: PolicyDoc = serde_yaml::from_str(yaml).unwrap();
        check(&doc)
            .problems
            .into_iter()
            .map(|(p, m)| format!("{p}: {m}"))
            .collect()
    }

    const HEAD: &str = "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata: {name: p}\n";

    #[test]
    fn audit_with_default_mutate_digest_is_rejected() {
        let yaml = format!(
            "{HEAD}spec:\n  rules:\n  - name: r\n    match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}\n    verifyImages:\n    - imageReferences: [\"*\"]\n      attestors: [{{entries: [{{keys: {{kms: \"awskms:///x\"}}}}]}}]\n"
        );
        assert_eq!(
            problems(&yaml),
            vec![
                "spec.rules[0].verifyImages[0].mutateDigest: mutateDigest must be set to false for \u{2018}Audit\u{2019} failure action"
            ]
        );
        let ok = yaml.replace(
            "- imageReferences",
            "- mutateDigest: false\n      imageReferences",
        );
        assert!(problems(&ok).is_empty(), "{:?}", problems(&ok));
        let enforce = yaml.replace("spec:\n", "spec:\n  validationFailureAction: Enforce\n");
        assert!(problems(&enforce).is_empty());
    }

    #[test]
    fn attestor_problems() {
        let yaml = format!(
            "{HEAD}spec:\n  validationFailureAction: Enforce\n  rules:\n  - name: r\n    match: {{any: [{{resources: {{kinds: [Pod]}}}}]}}\n    verifyImages:\n    - attestors:\n      - count: 3\n        entries:\n        - keys: {{}}\n        - keys: {{kms: k}}\n          keyless: {{roots: r}}\n"
        );
        assert_eq!(
            problems(&yaml),
            vec![
                "spec.rules[0].verifyImages[0]: An image reference is required",
                "spec.rules[0].verifyImages[0].attestors[0]: Count cannot exceed length of entries",
                "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys: A public key, kms key or secret is required",
                "spec.rules[0].verifyImages[0].attestors[0].entries[1]: keys, certificates, keyless, or a nested attestor is required",
            ]
        );
    }

    #[test]
    fn match_problems() {
        let yaml = format!(
            "{HEAD}spec:\n  rules:\n  - name: r\n    match:\n      any: [{{resources: {{kinds: [Pod]}}}}]\n      all: [{{resources: {{kinds: [Pod]}}}}]\n    validate: {{pattern: {{spec: {{}}}}}}\n  - name: r\n    match: {{resources: {{kinds: [Pod]}}}}\n    validate: {{}}\n"
        );
        assert_eq!(
            problems(&yaml),
            vec![
                "spec.rules[0].match: Can't specify any and all together",
                "spec.rules[1].name: Duplicate rule name: 'r'",
                "spec.rules[1].validate: one of pattern, anyPattern, deny, foreach, cel must be specified",
            ]
        );
    }
}
