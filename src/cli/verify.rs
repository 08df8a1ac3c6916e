//! `imagegate verify`: check an image's cosign signatures with keys the caller names.

use std::collections::BTreeMap;

use clap::Args;

use super::{Context, parse_annotation};
use crate::cosign::rekor::RekorKey;
use crate::cosign::sigstore_bundle::{self, Discovery};
use crate::cosign::{sigimage, verify};
use crate::error::{Error, Exit};
use crate::keys::{self, KeyRef};
use crate::source::{self, ImageSource, Store};

/// Verify IMAGE's cosign signatures with one or more keys.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The image in a registry: REGISTRY/REPO[:TAG][@DIGEST].
    #[arg(value_name = "IMAGE")]
    pub image: String,

    /// A public key (or any key URI imagegate signs with); repeatable. The image passes when a
    /// signature verifies with any of them (see --require-all-keys).
    #[arg(long = "key", value_name = "URI", required = true)]
    pub keys: Vec<String>,

    /// Pass only when every --key verifies at least one signature.
    #[arg(long)]
    pub require_all_keys: bool,

    /// The repository the signature must name (its docker-reference); a tag-qualified
    /// reference to it, as skopeo writes, is accepted.
    #[arg(long, value_name = "REPO")]
    pub identity: Option<String>,

    /// An annotation the signed payload must carry (repeatable).
    #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE", value_parser = parse_annotation)]
    pub annotations: Vec<(String, String)>,

    /// Also require each signature's Rekor bundle from the log with this public key (PEM file):
    /// its entry must record the signature, payload and key, and its signed entry timestamp
    /// must verify, checked offline as cosign does. Without it the transparency log is not
    /// consulted (as `cosign verify --insecure-ignore-tlog`).
    #[arg(long, value_name = "FILE", env = "SIGSTORE_REKOR_PUBLIC_KEY")]
    pub rekor_public_key: Option<std::path::PathBuf>,
}

pub async fn run(ctx: &Context, args: VerifyArgs) -> Result<Exit, Error> {
    let ImageSource::Registry(image) = ImageSource::parse(&args.image)? else {
        return Err(Error::Usage(format!(
            "'{}' is a local layout; cosign signatures live in a registry",
            args.image
        )));
    };
    let key_refs = args
        .keys
        .iter()
        .map(|k| KeyRef::parse(k))
        .collect::<Result<Vec<_>, _>>()?;
    let rekor = match &args.rekor_public_key {
        Some(path) => Some(read_rekor_key(path)?),
        None => None,
    };
    let registry = ctx.registry().await?;
    let source = ImageSource::Registry(image.clone());
    let store = Store::open(&source, Some(registry))?;
    let digest = source::resolve(&source, &store, None)
        .await?
        .digest()
        .clone();
    let pinned = image.pinned(&digest);

    let key_ctx = ctx.key_context(registry.http());
    let mut keys_loaded = Vec::new();
    for key_ref in &key_refs {
        keys_loaded.push((key_ref, keys::public_key(key_ref, &key_ctx).await?));
    }

    let claims = verify::Claims {
        digest: Some(digest.clone()),
        identity: args.identity.clone(),
        annotations: args.annotations.iter().cloned().collect::<BTreeMap<_, _>>(),
        rekor,
    };
    let sig_ref = sigimage::signature_ref(&image, &digest, &ctx.env)?;

    // As cosign 3: Sigstore bundles attached as referrers first; the `.sig` tag only when the
    // image has none.
    // A registry that cannot list referrers (some answer 400 or 405, not 404) is read the old
    // way, as cosign 3 falls back on any error looking for bundles.
    let found = match sigstore_bundle::fetch(registry, &sig_ref, &digest, Discovery::Cosign).await {
        Ok(found) => found,
        Err(e) => {
            ctx.note(&format!(
                "could not look for Sigstore bundles ({e}); reading the .sig tag instead"
            ));
            sigstore_bundle::Found::default()
        }
    };
    for (manifest, why) in &found.skipped {
        ctx.note(&format!(
            "the referrer {manifest} was passed over, as cosign passes it over: {why}"
        ));
    }
    let bundles = found.bundles;
    let (found, what, outcomes) = if !bundles.is_empty() {
        ctx.note(&format!(
            "{} Sigstore bundle(s) attached to {pinned} as referrers; verifying those (as cosign 3 does, the .sig tag is read only when there are none)",
            bundles.len()
        ));
        let outcomes = keys_loaded
            .iter()
            .map(|(key_ref, key)| {
                let check = sigstore_bundle::check(&bundles, key, &claims, &image);
                KeyOutcome {
                    key_ref,
                    kind: key.kind(),
                    verified: check
                        .verified
                        .into_iter()
                        .map(|v| (v.index, v.printed))
                        .collect(),
                    failures: check.failures,
                }
            })
            .collect::<Vec<_>>();
        (
            bundles.len(),
            format!("Sigstore bundle(s) attached to {pinned}"),
            outcomes,
        )
    } else {
        let Some(sig_image) = sigimage::read(registry, &sig_ref).await? else {
            return Err(Error::Verification {
                image: pinned,
                message: format!(
                    "no signatures found (looked for {sig_ref} and for Sigstore bundles among the image's referrers)"
                ),
                details: Vec::new(),
            });
        };
        let fetched = verify::fetch(registry, &sig_image).await;
        let outcomes = keys_loaded
            .iter()
            .map(|(key_ref, key)| {
                let check = verify::check(&fetched, key, &claims);
                KeyOutcome {
                    key_ref,
                    kind: key.kind(),
                    verified: check
                        .verified
                        .into_iter()
                        .map(|v| {
                            let printed =
                                serde_json::from_slice(&v.payload_bytes).unwrap_or_default();
                            (v.index, printed)
                        })
                        .collect(),
                    failures: check.failures,
                }
            })
            .collect::<Vec<_>>();
        (
            sig_image.layers.len(),
            format!("signature(s) in {sig_ref}"),
            outcomes,
        )
    };

    let mut printed = BTreeMap::new();
    let mut details = Vec::new();
    let mut keys_that_verified = 0;
    for outcome in &outcomes {
        if outcome.verified.is_empty() {
            for (index, reason) in &outcome.failures {
                details.push(format!(
                    "key {}: signature {}: {reason}",
                    outcome.key_ref,
                    index + 1
                ));
            }
            continue;
        }
        keys_that_verified += 1;
        for (index, value) in &outcome.verified {
            ctx.note(&format!(
                "signature {} of {found} verified with key {} ({})",
                index + 1,
                outcome.key_ref,
                outcome.kind
            ));
            printed.insert(*index, value.clone());
        }
    }
    let passed = if args.require_all_keys {
        keys_that_verified == outcomes.len()
    } else {
        keys_that_verified > 0
    };
    if !passed {
        let message = if keys_that_verified == 0 {
            format!(
                "no matching signatures: none of the {found} {what} verifies with the given key(s)"
            )
        } else {
            format!(
                "only {keys_that_verified} of {} keys verified a signature, and --require-all-keys asks for all",
                outcomes.len()
            )
        };
        return Err(Error::Verification {
            image: pinned,
            message,
            details,
        });
    }
    let tlog = if claims.rekor.is_some() {
        ", their transparency-log bundles verified offline"
    } else {
        ""
    };
    ctx.note(&format!(
        "Verification for {pinned}: the cosign claims were validated{tlog} and the signatures verified against the given key(s)"
    ));
    // As cosign: the verified claims on stdout, as a JSON array.
    let values: Vec<&serde_json::Value> = printed.values().collect();
    println!(
        "{}",
        serde_json::to_string(&values).unwrap_or_else(|_| "[]".into())
    );
    Ok(Exit::Passed)
}

/// What checking every signature with one key gave.
struct KeyOutcome<'a> {
    key_ref: &'a KeyRef,
    kind: &'static str,
    /// (index, the claim printed for it).
    verified: Vec<(usize, serde_json::Value)>,
    failures: Vec<(usize, String)>,
}

/// The Rekor public key file of `--rekor-public-key`.
fn read_rekor_key(path: &std::path::Path) -> Result<RekorKey, Error> {
    let hint = Some(
        "pass the transparency log's public key as a PEM file (a Rekor server hands it out at /api/v1/log/publicKey)".to_string(),
    );
    let text = std::fs::read_to_string(path).map_err(|e| Error::Input {
        message: format!("cannot read the Rekor public key {}: {e}", path.display()),
        hint: hint.clone(),
    })?;
    RekorKey::from_pem(&text).map_err(|e| Error::Input {
        message: format!("{}: {e}", path.display()),
        hint,
    })
}
