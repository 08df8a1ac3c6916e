//! The one HTTP setup that registry access and key backends share: TLS roots (the system's,
//! or `SSL_CERT_FILE`, plus every `--ca-file`), insecure mode for named hosts only, timeouts,
//! bounded retries with backoff, and size caps on what is read.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use rustls_pki_types::CertificateDer;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;

/// Which certificates a service's TLS is checked against.
#[derive(Clone, Copy, Debug)]
pub enum Trust<'a> {
    /// The usual roots (system or `SSL_CERT_FILE`, plus `--ca-file`) and these.
    Also(&'a [CertificateDer<'static>]),
    /// Only these; the usual roots when there are none.
    Only(&'a [CertificateDer<'static>]),
    /// No certificate checks at all (an explicit insecure setting).
    Nothing,
}

/// Network options from the command line.
#[derive(Clone, Debug)]
pub struct NetworkSettings {
    /// Extra PEM files of trusted roots, on top of the system roots.
    pub ca_files: Vec<PathBuf>,
    /// `HOST[:PORT]` entries reached over plain HTTP, or TLS without verification.
    pub insecure_hosts: Vec<String>,
    /// How many times a failed request is tried again (only for transient failures).
    pub retries: u32,
    /// How long one request may take, connection included.
    pub timeout: Duration,
}

impl Default for NetworkSettings {
    fn default() -> Self {
        NetworkSettings {
            ca_files: Vec::new(),
            insecure_hosts: Vec::new(),
            retries: 3,
            timeout: Duration::from_secs(30),
        }
    }
}

/// The network could not be set up from the options given (exit code 2: the input was wrong).
#[derive(Debug, Clone, thiserror::Error)]
pub enum SetupError {
    #[error("cannot read --ca-file {}: {reason}", path.display())]
    CaFileUnreadable { path: PathBuf, reason: String },
    #[error(
        "no trusted root certificates: the system has none (install the ca-certificates package) and no --ca-file was given"
    )]
    NoRoots,
    #[error("--ca-file {} holds no PEM certificate{}", path.display(), detail.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    CaFileEmpty {
        path: PathBuf,
        detail: Option<String>,
    },
    #[error("cannot set up the HTTP client: {0}")]
    Client(String),
}

pub const USER_AGENT: &str = concat!("imagegate/", env!("CARGO_PKG_VERSION"));

/// HTTP clients built from [`NetworkSettings`] on first use. The system roots are loaded only
/// when a verifying client is first needed (a plain-HTTP or local run never reads them), and only
/// once: every client, `oci-client`'s included, gets the same list.
pub struct Http {
    settings: NetworkSettings,
    /// Roots from `--ca-file`, read up front so that a bad file fails early.
    extra_roots: Vec<CertificateDer<'static>>,
    roots: OnceLock<Result<Vec<CertificateDer<'static>>, SetupError>>,
    verified: OnceLock<Result<reqwest::Client, SetupError>>,
    unverified: OnceLock<Result<reqwest::Client, SetupError>>,
}

impl fmt::Debug for Http {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Http")
            .field("settings", &self.settings)
            .finish()
    }
}

impl Http {
    pub fn new(settings: NetworkSettings) -> Result<Http, SetupError> {
        let mut extra_roots = Vec::new();
        for path in &settings.ca_files {
            extra_roots.extend(read_pem_certificates(path)?);
        }
        Ok(Http {
            settings,
            extra_roots,
            roots: OnceLock::new(),
            verified: OnceLock::new(),
            unverified: OnceLock::new(),
        })
    }

    pub fn settings(&self) -> &NetworkSettings {
        &self.settings
    }

    /// Every trusted root: the system's (or `SSL_CERT_FILE`'s), plus `--ca-file`.
    pub fn trusted_roots(&self) -> Result<&[CertificateDer<'static>], SetupError> {
        self.roots
            .get_or_init(|| {
                let native = rustls_native_certs::load_native_certs();
                for e in &native.errors {
                    tracing::debug!("while loading the system's root certificates: {e}");
                }
                let mut roots = native.certs;
                roots.extend(self.extra_roots.iter().cloned());
                if roots.is_empty() {
                    return Err(SetupError::NoRoots);
                }
                Ok(roots)
            })
            .as_ref()
            .map(Vec::as_slice)
            .map_err(Clone::clone)
    }

    /// Whether `host` (as written in an image reference, `HOST[:PORT]`) was named insecure.
    pub fn is_insecure(&self, host: &str) -> bool {
        self.settings
            .insecure_hosts
            .iter()
            .any(|h| h.eq_ignore_ascii_case(host))
    }

    /// The client to use for `host`: without certificate checks only for an insecure host.
    pub fn client_for(&self, host: &str) -> Result<&reqwest::Client, SetupError> {
        if self.is_insecure(host) {
            self.unverified
                .get_or_init(|| self.build(false))
                .as_ref()
                .map_err(Clone::clone)
        } else {
            self.client()
        }
    }

    /// The client that verifies certificates (key backends always use it).
    pub fn client(&self) -> Result<&reqwest::Client, SetupError> {
        self.verified
            .get_or_init(|| self.build(true))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// A client for a service with its own trust and identity (a Kubernetes API server with its
    /// cluster CA and a client certificate, Vault with `VAULT_CACERT`). Timeouts and the user
    /// agent are the shared ones.
    pub fn client_with(
        &self,
        trust: Trust<'_>,
        identity: Option<reqwest::Identity>,
    ) -> Result<reqwest::Client, SetupError> {
        let mut builder = self.builder();
        let certs: Vec<&CertificateDer<'static>> = match trust {
            Trust::Nothing => {
                builder = builder.danger_accept_invalid_certs(true);
                Vec::new()
            }
            // A service that names its CA trusts that CA alone, as client-go does; a minimal
            // image without system roots still reaches it.
            Trust::Only(roots) if !roots.is_empty() => roots.iter().collect(),
            Trust::Only(_) => self.trusted_roots()?.iter().collect(),
            Trust::Also(roots) => self.trusted_roots()?.iter().chain(roots).collect(),
        };
        if !certs.is_empty() {
            let certs = certs
                .into_iter()
                .map(|der| reqwest::Certificate::from_der(der))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| SetupError::Client(e.to_string()))?;
            builder = builder.tls_certs_only(certs);
        }
        if let Some(identity) = identity {
            builder = builder.identity(identity);
        }
        builder
            .build()
            .map_err(|e| SetupError::Client(e.to_string()))
    }

    fn builder(&self) -> reqwest::ClientBuilder {
        reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(self.settings.timeout.min(Duration::from_secs(15)))
            .timeout(self.settings.timeout)
            .redirect(reqwest::redirect::Policy::limited(5))
    }

    fn build(&self, verify: bool) -> Result<reqwest::Client, SetupError> {
        let mut builder = self.builder();
        if verify {
            let certs = self
                .trusted_roots()?
                .iter()
                .map(|der| reqwest::Certificate::from_der(der))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| SetupError::Client(e.to_string()))?;
            builder = builder.tls_certs_only(certs);
        } else {
            builder = builder.danger_accept_invalid_certs(true);
        }
        builder
            .build()
            .map_err(|e| SetupError::Client(e.to_string()))
    }

    /// Runs `op` until it succeeds, fails for good, or the retries are used up.
    /// Only failures that [`Transient::is_transient`] are retried, with exponential backoff.
    pub async fn retry<T, E, F, Fut>(&self, what: &str, mut op: F) -> Result<T, E>
    where
        E: Transient + fmt::Display,
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let attempts = self.settings.retries + 1;
        let mut attempt = 1;
        loop {
            match op().await {
                Ok(value) => return Ok(value),
                Err(err) if err.is_transient() && attempt < attempts => {
                    let delay = err.retry_after().unwrap_or_else(|| backoff(attempt));
                    // The error names the URL already; `what` is for the debug log.
                    tracing::debug!("{what} failed on attempt {attempt}");
                    tracing::warn!(
                        "{err}; trying again in {:.1}s (attempt {} of {attempts})",
                        delay.as_secs_f32(),
                        attempt + 1
                    );
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(err) => return Err(err.after_attempts(attempt)),
            }
        }
    }
}

/// A failure that may go away when the request is sent again: 5xx, 429, timeouts, refused or
/// reset connections. Never 401/403/404, and never a policy verdict.
pub trait Transient: Sized {
    fn is_transient(&self) -> bool;
    /// A server-given wait (Retry-After), if any.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
    /// Records how many attempts were made, for the final message.
    fn after_attempts(self, _attempts: u32) -> Self {
        self
    }
}

/// 0.3 s, 0.6 s, 1.2 s, … capped at 8 s, with ±20 % jitter so parallel jobs spread out.
fn backoff(attempt: u32) -> Duration {
    let base = 0.3 * 2f64.powi(attempt.saturating_sub(1).min(10) as i32);
    let capped = base.min(8.0);
    let jitter = 0.8 + fastrand::f64() * 0.4;
    Duration::from_secs_f64(capped * jitter)
}

/// Whether a transport error is worth another try.
pub fn transport_error_is_transient(err: &reqwest::Error) -> bool {
    use std::io::ErrorKind::*;
    // Connection resets and broken pipes surface as request/body errors with an io::Error inside.
    err.is_timeout()
        || err.is_connect()
        || io_error_kind(err).is_some_and(|kind| {
            matches!(
                kind,
                ConnectionReset | ConnectionAborted | BrokenPipe | UnexpectedEof | TimedOut
            )
        })
}

/// The kind of the first `io::Error` in a transport error's chain of causes.
pub fn io_error_kind(err: &reqwest::Error) -> Option<std::io::ErrorKind> {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = source {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = e.source();
    }
    None
}

/// The parameters of the `Bearer` challenge in a `WWW-Authenticate` header, by lowercase name.
pub fn bearer_challenge_params(header: &str) -> Option<BTreeMap<String, String>> {
    let challenges = http_auth::parse_challenges(header).ok()?;
    let bearer = challenges
        .iter()
        .find(|c| c.scheme.eq_ignore_ascii_case("bearer"))?;
    Some(
        bearer
            .params
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), v.to_unescaped()))
            .collect(),
    )
}

/// Whether an HTTP status is worth another try.
pub fn status_is_transient(status: u16) -> bool {
    status == 429 || (500..=599).contains(&status) && status != 501
}

/// The root cause of a transport error in words, without the URL (callers name it themselves).
pub fn describe_transport_error(err: &reqwest::Error) -> String {
    let mut deepest = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(e) = source {
        deepest = e.to_string();
        source = e.source();
    }
    if err.is_timeout() {
        return format!("timed out ({deepest})");
    }
    deepest
}

/// Whether the error is a TLS certificate problem (wrong or unknown issuer, bad name...).
pub fn is_certificate_error(err: &reqwest::Error) -> bool {
    let text = describe_transport_error(err).to_ascii_lowercase();
    text.contains("certificate") || text.contains("unknownissuer") || text.contains("tls")
}

/// A body was larger than its cap.
#[derive(Debug)]
pub enum ReadError {
    TooLarge { declared: Option<u64>, limit: u64 },
    Transport(reqwest::Error),
}

/// Reads a response body, refusing (without reading further) anything over `limit` bytes.
pub async fn read_capped(response: reqwest::Response, limit: u64) -> Result<Bytes, ReadError> {
    if let Some(len) = response.content_length()
        && len > limit
    {
        return Err(ReadError::TooLarge {
            declared: Some(len),
            limit,
        });
    }
    let mut body = BytesMut::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(ReadError::Transport)?;
        if body.len() as u64 + chunk.len() as u64 > limit {
            return Err(ReadError::TooLarge {
                declared: None,
                limit,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// `4 MiB`, `512 KiB`, `17 bytes`.
pub fn human_size(bytes: u64) -> String {
    const KIB: u64 = 1024;
    const MIB: u64 = 1024 * 1024;
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else if bytes >= MIB {
        format!("{:.1} MiB", bytes as f64 / MIB as f64)
    } else if bytes >= KIB && bytes.is_multiple_of(KIB) {
        format!("{} KiB", bytes / KIB)
    } else {
        format!("{bytes} bytes")
    }
}

fn read_pem_certificates(
    path: &std::path::Path,
) -> Result<Vec<CertificateDer<'static>>, SetupError> {
    use rustls_pki_types::pem::PemObject;

    let bytes = std::fs::read(path).map_err(|e| SetupError::CaFileUnreadable {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut pems = Vec::new();
    for cert in CertificateDer::pem_slice_iter(&bytes) {
        let der = cert.map_err(|e| SetupError::CaFileEmpty {
            path: path.to_path_buf(),
            detail: Some(e.to_string()),
        })?;
        pems.push(der);
    }
    if pems.is_empty() {
        return Err(SetupError::CaFileEmpty {
            path: path.to_path_buf(),
            detail: None,
        });
    }
    Ok(pems)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for _ in 0..20 {
            let first = backoff(1).as_secs_f64();
            assert!((0.24..=0.36).contains(&first), "{first}");
            let late = backoff(30).as_secs_f64();
            assert!(late <= 9.6, "{late}");
        }
    }

    #[test]
    fn only_server_side_and_rate_limit_statuses_are_transient() {
        for s in [429, 500, 502, 503, 504] {
            assert!(status_is_transient(s), "{s}");
        }
        for s in [200, 400, 401, 403, 404, 409, 501] {
            assert!(!status_is_transient(s), "{s}");
        }
    }

    #[test]
    fn sizes_read_well() {
        assert_eq!(human_size(4 * 1024 * 1024), "4 MiB");
        assert_eq!(human_size(128 * 1024), "128 KiB");
        assert_eq!(human_size(17), "17 bytes");
    }

    #[test]
    fn ca_file_errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate").unwrap();
        let err = Http::new(NetworkSettings {
            ca_files: vec![empty.clone()],
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("empty.pem holds no PEM certificate"),
            "{err}"
        );

        let missing = dir.path().join("missing.pem");
        let err = Http::new(NetworkSettings {
            ca_files: vec![missing],
            ..Default::default()
        })
        .unwrap_err();
        assert!(
            err.to_string().starts_with("cannot read --ca-file"),
            "{err}"
        );
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }
}
