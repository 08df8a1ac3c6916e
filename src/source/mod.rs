//! Where an image comes from: a registry, or a local OCI layout (`oci:DIR[:TAG]`) or archive
//! (`oci-archive:FILE[:TAG]`), and how a reference resolves to a manifest digest.

pub mod layout;

use std::fmt;
use std::path::PathBuf;

use bytes::Bytes;

use crate::digest::Digest;
use crate::error::Error;
use crate::http::human_size;
use crate::oci::{CONFIG_LIMIT, MANIFEST_LIMIT, Manifest, Platform, RawManifest, platform};
use crate::reference::ImageRef;
use crate::registry::Registry;
use layout::Layout;

/// An image as named on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImageSource {
    Registry(ImageRef),
    Layout(LayoutRef),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayoutRef {
    pub archive: bool,
    pub path: PathBuf,
    pub tag: Option<String>,
    pub digest: Option<Digest>,
}

/// A local image that cannot be read as asked (the input is wrong: exit 2).
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("'{input}' names no path: write {prefix}PATH[:TAG]")]
    EmptyPath { input: String, prefix: &'static str },
    #[error("{origin} is not an OCI image layout: {reason}")]
    NotALayout { origin: String, reason: String },
    #[error("cannot read {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}: index.json is not a valid OCI index: {detail}")]
    BadIndex { origin: String, detail: String },
    #[error(
        "{origin} has no image tagged '{tag}'{}",
        list_note("tags there", tags)
    )]
    TagNotFound {
        origin: String,
        tag: String,
        tags: Vec<String>,
    },
    #[error(
        "{origin} holds {count} images; name one as {origin}:TAG{}",
        list_note("tags", tags)
    )]
    Ambiguous {
        origin: String,
        count: usize,
        tags: Vec<String>,
    },
    #[error("{origin} holds no image (index.json lists no manifests)")]
    EmptyLayout { origin: String },
    #[error("{origin} lists no image with digest {digest}")]
    DigestNotInLayout { origin: String, digest: String },
    #[error("{origin} lacks the blob for {what} ({digest})")]
    BlobMissing {
        origin: String,
        what: String,
        digest: String,
    },
    #[error(
        "{origin}: the blob for {what} does not match its digest {digest} (its content hashes to {actual})"
    )]
    BlobMismatch {
        origin: String,
        what: String,
        digest: String,
        actual: String,
    },
    #[error("{origin}: {what} is {}; imagegate reads at most {}", human_size(*size), human_size(*limit))]
    TooLarge {
        origin: String,
        what: String,
        size: u64,
        limit: u64,
    },
    #[error("{image} {problem}")]
    BadManifest { image: String, problem: String },
    #[error("{image} has no image for {wanted}; it has {}", if available.is_empty() { "no platform information".to_string() } else { available.join(", ") })]
    PlatformNotFound {
        image: String,
        wanted: String,
        available: Vec<String>,
    },
}

fn list_note(label: &str, items: &[String]) -> String {
    if items.is_empty() {
        String::new()
    } else {
        format!(" ({label}: {})", items.join(", "))
    }
}

impl ImageSource {
    /// `oci:DIR[:TAG]`, `oci-archive:FILE[:TAG]` (either may end in `@sha256:…` instead of a
    /// tag), `docker://REF`, or a plain registry reference.
    pub fn parse(input: &str) -> Result<ImageSource, Error> {
        for (prefix, archive) in [("oci:", false), ("oci-archive:", true)] {
            if let Some(rest) = input.strip_prefix(prefix) {
                return Self::parse_layout(input, prefix, rest, archive);
            }
        }
        let reference = input.strip_prefix("docker://").unwrap_or(input);
        Ok(ImageSource::Registry(ImageRef::parse(reference)?))
    }

    fn parse_layout(
        input: &str,
        prefix: &'static str,
        rest: &str,
        archive: bool,
    ) -> Result<ImageSource, Error> {
        // A trailing @digest pins the image; otherwise, as in containers/image, the path ends at
        // the first ':' and a tag may follow.
        let (rest, digest) = match rest.rsplit_once('@') {
            Some((head, tail)) if tail.contains(':') => match Digest::parse(tail) {
                Ok(d) => (head, Some(d)),
                Err(_) => (rest, None),
            },
            _ => (rest, None),
        };
        let (path, tag) = match rest.split_once(':') {
            Some((path, tag)) if !tag.is_empty() => (path, Some(tag.to_string())),
            Some((path, _)) => (path, None),
            None => (rest, None),
        };
        if path.is_empty() {
            return Err(SourceError::EmptyPath {
                input: input.to_string(),
                prefix,
            }
            .into());
        }
        Ok(ImageSource::Layout(LayoutRef {
            archive,
            path: PathBuf::from(path),
            tag,
            digest,
        }))
    }

    /// The reference pinned to `digest`: `REGISTRY/REPO@sha256:…`, or `oci:DIR@sha256:…`.
    pub fn pinned(&self, digest: &Digest) -> String {
        match self {
            ImageSource::Registry(image) => image.pinned(digest),
            ImageSource::Layout(l) => format!("{}{}@{digest}", l.prefix(), l.path.display()),
        }
    }
}

impl LayoutRef {
    fn prefix(&self) -> &'static str {
        if self.archive { "oci-archive:" } else { "oci:" }
    }
}

impl fmt::Display for ImageSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ImageSource::Registry(image) => write!(f, "{image}"),
            ImageSource::Layout(l) => {
                write!(f, "{}{}", l.prefix(), l.path.display())?;
                if let Some(tag) = &l.tag {
                    write!(f, ":{tag}")?;
                }
                if let Some(d) = &l.digest {
                    write!(f, "@{d}")?;
                }
                Ok(())
            }
        }
    }
}

/// Where the manifests and blobs of one image are read from.
pub enum Store<'a> {
    Registry {
        registry: &'a Registry,
        image: ImageRef,
    },
    Layout(Layout),
}

impl<'r> Store<'r> {
    /// The registry client a registry source reads through; `None` for a local layout.
    pub fn registry(&self) -> Option<&'r Registry> {
        match self {
            Store::Registry { registry, .. } => Some(*registry),
            Store::Layout(_) => None,
        }
    }

    /// Opens the store for `source`: a local layout is opened now; a registry source reads
    /// through `registry`, which it needs.
    pub fn open(source: &ImageSource, registry: Option<&'r Registry>) -> Result<Store<'r>, Error> {
        Ok(match source {
            ImageSource::Registry(image) => Store::Registry {
                registry: registry.ok_or_else(|| {
                    Error::Usage(format!(
                        "internal error: {image} is in a registry and no registry client was set up"
                    ))
                })?,
                image: image.clone(),
            },
            ImageSource::Layout(l) => Store::Layout(if l.archive {
                Layout::open_archive(&l.path)?
            } else {
                Layout::open_dir(&l.path)?
            }),
        })
    }

    /// A manifest by digest.
    pub async fn manifest(&self, digest: &Digest) -> Result<RawManifest, Error> {
        match self {
            Store::Registry { registry, image } => {
                Ok(registry.manifest(image, &digest.to_string()).await?)
            }
            Store::Layout(layout) => {
                let bytes = layout.blob(digest, MANIFEST_LIMIT, "a manifest")?;
                Ok(RawManifest {
                    digest: digest.clone(),
                    media_type: crate::oci::declared_media_type(&bytes).unwrap_or_default(),
                    bytes: Bytes::from(bytes),
                })
            }
        }
    }

    /// A blob by digest, at most `limit` bytes, checked against its digest.
    pub async fn blob(&self, digest: &Digest, limit: u64, what: &str) -> Result<Bytes, Error> {
        match self {
            Store::Registry { registry, image } => {
                Ok(registry.blob(image, digest, limit, what).await?)
            }
            Store::Layout(layout) => Ok(Bytes::from(layout.blob(digest, limit, what)?)),
        }
    }
}

/// The outcome of resolving a reference.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// What the reference names: an image manifest or an index.
    pub root: RawManifest,
    /// With `--platform` on an index: the chosen child.
    pub child: Option<(Platform, Digest)>,
}

impl Resolved {
    /// The digest to use: the chosen child's, else the root's.
    pub fn digest(&self) -> &Digest {
        self.child.as_ref().map_or(&self.root.digest, |(_, d)| d)
    }
}

/// Resolves `source` to its manifest digest. A tag costs one manifest request (plus the
/// registry's `/v2/` challenge); a pinned reference is fetched to prove it exists.
pub async fn resolve(
    source: &ImageSource,
    store: &Store<'_>,
    platform: Option<&Platform>,
) -> Result<Resolved, Error> {
    let root = match (source, store) {
        (ImageSource::Registry(image), Store::Registry { registry, .. }) => {
            registry
                .manifest(image, &image.manifest_reference())
                .await?
        }
        (ImageSource::Layout(l), Store::Layout(layout)) => {
            let entry = layout.find(l.tag.as_deref(), l.digest.as_ref())?;
            let digest = Digest::parse(&entry.digest).map_err(|e| SourceError::BadIndex {
                origin: layout.origin().to_string(),
                detail: format!("entry digest '{}': {e}", entry.digest),
            })?;
            store.manifest(&digest).await?
        }
        _ => unreachable!("a store is always opened for its own source"),
    };
    let manifest = root.parse().map_err(|e| SourceError::BadManifest {
        image: source.to_string(),
        problem: format!("has a manifest that {e}"),
    })?;
    let Some(wanted) = platform else {
        return Ok(Resolved { root, child: None });
    };
    match manifest {
        Manifest::Index(index) => {
            let entry =
                wanted
                    .select(&index.manifests)
                    .ok_or_else(|| SourceError::PlatformNotFound {
                        image: source.to_string(),
                        wanted: wanted.to_string(),
                        available: index
                            .manifests
                            .iter()
                            .filter_map(platform::entry_platform)
                            .map(|p| p.to_string())
                            .collect(),
                    })?;
            let chosen = platform::entry_platform(entry).unwrap_or_else(|| wanted.clone());
            let digest = Digest::parse(&entry.digest).map_err(|e| SourceError::BadManifest {
                image: source.to_string(),
                problem: format!(
                    "has an index entry with a bad digest '{}': {e}",
                    entry.digest
                ),
            })?;
            Ok(Resolved {
                root,
                child: Some((chosen, digest)),
            })
        }
        Manifest::Image(image) => {
            // A single-platform image: check that it is built for what was asked.
            let config_digest =
                Digest::parse(&image.config.digest).map_err(|e| SourceError::BadManifest {
                    image: source.to_string(),
                    problem: format!("has a config digest that is not valid: {e}"),
                })?;
            let config = store
                .blob(&config_digest, CONFIG_LIMIT, "the image config")
                .await?;
            let built_for = config_platform(&config).ok_or_else(|| SourceError::BadManifest {
                image: source.to_string(),
                problem: "has a config without os and architecture".into(),
            })?;
            if !wanted.accepts(&built_for) {
                return Err(SourceError::PlatformNotFound {
                    image: source.to_string(),
                    wanted: wanted.to_string(),
                    available: vec![format!(
                        "{built_for} only (it is not a multi-platform index)"
                    )],
                }
                .into());
            }
            Ok(Resolved { root, child: None })
        }
    }
}

fn config_platform(config: &[u8]) -> Option<Platform> {
    #[derive(serde::Deserialize)]
    struct PlatformFields {
        os: Option<String>,
        architecture: Option<String>,
        variant: Option<String>,
    }
    let f: PlatformFields = serde_json::from_slice(config).ok()?;
    Some(Platform::new(
        f.os.as_deref().filter(|s| !s.is_empty())?,
        f.architecture.as_deref().filter(|s| !s.is_empty())?,
        f.variant.as_deref(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7";

    fn layout(archive: bool, path: &str, tag: Option<&str>, digest: bool) -> ImageSource {
        ImageSource::Layout(LayoutRef {
            archive,
            path: PathBuf::from(path),
            tag: tag.map(str::to_string),
            digest: digest.then(|| Digest::parse(&format!("sha256:{HEX}")).unwrap()),
        })
    }

    #[test]
    fn parses_every_source_spelling() {
        let p = |s: &str| ImageSource::parse(s).unwrap();
        assert_eq!(
            p("oci:examples/app"),
            layout(false, "examples/app", None, false)
        );
        assert_eq!(
            p("oci:examples/app:v1"),
            layout(false, "examples/app", Some("v1"), false)
        );
        assert_eq!(p("oci:dir:"), layout(false, "dir", None, false));
        assert_eq!(
            p(&format!("oci:dir@sha256:{HEX}")),
            layout(false, "dir", None, true)
        );
        assert_eq!(
            p("oci-archive:/tmp/a.tar:latest"),
            layout(true, "/tmp/a.tar", Some("latest"), false)
        );
        assert_eq!(
            p("oci-archive:a@b.tar"),
            layout(true, "a@b.tar", None, false)
        );
        assert!(
            matches!(p("docker://127.0.0.1:5000/app:v1"), ImageSource::Registry(r) if r.tag() == Some("v1"))
        );
        assert!(matches!(p("nginx"), ImageSource::Registry(_)));
    }

    #[test]
    fn an_empty_layout_path_is_refused() {
        let err = ImageSource::parse("oci::v1").unwrap_err().to_string();
        assert!(err.contains("names no path"), "{err}");
    }

    #[test]
    fn pinned_references_keep_the_source_kind() {
        let d = Digest::parse(&format!("sha256:{HEX}")).unwrap();
        assert_eq!(
            ImageSource::parse("oci:examples/app:v1")
                .unwrap()
                .pinned(&d),
            format!("oci:examples/app@sha256:{HEX}")
        );
        assert_eq!(
            ImageSource::parse("localhost:5000/app:v1")
                .unwrap()
                .pinned(&d),
            format!("localhost:5000/app@sha256:{HEX}")
        );
    }
}
