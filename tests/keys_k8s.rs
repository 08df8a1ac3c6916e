//! `k8s://NAMESPACE/SECRET` through the library API, against the Kubernetes API stand-in
//! (`testbed::k8s_standin`): no real API server can be installed on the test machines, so every
//! test here talks to the stand-in, which serves real TLS with its own cluster CA, checks bearer
//! tokens and client certificates, enforces RBAC verbs and answers Kubernetes `Status` errors.
//! The keys are real cosign key pairs made with `imagegate::keys::file::generate`.

mod testbed;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use imagegate::error::{Error, Exit};
use imagegate::http::{Http, NetworkSettings, Transient};
use imagegate::keys::{self, Environment, KeyContext, KeyError, KeyRef, PublicKey, k8s};
use imagegate::secret::Secret;
use testbed::k8s_standin::K8sStandin;
use testbed::{temp_dir, write_file};

const NS: &str = "ci";
const TOKEN: &str = "k8s-bearer-token-alice-0001";
const PASSWORD: &str = "correct horse battery";
const PAYLOAD: &[u8] =
    b"{\"critical\":{\"type\":\"cosign container image signature\"},\"optional\":null}";

fn http() -> Http {
    Http::new(NetworkSettings {
        retries: 2,
        timeout: Duration::from_secs(20),
        ..Default::default()
    })
    .expect("http setup")
}

fn env(vars: &[(&str, &str)]) -> Environment {
    let mut all: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // Credential plugins are shell scripts: they need a PATH.
    all.push(("PATH".into(), std::env::var("PATH").unwrap_or_default()));
    Environment::from_vars(all)
}

/// A stand-in cluster with namespace `ci`, user alice (bearer TOKEN) allowed to get Secrets
/// there, and the Secret `ci/cosign` holding a key pair encrypted with PASSWORD. Returns the
/// public key PEM too.
fn cluster_with_key() -> (K8sStandin, String) {
    let k8s = K8sStandin::start();
    k8s.add_namespace(NS);
    k8s.add_token(TOKEN, "alice");
    k8s.allow("alice", "get", NS);
    let (private, public) = keys::file::generate(&Secret::new(PASSWORD)).expect("key pair");
    k8s.put_secret(
        NS,
        "cosign",
        &[
            ("cosign.key", private.as_bytes()),
            ("cosign.password", PASSWORD.as_bytes()),
            ("cosign.pub", public.as_bytes()),
        ],
    );
    (k8s, public)
}

/// Writes `kubeconfig` into `dir` and returns an environment that uses it.
fn kubeconfig_env(dir: &Path, kubeconfig: &str) -> Environment {
    let path = write_file(dir, "config", kubeconfig);
    env(&[
        ("KUBECONFIG", path.to_str().unwrap()),
        ("HOME", dir.to_str().unwrap()),
    ])
}

fn token_user() -> String {
    format!("    token: {TOKEN}")
}

async fn sign(env: &Environment, uri: &str) -> Result<(Vec<u8>, PublicKey), KeyError> {
    let http = http();
    let ctx = KeyContext {
        http: &http,
        interactive: false,
        env,
    };
    let signer = keys::signer(&KeyRef::parse(uri).expect("key URI"), &ctx).await?;
    let signature = signer.sign(PAYLOAD).await?;
    Ok((signature, signer.public_key().clone()))
}

async fn public_key(env: &Environment, uri: &str) -> Result<PublicKey, KeyError> {
    let http = http();
    let ctx = KeyContext {
        http: &http,
        interactive: false,
        env,
    };
    keys::public_key(&KeyRef::parse(uri).expect("key URI"), &ctx).await
}

async fn create(
    env: &Environment,
    namespace: &str,
    name: &str,
    private: &str,
    public: &str,
    password: &str,
) -> Result<(), KeyError> {
    let http = http();
    let ctx = KeyContext {
        http: &http,
        interactive: false,
        env,
    };
    k8s::create_key_pair(
        namespace,
        name,
        private,
        public,
        &Secret::new(password),
        &ctx,
    )
    .await
}

fn expect_err<T>(result: Result<T, KeyError>) -> KeyError {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

#[track_caller]
fn assert_verifies(signature: &[u8], public: &PublicKey, pem: &str) {
    let expected = PublicKey::from_pem(pem, "cosign.pub").unwrap();
    assert_eq!(public.der(), expected.der());
    assert!(public.verify(PAYLOAD, signature));
    assert!(!public.verify(b"something else", signature));
}

#[track_caller]
fn assert_no_secret(text: &str, secrets: &[&str]) {
    for secret in secrets {
        assert!(!text.contains(secret), "a secret leaked into: {text}");
    }
}

#[tokio::test]
async fn kubeconfig_token_signs_with_the_secrets_key_on_the_standin() {
    let (k8s, public_pem) = cluster_with_key();
    let dir = temp_dir();
    let env = kubeconfig_env(dir.path(), &k8s.kubeconfig(&token_user()));
    let (signature, public) = sign(&env, "k8s://ci/cosign").await.expect("signs");
    assert_verifies(&signature, &public, &public_pem);

    // cosign.pub, for verifying, is the same key.
    let verifying = public_key(&env, "k8s://ci/cosign")
        .await
        .expect("public key");
    assert_eq!(verifying.der(), public.der());
    assert!(verifying.verify(PAYLOAD, &signature));

    let seen = k8s.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!(
            (s.method.as_str(), s.path.as_str(), s.auth),
            ("GET", "/api/v1/namespaces/ci/secrets/cosign", "bearer")
        );
        assert_eq!(s.user.as_deref(), Some("alice"));
    }
}

#[tokio::test]
async fn client_certificate_data_and_file_forms_on_the_standin() {
    let (k8s, public_pem) = cluster_with_key();
    k8s.allow("bob", "get", NS);
    let (cert, key) = k8s.client_certificate("bob");
    let b64 = base64::engine::general_purpose::STANDARD;

    // Inline, base64 as kubectl writes them.
    let dir = temp_dir();
    let user = format!(
        "    client-certificate-data: {}\n    client-key-data: {}",
        b64.encode(&cert),
        b64.encode(&key)
    );
    let env_data = kubeconfig_env(dir.path(), &k8s.kubeconfig(&user));
    let (signature, public) = sign(&env_data, "k8s://ci/cosign").await.expect("signs");
    assert_verifies(&signature, &public, &public_pem);

    // Files, named relative to the kubeconfig's folder.
    let dir = temp_dir();
    write_file(dir.path(), "bob.crt", &cert);
    write_file(dir.path(), "bob.key", &key);
    let user = "    client-certificate: bob.crt\n    client-key: bob.key";
    let env_files = kubeconfig_env(dir.path(), &k8s.kubeconfig(user));
    let (signature, public) = sign(&env_files, "k8s://ci/cosign").await.expect("signs");
    assert_verifies(&signature, &public, &public_pem);

    let seen = k8s.seen();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|s| s.auth == "certificate" && s.user.as_deref() == Some("bob"))
    );

    // A certificate without its key is a configuration error.
    let dir = temp_dir();
    write_file(dir.path(), "bob.crt", &cert);
    let env_half = kubeconfig_env(
        dir.path(),
        &k8s.kubeconfig("    client-certificate: bob.crt"),
    );
    let err = expect_err(sign(&env_half, "k8s://ci/cosign").await);
    assert!(matches!(err, KeyError::NotConfigured { .. }), "{err}");
    assert!(err.to_string().contains("without its key"), "{err}");
}

/// Writes an executable shell script.
fn script(dir: &Path, name: &str, body: &str) {
    let path = write_file(dir, name, &format!("#!/bin/sh\n{body}\n"));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[tokio::test]
async fn exec_plugin_token_on_the_standin() {
    let (k8s, public_pem) = cluster_with_key();
    let dir = temp_dir();
    let info = dir.path().join("exec-info.json");
    // A stand-in credential plugin, as `aws eks get-token` is one: it records what it was given
    // and prints an ExecCredential with the token from its env.
    script(
        dir.path(),
        "get-token.sh",
        &format!(
            "printf '%s' \"$KUBERNETES_EXEC_INFO\" > '{}'\n\
             [ \"$1\" = --cluster ] && [ \"$2\" = standin ] || exit 7\n\
             printf '{{\"apiVersion\":\"client.authentication.k8s.io/v1beta1\",\"kind\":\"ExecCredential\",\"status\":{{\"token\":\"%s\",\"expirationTimestamp\":\"2999-01-01T00:00:00Z\"}}}}' \"$PLUGIN_TOKEN\"",
            info.display()
        ),
    );
    let user = format!(
        "    exec:\n\
         \x20     apiVersion: client.authentication.k8s.io/v1beta1\n\
         \x20     command: ./get-token.sh\n\
         \x20     args: [--cluster, standin]\n\
         \x20     env:\n\
         \x20     - name: PLUGIN_TOKEN\n\
         \x20       value: {TOKEN}\n\
         \x20     provideClusterInfo: true\n\
         \x20     interactiveMode: Never"
    );
    let env = kubeconfig_env(dir.path(), &k8s.kubeconfig(&user));
    let (signature, public) = sign(&env, "k8s://ci/cosign").await.expect("signs");
    assert_verifies(&signature, &public, &public_pem);
    assert_eq!(k8s.seen()[0].auth, "bearer");

    let exec_info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&info).unwrap()).unwrap();
    assert_eq!(
        exec_info["apiVersion"],
        "client.authentication.k8s.io/v1beta1"
    );
    assert_eq!(exec_info["kind"], "ExecCredential");
    assert_eq!(exec_info["spec"]["interactive"], false);
    assert_eq!(
        exec_info["spec"]["cluster"]["server"],
        k8s.server().as_str()
    );
    let ca = base64::engine::general_purpose::STANDARD
        .decode(
            exec_info["spec"]["cluster"]["certificate-authority-data"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
    assert_eq!(ca, k8s.ca.pem().as_bytes());
}

#[tokio::test]
async fn exec_plugin_client_certificate_on_the_standin() {
    let (k8s, public_pem) = cluster_with_key();
    k8s.allow("carol", "get", NS);
    let (cert, key) = k8s.client_certificate("carol");
    let dir = temp_dir();
    let credential = serde_json::json!({
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": { "clientCertificateData": cert, "clientKeyData": key },
    });
    let credential_file = write_file(dir.path(), "credential.json", &credential.to_string());
    script(
        dir.path(),
        "cert-plugin",
        &format!("cat '{}'", credential_file.display()),
    );
    let user = format!(
        "    exec:\n\
         \x20     apiVersion: client.authentication.k8s.io/v1\n\
         \x20     command: {}\n\
         \x20     interactiveMode: IfAvailable",
        dir.path().join("cert-plugin").display()
    );
    let env = kubeconfig_env(dir.path(), &k8s.kubeconfig(&user));
    let (signature, public) = sign(&env, "k8s://ci/cosign").await.expect("signs");
    assert_verifies(&signature, &public, &public_pem);
    let seen = k8s.seen();
    assert_eq!(
        (seen[0].auth, seen[0].user.as_deref()),
        ("certificate", Some("carol"))
    );
}

#[tokio::test]
async fn failing_or_missing_exec_plugins_are_explained() {
    let (k8s, _) = cluster_with_key();
    let dir = temp_dir();
    script(
        dir.path(),
        "expired.sh",
        "echo 'Error: the SSO session has expired; run aws sso login' >&2\nexit 255",
    );
    let plugin = |command: &str| {
        format!(
            "    exec:\n\
             \x20     apiVersion: client.authentication.k8s.io/v1\n\
             \x20     command: {command}\n\
             \x20     installHint: install the stand-in plugin with the test bed"
        )
    };
    let env = kubeconfig_env(dir.path(), &k8s.kubeconfig(&plugin("./expired.sh")));
    let err = expect_err(sign(&env, "k8s://ci/cosign").await);
    let text = err.to_string();
    assert!(
        text.contains("the credential plugin `./expired.sh` of user 'standin-user' failed"),
        "{text}"
    );
    assert!(text.contains("run aws sso login"), "{text}");
    assert!(!err.is_transient());

    let env = kubeconfig_env(
        dir.path(),
        &k8s.kubeconfig(&plugin("imagegate-no-such-plugin")),
    );
    let err = expect_err(sign(&env, "k8s://ci/cosign").await);
    assert!(matches!(err, KeyError::NotConfigured { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("was not found"), "{text}");
    assert!(
        text.contains("install the stand-in plugin with the test bed"),
        "{text}"
    );
    assert!(k8s.seen().is_empty(), "no request without credentials");
}

#[tokio::test]
async fn in_cluster_service_account_on_the_standin() {
    let (k8s, public_pem) = cluster_with_key();
    let sa = temp_dir();
    write_file(sa.path(), "token", &format!("{TOKEN}\n"));
    k8s.ca.write(sa.path(), "ca.crt");
    let home = temp_dir();
    let port = k8s.port().to_string();
    let env = env(&[
        ("KUBERNETES_SERVICE_HOST", "127.0.0.1"),
        ("KUBERNETES_SERVICE_PORT", &port),
        ("IMAGEGATE_SERVICEACCOUNT_DIR", sa.path().to_str().unwrap()),
        ("HOME", home.path().to_str().unwrap()),
    ]);
    let (signature, public) = sign(&env, "k8s://ci/cosign").await.expect("signs");
    assert_verifies(&signature, &public, &public_pem);
    assert_eq!(k8s.seen()[0].user.as_deref(), Some("alice"));

    // Without the token file: a configuration error naming the file.
    std::fs::remove_file(sa.path().join("token")).unwrap();
    let err = expect_err(sign(&env, "k8s://ci/cosign").await);
    assert!(matches!(err, KeyError::NotConfigured { .. }), "{err}");
    assert!(err.to_string().contains("service-account token"), "{err}");
}

#[tokio::test]
async fn keys_without_a_password_or_a_public_key_work_as_cosign_reads_them_on_the_standin() {
    let k8s = K8sStandin::start();
    k8s.add_token(TOKEN, "alice");
    k8s.allow("alice", "get", NS);
    // No cosign.password: the key was sealed with an empty password, as cosign assumes.
    let (private, public_pem) = keys::file::generate(&Secret::new("")).unwrap();
    k8s.put_secret(NS, "nopass", &[("cosign.key", private.as_bytes())]);
    let dir = temp_dir();
    let env = kubeconfig_env(dir.path(), &k8s.kubeconfig(&token_user()));
    let (signature, public) = sign(&env, "k8s://ci/nopass").await.expect("signs");
    assert_verifies(&signature, &public, &public_pem);
    // No cosign.pub either: the public key is derived from cosign.key.
    let derived = public_key(&env, "k8s://ci/nopass").await.expect("derived");
    assert_eq!(derived.der(), public.der());

    // A wrong cosign.password is a wrong password, naming the Secret.
    let (private, _) = keys::file::generate(&Secret::new("right")).unwrap();
    k8s.put_secret(
        NS,
        "wrongpass",
        &[
            ("cosign.key", private.as_bytes()),
            ("cosign.password", b"wrong"),
        ],
    );
    let err = expect_err(sign(&env, "k8s://ci/wrongpass").await);
    assert!(matches!(err, KeyError::WrongPassword { .. }), "{err}");
    assert!(err.to_string().contains("k8s://ci/wrongpass"), "{err}");

    // A Secret without cosign.key says what it holds and how to make one.
    k8s.put_secret(NS, "other", &[("username", b"x")]);
    let err = expect_err(sign(&env, "k8s://ci/other").await);
    let text = err.to_string();
    assert!(
        text.contains("no cosign.key (it holds: username)"),
        "{text}"
    );
    assert!(
        text.contains("imagegate generate-key-pair k8s://ci/other"),
        "{text}"
    );
}

#[tokio::test]
async fn create_key_pair_then_read_it_back_on_the_standin() {
    let k8s = K8sStandin::start();
    k8s.add_namespace(NS);
    k8s.add_token(TOKEN, "alice");
    k8s.allow("alice", "create", NS);
    k8s.allow("alice", "get", NS);
    let dir = temp_dir();
    let env = kubeconfig_env(dir.path(), &k8s.kubeconfig(&token_user()));
    let (private, public_pem) = keys::file::generate(&Secret::new(PASSWORD)).unwrap();
    create(&env, NS, "fresh", &private, &public_pem, PASSWORD)
        .await
        .expect("creates");

    // Stored as cosign stores it: the three entries, base64, immutable, type Opaque.
    let stored = k8s.secret(NS, "fresh").expect("stored");
    assert_eq!(stored["immutable"], true);
    assert_eq!(stored["type"], "Opaque");
    let data = stored["data"].as_object().unwrap();
    let mut names: Vec<&str> = data.keys().map(String::as_str).collect();
    names.sort();
    assert_eq!(names, ["cosign.key", "cosign.password", "cosign.pub"]);
    let b64 = base64::engine::general_purpose::STANDARD;
    let decoded = |k: &str| b64.decode(data[k].as_str().unwrap()).unwrap();
    assert_eq!(decoded("cosign.key"), private.as_bytes());
    assert_eq!(decoded("cosign.password"), PASSWORD.as_bytes());
    assert_eq!(decoded("cosign.pub"), public_pem.as_bytes());

    // And it signs.
    let (signature, public) = sign(&env, "k8s://ci/fresh").await.expect("signs");
    assert_verifies(&signature, &public, &public_pem);
    assert_eq!(
        k8s.seen()[0].path,
        "/api/v1/namespaces/ci/secrets",
        "one POST to the namespace's secrets"
    );
}

#[tokio::test]
async fn an_existing_secret_is_never_replaced_on_the_standin() {
    let (k8s, public_pem) = cluster_with_key();
    k8s.allow("alice", "create", NS);
    let dir = temp_dir();
    let env = kubeconfig_env(dir.path(), &k8s.kubeconfig(&token_user()));
    let before = k8s.secret(NS, "cosign").unwrap();

    let new_password = "fresh-password-0042";
    let (private, other_public) = keys::file::generate(&Secret::new(new_password)).unwrap();
    let err = expect_err(create(&env, NS, "cosign", &private, &other_public, new_password).await);
    let text = err.to_string();
    assert!(
        text.contains("409 Conflict: secrets \"cosign\" already exists"),
        "{text}"
    );
    assert!(
        text.contains("kubectl delete secret cosign -n ci"),
        "{text}"
    );
    assert!(!err.is_transient());
    assert_eq!(k8s.secret(NS, "cosign").unwrap(), before, "left alone");
    assert_no_secret(&text, &[new_password, private.as_str()]);

    // The same key pair again (a retried POST that had succeeded): nothing to do.
    let b64 = base64::engine::general_purpose::STANDARD;
    let stored_key = b64
        .decode(before["data"]["cosign.key"].as_str().unwrap())
        .unwrap();
    let stored_key = String::from_utf8(stored_key).unwrap();
    create(&env, NS, "cosign", &stored_key, &public_pem, PASSWORD)
        .await
        .expect("the same key pair is already there");
}

#[tokio::test]
async fn forbidden_requests_name_the_missing_rbac_verb_on_the_standin() {
    let (k8s, public_pem) = cluster_with_key();
    k8s.add_token("token-of-dave", "dave");
    let dir = temp_dir();
    let env = kubeconfig_env(dir.path(), &k8s.kubeconfig("    token: token-of-dave"));

    let err = expect_err(sign(&env, "k8s://ci/cosign").await);
    let text = err.to_string();
    assert!(text.contains("403 Forbidden"), "{text}");
    assert!(
        text.contains("User \"dave\" cannot get resource \"secrets\""),
        "{text}"
    );
    assert!(
        text.contains("lacks the RBAC verb 'get' on 'secrets' in namespace 'ci'"),
        "{text}"
    );
    assert!(text.contains("--resource-name=cosign"), "{text}");
    assert!(!err.is_transient());
    assert_eq!(Error::from(err).exit(), Exit::Incomplete);

    let (private, _) = keys::file::generate(&Secret::new("pw")).unwrap();
    let err = expect_err(create(&env, NS, "new", &private, &public_pem, "pw").await);
    let text = err.to_string();
    assert!(text.contains("403 Forbidden"), "{text}");
    assert!(
        text.contains("lacks the RBAC verb 'create' on 'secrets' in namespace 'ci'"),
        "{text}"
    );
    assert!(
        text.contains("kubectl auth can-i create secrets -n ci"),
        "{text}"
    );
    assert_no_secret(&text, &["token-of-dave", private.as_str()]);
}

#[tokio::test]
async fn a_missing_secret_or_namespace_says_what_to_do_on_the_standin() {
    let (k8s, public_pem) = cluster_with_key();
    k8s.allow("alice", "create", "nowhere");
    let dir = temp_dir();
    let env = kubeconfig_env(dir.path(), &k8s.kubeconfig(&token_user()));

    let err = expect_err(sign(&env, "k8s://ci/absent").await);
    let text = err.to_string();
    assert!(
        text.contains("404 Not Found: secrets \"absent\" not found"),
        "{text}"
    );
    assert!(
        text.contains("the Secret 'absent' does not exist in namespace 'ci'"),
        "{text}"
    );
    assert!(
        text.contains("imagegate generate-key-pair k8s://ci/absent"),
        "{text}"
    );
    assert!(text.contains(&format!(
        "GET {}/api/v1/namespaces/ci/secrets/absent",
        k8s.server()
    )));

    let (private, _) = keys::file::generate(&Secret::new("pw")).unwrap();
    let text =
        expect_err(create(&env, "nowhere", "k", &private, &public_pem, "pw").await).to_string();
    assert!(
        text.contains("the namespace 'nowhere' does not exist"),
        "{text}"
    );
}

#[tokio::test]
async fn a_token_the_cluster_does_not_know_is_a_401_without_the_token_on_the_standin() {
    let (k8s, _) = cluster_with_key();
    let dir = temp_dir();
    let stale = "stale-token-that-must-not-leak";
    let env = kubeconfig_env(dir.path(), &k8s.kubeconfig(&format!("    token: {stale}")));
    let err = expect_err(sign(&env, "k8s://ci/cosign").await);
    let text = err.to_string();
    assert!(text.contains("401 Unauthorized"), "{text}");
    assert!(text.contains("did not accept the credentials"), "{text}");
    assert!(text.contains("user 'standin-user'"), "{text}");
    assert_no_secret(&text, &[stale]);
    assert_no_secret(&format!("{err:?}"), &[stale]);
}

#[tokio::test]
async fn an_untrusted_cluster_certificate_is_not_retried_on_the_standin() {
    let (k8s, _) = cluster_with_key();
    let other = K8sStandin::start();
    // The kubeconfig names the right server but the other cluster's CA.
    let kubeconfig = other
        .kubeconfig(&token_user())
        .replace(&other.server(), &k8s.server());
    let dir = temp_dir();
    let env = kubeconfig_env(dir.path(), &kubeconfig);
    let err = expect_err(sign(&env, "k8s://ci/cosign").await);
    let text = err.to_string();
    assert!(!err.is_transient(), "{text}");
    assert!(text.contains("certificate-authority"), "{text}");
    assert!(k8s.seen().is_empty());
}

#[tokio::test]
async fn where_the_configuration_comes_from() {
    let (k8s, public_pem) = cluster_with_key();
    let dir = temp_dir();
    let config = write_file(dir.path(), "config", &k8s.kubeconfig(&token_user()));

    // KUBECONFIG: the first file of the list that exists.
    let list = format!(
        "{}:{}",
        dir.path().join("missing").display(),
        config.display()
    );
    let (signature, public) = sign(
        &env(&[("KUBECONFIG", &list), ("HOME", "/nonexistent")]),
        "k8s://ci/cosign",
    )
    .await
    .expect("signs");
    assert_verifies(&signature, &public, &public_pem);

    // ~/.kube/config when nothing else is set.
    let home = temp_dir();
    std::fs::create_dir(home.path().join(".kube")).unwrap();
    std::fs::copy(&config, home.path().join(".kube").join("config")).unwrap();
    sign(
        &env(&[("HOME", home.path().to_str().unwrap())]),
        "k8s://ci/cosign",
    )
    .await
    .expect("signs with ~/.kube/config");

    // Nothing at all.
    let empty = temp_dir();
    let err = expect_err(
        sign(
            &env(&[("HOME", empty.path().to_str().unwrap())]),
            "k8s://ci/cosign",
        )
        .await,
    );
    assert!(matches!(err, KeyError::NotConfigured { .. }), "{err}");
    assert!(err.to_string().contains("KUBECONFIG"), "{err}");
    assert_eq!(Error::from(err).exit(), Exit::BadInput);

    // An auth-provider user: unsupported, with the way out.
    let provider = k8s.kubeconfig("    auth-provider:\n      name: gcp\n      config: {}");
    let provider_dir = temp_dir();
    let env_provider = kubeconfig_env(provider_dir.path(), &provider);
    let err = expect_err(sign(&env_provider, "k8s://ci/cosign").await);
    assert!(err.to_string().contains("auth-provider 'gcp'"), "{err}");
    assert!(err.to_string().contains("exec credential plugin"), "{err}");
}
