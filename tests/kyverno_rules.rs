//! Rule behaviours beyond the table: which keys the gatherer is asked for, load notes,
//! applyRules, admission, preconditions, foreach and deny messages, rule errors, and the
//! mutating webhook pinning images before validate rules see them.

mod kyverno_support;

use imagegate::facts::KeyId;
use imagegate::policy::kyverno::{EvalContext, KeyMaterial, evaluate, required_keys};
use imagegate::policy::{Outcome, Severity};
use kyverno_support::*;

fn json(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

const POD_MATCH: &str = "    match:\n      any:\n      - resources:\n          kinds: [Pod]\n";

fn cluster_policy(name: &str, spec_extra: &str, rules: &str) -> String {
    format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: {name}\nspec:\n{spec_extra}  rules:\n{rules}"
    )
}

#[test]
fn required_keys_lists_every_static_key_once() {
    let two = format!("{SAMPLE_KEY}{KEY_B}");
    let rules = format!(
        "  - name: sign\n{POD_MATCH}    verifyImages:\n    - imageReferences: [\"ghcr.io/*\"]\n      attestors:\n      - count: 1\n        entries:\n        - keys:\n            publicKeys: {}\n            rekor:\n              pubkey: {}\n        - keys:\n            secret: {{name: cosign, namespace: ops}}\n        - keys:\n            publicKeys: \"{{{{ keys.data.prod }}}}\"\n      attestations:\n      - type: https://slsa.dev/provenance/v0.2\n        attestors:\n        - entries:\n          - keys:\n              publicKeys: {}\n  - name: again\n{POD_MATCH}    verifyImages:\n    - imageReferences: [\"quay.io/*\"]\n      repository: quay.io/o/sigs\n      attestors:\n      - entries:\n        - keys:\n            publicKeys: {}\n",
        json(&two),
        json(REKOR_KEY),
        json(&two),
        json(SAMPLE_KEY),
    );
    let yaml = format!(
        "{}---\napiVersion: kyverno.io/v1\nkind: Policy\nmetadata:\n  name: team\n  namespace: team-a\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: team-key\n{POD_MATCH}    verifyImages:\n    - imageReferences: [\"*\"]\n      attestors:\n      - entries:\n        - keys:\n            kms: \"awskms:///alias/team\"\n",
        cluster_policy("keys", "  validationFailureAction: Enforce\n", &rules)
    );
    let set = load_yaml(&yaml);

    let keys = required_keys(&set, "default");
    let sample = keys
        .iter()
        .find(|k| k.key == key(SAMPLE_KEY) && k.repository.is_none())
        .expect("sample key requested");
    assert!(sample.signatures);
    assert_eq!(
        sample.attestation_types,
        vec!["https://slsa.dev/provenance/v0.2".to_string()]
    );
    assert_eq!(sample.rekor_keys.len(), 1);
    assert_eq!(sample.rekor_keys[0].id, key(REKOR_KEY));
    assert!(matches!(&sample.material, KeyMaterial::Pem(p) if p.contains("8nXRh950")));
    assert_eq!(
        sample.wanted_by,
        vec!["ClusterPolicy/keys rule sign".to_string()]
    );
    // The second PEM of the pair is its own key (splitPEM), for signatures only.
    let b = keys
        .iter()
        .find(|k| k.key == key(KEY_B))
        .expect("second PEM");
    assert!(b.signatures && b.attestation_types.is_empty());
    // Secrets become k8s:// URIs; the ConfigMap key cannot be named offline.
    assert!(
        keys.iter()
            .any(|k| k.key == KeyId::Uri("k8s://ops/cosign".into()))
    );
    assert!(
        !keys
            .iter()
            .any(|k| matches!(&k.material, KeyMaterial::Uri(u) if u.contains("{{")))
    );
    // The same key for another repository is a separate request.
    let elsewhere = keys
        .iter()
        .find(|k| k.repository.as_deref() == Some("quay.io/o/sigs"))
        .expect("repository override");
    assert_eq!(elsewhere.key, key(SAMPLE_KEY));
    // A namespaced Policy asks only in its namespace.
    assert!(
        !keys
            .iter()
            .any(|k| k.key == KeyId::Uri("awskms:///alias/team".into()))
    );
    assert_eq!(keys.len(), 4, "{keys:#?}");
    let team = required_keys(&set, "team-a");
    assert!(
        team.iter()
            .any(|k| k.key == KeyId::Uri("awskms:///alias/team".into()))
    );
}

#[test]
fn load_notes_say_what_was_ignored_or_assumed() {
    let yaml = "apiVersion: kyverno.io/v1\nkind: Policy\nmetadata:\n  name: p\nspec:\n  validationFailureAction: enforce\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    validate:\n      patern:\n        spec: {}\n      pattern:\n        spec:\n          containers:\n          - image: \"!*:latest\"\n";
    let set = load_yaml(yaml);
    let notes = set.notes.join("\n");
    assert!(
        notes.contains(
            "test.yaml:14: Policy/default/p: unknown field spec.rules[0].validate.patern ignored"
        ),
        "{notes}"
    );
    assert!(notes.contains("enforce/audit are deprecated"), "{notes}");
    assert!(notes.contains("taken as `default`"), "{notes}");
    assert_eq!(set.policies[0].namespace.as_deref(), Some("default"));
}

#[test]
fn v2beta1_drops_the_deprecated_fields() {
    let yaml = format!(
        "apiVersion: kyverno.io/v2beta1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: r\n{POD_MATCH}    verifyImages:\n    - imageReferences: [\"ghcr.io/*\"]\n      key: {}\n      attestors:\n      - entries:\n        - keys:\n            publicKeys: {}\n",
        json(KEY_B),
        json(SAMPLE_KEY)
    );
    let set = load_yaml(&yaml);
    assert!(
        set.notes
            .iter()
            .any(|n| n.contains("kyverno.io/v2beta1 has no `key`")),
        "{:?}",
        set.notes
    );
    let iv = set.policies[0].spec.rules[0].verify_images[0].converted();
    assert_eq!(iv.attestors.len(), 1, "the pruned key adds no attestor");
}

#[test]
fn apply_rules_one_stops_after_the_first_rule_that_applies() {
    let rule = |name: &str, pattern: &str| {
        format!(
            "  - name: {name}\n{POD_MATCH}    validate:\n      pattern:\n        spec:\n          containers:\n          - image: \"{pattern}\"\n"
        )
    };
    let yaml = cluster_policy(
        "one",
        "  applyRules: One\n",
        &format!(
            "{}{}{}",
            rule("elsewhere", "x").replace("kinds: [Pod]", "kinds: [Service]"),
            rule("first", "!*:latest"),
            rule("second", "*@*")
        ),
    );
    let set = load_yaml(&yaml);
    let findings = evaluate(
        &set,
        &facts("nginx:latest", signatures(&[], &[])),
        &EvalContext::new("nginx:latest"),
    );
    let outcomes: Vec<&str> = findings.iter().map(|f| outcome_kind(&f.outcome)).collect();
    assert_eq!(outcomes, vec!["skipped", "violated", "skipped"]);
    assert!(
        matches!(&findings[2].outcome, Outcome::Skipped(why) if why.contains("applyRules is One and rule first")),
        "{:?}",
        findings[2].outcome
    );
}

#[test]
fn background_only_policies_do_not_apply_at_admission() {
    let yaml = cluster_policy(
        "bg",
        "  admission: false\n",
        &format!(
            "  - name: r\n{POD_MATCH}    validate:\n      pattern:\n        spec:\n          containers:\n          - image: \"!*:latest\"\n"
        ),
    );
    let f = judge(
        &load_yaml(&yaml),
        &facts("nginx:latest", signatures(&[], &[])),
        &EvalContext::new("nginx:latest"),
        "r",
    );
    assert!(matches!(f.outcome, Outcome::Skipped(ref why) if why.contains("background")));
}

#[test]
fn preconditions_skip_or_are_assumed() {
    let rule = |pre: &str| {
        cluster_policy(
            "pre",
            "",
            &format!(
                "  - name: r\n{POD_MATCH}    preconditions:\n      all:\n      - {pre}\n    validate:\n      pattern:\n        spec:\n          containers:\n          - image: \"!*:latest\"\n"
            ),
        )
    };
    let img = "nginx:latest";
    let f = facts(img, signatures(&[], &[]));
    let ctx = EvalContext::new(img).in_namespace("dev");
    let skipped = judge(
        &load_yaml(&rule(
            "{key: \"{{ request.namespace }}\", operator: Equals, value: prod, message: only prod}",
        )),
        &f,
        &ctx,
        "r",
    );
    assert_eq!(
        skipped.outcome,
        Outcome::Skipped("preconditions not met; only prod".into())
    );
    let applied = judge(
        &load_yaml(&rule(
            "{key: \"{{ images.containers.*.registry | [0] }}\", operator: Equals, value: docker.io}",
        )),
        &f,
        &ctx,
        "r",
    );
    assert_eq!(applied.outcome, Outcome::Violated);
    let assumed = judge(
        &load_yaml(&rule(
            "{key: \"{{ request.object.metadata.labels.tier }}\", operator: Equals, value: web}",
        )),
        &f,
        &ctx,
        "r",
    );
    assert_eq!(assumed.outcome, Outcome::Violated);
    assert!(
        assumed.messages.iter().any(
            |m| m.contains("preconditions could not be evaluated offline")
                && m.contains("labels.tier")
        ),
        "{:?}",
        assumed.messages
    );
}

#[test]
fn foreach_deny_substitutes_the_element_into_the_message() {
    let yaml = cluster_policy(
        "fe",
        "  validationFailureAction: Enforce\n",
        &format!(
            "  - name: r\n{POD_MATCH}    context:\n    - name: allowed\n      variable:\n        value: [\"ghcr.io\", \"quay.io\"]\n    validate:\n      message: \"image {{{{ element.image }}}} comes from {{{{ images.containers.*.registry | [0] }}}}\"\n      foreach:\n      - list: request.object.spec.containers\n        deny:\n          conditions:\n            any:\n            - key: \"{{{{ images.containers.*.registry | [0] }}}}\"\n              operator: AnyNotIn\n              value: \"{{{{ allowed }}}}\"\n"
        ),
    );
    let set = load_yaml(&yaml);
    let bad = judge(
        &set,
        &facts("docker.io/library/nginx:1.25", signatures(&[], &[])),
        &EvalContext::new("docker.io/library/nginx:1.25"),
        "r",
    );
    assert_eq!(bad.outcome, Outcome::Violated);
    assert!(bad.enforced);
    assert_eq!(
        bad.messages,
        vec!["validation failure: image docker.io/library/nginx:1.25 comes from docker.io"]
    );
    let good = judge(
        &set,
        &facts("quay.io/o/app:1", signatures(&[], &[])),
        &EvalContext::new("quay.io/o/app:1"),
        "r",
    );
    assert_eq!(good.outcome, Outcome::Pass);
}

#[test]
fn any_pattern_lists_each_alternative() {
    let yaml = cluster_policy(
        "any",
        "",
        &format!(
            "  - name: r\n{POD_MATCH}    validate:\n      message: Use an approved registry\n      anyPattern:\n      - spec:\n          containers:\n          - image: \"ghcr.io/*\"\n      - spec:\n          containers:\n          - image: \"quay.io/*\"\n"
        ),
    );
    let set = load_yaml(&yaml);
    let f = judge(
        &set,
        &facts("nginx", signatures(&[], &[])),
        &EvalContext::new("nginx"),
        "r",
    );
    assert_eq!(
        f.messages,
        vec![
            "validation error: Use an approved registry. rule r[0] failed at path /spec/containers/0/image/ rule r[1] failed at path /spec/containers/0/image/"
        ]
    );
    let ok = judge(
        &set,
        &facts("quay.io/a/b", signatures(&[], &[])),
        &EvalContext::new("quay.io/a/b"),
        "r",
    );
    assert_eq!(ok.outcome, Outcome::Pass);
}

#[test]
fn a_rule_error_blocks_under_failure_policy_fail() {
    let rule =
        format!("  - name: r\n{POD_MATCH}    validate:\n      message: images\n      deny: {{}}\n");
    let img = "nginx";
    let f = facts(img, signatures(&[], &[]));
    let failing = judge(
        &load_yaml(&cluster_policy("err", "", &rule)),
        &f,
        &EvalContext::new(img),
        "r",
    );
    assert_eq!(failing.outcome, Outcome::Violated);
    assert!(
        failing.enforced,
        "Audit, but failurePolicy defaults to Fail"
    );
    assert!(failing.messages[0].starts_with("rule error: failed to check deny conditions"));
    let ignoring = judge(
        &load_yaml(&cluster_policy("err", "  failurePolicy: Ignore\n", &rule)),
        &f,
        &EvalContext::new(img),
        "r",
    );
    assert!(!ignoring.enforced);
}

#[test]
fn other_rule_types_and_verification_types_are_not_judged() {
    let yaml = cluster_policy(
        "misc",
        "  validationFailureAction: Enforce\n",
        &format!(
            "  - name: add-label\n{POD_MATCH}    mutate:\n      patchStrategicMerge:\n        metadata:\n          labels:\n            x: y\n  - name: notary\n{POD_MATCH}    verifyImages:\n    - type: Notary\n      imageReferences: [\"*\"]\n      attestors:\n      - entries:\n        - certificates:\n            cert: abc\n  - name: privileged\n{POD_MATCH}    validate:\n      pattern:\n        spec:\n          containers:\n          - =(securityContext):\n              =(privileged): \"false\"\n"
        ),
    );
    let set = load_yaml(&yaml);
    let f = facts("nginx", signatures(&[Sig::default()], &[]));
    let ctx = EvalContext::new("nginx");
    assert!(
        matches!(judge(&set, &f, &ctx, "add-label").outcome, Outcome::Skipped(ref w) if w.contains("mutate"))
    );
    assert!(
        matches!(judge(&set, &f, &ctx, "notary").outcome, Outcome::NotEvaluated(ref w) if w.contains("Notary"))
    );
    assert!(
        matches!(judge(&set, &f, &ctx, "privileged").outcome, Outcome::Skipped(ref w) if w.contains("does not look at container images"))
    );
}

#[test]
fn validate_rules_see_the_image_as_admitted() {
    // A verifyImages rule with mutateDigest (the default) runs in Kyverno's mutating webhook
    // and pins the image before the validating webhook checks for a digest.
    let verify = cluster_policy(
        "verify",
        "  validationFailureAction: Enforce\n",
        &format!(
            "  - name: sign\n{POD_MATCH}    verifyImages:\n    - imageReferences: [\"ghcr.io/o/*\"]\n      attestors:\n      - entries:\n        - keys:\n            publicKeys: {}\n            rekor: {{ignoreTlog: true}}\n",
            json(SAMPLE_KEY)
        ),
    );
    let checksum = cluster_policy(
        "checksum",
        "",
        &format!(
            "  - name: digest\n{POD_MATCH}    validate:\n      pattern:\n        spec:\n          containers:\n          - image: \"*@*\"\n"
        ),
    );
    let img = "ghcr.io/o/app:v1";
    let f = facts(img, signatures(&[Sig::by(&[SAMPLE_KEY])], &[]));
    let alone = judge(&load_yaml(&checksum), &f, &EvalContext::new(img), "digest");
    assert_eq!(alone.outcome, Outcome::Violated);
    let both = load_yaml(&format!("{verify}---\n{checksum}"));
    let pinned = judge(&both, &f, &EvalContext::new(img), "digest");
    assert_eq!(pinned.outcome, Outcome::Pass, "{:?}", pinned.messages);
    assert!(
        pinned
            .messages
            .iter()
            .any(|m| m.contains(&format!("ghcr.io/o/app:v1@{DIGEST}")))
    );
}

#[test]
fn unknown_namespace_labels_make_enforce_overrides_apply() {
    let yaml = cluster_policy(
        "ov",
        "  validationFailureAction: Audit\n  validationFailureActionOverrides:\n  - action: Enforce\n    namespaceSelector:\n      matchLabels:\n        env: prod\n",
        &format!(
            "  - name: r\n{POD_MATCH}    validate:\n      pattern:\n        spec:\n          containers:\n          - image: \"!*:latest\"\n"
        ),
    );
    let set = load_yaml(&yaml);
    let f = facts("nginx:latest", signatures(&[], &[]));
    let unknown = judge(&set, &f, &EvalContext::new("nginx:latest"), "r");
    assert!(unknown.enforced);
    assert!(
        unknown
            .messages
            .iter()
            .any(|m| m.contains("assumed to apply"))
    );
    let mut ctx = EvalContext::new("nginx:latest");
    ctx.namespace_labels = Some([("env".to_string(), "dev".to_string())].into());
    assert!(!judge(&set, &f, &ctx, "r").enforced);
}

#[test]
fn severity_comes_from_the_annotation() {
    let with = |sev: &str| {
        cluster_policy(
            "sev",
            "",
            &format!(
                "  - name: r\n{POD_MATCH}    validate:\n      pattern:\n        spec:\n          containers:\n          - image: \"!*:latest\"\n"
            ),
        )
        .replace("  name: sev\n", &format!("  name: sev\n  annotations:\n    policies.kyverno.io/severity: {sev}\n"))
    };
    let f = facts("nginx", signatures(&[], &[]));
    let ctx = EvalContext::new("nginx");
    for (text, want) in [
        ("high", Severity::High),
        ("Critical", Severity::Critical),
        ("low", Severity::Low),
        ("info", Severity::Low),
        ("bogus", Severity::Medium),
    ] {
        assert_eq!(
            judge(&load_yaml(&with(text)), &f, &ctx, "r").severity,
            want,
            "{text}"
        );
    }
}

#[test]
fn registry_lookups_are_about_the_image_but_not_evaluated() {
    let yaml = cluster_policy(
        "user",
        "",
        &format!(
            "  - name: r\n{POD_MATCH}    validate:\n      foreach:\n      - list: request.object.spec.containers\n        context:\n        - name: imageData\n          imageRegistry:\n            reference: \"{{{{ element.image }}}}\"\n        deny:\n          conditions:\n            all:\n            - key: \"{{{{ imageData.configData.config.User || '' }}}}\"\n              operator: Equals\n              value: \"\"\n"
        ),
    );
    let f = judge(
        &load_yaml(&yaml),
        &facts("nginx", signatures(&[], &[])),
        &EvalContext::new("nginx"),
        "r",
    );
    assert!(
        matches!(&f.outcome, Outcome::NotEvaluated(why) if why.contains("image data from the registry")),
        "{:?}",
        f.outcome
    );
}

#[test]
fn problems_in_later_documents_carry_their_line_in_the_file() {
    let good = cluster_policy(
        "good",
        "",
        &format!(
            "  - name: r\n{POD_MATCH}    validate:\n      pattern:\n        spec:\n          containers:\n          - image: \"!*:latest\"\n"
        ),
    );
    let bad = cluster_policy(
        "bad",
        "  validationFailureAction: Enforce\n",
        &format!("  - name: r\n{POD_MATCH}    verifyImages:\n    - attestors: []\n"),
    );
    let text = format!("{good}---\n{bad}");
    let first_bad_line = good.lines().count() + 2;
    let err =
        imagegate::policy::kyverno::load_str(std::path::Path::new("two.yaml"), &text).unwrap_err();
    let imagegate::policy::kyverno::KyvernoError::Invalid(problems) = err else {
        panic!("expected validation problems");
    };
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].message, "An image reference is required");
    assert_eq!(problems[0].policy, "ClusterPolicy/bad");
    // `- attestors: []` is line 14 of the second document.
    assert_eq!(problems[0].line, first_bad_line + 13);
}
