//! `gcpkms://` keys through the library API, against the Google Cloud KMS **stand-in**
//! (`testbed::gcp_standin`: the documented KMS v1, OAuth, STS, IAM Credentials and metadata
//! endpoints with real keys and signatures; no real GCP can be reached here).

mod testbed;

use std::time::Duration;

use imagegate::http::{Http, NetworkSettings};
use imagegate::keys::{self, Environment, KeyContext, KeyError, KeyRef, PublicKey, Signer};
use testbed::gcp_standin::{GcpStandin, SERVICE_ACCOUNT, TARGET_ACCOUNT};
use testbed::standin::{capture_logs, closed_port};

const PAYLOAD: &[u8] = br#"{"critical":{"identity":{"docker-reference":"registry.example/app"},"image":{"docker-manifest-digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"},"type":"cosign container image signature"},"optional":null}"#;

fn http(standin: &GcpStandin) -> Http {
    Http::new(NetworkSettings {
        ca_files: vec![standin.ca.path()],
        retries: 2,
        timeout: Duration::from_secs(20),
        ..Default::default()
    })
    .expect("http")
}

/// The stand-in's KMS endpoint, no metadata server probing, plus `vars`.
fn env(standin: &GcpStandin, vars: &[(&str, String)]) -> Environment {
    let mut all: Vec<(String, String)> = vec![
        (
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDKMS".into(),
            standin.kms_override(),
        ),
        ("NO_GCE_CHECK".into(), "True".into()),
    ];
    all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.clone())));
    Environment::from_vars(all)
}

fn sa_env(standin: &GcpStandin) -> Environment {
    env(
        standin,
        &[(
            "GOOGLE_APPLICATION_CREDENTIALS",
            standin.service_account_file().display().to_string(),
        )],
    )
}

async fn signer(uri: &str, http: &Http, env: &Environment) -> Result<Signer, KeyError> {
    let ctx = KeyContext {
        http,
        interactive: false,
        env,
    };
    keys::signer(&KeyRef::parse(uri)?, &ctx).await
}

/// Signs PAYLOAD with `uri`; gives the signature and the public key it verifies with.
async fn sign(uri: &str, http: &Http, env: &Environment) -> Result<(Vec<u8>, PublicKey), KeyError> {
    let signer = signer(uri, http, env).await?;
    let signature = signer.sign(PAYLOAD).await?;
    Ok((signature, signer.public_key().clone()))
}

fn uri(key_name: &str) -> String {
    format!("gcpkms://{key_name}")
}

fn der_of(pem: &str) -> Vec<u8> {
    PublicKey::from_pem(pem, "stand-in").unwrap().der().to_vec()
}

fn remote(err: &KeyError) -> (&str, bool) {
    match err {
        KeyError::Remote {
            message, transient, ..
        } => (message.as_str(), *transient),
        other => panic!("expected a remote error, got {other:?}"),
    }
}

/// A key `name` with one ENABLED P-256 version.
fn p256_key(standin: &GcpStandin, name: &str) -> String {
    let key = standin.add_key(name, "ASYMMETRIC_SIGN");
    standin.add_version(&key, "EC_SIGN_P256_SHA256", "ENABLED");
    key
}

#[tokio::test]
async fn a_service_account_signs_and_the_signature_verifies() {
    let standin = GcpStandin::start(); // the Cloud KMS stand-in, not Google Cloud
    let key = p256_key(&standin, "cosign");
    let http = http(&standin);
    let env = sa_env(&standin);

    let (signature, public) = sign(&uri(&key), &http, &env).await.unwrap();
    assert!(public.verify(PAYLOAD, &signature));
    assert!(!public.verify(b"another payload", &signature));
    assert_eq!(public.der(), der_of(&standin.public_pem(&key, 1)));
    // An independent check: DER ECDSA over SHA-256 of the payload, with RustCrypto.
    {
        use p256::ecdsa::signature::Verifier as _;
        use p256::pkcs8::DecodePublicKey as _;
        let verifying = p256::ecdsa::VerifyingKey::from_public_key_der(public.der()).unwrap();
        let sig = p256::ecdsa::Signature::from_der(&signature).unwrap();
        verifying.verify(PAYLOAD, &sig).unwrap();
    }
    assert_eq!(standin.last_signer().as_deref(), Some(SERVICE_ACCOUNT));

    let requests = standin.requests();
    let paths: Vec<&str> = requests
        .iter()
        .map(|r| r.split('?').next().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "POST /token".to_string(),
            format!("GET /v1/{key}"),
            format!("GET /v1/{key}/cryptoKeyVersions"),
            format!("GET /v1/{key}/cryptoKeyVersions/1/publicKey"),
            format!("POST /v1/{key}/cryptoKeyVersions/1:asymmetricSign"),
        ],
        "one token for the whole signer, cached between calls"
    );
    assert!(
        requests[2].ends_with("?filter=state%3DENABLED&orderBy=name%20desc"),
        "{}",
        requests[2]
    );

    // Verifying needs only the public key, found the same way.
    let ctx = KeyContext {
        http: &http,
        interactive: false,
        env: &env,
    };
    let found = keys::public_key(&KeyRef::parse(&uri(&key)).unwrap(), &ctx)
        .await
        .unwrap();
    assert_eq!(found.der(), public.der());
}

#[tokio::test]
async fn a_named_version_is_the_one_used() {
    let standin = GcpStandin::start(); // the Cloud KMS stand-in, not Google Cloud
    let key = standin.add_key("cosign", "ASYMMETRIC_SIGN");
    standin.add_version(&key, "EC_SIGN_P256_SHA256", "ENABLED");
    standin.add_version(&key, "EC_SIGN_P256_SHA256", "ENABLED");
    let http = http(&standin);
    let env = sa_env(&standin);

    let (signature, public) = sign(&format!("{}/cryptoKeyVersions/1", uri(&key)), &http, &env)
        .await
        .unwrap();
    assert_eq!(public.der(), der_of(&standin.public_pem(&key, 1)));
    assert!(public.verify(PAYLOAD, &signature));
    let requests = standin.requests();
    assert!(requests.contains(&format!("GET /v1/{key}/cryptoKeyVersions/1")));
    assert!(requests.contains(&format!(
        "POST /v1/{key}/cryptoKeyVersions/1:asymmetricSign"
    )));
    assert!(!requests.iter().any(|r| r.contains("/cryptoKeyVersions/2")));
    assert!(
        !requests.iter().any(|r| r.contains("orderBy")),
        "no listing when a version is named"
    );

    // cosign's short form `versions/N` too.
    let (_, public) = sign(&format!("{}/versions/2", uri(&key)), &http, &env)
        .await
        .unwrap();
    assert_eq!(public.der(), der_of(&standin.public_pem(&key, 2)));
}

#[tokio::test]
async fn without_a_version_the_highest_enabled_one_signs_across_pages() {
    let standin = GcpStandin::start(); // the Cloud KMS stand-in, not Google Cloud
    let key = standin.add_key("cosign", "ASYMMETRIC_SIGN");
    // Versions 1..=11; 10 is the newest enabled one. Sorted as text, "…/9" comes before
    // "…/10", and the stand-in answers in pages of two.
    for n in 1..=11 {
        let state = match n {
            11 | 4 => "DISABLED",
            7 => "DESTROYED",
            _ => "ENABLED",
        };
        standin.add_version(&key, "EC_SIGN_P256_SHA256", state);
    }
    let http = http(&standin);
    let (signature, public) = sign(&uri(&key), &http, &sa_env(&standin)).await.unwrap();
    assert_eq!(public.der(), der_of(&standin.public_pem(&key, 10)));
    assert!(public.verify(PAYLOAD, &signature));
    let requests = standin.requests();
    assert!(requests.contains(&format!(
        "POST /v1/{key}/cryptoKeyVersions/10:asymmetricSign"
    )));
    let pages = requests
        .iter()
        .filter(|r| r.contains("/cryptoKeyVersions?"))
        .count();
    assert_eq!(pages, 4, "8 enabled versions in pages of two: {requests:?}");
}

#[tokio::test]
async fn a_disabled_or_missing_version_is_refused() {
    let standin = GcpStandin::start(); // the Cloud KMS stand-in, not Google Cloud
    let key = standin.add_key("cosign", "ASYMMETRIC_SIGN");
    standin.add_version(&key, "EC_SIGN_P256_SHA256", "DISABLED");
    let http = http(&standin);
    let env = sa_env(&standin);

    let err = sign(&format!("{}/cryptoKeyVersions/1", uri(&key)), &http, &env)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, KeyError::NotAKey { .. }), "{err:?}");
    assert!(err.to_string().contains("version 1 is DISABLED"), "{err}");

    let err = sign(&uri(&key), &http, &env).await.err().unwrap();
    assert!(err.to_string().contains("no ENABLED version"), "{err}");

    let err = sign(&format!("{}/cryptoKeyVersions/9", uri(&key)), &http, &env)
        .await
        .err()
        .unwrap();
    let (message, transient) = remote(&err);
    assert!(!transient);
    assert!(message.contains("404"), "{message}");
    assert!(message.contains("check the gcpkms:// URI"), "{message}");

    let err = sign(
        &format!("{}/cryptoKeyVersions/latest", uri(&key)),
        &http,
        &env,
    )
    .await
    .err()
    .unwrap();
    assert!(matches!(err, KeyError::BadUri { .. }), "{err:?}");
}

#[tokio::test]
async fn a_key_that_is_not_for_signing_is_refused() {
    let standin = GcpStandin::start(); // the Cloud KMS stand-in, not Google Cloud
    let key = standin.add_key("secrets", "ENCRYPT_DECRYPT");
    let http = http(&standin);
    let err = sign(&uri(&key), &http, &sa_env(&standin))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, KeyError::NotAKey { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("ENCRYPT_DECRYPT"), "{text}");
    assert!(text.contains("ASYMMETRIC_SIGN"), "{text}");
    assert!(
        !standin
            .requests()
            .iter()
            .any(|r| r.contains("cryptoKeyVersions")),
        "nothing else is asked once the purpose is wrong"
    );
}

#[tokio::test]
async fn p384_keys_sign_sha384_digests_and_rsa_keys_sign_too() {
    let standin = GcpStandin::start(); // the Cloud KMS stand-in, not Google Cloud
    let p384 = standin.add_key("p384", "ASYMMETRIC_SIGN");
    standin.add_version(&p384, "EC_SIGN_P384_SHA384", "ENABLED");
    let rsa = standin.add_key("rsa", "ASYMMETRIC_SIGN");
    standin.add_version(&rsa, "RSA_SIGN_PKCS1_2048_SHA256", "ENABLED");
    let http = http(&standin);
    let env = sa_env(&standin);

    let (signature, public) = sign(&uri(&p384), &http, &env).await.unwrap();
    assert_eq!(public.kind(), "ECDSA P-384");
    assert!(public.verify(PAYLOAD, &signature));

    let (signature, public) = sign(&uri(&rsa), &http, &env).await.unwrap();
    assert_eq!(public.kind(), "RSA");
    assert_eq!(signature.len(), 256);
    assert!(public.verify(PAYLOAD, &signature));
}

#[tokio::test]
async fn gcloud_user_credentials_sign_with_their_quota_project() {
    let standin = GcpStandin::start(); // the Cloud KMS stand-in, not Google Cloud
    let key = p256_key(&standin, "cosign");
    let http = http(&standin);
    let env = env(
        &standin,
        &[(
            "GOOGLE_APPLICATION_CREDENTIALS",
            standin
                .authorized_user_file(Some("billing-project"))
                .display()
                .to_string(),
        )],
    );
    let (signature, public) = sign(&uri(&key), &http, &env).await.unwrap();
    assert!(public.verify(PAYLOAD, &signature));
    assert_eq!(
        standin.last_signer().as_deref(),
        Some("user:dev@example.com")
    );
    let headers = standin.headers_of("POST /v1/");
    assert_eq!(
        headers[0].get("x-goog-user-project").map(String::as_str),
        Some("billing-project")
    );
}

#[tokio::test]
async fn the_gcloud_well_known_file_is_found_through_home_or_cloudsdk_config() {
    let standin = GcpStandin::start(); // the Cloud KMS stand-in, not Google Cloud
    let key = p256_key(&standin, "cosign");
    let http = http(&standin);

    let home = tempfile::tempdir().unwrap();
    let gcloud = home.path().join(".config/gcloud");
    std::fs::create_dir_all(&gcloud).unwrap();
    std::fs::copy(
        standin.authorized_user_file(None),
        gcloud.join("application_default_credentials.json"),
    )
    .unwrap();
    let env_home = env(&standin, &[("HOME", home.path().display().to_string())]);
    let (signature, public) = sign(&uri(&key), &http, &env_home).await.unwrap();
    assert!(public.verify(PAYLOAD, &signature));

    let config = tempfile::tempdir().unwrap();
    std::fs::copy(
        standin.service_account_file(),
        config.path().join("application_default_credentials.json"),
    )
    .unwrap();
    let env_config = env(
        &standin,
        &[
            ("HOME", home.path().display().to_string()),
            ("CLOUDSDK_CONFIG", config.path().display().to_string()),
        ],
    );
    sign(&uri(&key), &http, &env_config).await.unwrap();
    assert_eq!(standin.last_signer().as_deref(), Some(SERVICE_ACCOUNT));
}

#[tokio::test]
async fn workload_identity_federation_with_a_token_file() {
    let standin = GcpStandin::start(); // the Cloud KMS stand-in, not Google Cloud
    let key = p256_key(&standin, "cosign");
    let http = http(&standin);
    let env = env(
        &standin,
        &[(
            "GOOGLE_APPLICATION_CREDENTIALS",
            standin
                .external_account_file_source(false)
                .display()
                .to_string(),
        )],
    );
    let (signature, public) = sign(&uri(&key), &http, &env).await.unwrap();
    assert!(public.verify(PAYLOAD, &signature));
    assert_eq!(
        standin.last_signer().as_deref(),
        Some("principal://iam.googleapis.com/github")
    );
    let requests = standin.requests();
    assert!(requests.contains(&"POST /sts/v1/token".to_string()));
    assert!(!requests.iter().any(|r| r.contains("generateAccessToken")));
}

#[tokio::test]
async fn workload_identity_federation_from_a_url_with_impersonation() {
    let standin = GcpStandin::start(); // the Cloud KMS stand-in, not Google Cloud
    let key = p256_key(&standin, "cosign");
    let http = http(&standin);
    let env = env(
        &standin,
        &[(
            "GOOGLE_APPLICATION_CREDENTIALS",
            standin
                .external_account_url_source(true)
                .display()
                .to_string(),
        )],
    );
    let (signature, public) = sign(&uri(&key), &http, &env).await.unwrap();
    assert!(public.verify(PAYLOAD, &signature));
    assert_eq!(standin.last_signer().as_deref(), Some(TARGET_ACCOUNT));
    let requests = standin.requests();
    let order: Vec<&str> = requests
        .iter()
        .map(|r| r.split('?').next().unwrap())
        .filter(|r| !r.contains("/v1/projects/imagegate-test"))
        .collect();
    assert_eq!(
        order,
        [
            "GET /oidc/token".to_string(),
            "POST /sts/v1/token".to_string(),
            format!("POST /iam/v1/projects/-/serviceAccounts/{TARGET_ACCOUNT}:generateAccessToken"),
        ]
    );
}

#[tokio::test]
async fn gcloud_impersonation_files_trade_the_users_token() {
    let standin = GcpStandin::start(); // the Cloud KMS stand-in, not Google Cloud
    let key = p256_key(&standin, "cosign");
    let http = http(&standin);
    let env = env(
        &standin,
        &[(
            "GOOGLE_APPLICATION_CREDENTIALS",
            standin
                .impersonated_service_account_file()
                .display()
                .to_string(),
        )],
    );
    let (signature, public) = sign(&uri(&key), &http, &env).await.unwrap();
    assert!(public.verify(PAYLOAD, &signature));
    assert_eq!(standin.last_signer().as_deref(), Some(TARGET_ACCOUNT));
}

#[tokio::test]
async fn the_metadata_server_named_by_gce_metadata_host() {
    let standin = GcpStandin::start(); // the Cloud KMS stand-in, not Google Cloud
    let key = p256_key(&standin, "cosign");
    let http = http(&standin);
    let env = env(&standin, &[("GCE_METADATA_HOST", standin.metadata_host())]);
    let (signature, public) = sign(&uri(&key), &http, &env).await.unwrap();
    assert!(public.verify(PAYLOAD, &signature));
    assert_eq!(
        standin.last_signer().as_deref(),
        Some("default-compute@imagegate-test")
    );
    let headers = standin.headers_of("GET /computeMetadata/");
    assert_eq!(
        headers[0].get("metadata-flavor").map(String::as_str),
        Some("Google")
    );
}

#[tokio::test]
async fn a_wrong_signature_checksum_is_retried_then_refused() {
    let standin = GcpStandin::start(); // the Cloud KMS stand-in, not Google Cloud
    let key = p256_key(&standin, "cosign");
    let http = http(&standin);
    let env = sa_env(&standin);
    let sign_line = format!("POST /v1/{key}/cryptoKeyVersions/1:asymmetricSign");

    // Once: corruption on the way is worth another try, and the second answer is good.
    standin.with_switches(|s| s.wrong_signature_crc = 1);
    let (signature, public) = sign(&uri(&key), &http, &env).await.unwrap();
    assert!(public.verify(PAYLOAD, &signature));
    let tries = standin
        .requests()
        .iter()
        .filter(|r| **r == sign_line)
        .count();
    assert_eq!(tries, 2);

    // Always: refused after the retries, naming the checksum.
    standin.with_switches(|s| s.wrong_signature_crc = u32::MAX);
    let signer = signer(&uri(&key), &http, &env).await.unwrap();
    let err = signer.sign(PAYLOAD).await.unwrap_err();
    let (message, transient) = remote(&err);
    assert!(transient);
    assert!(message.contains("signatureCrc32c"), "{message}");
    assert!(message.contains("gave up after 3 attempts"), "{message}");
}

#[tokio::test]
async fn an_unverified_digest_checksum_is_refused() {
    let standin = GcpStandin::start(); // the Cloud KMS stand-in, not Google Cloud
    let key = p256_key(&standin, "cosign");
    let http = http(&standin);
    standin.with_switches(|s| s.unverified_digest = u32::MAX);
    let err = sign(&uri(&key), &http, &sa_env(&standin))
        .await
        .err()
        .unwrap();
    let (message, _) = remote(&err);
    assert!(
        message.contains("verifiedDigestCrc32c is false"),
        "{message}"
    );
}

#[tokio::test]
async fn a_wrong_public_key_checksum_is_refused() {
    let standin = GcpStandin::start(); // the Cloud KMS stand-in, not Google Cloud
    let key = p256_key(&standin, "cosign");
    let http = http(&standin);
    standin.with_switches(|s| s.wrong_pem_crc = u32::MAX);
    let err = sign(&uri(&key), &http, &sa_env(&standin))
        .await
        .err()
        .unwrap();
    let (message, _) = remote(&err);
    assert!(message.contains("pemCrc32c"), "{message}");
    assert!(
        message.contains("/cryptoKeyVersions/1/publicKey"),
        "{message}"
    );
}

#[tokio::test]
async fn an_answer_for_another_version_or_from_another_key_is_refused() {
    let standin = GcpStandin::start(); // the Cloud KMS stand-in, not Google Cloud
    let key = p256_key(&standin, "cosign");
    let http = http(&standin);
    let env = sa_env(&standin);

    standin.with_switches(|s| s.wrong_version_name = true);
    let err = sign(&uri(&key), &http, &env).await.err().unwrap();
    let (message, transient) = remote(&err);
    assert!(!transient);
    assert!(message.contains("cryptoKeyVersions/101"), "{message}");

    standin.with_switches(|s| {
        s.wrong_version_name = false;
        s.foreign_signer = true;
    });
    let err = sign(&uri(&key), &http, &env).await.err().unwrap();
    assert!(
        matches!(
            err,
            KeyError::BadRemoteSignature {
                backend: "Google Cloud KMS"
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_refusal_to_sign_names_the_missing_permission_and_is_not_retried() {
    let standin = GcpStandin::start(); // the Cloud KMS stand-in, not Google Cloud
    let key = p256_key(&standin, "cosign");
    let http = http(&standin);
    standin.with_switches(|s| s.deny_sign = true);
    let err = sign(&uri(&key), &http, &sa_env(&standin))
        .await
        .err()
        .unwrap();
    let (message, transient) = remote(&err);
    assert!(!transient);
    assert!(message.contains("403"), "{message}");
    assert!(
        message.contains("cloudkms.cryptoKeyVersions.useToSign"),
        "{message}"
    );
    assert!(
        message.contains("roles/cloudkms.signerVerifier"),
        "{message}"
    );
    assert!(message.contains(SERVICE_ACCOUNT), "{message}");
    assert!(message.contains(":asymmetricSign"), "{message}");
    let tries = standin
        .requests()
        .iter()
        .filter(|r| r.ends_with(":asymmetricSign"))
        .count();
    assert_eq!(tries, 1);
}

#[tokio::test]
async fn service_unavailable_is_retried_and_an_unreachable_service_is_transient() {
    let standin = GcpStandin::start(); // the Cloud KMS stand-in, not Google Cloud
    let key = p256_key(&standin, "cosign");
    let http = http(&standin);
    let env = sa_env(&standin);

    standin.with_switches(|s| s.unavailable = 2);
    let (signature, public) = sign(&uri(&key), &http, &env).await.unwrap();
    assert!(public.verify(PAYLOAD, &signature));
    let key_reads = standin
        .requests()
        .iter()
        .filter(|r| **r == format!("GET /v1/{key}"))
        .count();
    assert_eq!(key_reads, 3, "two 503s, then the answer");

    standin.with_switches(|s| s.unavailable = u32::MAX);
    let err = sign(&uri(&key), &http, &env).await.err().unwrap();
    let (message, transient) = remote(&err);
    assert!(transient);
    assert!(message.contains("503"), "{message}");

    let nowhere = format!("https://127.0.0.1:{}/", closed_port());
    let env = env_with_kms(&standin, &nowhere);
    let err = sign(&uri(&key), &http, &env).await.err().unwrap();
    let (message, transient) = remote(&err);
    assert!(transient, "{message}");
    assert!(
        message.contains(&format!("GET {nowhere}v1/{key} failed")),
        "{message}"
    );
    assert!(message.contains("gave up after 3 attempts"), "{message}");
}

fn env_with_kms(standin: &GcpStandin, kms: &str) -> Environment {
    Environment::from_vars([
        ("CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDKMS", kms.to_string()),
        (
            "GOOGLE_APPLICATION_CREDENTIALS",
            standin.service_account_file().display().to_string(),
        ),
    ])
}

#[tokio::test]
async fn an_unreachable_metadata_server_is_transient() {
    let standin = GcpStandin::start(); // the Cloud KMS stand-in, not Google Cloud
    let key = p256_key(&standin, "cosign");
    let http = http(&standin);
    let env = env(
        &standin,
        &[("GCE_METADATA_HOST", format!("127.0.0.1:{}", closed_port()))],
    );
    let err = sign(&uri(&key), &http, &env).await.err().unwrap();
    let (message, transient) = remote(&err);
    assert!(transient);
    assert!(
        message.contains("/computeMetadata/v1/instance/service-accounts/default/token"),
        "{message}"
    );
}

#[tokio::test]
async fn missing_configuration_names_what_to_set() {
    let standin = GcpStandin::start(); // the Cloud KMS stand-in, not Google Cloud
    let key = p256_key(&standin, "cosign");
    let http = http(&standin);

    let home = tempfile::tempdir().unwrap();
    let env_empty = env(&standin, &[("HOME", home.path().display().to_string())]);
    let err = sign(&uri(&key), &http, &env_empty).await.err().unwrap();
    assert!(matches!(err, KeyError::NotConfigured { .. }), "{err:?}");
    let text = err.to_string();
    for name in [
        "GOOGLE_APPLICATION_CREDENTIALS",
        "application_default_credentials.json",
        "GCE_METADATA_HOST",
        "NO_GCE_CHECK",
    ] {
        assert!(text.contains(name), "{name} in {text}");
    }
    assert!(standin.requests().is_empty(), "nothing was sent");

    let missing = home.path().join("nope.json");
    let env_missing = env(
        &standin,
        &[(
            "GOOGLE_APPLICATION_CREDENTIALS",
            missing.display().to_string(),
        )],
    );
    let err = sign(&uri(&key), &http, &env_missing).await.err().unwrap();
    assert!(matches!(err, KeyError::NotConfigured { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("nope.json (GOOGLE_APPLICATION_CREDENTIALS)"),
        "{err}"
    );

    let odd = home.path().join("odd.json");
    std::fs::write(&odd, r#"{"type":"external_account","audience":"a","subject_token_type":"t","token_url":"u","credential_source":{"environment_id":"aws1"}}"#).unwrap();
    let env_odd = env(
        &standin,
        &[("GOOGLE_APPLICATION_CREDENTIALS", odd.display().to_string())],
    );
    let err = sign(&uri(&key), &http, &env_odd).await.err().unwrap();
    assert!(matches!(err, KeyError::NotConfigured { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("credential_source.file or credential_source.url"),
        "{err}"
    );

    let env_bad_override = Environment::from_vars([(
        "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDKMS",
        "cloudkms.example",
    )]);
    let err = sign(&uri(&key), &http, &env_bad_override)
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDKMS"),
        "{err}"
    );
}

#[tokio::test]
async fn secrets_never_reach_errors_debug_output_or_logs() {
    let standin = GcpStandin::start(); // the Cloud KMS stand-in, not Google Cloud
    let key = p256_key(&standin, "cosign");
    let http = http(&standin);
    let (logs, _capture) = capture_logs();

    let mut texts = Vec::new();
    let credential_files = [
        standin.service_account_file(),
        standin.authorized_user_file(None),
        standin.external_account_file_source(true),
        standin.external_account_url_source(false),
    ];
    for file in &credential_files {
        let env = env(
            &standin,
            &[("GOOGLE_APPLICATION_CREDENTIALS", file.display().to_string())],
        );
        let signer = signer(&uri(&key), &http, &env).await.unwrap();
        let Signer::Gcp(gcp) = &signer else {
            panic!("a GCP signer")
        };
        texts.push(format!("{gcp:?}"));
        // Failures after the token was used: denied, then unavailable (retried, logged).
        standin.with_switches(|s| s.deny_sign = true);
        texts.push(format!("{:?}", signer.sign(PAYLOAD).await.unwrap_err()));
        standin.with_switches(|s| {
            s.deny_sign = false;
            s.unavailable = u32::MAX;
        });
        let err = signer.sign(PAYLOAD).await.unwrap_err();
        texts.push(err.to_string());
        texts.push(format!("{err:?}"));
        standin.with_switches(|s| s.unavailable = 0);
    }
    // The token endpoint refusing a key that is not the account's.
    let env_wrong = env(
        &standin,
        &[(
            "GOOGLE_APPLICATION_CREDENTIALS",
            standin
                .service_account_file_with_wrong_key()
                .display()
                .to_string(),
        )],
    );
    let err = sign(&uri(&key), &http, &env_wrong).await.err().unwrap();
    let (message, transient) = remote(&err);
    assert!(!transient);
    assert!(
        message.contains("invalid_grant: Invalid JWT Signature."),
        "{message}"
    );
    texts.push(format!("{err} {err:?}"));

    let secrets = standin.secrets();
    assert!(secrets.len() > 10, "the stand-in handed out tokens");
    texts.push(logs.text());
    let logged = texts.last().unwrap();
    assert!(
        logged.contains("trying again"),
        "retries were logged: {logged}"
    );
    for text in &texts {
        for secret in &secrets {
            assert!(
                !text.contains(secret.as_str()),
                "a secret leaked into: {text}"
            );
        }
    }
}
