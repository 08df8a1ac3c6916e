//! `imagegate gate`: the step a pipeline runs. Resolve the digest (and write the digest file),
//! sign that digest, confirm the new signature verifies, gather the image's facts once, judge
//! them, report, exit. `--dry-run` writes nothing to any registry and, without `--key`, signs
//! with a key that lives only in memory, so the whole path still runs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use bytes::Bytes;
use chrono::Utc;
use clap::Args;

use super::check::{self, ReportArgs, RuleArgs, Rules};
use super::{Context, parse_annotation};
use crate::cosign::{payload, sigimage, verify};
use crate::error::{Error, Exit};
use crate::facts::gather::{self, GatherOptions, Gatherer};
use crate::fsutil::write_atomic;
use crate::keys::{self, KeyRef, Signer};
use crate::reference::ImageRef;
use crate::report::{ImageReport, Report, ci};
use crate::source::{self, ImageSource};
use crate::ui::Progress;

/// Resolve, sign, check and report IMAGE in one step.
#[derive(Debug, Args)]
pub struct GateArgs {
    /// The image: REGISTRY/REPO[:TAG][@DIGEST]; with --dry-run also oci:DIR[:TAG] or
    /// oci-archive:FILE[:TAG].
    #[arg(value_name = "IMAGE")]
    pub image: String,

    /// The signing key URI (see `imagegate sign`). Required unless --dry-run, which then signs
    /// with a key held in memory only.
    #[arg(long, value_name = "URI")]
    pub key: Option<String>,

    /// An annotation in the signed payload (repeatable).
    #[arg(short = 'a', long = "annotation", value_name = "KEY=VALUE", value_parser = parse_annotation)]
    pub annotations: Vec<(String, String)>,

    /// Write nothing to any registry: sign in memory, judge as if the signature were stored.
    #[arg(long)]
    pub dry_run: bool,

    /// Write `sha256:<hex>` here (no trailing newline).
    #[arg(long, value_name = "FILE")]
    pub digest_file: Option<PathBuf>,

    /// Write `REPO@sha256:<hex>` here (no trailing newline).
    #[arg(long, value_name = "FILE")]
    pub ref_file: Option<PathBuf>,

    #[command(flatten)]
    pub rules: RuleArgs,

    #[command(flatten)]
    pub report: ReportArgs,

    /// Tekton: write the results IMAGE_REF and TEST_OUTPUT into this folder
    /// (`$(results.IMAGE_REF.path)`'s folder).
    #[arg(long, value_name = "DIR")]
    pub results_dir: Option<PathBuf>,

    /// GitLab: write IMAGEGATE_DIGEST, IMAGEGATE_REF and IMAGEGATE_VERDICT to this dotenv file
    /// (`artifacts:reports:dotenv`).
    #[arg(long, value_name = "FILE")]
    pub dotenv: Option<PathBuf>,
}

pub async fn run(ctx: &Context, args: GateArgs) -> Result<Exit, Error> {
    // Everything that can be checked without the network is checked first.
    let rules = Rules::load(&args.rules, ctx)?;
    let source = ImageSource::parse(&args.image)?;
    let key_ref = args.key.as_deref().map(KeyRef::parse).transpose()?;
    if !args.dry_run {
        if key_ref.is_none() {
            return Err(Error::Usage(
                "gate signs the image: pass --key URI (or --dry-run to sign with a key held in memory and write nothing)".into(),
            ));
        }
        if matches!(source, ImageSource::Layout(_)) {
            return Err(Error::Usage(format!(
                "'{}' is a local layout: gate stores the signature in a registry; push the image first, or use --dry-run",
                args.image
            )));
        }
    }
    let image_name = args
        .rules
        .image_name
        .as_deref()
        .map(ImageRef::parse)
        .transpose()?;
    let progress = Progress::new(&ctx.ui);

    // 1. Resolve.
    progress.step(&format!("resolving {}", args.image));
    let store = ctx.store(&source).await?;
    let registry = store.registry();
    let resolved = source::resolve(&source, &store, args.rules.platform.as_ref()).await?;
    let digest = resolved.digest().clone();
    let pinned = source.pinned(&digest);
    if let Some(path) = &args.digest_file {
        write_atomic(path, digest.to_string().as_bytes())?;
    }
    if let Some(path) = &args.ref_file {
        write_atomic(path, pinned.as_bytes())?;
    }
    progress.done(&format!("resolved {} to {digest}", args.image));

    // 2. Sign the digest.
    if let Some(repository) = ctx.env.non_empty("COSIGN_REPOSITORY") {
        ctx.note(&format!(
            "signatures are stored in COSIGN_REPOSITORY ({repository}); policies read them where the cluster does: the image's own repository, unless a policy names a repository"
        ));
    }
    progress.step("signing");
    let http = match registry {
        Some(r) => r.http(),
        None => ctx.registry().await?.http(),
    };
    let signer = match &key_ref {
        Some(k) => keys::signer(k, &ctx.key_context(http)).await?,
        None => Signer::Local(keys::file::LocalKey::ephemeral()?),
    };
    let identity = match (&source, &image_name) {
        (ImageSource::Registry(image), _) => sigimage::docker_reference(image),
        (ImageSource::Layout(_), Some(name)) => sigimage::docker_reference(name),
        (ImageSource::Layout(l), None) => format!("oci:{}", l.path.display()),
    };
    let annotations: BTreeMap<String, String> = args.annotations.iter().cloned().collect();
    let payload_bytes = payload::build(&identity, &digest, &annotations);
    let signature = signer.sign(&payload_bytes).await?;
    let signature_b64 = keys::file::base64(&signature);
    let key_name = key_ref
        .as_ref()
        .map(|k| k.to_string())
        .unwrap_or_else(|| "an ephemeral key".into());
    let mut pending = None;
    if args.dry_run {
        let kept = match &source {
            ImageSource::Registry(image) => format!(
                "it would be stored in {}; nothing was written",
                sigimage::signature_ref(image, &digest, &ctx.env)?
            ),
            ImageSource::Layout(_) => {
                "it stays in memory (a local layout has no registry to store it in)".into()
            }
        };
        progress.done(&format!("dry run: signed {digest} with {key_name}; {kept}"));
        if key_ref.is_none() {
            ctx.note(&format!(
                "the ephemeral public key (discarded at exit):\n{}",
                signer.public_key().pem().trim_end()
            ));
        }
        pending = Some(verify::FetchedSignature {
            layer: sigimage::Descriptor {
                media_type: sigimage::SIMPLE_SIGNING.into(),
                size: payload_bytes.len() as i64,
                digest: crate::digest::Digest::sha256_of(&payload_bytes).to_string(),
                data: None,
                urls: None,
                annotations: Some(BTreeMap::from([(
                    sigimage::SIGNATURE_ANNOTATION.to_string(),
                    signature_b64.clone(),
                )])),
                platform: None,
                artifact_type: None,
            },
            payload: Ok(Bytes::from(payload_bytes.clone())),
        });
    } else if let (ImageSource::Registry(image), Some(registry)) = (&source, registry) {
        let sig_ref = sigimage::signature_ref(image, &digest, &ctx.env)?;
        let new = sigimage::NewSignature {
            payload: &payload_bytes,
            signature_b64: &signature_b64,
        };
        let appended =
            sigimage::append(registry, &sig_ref, &new, signer.public_key(), &ctx.env).await?;
        // 3. Confirm: the stored signatures, read back, include one that verifies with the key.
        progress.step("confirming the signature");
        let stored =
            sigimage::read(registry, &sig_ref)
                .await?
                .ok_or_else(|| Error::Verification {
                    image: pinned.clone(),
                    message: format!("{sig_ref} is gone right after signing"),
                    details: Vec::new(),
                })?;
        let fetched = verify::fetch(registry, &stored).await;
        let claims = verify::Claims {
            digest: Some(digest.clone()),
            ..verify::Claims::default()
        };
        let check = verify::check(&fetched, signer.public_key(), &claims);
        if !check
            .verified
            .iter()
            .any(|v| v.payload_bytes.as_ref() == payload_bytes.as_slice())
        {
            return Err(Error::Verification {
                image: pinned.clone(),
                message: format!(
                    "the signature just stored in {sig_ref} does not verify with {key_name}"
                ),
                details: check
                    .failures
                    .iter()
                    .map(|(i, r)| format!("signature {}: {r}", i + 1))
                    .collect(),
            });
        }
        progress.done(&match appended {
            sigimage::Appended::Added { layers, .. } => format!(
                "signed {digest} with {key_name} and stored it in {sig_ref} ({layers} signature{} there); it verifies",
                if layers == 1 { "" } else { "s" }
            ),
            sigimage::Appended::AlreadySigned { .. } => {
                format!("{digest} was already signed with {key_name} ({sig_ref}); it verifies")
            }
        });
    }

    // 4. Gather the facts once, 5. judge.
    progress.step("gathering facts and judging");
    let options = GatherOptions {
        vulns: args.rules.vulns.clone(),
        image_name,
        pending_signature: pending,
        ..rules.gather_options()
    };
    let gatherer = Gatherer {
        store: &store,
        keys: Some(ctx.key_context(http)),
        env: &ctx.env,
    };
    let facts = gather::gather(&gatherer, &source, &resolved, &options).await?;
    let findings = rules.evaluate(
        &facts,
        &check::raw_image_of(&source, &args.image, &args.rules, &facts),
    );
    progress.finish();

    // 6. Report.
    let images = vec![ImageReport {
        image: args.image.clone(),
        digest: Some(digest.to_string()),
        findings,
    }];
    let verdict = check::verdict(&images, args.rules.require_data);
    let exit = args.report.exit(verdict);
    let report = Report {
        generated_at: Utc::now(),
        images,
        verdict,
    };
    args.report.emit(ctx, &report, exit)?;
    let outcome = ci::Outcome {
        digest: &digest.to_string(),
        pinned: &pinned,
        report: &report,
    };
    if ctx.env.get("GITHUB_ACTIONS") == Some("true") {
        let github_output = ctx.env.non_empty("GITHUB_OUTPUT").map(PathBuf::from);
        let summary = ctx.env.non_empty("GITHUB_STEP_SUMMARY").map(PathBuf::from);
        for line in ci::github(
            &outcome,
            github_output.as_deref(),
            summary.as_deref(),
            args.report.containerfile.as_deref(),
        )? {
            println!("{line}");
        }
    }
    if let Some(dir) = &args.results_dir {
        ci::tekton(&outcome, dir)?;
    }
    if let Some(path) = &args.dotenv {
        ci::dotenv(&outcome, path)?;
    }
    check::print_summary(ctx, &report, args.rules.require_data);
    ctx.note(&summary_line(&report, exit, args.report.warn_only));
    Ok(exit)
}

/// The one line that ends a gate run.
fn summary_line(report: &Report, exit: Exit, warn_only: bool) -> String {
    let violations: Vec<_> = report.images.iter().flat_map(|i| i.violations()).collect();
    let breaking = violations.iter().filter(|f| f.enforced).count();
    let not_evaluated: usize = report.images.iter().map(|i| i.not_evaluated().len()).sum();
    let verdict = match exit {
        Exit::Passed if breaking > 0 && warn_only => "PASSED (--warn-only)",
        Exit::Passed => "PASSED",
        _ => "FAILED",
    };
    format!(
        "imagegate: {verdict}: {} violation(s), {breaking} breaking the build, {not_evaluated} rule(s) not evaluated; exit code {}",
        violations.len(),
        exit.code()
    )
}
