//! `hashivault://KEY`: a HashiCorp Vault (or OpenBao) transit key.

use super::{KeyContext, KeyError, PublicKey};

pub struct VaultKey {
    public: PublicKey,
}

impl VaultKey {
    pub async fn connect(key: &str, _ctx: &KeyContext<'_>) -> Result<VaultKey, KeyError> {
        Err(KeyError::NotConfigured {
            backend: "Vault transit",
            reason: format!("hashivault://{key}: this backend is being built"),
        })
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub async fn sign(&self, _payload: &[u8]) -> Result<Vec<u8>, KeyError> {
        Err(KeyError::Refused(
            "Vault transit signing is being built".into(),
        ))
    }
}
