//! `imagegate sign`: sign an image's digest cosign-compatibly and store the signature next to
//! it, keeping every signature already there.

use std::collections::BTreeMap;

use clap::Args;

use super::{Context, parse_annotation};
use crate::cosign::{payload, sigimage};
use crate::error::{Error, Exit};
use crate::keys::{self, KeyRef};
use crate::source::{self, ImageSource, Store};

/// Sign IMAGE's manifest digest (a tag is resolved first; only the digest is signed).
#[derive(Debug, Args)]
pub struct SignArgs {
    /// The image in a registry: REGISTRY/REPO[:TAG][@DIGEST].
    #[arg(value_name = "IMAGE")]
    pub image: String,

    /// The signing key: a cosign.key file, env://VAR, k8s://NS/SECRET, hashivault://KEY,
    /// awskms://[ENDPOINT]/KEY, gcpkms://…, azurekms://…
    #[arg(long, value_name = "URI")]
    pub key: String,

    /// An annotation in the signed payload's `optional` section (repeatable), as `cosign sign -a`.
    #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE", value_parser = parse_annotation)]
    pub annotations: Vec<(String, String)>,

    /// The identity written as `docker-reference` (default: the image's repository, as cosign).
    #[arg(long = "sign-container-identity", value_name = "REF")]
    pub identity: Option<String>,

    /// Print the payload, the signature and the tag it would push; write nothing anywhere.
    #[arg(long)]
    pub dry_run: bool,
}

pub async fn run(ctx: &Context, args: SignArgs) -> Result<Exit, Error> {
    let ImageSource::Registry(image) = ImageSource::parse(&args.image)? else {
        return Err(Error::Usage(format!(
            "'{}' is a local layout; signatures are stored in a registry: push the image, then sign REGISTRY/REPO@DIGEST",
            args.image
        )));
    };
    let key_ref = KeyRef::parse(&args.key)?;
    let registry = ctx.registry().await?;
    let source = ImageSource::Registry(image.clone());
    let store = Store::open(&source, Some(registry))?;
    let resolved = source::resolve(&source, &store, None).await?;
    let digest = resolved.digest().clone();
    if image.digest().is_none() {
        ctx.note(&format!("{image} resolves to {digest}; signing the digest"));
    }

    let signer = keys::signer(&key_ref, &ctx.key_context(registry.http())).await?;
    let annotations: BTreeMap<String, String> = args.annotations.into_iter().collect();
    let identity = args
        .identity
        .unwrap_or_else(|| sigimage::docker_reference(&image));
    let payload = payload::build(&identity, &digest, &annotations);
    let signature = signer.sign(&payload).await?;
    let signature_b64 = keys::file::base64(&signature);
    let sig_ref = sigimage::signature_ref(&image, &digest, &ctx.env)?;

    if args.dry_run {
        println!("dry run: nothing was written to any registry");
        println!("image:      {}", image.pinned(&digest));
        println!("would push: {sig_ref}");
        println!("payload:    {}", String::from_utf8_lossy(&payload));
        println!("signature:  {signature_b64}");
        println!("key:        {} ({})", key_ref, signer.public_key().kind());
        return Ok(Exit::Passed);
    }

    let new = sigimage::NewSignature {
        payload: &payload,
        signature_b64: &signature_b64,
    };
    match sigimage::append(registry, &sig_ref, &new, signer.public_key(), &ctx.env).await? {
        sigimage::Appended::Added {
            manifest_digest,
            layers,
        } => {
            ctx.note(&format!(
                "pushed the signature to {sig_ref} ({layers} signature{} there now; manifest {manifest_digest})",
                if layers == 1 { "" } else { "s" }
            ));
        }
        sigimage::Appended::AlreadySigned { layer } => {
            ctx.note(&format!(
                "{} is already signed with this key (signature {} in {sig_ref}); nothing pushed",
                image.pinned(&digest),
                layer + 1
            ));
        }
    }
    println!("{}", image.pinned(&digest));
    Ok(Exit::Passed)
}
