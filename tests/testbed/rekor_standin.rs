//! A stand-in for a Rekor transparency log (no Rekor can be run here). It does not serve the
//! Rekor API; it makes what Rekor hands back for a `hashedrekord` entry: the entry body and a
//! signed entry timestamp (SET), its own P-256 key's signature over the canonical JSON of
//! `{body, integratedTime, logID, logIndex}`. The result is written in the bundle-file format
//! that `cosign sign-blob --bundle` writes and `cosign attach signature --rekor-response`
//! reads, so cosign itself attaches it and judges it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};

use base64::Engine as _;
use p256::ecdsa::{Signature, SigningKey, signature::Signer as _};
use p256::pkcs8::DecodePrivateKey as _;
use sha2::Digest as _;

pub struct TransparencyLog {
    key: SigningKey,
    public_pem: String,
    log_id: String,
    next_index: AtomicI64,
}

/// What the log entry records. A real log records what was submitted; the test makes entries
/// that record something else to see them refused.
pub struct Recorded<'a> {
    pub signature_b64: &'a str,
    pub payload: &'a [u8],
    pub public_key_pem: &'a str,
}

impl TransparencyLog {
    pub fn new() -> TransparencyLog {
        let key_pair = rcgen::KeyPair::generate().expect("P-256 key");
        let key = SigningKey::from_pkcs8_der(&key_pair.serialize_der()).expect("PKCS#8 key");
        let public_pem = key_pair.public_key_pem();
        let der = pem::parse(&public_pem).expect("public key PEM");
        TransparencyLog {
            key,
            log_id: hex::encode(sha2::Sha256::digest(der.contents())),
            public_pem,
            next_index: AtomicI64::new(1000),
        }
    }

    /// The log's public key (a policy's `rekor.pubkey`, cosign's `SIGSTORE_REKOR_PUBLIC_KEY`).
    pub fn public_pem(&self) -> &str {
        &self.public_pem
    }

    pub fn write_public_key(&self, dir: &Path, name: &str) -> PathBuf {
        super::write_file(dir, name, &self.public_pem)
    }

    /// A bundle file for an entry recording `recorded`, integrated now.
    pub fn bundle_file(&self, dir: &Path, name: &str, recorded: &Recorded<'_>) -> PathBuf {
        let b64 = base64::engine::general_purpose::STANDARD;
        let body = serde_json::json!({
            "apiVersion": "0.0.1",
            "kind": "hashedrekord",
            "spec": {
                "data": {"hash": {
                    "algorithm": "sha256",
                    "value": hex::encode(sha2::Sha256::digest(recorded.payload)),
                }},
                "signature": {
                    "content": recorded.signature_b64,
                    "publicKey": {"content": b64.encode(recorded.public_key_pem)},
                },
            },
        });
        let mut payload = BTreeMap::new();
        payload.insert("body", serde_json::json!(b64.encode(body.to_string())));
        payload.insert(
            "integratedTime",
            serde_json::json!(chrono::Utc::now().timestamp()),
        );
        payload.insert("logID", serde_json::json!(self.log_id));
        payload.insert(
            "logIndex",
            serde_json::json!(self.next_index.fetch_add(1, Ordering::SeqCst)),
        );
        // Compact JSON of a map with sorted keys is the canonical form for these four fields.
        let canonical = serde_json::to_vec(&payload).expect("JSON");
        let set: Signature = self.key.sign(&canonical);
        let file = serde_json::json!({
            "base64Signature": recorded.signature_b64,
            "rekorBundle": {
                "SignedEntryTimestamp": b64.encode(set.to_der().as_bytes()),
                "Payload": payload,
            },
        });
        super::write_file(dir, name, &file.to_string())
    }
}

/// What the log entry records besides the truth.
pub enum Recording<'a> {
    Faithfully,
    AnotherPayload,
    AnotherKey(&'a str),
}

impl TransparencyLog {
    /// Signs `image` (by digest) as a CI job that uploads to Rekor does: cosign makes the
    /// payload (`cosign generate`) and signs it with `key` (`cosign sign-blob`), this log
    /// records an entry as `recording` says, and `cosign attach signature --rekor-response`
    /// stores signature and bundle together. Files go into `dir`.
    pub fn sign_into_log(
        &self,
        image: &str,
        key: &str,
        password: &str,
        public: &str,
        dir: &Path,
        recording: Recording<'_>,
    ) {
        let generated = cosign(&["generate", "--allow-http-registry", image], password);
        let payload = super::write_file(dir, "payload.json", &generated);
        let signature = cosign(
            &[
                "sign-blob",
                "--yes",
                "--key",
                key,
                "--tlog-upload=false",
                &payload.display().to_string(),
            ],
            password,
        )
        .trim()
        .to_string();
        let signature_file = super::write_file(dir, "signature.b64", &signature);
        let other_payload = generated.replace("\"optional\":null", "\"optional\":{}");
        let recorded = Recorded {
            signature_b64: &signature,
            payload: match recording {
                Recording::AnotherPayload => other_payload.as_bytes(),
                _ => generated.as_bytes(),
            },
            public_key_pem: match recording {
                Recording::AnotherKey(pem) => pem,
                _ => public,
            },
        };
        let bundle = self.bundle_file(dir, "bundle.json", &recorded);
        cosign(
            &[
                "attach",
                "signature",
                "--allow-http-registry",
                "--payload",
                &payload.display().to_string(),
                "--signature",
                &signature_file.display().to_string(),
                "--rekor-response",
                &bundle.display().to_string(),
                image,
            ],
            password,
        );
    }
}

/// Runs cosign 2.5 in a clean environment; panics with its stderr when it fails.
fn cosign(args: &[&str], password: &str) -> String {
    let mut cmd = std::process::Command::new(super::tools::cosign());
    cmd.env_clear()
        .env("HOME", std::env::temp_dir())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("COSIGN_PASSWORD", password)
        .args(args);
    let out = super::run_with_timeout(cmd, std::time::Duration::from_secs(120));
    assert_eq!(out.code, 0, "cosign {}: {}", args[0], out.stderr);
    out.stdout
}

impl Default for TransparencyLog {
    fn default() -> Self {
        Self::new()
    }
}
