//! `azurekms://VAULT.vault.azure.net/KEY[/VERSION]`: an Azure Key Vault key.

use super::{KeyContext, KeyError, KeyRef, PublicKey};

/// Parses what follows `azurekms://` (cosign: `^azurekms://([^/]+)/([^/]+)(/[a-z0-9]*)?$`).
pub fn parse_ref(rest: &str) -> Result<KeyRef, String> {
    let shape = "azurekms:// needs VAULT.vault.azure.net/KEY[/VERSION]";
    let parts: Vec<&str> = rest.split('/').collect();
    let (vault, key, version) = match parts.as_slice() {
        [vault, key] => (*vault, *key, None),
        [vault, key, version] => (*vault, *key, Some(*version)),
        _ => return Err(shape.to_string()),
    };
    if vault.is_empty() || key.is_empty() {
        return Err(shape.to_string());
    }
    if let Some(v) = version
        && !v
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err("the key version is lowercase letters and digits".to_string());
    }
    Ok(KeyRef::Azure {
        vault: vault.to_string(),
        key: key.to_string(),
        version: version.filter(|v| !v.is_empty()).map(str::to_string),
    })
}

pub struct AzureKey {
    public: PublicKey,
}

impl AzureKey {
    pub async fn connect(
        vault: &str,
        key: &str,
        _version: Option<&str>,
        _ctx: &KeyContext<'_>,
    ) -> Result<AzureKey, KeyError> {
        Err(KeyError::NotConfigured {
            backend: "Azure Key Vault",
            reason: format!("azurekms://{vault}/{key}: this backend is being built"),
        })
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub async fn sign(&self, _payload: &[u8]) -> Result<Vec<u8>, KeyError> {
        Err(KeyError::Refused(
            "Azure Key Vault signing is being built".into(),
        ))
    }
}
