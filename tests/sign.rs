//! `imagegate sign`, `verify` and `generate-key-pair` against the real test bed, with cosign 2.5
//! and skopeo 1.18 as independent implementations: each verifies what the other signs.

mod testbed;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use testbed::fixtures::{self, ImageSpec, Layout};
use testbed::moto::Moto;
use testbed::raw::{self, RawLayer};
use testbed::registry::Registry;
use testbed::stub::{Answer, Stub};
use testbed::{Imagegate, Output, run_with_timeout, temp_dir, tools, write_file};

const PASSWORD: &str = "correct horse battery staple";

/// A plain-HTTP registry with the rich image pushed as app:v1.
fn registry_with_image() -> (Registry, Layout, tempfile::TempDir) {
    let registry = Registry::start();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "v1", &ImageSpec::rich());
    fixtures::push(&layout, &registry, "app:v1");
    (registry, layout, dir)
}

fn ig(registry: &Registry) -> Imagegate {
    Imagegate::new()
        .args(["--insecure-registry", &registry.host()])
        .env("COSIGN_PASSWORD", PASSWORD)
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

fn cosign_verify(registry: &Registry, image: &str, public_key: &Path) -> Output {
    cosign(
        &[
            "verify",
            "--key",
            &public_key.display().to_string(),
            "--insecure-ignore-tlog=true",
            "--allow-http-registry",
            &registry.image(image),
        ],
        &[],
    )
}

fn cosign_sign(registry: &Registry, image: &str, key: &Path, extra: &[&str]) -> Output {
    let key = key.display().to_string();
    let target = registry.image(image);
    let mut args = vec![
        "sign",
        "--yes",
        "--key",
        key.as_str(),
        "--tlog-upload=false",
        "--allow-http-registry",
    ];
    args.extend_from_slice(extra);
    args.push(&target);
    cosign(&args, &[("COSIGN_PASSWORD", PASSWORD)])
}

/// `imagegate generate-key-pair` into `dir/PREFIX.{key,pub}`.
fn imagegate_keys(dir: &Path, prefix: &str) -> (PathBuf, PathBuf) {
    let prefix_path = dir.join(prefix);
    Imagegate::new()
        .env("COSIGN_PASSWORD", PASSWORD)
        .args([
            "generate-key-pair",
            "--output-key-prefix",
            &prefix_path.display().to_string(),
        ])
        .run()
        .expect_code(0);
    (
        dir.join(format!("{prefix}.key")),
        dir.join(format!("{prefix}.pub")),
    )
}

/// `cosign generate-key-pair` into `dir/PREFIX.{key,pub}`.
fn cosign_keys(dir: &Path, prefix: &str) -> (PathBuf, PathBuf) {
    let mut cmd = Command::new(tools::cosign());
    cmd.current_dir(dir).env("COSIGN_PASSWORD", PASSWORD).args([
        "generate-key-pair",
        "--output-key-prefix",
        prefix,
    ]);
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    assert_eq!(out.code, 0, "cosign generate-key-pair: {}", out.stderr);
    (
        dir.join(format!("{prefix}.key")),
        dir.join(format!("{prefix}.pub")),
    )
}

fn sig_tag(layout: &Layout) -> String {
    format!("{}.sig", layout.digest.replace(':', "-"))
}

fn sig_layers(registry: &Registry, repo: &str, layout: &Layout) -> Vec<serde_json::Value> {
    raw::sig_manifest(&registry.image(&format!("{repo}:{}", sig_tag(layout))))
        .map(|m| m["layers"].as_array().cloned().unwrap_or_default())
        .unwrap_or_default()
}

#[test]
fn cosign_verifies_what_imagegate_signs_with_a_key_file_and_env() {
    let (registry, layout, _dir) = registry_with_image();
    let keys = temp_dir();
    let (key, public) = imagegate_keys(keys.path(), "ig");

    let out = ig(&registry)
        .args([
            "sign",
            &registry.image("app:v1"),
            "--key",
            &key.display().to_string(),
        ])
        .run();
    out.expect_code(0);
    assert!(out.stderr.contains("signing the digest"), "{}", out.stderr);
    let verified = cosign_verify(&registry, "app:v1", &public);
    assert_eq!(verified.code, 0, "cosign verify: {}", verified.stderr);
    assert!(verified.stdout.contains(&layout.digest));

    // The layout is cosign's: the payload names the repository, the config is cosign's config.
    let layers = sig_layers(&registry, "app", &layout);
    assert_eq!(layers.len(), 1);
    let payload = raw::blob(
        &registry.image("app"),
        layers[0]["digest"].as_str().unwrap(),
    );
    assert_eq!(
        String::from_utf8(payload).unwrap(),
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"{}"}},"image":{{"docker-manifest-digest":"{}"}},"type":"cosign container image signature"}},"optional":null}}"#,
            registry.image("app"),
            layout.digest
        )
    );

    // env://: the variable holds the encrypted PEM.
    let second = temp_dir();
    let (key2, public2) = imagegate_keys(second.path(), "env");
    ig(&registry)
        .env("SIGNING_KEY", std::fs::read_to_string(&key2).unwrap())
        .args([
            "sign",
            &registry.image("app:v1"),
            "--key",
            "env://SIGNING_KEY",
            "-a",
            "pipeline=42",
        ])
        .run()
        .expect_code(0);
    let verified = cosign(
        &[
            "verify",
            "--key",
            &public2.display().to_string(),
            "--insecure-ignore-tlog=true",
            "--allow-http-registry",
            "-a",
            "pipeline=42",
            &registry.image("app:v1"),
        ],
        &[],
    );
    assert_eq!(verified.code, 0, "cosign verify -a: {}", verified.stderr);
    // Both signatures are there: nothing was overwritten.
    assert_eq!(sig_layers(&registry, "app", &layout).len(), 2);
    assert_eq!(cosign_verify(&registry, "app:v1", &public).code, 0);
}

#[test]
fn the_config_blob_is_byte_identical_to_cosigns() {
    let (registry, layout, _dir) = registry_with_image();
    let keys = temp_dir();
    let (cosign_key, _) = cosign_keys(keys.path(), "c");
    let (ig_key, _) = imagegate_keys(keys.path(), "i");
    // The same payload (same image, same docker-reference) signed into two repositories.
    let image = registry.image(&format!("app@{}", layout.digest));
    let out = cosign(
        &[
            "sign",
            "--yes",
            "--key",
            &cosign_key.display().to_string(),
            "--tlog-upload=false",
            "--allow-http-registry",
            &image,
        ],
        &[
            ("COSIGN_PASSWORD", PASSWORD),
            ("COSIGN_REPOSITORY", &registry.image("by-cosign")),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    ig(&registry)
        .env("COSIGN_REPOSITORY", registry.image("by-imagegate"))
        .args(["sign", &image, "--key", &ig_key.display().to_string()])
        .run()
        .expect_code(0);
    let config_of = |repo: &str| {
        let manifest =
            raw::sig_manifest(&registry.image(&format!("{repo}:{}", sig_tag(&layout)))).unwrap();
        let digest = manifest["config"]["digest"].as_str().unwrap().to_string();
        (manifest, raw::blob(&registry.image(repo), &digest))
    };
    let (cosign_manifest, cosign_config) = config_of("by-cosign");
    let (ig_manifest, ig_config) = config_of("by-imagegate");
    assert_eq!(
        String::from_utf8(ig_config).unwrap(),
        String::from_utf8(cosign_config).unwrap()
    );
    assert_eq!(ig_manifest["mediaType"], cosign_manifest["mediaType"]);
    assert_eq!(
        ig_manifest["layers"][0]["digest"], cosign_manifest["layers"][0]["digest"],
        "same payload bytes"
    );
    assert_eq!(
        ig_manifest["layers"][0]["mediaType"],
        cosign_manifest["layers"][0]["mediaType"]
    );
}

#[test]
fn imagegate_verifies_what_cosign_signs_and_keeps_cosigns_signature() {
    let (registry, layout, _dir) = registry_with_image();
    let keys = temp_dir();
    let (cosign_key, cosign_pub) = cosign_keys(keys.path(), "cosign");
    let out = cosign_sign(
        &registry,
        &format!("app@{}", layout.digest),
        &cosign_key,
        &["-a", "team=web"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);

    let out = ig(&registry)
        .args([
            "verify",
            &registry.image("app:v1"),
            "--key",
            &cosign_pub.display().to_string(),
            "-a",
            "team=web",
        ])
        .run();
    out.expect_code(0);
    let payloads: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(payloads[0]["optional"]["team"], "web");

    // A cosign key loads in imagegate: sign with it, after cosign's own signature.
    let (ig_key, ig_pub) = imagegate_keys(keys.path(), "ig");
    ig(&registry)
        .args([
            "sign",
            &registry.image("app:v1"),
            "--key",
            &ig_key.display().to_string(),
        ])
        .run()
        .expect_code(0);
    assert_eq!(sig_layers(&registry, "app", &layout).len(), 2);
    assert_eq!(
        cosign_verify(&registry, "app:v1", &cosign_pub).code,
        0,
        "cosign's signature survived"
    );
    assert_eq!(cosign_verify(&registry, "app:v1", &ig_pub).code, 0);
    // Signing again with the same key and payload adds nothing (cosign's duplicate rule).
    let out = ig(&registry)
        .args([
            "sign",
            &registry.image("app:v1"),
            "--key",
            &ig_key.display().to_string(),
        ])
        .run();
    out.expect_code(0);
    assert!(
        out.stderr.contains("already signed with this key"),
        "{}",
        out.stderr
    );
    assert_eq!(sig_layers(&registry, "app", &layout).len(), 2);

    // A cosign-generated key signs in imagegate too, and an imagegate key signs in cosign.
    let out = cosign_sign(&registry, "app:v1", &ig_key, &[]);
    assert_eq!(out.code, 0, "cosign with an imagegate key: {}", out.stderr);
    ig(&registry)
        .args([
            "sign",
            &registry.image("app:v1"),
            "--key",
            &cosign_key.display().to_string(),
            "-a",
            "by=imagegate",
        ])
        .run()
        .expect_code(0);
    ig(&registry)
        .args([
            "verify",
            &registry.image("app:v1"),
            "--key",
            &cosign_pub.display().to_string(),
            "--key",
            &ig_pub.display().to_string(),
            "--require-all-keys",
        ])
        .run()
        .expect_code(0);
}

#[test]
fn skopeo_accepts_imagegate_signatures_and_imagegate_accepts_skopeos() {
    let (registry, layout, dir) = registry_with_image();
    let keys = temp_dir();
    let (ig_key, ig_pub) = imagegate_keys(keys.path(), "ig");
    ig(&registry)
        .args([
            "sign",
            &registry.image("app:v1"),
            "--key",
            &ig_key.display().to_string(),
        ])
        .run()
        .expect_code(0);

    // skopeo 1.18 reads sigstore attachments with a sigstoreSigned policy.
    let conf = temp_dir();
    let registries_d = conf.path().join("registries.d");
    std::fs::create_dir_all(&registries_d).unwrap();
    write_file(
        &registries_d,
        "test.yaml",
        &format!(
            "docker:\n  {}:\n    use-sigstore-attachments: true\n",
            registry.host()
        ),
    );
    let policy = |public: &Path| {
        write_file(
            conf.path(),
            "policy.json",
            &format!(
                r#"{{"default":[{{"type":"reject"}}],"transports":{{"docker":{{"{}":[{{"type":"sigstoreSigned","keyPath":"{}","signedIdentity":{{"type":"matchRepository"}}}}]}}}}}}"#,
                registry.image("app"),
                public.display()
            ),
        )
    };
    let skopeo_copy = |policy: &Path, source: &str| {
        let mut cmd = Command::new(tools::skopeo_sigstore());
        cmd.args([
            "--policy",
            &policy.display().to_string(),
            "--registries.d",
            &registries_d.display().to_string(),
        ])
        .args([
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{source}"),
        ])
        .arg(format!("dir:{}", temp_dir().keep().display()));
        run_with_timeout(cmd, Duration::from_secs(60))
    };
    let accepted = skopeo_copy(&policy(&ig_pub), &registry.image("app:v1"));
    assert_eq!(
        accepted.code, 0,
        "skopeo refused imagegate's signature: {}",
        accepted.stderr
    );
    let (_, other_pub) = imagegate_keys(keys.path(), "other");
    let refused = skopeo_copy(&policy(&other_pub), &registry.image("app:v1"));
    assert_ne!(
        refused.code, 0,
        "skopeo must refuse a signature by another key"
    );

    // skopeo signs (with a cosign-format key) while copying; imagegate verifies it.
    let (cosign_key, cosign_pub) = cosign_keys(keys.path(), "for-skopeo");
    let passphrase = write_file(keys.path(), "passphrase", PASSWORD);
    let mut cmd = Command::new(tools::skopeo_sigstore());
    cmd.args(["--registries.d", &registries_d.display().to_string()])
        .args(["copy", "--dest-tls-verify=false", "--preserve-digests"])
        .args([
            "--sign-by-sigstore-private-key",
            &cosign_key.display().to_string(),
        ])
        .args(["--sign-passphrase-file", &passphrase.display().to_string()])
        .arg(format!("oci:{}:v1", dir.path().display()))
        .arg(format!("docker://{}", registry.image("app:skopeo-signed")));
    let signed = run_with_timeout(cmd, Duration::from_secs(60));
    assert_eq!(signed.code, 0, "skopeo signing: {}", signed.stderr);
    let out = ig(&registry)
        .args([
            "verify",
            &registry.image("app:skopeo-signed"),
            "--key",
            &cosign_pub.display().to_string(),
        ])
        .args(["--identity", &registry.image("app")])
        .run();
    out.expect_code(0);
    assert!(out.stdout.contains(&layout.digest));
}

#[test]
fn aws_kms_through_moto_signs_what_cosign_verifies() {
    let (registry, layout, _dir) = registry_with_image();
    let moto = Moto::start();
    let kms = moto.create_key("imagegate-test");
    let keys = temp_dir();
    let public = write_file(keys.path(), "kms.pub", &kms.public_pem);

    for key in [
        format!("awskms:///{}", kms.alias),
        format!("awskms:///{}", kms.arn),
    ] {
        let mut run = ig(&registry).args(["sign", &registry.image("app:v1"), "--key", &key]);
        for (k, v) in moto.env() {
            run = run.env(k, v);
        }
        let out = run.run();
        out.expect_code(0);
        for (_, v) in moto.env() {
            if v.starts_with("testing-secret") {
                assert!(
                    !out.stderr.contains(&v) && !out.stdout.contains(&v),
                    "the AWS secret leaked"
                );
            }
        }
    }
    let verified = cosign_verify(&registry, "app:v1", &public);
    assert_eq!(
        verified.code, 0,
        "cosign verify with the KMS public key: {}",
        verified.stderr
    );
    // Same key, same payload: the second signing (by ARN) was recognised as a duplicate.
    assert_eq!(sig_layers(&registry, "app", &layout).len(), 1);

    // imagegate verifies with the KMS key itself.
    let mut run = ig(&registry).args([
        "verify",
        &registry.image("app:v1"),
        "--key",
        &format!("awskms:///{}", kms.alias),
    ]);
    for (k, v) in moto.env() {
        run = run.env(k, v);
    }
    run.run().expect_code(0);

    // A key that does not exist: the gate could not finish (exit 3), and says what failed.
    let mut run = ig(&registry).args([
        "sign",
        &registry.image("app:v1"),
        "--key",
        "awskms:///alias/nope",
    ]);
    for (k, v) in moto.env() {
        run = run.env(k, v);
    }
    let out = run.run();
    out.expect_code(3);
    assert!(
        out.stderr.contains("GetPublicKey for alias/nope failed"),
        "{}",
        out.stderr
    );
}

#[test]
fn dry_run_writes_nothing() {
    let (registry, layout, _dir) = registry_with_image();
    let keys = temp_dir();
    let (key, _) = imagegate_keys(keys.path(), "ig");
    let before = raw::tags(&registry.image("app"));
    let out = ig(&registry)
        .args([
            "sign",
            "--dry-run",
            &registry.image("app:v1"),
            "--key",
            &key.display().to_string(),
        ])
        .run();
    out.expect_code(0);
    assert!(out.stdout.contains(&sig_tag(&layout)), "{}", out.stdout);
    assert!(
        out.stdout.contains("\"docker-manifest-digest\""),
        "{}",
        out.stdout
    );
    assert_eq!(
        raw::tags(&registry.image("app")),
        before,
        "no tag was added"
    );
    assert!(raw::sig_manifest(&registry.image(&format!("app:{}", sig_tag(&layout)))).is_none());
}

#[test]
fn passwords_are_needed_right_and_never_printed() {
    let (registry, _layout, _dir) = registry_with_image();
    let keys = temp_dir();
    let (key, _) = imagegate_keys(keys.path(), "ig");
    // No COSIGN_PASSWORD and no terminal: exit 2, saying what to set.
    let out = Imagegate::new()
        .args([
            "--insecure-registry",
            &registry.host(),
            "sign",
            &registry.image("app:v1"),
        ])
        .args(["--key", &key.display().to_string()])
        .run();
    out.expect_code(2);
    assert!(out.stderr.contains("set COSIGN_PASSWORD"), "{}", out.stderr);
    // A wrong password: exit 2, and the password is not echoed.
    let wrong = "Wr0ng-Passw0rd-Value";
    let out = Imagegate::new()
        .env("COSIGN_PASSWORD", wrong)
        .args([
            "--insecure-registry",
            &registry.host(),
            "-vv",
            "sign",
            &registry.image("app:v1"),
        ])
        .args(["--key", &key.display().to_string()])
        .run();
    out.expect_code(2);
    assert!(out.stderr.contains("wrong password"), "{}", out.stderr);
    assert!(!out.stderr.contains(wrong) && !out.stdout.contains(wrong));
    // generate-key-pair does not overwrite.
    let out = Imagegate::new()
        .env("COSIGN_PASSWORD", PASSWORD)
        .args([
            "generate-key-pair",
            "--output-key-prefix",
            &keys.path().join("ig").display().to_string(),
        ])
        .run();
    out.expect_code(2);
    assert!(out.stderr.contains("already exists"), "{}", out.stderr);
}

/// Signs `payload` with the imagegate key at `key` (through cosign's own `sign-blob`, an
/// independent signer) and returns the base64 signature.
fn sign_blob(key: &Path, payload: &[u8]) -> String {
    let dir = temp_dir();
    let file = dir.path().join("payload.json");
    std::fs::write(&file, payload).unwrap();
    let out = cosign(
        &[
            "sign-blob",
            "--yes",
            "--key",
            &key.display().to_string(),
            "--tlog-upload=false",
            &file.display().to_string(),
        ],
        &[("COSIGN_PASSWORD", PASSWORD)],
    );
    assert_eq!(out.code, 0, "cosign sign-blob: {}", out.stderr);
    out.stdout.trim().to_string()
}

fn payload_for(registry: &Registry, digest: &str) -> Vec<u8> {
    format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#,
        registry.image("app")
    )
    .into_bytes()
}

fn verify_expecting_failure(registry: &Registry, public: &Path, image: &str) -> Output {
    let out = ig(registry)
        .args([
            "verify",
            &registry.image(image),
            "--key",
            &public.display().to_string(),
        ])
        .run();
    out.expect_code(1);
    out
}

#[test]
fn hostile_signature_images_are_rejected_with_reasons() {
    let (registry, layout, _dir) = registry_with_image();
    let other_dir = temp_dir();
    let other = fixtures::write_image(
        other_dir.path(),
        "v2",
        &ImageSpec::rich().for_platform("arm64", Some("v8")),
    );
    fixtures::push(&other, &registry, "app:v2");
    let keys = temp_dir();
    let (key, public) = imagegate_keys(keys.path(), "ig");
    let (_, stranger_pub) = imagegate_keys(keys.path(), "stranger");
    let sig_image = registry.image(&format!("app:{}", sig_tag(&layout)));
    let good_payload = payload_for(&registry, &layout.digest);
    let good_sig = sign_blob(&key, &good_payload);

    // Unsigned: no signatures found.
    let out = verify_expecting_failure(&registry, &public, "app:v1");
    assert!(out.stderr.contains("no signatures found"), "{}", out.stderr);

    // A valid signature whose payload names the other image's digest.
    let foreign_payload = payload_for(&registry, &other.digest);
    raw::push_sig_image(
        &sig_image,
        &[RawLayer::signature(
            &foreign_payload,
            &sign_blob(&key, &foreign_payload),
        )],
    );
    let out = verify_expecting_failure(&registry, &public, "app:v1");
    assert!(
        out.stderr.contains(&format!(
            "the payload signs {}, not this image's",
            other.digest
        )),
        "{}",
        out.stderr
    );

    // A signature annotation that belongs to another payload.
    raw::push_sig_image(
        &sig_image,
        &[RawLayer::signature(
            &good_payload,
            &sign_blob(&key, &foreign_payload),
        )],
    );
    let out = verify_expecting_failure(&registry, &public, "app:v1");
    assert!(out.stderr.contains("invalid signature"), "{}", out.stderr);

    // Garbage base64.
    raw::push_sig_image(
        &sig_image,
        &[RawLayer::signature(&good_payload, "!!! not base64 !!!")],
    );
    let out = verify_expecting_failure(&registry, &public, "app:v1");
    assert!(out.stderr.contains("not valid base64"), "{}", out.stderr);

    // An oversized payload is not even read.
    let mut huge = RawLayer::signature(&vec![b' '; 200 * 1024], &good_sig);
    huge.annotations.clear();
    huge.annotations.insert(
        "dev.cosignproject.cosign/signature".into(),
        good_sig.clone(),
    );
    raw::push_sig_image(&sig_image, &[huge]);
    let out = verify_expecting_failure(&registry, &public, "app:v1");
    assert!(
        out.stderr.contains("imagegate reads at most 131072"),
        "{}",
        out.stderr
    );

    // 2000 layers: refused outright (cosign's 1000-layer cap).
    let many: Vec<RawLayer> = (0..2000)
        .map(|_| RawLayer::signature(&good_payload, &good_sig))
        .collect();
    raw::push_sig_image(&sig_image, &many);
    let out = ig(&registry)
        .args([
            "verify",
            &registry.image("app:v1"),
            "--key",
            &public.display().to_string(),
        ])
        .run();
    assert_ne!(out.code, 0);
    assert!(out.stderr.contains("has 2000 layers"), "{}", out.stderr);

    // The wrong key, with one good signature in place.
    raw::push_sig_image(&sig_image, &[RawLayer::signature(&good_payload, &good_sig)]);
    let out = verify_expecting_failure(&registry, &stranger_pub, "app:v1");
    assert!(
        out.stderr.contains("no matching signatures"),
        "{}",
        out.stderr
    );
    ig(&registry)
        .args([
            "verify",
            &registry.image("app:v1"),
            "--key",
            &public.display().to_string(),
        ])
        .run()
        .expect_code(0);
}

#[test]
fn signatures_elsewhere_count_only_with_cosign_repository() {
    let (registry, _layout, _dir) = registry_with_image();
    let keys = temp_dir();
    let (key, public) = imagegate_keys(keys.path(), "ig");
    let elsewhere = registry.image("signatures");
    ig(&registry)
        .env("COSIGN_REPOSITORY", &elsewhere)
        .args([
            "sign",
            &registry.image("app:v1"),
            "--key",
            &key.display().to_string(),
        ])
        .run()
        .expect_code(0);
    let out = verify_expecting_failure(&registry, &public, "app:v1");
    assert!(out.stderr.contains("no signatures found"), "{}", out.stderr);
    ig(&registry)
        .env("COSIGN_REPOSITORY", &elsewhere)
        .args([
            "verify",
            &registry.image("app:v1"),
            "--key",
            &public.display().to_string(),
        ])
        .run()
        .expect_code(0);
    // cosign agrees on where they are.
    let verified = cosign(
        &[
            "verify",
            "--key",
            &public.display().to_string(),
            "--insecure-ignore-tlog=true",
            "--allow-http-registry",
            &registry.image("app:v1"),
        ],
        &[("COSIGN_REPOSITORY", &elsewhere)],
    );
    assert_eq!(verified.code, 0, "{}", verified.stderr);
}

#[test]
fn rsa_and_ed25519_keys_sign_what_cosign_verifies() {
    let (registry, _layout, _dir) = registry_with_image();
    let keys = temp_dir();
    for (name, args) in [
        (
            "rsa",
            vec![
                "genpkey",
                "-algorithm",
                "RSA",
                "-pkeyopt",
                "rsa_keygen_bits:2048",
            ],
        ),
        ("ed25519", vec!["genpkey", "-algorithm", "ed25519"]),
    ] {
        let key = keys.path().join(format!("{name}.key"));
        let public = keys.path().join(format!("{name}.pub"));
        let status = Command::new(tools::openssl())
            .args(&args)
            .arg("-out")
            .arg(&key)
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        let status = Command::new(tools::openssl())
            .args(["pkey", "-pubout", "-in"])
            .arg(&key)
            .arg("-out")
            .arg(&public)
            .status()
            .unwrap();
        assert!(status.success());
        ig(&registry)
            .args([
                "sign",
                &registry.image("app:v1"),
                "--key",
                &key.display().to_string(),
            ])
            .run()
            .expect_code(0);
        let verified = cosign_verify(&registry, "app:v1", &public);
        assert_eq!(
            verified.code, 0,
            "cosign verify with the {name} key: {}",
            verified.stderr
        );
        ig(&registry)
            .args([
                "verify",
                &registry.image("app:v1"),
                "--key",
                &public.display().to_string(),
            ])
            .run()
            .expect_code(0);
    }
}

#[test]
fn a_layer_whose_blob_does_not_match_its_digest_is_refused() {
    // A stand-in registry: a real one never serves a blob under another blob's digest; a
    // compromised or broken one could.
    let keys = temp_dir();
    let (key, public) = imagegate_keys(keys.path(), "ig");
    let image_manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let image_digest = testbed::sha256(image_manifest);
    let stub_host = "127.0.0.1:PORT";
    let payload = format!(
        r#"{{"critical":{{"identity":{{"docker-reference":"{stub_host}/app"}},"image":{{"docker-manifest-digest":"{image_digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
    );
    let signature = sign_blob(&key, payload.as_bytes());
    let payload_digest = testbed::sha256(payload.as_bytes());
    let sig_manifest = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{{"mediaType":"application/vnd.oci.image.config.v1+json","size":2,"digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}},"layers":[{{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":{},"digest":"{payload_digest}","annotations":{{"dev.cosignproject.cosign/signature":"{signature}"}}}}]}}"#,
        payload.len()
    );
    let sig_path = format!("/v2/app/manifests/{}.sig", image_digest.replace(':', "-"));
    let tampered = payload.replace(
        "cosign container image signature",
        "cosign container image signaturX",
    );
    let manifest_type = "application/vnd.oci.image.manifest.v1+json";
    let stub = Stub::start(vec![
        (("GET", "/v2/"), vec![Answer::new(200, "{}")]),
        (
            ("GET", "/v2/app/manifests/v1"),
            vec![Answer::new(200, image_manifest.to_vec()).header("Content-Type", manifest_type)],
        ),
        (
            ("GET", sig_path.as_str()),
            vec![Answer::new(200, sig_manifest.into_bytes()).header("Content-Type", manifest_type)],
        ),
        (
            ("GET", &format!("/v2/app/blobs/{payload_digest}")),
            vec![Answer::new(200, tampered.into_bytes())],
        ),
    ]);
    // The payload names the stand-in's host; it only matters for --identity, not used here.
    let _ = stub_host;
    let out = Imagegate::new()
        .args(["--insecure-registry", &stub.host(), "--retries", "1"])
        .args([
            "verify",
            &format!("{}/app:v1", stub.host()),
            "--key",
            &public.display().to_string(),
        ])
        .run();
    out.expect_code(1);
    assert!(
        out.stderr.contains("does not match its digest"),
        "{}",
        out.stderr
    );
    assert!(
        !out.stderr.contains("trying again"),
        "bad content is not retried: {}",
        out.stderr
    );
}
