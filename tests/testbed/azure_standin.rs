//! A stand-in for Azure Key Vault, Microsoft Entra ID's token endpoint and the managed identity
//! endpoints (no real Azure can be reached from the test machines). It speaks exactly the
//! documented REST shapes imagegate uses, with real keys and real signatures:
//!
//! - Entra ID v2 token endpoint (`POST /{tenant}/oauth2/v2.0/token`, HTTPS): client credentials
//!   with a client secret, or a `client_assertion` — a federated token (workload identity) or
//!   an RS256 JWT signed by the registered certificate's key, checked with `x5t`, audience and
//!   times;
//! - IMDS (`GET /metadata/identity/oauth2/token`, `Metadata: true`) and App Service
//!   (`GET /msi/token`, `X-IDENTITY-HEADER`), plain HTTP on their own port;
//! - Key Vault 7.4 (HTTPS): `GET /keys/{name}[/{version}]` as a JWK, `POST …/sign` answering
//!   raw `r||s`, 401 with a `WWW-Authenticate: Bearer authorization=…, resource=…` challenge
//!   for a missing or wrong-audience token, and errors in Key Vault's JSON shape.
//!
//! Switches make it answer 503, deny reading or signing, return cosign's `r||r`, or want tokens
//! for another resource, so that tests can see imagegate refuse.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::json;
use sigstore::crypto::{CosignVerificationKey, Signature, SigningScheme};

use super::standin::{Request, Response, Server, TestCa, random_secret, write};

const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub const TENANT: &str = "7f3c2b1a-0000-4000-8000-00000000aaaa";
pub const CLIENT_ID: &str = "0c1d2e3f-0000-4000-8000-00000000bbbb";
pub const MANAGED_CLIENT_ID: &str = "5a6b7c8d-0000-4000-8000-00000000cccc";
pub const PUBLIC_RESOURCE: &str = "https://vault.azure.net";

/// Behaviour switches.
#[derive(Debug)]
pub struct Switches {
    /// Key Vault requests answered 503.
    pub unavailable: u32,
    /// GET of a key answered 403.
    pub deny_get: bool,
    /// Sign answered 403.
    pub deny_sign: bool,
    /// Sign answers `r||r`, as cosign's Azure verifier (v1.10.9) builds signatures.
    pub r_r_bug: bool,
    /// The resource Key Vault accepts tokens for, and names in its challenge.
    pub vault_resource: String,
    /// The tenant Key Vault names in its challenge.
    pub vault_tenant: String,
    /// Every token is refused with a challenge.
    pub refuse_tokens: bool,
}

impl Default for Switches {
    fn default() -> Self {
        Switches {
            unavailable: 0,
            deny_get: false,
            deny_sign: false,
            r_r_bug: false,
            vault_resource: PUBLIC_RESOURCE.to_string(),
            vault_tenant: TENANT.to_string(),
            refuse_tokens: false,
        }
    }
}

enum EcKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
}

impl EcKey {
    fn generate(crv: &str) -> EcKey {
        use p256::pkcs8::DecodePrivateKey as _;
        let der = |scheme: SigningScheme| {
            scheme
                .create_signer()
                .expect("key")
                .to_sigstore_keypair()
                .expect("pair")
                .private_key_to_der()
                .expect("der")
        };
        match crv {
            "P-384" => EcKey::P384(
                p384::ecdsa::SigningKey::from_pkcs8_der(&der(
                    SigningScheme::ECDSA_P384_SHA384_ASN1,
                ))
                .expect("p384"),
            ),
            _ => EcKey::P256(
                p256::ecdsa::SigningKey::from_pkcs8_der(&der(
                    SigningScheme::ECDSA_P256_SHA256_ASN1,
                ))
                .expect("p256"),
            ),
        }
    }

    /// `(crv, alg, x, y)` of the public key.
    fn jwk_parts(&self) -> (&'static str, &'static str, Vec<u8>, Vec<u8>) {
        match self {
            EcKey::P256(k) => {
                let p = k.verifying_key().to_encoded_point(false);
                (
                    "P-256",
                    "ES256",
                    p.x().unwrap().to_vec(),
                    p.y().unwrap().to_vec(),
                )
            }
            EcKey::P384(k) => {
                let p = k.verifying_key().to_encoded_point(false);
                (
                    "P-384",
                    "ES384",
                    p.x().unwrap().to_vec(),
                    p.y().unwrap().to_vec(),
                )
            }
        }
    }

    fn public_der(&self) -> Vec<u8> {
        use p256::pkcs8::EncodePublicKey as _;
        match self {
            EcKey::P256(k) => p256::PublicKey::from(k.verifying_key())
                .to_public_key_der()
                .expect("der")
                .into_vec(),
            EcKey::P384(k) => p384::PublicKey::from(k.verifying_key())
                .to_public_key_der()
                .expect("der")
                .into_vec(),
        }
    }

    /// Raw `r||s` over a digest, as Key Vault answers.
    fn sign_raw(&self, digest: &[u8]) -> Option<Vec<u8>> {
        use p256::ecdsa::signature::hazmat::PrehashSigner as _;
        match self {
            EcKey::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign_prehash(digest).ok()?;
                Some(s.to_bytes().to_vec())
            }
            EcKey::P384(k) => {
                let s: p384::ecdsa::Signature = k.sign_prehash(digest).ok()?;
                Some(s.to_bytes().to_vec())
            }
        }
    }
}

struct KeyVersion {
    id: String,
    key: EcKey,
    enabled: bool,
}

struct Grant {
    who: String,
    resource: String,
}

struct State {
    authority: String,
    client_secret: String,
    federated_token: String,
    identity_header: String,
    certificate: Option<(String, Vec<u8>)>,
    certificate_key_pem: Option<String>,
    tokens: HashMap<String, Grant>,
    /// Key name as created, and its versions (the last is the latest).
    keys: BTreeMap<String, Vec<KeyVersion>>,
    switches: Switches,
    log: Vec<(String, BTreeMap<String, String>)>,
}

/// The running stand-in: HTTPS for Entra ID and Key Vault, plain HTTP for managed identity.
pub struct AzureStandin {
    pub ca: TestCa,
    api: Server,
    identity: Server,
    state: Arc<Mutex<State>>,
    dir: tempfile::TempDir,
}

impl AzureStandin {
    pub fn start() -> AzureStandin {
        let ca = TestCa::new();
        let state = Arc::new(Mutex::new(State {
            authority: String::new(),
            client_secret: random_secret("Q~secret"),
            federated_token: format!("eyJ.{}", random_secret("federated")),
            identity_header: random_secret("identity-header"),
            certificate: None,
            certificate_key_pem: None,
            tokens: HashMap::new(),
            keys: BTreeMap::new(),
            switches: Switches::default(),
            log: Vec::new(),
        }));
        let handler_state = state.clone();
        let api = Server::start(
            Some(&ca),
            Arc::new(move |req: &Request| handle(&handler_state, req, false)),
        );
        let handler_state = state.clone();
        let identity = Server::start(
            None,
            Arc::new(move |req: &Request| handle(&handler_state, req, true)),
        );
        state.lock().unwrap().authority = api.url();
        AzureStandin {
            ca,
            api,
            identity,
            state,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// The vault as an `azurekms://` URI names it: `127.0.0.1:PORT`.
    pub fn vault(&self) -> String {
        self.api.host()
    }

    /// For `AZURE_AUTHORITY_HOST`.
    pub fn authority(&self) -> String {
        self.api.url()
    }

    /// For `AZURE_POD_IDENTITY_AUTHORITY_HOST` (the IMDS address).
    pub fn imds(&self) -> String {
        self.identity.url()
    }

    /// For `IDENTITY_ENDPOINT` (App Service).
    pub fn identity_endpoint(&self) -> String {
        format!("{}/msi/token", self.identity.url())
    }

    pub fn identity_header(&self) -> String {
        self.state.lock().unwrap().identity_header.clone()
    }

    pub fn client_secret(&self) -> String {
        self.state.lock().unwrap().client_secret.clone()
    }

    /// The projected service account token of workload identity, written to a file.
    pub fn federated_token_file(&self) -> PathBuf {
        let token = self.state.lock().unwrap().federated_token.clone();
        write(self.dir.path(), "azure-identity-token", &token)
    }

    /// A PEM file with a new self-signed certificate and its RSA key, registered with the app.
    pub fn client_certificate_file(&self) -> PathBuf {
        use sha1::Digest as _;
        let pair = SigningScheme::RSA_PKCS1_SHA256(2048)
            .create_signer()
            .expect("key")
            .to_sigstore_keypair()
            .expect("pair");
        let key_pem = pair.private_key_to_pem().expect("pem").to_string();
        let rcgen_key = rcgen::KeyPair::from_pem(&key_pem).expect("rcgen key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "imagegate-ci");
        let cert = params.self_signed(&rcgen_key).expect("certificate");
        let thumbprint = B64URL.encode(sha1::Sha1::digest(cert.der().as_ref()));
        {
            let mut s = self.state.lock().unwrap();
            s.certificate = Some((thumbprint, pair.public_key_to_der().expect("der")));
            s.certificate_key_pem = Some(key_pem.clone());
        }
        write(
            self.dir.path(),
            "client-certificate.pem",
            &format!("{}{key_pem}", cert.pem()),
        )
    }

    /// Creates key `name` with one version on `crv` (P-256, P-384); gives the version.
    pub fn add_key(&self, name: &str, crv: &str) -> String {
        self.add_version(name, crv)
    }

    /// Adds a new version (the latest from now on).
    pub fn add_version(&self, name: &str, crv: &str) -> String {
        let id = hex::encode(random_secret("v").as_bytes())[..32].to_string();
        let id = id.to_ascii_lowercase();
        self.state
            .lock()
            .unwrap()
            .keys
            .entry(name.to_string())
            .or_default()
            .push(KeyVersion {
                id: id.clone(),
                key: EcKey::generate(crv),
                enabled: true,
            });
        id
    }

    pub fn set_enabled(&self, name: &str, version: &str, enabled: bool) {
        let mut s = self.state.lock().unwrap();
        for v in s.keys.get_mut(name).expect("key").iter_mut() {
            if v.id == version {
                v.enabled = enabled;
            }
        }
    }

    pub fn public_der(&self, name: &str, version: &str) -> Vec<u8> {
        let s = self.state.lock().unwrap();
        s.keys[name]
            .iter()
            .find(|v| v.id == version)
            .expect("version")
            .key
            .public_der()
    }

    pub fn with_switches(&self, change: impl FnOnce(&mut Switches)) {
        change(&mut self.state.lock().unwrap().switches);
    }

    /// `METHOD /path?query` of every request, in order.
    pub fn requests(&self) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.log.iter().map(|(line, _)| line.clone()).collect()
    }

    /// The resources tokens were issued for, in order.
    pub fn token_resources(&self) -> Vec<String> {
        let s = self.state.lock().unwrap();
        let mut grants: Vec<&Grant> = s.tokens.values().collect();
        grants.sort_by_key(|g| g.who.clone());
        let mut resources: Vec<String> = grants.iter().map(|g| g.resource.clone()).collect();
        resources.sort();
        resources.dedup();
        resources
    }

    /// Who the token used for the last successful sign belonged to.
    pub fn last_signer(&self) -> Option<String> {
        let s = self.state.lock().unwrap();
        let (_, headers) = s
            .log
            .iter()
            .rev()
            .find(|(line, _)| line.contains("/sign?"))?;
        let token = headers.get("authorization")?.strip_prefix("Bearer ")?;
        s.tokens.get(token).map(|g| g.who.clone())
    }

    /// Every secret the stand-in knows or handed out: the client secret, federated token,
    /// identity header, certificate key (line by line) and access tokens.
    pub fn secrets(&self) -> Vec<String> {
        let s = self.state.lock().unwrap();
        let mut all = vec![
            s.client_secret.clone(),
            s.federated_token.clone(),
            s.identity_header.clone(),
        ];
        if let Some(pem) = &s.certificate_key_pem {
            all.extend(
                pem.lines()
                    .filter(|l| !l.starts_with("-----") && l.len() > 20)
                    .map(str::to_string),
            );
        }
        all.extend(s.tokens.keys().cloned());
        all
    }
}

fn vault_error(status: u16, code: &str, message: &str) -> Response {
    Response::json(status, json!({"error": {"code": code, "message": message}}))
}

fn entra_error(status: u16, error: &str, description: &str) -> Response {
    Response::json(
        status,
        json!({
            "error": error,
            "error_description": description,
            "error_codes": [],
            "trace_id": "00000000-0000-0000-0000-000000000000",
        }),
    )
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn issue(s: &mut State, who: &str, resource: &str) -> String {
    let token = format!("eyJ0eXAi.{}", random_secret("access"));
    s.tokens.insert(
        token.clone(),
        Grant {
            who: who.to_string(),
            resource: resource.to_string(),
        },
    );
    token
}

fn handle(state: &Mutex<State>, req: &Request, identity_port: bool) -> Response {
    let mut s = state.lock().unwrap();
    s.log.push((req.line(), req.headers.clone()));
    let path = req.path.clone();
    if identity_port {
        return match path.as_str() {
            "/metadata/identity/oauth2/token" => imds(&mut s, req),
            "/msi/token" => app_service(&mut s, req),
            _ => Response::json(404, json!({"error": "not_found"})),
        };
    }
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (req.method.as_str(), segments.as_slice()) {
        ("POST", [tenant, "oauth2", "v2.0", "token"]) => entra(&mut s, req, tenant),
        (_, ["keys", ..]) => key_vault(&mut s, req, &segments[1..]),
        _ => vault_error(404, "NotFound", "not a stand-in route"),
    }
}

/// Entra ID's v2 token endpoint, client credentials flow.
fn entra(s: &mut State, req: &Request, tenant: &str) -> Response {
    if tenant != TENANT {
        return entra_error(
            400,
            "invalid_request",
            &format!("AADSTS90002: Tenant '{tenant}' not found."),
        );
    }
    let form = req.form();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "client_credentials" {
        return entra_error(
            400,
            "unsupported_grant_type",
            "AADSTS70003: The app requested an unsupported grant type.",
        );
    }
    if field("client_id") != CLIENT_ID {
        return entra_error(
            400,
            "unauthorized_client",
            &format!(
                "AADSTS700016: Application with identifier '{}' was not found in the directory.",
                field("client_id")
            ),
        );
    }
    let Some(resource) = field("scope").strip_suffix("/.default") else {
        return entra_error(
            400,
            "invalid_scope",
            "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.",
        );
    };
    let resource = resource.to_string();
    let who = if let Some(secret) = form.get("client_secret") {
        if *secret != s.client_secret {
            return entra_error(
                401,
                "invalid_client",
                &format!(
                    "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{CLIENT_ID}'."
                ),
            );
        }
        "app:secret"
    } else if field("client_assertion_type")
        == "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    {
        let assertion = field("client_assertion");
        if assertion == s.federated_token {
            "app:workload-identity"
        } else if check_certificate_assertion(s, assertion) {
            "app:certificate"
        } else {
            return entra_error(
                401,
                "invalid_client",
                "AADSTS700027: Client assertion contains an invalid signature.",
            );
        }
    } else {
        return entra_error(
            401,
            "invalid_client",
            "AADSTS7000216: 'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.",
        );
    };
    let token = issue(s, who, &resource);
    Response::json(
        200,
        json!({"token_type": "Bearer", "expires_in": 3599, "ext_expires_in": 3599, "access_token": token}),
    )
}

/// An RS256 client assertion signed by the registered certificate's key.
fn check_certificate_assertion(s: &State, assertion: &str) -> bool {
    let Some((thumbprint, public_der)) = &s.certificate else {
        return false;
    };
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return false;
    };
    let decode = |part: &str| -> Option<serde_json::Value> {
        serde_json::from_slice(&B64URL.decode(part).ok()?).ok()
    };
    let (Some(header_json), Some(claims_json)) = (decode(header), decode(claims)) else {
        return false;
    };
    let Ok(signature) = B64URL.decode(signature) else {
        return false;
    };
    let key = CosignVerificationKey::try_from_der(public_der).expect("key");
    let input = format!("{header}.{claims}");
    let audience = format!("{}/{TENANT}/oauth2/v2.0/token", s.authority);
    header_json["alg"] == "RS256"
        && header_json["x5t"] == thumbprint.as_str()
        && key
            .verify_signature(Signature::Raw(&signature), input.as_bytes())
            .is_ok()
        && claims_json["aud"] == audience.as_str()
        && claims_json["iss"] == CLIENT_ID
        && claims_json["sub"] == CLIENT_ID
        && claims_json["exp"].as_i64().unwrap_or(0) > now()
        && claims_json["nbf"].as_i64().unwrap_or(i64::MAX) <= now() + 60
        && claims_json["jti"].as_str().is_some_and(|j| !j.is_empty())
}

/// The instance metadata service's managed identity token.
fn imds(s: &mut State, req: &Request) -> Response {
    if req.header("metadata") != Some("true") {
        return entra_error(
            400,
            "invalid_request",
            "Required metadata header not specified",
        );
    }
    let query = req.query_pairs();
    if query.get("api-version").map(String::as_str) != Some("2018-02-01") {
        return entra_error(400, "invalid_request", "Invalid or unsupported api-version");
    }
    let Some(resource) = query.get("resource").cloned() else {
        return entra_error(
            400,
            "invalid_request",
            "Required audience parameter not specified",
        );
    };
    let who = match query.get("client_id") {
        None => "managed:system".to_string(),
        Some(id) if id == MANAGED_CLIENT_ID => format!("managed:{id}"),
        Some(_) => return entra_error(400, "invalid_request", "Identity not found"),
    };
    let token = issue(s, &who, &resource);
    let expires_on = (now() + 86399).to_string();
    Response::json(
        200,
        json!({
            "access_token": token,
            "client_id": MANAGED_CLIENT_ID,
            "expires_in": "86399",
            "expires_on": expires_on,
            "ext_expires_in": "86399",
            "not_before": now().to_string(),
            "resource": resource,
            "token_type": "Bearer",
        }),
    )
}

/// App Service's managed identity endpoint (api-version 2019-08-01).
fn app_service(s: &mut State, req: &Request) -> Response {
    if req.header("x-identity-header") != Some(s.identity_header.as_str()) {
        return Response::json(401, json!({"statusCode": 401, "message": "Unauthorized"}));
    }
    let query = req.query_pairs();
    if query.get("api-version").map(String::as_str) != Some("2019-08-01") {
        return Response::json(
            400,
            json!({"statusCode": 400, "message": "Invalid api-version"}),
        );
    }
    let Some(resource) = query.get("resource").cloned() else {
        return Response::json(
            400,
            json!({"statusCode": 400, "message": "resource is required"}),
        );
    };
    let who = format!(
        "app-service:{}",
        query
            .get("client_id")
            .map(String::as_str)
            .unwrap_or("system")
    );
    let token = issue(s, &who, &resource);
    Response::json(
        200,
        json!({
            "access_token": token,
            "expires_on": (now() + 86399).to_string(),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": MANAGED_CLIENT_ID,
        }),
    )
}

/// Key Vault 7.4 keys: GET a key bundle, POST sign.
fn key_vault(s: &mut State, req: &Request, path: &[&str]) -> Response {
    if s.switches.unavailable > 0 {
        s.switches.unavailable -= 1;
        return vault_error(
            503,
            "ServiceUnavailable",
            "The service is temporarily unavailable.",
        );
    }
    if req.query_pairs().get("api-version").map(String::as_str) != Some("7.4") {
        return vault_error(
            400,
            "BadParameter",
            "The specified version is not recognized. Consider using the latest supported version (7.4).",
        );
    }
    let challenge = format!(
        "Bearer authorization=\"{}/{}\", resource=\"{}\"",
        s.authority, s.switches.vault_tenant, s.switches.vault_resource
    );
    let grant = req.bearer().and_then(|t| s.tokens.get(t));
    let refusal = match grant {
        None => Some("AKV10000: Request is missing a Bearer or PoP token.".to_string()),
        Some(_) if s.switches.refuse_tokens => Some("AKV10032: Invalid issuer.".to_string()),
        Some(g) if g.resource != s.switches.vault_resource => Some(format!(
            "AKV10022: Invalid audience. Expected {}, found: {}.",
            s.switches.vault_resource, g.resource
        )),
        Some(_) => None,
    };
    if let Some(message) = refusal {
        return vault_error(401, "Unauthorized", &message).header("WWW-Authenticate", &challenge);
    }
    let host = req.header("host").unwrap_or("127.0.0.1").to_string();
    match (req.method.as_str(), path) {
        ("GET", [name]) => get_key(s, &host, name, None),
        ("GET", [name, version]) => get_key(s, &host, name, Some(version)),
        ("POST", [name, version, "sign"]) => sign(s, req, &host, name, version),
        _ => vault_error(405, "BadParameter", "not a stand-in route"),
    }
}

fn find<'a>(s: &'a State, name: &str, version: Option<&str>) -> Option<(&'a str, &'a KeyVersion)> {
    let (stored, versions) = s.keys.iter().find(|(k, _)| k.eq_ignore_ascii_case(name))?;
    let version = match version {
        Some(v) => versions.iter().find(|kv| kv.id == v)?,
        None => versions.last()?,
    };
    Some((stored.as_str(), version))
}

fn not_found(name: &str, version: Option<&str>) -> Response {
    vault_error(
        404,
        "KeyNotFound",
        &format!(
            "A key with (name/id) {name}{} was not found in this key vault.",
            version.map(|v| format!("/{v}")).unwrap_or_default()
        ),
    )
}

fn forbidden(permission: &str, host: &str) -> Response {
    vault_error(
        403,
        "Forbidden",
        &format!(
            "The user, group or application 'appid={CLIENT_ID};iss=https://sts.windows.net/{TENANT}/' does not have keys {permission} permission on key vault '{host}'. For help resolving this issue, please see https://go.microsoft.com/fwlink/?linkid=2125287"
        ),
    )
}

fn get_key(s: &State, host: &str, name: &str, version: Option<&str>) -> Response {
    if s.switches.deny_get {
        return forbidden("get", host);
    }
    let Some((stored, kv)) = find(s, name, version) else {
        return not_found(name, version);
    };
    let (crv, _, x, y) = kv.key.jwk_parts();
    Response::json(
        200,
        json!({
            "key": {
                "kid": format!("https://{host}/keys/{stored}/{}", kv.id),
                "kty": "EC",
                "key_ops": ["sign", "verify"],
                "crv": crv,
                "x": B64URL.encode(x),
                "y": B64URL.encode(y),
            },
            "attributes": {
                "enabled": kv.enabled,
                "created": 1700000000,
                "updated": 1700000000,
                "recoveryLevel": "Recoverable+Purgeable",
            },
            "tags": {},
        }),
    )
}

fn sign(s: &State, req: &Request, host: &str, name: &str, version: &str) -> Response {
    if s.switches.deny_sign {
        return forbidden("sign", host);
    }
    let Some((stored, kv)) = find(s, name, Some(version)) else {
        return not_found(name, Some(version));
    };
    if !kv.enabled {
        return vault_error(
            403,
            "Forbidden",
            "Operation \"sign\" is not allowed on a disabled key.",
        );
    }
    let body = req.json().unwrap_or_default();
    let (_, alg, _, _) = kv.key.jwk_parts();
    if body["alg"] != alg {
        return vault_error(
            400,
            "BadParameter",
            &format!("Invalid algorithm for this key; use {alg}."),
        );
    }
    let Some(digest) = body["value"].as_str().and_then(|v| B64URL.decode(v).ok()) else {
        return vault_error(
            400,
            "BadParameter",
            "Property value is not a base64url string.",
        );
    };
    let expected = if alg == "ES384" { 48 } else { 32 };
    if digest.len() != expected {
        return vault_error(
            400,
            "BadParameter",
            "Invalid digest length for the algorithm.",
        );
    }
    let Some(mut raw) = kv.key.sign_raw(&digest) else {
        return vault_error(500, "InternalError", "signing failed");
    };
    if s.switches.r_r_bug {
        let half = raw.len() / 2;
        let r = raw[..half].to_vec();
        raw = [r.clone(), r].concat();
    }
    Response::json(
        200,
        json!({
            "kid": format!("https://{host}/keys/{stored}/{}", kv.id),
            "value": B64URL.encode(raw),
        }),
    )
}
