//! Helpers shared by the Kyverno test files: keys, facts, loading and finding lookups.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use imagegate::digest::Digest;
use imagegate::facts::{
    FoundAttestation, FoundSignature, ImageFacts, KeyCheck, KeyId, SignatureFacts, TlogFacts,
};
use imagegate::policy::kyverno::{EvalContext, KyvernoSet, evaluate, load_str};
use imagegate::policy::{Finding, Outcome};
use imagegate::reference::ImageRef;

/// The key of Kyverno's verify-image sample.
pub const SAMPLE_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nXRh950IZbRj8Ra/N9sbqOPZrfM
5/KAQN0/KjHcorm/J5yctVd7iEcnessRQjU917hmKO6JWVGHpDguIyakZA==
-----END PUBLIC KEY-----
";
pub const KEY_B: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEAXBUNWUmpuKrzA3yg7zfTXRQhSX3
OGxIpbUmUkp27PH4YG33KSgIGYHjxxhZFRTtpdlL/YE5UGm2xNBT3ZhzaA==
-----END PUBLIC KEY-----
";
pub const KEY_C: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEt4phq+TqUZ3s3WnP+SqhmLAxBvJv
0gLaYgRraMQeC2t/tcfF634KTcJqKUVEoec6whUU1ZIZXf/BJC4+8cqniw==
-----END PUBLIC KEY-----
";
/// Stands in for a Rekor log's public key.
pub const REKOR_KEY: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEiAaCdH+m4+pQHC6ucerqNUBRGmcR
ZH60VE7xa986Oo4I9OEOyuD5rtj/JzErT3jB4YUFeK4r4dks9Ys9ghZ9Zw==
-----END PUBLIC KEY-----
";

pub const DIGEST: &str = "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7";

pub fn key(pem: &str) -> KeyId {
    KeyId::for_public_key_pem(pem).expect("test key parses")
}

/// Indents a PEM for a YAML block scalar at `spaces`.
pub fn indent(pem: &str, spaces: usize) -> String {
    let pad = " ".repeat(spaces);
    pem.lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One signature layer for the facts.
#[derive(Clone, Default)]
pub struct Sig {
    /// Keys that verify it.
    pub verified_by: Vec<KeyId>,
    /// `None`: no Rekor bundle; `Some(keys)`: a bundle, verified by these Rekor keys.
    pub bundle: Option<Vec<KeyId>>,
    pub annotations: Vec<(&'static str, &'static str)>,
    pub certificate: bool,
}

impl Sig {
    pub fn by(keys: &[&str]) -> Sig {
        Sig {
            verified_by: keys.iter().map(|k| key(k)).collect(),
            ..Sig::default()
        }
    }

    pub fn bundled(mut self, rekor: &[&str]) -> Sig {
        self.bundle = Some(rekor.iter().map(|k| key(k)).collect());
        self
    }

    pub fn annotated(mut self, pairs: &[(&'static str, &'static str)]) -> Sig {
        self.annotations = pairs.to_vec();
        self
    }
}

/// Signature facts: `sigs` found; every key in `checked` (and every key that verifies one)
/// was checked.
pub fn signatures(sigs: &[Sig], checked: &[&str]) -> SignatureFacts {
    let mut keys: Vec<KeyId> = checked.iter().map(|k| key(k)).collect();
    for s in sigs {
        for k in &s.verified_by {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    let found: Vec<FoundSignature> = sigs
        .iter()
        .map(|s| FoundSignature {
            docker_reference: "example/repo".into(),
            manifest_digest: DIGEST.into(),
            annotations: s
                .annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            tlog: s
                .bundle
                .as_ref()
                .map(|verified_by| tlog(&s.verified_by, verified_by)),
            has_certificate: s.certificate,
        })
        .collect();
    let mut checks = BTreeMap::new();
    for k in keys {
        let verified = sigs
            .iter()
            .enumerate()
            .filter(|(_, s)| s.verified_by.contains(&k))
            .map(|(i, _)| i)
            .collect();
        checks.insert(
            k,
            KeyCheck::Checked {
                verified,
                failures: Vec::new(),
            },
        );
    }
    SignatureFacts {
        found,
        checks,
        ..SignatureFacts::default()
    }
}

/// A bundle whose entry records the signing key(s) `signed_by`; of the test keys that could be
/// Rekor keys, those in `rekor` verify its SET and the others name another log.
fn tlog(signed_by: &[KeyId], rekor: &[KeyId]) -> TlogFacts {
    let set_checks = [SAMPLE_KEY, KEY_B, KEY_C, REKOR_KEY]
        .iter()
        .map(|pem| {
            let id = key(pem);
            let verdict = if rekor.contains(&id) {
                Ok(())
            } else {
                Err("verifying bundle: rekor log public key not found for payload".to_string())
            };
            (id, verdict)
        })
        .collect();
    TlogFacts {
        log_id: "test-log".into(),
        log_index: 1,
        integrated_time: 1_700_000_000,
        problem: None,
        unchecked: None,
        entry_key: signed_by.first().cloned(),
        entry_key_of: signed_by.to_vec(),
        set_checks,
    }
}

pub fn attestation(
    predicate_type: &str,
    predicate: serde_json::Value,
    keys: &[&str],
) -> FoundAttestation {
    FoundAttestation {
        predicate_type: predicate_type.into(),
        predicate,
        verified_by: keys.iter().map(|k| key(k)).collect(),
    }
}

/// Facts for `image` resolved to [`DIGEST`].
pub fn facts(image: &str, signatures: SignatureFacts) -> ImageFacts {
    ImageFacts {
        name: ImageRef::parse(image).expect("test image parses"),
        digest: Digest::parse(DIGEST).expect("digest parses"),
        platforms: Vec::new(),
        signatures,
        signatures_elsewhere: Default::default(),
        scan: None,
    }
}

pub fn load_yaml(yaml: &str) -> KyvernoSet {
    match load_str(Path::new("test.yaml"), yaml) {
        Ok(set) => set,
        Err(e) => panic!("policy should load: {e}"),
    }
}

/// Evaluates and returns the finding for `rule`.
pub fn judge(set: &KyvernoSet, facts: &ImageFacts, ctx: &EvalContext, rule: &str) -> Finding {
    let findings = evaluate(set, facts, ctx);
    findings
        .into_iter()
        .find(|f| f.rule.as_deref() == Some(rule))
        .unwrap_or_else(|| panic!("no finding for rule {rule}"))
}

pub fn outcome_kind(o: &Outcome) -> &'static str {
    match o {
        Outcome::Pass => "pass",
        Outcome::Violated => "violated",
        Outcome::NotEvaluated(_) => "not-evaluated",
        Outcome::Skipped(_) => "skipped",
    }
}

/// The shared fixtures, or `None` (with a loud message) when they are not there.
pub fn fixtures() -> Option<PathBuf> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/kyverno"
    ));
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!(
            "\n*** SKIPPED: Kyverno sample fixtures not found at {} — these tests did not run ***\n",
            dir.display()
        );
        None
    }
}
