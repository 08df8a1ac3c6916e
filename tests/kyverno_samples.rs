//! The seven Kyverno sample policies in /work/shared/fixtures/kyverno, loaded from disk and
//! judged against small facts, with the verdicts Kyverno's rules give.

mod kyverno_support;

use std::path::Path;

use imagegate::policy::kyverno::{EvalContext, KyvernoError, KyvernoSet, load, load_str};
use imagegate::policy::{Outcome, Severity};
use kyverno_support::*;

fn load_sample(name: &str) -> Option<KyvernoSet> {
    let dir = fixtures()?;
    let path = dir.join(name);
    Some(load(&[&path]).unwrap_or_else(|e| panic!("{name} should load: {e}")))
}

/// A sample's text with a change, loaded as if from that file.
fn load_sample_edited(name: &str, from: &str, to: &str) -> Option<KyvernoSet> {
    let dir = fixtures()?;
    let text = std::fs::read_to_string(dir.join(name)).expect("fixture readable");
    assert!(text.contains(from), "{name} should contain {from:?}");
    let edited = text.replace(from, to);
    Some(load_str(&dir.join(name), &edited).unwrap_or_else(|e| panic!("{e}")))
}

#[test]
fn six_samples_load_and_gcpkms_is_rejected_as_kyverno_rejects_it() {
    let Some(dir) = fixtures() else { return };
    for name in [
        "allowed-image-repos.yaml",
        "disallow-latest-tag.yaml",
        "require-image-checksum.yaml",
        "restrict-image-registries.yaml",
        "verify-image.yaml",
        "verify-image-with-multi-keys.yaml",
    ] {
        let set = load(&[dir.join(name)]).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(set.policies.len(), 1, "{name}");
        assert_eq!(set.policies[0].origin, dir.join(name));
    }
    // validationFailureAction: Audit with mutateDigest left at its CRD default (true): Kyverno
    // >= 1.10 refuses the policy.
    let err = load(&[dir.join("verify-image-gcpkms.yaml")]).unwrap_err();
    let KyvernoError::Invalid(problems) = &err else {
        panic!("expected a validation error, got {err}");
    };
    assert_eq!(problems.len(), 1);
    let p = &problems[0];
    assert_eq!(p.file, dir.join("verify-image-gcpkms.yaml"));
    assert_eq!(
        p.field.to_string(),
        "spec.rules[0].verifyImages[0].mutateDigest"
    );
    assert_eq!(
        p.message,
        "mutateDigest must be set to false for \u{2018}Audit\u{2019} failure action"
    );
    // mutateDigest is not written, so the error points at the verifyImages entry.
    assert_eq!((p.line, p.column), (29, 9));
    assert_eq!(p.policy, "ClusterPolicy/verify-image-gcpkms");
    // Loading the whole directory fails for the same reason.
    assert!(matches!(load(&[&dir]), Err(KyvernoError::Invalid(ps)) if ps.len() == 1));
}

#[test]
fn disallow_latest_tag() {
    let Some(set) = load_sample("disallow-latest-tag.yaml") else {
        return;
    };
    let f = facts("nginx:latest", signatures(&[], &[]));
    let ctx = EvalContext::new("nginx:latest");
    let tag = judge(&set, &f, &ctx, "validate-image-tag");
    assert_eq!(tag.outcome, Outcome::Violated);
    assert!(!tag.enforced, "the sample is Audit");
    assert_eq!(tag.severity, Severity::Medium);
    assert_eq!(
        tag.messages,
        vec![
            "validation failure: validation error: Using a mutable image tag e.g. 'latest' is not allowed. rule validate-image-tag failed at path /image/"
        ]
    );
    assert!(tag.description.starts_with("The ':latest' tag is mutable"));
    assert_eq!(
        judge(&set, &f, &ctx, "require-image-tag").outcome,
        Outcome::Pass
    );

    // No tag at all: the tag rule passes ("!*:latest"), the require rule fails ("*:*").
    let ctx = EvalContext::new("nginx");
    let f = facts("nginx", signatures(&[], &[]));
    assert_eq!(
        judge(&set, &f, &ctx, "validate-image-tag").outcome,
        Outcome::Pass
    );
    let req = judge(&set, &f, &ctx, "require-image-tag");
    assert_eq!(req.outcome, Outcome::Violated);
    assert_eq!(
        req.messages[0],
        "validation failure: validation error: An image tag is required. rule require-image-tag failed at path /image/"
    );

    // The reference's caveat: a registry port satisfies "*:*".
    let ctx = EvalContext::new("localhost:5000/app");
    let f = facts("localhost:5000/app", signatures(&[], &[]));
    assert_eq!(
        judge(&set, &f, &ctx, "require-image-tag").outcome,
        Outcome::Pass
    );
}

#[test]
fn restrict_image_registries() {
    let Some(set) = load_sample("restrict-image-registries.yaml") else {
        return;
    };
    let allowed = judge(
        &set,
        &facts("eu.foo.io/team/app:1.2", signatures(&[], &[])),
        &EvalContext::new("eu.foo.io/team/app:1.2"),
        "validate-registries",
    );
    assert_eq!(allowed.outcome, Outcome::Pass);
    let foreign = judge(
        &set,
        &facts("docker.io/library/nginx:1.25", signatures(&[], &[])),
        &EvalContext::new("docker.io/library/nginx:1.25"),
        "validate-registries",
    );
    assert_eq!(foreign.outcome, Outcome::Violated);
    assert_eq!(
        foreign.messages,
        vec![
            "validation error: Unknown image registry. rule validate-registries failed at path /spec/containers/0/image/"
        ]
    );
    assert!(!foreign.enforced);
    assert_eq!(foreign.remediation, "Unknown image registry.");
}

#[test]
fn require_image_checksum_reads_the_raw_reference() {
    let Some(set) = load_sample("require-image-checksum.yaml") else {
        return;
    };
    let pinned = format!("nginx@{DIGEST}");
    let with_digest = judge(
        &set,
        &facts(&pinned, signatures(&[], &[])),
        &EvalContext::new(pinned.clone()),
        "require-image-checksum",
    );
    assert_eq!(with_digest.outcome, Outcome::Pass);
    // The digest imagegate resolved does not count: the Pod would name the tag.
    let tagged = judge(
        &set,
        &facts("nginx:1.25", signatures(&[], &[])),
        &EvalContext::new("nginx:1.25"),
        "require-image-checksum",
    );
    assert_eq!(tagged.outcome, Outcome::Violated);
    assert_eq!(
        tagged.messages,
        vec![
            "validation error: Images must use checksums rather than tags. rule require-image-checksum failed at path /spec/containers/0/image/"
        ]
    );
}

#[test]
fn allowed_image_repos_uses_the_images_context() {
    let Some(set) = load_sample("allowed-image-repos.yaml") else {
        return;
    };
    let ok = judge(
        &set,
        &facts("ghcr.io/kyverno/kyverno:v1.12.0", signatures(&[], &[])),
        &EvalContext::new("ghcr.io/kyverno/kyverno:v1.12.0"),
        "good-repos",
    );
    assert_eq!(ok.outcome, Outcome::Pass);
    let denied = judge(
        &set,
        &facts("nginx:1.25", signatures(&[], &[])),
        &EvalContext::new("nginx:1.25"),
        "good-repos",
    );
    assert_eq!(denied.outcome, Outcome::Violated);
    assert_eq!(
        denied.messages,
        vec!["All images in this Pod must come from an authorized repository."]
    );
}

const SIGNED: &str = "ghcr.io/kyverno/test-verify-image:signed";

#[test]
fn verify_image_with_the_sample_key() {
    let Some(set) = load_sample("verify-image.yaml") else {
        return;
    };
    let ctx = EvalContext::new(SIGNED);

    // Signed, but by another key.
    let f = facts(SIGNED, signatures(&[Sig::by(&[KEY_B])], &[SAMPLE_KEY]));
    let other = judge(&set, &f, &ctx, "verify-image");
    assert_eq!(other.outcome, Outcome::Violated);
    assert!(other.enforced, "the sample is Enforce");
    assert!(
        other.messages[0].starts_with(
            "failed to verify image ghcr.io/kyverno/test-verify-image:signed: .attestors[0].entries[0].keys: no matching signatures:"
        ),
        "{:?}",
        other.messages
    );

    // No signatures at all.
    let f = facts(SIGNED, signatures(&[], &[SAMPLE_KEY]));
    let none = judge(&set, &f, &ctx, "verify-image");
    assert_eq!(none.outcome, Outcome::Violated);
    assert_eq!(
        none.messages[0],
        "failed to verify image ghcr.io/kyverno/test-verify-image:signed: .attestors[0].entries[0].keys: no signatures found"
    );

    // Verified by the sample key, but without a Rekor bundle: the sample has no `rekor`
    // block, so Kyverno checks the transparency log and the rule fails.
    let f = facts(SIGNED, signatures(&[Sig::by(&[SAMPLE_KEY])], &[]));
    let no_bundle = judge(&set, &f, &ctx, "verify-image");
    assert_eq!(no_bundle.outcome, Outcome::Violated);
    assert!(
        no_bundle.messages[0].contains("no transparency-log (Rekor) bundle")
            && no_bundle.messages[0].contains("rekor.ignoreTlog: true"),
        "{:?}",
        no_bundle.messages
    );

    // With a bundle the public Rekor keys are needed, which is online.
    let f = facts(
        SIGNED,
        signatures(&[Sig::by(&[SAMPLE_KEY]).bundled(&[])], &[]),
    );
    let online = judge(&set, &f, &ctx, "verify-image");
    assert!(
        matches!(&online.outcome, Outcome::NotEvaluated(why) if why.contains("rekor.pubkey")),
        "{:?}",
        online.outcome
    );

    // An image the rule does not name.
    let f = facts("nginx:1.25", signatures(&[], &[]));
    let other_image = judge(&set, &f, &EvalContext::new("nginx:1.25"), "verify-image");
    assert!(matches!(other_image.outcome, Outcome::Skipped(_)));
}

#[test]
fn verify_image_passes_when_the_log_is_not_required() {
    let Some(set) = load_sample_edited(
        "verify-image.yaml",
        "          - keys:\n",
        "          - keys:\n              rekor:\n                ignoreTlog: true\n",
    ) else {
        return;
    };
    let ctx = EvalContext::new(SIGNED);
    let f = facts(SIGNED, signatures(&[Sig::by(&[SAMPLE_KEY])], &[]));
    let pass = judge(&set, &f, &ctx, "verify-image");
    assert_eq!(pass.outcome, Outcome::Pass, "{:?}", pass.messages);
    // mutateDigest pins the tag to the digest, so verifyDigest is satisfied.
    assert!(
        pass.messages
            .iter()
            .any(|m| m.contains(&format!("ghcr.io/kyverno/test-verify-image@{DIGEST}"))),
        "{:?}",
        pass.messages
    );
    let f = facts(SIGNED, signatures(&[Sig::by(&[KEY_B])], &[SAMPLE_KEY]));
    assert_eq!(
        judge(&set, &f, &ctx, "verify-image").outcome,
        Outcome::Violated
    );
}

#[test]
fn multi_keys_from_a_config_map_cannot_be_judged_offline() {
    let Some(set) = load_sample("verify-image-with-multi-keys.yaml") else {
        return;
    };
    assert!(
        set.notes
            .iter()
            .any(|n| n.contains("context entry `keys` reads ConfigMap default/keys")),
        "{:?}",
        set.notes
    );
    let image = "ghcr.io/myorg/myimage:1.0";
    let f = facts(image, signatures(&[Sig::by(&[SAMPLE_KEY, KEY_B])], &[]));
    let finding = judge(
        &set,
        &f,
        &EvalContext::new(image),
        "check-image-with-two-keys",
    );
    match &finding.outcome {
        Outcome::NotEvaluated(why) => {
            assert!(why.contains("ConfigMap default/keys"), "{why}");
            assert!(why.contains(".attestors[0].entries[0].keys"), "{why}");
        }
        other => panic!("expected NotEvaluated, got {other:?}"),
    }
    assert!(finding.enforced);
}

#[test]
fn multi_keys_with_the_keys_written_in_need_both() {
    let Some(dir) = fixtures() else { return };
    let text = std::fs::read_to_string(dir.join("verify-image-with-multi-keys.yaml")).unwrap();
    let text = text
        .replace(
            "publicKeys: \"{{ keys.data.production }}\"",
            &format!(
                "publicKeys: |-\n{}\n              rekor: {{ignoreTlog: true}}",
                indent(SAMPLE_KEY, 16)
            ),
        )
        .replace(
            "publicKeys: \"{{ keys.data.{{request.namespace}} }}\"",
            &format!(
                "publicKeys: |-\n{}\n              rekor: {{ignoreTlog: true}}",
                indent(KEY_B, 16)
            ),
        );
    let set = load_str(Path::new("multi.yaml"), &text).unwrap_or_else(|e| panic!("{e}"));
    let image = "ghcr.io/myorg/myimage:1.0";
    let ctx = EvalContext::new(image);
    let both = facts(
        image,
        signatures(&[Sig::by(&[SAMPLE_KEY]), Sig::by(&[KEY_B])], &[]),
    );
    assert_eq!(
        judge(&set, &both, &ctx, "check-image-with-two-keys").outcome,
        Outcome::Pass
    );
    let one = facts(image, signatures(&[Sig::by(&[SAMPLE_KEY])], &[KEY_B]));
    let f = judge(&set, &one, &ctx, "check-image-with-two-keys");
    assert_eq!(f.outcome, Outcome::Violated);
    assert!(
        f.messages[0].contains(".attestors[0].entries[1].keys: no matching signatures"),
        "{:?}",
        f.messages
    );
}

#[test]
fn gcpkms_with_mutate_digest_off_uses_the_kms_uri() {
    let Some(set) = load_sample_edited(
        "verify-image-gcpkms.yaml",
        "      - imageReferences:",
        "      - mutateDigest: false\n        imageReferences:",
    ) else {
        return;
    };
    let uri = "gcpkms://projects/omni-163105/locations/asia-south1/keyRings/first-ring/cryptoKeys/jerry/versions/1";
    let keys = imagegate::policy::kyverno::required_keys(&set, "default");
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].key, imagegate::facts::KeyId::Uri(uri.into()));
    assert!(keys[0].signatures);

    let image = "ghcr.io/kyverno/test-verify-image:v1";
    let mut sigs = signatures(&[], &[]);
    sigs.found = signatures(&[Sig::default()], &[]).found;
    sigs.found[0].tlog = None;
    sigs.checks.insert(
        imagegate::facts::KeyId::Uri(uri.into()),
        imagegate::facts::KeyCheck::Checked {
            verified: vec![0],
            failures: vec![],
        },
    );
    let f = judge(
        &set,
        &facts(image, sigs),
        &EvalContext::new(image),
        "verify-image",
    );
    // Audit now, and the signature has no bundle while the log is required.
    assert_eq!(f.outcome, Outcome::Violated);
    assert!(!f.enforced);
    // And verifyDigest: mutateDigest is off and the Pod names a tag.
    assert!(
        f.messages
            .iter()
            .any(|m| m == &format!("missing digest for {image}")),
        "{:?}",
        f.messages
    );
}
