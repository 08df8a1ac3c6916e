//! Image references spelled the way Kyverno spells them (`pkg/utils/image/infos.go`).
//!
//! Kyverno adds the default registry (`docker.io`) by `addDefaultRegistry` and then parses with
//! the non-normalising `distribution/reference.Parse`, so `nginx` becomes `docker.io/nginx`
//! (no `library/`), a missing tag becomes `latest`, and `String()` drops the tag when a
//! digest is present. imagegate assumes Kyverno's default settings: `defaultRegistry:
//! docker.io` and `enableDefaultRegistryMutation: true`.

use serde_json::{Value, json};

use crate::reference::{DEFAULT_TAG, DOCKER_HUB, ImageRef};

/// One image as Kyverno's `ImageInfo` holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KyvernoImage {
    /// `docker.io`, `ghcr.io`, `localhost:5000`.
    pub registry: String,
    /// The repository path, e.g. `nginx`, `library/nginx`, `org/app`.
    pub path: String,
    /// The last path component.
    pub name: String,
    /// The tag; `latest` when neither a tag nor a digest was written; empty when only a digest
    /// was written.
    pub tag: String,
    /// `sha256:…`, or empty.
    pub digest: String,
}

impl KyvernoImage {
    /// Kyverno's reading of `raw`, the image string as written in the Pod spec.
    ///
    /// The reference grammar is checked with imagegate's parser (Kyverno would reject the same
    /// strings with "bad image"); the split follows `addDefaultRegistry`, which keeps
    /// `index.docker.io` and never adds `library/`.
    pub fn parse(raw: &str) -> Result<KyvernoImage, String> {
        ImageRef::parse(raw).map_err(|e| format!("bad image: {raw}: {}", e.reason))?;
        let full = add_default_registry(raw);
        // `full` always has a registry component now, and the rest cannot contain a port.
        let (registry, rest) = full
            .split_once('/')
            .ok_or_else(|| format!("bad image: {raw}"))?;
        let (name_and_tag, digest) = match rest.split_once('@') {
            Some((n, d)) => (n, d.to_string()),
            None => (rest, String::new()),
        };
        let (path, tag) = match name_and_tag.rsplit_once(':') {
            Some((p, t)) => (p, t.to_string()),
            None => (name_and_tag, String::new()),
        };
        let tag = if tag.is_empty() && digest.is_empty() {
            DEFAULT_TAG.to_string()
        } else {
            tag
        };
        Ok(KyvernoImage {
            registry: registry.to_string(),
            path: path.to_string(),
            name: last_component(path),
            tag,
            digest,
        })
    }

    /// Kyverno's reading of an already parsed reference: imagegate's parser added `library/`
    /// to single-name Docker Hub images, Kyverno does not, so it is dropped again.
    pub fn from_ref(r: &ImageRef) -> KyvernoImage {
        let path = if r.has_implicit_library() {
            r.repository()
                .strip_prefix("library/")
                .unwrap_or(r.repository())
                .to_string()
        } else {
            r.repository().to_string()
        };
        let digest = r.digest().map(|d| d.to_string()).unwrap_or_default();
        let tag = match (r.tag(), digest.is_empty()) {
            (Some(t), _) => t.to_string(),
            (None, true) => DEFAULT_TAG.to_string(),
            (None, false) => String::new(),
        };
        KyvernoImage {
            registry: r.registry().to_string(),
            name: last_component(&path),
            path,
            tag,
            digest,
        }
    }

    /// `ImageInfo.String()`: `registry/path@digest` when there is a digest (the tag is
    /// dropped), else `registry/path:tag`. Image patterns are matched against this.
    pub fn string(&self) -> String {
        if self.digest.is_empty() {
            format!("{}/{}:{}", self.registry, self.path, self.tag)
        } else {
            format!("{}/{}@{}", self.registry, self.path, self.digest)
        }
    }

    /// `registry/path:tag`, Kyverno's `referenceWithTag`.
    pub fn reference_with_tag(&self) -> String {
        format!("{}/{}:{}", self.registry, self.path, self.tag)
    }

    /// The image after Kyverno's `mutateDigest` patch: `String()` + `@digest`, parsed again.
    /// A reference that already has a digest is not patched.
    pub fn pinned(&self, digest: &str) -> KyvernoImage {
        if !self.digest.is_empty() {
            return self.clone();
        }
        KyvernoImage {
            digest: digest.to_string(),
            ..self.clone()
        }
    }

    /// The entry of the `images` context variable (`images.containers.<name>`).
    pub fn context_value(&self) -> Value {
        let mut v = json!({
            "registry": self.registry,
            "path": self.path,
            "name": self.name,
            "reference": self.string(),
            "referenceWithTag": self.reference_with_tag(),
        });
        // Kyverno marshals these with omitempty, so an empty tag or digest is absent.
        if let Some(map) = v.as_object_mut() {
            if !self.tag.is_empty() {
                map.insert("tag".into(), json!(self.tag));
            }
            if !self.digest.is_empty() {
                map.insert("digest".into(), json!(self.digest));
            }
        }
        v
    }
}

/// `addDefaultRegistry`: prefix `docker.io/` when the name has no `/`, or when its first
/// component has no `.` or `:`, is not `localhost` and is all lowercase.
fn add_default_registry(name: &str) -> String {
    match name.split_once('/') {
        None => format!("{DOCKER_HUB}/{name}"),
        Some((first, _)) => {
            let looks_like_host =
                first.contains(['.', ':']) || first == "localhost" || first.to_lowercase() != first;
            if looks_like_host {
                name.to_string()
            } else {
                format!("{DOCKER_HUB}/{name}")
            }
        }
    }
}

fn last_component(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7";

    #[test]
    fn normalises_like_kyverno() {
        let cases = [
            ("nginx", "docker.io/nginx:latest"),
            ("nginx:v10.3", "docker.io/nginx:v10.3"),
            ("library/nginx", "docker.io/library/nginx:latest"),
            ("docker.io/test/nginx:v10.3", "docker.io/test/nginx:v10.3"),
            ("test/nginx", "docker.io/test/nginx:latest"),
            (
                "localhost:4443/test/nginx",
                "localhost:4443/test/nginx:latest",
            ),
            ("index.docker.io/nginx", "index.docker.io/nginx:latest"),
            ("localhost:5000", "docker.io/localhost:5000"),
        ];
        for (raw, want) in cases {
            let img = KyvernoImage::parse(raw).unwrap();
            assert_eq!(img.string(), want, "{raw}");
        }
        let img = KyvernoImage::parse(&format!("ghcr.io/o/app:v1@{D}")).unwrap();
        assert_eq!(img.string(), format!("ghcr.io/o/app@{D}"));
        assert_eq!(img.tag, "v1");
        assert_eq!(img.name, "app");
        let img = KyvernoImage::parse(&format!("docker.io/test/centos@{D}")).unwrap();
        assert_eq!(img.tag, "");
        assert_eq!(img.reference_with_tag(), "docker.io/test/centos:");
    }

    #[test]
    fn from_ref_agrees_with_parse() {
        for raw in [
            "nginx",
            "nginx:1.25",
            "library/nginx",
            "bitnami/redis:7",
            "localhost:5000/app",
            "ghcr.io/o/app:v1",
        ] {
            let r = ImageRef::parse(raw).unwrap();
            assert_eq!(
                KyvernoImage::from_ref(&r),
                KyvernoImage::parse(raw).unwrap(),
                "{raw}"
            );
        }
    }

    #[test]
    fn pinning_keeps_the_tag_but_prints_the_digest() {
        let img = KyvernoImage::parse("ghcr.io/o/app:v1").unwrap();
        let pinned = img.pinned(D);
        assert_eq!(pinned.string(), format!("ghcr.io/o/app@{D}"));
        assert_eq!(pinned.tag, "v1");
        assert!(KyvernoImage::parse("UPPER/Case").is_err());
    }
}
