//! `k8s://NAMESPACE/SECRET`: a cosign key pair kept in a Kubernetes Secret (`cosign.key`,
//! `cosign.password`, `cosign.pub`), read and created through the Kubernetes API.
//!
//! The API server and the credentials come from the first of:
//! 1. `KUBECONFIG`: the first file of its `:`-separated list that exists (kubectl merges all
//!    of them; imagegate reads that one file only);
//! 2. in a pod (`KUBERNETES_SERVICE_HOST` and `KUBERNETES_SERVICE_PORT` set): the service
//!    account's `token` and `ca.crt`, read again by every process;
//! 3. `~/.kube/config`.
//!
//! From a kubeconfig, the `current-context`'s cluster (`server`, `certificate-authority[-data]`,
//! `insecure-skip-tls-verify`) and user (`token`, `tokenFile`, `client-certificate[-data]` with
//! `client-key[-data]`, or an `exec` credential plugin, as EKS, GKE and AKS logins are).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use reqwest::header::HeaderValue;
use serde::Deserialize;
use zeroize::Zeroizing;

use super::file::LocalKey;
use super::vault::{certificates_from_pem, read_certificates, read_small_file};
use super::{Environment, KeyContext, KeyError, PublicKey};
use crate::http;
use crate::http::Trust;
use crate::secret::Secret;

const BACKEND: &str = "Kubernetes";
/// Where Kubernetes mounts a pod's service-account token and cluster CA.
pub const SERVICE_ACCOUNT_DIR: &str = "/var/run/secrets/kubernetes.io/serviceaccount";
/// A Secret is at most 1 MiB; its JSON a little more.
const BODY_LIMIT: u64 = 2 * 1024 * 1024;
/// Kubeconfigs with many clusters and embedded certificates grow large, but not this large.
const KUBECONFIG_LIMIT: u64 = 4 * 1024 * 1024;
/// What a credential plugin may print.
const PLUGIN_OUTPUT_LIMIT: usize = 1024 * 1024;
/// A credential plugin that talks to its cloud may be slow, but must finish.
const PLUGIN_MIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The service-account folder: `IMAGEGATE_SERVICEACCOUNT_DIR` when set (tests, unusual
/// mounts), else where Kubernetes puts it.
pub fn service_account_dir(env: &Environment) -> PathBuf {
    env.non_empty("IMAGEGATE_SERVICEACCOUNT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(SERVICE_ACCOUNT_DIR))
}

/// The private key in the Secret, decrypted with the Secret's `cosign.password` (an empty
/// password when there is none, as cosign does).
pub async fn signer(
    namespace: &str,
    name: &str,
    ctx: &KeyContext<'_>,
) -> Result<LocalKey, KeyError> {
    let secret = read_secret(namespace, name, ctx).await?;
    private_key(&secret, namespace, name)
}

/// The Secret's `cosign.pub`; without one, the public half of `cosign.key` (cosign would
/// refuse; deriving it needs the same `get` permission and says so in a warning).
pub async fn public_key(
    namespace: &str,
    name: &str,
    ctx: &KeyContext<'_>,
) -> Result<PublicKey, KeyError> {
    let secret = read_secret(namespace, name, ctx).await?;
    let origin = format!("k8s://{namespace}/{name}");
    if let Some(text) = secret.text("cosign.pub", &origin)? {
        return PublicKey::from_pem(&text, &format!("{origin} (cosign.pub)"));
    }
    if secret.data.contains_key("cosign.key") {
        tracing::warn!(
            "{origin} has no cosign.pub; using the public half of its cosign.key instead"
        );
        return Ok(private_key(&secret, namespace, name)?.public_key().clone());
    }
    Err(KeyError::NotAKey {
        origin,
        reason: format!(
            "the Secret has neither cosign.pub nor cosign.key (it holds: {})",
            secret.names()
        ),
    })
}

/// Creates the Secret `NAMESPACE/NAME` holding a new key pair, as `cosign generate-key-pair
/// k8s://…` does: `cosign.key`, `cosign.pub`, `cosign.password`, marked immutable. A Secret of
/// that name that already exists is left alone (cosign would overwrite its keys): replacing a
/// signing key must be a deliberate `kubectl delete` first.
pub async fn create_key_pair(
    namespace: &str,
    name: &str,
    private_pem: &str,
    public_pem: &str,
    password: &Secret,
    ctx: &KeyContext<'_>,
) -> Result<(), KeyError> {
    let cluster = Cluster::connect(ctx).await?;
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
    let body = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": { "name": name, "namespace": namespace },
        "type": "Opaque",
        "immutable": true,
        "data": {
            "cosign.key": b64(private_pem.as_bytes()),
            "cosign.password": b64(password.expose().as_bytes()),
            "cosign.pub": b64(public_pem.as_bytes()),
        },
    });
    let path = format!("/api/v1/namespaces/{namespace}/secrets");
    let answer = cluster.send(ctx, Method::POST, &path, Some(&body)).await?;
    match answer.status {
        200..=202 => {
            tracing::info!("created the Secret {name} in namespace {namespace}");
            Ok(())
        }
        401 => Err(cluster.unauthorized("POST", &path, &answer)),
        403 => Err(cluster.forbidden("POST", &path, &answer, "create", namespace, name)),
        404 => Err(cluster.refused(
            "POST",
            &path,
            &answer,
            &format!(
                "the namespace '{namespace}' does not exist: create it (`kubectl create namespace {namespace}`) or name another"
            ),
        )),
        409 => {
            // After a retried POST the Secret may be our own: then there is nothing to do.
            if let Ok(existing) = read_secret_with(&cluster, ctx, namespace, name).await
                && existing.data.get("cosign.pub").map(|v| v.as_slice())
                    == Some(public_pem.as_bytes())
            {
                return Ok(());
            }
            // Like an existing key file: the request names a key that exists (exit 2).
            let message = format!(
                "POST {}{path} was refused ({}); the Secret '{name}' already exists in namespace '{namespace}', and imagegate does not replace a signing key (what it signed would no longer verify with the new cosign.pub); delete it first if that is what you want (`kubectl delete secret {name} -n {namespace}`), or choose another name",
                cluster.server,
                answer.summary()
            );
            Err(KeyError::Refused(format!("Kubernetes: {message}")))
        }
        _ => Err(cluster.refused("POST", &path, &answer, "")),
    }
}

/// The decoded `data` of a Secret.
struct SecretData {
    data: BTreeMap<String, Zeroizing<Vec<u8>>>,
}

impl SecretData {
    /// One entry as text, when present.
    fn text(&self, key: &str, origin: &str) -> Result<Option<Zeroizing<String>>, KeyError> {
        let Some(bytes) = self.data.get(key) else {
            return Ok(None);
        };
        let text = String::from_utf8(bytes.to_vec()).map_err(|_| KeyError::NotAKey {
            origin: format!("{origin} ({key})"),
            reason: "it is not UTF-8 text".into(),
        })?;
        Ok(Some(Zeroizing::new(text)))
    }

    /// The entry names, for messages.
    fn names(&self) -> String {
        if self.data.is_empty() {
            return "nothing".into();
        }
        self.data.keys().cloned().collect::<Vec<_>>().join(", ")
    }
}

fn private_key(secret: &SecretData, namespace: &str, name: &str) -> Result<LocalKey, KeyError> {
    let origin = format!("k8s://{namespace}/{name}");
    let Some(key) = secret.text("cosign.key", &origin)? else {
        return Err(KeyError::NotAKey {
            origin: origin.clone(),
            reason: format!(
                "the Secret has no cosign.key (it holds: {}); make a key pair with `imagegate generate-key-pair {origin}`",
                secret.names()
            ),
        });
    };
    let password = secret
        .text("cosign.password", &origin)?
        .map(|p| Secret::new(p.as_str()))
        .unwrap_or_default();
    LocalKey::from_pem(&key, &format!("{origin} (cosign.key)"), move |_| {
        Ok(password)
    })
}

async fn read_secret(
    namespace: &str,
    name: &str,
    ctx: &KeyContext<'_>,
) -> Result<SecretData, KeyError> {
    let cluster = Cluster::connect(ctx).await?;
    read_secret_with(&cluster, ctx, namespace, name).await
}

/// `GET /api/v1/namespaces/{ns}/secrets/{name}`, its `data` decoded.
async fn read_secret_with(
    cluster: &Cluster,
    ctx: &KeyContext<'_>,
    namespace: &str,
    name: &str,
) -> Result<SecretData, KeyError> {
    let path = format!("/api/v1/namespaces/{namespace}/secrets/{name}");
    let answer = cluster.send(ctx, Method::GET, &path, None).await?;
    match answer.status {
        200 => {}
        401 => return Err(cluster.unauthorized("GET", &path, &answer)),
        403 => return Err(cluster.forbidden("GET", &path, &answer, "get", namespace, name)),
        404 => {
            return Err(cluster.refused(
                "GET",
                &path,
                &answer,
                &format!(
                    "the Secret '{name}' does not exist in namespace '{namespace}'; create it with `imagegate generate-key-pair k8s://{namespace}/{name}`"
                ),
            ));
        }
        _ => return Err(cluster.refused("GET", &path, &answer, "")),
    }
    #[derive(Deserialize)]
    struct Wire {
        #[serde(default)]
        data: Option<BTreeMap<String, String>>,
    }
    let wire: Wire = serde_json::from_slice(&answer.body).map_err(|e| KeyError::Remote {
        backend: BACKEND,
        message: format!(
            "GET {}{path} returned something that is not a Secret ({e})",
            cluster.server
        ),
        transient: false,
    })?;
    let mut data = BTreeMap::new();
    for (key, value) in wire.data.unwrap_or_default() {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(value.as_bytes())
            .map_err(|_| KeyError::NotAKey {
                origin: format!("k8s://{namespace}/{name} ({key})"),
                reason: "the value is not base64, as Secret data must be".into(),
            })?;
        data.insert(key, Zeroizing::new(bytes));
    }
    Ok(SecretData { data })
}

/// An API server to talk to, with the credentials to use.
struct Cluster {
    /// `https://HOST:PORT[/prefix]`, without a trailing slash.
    server: String,
    client: reqwest::Client,
    bearer: Option<Secret>,
    /// Who imagegate is to this cluster, in words, for messages (never a credential).
    identity: String,
}

/// One answer from the API server that was not a transient failure.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    /// `403 Forbidden: secrets "x" is forbidden: User …`: the status and the `Status` message.
    fn summary(&self) -> String {
        #[derive(Deserialize)]
        struct Status {
            #[serde(default)]
            message: String,
        }
        let reason = reqwest::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let message = serde_json::from_slice::<Status>(&self.body)
            .map(|s| s.message)
            .unwrap_or_default();
        let message: String = message.chars().take(500).collect();
        let mut out = self.status.to_string();
        if !reason.is_empty() {
            out.push(' ');
            out.push_str(reason);
        }
        if !message.is_empty() {
            out.push_str(": ");
            out.push_str(&message);
        }
        out
    }
}

impl Cluster {
    async fn connect(ctx: &KeyContext<'_>) -> Result<Cluster, KeyError> {
        let env = ctx.env;
        if let Some(list) = env.non_empty("KUBECONFIG") {
            let paths: Vec<&str> = list.split(':').filter(|p| !p.is_empty()).collect();
            return match paths.iter().find(|p| Path::new(p).is_file()) {
                Some(path) => from_kubeconfig(Path::new(path), ctx).await,
                None => Err(not_configured(&format!(
                    "KUBECONFIG is '{list}', and none of its files exists"
                ))),
            };
        }
        if env.non_empty("KUBERNETES_SERVICE_HOST").is_some()
            && env.non_empty("KUBERNETES_SERVICE_PORT").is_some()
        {
            return in_cluster(ctx);
        }
        if let Some(home) = env.home() {
            let path = home.join(".kube").join("config");
            if path.is_file() {
                return from_kubeconfig(&path, ctx).await;
            }
        }
        Err(not_configured(
            "no cluster to talk to: set KUBECONFIG, or write ~/.kube/config (e.g. with your cloud's `get-credentials` command), or run in a pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT)",
        ))
    }

    /// Sends a request, trying again on transient failures (no answer, 5xx, 429).
    async fn send(
        &self,
        ctx: &KeyContext<'_>,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Answer, KeyError> {
        let url = format!("{}{path}", self.server);
        let what = format!("{method} {url}");
        let authorization = match &self.bearer {
            Some(token) => {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| {
                        not_configured(&format!(
                            "the bearer token of {} has characters an HTTP header cannot carry",
                            self.identity
                        ))
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            None => None,
        };
        let (url, what, method, authorization) = (&url, &what, &method, &authorization);
        let result = ctx
            .http
            .retry(what, || async move {
                let mut request = self
                    .client
                    .request(method.clone(), url)
                    .header("Accept", "application/json");
                if let Some(value) = authorization {
                    request = request.header("Authorization", value.clone());
                }
                if let Some(body) = body {
                    request = request.json(body);
                }
                let response = request
                    .send()
                    .await
                    .map_err(|e| transport_error(what, &e, &self.identity))?;
                let status = response.status().as_u16();
                let body = http::read_capped(response, BODY_LIMIT)
                    .await
                    .map_err(|e| read_error(what, e))?;
                let answer = Answer {
                    status,
                    body: body.to_vec(),
                };
                if http::status_is_transient(status) {
                    return Err(KeyError::Remote {
                        backend: BACKEND,
                        message: format!("{what} answered {}", answer.summary()),
                        transient: true,
                    });
                }
                Ok(answer)
            })
            .await;
        result.map_err(|e| e.after_attempts(ctx.http.settings().retries + 1))
    }

    fn unauthorized(&self, method: &str, path: &str, answer: &Answer) -> KeyError {
        self.refused(
            method,
            path,
            answer,
            &format!(
                "the API server did not accept the credentials of {}: the token may have expired, or the client certificate is not one this cluster trusts; log in again or refresh the kubeconfig",
                self.identity
            ),
        )
    }

    fn forbidden(
        &self,
        method: &str,
        path: &str,
        answer: &Answer,
        verb: &str,
        namespace: &str,
        name: &str,
    ) -> KeyError {
        let (resource_name, check) = if verb == "create" {
            // RBAC cannot limit `create` by name.
            (String::new(), format!("secrets -n {namespace}"))
        } else {
            (
                format!(" --resource-name={name}"),
                format!("secret/{name} -n {namespace}"),
            )
        };
        self.refused(
            method,
            path,
            answer,
            &format!(
                "{} lacks the RBAC verb '{verb}' on 'secrets' in namespace '{namespace}'; grant it with a Role (`kubectl create role imagegate-key --verb={verb} --resource=secrets{resource_name} -n {namespace}`) and a RoleBinding to this identity, and check with `kubectl auth can-i {verb} {check}`",
                self.identity
            ),
        )
    }

    fn refused(&self, method: &str, path: &str, answer: &Answer, hint: &str) -> KeyError {
        let mut message = format!(
            "{method} {}{path} was refused ({})",
            self.server,
            answer.summary()
        );
        if !hint.is_empty() {
            message.push_str("; ");
            message.push_str(hint);
        }
        KeyError::Remote {
            backend: BACKEND,
            message,
            transient: false,
        }
    }
}

/// The pod's own service account: token and CA from the service-account folder.
fn in_cluster(ctx: &KeyContext<'_>) -> Result<Cluster, KeyError> {
    let env = ctx.env;
    let host = env.non_empty("KUBERNETES_SERVICE_HOST").unwrap_or_default();
    let port = env.non_empty("KUBERNETES_SERVICE_PORT").unwrap_or_default();
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let dir = service_account_dir(env);
    let token_path = dir.join("token");
    let token = read_token_file(&token_path).map_err(|reason| {
        not_configured(&format!(
            "running in a pod, but the service-account token {} cannot be read ({reason}); mount one (automountServiceAccountToken) or set KUBECONFIG",
            token_path.display()
        ))
    })?;
    let ca_path = dir.join("ca.crt");
    let roots = if ca_path.is_file() {
        read_certificates(&ca_path)
            .map_err(|reason| not_configured(&format!("{}: {reason}", ca_path.display())))?
    } else {
        tracing::debug!(
            "no {}: the API server must have a certificate the system trusts",
            ca_path.display()
        );
        Vec::new()
    };
    let client = ctx
        .http
        .client_with(Trust::Only(&roots), None)
        .map_err(|e| not_configured(&e.to_string()))?;
    Ok(Cluster {
        server: format!("https://{host}:{port}"),
        client,
        bearer: Some(token),
        identity: format!("the pod's service account (token {})", token_path.display()),
    })
}

fn read_token_file(path: &Path) -> Result<Secret, String> {
    let bytes = read_small_file(path)?;
    let text = String::from_utf8(bytes).map_err(|_| "it is not text".to_string())?;
    let token = text.trim();
    if token.is_empty() {
        return Err("it is empty".into());
    }
    Ok(Secret::new(token))
}

// The kubeconfig, as far as imagegate reads it. Not `Debug`: users hold credentials.
#[derive(Deserialize, Default)]
#[serde(default)]
struct KubeConfig {
    #[serde(rename = "current-context")]
    current_context: Option<String>,
    contexts: Option<Vec<NamedContext>>,
    clusters: Option<Vec<NamedCluster>>,
    users: Option<Vec<NamedUser>>,
}

#[derive(Deserialize)]
struct NamedContext {
    name: String,
    context: ContextSpec,
}

#[derive(Deserialize)]
struct ContextSpec {
    cluster: String,
    #[serde(default)]
    user: String,
}

#[derive(Deserialize)]
struct NamedCluster {
    name: String,
    cluster: ClusterSpec,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ClusterSpec {
    server: Option<String>,
    #[serde(rename = "certificate-authority")]
    certificate_authority: Option<String>,
    #[serde(rename = "certificate-authority-data")]
    certificate_authority_data: Option<String>,
    #[serde(rename = "insecure-skip-tls-verify")]
    insecure_skip_tls_verify: bool,
    #[serde(rename = "tls-server-name")]
    tls_server_name: Option<String>,
    #[serde(rename = "proxy-url")]
    proxy_url: Option<String>,
}

#[derive(Deserialize)]
struct NamedUser {
    name: String,
    #[serde(default)]
    user: UserSpec,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct UserSpec {
    token: Option<String>,
    #[serde(rename = "tokenFile")]
    token_file: Option<String>,
    #[serde(rename = "client-certificate")]
    client_certificate: Option<String>,
    #[serde(rename = "client-certificate-data")]
    client_certificate_data: Option<String>,
    #[serde(rename = "client-key")]
    client_key: Option<String>,
    #[serde(rename = "client-key-data")]
    client_key_data: Option<String>,
    exec: Option<ExecConfig>,
    #[serde(rename = "auth-provider")]
    auth_provider: Option<AuthProvider>,
    username: Option<String>,
}

#[derive(Deserialize)]
struct AuthProvider {
    #[serde(default)]
    name: String,
}

#[derive(Deserialize)]
struct ExecConfig {
    command: String,
    #[serde(default)]
    args: Option<Vec<String>>,
    #[serde(default)]
    env: Option<Vec<ExecEnv>>,
    #[serde(rename = "apiVersion", default)]
    api_version: Option<String>,
    #[serde(rename = "provideClusterInfo", default)]
    provide_cluster_info: bool,
    #[serde(rename = "interactiveMode", default)]
    interactive_mode: Option<String>,
    #[serde(rename = "installHint", default)]
    install_hint: Option<String>,
}

#[derive(Deserialize)]
struct ExecEnv {
    name: String,
    value: String,
}

/// What a credential plugin prints: an `ExecCredential`.
#[derive(Deserialize)]
struct ExecCredential {
    #[serde(rename = "apiVersion", default)]
    api_version: String,
    #[serde(default)]
    status: Option<ExecStatus>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ExecStatus {
    token: Option<String>,
    #[serde(rename = "clientCertificateData")]
    client_certificate_data: Option<String>,
    #[serde(rename = "clientKeyData")]
    client_key_data: Option<String>,
}

const EXEC_API_VERSIONS: [&str; 2] = [
    "client.authentication.k8s.io/v1",
    "client.authentication.k8s.io/v1beta1",
];

async fn from_kubeconfig(path: &Path, ctx: &KeyContext<'_>) -> Result<Cluster, KeyError> {
    let origin = path.display().to_string();
    let bad = |reason: String| not_configured(&format!("kubeconfig {origin}: {reason}"));
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if meta.len() > KUBECONFIG_LIMIT {
        return Err(bad(format!(
            "it is {} bytes; that is not a kubeconfig",
            meta.len()
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let text = Zeroizing::new(text);
    let config: KubeConfig = serde_yaml::from_str(&text).map_err(|e| bad(yaml_error(&e)))?;
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    // Relative file names in a kubeconfig are relative to the kubeconfig's folder.
    let resolve = |file: &str| -> PathBuf {
        let p = Path::new(file);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            dir.join(p)
        }
    };

    let context_name = config
        .current_context
        .as_deref()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            bad(
                "it has no current-context; choose one with `kubectl config use-context NAME`"
                    .into(),
            )
        })?;
    let context = config
        .contexts
        .iter()
        .flatten()
        .find(|c| c.name == context_name)
        .ok_or_else(|| {
            bad(format!(
                "its current-context '{context_name}' is not among its contexts"
            ))
        })?;
    let cluster_name = &context.context.cluster;
    let cluster = config
        .clusters
        .iter()
        .flatten()
        .find(|c| &c.name == cluster_name)
        .map(|c| &c.cluster)
        .ok_or_else(|| {
            bad(format!(
                "the context '{context_name}' names the cluster '{cluster_name}', which is not among its clusters"
            ))
        })?;
    let user_name = &context.context.user;
    let empty_user = UserSpec::default();
    let user = if user_name.is_empty() {
        &empty_user
    } else {
        config
            .users
            .iter()
            .flatten()
            .find(|u| &u.name == user_name)
            .map(|u| &u.user)
            .ok_or_else(|| {
                bad(format!(
                    "the context '{context_name}' names the user '{user_name}', which is not among its users"
                ))
            })?
    };
    let identity = format!("kubeconfig user '{user_name}' (context '{context_name}' in {origin})");

    let server = cluster
        .server
        .as_deref()
        .map(|s| s.trim().trim_end_matches('/'))
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad(format!("the cluster '{cluster_name}' has no server")))?;
    if !(server.starts_with("https://") || server.starts_with("http://")) {
        return Err(bad(format!(
            "the cluster '{cluster_name}' has the server '{server}'; it must be an https:// address"
        )));
    }
    let ca_pem: Option<Vec<u8>> = if let Some(data) = &cluster.certificate_authority_data {
        Some(decode_b64(data).map_err(|_| {
            bad(format!(
                "the certificate-authority-data of cluster '{cluster_name}' is not base64"
            ))
        })?)
    } else if let Some(file) = &cluster.certificate_authority {
        let file = resolve(file);
        Some(read_small_file(&file).map_err(|reason| {
            bad(format!(
                "the certificate-authority {} of cluster '{cluster_name}': {reason}",
                file.display()
            ))
        })?)
    } else {
        None
    };
    let roots = match &ca_pem {
        Some(pem) => certificates_from_pem(pem).map_err(|reason| {
            bad(format!(
                "the certificate authority of cluster '{cluster_name}': {reason}"
            ))
        })?,
        None => Vec::new(),
    };
    let insecure = cluster.insecure_skip_tls_verify;
    if insecure {
        tracing::warn!(
            "the kubeconfig sets insecure-skip-tls-verify for cluster '{cluster_name}': the API server's certificate is not checked"
        );
    }
    if cluster.tls_server_name.is_some() {
        tracing::warn!(
            "the kubeconfig's tls-server-name for cluster '{cluster_name}' is not supported and is ignored"
        );
    }
    if cluster.proxy_url.is_some() {
        tracing::warn!(
            "the kubeconfig's proxy-url for cluster '{cluster_name}' is not supported and is ignored (HTTPS_PROXY is honoured)"
        );
    }

    if let Some(provider) = &user.auth_provider {
        return Err(bad(format!(
            "the user '{user_name}' logs in with the auth-provider '{}', which imagegate does not support (kubectl itself dropped the built-in gcp and azure providers in 1.26): use the exec credential plugin instead (gke-gcloud-auth-plugin, kubelogin, `aws eks get-token`)",
            provider.name
        )));
    }
    if user.username.is_some()
        && user.token.is_none()
        && user.client_certificate.is_none()
        && user.client_certificate_data.is_none()
        && user.exec.is_none()
    {
        return Err(bad(format!(
            "the user '{user_name}' logs in with a username and password, which Kubernetes no longer accepts (since 1.19) and imagegate does not send"
        )));
    }

    // Client certificate and key, from the kubeconfig.
    let mut cert_pem: Option<Zeroizing<Vec<u8>>> = None;
    let mut key_pem: Option<Zeroizing<Vec<u8>>> = None;
    if let Some(data) = &user.client_certificate_data {
        cert_pem = Some(Zeroizing::new(decode_b64(data).map_err(|_| {
            bad(format!(
                "the client-certificate-data of user '{user_name}' is not base64"
            ))
        })?));
    } else if let Some(file) = &user.client_certificate {
        let file = resolve(file);
        cert_pem = Some(Zeroizing::new(read_small_file(&file).map_err(
            |reason| {
                bad(format!(
                    "the client-certificate {}: {reason}",
                    file.display()
                ))
            },
        )?));
    }
    if let Some(data) = &user.client_key_data {
        key_pem = Some(Zeroizing::new(decode_b64(data).map_err(|_| {
            bad(format!(
                "the client-key-data of user '{user_name}' is not base64"
            ))
        })?));
    } else if let Some(file) = &user.client_key {
        let file = resolve(file);
        key_pem = Some(Zeroizing::new(read_small_file(&file).map_err(
            |reason| bad(format!("the client-key {}: {reason}", file.display())),
        )?));
    }

    // Bearer token: inline, from a file, or (with nothing else given) from the exec plugin.
    let mut bearer = None;
    if let Some(token) = user.token.as_deref().filter(|t| !t.trim().is_empty()) {
        bearer = Some(Secret::new(token.trim()));
    } else if let Some(file) = &user.token_file {
        let file = resolve(file);
        bearer = Some(
            read_token_file(&file)
                .map_err(|reason| bad(format!("the tokenFile {}: {reason}", file.display())))?,
        );
    }
    if let Some(exec) = &user.exec
        && bearer.is_none()
        && cert_pem.is_none()
    {
        let cluster_info = serde_json::json!({
            "server": server,
            "certificate-authority-data": ca_pem
                .as_ref()
                .map(|pem| base64::engine::general_purpose::STANDARD.encode(pem)),
            "insecure-skip-tls-verify": insecure,
        });
        let status = run_plugin(exec, user_name, &dir, cluster_info, ctx).await?;
        if let Some(token) = status.token.filter(|t| !t.trim().is_empty()) {
            bearer = Some(Secret::new(token.trim()));
        }
        if let (Some(cert), Some(key)) = (status.client_certificate_data, status.client_key_data) {
            // In an ExecCredential these are PEM text, not base64 as in a kubeconfig.
            cert_pem = Some(Zeroizing::new(cert.into_bytes()));
            key_pem = Some(Zeroizing::new(key.into_bytes()));
        }
        if bearer.is_none() && cert_pem.is_none() {
            return Err(KeyError::Remote {
                backend: BACKEND,
                message: format!(
                    "the credential plugin `{}` of user '{user_name}' returned neither a token nor a client certificate",
                    exec.command
                ),
                transient: false,
            });
        }
    }

    let identity_pem = match (&cert_pem, &key_pem) {
        (Some(cert), Some(key)) => {
            let mut both = Zeroizing::new(Vec::with_capacity(cert.len() + key.len() + 1));
            both.extend_from_slice(cert);
            both.push(b'\n');
            both.extend_from_slice(key);
            Some(reqwest::Identity::from_pem(&both).map_err(|e| {
                bad(format!(
                    "the client certificate and key of user '{user_name}' cannot be used ({})",
                    http::describe_transport_error(&e)
                ))
            })?)
        }
        (None, None) => None,
        _ => {
            return Err(bad(format!(
                "the user '{user_name}' has a client certificate without its key, or a key without its certificate"
            )));
        }
    };
    let client = ctx
        .http
        .client_with(
            if insecure {
                Trust::Nothing
            } else {
                Trust::Only(&roots)
            },
            identity_pem,
        )
        .map_err(|e| not_configured(&e.to_string()))?;
    Ok(Cluster {
        server: server.to_string(),
        client,
        bearer,
        identity,
    })
}

/// Runs an `exec` credential plugin as kubectl does: its command, args and env (on top of the
/// environment imagegate was given), `KUBERNETES_EXEC_INFO` describing the request, no
/// terminal; it prints an `ExecCredential`.
async fn run_plugin(
    exec: &ExecConfig,
    user_name: &str,
    kubeconfig_dir: &Path,
    cluster_info: serde_json::Value,
    ctx: &KeyContext<'_>,
) -> Result<ExecStatus, KeyError> {
    let command = exec.command.trim();
    let plugin = format!("the credential plugin `{command}` of user '{user_name}'");
    let api_version = exec.api_version.as_deref().unwrap_or_default();
    if !EXEC_API_VERSIONS.contains(&api_version) {
        return Err(not_configured(&format!(
            "{plugin} has the apiVersion '{api_version}'; imagegate speaks {}",
            EXEC_API_VERSIONS.join(" and ")
        )));
    }
    if exec.interactive_mode.as_deref() == Some("Always") {
        return Err(not_configured(&format!(
            "{plugin} needs a terminal (interactiveMode: Always), and imagegate runs it without one"
        )));
    }
    // A command with a slash but not absolute is relative to the kubeconfig (as in kubectl);
    // a bare name is looked up on PATH.
    let program = if command.contains('/') && !Path::new(command).is_absolute() {
        kubeconfig_dir.join(command)
    } else {
        PathBuf::from(command)
    };
    let mut spec = serde_json::json!({ "interactive": false });
    if exec.provide_cluster_info {
        spec["cluster"] = cluster_info;
    }
    let exec_info = serde_json::json!({
        "apiVersion": api_version,
        "kind": "ExecCredential",
        "spec": spec,
    });
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(exec.args.iter().flatten())
        .env_clear()
        .envs(ctx.env.iter())
        .envs(exec.env.iter().flatten().map(|e| (&e.name, &e.value)))
        .env("KUBERNETES_EXEC_INFO", exec_info.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = cmd.spawn().map_err(|e| {
        let hint = exec
            .install_hint
            .as_deref()
            .map(|h| format!(": {}", h.trim()))
            .unwrap_or_default();
        if e.kind() == std::io::ErrorKind::NotFound {
            not_configured(&format!("{plugin} was not found{hint}"))
        } else {
            not_configured(&format!("{plugin} could not be started ({e}){hint}"))
        }
    })?;
    let limit = ctx.http.settings().timeout.max(PLUGIN_MIN_TIMEOUT);
    let output = match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(result) => result.map_err(|e| KeyError::Remote {
            backend: BACKEND,
            message: format!("{plugin} failed to run ({e})"),
            transient: false,
        })?,
        Err(_) => {
            return Err(KeyError::Remote {
                backend: BACKEND,
                message: format!("{plugin} did not finish within {}s", limit.as_secs()),
                transient: false,
            });
        }
    };
    let stdout = Zeroizing::new(output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let stderr = stderr.trim();
        let tail: String = {
            let chars: Vec<char> = stderr.chars().collect();
            chars[chars.len().saturating_sub(400)..].iter().collect()
        };
        return Err(KeyError::Remote {
            backend: BACKEND,
            message: format!(
                "{plugin} failed ({}){}",
                output.status,
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(": {tail}")
                }
            ),
            transient: false,
        });
    }
    if stdout.len() > PLUGIN_OUTPUT_LIMIT {
        return Err(KeyError::Remote {
            backend: BACKEND,
            message: format!("{plugin} printed more than {PLUGIN_OUTPUT_LIMIT} bytes"),
            transient: false,
        });
    }
    // serde_json's messages never quote the input, so they cannot leak the token.
    let credential: ExecCredential =
        serde_json::from_slice(&stdout).map_err(|e| KeyError::Remote {
            backend: BACKEND,
            message: format!("{plugin} did not print an ExecCredential ({e})"),
            transient: false,
        })?;
    if credential.api_version != api_version {
        return Err(KeyError::Remote {
            backend: BACKEND,
            message: format!(
                "{plugin} answered with apiVersion '{}' instead of '{api_version}'",
                credential.api_version
            ),
            transient: false,
        });
    }
    credential.status.ok_or_else(|| KeyError::Remote {
        backend: BACKEND,
        message: format!("{plugin} printed an ExecCredential without a status"),
        transient: false,
    })
}

/// Base64 as Kubernetes writes it (standard alphabet; whitespace from YAML folding ignored).
fn decode_b64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    base64::engine::general_purpose::STANDARD.decode(compact)
}

/// A YAML error without the text it quotes: a misplaced value could be a credential.
fn yaml_error(err: &serde_yaml::Error) -> String {
    let mut out = String::new();
    let mut quoted = false;
    for c in err.to_string().chars() {
        if c == '"' {
            quoted = !quoted;
            out.push_str(if quoted { "\"…" } else { "\"" });
        } else if !quoted {
            out.push(c);
        }
    }
    format!("it is not a kubeconfig ({out})")
}

fn not_configured(reason: &str) -> KeyError {
    KeyError::NotConfigured {
        backend: BACKEND,
        reason: reason.to_string(),
    }
}

/// A request that got no answer: transient unless it is a certificate problem.
fn transport_error(what: &str, err: &reqwest::Error, identity: &str) -> KeyError {
    let cause = http::describe_transport_error(err);
    if http::is_certificate_error(err) {
        return KeyError::Remote {
            backend: BACKEND,
            message: format!(
                "{what} failed: {cause}; the TLS handshake failed: check the cluster's certificate-authority and the client certificate in {identity}"
            ),
            transient: false,
        };
    }
    KeyError::Remote {
        backend: BACKEND,
        message: format!("{what} failed: {cause}"),
        transient: http::transport_error_is_transient(err),
    }
}

fn read_error(what: &str, err: http::ReadError) -> KeyError {
    KeyError::unreadable(BACKEND, what, err, "a Secret is at most 1 MiB")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_errors_do_not_quote_values() {
        let err = serde_yaml::from_str::<KubeConfig>("users: \"s3cr3t-token\"")
            .err()
            .expect("a string is not a list of users");
        let text = yaml_error(&err);
        assert!(!text.contains("s3cr3t-token"), "{text}");
        assert!(text.starts_with("it is not a kubeconfig"), "{text}");
    }

    #[test]
    fn base64_from_yaml_may_be_folded() {
        assert_eq!(decode_b64("aGVs\n bG8=").unwrap(), b"hello");
        assert!(decode_b64("***").is_err());
    }

    #[test]
    fn service_account_folder_can_be_moved() {
        let env = Environment::from_vars([("IMAGEGATE_SERVICEACCOUNT_DIR", "/tmp/sa")]);
        assert_eq!(service_account_dir(&env), PathBuf::from("/tmp/sa"));
        let env = Environment::from_vars(Vec::<(String, String)>::new());
        assert_eq!(
            service_account_dir(&env),
            PathBuf::from(SERVICE_ACCOUNT_DIR)
        );
    }

    #[test]
    fn secret_data_reads_text_and_names_entries() {
        let mut data = BTreeMap::new();
        data.insert("cosign.pub".to_string(), Zeroizing::new(b"PEM".to_vec()));
        data.insert("bin".to_string(), Zeroizing::new(vec![0xff, 0xfe]));
        let secret = SecretData { data };
        assert_eq!(
            secret.text("cosign.pub", "o").unwrap().unwrap().as_str(),
            "PEM"
        );
        assert!(secret.text("cosign.key", "o").unwrap().is_none());
        assert!(secret.text("bin", "o").is_err());
        assert_eq!(secret.names(), "bin, cosign.pub");
    }
}
