//! `hashivault://` through the library API, against the Vault transit stand-in
//! (`testbed::vault_standin`): no real Vault or OpenBao can be installed on the test machines,
//! so every test here talks to the stand-in, which holds real keys (OpenSSL) and makes real
//! signatures that imagegate verifies with its own crypto.

mod testbed;

use std::time::Duration;

use base64::Engine as _;
use imagegate::error::{Error, Exit};
use imagegate::http::{Http, NetworkSettings, Transient};
use imagegate::keys::{self, Environment, KeyContext, KeyError, KeyRef, PublicKey};
use sha2::Digest as _;
use testbed::vault_standin::{Accept, KeyType, VaultStandin, closed_port, write_token_file};

const SIGNER_TOKEN: &str = "hvs.CAESIstand-in-signer-0001";
const PAYLOAD: &[u8] = br#"{"critical":{"identity":{"docker-reference":"registry.example/app"},"image":{"docker-manifest-digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000"},"type":"cosign container image signature"},"optional":null}"#;

fn http() -> Http {
    Http::new(NetworkSettings {
        retries: 2,
        timeout: Duration::from_secs(20),
        ..Default::default()
    })
    .expect("http setup")
}

fn env(vars: &[(&str, &str)]) -> Environment {
    Environment::from_vars(vars.iter().map(|(k, v)| (k.to_string(), v.to_string())))
}

/// Signs PAYLOAD with `hashivault://cosign` in `env`; returns the signature and public key.
async fn sign(env: &Environment, uri: &str) -> Result<(Vec<u8>, PublicKey), KeyError> {
    let http = http();
    let ctx = KeyContext {
        http: &http,
        interactive: false,
        env,
    };
    let key = KeyRef::parse(uri).expect("key URI");
    let signer = keys::signer(&key, &ctx).await?;
    let signature = signer.sign(PAYLOAD).await?;
    Ok((signature, signer.public_key().clone()))
}

/// The error of a run that must fail.
async fn sign_err(env: &Environment) -> KeyError {
    match sign(env, "hashivault://cosign").await {
        Ok(_) => panic!("signing was expected to fail"),
        Err(e) => e,
    }
}

/// A Vault stand-in with transit key `cosign` and a token whose policy may read it and sign.
fn vault_with_key(kind: KeyType) -> (VaultStandin, String) {
    let vault = VaultStandin::start();
    let public = vault.add_key("transit", "cosign", kind);
    vault.add_token(
        SIGNER_TOKEN,
        &[
            ("transit/keys/cosign", &["read"]),
            ("transit/sign/cosign/*", &["update"]),
        ],
    );
    (vault, public)
}

/// Checks that the signature verifies with the key the stand-in holds, and not over other bytes.
fn assert_verifies(signature: &[u8], public: &PublicKey, standin_pem: &str) {
    let expected = PublicKey::from_pem(standin_pem, "stand-in key").expect("stand-in PEM");
    assert_eq!(
        public.der(),
        expected.der(),
        "the public key read from Vault"
    );
    assert!(public.verify(PAYLOAD, signature), "signature verifies");
    assert!(!public.verify(b"other payload", signature));
}

#[tokio::test]
async fn ecdsa_p256_sign_and_verify_with_token_from_env_on_the_standin() {
    let (vault, standin_pem) = vault_with_key(KeyType::EcdsaP256);
    let env = env(&[("VAULT_ADDR", &vault.addr()), ("VAULT_TOKEN", SIGNER_TOKEN)]);
    let (signature, public) = sign(&env, "hashivault://cosign").await.expect("signs");
    assert_verifies(&signature, &public, &standin_pem);
    assert_eq!(public.kind(), "ECDSA P-256");
    // An ASN.1 DER ECDSA signature (Vault's default marshaling), not r||s.
    assert_eq!(signature[0], 0x30);

    let requests = vault.requests();
    let paths: Vec<String> = requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.path()))
        .collect();
    assert_eq!(
        paths,
        [
            "GET /v1/transit/keys/cosign",
            "POST /v1/transit/sign/cosign/sha2-256"
        ]
    );
    for r in &requests {
        assert_eq!(r.header("x-vault-request"), Some("true"));
        assert_eq!(r.header("x-vault-token"), Some(SIGNER_TOKEN));
        assert_eq!(r.header("x-vault-namespace"), None);
    }
    // The request cosign sends: the SHA-256 digest, prehashed, PKCS#1 v1.5 for RSA.
    let body: serde_json::Value = serde_json::from_slice(&requests[1].body).unwrap();
    let digest = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(PAYLOAD));
    assert_eq!(body["input"], digest.as_str());
    assert_eq!(body["prehashed"], true);
    assert_eq!(body["signature_algorithm"], "pkcs1v15");
    assert_eq!(body["key_version"], 1);
}

#[tokio::test]
async fn rsa_ed25519_and_p384_keys_sign_verifiable_signatures_on_the_standin() {
    for kind in [KeyType::Rsa2048, KeyType::Ed25519, KeyType::EcdsaP384] {
        let (vault, standin_pem) = vault_with_key(kind);
        let env = env(&[("VAULT_ADDR", &vault.addr()), ("VAULT_TOKEN", SIGNER_TOKEN)]);
        let (signature, public) = sign(&env, "hashivault://cosign")
            .await
            .unwrap_or_else(|e| panic!("{kind:?}: {e}"));
        assert_verifies(&signature, &public, &standin_pem);
        let sign_request = vault.requests().pop().unwrap();
        let body: serde_json::Value = serde_json::from_slice(&sign_request.body).unwrap();
        match kind {
            // Ed25519 signs the payload itself: Vault takes it unhashed.
            KeyType::Ed25519 => {
                assert_eq!(public.kind(), "Ed25519");
                assert_eq!(body["prehashed"], false);
                assert_eq!(
                    body["input"],
                    base64::engine::general_purpose::STANDARD.encode(PAYLOAD)
                );
            }
            KeyType::EcdsaP384 => {
                assert_eq!(public.kind(), "ECDSA P-384");
                assert_eq!(sign_request.path(), "/v1/transit/sign/cosign/sha2-384");
            }
            _ => {
                assert_eq!(public.kind(), "RSA");
                assert_eq!(body["signature_algorithm"], "pkcs1v15");
            }
        }
    }
}

#[tokio::test]
async fn public_key_for_verification_comes_from_the_standin() {
    let (vault, standin_pem) = vault_with_key(KeyType::EcdsaP256);
    let env = env(&[("VAULT_ADDR", &vault.addr()), ("VAULT_TOKEN", SIGNER_TOKEN)]);
    let http = http();
    let ctx = KeyContext {
        http: &http,
        interactive: false,
        env: &env,
    };
    let public = keys::public_key(&KeyRef::parse("hashivault://cosign").unwrap(), &ctx)
        .await
        .expect("public key");
    assert_eq!(
        public.der(),
        PublicKey::from_pem(&standin_pem, "s").unwrap().der()
    );
    // Reading the public key signs nothing.
    assert!(
        vault
            .requests()
            .iter()
            .all(|r| r.method == "GET" && r.path() == "/v1/transit/keys/cosign")
    );
}

#[tokio::test]
async fn openbao_variables_and_scheme_work_on_the_standin() {
    let (vault, standin_pem) = vault_with_key(KeyType::EcdsaP256);
    let env = env(&[("BAO_ADDR", &vault.addr()), ("BAO_TOKEN", SIGNER_TOKEN)]);
    let (signature, public) = sign(&env, "openbao://cosign").await.expect("signs");
    assert_verifies(&signature, &public, &standin_pem);
}

#[tokio::test]
async fn token_from_the_vault_token_file_in_home_on_the_standin() {
    let (vault, standin_pem) = vault_with_key(KeyType::EcdsaP256);
    let home = testbed::temp_dir();
    // `vault login` writes the token without a newline; editors add one.
    write_token_file(home.path(), &format!("{SIGNER_TOKEN}\n"));
    let from_file = env(&[
        ("VAULT_ADDR", &vault.addr()),
        ("HOME", home.path().to_str().unwrap()),
    ]);
    let (signature, public) = sign(&from_file, "hashivault://cosign")
        .await
        .expect("signs");
    assert_verifies(&signature, &public, &standin_pem);
    assert!(
        vault
            .requests()
            .iter()
            .all(|r| r.header("x-vault-token") == Some(SIGNER_TOKEN))
    );

    // VAULT_AUTH_METHOD=token picks the file even when a login is configured.
    let explicit = env(&[
        ("VAULT_ADDR", &vault.addr()),
        ("HOME", home.path().to_str().unwrap()),
        ("VAULT_AUTH_METHOD", "token"),
        ("VAULT_AUTH_ROLE", "ci"),
        ("VAULT_ID_TOKEN", "gitlab-jwt-unused"),
    ]);
    sign(&explicit, "hashivault://cosign")
        .await
        .expect("signs with the token file");
    assert!(
        vault.requests().iter().all(|r| !r.path().contains("login")),
        "no login was tried"
    );

    // ...and says so when there is none.
    std::fs::remove_file(home.path().join(".vault-token")).unwrap();
    let err = sign_err(&explicit).await;
    assert!(matches!(err, KeyError::NotConfigured { .. }), "{err}");
    assert!(err.to_string().contains("no ~/.vault-token file"), "{err}");
}

#[tokio::test]
async fn jwt_login_with_gitlab_id_token_on_the_standin() {
    let (vault, standin_pem) = vault_with_key(KeyType::EcdsaP256);
    let gitlab_jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJwcm9qZWN0X3BhdGg6Z3JvdXAvYXBwIn0.gitlab-sig";
    vault.add_login(
        "jwt",
        "ci-signer",
        Accept::Jwt(gitlab_jwt.into()),
        SIGNER_TOKEN,
    );
    let home = testbed::temp_dir();
    // A stale ~/.vault-token must not win over the configured login.
    write_token_file(home.path(), "hvs.stale-token-from-a-developer");
    let env = env(&[
        ("VAULT_ADDR", &vault.addr()),
        ("VAULT_AUTH_ROLE", "ci-signer"),
        ("VAULT_ID_TOKEN", gitlab_jwt),
        ("HOME", home.path().to_str().unwrap()),
    ]);
    let (signature, public) = sign(&env, "hashivault://cosign").await.expect("signs");
    assert_verifies(&signature, &public, &standin_pem);

    let requests = vault.requests();
    assert_eq!(requests[0].path(), "/v1/auth/jwt/login");
    assert_eq!(requests[0].header("x-vault-token"), None);
    assert_eq!(requests[0].header("x-vault-request"), Some("true"));
    let body: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({ "role": "ci-signer", "jwt": gitlab_jwt })
    );
    assert!(
        requests[1..]
            .iter()
            .all(|r| r.header("x-vault-token") == Some(SIGNER_TOKEN)),
        "the token from the login is used"
    );
}

#[tokio::test]
async fn github_actions_oidc_login_on_the_standin() {
    let (vault, standin_pem) = vault_with_key(KeyType::EcdsaP256);
    let request_token = "ghs_stand-in-request-token-0001";
    let request_url = vault.enable_github_oidc(request_token);
    // Default audience: the Vault address; a custom auth mount.
    vault.add_login(
        "github-jwt",
        "gh-signer",
        Accept::GitHubAudience(vault.addr()),
        SIGNER_TOKEN,
    );
    let env_default = env(&[
        ("VAULT_ADDR", &vault.addr()),
        ("VAULT_AUTH_ROLE", "gh-signer"),
        ("VAULT_AUTH_PATH", "github-jwt"),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", &request_url),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", request_token),
    ]);
    let (signature, public) = sign(&env_default, "hashivault://cosign")
        .await
        .expect("signs");
    assert_verifies(&signature, &public, &standin_pem);
    assert_eq!(vault.github_audiences(), [vault.addr()]);
    let github = &vault.requests()[0];
    assert_eq!(github.query("api-version").as_deref(), Some("2.0"));
    assert_eq!(
        github.header("authorization"),
        Some(format!("bearer {request_token}").as_str())
    );
    assert_eq!(vault.requests()[1].path(), "/v1/auth/github-jwt/login");

    // VAULT_AUDIENCE names another audience; VAULT_AUTH_METHOD=jwt selects the login outright.
    vault.add_login(
        "jwt",
        "gh-custom",
        Accept::GitHubAudience("https://vault.example.com".into()),
        SIGNER_TOKEN,
    );
    let env_custom = env(&[
        ("VAULT_ADDR", &vault.addr()),
        ("VAULT_AUTH_METHOD", "jwt"),
        ("VAULT_AUTH_ROLE", "gh-custom"),
        ("VAULT_AUDIENCE", "https://vault.example.com"),
        ("ACTIONS_ID_TOKEN_REQUEST_URL", &request_url),
        ("ACTIONS_ID_TOKEN_REQUEST_TOKEN", request_token),
    ]);
    sign(&env_custom, "hashivault://cosign")
        .await
        .expect("signs with a custom audience");
    assert_eq!(
        vault.github_audiences(),
        [vault.addr(), "https://vault.example.com".to_string()]
    );
}

#[tokio::test]
async fn kubernetes_login_with_the_service_account_token_on_the_standin() {
    let (vault, standin_pem) = vault_with_key(KeyType::EcdsaP256);
    let sa_token = "eyJhbGciOiJSUzI1NiIsImtpZCI6InN0YW5kLWluIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Y2k6dGVrdG9uIn0.sa-sig";
    vault.add_login(
        "kubernetes",
        "tekton",
        Accept::Jwt(sa_token.into()),
        SIGNER_TOKEN,
    );
    let sa_dir = testbed::temp_dir();
    testbed::write_file(sa_dir.path(), "token", sa_token);
    let sa = sa_dir.path().to_str().unwrap();

    // Found by itself when a role is set and nothing else is there...
    let auto = env(&[
        ("VAULT_ADDR", &vault.addr()),
        ("VAULT_AUTH_ROLE", "tekton"),
        ("IMAGEGATE_SERVICEACCOUNT_DIR", sa),
    ]);
    let (signature, public) = sign(&auto, "hashivault://cosign").await.expect("signs");
    assert_verifies(&signature, &public, &standin_pem);
    let login = &vault.requests()[0];
    assert_eq!(login.path(), "/v1/auth/kubernetes/login");
    let body: serde_json::Value = serde_json::from_slice(&login.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({ "role": "tekton", "jwt": sa_token })
    );

    // ...and chosen outright with VAULT_AUTH_METHOD=kubernetes even when VAULT_ID_TOKEN is set.
    let explicit = env(&[
        ("VAULT_ADDR", &vault.addr()),
        ("VAULT_AUTH_METHOD", "kubernetes"),
        ("VAULT_AUTH_ROLE", "tekton"),
        ("VAULT_ID_TOKEN", "some-other-jwt"),
        ("IMAGEGATE_SERVICEACCOUNT_DIR", sa),
    ]);
    sign(&explicit, "hashivault://cosign")
        .await
        .expect("signs with the kubernetes login");
    let logins: Vec<String> = vault
        .requests()
        .iter()
        .filter(|r| r.path().ends_with("/login"))
        .map(|r| r.path().to_string())
        .collect();
    assert_eq!(
        logins,
        ["/v1/auth/kubernetes/login", "/v1/auth/kubernetes/login"]
    );
}

#[tokio::test]
async fn gitlab_id_token_comes_before_the_service_account_on_the_standin() {
    let (vault, _) = vault_with_key(KeyType::EcdsaP256);
    vault.add_login(
        "jwt",
        "ci",
        Accept::Jwt("gitlab-jwt-0001".into()),
        SIGNER_TOKEN,
    );
    let sa_dir = testbed::temp_dir();
    testbed::write_file(sa_dir.path(), "token", "service-account-jwt");
    let env = env(&[
        ("VAULT_ADDR", &vault.addr()),
        ("VAULT_AUTH_ROLE", "ci"),
        ("VAULT_ID_TOKEN", "gitlab-jwt-0001"),
        (
            "IMAGEGATE_SERVICEACCOUNT_DIR",
            sa_dir.path().to_str().unwrap(),
        ),
    ]);
    sign(&env, "hashivault://cosign").await.expect("signs");
    assert_eq!(vault.requests()[0].path(), "/v1/auth/jwt/login");
}

#[tokio::test]
async fn namespace_header_and_custom_mount_on_the_standin() {
    let vault = VaultStandin::start();
    let standin_pem = vault.add_key("team/transit", "cosign", KeyType::EcdsaP256);
    vault.add_token(
        SIGNER_TOKEN,
        &[
            ("team/transit/keys/cosign", &["read"]),
            ("team/transit/sign/cosign/sha2-256", &["update"]),
        ],
    );
    vault.require_namespace("admin/ci");
    let env = env(&[
        ("VAULT_ADDR", &vault.addr()),
        ("VAULT_TOKEN", SIGNER_TOKEN),
        ("VAULT_NAMESPACE", "admin/ci"),
        ("TRANSIT_SECRET_ENGINE_PATH", "team/transit/"),
    ]);
    let (signature, public) = sign(&env, "hashivault://cosign").await.expect("signs");
    assert_verifies(&signature, &public, &standin_pem);
    let requests = vault.requests();
    assert_eq!(requests[1].path(), "/v1/team/transit/sign/cosign/sha2-256");
    assert!(
        requests
            .iter()
            .all(|r| r.header("x-vault-namespace") == Some("admin/ci"))
    );
}

#[tokio::test]
async fn a_policy_without_sign_gets_a_403_naming_the_capability_on_the_standin() {
    let vault = VaultStandin::start();
    vault.add_key("transit", "cosign", KeyType::EcdsaP256);
    // The least-privilege policy of cosign#2646: the sign path without the hash suffix.
    vault.add_token(
        SIGNER_TOKEN,
        &[
            ("transit/keys/cosign", &["read"]),
            ("transit/sign/cosign", &["update"]),
        ],
    );
    let env = env(&[("VAULT_ADDR", &vault.addr()), ("VAULT_TOKEN", SIGNER_TOKEN)]);
    let err = sign_err(&env).await;
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "POST {}/v1/transit/sign/cosign/sha2-256 was refused (403 Forbidden: permission denied)",
            vault.addr()
        )),
        "{text}"
    );
    assert!(
        text.contains(r#"path "transit/sign/cosign/sha2-256" { capabilities = ["update"] }"#),
        "{text}"
    );
    assert!(text.contains("(from VAULT_TOKEN)"), "{text}");
    assert!(!err.is_transient(), "a 403 is not retried");
    assert_eq!(Error::from(err).exit(), Exit::Incomplete);
    // Refused once, not retried.
    assert_eq!(vault.requests().len(), 2);
    assert_no_secret(&text, &[SIGNER_TOKEN]);
}

#[tokio::test]
async fn a_policy_without_read_gets_a_403_naming_the_keys_path_on_the_standin() {
    let vault = VaultStandin::start();
    vault.add_key("transit", "cosign", KeyType::EcdsaP256);
    vault.add_token(SIGNER_TOKEN, &[("transit/sign/cosign/*", &["update"])]);
    let env = env(&[("VAULT_ADDR", &vault.addr()), ("VAULT_TOKEN", SIGNER_TOKEN)]);
    let text = sign_err(&env).await.to_string();
    assert!(
        text.contains(r#"path "transit/keys/cosign" { capabilities = ["read"] }"#),
        "{text}"
    );
    assert_no_secret(&text, &[SIGNER_TOKEN]);
}

#[tokio::test]
async fn a_missing_key_or_mount_is_named_on_the_standin() {
    let vault = VaultStandin::start();
    vault.add_key("transit", "other", KeyType::EcdsaP256);
    vault.add_token(SIGNER_TOKEN, &[("*", &["read", "update"])]);
    let missing_key = sign_err(&env(&[
        ("VAULT_ADDR", &vault.addr()),
        ("VAULT_TOKEN", SIGNER_TOKEN),
    ]))
    .await;
    let text = missing_key.to_string();
    assert!(text.contains("404 Not Found"), "{text}");
    assert!(
        text.contains("the transit key 'cosign' does not exist under the mount 'transit'"),
        "{text}"
    );
    assert!(!missing_key.is_transient());

    let missing_mount = sign_err(&env(&[
        ("VAULT_ADDR", &vault.addr()),
        ("VAULT_TOKEN", SIGNER_TOKEN),
        ("TRANSIT_SECRET_ENGINE_PATH", "nowhere"),
    ]))
    .await
    .to_string();
    assert!(
        missing_mount.contains("no secrets engine is mounted at 'nowhere/'"),
        "{missing_mount}"
    );
    assert!(
        missing_mount.contains("TRANSIT_SECRET_ENGINE_PATH"),
        "{missing_mount}"
    );
}

#[tokio::test]
async fn a_sealed_vault_is_retried_until_it_answers_on_the_standin() {
    let (vault, standin_pem) = vault_with_key(KeyType::EcdsaP256);
    vault.fail_next(&[503, 503]);
    let env = env(&[("VAULT_ADDR", &vault.addr()), ("VAULT_TOKEN", SIGNER_TOKEN)]);
    let (signature, public) = sign(&env, "hashivault://cosign")
        .await
        .expect("signs after two 503s");
    assert_verifies(&signature, &public, &standin_pem);
    let keys_reads = vault
        .requests()
        .iter()
        .filter(|r| r.path() == "/v1/transit/keys/cosign")
        .count();
    assert_eq!(keys_reads, 3, "two 503s, then the answer");

    // More 503s than retries: a transient error that says how often it tried.
    vault.fail_next(&[503, 503, 503]);
    let err = sign_err(&env).await;
    assert!(err.is_transient());
    let text = err.to_string();
    assert!(
        text.contains("503 Service Unavailable: Vault is sealed"),
        "{text}"
    );
    assert!(text.contains("gave up after 3 attempts"), "{text}");
}

#[tokio::test]
async fn an_unreachable_vault_is_retried_then_reported_as_transient() {
    let addr = format!("http://127.0.0.1:{}", closed_port());
    let env = env(&[("VAULT_ADDR", &addr), ("VAULT_TOKEN", SIGNER_TOKEN)]);
    let err = sign_err(&env).await;
    assert!(err.is_transient(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains(&format!("GET {addr}/v1/transit/keys/cosign failed")),
        "{text}"
    );
    assert!(text.contains("gave up after 3 attempts"), "{text}");
    assert!(text.contains("check the address"), "{text}");
    assert_eq!(Error::from(err).exit(), Exit::Incomplete);
    assert_no_secret(&text, &[SIGNER_TOKEN]);
}

#[tokio::test]
async fn missing_settings_are_not_configured_errors_naming_the_variable() {
    let err = sign_err(&env(&[("VAULT_TOKEN", SIGNER_TOKEN)])).await;
    assert!(matches!(err, KeyError::NotConfigured { .. }), "{err:?}");
    assert!(err.to_string().contains("VAULT_ADDR"), "{err}");
    assert_eq!(Error::from(err).exit(), Exit::BadInput);

    // A Vault address but no token anywhere: the message lists the ways to get one.
    let vault = VaultStandin::start();
    let home = testbed::temp_dir();
    let err = sign_err(&env(&[
        ("VAULT_ADDR", &vault.addr()),
        ("HOME", home.path().to_str().unwrap()),
    ]))
    .await;
    let text = err.to_string();
    assert!(matches!(err, KeyError::NotConfigured { .. }), "{text}");
    assert!(text.contains("VAULT_TOKEN"), "{text}");
    assert!(text.contains("VAULT_AUTH_ROLE"), "{text}");
    assert!(vault.requests().is_empty(), "nothing was sent");

    // A JWT but no role.
    let err = sign_err(&env(&[
        ("VAULT_ADDR", &vault.addr()),
        ("HOME", home.path().to_str().unwrap()),
        ("VAULT_ID_TOKEN", "gitlab-jwt-0002"),
    ]))
    .await
    .to_string();
    assert!(
        err.contains("VAULT_AUTH_ROLE is probably what is missing"),
        "{err}"
    );
    assert_no_secret(&err, &["gitlab-jwt-0002"]);

    let err = sign_err(&env(&[
        ("VAULT_ADDR", &vault.addr()),
        ("VAULT_AUTH_METHOD", "jwt"),
        ("VAULT_ID_TOKEN", "gitlab-jwt-0003"),
    ]))
    .await;
    assert!(matches!(err, KeyError::NotConfigured { .. }));
    assert!(err.to_string().contains("needs VAULT_AUTH_ROLE"), "{err}");

    let err = sign_err(&env(&[
        ("VAULT_ADDR", &vault.addr()),
        ("VAULT_AUTH_METHOD", "ldap"),
    ]))
    .await;
    assert!(
        err.to_string().contains("use token, jwt or kubernetes"),
        "{err}"
    );
}

#[tokio::test]
async fn a_failed_login_names_path_role_and_status_but_never_the_jwt() {
    let (vault, _) = vault_with_key(KeyType::EcdsaP256);
    let jwt = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhIn0.secret-part-of-the-jwt";
    vault.add_login(
        "jwt",
        "ci",
        Accept::Jwt("a-different-jwt".into()),
        SIGNER_TOKEN,
    );
    let base = [
        ("VAULT_ADDR", vault.addr()),
        ("VAULT_ID_TOKEN", jwt.to_string()),
    ];
    let with_role = |role: &str| {
        let mut vars: Vec<(&str, &str)> = base.iter().map(|(k, v)| (*k, v.as_str())).collect();
        vars.push(("VAULT_AUTH_ROLE", role));
        env(&vars)
    };

    // The JWT is not accepted by the role.
    let err = sign_err(&with_role("ci")).await;
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "POST {}/v1/auth/jwt/login was refused (400 Bad Request",
            vault.addr()
        )),
        "{text}"
    );
    assert!(text.contains("invalid audience"), "{text}");
    assert!(text.contains("role 'ci'"), "{text}");
    assert!(text.contains("auth/jwt"), "{text}");
    assert!(!err.is_transient());
    assert_no_secret(&text, &[jwt]);
    assert_no_secret(&format!("{err:?}"), &[jwt]);

    // The role does not exist.
    let text = sign_err(&with_role("nobody")).await.to_string();
    assert!(
        text.contains(r#"role "nobody" could not be found"#),
        "{text}"
    );
    assert_no_secret(&text, &[jwt]);
}

#[tokio::test]
async fn vault_cacert_and_skip_verify_with_the_tls_standin() {
    let vault = VaultStandin::start_tls();
    let standin_pem = vault.add_key("transit", "cosign", KeyType::EcdsaP256);
    vault.add_token(
        SIGNER_TOKEN,
        &[
            ("transit/keys/cosign", &["read"]),
            ("transit/sign/cosign/sha2-256", &["update"]),
        ],
    );
    let dir = testbed::temp_dir();
    let ca_file = vault.ca().write(dir.path(), "vault-ca.pem");

    // Without the CA: a certificate error that says what to set, not retried.
    let err = sign_err(&env(&[
        ("VAULT_ADDR", &vault.addr()),
        ("VAULT_TOKEN", SIGNER_TOKEN),
    ]))
    .await;
    let text = err.to_string();
    assert!(text.contains("VAULT_CACERT"), "{text}");
    assert!(!err.is_transient(), "{text}");
    assert_eq!(vault.requests().len(), 0, "no request got through TLS");

    // With VAULT_CACERT.
    let (signature, public) = sign(
        &env(&[
            ("VAULT_ADDR", &vault.addr()),
            ("VAULT_TOKEN", SIGNER_TOKEN),
            ("VAULT_CACERT", ca_file.to_str().unwrap()),
        ]),
        "hashivault://cosign",
    )
    .await
    .expect("signs over TLS with VAULT_CACERT");
    assert_verifies(&signature, &public, &standin_pem);

    // With VAULT_SKIP_VERIFY=true.
    let (signature, public) = sign(
        &env(&[
            ("VAULT_ADDR", &vault.addr()),
            ("VAULT_TOKEN", SIGNER_TOKEN),
            ("VAULT_SKIP_VERIFY", "true"),
        ]),
        "hashivault://cosign",
    )
    .await
    .expect("signs over TLS with VAULT_SKIP_VERIFY");
    assert_verifies(&signature, &public, &standin_pem);

    let err = sign_err(&env(&[
        ("VAULT_ADDR", &vault.addr()),
        ("VAULT_TOKEN", SIGNER_TOKEN),
        ("VAULT_SKIP_VERIFY", "sure"),
    ]))
    .await;
    assert!(matches!(err, KeyError::NotConfigured { .. }), "{err}");
}

#[tokio::test]
async fn the_token_never_shows_in_debug_output_on_the_standin() {
    let (vault, _) = vault_with_key(KeyType::EcdsaP256);
    let env = env(&[("VAULT_ADDR", &vault.addr()), ("VAULT_TOKEN", SIGNER_TOKEN)]);
    let http = http();
    let ctx = KeyContext {
        http: &http,
        interactive: false,
        env: &env,
    };
    let key = keys::vault::VaultKey::connect("cosign", &ctx)
        .await
        .expect("connects");
    let debug = format!("{key:?}");
    assert!(debug.contains("cosign"), "{debug}");
    assert!(debug.contains("from VAULT_TOKEN"), "{debug}");
    assert_no_secret(&debug, &[SIGNER_TOKEN]);
}

#[track_caller]
fn assert_no_secret(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "a secret leaked into: {text}");
    }
}
