//! `k8s://NAMESPACE/SECRET`: a cosign key pair kept in a Kubernetes Secret (`cosign.key`,
//! `cosign.password`, `cosign.pub`), read and created through the Kubernetes API.

use super::file::LocalKey;
use super::{KeyContext, KeyError, PublicKey};
use crate::secret::Secret;

pub async fn signer(
    namespace: &str,
    name: &str,
    _ctx: &KeyContext<'_>,
) -> Result<LocalKey, KeyError> {
    Err(KeyError::NotConfigured {
        backend: "Kubernetes",
        reason: format!("k8s://{namespace}/{name}: this backend is being built"),
    })
}

pub async fn public_key(
    namespace: &str,
    name: &str,
    _ctx: &KeyContext<'_>,
) -> Result<PublicKey, KeyError> {
    Err(KeyError::NotConfigured {
        backend: "Kubernetes",
        reason: format!("k8s://{namespace}/{name}: this backend is being built"),
    })
}

/// Creates the Secret `NAMESPACE/NAME` holding a new key pair, as `cosign generate-key-pair
/// k8s://…` does.
pub async fn create_key_pair(
    namespace: &str,
    name: &str,
    _private_pem: &str,
    _public_pem: &str,
    _password: &Secret,
    _ctx: &KeyContext<'_>,
) -> Result<(), KeyError> {
    Err(KeyError::NotConfigured {
        backend: "Kubernetes",
        reason: format!("k8s://{namespace}/{name}: this backend is being built"),
    })
}
