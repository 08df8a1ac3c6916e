//! Image references, parsed and normalised as docker/distribution does
//! (`ParseNormalizedNamed`): `docker.io` when no registry is named, `library/` for single-name
//! Docker Hub images, `name[:tag][@digest]`, ports, IPv6 hosts, lowercase repositories.
//!
//! Errors carry the byte offset of the offending character, so the message can point at it.

use std::fmt;

use crate::digest::Digest;

pub const DOCKER_HUB: &str = "docker.io";
const LEGACY_DOCKER_HUB: &str = "index.docker.io";
const OFFICIAL_PREFIX: &str = "library/";
pub const DEFAULT_TAG: &str = "latest";
const MAX_TAG_LEN: usize = 128;
const MAX_NAME_LEN: usize = 255;

/// A parsed, normalised image reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
    /// `library/` was added by normalisation (the user wrote `nginx`, not `library/nginx`).
    /// Kyverno's spelling of the name leaves it out, so we remember it.
    implicit_library: bool,
}

/// An image reference that does not follow the grammar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceError {
    pub input: String,
    /// Byte offset into `input` of the character the error is about.
    pub offset: usize,
    pub reason: String,
}

impl ReferenceError {
    /// The column (in characters, 0-based) of the offending character.
    pub fn column(&self) -> usize {
        let end = self.offset.min(self.input.len());
        self.input
            .get(..end)
            .map_or(end, |prefix| prefix.chars().count())
    }
}

impl fmt::Display for ReferenceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "invalid image reference \"{}\": {}",
            self.input.escape_debug(),
            self.reason
        )?;
        writeln!(f, "    {}", self.input.escape_debug())?;
        write!(f, "    {}^", " ".repeat(self.column()))
    }
}

impl std::error::Error for ReferenceError {}

impl ImageRef {
    /// Parses `input` the way `docker pull` reads it.
    pub fn parse(input: &str) -> Result<ImageRef, ReferenceError> {
        let fail = |offset: usize, reason: String| ReferenceError {
            input: input.to_string(),
            offset,
            reason,
        };

        if input.is_empty() {
            return Err(fail(0, "the image reference is empty".into()));
        }
        if let Some((i, _)) = input
            .char_indices()
            .find(|(_, c)| c.is_whitespace() || c.is_control())
        {
            return Err(fail(
                i,
                "white space is not allowed in an image reference".into(),
            ));
        }
        if input.len() == 64
            && input
                .bytes()
                .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            return Err(fail(
                0,
                "a 64-character hex string is an image ID, not a name; write NAME@sha256:<hex>"
                    .into(),
            ));
        }

        // name[:tag]@digest — the digest is everything after the first '@'.
        let (name_and_tag, digest) = match input.find('@') {
            Some(at) => {
                let digest = Digest::parse(&input[at + 1..])
                    .map_err(|e| fail(at + 1 + e.offset, format!("bad digest: {}", e.reason)))?;
                (&input[..at], Some(digest))
            }
            None => (input, None),
        };
        if name_and_tag.is_empty() {
            return Err(fail(0, "missing repository name before '@'".into()));
        }

        // The tag follows the last ':' that comes after the last '/'; an earlier ':' is a port.
        let last_slash = name_and_tag.rfind('/');
        let tag_colon = name_and_tag
            .rfind(':')
            .filter(|&c| last_slash.is_none_or(|s| c > s));
        let (name, tag) = match tag_colon {
            Some(c) => {
                let tag = &name_and_tag[c + 1..];
                validate_tag(tag, c + 1).map_err(|(o, r)| fail(o, r))?;
                (&name_and_tag[..c], Some(tag.to_string()))
            }
            None => (name_and_tag, None),
        };
        if name.is_empty() {
            return Err(fail(0, "missing repository name".into()));
        }

        let (registry, path, path_offset) = match split_registry(name) {
            Some((domain, rest)) => {
                validate_domain(domain).map_err(|(o, r)| fail(o, r))?;
                let registry = if domain == LEGACY_DOCKER_HUB {
                    DOCKER_HUB
                } else {
                    domain
                };
                (registry.to_string(), rest, domain.len() + 1)
            }
            None => (DOCKER_HUB.to_string(), name, 0),
        };
        validate_path(path, path_offset).map_err(|(o, r)| fail(o, r))?;

        let implicit_library = registry == DOCKER_HUB && !path.contains('/');
        let repository = if implicit_library {
            format!("{OFFICIAL_PREFIX}{path}")
        } else {
            path.to_string()
        };
        let full_len = registry.len() + 1 + repository.len();
        if full_len > MAX_NAME_LEN {
            return Err(fail(
                0,
                format!(
                    "the repository name is {full_len} characters long (with its registry); the limit is {MAX_NAME_LEN}"
                ),
            ));
        }

        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
            implicit_library,
        })
    }

    /// The registry host, with its port if one was given (`docker.io`, `localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path within the registry (`library/nginx`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What a registry is asked for: the digest when there is one (it wins over a tag, as in
    /// docker), else the tag, else `latest`.
    pub fn manifest_reference(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.to_string(),
            (None, Some(t)) => t.clone(),
            (None, None) => DEFAULT_TAG.to_string(),
        }
    }

    /// `registry/repository`, the name without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// `registry/repository@digest`: the reference pinned to `digest`.
    pub fn pinned(&self, digest: &Digest) -> String {
        format!("{}@{digest}", self.name())
    }

    /// The same repository, pointing at `digest` (the tag is kept for display only).
    pub fn with_digest(&self, digest: Digest) -> ImageRef {
        ImageRef {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// Another repository in the same registry, e.g. `$COSIGN_REPOSITORY`.
    pub fn with_repository(&self, registry: &str, repository: &str) -> ImageRef {
        ImageRef {
            registry: registry.to_string(),
            repository: repository.to_string(),
            tag: None,
            digest: None,
            implicit_library: false,
        }
    }

    /// The same repository, pointing at `tag`.
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// Whether normalisation added `library/` (the user wrote a single-name Hub image).
    pub fn has_implicit_library(&self) -> bool {
        self.implicit_library
    }
}

impl fmt::Display for ImageRef {
    /// The fully qualified form: `docker.io/library/nginx:1.25@sha256:…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl serde::Serialize for ImageRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for ImageRef {
    type Err = ReferenceError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ImageRef::parse(s)
    }
}

/// Splits `registry/rest` when the first component names a registry: it is `localhost`,
/// contains '.' or ':', or has an uppercase letter (Docker Hub namespaces cannot).
fn split_registry(name: &str) -> Option<(&str, &str)> {
    let (first, rest) = name.split_once('/')?;
    let is_domain = first == "localhost"
        || first.contains(['.', ':'])
        || first.chars().any(|c| c.is_ascii_uppercase());
    is_domain.then_some((first, rest))
}

type Located = (usize, String);

fn validate_tag(tag: &str, offset: usize) -> Result<(), Located> {
    let mut chars = tag.char_indices();
    let Some((_, first)) = chars.next() else {
        return Err((offset, "missing tag after ':'".into()));
    };
    if !(first.is_ascii_alphanumeric() || first == '_') {
        return Err((
            offset,
            format!("a tag starts with a letter, a digit or '_', not '{first}'"),
        ));
    }
    if let Some((i, c)) =
        chars.find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err((
            offset + i,
            format!("'{c}' is not allowed in a tag (letters, digits, '_', '.', '-')"),
        ));
    }
    if tag.len() > MAX_TAG_LEN {
        return Err((
            offset + MAX_TAG_LEN,
            format!(
                "a tag has at most {MAX_TAG_LEN} characters, this one has {}",
                tag.len()
            ),
        ));
    }
    Ok(())
}

/// `host[:port]`, where host is a DNS-like name, an IPv4 address or `[IPv6]`.
fn validate_domain(domain: &str) -> Result<(), Located> {
    let (host, port, port_offset) = if let Some(inner) = domain.strip_prefix('[') {
        let Some(close) = inner.find(']') else {
            return Err((0, "an IPv6 registry address needs a closing ']'".into()));
        };
        let address = &inner[..close];
        if address.is_empty() {
            return Err((1, "empty IPv6 address".into()));
        }
        if let Some((i, c)) = address
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_hexdigit() || *c == ':'))
        {
            return Err((1 + i, format!("'{c}' is not allowed in an IPv6 address")));
        }
        let after = &inner[close + 1..];
        match after.strip_prefix(':') {
            Some(port) => (&domain[..close + 2], Some(port), close + 3),
            None if after.is_empty() => (domain, None, 0),
            None => {
                return Err((
                    close + 2,
                    "expected ':PORT' or '/' after the IPv6 address".into(),
                ));
            }
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (host, Some(port), host.len() + 1),
            None => (domain, None, 0),
        }
    };

    if !host.starts_with('[') {
        let mut offset = 0;
        for component in host.split('.') {
            if component.is_empty() {
                return Err((offset, "empty component in the registry host name".into()));
            }
            if let Some((i, c)) = component
                .char_indices()
                .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-'))
            {
                return Err((
                    offset + i,
                    format!("'{c}' is not allowed in a registry host name"),
                ));
            }
            if component.starts_with('-') || component.ends_with('-') {
                let at = if component.starts_with('-') {
                    offset
                } else {
                    offset + component.len() - 1
                };
                return Err((
                    at,
                    "a registry host name component cannot start or end with '-'".into(),
                ));
            }
            offset += component.len() + 1;
        }
    }

    if let Some(port) = port {
        if port.is_empty() {
            return Err((port_offset, "missing port number after ':'".into()));
        }
        if let Some((i, c)) = port.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
            return Err((
                port_offset + i,
                format!("'{c}' is not allowed in a port number"),
            ));
        }
    }
    Ok(())
}

/// `component[/component]*`, each lowercase alphanumerics joined by one '.', one or two '_',
/// or any number of '-'.
fn validate_path(path: &str, offset: usize) -> Result<(), Located> {
    let mut start = offset;
    for component in path.split('/') {
        validate_path_component(component, start)?;
        start += component.len() + 1;
    }
    Ok(())
}

fn validate_path_component(component: &str, offset: usize) -> Result<(), Located> {
    if component.is_empty() {
        return Err((offset, "empty path component in the repository name".into()));
    }
    let bytes = component.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let c = component[i..].chars().next().unwrap_or('?');
        if c.is_ascii_lowercase() || c.is_ascii_digit() {
            i += 1;
            continue;
        }
        if c.is_uppercase() {
            return Err((offset + i, "repository names must be lowercase".into()));
        }
        if !matches!(c, '.' | '_' | '-') {
            return Err((
                offset + i,
                format!(
                    "'{c}' is not allowed in a repository name (lowercase letters, digits, '.', '_', '-')"
                ),
            ));
        }
        // A run of separators: it must sit between alphanumerics and be '.', '_', '__' or '-'+.
        let run_start = i;
        while i < bytes.len() && matches!(bytes[i], b'.' | b'_' | b'-') {
            i += 1;
        }
        let run = &component[run_start..i];
        if run_start == 0 || i == bytes.len() {
            let at = offset + if run_start == 0 { 0 } else { run_start };
            return Err((
                at,
                "a repository name component must start and end with a lowercase letter or digit"
                    .into(),
            ));
        }
        let valid = run == "." || run == "_" || run == "__" || run.bytes().all(|b| b == b'-');
        if !valid {
            return Err((
                offset + run_start,
                format!(
                    "'{run}' is not a valid separator in a repository name (one '.', one or two '_', or dashes)"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pretty_assertions::assert_eq;

    const HEX: &str = "b5b2b2c507a0944348e0303114d8d93aaaa081732b86451d9bce1f432a537bc7";

    enum Want {
        /// registry, repository, tag, has digest
        Ok(&'static str, &'static str, Option<&'static str>, bool),
        /// column of the caret, words the reason must contain
        Err(usize, &'static str),
    }
    use Want::{Err as E, Ok as O};

    fn cases() -> Vec<(String, Want)> {
        let d = |s: &str| s.replace("HEX", HEX);
        vec![
            ("nginx".into(), O("docker.io", "library/nginx", None, false)),
            (
                "nginx:1.25".into(),
                O("docker.io", "library/nginx", Some("1.25"), false),
            ),
            (
                "library/nginx".into(),
                O("docker.io", "library/nginx", None, false),
            ),
            (
                "docker.io/nginx".into(),
                O("docker.io", "library/nginx", None, false),
            ),
            (
                "index.docker.io/nginx".into(),
                O("docker.io", "library/nginx", None, false),
            ),
            (
                "docker.io/library/nginx:latest".into(),
                O("docker.io", "library/nginx", Some("latest"), false),
            ),
            (
                "bitnami/redis:7".into(),
                O("docker.io", "bitnami/redis", Some("7"), false),
            ),
            ("localhost/app".into(), O("localhost", "app", None, false)),
            (
                "localhost:5000/app".into(),
                O("localhost:5000", "app", None, false),
            ),
            (
                "localhost:5000/app:v1".into(),
                O("localhost:5000", "app", Some("v1"), false),
            ),
            (
                "127.0.0.1:5000/team/app:1.0".into(),
                O("127.0.0.1:5000", "team/app", Some("1.0"), false),
            ),
            ("[::1]:5000/app".into(), O("[::1]:5000", "app", None, false)),
            (
                "[fe80::1]/app:x".into(),
                O("[fe80::1]", "app", Some("x"), false),
            ),
            (
                "registry.example.com/a/b/c:tag".into(),
                O("registry.example.com", "a/b/c", Some("tag"), false),
            ),
            (
                d("quay.io/org/app@sha256:HEX"),
                O("quay.io", "org/app", None, true),
            ),
            (
                d("a:b@sha256:HEX"),
                O("docker.io", "library/a", Some("b"), true),
            ),
            (
                d("ghcr.io/o/app:v1@sha256:HEX"),
                O("ghcr.io", "o/app", Some("v1"), true),
            ),
            (
                d("registry.example.com:443/x/y:t@sha256:HEX"),
                O("registry.example.com:443", "x/y", Some("t"), true),
            ),
            // docker reads a bare host:port as an image named after the host, tagged with the port.
            (
                "localhost:5000".into(),
                O("docker.io", "library/localhost", Some("5000"), false),
            ),
            // An uppercase first component cannot be a Docker Hub namespace, so it names a registry.
            ("UPPER/case".into(), O("UPPER", "case", None, false)),
            (
                "Example.COM/app".into(),
                O("Example.COM", "app", None, false),
            ),
            (
                "my_app.v2-x".into(),
                O("docker.io", "library/my_app.v2-x", None, false),
            ),
            ("a__b/c--d".into(), O("docker.io", "a__b/c--d", None, false)),
            (
                format!("app:{}", "t".repeat(128)),
                O(
                    "docker.io",
                    "library/app",
                    Some("t".repeat(128).leak()),
                    false,
                ),
            ),
            (
                "app:_v.1-rc".into(),
                O("docker.io", "library/app", Some("_v.1-rc"), false),
            ),
            ("docker.io/UPPER/case".into(), E(10, "must be lowercase")),
            ("upper/Case".into(), E(6, "must be lowercase")),
            ("localhost:5000/App".into(), E(15, "must be lowercase")),
            ("repo:".into(), E(5, "missing tag")),
            (
                format!("app:{}", "t".repeat(129)),
                E(132, "at most 128 characters, this one has 129"),
            ),
            ("app:-v1".into(), E(4, "a tag starts with")),
            ("app:v1!".into(), E(6, "'!' is not allowed in a tag")),
            ("a//b".into(), E(2, "empty path component")),
            ("app/".into(), E(4, "empty path component")),
            ("/app".into(), E(0, "empty path component")),
            ("a..b".into(), E(1, "'..' is not a valid separator")),
            ("a___b".into(), E(1, "'___' is not a valid separator")),
            ("a._b".into(), E(1, "'._' is not a valid separator")),
            ("-app".into(), E(0, "must start and end")),
            ("app-".into(), E(3, "must start and end")),
            (
                "ap$p".into(),
                E(2, "'$' is not allowed in a repository name"),
            ),
            (
                "nginx@sha256:abc".into(),
                E(13, "64 hex characters, this one has 3"),
            ),
            (
                "nginx@md5:abc".into(),
                E(6, "unsupported digest algorithm 'md5'"),
            ),
            ("nginx@".into(), E(6, "ALGORITHM:HEX")),
            (d("@sha256:HEX"), E(0, "missing repository name before '@'")),
            (
                format!("nginx@sha256:{}", HEX.to_uppercase()),
                E(13, "'B' is not a lowercase hex digit"),
            ),
            (HEX.into(), E(0, "image ID, not a name")),
            ("".into(), E(0, "empty")),
            ("ngi nx".into(), E(3, "white space")),
            (":tag".into(), E(0, "missing repository name")),
            (
                "exa_mple.com:5000/app".into(),
                E(3, "'_' is not allowed in a registry host name"),
            ),
            (
                "example.com:http/app".into(),
                E(12, "'h' is not allowed in a port number"),
            ),
            ("example.com:/app".into(), E(12, "missing port number")),
            ("-bad.com/app".into(), E(0, "cannot start or end with '-'")),
            ("bad-.com/app".into(), E(3, "cannot start or end with '-'")),
            (
                "a..com/app".into(),
                E(2, "empty component in the registry host"),
            ),
            ("[::1/app".into(), E(0, "closing ']'")),
            (
                "[::g]:5000/app".into(),
                E(3, "'g' is not allowed in an IPv6 address"),
            ),
            ("ÄPP".into(), E(0, "must be lowercase")),
            (
                format!("example.com/{}", "a".repeat(244)),
                E(0, "limit is 255"),
            ),
        ]
    }

    #[test]
    fn parses_the_reference_grammar() {
        let cases = cases();
        assert!(cases.len() >= 40, "the table keeps at least 40 cases");
        for (input, want) in cases {
            match (ImageRef::parse(&input), want) {
                (Ok(r), O(registry, repository, tag, has_digest)) => {
                    assert_eq!(
                        (r.registry(), r.repository(), r.tag(), r.digest().is_some()),
                        (registry, repository, tag, has_digest),
                        "input {input:?}"
                    );
                }
                (Err(e), E(column, words)) => {
                    assert!(
                        e.reason.contains(words),
                        "input {input:?}: reason {:?} lacks {words:?}",
                        e.reason
                    );
                    assert_eq!(
                        e.column(),
                        column,
                        "input {input:?}: caret column ({})",
                        e.reason
                    );
                }
                (Ok(r), E(..)) => panic!("input {input:?} should fail but parsed as {r}"),
                (Err(e), O(..)) => panic!("input {input:?} should parse but failed: {e}"),
            }
        }
    }

    #[test]
    fn a_name_of_exactly_255_characters_is_allowed() {
        // "example.com/" is 12 characters.
        assert!(ImageRef::parse(&format!("example.com/{}", "a".repeat(243))).is_ok());
    }

    #[test]
    fn display_is_fully_qualified_and_pinning_drops_the_tag() {
        let r = ImageRef::parse("nginx:1.25").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/nginx:1.25");
        assert_eq!(r.manifest_reference(), "1.25");
        let d = Digest::parse(&format!("sha256:{HEX}")).unwrap();
        assert_eq!(
            r.pinned(&d),
            format!("docker.io/library/nginx@sha256:{HEX}")
        );
        let pinned = r.with_digest(d.clone());
        assert_eq!(pinned.manifest_reference(), d.to_string());
        assert!(r.has_implicit_library());
        assert!(
            !ImageRef::parse("library/nginx")
                .unwrap()
                .has_implicit_library()
        );
        assert_eq!(
            ImageRef::parse("app").unwrap().manifest_reference(),
            "latest"
        );
    }

    #[test]
    fn error_display_points_at_the_offending_character() {
        let e = ImageRef::parse("upper/Case").unwrap_err();
        let text = e.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "invalid image reference \"upper/Case\": repository names must be lowercase"
        );
        assert_eq!(lines[1], "    upper/Case");
        assert_eq!(lines[2], "          ^");
    }
}
