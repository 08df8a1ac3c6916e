//! OCI and Docker v2 manifests and indexes: media types, parsing, platform selection.
//! The typed structs are oci-client's; this module decides which one a body is and says
//! clearly when it is neither.

pub mod platform;

pub use oci_client::manifest::{ImageIndexEntry, OciDescriptor, OciImageIndex, OciImageManifest};
pub use platform::{Platform, PlatformError};

use crate::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// The Accept header for manifests: OCI types always, Docker v2 types too (a registry answers a
/// GET for an OCI manifest with 404 when only Docker types are accepted).
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Largest manifest or index imagegate reads.
pub const MANIFEST_LIMIT: u64 = 4 * 1024 * 1024;
/// Largest image config imagegate reads.
pub const CONFIG_LIMIT: u64 = 8 * 1024 * 1024;

/// A manifest body as fetched, with its digest (computed from the bytes, never trusted from a
/// header) and its media type.
#[derive(Clone, Debug)]
pub struct RawManifest {
    pub digest: Digest,
    pub media_type: String,
    pub bytes: bytes::Bytes,
}

/// A parsed manifest: one image, or an index of images.
#[derive(Clone, Debug)]
pub enum Manifest {
    Image(Box<OciImageManifest>),
    Index(OciImageIndex),
}

/// A body that is not a manifest imagegate can read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("is not JSON ({0})")]
    NotJson(String),
    #[error(
        "is a Docker schema 1 manifest, which registries no longer serve and imagegate does not read; push the image again with a current tool"
    )]
    Schema1,
    #[error("has media type '{0}', which is neither an image manifest nor an index")]
    UnknownMediaType(String),
    #[error("is not a valid {kind}: {detail}")]
    Invalid { kind: &'static str, detail: String },
}

#[derive(serde::Deserialize)]
struct Shape {
    #[serde(rename = "schemaVersion", default)]
    schema_version: Option<i64>,
    #[serde(rename = "mediaType", default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
}

impl RawManifest {
    /// Parses the body, trusting the body's own `mediaType` over the transport's.
    pub fn parse(&self) -> Result<Manifest, ManifestError> {
        Manifest::parse(&self.bytes, Some(&self.media_type))
    }
}

impl Manifest {
    pub fn parse(bytes: &[u8], header_type: Option<&str>) -> Result<Manifest, ManifestError> {
        let shape: Shape =
            serde_json::from_slice(bytes).map_err(|e| ManifestError::NotJson(e.to_string()))?;
        let media_type = shape
            .media_type
            .as_deref()
            .or(header_type.filter(|t| !t.is_empty() && !t.starts_with("application/json")));
        if shape.schema_version == Some(1)
            || matches!(media_type, Some(DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED))
        {
            return Err(ManifestError::Schema1);
        }
        let is_index = match media_type {
            Some(OCI_INDEX | DOCKER_MANIFEST_LIST) => true,
            Some(OCI_MANIFEST | DOCKER_MANIFEST) => false,
            Some(other) if shape.manifests.is_none() && !other.contains("manifest") => {
                return Err(ManifestError::UnknownMediaType(other.to_string()));
            }
            _ => shape.manifests.is_some(),
        };
        if is_index {
            serde_json::from_slice(bytes)
                .map(Manifest::Index)
                .map_err(|e| ManifestError::Invalid {
                    kind: "image index",
                    detail: e.to_string(),
                })
        } else {
            serde_json::from_slice(bytes)
                .map(|m| Manifest::Image(Box::new(m)))
                .map_err(|e| ManifestError::Invalid {
                    kind: "image manifest",
                    detail: e.to_string(),
                })
        }
    }
}

/// The media type a body declares, when it declares one.
pub fn declared_media_type(bytes: &[u8]) -> Option<String> {
    serde_json::from_slice::<Shape>(bytes).ok()?.media_type
}

#[cfg(test)]
mod tests {
    use super::*;

    const IMAGE: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",
        "config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:aaaa","size":2},
        "layers":[]}"#;

    #[test]
    fn tells_images_from_indexes() {
        assert!(matches!(
            Manifest::parse(IMAGE.as_bytes(), None),
            Ok(Manifest::Image(_))
        ));
        let index = r#"{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:bbbb","size":3,"platform":{"os":"linux","architecture":"arm64","variant":"v8"}}]}"#;
        match Manifest::parse(index.as_bytes(), Some(DOCKER_MANIFEST_LIST)) {
            Ok(Manifest::Index(i)) => assert_eq!(i.manifests.len(), 1),
            other => panic!("{other:?}"),
        }
        // No mediaType in the body or the header: the shape decides.
        let bare_index = r#"{"schemaVersion":2,"manifests":[]}"#;
        assert!(matches!(
            Manifest::parse(bare_index.as_bytes(), None),
            Ok(Manifest::Index(_))
        ));
    }

    #[test]
    fn refuses_what_it_cannot_read_with_a_reason() {
        let schema1 = r#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#;
        assert!(matches!(
            Manifest::parse(schema1.as_bytes(), None),
            Err(ManifestError::Schema1)
        ));
        assert!(matches!(
            Manifest::parse(b"<html>", None),
            Err(ManifestError::NotJson(_))
        ));
        let odd = r#"{"schemaVersion":2,"mediaType":"text/plain"}"#;
        assert!(matches!(
            Manifest::parse(odd.as_bytes(), None),
            Err(ManifestError::UnknownMediaType(t)) if t == "text/plain"
        ));
        let broken = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","layers":[]}"#;
        let err = Manifest::parse(broken.as_bytes(), None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("is not a valid image manifest") && err.contains("config"),
            "{err}"
        );
    }
}
