//! Evaluation of a compiled BUILD policy against one image (one platform of it).
//!
//! StackRox evaluates a section as a *linked* conjunction over its image object
//! (`pkg/booleanpolicy/evaluator`): every group must match, and groups on the same list must
//! match the same element. Here that means:
//! - image-level groups (name, user, age, OS, labels, signatures, scan state) must each match;
//! - the `Dockerfile Line` group must match some layer;
//! - `Image Component` and the vulnerability groups must match together: one vulnerability that
//!   satisfies every vulnerability group, in a component that satisfies the component group.
//!
//! Layers and components are separate lists, so a layer and a vulnerability need not be related.
//!
//! Data that is missing never passes silently. A group whose data is absent is *unknown*; a
//! section with an unknown group is unknown unless another of its groups already fails (then it
//! cannot match whatever the missing data says). A policy violates when any section matches, and
//! is not evaluated when none matches but some section is unknown.

use std::collections::{BTreeSet, HashSet};

use chrono::{DateTime, TimeDelta, Utc};

use super::compile::{CompiledGroup, CompiledPolicy, CompiledSection, ValueMatcher};
use super::fields::Criterion;
use super::integrations::{SignatureIntegration, SignatureIntegrations};
use super::messages;
use crate::facts::{
    Component, DockerfileLine, FoundSignature, ImageConfig, KeyCheck, KeyId, ScanReport,
    SignatureFacts, TlogVerdict, Vulnerability,
};

/// Why vulnerability criteria cannot be judged without a report.
pub(crate) const NEEDS_SCAN: &str = "needs vulnerability data: pass --vulns FILE (a Trivy or Grype JSON report, or a cosign vulnerability attestation)";
const NEEDS_CONFIG: &str =
    "needs the image config (user, labels, creation time, history), which was not read";
const NEEDS_INTEGRATIONS: &str = "needs signature integrations: pass --signature-integrations FILE (the JSON of StackRox's GET /v1/signatureintegrations)";

/// How the image is named, as StackRox sees it.
#[derive(Clone, Debug)]
pub(crate) struct ImageName {
    /// `registry/remote:tag` (or `@digest`); `latest` added when neither is given.
    pub full_name: String,
    pub registry: String,
    pub remote: String,
    /// Empty for a reference by digest only.
    pub tag: String,
}

impl ImageName {
    pub fn of(name: &crate::reference::ImageRef) -> ImageName {
        let registry = name.registry().to_string();
        let remote = name.repository().to_string();
        let (full_name, tag) = match (name.tag(), name.digest()) {
            (None, None) => (
                format!("{registry}/{remote}:{}", crate::reference::DEFAULT_TAG),
                crate::reference::DEFAULT_TAG.to_string(),
            ),
            (tag, _) => (name.to_string(), tag.unwrap_or_default().to_string()),
        };
        ImageName {
            full_name,
            registry,
            remote,
            tag,
        }
    }
}

/// Counts that tell whether the report carries a kind of data at all.
#[derive(Clone, Copy, Debug, Default)]
struct ScanStats {
    vulnerabilities: usize,
    with_cvss: usize,
    with_nvd_cvss: usize,
    with_published: usize,
    fixable: usize,
    fixable_with_date: usize,
}

impl ScanStats {
    fn of(scan: Option<&ScanReport>) -> ScanStats {
        let mut stats = ScanStats::default();
        for vuln in scan
            .iter()
            .flat_map(|s| &s.components)
            .flat_map(|c| &c.vulnerabilities)
        {
            stats.vulnerabilities += 1;
            stats.with_cvss += usize::from(vuln.cvss.is_some());
            stats.with_nvd_cvss += usize::from(vuln.nvd_cvss.is_some());
            stats.with_published += usize::from(vuln.published.is_some());
            if vuln.fixed_by.is_some() {
                stats.fixable += 1;
                stats.fixable_with_date += usize::from(vuln.fix_available.is_some());
            }
        }
        stats
    }
}

/// What does not change between policies or platforms.
pub(crate) struct Context<'a> {
    pub now: DateTime<Utc>,
    pub image: ImageName,
    pub scan: Option<&'a ScanReport>,
    pub signatures: &'a SignatureFacts,
    pub integrations: Option<&'a SignatureIntegrations>,
    stats: ScanStats,
    /// `name\tversion` of each component, as StackRox's compound field.
    component_keys: Vec<String>,
}

impl<'a> Context<'a> {
    pub fn new(
        now: DateTime<Utc>,
        image: ImageName,
        scan: Option<&'a ScanReport>,
        signatures: &'a SignatureFacts,
        integrations: Option<&'a SignatureIntegrations>,
    ) -> Context<'a> {
        let component_keys = scan
            .iter()
            .flat_map(|s| &s.components)
            .map(|c| format!("{}\t{}", c.name, c.version))
            .collect();
        Context {
            now,
            image,
            scan,
            signatures,
            integrations,
            stats: ScanStats::of(scan),
            component_keys,
        }
    }
}

/// One platform's config with its Dockerfile lines, prepared once.
pub(crate) struct PlatformView<'a> {
    pub config: Option<&'a ImageConfig>,
    lines: Vec<DockerfileLine>,
    /// `INSTRUCTION\tvalue` of each line.
    line_keys: Vec<String>,
}

impl<'a> PlatformView<'a> {
    pub fn new(config: Option<&'a ImageConfig>) -> PlatformView<'a> {
        let lines = match config {
            Some(c) if !c.dockerfile.is_empty() => c.dockerfile.clone(),
            Some(c) => crate::facts::dockerfile::dockerfile_lines(&c.history),
            None => Vec::new(),
        };
        let line_keys = lines
            .iter()
            .map(|l| format!("{}\t{}", l.instruction, l.value))
            .collect();
        PlatformView {
            config,
            lines,
            line_keys,
        }
    }
}

/// The result of evaluating a policy.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PolicyResult {
    Pass,
    Violated(Vec<String>),
    NotEvaluated(String),
}

pub(crate) fn evaluate_policy(
    policy: &CompiledPolicy,
    ctx: &Context,
    platform: &PlatformView,
) -> PolicyResult {
    let mut messages = Vec::new();
    let mut seen = HashSet::new();
    let mut matched = false;
    let mut unknown: Vec<String> = Vec::new();
    for section in &policy.sections {
        match evaluate_section(section, ctx, platform) {
            SectionResult::Match(section_messages) => {
                matched = true;
                for message in section_messages {
                    if seen.insert(message.clone()) {
                        messages.push(message);
                    }
                }
            }
            SectionResult::Unknown(reasons) => {
                for reason in reasons {
                    if !unknown.contains(&reason) {
                        unknown.push(reason);
                    }
                }
            }
            SectionResult::NoMatch => {}
        }
    }
    if matched {
        PolicyResult::Violated(messages)
    } else if !unknown.is_empty() {
        PolicyResult::NotEvaluated(unknown.join("; "))
    } else {
        PolicyResult::Pass
    }
}

enum SectionResult {
    NoMatch,
    Unknown(Vec<String>),
    Match(Vec<String>),
}

/// Where a criterion's data lives in StackRox's image object.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Image,
    Layer,
    Component,
    Vulnerability,
}

fn level(criterion: Criterion) -> Level {
    use Criterion as C;
    match criterion {
        C::DockerfileLine => Level::Layer,
        C::ImageComponent => Level::Component,
        C::Cve
        | C::Cvss
        | C::NvdCvss
        | C::Severity
        | C::Fixable
        | C::FixedBy
        | C::DaysSincePublished
        | C::DaysSinceFixAvailable
        | C::DaysSinceFirstDiscoveredInImage
        | C::DaysSinceFirstDiscoveredInSystem => Level::Vulnerability,
        C::ImageRegistry
        | C::ImageRemote
        | C::ImageTag
        | C::ImageSignatureVerifiedBy
        | C::ImageAge
        | C::ImageScanAge
        | C::ImageUser
        | C::ImageOs
        | C::UnscannedImage
        | C::RequiredImageLabel
        | C::DisallowedImageLabel => Level::Image,
    }
}

/// Why `criterion` cannot be judged with the data at hand, if it cannot.
fn missing(criterion: Criterion, ctx: &Context, platform: &PlatformView) -> Option<String> {
    use Criterion as C;
    let stats = &ctx.stats;
    let report_lacks = |with: usize, total: usize, what: &str| {
        (total > 0 && with == 0).then(|| format!("the scanner report has no {what}"))
    };
    match criterion {
        C::ImageRegistry | C::ImageRemote | C::ImageTag | C::UnscannedImage => None,
        // Checked while evaluating: it depends on which keys verified.
        C::ImageSignatureVerifiedBy => None,
        C::ImageUser | C::RequiredImageLabel | C::DisallowedImageLabel | C::DockerfileLine => {
            platform.config.is_none().then(|| NEEDS_CONFIG.to_string())
        }
        C::ImageAge => match platform.config {
            None => Some(NEEDS_CONFIG.to_string()),
            Some(c) if c.created.is_none() => Some(
                "the image config has no creation time, so \"Image Age\" cannot be judged".into(),
            ),
            Some(_) => None,
        },
        C::ImageScanAge => match ctx.scan {
            None => Some(NEEDS_SCAN.to_string()),
            Some(s) if s.scanned_at.is_none() => Some(
                "the scanner report does not say when the scan ran, so \"Image Scan Age\" cannot be judged".into(),
            ),
            Some(_) => None,
        },
        C::ImageOs => match ctx.scan {
            None => Some(NEEDS_SCAN.to_string()),
            Some(s) if s.operating_system.is_none() => Some(
                "the scanner report does not name the image's operating system, so \"Image OS\" cannot be judged".into(),
            ),
            Some(_) => None,
        },
        C::ImageComponent | C::Cve | C::Severity | C::Fixable | C::FixedBy => {
            ctx.scan.is_none().then(|| NEEDS_SCAN.to_string())
        }
        C::Cvss => ctx.scan.is_none().then(|| NEEDS_SCAN.to_string()).or_else(|| {
            report_lacks(stats.with_cvss, stats.vulnerabilities, "CVSS scores (\"CVSS\")")
        }),
        C::NvdCvss => ctx.scan.is_none().then(|| NEEDS_SCAN.to_string()).or_else(|| {
            report_lacks(
                stats.with_nvd_cvss,
                stats.vulnerabilities,
                "NVD CVSS scores (\"NVD CVSS\")",
            )
        }),
        C::DaysSincePublished => ctx.scan.is_none().then(|| NEEDS_SCAN.to_string()).or_else(|| {
            report_lacks(
                stats.with_published,
                stats.vulnerabilities,
                "publication dates (\"Days Since CVE Was Published\")",
            )
        }),
        C::DaysSinceFixAvailable => ctx.scan.is_none().then(|| NEEDS_SCAN.to_string()).or_else(|| {
            report_lacks(
                stats.fixable_with_date,
                stats.fixable,
                "dates for when fixes became available (\"Days Since CVE Fix Was Available\"; Grype reports them, Trivy does not)",
            )
        }),
        C::DaysSinceFirstDiscoveredInImage => Some(
            "\"Days Since CVE Was First Discovered In Image\" needs StackRox Central's record of when it first saw each CVE; it cannot be judged offline".into(),
        ),
        C::DaysSinceFirstDiscoveredInSystem => Some(
            "\"Days Since CVE Was First Discovered In System\" needs StackRox Central's record of when it first saw each CVE; it cannot be judged offline".into(),
        ),
    }
}

/// True when `time` is more than `days` days before `now` (StackRox's `ForDays`).
fn older_than(time: DateTime<Utc>, now: DateTime<Utc>, days: i64) -> bool {
    match TimeDelta::try_days(days).and_then(|d| now.checked_sub_signed(d)) {
        Some(threshold) => time < threshold,
        // So many days that no time is that old.
        None => false,
    }
}

/// An image-level group's verdict, with what its message needs.
enum Tri {
    Yes(Detail),
    No,
    Unknown(String),
}

enum Detail {
    Plain,
    Labels(String),
    OtherVerifiers(Vec<String>),
}

fn text_of(group: &CompiledGroup, text: &str) -> bool {
    group.combine(group.values.iter().map(|v| match v {
        ValueMatcher::Text(t) => Some(t.matches(text)),
        _ => None,
    }))
}

fn days_of(group: &CompiledGroup, time: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    group.combine(group.values.iter().map(|v| match (v, time) {
        (ValueMatcher::Days(days), Some(time)) => Some(older_than(time, now, *days)),
        _ => None,
    }))
}

fn yes_if(matched: bool) -> Tri {
    if matched {
        Tri::Yes(Detail::Plain)
    } else {
        Tri::No
    }
}

fn evaluate_image_group(group: &CompiledGroup, ctx: &Context, platform: &PlatformView) -> Tri {
    use Criterion as C;
    let config = platform.config;
    match group.criterion {
        C::ImageRegistry => yes_if(text_of(group, &ctx.image.registry)),
        C::ImageRemote => yes_if(text_of(group, &ctx.image.remote)),
        C::ImageTag => yes_if(text_of(group, &ctx.image.tag)),
        C::ImageUser => yes_if(text_of(
            group,
            config.map(ImageConfig::effective_user).unwrap_or_default(),
        )),
        C::ImageAge => yes_if(days_of(group, config.and_then(|c| c.created), ctx.now)),
        C::ImageScanAge => yes_if(days_of(group, ctx.scan.and_then(|s| s.scanned_at), ctx.now)),
        C::ImageOs => yes_if(text_of(
            group,
            ctx.scan
                .and_then(|s| s.operating_system.as_deref())
                .unwrap_or_default(),
        )),
        C::UnscannedImage => yes_if(group.combine(group.values.iter().map(|v| match v {
            ValueMatcher::Bool(unscanned) => Some(*unscanned == ctx.scan.is_none()),
            _ => None,
        }))),
        C::RequiredImageLabel => required_labels(group, config),
        C::DisallowedImageLabel => disallowed_labels(group, config),
        C::ImageSignatureVerifiedBy => signature(group, ctx),
        // Not image-level; never routed here.
        _ => Tri::No,
    }
}

fn label_matchers(
    group: &CompiledGroup,
) -> impl Iterator<Item = (&super::compile::TextMatcher, &super::compile::TextMatcher)> {
    group.values.iter().filter_map(|v| match v {
        ValueMatcher::Label { key, value } => Some((key, value)),
        _ => None,
    })
}

/// Violates when no label matches any of the values (StackRox's `ForFieldLabelMapRequired`
/// gives this for OR, and AND over "must not contain" matchers gives the same).
fn required_labels(group: &CompiledGroup, config: Option<&ImageConfig>) -> Tri {
    let Some(config) = config else {
        return Tri::Unknown(NEEDS_CONFIG.into());
    };
    let any_present = label_matchers(group).any(|(key, value)| {
        config
            .labels
            .iter()
            .any(|(k, v)| key.matches(k) && value.matches(v))
    });
    if any_present {
        Tri::No
    } else {
        Tri::Yes(Detail::Labels(messages::found_labels(&config.labels)))
    }
}

/// Violates when a label matches: any value for OR, every value for AND.
fn disallowed_labels(group: &CompiledGroup, config: Option<&ImageConfig>) -> Tri {
    let Some(config) = config else {
        return Tri::Unknown(NEEDS_CONFIG.into());
    };
    let mut found = Vec::new();
    let mut results = Vec::new();
    for (key, value) in label_matchers(group) {
        let matching: Vec<(&String, &String)> = config
            .labels
            .iter()
            .filter(|(k, v)| key.matches(k) && value.matches(v))
            .collect();
        results.push(Some(!matching.is_empty()));
        if !matching.is_empty() {
            let text = messages::matching_labels(matching.into_iter());
            if !found.contains(&text) {
                found.push(text);
            }
        }
    }
    if group.combine(results.into_iter()) {
        Tri::Yes(Detail::Labels(messages::disallowed_labels(&found)))
    } else {
        Tri::No
    }
}

/// Whether one integration verified the image: `Ok(true)` yes, `Ok(false)` every key was
/// checked and none verified, `Err` when that cannot be told.
///
/// As StackRox's cosign verifier: a `.sig` signature counts when it verifies with one of the
/// integration's keys, names the image's registry and repository in its docker-reference, and,
/// when the integration checks the transparency log, has a Rekor bundle the log vouches for; a
/// Sigstore bundle (cosign 3) counts when its envelope verifies and its subject is the image.
fn integration_verified(
    id: &str,
    ctx: &Context,
    integrations: &SignatureIntegrations,
) -> Result<bool, String> {
    let Some(integration) = integrations.get(id) else {
        return Err(format!(
            "signature integration {id} is not in {}; add it to the file given with --signature-integrations (export it with GET /v1/signatureintegrations)",
            integrations.source
        ));
    };
    let mut undecided = None;
    for key in &integration.keys {
        match ctx.signatures.checks.get(key) {
            Some(KeyCheck::Checked { verified, .. }) => {
                for sig in verified.iter().filter_map(|&i| ctx.signatures.found.get(i)) {
                    if !names_image(&sig.docker_reference, &ctx.image) {
                        continue;
                    }
                    match logged(integration, sig, key) {
                        Ok(true) => return Ok(true),
                        Ok(false) => {}
                        Err(reason) => {
                            undecided.get_or_insert(reason);
                        }
                    }
                }
            }
            Some(KeyCheck::KeyUnavailable(reason)) => {
                undecided.get_or_insert_with(|| {
                    format!("{key} of signature integration {id} could not be used: {reason}")
                });
            }
            None => {
                undecided.get_or_insert_with(|| {
                    format!("{key} of signature integration {id} was not checked against the image's signatures")
                });
            }
        }
        if let Some(check) = ctx.signatures.bundle_checks.get(key) {
            for bundle in check
                .verified()
                .iter()
                .filter_map(|&i| ctx.signatures.bundles.get(i))
            {
                match &integration.tlog {
                    None => return Ok(true),
                    // Verifying with the log on requires an entry; without one it fails.
                    Some(_) if bundle.tlog_entries == 0 => {}
                    Some(_) => {
                        undecided.get_or_insert_with(|| {
                            format!("a Sigstore bundle verifies with {key} of signature integration {id}, which checks the transparency log; a bundle's own log entries are not checked offline")
                        });
                    }
                }
            }
        }
    }
    if let Some(reason) = undecided {
        return Err(reason);
    }
    if integration.keys.is_empty() {
        return Err(if integration.keyless {
            format!(
                "signature integration {id} only trusts keyless (certificate) signatures, which imagegate cannot verify; add its public keys to the integrations file"
            )
        } else {
            format!("signature integration {id} has no public keys")
        });
    }
    Ok(false)
}

/// Whether a signature's docker-reference names the image's registry and repository (tag and
/// digest aside), as StackRox requires of `.sig` signatures.
fn names_image(docker_reference: &str, image: &ImageName) -> bool {
    crate::reference::ImageRef::parse(docker_reference)
        .is_ok_and(|r| r.registry() == image.registry && r.repository() == image.remote)
}

/// Whether the integration's transparency-log setting lets a `.sig` signature verified with
/// `key` count: always when it is off; with the log on, when the signature's Rekor bundle is
/// vouched for by the log key; `Err` when that cannot be told offline.
fn logged(
    integration: &SignatureIntegration,
    sig: &FoundSignature,
    key: &KeyId,
) -> Result<bool, String> {
    let Some(tlog) = &integration.tlog else {
        return Ok(true);
    };
    let id = &integration.id;
    // Offline validation needs the bundle. Online, StackRox would look the signature up in
    // Rekor; but cosign attaches the bundle whenever it uploads a signature, so one without it
    // was not uploaded and the lookup would not find it.
    let Some(facts) = &sig.tlog else {
        return Ok(false);
    };
    let Some(rekor) = &tlog.rekor else {
        return Err(format!(
            "signature integration {id} checks the transparency log with Sigstore's public Rekor keys, which come from TUF (online); name the log's key in transparencyLog.publicKeyPemEnc"
        ));
    };
    match facts.verdict(key, &rekor.id) {
        TlogVerdict::Accepted => Ok(true),
        TlogVerdict::Refused(_) => Ok(false),
        TlogVerdict::NotChecked(why) => Err(format!(
            "the signature's Rekor bundle cannot be judged offline for signature integration {id}: {why}"
        )),
    }
}

/// Violates when none of the listed integrations verified the image (StackRox negates the group
/// and ORs its values).
fn signature(group: &CompiledGroup, ctx: &Context) -> Tri {
    if let Some(reason) = &ctx.signatures.unavailable {
        return Tri::Unknown(format!(
            "the image's signatures could not be read: {reason}"
        ));
    }
    let Some(integrations) = ctx.integrations else {
        return Tri::Unknown(NEEDS_INTEGRATIONS.into());
    };
    let listed: Vec<&str> = group
        .values
        .iter()
        .filter_map(|v| match v {
            ValueMatcher::Integration(id) => Some(id.as_str()),
            _ => None,
        })
        .collect();
    let mut undecided = None;
    for id in &listed {
        match integration_verified(id, ctx, integrations) {
            Ok(true) => return Tri::No,
            Ok(false) => {}
            Err(reason) => {
                undecided.get_or_insert(reason);
            }
        }
    }
    if let Some(reason) = undecided {
        return Tri::Unknown(reason);
    }
    let others = integrations
        .iter()
        .filter(|i| !listed.contains(&i.id.as_str()))
        .filter(|i| integration_verified(&i.id, ctx, integrations) == Ok(true))
        .map(|i| i.id.clone())
        .collect();
    Tri::Yes(Detail::OtherVerifiers(others))
}

fn layer_matches(group: &CompiledGroup, key: &str) -> bool {
    text_of(group, key)
}

fn vulnerability_matches(group: &CompiledGroup, vuln: &Vulnerability, now: DateTime<Utc>) -> bool {
    use Criterion as C;
    group.combine(
        group
            .values
            .iter()
            .map(|value| match (group.criterion, value) {
                (C::Cve, ValueMatcher::Text(t)) => Some(t.matches(&vuln.id)),
                (C::FixedBy | C::Fixable, ValueMatcher::Text(t)) => {
                    Some(t.matches(vuln.fixed_by.as_deref().unwrap_or_default()))
                }
                (C::Cvss, ValueMatcher::Number(op, n)) => {
                    vuln.cvss.map(|c| op.holds_f64(f64::from(c), *n))
                }
                (C::NvdCvss, ValueMatcher::Number(op, n)) => {
                    vuln.nvd_cvss.map(|c| op.holds_f64(f64::from(c), *n))
                }
                (C::Severity, ValueMatcher::Severity(op, level)) => {
                    Some(op.holds_ord(vuln.severity, *level))
                }
                (C::DaysSincePublished, ValueMatcher::Days(days)) => {
                    vuln.published.map(|t| older_than(t, now, *days))
                }
                (C::DaysSinceFixAvailable, ValueMatcher::Days(days)) => {
                    vuln.fix_available.map(|t| older_than(t, now, *days))
                }
                _ => None,
            }),
    )
}

fn evaluate_section(
    section: &CompiledSection,
    ctx: &Context,
    platform: &PlatformView,
) -> SectionResult {
    let mut unknown: Vec<String> = Vec::new();
    let mut note_unknown = |reason: String| {
        if !unknown.contains(&reason) {
            unknown.push(reason);
        }
    };

    // Image-level groups first: they are cheap and often settle the section.
    let mut image_details: Vec<(Criterion, Detail)> = Vec::new();
    for group in section
        .groups
        .iter()
        .filter(|g| level(g.criterion) == Level::Image)
    {
        if let Some(reason) = missing(group.criterion, ctx, platform) {
            note_unknown(reason);
            continue;
        }
        match evaluate_image_group(group, ctx, platform) {
            Tri::No => return SectionResult::NoMatch,
            Tri::Unknown(reason) => note_unknown(reason),
            Tri::Yes(detail) => image_details.push((group.criterion, detail)),
        }
    }

    let mut layers = Vec::new();
    if let Some(group) = section
        .groups
        .iter()
        .find(|g| level(g.criterion) == Level::Layer)
    {
        match missing(group.criterion, ctx, platform) {
            Some(reason) => note_unknown(reason),
            None => {
                layers = platform
                    .line_keys
                    .iter()
                    .enumerate()
                    .filter(|(_, key)| layer_matches(group, key))
                    .map(|(i, _)| i)
                    .collect();
                if layers.is_empty() {
                    return SectionResult::NoMatch;
                }
            }
        }
    }

    let component_group = section
        .groups
        .iter()
        .find(|g| level(g.criterion) == Level::Component);
    let vulnerability_groups: Vec<&CompiledGroup> = section
        .groups
        .iter()
        .filter(|g| level(g.criterion) == Level::Vulnerability)
        .collect();
    let mut usable_component_group = None;
    if let Some(group) = component_group {
        match missing(group.criterion, ctx, platform) {
            Some(reason) => note_unknown(reason),
            None => usable_component_group = Some(group),
        }
    }
    let mut usable_vulnerability_groups = Vec::new();
    for group in &vulnerability_groups {
        match missing(group.criterion, ctx, platform) {
            Some(reason) => note_unknown(reason),
            None => usable_vulnerability_groups.push(*group),
        }
    }

    let mut matched_components = Vec::new();
    let mut matched_vulnerabilities = Vec::new();
    if let Some(scan) = ctx.scan {
        let component_ok = |index: usize| {
            usable_component_group.is_none_or(|g| {
                ctx.component_keys
                    .get(index)
                    .is_some_and(|key| text_of(g, key))
            })
        };
        if !usable_vulnerability_groups.is_empty() {
            for (ci, component) in scan.components.iter().enumerate() {
                if !component_ok(ci) {
                    continue;
                }
                for (vi, vuln) in component.vulnerabilities.iter().enumerate() {
                    if usable_vulnerability_groups
                        .iter()
                        .all(|g| vulnerability_matches(g, vuln, ctx.now))
                    {
                        matched_vulnerabilities.push((ci, vi));
                    }
                }
            }
            if matched_vulnerabilities.is_empty() {
                return SectionResult::NoMatch;
            }
        } else if usable_component_group.is_some() {
            matched_components = (0..scan.components.len())
                .filter(|&i| component_ok(i))
                .collect();
            if matched_components.is_empty() {
                return SectionResult::NoMatch;
            }
        }
    }

    if !unknown.is_empty() {
        return SectionResult::Unknown(unknown);
    }

    let found = Found {
        image_details,
        layers,
        components: matched_components,
        vulnerabilities: matched_vulnerabilities,
    };
    SectionResult::Match(render(section, &found, ctx, platform))
}

/// What a matching section matched.
struct Found {
    image_details: Vec<(Criterion, Detail)>,
    layers: Vec<usize>,
    components: Vec<usize>,
    vulnerabilities: Vec<(usize, usize)>,
}

/// The section's violation messages, sorted and without repeats (as StackRox renders them).
fn render(
    section: &CompiledSection,
    found: &Found,
    ctx: &Context,
    platform: &PlatformView,
) -> Vec<String> {
    let has = |c: Criterion| section.groups.iter().any(|g| g.criterion == c);
    let mut out: BTreeSet<String> = BTreeSet::new();

    if has(Criterion::ImageRegistry) || has(Criterion::ImageRemote) || has(Criterion::ImageTag) {
        out.insert(messages::image_details(
            has(Criterion::ImageRegistry).then_some(ctx.image.registry.as_str()),
            has(Criterion::ImageRemote).then_some(ctx.image.remote.as_str()),
            has(Criterion::ImageTag).then_some(ctx.image.tag.as_str()),
        ));
    }
    for (criterion, detail) in &found.image_details {
        let message = match (criterion, detail) {
            (Criterion::ImageUser, _) => platform
                .config
                .map(|c| messages::image_user(c.effective_user())),
            (Criterion::ImageAge, _) => platform
                .config
                .and_then(|c| c.created)
                .map(messages::image_age),
            (Criterion::ImageScanAge, _) => {
                ctx.scan.and_then(|s| s.scanned_at).map(messages::scan_age)
            }
            (Criterion::ImageOs, _) => ctx
                .scan
                .and_then(|s| s.operating_system.as_deref())
                .map(messages::image_os),
            (Criterion::UnscannedImage, _) => Some(messages::unscanned(ctx.scan.is_some())),
            (Criterion::RequiredImageLabel, Detail::Labels(found)) => {
                Some(messages::required_label(found))
            }
            (Criterion::DisallowedImageLabel, Detail::Labels(message)) => Some(message.clone()),
            (Criterion::ImageSignatureVerifiedBy, Detail::OtherVerifiers(others)) => {
                Some(messages::signature_not_verified(others))
            }
            _ => None,
        };
        out.extend(message);
    }
    for line in found.layers.iter().filter_map(|&i| platform.lines.get(i)) {
        out.insert(messages::dockerfile_line(line));
    }
    let components: &[Component] = ctx
        .scan
        .map(|s| s.components.as_slice())
        .unwrap_or_default();
    for &i in &found.components {
        if let Some(c) = components.get(i) {
            out.insert(messages::component(c));
        }
    }
    let show_fix = has(Criterion::FixedBy) || has(Criterion::Fixable);
    let show_nvd = has(Criterion::NvdCvss);
    let show_component = has(Criterion::ImageComponent);
    for &(ci, vi) in &found.vulnerabilities {
        let Some(component) = components.get(ci) else {
            continue;
        };
        if let Some(vuln) = component.vulnerabilities.get(vi) {
            out.insert(messages::vulnerability(vuln, component, show_fix, show_nvd));
        }
        if show_component {
            out.insert(messages::component(component));
        }
    }
    out.into_iter().collect()
}
