//! ImageFacts: everything a rule may look at, gathered once (and concurrently) before any rule
//! runs. Rules never do I/O; they are functions from these facts to findings.

pub mod dockerfile;
pub mod gather;
pub mod scan;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::digest::Digest;
use crate::oci::Platform;
use crate::reference::ImageRef;

/// The facts about one image (a single-platform image, or every platform of an index).
#[derive(Clone, Debug, Serialize)]
pub struct ImageFacts {
    /// How the image is named: the registry reference, or for a local layout the name it is
    /// given (`--image-name`) or a placeholder under `localhost/`.
    pub name: ImageRef,
    /// The digest the reference resolves to (an index's own digest for an index).
    pub digest: Digest,
    /// One entry per platform image: one for a single-platform image, one per child of an index.
    pub platforms: Vec<PlatformFacts>,
    /// Signatures stored for `digest` and which keys verify them.
    pub signatures: SignatureFacts,
    /// Signatures kept in other repositories, keyed by the repository as a policy names it.
    pub signatures_elsewhere: BTreeMap<String, SignatureFacts>,
    /// Vulnerabilities and components from a scanner report, when one was given.
    pub scan: Option<ScanReport>,
}

/// One platform's image: its manifest digest and config.
#[derive(Clone, Debug, Serialize)]
pub struct PlatformFacts {
    /// The platform from the config (or the index entry); `None` when neither says.
    pub platform: Option<Platform>,
    /// The image manifest's digest.
    pub digest: Digest,
    pub config: ImageConfig,
}

/// The parts of an OCI/Docker image config rules read.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ImageConfig {
    pub created: Option<DateTime<Utc>>,
    /// `config.User` as written; empty when the image runs as root by default.
    pub user: String,
    pub labels: BTreeMap<String, String>,
    pub env: Vec<String>,
    /// `config.ExposedPorts` keys, e.g. `22/tcp`.
    pub exposed_ports: Vec<String>,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    /// `history[].created_by`, in order, as written.
    pub history: Vec<String>,
    /// The history as Dockerfile lines, normalised the way StackRox does it.
    pub dockerfile: Vec<DockerfileLine>,
}

impl ImageConfig {
    /// The user as StackRox stores it: an empty config user is `root`.
    pub fn effective_user(&self) -> &str {
        if self.user.is_empty() {
            "root"
        } else {
            &self.user
        }
    }
}

/// One layer's instruction: `RUN apt-get update` → (`RUN`, `apt-get update`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct DockerfileLine {
    pub instruction: String,
    pub value: String,
}

/// What a scanner report says about the image.
#[derive(Clone, Debug, Serialize)]
pub struct ScanReport {
    /// Where the data came from, e.g. `trivy report vulns.json`.
    pub source: String,
    /// When the scan ran, when the report says.
    pub scanned_at: Option<DateTime<Utc>>,
    /// The operating system the scanner saw, e.g. `debian 10.13`.
    pub operating_system: Option<String>,
    /// Every component (package) found, each with its vulnerabilities.
    pub components: Vec<Component>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Component {
    pub name: String,
    pub version: String,
    pub vulnerabilities: Vec<Vulnerability>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Vulnerability {
    /// `CVE-2021-44228`, `GHSA-…`.
    pub id: String,
    pub severity: VulnSeverity,
    /// The CVSS base score the report prefers (vendor, else NVD), v3 when present.
    pub cvss: Option<f32>,
    /// The NVD CVSS base score, when the report carries one.
    pub nvd_cvss: Option<f32>,
    /// The version that fixes it; `None` when no fix is known.
    pub fixed_by: Option<String>,
    pub published: Option<DateTime<Utc>>,
    /// When a fix became available, when the report says.
    pub fix_available: Option<DateTime<Utc>>,
    pub link: Option<String>,
}

/// StackRox's vulnerability severities, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum VulnSeverity {
    Unknown,
    Low,
    Moderate,
    Important,
    Critical,
}

impl VulnSeverity {
    /// As StackRox prints it in violation messages: `Important`.
    pub fn label(self) -> &'static str {
        match self {
            VulnSeverity::Unknown => "Unknown",
            VulnSeverity::Low => "Low",
            VulnSeverity::Moderate => "Moderate",
            VulnSeverity::Important => "Important",
            VulnSeverity::Critical => "Critical",
        }
    }
}

/// Identifies a key a rule asks about: a PEM public key (by the SHA-256 of its DER), or a key
/// URI (`awskms://…`, `hashivault://…`, `k8s://…`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum KeyId {
    /// `sha256:<hex>` of the DER SubjectPublicKeyInfo.
    PublicKey(String),
    /// A key URI as written in the policy or on the command line.
    Uri(String),
}

/// A key a rule asks about, and where to get it so signatures can be checked with it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct KeyRequest {
    pub id: KeyId,
    pub source: KeySource,
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeySource {
    /// A PEM public key, as written in a policy or integration.
    Pem(String),
    /// A key URI (`awskms://…`, `hashivault://…`, `k8s://…`, a file path).
    Uri(String),
}

impl KeyRequest {
    /// A request for a PEM public key, named by its fingerprint.
    pub fn pem(pem: &str) -> Result<KeyRequest, String> {
        Ok(KeyRequest {
            id: KeyId::for_public_key_pem(pem)?,
            source: KeySource::Pem(pem.trim().to_string()),
        })
    }

    /// A request for a key URI, named by the URI.
    pub fn uri(uri: &str) -> KeyRequest {
        KeyRequest {
            id: KeyId::Uri(uri.to_string()),
            source: KeySource::Uri(uri.to_string()),
        }
    }
}

impl KeyId {
    /// The id of a PEM-encoded public key (`-----BEGIN PUBLIC KEY-----`): the SHA-256 of its
    /// DER SubjectPublicKeyInfo, so the same key written differently is the same id.
    pub fn for_public_key_pem(pem: &str) -> Result<KeyId, String> {
        use rustls_pki_types::SubjectPublicKeyInfoDer;
        use rustls_pki_types::pem::PemObject;
        let der = SubjectPublicKeyInfoDer::from_pem_slice(pem.trim().as_bytes())
            .map_err(|e| format!("not a PEM public key ({e})"))?;
        Ok(KeyId::PublicKey(
            Digest::sha256_of(der.as_ref()).to_string(),
        ))
    }
}

impl std::fmt::Display for KeyId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyId::PublicKey(fingerprint) => write!(f, "public key {fingerprint}"),
            KeyId::Uri(uri) => f.write_str(uri),
        }
    }
}

/// The signatures stored for the image and what verifying them with each key gave.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SignatureFacts {
    /// Every signature layer found in the `.sig` image, in order.
    pub found: Vec<FoundSignature>,
    /// For each key a rule asked about: which of `found` verify with it, or why that key
    /// could not be used (e.g. the KMS could not be reached).
    pub checks: BTreeMap<KeyId, KeyCheck>,
    /// Why signatures could not be read at all (the gather step failed), if so.
    pub unavailable: Option<String>,
    /// In-toto attestations stored for the image (`.att`), when a rule asked for them.
    pub attestations: Vec<FoundAttestation>,
    /// Sigstore bundles attached to the image as referrers (cosign 3's default), read when a
    /// rule's verifier reads them (StackRox does; Kyverno's `type: Cosign` does not).
    pub bundles: Vec<FoundBundle>,
    /// For each key: which of `bundles` verify with it (indexes into `bundles`).
    pub bundle_checks: BTreeMap<KeyId, KeyCheck>,
}

/// One Sigstore bundle attached to the image.
#[derive(Clone, Debug, Serialize)]
pub struct FoundBundle {
    /// The digest of the referrer manifest that holds it.
    pub manifest: String,
    /// The in-toto predicate type of its statement, when it could be read.
    pub predicate_type: Option<String>,
    /// How many transparency-log entries it carries.
    pub tlog_entries: usize,
}

#[derive(Clone, Debug, Serialize)]
pub enum KeyCheck {
    /// Indexes into [`SignatureFacts::found`] of the signatures this key verifies (maybe none),
    /// and for each failure, why it failed.
    Checked {
        verified: Vec<usize>,
        failures: Vec<String>,
    },
    /// The key itself could not be had.
    KeyUnavailable(String),
}

impl KeyCheck {
    pub fn verified(&self) -> &[usize] {
        match self {
            KeyCheck::Checked { verified, .. } => verified,
            KeyCheck::KeyUnavailable(_) => &[],
        }
    }
}

/// One signature layer of a `.sig` image.
#[derive(Clone, Debug, Serialize)]
pub struct FoundSignature {
    /// `critical.identity.docker-reference` of the payload.
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest` of the payload.
    pub manifest_digest: String,
    /// `optional` of the payload (cosign `-a` annotations), flattened to strings.
    pub annotations: BTreeMap<String, String>,
    /// The layer's Rekor bundle (`dev.sigstore.cosign/bundle`), checked offline; `None`
    /// when the layer carries none.
    pub tlog: Option<TlogFacts>,
    /// The layer carries a certificate (keyless signing).
    pub has_certificate: bool,
}

/// What a signature's Rekor bundle says, checked as cosign's `VerifyBundle` checks it.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TlogFacts {
    pub log_id: String,
    pub log_index: i64,
    /// When the log integrated the entry (Unix seconds).
    pub integrated_time: i64,
    /// Why the bundle does not vouch for this layer: unreadable, or its entry records another
    /// signature or another payload's hash. `None` when the entry is this layer's.
    pub problem: Option<String>,
    /// Why the bundle cannot be judged offline, if so (a layer with a certificate: cosign then
    /// compares the entry with the certificate).
    pub unchecked: Option<String>,
    /// The id of the public key the log entry records.
    pub entry_key: Option<KeyId>,
    /// The checked keys (as in [`SignatureFacts::checks`]) that are the entry's key; cosign
    /// accepts a bundle only for the key it verifies with.
    pub entry_key_of: Vec<KeyId>,
    /// For each Rekor key the rules name: whether the bundle names its log and its signed
    /// entry timestamp verifies, or why not.
    pub set_checks: BTreeMap<KeyId, Result<(), String>>,
}

/// What a signature's Rekor bundle says for one verifying key and one trusted log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlogVerdict {
    /// The log vouches for this signature, made with that key.
    Accepted,
    /// It does not, with cosign's reason.
    Refused(String),
    /// It cannot be told offline, and why.
    NotChecked(String),
}

impl TlogFacts {
    /// cosign's `VerifyBundle` for a signature verified with `key`: the entry records this
    /// signature, payload and key, and the SET verifies with the log key `rekor`.
    pub fn verdict(&self, key: &KeyId, rekor: &KeyId) -> TlogVerdict {
        if let Some(why) = &self.unchecked {
            return TlogVerdict::NotChecked(why.clone());
        }
        if let Some(problem) = &self.problem {
            return TlogVerdict::Refused(problem.clone());
        }
        if !self.entry_key_of.contains(key) {
            return TlogVerdict::Refused(format!(
                "comparing public key PEMs: the log entry records another key than {key}"
            ));
        }
        match self.set_checks.get(rekor) {
            None => TlogVerdict::NotChecked(format!("the bundle was not checked with {rekor}")),
            Some(Err(why)) => TlogVerdict::Refused(why.clone()),
            Some(Ok(())) => TlogVerdict::Accepted,
        }
    }
}

/// A transparency log's public key a rule names (Kyverno's `rekor.pubkey`, a StackRox
/// integration's `transparencyLog.publicKeyPemEnc`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RekorKey {
    pub id: KeyId,
    pub pem: String,
}

/// One in-toto attestation stored for the image.
#[derive(Clone, Debug, Serialize)]
pub struct FoundAttestation {
    pub predicate_type: String,
    pub predicate: serde_json::Value,
    /// Keys (as in [`SignatureFacts::checks`]) whose signature over this attestation verifies.
    pub verified_by: Vec<KeyId>,
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nXRh950IZbRj8Ra/N9sbqOPZrfM\n5/KAQN0/KjHcorm/J5yctVd7iEcnessRQjU917hmKO6JWVGHpDguIyakZA==\n-----END PUBLIC KEY-----\n";

    #[test]
    fn public_key_ids_ignore_formatting() {
        let a = KeyId::for_public_key_pem(PEM).unwrap();
        let b = KeyId::for_public_key_pem(&format!("\n  {PEM}  \n")).unwrap();
        assert_eq!(a, b);
        assert!(matches!(a, KeyId::PublicKey(ref f) if f.starts_with("sha256:")));
        assert!(KeyId::for_public_key_pem("not a key").is_err());
    }
}
