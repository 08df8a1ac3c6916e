//! `imagegate check`: judge images offline against StackRox-style rules (and, with --policy,
//! the cluster's Kyverno policies), print roxctl's table, exit 1 when a rule that breaks the
//! build is violated.

use std::path::PathBuf;

use chrono::Utc;
use clap::Args;
use futures_util::future::join_all;

use super::Context;
use super::output::{self, OutputSpec, parse_output};
use crate::error::{Error, Exit};
use crate::facts::gather::{self, GatherOptions, Gatherer};
use crate::facts::{ImageFacts, KeyRequest, KeySource};
use crate::oci::Platform;
use crate::policy::kyverno::{self, KeyMaterial, KyvernoSet};
use crate::policy::stackrox::{self, EvalOptions, PolicySet, SignatureIntegrations};
use crate::policy::{Finding, Outcome, Verdict};
use crate::reference::ImageRef;
use crate::report::table::summary_lines;
use crate::report::{ImageReport, Report};
use crate::source::{self, ImageSource};

/// Judge IMAGE(s) against policies, offline, and report.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Images: REGISTRY/REPO[:TAG][@DIGEST], oci:DIR[:TAG] or oci-archive:FILE[:TAG]. Several
    /// are checked concurrently, one section each.
    #[arg(value_name = "IMAGE", required = true)]
    pub images: Vec<String>,

    #[command(flatten)]
    pub rules: RuleArgs,

    #[command(flatten)]
    pub report: ReportArgs,
}

/// The report flags `check` and `gate` share.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Write a report: FORMAT (table, junit, json, sarif, markdown, konflux) on stdout, or
    /// FORMAT=FILE. Repeatable; default: the table on stdout.
    #[arg(short = 'o', long = "output", value_name = "FORMAT[=FILE]", value_parser = parse_output)]
    pub outputs: Vec<OutputSpec>,

    /// The Containerfile the image is built from (a repository path), for SARIF locations and
    /// GitHub annotations.
    #[arg(long, value_name = "PATH")]
    pub containerfile: Option<String>,

    /// Report violations but exit 0 (a gate that could not judge still exits 3).
    #[arg(long)]
    pub warn_only: bool,
}

impl ReportArgs {
    /// The exit code for `verdict` under --warn-only.
    pub fn exit(&self, verdict: Verdict) -> Exit {
        exit_for(verdict, self.warn_only)
    }

    /// Writes every report asked for (atomically, for files).
    pub fn emit(&self, ctx: &Context, report: &Report, exit: Exit) -> Result<(), Error> {
        output::emit(
            report,
            &self.outputs,
            exit.code(),
            output::table_style(ctx.global.color),
            self.containerfile.as_deref(),
        )
    }
}

/// The rule and data flags `check` and `gate` share.
#[derive(Debug, Args, Clone)]
pub struct RuleArgs {
    /// StackRox policies: an export {"policies":[…]}, a policy JSON, a folder of them, or
    /// `builtin` (the default set). Repeatable. Without --rules the built-in set is used;
    /// `--rules none` uses none.
    #[arg(long = "rules", value_name = "PATH")]
    pub rules: Vec<PathBuf>,

    /// Only policies in these categories (comma separated, as roxctl --categories).
    #[arg(long, value_name = "CATEGORY,…", value_delimiter = ',')]
    pub categories: Vec<String>,

    /// A scanner report with the image's vulnerabilities: Trivy JSON, Grype JSON, or a cosign
    /// vulnerability attestation (detected from the content).
    #[arg(long, value_name = "FILE")]
    pub vulns: Option<PathBuf>,

    /// StackRox signature integrations (as GET /v1/signatureintegrations returns them), for
    /// `Image Signature Verified By`.
    #[arg(long, value_name = "FILE")]
    pub signature_integrations: Option<PathBuf>,

    /// Fail (exit 1) when a policy could not be evaluated for lack of data, instead of
    /// reporting it.
    #[arg(long)]
    pub require_data: bool,

    /// Kyverno ClusterPolicy/Policy YAML (files or folders; multi-document YAML). Repeatable.
    /// The image is judged as a Pod's container, as the admission controller would.
    #[arg(long = "policy", value_name = "PATH")]
    pub policies: Vec<PathBuf>,

    /// The namespace the image is deployed to, for Kyverno match/exclude and Policy objects.
    #[arg(long, value_name = "NAMESPACE", default_value = "default")]
    pub namespace: String,

    /// Count Kyverno Audit failures as breaking the build (as `kyverno apply` does unless
    /// --audit-warn); by default they are warnings, as the cluster treats them.
    #[arg(long)]
    pub audit_fails: bool,

    /// For a multi-platform index: judge only this platform (default: every platform).
    #[arg(long, value_name = "OS/ARCH[/VARIANT]", value_parser = Platform::parse)]
    pub platform: Option<Platform>,

    /// The name a local layout (oci:…) is judged under, e.g. the registry reference it will be
    /// pushed as. Default: localhost/<folder>:<tag>.
    #[arg(long, value_name = "REF")]
    pub image_name: Option<String>,
}

/// The loaded rules, ready to judge any number of images.
pub struct Rules {
    pub stackrox: Option<PolicySet>,
    pub integrations: Option<SignatureIntegrations>,
    pub kyverno: Option<KyvernoSet>,
    pub namespace: String,
    pub audit_fails: bool,
}

impl Rules {
    pub fn load(args: &RuleArgs, ctx: &Context) -> Result<Rules, Error> {
        let none = args.rules.iter().any(|p| p.as_os_str() == "none");
        let stackrox = if none {
            None
        } else {
            let mut set = if args.rules.is_empty() {
                PolicySet::builtin()
            } else {
                PolicySet::load(&args.rules)?
            };
            if !args.categories.is_empty() {
                set.filter_categories(&args.categories)?;
            }
            for warning in set.warnings() {
                ctx.note(&format!("warning: {warning}"));
            }
            Some(set)
        };
        let integrations = match &args.signature_integrations {
            Some(path) => Some(SignatureIntegrations::load(path)?),
            None => None,
        };
        let kyverno = if args.policies.is_empty() {
            None
        } else {
            let set = kyverno::load(&args.policies)?;
            for note in &set.notes {
                ctx.note(&format!("note: {note}"));
            }
            Some(set)
        };
        Ok(Rules {
            stackrox,
            integrations,
            kyverno,
            namespace: args.namespace.clone(),
            audit_fails: args.audit_fails,
        })
    }

    /// What the rules need gathered besides the image: keys to check signatures and
    /// attestations with, and signatures kept in other repositories.
    pub fn gather_options(&self) -> GatherOptions {
        let mut options = GatherOptions::default();
        if let (Some(set), Some(integrations)) = (&self.stackrox, &self.integrations) {
            for id in stackrox::required_keys(set, Some(integrations)) {
                if let Some(r) = integrations.key_request(&id) {
                    options.keys.push(r.clone());
                }
            }
            // StackRox verifies Sigstore bundles as well as .sig signatures, and Rekor bundles
            // with the log keys its integrations name.
            if !options.keys.is_empty() {
                options.read_bundles = true;
                options.rekor_keys.extend(integrations.rekor_keys());
            }
        }
        if let Some(set) = &self.kyverno {
            for wanted in kyverno::required_keys(set, &self.namespace) {
                let request = KeyRequest {
                    id: wanted.key.clone(),
                    source: match &wanted.material {
                        KeyMaterial::Pem(pem) => KeySource::Pem(pem.clone()),
                        KeyMaterial::Uri(uri) => KeySource::Uri(uri.clone()),
                    },
                };
                match &wanted.repository {
                    Some(repo) if wanted.signatures => options
                        .other_repositories
                        .entry(repo.clone())
                        .or_default()
                        .push(request.clone()),
                    _ if wanted.signatures => options.keys.push(request.clone()),
                    _ => {}
                }
                if !wanted.attestation_types.is_empty() {
                    options.attestation_keys.push(request);
                }
                options.rekor_keys.extend(wanted.rekor_keys.iter().cloned());
            }
        }
        options.rekor_keys.sort();
        options.rekor_keys.dedup();
        for list in [&mut options.keys, &mut options.attestation_keys]
            .into_iter()
            .chain(options.other_repositories.values_mut())
        {
            list.sort();
            list.dedup();
        }
        options
    }

    /// Every finding for `facts`; `raw_image` is the image as the user wrote it (what a Pod
    /// spec would say), which Kyverno's validate patterns read.
    pub fn evaluate(&self, facts: &ImageFacts, raw_image: &str) -> Vec<Finding> {
        let mut findings = Vec::new();
        if let Some(set) = &self.stackrox {
            let options = EvalOptions {
                now: Utc::now(),
                integrations: self.integrations.clone(),
            };
            findings.extend(stackrox::evaluate(set, facts, &options));
        }
        if let Some(set) = &self.kyverno {
            let mut context = kyverno::EvalContext::new(raw_image).in_namespace(&self.namespace);
            context.signatures_by_repository = facts.signatures_elsewhere.clone();
            let mut kyverno_findings = kyverno::evaluate(set, facts, &context);
            if self.audit_fails {
                for f in &mut kyverno_findings {
                    if f.is_violation() && !f.enforced {
                        f.enforced = true;
                        f.messages.push(
                            "note: an Audit failure; --audit-fails counts it as breaking the build"
                                .into(),
                        );
                    }
                }
            }
            findings.extend(kyverno_findings);
        }
        findings
    }
}

/// Judges one image: resolve, gather its facts once, evaluate every rule.
pub async fn judge(
    ctx: &Context,
    rules: &Rules,
    args: &RuleArgs,
    image: &str,
) -> Result<ImageReport, Error> {
    let source = ImageSource::parse(image)?;
    let store = ctx.store(&source).await?;
    let registry = store.registry();
    let resolved = source::resolve(&source, &store, args.platform.as_ref()).await?;
    let image_name = match &args.image_name {
        Some(n) => Some(ImageRef::parse(n)?),
        None => None,
    };
    let options = GatherOptions {
        vulns: args.vulns.clone(),
        image_name,
        ..rules.gather_options()
    };
    let gatherer = Gatherer {
        store: &store,
        keys: registry.map(|r| ctx.key_context(r.http())),
        env: &ctx.env,
    };
    let facts = gather::gather(&gatherer, &source, &resolved, &options).await?;
    Ok(ImageReport {
        image: image.to_string(),
        digest: Some(facts.digest.to_string()),
        findings: rules.evaluate(&facts, &raw_image_of(&source, image, args, &facts)),
    })
}

/// The image string a Pod spec would hold: the reference as the user wrote it, or for a local
/// layout `--image-name` as written, else the name it is judged under.
pub fn raw_image_of(
    source: &ImageSource,
    input: &str,
    args: &RuleArgs,
    facts: &ImageFacts,
) -> String {
    match (source, &args.image_name) {
        (ImageSource::Registry(_), _) => {
            input.strip_prefix("docker://").unwrap_or(input).to_string()
        }
        (ImageSource::Layout(_), Some(name)) => name.clone(),
        (ImageSource::Layout(_), None) => facts.name.to_string(),
    }
}

/// The verdict of a set of image reports.
pub fn verdict(images: &[ImageReport], require_data: bool) -> Verdict {
    let findings: Vec<Finding> = images.iter().flat_map(|i| i.findings.clone()).collect();
    Verdict::of(&findings, require_data)
}

/// The exit code for a verdict (with `--warn-only`, violations exit 0).
fn exit_for(verdict: Verdict, warn_only: bool) -> Exit {
    match verdict {
        Verdict::Pass => Exit::Passed,
        _ if warn_only => Exit::Passed,
        Verdict::Fail | Verdict::Incomplete => Exit::Violations,
    }
}

pub async fn run(ctx: &Context, args: CheckArgs) -> Result<Exit, Error> {
    let rules = Rules::load(&args.rules, ctx)?;
    let results = join_all(
        args.images
            .iter()
            .map(|image| judge(ctx, &rules, &args.rules, image)),
    )
    .await;
    let mut images = Vec::new();
    for result in results {
        images.push(result?);
    }
    let verdict = verdict(&images, args.rules.require_data);
    let exit = args.report.exit(verdict);
    let report = Report {
        generated_at: Utc::now(),
        images,
        verdict,
    };
    args.report.emit(ctx, &report, exit)?;
    print_summary(ctx, &report, args.rules.require_data);
    if args.report.warn_only && verdict != Verdict::Pass {
        ctx.note("--warn-only: violations are reported, the exit code is 0");
    }
    Ok(exit)
}

/// roxctl's WARN/ERROR lines on stderr, and what could not be evaluated.
pub fn print_summary(ctx: &Context, report: &Report, require_data: bool) {
    for line in summary_lines(&report.images) {
        eprintln!("{line}");
    }
    let not_evaluated: Vec<&Finding> = report
        .images
        .iter()
        .flat_map(|i| i.not_evaluated())
        .collect();
    if !not_evaluated.is_empty() {
        let label = if require_data { "ERROR" } else { "NOTE" };
        eprintln!(
            "{label}:\t{} polic{} could not be evaluated{}",
            not_evaluated.len(),
            if not_evaluated.len() == 1 { "y" } else { "ies" },
            if require_data {
                " and --require-data fails the check"
            } else {
                " (pass --require-data to fail the check on this)"
            }
        );
        if !ctx.ui.quiet {
            for f in not_evaluated {
                if let Outcome::NotEvaluated(reason) = &f.outcome {
                    eprintln!("{label}:\tPolicy \"{}\" - {reason}", f.policy);
                }
            }
        }
    }
}
