//! `azurekms://` keys through the library API, against the Azure Key Vault **stand-in**
//! (`testbed::azure_standin`: the documented Key Vault 7.4, Entra ID token, IMDS and App
//! Service endpoints with real keys and signatures; no real Azure can be reached here).

mod testbed;

use std::time::Duration;

use imagegate::http::{Http, NetworkSettings};
use imagegate::keys::{self, Environment, KeyContext, KeyError, KeyRef, PublicKey, Signer};
use testbed::azure_standin::{AzureStandin, CLIENT_ID, MANAGED_CLIENT_ID, TENANT};
use testbed::standin::{capture_logs, closed_port};

const PAYLOAD: &[u8] = br#"{"critical":{"identity":{"docker-reference":"registry.example/app"},"image":{"docker-manifest-digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111"},"type":"cosign container image signature"},"optional":null}"#;

fn http(standin: &AzureStandin) -> Http {
    Http::new(NetworkSettings {
        ca_files: vec![standin.ca.path()],
        retries: 2,
        timeout: Duration::from_secs(20),
        ..Default::default()
    })
    .expect("http")
}

/// The stand-in as the sign-in authority, plus `vars`.
fn env(standin: &AzureStandin, vars: &[(&str, String)]) -> Environment {
    let mut all: Vec<(String, String)> = vec![("AZURE_AUTHORITY_HOST".into(), standin.authority())];
    all.extend(vars.iter().map(|(k, v)| (k.to_string(), v.clone())));
    Environment::from_vars(all)
}

fn secret_env(standin: &AzureStandin) -> Environment {
    env(
        standin,
        &[
            ("AZURE_TENANT_ID", TENANT.to_string()),
            ("AZURE_CLIENT_ID", CLIENT_ID.to_string()),
            ("AZURE_CLIENT_SECRET", standin.client_secret()),
        ],
    )
}

fn uri(standin: &AzureStandin, key: &str, version: Option<&str>) -> String {
    match version {
        Some(v) => format!("azurekms://{}/{key}/{v}", standin.vault()),
        None => format!("azurekms://{}/{key}", standin.vault()),
    }
}

async fn signer(uri: &str, http: &Http, env: &Environment) -> Result<Signer, KeyError> {
    let ctx = KeyContext {
        http,
        interactive: false,
        env,
    };
    keys::signer(&KeyRef::parse(uri)?, &ctx).await
}

async fn sign(uri: &str, http: &Http, env: &Environment) -> Result<(Vec<u8>, PublicKey), KeyError> {
    let signer = signer(uri, http, env).await?;
    let signature = signer.sign(PAYLOAD).await?;
    Ok((signature, signer.public_key().clone()))
}

fn remote(err: &KeyError) -> (&str, bool) {
    match err {
        KeyError::Remote {
            message, transient, ..
        } => (message.as_str(), *transient),
        other => panic!("expected a remote error, got {other:?}"),
    }
}

#[tokio::test]
async fn a_client_secret_signs_with_the_latest_version_and_it_verifies() {
    let standin = AzureStandin::start(); // the Key Vault stand-in, not Azure
    let first = standin.add_key("cosign", "P-256");
    let latest = standin.add_version("cosign", "P-256");
    let http = http(&standin);
    let env = secret_env(&standin);

    let (signature, public) = sign(&uri(&standin, "cosign", None), &http, &env)
        .await
        .unwrap();
    assert_eq!(public.der(), standin.public_der("cosign", &latest));
    assert_ne!(public.der(), standin.public_der("cosign", &first));
    assert!(public.verify(PAYLOAD, &signature));
    // The raw r||s became DER, which RustCrypto checks on its own.
    {
        use p256::ecdsa::signature::Verifier as _;
        use p256::pkcs8::DecodePublicKey as _;
        let verifying = p256::ecdsa::VerifyingKey::from_public_key_der(public.der()).unwrap();
        let sig = p256::ecdsa::Signature::from_der(&signature).unwrap();
        verifying.verify(PAYLOAD, &sig).unwrap();
    }
    assert_eq!(standin.last_signer().as_deref(), Some("app:secret"));
    assert_eq!(
        standin.requests(),
        [
            format!("POST /{TENANT}/oauth2/v2.0/token"),
            "GET /keys/cosign?api-version=7.4".to_string(),
            format!("POST /keys/cosign/{latest}/sign?api-version=7.4"),
        ],
        "one token, the version from the kid used for signing"
    );
    assert_eq!(standin.token_resources(), ["https://vault.azure.net"]);

    let ctx = KeyContext {
        http: &http,
        interactive: false,
        env: &env,
    };
    let found = keys::public_key(
        &KeyRef::parse(&uri(&standin, "cosign", None)).unwrap(),
        &ctx,
    )
    .await
    .unwrap();
    assert_eq!(found.der(), public.der());
}

#[tokio::test]
async fn a_named_version_is_the_one_used() {
    let standin = AzureStandin::start(); // the Key Vault stand-in, not Azure
    let first = standin.add_key("cosign", "P-256");
    standin.add_version("cosign", "P-256");
    let http = http(&standin);
    let (signature, public) = sign(
        &uri(&standin, "cosign", Some(&first)),
        &http,
        &secret_env(&standin),
    )
    .await
    .unwrap();
    assert_eq!(public.der(), standin.public_der("cosign", &first));
    assert!(public.verify(PAYLOAD, &signature));
    let requests = standin.requests();
    assert!(requests.contains(&format!("GET /keys/cosign/{first}?api-version=7.4")));
    assert!(requests.contains(&format!("POST /keys/cosign/{first}/sign?api-version=7.4")));
}

#[tokio::test]
async fn p384_keys_sign_es384() {
    let standin = AzureStandin::start(); // the Key Vault stand-in, not Azure
    standin.add_key("p384", "P-384");
    let http = http(&standin);
    let (signature, public) = sign(&uri(&standin, "p384", None), &http, &secret_env(&standin))
        .await
        .unwrap();
    assert_eq!(public.kind(), "ECDSA P-384");
    assert!(public.verify(PAYLOAD, &signature));
}

#[tokio::test]
async fn a_disabled_version_is_refused() {
    let standin = AzureStandin::start(); // the Key Vault stand-in, not Azure
    let version = standin.add_key("cosign", "P-256");
    standin.set_enabled("cosign", &version, false);
    let http = http(&standin);
    let err = sign(&uri(&standin, "cosign", None), &http, &secret_env(&standin))
        .await
        .err()
        .unwrap();
    assert!(matches!(err, KeyError::NotAKey { .. }), "{err:?}");
    assert!(err.to_string().contains("disabled"), "{err}");

    let err = sign(&uri(&standin, "nokey", None), &http, &secret_env(&standin))
        .await
        .err()
        .unwrap();
    let (message, transient) = remote(&err);
    assert!(!transient);
    assert!(message.contains("404"), "{message}");
    assert!(message.contains("KeyNotFound"), "{message}");
}

#[tokio::test]
async fn workload_identity_signs_with_the_federated_token() {
    let standin = AzureStandin::start(); // the Key Vault stand-in, not Azure
    standin.add_key("cosign", "P-256");
    let http = http(&standin);
    let env = env(
        &standin,
        &[
            ("AZURE_TENANT_ID", TENANT.to_string()),
            ("AZURE_CLIENT_ID", CLIENT_ID.to_string()),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                standin.federated_token_file().display().to_string(),
            ),
        ],
    );
    let (signature, public) = sign(&uri(&standin, "cosign", None), &http, &env)
        .await
        .unwrap();
    assert!(public.verify(PAYLOAD, &signature));
    assert_eq!(
        standin.last_signer().as_deref(),
        Some("app:workload-identity")
    );
}

#[tokio::test]
async fn a_client_certificate_signs_its_assertion() {
    let standin = AzureStandin::start(); // the Key Vault stand-in, not Azure
    standin.add_key("cosign", "P-256");
    let http = http(&standin);
    let env = env(
        &standin,
        &[
            ("AZURE_TENANT_ID", TENANT.to_string()),
            ("AZURE_CLIENT_ID", CLIENT_ID.to_string()),
            (
                "AZURE_CLIENT_CERTIFICATE_PATH",
                standin.client_certificate_file().display().to_string(),
            ),
        ],
    );
    let (signature, public) = sign(&uri(&standin, "cosign", None), &http, &env)
        .await
        .unwrap();
    assert!(public.verify(PAYLOAD, &signature));
    assert_eq!(standin.last_signer().as_deref(), Some("app:certificate"));
}

#[tokio::test]
async fn managed_identity_through_imds_system_or_user_assigned() {
    let standin = AzureStandin::start(); // the Key Vault stand-in, not Azure
    standin.add_key("cosign", "P-256");
    let http = http(&standin);

    let system = env(
        &standin,
        &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", standin.imds())],
    );
    let (signature, public) = sign(&uri(&standin, "cosign", None), &http, &system)
        .await
        .unwrap();
    assert!(public.verify(PAYLOAD, &signature));
    assert_eq!(standin.last_signer().as_deref(), Some("managed:system"));

    let user = env(
        &standin,
        &[
            ("AZURE_POD_IDENTITY_AUTHORITY_HOST", standin.imds()),
            ("AZURE_CLIENT_ID", MANAGED_CLIENT_ID.to_string()),
        ],
    );
    sign(&uri(&standin, "cosign", None), &http, &user)
        .await
        .unwrap();
    assert_eq!(
        standin.last_signer(),
        Some(format!("managed:{MANAGED_CLIENT_ID}"))
    );
    let imds: Vec<String> = standin
        .requests()
        .into_iter()
        .filter(|r| r.starts_with("GET /metadata/identity/oauth2/token?"))
        .collect();
    assert_eq!(
        imds.last().unwrap(),
        &format!(
            "GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fvault.azure.net&client_id={MANAGED_CLIENT_ID}"
        )
    );

    let unknown = env(
        &standin,
        &[
            ("AZURE_POD_IDENTITY_AUTHORITY_HOST", standin.imds()),
            (
                "AZURE_CLIENT_ID",
                "00000000-0000-0000-0000-000000000000".to_string(),
            ),
        ],
    );
    let err = sign(&uri(&standin, "cosign", None), &http, &unknown)
        .await
        .err()
        .unwrap();
    let (message, transient) = remote(&err);
    assert!(!transient);
    assert!(message.contains("Identity not found"), "{message}");
    assert!(
        message.contains("is that identity assigned to this machine?"),
        "{message}"
    );
}

#[tokio::test]
async fn managed_identity_on_app_service() {
    let standin = AzureStandin::start(); // the Key Vault stand-in, not Azure
    standin.add_key("cosign", "P-256");
    let http = http(&standin);
    let env = env(
        &standin,
        &[
            ("IDENTITY_ENDPOINT", standin.identity_endpoint()),
            ("IDENTITY_HEADER", standin.identity_header()),
        ],
    );
    let (signature, public) = sign(&uri(&standin, "cosign", None), &http, &env)
        .await
        .unwrap();
    assert!(public.verify(PAYLOAD, &signature));
    assert_eq!(standin.last_signer().as_deref(), Some("app-service:system"));
}

#[tokio::test]
async fn an_r_r_signature_is_refused() {
    let standin = AzureStandin::start(); // the Key Vault stand-in, not Azure
    standin.add_key("cosign", "P-256");
    let http = http(&standin);
    standin.with_switches(|s| s.r_r_bug = true);
    let err = sign(&uri(&standin, "cosign", None), &http, &secret_env(&standin))
        .await
        .err()
        .unwrap();
    assert!(
        matches!(
            err,
            KeyError::BadRemoteSignature {
                backend: "Azure Key Vault"
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn refusals_name_the_missing_key_permission_and_are_not_retried() {
    let standin = AzureStandin::start(); // the Key Vault stand-in, not Azure
    let version = standin.add_key("cosign", "P-256");
    let http = http(&standin);
    let env = secret_env(&standin);

    standin.with_switches(|s| s.deny_sign = true);
    let err = sign(&uri(&standin, "cosign", None), &http, &env)
        .await
        .err()
        .unwrap();
    let (message, transient) = remote(&err);
    assert!(!transient);
    assert!(
        message.contains(&format!(
            "POST https://{}/keys/cosign/{version}/sign answered 403",
            standin.vault()
        )),
        "{message}"
    );
    assert!(message.contains("keys/sign"), "{message}");
    assert!(message.contains("Key Vault Crypto User"), "{message}");
    assert!(
        !message.contains("api-version"),
        "no query in messages: {message}"
    );
    let tries = standin
        .requests()
        .iter()
        .filter(|r| r.contains("/sign?"))
        .count();
    assert_eq!(tries, 1);

    standin.with_switches(|s| {
        s.deny_sign = false;
        s.deny_get = true;
    });
    let err = sign(&uri(&standin, "cosign", None), &http, &env)
        .await
        .err()
        .unwrap();
    let (message, _) = remote(&err);
    assert!(message.contains("keys/get"), "{message}");
    assert!(
        message.contains("does not have keys get permission"),
        "{message}"
    );
}

#[tokio::test]
async fn a_challenge_for_the_vaults_own_domain_is_answered_once() {
    let standin = AzureStandin::start(); // the Key Vault stand-in, not Azure
    standin.add_key("cosign", "P-256");
    let http = http(&standin);
    // As a sovereign cloud's vault does when the token is for vault.azure.net.
    standin.with_switches(|s| s.vault_resource = "https://127.0.0.1".to_string());
    let (signature, public) = sign(&uri(&standin, "cosign", None), &http, &secret_env(&standin))
        .await
        .unwrap();
    assert!(public.verify(PAYLOAD, &signature));
    assert_eq!(
        standin.token_resources(),
        ["https://127.0.0.1", "https://vault.azure.net"]
    );
    let vault_requests: Vec<String> = standin
        .requests()
        .into_iter()
        .filter(|r| r.contains("/keys/"))
        .collect();
    assert_eq!(
        vault_requests.len(),
        3,
        "401, then GET and sign: {vault_requests:?}"
    );
}

#[tokio::test]
async fn a_challenge_for_another_domain_gets_no_token() {
    let standin = AzureStandin::start(); // the Key Vault stand-in, not Azure
    standin.add_key("cosign", "P-256");
    let http = http(&standin);
    standin.with_switches(|s| s.vault_resource = "https://evil.example".to_string());
    let err = sign(&uri(&standin, "cosign", None), &http, &secret_env(&standin))
        .await
        .err()
        .unwrap();
    let (message, transient) = remote(&err);
    assert!(!transient);
    assert!(message.contains("401"), "{message}");
    assert!(message.contains("https://evil.example"), "{message}");
    assert!(message.contains("not the vault's own domain"), "{message}");
    assert_eq!(standin.token_resources(), ["https://vault.azure.net"]);
}

#[tokio::test]
async fn a_token_from_another_tenant_is_explained() {
    let standin = AzureStandin::start(); // the Key Vault stand-in, not Azure
    standin.add_key("cosign", "P-256");
    let http = http(&standin);
    standin.with_switches(|s| {
        s.refuse_tokens = true;
        s.vault_tenant = "0000aaaa-1111-2222-3333-444444444444".to_string();
    });
    let err = sign(&uri(&standin, "cosign", None), &http, &secret_env(&standin))
        .await
        .err()
        .unwrap();
    let (message, _) = remote(&err);
    assert!(
        message.contains(&format!("the vault belongs to tenant 0000aaaa-1111-2222-3333-444444444444, but the token is from tenant {TENANT}")),
        "{message}"
    );
}

#[tokio::test]
async fn a_sovereign_cloud_asks_for_its_own_resource() {
    let standin = AzureStandin::start(); // the Key Vault stand-in, not Azure
    standin.add_key("cosign", "P-256");
    let http = http(&standin);
    standin.with_switches(|s| s.vault_resource = "https://vault.azure.cn".to_string());
    let env = env(
        &standin,
        &[
            ("AZURE_ENVIRONMENT", "AzureChinaCloud".to_string()),
            ("AZURE_TENANT_ID", TENANT.to_string()),
            ("AZURE_CLIENT_ID", CLIENT_ID.to_string()),
            ("AZURE_CLIENT_SECRET", standin.client_secret()),
        ],
    );
    sign(&uri(&standin, "cosign", None), &http, &env)
        .await
        .unwrap();
    assert_eq!(standin.token_resources(), ["https://vault.azure.cn"]);
}

#[tokio::test]
async fn a_wrong_client_secret_is_refused_without_showing_it() {
    let standin = AzureStandin::start(); // the Key Vault stand-in, not Azure
    standin.add_key("cosign", "P-256");
    let http = http(&standin);
    let wrong = "Q~not-the-right-secret-0123456789";
    let env = env(
        &standin,
        &[
            ("AZURE_TENANT_ID", TENANT.to_string()),
            ("AZURE_CLIENT_ID", CLIENT_ID.to_string()),
            ("AZURE_CLIENT_SECRET", wrong.to_string()),
        ],
    );
    let err = sign(&uri(&standin, "cosign", None), &http, &env)
        .await
        .err()
        .unwrap();
    let (message, transient) = remote(&err);
    assert!(!transient);
    assert!(message.contains("AADSTS7000215"), "{message}");
    assert!(
        message.contains(&format!("/{TENANT}/oauth2/v2.0/token answered 401")),
        "{message}"
    );
    assert!(message.contains("AZURE_CLIENT_SECRET"), "{message}");
    assert!(!format!("{err} {err:?}").contains(wrong));
}

#[tokio::test]
async fn service_unavailable_is_retried_and_unreachable_services_are_transient() {
    let standin = AzureStandin::start(); // the Key Vault stand-in, not Azure
    standin.add_key("cosign", "P-256");
    let http = http(&standin);
    let env = secret_env(&standin);

    standin.with_switches(|s| s.unavailable = 2);
    let (signature, public) = sign(&uri(&standin, "cosign", None), &http, &env)
        .await
        .unwrap();
    assert!(public.verify(PAYLOAD, &signature));
    let gets = standin
        .requests()
        .iter()
        .filter(|r| r.starts_with("GET /keys/cosign?"))
        .count();
    assert_eq!(gets, 3, "two 503s, then the key");

    standin.with_switches(|s| s.unavailable = u32::MAX);
    let err = sign(&uri(&standin, "cosign", None), &http, &env)
        .await
        .err()
        .unwrap();
    let (message, transient) = remote(&err);
    assert!(transient);
    assert!(message.contains("503"), "{message}");
    assert!(message.contains("gave up after 3 attempts"), "{message}");

    let nowhere = format!("127.0.0.1:{}", closed_port());
    let err = sign(&format!("azurekms://{nowhere}/cosign"), &http, &env)
        .await
        .err()
        .unwrap();
    let (message, transient) = remote(&err);
    assert!(transient, "{message}");
    assert!(
        message.contains(&format!("GET https://{nowhere}/keys/cosign failed")),
        "{message}"
    );

    let no_authority = Environment::from_vars([
        (
            "AZURE_AUTHORITY_HOST",
            format!("https://127.0.0.1:{}", closed_port()),
        ),
        ("AZURE_TENANT_ID", TENANT.to_string()),
        ("AZURE_CLIENT_ID", CLIENT_ID.to_string()),
        ("AZURE_CLIENT_SECRET", standin.client_secret()),
    ]);
    let err = sign(&uri(&standin, "cosign", None), &http, &no_authority)
        .await
        .err()
        .unwrap();
    let (message, transient) = remote(&err);
    assert!(transient, "{message}");
    assert!(message.contains("/oauth2/v2.0/token failed"), "{message}");
}

#[tokio::test]
async fn missing_configuration_names_the_variables() {
    let standin = AzureStandin::start(); // the Key Vault stand-in, not Azure
    standin.add_key("cosign", "P-256");
    let http = http(&standin);
    let no_imds = format!("http://127.0.0.1:{}", closed_port());

    let nothing = env(
        &standin,
        &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", no_imds.clone())],
    );
    let err = sign(&uri(&standin, "cosign", None), &http, &nothing)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, KeyError::NotConfigured { .. }), "{err:?}");
    let text = err.to_string();
    for name in [
        "AZURE_TENANT_ID",
        "AZURE_CLIENT_ID",
        "AZURE_CLIENT_SECRET",
        "AZURE_CLIENT_CERTIFICATE_PATH",
        "AZURE_FEDERATED_TOKEN_FILE",
        "IDENTITY_ENDPOINT",
        &no_imds,
    ] {
        assert!(text.contains(name), "{name} in {text}");
    }
    assert!(
        standin.requests().is_empty(),
        "nothing was sent to the stand-in"
    );

    // A server that answers 404 there (another cloud's metadata server) is not IMDS either.
    let not_imds = env(
        &standin,
        &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", standin.authority())],
    );
    let err = sign(&uri(&standin, "cosign", None), &http, &not_imds)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, KeyError::NotConfigured { .. }), "{err:?}");
    assert_eq!(
        standin.requests(),
        ["GET /metadata/identity/oauth2/token"],
        "one probe, no token request"
    );

    let partial = env(&standin, &[("AZURE_CLIENT_SECRET", "x".repeat(20))]);
    let err = sign(&uri(&standin, "cosign", None), &http, &partial)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, KeyError::NotConfigured { .. }), "{err:?}");
    assert!(
        err.to_string().contains(
            "AZURE_CLIENT_SECRET is set, but AZURE_TENANT_ID and AZURE_CLIENT_ID are not"
        ),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let pfx = dir.path().join("ci.pfx");
    std::fs::write(&pfx, [0x30, 0x82, 0x0a, 0x01, 0x02]).unwrap();
    let pkcs12 = env(
        &standin,
        &[
            ("AZURE_TENANT_ID", TENANT.to_string()),
            ("AZURE_CLIENT_ID", CLIENT_ID.to_string()),
            ("AZURE_CLIENT_CERTIFICATE_PATH", pfx.display().to_string()),
        ],
    );
    let err = sign(&uri(&standin, "cosign", None), &http, &pkcs12)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, KeyError::NotConfigured { .. }), "{err:?}");
    assert!(err.to_string().contains("PKCS#12"), "{err}");

    let cloud = env(
        &standin,
        &[("AZURE_ENVIRONMENT", "AzureGermanCloud".to_string())],
    );
    let err = sign(&uri(&standin, "cosign", None), &http, &cloud)
        .await
        .err()
        .unwrap();
    assert!(
        err.to_string()
            .contains("AZURE_ENVIRONMENT=AZUREGERMANCLOUD"),
        "{err}"
    );
}

#[tokio::test]
async fn secrets_never_reach_errors_debug_output_or_logs() {
    let standin = AzureStandin::start(); // the Key Vault stand-in, not Azure
    standin.add_key("cosign", "P-256");
    let http = http(&standin);
    let (logs, _capture) = capture_logs();

    let ids = [
        ("AZURE_TENANT_ID", TENANT.to_string()),
        ("AZURE_CLIENT_ID", CLIENT_ID.to_string()),
    ];
    let environments = [
        secret_env(&standin),
        env(
            &standin,
            &[
                ids[0].clone(),
                ids[1].clone(),
                (
                    "AZURE_FEDERATED_TOKEN_FILE",
                    standin.federated_token_file().display().to_string(),
                ),
            ],
        ),
        env(
            &standin,
            &[
                ids[0].clone(),
                ids[1].clone(),
                (
                    "AZURE_CLIENT_CERTIFICATE_PATH",
                    standin.client_certificate_file().display().to_string(),
                ),
            ],
        ),
        env(
            &standin,
            &[
                ("IDENTITY_ENDPOINT", standin.identity_endpoint()),
                ("IDENTITY_HEADER", standin.identity_header()),
            ],
        ),
        env(
            &standin,
            &[("AZURE_POD_IDENTITY_AUTHORITY_HOST", standin.imds())],
        ),
    ];
    let mut texts = Vec::new();
    for env in &environments {
        let signer = signer(&uri(&standin, "cosign", None), &http, env)
            .await
            .unwrap();
        let Signer::Azure(azure) = &signer else {
            panic!("an Azure signer")
        };
        texts.push(format!("{azure:?}"));
        standin.with_switches(|s| s.deny_sign = true);
        texts.push(format!("{:?}", signer.sign(PAYLOAD).await.unwrap_err()));
        standin.with_switches(|s| {
            s.deny_sign = false;
            s.unavailable = u32::MAX;
        });
        let err = signer.sign(PAYLOAD).await.unwrap_err();
        texts.push(format!("{err} {err:?}"));
        standin.with_switches(|s| s.unavailable = 0);
    }
    // Refusals at the token endpoint: a wrong federated token, a wrong App Service header.
    let dir = tempfile::tempdir().unwrap();
    let wrong_token = dir.path().join("token");
    std::fs::write(&wrong_token, "eyJ.wrong-federated-token-0123456789").unwrap();
    let env_wrong = env(
        &standin,
        &[
            ids[0].clone(),
            ids[1].clone(),
            (
                "AZURE_FEDERATED_TOKEN_FILE",
                wrong_token.display().to_string(),
            ),
        ],
    );
    let err = sign(&uri(&standin, "cosign", None), &http, &env_wrong)
        .await
        .err()
        .unwrap();
    assert!(remote(&err).0.contains("AADSTS700027"), "{err}");
    texts.push(format!("{err} {err:?}"));
    assert!(
        !texts
            .last()
            .unwrap()
            .contains("wrong-federated-token-0123456789")
    );
    let env_header = env(
        &standin,
        &[
            ("IDENTITY_ENDPOINT", standin.identity_endpoint()),
            ("IDENTITY_HEADER", "not-the-header-0123456789".to_string()),
        ],
    );
    let err = sign(&uri(&standin, "cosign", None), &http, &env_header)
        .await
        .err()
        .unwrap();
    texts.push(format!("{err} {err:?}"));
    assert!(!texts.last().unwrap().contains("not-the-header-0123456789"));

    let secrets = standin.secrets();
    assert!(secrets.len() > 10, "the stand-in handed out tokens");
    texts.push(logs.text());
    assert!(
        texts.last().unwrap().contains("trying again"),
        "retries were logged: {}",
        texts.last().unwrap()
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
