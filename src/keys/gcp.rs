//! `gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/N]`: a Google
//! Cloud KMS asymmetric signing key.

use super::{KeyContext, KeyError, KeyRef, PublicKey};

/// Parses what follows `gcpkms://` (`…/versions/N` is accepted as cosign accepts it).
pub fn parse_ref(rest: &str) -> Result<KeyRef, String> {
    let parts: Vec<&str> = rest.split('/').collect();
    let shape =
        "gcpkms:// needs projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/N]";
    if parts.len() < 8 || parts.iter().any(|p| p.is_empty()) {
        return Err(shape.to_string());
    }
    let fixed = [
        (0, "projects"),
        (2, "locations"),
        (4, "keyRings"),
        (6, "cryptoKeys"),
    ];
    if fixed.iter().any(|(i, word)| parts[*i] != *word) {
        return Err(shape.to_string());
    }
    let key_name = parts[..8].join("/");
    let version = match &parts[8..] {
        [] => None,
        ["cryptoKeyVersions" | "versions", n] => Some(n.to_string()),
        _ => return Err(shape.to_string()),
    };
    Ok(KeyRef::Gcp { key_name, version })
}

pub struct GcpKey {
    public: PublicKey,
}

impl GcpKey {
    pub async fn connect(
        key_name: &str,
        _version: Option<&str>,
        _ctx: &KeyContext<'_>,
    ) -> Result<GcpKey, KeyError> {
        Err(KeyError::NotConfigured {
            backend: "Google Cloud KMS",
            reason: format!("gcpkms://{key_name}: this backend is being built"),
        })
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub async fn sign(&self, _payload: &[u8]) -> Result<Vec<u8>, KeyError> {
        Err(KeyError::Refused(
            "Google Cloud KMS signing is being built".into(),
        ))
    }
}
