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
/// A referrers index longer than this is refused (cosign caps signature layers so).
pub const MAX_REFERRERS: usize = 1000;
/// StackRox reads at most this many bundle referrers.
pub const STACKROX_MAX_REFERRERS: usize = 50;
/// One bundle's size cap (attestation bundles carry SBOMs; signature bundles are KiB).
pub const MAX_BUNDLE: u64 = MAX_ATTESTATION;
/// What all the bundles of one image may add up to; the rest are passed over.
pub const MAX_BUNDLES_TOTAL: u64 = 64 * 1024 * 1024;

/// Which referrers count as signature bundles, as each verifier looks for them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Discovery {
    /// cosign 3: every referrer whose manifest has exactly one bundle layer (v0.3 or later).
    Cosign,
    /// StackRox: only index entries whose `artifactType` is a bundle type, the first 50.
    StackRox,
}

/// One readable bundle.
#[derive(Clone, Debug)]
pub struct FetchedBundle {
    /// The digest of the referrer manifest that holds it.
    pub manifest: String,
    pub content: OpenedBundle,
}

/// A readable bundle: its envelope, and whether it carries transparency-log entries.
#[derive(Clone, Debug)]
pub struct OpenedBundle {
    pub envelope: Opened,
    pub tlog_entries: usize,
}

/// The bundles found, and the referrers passed over because they could not be read as one
/// (cosign skips those too).
#[derive(Clone, Debug, Default)]
pub struct Found {
    pub bundles: Vec<FetchedBundle>,
    /// (referrer manifest digest, why).
    pub skipped: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct ArtifactManifest {
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

/// The Sigstore bundles attached to `digest` in `repository`, found as `discovery` says.
pub async fn fetch(
    registry: &Registry,
    repository: &ImageRef,
    digest: &Digest,
    discovery: Discovery,
) -> Result<Found, Error> {
    let Some(raw) = registry.referrers(repository, digest).await? else {
        return Ok(Found::default());
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
    let entries: Vec<Descriptor> = match discovery {
        Discovery::Cosign => index.manifests,
        Discovery::StackRox => index
            .manifests
            .into_iter()
            .filter(|e| {
                e.artifact_type
                    .as_deref()
                    .is_some_and(|t| t.starts_with(BUNDLE_MEDIA_TYPE_PREFIX))
            })
            .take(STACKROX_MAX_REFERRERS)
            .collect(),
    };
    let budget = std::sync::atomic::AtomicU64::new(MAX_BUNDLES_TOTAL);
    let budget = &budget;
    let read: Vec<Option<Result<FetchedBundle, (String, String)>>> = stream::iter(entries)
        .map(|entry| async move {
            read_referrer(registry, repository, digest, &entry, budget)
                .await
                .map(|r| {
                    r.map(|content| FetchedBundle {
                        manifest: entry.digest.clone(),
                        content,
                    })
                    .map_err(|why| (entry.digest.clone(), why))
                })
        })
        .buffered(8)
        .collect()
        .await;
    let mut found = Found::default();
    for result in read.into_iter().flatten() {
        match result {
            Ok(bundle) => found.bundles.push(bundle),
            Err(skipped) => found.skipped.push(skipped),
        }
    }
    Ok(found)
}

/// A referrer's bundle; `None` when the referrer is some other artifact (not exactly one
/// bundle layer), `Err` when it is a bundle that cannot be read.
async fn read_referrer(
    registry: &Registry,
    repository: &ImageRef,
    digest: &Digest,
    entry: &Descriptor,
    budget: &std::sync::atomic::AtomicU64,
) -> Option<Result<OpenedBundle, String>> {
    let manifest = match registry.manifest(repository, &entry.digest).await {
        Ok(m) => m,
        Err(e) => return Some(Err(format!("its manifest cannot be read: {e}"))),
    };
    let manifest = serde_json::from_slice::<ArtifactManifest>(&manifest.bytes).ok()?;
    let [layer] = manifest.layers.as_slice() else {
        return None;
    };
    if !layer.media_type.starts_with(BUNDLE_MEDIA_TYPE_PREFIX) {
        return None;
    }
    if layer.size < 0 || layer.size as u64 > MAX_BUNDLE {
        return Some(Err(format!(
            "the bundle declares {} bytes; imagegate reads at most {MAX_BUNDLE}",
            layer.size
        )));
    }
    let size = layer.size as u64;
    let taken = budget.fetch_update(
        std::sync::atomic::Ordering::SeqCst,
        std::sync::atomic::Ordering::SeqCst,
        |left| left.checked_sub(size),
    );
    if taken.is_err() {
        return Some(Err(format!(
            "the image's bundles add up to more than {MAX_BUNDLES_TOTAL} bytes; this one was not read"
        )));
    }
    let digest_of_layer = match Digest::parse(&layer.digest) {
        Ok(d) => d,
        Err(e) => return Some(Err(format!("bad layer digest: {e}"))),
    };
    let bytes: Bytes = match registry
        .blob(
            repository,
            &digest_of_layer,
            MAX_BUNDLE,
            "the Sigstore bundle",
        )
        .await
    {
        Ok(b) => b,
        Err(e) => return Some(Err(e.to_string())),
    };
    Some(open(&bytes, digest))
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
    // cosign 3 reads bundles of version 0.3 and later.
    if bundle_version(&bundle.media_type).is_none_or(|v| v < (0, 3)) {
        return Err(format!(
            "bundle version too old ('{}'; cosign reads v0.3 and later)",
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
    let envelope = attestation::open(&envelope, digest)?;
    if envelope.signature_count() != 1 {
        return Err(format!(
            "its DSSE envelope holds {} signatures; a Sigstore bundle holds exactly one",
            envelope.signature_count()
        ));
    }
    Ok(OpenedBundle {
        envelope,
        tlog_entries: bundle
            .verification_material
            .map(|m| m.tlog_entries.len())
            .unwrap_or_default(),
    })
}

/// The version in a bundle media type: `…bundle.v0.3+json` or `…bundle+json;version=0.3`.
fn bundle_version(media_type: &str) -> Option<(u32, u32)> {
    let text = media_type
        .strip_prefix("application/vnd.dev.sigstore.bundle.v")
        .and_then(|rest| rest.strip_suffix("+json"))
        .or_else(|| media_type.split_once(";version=").map(|(_, v)| v))?;
    let (major, minor) = text.split_once('.')?;
    Some((major.parse().ok()?, minor.parse().ok()?))
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
    let opened = &bundle.content;
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
            content: open(bytes, digest).unwrap(),
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
    fn an_envelope_with_two_signatures_is_not_a_bundle() {
        let key = LocalKey::ephemeral().unwrap();
        let digest = Digest::sha256_of(b"image");
        let mut json: serde_json::Value =
            serde_json::from_slice(&bundle(&key, &digest, serde_json::json!({}))).unwrap();
        let first = json["dsseEnvelope"]["signatures"][0].clone();
        json["dsseEnvelope"]["signatures"] = serde_json::json!([first.clone(), first]);
        assert!(
            open(&serde_json::to_vec(&json).unwrap(), &digest)
                .unwrap_err()
                .contains("holds 2 signatures")
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
        assert_eq!(
            bundle_version("application/vnd.dev.sigstore.bundle.v0.3+json"),
            Some((0, 3))
        );
        assert_eq!(
            bundle_version("application/vnd.dev.sigstore.bundle+json;version=0.2"),
            Some((0, 2))
        );
        let old = serde_json::json!({
            "mediaType": "application/vnd.dev.sigstore.bundle+json;version=0.2",
            "dsseEnvelope": {},
        });
        assert!(
            open(&serde_json::to_vec(&old).unwrap(), &digest)
                .unwrap_err()
                .contains("too old")
        );
        let wrong_type = serde_json::json!({"mediaType": "application/json"});
        assert!(
            open(&serde_json::to_vec(&wrong_type).unwrap(), &digest)
                .unwrap_err()
                .contains("media type 'application/json'")
        );
    }
}
