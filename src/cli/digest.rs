//! `imagegate digest`: resolve an image reference to its manifest digest.

use std::path::PathBuf;

use clap::Args;

use super::Context;
use crate::error::{Error, Exit};
use crate::fsutil::write_atomic;
use crate::oci::Platform;
use crate::source::{self, ImageSource};

/// Resolve IMAGE to its manifest digest and print the pinned reference (REPO@sha256:…).
#[derive(Debug, Args)]
pub struct DigestArgs {
    /// The image: REGISTRY/REPO[:TAG][@DIGEST], oci:DIR[:TAG] (an OCI image layout) or
    /// oci-archive:FILE[:TAG]. Local layouts are read without any network.
    #[arg(value_name = "IMAGE")]
    pub image: String,

    /// Write `sha256:<hex>` here, with no trailing newline (Tekton reads results verbatim).
    #[arg(long, value_name = "FILE")]
    pub digest_file: Option<PathBuf>,

    /// Write the pinned reference `REPO@sha256:<hex>` here, with no trailing newline.
    #[arg(long, value_name = "FILE")]
    pub ref_file: Option<PathBuf>,

    /// For a multi-platform index: the digest of this platform's image instead of the index's.
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = Platform::parse)]
    pub platform: Option<Platform>,
}

pub async fn run(ctx: &Context, args: DigestArgs) -> Result<Exit, Error> {
    let source = ImageSource::parse(&args.image)?;
    let store = ctx.store(&source).await?;
    let resolved = source::resolve(&source, &store, args.platform.as_ref()).await?;
    let digest = resolved.digest();
    if let Some((platform, _)) = &resolved.child {
        tracing::debug!("{source} is an index; {platform} is {digest}");
    }
    let pinned = source.pinned(digest);
    if let Some(path) = &args.digest_file {
        write_atomic(path, digest.to_string().as_bytes())?;
    }
    if let Some(path) = &args.ref_file {
        write_atomic(path, pinned.as_bytes())?;
    }
    println!("{pinned}");
    Ok(Exit::Passed)
}
