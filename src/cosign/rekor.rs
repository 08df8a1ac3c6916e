//! Rekor bundles of `.sig` layers (`dev.sigstore.cosign/bundle`), checked offline the way
//! cosign's `VerifyBundle` checks them for key-signed images (which is what Kyverno and
//! policy-controller run): the log entry in the bundle must record this layer's signature, the
//! SHA-256 of this payload and the signing key, and the signed entry timestamp (SET) must verify
//! with a trusted Rekor key whose log ID the bundle names.
//!
//! The SET is Rekor's ECDSA signature over the SHA-256 of the RFC 8785 canonical JSON of
//! `{body, integratedTime, logID, logIndex}`; the log ID is the hex SHA-256 of the Rekor key's
//! DER SubjectPublicKeyInfo.

use base64::Engine as _;
use serde::Deserialize;
use sha2::Digest as _;

use crate::digest::Digest;
use crate::facts::KeyId;

/// A parsed bundle annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Bundle {
    /// The signed entry timestamp: Rekor's ASN.1 ECDSA signature.
    pub set: Vec<u8>,
    /// The log entry, base64 as Rekor returned it.
    pub body: String,
    pub integrated_time: i64,
    pub log_index: i64,
    /// Hex SHA-256 of the log's public key.
    pub log_id: String,
}

/// What the log entry records about the signature it holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// `hashedrekord` or `rekord`.
    pub kind: String,
    /// The signature, standard base64 (re-encoded from its bytes, as cosign compares it).
    pub signature_b64: String,
    /// The DER SubjectPublicKeyInfo of the key the entry records.
    pub public_key_der: Vec<u8>,
    pub hash_algorithm: String,
    pub hash_hex: String,
}

impl Entry {
    /// The id of the recorded key, comparable with [`crate::keys::PublicKey::id`].
    pub fn key_id(&self) -> KeyId {
        KeyId::PublicKey(Digest::sha256_of(&self.public_key_der).to_string())
    }
}

#[derive(Deserialize)]
struct RawBundle {
    #[serde(rename = "SignedEntryTimestamp")]
    set: String,
    #[serde(rename = "Payload")]
    payload: RawPayload,
}

#[derive(Deserialize)]
struct RawPayload {
    body: serde_json::Value,
    #[serde(rename = "integratedTime")]
    integrated_time: i64,
    #[serde(rename = "logIndex")]
    log_index: i64,
    #[serde(rename = "logID")]
    log_id: String,
}

fn b64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::STANDARD.decode(text)
}

/// Parses the annotation's JSON.
pub fn parse(annotation: &str) -> Result<Bundle, String> {
    let raw: RawBundle = serde_json::from_str(annotation)
        .map_err(|e| format!("the Rekor bundle is not the expected JSON: {e}"))?;
    let serde_json::Value::String(body) = raw.payload.body else {
        return Err("bundle payload body is not a string".into());
    };
    let set = b64(&raw.set)
        .map_err(|e| format!("the bundle's SignedEntryTimestamp is not base64: {e}"))?;
    Ok(Bundle {
        set,
        body,
        integrated_time: raw.payload.integrated_time,
        log_index: raw.payload.log_index,
        log_id: raw.payload.log_id,
    })
}

impl Bundle {
    /// The log entry the bundle carries (`hashedrekord` or `rekord`, version 0.0.1).
    pub fn entry(&self) -> Result<Entry, String> {
        let bytes = b64(&self.body).map_err(|e| format!("the bundle body is not base64: {e}"))?;
        let value: serde_json::Value = serde_json::from_slice(&bytes)
            .map_err(|e| format!("the bundle body is not a Rekor entry: {e}"))?;
        let text = |pointer: &str| {
            value
                .pointer(pointer)
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .ok_or_else(|| format!("the Rekor entry has no {}", pointer.replace('/', ".")))
        };
        let kind = text("/kind")?;
        let version = text("/apiVersion")?;
        if !matches!(kind.as_str(), "hashedrekord" | "rekord") || version != "0.0.1" {
            return Err(format!(
                "the Rekor entry is a {kind} {version} entry; a signature's bundle holds a hashedrekord or rekord 0.0.1 entry"
            ));
        }
        let signature = b64(&text("/spec/signature/content")?)
            .map_err(|e| format!("the Rekor entry's signature is not base64: {e}"))?;
        let key_pem = b64(&text("/spec/signature/publicKey/content")?)
            .map_err(|e| format!("the Rekor entry's public key is not base64: {e}"))?;
        let entry = Entry {
            kind,
            signature_b64: base64::engine::general_purpose::STANDARD.encode(&signature),
            public_key_der: single_pem_block(&key_pem)?,
            hash_algorithm: text("/spec/data/hash/algorithm")?,
            hash_hex: text("/spec/data/hash/value")?,
        };
        // Rekor's entry types validate themselves when read: the signature must verify over the
        // recorded hash with the recorded key (cosign fails here on a doctored entry).
        if entry.kind == "hashedrekord" {
            let digest = hex::decode(&entry.hash_hex)
                .map_err(|_| "the Rekor entry's hash is not hex".to_string())?;
            verify_prehashed(&entry.public_key_der, &digest, &signature).map_err(|why| {
                format!("failed to extract signature from bundle: verifying signature: {why}")
            })?;
        }
        Ok(entry)
    }

    /// cosign's first checks: the entry records `signature_b64` (the layer's annotation, as
    /// written) and the SHA-256 of `payload`. Returns the entry, whose key the caller compares
    /// with the key it verifies with.
    pub fn check_holds(&self, signature_b64: &str, payload: &[u8]) -> Result<Entry, String> {
        let entry = self.entry()?;
        if entry.signature_b64 != signature_b64 {
            return Err("signature in bundle does not match signature being verified".into());
        }
        let payload_hash = hex::encode(sha2::Sha256::digest(payload));
        if entry.hash_algorithm != "sha256" {
            return Err(format!(
                "unexpected algorithm: {:?} in the Rekor entry",
                entry.hash_algorithm
            ));
        }
        if entry.hash_hex != payload_hash {
            return Err(format!(
                "matching bundle to payload: bundle={:?}, payload={payload_hash:?}",
                entry.hash_hex
            ));
        }
        Ok(entry)
    }

    /// The bytes Rekor signed: canonical JSON (RFC 8785) of the payload. Keys sort as
    /// `body`, `integratedTime`, `logID`, `logIndex`; strings escape as serde_json escapes
    /// them, which RFC 8785 shares.
    pub fn signed_bytes(&self) -> Vec<u8> {
        let string = |s: &str| serde_json::Value::String(s.to_string()).to_string();
        format!(
            "{{\"body\":{},\"integratedTime\":{},\"logID\":{},\"logIndex\":{}}}",
            string(&self.body),
            self.integrated_time,
            string(&self.log_id),
            self.log_index
        )
        .into_bytes()
    }

    /// The log ID must be `rekor`'s and the SET its signature.
    pub fn verify_set(&self, rekor: &RekorKey) -> Result<(), String> {
        if self.log_id != rekor.log_id {
            return Err("verifying bundle: rekor log public key not found for payload".into());
        }
        let digest = sha2::Sha256::digest(self.signed_bytes());
        if rekor.verify_prehash(&digest, &self.set) {
            Ok(())
        } else {
            Err("unable to verify SET".into())
        }
    }
}

/// Whether `signature` is `key`'s signature over the already-hashed `digest`, as a
/// `hashedrekord` entry holds it (ECDSA in ASN.1, or RSA PKCS#1 v1.5 over SHA-256).
fn verify_prehashed(key: &[u8], digest: &[u8], signature: &[u8]) -> Result<(), String> {
    use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
    use p256::pkcs8::DecodePublicKey as _;
    const INVALID: &str = "invalid signature when validating ASN.1 encoded signature";
    let checked = if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(key) {
        p256::ecdsa::Signature::from_der(signature)
            .is_ok_and(|s| k.verify_prehash(digest, &s).is_ok())
    } else if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_der(key) {
        p384::ecdsa::Signature::from_der(signature)
            .is_ok_and(|s| k.verify_prehash(digest, &s).is_ok())
    } else if let Ok(k) = p521::PublicKey::from_public_key_der(key) {
        use p521::elliptic_curve::sec1::ToEncodedPoint as _;
        let point = k.to_encoded_point(false);
        p521::ecdsa::VerifyingKey::from_sec1_bytes(point.as_bytes()).is_ok_and(|k| {
            p521::ecdsa::Signature::from_der(signature)
                .is_ok_and(|s| k.verify_prehash(digest, &s).is_ok())
        })
    } else if let Ok(k) = rsa::RsaPublicKey::from_public_key_der(key) {
        let verifier = rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(k);
        rsa::pkcs1v15::Signature::try_from(signature)
            .is_ok_and(|s| verifier.verify_prehash(digest, &s).is_ok())
    } else {
        return Err("the entry's key is not an ECDSA or RSA public key".into());
    };
    if checked { Ok(()) } else { Err(INVALID.into()) }
}

/// The DER of the one PEM block in `text`; cosign refuses anything after it.
fn single_pem_block(text: &[u8]) -> Result<Vec<u8>, String> {
    let blocks = pem::parse_many(text)
        .map_err(|e| format!("the Rekor entry's public key is not PEM: {e}"))?;
    match blocks.as_slice() {
        [one] => Ok(one.contents().to_vec()),
        [] => Err("the Rekor entry's public key is not PEM".into()),
        _ => Err("the Rekor entry's public key holds more than one PEM block".into()),
    }
}

/// A transparency log's public key (a policy's `rekor.pubkey`). cosign accepts only ECDSA
/// keys, and verifies the SET over SHA-256 whatever the curve.
#[derive(Clone, Debug)]
pub struct RekorKey {
    log_id: String,
    verifier: RekorVerifier,
}

#[derive(Clone, Debug)]
enum RekorVerifier {
    P256(p256::ecdsa::VerifyingKey),
    P384(p384::ecdsa::VerifyingKey),
}

impl RekorKey {
    pub fn from_pem(pem_text: &str) -> Result<RekorKey, String> {
        let der = single_pem_block(pem_text.trim().as_bytes())
            .map_err(|_| "the Rekor public key is not one PEM block".to_string())?;
        Self::from_der(&der)
    }

    pub fn from_der(der: &[u8]) -> Result<RekorKey, String> {
        use p256::pkcs8::DecodePublicKey as _;
        let log_id = hex::encode(sha2::Sha256::digest(der));
        let verifier = if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_der(der) {
            RekorVerifier::P256(k)
        } else if let Ok(k) = p384::ecdsa::VerifyingKey::from_public_key_der(der) {
            RekorVerifier::P384(k)
        } else {
            // Transparency logs sign with P-256 (Sigstore's and rekor's default) or P-384.
            return Err(format!(
                "the Rekor public key (log ID {log_id}) is not an ECDSA P-256 or P-384 key; cosign accepts only ECDSA Rekor keys"
            ));
        };
        Ok(RekorKey { log_id, verifier })
    }

    /// Hex SHA-256 of the key's DER, as Rekor names its log.
    pub fn log_id(&self) -> &str {
        &self.log_id
    }

    fn verify_prehash(&self, digest: &[u8], der_signature: &[u8]) -> bool {
        use p256::ecdsa::signature::hazmat::PrehashVerifier as _;
        match &self.verifier {
            RekorVerifier::P256(k) => p256::ecdsa::Signature::from_der(der_signature)
                .is_ok_and(|s| k.verify_prehash(digest, &s).is_ok()),
            RekorVerifier::P384(k) => p384::ecdsa::Signature::from_der(der_signature)
                .is_ok_and(|s| k.verify_prehash(digest, &s).is_ok()),
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use p256::ecdsa::{Signature, SigningKey, signature::Signer as _};
    use p256::pkcs8::EncodePublicKey as _;

    /// A test log: signs entries as Rekor does.
    pub struct TestLog {
        key: SigningKey,
    }

    impl TestLog {
        pub fn new(seed: u8) -> TestLog {
            TestLog {
                key: SigningKey::from_bytes(&[seed; 32].into()).unwrap(),
            }
        }

        pub fn public_pem(&self) -> String {
            p256_pem(&self.key)
        }

        pub fn log_id(&self) -> String {
            let der = p256::PublicKey::from(self.key.verifying_key())
                .to_public_key_der()
                .unwrap();
            hex::encode(sha2::Sha256::digest(der.as_bytes()))
        }

        /// A bundle annotation for an entry recording `signature_b64`, `payload`'s hash and
        /// `key_pem`.
        pub fn bundle(&self, signature_b64: &str, payload: &[u8], key_pem: &str) -> String {
            let body = serde_json::json!({
                "apiVersion": "0.0.1",
                "kind": "hashedrekord",
                "spec": {
                    "data": {"hash": {"algorithm": "sha256", "value": hex::encode(sha2::Sha256::digest(payload))}},
                    "signature": {
                        "content": signature_b64,
                        "publicKey": {"content": base64::engine::general_purpose::STANDARD.encode(key_pem)},
                    },
                },
            });
            let bundle = Bundle {
                set: Vec::new(),
                body: base64::engine::general_purpose::STANDARD.encode(body.to_string()),
                integrated_time: 1_732_000_000,
                log_index: 42,
                log_id: self.log_id(),
            };
            self.sign(bundle)
        }

        /// Signs `bundle` (its SET replaced) and returns the annotation text.
        pub fn sign(&self, mut bundle: Bundle) -> String {
            let set: Signature = self.key.sign(&bundle.signed_bytes());
            bundle.set = set.to_der().as_bytes().to_vec();
            annotation(&bundle)
        }
    }

    pub fn annotation(bundle: &Bundle) -> String {
        serde_json::json!({
            "SignedEntryTimestamp": base64::engine::general_purpose::STANDARD.encode(&bundle.set),
            "Payload": {
                "body": bundle.body,
                "integratedTime": bundle.integrated_time,
                "logIndex": bundle.log_index,
                "logID": bundle.log_id,
            },
        })
        .to_string()
    }

    const PAYLOAD: &[u8] = b"{\"critical\":{}}";

    fn p256_pem(key: &SigningKey) -> String {
        let der = p256::PublicKey::from(key.verifying_key())
            .to_public_key_der()
            .unwrap();
        pem::encode(&pem::Pem::new("PUBLIC KEY", der.as_bytes()))
    }

    /// The signer's key (PEM) and its base64 signature over `payload`, as cosign makes them.
    fn signed(seed: u8, payload: &[u8]) -> (String, String) {
        let key = SigningKey::from_bytes(&[seed; 32].into()).unwrap();
        let signature: Signature = key.sign(payload);
        (
            p256_pem(&key),
            base64::engine::general_purpose::STANDARD.encode(signature.to_der().as_bytes()),
        )
    }

    #[test]
    fn a_bundle_made_by_the_log_verifies_and_holds_its_signature() {
        let log = TestLog::new(7);
        let (signer, sig) = signed(3, PAYLOAD);
        let bundle = parse(&log.bundle(&sig, PAYLOAD, &signer)).unwrap();
        let rekor = RekorKey::from_pem(&log.public_pem()).unwrap();
        assert_eq!(rekor.log_id(), log.log_id());
        bundle.verify_set(&rekor).unwrap();
        let entry = bundle.check_holds(&sig, PAYLOAD).unwrap();
        assert_eq!(entry.kind, "hashedrekord");
        assert_eq!(entry.key_id(), KeyId::for_public_key_pem(&signer).unwrap());
    }

    #[test]
    fn the_canonical_form_sorts_keys_as_rfc_8785() {
        let bundle = Bundle {
            set: Vec::new(),
            body: "Ym9keQ==".into(),
            integrated_time: 5,
            log_index: 6,
            log_id: "ab".into(),
        };
        assert_eq!(
            String::from_utf8(bundle.signed_bytes()).unwrap(),
            r#"{"body":"Ym9keQ==","integratedTime":5,"logID":"ab","logIndex":6}"#
        );
    }

    #[test]
    fn every_changed_field_breaks_the_set() {
        let log = TestLog::new(7);
        let rekor = RekorKey::from_pem(&log.public_pem()).unwrap();
        let (signer, sig) = signed(3, PAYLOAD);
        let good = parse(&log.bundle(&sig, PAYLOAD, &signer)).unwrap();
        let mut later = good.clone();
        later.integrated_time += 1;
        let mut other_index = good.clone();
        other_index.log_index += 1;
        let mut other_body = good.clone();
        other_body.body = base64::engine::general_purpose::STANDARD.encode("{}");
        for changed in [later, other_index, other_body] {
            assert_eq!(
                changed.verify_set(&rekor).unwrap_err(),
                "unable to verify SET"
            );
        }
        // Another log's key: its log ID is not the bundle's.
        let other = RekorKey::from_pem(&TestLog::new(9).public_pem()).unwrap();
        assert!(
            good.verify_set(&other)
                .unwrap_err()
                .contains("rekor log public key not found")
        );
    }

    #[test]
    fn an_entry_for_another_signature_or_payload_is_refused() {
        let log = TestLog::new(7);
        let (signer, sig) = signed(3, PAYLOAD);
        let bundle = parse(&log.bundle(&sig, PAYLOAD, &signer)).unwrap();
        let (_, other_sig) = signed(3, b"{}");
        assert!(
            bundle
                .check_holds(&other_sig, PAYLOAD)
                .unwrap_err()
                .contains("does not match signature")
        );
        // A layer whose signature is the entry's but whose payload is not (cosign checks the
        // hash after the signature).
        assert!(
            bundle
                .check_holds(&sig, b"{}")
                .unwrap_err()
                .contains("matching bundle to payload")
        );
    }

    #[test]
    fn a_doctored_entry_fails_its_own_validation() {
        let log = TestLog::new(7);
        let (signer, sig) = signed(3, PAYLOAD);
        let (stranger, _) = signed(4, PAYLOAD);
        // The entry claims another payload's hash, or another key, for this signature.
        for bundle in [
            log.bundle(&sig, b"{}", &signer),
            log.bundle(&sig, PAYLOAD, &stranger),
        ] {
            let err = parse(&bundle).unwrap().entry().unwrap_err();
            assert!(
                err.starts_with("failed to extract signature from bundle: verifying signature"),
                "{err}"
            );
        }
    }

    #[test]
    fn malformed_bundles_say_what_is_wrong() {
        assert!(
            parse("not json")
                .unwrap_err()
                .contains("not the expected JSON")
        );
        let numeric_body = r#"{"SignedEntryTimestamp":"","Payload":{"body":1,"integratedTime":1,"logIndex":1,"logID":"x"}}"#;
        assert!(parse(numeric_body).unwrap_err().contains("not a string"));
        let intoto = Bundle {
            set: Vec::new(),
            body: base64::engine::general_purpose::STANDARD
                .encode(r#"{"apiVersion":"0.0.2","kind":"intoto","spec":{}}"#),
            integrated_time: 1,
            log_index: 1,
            log_id: "x".into(),
        };
        assert!(intoto.entry().unwrap_err().contains("intoto 0.0.2 entry"));
        // A non-ECDSA Rekor key is refused as cosign refuses it.
        let ed25519 = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=\n-----END PUBLIC KEY-----\n";
        assert!(
            RekorKey::from_pem(ed25519)
                .unwrap_err()
                .contains("not an ECDSA P-256 or P-384 key")
        );
    }
}
