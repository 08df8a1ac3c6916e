//! Cosign's signature format: the simple-signing payload, the `.sig` image that stores
//! signatures next to the image, and the rules that verify them.

pub mod attestation;
pub mod bundle;
pub mod payload;
pub mod sigimage;
pub mod verify;
