//! Cosign's signature formats: the simple-signing payload, the `.sig` image that stores
//! signatures next to the image (with their Rekor bundles), the `.att` attestations, the
//! Sigstore bundles cosign 3 attaches as referrers, and the rules that verify them.

pub mod attestation;
pub mod payload;
pub mod rekor;
pub mod sigimage;
pub mod sigstore_bundle;
pub mod verify;
