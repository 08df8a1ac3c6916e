//! `imagegate generate-key-pair`: a cosign-format key pair, in files or a Kubernetes Secret.

use std::path::{Path, PathBuf};

use clap::Args;

use super::Context;
use crate::error::{Error, Exit};
use crate::fsutil;
use crate::keys::{self, KeyError, KeyRef};

/// Generate an ECDSA P-256 key pair in cosign's format (encrypted with COSIGN_PASSWORD or a
/// password asked on the terminal).
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// k8s://NAMESPACE/SECRET to store the pair in a Kubernetes Secret (as cosign does; the
    /// public key is also written to PREFIX.pub).
    #[arg(value_name = "k8s://NS/NAME")]
    pub target: Option<String>,

    /// Write PREFIX.key and PREFIX.pub.
    #[arg(long, value_name = "PREFIX", default_value = "cosign")]
    pub output_key_prefix: String,
}

pub async fn run(ctx: &Context, args: KeygenArgs) -> Result<Exit, Error> {
    let k8s = match &args.target {
        None => None,
        Some(t) => match KeyRef::parse(t)? {
            KeyRef::Kubernetes { namespace, name } => Some((namespace, name)),
            _ => {
                return Err(Error::Usage(format!(
                    "'{t}': generate-key-pair stores keys in files (--output-key-prefix) or in k8s://NAMESPACE/SECRET"
                )));
            }
        },
    };
    let private_path = PathBuf::from(format!("{}.key", args.output_key_prefix));
    let public_path = PathBuf::from(format!("{}.pub", args.output_key_prefix));
    let targets: Vec<&PathBuf> = if k8s.is_some() {
        vec![&public_path]
    } else {
        vec![&private_path, &public_path]
    };
    for path in &targets {
        if path.exists() {
            return Err(Error::Usage(format!(
                "{} already exists; imagegate does not overwrite keys (move it away or pick another --output-key-prefix)",
                path.display()
            )));
        }
    }
    let password = keys::password::for_new_key(ctx.interactive())?;
    let (private_pem, public_pem) = keys::file::generate(&password)?;

    if let Some((namespace, name)) = k8s {
        let registry = ctx.registry().await?;
        keys::k8s::create_key_pair(
            &namespace,
            &name,
            &private_pem,
            &public_pem,
            &password,
            &ctx.key_context(registry.http()),
        )
        .await?;
        ctx.note(&format!(
            "created the Secret {namespace}/{name} with cosign.key, cosign.password and cosign.pub"
        ));
    } else {
        write_key(&private_path, private_pem.as_bytes(), 0o600)?;
        ctx.note(&format!(
            "private key written to {}",
            private_path.display()
        ));
    }
    write_key(&public_path, public_pem.as_bytes(), 0o644)?;
    ctx.note(&format!("public key written to {}", public_path.display()));
    Ok(Exit::Passed)
}

fn write_key(path: &Path, bytes: &[u8], mode: u32) -> Result<(), Error> {
    fsutil::write_atomic_with_mode(path, bytes, mode).map_err(|e| {
        Error::Key(KeyError::Write {
            path: path.to_path_buf(),
            reason: e.source.to_string(),
        })
    })
}
