//! The `.sig` image cosign stores next to an image: tag `sha256-<hex>.sig` in the image's
//! repository (or `$COSIGN_REPOSITORY`), an OCI manifest with one simple-signing layer per
//! signature, and a config written as go-containerregistry's `mutate.Append` writes it.
//!
//! Signatures are appended, never overwritten: the existing manifest is read, a duplicate is
//! skipped, the new layer is added after every existing one, and the result is read back to
//! confirm it.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::Error;
use crate::keys::{Environment, PublicKey};
use crate::oci::{self, CONFIG_LIMIT, DOCKER_CONFIG, DOCKER_MANIFEST, OCI_CONFIG, OCI_MANIFEST};
use crate::reference::{DOCKER_HUB, ImageRef};
use crate::registry::{Registry, RegistryError};

pub const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
pub const BUNDLE_ANNOTATION: &str = "dev.sigstore.cosign/bundle";
pub const CERTIFICATE_ANNOTATION: &str = "dev.sigstore.cosign/certificate";
/// cosign refuses `.sig` images with more layers than this (GHSA-95pr-fxf5-86gv).
pub const MAX_LAYERS: usize = 1000;
/// The largest signature payload read (a payload is a few hundred bytes).
pub const MAX_PAYLOAD: u64 = 128 * 1024;
/// go-containerregistry's zero time, which cosign writes as every `created`.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// The repository name cosign writes as `docker-reference`: go-containerregistry spells
/// Docker Hub `index.docker.io`.
pub fn docker_reference(image: &ImageRef) -> String {
    let registry = if image.registry() == DOCKER_HUB {
        "index.docker.io"
    } else {
        image.registry()
    };
    format!("{registry}/{}", image.repository())
}

/// Where the signatures of `image` (at `digest`) live: `sha256-<hex>.sig` in the image's own
/// repository, or in `$COSIGN_REPOSITORY` when that is set.
pub fn signature_ref(
    image: &ImageRef,
    digest: &Digest,
    env: &Environment,
) -> Result<ImageRef, Error> {
    let tag = digest.tag_with_suffix("sig");
    match env.non_empty("COSIGN_REPOSITORY") {
        None => Ok(image.with_tag(&tag)),
        Some(repo) => {
            let parsed = ImageRef::parse(repo).map_err(|e| {
                Error::Usage(format!(
                    "COSIGN_REPOSITORY is not a repository: {}",
                    e.reason
                ))
            })?;
            if parsed.tag().is_some() || parsed.digest().is_some() {
                return Err(Error::Usage(format!(
                    "COSIGN_REPOSITORY '{repo}' names a tag or digest; it must be a repository (REGISTRY/REPO)"
                )));
            }
            Ok(parsed
                .with_repository(parsed.registry(), parsed.repository())
                .with_tag(&tag))
        }
    }
}

/// A layer descriptor, with the fields in go-containerregistry's order so that a rewritten
/// manifest reads like one cosign writes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Descriptor {
    #[serde(rename = "mediaType")]
    pub media_type: String,
    pub size: i64,
    pub digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub urls: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<serde_json::Value>,
    #[serde(
        rename = "artifactType",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    #[serde(rename = "schemaVersion")]
    schema_version: i64,
    #[serde(rename = "mediaType", default, skip_serializing_if = "Option::is_none")]
    media_type: Option<String>,
    config: Descriptor,
    #[serde(default)]
    layers: Vec<Descriptor>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
}

/// go-containerregistry's `v1.ConfigFile`, as much of it as a signature image has, in its field
/// order and with its `omitempty` rules.
#[derive(Debug, Serialize, Deserialize)]
struct Config {
    #[serde(default)]
    architecture: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    author: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    container: String,
    #[serde(default = "zero_time")]
    created: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    docker_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    history: Vec<History>,
    #[serde(default)]
    os: String,
    rootfs: RootFs,
    #[serde(default = "empty_object")]
    config: serde_json::Value,
    #[serde(
        rename = "os.version",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    os_version: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    variant: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct History {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    author: String,
    #[serde(default = "zero_time")]
    created: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    created_by: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    comment: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    empty_layer: bool,
}

#[derive(Debug, Serialize, Deserialize)]
struct RootFs {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    diff_ids: Vec<String>,
}

fn zero_time() -> String {
    ZERO_TIME.to_string()
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(Default::default())
}

impl Config {
    fn empty() -> Config {
        Config {
            architecture: String::new(),
            author: String::new(),
            container: String::new(),
            created: zero_time(),
            docker_version: String::new(),
            history: Vec::new(),
            os: String::new(),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: Vec::new(),
            },
            config: empty_object(),
            os_version: String::new(),
            variant: String::new(),
        }
    }

    /// Adds a layer as `mutate.Append` does: its (uncompressed) digest and a bare history entry.
    fn append(&mut self, diff_id: &Digest) {
        self.rootfs.diff_ids.push(diff_id.to_string());
        self.history.push(History {
            author: String::new(),
            created: zero_time(),
            created_by: String::new(),
            comment: String::new(),
            empty_layer: false,
        });
    }
}

/// The `.sig` image as read from the registry.
#[derive(Clone, Debug)]
pub struct SigImage {
    pub reference: ImageRef,
    pub manifest_digest: Digest,
    pub media_type: String,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

fn bad_content(what: String, url: String, detail: String) -> Error {
    Error::Registry(RegistryError::BadContent { what, url, detail })
}

/// Reads the `.sig` image at `sig_ref`; `None` when there is none yet.
pub async fn read(registry: &Registry, sig_ref: &ImageRef) -> Result<Option<SigImage>, Error> {
    let reference = sig_ref.manifest_reference();
    let Some(raw) = registry.manifest_if_exists(sig_ref, &reference).await? else {
        return Ok(None);
    };
    let manifest: Manifest = serde_json::from_slice(&raw.bytes).map_err(|e| {
        bad_content(
            format!("the signature manifest {sig_ref}"),
            sig_ref.to_string(),
            format!("is not an image manifest: {e}"),
        )
    })?;
    if manifest.layers.len() > MAX_LAYERS {
        return Err(bad_content(
            format!("the signature manifest {sig_ref}"),
            sig_ref.to_string(),
            format!(
                "has {} layers; imagegate, like cosign, reads at most {MAX_LAYERS} and refuses the rest",
                manifest.layers.len()
            ),
        ));
    }
    let media_type = manifest
        .media_type
        .clone()
        .unwrap_or_else(|| raw.media_type.clone());
    Ok(Some(SigImage {
        reference: sig_ref.clone(),
        manifest_digest: raw.digest,
        media_type,
        config: manifest.config,
        layers: manifest.layers,
    }))
}

/// A signature to store.
pub struct NewSignature<'a> {
    pub payload: &'a [u8],
    /// Base64 of the signature bytes, as the annotation holds it.
    pub signature_b64: &'a str,
}

/// What [`append`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// The signature was added; the `.sig` manifest now has `layers` layers.
    Added {
        manifest_digest: Digest,
        layers: usize,
    },
    /// An equal payload signed by the same key is already there (as cosign, nothing is pushed).
    AlreadySigned { layer: usize },
}

/// Adds `new` to the `.sig` image at `sig_ref`, keeping every signature already there.
pub async fn append(
    registry: &Registry,
    sig_ref: &ImageRef,
    new: &NewSignature<'_>,
    key: &PublicKey,
    env: &Environment,
) -> Result<Appended, Error> {
    let payload_digest = Digest::sha256_of(new.payload);
    // Another signer may write between our read and our write; try again when the read-back
    // does not show our layer.
    for _ in 0..3 {
        let existing = read(registry, sig_ref).await?;
        if let Some(existing) = &existing
            && let Some(layer) = duplicate(existing, &payload_digest, new.payload, key)
        {
            return Ok(Appended::AlreadySigned { layer });
        }
        let (manifest_type, config_type, mut config, mut layers) = match &existing {
            Some(e) => {
                let config = match existing_config(registry, e).await? {
                    Some(c) => c,
                    None => rebuilt_config(&e.layers),
                };
                let config_type = if e.config.media_type.is_empty() {
                    OCI_CONFIG.to_string()
                } else {
                    e.config.media_type.clone()
                };
                (e.media_type.clone(), config_type, config, e.layers.clone())
            }
            None if env
                .non_empty("COSIGN_DOCKER_MEDIA_TYPES")
                .is_some_and(|v| v == "1") =>
            {
                (
                    DOCKER_MANIFEST.to_string(),
                    DOCKER_CONFIG.to_string(),
                    Config::empty(),
                    Vec::new(),
                )
            }
            None => (
                OCI_MANIFEST.to_string(),
                OCI_CONFIG.to_string(),
                Config::empty(),
                Vec::new(),
            ),
        };
        config.append(&payload_digest);
        let layer = Descriptor {
            media_type: SIMPLE_SIGNING.into(),
            size: new.payload.len() as i64,
            digest: payload_digest.to_string(),
            data: None,
            urls: None,
            annotations: Some(BTreeMap::from([(
                SIGNATURE_ANNOTATION.to_string(),
                new.signature_b64.to_string(),
            )])),
            platform: None,
            artifact_type: None,
        };
        layers.push(layer.clone());
        if layers.len() > MAX_LAYERS {
            return Err(Error::Usage(format!(
                "{sig_ref} already holds {} signatures; another would pass the {MAX_LAYERS} cosign reads",
                layers.len() - 1
            )));
        }
        let config_bytes = Bytes::from(serde_json::to_vec(&config).map_err(internal)?);
        registry
            .push_blob(sig_ref, Bytes::copy_from_slice(new.payload))
            .await?;
        let config_digest = registry.push_blob(sig_ref, config_bytes.clone()).await?;
        let manifest = Manifest {
            schema_version: 2,
            media_type: Some(manifest_type.clone()),
            config: Descriptor {
                media_type: config_type,
                size: config_bytes.len() as i64,
                digest: config_digest.to_string(),
                data: None,
                urls: None,
                annotations: None,
                platform: None,
                artifact_type: None,
            },
            layers: layers.clone(),
            annotations: None,
        };
        let manifest_bytes = Bytes::from(serde_json::to_vec(&manifest).map_err(internal)?);
        let tag = sig_ref.manifest_reference();
        registry
            .push_manifest(sig_ref, &tag, manifest_bytes, &manifest_type)
            .await?;

        // Read back: our layer and every layer that was there before must be present.
        if let Some(now) = read(registry, sig_ref).await?
            && now.layers.contains(&layer)
            && layers.iter().all(|l| now.layers.contains(l))
        {
            return Ok(Appended::Added {
                manifest_digest: now.manifest_digest,
                layers: now.layers.len(),
            });
        }
        tracing::warn!("{sig_ref} changed while signing (another signer?); appending again");
    }
    Err(Error::Registry(RegistryError::BadContent {
        what: format!("the signature manifest {sig_ref}"),
        url: sig_ref.to_string(),
        detail: "kept changing under concurrent writes; the signature could not be confirmed after 3 tries".into(),
    }))
}

/// A layer equal to the new one: same media type and payload, no other annotations, and a
/// signature that verifies with `key` (cosign's duplicate detector).
fn duplicate(
    existing: &SigImage,
    payload_digest: &Digest,
    payload: &[u8],
    key: &PublicKey,
) -> Option<usize> {
    existing.layers.iter().position(|l| {
        l.media_type == SIMPLE_SIGNING
            && l.digest == payload_digest.to_string()
            && l.annotations
                .as_ref()
                .is_some_and(|a| a.keys().all(|k| k == SIGNATURE_ANNOTATION))
            && l.annotation(SIGNATURE_ANNOTATION)
                .and_then(|s| decode_b64(s).ok())
                .is_some_and(|sig| key.verify(payload, &sig))
    })
}

/// The existing image's config, when it can be read as a config; `None` when it cannot (then
/// a config is rebuilt from the layers, which verifiers never read).
async fn existing_config(
    registry: &Registry,
    existing: &SigImage,
) -> Result<Option<Config>, Error> {
    let Ok(digest) = Digest::parse(&existing.config.digest) else {
        return Ok(None);
    };
    let bytes = registry
        .blob(
            &existing.reference,
            &digest,
            CONFIG_LIMIT,
            "the signature image config",
        )
        .await?;
    Ok(serde_json::from_slice::<Config>(&bytes)
        .ok()
        .filter(|c| c.rootfs.diff_ids.len() == existing.layers.len()))
}

fn rebuilt_config(layers: &[Descriptor]) -> Config {
    let mut config = Config::empty();
    for layer in layers {
        if let Ok(d) = Digest::parse(&layer.digest) {
            config.append(&d);
        }
    }
    config
}

fn internal(e: serde_json::Error) -> Error {
    Error::Usage(format!("internal error while writing JSON: {e}"))
}

/// Standard base64, as Go writes it; refuses anything else.
pub fn decode_b64(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(text.trim())
}

/// Whether a manifest type is one imagegate can append to.
pub fn is_image_manifest(media_type: &str) -> bool {
    media_type == oci::OCI_MANIFEST || media_type == oci::DOCKER_MANIFEST
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_are_written_as_cosign_writes_them() {
        // Read back from a registry after `cosign sign` twice (cosign 2.5).
        let mut config = Config::empty();
        config.append(
            &Digest::parse(
                "sha256:6960a941ebde61d82e85410786375b3282bbc781330666cbb1da0a1b6054f056",
            )
            .unwrap(),
        );
        assert_eq!(
            String::from_utf8(serde_json::to_vec(&config).unwrap()).unwrap(),
            r#"{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["sha256:6960a941ebde61d82e85410786375b3282bbc781330666cbb1da0a1b6054f056"]},"config":{}}"#
        );
        config.append(
            &Digest::parse(
                "sha256:a645d8f25ac21b33fa549a6a728a7a3a72a5a95563a0fce6869710ef114144ac",
            )
            .unwrap(),
        );
        assert_eq!(
            String::from_utf8(serde_json::to_vec(&config).unwrap()).unwrap(),
            r#"{"architecture":"","created":"0001-01-01T00:00:00Z","history":[{"created":"0001-01-01T00:00:00Z"},{"created":"0001-01-01T00:00:00Z"}],"os":"","rootfs":{"type":"layers","diff_ids":["sha256:6960a941ebde61d82e85410786375b3282bbc781330666cbb1da0a1b6054f056","sha256:a645d8f25ac21b33fa549a6a728a7a3a72a5a95563a0fce6869710ef114144ac"]},"config":{}}"#
        );
        // And round-trips through a parse (cosign re-marshals the config it read).
        let text = serde_json::to_string(&config).unwrap();
        let again: Config = serde_json::from_str(&text).unwrap();
        assert_eq!(serde_json::to_string(&again).unwrap(), text);
    }

    #[test]
    fn manifests_use_go_containerregistry_field_order() {
        let m = Manifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.into()),
            config: Descriptor {
                media_type: OCI_CONFIG.into(),
                size: 233,
                digest: "sha256:760b".into(),
                data: None,
                urls: None,
                annotations: None,
                platform: None,
                artifact_type: None,
            },
            layers: vec![Descriptor {
                media_type: SIMPLE_SIGNING.into(),
                size: 237,
                digest: "sha256:6960".into(),
                data: None,
                urls: None,
                annotations: Some(BTreeMap::from([(
                    SIGNATURE_ANNOTATION.into(),
                    "MEU=".into(),
                )])),
                platform: None,
                artifact_type: None,
            }],
            annotations: None,
        };
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","size":233,"digest":"sha256:760b"},"layers":[{"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json","size":237,"digest":"sha256:6960","annotations":{"dev.cosignproject.cosign/signature":"MEU="}}]}"#
        );
    }

    #[test]
    fn docker_hub_is_spelled_as_go_containerregistry_spells_it() {
        assert_eq!(
            docker_reference(&ImageRef::parse("nginx:1").unwrap()),
            "index.docker.io/library/nginx"
        );
        assert_eq!(
            docker_reference(&ImageRef::parse("127.0.0.1:5000/a/b:v").unwrap()),
            "127.0.0.1:5000/a/b"
        );
    }

    #[test]
    fn signatures_go_to_cosign_repository_when_set() {
        let image = ImageRef::parse("127.0.0.1:5000/app:v1").unwrap();
        let d = Digest::sha256_of(b"x");
        let plain = signature_ref(&image, &d, &Environment::default()).unwrap();
        assert_eq!(
            plain.to_string(),
            format!("127.0.0.1:5000/app:{}", d.tag_with_suffix("sig"))
        );
        let env = Environment::from_vars([("COSIGN_REPOSITORY", "127.0.0.1:5000/signatures")]);
        let moved = signature_ref(&image, &d, &env).unwrap();
        assert_eq!(
            moved.to_string(),
            format!("127.0.0.1:5000/signatures:{}", d.tag_with_suffix("sig"))
        );
        let bad = Environment::from_vars([("COSIGN_REPOSITORY", "127.0.0.1:5000/sigs:v1")]);
        assert!(signature_ref(&image, &d, &bad).is_err());
    }
}
