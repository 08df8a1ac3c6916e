//! The simple-signing payload cosign signs: built byte for byte as cosign 2.x writes it (Go's
//! `encoding/json`: struct key order, sorted map keys, HTML-safe escaping), and parsed strictly
//! when verifying.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::digest::Digest;

/// `critical.type` of every cosign container image signature.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

/// A parsed payload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    /// `critical.identity.docker-reference`: the repository (cosign) or `repo:tag` (skopeo).
    pub docker_reference: String,
    /// `critical.image.docker-manifest-digest`.
    pub manifest_digest: String,
    /// The string entries of `optional`. cosign (and Kyverno) compare required annotations
    /// with the raw values, so a number or boolean never equals a required string: such
    /// entries are left out here rather than turned into text that could match.
    pub annotations: BTreeMap<String, String>,
}

/// Why a payload was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayloadError {
    #[error("the payload is not a simple-signing document: {0}")]
    Malformed(String),
    #[error("the payload's type is '{0}', not '{SIGNATURE_TYPE}'")]
    WrongType(String),
}

/// The payload bytes cosign would sign for `digest` of `docker_reference`, with `annotations`
/// (`-a KEY=VALUE`) in `optional`, or `"optional":null` without any.
pub fn build(
    docker_reference: &str,
    digest: &Digest,
    annotations: &BTreeMap<String, String>,
) -> Vec<u8> {
    let mut out = String::with_capacity(256);
    out.push_str(r#"{"critical":{"identity":{"docker-reference":"#);
    push_go_string(&mut out, docker_reference);
    out.push_str(r#"},"image":{"docker-manifest-digest":"#);
    push_go_string(&mut out, &digest.to_string());
    out.push_str(r#"},"type":"#);
    push_go_string(&mut out, SIGNATURE_TYPE);
    out.push_str(r#"},"optional":"#);
    if annotations.is_empty() {
        out.push_str("null");
    } else {
        out.push('{');
        for (i, (key, value)) in annotations.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_go_string(&mut out, key);
            out.push(':');
            push_go_string(&mut out, value);
        }
        out.push('}');
    }
    out.push('}');
    out.into_bytes()
}

/// Appends `s` as a JSON string the way Go's `encoding/json` writes it: `\"`, `\\`, `\n`, `\r`,
/// `\t` short escapes, other control characters as `\u00XX`, and `<`, `>`, `&`, U+2028, U+2029
/// escaped so the document is safe inside HTML.
fn push_go_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

// The strict shape: unknown or duplicate fields are refused at every level, as containers/image
// does, so that no verifier can be shown a different reading of the same bytes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    critical: Critical,
    #[serde(default)]
    optional: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Critical {
    identity: Identity,
    image: Image,
    #[serde(rename = "type")]
    kind: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Image {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// Parses payload bytes strictly: exactly the simple-signing fields, and the cosign type.
pub fn parse(bytes: &[u8]) -> Result<Payload, PayloadError> {
    let doc: Document =
        serde_json::from_slice(bytes).map_err(|e| PayloadError::Malformed(e.to_string()))?;
    if doc.critical.kind != SIGNATURE_TYPE {
        return Err(PayloadError::WrongType(doc.critical.kind));
    }
    let annotations = doc
        .optional
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            _ => None,
        })
        .collect();
    Ok(Payload {
        docker_reference: doc.critical.identity.docker_reference,
        manifest_digest: doc.critical.image.docker_manifest_digest,
        annotations,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:ffab9c7778f749efed6a7873fb2bf159f8d4101d5946980f5fe0d0fa00d7032b";

    #[test]
    fn builds_the_exact_bytes_cosign_writes() {
        let d = Digest::parse(DIGEST).unwrap();
        // Both strings were read back from a registry after `cosign sign` (cosign 2.5).
        assert_eq!(
            String::from_utf8(build("127.0.0.1:5999/webapp", &d, &BTreeMap::new())).unwrap(),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"127.0.0.1:5999/webapp"}},"image":{{"docker-manifest-digest":"{DIGEST}"}},"type":"cosign container image signature"}},"optional":null}}"#
            )
        );
        let annotations = BTreeMap::from([
            ("team".to_string(), "web<&>".to_string()),
            ("build".to_string(), "42".to_string()),
        ]);
        assert_eq!(
            String::from_utf8(build("127.0.0.1:5999/webapp", &d, &annotations)).unwrap(),
            format!(
                r#"{{"critical":{{"identity":{{"docker-reference":"127.0.0.1:5999/webapp"}},"image":{{"docker-manifest-digest":"{DIGEST}"}},"type":"cosign container image signature"}},"optional":{{"build":"42","team":"web\u003c\u0026\u003e"}}}}"#
            )
        );
    }

    #[test]
    fn go_escaping_of_quotes_and_control_characters() {
        let mut s = String::new();
        push_go_string(&mut s, "a\"b\\c\n\u{1}\u{8}\u{2028}é");
        assert_eq!(s, r#""a\"b\\c\n\u0001\u0008\u2028é""#);
    }

    #[test]
    fn parses_what_it_builds_and_what_skopeo_writes() {
        let d = Digest::parse(DIGEST).unwrap();
        let annotations = BTreeMap::from([("k".to_string(), "v".to_string())]);
        let p = parse(&build("r/app", &d, &annotations)).unwrap();
        assert_eq!(p.docker_reference, "r/app");
        assert_eq!(p.manifest_digest, DIGEST);
        assert_eq!(p.annotations, annotations);

        // containers/image writes a tagged reference and creator/timestamp in optional.
        let skopeo = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"r/app:v1"}},"image":{{"docker-manifest-digest":"{DIGEST}"}},"type":"cosign container image signature"}},"optional":{{"creator":"containers/image 5.34","timestamp":1700000000}}}}"#
        );
        let p = parse(skopeo.as_bytes()).unwrap();
        assert_eq!(p.annotations["creator"], "containers/image 5.34");
        // A number never equals a required string annotation, as in cosign.
        assert!(!p.annotations.contains_key("timestamp"));
    }

    #[test]
    fn refuses_anything_but_the_strict_shape() {
        let base = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"r"}},"image":{{"docker-manifest-digest":"{DIGEST}"}},"type":"cosign container image signature"}},"optional":null}}"#
        );
        assert!(parse(base.as_bytes()).is_ok());
        let extra_top = base.replacen("{\"critical\"", "{\"extra\":1,\"critical\"", 1);
        let extra_critical = base.replacen("\"type\"", "\"extra\":1,\"type\"", 1);
        let duplicate = base.replacen(
            "\"type\":\"cosign container image signature\"",
            "\"type\":\"cosign container image signature\",\"type\":\"x\"",
            1,
        );
        let wrong_type = base.replace("cosign container image signature", "something else");
        let missing_image = base.replacen(
            &format!(r#""image":{{"docker-manifest-digest":"{DIGEST}"}},"#),
            "",
            1,
        );
        for bad in [
            extra_top,
            extra_critical,
            duplicate,
            missing_image,
            "[]".into(),
            "x".into(),
        ] {
            assert!(
                matches!(parse(bad.as_bytes()), Err(PayloadError::Malformed(_))),
                "should refuse {bad}"
            );
        }
        assert!(matches!(
            parse(wrong_type.as_bytes()),
            Err(PayloadError::WrongType(t)) if t == "something else"
        ));
    }
}
