//! cosign 3 (Debian forky) as another independent implementation. By default it signs into
//! Sigstore bundles attached to the image as OCI referrers (docker-registry 2.8 has no referrers
//! API, so through the `sha256-<hex>` tag of the referrers tag schema), and its `verify` reads
//! those first, falling back to the legacy `.sig` tag only when an image has none. imagegate
//! verifies what it signs, it verifies what imagegate signs, and both give the same verdict.

mod testbed;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use testbed::fixtures::{self, ImageSpec, Layout};
use testbed::registry::Registry;
use testbed::stub::{Answer, Stub};
use testbed::{Imagegate, Output, run_with_timeout, temp_dir, tools};

const PASSWORD: &str = "cosign-3 interop";

fn cosign3(args: &[&str], home: &Path) -> Output {
    let mut cmd = Command::new(tools::cosign3());
    cmd.env_clear()
        .env("HOME", home)
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("COSIGN_PASSWORD", PASSWORD)
        .args(args);
    run_with_timeout(cmd, Duration::from_secs(120))
}

struct Bed {
    registry: Registry,
    layout: Layout,
    work: tempfile::TempDir,
    _images: tempfile::TempDir,
}

impl Bed {
    fn new() -> Bed {
        let registry = Registry::start();
        let images = temp_dir();
        let layout = fixtures::write_image(images.path(), "v1", &ImageSpec::rich());
        fixtures::push(&layout, &registry, "app:v1");
        Bed {
            registry,
            layout,
            work: temp_dir(),
            _images: images,
        }
    }

    fn pinned(&self) -> String {
        self.registry.image(&format!("app@{}", self.layout.digest))
    }

    /// A key pair made by imagegate (cosign reads it as its own).
    fn keys(&self, prefix: &str) -> (PathBuf, PathBuf) {
        let path = self.work.path().join(prefix);
        Imagegate::new()
            .env("COSIGN_PASSWORD", PASSWORD)
            .args([
                "generate-key-pair",
                "--output-key-prefix",
                &path.display().to_string(),
            ])
            .run()
            .expect_code(0);
        (
            self.work.path().join(format!("{prefix}.key")),
            self.work.path().join(format!("{prefix}.pub")),
        )
    }

    /// `cosign sign` with cosign 3's defaults (a Sigstore bundle as a referrer), with a
    /// signing config that names no transparency log or timestamp service (offline).
    fn cosign3_sign(&self, key: &Path, extra: &[&str]) {
        let config = self.work.path().join("signing-config.json");
        if !config.exists() {
            let out = cosign3(
                &[
                    "signing-config",
                    "create",
                    "--no-default-fulcio",
                    "--no-default-rekor",
                    "--no-default-tsa",
                    "--no-default-oidc",
                    "--out",
                    &config.display().to_string(),
                ],
                self.work.path(),
            );
            assert_eq!(out.code, 0, "{}", out.stderr);
        }
        let key = key.display().to_string();
        let config = config.display().to_string();
        let image = self.pinned();
        let mut args = vec![
            "sign",
            "--yes",
            "--key",
            key.as_str(),
            "--signing-config",
            config.as_str(),
            "--allow-http-registry",
        ];
        args.extend_from_slice(extra);
        args.push(&image);
        let out = cosign3(&args, self.work.path());
        assert_eq!(out.code, 0, "cosign 3 sign: {}", out.stderr);
    }

    fn cosign3_verify(&self, public: &Path) -> Output {
        cosign3(
            &[
                "verify",
                "--key",
                &public.display().to_string(),
                "--insecure-ignore-tlog=true",
                "--allow-http-registry",
                &self.pinned(),
            ],
            self.work.path(),
        )
    }

    fn verify(&self, public: &Path, extra: &[&str]) -> Output {
        Imagegate::new()
            .args(["--insecure-registry", &self.registry.host(), "verify"])
            .arg(self.registry.image("app:v1"))
            .args(["--key", &public.display().to_string()])
            .args(extra)
            .run()
    }

    fn tags(&self) -> Vec<String> {
        testbed::raw::tags(&self.registry.image("app"))
    }
}

#[test]
fn imagegate_verifies_the_bundles_cosign_3_signs() {
    let bed = Bed::new();
    let (key, public) = bed.keys("release");
    let (_, stranger) = bed.keys("stranger");
    bed.cosign3_sign(&key, &["-a", "team=web"]);
    // cosign 3 wrote a referrer, not a .sig tag.
    let tags = bed.tags();
    let referrers_tag = bed.layout.digest.replace(':', "-");
    assert!(tags.contains(&referrers_tag), "{tags:?}");
    assert!(!tags.iter().any(|t| t.ends_with(".sig")), "{tags:?}");

    let out = bed.verify(&public, &["-a", "team=web"]);
    out.expect_code(0);
    assert!(out.stderr.contains("Sigstore bundle(s)"), "{}", out.stderr);
    let printed: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(
        printed[0]["critical"]["image"]["docker-manifest-digest"],
        bed.layout.digest.as_str()
    );
    assert_eq!(printed[0]["optional"]["team"], "web");

    // What cosign refuses, imagegate refuses: another annotation, another key.
    let out = bed.verify(&public, &["-a", "team=database"]);
    out.expect_code(1);
    assert!(
        out.stderr.contains("missing or incorrect annotation"),
        "{}",
        out.stderr
    );
    let out = bed.verify(&stranger, &[]);
    out.expect_code(1);
    assert!(out.stderr.contains("invalid signature"), "{}", out.stderr);
    assert_ne!(bed.cosign3_verify(&stranger).code, 0);
    assert_eq!(bed.cosign3_verify(&public).code, 0);
}

#[test]
fn cosign_3_verifies_what_imagegate_signs_and_both_read_bundles_first() {
    let bed = Bed::new();
    let (legacy_key, legacy_public) = bed.keys("legacy");
    Imagegate::new()
        .env("COSIGN_PASSWORD", PASSWORD)
        .args(["--insecure-registry", &bed.registry.host(), "sign"])
        .arg(bed.registry.image("app:v1"))
        .args(["--key", &legacy_key.display().to_string()])
        .run()
        .expect_code(0);
    // No bundles yet: cosign 3 falls back to the .sig tag imagegate wrote.
    let out = bed.cosign3_verify(&legacy_public);
    assert_eq!(out.code, 0, "cosign 3 verify: {}", out.stderr);
    bed.verify(&legacy_public, &[]).expect_code(0);

    // Once a bundle is attached (by another key), both read only the bundles: the .sig
    // signature no longer counts, for cosign 3 and for imagegate alike.
    let (bundle_key, bundle_public) = bed.keys("bundle");
    bed.cosign3_sign(&bundle_key, &[]);
    assert_ne!(bed.cosign3_verify(&legacy_public).code, 0);
    let out = bed.verify(&legacy_public, &[]);
    out.expect_code(1);
    assert!(
        out.stderr
            .contains("the .sig tag is read only when there are none"),
        "{}",
        out.stderr
    );
    assert_eq!(bed.cosign3_verify(&bundle_public).code, 0);
    bed.verify(&bundle_public, &[]).expect_code(0);
}

#[test]
fn bundles_are_found_through_the_referrers_api_where_a_registry_has_it() {
    // docker-registry 2.8 has no referrers API. A stand-in registry that has one serves what
    // cosign 3 stored in the real one: the image manifest, the referrer and its bundle, and
    // answers GET /v2/app/referrers/<digest> with the index.
    let bed = Bed::new();
    let (key, public) = bed.keys("release");
    bed.cosign3_sign(&key, &[]);
    let repo = bed.registry.image("app");
    let index: serde_json::Value = serde_json::from_slice(&testbed::raw::manifest_bytes(&format!(
        "{repo}:{}",
        bed.layout.digest.replace(':', "-")
    )))
    .unwrap();
    let referrer_digest = index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let referrer = testbed::raw::manifest_bytes(&format!("{repo}@{referrer_digest}"));
    let layer: serde_json::Value = serde_json::from_slice(&referrer).unwrap();
    let bundle_digest = layer["layers"][0]["digest"].as_str().unwrap().to_string();
    let bundle = testbed::raw::blob(&repo, &bundle_digest);
    let image = testbed::raw::manifest_bytes(&bed.registry.image("app:v1"));
    // What the referrers API answers: the index, with the entry's artifactType as the
    // manifest declares it.
    let api_index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": referrer_digest,
            "size": referrer.len(),
            "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json",
        }],
    });
    let oci = |body: Vec<u8>, media_type: &str| {
        vec![Answer::new(200, body).header("Content-Type", media_type)]
    };
    let referrers_path = format!("/v2/app/referrers/{}", bed.layout.digest);
    let referrer_path = format!("/v2/app/manifests/{referrer_digest}");
    let blob_path = format!("/v2/app/blobs/{bundle_digest}");
    let stub = Stub::start(vec![
        (("GET", "/v2/"), vec![Answer::new(200, "{}")]),
        (
            ("GET", "/v2/app/manifests/v1"),
            oci(image, "application/vnd.oci.image.manifest.v1+json"),
        ),
        (
            ("GET", referrers_path.as_str()),
            oci(
                api_index.to_string().into_bytes(),
                "application/vnd.oci.image.index.v1+json",
            ),
        ),
        (
            ("GET", referrer_path.as_str()),
            oci(referrer, "application/vnd.oci.image.manifest.v1+json"),
        ),
        (("GET", blob_path.as_str()), vec![Answer::new(200, bundle)]),
    ]);
    let out = Imagegate::new()
        .args(["--insecure-registry", &stub.host(), "verify"])
        .arg(format!("{}/app:v1", stub.host()))
        .args(["--key", &public.display().to_string()])
        .run();
    out.expect_code(0);
    let requests = stub.requests();
    assert!(
        requests.iter().any(|r| r.contains(&referrers_path)),
        "{requests:?}"
    );
    assert!(
        !requests
            .iter()
            .any(|r| r.contains(".sig") || r.contains("sha256-")),
        "no fallback tag is read when the API answers: {requests:?}"
    );
}

#[test]
fn a_registry_that_cannot_list_referrers_is_read_the_old_way() {
    // Some registries answer the referrers API with 405 instead of 404. A stand-in registry
    // does so, and serves the .sig signature imagegate stored in the real one: verify falls
    // back to it, as cosign 3 falls back on any error looking for bundles.
    let bed = Bed::new();
    let (key, public) = bed.keys("release");
    Imagegate::new()
        .env("COSIGN_PASSWORD", PASSWORD)
        .args(["--insecure-registry", &bed.registry.host(), "sign"])
        .arg(bed.registry.image("app:v1"))
        .args(["--key", &key.display().to_string()])
        .run()
        .expect_code(0);
    let repo = bed.registry.image("app");
    let sig_tag = format!("{}.sig", bed.layout.digest.replace(':', "-"));
    let sig_manifest = testbed::raw::manifest_bytes(&format!("{repo}:{sig_tag}"));
    let parsed: serde_json::Value = serde_json::from_slice(&sig_manifest).unwrap();
    let payload_digest = parsed["layers"][0]["digest"].as_str().unwrap().to_string();
    let payload = testbed::raw::blob(&repo, &payload_digest);
    let image = testbed::raw::manifest_bytes(&bed.registry.image("app:v1"));

    let manifest = "application/vnd.oci.image.manifest.v1+json";
    let referrers_path = format!("/v2/app/referrers/{}", bed.layout.digest);
    let sig_path = format!("/v2/app/manifests/{sig_tag}");
    let blob_path = format!("/v2/app/blobs/{payload_digest}");
    let stub = Stub::start(vec![
        (("GET", "/v2/"), vec![Answer::new(200, "{}")]),
        (
            ("GET", "/v2/app/manifests/v1"),
            vec![Answer::new(200, image).header("Content-Type", manifest)],
        ),
        (
            ("GET", referrers_path.as_str()),
            vec![Answer::new(
                405,
                r#"{"errors":[{"code":"UNSUPPORTED","message":"not supported"}]}"#,
            )],
        ),
        (
            ("GET", sig_path.as_str()),
            vec![Answer::new(200, sig_manifest).header("Content-Type", manifest)],
        ),
        (("GET", blob_path.as_str()), vec![Answer::new(200, payload)]),
    ]);
    let out = Imagegate::new()
        .args(["--insecure-registry", &stub.host(), "verify"])
        .arg(format!("{}/app:v1", stub.host()))
        .args(["--key", &public.display().to_string()])
        .run();
    out.expect_code(0);
    assert!(
        out.stderr.contains("could not look for Sigstore bundles"),
        "{}",
        out.stderr
    );
}
