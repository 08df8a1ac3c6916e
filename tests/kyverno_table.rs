//! One table of cases with verdicts taken from the Kyverno reference notes
//! (/work/shared/reference/kyverno-policies.md) and Kyverno's behaviour they cite — not from
//! running this code. Each row names the rule of Kyverno it checks.

mod kyverno_support;

use std::path::Path;

use imagegate::facts::{KeyCheck, KeyId, SignatureFacts};
use imagegate::policy::kyverno::{
    EvalContext, KyvernoError, KyvernoImage, evaluate, load_str, wildcard,
};
use imagegate::policy::{Finding, Outcome};
use kyverno_support::*;

/// What a rule must conclude.
struct Want {
    outcome: &'static str,
    enforced: Option<bool>,
    /// Must appear in the messages or the outcome's reason.
    text: Option<&'static str>,
}

fn want(outcome: &'static str) -> Want {
    Want {
        outcome,
        enforced: None,
        text: None,
    }
}

impl Want {
    fn enforced(mut self, e: bool) -> Want {
        self.enforced = Some(e);
        self
    }
    fn says(mut self, text: &'static str) -> Want {
        self.text = Some(text);
        self
    }
}

enum Case {
    Wildcard {
        pattern: &'static str,
        name: &'static str,
        matches: bool,
    },
    Normalise {
        raw: &'static str,
        kyverno: String,
    },
    Eval {
        policy: String,
        image: &'static str,
        namespace: &'static str,
        sigs: Box<SignatureFacts>,
        /// Signatures gathered from another repository.
        repository: Option<(&'static str, Box<SignatureFacts>)>,
        want: Want,
    },
    LoadError {
        yaml: String,
        line: usize,
        field: &'static str,
        message: &'static str,
    },
    /// A property of the loaded policy.
    Loaded {
        yaml: String,
        check: fn(&imagegate::policy::kyverno::KyvernoSet) -> Result<(), String>,
    },
}

const IMG: &str = "ghcr.io/o/app:v1";
const NO_TLOG: &str = "rekor: {ignoreTlog: true}";

fn json(s: &str) -> String {
    serde_json::to_string(s).expect("string")
}

/// A `keys` attestor entry in flow style.
fn key_entry(pem: &str, extra: &str) -> String {
    let sep = if extra.is_empty() { "" } else { ", " };
    format!("{{keys: {{publicKeys: {}{sep}{extra}}}}}", json(pem))
}

/// A ClusterPolicy with one verifyImages rule `r` for `ghcr.io/o/*`.
fn verify_policy(action: &str, iv_fields: &str, attestors: &str) -> String {
    let sep = if iv_fields.is_empty() { "" } else { ", " };
    format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  validationFailureAction: {action}\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - {{imageReferences: [\"ghcr.io/o/*\"], attestors: {attestors}{sep}{iv_fields}}}\n"
    )
}

/// A ClusterPolicy with one validate rule `r` matching Pods with `match_extra` in the
/// resource block.
fn validate_policy(spec_extra: &str, match_extra: &str, validate: &str) -> String {
    format!(
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n{spec_extra}  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n{match_extra}    validate:\n{validate}"
    )
}

const NO_LATEST: &str = "      message: no latest\n      pattern:\n        spec:\n          containers:\n          - image: \"!*:latest\"\n";

fn one_key(pem: &str) -> String {
    format!("[{{entries: [{}]}}]", key_entry(pem, NO_TLOG))
}

fn attestation_policy(conditions: &str, att_type: &str) -> String {
    verify_policy(
        "Enforce",
        &format!(
            "attestations: [{{type: {att_type}, attestors: [{{entries: [{}]}}], conditions: [{conditions}]}}]",
            key_entry(SAMPLE_KEY, NO_TLOG)
        ),
        "[]",
    )
}

fn slsa_facts() -> SignatureFacts {
    let mut s = signatures(&[], &[SAMPLE_KEY]);
    s.attestations.push(attestation(
        "https://slsa.dev/provenance/v0.2",
        serde_json::json!({
            "builder": {"id": "https://github.com/actions/runner"},
            "buildType": "https://github.com/Attestations/GitHubActionsWorkflow@v1",
            "score": 8,
            "age": "2h",
            "materials": [{"uri": "git+https://github.com/o/app"}],
        }),
        &[SAMPLE_KEY],
    ));
    s
}

fn eval(policy: String, image: &'static str, sigs: SignatureFacts, want: Want) -> Case {
    Case::Eval {
        policy,
        image,
        namespace: "default",
        sigs: Box::new(sigs),
        repository: None,
        want,
    }
}

fn eval_in(
    policy: String,
    namespace: &'static str,
    image: &'static str,
    sigs: SignatureFacts,
    want: Want,
) -> Case {
    Case::Eval {
        policy,
        image,
        namespace,
        sigs: Box::new(sigs),
        repository: None,
        want,
    }
}

fn kms_sigs(uri: &str) -> SignatureFacts {
    let mut s = signatures(&[Sig::default()], &[]);
    s.checks.insert(
        KeyId::Uri(uri.to_string()),
        KeyCheck::Checked {
            verified: vec![0],
            failures: vec![],
        },
    );
    s
}

fn cases() -> Vec<(&'static str, Case)> {
    let d = |s: &str| s.replace("DIGEST", DIGEST);
    let two_keys = format!("{}{}", SAMPLE_KEY, KEY_B);
    vec![
        // --- wildcard (go-wildcard deepMatchRune, reference §2) ---
        ("star crosses slash and colon", Case::Wildcard { pattern: "ghcr.io/*", name: "ghcr.io/a/b:c", matches: true }),
        ("star crosses @", Case::Wildcard { pattern: "ghcr.io/a*", name: "ghcr.io/a@sha256:00", matches: true }),
        ("question mark matches slash", Case::Wildcard { pattern: "a?b", name: "a/b", matches: true }),
        ("question mark is exactly one", Case::Wildcard { pattern: "a?", name: "a", matches: false }),
        ("empty pattern vs text", Case::Wildcard { pattern: "", name: "x", matches: false }),
        ("empty pattern vs empty", Case::Wildcard { pattern: "", name: "", matches: true }),
        ("case sensitive", Case::Wildcard { pattern: "GHCR.io/*", name: "ghcr.io/a", matches: false }),
        ("anchored", Case::Wildcard { pattern: "ghcr.io", name: "ghcr.io/a", matches: false }),
        // --- normalisation (infos.go, reference §2) ---
        ("docker.io added, no library/", Case::Normalise { raw: "nginx", kyverno: "docker.io/nginx:latest".into() }),
        ("library/ kept when written", Case::Normalise { raw: "library/nginx", kyverno: "docker.io/library/nginx:latest".into() }),
        ("digest drops the tag", Case::Normalise { raw: "nginx:1.25@DIGEST", kyverno: d("docker.io/nginx@DIGEST") }),
        ("localhost with port", Case::Normalise { raw: "localhost:5000/app", kyverno: "localhost:5000/app:latest".into() }),
        ("hub namespace", Case::Normalise { raw: "bitnami/redis:7", kyverno: "docker.io/bitnami/redis:7".into() }),
        ("registry with port keeps tag", Case::Normalise { raw: "registry.example.com:443/x/y:t", kyverno: "registry.example.com:443/x/y:t".into() }),
        // --- image references vs digests ---
        ("digest-pinned ref does not match :v1*", eval(
            verify_policy("Enforce", "", &one_key(SAMPLE_KEY)).replace("ghcr.io/o/*", "ghcr.io/o/app:v1*"),
            "ghcr.io/o/app:v1@sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7",
            signatures(&[Sig::by(&[SAMPLE_KEY])], &[]),
            want("skipped").says("does not match imageReferences"),
        )),
        ("tag ref matches :v1*", eval(
            verify_policy("Enforce", "", &one_key(SAMPLE_KEY)).replace("ghcr.io/o/*", "ghcr.io/o/app:v1*"),
            "ghcr.io/o/app:v1.2",
            signatures(&[Sig::by(&[SAMPLE_KEY])], &[]),
            want("pass"),
        )),
        ("skipImageReferences skips", eval(
            verify_policy("Enforce", "skipImageReferences: [\"ghcr.io/o/app:*\"]", &one_key(SAMPLE_KEY)),
            IMG,
            signatures(&[], &[SAMPLE_KEY]),
            want("skipped").says("skipImageReferences"),
        )),
        // --- count and entries (verifyAttestorSet) ---
        ("no count: every entry must verify", eval(
            verify_policy("Enforce", "", &format!("[{{entries: [{}, {}]}}]", key_entry(SAMPLE_KEY, NO_TLOG), key_entry(KEY_B, NO_TLOG))),
            IMG,
            signatures(&[Sig::by(&[SAMPLE_KEY])], &[KEY_B]),
            want("violated").enforced(true).says(".attestors[0].entries[1].keys: no matching signatures"),
        )),
        ("count 1: one of two is enough", eval(
            verify_policy("Enforce", "", &format!("[{{count: 1, entries: [{}, {}]}}]", key_entry(SAMPLE_KEY, NO_TLOG), key_entry(KEY_B, NO_TLOG))),
            IMG,
            signatures(&[Sig::by(&[KEY_B])], &[SAMPLE_KEY]),
            want("pass"),
        )),
        ("count 2 of 3 with one verified fails", eval(
            verify_policy("Enforce", "", &format!("[{{count: 2, entries: [{}, {}, {}]}}]", key_entry(SAMPLE_KEY, NO_TLOG), key_entry(KEY_B, NO_TLOG), key_entry(KEY_C, NO_TLOG))),
            IMG,
            signatures(&[Sig::by(&[KEY_C])], &[SAMPLE_KEY, KEY_B]),
            want("violated").says("failed to verify image ghcr.io/o/app:v1: .attestors[0].entries[0].keys: no matching signatures"),
        )),
        ("multi-PEM, no count: each key must verify", eval(
            verify_policy("Enforce", "", &format!("[{{entries: [{}]}}]", key_entry(&two_keys, NO_TLOG))),
            IMG,
            signatures(&[Sig::by(&[SAMPLE_KEY])], &[KEY_B]),
            want("violated").says(".attestors[0].entries[1].keys"),
        )),
        ("multi-PEM, count 1: any key", eval(
            verify_policy("Enforce", "", &format!("[{{count: 1, entries: [{}]}}]", key_entry(&two_keys, NO_TLOG))),
            IMG,
            signatures(&[Sig::by(&[KEY_B])], &[SAMPLE_KEY]),
            want("pass"),
        )),
        ("every attestor set must pass", eval(
            verify_policy("Enforce", "", &format!("[{{entries: [{}]}}, {{entries: [{}]}}]", key_entry(SAMPLE_KEY, NO_TLOG), key_entry(KEY_B, NO_TLOG))),
            IMG,
            signatures(&[Sig::by(&[SAMPLE_KEY])], &[KEY_B]),
            want("violated").says(".attestors[1].entries[0].keys"),
        )),
        ("nested attestor set", eval(
            verify_policy("Enforce", "", &format!("[{{entries: [{{attestor: {{count: 1, entries: [{}, {}]}}}}]}}]", key_entry(KEY_B, NO_TLOG), key_entry(KEY_C, NO_TLOG))),
            IMG,
            signatures(&[Sig::by(&[KEY_C])], &[KEY_B]),
            want("pass"),
        )),
        // --- annotations ---
        ("annotations match a verified signature", eval(
            verify_policy("Enforce", "", &format!("[{{entries: [{{keys: {{publicKeys: {}, {NO_TLOG}}}, annotations: {{env: prod}}}}]}}]", json(SAMPLE_KEY))),
            IMG,
            signatures(&[Sig::by(&[SAMPLE_KEY]).annotated(&[("env", "prod"), ("team", "a")])], &[]),
            want("pass"),
        )),
        ("annotations differ", eval(
            verify_policy("Enforce", "", &format!("[{{entries: [{{keys: {{publicKeys: {}, {NO_TLOG}}}, annotations: {{env: prod}}}}]}}]", json(SAMPLE_KEY))),
            IMG,
            signatures(&[Sig::by(&[SAMPLE_KEY]).annotated(&[("env", "dev")])], &[]),
            want("violated").says("no signature matched the required annotations"),
        )),
        // --- transparency log ---
        ("no rekor block, no bundle: fails", eval(
            verify_policy("Enforce", "", &format!("[{{entries: [{}]}}]", key_entry(SAMPLE_KEY, ""))),
            IMG,
            signatures(&[Sig::by(&[SAMPLE_KEY])], &[]),
            want("violated").says("no transparency-log (Rekor) bundle"),
        )),
        ("ignoreTlog false, no bundle: fails", eval(
            verify_policy("Enforce", "", &format!("[{{entries: [{}]}}]", key_entry(SAMPLE_KEY, "rekor: {ignoreTlog: false}"))),
            IMG,
            signatures(&[Sig::by(&[SAMPLE_KEY])], &[]),
            want("violated").says("rekor.ignoreTlog: true"),
        )),
        ("bundle verified by the policy's rekor pubkey", eval(
            verify_policy("Enforce", "", &format!("[{{entries: [{}]}}]", key_entry(SAMPLE_KEY, &format!("rekor: {{pubkey: {}}}", json(REKOR_KEY))))),
            IMG,
            signatures(&[Sig::by(&[SAMPLE_KEY]).bundled(&[REKOR_KEY])], &[]),
            want("pass"),
        )),
        ("bundle from another log", eval(
            verify_policy("Enforce", "", &format!("[{{entries: [{}]}}]", key_entry(SAMPLE_KEY, &format!("rekor: {{pubkey: {}}}", json(REKOR_KEY))))),
            IMG,
            signatures(&[Sig::by(&[SAMPLE_KEY]).bundled(&[KEY_C])], &[]),
            want("violated").says("rekor log public key not found for payload"),
        )),
        ("bundle without a pubkey is not judged offline", eval(
            verify_policy("Enforce", "", &format!("[{{entries: [{}]}}]", key_entry(SAMPLE_KEY, ""))),
            IMG,
            signatures(&[Sig::by(&[SAMPLE_KEY]).bundled(&[])], &[]),
            want("not-evaluated").says("rekor.pubkey"),
        )),
        // --- other attestor kinds ---
        ("keyless is not judged offline", eval(
            verify_policy("Enforce", "", "[{entries: [{keyless: {issuer: \"https://token.actions.githubusercontent.com\", subject: \"https://github.com/o/*\", rekor: {url: \"https://rekor.sigstore.dev\"}}}]}]"),
            IMG,
            signatures(&[Sig { certificate: true, ..Sig::default() }], &[]),
            want("not-evaluated").says("keyless verification needs Fulcio roots and Rekor online"),
        )),
        ("keyless with no signatures fails", eval(
            verify_policy("Enforce", "", "[{entries: [{keyless: {issuer: i, subject: s, rekor: {url: \"https://rekor.sigstore.dev\"}}}]}]"),
            IMG,
            signatures(&[], &[]),
            want("violated").says(".attestors[0].entries[0].keyless: no signatures found"),
        )),
        ("kms key by URI", eval(
            verify_policy("Enforce", "", &format!("[{{entries: [{{keys: {{kms: \"awskms:///alias/signer\", {NO_TLOG}}}}}]}}]")),
            IMG,
            kms_sigs("awskms:///alias/signer"),
            want("pass"),
        )),
        ("secret key as k8s://NS/NAME", eval(
            verify_policy("Enforce", "", &format!("[{{entries: [{{keys: {{secret: {{name: cosign, namespace: ops}}, {NO_TLOG}}}}}]}}]")),
            IMG,
            kms_sigs("k8s://ops/cosign"),
            want("pass"),
        )),
        ("key the gatherer did not check", eval(
            verify_policy("Enforce", "", &one_key(KEY_C)),
            IMG,
            signatures(&[Sig::by(&[SAMPLE_KEY])], &[]),
            want("not-evaluated").says("were not checked with"),
        )),
        ("signatures from another repository, not gathered", eval(
            verify_policy("Enforce", "repository: ghcr.io/o/signatures", &one_key(SAMPLE_KEY)),
            IMG,
            signatures(&[Sig::by(&[SAMPLE_KEY])], &[]),
            want("not-evaluated").says("repository ghcr.io/o/signatures"),
        )),
        ("signatures from another repository, gathered", Case::Eval {
            policy: verify_policy("Enforce", "repository: ghcr.io/o/signatures", &one_key(SAMPLE_KEY)),
            image: IMG,
            namespace: "default",
            sigs: Box::new(signatures(&[], &[SAMPLE_KEY])),
            repository: Some((
                "ghcr.io/o/signatures",
                Box::new(signatures(&[Sig::by(&[SAMPLE_KEY])], &[])),
            )),
            want: want("pass"),
        }),
        // --- verifyDigest / required / mutateDigest (validate_image.go) ---
        ("required with nothing verified: unverified image", eval(
            verify_policy("Audit", "mutateDigest: false, verifyDigest: false", "[]"),
            IMG,
            signatures(&[], &[]),
            want("violated").enforced(false).says("unverified image ghcr.io/o/app:v1"),
        )),
        ("verifyDigest without mutateDigest on a tag", eval(
            verify_policy("Enforce", "mutateDigest: false", &one_key(SAMPLE_KEY)),
            IMG,
            signatures(&[Sig::by(&[SAMPLE_KEY])], &[]),
            want("violated").enforced(true).says("missing digest for ghcr.io/o/app:v1"),
        )),
        ("mutateDigest pins the tag, verifyDigest passes", eval(
            verify_policy("Enforce", "", &one_key(SAMPLE_KEY)),
            IMG,
            signatures(&[Sig::by(&[SAMPLE_KEY])], &[]),
            want("pass").says("mutateDigest pins the image to ghcr.io/o/app@sha256:"),
        )),
        ("verifyDigest satisfied by a digest reference", eval(
            verify_policy("Enforce", "mutateDigest: false", &one_key(SAMPLE_KEY)),
            "ghcr.io/o/app@sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7",
            signatures(&[Sig::by(&[SAMPLE_KEY])], &[]),
            want("pass"),
        )),
        // --- attestations ---
        ("attestation condition holds", eval(
            attestation_policy("{all: [{key: \"{{ builder.id }}\", operator: Equals, value: \"https://github.com/*\"}]}", "https://slsa.dev/provenance/v0.2"),
            IMG, slsa_facts(), want("pass"),
        )),
        ("attestation condition fails", eval(
            attestation_policy("{all: [{key: \"{{ builder.id }}\", operator: Equals, value: \"https://gitlab.com/*\", message: wrong builder}]}", "https://slsa.dev/provenance/v0.2"),
            IMG, slsa_facts(),
            want("violated").says("image attestations verification failed, verifiedCount: 0, requiredCount: 1, error: .attestations[0].attestors[0].entries[0].keys: attestation checks failed for ghcr.io/o/app@sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7 and predicate https://slsa.dev/provenance/v0.2: wrong builder"),
        )),
        ("any: one true condition is enough", eval(
            attestation_policy("{any: [{key: \"{{ buildType }}\", operator: Equals, value: nope}, {key: \"{{ score }}\", operator: GreaterThanOrEquals, value: 7}]}", "https://slsa.dev/provenance/v0.2"),
            IMG, slsa_facts(), want("pass"),
        )),
        ("all: AnyIn and DurationLessThan", eval(
            attestation_policy("{all: [{key: \"{{ materials[].uri }}\", operator: AnyIn, value: [\"git+https://github.com/o/*\"]}, {key: \"{{ age }}\", operator: DurationLessThan, value: 24h}]}", "https://slsa.dev/provenance/v0.2"),
            IMG, slsa_facts(), want("pass"),
        )),
        ("all: AllNotIn fails", eval(
            attestation_policy("{all: [{key: \"{{ materials[].uri }}\", operator: AllNotIn, value: [\"git+https://github.com/*\"]}]}", "https://slsa.dev/provenance/v0.2"),
            IMG, slsa_facts(), want("violated").says("attestation checks failed"),
        )),
        ("no attestation of the type", eval(
            attestation_policy("{all: [{key: \"{{ x }}\", operator: Equals, value: y}]}", "https://cyclonedx.org/bom"),
            IMG, slsa_facts(), want("violated").says("attestions not found for predicate type https://cyclonedx.org/bom"),
        )),
        ("attestation signed by another key", eval(
            attestation_policy("{all: [{key: \"{{ score }}\", operator: GreaterThan, value: 1}]}", "https://slsa.dev/provenance/v0.2").replace(&json(SAMPLE_KEY), &json(KEY_B)),
            IMG, slsa_facts(), want("violated").says("no matching attestations"),
        )),
        // --- failure actions (engineresponse.go) ---
        ("rule failureAction Enforce beats spec Audit", eval(
            validate_policy("  validationFailureAction: Audit\n", "", &format!("      failureAction: Enforce\n{NO_LATEST}")),
            "nginx:latest", signatures(&[], &[]), want("violated").enforced(true).says("validation error: no latest. rule r failed at path /spec/containers/0/image/"),
        )),
        ("spec override audits dev-*", eval_in(
            validate_policy("  validationFailureAction: Enforce\n  validationFailureActionOverrides:\n  - action: Audit\n    namespaces: [\"dev-*\"]\n", "", NO_LATEST),
            "dev-1", "nginx:latest", signatures(&[], &[]), want("violated").enforced(false),
        )),
        ("spec override does not reach prod", eval_in(
            validate_policy("  validationFailureAction: Enforce\n  validationFailureActionOverrides:\n  - action: Audit\n    namespaces: [\"dev-*\"]\n", "", NO_LATEST),
            "prod", "nginx:latest", signatures(&[], &[]), want("violated").enforced(true),
        )),
        ("rule override beats rule action", eval_in(
            validate_policy("", "", &format!("      failureAction: Audit\n      failureActionOverrides:\n      - action: Enforce\n        namespaces: [prod]\n{NO_LATEST}")),
            "prod", "nginx:latest", signatures(&[], &[]), want("violated").enforced(true),
        )),
        ("verifyImages: any Enforce entry wins", eval(
            verify_policy("Audit", "failureAction: Audit, mutateDigest: false", &one_key(KEY_B)).replace(
                "    - {imageReferences",
                &format!("    - {{failureAction: Enforce, imageReferences: [\"ghcr.io/o/*\"], attestors: {}}}\n    - {{imageReferences", one_key(SAMPLE_KEY)),
            ),
            IMG, signatures(&[Sig::by(&[SAMPLE_KEY])], &[KEY_B]), want("violated").enforced(true),
        )),
        ("lowercase enforce enforces", eval(
            validate_policy("  validationFailureAction: enforce\n", "", NO_LATEST),
            "nginx:latest", signatures(&[], &[]), want("violated").enforced(true),
        )),
        // --- match / exclude ---
        ("match namespaces elsewhere", eval(
            validate_policy("", "          namespaces: [prod]\n", NO_LATEST),
            "nginx:latest", signatures(&[], &[]), want("skipped").says("namespace default does not match [prod]"),
        )),
        ("exclude kube-*", Case::Eval {
            policy: validate_policy("", "", NO_LATEST).replace("    validate:", "    exclude:\n      any:\n      - resources:\n          namespaces: [\"kube-*\"]\n    validate:"),
            image: "nginx:latest", namespace: "kube-system", sigs: Box::new(signatures(&[], &[])), repository: None,
            want: want("skipped").says("excluded"),
        }),
        ("Deployment-only rule applies through autogen", eval(
            validate_policy("", "", &NO_LATEST.replace("        spec:\n          containers:", "        spec:\n          template:\n            spec:\n              containers:").replace("          - image", "              - image")).replace("kinds: [Pod]", "kinds: [Deployment]"),
            "nginx:latest", signatures(&[], &[]), want("violated").says("/spec/template/spec/containers/0/image/"),
        )),
        ("group/version/Kind form", eval(
            validate_policy("", "", NO_LATEST).replace("kinds: [Pod]", "kinds: [\"v1/Pod\"]"),
            "nginx:latest", signatures(&[], &[]), want("violated"),
        )),
        ("Service rule does not apply", eval(
            validate_policy("", "", NO_LATEST).replace("kinds: [Pod]", "kinds: [Service]"),
            "nginx:latest", signatures(&[], &[]), want("skipped").says("Service"),
        )),
        ("unknown labels are assumed to match", eval(
            validate_policy("", "          selector:\n            matchLabels:\n              tier: web\n", NO_LATEST),
            "nginx:latest", signatures(&[], &[]), want("violated").says("labels are not known"),
        )),
        ("Policy applies only in its namespace", eval_in(
            validate_policy("", "", NO_LATEST).replace("kind: ClusterPolicy\nmetadata:\n  name: p", "kind: Policy\nmetadata:\n  name: p\n  namespace: prod"),
            "default", "nginx:latest", signatures(&[], &[]), want("skipped").says("applies only in namespace prod"),
        )),
        ("Policy judged in its namespace", eval_in(
            validate_policy("", "", NO_LATEST).replace("kind: ClusterPolicy\nmetadata:\n  name: p", "kind: Policy\nmetadata:\n  name: p\n  namespace: prod"),
            "prod", "nginx:latest", signatures(&[], &[]), want("violated"),
        )),
        ("rule about labels only is not about the image", eval(
            validate_policy("", "", "      pattern:\n        metadata:\n          labels:\n            app: \"?*\"\n"),
            "nginx:latest", signatures(&[], &[]), want("skipped").says("does not look at container images"),
        )),
        ("image plus another field cannot be judged", eval(
            validate_policy("", "", "      pattern:\n        spec:\n          containers:\n          - image: \"!*:latest\"\n            imagePullPolicy: Always\n"),
            "nginx:1.25", signatures(&[], &[]), want("not-evaluated").says("spec.containers.imagePullPolicy"),
        )),
        // --- CRD defaults (load.go "proper defaulting") ---
        ("required, verifyDigest, mutateDigest, useCache default true", Case::Loaded {
            yaml: verify_policy("Enforce", "", &one_key(SAMPLE_KEY)),
            check: |set| {
                let iv = &set.policies[0].spec.rules[0].verify_images[0];
                let ok = iv.required && iv.verify_digest && iv.mutate_digest && iv.use_cache && iv.verification_type == "Cosign";
                ok.then_some(()).ok_or_else(|| format!("defaults not applied: {iv:?}"))
            },
        }),
        ("failure action defaults to Audit, background/admission true", Case::Loaded {
            yaml: validate_policy("", "", NO_LATEST),
            check: |set| {
                let p = &set.policies[0];
                let ok = p.spec_action() == imagegate::policy::kyverno::cfg::FailureAction::Audit
                    && p.spec.background && p.spec.admission && p.failure_policy_is_fail();
                ok.then_some(()).ok_or_else(|| "spec defaults not applied".to_string())
            },
        }),
        ("deprecated image/key convert", Case::Loaded {
            yaml: verify_policy("Enforce", "", "[]").replace("imageReferences: [\"ghcr.io/o/*\"], attestors: []", &format!("image: \"ghcr.io/o/*\", key: {}", json(SAMPLE_KEY))),
            check: |set| {
                let iv = set.policies[0].spec.rules[0].verify_images[0].converted();
                let ok = iv.image_references == vec!["ghcr.io/o/*".to_string()]
                    && iv.attestors.len() == 1
                    && iv.attestors[0].entries[0].keys.as_ref().is_some_and(|k| k.public_keys.contains("BEGIN PUBLIC KEY"));
                ok.then_some(()).ok_or_else(|| format!("not converted: {iv:?}"))
            },
        }),
        // --- policy validation with file, line and field path ---
        ("count exceeds entries", Case::LoadError {
            yaml: "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - imageReferences: [\"*\"]\n      attestors:\n      - count: 2\n        entries:\n        - keys:\n            kms: \"awskms:///a\"\n".into(),
            line: 16,
            field: "spec.rules[0].verifyImages[0].attestors[0]",
            message: "Count cannot exceed length of entries",
        }),
        ("missing image reference", Case::LoadError {
            yaml: "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - attestors:\n      - entries:\n        - keys:\n            kms: \"awskms:///a\"\n".into(),
            line: 14,
            field: "spec.rules[0].verifyImages[0]",
            message: "An image reference is required",
        }),
        ("empty keys", Case::LoadError {
            yaml: "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - imageReferences: [\"*\"]\n      attestors:\n      - entries:\n        - keys:\n            rekor:\n              ignoreTlog: true\n".into(),
            line: 17,
            field: "spec.rules[0].verifyImages[0].attestors[0].entries[0].keys",
            message: "A public key, kms key or secret is required",
        }),
        ("Audit with mutateDigest true", Case::LoadError {
            yaml: "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - imageReferences: [\"*\"]\n      mutateDigest: true\n      attestors:\n      - entries:\n        - keys:\n            kms: \"awskms:///a\"\n".into(),
            line: 14,
            field: "spec.rules[0].verifyImages[0].mutateDigest",
            message: "mutateDigest must be set to false for \u{2018}Audit\u{2019} failure action",
        }),
        ("any and all together", Case::LoadError {
            yaml: "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n      all:\n      - resources:\n          kinds: [Pod]\n    validate:\n      pattern:\n        spec: {}\n".into(),
            line: 8,
            field: "spec.rules[0].match",
            message: "Can't specify any and all together",
        }),
        ("two attestor kinds in one entry", Case::LoadError {
            yaml: "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  validationFailureAction: Enforce\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - imageReferences: [\"*\"]\n      attestors:\n      - entries:\n        - keys:\n            kms: \"awskms:///a\"\n          keyless:\n            roots: r\n".into(),
            line: 17,
            field: "spec.rules[0].verifyImages[0].attestors[0].entries[0]",
            message: "keys, certificates, keyless, or a nested attestor is required",
        }),
        ("unsupported failure action", Case::LoadError {
            yaml: "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  validationFailureAction: Deny\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    validate:\n      pattern:\n        spec: {}\n".into(),
            line: 6,
            field: "spec.validationFailureAction",
            message: "Unsupported value: \"Deny\"",
        }),
    ]
}

fn text_of(f: &Finding) -> String {
    let mut all = f.messages.join("\n");
    if let Outcome::NotEvaluated(why) | Outcome::Skipped(why) = &f.outcome {
        all.push('\n');
        all.push_str(why);
    }
    all
}

fn run(name: &str, case: Case) -> Result<(), String> {
    match case {
        Case::Wildcard {
            pattern,
            name: text,
            matches,
        } => {
            let got = wildcard::matches(pattern, text);
            (got == matches)
                .then_some(())
                .ok_or_else(|| format!("{pattern:?} vs {text:?}: got {got}"))
        }
        Case::Normalise { raw, kyverno } => {
            let raw = raw.replace("DIGEST", DIGEST);
            let got = KyvernoImage::parse(&raw).map(|i| i.string());
            (got.as_deref() == Ok(kyverno.as_str()))
                .then_some(())
                .ok_or_else(|| format!("{raw}: got {got:?}, want {kyverno}"))
        }
        Case::Eval {
            policy,
            image,
            namespace,
            sigs,
            repository,
            want,
        } => {
            let set = load_str(Path::new("case.yaml"), &policy)
                .map_err(|e| format!("policy does not load: {e}\n{policy}"))?;
            let mut ctx = EvalContext::new(image).in_namespace(namespace);
            if let Some((repo, facts)) = repository {
                ctx.signatures_by_repository
                    .insert(repo.to_string(), *facts);
            }
            let findings = evaluate(&set, &facts(image, *sigs), &ctx);
            let f = findings
                .iter()
                .find(|f| f.rule.as_deref() == Some("r"))
                .ok_or("no finding for rule r")?;
            let got = outcome_kind(&f.outcome);
            if got != want.outcome {
                return Err(format!(
                    "outcome {:?}, want {}; messages {:?}",
                    f.outcome, want.outcome, f.messages
                ));
            }
            if let Some(e) = want.enforced
                && f.enforced != e
            {
                return Err(format!("enforced {}, want {e}", f.enforced));
            }
            if let Some(t) = want.text
                && !text_of(f).contains(t)
            {
                return Err(format!("{t:?} not in {:?}", text_of(f)));
            }
            Ok(())
        }
        Case::LoadError {
            yaml,
            line,
            field,
            message,
        } => match load_str(Path::new("bad.yaml"), &yaml) {
            Ok(_) => Err("loaded, but Kyverno rejects it".into()),
            Err(KyvernoError::Invalid(problems)) => {
                let p = problems
                    .iter()
                    .find(|p| p.message.contains(message))
                    .ok_or_else(|| format!("no problem says {message:?}: {problems:?}"))?;
                let text = p.to_string();
                if p.field.to_string() != field || p.line != line || !text.starts_with("bad.yaml:")
                {
                    return Err(format!(
                        "got {text} (line {}), want line {line} field {field}",
                        p.line
                    ));
                }
                Ok(())
            }
            Err(other) => Err(format!("wrong error: {other}")),
        },
        Case::Loaded { yaml, check } => {
            let set = load_str(Path::new("ok.yaml"), &yaml).map_err(|e| e.to_string())?;
            check(&set).map_err(|e| format!("{name}: {e}"))
        }
    }
}

#[test]
fn table() {
    let cases = cases();
    assert!(cases.len() >= 40, "the table keeps at least 40 cases");
    let mut failures = Vec::new();
    let total = cases.len();
    for (name, case) in cases {
        if let Err(e) = run(name, case) {
            failures.push(format!("{name}: {e}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} cases failed:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn yaml_type_errors_are_located() {
    let yaml = "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: p\nspec:\n  rules:\n  - name: r\n    match:\n      any:\n      - resources:\n          kinds: [Pod]\n    verifyImages:\n    - imageReferences: [\"*\"]\n      attestors:\n      - count: two\n";
    match load_str(Path::new("types.yaml"), yaml) {
        Err(KyvernoError::Yaml { line, message, .. }) => {
            assert_eq!(line, 15);
            assert!(message.contains("count"), "{message}");
        }
        other => panic!("expected a located YAML error, got {other:?}"),
    }
}

#[test]
fn other_documents_are_noted_not_loaded() {
    let yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: keys}}\n---\n{}---\napiVersion: kyverno.io/v2\nkind: PolicyException\nmetadata: {{name: e}}\n",
        validate_policy("", "", NO_LATEST)
    );
    let set = load_str(Path::new("mixed.yaml"), &yaml).unwrap();
    assert_eq!(set.policies.len(), 1);
    assert_eq!(set.notes.len(), 2, "{:?}", set.notes);
    assert!(set.notes[0].starts_with("mixed.yaml:1: ConfigMap (v1)"));
    assert!(set.notes[1].contains("exceptions it grants are not applied"));
}
