//! Sigstore bundles, as cosign 3 stores image signatures by default: one OCI artifact per
//! signature, attached to the image as a referrer (found through the OCI 1.1 referrers API or
//! the `sha256-<hex>` tag of the referrers tag schema), whose one layer is the bundle JSON. The
//! bundle's content is a DSSE envelope over an in-toto statement (predicate
//! `https://sigstore.dev/cosign/sign/v1` for `cosign sign`, others for `cosign attest`) whose
//! subject is the image digest; `cosign sign -a K=V` annotations go on that subject.
//!
//! `cosign verify` reads these first and falls back to the legacy `.sig` tag only when an image
//! has none; a bundle counts when its envelope verifies with the caller's key and a subject
//! names the image's digest with every required annotation.

use std::collections::BTreeMap;

use bytes::Bytes;
use futures_util::{StreamExt, stream};
use serde::Deserialize;

use super::attestation::{self, MAX_ATTESTATION, Opened};
use super::sigimage::Descriptor;
use super::verify::Claims;
use crate::digest::Digest;
use crate::error::Error;
use crate::keys::PublicKey;
use crate::reference::ImageRef;
use crate::registry::{Registry, RegistryError};

/// Every Sigstore bundle version's media type starts so (`…bundle.v0.3+json`).
pub const BUNDLE_MEDIA_TYPE_PREFIX: &str = "application/vnd.dev.sigstore.bundle";
/// The predicate `cosign sign` (v3) signs.
pub const SIGN_PREDICATE: &str = "https://sigstore.dev/cosign/sign/v1";
/// Referrers read at most, as cosign caps signature layers.
pub const MAX_REFERRERS: usize = 1000;

/// One bundle as read from the registry.
#[derive(Clone, Debug)]
pub struct FetchedBundle {
    /// The digest of the referrer manifest that holds it.
    pub manifest: String,
    pub content: Result<OpenedBundle, String>,
}

/// A readable bundle: its envelope, and whether it carries transparency-log entries.
#[derive(Clone, Debug)]
pub struct OpenedBundle {
    pub envelope: Opened,
    pub tlog_entries: usize,
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct ArtifactManifest {
    #[serde(rename = "artifactType", default)]
    artifact_type: Option<String>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct BundleJson {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    #[serde(rename = "verificationMaterial", default)]
    verification_material: Option<VerificationMaterial>,
    #[serde(rename = "dsseEnvelope")]
    dsse_envelope: Option<serde_json::Value>,
    #[serde(rename = "messageSignature")]
    message_signature: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct VerificationMaterial {
    #[serde(rename = "tlogEntries", default)]
    tlog_entries: Vec<serde_json::Value>,
}

/// The Sigstore bundles attached to `digest` in `repository` (the image's own, or
/// `COSIGN_REPOSITORY`). Referrers that are not bundles are passed over, as cosign passes
/// them over; a bundle that cannot be read is kept with the reason.
pub async fn fetch(
    registry: &Registry,
    repository: &ImageRef,
    digest: &Digest,
) -> Result<Vec<FetchedBundle>, Error> {
    let Some(raw) = registry.referrers(repository, digest).await? else {
        return Ok(Vec::new());
    };
    let index: Index = serde_json::from_slice(&raw.bytes).map_err(|e| {
        Error::Registry(RegistryError::BadContent {
            what: format!("the referrers of {digest}"),
            url: repository.to_string(),
            detail: format!("are not an OCI image index: {e}"),
        })
    })?;
    if index.manifests.len() > MAX_REFERRERS {
        return Err(Error::Registry(RegistryError::BadContent {
            what: format!("the referrers of {digest}"),
            url: repository.to_string(),
            detail: format!(
                "list {} manifests; imagegate reads at most {MAX_REFERRERS}",
                index.manifests.len()
            ),
        }));
    }
    let found: Vec<Option<FetchedBundle>> = stream::iter(index.manifests)
        .map(|entry| async move { read_referrer(registry, repository, digest, &entry).await })
        .buffered(8)
        .collect()
        .await;
    Ok(found.into_iter().flatten().collect())
}

/// A referrer's bundle, or `None` when the referrer is some other artifact.
async fn read_referrer(
    registry: &Registry,
    repository: &ImageRef,
    digest: &Digest,
    entry: &Descriptor,
) -> Option<FetchedBundle> {
    // The index entry's artifactType is only a hint (cosign's tag-schema index says
    // `application/vnd.oci.empty.v1+json` there); the manifest decides.
    if entry
        .artifact_type
        .as_deref()
        .is_some_and(|t| !t.starts_with(BUNDLE_MEDIA_TYPE_PREFIX) && !t.contains("empty"))
    {
        return None;
    }
    let fetched = |content| {
        Some(FetchedBundle {
            manifest: entry.digest.clone(),
            content,
        })
    };
    let manifest = match registry.manifest(repository, &entry.digest).await {
        Ok(m) => m,
        Err(e) => return fetched(Err(format!("its manifest cannot be read: {e}"))),
    };
    let Ok(manifest) = serde_json::from_slice::<ArtifactManifest>(&manifest.bytes) else {
        return None;
    };
    let is_bundle = |t: &str| t.starts_with(BUNDLE_MEDIA_TYPE_PREFIX);
    let typed = manifest.artifact_type.as_deref().is_some_and(is_bundle)
        || manifest
            .config
            .as_ref()
            .and_then(|c| c.artifact_type.as_deref())
            .is_some_and(is_bundle);
    let layer = manifest.layers.iter().find(|l| is_bundle(&l.media_type));
    match (typed, layer) {
        (_, Some(layer)) => fetched(match read_layer(registry, repository, layer).await {
            Ok(bytes) => open(&bytes, digest),
            Err(e) => Err(e),
        }),
        (true, None) => fetched(Err("the bundle artifact has no bundle layer".into())),
        (false, None) => None,
    }
}

async fn read_layer(
    registry: &Registry,
    repository: &ImageRef,
    layer: &Descriptor,
) -> Result<Bytes, String> {
    if layer.size < 0 || layer.size as u64 > MAX_ATTESTATION {
        return Err(format!(
            "the bundle declares {} bytes; imagegate reads at most {MAX_ATTESTATION}",
            layer.size
        ));
    }
    let digest = Digest::parse(&layer.digest).map_err(|e| format!("bad layer digest: {e}"))?;
    registry
        .blob(repository, &digest, MAX_ATTESTATION, "the Sigstore bundle")
        .await
        .map_err(|e| e.to_string())
}

/// Opens a bundle's JSON: its DSSE envelope (checked against `digest` as an attestation is).
pub fn open(bytes: &[u8], digest: &Digest) -> Result<OpenedBundle, String> {
    let bundle: BundleJson =
        serde_json::from_slice(bytes).map_err(|e| format!("is not a Sigstore bundle: {e}"))?;
    if !bundle.media_type.starts_with(BUNDLE_MEDIA_TYPE_PREFIX) {
        return Err(format!(
            "is not a Sigstore bundle (media type '{}')",
            bundle.media_type
        ));
    }
    let envelope = match (bundle.dsse_envelope, bundle.message_signature) {
        (Some(envelope), _) => envelope,
        (None, Some(_)) => {
            return Err(
                "holds a message signature, not the DSSE envelope cosign signs images with".into(),
            );
        }
        (None, None) => return Err("holds neither a DSSE envelope nor a signature".into()),
    };
    let envelope = serde_json::to_vec(&envelope).map_err(|e| e.to_string())?;
    Ok(OpenedBundle {
        envelope: attestation::open(&envelope, digest)?,
        tlog_entries: bundle
            .verification_material
            .map(|m| m.tlog_entries.len())
            .unwrap_or_default(),
    })
}

/// A bundle that verified, and the JSON `cosign verify` prints for it.
#[derive(Clone, Debug)]
pub struct VerifiedBundle {
    pub index: usize,
    pub printed: serde_json::Value,
}

#[derive(Clone, Debug, Default)]
pub struct Check {
    pub verified: Vec<VerifiedBundle>,
    /// Why each other bundle did not count: (index, reason).
    pub failures: Vec<(usize, String)>,
}

/// Checks every bundle against `key` and `claims`, as cosign 3 does for `verify --key`.
pub fn check(
    bundles: &[FetchedBundle],
    key: &PublicKey,
    claims: &Claims,
    repository: &ImageRef,
) -> Check {
    let mut out = Check::default();
    for (index, bundle) in bundles.iter().enumerate() {
        match check_one(bundle, key, claims, repository) {
            Ok(printed) => out.verified.push(VerifiedBundle { index, printed }),
            Err(reason) => out.failures.push((index, reason)),
        }
    }
    out
}

fn check_one(
    bundle: &FetchedBundle,
    key: &PublicKey,
    claims: &Claims,
    repository: &ImageRef,
) -> Result<serde_json::Value, String> {
    let opened = bundle.content.as_ref().map_err(Clone::clone)?;
    let envelope = &opened.envelope;
    if !envelope.verifies_with(key) {
        return Err(format!(
            "invalid signature: the DSSE envelope does not verify with the {} key {}",
            key.kind(),
            key.id()
        ));
    }
    let Some(digest) = &claims.digest else {
        return Err("no image digest to check the statement's subject against".into());
    };
    let Some(annotations) = &envelope.subject_annotations else {
        return Err("no matching subject digest found".into());
    };
    for (k, v) in &claims.annotations {
        if annotations.get(k).and_then(|a| a.as_str()) != Some(v.as_str()) {
            return Err("missing or incorrect annotation".into());
        }
    }
    if claims.identity.is_some() {
        return Err(
            "a Sigstore bundle names no repository, so --identity cannot be checked against it"
                .into(),
        );
    }
    if claims.rekor.is_some() {
        return Err(if opened.tlog_entries == 0 {
            "the bundle holds no transparency-log entry".to_string()
        } else {
            "checking a Sigstore bundle's transparency-log entry offline is not supported; --rekor-public-key checks legacy .sig bundles".to_string()
        });
    }
    // What cosign 3 prints for a verified bundle: a simple-signing-shaped claim.
    let optional: BTreeMap<&String, &serde_json::Value> = annotations.iter().collect();
    Ok(serde_json::json!({
        "critical": {
            "identity": {"docker-reference": repository.pinned(digest)},
            "image": {"docker-manifest-digest": digest.to_string()},
            "type": envelope.predicate_type,
        },
        "optional": optional,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::file::LocalKey;
    use base64::Engine as _;

    /// A bundle as cosign 3 writes for `cosign sign --key`: a DSSE envelope over the sign/v1
    /// statement, signed over the DSSE pre-authentication encoding.
    fn bundle(key: &LocalKey, digest: &Digest, annotations: serde_json::Value) -> Vec<u8> {
        let statement = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v1",
            "subject": [{"digest": {"sha256": digest.hex()}, "annotations": annotations}],
            "predicateType": SIGN_PREDICATE,
            "predicate": {},
        });
        let body = serde_json::to_vec(&statement).unwrap();
        let signature = key
            .sign(&attestation::pae(attestation::IN_TOTO_PAYLOAD_TYPE, &body))
            .unwrap();
        let b64 = base64::engine::general_purpose::STANDARD;
        serde_json::to_vec(&serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "verificationMaterial": {"publicKey": {"hint": "x"}},
            "dsseEnvelope": {
                "payload": b64.encode(&body),
                "payloadType": attestation::IN_TOTO_PAYLOAD_TYPE,
                "signatures": [{"sig": b64.encode(signature)}],
            },
        }))
        .unwrap()
    }

    fn fetched(bytes: &[u8], digest: &Digest) -> FetchedBundle {
        FetchedBundle {
            manifest: "sha256:00".into(),
            content: open(bytes, digest),
        }
    }

    fn claims(digest: &Digest) -> Claims {
        Claims {
            digest: Some(digest.clone()),
            ..Claims::default()
        }
    }

    #[test]
    fn a_bundle_verifies_with_its_key_for_its_image_only() {
        let key = LocalKey::ephemeral().unwrap();
        let other = LocalKey::ephemeral().unwrap();
        let digest = Digest::sha256_of(b"image");
        let image = ImageRef::parse("registry.example/app").unwrap();
        let bundles = [fetched(
            &bundle(&key, &digest, serde_json::json!({"team": "web"})),
            &digest,
        )];

        let good = check(&bundles, key.public_key(), &claims(&digest), &image);
        assert_eq!(good.verified.len(), 1, "{:?}", good.failures);
        let printed = &good.verified[0].printed;
        assert_eq!(printed["critical"]["type"], SIGN_PREDICATE);
        assert_eq!(printed["optional"]["team"], "web");

        let wrong_key = check(&bundles, other.public_key(), &claims(&digest), &image);
        assert!(wrong_key.failures[0].1.starts_with("invalid signature"));

        let elsewhere = Digest::sha256_of(b"another image");
        let other_image = [fetched(
            &bundle(&key, &digest, serde_json::json!({})),
            &elsewhere,
        )];
        let wrong_image = check(&other_image, key.public_key(), &claims(&elsewhere), &image);
        assert_eq!(
            wrong_image.failures[0].1,
            "no matching subject digest found"
        );

        let mut annotated = claims(&digest);
        annotated
            .annotations
            .insert("team".into(), "database".into());
        let wrong_annotation = check(&bundles, key.public_key(), &annotated, &image);
        assert_eq!(
            wrong_annotation.failures[0].1,
            "missing or incorrect annotation"
        );
    }

    #[test]
    fn what_is_not_a_signed_envelope_is_refused_with_a_reason() {
        let digest = Digest::sha256_of(b"image");
        assert!(
            open(b"[]", &digest)
                .unwrap_err()
                .contains("not a Sigstore bundle")
        );
        let message = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.bundle.v0.3+json",
            "messageSignature": {"signature": "AA=="},
        });
        assert!(
            open(&serde_json::to_vec(&message).unwrap(), &digest)
                .unwrap_err()
                .contains("message signature")
        );
        let wrong_type = serde_json::json!({"mediaType": "application/json"});
        assert!(
            open(&serde_json::to_vec(&wrong_type).unwrap(), &digest)
                .unwrap_err()
                .contains("media type 'application/json'")
        );
    }
}
