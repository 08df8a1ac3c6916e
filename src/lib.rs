//! imagegate: a supply-chain gate for container images.
//!
//! The pipeline is data: a reference resolves to a digest (`source`, `registry`), is signed,
//! its facts are gathered once, judged by pure rules, and reported. The network lives in
//! `registry/` (and, for keys, `keys/`), both on the one HTTP setup in `http`.

pub mod cli;
pub mod cosign;
pub mod digest;
pub mod error;
pub mod facts;
pub mod fsutil;
pub mod http;
pub mod keys;
pub mod oci;
pub mod policy;
pub mod reference;
pub mod registry;
pub mod report;
pub mod secret;
pub mod source;
pub mod ui;
