//! Signature integrations (`--signature-integrations FILE`): what StackRox's
//! `GET /v1/signatureintegrations` returns, mapping an integration ID (as policies name it in
//! `Image Signature Verified By`) to the keys that verify for it.
//!
//! Accepted: `{"integrations":[…]}`, a single integration object, or a bare list. Each
//! integration's `cosign.publicKeys[].publicKeyPemEnc` become [`KeyId::PublicKey`]s; as an
//! extension, `"keyUris": ["awskms://…", "hashivault://…"]` on an integration become
//! [`KeyId::Uri`]s. Keyless verification (`cosignCertificates`) cannot be checked offline; such
//! an integration is kept, and policies naming it are reported as not evaluated. An enabled
//! `transparencyLog` makes a signature count only with its Rekor bundle, checked with
//! `publicKeyPemEnc` (without that key only Sigstore's TUF keys, online, could tell: not
//! evaluated). A signature without a bundle was never uploaded (cosign attaches the bundle
//! whenever it uploads), so it does not count, whether or not `validateOffline` is set.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::error::StackRoxError;
use crate::facts::{KeyId, KeyRequest, RekorKey};

/// Files larger than this are refused.
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// One signature integration.
#[derive(Clone, Debug)]
pub struct SignatureIntegration {
    /// `io.stackrox.signatureintegration.<uuid>`.
    pub id: String,
    pub name: String,
    /// The keys a signature may verify with for this integration.
    pub keys: Vec<KeyId>,
    /// The same keys with where to get them (the PEM text, or the URI).
    pub key_requests: Vec<KeyRequest>,
    /// The integration also (or only) trusts keyless signatures, which imagegate cannot check.
    pub keyless: bool,
    /// `transparencyLog` when enabled: a signature then counts only with the log's proof.
    pub tlog: Option<IntegrationTlog>,
}

/// An integration's enabled `transparencyLog` settings.
#[derive(Clone, Debug)]
pub struct IntegrationTlog {
    /// `validateOffline`: only the signature's bundle may prove it; no Rekor lookup.
    pub validate_offline: bool,
    /// `url` of the Rekor instance looked up when there is no bundle.
    pub url: String,
    /// `publicKeyPemEnc`, the log's key; absent means Sigstore's public keys (from TUF).
    pub rekor: Option<RekorKey>,
}

/// The signature integrations read from a file.
#[derive(Clone, Debug, Default)]
pub struct SignatureIntegrations {
    /// The file they came from, for messages.
    pub source: String,
    integrations: Vec<SignatureIntegration>,
}

fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawIntegration {
    #[serde(default, deserialize_with = "nullable")]
    id: String,
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default)]
    cosign: Option<RawCosign>,
    #[serde(default, deserialize_with = "nullable")]
    cosign_certificates: Vec<Value>,
    #[serde(default, deserialize_with = "nullable")]
    key_uris: Vec<String>,
    #[serde(default)]
    transparency_log: Option<RawTlog>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawTlog {
    #[serde(default, deserialize_with = "nullable")]
    enabled: bool,
    #[serde(default, deserialize_with = "nullable")]
    url: String,
    #[serde(default, deserialize_with = "nullable")]
    validate_offline: bool,
    #[serde(default, deserialize_with = "nullable")]
    public_key_pem_enc: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawCosign {
    #[serde(default, deserialize_with = "nullable")]
    public_keys: Vec<RawKey>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawKey {
    #[serde(default, deserialize_with = "nullable")]
    name: String,
    #[serde(default, deserialize_with = "nullable")]
    public_key_pem_enc: String,
}

#[derive(Deserialize)]
struct RawList {
    #[serde(default, deserialize_with = "nullable")]
    integrations: Vec<RawIntegration>,
}

impl SignatureIntegrations {
    /// Reads the integrations file at `path`.
    pub fn load(path: &Path) -> Result<SignatureIntegrations, StackRoxError> {
        let io_error = |source| StackRoxError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = std::fs::File::open(path).map_err(io_error)?;
        let mut text = String::new();
        file.take(MAX_FILE_BYTES + 1)
            .read_to_string(&mut text)
            .map_err(io_error)?;
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(StackRoxError::TooLarge {
                path: path.to_path_buf(),
                limit: MAX_FILE_BYTES,
            });
        }
        SignatureIntegrations::parse(&text, path)
    }

    /// Parses integrations from `text`; `path` names the file in errors.
    pub fn parse(text: &str, path: &Path) -> Result<SignatureIntegrations, StackRoxError> {
        let value: Value =
            serde_json::from_str(text).map_err(|e| StackRoxError::parse(path, &e))?;
        let raw = match &value {
            Value::Array(_) => serde_json::from_str::<Vec<RawIntegration>>(text),
            Value::Object(o) if o.contains_key("integrations") => {
                serde_json::from_str::<RawList>(text).map(|l| l.integrations)
            }
            Value::Object(o) if o.contains_key("id") => {
                serde_json::from_str::<RawIntegration>(text).map(|i| vec![i])
            }
            _ => {
                return Err(integration_error(
                    path,
                    None,
                    "expected {\"integrations\": [...]} (as GET /v1/signatureintegrations returns it), one integration, or a list of them".into(),
                ));
            }
        }
        .map_err(|e| StackRoxError::parse(path, &e))?;

        let mut integrations: Vec<SignatureIntegration> = Vec::new();
        for (index, raw) in raw.into_iter().enumerate() {
            let integration = convert(raw, index, path)?;
            if integrations.iter().any(|i| i.id == integration.id) {
                return Err(integration_error(
                    path,
                    Some(&integration.id),
                    "the ID appears more than once; each integration needs its own ID".into(),
                ));
            }
            integrations.push(integration);
        }
        Ok(SignatureIntegrations {
            source: path.display().to_string(),
            integrations,
        })
    }

    /// Where to get the key `id`, from whichever integration names it.
    pub fn key_request(&self, id: &KeyId) -> Option<&KeyRequest> {
        self.integrations
            .iter()
            .flat_map(|i| &i.key_requests)
            .find(|r| &r.id == id)
    }

    /// The Rekor keys the integrations' transparency-log settings name.
    pub fn rekor_keys(&self) -> Vec<RekorKey> {
        let mut keys: Vec<RekorKey> = self
            .integrations
            .iter()
            .filter_map(|i| i.tlog.as_ref()?.rekor.clone())
            .collect();
        keys.sort();
        keys.dedup();
        keys
    }

    /// The integration with `id`.
    pub fn get(&self, id: &str) -> Option<&SignatureIntegration> {
        self.integrations.iter().find(|i| i.id == id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &SignatureIntegration> {
        self.integrations.iter()
    }

    pub fn len(&self) -> usize {
        self.integrations.len()
    }

    pub fn is_empty(&self) -> bool {
        self.integrations.is_empty()
    }
}

fn integration_error(path: &Path, integration: Option<&str>, message: String) -> StackRoxError {
    StackRoxError::Integrations {
        path: PathBuf::from(path),
        integration: integration.map(str::to_string),
        message,
    }
}

fn convert(
    raw: RawIntegration,
    index: usize,
    path: &Path,
) -> Result<SignatureIntegration, StackRoxError> {
    let id = raw.id.trim().to_string();
    if id.is_empty() {
        let who = if raw.name.is_empty() {
            format!("#{}", index + 1)
        } else {
            format!("#{} (\"{}\")", index + 1, raw.name)
        };
        return Err(integration_error(
            path,
            Some(&who),
            "the integration has no \"id\"; policies name integrations by ID (io.stackrox.signatureintegration.<uuid>)".into(),
        ));
    }
    let mut requests = Vec::new();
    for key in raw.cosign.map(|c| c.public_keys).unwrap_or_default() {
        let request = KeyRequest::pem(&key.public_key_pem_enc).map_err(|reason| {
            integration_error(
                path,
                Some(&id),
                format!(
                    "public key {:?}: {reason}; publicKeyPemEnc must hold a PEM \"-----BEGIN PUBLIC KEY-----\" block",
                    key.name
                ),
            )
        })?;
        requests.push(request);
    }
    for uri in raw.key_uris {
        let uri = uri.trim();
        if !uri.contains("://") {
            return Err(integration_error(
                path,
                Some(&id),
                format!(
                    "key URI {uri:?} has no scheme; write e.g. awskms://…, gcpkms://…, hashivault://…, azurekms://… or k8s://…"
                ),
            ));
        }
        requests.push(KeyRequest::uri(uri));
    }
    requests.sort();
    requests.dedup();
    let keys = requests.iter().map(|r| r.id.clone()).collect();
    let tlog = match raw.transparency_log {
        Some(t) if t.enabled => {
            let pem = t.public_key_pem_enc.trim();
            let rekor = if pem.is_empty() {
                None
            } else {
                let key = KeyId::for_public_key_pem(pem).map_err(|reason| {
                    integration_error(
                        path,
                        Some(&id),
                        format!("transparencyLog.publicKeyPemEnc: {reason}; it must hold the Rekor log's PEM public key"),
                    )
                })?;
                Some(RekorKey {
                    id: key,
                    pem: pem.to_string(),
                })
            };
            Some(IntegrationTlog {
                validate_offline: t.validate_offline,
                url: t.url,
                rekor,
            })
        }
        _ => None,
    };
    Ok(SignatureIntegration {
        id,
        name: raw.name,
        keys,
        key_requests: requests,
        keyless: !raw.cosign_certificates.is_empty(),
        tlog,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEM: &str = "-----BEGIN PUBLIC KEY-----\\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nXRh950IZbRj8Ra/N9sbqOPZrfM\\n5/KAQN0/KjHcorm/J5yctVd7iEcnessRQjU917hmKO6JWVGHpDguIyakZA==\\n-----END PUBLIC KEY-----\\n";
    const ID: &str = "io.stackrox.signatureintegration.12a37a37-760e-4388-9e79-d62726c075b2";

    fn integration(extra: &str) -> String {
        format!(
            r#"{{"id":"{ID}","name":"Red Hat","cosign":{{"publicKeys":[{{"name":"release","publicKeyPemEnc":"{PEM}"}}]}}{extra}}}"#
        )
    }

    fn parse(text: &str) -> Result<SignatureIntegrations, StackRoxError> {
        SignatureIntegrations::parse(text, Path::new("integrations.json"))
    }

    #[test]
    fn api_shape_single_object_and_list() {
        let one = integration("");
        for text in [
            format!(r#"{{"integrations":[{one}]}}"#),
            one.clone(),
            format!("[{one}]"),
        ] {
            let set = parse(&text).unwrap();
            assert_eq!(set.len(), 1);
            let i = set.get(ID).unwrap();
            assert_eq!(i.name, "Red Hat");
            assert_eq!(i.keys.len(), 1);
            assert!(matches!(i.keys[0], KeyId::PublicKey(_)));
            assert!(!i.keyless);
        }
    }

    #[test]
    fn key_uris_and_keyless_flag() {
        let set = parse(&integration(
            r#","keyUris":["awskms:///alias/release","hashivault://transit/release"],"cosignCertificates":[{"certificateOidcIssuer":"x"}]"#,
        ))
        .unwrap();
        let i = set.get(ID).unwrap();
        assert_eq!(i.keys.len(), 3);
        assert!(
            i.keys
                .contains(&KeyId::Uri("awskms:///alias/release".into()))
        );
        assert!(i.keyless);
    }

    #[test]
    fn errors_name_file_and_integration() {
        let bad_key = integration("").replace(PEM, "not a key");
        let err = parse(&bad_key).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!(
                "integrations.json: integration {ID}: public key \"release\""
            )),
            "{err}"
        );

        let err = parse(&format!("[{},{}]", integration(""), integration("")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("appears more than once"), "{err}");

        let err = parse(r#"[{"name":"nameless"}]"#).unwrap_err().to_string();
        assert!(err.contains("integration #1 (\"nameless\")"), "{err}");

        let err = parse(r#"{"foo": 1}"#).unwrap_err().to_string();
        assert!(err.contains("GET /v1/signatureintegrations"), "{err}");

        let err = parse("{\"integrations\": [\n  {\"id\": 5}\n]}")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("integrations.json:2:"), "{err}");

        let err = parse(&integration(r#","keyUris":["alias/release"]"#))
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no scheme"), "{err}");
    }
}
