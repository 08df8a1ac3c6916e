//! Signing keys named by a URI, as cosign names them: a key file, `env://VAR`, `k8s://NS/NAME`,
//! `hashivault://KEY`, `awskms://…`, `gcpkms://…`, `azurekms://…`. One [`KeyRef::parse`], one
//! file per backend. Local keys sign with sigstore's crypto; remote ones through their service,
//! and every signature a service returns is verified locally before it is used.

pub mod aws;
pub mod azure;
pub mod file;
pub mod gcp;
pub mod k8s;
pub mod password;
mod remote;
pub mod vault;

use std::fmt;
use std::path::PathBuf;

use sigstore::crypto::{CosignVerificationKey, Signature, SigningScheme};

use crate::facts::KeyId;
use crate::http::Http;

/// A key as named on the command line or in a policy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRef {
    /// A PEM file: an encrypted cosign private key, a PKCS#8 private key, or a public key.
    File(PathBuf),
    /// `env://VAR`: the variable holds the PEM.
    Env(String),
    /// `k8s://NS/NAME`: the Secret's `cosign.key`, `cosign.password`, `cosign.pub`.
    Kubernetes { namespace: String, name: String },
    /// `hashivault://KEY` (also `openbao://KEY`): a Vault transit key.
    Vault { key: String },
    /// `awskms://[ENDPOINT]/KEY`: a key id, `alias/NAME`, or a key or alias ARN.
    Aws {
        endpoint: Option<String>,
        key_id: String,
    },
    /// `gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/N]`.
    Gcp {
        key_name: String,
        version: Option<String>,
    },
    /// `azurekms://VAULT.vault.azure.net/KEY[/VERSION]`.
    Azure {
        vault: String,
        key: String,
        version: Option<String>,
    },
}

/// Why a key could not be used. [`crate::error::Error::exit`] maps each to its exit code.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("invalid key reference '{uri}': {reason}")]
    BadUri { uri: String, reason: String },
    #[error("cannot read key file {}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{origin} is not a key imagegate can use: {reason}")]
    NotAKey { origin: String, reason: String },
    #[error(
        "{origin} is an encrypted private key and no password was given: set COSIGN_PASSWORD (it may be empty), or run on a terminal to be asked"
    )]
    PasswordNeeded { origin: String },
    #[error("cannot decrypt {origin}: wrong password, or the key file is damaged")]
    WrongPassword { origin: String },
    #[error("{origin} holds a public key; signing needs the private key")]
    PublicKeyOnly { origin: String },
    #[error("{backend} is not configured: {reason}")]
    NotConfigured {
        backend: &'static str,
        reason: String,
    },
    #[error("{backend}: {message}")]
    Remote {
        backend: &'static str,
        /// What failed, naming the URL or operation and the status — never a token.
        message: String,
        /// Asking again may help: the service could not be reached, timed out, or answered
        /// 5xx or 429. A refusal (4xx) is not transient.
        transient: bool,
    },
    #[error(
        "{backend} returned a signature that does not verify with the key's public key; refusing to use it"
    )]
    BadRemoteSignature { backend: &'static str },
    #[error("cannot write {}: {reason}", path.display())]
    Write { path: PathBuf, reason: String },
    #[error("{0}")]
    Refused(String),
}

impl KeyError {
    /// A transient failure that outlasted the retries says how many attempts were made.
    pub(crate) fn after_attempts(self, attempts: u32) -> KeyError {
        match self {
            KeyError::Remote {
                backend,
                message,
                transient: true,
            } if attempts > 1 => KeyError::Remote {
                backend,
                message: format!("{message} (gave up after {attempts} attempts)"),
                transient: true,
            },
            other => other,
        }
    }

    /// An answer of `what` that could not be read: too large (`too_large` says what that
    /// means for this service) or cut off.
    pub(crate) fn unreadable(
        backend: &'static str,
        what: &str,
        err: crate::http::ReadError,
        too_large: &str,
    ) -> KeyError {
        use crate::http;
        match err {
            http::ReadError::TooLarge { limit, .. } => KeyError::Remote {
                backend,
                message: format!(
                    "{what} answered with more than {}; {too_large}",
                    http::human_size(limit)
                ),
                transient: false,
            },
            http::ReadError::Transport(e) => KeyError::Remote {
                backend,
                message: format!(
                    "{what}: the answer was cut off ({})",
                    http::describe_transport_error(&e)
                ),
                transient: true,
            },
        }
    }

    pub fn hint(&self) -> Option<String> {
        match self {
            KeyError::BadUri { .. } => Some(
                "key references are a file path, env://VAR, k8s://NAMESPACE/SECRET, hashivault://KEY, awskms://[ENDPOINT]/KEY, gcpkms://projects/…/cryptoKeys/KEY or azurekms://VAULT.vault.azure.net/KEY".into(),
            ),
            _ => None,
        }
    }
}

impl KeyRef {
    /// Reads a key reference; anything that is not one of the URI schemes is a file path.
    pub fn parse(uri: &str) -> Result<KeyRef, KeyError> {
        let bad = |reason: &str| KeyError::BadUri {
            uri: uri.to_string(),
            reason: reason.to_string(),
        };
        if uri.trim().is_empty() {
            return Err(bad("it is empty"));
        }
        if let Some(var) = uri.strip_prefix("env://") {
            let valid = !var.is_empty()
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !var.starts_with(|c: char| c.is_ascii_digit());
            if !valid {
                return Err(bad("env:// needs a variable name (letters, digits, '_')"));
            }
            return Ok(KeyRef::Env(var.to_string()));
        }
        if let Some(rest) = uri.strip_prefix("k8s://") {
            let parts: Vec<&str> = rest.split('/').collect();
            return match parts.as_slice() {
                [ns, name] if valid_k8s_name(ns) && valid_k8s_name(name) => {
                    Ok(KeyRef::Kubernetes {
                        namespace: ns.to_string(),
                        name: name.to_string(),
                    })
                }
                _ => Err(bad(
                    "k8s:// needs NAMESPACE/SECRET, both lowercase DNS names (e.g. k8s://tekton-pipelines/cosign)",
                )),
            };
        }
        for scheme in ["hashivault://", "openbao://"] {
            if let Some(key) = uri.strip_prefix(scheme) {
                // cosign: ^\w(([\w-.]+)?\w)?$ — no slashes in the key name.
                let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
                let valid = !key.is_empty()
                    && key.starts_with(word)
                    && key.ends_with(word)
                    && key.chars().all(|c| word(c) || c == '-' || c == '.');
                if !valid {
                    return Err(bad(
                        "the Vault transit key name is letters, digits, '_', '-', '.' (no '/'; the mount is TRANSIT_SECRET_ENGINE_PATH)",
                    ));
                }
                return Ok(KeyRef::Vault {
                    key: key.to_string(),
                });
            }
        }
        if let Some(rest) = uri.strip_prefix("awskms://") {
            return aws::parse_ref(rest).map_err(|reason| bad(&reason));
        }
        if let Some(rest) = uri.strip_prefix("gcpkms://") {
            return gcp::parse_ref(rest).map_err(|reason| bad(&reason));
        }
        if let Some(rest) = uri.strip_prefix("azurekms://") {
            return azure::parse_ref(rest).map_err(|reason| bad(&reason));
        }
        if let Some((scheme, _)) = uri.split_once("://") {
            return Err(bad(&format!("unknown key scheme '{scheme}://'")));
        }
        Ok(KeyRef::File(PathBuf::from(uri)))
    }

    /// The [`KeyId`] policies use for this key: URIs by their text, files by their public key.
    pub fn uri_id(&self) -> Option<KeyId> {
        match self {
            KeyRef::File(_) | KeyRef::Env(_) => None,
            other => Some(KeyId::Uri(other.to_string())),
        }
    }
}

fn valid_k8s_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.')
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.ends_with(|c: char| c.is_ascii_alphanumeric())
}

impl fmt::Display for KeyRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyRef::File(path) => write!(f, "{}", path.display()),
            KeyRef::Env(var) => write!(f, "env://{var}"),
            KeyRef::Kubernetes { namespace, name } => write!(f, "k8s://{namespace}/{name}"),
            KeyRef::Vault { key } => write!(f, "hashivault://{key}"),
            KeyRef::Aws { endpoint, key_id } => {
                write!(f, "awskms://{}/{key_id}", endpoint.as_deref().unwrap_or(""))
            }
            KeyRef::Gcp { key_name, version } => {
                write!(f, "gcpkms://{key_name}")?;
                if let Some(v) = version {
                    write!(f, "/cryptoKeyVersions/{v}")?;
                }
                Ok(())
            }
            KeyRef::Azure {
                vault,
                key,
                version,
            } => {
                write!(f, "azurekms://{vault}/{key}")?;
                if let Some(v) = version {
                    write!(f, "/{v}")?;
                }
                Ok(())
            }
        }
    }
}

/// A public key that verifies signatures, with the id policies know it by.
#[derive(Clone, Debug)]
pub struct PublicKey {
    pem: String,
    der: Vec<u8>,
    verifier: CosignVerificationKey,
    id: KeyId,
}

impl PublicKey {
    /// From a PEM `PUBLIC KEY` block; `origin` names where it came from, for errors.
    pub fn from_pem(pem_text: &str, origin: &str) -> Result<PublicKey, KeyError> {
        let block = pem::parse(pem_text.trim()).map_err(|e| KeyError::NotAKey {
            origin: origin.to_string(),
            reason: format!("not PEM ({e})"),
        })?;
        if block.tag() != "PUBLIC KEY" {
            return Err(KeyError::NotAKey {
                origin: origin.to_string(),
                reason: format!("it is a '{}' PEM block, not 'PUBLIC KEY'", block.tag()),
            });
        }
        Self::from_der(block.contents(), origin)
    }

    /// From a DER SubjectPublicKeyInfo.
    pub fn from_der(der: &[u8], origin: &str) -> Result<PublicKey, KeyError> {
        let verifier = CosignVerificationKey::try_from_der(der).map_err(|e| KeyError::NotAKey {
            origin: origin.to_string(),
            reason: e.to_string(),
        })?;
        let pem = pem::encode_config(
            &pem::Pem::new("PUBLIC KEY", der.to_vec()),
            pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
        );
        Ok(PublicKey {
            id: KeyId::PublicKey(crate::digest::Digest::sha256_of(der).to_string()),
            pem,
            der: der.to_vec(),
            verifier,
        })
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The id of this key as a public key (its DER fingerprint).
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// What kind of key this is, in words.
    pub fn kind(&self) -> &'static str {
        match self.verifier {
            CosignVerificationKey::ECDSA_P256_SHA256_ASN1(_) => "ECDSA P-256",
            CosignVerificationKey::ECDSA_P384_SHA384_ASN1(_) => "ECDSA P-384",
            CosignVerificationKey::ECDSA_P521_SHA512_ASN1(_) => "ECDSA P-521",
            CosignVerificationKey::RSA_PKCS1_SHA256(_)
            | CosignVerificationKey::RSA_PSS_SHA256(_) => "RSA",
            CosignVerificationKey::ED25519(_) => "Ed25519",
        }
    }

    /// Whether `signature` is this key's signature over exactly `message`. ECDSA signatures are
    /// accepted in ASN.1 DER and, as cosign accepts them, in IEEE P1363 `r||s` form.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        if self
            .verifier
            .verify_signature(Signature::Raw(signature), message)
            .is_ok()
        {
            return true;
        }
        match raw_ecdsa_to_der(&self.verifier, signature) {
            Some(der) => self
                .verifier
                .verify_signature(Signature::Raw(&der), message)
                .is_ok(),
            None => false,
        }
    }

    /// The sigstore signing scheme matching this key.
    pub fn scheme(&self) -> SigningScheme {
        match self.verifier {
            CosignVerificationKey::ECDSA_P256_SHA256_ASN1(_) => {
                SigningScheme::ECDSA_P256_SHA256_ASN1
            }
            CosignVerificationKey::ECDSA_P384_SHA384_ASN1(_) => {
                SigningScheme::ECDSA_P384_SHA384_ASN1
            }
            CosignVerificationKey::ECDSA_P521_SHA512_ASN1(_) => {
                SigningScheme::ECDSA_P521_SHA512_ASN1
            }
            CosignVerificationKey::RSA_PKCS1_SHA256(_) => SigningScheme::RSA_PKCS1_SHA256(0),
            CosignVerificationKey::RSA_PSS_SHA256(_) => SigningScheme::RSA_PSS_SHA256(0),
            CosignVerificationKey::ED25519(_) => SigningScheme::ED25519,
        }
    }
}

/// `r||s` (as Azure Key Vault and some HSMs return ECDSA signatures) to ASN.1 DER.
pub fn raw_ecdsa_to_der(key: &CosignVerificationKey, raw: &[u8]) -> Option<Vec<u8>> {
    match key {
        CosignVerificationKey::ECDSA_P256_SHA256_ASN1(_) if raw.len() == 64 => {
            p256::ecdsa::Signature::from_slice(raw)
                .ok()
                .map(|s| s.to_der().as_bytes().to_vec())
        }
        CosignVerificationKey::ECDSA_P384_SHA384_ASN1(_) if raw.len() == 96 => {
            p384::ecdsa::Signature::from_slice(raw)
                .ok()
                .map(|s| s.to_der().as_bytes().to_vec())
        }
        CosignVerificationKey::ECDSA_P521_SHA512_ASN1(_) if raw.len() == 132 => {
            p521::ecdsa::Signature::from_slice(raw)
                .ok()
                .map(|s| s.to_der().as_bytes().to_vec())
        }
        _ => None,
    }
}

/// What signs a payload: a local private key, or a key held by a service.
pub enum Signer {
    Local(file::LocalKey),
    Aws(aws::AwsKey),
    Vault(vault::VaultKey),
    Gcp(gcp::GcpKey),
    Azure(azure::AzureKey),
}

impl Signer {
    /// The public half, to verify with and to name the key by.
    pub fn public_key(&self) -> &PublicKey {
        match self {
            Signer::Local(k) => k.public_key(),
            Signer::Aws(k) => k.public_key(),
            Signer::Vault(k) => k.public_key(),
            Signer::Gcp(k) => k.public_key(),
            Signer::Azure(k) => k.public_key(),
        }
    }

    /// Signs `payload` (the service hashes or is given the SHA-256 as its API wants) and checks
    /// the signature with the public key before returning it.
    pub async fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, KeyError> {
        let (signature, backend) = match self {
            Signer::Local(k) => (k.sign(payload)?, "the local key"),
            Signer::Aws(k) => (k.sign(payload).await?, "AWS KMS"),
            Signer::Vault(k) => (k.sign(payload).await?, "Vault transit"),
            Signer::Gcp(k) => (k.sign(payload).await?, "Google Cloud KMS"),
            Signer::Azure(k) => (k.sign(payload).await?, "Azure Key Vault"),
        };
        if !self.public_key().verify(payload, &signature) {
            return Err(KeyError::BadRemoteSignature { backend });
        }
        Ok(signature)
    }
}

impl crate::http::Transient for KeyError {
    fn is_transient(&self) -> bool {
        matches!(
            self,
            KeyError::Remote {
                transient: true,
                ..
            }
        )
    }
}

/// What key backends need from the rest of imagegate.
pub struct KeyContext<'a> {
    /// The shared HTTP setup (roots, timeouts, retries).
    pub http: &'a Http,
    /// May imagegate ask for a password on the terminal?
    pub interactive: bool,
    /// The environment variables backends read (VAULT_ADDR, KUBECONFIG, …), captured once so
    /// that tests can give each backend its own.
    pub env: &'a Environment,
}

/// A snapshot of environment variables.
#[derive(Clone, Debug, Default)]
pub struct Environment {
    vars: std::collections::BTreeMap<String, String>,
}

impl Environment {
    /// The process's environment.
    pub fn from_process() -> Environment {
        Environment {
            vars: std::env::vars().collect(),
        }
    }

    /// An environment with exactly `vars` (for tests and for embedding).
    pub fn from_vars<I, K, V>(vars: I) -> Environment
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Environment {
            vars: vars
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The variable's value when it is set (possibly empty).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    /// The variable's value when it is set and not empty.
    pub fn non_empty(&self, name: &str) -> Option<&str> {
        self.get(name).filter(|v| !v.is_empty())
    }

    /// Every variable, for a child process that must see exactly this environment (a
    /// Kubernetes credential plugin).
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The home folder, from HOME.
    pub fn home(&self) -> Option<PathBuf> {
        self.non_empty("HOME").map(PathBuf::from)
    }
}

/// The signer for `key`.
pub async fn signer(key: &KeyRef, ctx: &KeyContext<'_>) -> Result<Signer, KeyError> {
    match key {
        KeyRef::File(path) => {
            let pem = file::read_key_file(path)?;
            let origin = path.display().to_string();
            Ok(Signer::Local(file::LocalKey::from_pem(
                &pem,
                &origin,
                |_| password::for_key(&origin, ctx.interactive),
            )?))
        }
        KeyRef::Env(var) => {
            let pem = read_env(ctx.env, var)?;
            let origin = format!("env://{var}");
            Ok(Signer::Local(file::LocalKey::from_pem(
                &pem,
                &origin,
                |_| password::for_key(&origin, ctx.interactive),
            )?))
        }
        KeyRef::Kubernetes { namespace, name } => {
            Ok(Signer::Local(k8s::signer(namespace, name, ctx).await?))
        }
        KeyRef::Vault { key } => Ok(Signer::Vault(vault::VaultKey::connect(key, ctx).await?)),
        KeyRef::Aws { endpoint, key_id } => Ok(Signer::Aws(
            aws::AwsKey::connect(endpoint.as_deref(), key_id, ctx).await?,
        )),
        KeyRef::Gcp { key_name, version } => Ok(Signer::Gcp(
            gcp::GcpKey::connect(key_name, version.as_deref(), ctx).await?,
        )),
        KeyRef::Azure {
            vault,
            key,
            version,
        } => Ok(Signer::Azure(
            azure::AzureKey::connect(vault, key, version.as_deref(), ctx).await?,
        )),
    }
}

/// The public key for `key`, to verify with: a public key file or variable (a private key
/// works too), `cosign.pub` of a Kubernetes Secret, or a KMS key's public key.
pub async fn public_key(key: &KeyRef, ctx: &KeyContext<'_>) -> Result<PublicKey, KeyError> {
    match key {
        KeyRef::File(path) => {
            let pem = file::read_key_file(path)?;
            file::public_key_from_pem(&pem, &path.display().to_string(), ctx.interactive)
        }
        KeyRef::Env(var) => {
            let pem = read_env(ctx.env, var)?;
            file::public_key_from_pem(&pem, &format!("env://{var}"), ctx.interactive)
        }
        KeyRef::Kubernetes { namespace, name } => k8s::public_key(namespace, name, ctx).await,
        other => Ok(signer(other, ctx).await?.public_key().clone()),
    }
}

fn read_env(env: &Environment, var: &str) -> Result<String, KeyError> {
    match env.get(var) {
        Some(v) if !v.trim().is_empty() => Ok(v.to_string()),
        Some(_) => Err(KeyError::NotConfigured {
            backend: "env://",
            reason: format!("the variable {var} is empty; it should hold the PEM key"),
        }),
        None => Err(KeyError::NotConfigured {
            backend: "env://",
            reason: format!("the variable {var} is not set; it should hold the PEM key"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        let ok = |s: &str| KeyRef::parse(s).unwrap();
        assert_eq!(ok("cosign.key"), KeyRef::File("cosign.key".into()));
        assert_eq!(ok("/keys/c.pub"), KeyRef::File("/keys/c.pub".into()));
        assert_eq!(ok("env://COSIGN_KEY"), KeyRef::Env("COSIGN_KEY".into()));
        assert_eq!(
            ok("k8s://tekton-pipelines/cosign"),
            KeyRef::Kubernetes {
                namespace: "tekton-pipelines".into(),
                name: "cosign".into()
            }
        );
        assert_eq!(
            ok("hashivault://cosign"),
            KeyRef::Vault {
                key: "cosign".into()
            }
        );
        assert_eq!(
            ok("openbao://team.key-1"),
            KeyRef::Vault {
                key: "team.key-1".into()
            }
        );
        for s in [
            "env://",
            "env://1X",
            "k8s://ns",
            "k8s://ns/name/extra",
            "k8s://NS/name",
            "hashivault://a/b",
            "hashivault://",
            "hashivault://-x",
            "ftp://x",
            "",
        ] {
            let err = KeyRef::parse(s).unwrap_err();
            assert!(matches!(err, KeyError::BadUri { .. }), "{s}: {err}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in [
            "env://K",
            "k8s://ns/cosign",
            "hashivault://cosign",
            "awskms:///alias/cosign",
            "awskms://localhost:4566/alias/cosign",
            "gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k",
            "gcpkms://projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3",
            "azurekms://team.vault.azure.net/cosign",
            "azurekms://team.vault.azure.net/cosign/0123abcd",
        ] {
            assert_eq!(KeyRef::parse(s).unwrap().to_string(), s);
        }
    }
}
