//! What the REST key backends (Google Cloud KMS, Azure Key Vault) share: one request sent with
//! the shared client and bounded retries, answers read with a size cap, failures in words that
//! name the method, URL and status (never a token), an access-token cache, and RS256 JWTs
//! signed with sigstore's RSA signer.

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sigstore::crypto::SigningScheme;
use sigstore::crypto::signing_key::SigStoreKeyPair;

use super::KeyError;
use crate::http::{self, Http, NetworkSettings, ReadError};
use crate::secret::Secret;

/// The largest answer a key service or token endpoint may send.
const BODY_LIMIT: u64 = 1024 * 1024;
/// How much of a service's error text goes into a message.
const DETAIL_LIMIT: usize = 400;

/// base64url without padding, as JWTs and Key Vault write it.
pub(crate) const B64URL: base64::engine::GeneralPurpose =
    base64::engine::general_purpose::URL_SAFE_NO_PAD;
/// Standard base64 with padding, as Google's JSON APIs write bytes.
pub(crate) const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// A client for one backend. Keys outlive the [`super::KeyContext`] they were made with, so this
/// keeps a clone of the shared verifying client and a twin of its [`Http`] for the retry policy.
pub(crate) struct Rest {
    backend: &'static str,
    client: reqwest::Client,
    /// Same settings as the context's `Http`, without CA files (it never builds a client): only
    /// its retry policy is used.
    retry: Http,
}

impl std::fmt::Debug for Rest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Rest")
            .field("backend", &self.backend)
            .finish()
    }
}

/// An answer that is not a transient failure (those are retried, then reported).
pub(crate) struct Reply {
    pub status: StatusCode,
    pub www_authenticate: Option<String>,
    pub body: Bytes,
    method: Method,
    url: String,
    backend: &'static str,
}

impl Rest {
    pub fn new(backend: &'static str, http: &Http) -> Result<Rest, KeyError> {
        let not_configured = |reason: String| KeyError::NotConfigured { backend, reason };
        let client = http
            .client()
            .map_err(|e| not_configured(e.to_string()))?
            .clone();
        let settings = NetworkSettings {
            ca_files: Vec::new(),
            ..http.settings().clone()
        };
        let retry = Http::new(settings).map_err(|e| not_configured(e.to_string()))?;
        Ok(Rest {
            backend,
            client,
            retry,
        })
    }

    /// Sends `method url` as `decorate` completes it (headers, body; called once per attempt)
    /// and gives the answer to `handle`. Transport failures, 5xx and 429 are retried, and so is
    /// whatever `handle` reports as transient (a checksum that does not match). `redact` lists
    /// secret values that must not appear in an error even if a server echoes them.
    pub async fn call<T>(
        &self,
        method: Method,
        url: &str,
        redact: &[&str],
        decorate: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
        handle: impl Fn(Reply) -> Result<T, KeyError>,
    ) -> Result<T, KeyError> {
        let tries = AtomicU32::new(0);
        let once = || async {
            tries.fetch_add(1, Ordering::Relaxed);
            let reply = self.send_once(&method, url, &decorate).await?;
            handle(reply)
        };
        let what = format!("{method} {}", display_url(url));
        let result = self.retry.retry(&what, once).await;
        result.map_err(|err| {
            let made = tries.load(Ordering::Relaxed);
            redact_error(err, redact).after_attempts(made)
        })
    }

    /// The answer to `GET url` within two seconds, if any: is there a metadata service here at
    /// all? One attempt, no retries; the body is not read.
    pub async fn probe(
        &self,
        url: &str,
        decorate: impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Option<reqwest::Response> {
        decorate(self.client.get(url))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .ok()
    }

    async fn send_once(
        &self,
        method: &Method,
        url: &str,
        decorate: &impl Fn(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
    ) -> Result<Reply, KeyError> {
        let shown = display_url(url);
        let response = decorate(self.client.request(method.clone(), url))
            .send()
            .await
            .map_err(|e| self.transport_error(method, &shown, &e))?;
        let status = response.status();
        let www_authenticate = response
            .headers()
            .get(reqwest::header::WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = match http::read_capped(response, BODY_LIMIT).await {
            Ok(body) => body,
            Err(ReadError::TooLarge { .. }) => {
                return Err(KeyError::Remote {
                    backend: self.backend,
                    message: format!(
                        "{method} {shown} answered with more than {}; refusing to read it",
                        http::human_size(BODY_LIMIT)
                    ),
                    transient: false,
                });
            }
            Err(ReadError::Transport(e)) => return Err(self.transport_error(method, &shown, &e)),
        };
        let reply = Reply {
            status,
            www_authenticate,
            body,
            method: method.clone(),
            url: shown,
            backend: self.backend,
        };
        if http::status_is_transient(status.as_u16()) {
            return Err(reply.failure(None, true));
        }
        Ok(reply)
    }

    fn transport_error(&self, method: &Method, shown: &str, err: &reqwest::Error) -> KeyError {
        let cause = http::describe_transport_error(err);
        if http::is_certificate_error(err) && !err.is_timeout() {
            return KeyError::Remote {
                backend: self.backend,
                message: format!(
                    "{method} {shown}: the server's TLS certificate is not trusted ({cause}); if it is signed by a private CA, add that CA with --ca-file"
                ),
                transient: false,
            };
        }
        KeyError::Remote {
            backend: self.backend,
            message: format!("{method} {shown} failed: {cause}"),
            transient: http::transport_error_is_transient(err),
        }
    }
}

impl Reply {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// The body as `T`. A parse failure names the position only: token answers hold secrets, and
    /// serde quotes the values it cannot use.
    pub fn json<T: DeserializeOwned>(&self, expected: &str) -> Result<T, KeyError> {
        serde_json::from_slice(&self.body).map_err(|e| KeyError::Remote {
            backend: self.backend,
            message: format!(
                "{} {} answered {} but not with {expected} (the JSON does not fit at line {}, column {})",
                self.method,
                self.url,
                self.status,
                e.line(),
                e.column()
            ),
            transient: false,
        })
    }

    /// The error for an answer that is a refusal or a failure: method, URL, status, the
    /// service's own words, and `advice` on what to do.
    pub fn failure(&self, advice: Option<&str>, transient: bool) -> KeyError {
        let mut message = format!("{} {} answered {}", self.method, self.url, self.status);
        if let Some(detail) = service_detail(&self.body) {
            message.push_str(": ");
            message.push_str(&detail);
        }
        if let Some(advice) = advice {
            message.push_str(" — ");
            message.push_str(advice);
        }
        KeyError::Remote {
            backend: self.backend,
            message,
            transient,
        }
    }

    /// An answer that is well-formed but cannot be used.
    pub fn unusable(&self, why: &str, transient: bool) -> KeyError {
        KeyError::Remote {
            backend: self.backend,
            message: format!("{} {}: {why}", self.method, self.url),
            transient,
        }
    }
}

/// The URL without its query and fragment, which may carry secrets (and never the user part).
pub(crate) fn display_url(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) => {
            parsed.set_query(None);
            parsed.set_fragment(None);
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        Err(_) => url.split(['?', '#']).next().unwrap_or_default().to_string(),
    }
}

/// The service's explanation in an error body: Google's and Key Vault's `error.message` (with
/// `error.status` or `error.code`), OAuth's `error` and `error_description`, or the text.
fn service_detail(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let detail = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(json) => json_detail(&json).unwrap_or_else(|| text.trim().to_string()),
        Err(_) => text.trim().to_string(),
    };
    let clean: String = detail
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let clean = clean.trim();
    if clean.is_empty() {
        return None;
    }
    if clean.chars().count() > DETAIL_LIMIT {
        let cut: String = clean.chars().take(DETAIL_LIMIT).collect();
        return Some(format!("{cut}…"));
    }
    Some(clean.to_string())
}

fn json_detail(json: &serde_json::Value) -> Option<String> {
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    match json.get("error") {
        Some(serde_json::Value::Object(error)) => {
            let message = error.get("message").and_then(text)?;
            let code = error
                .get("status")
                .and_then(text)
                .or_else(|| error.get("code").and_then(text));
            Some(match code {
                Some(code) => format!("{code}: {message}"),
                None => message,
            })
        }
        Some(serde_json::Value::String(code)) => {
            Some(match json.get("error_description").and_then(text) {
                Some(description) => format!("{code}: {description}"),
                None => code.clone(),
            })
        }
        _ => json.get("message").and_then(text),
    }
}

/// Replaces every occurrence of a secret in a remote error's message.
fn redact_error(err: KeyError, redact: &[&str]) -> KeyError {
    match err {
        KeyError::Remote {
            backend,
            message,
            transient,
        } => KeyError::Remote {
            backend,
            message: redact_text(message, redact),
            transient,
        },
        other => other,
    }
}

pub(crate) fn redact_text(mut text: String, redact: &[&str]) -> String {
    for secret in redact {
        // Short values would blank out ordinary words; real secrets are long.
        if secret.len() >= 8 && text.contains(secret) {
            text = text.replace(secret, "<redacted>");
        }
    }
    text
}

/// An access token and when to stop using it.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub value: Secret,
    pub expires: Instant,
}

impl Token {
    /// A token valid for `lifetime` from now (a default when the service did not say).
    pub fn new(value: String, lifetime: Option<Duration>) -> Token {
        Token {
            value: Secret::new(value),
            expires: Instant::now() + lifetime.unwrap_or(Duration::from_secs(300)),
        }
    }
}

/// The token last fetched, for one scope at a time.
#[derive(Default)]
pub(crate) struct TokenCache {
    slot: tokio::sync::Mutex<Option<(String, Token)>>,
}

impl TokenCache {
    /// The cached token for `scope` while it has two minutes left; otherwise `fetch`es one.
    pub async fn get<F, Fut>(&self, scope: &str, fetch: F) -> Result<Secret, KeyError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token, KeyError>>,
    {
        let mut slot = self.slot.lock().await;
        if let Some((cached_scope, token)) = slot.as_ref()
            && cached_scope == scope
            && token.expires > Instant::now() + Duration::from_secs(120)
        {
            return Ok(token.value.clone());
        }
        let token = fetch().await?;
        let value = token.value.clone();
        *slot = Some((scope.to_string(), token));
        Ok(value)
    }
}

/// A number that services write as a JSON number or a string (proto3 int64, IMDS fields).
#[derive(Deserialize, Clone, Debug)]
#[serde(untagged)]
pub(crate) enum Lenient {
    Number(u64),
    Text(String),
}

impl Lenient {
    pub fn value(&self) -> Option<u64> {
        match self {
            Lenient::Number(n) => Some(*n),
            Lenient::Text(t) => t.trim().parse().ok(),
        }
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A JWT `header.claims.signature` signed RS256 (RSASSA-PKCS1-v1_5 with SHA-256) with the
/// PKCS#8 (or PKCS#1) PEM RSA key, by sigstore's RSA signer. The error never quotes the key.
pub(crate) fn rs256_jwt(
    header: &serde_json::Value,
    claims: &serde_json::Value,
    key_pem: &Secret,
) -> Result<Secret, String> {
    let pair = SigStoreKeyPair::from_pem(key_pem.expose().as_bytes())
        .map_err(|_| "the private key is not a PEM private key".to_string())?;
    if !matches!(pair, SigStoreKeyPair::RSA(_)) {
        return Err(format!(
            "the private key is an {pair}; signing the token needs an RSA key (RS256)"
        ));
    }
    let signer = pair
        .to_sigstore_signer(&SigningScheme::RSA_PKCS1_SHA256(0))
        .map_err(|_| "the RSA private key cannot sign".to_string())?;
    let input = format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(claims.to_string())
    );
    let signature = signer
        .sign(input.as_bytes())
        .map_err(|_| "signing the token with the RSA private key failed".to_string())?;
    Ok(Secret::new(format!("{input}.{}", B64URL.encode(signature))))
}

/// Random hex, for JWT ids.
pub(crate) fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    // A failing OS random source leaves zeros: the id only has to be unlikely to repeat.
    let _ = getrandom::getrandom(&mut buf);
    hex::encode(buf)
}

/// Reads a small local file a credential names (a key file, a token file), with a size cap.
pub(crate) fn read_small_bytes(path: &std::path::Path) -> Result<Vec<u8>, String> {
    const LIMIT: u64 = 1024 * 1024;
    let meta = std::fs::metadata(path).map_err(|e| e.to_string())?;
    if meta.len() > LIMIT {
        return Err(format!("it is larger than {}", http::human_size(LIMIT)));
    }
    std::fs::read(path).map_err(|e| e.to_string())
}

/// [`read_small_bytes`] for text.
pub(crate) fn read_small_file(path: &std::path::Path) -> Result<String, String> {
    String::from_utf8(read_small_bytes(path)?).map_err(|_| "it is not UTF-8 text".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_lose_their_query() {
        assert_eq!(
            display_url("https://h.example/a/b?api-version=7.4&token=abc#x"),
            "https://h.example/a/b"
        );
        assert_eq!(
            display_url("https://user:pw@h.example/p?q"),
            "https://h.example/p"
        );
        assert_eq!(display_url("not a url?secret"), "not a url");
    }

    #[test]
    fn service_errors_read_well() {
        let google =
            br#"{"error":{"code":403,"message":"Permission denied","status":"PERMISSION_DENIED"}}"#;
        assert_eq!(
            service_detail(google).unwrap(),
            "PERMISSION_DENIED: Permission denied"
        );
        let azure = br#"{"error":{"code":"Forbidden","message":"no sign permission"}}"#;
        assert_eq!(
            service_detail(azure).unwrap(),
            "Forbidden: no sign permission"
        );
        let oauth = br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#;
        assert_eq!(
            service_detail(oauth).unwrap(),
            "invalid_grant: Invalid JWT Signature."
        );
        assert_eq!(service_detail(b"  \n").as_deref(), None);
        assert_eq!(
            service_detail(b"line one\nline two").unwrap(),
            "line one line two"
        );
        let long = "x".repeat(1000);
        assert!(service_detail(long.as_bytes()).unwrap().chars().count() <= DETAIL_LIMIT + 1);
    }

    #[test]
    fn secrets_are_redacted_from_messages() {
        let text = redact_text(
            "token abcdefgh1234 was refused; ab stays".to_string(),
            &["abcdefgh1234", "ab"],
        );
        assert_eq!(text, "token <redacted> was refused; ab stays");
    }

    #[test]
    fn lenient_numbers() {
        let n: Lenient = serde_json::from_str("12").unwrap();
        let t: Lenient = serde_json::from_str("\"34\"").unwrap();
        let bad: Lenient = serde_json::from_str("\"x\"").unwrap();
        assert_eq!(n.value(), Some(12));
        assert_eq!(t.value(), Some(34));
        assert_eq!(bad.value(), None);
    }

    #[test]
    fn jwts_are_signed_by_the_rsa_key_and_refuse_other_keys() {
        use sigstore::crypto::{CosignVerificationKey, Signature};
        let signer = SigningScheme::RSA_PKCS1_SHA256(2048)
            .create_signer()
            .unwrap();
        let pair = signer.to_sigstore_keypair().unwrap();
        let pem = Secret::new(pair.private_key_to_pem().unwrap().to_string());
        let jwt = rs256_jwt(
            &serde_json::json!({"alg": "RS256", "typ": "JWT"}),
            &serde_json::json!({"iss": "me"}),
            &pem,
        )
        .unwrap();
        let parts: Vec<&str> = jwt.expose().split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&B64URL.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["iss"], "me");
        let key = CosignVerificationKey::try_from_der(&pair.public_key_to_der().unwrap()).unwrap();
        let signature = B64URL.decode(parts[2]).unwrap();
        let input = format!("{}.{}", parts[0], parts[1]);
        key.verify_signature(Signature::Raw(&signature), input.as_bytes())
            .unwrap();

        let ec = SigningScheme::ECDSA_P256_SHA256_ASN1
            .create_signer()
            .unwrap()
            .to_sigstore_keypair()
            .unwrap();
        let ec_pem = Secret::new(ec.private_key_to_pem().unwrap().to_string());
        let err = rs256_jwt(&serde_json::json!({}), &serde_json::json!({}), &ec_pem).unwrap_err();
        assert!(err.contains("needs an RSA key"), "{err}");
        assert!(!err.contains("PRIVATE KEY"), "{err}");
        let err = rs256_jwt(
            &serde_json::json!({}),
            &serde_json::json!({}),
            &Secret::new("nonsense"),
        )
        .unwrap_err();
        assert!(err.contains("not a PEM private key"), "{err}");
    }
}
