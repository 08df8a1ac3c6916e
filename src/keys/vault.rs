//! `hashivault://KEY` (also `openbao://KEY`): a HashiCorp Vault or OpenBao transit key.
//!
//! The endpoints are the ones cosign calls (sigstore `kms/hashivault/client.go`):
//! `GET /v1/{mount}/keys/{key}` for the public key of the latest key version, and
//! `POST /v1/{mount}/sign/{key}/{hash}` with the payload's digest. Every request carries
//! `X-Vault-Request: true`, and `X-Vault-Namespace` when `VAULT_NAMESPACE` is set.
//!
//! The Vault token comes from the first of these that applies:
//! 1. `VAULT_TOKEN`, else `BAO_TOKEN`;
//! 2. `VAULT_AUTH_METHOD`, when set, decides alone: `token` reads `~/.vault-token`; `jwt` logs in
//!    with `VAULT_ID_TOKEN` or else GitHub Actions' OIDC token; `kubernetes` logs in with the
//!    pod's service-account token;
//! 3. with `VAULT_AUTH_ROLE` set (a login is configured): `VAULT_ID_TOKEN` (GitLab `id_tokens`),
//!    then GitHub Actions' OIDC token, then the pod's service-account token (Tekton), whichever
//!    is there first;
//! 4. the `~/.vault-token` file that `vault login` writes.
//!
//! Logins post `{"role", "jwt"}` to `auth/{VAULT_AUTH_PATH}/login` (default path `jwt`, or
//! `kubernetes` for the service-account login) and use `auth.client_token`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use base64::Engine as _;
use reqwest::Method;
use reqwest::header::HeaderValue;
use serde::Deserialize;
use sha2::Digest as _;

use super::{Environment, KeyContext, KeyError, PublicKey};
use crate::http::Trust;
use crate::http::{self, Http};
use crate::secret::Secret;

const BACKEND: &str = "Vault transit";
/// Vault's answers here are a few KiB at most.
const BODY_LIMIT: u64 = 1024 * 1024;
/// A token or JWT file is a few KiB at most.
const TOKEN_FILE_LIMIT: u64 = 64 * 1024;
/// DER prefix of an Ed25519 SubjectPublicKeyInfo; the 32 raw key bytes follow.
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

/// A transit key: the Vault connection, the key's latest version and its public half.
pub struct VaultKey {
    // Boxed: the retry settings make it large, and `Signer` holds every backend's key inline.
    vault: Box<Vault>,
    key: String,
    kind: KeyKind,
    version: u64,
    public: PublicKey,
}

impl fmt::Debug for VaultKey {
    // Written by hand so that the token can never be printed.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VaultKey")
            .field("address", &self.vault.addr)
            .field("namespace", &self.vault.namespace)
            .field("mount", &self.vault.mount)
            .field("key", &self.key)
            .field("kind", &self.kind)
            .field("version", &self.version)
            .field("token_source", &self.vault.token_source)
            .finish()
    }
}

impl VaultKey {
    /// Finds Vault and a token (logging in if need be), and reads the key's public key.
    pub async fn connect(key: &str, ctx: &KeyContext<'_>) -> Result<VaultKey, KeyError> {
        let env = ctx.env;
        let addr = address(env)?;
        let mount = mount(env)?;
        let namespace = first_non_empty(env, &["VAULT_NAMESPACE", "BAO_NAMESPACE"])
            .map(|(_, v)| v.trim_matches('/').to_string())
            .filter(|v| !v.is_empty());
        let client = vault_client(ctx)?;
        // A VaultKey signs after the context is gone: keep retry settings of its own.
        let retry = Http::new(ctx.http.settings().clone()).map_err(|e| setup_error(&e))?;
        let mut vault = Vault {
            addr,
            mount,
            namespace,
            client,
            retry,
            token: Secret::default(),
            token_source: String::new(),
        };
        let (token, source) = obtain_token(&vault, ctx).await?;
        vault.token = token;
        vault.token_source = source;
        let (kind, version, public) = read_key(&vault, key).await?;
        tracing::debug!(
            "Vault transit key {key} at {}: {kind:?}, version {version}",
            vault.addr
        );
        Ok(VaultKey {
            vault: Box::new(vault),
            key: key.to_string(),
            kind,
            version,
            public,
        })
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// Signs with the key version whose public key was read, so that the signature always
    /// matches [`VaultKey::public_key`] even if the key is rotated meanwhile.
    pub async fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, KeyError> {
        let (input, prehashed) = self.kind.input(payload);
        let path = format!(
            "{}/sign/{}/{}",
            self.vault.mount,
            self.key,
            self.kind.hash()
        );
        let body = serde_json::json!({
            "input": base64::engine::general_purpose::STANDARD.encode(input),
            "prehashed": prehashed,
            "key_version": self.version,
            // Only read for RSA keys: PKCS#1 v1.5, as cosign signs (Vault's default is PSS).
            "signature_algorithm": "pkcs1v15",
        });
        let answer = self
            .vault
            .send(Method::POST, &path, Some(&body), true)
            .await?;
        let url = self.vault.url(&path);
        match answer.status {
            200 => {
                let parsed: SignAnswer = answer.json(&format!("POST {url}"))?;
                decode_signature(&parsed.data.signature, self.version).map_err(|reason| {
                    KeyError::Remote {
                        backend: BACKEND,
                        message: format!("POST {url} returned an unusable signature: {reason}"),
                        transient: false,
                    }
                })
            }
            403 => Err(self.vault.denied("POST", &path, "update", &answer)),
            _ => Err(self.vault.refused("POST", &path, &answer, "")),
        }
    }
}

/// The kinds of transit key that can make cosign signatures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyKind {
    EcdsaP256,
    EcdsaP384,
    EcdsaP521,
    Rsa,
    Ed25519,
}

impl KeyKind {
    /// From the key's `type` in Vault.
    fn from_vault(kind: &str) -> Option<KeyKind> {
        Some(match kind {
            "ecdsa-p256" => KeyKind::EcdsaP256,
            "ecdsa-p384" => KeyKind::EcdsaP384,
            "ecdsa-p521" => KeyKind::EcdsaP521,
            "rsa-2048" | "rsa-3072" | "rsa-4096" => KeyKind::Rsa,
            "ed25519" => KeyKind::Ed25519,
            _ => return None,
        })
    }

    /// The hash named in the sign URL. It is the one a verifier uses with this kind of public
    /// key (SHA-384 for P-384, SHA-512 for P-521), so the signature verifies as an ordinary
    /// key's would; for Ed25519 Vault ignores it.
    fn hash(self) -> &'static str {
        match self {
            KeyKind::EcdsaP384 => "sha2-384",
            KeyKind::EcdsaP521 => "sha2-512",
            KeyKind::EcdsaP256 | KeyKind::Rsa | KeyKind::Ed25519 => "sha2-256",
        }
    }

    /// What is sent as `input`, and whether it is a digest: the digest is computed here for
    /// ECDSA and RSA (as cosign does); Ed25519 signs the payload itself, unhashed, because
    /// Vault's Ed25519 signs whatever input it gets and verifiers check pure Ed25519.
    fn input(self, payload: &[u8]) -> (Vec<u8>, bool) {
        match self {
            KeyKind::EcdsaP256 | KeyKind::Rsa => (sha2::Sha256::digest(payload).to_vec(), true),
            KeyKind::EcdsaP384 => (sha2::Sha384::digest(payload).to_vec(), true),
            KeyKind::EcdsaP521 => (sha2::Sha512::digest(payload).to_vec(), true),
            KeyKind::Ed25519 => (payload.to_vec(), false),
        }
    }
}

/// Where Vault is and how to talk to it.
struct Vault {
    /// `VAULT_ADDR` without a trailing slash.
    addr: String,
    /// The transit mount, without leading or trailing slashes.
    mount: String,
    namespace: Option<String>,
    client: reqwest::Client,
    retry: Http,
    token: Secret,
    /// Where the token came from, in words, for messages (never the token).
    token_source: String,
}

/// One answer from Vault that was not itself a transient failure.
struct Answer {
    status: u16,
    body: Vec<u8>,
}

impl Answer {
    fn json<T: serde::de::DeserializeOwned>(&self, what: &str) -> Result<T, KeyError> {
        serde_json::from_slice(&self.body).map_err(|e| KeyError::Remote {
            backend: BACKEND,
            message: format!("{what} returned an answer imagegate cannot read ({e})"),
            transient: false,
        })
    }

    /// `403 Forbidden: permission denied`: the status and Vault's `errors`, on one line.
    fn summary(&self) -> String {
        let reason = reqwest::StatusCode::from_u16(self.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        let errors = vault_errors(&self.body);
        match (reason.is_empty(), errors.is_empty()) {
            (true, true) => format!("{}", self.status),
            (false, true) => format!("{} {reason}", self.status),
            (true, false) => format!("{}: {errors}", self.status),
            (false, false) => format!("{} {reason}: {errors}", self.status),
        }
    }
}

#[derive(Deserialize)]
struct SignAnswer {
    data: SignData,
}

#[derive(Deserialize)]
struct SignData {
    signature: String,
}

#[derive(Deserialize)]
struct KeyAnswer {
    data: KeyData,
}

#[derive(Deserialize)]
struct KeyData {
    #[serde(rename = "type")]
    kind: String,
    latest_version: u64,
    #[serde(default)]
    keys: BTreeMap<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct LoginAnswer {
    auth: LoginAuth,
}

#[derive(Deserialize)]
struct LoginAuth {
    client_token: String,
    #[serde(default)]
    policies: Vec<String>,
}

#[derive(Deserialize)]
struct GitHubToken {
    value: String,
}

impl Vault {
    fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.addr)
    }

    /// Sends a request, trying again on transient failures (no answer, 5xx, 429, and 412,
    /// which a Vault performance standby answers while it catches up), and returns the first
    /// answer that is not one.
    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        with_token: bool,
    ) -> Result<Answer, KeyError> {
        let url = self.url(path);
        let what = format!("{method} {url}");
        let token = if with_token {
            Some(sensitive_header(&self.token, &self.token_source)?)
        } else {
            None
        };
        let (url, what, method, token) = (&url, &what, &method, &token);
        let result = self
            .retry
            .retry(what, || async move {
                let mut request = self
                    .client
                    .request(method.clone(), url)
                    .header("X-Vault-Request", "true");
                if let Some(namespace) = &self.namespace {
                    request = request.header("X-Vault-Namespace", namespace.as_str());
                }
                if let Some(token) = token {
                    request = request.header("X-Vault-Token", token.clone());
                }
                if let Some(body) = body {
                    request = request.json(body);
                }
                let response = request
                    .send()
                    .await
                    .map_err(|e| transport_error(what, &e, &self.addr))?;
                let status = response.status().as_u16();
                let body = http::read_capped(response, BODY_LIMIT)
                    .await
                    .map_err(|e| read_error(what, e))?;
                let answer = Answer {
                    status,
                    body: body.to_vec(),
                };
                if http::status_is_transient(status) || status == 412 {
                    return Err(KeyError::Remote {
                        backend: BACKEND,
                        message: self.redact(&format!("{what} answered {}", answer.summary())),
                        transient: true,
                    });
                }
                Ok(answer)
            })
            .await;
        result.map_err(|e| e.after_attempts(self.retry.settings().retries + 1))
    }

    /// Removes the token from text that came from the server, should it ever be there.
    fn redact(&self, text: &str) -> String {
        redact(text, self.token.expose())
    }

    fn namespace_note(&self) -> String {
        match &self.namespace {
            Some(ns) => format!(" in namespace '{ns}'"),
            None => String::new(),
        }
    }

    /// A 403: which capability on which path the token's policy lacks.
    fn denied(&self, method: &str, path: &str, capability: &str, answer: &Answer) -> KeyError {
        KeyError::Remote {
            backend: BACKEND,
            message: self.redact(&format!(
                "{method} {} was refused ({}). The token ({}) lacks the '{capability}' capability on '{path}'{}; its policy needs: path \"{path}\" {{ capabilities = [\"{capability}\"] }}. A 403 also means an expired or revoked token.",
                self.url(path),
                answer.summary(),
                self.token_source,
                self.namespace_note(),
            )),
            transient: false,
        }
    }

    /// Any other refusal, with a hint when there is one.
    fn refused(&self, method: &str, path: &str, answer: &Answer, hint: &str) -> KeyError {
        let mut message = format!(
            "{method} {} was refused ({})",
            self.url(path),
            answer.summary()
        );
        if !hint.is_empty() {
            message.push_str("; ");
            message.push_str(hint);
        }
        KeyError::Remote {
            backend: BACKEND,
            message: self.redact(&message),
            transient: false,
        }
    }
}

/// Reads `{mount}/keys/{key}`: the key's kind, latest version and that version's public key.
async fn read_key(vault: &Vault, key: &str) -> Result<(KeyKind, u64, PublicKey), KeyError> {
    let path = format!("{}/keys/{key}", vault.mount);
    let url = vault.url(&path);
    let answer = vault.send(Method::GET, &path, None, true).await?;
    match answer.status {
        200 => {}
        403 => return Err(vault.denied("GET", &path, "read", &answer)),
        404 => {
            let errors = vault_errors(&answer.body);
            let hint = if errors.contains("no handler for route") {
                format!(
                    "no secrets engine is mounted at '{}/'{}: set TRANSIT_SECRET_ENGINE_PATH to the transit mount",
                    vault.mount,
                    vault.namespace_note()
                )
            } else {
                format!(
                    "the transit key '{key}' does not exist under the mount '{}'{} (create it with `vault write -f {}/keys/{key} type=ecdsa-p256`), or the transit engine is mounted elsewhere (set TRANSIT_SECRET_ENGINE_PATH)",
                    vault.mount,
                    vault.namespace_note(),
                    vault.mount
                )
            };
            return Err(vault.refused("GET", &path, &answer, &hint));
        }
        _ => return Err(vault.refused("GET", &path, &answer, "")),
    }
    let parsed: KeyAnswer = answer.json(&format!("GET {url}"))?;
    let origin = format!("hashivault://{key}");
    let not_a_key = |reason: String| KeyError::NotAKey {
        origin: origin.clone(),
        reason,
    };
    let kind = KeyKind::from_vault(&parsed.data.kind).ok_or_else(|| {
        not_a_key(format!(
            "its type is '{}'; cosign signatures need ecdsa-p256, ecdsa-p384, ecdsa-p521, rsa-2048/3072/4096 or ed25519",
            parsed.data.kind
        ))
    })?;
    let version = parsed.data.latest_version;
    let public_text = parsed
        .data
        .keys
        .get(&version.to_string())
        .and_then(|v| v.get("public_key"))
        .and_then(|v| v.as_str())
        .unwrap_or("");
    if public_text.is_empty() {
        let reason = if kind == KeyKind::Ed25519 {
            "Vault gave no public key for its latest version (a derived ed25519 key needs a context, which cosign signing does not use)".to_string()
        } else {
            format!("Vault gave no public key for its latest version ({version})")
        };
        return Err(not_a_key(reason));
    }
    let public = if kind == KeyKind::Ed25519 {
        // Vault returns Ed25519 public keys as the base64 of the 32 raw bytes, not as PEM.
        let raw = base64::engine::general_purpose::STANDARD
            .decode(public_text.trim())
            .map_err(|e| not_a_key(format!("its ed25519 public key is not base64 ({e})")))?;
        if raw.len() != 32 {
            return Err(not_a_key(format!(
                "its ed25519 public key is {} bytes, not 32",
                raw.len()
            )));
        }
        let mut der = ED25519_SPKI_PREFIX.to_vec();
        der.extend_from_slice(&raw);
        PublicKey::from_der(&der, &origin)?
    } else {
        PublicKey::from_pem(public_text, &origin)?
    };
    Ok((kind, version, public))
}

/// `VAULT_ADDR` (or `BAO_ADDR`), checked.
fn address(env: &Environment) -> Result<String, KeyError> {
    let Some((var, value)) = first_non_empty(env, &["VAULT_ADDR", "BAO_ADDR"]) else {
        return Err(not_configured(
            "VAULT_ADDR (or BAO_ADDR) is not set; set it to Vault's address, e.g. https://vault.example.com:8200",
        ));
    };
    let addr = value.trim().trim_end_matches('/');
    let valid = (addr.starts_with("https://") || addr.starts_with("http://"))
        && addr
            .split_once("://")
            .is_some_and(|(_, rest)| !rest.is_empty())
        && !addr
            .chars()
            .any(|c| c.is_whitespace() || c == '?' || c == '#');
    if !valid {
        return Err(not_configured(&format!(
            "{var} is '{value}'; it must be an http:// or https:// address such as https://vault.example.com:8200"
        )));
    }
    Ok(addr.to_string())
}

/// `TRANSIT_SECRET_ENGINE_PATH` (default `transit`), checked.
fn mount(env: &Environment) -> Result<String, KeyError> {
    let raw = env
        .non_empty("TRANSIT_SECRET_ENGINE_PATH")
        .unwrap_or("transit");
    let mount = raw.trim().trim_matches('/');
    let valid = !mount.is_empty()
        && mount
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && mount
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..");
    if !valid {
        return Err(not_configured(&format!(
            "TRANSIT_SECRET_ENGINE_PATH is '{raw}'; it must be a Vault mount path such as 'transit' or 'team/transit'"
        )));
    }
    Ok(mount.to_string())
}

/// The client for Vault: the shared one, or one that also trusts `VAULT_CACERT` or skips
/// certificate checks for `VAULT_SKIP_VERIFY`.
fn vault_client(ctx: &KeyContext<'_>) -> Result<reqwest::Client, KeyError> {
    let env = ctx.env;
    let skip = match first_non_empty(env, &["VAULT_SKIP_VERIFY", "BAO_SKIP_VERIFY"]) {
        Some((var, value)) => parse_bool(value).ok_or_else(|| {
            not_configured(&format!(
                "{var} is '{value}'; use true or false (1, t, T, TRUE, true, True, or the same for false)"
            ))
        })?,
        None => false,
    };
    let ca_file = first_non_empty(env, &["VAULT_CACERT", "BAO_CACERT"]);
    if !skip && ca_file.is_none() {
        return ctx.http.client().cloned().map_err(|e| setup_error(&e));
    }
    let mut roots = Vec::new();
    if let Some((var, path)) = ca_file {
        roots = read_certificates(Path::new(path))
            .map_err(|reason| not_configured(&format!("{var} names {path}: {reason}")))?;
    }
    if skip {
        tracing::warn!(
            "VAULT_SKIP_VERIFY is set: Vault's TLS certificate is not checked, so anyone on the network path can pose as Vault"
        );
    }
    ctx.http
        .client_with(
            if skip {
                Trust::Nothing
            } else {
                Trust::Also(&roots)
            },
            None,
        )
        .map_err(|e| setup_error(&e))
}

/// Go's `strconv.ParseBool`, which Vault uses for its boolean variables.
fn parse_bool(value: &str) -> Option<bool> {
    match value.trim() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The PEM certificates in a file.
pub(super) fn read_certificates(
    path: &Path,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    let bytes = read_small_file(path)?;
    certificates_from_pem(&bytes)
}

/// The certificates in PEM text; an error if there are none.
pub(super) fn certificates_from_pem(
    pem: &[u8],
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not PEM certificates ({e})"))?;
    if certs.is_empty() {
        return Err("it holds no PEM certificate".into());
    }
    Ok(certs)
}

/// Reads a file of at most 64 KiB (tokens, certificates, keys).
pub(super) fn read_small_file(path: &Path) -> Result<Vec<u8>, String> {
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > TOKEN_FILE_LIMIT {
        return Err(format!(
            "it is {} bytes, larger than the {} expected",
            meta.len(),
            http::human_size(TOKEN_FILE_LIMIT)
        ));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}

/// How to log in, when `VAULT_AUTH_METHOD` names one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AuthMethod {
    Token,
    Jwt,
    Kubernetes,
}

/// Finds the token, logging in if that is how it is configured; returns it and where it came
/// from (for messages). The order is in the module documentation.
async fn obtain_token(vault: &Vault, ctx: &KeyContext<'_>) -> Result<(Secret, String), KeyError> {
    let env = ctx.env;
    if let Some((var, token)) = first_non_empty(env, &["VAULT_TOKEN", "BAO_TOKEN"]) {
        return Ok((Secret::new(token.trim()), format!("from {var}")));
    }
    let method = match env.non_empty("VAULT_AUTH_METHOD") {
        None => None,
        Some(v) => Some(match v.trim().to_ascii_lowercase().as_str() {
            "token" => AuthMethod::Token,
            "jwt" => AuthMethod::Jwt,
            "kubernetes" => AuthMethod::Kubernetes,
            _ => {
                return Err(not_configured(&format!(
                    "VAULT_AUTH_METHOD is '{v}'; use token, jwt or kubernetes"
                )));
            }
        }),
    };
    match method {
        Some(AuthMethod::Token) => match token_file(env)? {
            Some(found) => Ok(found),
            None => Err(not_configured(
                "VAULT_AUTH_METHOD=token, but there is no ~/.vault-token file (HOME is where it is looked for); run `vault login`, or set VAULT_TOKEN",
            )),
        },
        Some(AuthMethod::Jwt) => {
            let role = login_role(env, "jwt")?;
            match pipeline_jwt(vault, ctx).await? {
                Some((jwt, source)) => jwt_login(vault, env, &role, jwt, &source).await,
                None => Err(not_configured(
                    "VAULT_AUTH_METHOD=jwt, but there is no JWT: set VAULT_ID_TOKEN (GitLab: `id_tokens: VAULT_ID_TOKEN: {aud: …}`), or on GitHub Actions give the job `permissions: id-token: write`",
                )),
            }
        }
        Some(AuthMethod::Kubernetes) => {
            let role = login_role(env, "kubernetes")?;
            match service_account_token(env)? {
                Some(jwt) => kubernetes_login(vault, env, &role, jwt).await,
                None => Err(not_configured(&format!(
                    "VAULT_AUTH_METHOD=kubernetes, but there is no service-account token at {} (is automountServiceAccountToken off?)",
                    super::k8s::service_account_dir(env).join("token").display()
                ))),
            }
        }
        None if env.non_empty("VAULT_AUTH_ROLE").is_some() => {
            let role = login_role(env, "jwt")?;
            if let Some((jwt, source)) = pipeline_jwt(vault, ctx).await? {
                return jwt_login(vault, env, &role, jwt, &source).await;
            }
            if let Some(jwt) = service_account_token(env)? {
                return kubernetes_login(vault, env, &role, jwt).await;
            }
            Err(not_configured(&format!(
                "VAULT_AUTH_ROLE is set, but there is no identity token to log in with: no VAULT_ID_TOKEN, no GitHub Actions OIDC token (ACTIONS_ID_TOKEN_REQUEST_URL), and no service-account token at {}",
                super::k8s::service_account_dir(env).join("token").display()
            )))
        }
        None => {
            if let Some(found) = token_file(env)? {
                return Ok(found);
            }
            let mut reason = String::from(
                "no Vault token: set VAULT_TOKEN, or run `vault login` (which writes ~/.vault-token), or log in with the pipeline's identity by setting VAULT_AUTH_ROLE (with VAULT_ID_TOKEN on GitLab, `permissions: id-token: write` on GitHub Actions, or the pod's service account on Tekton)",
            );
            if env.non_empty("VAULT_ID_TOKEN").is_some() {
                reason.push_str(
                    "; VAULT_ID_TOKEN is set, so VAULT_AUTH_ROLE is probably what is missing",
                );
            } else if github_oidc(env).is_some() {
                reason.push_str("; a GitHub Actions OIDC token is available, so VAULT_AUTH_ROLE is probably what is missing");
            }
            Err(not_configured(&reason))
        }
    }
}

/// `VAULT_AUTH_ROLE`, which every login needs.
fn login_role(env: &Environment, method: &str) -> Result<String, KeyError> {
    env.non_empty("VAULT_AUTH_ROLE")
        .map(|r| r.trim().to_string())
        .filter(|r| !r.is_empty())
        .ok_or_else(|| {
            not_configured(&format!(
                "a {method} login needs VAULT_AUTH_ROLE: the name of the Vault role bound to this pipeline's identity"
            ))
        })
}

/// `~/.vault-token`, when it exists and is not empty.
fn token_file(env: &Environment) -> Result<Option<(Secret, String)>, KeyError> {
    let Some(home) = env.home() else {
        return Ok(None);
    };
    let path = home.join(".vault-token");
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = read_small_file(&path)
        .map_err(|reason| not_configured(&format!("cannot read {}: {reason}", path.display())))?;
    let token = String::from_utf8(bytes)
        .map_err(|_| not_configured(&format!("{} is not text", path.display())))?;
    let token = token.trim();
    if token.is_empty() {
        return Ok(None);
    }
    Ok(Some((
        Secret::new(token),
        format!("from {}", path.display()),
    )))
}

/// The pod's service-account token, when the file is there.
fn service_account_token(env: &Environment) -> Result<Option<Secret>, KeyError> {
    let path = super::k8s::service_account_dir(env).join("token");
    if !path.is_file() {
        return Ok(None);
    }
    let bytes = read_small_file(&path)
        .map_err(|reason| not_configured(&format!("cannot read {}: {reason}", path.display())))?;
    let token = String::from_utf8(bytes)
        .map_err(|_| not_configured(&format!("{} is not text", path.display())))?;
    let token = token.trim();
    Ok((!token.is_empty()).then(|| Secret::new(token)))
}

/// The GitHub Actions OIDC request URL and token, when the job may ask for one.
fn github_oidc(env: &Environment) -> Option<(&str, &str)> {
    Some((
        env.non_empty("ACTIONS_ID_TOKEN_REQUEST_URL")?,
        env.non_empty("ACTIONS_ID_TOKEN_REQUEST_TOKEN")?,
    ))
}

/// A JWT for a `jwt` login: `VAULT_ID_TOKEN`, else one asked from GitHub Actions.
async fn pipeline_jwt(
    vault: &Vault,
    ctx: &KeyContext<'_>,
) -> Result<Option<(Secret, String)>, KeyError> {
    let env = ctx.env;
    if let Some(jwt) = env.non_empty("VAULT_ID_TOKEN") {
        return Ok(Some((
            Secret::new(jwt.trim()),
            "VAULT_ID_TOKEN (GitLab id_tokens)".to_string(),
        )));
    }
    let Some((request_url, request_token)) = github_oidc(env) else {
        return Ok(None);
    };
    let audience = env.non_empty("VAULT_AUDIENCE").unwrap_or(&vault.addr);
    let jwt = github_token(ctx, request_url, &Secret::new(request_token), audience).await?;
    Ok(Some((
        jwt,
        format!("GitHub Actions OIDC token (audience '{audience}')"),
    )))
}

/// Asks GitHub Actions for an OIDC token: `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=…` with
/// `Authorization: bearer $ACTIONS_ID_TOKEN_REQUEST_TOKEN`, answered with `{"value": JWT}`.
async fn github_token(
    ctx: &KeyContext<'_>,
    request_url: &str,
    request_token: &Secret,
    audience: &str,
) -> Result<Secret, KeyError> {
    // GitHub's endpoint has public certificates: never Vault's custom trust or skip-verify.
    let client = ctx.http.client().map_err(|e| setup_error(&e))?;
    let bearer = Secret::new(format!("bearer {}", request_token.expose()));
    let authorization = sensitive_header(&bearer, "from ACTIONS_ID_TOKEN_REQUEST_TOKEN")?;
    let what = format!("GET {request_url} (GitHub Actions OIDC token, audience '{audience}')");
    let (what_ref, authorization) = (&what, &authorization);
    let result = ctx
        .http
        .retry(what_ref, || async move {
            let response = client
                .get(request_url)
                .query(&[("audience", audience)])
                .header("Authorization", authorization.clone())
                .header("Accept", "application/json")
                .send()
                .await
                .map_err(|e| transport_error(what_ref, &e, request_url))?;
            let status = response.status().as_u16();
            let body = http::read_capped(response, BODY_LIMIT)
                .await
                .map_err(|e| read_error(what_ref, e))?;
            if status != 200 {
                return Err(KeyError::Remote {
                    backend: BACKEND,
                    message: format!(
                        "{what_ref} answered {status}; check that the job has `permissions: id-token: write`"
                    ),
                    transient: http::status_is_transient(status),
                });
            }
            Ok(body)
        })
        .await
        .map_err(|e| e.after_attempts(ctx.http.settings().retries + 1))?;
    let parsed: GitHubToken = serde_json::from_slice(&result).map_err(|e| KeyError::Remote {
        backend: BACKEND,
        message: format!("{what} returned an answer imagegate cannot read ({e})"),
        transient: false,
    })?;
    if parsed.value.trim().is_empty() {
        return Err(KeyError::Remote {
            backend: BACKEND,
            message: format!("{what} returned an empty token"),
            transient: false,
        });
    }
    Ok(Secret::new(parsed.value.trim()))
}

async fn jwt_login(
    vault: &Vault,
    env: &Environment,
    role: &str,
    jwt: Secret,
    source: &str,
) -> Result<(Secret, String), KeyError> {
    let auth_path = auth_path(env, "jwt")?;
    let token = login(vault, &auth_path, role, &jwt, source).await?;
    Ok((
        token,
        format!("from the jwt login at auth/{auth_path} as role '{role}' with the {source}"),
    ))
}

async fn kubernetes_login(
    vault: &Vault,
    env: &Environment,
    role: &str,
    jwt: Secret,
) -> Result<(Secret, String), KeyError> {
    let auth_path = auth_path(env, "kubernetes")?;
    let token = login(vault, &auth_path, role, &jwt, "service-account token").await?;
    Ok((
        token,
        format!("from the kubernetes login at auth/{auth_path} as role '{role}'"),
    ))
}

/// `VAULT_AUTH_PATH`, or the method's usual mount.
fn auth_path(env: &Environment, default: &str) -> Result<String, KeyError> {
    let raw = env.non_empty("VAULT_AUTH_PATH").unwrap_or(default);
    let path = raw.trim().trim_matches('/');
    let path = path.strip_prefix("auth/").unwrap_or(path);
    let valid = !path.is_empty()
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        && path
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..");
    if !valid {
        return Err(not_configured(&format!(
            "VAULT_AUTH_PATH is '{raw}'; it must be an auth mount path such as 'jwt' or 'gitlab-jwt'"
        )));
    }
    Ok(path.to_string())
}

/// `POST auth/{path}/login {"role", "jwt"}` → `auth.client_token`. Failures name the path,
/// the role and the status, never the JWT.
async fn login(
    vault: &Vault,
    auth_path: &str,
    role: &str,
    jwt: &Secret,
    source: &str,
) -> Result<Secret, KeyError> {
    let path = format!("auth/{auth_path}/login");
    let body = serde_json::json!({ "role": role, "jwt": jwt.expose() });
    let answer = vault
        .send(Method::POST, &path, Some(&body), false)
        .await
        .map_err(|e| redact_error(e, jwt.expose()))?;
    if answer.status != 200 {
        let hint = format!(
            "the login as role '{role}' with the {source} failed: check that auth/{auth_path} is the right auth mount (VAULT_AUTH_PATH), that the role exists there{}, and that its bound claims (audience, subject, service account) match this token",
            vault.namespace_note()
        );
        return Err(redact_error(
            vault.refused("POST", &path, &answer, &hint),
            jwt.expose(),
        ));
    }
    let parsed: LoginAnswer = answer.json(&format!("POST {}", vault.url(&path)))?;
    let token = parsed.auth.client_token.trim();
    if token.is_empty() {
        return Err(KeyError::Remote {
            backend: BACKEND,
            message: format!("POST {} returned no client token", vault.url(&path)),
            transient: false,
        });
    }
    tracing::info!(
        "logged in to Vault at auth/{auth_path} as role '{role}' (policies: {})",
        parsed.auth.policies.join(", ")
    );
    Ok(Secret::new(token))
}

/// A header value that `Debug` output hides; refuses (without showing it) a value that cannot
/// be a header.
fn sensitive_header(value: &Secret, source: &str) -> Result<HeaderValue, KeyError> {
    let mut header = HeaderValue::from_str(value.expose()).map_err(|_| {
        not_configured(&format!(
            "the token ({source}) has characters an HTTP header cannot carry"
        ))
    })?;
    header.set_sensitive(true);
    Ok(header)
}

/// Vault's `{"errors": [...]}` on one line: Go's multi-error framing ("1 error occurred:",
/// tabs, bullets) removed.
fn vault_errors(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<String>,
    }
    let Ok(parsed) = serde_json::from_slice::<Errors>(body) else {
        return String::new();
    };
    let mut parts = Vec::new();
    for error in &parsed.errors {
        for line in error.lines() {
            let line = line.trim().trim_start_matches("* ").trim();
            let framing = line.ends_with("error occurred:") || line.ends_with("errors occurred:");
            if !line.is_empty() && !framing {
                parts.push(line.to_string());
            }
        }
    }
    let text = parts.join("; ");
    // Bounded: an answer's text goes into one line of an error message.
    match text.char_indices().nth(500) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

/// `vault:v<N>:<base64>` → the signature bytes, checking the version is the one asked for.
fn decode_signature(text: &str, version: u64) -> Result<Vec<u8>, String> {
    let rest = text
        .strip_prefix("vault:v")
        .ok_or("it does not start with 'vault:v'")?;
    let (number, encoded) = rest
        .split_once(':')
        .ok_or("it has no ':' after the version")?;
    let used: u64 = number
        .parse()
        .map_err(|_| format!("'{number}' is not a key version"))?;
    if used != version {
        return Err(format!(
            "it was made with key version {used}, not version {version} whose public key was read"
        ));
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|e| format!("it is not base64 ({e})"))?;
    if bytes.is_empty() {
        return Err("it is empty".into());
    }
    Ok(bytes)
}

fn first_non_empty<'e>(
    env: &'e Environment,
    vars: &[&'static str],
) -> Option<(&'static str, &'e str)> {
    // A value of only spaces is as good as unset (a CI variable left blank).
    vars.iter().find_map(|var| {
        env.non_empty(var)
            .filter(|value| !value.trim().is_empty())
            .map(|value| (*var, value))
    })
}

fn not_configured(reason: &str) -> KeyError {
    KeyError::NotConfigured {
        backend: BACKEND,
        reason: reason.to_string(),
    }
}

fn setup_error(err: &http::SetupError) -> KeyError {
    not_configured(&err.to_string())
}

/// A request that got no answer: transient unless it is a certificate problem.
fn transport_error(what: &str, err: &reqwest::Error, addr: &str) -> KeyError {
    let cause = http::describe_transport_error(err);
    if http::is_certificate_error(err) {
        return KeyError::Remote {
            backend: BACKEND,
            message: format!(
                "{what} failed: {cause}; the server's TLS certificate is not trusted: set VAULT_CACERT to the PEM file of its CA"
            ),
            transient: false,
        };
    }
    KeyError::Remote {
        backend: BACKEND,
        message: format!(
            "{what} failed: {cause}; check the address ({addr}) and that the server is up"
        ),
        transient: http::transport_error_is_transient(err),
    }
}

fn read_error(what: &str, err: http::ReadError) -> KeyError {
    KeyError::unreadable(BACKEND, what, err, "that is not Vault")
}

/// `text` with every occurrence of `secret` replaced.
fn redact(text: &str, secret: &str) -> String {
    // Very short values would blank out ordinary words; tokens are never that short.
    if secret.len() < 4 {
        return text.to_string();
    }
    text.replace(secret, "<redacted>")
}

fn redact_error(err: KeyError, secret: &str) -> KeyError {
    match err {
        KeyError::Remote {
            backend,
            message,
            transient,
        } => KeyError::Remote {
            backend,
            message: redact(&message, secret),
            transient,
        },
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_lose_their_prefix_and_keep_their_version() {
        let b64 = base64::engine::general_purpose::STANDARD.encode([0x30, 0x06, 1, 2, 3]);
        assert_eq!(
            decode_signature(&format!("vault:v3:{b64}"), 3).unwrap(),
            vec![0x30, 0x06, 1, 2, 3]
        );
        let err = decode_signature(&format!("vault:v2:{b64}"), 3).unwrap_err();
        assert!(err.contains("key version 2"), "{err}");
        assert!(decode_signature("vault:vx:AAAA", 1).is_err());
        assert!(decode_signature(&b64, 1).is_err());
        assert!(decode_signature("vault:v1:***", 1).is_err());
        assert!(decode_signature("vault:v1:", 1).is_err());
    }

    #[test]
    fn vault_error_lists_read_as_one_line() {
        let body = br#"{"errors":["1 error occurred:\n\t* permission denied\n\n"]}"#;
        assert_eq!(vault_errors(body), "permission denied");
        let body = br#"{"errors":["role \"ci\" could not be found","second"]}"#;
        assert_eq!(vault_errors(body), "role \"ci\" could not be found; second");
        assert_eq!(vault_errors(br#"{"errors":[]}"#), "");
        assert_eq!(vault_errors(b"<html>"), "");
    }

    #[test]
    fn key_types_choose_hash_and_input() {
        assert_eq!(KeyKind::from_vault("ecdsa-p256"), Some(KeyKind::EcdsaP256));
        assert_eq!(KeyKind::from_vault("rsa-4096"), Some(KeyKind::Rsa));
        assert_eq!(KeyKind::from_vault("aes256-gcm96"), None);
        let (input, prehashed) = KeyKind::EcdsaP256.input(b"payload");
        assert!(prehashed);
        assert_eq!(input, sha2::Sha256::digest(b"payload").to_vec());
        assert_eq!(KeyKind::EcdsaP384.hash(), "sha2-384");
        assert_eq!(KeyKind::EcdsaP384.input(b"p").0.len(), 48);
        assert_eq!(
            KeyKind::Ed25519.input(b"payload"),
            (b"payload".to_vec(), false)
        );
    }

    #[test]
    fn go_booleans() {
        for t in ["1", "t", "TRUE", "true", "True"] {
            assert_eq!(parse_bool(t), Some(true), "{t}");
        }
        for f in ["0", "f", "FALSE", "false"] {
            assert_eq!(parse_bool(f), Some(false), "{f}");
        }
        assert_eq!(parse_bool("yes"), None);
    }

    #[test]
    fn addresses_and_mounts_are_checked() {
        let env = |pairs: &[(&str, &str)]| Environment::from_vars(pairs.iter().copied());
        assert_eq!(
            address(&env(&[("VAULT_ADDR", "https://v:8200/")])).unwrap(),
            "https://v:8200"
        );
        assert_eq!(
            address(&env(&[("BAO_ADDR", "http://127.0.0.1:8200")])).unwrap(),
            "http://127.0.0.1:8200"
        );
        let err = address(&env(&[])).unwrap_err().to_string();
        assert!(err.contains("VAULT_ADDR"), "{err}");
        let err = address(&env(&[("VAULT_ADDR", "vault:8200")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("http:// or https://"), "{err}");
        assert_eq!(mount(&env(&[])).unwrap(), "transit");
        assert_eq!(
            mount(&env(&[("TRANSIT_SECRET_ENGINE_PATH", "/team/transit/")])).unwrap(),
            "team/transit"
        );
        assert!(mount(&env(&[("TRANSIT_SECRET_ENGINE_PATH", "a/../b")])).is_err());
        assert!(mount(&env(&[("TRANSIT_SECRET_ENGINE_PATH", "a b")])).is_err());
    }

    #[test]
    fn redaction_replaces_every_occurrence() {
        assert_eq!(
            redact("x s.abcd y s.abcd", "s.abcd"),
            "x <redacted> y <redacted>"
        );
        assert_eq!(redact("a b", ""), "a b");
        let err = redact_error(
            KeyError::Remote {
                backend: BACKEND,
                message: "bad jwt eyJhbGciOi".into(),
                transient: false,
            },
            "eyJhbGciOi",
        );
        assert!(!err.to_string().contains("eyJhbGciOi"));
    }
}
