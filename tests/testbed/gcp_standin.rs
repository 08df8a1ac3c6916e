//! A stand-in for Google Cloud KMS and Google's token services (no real GCP can be reached
//! from the test machines). It speaks exactly the documented REST endpoints imagegate uses,
//! with real keys and real signatures:
//!
//! - OAuth token endpoint (`POST /token`): the service-account JWT grant (the RS256 signature is
//!   checked with the account's public key, with the audience, scope and times) and the
//!   refresh-token grant of `authorized_user` files;
//! - STS (`POST /sts/v1/token`) for `external_account` files, a subject-token URL
//!   (`GET /oidc/token`, GitHub's shape) and IAM Credentials `generateAccessToken`
//!   (`POST /iam/v1/projects/-/serviceAccounts/EMAIL:generateAccessToken`);
//! - the metadata server's token (`GET /computeMetadata/v1/instance/service-accounts/default/token`,
//!   plain HTTP on its own port, `Metadata-Flavor: Google` required);
//! - KMS v1: `GET` key, version, version list (`filter=state=ENABLED`, `orderBy=name desc`, in
//!   pages of two), `publicKey` with `pemCrc32c`, and `POST …:asymmetricSign` with CRC32Cs,
//!   over EC P-256, P-384 and RSA 2048 keys.
//!
//! Switches make it answer 503, send wrong checksums, deny signing or sign with another key,
//! so that tests can see imagegate refuse.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use serde_json::json;
use sigstore::crypto::{CosignVerificationKey, Signature, SigningScheme};

use super::standin::{Request, Response, Server, TestCa, random_secret, write};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
const B64URL: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;

pub const PROJECT_PREFIX: &str = "projects/imagegate-test/locations/global/keyRings/ci/cryptoKeys";
pub const SERVICE_ACCOUNT: &str = "signer@imagegate-test.iam.gserviceaccount.com";
pub const TARGET_ACCOUNT: &str = "cosign@imagegate-test.iam.gserviceaccount.com";
pub const AUDIENCE: &str =
    "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/ci/providers/github";
const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
const KMS_SCOPE: &str = "https://www.googleapis.com/auth/cloudkms";
const PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Behaviour switches; counters apply to that many of the next matching requests.
#[derive(Default, Debug)]
pub struct Switches {
    /// KMS requests answered 503.
    pub unavailable: u32,
    /// Signatures sent with a wrong `signatureCrc32c`.
    pub wrong_signature_crc: u32,
    /// Signatures sent with `verifiedDigestCrc32c: false`.
    pub unverified_digest: u32,
    /// Public keys sent with a wrong `pemCrc32c`.
    pub wrong_pem_crc: u32,
    /// `asymmetricSign` answered 403 PERMISSION_DENIED.
    pub deny_sign: bool,
    /// Signatures made by another key of the same kind (correct checksums).
    pub foreign_signer: bool,
    /// Sign answers name another key version.
    pub wrong_version_name: bool,
}

/// A key held by the stand-in.
pub enum KmsKey {
    P256(p256::ecdsa::SigningKey),
    P384(p384::ecdsa::SigningKey),
    Rsa(Box<rsa::pkcs1v15::SigningKey<rsa::sha2::Sha256>>),
}

fn pkcs8(scheme: SigningScheme) -> Vec<u8> {
    scheme
        .create_signer()
        .expect("key")
        .to_sigstore_keypair()
        .expect("pair")
        .private_key_to_der()
        .expect("der")
        .to_vec()
}

impl KmsKey {
    /// A new key for a KMS algorithm name.
    pub fn generate(algorithm: &str) -> KmsKey {
        use p256::pkcs8::DecodePrivateKey as _;
        match algorithm {
            "EC_SIGN_P256_SHA256" => KmsKey::P256(
                p256::ecdsa::SigningKey::from_pkcs8_der(&pkcs8(
                    SigningScheme::ECDSA_P256_SHA256_ASN1,
                ))
                .expect("p256"),
            ),
            "EC_SIGN_P384_SHA384" => KmsKey::P384(
                p384::ecdsa::SigningKey::from_pkcs8_der(&pkcs8(
                    SigningScheme::ECDSA_P384_SHA384_ASN1,
                ))
                .expect("p384"),
            ),
            _ => {
                let der = pkcs8(SigningScheme::RSA_PKCS1_SHA256(2048));
                let key = rsa::RsaPrivateKey::from_pkcs8_der(&der).expect("rsa");
                KmsKey::Rsa(Box::new(rsa::pkcs1v15::SigningKey::new(key)))
            }
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            KmsKey::P256(_) => "EC_SIGN_P256_SHA256",
            KmsKey::P384(_) => "EC_SIGN_P384_SHA384",
            KmsKey::Rsa(_) => "RSA_SIGN_PKCS1_2048_SHA256",
        }
    }

    pub fn public_pem(&self) -> String {
        use p256::pkcs8::EncodePublicKey as _;
        let der = match self {
            KmsKey::P256(k) => p256::PublicKey::from(k.verifying_key())
                .to_public_key_der()
                .expect("der"),
            KmsKey::P384(k) => p384::PublicKey::from(k.verifying_key())
                .to_public_key_der()
                .expect("der"),
            KmsKey::Rsa(k) => {
                let private: &rsa::RsaPrivateKey = (**k).as_ref();
                let public: rsa::RsaPublicKey = private.into();
                public.to_public_key_der().expect("der")
            }
        };
        pem::encode_config(
            &pem::Pem::new("PUBLIC KEY", der.as_bytes().to_vec()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        )
    }

    /// The signature KMS returns: ECDSA in DER, RSA PKCS#1 v1.5, over a given digest.
    fn sign_digest(&self, digest: &[u8]) -> Option<Vec<u8>> {
        use p256::ecdsa::signature::hazmat::PrehashSigner as _;
        use rsa::signature::SignatureEncoding as _;
        match self {
            KmsKey::P256(k) => {
                let s: p256::ecdsa::Signature = k.sign_prehash(digest).ok()?;
                Some(s.to_der().as_bytes().to_vec())
            }
            KmsKey::P384(k) => {
                let s: p384::ecdsa::Signature = k.sign_prehash(digest).ok()?;
                Some(s.to_der().as_bytes().to_vec())
            }
            KmsKey::Rsa(k) => {
                use rsa::signature::hazmat::PrehashSigner as _;
                let s: rsa::pkcs1v15::Signature = k.sign_prehash(digest).ok()?;
                Some(s.to_vec())
            }
        }
    }

    fn digest_field(&self) -> &'static str {
        match self {
            KmsKey::P384(_) => "sha384",
            _ => "sha256",
        }
    }
}

struct Version {
    state: String,
    key: KmsKey,
}

struct Key {
    purpose: String,
    versions: BTreeMap<u32, Version>,
}

struct Grant {
    who: String,
    scope: String,
}

struct State {
    api_url: String,
    sa_key_id: String,
    sa_public_der: Vec<u8>,
    sa_private_pem: String,
    user_client_id: String,
    user_client_secret: String,
    user_refresh_token: String,
    subject_token: String,
    subject_request_token: String,
    tokens: HashMap<String, Grant>,
    keys: BTreeMap<String, Key>,
    switches: Switches,
    log: Vec<(String, BTreeMap<String, String>)>,
}

/// The running stand-in: HTTPS for the APIs, plain HTTP for the metadata server.
pub struct GcpStandin {
    pub ca: TestCa,
    api: Server,
    metadata: Server,
    state: Arc<Mutex<State>>,
    dir: tempfile::TempDir,
}

impl GcpStandin {
    pub fn start() -> GcpStandin {
        let ca = TestCa::new();
        let sa = SigningScheme::RSA_PKCS1_SHA256(2048)
            .create_signer()
            .expect("service account key")
            .to_sigstore_keypair()
            .expect("pair");
        let state = Arc::new(Mutex::new(State {
            api_url: String::new(),
            sa_key_id: random_secret("key-id"),
            sa_public_der: sa.public_key_to_der().expect("der"),
            sa_private_pem: sa.private_key_to_pem().expect("pem").to_string(),
            user_client_id: "123-imagegate.apps.googleusercontent.com".to_string(),
            user_client_secret: random_secret("client-secret"),
            user_refresh_token: random_secret("refresh"),
            subject_token: format!("eyJ.{}", random_secret("federated")),
            subject_request_token: random_secret("oidc-request"),
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
        let metadata = Server::start(
            None,
            Arc::new(move |req: &Request| handle(&handler_state, req, true)),
        );
        state.lock().unwrap().api_url = api.url();
        GcpStandin {
            ca,
            api,
            metadata,
            state,
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// For `CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDKMS`: `https://127.0.0.1:PORT/`.
    pub fn kms_override(&self) -> String {
        format!("{}/", self.api.url())
    }

    /// For `GCE_METADATA_HOST`: `127.0.0.1:PORT`.
    pub fn metadata_host(&self) -> String {
        self.metadata.host()
    }

    /// `projects/…/cryptoKeys/NAME`
    pub fn key_name(name: &str) -> String {
        format!("{PROJECT_PREFIX}/{name}")
    }

    /// Creates a key with `purpose` (ASYMMETRIC_SIGN, ENCRYPT_DECRYPT) and no versions.
    pub fn add_key(&self, name: &str, purpose: &str) -> String {
        let key_name = Self::key_name(name);
        self.state.lock().unwrap().keys.insert(
            key_name.clone(),
            Key {
                purpose: purpose.to_string(),
                versions: BTreeMap::new(),
            },
        );
        key_name
    }

    /// Adds the next version (1, 2, …) with a new key for `algorithm`, in `state`.
    pub fn add_version(&self, key_name: &str, algorithm: &str, state: &str) -> u32 {
        let mut s = self.state.lock().unwrap();
        let key = s.keys.get_mut(key_name).expect("key exists");
        let number = key.versions.keys().last().copied().unwrap_or(0) + 1;
        key.versions.insert(
            number,
            Version {
                state: state.to_string(),
                key: KmsKey::generate(algorithm),
            },
        );
        number
    }

    pub fn public_pem(&self, key_name: &str, version: u32) -> String {
        let s = self.state.lock().unwrap();
        s.keys[key_name].versions[&version].key.public_pem()
    }

    pub fn with_switches(&self, change: impl FnOnce(&mut Switches)) {
        change(&mut self.state.lock().unwrap().switches);
    }

    /// `METHOD /path?query` of every request, in order.
    pub fn requests(&self) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.log.iter().map(|(line, _)| line.clone()).collect()
    }

    /// The headers of every request whose line starts with `prefix`.
    pub fn headers_of(&self, prefix: &str) -> Vec<BTreeMap<String, String>> {
        let s = self.state.lock().unwrap();
        s.log
            .iter()
            .filter(|(line, _)| line.starts_with(prefix))
            .map(|(_, h)| h.clone())
            .collect()
    }

    /// Every secret the stand-in knows or handed out: the service account's private key (line
    /// by line), client secret, refresh token, subject tokens, access tokens.
    pub fn secrets(&self) -> Vec<String> {
        let s = self.state.lock().unwrap();
        let mut all: Vec<String> = s
            .sa_private_pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 20)
            .map(str::to_string)
            .collect();
        all.extend([
            s.user_client_secret.clone(),
            s.user_refresh_token.clone(),
            s.subject_token.clone(),
            s.subject_request_token.clone(),
        ]);
        all.extend(s.tokens.keys().cloned());
        all
    }

    fn write_json(&self, name: &str, value: serde_json::Value) -> PathBuf {
        write(self.dir.path(), name, &value.to_string())
    }

    /// A service account key file, as the Cloud console downloads it.
    pub fn service_account_file(&self) -> PathBuf {
        let s = self.state.lock().unwrap();
        let value = json!({
            "type": "service_account",
            "project_id": "imagegate-test",
            "private_key_id": s.sa_key_id,
            "private_key": s.sa_private_pem,
            "client_email": SERVICE_ACCOUNT,
            "client_id": "1234567890",
            "token_uri": format!("{}/token", s.api_url),
        });
        drop(s);
        self.write_json("service-account.json", value)
    }

    /// A service account file whose private key is not the account's (a deleted key).
    pub fn service_account_file_with_wrong_key(&self) -> PathBuf {
        let other = SigningScheme::RSA_PKCS1_SHA256(2048)
            .create_signer()
            .expect("key")
            .to_sigstore_keypair()
            .expect("pair")
            .private_key_to_pem()
            .expect("pem")
            .to_string();
        let s = self.state.lock().unwrap();
        let value = json!({
            "type": "service_account",
            "private_key_id": s.sa_key_id,
            "private_key": other,
            "client_email": SERVICE_ACCOUNT,
            "token_uri": format!("{}/token", s.api_url),
        });
        drop(s);
        self.write_json("wrong-key.json", value)
    }

    /// `gcloud auth application-default login`'s file, pointing at the stand-in.
    pub fn authorized_user_file(&self, quota_project: Option<&str>) -> PathBuf {
        let s = self.state.lock().unwrap();
        let mut value = json!({
            "type": "authorized_user",
            "client_id": s.user_client_id,
            "client_secret": s.user_client_secret,
            "refresh_token": s.user_refresh_token,
            "token_uri": format!("{}/token", s.api_url),
        });
        if let Some(project) = quota_project {
            value["quota_project_id"] = json!(project);
        }
        drop(s);
        self.write_json("authorized-user.json", value)
    }

    /// gcloud's impersonation ADC file: the user's token traded for TARGET_ACCOUNT's.
    pub fn impersonated_service_account_file(&self) -> PathBuf {
        let s = self.state.lock().unwrap();
        let value = json!({
            "type": "impersonated_service_account",
            "service_account_impersonation_url": format!("{}/iam/v1/projects/-/serviceAccounts/{TARGET_ACCOUNT}:generateAccessToken", s.api_url),
            "source_credentials": {
                "type": "authorized_user",
                "client_id": s.user_client_id,
                "client_secret": s.user_client_secret,
                "refresh_token": s.user_refresh_token,
                "token_uri": format!("{}/token", s.api_url),
            },
        });
        drop(s);
        self.write_json("impersonated.json", value)
    }

    /// An `external_account` file whose subject token is a file (Kubernetes, GitLab), as plain
    /// text; with `impersonate`, STS's token is traded for TARGET_ACCOUNT's.
    pub fn external_account_file_source(&self, impersonate: bool) -> PathBuf {
        let token = self.state.lock().unwrap().subject_token.clone();
        let token_path = write(self.dir.path(), "oidc-token", &format!("{token}\n"));
        self.external_account(
            json!({ "file": token_path.display().to_string() }),
            impersonate,
        )
    }

    /// An `external_account` file whose subject token comes from a URL with a bearer header and
    /// a JSON answer (GitHub Actions' OIDC endpoint, as google-github-actions/auth writes it).
    pub fn external_account_url_source(&self, impersonate: bool) -> PathBuf {
        let (api, request) = {
            let s = self.state.lock().unwrap();
            (s.api_url.clone(), s.subject_request_token.clone())
        };
        self.external_account(
            json!({
                "url": format!("{api}/oidc/token?audience=imagegate"),
                "headers": { "Authorization": format!("Bearer {request}") },
                "format": { "type": "json", "subject_token_field_name": "value" },
            }),
            impersonate,
        )
    }

    fn external_account(&self, source: serde_json::Value, impersonate: bool) -> PathBuf {
        let api = self.state.lock().unwrap().api_url.clone();
        let mut value = json!({
            "type": "external_account",
            "audience": AUDIENCE,
            "subject_token_type": JWT_TOKEN_TYPE,
            "token_url": format!("{api}/sts/v1/token"),
            "credential_source": source,
        });
        if impersonate {
            value["service_account_impersonation_url"] = json!(format!(
                "{api}/iam/v1/projects/-/serviceAccounts/{TARGET_ACCOUNT}:generateAccessToken"
            ));
        }
        self.write_json("external-account.json", value)
    }

    /// Who the token used for the last `asymmetricSign` belonged to.
    pub fn last_signer(&self) -> Option<String> {
        let s = self.state.lock().unwrap();
        let (_, headers) = s
            .log
            .iter()
            .rev()
            .find(|(line, _)| line.contains(":asymmetricSign"))?;
        let token = headers.get("authorization")?.strip_prefix("Bearer ")?;
        s.tokens.get(token).map(|g| g.who.clone())
    }
}

fn google_error(code: u16, status: &str, message: &str) -> Response {
    Response::json(
        code,
        json!({"error": {"code": code, "message": message, "status": status}}),
    )
}

fn oauth_error(code: u16, error: &str, description: &str) -> Response {
    Response::json(
        code,
        json!({"error": error, "error_description": description}),
    )
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn handle(state: &Mutex<State>, req: &Request, metadata_port: bool) -> Response {
    let mut s = state.lock().unwrap();
    s.log.push((req.line(), req.headers.clone()));
    if metadata_port {
        return metadata(&mut s, req);
    }
    match (req.method.as_str(), req.path.as_str()) {
        ("POST", "/token") => token_endpoint(&mut s, req),
        ("POST", "/sts/v1/token") => sts(&mut s, req),
        ("GET", "/oidc/token") => {
            if req.bearer() == Some(s.subject_request_token.as_str()) {
                Response::json(200, json!({"count": 1, "value": s.subject_token}))
            } else {
                Response::json(401, json!({"message": "Bad credentials"}))
            }
        }
        ("POST", path) if path.starts_with("/iam/v1/") => impersonate(&mut s, req),
        (_, path) if path.starts_with("/v1/") => kms(&mut s, req),
        _ => google_error(404, "NOT_FOUND", "not a stand-in route"),
    }
}

fn issue(s: &mut State, who: &str, scope: &str) -> String {
    let token = format!("ya29.{}", random_secret("standin"));
    s.tokens.insert(
        token.clone(),
        Grant {
            who: who.to_string(),
            scope: scope.to_string(),
        },
    );
    token
}

fn token_answer(token: String) -> Response {
    Response::json(
        200,
        json!({"access_token": token, "expires_in": 3599, "token_type": "Bearer"}),
    )
}

/// Google's OAuth token endpoint: the JWT-bearer grant and the refresh-token grant.
fn token_endpoint(s: &mut State, req: &Request) -> Response {
    let form = req.form();
    match form.get("grant_type").map(String::as_str) {
        Some("urn:ietf:params:oauth:grant-type:jwt-bearer") => {
            let Some(assertion) = form.get("assertion") else {
                return oauth_error(
                    400,
                    "invalid_request",
                    "Missing required parameter: assertion",
                );
            };
            match check_assertion(s, assertion) {
                Ok(scope) => {
                    let token = issue(s, SERVICE_ACCOUNT, &scope);
                    token_answer(token)
                }
                Err(why) => oauth_error(400, "invalid_grant", why),
            }
        }
        Some("refresh_token") => {
            let ok = form.get("client_id") == Some(&s.user_client_id)
                && form.get("client_secret") == Some(&s.user_client_secret);
            if !ok {
                return oauth_error(401, "invalid_client", "Unauthorized");
            }
            if form.get("refresh_token") != Some(&s.user_refresh_token) {
                return oauth_error(400, "invalid_grant", "Bad Request");
            }
            let token = issue(s, "user:dev@example.com", PLATFORM_SCOPE);
            token_answer(token)
        }
        _ => oauth_error(400, "unsupported_grant_type", "Invalid grant_type"),
    }
}

/// Checks a service-account assertion as Google does; gives the scope asked for.
fn check_assertion(s: &State, assertion: &str) -> Result<String, &'static str> {
    let parts: Vec<&str> = assertion.split('.').collect();
    let [header, claims, signature] = parts.as_slice() else {
        return Err("Invalid JWT: Token must be a short-lived token and in a reasonable timeframe");
    };
    let decode = |part: &str| -> Option<serde_json::Value> {
        serde_json::from_slice(&B64URL.decode(part).ok()?).ok()
    };
    let (Some(header_json), Some(claims_json)) = (decode(header), decode(claims)) else {
        return Err("Invalid JWT.");
    };
    if header_json["alg"] != "RS256" || header_json["kid"] != s.sa_key_id.as_str() {
        return Err("Invalid JWT Signature.");
    }
    let key = CosignVerificationKey::try_from_der(&s.sa_public_der).expect("public key");
    let signature = B64URL
        .decode(signature)
        .map_err(|_| "Invalid JWT Signature.")?;
    let input = format!("{header}.{claims}");
    if key
        .verify_signature(Signature::Raw(&signature), input.as_bytes())
        .is_err()
    {
        return Err("Invalid JWT Signature.");
    }
    if claims_json["iss"] != SERVICE_ACCOUNT
        || !(claims_json["sub"].is_null() || claims_json["sub"] == SERVICE_ACCOUNT)
    {
        return Err("Invalid JWT: iss is not the service account");
    }
    if claims_json["aud"] != format!("{}/token", s.api_url).as_str() {
        return Err("Invalid JWT: Failed audience check.");
    }
    let (iat, exp) = (
        claims_json["iat"].as_i64().unwrap_or(0),
        claims_json["exp"].as_i64().unwrap_or(0),
    );
    if iat > now() + 60 || exp <= now() || exp - iat > 3600 {
        return Err("Invalid JWT: Token must be a short-lived token and in a reasonable timeframe");
    }
    let scope = claims_json["scope"].as_str().unwrap_or_default();
    if !scope
        .split(' ')
        .any(|s| s == KMS_SCOPE || s == PLATFORM_SCOPE)
    {
        return Err("Invalid OAuth scope or ID token audience provided.");
    }
    Ok(scope.to_string())
}

/// Google's Security Token Service: an external subject token for a federated access token.
fn sts(s: &mut State, req: &Request) -> Response {
    let form = req.form();
    let field = |k: &str| form.get(k).map(String::as_str).unwrap_or_default();
    if field("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange"
        || field("requested_token_type") != "urn:ietf:params:oauth:token-type:access_token"
    {
        return oauth_error(
            400,
            "invalid_request",
            "Invalid value for grant_type or requested_token_type.",
        );
    }
    if field("audience") != AUDIENCE {
        return oauth_error(
            400,
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid.",
        );
    }
    if field("subject_token_type") != JWT_TOKEN_TYPE || field("subject_token") != s.subject_token {
        return oauth_error(
            400,
            "invalid_grant",
            "The audience in ID Token does not match the expected audience.",
        );
    }
    let scope = field("scope").to_string();
    if scope.is_empty() {
        return oauth_error(400, "invalid_scope", "Scope is required.");
    }
    let token = issue(s, "principal://iam.googleapis.com/github", &scope);
    Response::json(
        200,
        json!({
            "access_token": token,
            "issued_token_type": "urn:ietf:params:oauth:token-type:access_token",
            "token_type": "Bearer",
            "expires_in": 3600,
        }),
    )
}

/// IAM Credentials `generateAccessToken` for TARGET_ACCOUNT.
fn impersonate(s: &mut State, req: &Request) -> Response {
    let expected =
        format!("/iam/v1/projects/-/serviceAccounts/{TARGET_ACCOUNT}:generateAccessToken");
    if req.path != expected {
        return google_error(404, "NOT_FOUND", "Requested entity was not found.");
    }
    let caller = req.bearer().and_then(|t| s.tokens.get(t));
    let Some(caller) = caller else {
        return google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
        );
    };
    if caller.scope != PLATFORM_SCOPE {
        return google_error(
            403,
            "PERMISSION_DENIED",
            "Request had insufficient authentication scopes.",
        );
    }
    let body = req.json().unwrap_or_default();
    let scopes = body["scope"].as_array().cloned().unwrap_or_default();
    if !scopes.iter().any(|v| v == KMS_SCOPE || v == PLATFORM_SCOPE) {
        return google_error(400, "INVALID_ARGUMENT", "Scope required.");
    }
    let token = issue(s, TARGET_ACCOUNT, KMS_SCOPE);
    let expires = chrono::Utc::now() + chrono::Duration::seconds(3600);
    Response::json(
        200,
        json!({"accessToken": token, "expireTime": expires.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)}),
    )
}

/// The metadata server (plain HTTP, its own port).
fn metadata(s: &mut State, req: &Request) -> Response {
    if req.header("metadata-flavor") != Some("Google") {
        return Response {
            status: 403,
            headers: vec![],
            body: b"Missing Metadata-Flavor:Google header.".to_vec(),
        };
    }
    let response = match req.path.as_str() {
        "/" => Response {
            status: 200,
            headers: vec![],
            body: b"computeMetadata/\n".to_vec(),
        },
        "/computeMetadata/v1/instance/service-accounts/default/token" => {
            let token = issue(s, "default-compute@imagegate-test", PLATFORM_SCOPE);
            token_answer(token)
        }
        _ => Response {
            status: 404,
            headers: vec![],
            body: b"Not Found".to_vec(),
        },
    };
    response.header("Metadata-Flavor", "Google")
}

/// KMS v1 over the stand-in's keys.
fn kms(s: &mut State, req: &Request) -> Response {
    if s.switches.unavailable > 0 {
        s.switches.unavailable -= 1;
        return google_error(503, "UNAVAILABLE", "The service is currently unavailable.");
    }
    let caller = req.bearer().and_then(|t| s.tokens.get(t));
    let Some(caller) = caller else {
        return google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        );
    };
    if !caller
        .scope
        .split(' ')
        .any(|x| x == KMS_SCOPE || x == PLATFORM_SCOPE)
    {
        return google_error(
            403,
            "PERMISSION_DENIED",
            "Request had insufficient authentication scopes.",
        );
    }
    let rest = req.path.trim_start_matches("/v1/").to_string();
    match req.method.as_str() {
        "GET" => {
            if let Some(key_name) = rest.strip_suffix("/cryptoKeyVersions") {
                list_versions(s, req, key_name)
            } else if let Some(version_name) = rest.strip_suffix("/publicKey") {
                public_key(s, version_name)
            } else if let Some((key_name, number)) = split_version(&rest) {
                match s.keys.get(key_name).and_then(|k| k.versions.get(&number)) {
                    Some(v) => Response::json(200, version_json(&rest, v)),
                    None => not_found(&rest),
                }
            } else {
                match s.keys.get(&rest) {
                    Some(key) => Response::json(
                        200,
                        json!({
                            "name": rest,
                            "purpose": key.purpose,
                            "createTime": "2024-01-01T00:00:00Z",
                            "versionTemplate": {"protectionLevel": "SOFTWARE", "algorithm": "EC_SIGN_P256_SHA256"},
                        }),
                    ),
                    None => not_found(&rest),
                }
            }
        }
        "POST" => match rest.strip_suffix(":asymmetricSign") {
            Some(version_name) => sign(s, req, version_name),
            None => google_error(404, "NOT_FOUND", "not a stand-in route"),
        },
        _ => google_error(405, "INVALID_ARGUMENT", "method"),
    }
}

fn not_found(name: &str) -> Response {
    google_error(404, "NOT_FOUND", &format!("{name} not found."))
}

fn split_version(name: &str) -> Option<(&str, u32)> {
    let (key, number) = name.split_once("/cryptoKeyVersions/")?;
    Some((key, number.parse().ok()?))
}

fn version_json(name: &str, v: &Version) -> serde_json::Value {
    json!({
        "name": name,
        "state": v.state,
        "protectionLevel": "SOFTWARE",
        "algorithm": v.key.kind(),
        "createTime": "2024-01-01T00:00:00Z",
    })
}

/// `filter=state=ENABLED&orderBy=name desc`, names sorted as text, two per page.
fn list_versions(s: &State, req: &Request, key_name: &str) -> Response {
    let query = req.query_pairs();
    if query.get("filter").map(String::as_str) != Some("state=ENABLED")
        || query.get("orderBy").map(String::as_str) != Some("name desc")
    {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "the stand-in serves filter=state=ENABLED&orderBy=name desc only",
        );
    }
    let Some(key) = s.keys.get(key_name) else {
        return not_found(key_name);
    };
    let mut versions: Vec<(String, &Version)> = key
        .versions
        .iter()
        .filter(|(_, v)| v.state == "ENABLED")
        .map(|(n, v)| (format!("{key_name}/cryptoKeyVersions/{n}"), v))
        .collect();
    versions.sort_by(|a, b| b.0.cmp(&a.0));
    let start: usize = query
        .get("pageToken")
        .and_then(|t| t.strip_prefix("page-"))
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let page: Vec<serde_json::Value> = versions
        .iter()
        .skip(start)
        .take(2)
        .map(|(name, v)| version_json(name, v))
        .collect();
    let mut answer = json!({"cryptoKeyVersions": page, "totalSize": versions.len()});
    if start + 2 < versions.len() {
        answer["nextPageToken"] = json!(format!("page-{}", start + 2));
    }
    Response::json(200, answer)
}

fn public_key(s: &mut State, version_name: &str) -> Response {
    let Some((key_name, number)) = split_version(version_name) else {
        return not_found(version_name);
    };
    let Some(version) = s.keys.get(key_name).and_then(|k| k.versions.get(&number)) else {
        return not_found(version_name);
    };
    if version.state != "ENABLED" {
        return google_error(
            400,
            "FAILED_PRECONDITION",
            &format!(
                "{version_name} is not enabled, current state is: {}.",
                version.state
            ),
        );
    }
    let pem = version.key.public_pem();
    let mut crc = crc32c::crc32c(pem.as_bytes());
    let kind = version.key.kind();
    if s.switches.wrong_pem_crc > 0 {
        s.switches.wrong_pem_crc -= 1;
        crc ^= 1;
    }
    Response::json(
        200,
        json!({
            "pem": pem,
            "algorithm": kind,
            "pemCrc32c": crc.to_string(),
            "name": version_name,
            "protectionLevel": "SOFTWARE",
        }),
    )
}

fn sign(s: &mut State, req: &Request, version_name: &str) -> Response {
    if s.switches.deny_sign {
        return google_error(
            403,
            "PERMISSION_DENIED",
            &format!(
                "Permission 'cloudkms.cryptoKeyVersions.useToSign' denied on resource '{version_name}' (or it may not exist)."
            ),
        );
    }
    let Some((key_name, number)) = split_version(version_name) else {
        return not_found(version_name);
    };
    let Some(version) = s.keys.get(key_name).and_then(|k| k.versions.get(&number)) else {
        return not_found(version_name);
    };
    if version.state != "ENABLED" {
        return google_error(
            400,
            "FAILED_PRECONDITION",
            &format!("{version_name} is not enabled."),
        );
    }
    let body = req.json().unwrap_or_default();
    let field = version.key.digest_field();
    let Some(digest) = body["digest"][field]
        .as_str()
        .and_then(|d| B64.decode(d).ok())
    else {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            &format!("The digest type does not match the algorithm; expected {field}."),
        );
    };
    let expected_len = if field == "sha384" { 48 } else { 32 };
    if digest.len() != expected_len {
        return google_error(400, "INVALID_ARGUMENT", "Invalid digest length.");
    }
    let crc_given = body["digestCrc32c"]
        .as_str()
        .and_then(|c| c.parse::<u32>().ok());
    if let Some(given) = crc_given
        && given != crc32c::crc32c(&digest)
    {
        return google_error(
            400,
            "INVALID_ARGUMENT",
            "The checksum in field digest_crc32c did not match the data in field digest.",
        );
    }
    let signature = if s.switches.foreign_signer {
        KmsKey::generate(version.key.kind()).sign_digest(&digest)
    } else {
        version.key.sign_digest(&digest)
    };
    let Some(signature) = signature else {
        return google_error(500, "INTERNAL", "signing failed");
    };
    let mut signature_crc = crc32c::crc32c(&signature);
    if s.switches.wrong_signature_crc > 0 {
        s.switches.wrong_signature_crc -= 1;
        signature_crc = signature_crc.wrapping_add(1);
    }
    let mut verified = crc_given.is_some();
    if s.switches.unverified_digest > 0 {
        s.switches.unverified_digest -= 1;
        verified = false;
    }
    let name = if s.switches.wrong_version_name {
        format!("{key_name}/cryptoKeyVersions/{}", number + 100)
    } else {
        version_name.to_string()
    };
    Response::json(
        200,
        json!({
            "signature": B64.encode(&signature),
            "signatureCrc32c": signature_crc.to_string(),
            "verifiedDigestCrc32c": verified,
            "verifiedDataCrc32c": false,
            "name": name,
            "protectionLevel": "SOFTWARE",
        }),
    )
}
