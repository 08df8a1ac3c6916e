//! Platforms (`linux/arm64/v8`): parsing, the normalisation containerd applies
//! (`aarch64` is `arm64`, arm64's default variant is `v8`, arm's is `v7`), and matching.

use std::fmt;

use super::ImageIndexEntry;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid platform '{input}': {reason} (expected OS/ARCH or OS/ARCH/VARIANT, e.g. linux/arm64)"
)]
pub struct PlatformError {
    pub input: String,
    pub reason: String,
}

impl Platform {
    /// Parses `OS/ARCH[/VARIANT]`, normalising architecture aliases.
    pub fn parse(input: &str) -> Result<Platform, PlatformError> {
        let fail = |reason: &str| PlatformError {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let parts: Vec<&str> = input.split('/').collect();
        if !(2..=3).contains(&parts.len()) {
            return Err(fail("it needs two or three parts separated by '/'"));
        }
        if parts.iter().any(|p| p.is_empty()) {
            return Err(fail("a part is empty"));
        }
        if let Some(bad) = parts
            .iter()
            .flat_map(|p| p.chars())
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))
        {
            return Err(fail(&format!("'{bad}' is not allowed")));
        }
        Ok(Platform::new(parts[0], parts[1], parts.get(2).copied()))
    }

    /// A platform from its parts, normalised.
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Platform {
        let os = os.to_ascii_lowercase();
        let (architecture, alias_variant) = match architecture.to_ascii_lowercase().as_str() {
            "x86_64" | "x86-64" => ("amd64".to_string(), None),
            "aarch64" => ("arm64".to_string(), None),
            "armhf" => ("arm".to_string(), Some("v7")),
            "armel" => ("arm".to_string(), Some("v6")),
            "i386" | "i686" => ("386".to_string(), None),
            other => (other.to_string(), None),
        };
        let variant = variant
            .map(|v| v.to_ascii_lowercase())
            .or(alias_variant.map(str::to_string));
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// The variant, or the one an architecture implies when none is written.
    fn effective_variant(&self) -> Option<&str> {
        match (self.architecture.as_str(), self.variant.as_deref()) {
            (_, Some(v)) => Some(v),
            ("arm64", None) => Some("v8"),
            ("arm", None) => Some("v7"),
            _ => None,
        }
    }

    /// Whether an image built for `candidate` is what `self` asks for. Without a variant, any
    /// variant of the architecture will do (the best one is chosen by [`Platform::select`]).
    pub fn accepts(&self, candidate: &Platform) -> bool {
        if self.os != candidate.os || self.architecture != candidate.architecture {
            return false;
        }
        match self.variant {
            None => true,
            Some(_) => self.effective_variant() == candidate.effective_variant(),
        }
    }

    /// The index entry for this platform: an exact variant match first, else the
    /// architecture's default variant, else the first entry of that OS and architecture.
    pub fn select<'a>(&self, entries: &'a [ImageIndexEntry]) -> Option<&'a ImageIndexEntry> {
        let candidates: Vec<&ImageIndexEntry> = entries
            .iter()
            .filter(|e| entry_platform(e).is_some_and(|p| self.accepts(&p)))
            .collect();
        candidates
            .iter()
            .find(|e| entry_platform(e).is_some_and(|p| p.variant == self.variant))
            .or_else(|| {
                candidates.iter().find(|e| {
                    entry_platform(e)
                        .is_some_and(|p| p.effective_variant() == self.effective_variant())
                })
            })
            .or(candidates.first())
            .copied()
    }
}

/// The platform an index entry declares, if it declares one.
pub fn entry_platform(entry: &ImageIndexEntry) -> Option<Platform> {
    let p = entry.platform.as_ref()?;
    Some(Platform::new(
        &p.os.to_string(),
        &p.architecture.to_string(),
        p.variant.as_deref(),
    ))
}

impl serde::Serialize for Platform {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(platform: &str, digest: &str) -> ImageIndexEntry {
        let p = Platform::parse(platform).unwrap();
        serde_json::from_value(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest,
            "size": 1,
            "platform": {"os": p.os, "architecture": p.architecture, "variant": p.variant},
        }))
        .unwrap()
    }

    #[test]
    fn parses_and_normalises() {
        assert_eq!(
            Platform::parse("linux/amd64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("Linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        assert_eq!(
            Platform::parse("linux/aarch64").unwrap().to_string(),
            "linux/arm64"
        );
        assert_eq!(
            Platform::parse("linux/armhf").unwrap().to_string(),
            "linux/arm/v7"
        );
        assert_eq!(
            Platform::parse("linux/arm/v6").unwrap().to_string(),
            "linux/arm/v6"
        );
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux/amd 64"] {
            let err = Platform::parse(bad).unwrap_err();
            assert!(err.to_string().contains("expected OS/ARCH"), "{bad}: {err}");
        }
    }

    #[test]
    fn selects_the_matching_entry() {
        let entries = vec![
            entry("linux/amd64", "sha256:a"),
            entry("linux/arm/v6", "sha256:b"),
            entry("linux/arm/v7", "sha256:c"),
            entry("linux/arm64/v8", "sha256:d"),
        ];
        let pick = |p: &str| {
            Platform::parse(p)
                .unwrap()
                .select(&entries)
                .map(|e| e.digest.clone())
        };
        assert_eq!(pick("linux/amd64").as_deref(), Some("sha256:a"));
        assert_eq!(
            pick("linux/arm64").as_deref(),
            Some("sha256:d"),
            "v8 is arm64's default"
        );
        assert_eq!(
            pick("linux/arm").as_deref(),
            Some("sha256:c"),
            "v7 is arm's default"
        );
        assert_eq!(pick("linux/arm/v6").as_deref(), Some("sha256:b"));
        assert_eq!(pick("linux/s390x"), None);
        assert_eq!(pick("windows/amd64"), None);
        assert_eq!(pick("linux/arm64/v9"), None);
    }

    #[test]
    fn arm64_without_variant_matches_v8() {
        let entries = vec![entry("linux/arm64", "sha256:e")];
        let wanted = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(
            wanted.select(&entries).map(|e| e.digest.as_str()),
            Some("sha256:e")
        );
    }
}
