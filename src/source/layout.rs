//! OCI image layouts on disk: a directory (`oci:DIR`) or a tar of one (`oci-archive:FILE`).
//! Everything is read locally, checked against its digest, and capped in size.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::SourceError;
use crate::digest::Digest;
use crate::oci::{ImageIndexEntry, MANIFEST_LIMIT, OciImageIndex};

/// The annotation an OCI layout uses to name an image (`skopeo copy … oci:DIR:TAG` writes it).
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

/// An opened layout: its top-level index, and where its blobs are.
pub struct Layout {
    /// `oci:DIR` or `oci-archive:FILE`, for messages.
    origin: String,
    storage: Storage,
    pub index: OciImageIndex,
}

enum Storage {
    Dir(PathBuf),
    /// Where each member's data starts in the tar, and how long it is.
    Archive {
        path: PathBuf,
        members: HashMap<String, (u64, u64)>,
    },
}

impl Layout {
    pub fn open_dir(dir: &Path) -> Result<Layout, SourceError> {
        let origin = format!("oci:{}", dir.display());
        let not_layout = |reason: String| SourceError::NotALayout {
            origin: origin.clone(),
            reason,
        };
        if !dir.is_dir() {
            return Err(not_layout(if dir.exists() {
                "it is not a directory (for a tar file use oci-archive:FILE)".into()
            } else {
                "the directory does not exist".into()
            }));
        }
        let marker = dir.join("oci-layout");
        let marker_text = std::fs::read(&marker).map_err(|_| {
            not_layout("it has no oci-layout file (an OCI image layout has oci-layout, index.json and blobs/)".into())
        })?;
        check_marker(&origin, &marker_text)?;
        let index_bytes = read_file_capped(&dir.join("index.json"), MANIFEST_LIMIT, &origin)?;
        let index = parse_index(&origin, &index_bytes)?;
        Ok(Layout {
            origin,
            storage: Storage::Dir(dir.to_path_buf()),
            index,
        })
    }

    pub fn open_archive(path: &Path) -> Result<Layout, SourceError> {
        let origin = format!("oci-archive:{}", path.display());
        let unreadable = |source: std::io::Error| SourceError::Unreadable {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(unreadable)?;
        let mut archive = tar::Archive::new(file);
        let mut members = HashMap::new();
        let entries = archive.entries().map_err(|e| SourceError::NotALayout {
            origin: origin.clone(),
            reason: format!("it is not a tar archive ({e})"),
        })?;
        for entry in entries {
            let entry = entry.map_err(|e| SourceError::NotALayout {
                origin: origin.clone(),
                reason: format!("it is not a readable tar archive ({e})"),
            })?;
            if !entry.header().entry_type().is_file() {
                continue;
            }
            let name = entry
                .path()
                .map(|p| p.to_string_lossy().trim_start_matches("./").to_string())
                .unwrap_or_default();
            members.insert(name, (entry.raw_file_position(), entry.size()));
        }
        let storage = Storage::Archive {
            path: path.to_path_buf(),
            members,
        };
        let mut layout = Layout {
            origin: origin.clone(),
            storage,
            index: OciImageIndex {
                schema_version: 2,
                media_type: None,
                manifests: Vec::new(),
                artifact_type: None,
                annotations: None,
            },
        };
        let marker = layout.read_member("oci-layout", 4096).map_err(|_| SourceError::NotALayout {
            origin: origin.clone(),
            reason: "the archive holds no oci-layout file (an OCI archive is a tar of oci-layout, index.json and blobs/)".into(),
        })?;
        check_marker(&origin, &marker)?;
        let index_bytes = layout.read_member("index.json", MANIFEST_LIMIT)?;
        layout.index = parse_index(&origin, &index_bytes)?;
        Ok(layout)
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The top-level entry named `tag`, or the one with `digest`, or the only one.
    pub fn find(
        &self,
        tag: Option<&str>,
        digest: Option<&Digest>,
    ) -> Result<&ImageIndexEntry, SourceError> {
        let entries = &self.index.manifests;
        let tags = || -> Vec<String> {
            entries
                .iter()
                .filter_map(|e| e.annotations.as_ref()?.get(REF_NAME).cloned())
                .collect()
        };
        if let Some(digest) = digest {
            let wanted = digest.to_string();
            return entries.iter().find(|e| e.digest == wanted).ok_or_else(|| {
                SourceError::DigestNotInLayout {
                    origin: self.origin.clone(),
                    digest: wanted,
                }
            });
        }
        match tag {
            Some(tag) => entries
                .iter()
                .find(|e| {
                    e.annotations
                        .as_ref()
                        .and_then(|a| a.get(REF_NAME))
                        .is_some_and(|name| name == tag)
                })
                .ok_or_else(|| SourceError::TagNotFound {
                    origin: self.origin.clone(),
                    tag: tag.to_string(),
                    tags: tags(),
                }),
            None => match entries.as_slice() {
                [only] => Ok(only),
                [] => Err(SourceError::EmptyLayout {
                    origin: self.origin.clone(),
                }),
                _ => Err(SourceError::Ambiguous {
                    origin: self.origin.clone(),
                    count: entries.len(),
                    tags: tags(),
                }),
            },
        }
    }

    /// Reads the blob `digest`, refusing more than `limit` bytes, and checks its content.
    pub fn blob(&self, digest: &Digest, limit: u64, what: &str) -> Result<Vec<u8>, SourceError> {
        let member = format!("blobs/{}/{}", digest.algorithm().name(), digest.hex());
        let bytes = match &self.storage {
            Storage::Dir(dir) => {
                let path = dir.join(&member);
                if !path.exists() {
                    return Err(SourceError::BlobMissing {
                        origin: self.origin.clone(),
                        what: what.to_string(),
                        digest: digest.to_string(),
                    });
                }
                read_file_capped(&path, limit, &self.origin)?
            }
            Storage::Archive { members, .. } => {
                if !members.contains_key(&member) {
                    return Err(SourceError::BlobMissing {
                        origin: self.origin.clone(),
                        what: what.to_string(),
                        digest: digest.to_string(),
                    });
                }
                self.read_member(&member, limit)?
            }
        };
        if !digest.matches(&bytes) {
            return Err(SourceError::BlobMismatch {
                origin: self.origin.clone(),
                what: what.to_string(),
                digest: digest.to_string(),
                actual: Digest::sha256_of(&bytes).to_string(),
            });
        }
        Ok(bytes)
    }

    fn read_member(&self, name: &str, limit: u64) -> Result<Vec<u8>, SourceError> {
        let Storage::Archive { path, members } = &self.storage else {
            unreachable!("read_member is only called on archives");
        };
        let unreadable = |source: std::io::Error| SourceError::Unreadable {
            path: path.clone(),
            source,
        };
        let &(offset, size) = members.get(name).ok_or_else(|| SourceError::NotALayout {
            origin: self.origin.clone(),
            reason: format!("the archive has no {name}"),
        })?;
        if size > limit {
            return Err(SourceError::TooLarge {
                origin: self.origin.clone(),
                what: name.to_string(),
                size,
                limit,
            });
        }
        let mut file = File::open(path).map_err(unreadable)?;
        file.seek(SeekFrom::Start(offset)).map_err(unreadable)?;
        let mut bytes = Vec::with_capacity(size as usize);
        file.take(size)
            .read_to_end(&mut bytes)
            .map_err(unreadable)?;
        if bytes.len() as u64 != size {
            return Err(SourceError::NotALayout {
                origin: self.origin.clone(),
                reason: format!("the archive is truncated inside {name}"),
            });
        }
        Ok(bytes)
    }
}

fn check_marker(origin: &str, text: &[u8]) -> Result<(), SourceError> {
    #[derive(serde::Deserialize)]
    struct Marker {
        #[serde(rename = "imageLayoutVersion")]
        version: String,
    }
    match serde_json::from_slice::<Marker>(text) {
        Ok(m) if m.version == "1.0.0" => Ok(()),
        Ok(m) => Err(SourceError::NotALayout {
            origin: origin.to_string(),
            reason: format!(
                "its oci-layout file says version {}, imagegate reads 1.0.0",
                m.version
            ),
        }),
        Err(e) => Err(SourceError::NotALayout {
            origin: origin.to_string(),
            reason: format!("its oci-layout file is not valid ({e})"),
        }),
    }
}

fn parse_index(origin: &str, bytes: &[u8]) -> Result<OciImageIndex, SourceError> {
    serde_json::from_slice(bytes).map_err(|e| SourceError::BadIndex {
        origin: origin.to_string(),
        detail: e.to_string(),
    })
}

fn read_file_capped(path: &Path, limit: u64, origin: &str) -> Result<Vec<u8>, SourceError> {
    let unreadable = |source: std::io::Error| SourceError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(unreadable)?;
    let size = file.metadata().map_err(unreadable)?.len();
    if size > limit {
        return Err(SourceError::TooLarge {
            origin: origin.to_string(),
            what: path.display().to_string(),
            size,
            limit,
        });
    }
    let mut bytes = Vec::with_capacity(size as usize);
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > limit {
        return Err(SourceError::TooLarge {
            origin: origin.to_string(),
            what: path.display().to_string(),
            size: bytes.len() as u64,
            limit,
        });
    }
    Ok(bytes)
}
