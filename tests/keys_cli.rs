//! The key backends through the command line, end to end: `imagegate sign` with a key held by a
//! Kubernetes Secret, Google Cloud KMS and Azure Key Vault — each a stand-in speaking the
//! documented API with real keys, since none of those services can be reached here — and
//! cosign 2.5 verifying every signature with the key's public half.

mod testbed;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use testbed::azure_standin::{AzureStandin, CLIENT_ID, TENANT};
use testbed::fixtures::{self, ImageSpec};
use testbed::gcp_standin::GcpStandin;
use testbed::k8s_standin::K8sStandin;
use testbed::registry::Registry;
use testbed::{Imagegate, Output, run_with_timeout, temp_dir, tools, write_file};

fn registry_with_image() -> (Registry, tempfile::TempDir) {
    let registry = Registry::start();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "v1", &ImageSpec::rich());
    fixtures::push(&layout, &registry, "app:v1");
    (registry, dir)
}

fn cosign_verify(registry: &Registry, public: &Path) -> Output {
    let mut cmd = Command::new(tools::cosign());
    cmd.args([
        "verify",
        "--key",
        &public.display().to_string(),
        "--insecure-ignore-tlog=true",
        "--allow-http-registry",
        &registry.image("app:v1"),
    ]);
    run_with_timeout(cmd, Duration::from_secs(60))
}

#[test]
fn a_key_pair_made_into_a_kubernetes_secret_signs_what_cosign_verifies() {
    // The Kubernetes API stand-in: real TLS with its own CA, bearer tokens, RBAC per verb.
    let k8s = K8sStandin::start();
    k8s.add_namespace("tekton-ci");
    k8s.add_token("sa-token-for-tests", "pipeline");
    k8s.allow("pipeline", "create", "tekton-ci");
    k8s.allow("pipeline", "get", "tekton-ci");
    let dir = temp_dir();
    let kubeconfig = write_file(
        dir.path(),
        "kubeconfig",
        &k8s.kubeconfig("    token: sa-token-for-tests"),
    );
    let (registry, _layout) = registry_with_image();

    let keygen = Imagegate::new()
        .env("KUBECONFIG", kubeconfig.display().to_string())
        .env("COSIGN_PASSWORD", "secret-password")
        .args([
            "generate-key-pair",
            "k8s://tekton-ci/cosign",
            "--output-key-prefix",
            &dir.path().join("cosign").display().to_string(),
        ])
        .run();
    keygen.expect_code(0);
    let secret = k8s
        .secret("tekton-ci", "cosign")
        .expect("the Secret exists");
    for field in ["cosign.key", "cosign.password", "cosign.pub"] {
        assert!(
            secret["data"][field].is_string(),
            "the Secret lacks {field}: {secret}"
        );
    }
    assert!(
        !dir.path().join("cosign.key").exists(),
        "the private key stays in the cluster"
    );
    let public = dir.path().join("cosign.pub");
    assert!(
        public.exists(),
        "the public key is written locally, as cosign does"
    );

    Imagegate::new()
        .env("KUBECONFIG", kubeconfig.display().to_string())
        .args([
            "--insecure-registry",
            &registry.host(),
            "sign",
            &registry.image("app:v1"),
            "--key",
            "k8s://tekton-ci/cosign",
        ])
        .run()
        .expect_code(0);
    let verified = cosign_verify(&registry, &public);
    assert_eq!(verified.code, 0, "cosign verify: {}", verified.stderr);

    // A second generate-key-pair does not replace the key in use.
    let again = Imagegate::new()
        .env("KUBECONFIG", kubeconfig.display().to_string())
        .env("COSIGN_PASSWORD", "other")
        .args([
            "generate-key-pair",
            "k8s://tekton-ci/cosign",
            "--output-key-prefix",
            &dir.path().join("again").display().to_string(),
        ])
        .run();
    again.expect_code(2);
    assert!(
        !again.stderr.contains("sa-token-for-tests"),
        "the token leaked: {}",
        again.stderr
    );
}

#[test]
fn google_cloud_kms_signs_what_cosign_verifies() {
    // The Cloud KMS stand-in (and its token endpoint): a real P-256 key, real CRC32C values.
    let gcp = GcpStandin::start();
    let key = gcp.add_key("cosign", "ASYMMETRIC_SIGN");
    let version = gcp.add_version(&key, "EC_SIGN_P256_SHA256", "ENABLED");
    let dir = temp_dir();
    let public = write_file(dir.path(), "gcp.pub", &gcp.public_pem(&key, version));
    let (registry, _layout) = registry_with_image();
    let out = Imagegate::new()
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            gcp.service_account_file().display().to_string(),
        )
        .env(
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDKMS",
            gcp.kms_override(),
        )
        .env("NO_GCE_CHECK", "True")
        .args(["--ca-file", &gcp.ca.path().display().to_string()])
        .args([
            "--insecure-registry",
            &registry.host(),
            "sign",
            &registry.image("app:v1"),
            "--key",
            &format!("gcpkms://{key}"),
        ])
        .run();
    out.expect_code(0);
    let verified = cosign_verify(&registry, &public);
    assert_eq!(verified.code, 0, "cosign verify: {}", verified.stderr);
}

#[test]
fn azure_key_vault_signs_what_cosign_verifies() {
    // The Key Vault stand-in (and its Entra ID token endpoint): raw r||s signatures, as Azure
    // returns them, which imagegate turns into the DER cosign expects.
    let azure = AzureStandin::start();
    let version = azure.add_key("cosign", "P-256");
    let der = azure.public_der("cosign", &version);
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        base64::engine::general_purpose::STANDARD
            .encode(&der)
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect::<Vec<_>>()
            .join("\n")
    );
    let dir = temp_dir();
    let public = write_file(dir.path(), "azure.pub", &pem);
    let (registry, _layout) = registry_with_image();
    let out = Imagegate::new()
        .env("AZURE_AUTHORITY_HOST", azure.authority())
        .env("AZURE_TENANT_ID", TENANT)
        .env("AZURE_CLIENT_ID", CLIENT_ID)
        .env("AZURE_CLIENT_SECRET", azure.client_secret())
        .args(["--ca-file", &azure.ca.path().display().to_string()])
        .args([
            "--insecure-registry",
            &registry.host(),
            "sign",
            &registry.image("app:v1"),
            "--key",
            &format!("azurekms://{}/cosign", azure.vault()),
        ])
        .run();
    out.expect_code(0);
    assert!(
        !out.stderr.contains(&azure.client_secret()),
        "the client secret leaked"
    );
    let verified = cosign_verify(&registry, &public);
    assert_eq!(verified.code, 0, "cosign verify: {}", verified.stderr);
}
