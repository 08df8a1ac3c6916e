//! A stand-in for HashiCorp Vault (or OpenBao): neither can be installed on the test machines
//! (see the test bed notes), so this small HTTP(S) server speaks exactly the endpoints
//! `hashivault://` uses, with real keys and real signatures made by OpenSSL:
//!
//! - `GET /v1/{mount}/keys/{key}`: the key's type, latest version and public key (PEM; raw
//!   base64 for ed25519, as Vault does);
//! - `POST /v1/{mount}/sign/{key}[/{hash}]`: honours `input`, `prehashed`, `key_version`,
//!   `signature_algorithm` (RSA: `pss` by default, as Vault) and answers `vault:v<N>:<base64>`
//!   with ASN.1 DER ECDSA signatures;
//! - `POST /v1/auth/{path}/login`: `{"role", "jwt"}` → `auth.client_token` for configured logins;
//! - ACL policies per token, path globs with a trailing `*`, `read` for GET and `update` for
//!   POST, answering 403 `{"errors":["1 error occurred:\n\t* permission denied\n\n"]}` as
//!   Vault does;
//! - `X-Vault-Namespace`: when a namespace is required, any other is refused;
//! - GitHub Actions' OIDC token endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL`), for the login flow.
//!
//! It records every request (headers and bodies) so that tests can check what was sent.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::Digest as _;

use super::k8s_standin::{Request, Response, Serving, TestCa, serve};
use super::tools;

/// The kinds of transit key the stand-in holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyType {
    EcdsaP256,
    EcdsaP384,
    Rsa2048,
    Ed25519,
}

impl KeyType {
    fn vault_type(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Ed25519 => "ed25519",
        }
    }

    /// The per-version `name` Vault reports.
    fn version_name(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "P-256",
            KeyType::EcdsaP384 => "P-384",
            KeyType::Rsa2048 => "rsa-2048",
            KeyType::Ed25519 => "ed25519",
        }
    }
}

/// Which JWTs a login role accepts.
#[derive(Clone, Debug)]
pub enum Accept {
    /// Exactly this token (a GitLab id_token, a service-account token).
    Jwt(String),
    /// A token from the stand-in's GitHub endpoint whose `aud` is this.
    GitHubAudience(String),
}

struct Key {
    kind: KeyType,
    /// Holds `key.pem`.
    dir: tempfile::TempDir,
    /// The public key as Vault returns it.
    vault_public: String,
    version: u64,
}

struct LoginRole {
    path: String,
    role: String,
    accept: Accept,
    token: String,
}

#[derive(Default)]
struct State {
    namespace: Option<String>,
    mounts: BTreeSet<String>,
    keys: BTreeMap<(String, String), Key>,
    /// token → (path pattern, capabilities)
    tokens: HashMap<String, Vec<(String, Vec<String>)>>,
    logins: Vec<LoginRole>,
    github_request_token: Option<String>,
    github_audiences: Vec<String>,
    fail_next: VecDeque<u16>,
    requests: Vec<Request>,
}

/// The Vault stand-in: a free 127.0.0.1 port, stopped when dropped.
pub struct VaultStandin {
    state: Arc<Mutex<State>>,
    server: Serving,
    ca: Option<TestCa>,
}

impl VaultStandin {
    /// Over plain HTTP (`VAULT_ADDR=http://…`, as a dev-mode Vault listens).
    pub fn start() -> VaultStandin {
        Self::start_with(None)
    }

    /// Over HTTPS with a certificate from a CA of its own ([`VaultStandin::ca_pem`]).
    pub fn start_tls() -> VaultStandin {
        Self::start_with(Some(TestCa::new("Vault")))
    }

    fn start_with(ca: Option<TestCa>) -> VaultStandin {
        let state = Arc::new(Mutex::new(State::default()));
        let handler_state = state.clone();
        let server = serve(ca.as_ref().map(|ca| ca.server_config()), move |request| {
            handle(&handler_state, request)
        });
        VaultStandin { state, server, ca }
    }

    /// `http(s)://127.0.0.1:PORT`, for VAULT_ADDR.
    pub fn addr(&self) -> String {
        let scheme = if self.ca.is_some() { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.server.port)
    }

    /// The CA that signed the HTTPS certificate.
    pub fn ca(&self) -> &TestCa {
        self.ca.as_ref().expect("start_tls() stand-in")
    }

    /// Creates a transit key (version 1) under `mount`; returns its public key as PEM.
    pub fn add_key(&self, mount: &str, name: &str, kind: KeyType) -> String {
        let dir = tempfile::tempdir().expect("key dir");
        let key = dir.path().join("key.pem");
        let key_arg = key.to_str().expect("utf-8 path");
        match kind {
            KeyType::EcdsaP256 | KeyType::EcdsaP384 => {
                let curve = if kind == KeyType::EcdsaP256 {
                    "ec_paramgen_curve:P-256"
                } else {
                    "ec_paramgen_curve:P-384"
                };
                openssl(
                    &[
                        "genpkey",
                        "-algorithm",
                        "EC",
                        "-pkeyopt",
                        curve,
                        "-out",
                        key_arg,
                    ],
                    b"",
                )
            }
            KeyType::Rsa2048 => openssl(
                &[
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                    "-out",
                    key_arg,
                ],
                b"",
            ),
            KeyType::Ed25519 => {
                openssl(&["genpkey", "-algorithm", "ED25519", "-out", key_arg], b"")
            }
        };
        let public_pem = String::from_utf8(openssl(&["pkey", "-in", key_arg, "-pubout"], b""))
            .expect("PEM is text");
        let vault_public = if kind == KeyType::Ed25519 {
            // Vault gives Ed25519 public keys as the base64 of the 32 raw bytes.
            let der = openssl(&["pkey", "-in", key_arg, "-pubout", "-outform", "DER"], b"");
            base64::engine::general_purpose::STANDARD.encode(&der[der.len() - 32..])
        } else {
            public_pem.clone()
        };
        let mut state = self.state.lock().unwrap();
        state.mounts.insert(mount.to_string());
        state.keys.insert(
            (mount.to_string(), name.to_string()),
            Key {
                kind,
                dir,
                vault_public,
                version: 1,
            },
        );
        public_pem
    }

    /// A token whose policy grants `capabilities` on each path pattern (`*` at the end globs).
    pub fn add_token(&self, token: &str, grants: &[(&str, &[&str])]) {
        let grants = grants
            .iter()
            .map(|(path, caps)| {
                (
                    path.to_string(),
                    caps.iter().map(|c| c.to_string()).collect(),
                )
            })
            .collect();
        self.state
            .lock()
            .unwrap()
            .tokens
            .insert(token.to_string(), grants);
    }

    /// A role at `auth/{path}/login` that gives `token` for an accepted JWT.
    pub fn add_login(&self, path: &str, role: &str, accept: Accept, token: &str) {
        self.state.lock().unwrap().logins.push(LoginRole {
            path: path.to_string(),
            role: role.to_string(),
            accept,
            token: token.to_string(),
        });
    }

    /// Serves GitHub Actions' OIDC token endpoint for `request_token`; returns the
    /// ACTIONS_ID_TOKEN_REQUEST_URL to give the job.
    pub fn enable_github_oidc(&self, request_token: &str) -> String {
        self.state.lock().unwrap().github_request_token = Some(request_token.to_string());
        format!("{}/_github/token?api-version=2.0", self.addr())
    }

    /// The audiences GitHub tokens were asked for.
    pub fn github_audiences(&self) -> Vec<String> {
        self.state.lock().unwrap().github_audiences.clone()
    }

    /// Everything is refused unless sent with `X-Vault-Namespace: namespace`.
    pub fn require_namespace(&self, namespace: &str) {
        self.state.lock().unwrap().namespace = Some(namespace.to_string());
    }

    /// The next requests are answered with these statuses, in turn, before normal service.
    pub fn fail_next(&self, statuses: &[u16]) {
        self.state
            .lock()
            .unwrap()
            .fail_next
            .extend(statuses.iter().copied());
    }

    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }
}

/// Runs openssl with `input` on stdin; returns stdout. For setting keys up: failures panic.
fn openssl(args: &[&str], input: &[u8]) -> Vec<u8> {
    try_openssl(args, input).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs openssl with `input` on stdin; returns stdout, or what went wrong.
fn try_openssl(args: &[&str], input: &[u8]) -> Result<Vec<u8>, String> {
    let mut child = Command::new(tools::openssl())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|e| format!("cannot write to openssl: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("openssl: {e}"))?;
    if !output.status.success() {
        return Err(format!(
            "openssl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(output.stdout)
}

fn errors(status: u16, messages: &[&str]) -> Response {
    Response::json(status, &json!({ "errors": messages }))
}

fn permission_denied() -> Response {
    errors(403, &["1 error occurred:\n\t* permission denied\n\n"])
}

/// Vault's glob: a trailing `*` matches any rest; otherwise the path must be equal.
fn allowed(grants: &[(String, Vec<String>)], path: &str, capability: &str) -> bool {
    grants.iter().any(|(pattern, caps)| {
        let matches = match pattern.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => pattern == path,
        };
        matches && caps.iter().any(|c| c == capability || c == "sudo")
    })
}

fn handle(state: &Mutex<State>, request: Request) -> Response {
    let mut state = state.lock().unwrap();
    state.requests.push(request.clone());
    if let Some(code) = state.fail_next.pop_front() {
        let message = if code == 503 {
            "Vault is sealed"
        } else {
            "scripted failure (stand-in)"
        };
        return errors(code, &[message]);
    }
    let path = request.path().to_string();
    if path == "/_github/token" {
        return github_token(&mut state, &request);
    }
    let Some(vpath) = path.strip_prefix("/v1/") else {
        return errors(404, &[]);
    };
    let sent_namespace = request
        .header("x-vault-namespace")
        .map(|n| n.trim_matches('/').to_string());
    if state.namespace.is_some() && sent_namespace != state.namespace {
        return permission_denied();
    }
    if let Some(rest) = vpath.strip_prefix("auth/")
        && let Some(auth_path) = rest.strip_suffix("/login")
        && request.method == "POST"
    {
        return login(&state, auth_path, &request);
    }

    let token = request.header("x-vault-token").unwrap_or_default();
    let Some(grants) = state.tokens.get(token) else {
        return permission_denied();
    };
    let capability = match request.method.as_str() {
        "GET" => "read",
        "POST" | "PUT" => "update",
        _ => return errors(405, &["unsupported operation"]),
    };
    if !allowed(grants, vpath, capability) {
        return permission_denied();
    }
    if request.method == "GET"
        && let Some((mount, key)) = vpath.rsplit_once("/keys/")
    {
        return read_key(&state, mount, key, vpath);
    }
    if request.method != "GET"
        && let Some((mount, rest)) = vpath.rsplit_once("/sign/")
    {
        return sign(&state, mount, rest, &request);
    }
    errors(
        404,
        &[&format!(
            "no handler for route \"{vpath}\". route entry not found."
        )],
    )
}

fn read_key(state: &State, mount: &str, key: &str, vpath: &str) -> Response {
    if !state.mounts.contains(mount) {
        return errors(
            404,
            &[&format!(
                "no handler for route \"{vpath}\". route entry not found."
            )],
        );
    }
    let Some(found) = state.keys.get(&(mount.to_string(), key.to_string())) else {
        return errors(404, &[]);
    };
    let versions: serde_json::Map<String, Value> = (1..=found.version)
        .map(|v| {
            (
                v.to_string(),
                json!({
                    "certificate_chain": "",
                    "creation_time": "2024-01-01T00:00:00.000000000Z",
                    "name": found.kind.version_name(),
                    "public_key": found.vault_public,
                }),
            )
        })
        .collect();
    Response::json(
        200,
        &json!({
            "request_id": "00000000-0000-4000-8000-000000000001",
            "lease_id": "",
            "renewable": false,
            "lease_duration": 0,
            "data": {
                "allow_plaintext_backup": false,
                "auto_rotate_period": 0,
                "deletion_allowed": false,
                "derived": false,
                "exportable": false,
                "imported_key": false,
                "keys": versions,
                "latest_version": found.version,
                "min_available_version": 0,
                "min_decryption_version": 1,
                "min_encryption_version": 0,
                "name": key,
                "supports_decryption": false,
                "supports_derivation": found.kind == KeyType::Ed25519,
                "supports_encryption": false,
                "supports_signing": true,
                "type": found.kind.vault_type(),
            },
            "wrap_info": null,
            "warnings": null,
            "auth": null,
        }),
    )
}

fn sign(state: &State, mount: &str, rest: &str, request: &Request) -> Response {
    let (key, url_hash) = match rest.split_once('/') {
        Some((key, hash)) => (key, Some(hash)),
        None => (rest, None),
    };
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return errors(400, &["failed to parse JSON input"]);
    };
    let Some(found) = state.keys.get(&(mount.to_string(), key.to_string())) else {
        return errors(400, &["signing key not found"]);
    };
    let hash = url_hash
        .map(str::to_string)
        .or_else(|| body["hash_algorithm"].as_str().map(str::to_string))
        .unwrap_or_else(|| "sha2-256".to_string());
    let digest_len = match hash.as_str() {
        "sha2-256" => 32,
        "sha2-384" => 48,
        "sha2-512" => 64,
        other => return errors(400, &[&format!("invalid hash algorithm \"{other}\"")]),
    };
    let requested = body["key_version"].as_u64().unwrap_or(0);
    if requested > found.version {
        return errors(
            400,
            &["requested version for signing is higher than the latest key version"],
        );
    }
    let version = if requested == 0 {
        found.version
    } else {
        requested
    };
    let marshaling = body["marshaling_algorithm"].as_str().unwrap_or("asn1");
    if marshaling != "asn1" {
        return errors(400, &["this stand-in only marshals asn1 signatures"]);
    }
    let Some(input) = body["input"]
        .as_str()
        .and_then(|i| base64::engine::general_purpose::STANDARD.decode(i).ok())
    else {
        return errors(400, &["unable to decode input as base64"]);
    };
    let prehashed = body["prehashed"].as_bool().unwrap_or(false);
    let key_file = found.dir.path().join("key.pem");
    let key_arg = key_file.to_str().expect("utf-8 path");
    let signature = if found.kind == KeyType::Ed25519 {
        if prehashed {
            return errors(
                400,
                &["this stand-in signs ed25519 input as given: prehashed input is refused"],
            );
        }
        // One-shot (pure) Ed25519 needs its input in a file, not on stdin.
        let input_file = found.dir.path().join("input.bin");
        std::fs::write(&input_file, &input).expect("write the input");
        let input_arg = input_file.to_str().expect("utf-8 path");
        try_openssl(
            &[
                "pkeyutl", "-sign", "-rawin", "-inkey", key_arg, "-in", input_arg,
            ],
            b"",
        )
    } else {
        let digest = if prehashed {
            if input.len() != digest_len {
                return errors(
                    400,
                    &[&format!(
                        "prehashed input is {} bytes; a {hash} digest is {digest_len} (stand-in check)",
                        input.len()
                    )],
                );
            }
            input
        } else {
            match hash.as_str() {
                "sha2-384" => sha2::Sha384::digest(&input).to_vec(),
                "sha2-512" => sha2::Sha512::digest(&input).to_vec(),
                _ => sha2::Sha256::digest(&input).to_vec(),
            }
        };
        let openssl_digest = match hash.as_str() {
            "sha2-384" => "digest:sha384",
            "sha2-512" => "digest:sha512",
            _ => "digest:sha256",
        };
        match found.kind {
            KeyType::Rsa2048 => {
                // Vault signs RSA with PSS unless told pkcs1v15.
                let algorithm = body["signature_algorithm"].as_str().unwrap_or("pss");
                let mut args = vec![
                    "pkeyutl",
                    "-sign",
                    "-inkey",
                    key_arg,
                    "-pkeyopt",
                    openssl_digest,
                ];
                match algorithm {
                    "pkcs1v15" => {}
                    "pss" => args.extend([
                        "-pkeyopt",
                        "rsa_padding_mode:pss",
                        "-pkeyopt",
                        "rsa_pss_saltlen:max",
                    ]),
                    other => {
                        return errors(
                            400,
                            &[&format!("unsupported rsa signature algorithm {other}")],
                        );
                    }
                }
                try_openssl(&args, &digest)
            }
            _ => try_openssl(&["pkeyutl", "-sign", "-inkey", key_arg], &digest),
        }
    };
    let signature = match signature {
        Ok(bytes) => bytes,
        Err(e) => return errors(500, &[&format!("stand-in: {e}")]),
    };
    let encoded = base64::engine::general_purpose::STANDARD.encode(signature);
    Response::json(
        200,
        &json!({
            "data": { "signature": format!("vault:v{version}:{encoded}"), "key_version": version },
            "wrap_info": null,
            "warnings": null,
            "auth": null,
        }),
    )
}

fn login(state: &State, auth_path: &str, request: &Request) -> Response {
    let roles: Vec<&LoginRole> = state
        .logins
        .iter()
        .filter(|l| l.path == auth_path)
        .collect();
    if roles.is_empty() {
        return permission_denied();
    }
    let Ok(body) = serde_json::from_slice::<Value>(&request.body) else {
        return errors(400, &["failed to parse JSON input"]);
    };
    let role = body["role"].as_str().unwrap_or_default();
    let jwt = body["jwt"].as_str().unwrap_or_default();
    let Some(login) = roles.iter().find(|l| l.role == role) else {
        return errors(400, &[&format!("role \"{role}\" could not be found")]);
    };
    let accepted = match &login.accept {
        Accept::Jwt(expected) => jwt == expected,
        Accept::GitHubAudience(audience) => jwt_audience(jwt).as_deref() == Some(audience),
    };
    if !accepted {
        return errors(
            400,
            &[
                "error validating token: invalid audience (aud) claim: audience claim does not match any expected audience",
            ],
        );
    }
    Response::json(
        200,
        &json!({
            "auth": {
                "client_token": login.token,
                "accessor": "stand-in-accessor",
                "policies": ["default", "cosign-signer"],
                "token_policies": ["default", "cosign-signer"],
                "lease_duration": 3600,
                "renewable": true,
            },
        }),
    )
}

/// The `aud` claim of a JWT (unverified: the stand-in issued it).
fn jwt_audience(jwt: &str) -> Option<String> {
    let claims = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(claims)
        .ok()?;
    let value: Value = serde_json::from_slice(&bytes).ok()?;
    value["aud"].as_str().map(str::to_string)
}

/// GitHub Actions' token endpoint: `Authorization: bearer REQUEST_TOKEN`, `audience=…`.
fn github_token(state: &mut State, request: &Request) -> Response {
    let Some(expected) = state.github_request_token.clone() else {
        return Response::json(404, &json!({ "message": "Not Found" }));
    };
    let authorized = request
        .header("authorization")
        .and_then(|v| v.split_once(' '))
        .is_some_and(|(scheme, token)| scheme.eq_ignore_ascii_case("bearer") && token == expected);
    if !authorized {
        return Response::json(401, &json!({ "message": "Unauthorized" }));
    }
    let audience = request.query("audience").unwrap_or_default();
    state.github_audiences.push(audience.clone());
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header = b64.encode(br#"{"alg":"RS256","typ":"JWT","kid":"stand-in"}"#);
    let claims = b64.encode(
        json!({
            "iss": "https://token.actions.githubusercontent.com",
            "aud": audience,
            "sub": "repo:example/app:ref:refs/heads/main",
        })
        .to_string(),
    );
    let jwt = format!("{header}.{claims}.c3RhbmQtaW4tc2lnbmF0dXJl");
    Response::json(200, &json!({ "count": 1, "value": jwt }))
}

/// A loopback port nothing listens on (for "Vault is unreachable").
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// Writes `text` as `~/.vault-token` under `home`.
pub fn write_token_file(home: &Path, text: &str) {
    std::fs::write(home.join(".vault-token"), text).expect("write .vault-token");
}
