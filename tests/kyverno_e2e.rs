//! Kyverno policies through `imagegate check --policy`, end to end against the test bed:
//! verifyImages with an AWS KMS key (moto), a Vault transit key (the Vault stand-in), public
//! keys and the transparency-log default, in-toto attestations written by cosign, Audit versus
//! Enforce, and namespaces.

mod testbed;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use testbed::fixtures::{self, ImageSpec, Layout};
use testbed::moto::Moto;
use testbed::registry::Registry;
use testbed::rekor_standin::{Recording, TransparencyLog};
use testbed::vault_standin::{KeyType, VaultStandin};
use testbed::{Imagegate, Output, run_with_timeout, temp_dir, tools, write_file};

const PASSWORD: &str = "kyverno-e2e";

fn push(registry: &Registry, repo_tag: &str, spec: &ImageSpec) -> (Layout, tempfile::TempDir) {
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "v1", spec);
    fixtures::push(&layout, registry, repo_tag);
    (layout, dir)
}

fn verify_policy(registry: &Registry, action: &str, entry: &str) -> String {
    format!(
        r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: verify-release-signature
  annotations:
    policies.kyverno.io/severity: high
spec:
  validationFailureAction: {action}
  rules:
    - name: verify-signature
      match:
        any:
          - resources:
              kinds: [Pod]
      verifyImages:
        - imageReferences:
            - "{host}/*"
          attestors:
            - entries:
                - {entry}
"#,
        host = registry.host(),
    )
}

fn check(registry: &Registry, image: &str, policy: &Path) -> Imagegate {
    Imagegate::new()
        .args([
            "--insecure-registry",
            &registry.host(),
            "check",
            &registry.image(image),
        ])
        .args(["--rules", "none", "--policy", &policy.display().to_string()])
}

fn with_env(mut ig: Imagegate, env: &[(&'static str, String)]) -> Imagegate {
    for (k, v) in env {
        ig = ig.env(k, v);
    }
    ig
}

#[test]
fn a_kms_policy_passes_an_image_signed_with_that_key_and_refuses_an_unsigned_one() {
    let registry = Registry::start();
    push(&registry, "signed:v1", &ImageSpec::rich());
    push(
        &registry,
        "unsigned:v1",
        &ImageSpec::rich().for_platform("arm64", Some("v8")),
    );
    let moto = Moto::start();
    let kms = moto.create_key("release");
    let dir = temp_dir();
    let policy = write_file(
        dir.path(),
        "policy.yaml",
        &verify_policy(
            &registry,
            "Enforce",
            "keys:\n                    kms: awskms:///alias/release\n                    rekor:\n                      ignoreTlog: true\n                    ctlog:\n                      ignoreSCT: true",
        ),
    );
    with_env(Imagegate::new(), &moto.env())
        .args([
            "--insecure-registry",
            &registry.host(),
            "sign",
            &registry.image("signed:v1"),
        ])
        .args(["--key", &format!("awskms:///{}", kms.alias)])
        .run()
        .expect_code(0);

    let out = with_env(check(&registry, "signed:v1", &policy), &moto.env()).run();
    out.expect_code(0);
    assert!(out.stdout.contains("(TOTAL: 0"), "{}", out.stdout);

    let out = with_env(check(&registry, "unsigned:v1", &policy), &moto.env()).run();
    out.expect_code(1);
    assert!(
        out.stdout.contains("verify-release-signature"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("no signatures found") || out.stdout.contains("no matching signatures"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("failed to verify image"),
        "Kyverno's wording: {}",
        out.stdout
    );
}

#[test]
fn a_hashivault_policy_is_judged_against_the_vault_stand_in() {
    // The Vault stand-in speaks the transit API with a real ECDSA key (no Vault server can be
    // installed here).
    let vault = VaultStandin::start();
    vault.add_key("transit", "cosign", KeyType::EcdsaP256);
    vault.add_key("transit", "other", KeyType::EcdsaP256);
    vault.add_token(
        "ci-token",
        &[
            ("transit/keys/*", &["read"]),
            ("transit/sign/cosign/*", &["update"]),
        ],
    );
    let env = vec![
        ("VAULT_ADDR", vault.addr()),
        ("VAULT_TOKEN", "ci-token".to_string()),
    ];
    let registry = Registry::start();
    push(&registry, "app:v1", &ImageSpec::rich());
    with_env(Imagegate::new(), &env)
        .args([
            "--insecure-registry",
            &registry.host(),
            "sign",
            &registry.image("app:v1"),
        ])
        .args(["--key", "hashivault://cosign"])
        .run()
        .expect_code(0);
    let dir = temp_dir();
    let entry = |key: &str| {
        format!(
            "keys:\n                    kms: hashivault://{key}\n                    rekor:\n                      ignoreTlog: true"
        )
    };
    let good = write_file(
        dir.path(),
        "good.yaml",
        &verify_policy(&registry, "Enforce", &entry("cosign")),
    );
    let other = write_file(
        dir.path(),
        "other.yaml",
        &verify_policy(&registry, "Enforce", &entry("other")),
    );
    with_env(check(&registry, "app:v1", &good), &env)
        .run()
        .expect_code(0);
    let out = with_env(check(&registry, "app:v1", &other), &env).run();
    out.expect_code(1);
    assert!(
        out.stdout.contains("no matching signatures"),
        "{}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("ci-token") && !out.stderr.contains("ci-token"),
        "the Vault token leaked"
    );
}

fn cosign(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(tools::cosign());
    cmd.env_clear()
        .env("HOME", std::env::temp_dir())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .args(args);
    run_with_timeout(cmd, Duration::from_secs(120))
}

fn cosign_keys(dir: &Path) -> (String, String) {
    let mut cmd = Command::new(tools::cosign());
    cmd.current_dir(dir).env("COSIGN_PASSWORD", PASSWORD).args([
        "generate-key-pair",
        "--output-key-prefix",
        "release",
    ]);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    assert_eq!(out.code, 0, "{}", out.stderr);
    (
        dir.join("release.key").display().to_string(),
        std::fs::read_to_string(dir.join("release.pub")).unwrap(),
    )
}

fn indent(pem: &str, spaces: usize) -> String {
    pem.lines()
        .map(|l| format!("{}{l}", " ".repeat(spaces)))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn public_keys_need_the_transparency_log_unless_the_policy_waives_it() {
    let registry = Registry::start();
    let (layout, _dir) = push(&registry, "app:v1", &ImageSpec::rich());
    let keys = temp_dir();
    let (key, public) = cosign_keys(keys.path());
    let out = cosign(
        &[
            "sign",
            "--yes",
            "--key",
            &key,
            "--tlog-upload=false",
            "--allow-http-registry",
            &registry.image(&format!("app@{}", layout.digest)),
        ],
        &[("COSIGN_PASSWORD", PASSWORD)],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);

    let strict = write_file(
        keys.path(),
        "strict.yaml",
        &verify_policy(
            &registry,
            "Enforce",
            &format!(
                "keys:\n                    publicKeys: |-\n{}",
                indent(&public, 22)
            ),
        ),
    );
    let out = check(&registry, "app:v1", &strict).run();
    out.expect_code(1);
    assert!(
        out.stdout.contains("transparency"),
        "says the tlog proof is missing: {}",
        out.stdout
    );
    assert!(out.stdout.contains("ignoreTlog"), "{}", out.stdout);

    let waived = write_file(
        keys.path(),
        "waived.yaml",
        &verify_policy(
            &registry,
            "Enforce",
            &format!(
                "keys:\n                    publicKeys: |-\n{}\n                    rekor:\n                      ignoreTlog: true",
                indent(&public, 22)
            ),
        ),
    );
    check(&registry, "app:v1", &waived).run().expect_code(0);
}

#[test]
fn attestation_conditions_read_what_cosign_attested() {
    let registry = Registry::start();
    let (approved_layout, _a) = push(&registry, "approved:v1", &ImageSpec::rich());
    let (rejected_layout, _b) = push(
        &registry,
        "rejected:v1",
        &ImageSpec::rich().for_platform("arm64", Some("v8")),
    );
    let keys = temp_dir();
    let (key, public) = cosign_keys(keys.path());
    for (layout, repo, approved) in [
        (&approved_layout, "approved", true),
        (&rejected_layout, "rejected", false),
    ] {
        let predicate = write_file(
            keys.path(),
            &format!("{repo}.json"),
            &format!(r#"{{"approved": {approved}, "reviewer": "sec-team"}}"#),
        );
        let out = cosign(
            &[
                "attest",
                "--yes",
                "--key",
                &key,
                "--tlog-upload=false",
                "--allow-http-registry",
                "--type",
                "https://example.com/review/v1",
                "--predicate",
                &predicate.display().to_string(),
                &registry.image(&format!("{repo}@{}", layout.digest)),
            ],
            &[("COSIGN_PASSWORD", PASSWORD)],
        );
        assert_eq!(out.code, 0, "cosign attest: {}", out.stderr);
    }
    let policy = write_file(
        keys.path(),
        "review.yaml",
        &format!(
            r#"apiVersion: kyverno.io/v1
kind: ClusterPolicy
metadata:
  name: require-security-review
spec:
  validationFailureAction: Enforce
  rules:
    - name: check-review
      match:
        any:
          - resources:
              kinds: [Pod]
      verifyImages:
        - imageReferences: ["{host}/*"]
          mutateDigest: true
          attestations:
            - type: https://example.com/review/v1
              attestors:
                - entries:
                    - keys:
                        publicKeys: |-
{pem}
                        rekor:
                          ignoreTlog: true
              conditions:
                - all:
                    - key: "{{{{ approved }}}}"
                      operator: Equals
                      value: true
"#,
            host = registry.host(),
            pem = indent(&public, 26)
        ),
    );
    check(&registry, "approved:v1", &policy)
        .run()
        .expect_code(0);
    let out = check(&registry, "rejected:v1", &policy).run();
    out.expect_code(1);
    assert!(
        out.stdout.contains("require-security-review"),
        "{}",
        out.stdout
    );
}

#[test]
fn audit_warns_enforce_fails_and_namespaces_decide_what_applies() {
    let registry = Registry::start();
    push(&registry, "app:v1", &ImageSpec::rich());
    let dir = temp_dir();
    let policy = |name: &str, kind: &str, namespace: &str, action: &str| {
        write_file(
            dir.path(),
            &format!("{name}.yaml"),
            &format!(
                r#"apiVersion: kyverno.io/v1
kind: {kind}
metadata:
  name: {name}
{namespace}
spec:
  validationFailureAction: {action}
  rules:
    - name: only-the-company-registry
      match:
        any:
          - resources:
              kinds: [Pod]
      validate:
        message: "Images must come from registry.gitlab.com/company."
        pattern:
          spec:
            containers:
              - image: "registry.gitlab.com/company/*"
"#
            ),
        )
    };
    let audit = policy("restrict-audit", "ClusterPolicy", "", "Audit");
    let out = check(&registry, "app:v1", &audit).run();
    out.expect_code(0);
    assert!(
        out.stdout.contains("restrict-audit"),
        "an Audit failure is reported: {}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("Images must come from registry.gitlab.com/company."),
        "{}",
        out.stdout
    );
    check(&registry, "app:v1", &audit)
        .arg("--audit-fails")
        .run()
        .expect_code(1);

    let enforce = policy("restrict-enforce", "ClusterPolicy", "", "Enforce");
    let out = check(&registry, "app:v1", &enforce).run();
    out.expect_code(1);
    assert!(
        out.stderr.contains("ERROR:\tPolicy \"restrict-enforce\""),
        "{}",
        out.stderr
    );

    // A namespaced Policy applies in its own namespace only.
    let prod = policy("restrict-prod", "Policy", "  namespace: prod", "Enforce");
    check(&registry, "app:v1", &prod).run().expect_code(0);
    check(&registry, "app:v1", &prod)
        .args(["--namespace", "prod"])
        .run()
        .expect_code(1);

    // A policy Kyverno itself would refuse is exit 2, naming the file, line and field.
    let broken = write_file(
        dir.path(),
        "broken.yaml",
        "apiVersion: kyverno.io/v1\nkind: ClusterPolicy\nmetadata:\n  name: broken\nspec:\n  rules:\n    - name: r\n      match:\n        any:\n          - resources: {kinds: [Pod]}\n      verifyImages:\n        - attestors:\n            - entries:\n                - keys: {}\n",
    );
    let out = check(&registry, "app:v1", &broken).run();
    out.expect_code(2);
    assert!(out.stderr.contains("broken.yaml:"), "{}", out.stderr);
    assert!(out.stderr.contains("verifyImages[0]"), "{}", out.stderr);
}

fn rekor_policy(registry: &Registry, dir: &Path, name: &str, public: &str, rekor: &str) -> PathBuf {
    write_file(
        dir,
        name,
        &verify_policy(
            registry,
            "Enforce",
            &format!(
                "keys:\n                    publicKeys: |-\n{}\n                    rekor:\n                      pubkey: |-\n{}",
                indent(public, 22),
                indent(rekor, 24)
            ),
        ),
    )
}

/// `cosign verify` trusting `rekor_key` for bundles (offline: the bundle is all it reads).
fn cosign_verify_with_log(image: &str, public_file: &Path, rekor_key: &Path) -> Output {
    cosign(
        &[
            "verify",
            "--allow-http-registry",
            "--key",
            &public_file.display().to_string(),
            image,
        ],
        &[(
            "SIGSTORE_REKOR_PUBLIC_KEY",
            &rekor_key.display().to_string(),
        )],
    )
}

#[test]
fn a_rekor_bundle_is_judged_offline_as_cosign_judges_it() {
    let registry = Registry::start();
    let (layout, _dir) = push(&registry, "app:v1", &ImageSpec::rich());
    let image = registry.image(&format!("app@{}", layout.digest));
    let work = temp_dir();
    let (key, public) = cosign_keys(work.path());
    let public_file = write_file(work.path(), "release.pub", &public);
    let log = TransparencyLog::new();
    let other_log = TransparencyLog::new();
    let log_key = log.write_public_key(work.path(), "rekor.pub");
    let other_log_key = other_log.write_public_key(work.path(), "other-rekor.pub");
    log.sign_into_log(
        &image,
        &key,
        PASSWORD,
        &public,
        work.path(),
        Recording::Faithfully,
    );

    // cosign accepts the bundle with the log's key, offline.
    let verified = cosign_verify_with_log(&image, &public_file, &log_key);
    assert_eq!(verified.code, 0, "{}", verified.stderr);
    assert!(
        verified
            .stderr
            .contains("transparency log was verified offline"),
        "{}",
        verified.stderr
    );
    // So does the policy naming that log's key.
    let policy = rekor_policy(
        &registry,
        work.path(),
        "log.yaml",
        &public,
        log.public_pem(),
    );
    let out = check(&registry, "app:v1", &policy).run();
    out.expect_code(0);

    // Another log's key: cosign refuses, and so does the policy, with cosign's reason.
    let refused = cosign_verify_with_log(&image, &public_file, &other_log_key);
    assert_ne!(refused.code, 0, "{}", refused.stderr);
    assert!(
        refused.stderr.contains("rekor log public key not found"),
        "{}",
        refused.stderr
    );
    let policy = rekor_policy(
        &registry,
        work.path(),
        "other.yaml",
        &public,
        other_log.public_pem(),
    );
    let out = check(&registry, "app:v1", &policy).run();
    out.expect_code(1);
    assert!(
        out.stdout
            .contains("rekor log public key not found for payload"),
        "{}",
        out.stdout
    );

    // `imagegate verify --rekor-public-key` makes the same offline check.
    let verify = |rekor: &Path| {
        Imagegate::new()
            .args(["--insecure-registry", &registry.host(), "verify", &image])
            .args(["--key", &public_file.display().to_string()])
            .args(["--rekor-public-key", &rekor.display().to_string()])
            .run()
    };
    let out = verify(&log_key);
    out.expect_code(0);
    assert!(
        out.stderr
            .contains("transparency-log bundles verified offline"),
        "{}",
        out.stderr
    );
    let out = verify(&other_log_key);
    out.expect_code(1);
    assert!(
        out.stderr
            .contains("rekor log public key not found for payload"),
        "{}",
        out.stderr
    );
    // The same through cosign's environment variable.
    Imagegate::new()
        .env("SIGSTORE_REKOR_PUBLIC_KEY", log_key.display().to_string())
        .args(["--insecure-registry", &registry.host(), "verify", &image])
        .args(["--key", &public_file.display().to_string()])
        .run()
        .expect_code(0);
    // A key file that cannot be read is bad input, named.
    let out = verify(&public_file.with_file_name("missing.pub"));
    out.expect_code(2);
    assert!(out.stderr.contains("missing.pub"), "{}", out.stderr);
}

#[test]
fn a_rekor_entry_for_another_payload_or_key_is_refused_as_cosign_refuses_it() {
    let registry = Registry::start();
    let work = temp_dir();
    let (key, public) = cosign_keys(work.path());
    let public_file = write_file(work.path(), "release.pub", &public);
    let (_, stranger_public) = {
        let dir = temp_dir();
        let keys = cosign_keys(dir.path());
        (dir, keys.1)
    };
    let log = TransparencyLog::new();
    let log_key = log.write_public_key(work.path(), "rekor.pub");
    let policy = rekor_policy(
        &registry,
        work.path(),
        "log.yaml",
        &public,
        log.public_pem(),
    );

    // cosign reads the entry before comparing it: the signature must verify over the hash the
    // entry records with the key it records, so a doctored entry fails there.
    let reason = "failed to extract signature from bundle: verifying signature";
    let cases = [
        ("payload", Recording::AnotherPayload),
        ("key", Recording::AnotherKey(&stranger_public)),
    ];
    for (repo, recording) in cases {
        let (layout, _dir) = push(&registry, &format!("{repo}:v1"), &ImageSpec::rich());
        let image = registry.image(&format!("{repo}@{}", layout.digest));
        let dir = temp_dir();
        log.sign_into_log(&image, &key, PASSWORD, &public, dir.path(), recording);

        let cosign_says = cosign_verify_with_log(&image, &public_file, &log_key);
        assert_ne!(
            cosign_says.code, 0,
            "cosign accepted: {}",
            cosign_says.stderr
        );
        assert!(
            cosign_says.stderr.contains(reason),
            "{}",
            cosign_says.stderr
        );

        let out = check(&registry, &format!("{repo}:v1"), &policy).run();
        out.expect_code(1);
        assert!(out.stdout.contains(reason), "{repo}: {}", out.stdout);
    }

    // A signature without a bundle: verify with a log key says what is missing.
    let (layout, _dir) = push(&registry, "plain:v1", &ImageSpec::rich());
    let image = registry.image(&format!("plain@{}", layout.digest));
    let signed = cosign(
        &[
            "sign",
            "--yes",
            "--key",
            &key,
            "--tlog-upload=false",
            "--allow-http-registry",
            &image,
        ],
        &[("COSIGN_PASSWORD", PASSWORD)],
    );
    assert_eq!(signed.code, 0, "{}", signed.stderr);
    let out = Imagegate::new()
        .args(["--insecure-registry", &registry.host(), "verify", &image])
        .args(["--key", &public_file.display().to_string()])
        .args(["--rekor-public-key", &log_key.display().to_string()])
        .run();
    out.expect_code(1);
    assert!(out.stderr.contains("has no Rekor bundle"), "{}", out.stderr);
}
