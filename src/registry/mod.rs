//! Registry access: credentials, the OCI distribution API through `oci-client`, retries and
//! size caps. The only other place that touches the network is `keys/`.

mod client;
pub mod credentials;

pub use client::{Op, Registry};

use std::path::PathBuf;
use std::time::Duration;

use crate::http::{Transient, human_size};
use credentials::CredentialError;

/// Why a registry operation failed. Every message names the registry or URL and never a secret.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot reach {registry}: {cause} ({method} {url}{})", attempts_note(*attempts))]
    Unreachable {
        registry: String,
        method: &'static str,
        url: String,
        cause: String,
        attempts: u32,
    },
    #[error("the TLS certificate of {registry} is not trusted: {cause} ({url})")]
    Certificate {
        registry: String,
        url: String,
        cause: String,
    },
    #[error("{registry} answered HTTP {status} to {method} {url}{}{}", detail_note(detail), attempts_note(*attempts))]
    Status {
        registry: String,
        method: &'static str,
        url: String,
        status: u16,
        detail: String,
        retry_after: Option<Duration>,
        attempts: u32,
    },
    #[error("unauthorized: {registry} requires credentials and none were found ({url})")]
    AuthRequired {
        registry: String,
        url: String,
        searched: Vec<PathBuf>,
    },
    #[error(
        "unauthorized: {registry} refused the credentials of {who}{} ({url})",
        from_note(origin)
    )]
    Unauthorized {
        registry: String,
        url: String,
        who: String,
        /// Where the credentials came from (a file, a helper).
        origin: Option<String>,
    },
    #[error("denied: {registry} does not let {who} {action} ({url})")]
    Denied {
        registry: String,
        url: String,
        who: String,
        action: &'static str,
    },
    #[error("{what} not found: {image} has no tag or digest '{reference}'")]
    ManifestUnknown {
        what: &'static str,
        image: String,
        reference: String,
    },
    #[error("repository not found: {registry} has no repository '{repository}'")]
    NameUnknown {
        registry: String,
        repository: String,
    },
    #[error("blob not found: {image} has no blob {digest}")]
    BlobUnknown { image: String, digest: String },
    #[error("{what} at {url} is {}; imagegate reads at most {}", declared.map(human_size).map(|s| format!("{s} long")).unwrap_or_else(|| "larger than allowed".into()), human_size(*limit))]
    TooLarge {
        what: String,
        url: String,
        limit: u64,
        declared: Option<u64>,
    },
    #[error("{what} at {url} does not match its digest: expected {expected}, got {actual}")]
    DigestMismatch {
        what: String,
        url: String,
        expected: String,
        actual: String,
    },
    #[error("{what} at {url} {detail}")]
    BadContent {
        what: String,
        url: String,
        detail: String,
    },
    #[error(transparent)]
    Credentials(#[from] CredentialError),
    #[error(transparent)]
    Setup(#[from] crate::http::SetupError),
}

fn attempts_note(attempts: u32) -> String {
    if attempts > 1 {
        format!("; gave up after {attempts} attempts")
    } else {
        String::new()
    }
}

fn detail_note(detail: &str) -> String {
    let detail = detail.trim();
    if detail.is_empty() {
        String::new()
    } else {
        // Registries sometimes answer with whole HTML pages; one line is enough.
        let line = detail.lines().next().unwrap_or_default();
        let mut short: String = line.chars().take(200).collect();
        if short.len() < line.len() {
            short.push('…');
        }
        format!(": {short}")
    }
}

fn from_note(origin: &Option<String>) -> String {
    origin
        .as_ref()
        .map(|s| format!(" from {s}"))
        .unwrap_or_default()
}

impl RegistryError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            RegistryError::Unreachable { registry, .. } => Some(format!(
                "check that {registry} is up and reachable from here; --retries and --timeout control how hard imagegate tries; a registry that speaks plain HTTP needs --insecure-registry {registry}"
            )),
            RegistryError::Certificate {
                registry, cause, ..
            } if cause.contains("CaUsedAsEndEntity") => Some(format!(
                "{registry} presents a CA certificate (basicConstraints CA:TRUE, as `openssl req -x509` makes by default) as its own server certificate; Go clients tolerate that, imagegate's TLS stack does not. Give the registry a server certificate signed by that CA (CA:FALSE, with the registry's name or IP in subjectAltName), or use --insecure-registry {registry}"
            )),
            RegistryError::Certificate { registry, .. } => Some(format!(
                "pass the registry's CA certificate with --ca-file PATH (or SSL_CERT_FILE), or use --insecure-registry {registry} to skip verification for this registry only"
            )),
            RegistryError::AuthRequired {
                registry, searched, ..
            } => {
                let files = if searched.is_empty() {
                    "no credentials file exists".to_string()
                } else {
                    format!(
                        "searched {}",
                        searched
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )
                };
                Some(format!(
                    "log in with `docker login {registry}` or `podman login {registry}`, or pass --registry-config PATH ({files})"
                ))
            }
            RegistryError::Unauthorized { registry, .. } => Some(format!(
                "check the user name and password (or token) for {registry}, then log in again"
            )),
            RegistryError::Denied { .. } => Some(
                "the credentials work but lack the permission; ask for access to the repository"
                    .into(),
            ),
            RegistryError::ManifestUnknown { image, .. } => Some(format!(
                "check the tag or digest; `skopeo list-tags docker://{image}` lists the tags there are"
            )),
            RegistryError::Status { status, .. } if *status >= 500 || *status == 429 => Some(
                "the registry is failing or rate-limiting; try again later or raise --retries"
                    .into(),
            ),
            _ => None,
        }
    }
}

impl Transient for RegistryError {
    fn is_transient(&self) -> bool {
        match self {
            RegistryError::Unreachable { .. } => true,
            RegistryError::Status { status, .. } => crate::http::status_is_transient(*status),
            _ => false,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            RegistryError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn after_attempts(mut self, n: u32) -> Self {
        if let RegistryError::Unreachable { attempts, .. }
        | RegistryError::Status { attempts, .. } = &mut self
        {
            *attempts = n;
        }
        self
    }
}
