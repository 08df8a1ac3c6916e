//! In-toto attestations stored as cosign stores them: the `sha256-<hex>.att` image, one layer per
//! attestation, each a DSSE envelope whose payload is an in-toto statement. An attestation
//! counts for a key when an envelope signature verifies over the DSSE pre-authentication
//! encoding with that key and the statement's subject is the image's digest.

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{StreamExt, stream};
use serde::Deserialize;

use super::sigimage::{Descriptor, SigImage};
use crate::digest::Digest;
use crate::keys::PublicKey;
use crate::registry::Registry;

pub const DSSE_MEDIA_TYPE: &str = "application/vnd.dsse.envelope.v1+json";
pub const IN_TOTO_PAYLOAD_TYPE: &str = "application/vnd.in-toto+json";
/// Attestation predicates (SBOMs, provenance, scan results) can be large; this bounds them.
pub const MAX_ATTESTATION: u64 = 16 * 1024 * 1024;

#[derive(Deserialize)]
struct Envelope {
    #[serde(rename = "payloadType")]
    payload_type: String,
    payload: String,
    #[serde(default)]
    signatures: Vec<EnvelopeSignature>,
}

#[derive(Deserialize)]
struct EnvelopeSignature {
    #[serde(default)]
    sig: String,
}

#[derive(Deserialize)]
struct Statement {
    #[serde(default)]
    subject: Vec<Subject>,
    #[serde(rename = "predicateType")]
    predicate_type: String,
    #[serde(default)]
    predicate: serde_json::Value,
}

#[derive(Deserialize)]
struct Subject {
    #[serde(default)]
    digest: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    annotations: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

/// One attestation layer as read: the envelope's signatures, PAE bytes and statement.
#[derive(Clone, Debug)]
pub struct FetchedAttestation {
    pub layer: Descriptor,
    pub content: Result<Opened, String>,
}

/// A readable envelope.
#[derive(Clone, Debug)]
pub struct Opened {
    /// The bytes the signatures are over.
    pae: Vec<u8>,
    signatures: Vec<Vec<u8>>,
    pub predicate_type: String,
    pub predicate: serde_json::Value,
    /// The statement names the image (one subject's sha256 is the image digest).
    pub names_image: bool,
    /// The annotations of the first subject that names the image (empty when it has none);
    /// `None` when no subject names it.
    pub subject_annotations: Option<std::collections::BTreeMap<String, serde_json::Value>>,
}

impl Opened {
    /// Whether any of the envelope's signatures verifies with `key`.
    pub fn verifies_with(&self, key: &PublicKey) -> bool {
        self.signatures.iter().any(|s| key.verify(&self.pae, s))
    }

    /// How many signatures the envelope holds.
    pub fn signature_count(&self) -> usize {
        self.signatures.len()
    }
}

/// DSSE's pre-authentication encoding: `DSSEv1 <len> <type> <len> <body>`.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// Reads every DSSE layer of the `.att` image (a few at a time).
pub async fn fetch(
    registry: &Registry,
    image: &SigImage,
    digest: &Digest,
) -> Vec<FetchedAttestation> {
    stream::iter(image.layers.iter().cloned())
        .map(|layer| async move {
            let content = match layer_bytes(registry, image, &layer).await {
                Ok(bytes) => open(&bytes, digest),
                Err(e) => Err(e),
            };
            FetchedAttestation { layer, content }
        })
        .buffered(8)
        .collect()
        .await
}

async fn layer_bytes(
    registry: &Registry,
    image: &SigImage,
    layer: &Descriptor,
) -> Result<Bytes, String> {
    if layer.media_type != DSSE_MEDIA_TYPE {
        return Err(format!(
            "is not a DSSE envelope (media type '{}')",
            layer.media_type
        ));
    }
    if layer.size < 0 || layer.size as u64 > MAX_ATTESTATION {
        return Err(format!(
            "declares {} bytes; imagegate reads at most {MAX_ATTESTATION}",
            layer.size
        ));
    }
    let digest = Digest::parse(&layer.digest).map_err(|e| format!("has a bad digest: {e}"))?;
    registry
        .blob(
            &image.reference,
            &digest,
            MAX_ATTESTATION,
            "the attestation",
        )
        .await
        .map_err(|e| e.to_string())
}

/// Opens an envelope: decodes the payload and signatures, parses the in-toto statement.
pub fn open(bytes: &[u8], digest: &Digest) -> Result<Opened, String> {
    let envelope: Envelope =
        serde_json::from_slice(bytes).map_err(|e| format!("is not a DSSE envelope: {e}"))?;
    if envelope.payload_type != IN_TOTO_PAYLOAD_TYPE {
        return Err(format!(
            "carries '{}', not an in-toto statement",
            envelope.payload_type
        ));
    }
    let b64 = base64::engine::general_purpose::STANDARD;
    let body = b64
        .decode(envelope.payload.trim())
        .map_err(|_| "has a payload that is not base64".to_string())?;
    let signatures = envelope
        .signatures
        .iter()
        .filter_map(|s| b64.decode(s.sig.trim()).ok())
        .collect();
    let statement: Statement =
        serde_json::from_slice(&body).map_err(|e| format!("holds no in-toto statement: {e}"))?;
    let subject = statement.subject.into_iter().find(|s| {
        s.digest
            .get(digest.algorithm().name())
            .is_some_and(|hex| hex == digest.hex())
    });
    let names_image = subject.is_some();
    let subject_annotations = subject.map(|s| s.annotations.unwrap_or_default());
    Ok(Opened {
        pae: pae(&envelope.payload_type, &body),
        signatures,
        predicate_type: statement.predicate_type,
        predicate: statement.predicate,
        names_image,
        subject_annotations,
    })
}

/// Predicate types match with or without their `https://` prefix (cosign writes both forms).
pub fn same_type(a: &str, b: &str) -> bool {
    let strip = |s: &str| {
        s.trim_start_matches("https://")
            .trim_start_matches("http://")
            .to_string()
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_is_the_dsse_encoding() {
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn opens_an_envelope_and_checks_the_subject() {
        let digest = Digest::sha256_of(b"image");
        let statement = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "subject": [{"name": "r/app", "digest": {"sha256": digest.hex()}}],
            "predicateType": "https://example.com/review/v1",
            "predicate": {"approved": true},
        });
        let b64 = base64::engine::general_purpose::STANDARD;
        let envelope = serde_json::json!({
            "payloadType": IN_TOTO_PAYLOAD_TYPE,
            "payload": b64.encode(serde_json::to_vec(&statement).unwrap()),
            "signatures": [{"keyid": "", "sig": b64.encode(b"not a real signature")}],
        });
        let opened = open(&serde_json::to_vec(&envelope).unwrap(), &digest).unwrap();
        assert!(opened.names_image);
        assert_eq!(opened.predicate["approved"], true);
        let other = open(
            &serde_json::to_vec(&envelope).unwrap(),
            &Digest::sha256_of(b"other"),
        )
        .unwrap();
        assert!(
            !other.names_image,
            "a statement about another image must not count"
        );
        assert!(open(b"{}", &digest).is_err());
        assert!(same_type(
            "https://cosign.sigstore.dev/attestation/vuln/v1",
            "cosign.sigstore.dev/attestation/vuln/v1"
        ));
    }
}
