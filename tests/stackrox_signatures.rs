//! StackRox's `Image Signature Verified By`, end to end against the test bed, decided as
//! StackRox's cosign verifier decides it: `.sig` signatures (with their Rekor bundles when the
//! integration checks the transparency log) and cosign 3's Sigstore bundles, read from the
//! registry, verified with the integration's keys.

mod testbed;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use testbed::fixtures::{self, ImageSpec, Layout};
use testbed::registry::Registry;
use testbed::rekor_standin::{Recording, TransparencyLog};
use testbed::stub::{Answer, Stub};
use testbed::{Imagegate, Output, run_with_timeout, temp_dir, tools, write_file};

const PASSWORD: &str = "stackrox signatures";
const ID_PLAIN: &str = "io.stackrox.signatureintegration.0a0a0a0a-0000-4000-8000-000000000001";
const ID_LOGGED: &str = "io.stackrox.signatureintegration.0a0a0a0a-0000-4000-8000-000000000002";
const ID_OTHER_LOG: &str = "io.stackrox.signatureintegration.0a0a0a0a-0000-4000-8000-000000000003";

struct Bed {
    registry: Registry,
    work: tempfile::TempDir,
    key: PathBuf,
    public: String,
    _images: tempfile::TempDir,
}

impl Bed {
    fn new() -> Bed {
        let registry = Registry::start();
        let work = temp_dir();
        let prefix = work.path().join("release");
        Imagegate::new()
            .env("COSIGN_PASSWORD", PASSWORD)
            .args([
                "generate-key-pair",
                "--output-key-prefix",
                &prefix.display().to_string(),
            ])
            .run()
            .expect_code(0);
        let public = std::fs::read_to_string(work.path().join("release.pub")).unwrap();
        Bed {
            registry,
            key: work.path().join("release.key"),
            public,
            work,
            _images: temp_dir(),
        }
    }

    fn push(&self, repo: &str) -> Layout {
        let dir = self._images.path().join(repo);
        std::fs::create_dir_all(&dir).unwrap();
        let layout = fixtures::write_image(&dir, "v1", &ImageSpec::rich());
        fixtures::push(&layout, &self.registry, &format!("{repo}:v1"));
        layout
    }

    /// Integrations: the release key without the log, with this log (offline), and with
    /// another log.
    fn integrations(&self, log: &TransparencyLog, other: &TransparencyLog) -> PathBuf {
        let keys = serde_json::json!({"publicKeys": [{"name": "release", "publicKeyPemEnc": self.public}]});
        let logged = |id: &str, log: &TransparencyLog| {
            serde_json::json!({"id": id, "name": id, "cosign": keys,
                "transparencyLog": {"enabled": true, "validateOffline": true, "publicKeyPemEnc": log.public_pem()}})
        };
        write_file(
            self.work.path(),
            "integrations.json",
            &serde_json::json!({"integrations": [
                {"id": ID_PLAIN, "name": "plain", "cosign": keys},
                logged(ID_LOGGED, log),
                logged(ID_OTHER_LOG, other),
            ]})
            .to_string(),
        )
    }

    /// `imagegate check` of REPO:v1 against a policy requiring `integration`.
    fn check(&self, repo: &str, integration: &str, integrations: &Path) -> Output {
        let policy = write_file(
            self.work.path(),
            "policy.json",
            &serde_json::json!({
                "name": "Signed by the release key",
                "severity": "HIGH_SEVERITY",
                "categories": ["Supply Chain Security"],
                "lifecycleStages": ["BUILD"],
                "enforcementActions": ["FAIL_BUILD_ENFORCEMENT"],
                "policyVersion": "1.1",
                "policySections": [{"policyGroups": [{"fieldName": "Image Signature Verified By", "values": [{"value": integration}]}]}],
            })
            .to_string(),
        );
        Imagegate::new()
            .args(["--insecure-registry", &self.registry.host(), "check"])
            .arg(self.registry.image(&format!("{repo}:v1")))
            .args(["--rules", &policy.display().to_string()])
            .args([
                "--signature-integrations",
                &integrations.display().to_string(),
            ])
            .run()
    }
}

#[test]
fn the_integrations_transparency_log_decides_with_the_rekor_bundle() {
    let bed = Bed::new();
    let layout = bed.push("logged");
    let log = TransparencyLog::new();
    let other = TransparencyLog::new();
    let integrations = bed.integrations(&log, &other);
    let image = bed.registry.image(&format!("logged@{}", layout.digest));
    log.sign_into_log(
        &image,
        &bed.key.display().to_string(),
        PASSWORD,
        &bed.public,
        bed.work.path(),
        Recording::Faithfully,
    );
    bed.check("logged", ID_PLAIN, &integrations).expect_code(0);
    bed.check("logged", ID_LOGGED, &integrations).expect_code(0);
    let out = bed.check("logged", ID_OTHER_LOG, &integrations);
    out.expect_code(1);
    assert!(
        out.stdout
            .contains("Image signature is not verified by the specified signature integration(s)"),
        "{}",
        out.stdout
    );

    // A signature without a bundle: enough without the log, not with it (offline).
    let plain = bed.push("plain");
    Imagegate::new()
        .env("COSIGN_PASSWORD", PASSWORD)
        .args(["--insecure-registry", &bed.registry.host(), "sign"])
        .arg(bed.registry.image(&format!("plain@{}", plain.digest)))
        .args(["--key", &bed.key.display().to_string()])
        .run()
        .expect_code(0);
    bed.check("plain", ID_PLAIN, &integrations).expect_code(0);
    bed.check("plain", ID_LOGGED, &integrations).expect_code(1);
}

#[test]
fn cosign_3_bundles_count_for_stackrox() {
    let bed = Bed::new();
    let layout = bed.push("bundled");
    let log = TransparencyLog::new();
    let integrations = bed.integrations(&log, &TransparencyLog::new());
    let unsigned = bed.check("bundled", ID_PLAIN, &integrations);
    unsigned.expect_code(1);

    // cosign 3 signs into a Sigstore bundle (a referrer), offline: no transparency log.
    let config = bed.work.path().join("signing-config.json");
    let cosign3 = |args: &[&str]| {
        let mut cmd = Command::new(tools::cosign3());
        cmd.env_clear()
            .env("HOME", bed.work.path())
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("COSIGN_PASSWORD", PASSWORD)
            .args(args);
        let out = run_with_timeout(cmd, Duration::from_secs(120));
        assert_eq!(out.code, 0, "cosign 3 {}: {}", args[0], out.stderr);
    };
    cosign3(&[
        "signing-config",
        "create",
        "--no-default-fulcio",
        "--no-default-rekor",
        "--no-default-tsa",
        "--no-default-oidc",
        "--out",
        &config.display().to_string(),
    ]);
    cosign3(&[
        "sign",
        "--yes",
        "--key",
        &bed.key.display().to_string(),
        "--signing-config",
        &config.display().to_string(),
        "--allow-http-registry",
        &bed.registry.image(&format!("bundled@{}", layout.digest)),
    ]);
    // docker-registry has no referrers API, so the bundle is listed under the referrers tag
    // schema, whose index entry cosign types `application/vnd.oci.empty.v1+json`. StackRox keeps
    // only entries typed as bundles: it does not see this signature, and neither does the check.
    bed.check("bundled", ID_PLAIN, &integrations).expect_code(1);

    // A registry with the referrers API types the entry from the manifest. A stand-in serves
    // what cosign 3 stored in the real registry, with that API.
    let repo = bed.registry.image("bundled");
    let raw = |reference: &str| testbed::raw::manifest_bytes(&format!("{repo}{reference}"));
    let tag_index: serde_json::Value =
        serde_json::from_slice(&raw(&format!(":{}", layout.digest.replace(':', "-")))).unwrap();
    let referrer_digest = tag_index["manifests"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let referrer = raw(&format!("@{referrer_digest}"));
    let referrer_json: serde_json::Value = serde_json::from_slice(&referrer).unwrap();
    let bundle_digest = referrer_json["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let image = raw(":v1");
    let image_json: serde_json::Value = serde_json::from_slice(&image).unwrap();
    let config_digest = image_json["config"]["digest"].as_str().unwrap().to_string();
    let api_index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": referrer_digest,
            "size": referrer.len(),
            "artifactType": referrer_json["artifactType"],
        }],
    });
    let manifest_type = "application/vnd.oci.image.manifest.v1+json";
    let answer = |body: Vec<u8>, media_type: &str| {
        vec![Answer::new(200, body).header("Content-Type", media_type)]
    };
    let paths = [
        format!("/v2/bundled/manifests/{}", layout.digest),
        format!("/v2/bundled/referrers/{}", layout.digest),
        format!("/v2/bundled/manifests/{referrer_digest}"),
        format!("/v2/bundled/blobs/{bundle_digest}"),
        format!("/v2/bundled/blobs/{config_digest}"),
    ];
    let stub = Stub::start(vec![
        (("GET", "/v2/"), vec![Answer::new(200, "{}")]),
        (
            ("GET", "/v2/bundled/manifests/v1"),
            answer(image.clone(), manifest_type),
        ),
        (("GET", paths[0].as_str()), answer(image, manifest_type)),
        (
            ("GET", paths[1].as_str()),
            answer(
                api_index.to_string().into_bytes(),
                "application/vnd.oci.image.index.v1+json",
            ),
        ),
        (("GET", paths[2].as_str()), answer(referrer, manifest_type)),
        (
            ("GET", paths[3].as_str()),
            vec![Answer::new(200, testbed::raw::blob(&repo, &bundle_digest))],
        ),
        (
            ("GET", paths[4].as_str()),
            vec![Answer::new(200, testbed::raw::blob(&repo, &config_digest))],
        ),
    ]);
    // The policy file the last check wrote requires ID_PLAIN.
    let out = Imagegate::new()
        .args(["--insecure-registry", &stub.host(), "check"])
        .arg(format!("{}/bundled:v1", stub.host()))
        .args([
            "--rules",
            &bed.work.path().join("policy.json").display().to_string(),
        ])
        .args([
            "--signature-integrations",
            &integrations.display().to_string(),
        ])
        .run();
    out.expect_code(0);
    assert!(
        stub.requests().iter().any(|r| r.contains(&paths[1])),
        "{:?}",
        stub.requests()
    );
}
