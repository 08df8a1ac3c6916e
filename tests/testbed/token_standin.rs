//! A stand-in for a registry's token service: the docker "token authentication" protocol that
//! Docker Hub, Harbor, Quay and GitLab speak, in front of the real docker-registry started with
//! `auth: token` ([`super::registry::Registry::start_token`]). The stand-in only hands out
//! tokens; the registry checks each one itself, as in production: an ES256 JWT whose `x5c`
//! certificate is the `rootcertbundle` written here, with `iss`, `aud`, `exp` and the granted
//! `access` it checks against every request.
//!
//! Endpoints (`/token`, served over TLS from a [`TestCa`]):
//! - `GET` with `service`, `scope` (repeatable) and optional `offline_token=true`, anonymous or
//!   with Basic credentials ([`super::registry::USER`]/[`super::registry::PASSWORD`]); a wrong
//!   password is a 401, anonymous callers get a token with no access;
//! - `POST` form with `grant_type=refresh_token` (an identity token, as `docker login` stores
//!   for OAuth registries) or `grant_type=password`.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use p256::ecdsa::{Signature, SigningKey, signature::Signer as _};
use p256::pkcs8::DecodePrivateKey as _;

use super::registry::{PASSWORD, USER};
use super::standin::{Request, Response, Server, TestCa, random_secret};

pub const SERVICE: &str = "imagegate-test-registry";
pub const ISSUER: &str = "imagegate-test-token-service";

/// A running token service. Dropping it stops it.
pub struct TokenService {
    server: Server,
    ca: TestCa,
    dir: tempfile::TempDir,
    refresh_token: String,
    log: Arc<Mutex<Vec<String>>>,
}

struct Issuer {
    key: SigningKey,
    certificate_der: Vec<u8>,
    refresh_token: String,
}

impl TokenService {
    pub fn start() -> TokenService {
        let (key, certificate) = signer();
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("token-signer.crt"), certificate.pem())
            .expect("write token signer certificate");
        let issuer = Arc::new(Issuer {
            key,
            certificate_der: certificate.der().to_vec(),
            refresh_token: random_secret("refresh"),
        });
        let log = Arc::new(Mutex::new(Vec::new()));
        let ca = TestCa::new();
        let handler_issuer = issuer.clone();
        let handler_log = log.clone();
        let server = Server::start(
            Some(&ca),
            Arc::new(move |request: &Request| answer(&handler_issuer, &handler_log, request)),
        );
        TokenService {
            server,
            ca,
            dir,
            refresh_token: issuer.refresh_token.clone(),
            log,
        }
    }

    /// `https://localhost:PORT/token`, the registry's `realm`.
    ///
    /// `localhost`, not the registry's `127.0.0.1`: rustls clients keep TLS 1.3 session
    /// tickets per server name (ports aside) and offer the registry's ticket here; after a
    /// HelloRetryRequest the client drops the incompatible ticket, which a rustls server since
    /// rustls/rustls#3259 refuses (`missing_extension`). imagegate retries and gets through,
    /// but the test should see the token protocol, not that quirk.
    pub fn realm(&self) -> String {
        format!("https://localhost:{}/token", self.server.port)
    }

    /// The CA of the service's TLS certificate.
    pub fn ca_certificate(&self) -> std::path::PathBuf {
        self.ca.path()
    }

    /// The certificate whose key signs tokens: the registry's `rootcertbundle`.
    pub fn signer_certificate(&self) -> std::path::PathBuf {
        self.dir.path().join("token-signer.crt")
    }

    /// An identity (refresh) token for [`USER`], as `docker login` stores in `identitytoken`.
    pub fn identity_token(&self) -> &str {
        &self.refresh_token
    }

    /// The requests answered so far: `METHOD grant who scope=…` lines, no secrets.
    pub fn requests(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }
}

/// A P-256 signing key and a self-signed certificate for it (the registry trusts it directly).
fn signer() -> (SigningKey, rcgen::Certificate) {
    let key_pair = rcgen::KeyPair::generate().expect("P-256 key");
    let key = SigningKey::from_pkcs8_der(&key_pair.serialize_der()).expect("PKCS#8 key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "imagegate test token signer");
    (key, params.self_signed(&key_pair).expect("certificate"))
}

fn answer(issuer: &Issuer, log: &Mutex<Vec<String>>, request: &Request) -> Response {
    if request.path != "/token" {
        return Response::json(404, serde_json::json!({"error": "not found"}));
    }
    let (fields, who, offline) = match request.method.as_str() {
        "GET" => {
            let fields = all_pairs(&request.query);
            let who = match basic_credentials(request) {
                None => Who::Anonymous,
                Some((user, password)) if user == USER && password == PASSWORD => Who::User,
                Some(_) => Who::Refused("wrong password"),
            };
            let offline = value(&fields, "offline_token") == Some("true");
            (fields, who, offline)
        }
        "POST" => {
            let fields = all_pairs(&String::from_utf8_lossy(&request.body));
            let who = match value(&fields, "grant_type") {
                Some("refresh_token") => {
                    if value(&fields, "refresh_token") == Some(issuer.refresh_token.as_str()) {
                        Who::User
                    } else {
                        Who::Refused("unknown refresh token")
                    }
                }
                Some("password") => {
                    if value(&fields, "username") == Some(USER)
                        && value(&fields, "password") == Some(PASSWORD)
                    {
                        Who::User
                    } else {
                        Who::Refused("wrong password")
                    }
                }
                _ => Who::Refused("unsupported grant_type"),
            };
            (fields, who, true)
        }
        _ => return Response::json(405, serde_json::json!({"error": "method not allowed"})),
    };
    // Scopes come as repeated parameters (GET) or space-separated (POST).
    let scopes: Vec<String> = fields
        .iter()
        .filter(|(k, _)| k == "scope")
        .flat_map(|(_, v)| v.split(' ').map(str::to_string).collect::<Vec<_>>())
        .filter(|s| !s.is_empty())
        .collect();
    let grant = value(&fields, "grant_type").unwrap_or("basic");
    log.lock().expect("log").push(format!(
        "{} {grant} {} scope={}",
        request.method,
        who.name(),
        scopes.join(" ")
    ));
    if value(&fields, "service") != Some(SERVICE) {
        return Response::json(
            400,
            serde_json::json!({"errors": [{"code": "DENIED", "message": "unknown service"}]}),
        );
    }
    if let Who::Refused(why) = who {
        return Response::json(
            401,
            serde_json::json!({"errors": [{"code": "UNAUTHORIZED", "message": why}]}),
        );
    }
    let access: Vec<serde_json::Value> = match who {
        Who::User => scopes.iter().filter_map(|s| access_entry(s)).collect(),
        _ => Vec::new(),
    };
    let subject = match who {
        Who::User => USER,
        _ => "",
    };
    let token = jwt(issuer, subject, access);
    let mut body = serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": 300,
        "issued_at": chrono::Utc::now().to_rfc3339(),
    });
    if offline && matches!(who, Who::User) {
        body["refresh_token"] = serde_json::json!(issuer.refresh_token);
    }
    Response::json(200, body)
}

enum Who {
    Anonymous,
    User,
    Refused(&'static str),
}

impl Who {
    fn name(&self) -> &'static str {
        match self {
            Who::Anonymous => "anonymous",
            Who::User => USER,
            Who::Refused(_) => "refused",
        }
    }
}

/// `repository:NAME:pull,push` → the token's access entry (everything asked is granted).
fn access_entry(scope: &str) -> Option<serde_json::Value> {
    let (kind, rest) = scope.split_once(':')?;
    let (name, actions) = rest.rsplit_once(':')?;
    Some(serde_json::json!({
        "type": kind,
        "name": name,
        "actions": actions.split(',').collect::<Vec<_>>(),
    }))
}

/// A compact JWS (ES256, raw r‖s signature) with the signer's certificate in `x5c`.
fn jwt(issuer: &Issuer, subject: &str, access: Vec<serde_json::Value>) -> String {
    let b64url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let now = chrono::Utc::now().timestamp();
    let header = serde_json::json!({
        "typ": "JWT",
        "alg": "ES256",
        "x5c": [base64::engine::general_purpose::STANDARD.encode(&issuer.certificate_der)],
    });
    let claims = serde_json::json!({
        "iss": ISSUER,
        "sub": subject,
        "aud": SERVICE,
        "exp": now + 300,
        "nbf": now - 10,
        "iat": now,
        "jti": random_secret("jti"),
        "access": access,
    });
    let signing_input = format!(
        "{}.{}",
        b64url.encode(header.to_string()),
        b64url.encode(claims.to_string())
    );
    let signature: Signature = issuer.key.sign(signing_input.as_bytes());
    format!("{signing_input}.{}", b64url.encode(signature.to_bytes()))
}

fn basic_credentials(request: &Request) -> Option<(String, String)> {
    let value = request.header("authorization")?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// Every `key=value` pair of a query or form, repeated keys kept.
fn all_pairs(text: &str) -> Vec<(String, String)> {
    let url = reqwest::Url::parse(&format!("http://x/?{text}")).expect("query");
    url.query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn value<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}
