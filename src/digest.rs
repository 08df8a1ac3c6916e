//! Content digests (`sha256:<hex>`), as OCI and go-digest define them.

use std::fmt;
use std::str::FromStr;

use sha2::Digest as _;

/// A validated content digest. Only the algorithms registries accept are allowed
/// (go-digest: sha256, sha384, sha512), with lowercase hex of the exact length.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    algorithm: Algorithm,
    hex: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algorithm {
    Sha256,
    Sha384,
    Sha512,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sha384 => "sha384",
            Algorithm::Sha512 => "sha512",
        }
    }

    fn hex_len(self) -> usize {
        match self {
            Algorithm::Sha256 => 64,
            Algorithm::Sha384 => 96,
            Algorithm::Sha512 => 128,
        }
    }
}

/// Why a digest string was refused; `offset` is the byte offset of the offending part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestError {
    pub offset: usize,
    pub reason: String,
}

impl fmt::Display for DigestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for DigestError {}

impl Digest {
    /// The sha256 digest of `bytes`.
    pub fn sha256_of(bytes: &[u8]) -> Digest {
        Digest {
            algorithm: Algorithm::Sha256,
            hex: hex::encode(sha2::Sha256::digest(bytes)),
        }
    }

    /// Parses `alg:hex`, reporting where it goes wrong.
    pub fn parse(s: &str) -> Result<Digest, DigestError> {
        let Some((alg, hex)) = s.split_once(':') else {
            return Err(DigestError {
                offset: 0,
                reason: "a digest has the form ALGORITHM:HEX, e.g. sha256:<64 hex characters>"
                    .into(),
            });
        };
        let algorithm = match alg {
            "sha256" => Algorithm::Sha256,
            "sha384" => Algorithm::Sha384,
            "sha512" => Algorithm::Sha512,
            "" => {
                return Err(DigestError {
                    offset: 0,
                    reason: "missing digest algorithm before ':'".into(),
                });
            }
            other => {
                return Err(DigestError {
                    offset: 0,
                    reason: format!(
                        "unsupported digest algorithm '{other}' (registries accept sha256, sha384, sha512)"
                    ),
                });
            }
        };
        let hex_offset = alg.len() + 1;
        if let Some((i, c)) = hex
            .char_indices()
            .find(|(_, c)| !matches!(c, '0'..='9' | 'a'..='f'))
        {
            return Err(DigestError {
                offset: hex_offset + i,
                reason: format!("'{c}' is not a lowercase hex digit"),
            });
        }
        if hex.len() != algorithm.hex_len() {
            return Err(DigestError {
                offset: hex_offset,
                reason: format!(
                    "{} digests have {} hex characters, this one has {}",
                    algorithm.name(),
                    algorithm.hex_len(),
                    hex.len()
                ),
            });
        }
        Ok(Digest {
            algorithm,
            hex: hex.to_string(),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.algorithm
    }

    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// Whether `bytes` hash to this digest.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        let actual = match self.algorithm {
            Algorithm::Sha256 => hex::encode(sha2::Sha256::digest(bytes)),
            Algorithm::Sha384 => hex::encode(sha2::Sha384::digest(bytes)),
            Algorithm::Sha512 => hex::encode(sha2::Sha512::digest(bytes)),
        };
        actual == self.hex
    }

    /// The tag cosign stores signatures under: `sha256-<hex>.sig` and friends.
    pub fn tag_with_suffix(&self, suffix: &str) -> String {
        format!("{}-{}.{}", self.algorithm.name(), self.hex, suffix)
    }

    /// `sha256-<hex>`: the tag of the OCI referrers tag schema (the index of the manifests
    /// whose subject is this digest, for registries without the referrers API).
    pub fn referrers_tag(&self) -> String {
        format!("{}-{}", self.algorithm.name(), self.hex)
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.algorithm.name(), self.hex)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Digest::parse(s)
    }
}

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s)
            .map_err(|e| serde::de::Error::custom(format!("invalid digest '{s}': {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn sha256_of_empty_input_is_the_well_known_value() {
        assert_eq!(
            Digest::sha256_of(b"").to_string(),
            format!("sha256:{EMPTY_SHA256}")
        );
    }

    #[test]
    fn parse_round_trips_and_matches_content() {
        let d = Digest::parse(&format!("sha256:{EMPTY_SHA256}")).unwrap();
        assert!(d.matches(b""));
        assert!(!d.matches(b"x"));
        assert_eq!(
            d.tag_with_suffix("sig"),
            format!("sha256-{EMPTY_SHA256}.sig")
        );
    }

    #[test]
    fn parse_rejects_bad_digests_with_positions() {
        let cases = [
            ("sha256", 0, "ALGORITHM:HEX"),
            ("md5:abcd", 0, "unsupported digest algorithm 'md5'"),
            (":abcd", 0, "missing digest algorithm"),
            ("sha256:abc", 7, "have 64 hex characters, this one has 3"),
            ("sha256:ABCDEF", 7, "'A' is not a lowercase hex digit"),
            ("sha256:e3b0g", 11, "'g' is not a lowercase hex digit"),
        ];
        for (input, offset, reason) in cases {
            let err = Digest::parse(input).unwrap_err();
            assert_eq!(err.offset, offset, "{input}");
            assert!(err.reason.contains(reason), "{input}: {}", err.reason);
        }
    }

    #[test]
    fn sha512_needs_128_hex_characters() {
        assert!(Digest::parse(&format!("sha512:{}", "a".repeat(128))).is_ok());
        assert!(Digest::parse(&format!("sha512:{}", "a".repeat(64))).is_err());
    }
}
