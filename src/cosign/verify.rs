//! Verifying cosign signatures with a key the caller names (never one taken from the artifact):
//! each layer's blob matches its digest (checked as it is read), the signature verifies over the
//! exact payload bytes, the payload parses strictly, names the `cosign container image
//! signature` type and the image's own digest, and, when asked, the expected repository and
//! annotations.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_util::{StreamExt, stream};

use super::payload::{self, Payload};
use super::rekor::{self, RekorKey};
use super::sigimage::{
    BUNDLE_ANNOTATION, Descriptor, MAX_PAYLOAD, SIGNATURE_ANNOTATION, SIMPLE_SIGNING, SigImage,
    decode_b64,
};
use crate::digest::Digest;
use crate::keys::PublicKey;
use crate::reference::ImageRef;
use crate::registry::Registry;

/// A signature layer and its payload as fetched (or why it could not be).
#[derive(Clone, Debug)]
pub struct FetchedSignature {
    pub layer: Descriptor,
    pub payload: Result<Bytes, String>,
}

/// Reads every simple-signing layer's payload (at most 128 KiB each, digest checked),
/// a few at a time. A layer that cannot be read is kept with the reason.
pub async fn fetch(registry: &Registry, image: &SigImage) -> Vec<FetchedSignature> {
    stream::iter(image.layers.iter().cloned())
        .map(|layer| async move {
            let payload = if layer.media_type != SIMPLE_SIGNING {
                Err(format!(
                    "is not a simple-signing layer (media type '{}')",
                    layer.media_type
                ))
            } else if layer.size < 0 || layer.size as u64 > MAX_PAYLOAD {
                Err(format!(
                    "declares a {}-byte payload; imagegate reads at most {MAX_PAYLOAD}",
                    layer.size
                ))
            } else {
                match Digest::parse(&layer.digest) {
                    Err(e) => Err(format!("has an invalid digest '{}': {e}", layer.digest)),
                    Ok(digest) => registry
                        .blob(
                            &image.reference,
                            &digest,
                            MAX_PAYLOAD,
                            "the signature payload",
                        )
                        .await
                        .map_err(|e| e.to_string()),
                }
            };
            FetchedSignature { layer, payload }
        })
        .buffered(8)
        .collect()
        .await
}

/// What a signature must say to count.
#[derive(Clone, Debug, Default)]
pub struct Claims {
    /// The image's resolved digest: the payload must name exactly this one.
    pub digest: Option<Digest>,
    /// `--identity REPO`: the payload's docker-reference must be this repository (a
    /// tag-qualified reference to it, as skopeo writes, is accepted).
    pub identity: Option<String>,
    /// `-a KEY=VALUE`: the payload's annotations must include each.
    pub annotations: BTreeMap<String, String>,
    /// `--rekor-public-key`: the layer must carry a Rekor bundle from this log that records
    /// this signature, payload and key (cosign's offline transparency-log check).
    pub rekor: Option<RekorKey>,
}

/// A signature that verified, with its parsed payload.
#[derive(Clone, Debug)]
pub struct Verified {
    /// Index of the layer in the `.sig` manifest.
    pub index: usize,
    pub payload: Payload,
    pub payload_bytes: Bytes,
}

/// The outcome of checking every signature with one key.
#[derive(Clone, Debug, Default)]
pub struct Check {
    pub verified: Vec<Verified>,
    /// Why each other signature did not count: (layer index, reason).
    pub failures: Vec<(usize, String)>,
}

/// Checks every fetched signature against `key` and `claims`.
pub fn check(signatures: &[FetchedSignature], key: &PublicKey, claims: &Claims) -> Check {
    let mut out = Check::default();
    for (index, sig) in signatures.iter().enumerate() {
        match check_one(sig, key, claims) {
            Ok((payload, payload_bytes)) => out.verified.push(Verified {
                index,
                payload,
                payload_bytes,
            }),
            Err(reason) => out.failures.push((index, reason)),
        }
    }
    out
}

fn check_one(
    sig: &FetchedSignature,
    key: &PublicKey,
    claims: &Claims,
) -> Result<(Payload, Bytes), String> {
    let bytes = sig.payload.clone().map_err(|e| format!("layer {e}"))?;
    let annotation = sig
        .layer
        .annotation(SIGNATURE_ANNOTATION)
        .ok_or("the layer has no signature annotation")?;
    let signature = decode_b64(annotation)
        .map_err(|_| "the signature annotation is not valid base64".to_string())?;
    if !key.verify(&bytes, &signature) {
        return Err(format!(
            "invalid signature when validating ASN.1 encoded signature: it does not verify with the {} key {} over the layer's payload",
            key.kind(),
            key.id()
        ));
    }
    let payload = payload::parse(&bytes).map_err(|e| e.to_string())?;
    if let Some(digest) = &claims.digest
        && payload.manifest_digest != digest.to_string()
    {
        return Err(format!(
            "the payload signs {}, not this image's {digest}",
            payload.manifest_digest
        ));
    }
    if let Some(identity) = &claims.identity
        && !identity_matches(&payload.docker_reference, identity)
    {
        return Err(format!(
            "the payload names '{}', not the expected identity '{identity}'",
            payload.docker_reference
        ));
    }
    for (k, v) in &claims.annotations {
        if payload.annotations.get(k) != Some(v) {
            return Err(format!("the payload lacks the annotation {k}={v}"));
        }
    }
    if let Some(rekor) = &claims.rekor {
        check_bundle(sig, annotation, &bytes, key, rekor)
            .map_err(|e| format!("error verifying bundle: {e}"))?;
    }
    Ok((payload, bytes))
}

/// cosign's `VerifyBundle` for a key-signed layer: the bundle's entry records this signature,
/// this payload's hash and `key`, and its SET verifies with `rekor`.
fn check_bundle(
    sig: &FetchedSignature,
    signature_b64: &str,
    payload: &[u8],
    key: &PublicKey,
    rekor: &RekorKey,
) -> Result<(), String> {
    let text = sig.layer.annotation(BUNDLE_ANNOTATION).ok_or(
        "the layer has no Rekor bundle, so its presence in the transparency log cannot be checked offline",
    )?;
    if sig
        .layer
        .annotation(super::sigimage::CERTIFICATE_ANNOTATION)
        .is_some()
    {
        return Err(
            "the signature carries a certificate, and cosign compares the log entry with the certificate, which imagegate does not do offline".into(),
        );
    }
    let parsed = rekor::parse(text)?;
    let entry = parsed.check_holds(signature_b64, payload)?;
    if &entry.key_id() != key.id() {
        return Err(format!(
            "comparing public key PEMs: the log entry records {}, not the {} key {}",
            entry.key_id(),
            key.kind(),
            key.id()
        ));
    }
    parsed.verify_set(rekor)
}

/// The payload's docker-reference is the expected repository, or a tagged reference to it.
fn identity_matches(docker_reference: &str, expected: &str) -> bool {
    if docker_reference == expected {
        return true;
    }
    match (ImageRef::parse(docker_reference), ImageRef::parse(expected)) {
        (Ok(found), Ok(wanted)) => {
            let same_repo =
                found.registry() == wanted.registry() && found.repository() == wanted.repository();
            let same_tag = wanted.tag().is_none() || wanted.tag() == found.tag();
            same_repo && same_tag && found.digest().is_none()
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::file::LocalKey;
    use crate::secret::Secret;

    fn key() -> LocalKey {
        let signer = sigstore::crypto::SigningScheme::ECDSA_P256_SHA256_ASN1
            .create_signer()
            .unwrap();
        let pem = signer
            .to_sigstore_keypair()
            .unwrap()
            .private_key_to_pem()
            .unwrap();
        LocalKey::from_pem(&pem, "test", |_| Ok(Secret::new(""))).unwrap()
    }

    fn signed(key: &LocalKey, payload: &[u8]) -> FetchedSignature {
        let sig = key.sign(payload).unwrap();
        FetchedSignature {
            layer: Descriptor {
                media_type: SIMPLE_SIGNING.into(),
                size: payload.len() as i64,
                digest: Digest::sha256_of(payload).to_string(),
                data: None,
                urls: None,
                annotations: Some(BTreeMap::from([(
                    SIGNATURE_ANNOTATION.to_string(),
                    crate::keys::file::base64(&sig),
                )])),
                platform: None,
                artifact_type: None,
            },
            payload: Ok(Bytes::copy_from_slice(payload)),
        }
    }

    fn claims(digest: &Digest) -> Claims {
        Claims {
            digest: Some(digest.clone()),
            ..Claims::default()
        }
    }

    #[test]
    fn a_good_signature_verifies_and_the_wrong_key_does_not() {
        let k = key();
        let d = Digest::sha256_of(b"image");
        let p = payload::build("r.io/app", &d, &BTreeMap::new());
        let result = check(&[signed(&k, &p)], k.public_key(), &claims(&d));
        assert_eq!(result.verified.len(), 1);
        let other = key();
        let result = check(&[signed(&k, &p)], other.public_key(), &claims(&d));
        assert!(result.verified.is_empty());
        assert!(
            result.failures[0].1.contains("invalid signature"),
            "{:?}",
            result.failures
        );
    }

    #[test]
    fn claims_are_enforced() {
        let k = key();
        let d = Digest::sha256_of(b"image");
        let other = Digest::sha256_of(b"other image");
        let annotated = payload::build(
            "r.io/app",
            &d,
            &BTreeMap::from([("env".to_string(), "prod".to_string())]),
        );
        let sigs = [signed(&k, &annotated)];

        let reason = &check(&sigs, k.public_key(), &claims(&other)).failures[0].1;
        assert!(reason.contains("not this image's"), "{reason}");

        let mut c = claims(&d);
        c.identity = Some("r.io/other".into());
        assert!(check(&sigs, k.public_key(), &c).verified.is_empty());
        c.identity = Some("r.io/app".into());
        assert_eq!(check(&sigs, k.public_key(), &c).verified.len(), 1);

        c.annotations.insert("env".into(), "dev".into());
        assert!(check(&sigs, k.public_key(), &c).verified.is_empty());
        c.annotations.insert("env".into(), "prod".into());
        assert_eq!(check(&sigs, k.public_key(), &c).verified.len(), 1);
    }

    #[test]
    fn a_signature_moved_to_another_payload_fails() {
        let k = key();
        let d = Digest::sha256_of(b"image");
        let p1 = payload::build("r.io/app", &d, &BTreeMap::new());
        let p2 = payload::build(
            "r.io/app",
            &d,
            &BTreeMap::from([("x".to_string(), "y".to_string())]),
        );
        let mut moved = signed(&k, &p1);
        moved.payload = Ok(Bytes::from(p2));
        assert!(
            check(&[moved], k.public_key(), &claims(&d))
                .verified
                .is_empty()
        );
    }

    #[test]
    fn garbage_and_odd_layers_are_failures_not_crashes() {
        let k = key();
        let d = Digest::sha256_of(b"image");
        let p = payload::build("r.io/app", &d, &BTreeMap::new());
        let mut garbage = signed(&k, &p);
        garbage.layer.annotations = Some(BTreeMap::from([(
            SIGNATURE_ANNOTATION.to_string(),
            "%%%not base64".to_string(),
        )]));
        let mut unsigned = signed(&k, &p);
        unsigned.layer.annotations = None;
        let mut unreadable = signed(&k, &p);
        unreadable.payload = Err("does not match its digest".into());
        let result = check(
            &[garbage, unsigned, unreadable],
            k.public_key(),
            &claims(&d),
        );
        assert!(result.verified.is_empty());
        let reasons: Vec<&str> = result.failures.iter().map(|(_, r)| r.as_str()).collect();
        assert!(reasons[0].contains("not valid base64"));
        assert!(reasons[1].contains("no signature annotation"));
        assert!(reasons[2].contains("does not match its digest"));
    }

    #[test]
    fn tagged_identities_as_skopeo_writes_them_are_accepted() {
        assert!(identity_matches("r.io/app:v1", "r.io/app"));
        assert!(identity_matches("r.io/app:v1", "r.io/app:v1"));
        assert!(!identity_matches("r.io/app:v2", "r.io/app:v1"));
        assert!(!identity_matches("r.io/other:v1", "r.io/app"));
    }
}
