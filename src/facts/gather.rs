//! Gathering [`ImageFacts`] once, before any rule runs: every platform's config, the scanner
//! report, and the signatures with the verdict of every key a rule asked about — fetched
//! concurrently. Rules then only read these facts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use serde::Deserialize;

use super::{
    FoundAttestation, FoundBundle, FoundSignature, ImageConfig, ImageFacts, KeyCheck, KeyId,
    KeyRequest, KeySource, PlatformFacts, RekorKey, ScanReport, SignatureFacts, TlogFacts,
};
use crate::cosign::sigstore_bundle::{self, Discovery};
use crate::cosign::{attestation, payload, rekor, sigimage, verify};
use crate::digest::Digest;
use crate::error::Error;
use crate::keys::{self, Environment, KeyContext, KeyRef, PublicKey};
use crate::oci::{CONFIG_LIMIT, Manifest, Platform, platform};
use crate::reference::ImageRef;
use crate::source::{ImageSource, Resolved, Store};

/// What to gather besides the image itself.
#[derive(Clone, Debug, Default)]
pub struct GatherOptions {
    /// A scanner report (Trivy, Grype, cosign vulnerability attestation).
    pub vulns: Option<PathBuf>,
    /// Keys to check the image's signatures with.
    pub keys: Vec<KeyRequest>,
    /// Keys to check the image's in-toto attestations (`.att`) with.
    pub attestation_keys: Vec<KeyRequest>,
    /// Signatures kept in other repositories (a policy's `repository`), keyed by the repository
    /// as written, with the keys to check them with.
    pub other_repositories: BTreeMap<String, Vec<KeyRequest>>,
    /// Transparency-log keys to check signatures' Rekor bundles with.
    pub rekor_keys: Vec<RekorKey>,
    /// Also read the Sigstore bundles attached to the image as referrers (StackRox does).
    pub read_bundles: bool,
    /// The name a local layout is judged under (`--image-name`).
    pub image_name: Option<ImageRef>,
    /// A signature made in this run and not (yet) stored (`gate --dry-run`): judged as if it
    /// were in the registry.
    pub pending_signature: Option<verify::FetchedSignature>,
}

/// Everything [`gather`] needs from the run.
pub struct Gatherer<'a> {
    pub store: &'a Store<'a>,
    pub keys: Option<KeyContext<'a>>,
    pub env: &'a Environment,
}

/// Reads the facts of the resolved image.
pub async fn gather(
    g: &Gatherer<'_>,
    source: &ImageSource,
    resolved: &Resolved,
    options: &GatherOptions,
) -> Result<ImageFacts, Error> {
    let name = image_name(source, options);
    let digest = resolved.digest().clone();
    let scan = match &options.vulns {
        Some(path) => Some(read_scan(path)?),
        None => None,
    };
    // Policies read signatures where the cluster would: the image's own repository, or the
    // repository a policy names. The pipeline's COSIGN_REPOSITORY is not the cluster's; it
    // only says where a dry run's signature would have been stored.
    let own_location = match source {
        ImageSource::Registry(image) => image.clone(),
        ImageSource::Layout(_) => name.clone(),
    };
    let pending_at = sigimage::signature_ref(&own_location, &digest, g.env)?;
    let pending_for = |location: &ImageRef| {
        options.pending_signature.as_ref().map(|sig| Pending {
            signature: sig,
            stored_here: pending_at.registry() == location.registry()
                && pending_at.repository() == location.repository(),
            stored_at: pending_at.name(),
        })
    };
    let elsewhere = async {
        let mut out = BTreeMap::new();
        for (repository, keys) in &options.other_repositories {
            let location = ImageRef::parse(repository).map_err(|e| Error::Input {
                message: format!("a policy names the signature repository '{repository}', which is not a repository: {}", e.reason),
                hint: None,
            })?;
            let wanted = Wanted {
                keys,
                attestation_keys: &[],
                rekor_keys: &options.rekor_keys,
                read_bundles: false,
            };
            let pending = pending_for(&location);
            let facts = signatures(g, source, &digest, &location, &wanted, pending).await?;
            out.insert(repository.clone(), facts);
        }
        Ok::<_, Error>(out)
    };
    let own = Wanted {
        keys: &options.keys,
        attestation_keys: &options.attestation_keys,
        rekor_keys: &options.rekor_keys,
        read_bundles: options.read_bundles,
    };
    let (platforms, signatures, elsewhere) = tokio::join!(
        platforms(g.store, resolved),
        signatures(
            g,
            source,
            &digest,
            &own_location,
            &own,
            pending_for(&own_location)
        ),
        elsewhere
    );
    Ok(ImageFacts {
        name,
        digest,
        platforms: platforms?,
        signatures: signatures?,
        signatures_elsewhere: elsewhere?,
        scan,
    })
}

fn read_scan(path: &std::path::Path) -> Result<ScanReport, Error> {
    super::scan::read_report(path).map_err(|e| Error::Input {
        message: e.to_string(),
        hint: Some("--vulns takes a Trivy JSON report (trivy image --format json), a Grype JSON report (grype -o json), or a cosign vulnerability attestation".into()),
    })
}

/// The name rules see: the registry reference, or for a local layout `--image-name`, else
/// `localhost/<folder>:<tag>`.
fn image_name(source: &ImageSource, options: &GatherOptions) -> ImageRef {
    if let Some(name) = &options.image_name {
        return name.clone();
    }
    match source {
        ImageSource::Registry(image) => image.clone(),
        ImageSource::Layout(l) => {
            let folder = l
                .path
                .file_stem()
                .map(|s| s.to_string_lossy().to_ascii_lowercase())
                .unwrap_or_default();
            let cleaned: String = folder
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            let cleaned = cleaned.trim_matches('-');
            let repo = if cleaned.is_empty() { "image" } else { cleaned };
            let tag = l.tag.clone().unwrap_or_else(|| "latest".into());
            ImageRef::parse(&format!("localhost/{repo}:{tag}"))
                .or_else(|_| ImageRef::parse(&format!("localhost/{repo}")))
                .unwrap_or_else(|_| ImageRef::parse("localhost/image").expect("a valid reference"))
        }
    }
}

/// Every platform image: the chosen child, the single image, or each child of an index.
async fn platforms(store: &Store<'_>, resolved: &Resolved) -> Result<Vec<PlatformFacts>, Error> {
    if let Some((platform, digest)) = &resolved.child {
        return Ok(vec![
            platform_facts(store, digest, Some(platform.clone())).await?,
        ]);
    }
    let manifest = resolved.root.parse().map_err(|e| Error::Input {
        message: format!("the manifest {} {e}", resolved.root.digest),
        hint: None,
    })?;
    match manifest {
        Manifest::Image(image) => Ok(vec![
            config_facts(store, &resolved.root.digest, &image.config.digest, None).await?,
        ]),
        Manifest::Index(index) => {
            let children: Vec<_> = index
                .manifests
                .iter()
                // Attestation manifests (BuildKit's unknown/unknown entries) are not images.
                .filter(|e| platform::entry_platform(e).is_some_and(|p| p.os != "unknown"))
                .collect();
            let facts = join_all(children.iter().map(|entry| async move {
                let digest = Digest::parse(&entry.digest).map_err(|e| Error::Input {
                    message: format!("an index entry has a bad digest '{}': {e}", entry.digest),
                    hint: None,
                })?;
                platform_facts(store, &digest, platform::entry_platform(entry)).await
            }))
            .await;
            facts.into_iter().collect()
        }
    }
}

async fn platform_facts(
    store: &Store<'_>,
    digest: &Digest,
    platform: Option<Platform>,
) -> Result<PlatformFacts, Error> {
    let raw = store.manifest(digest).await?;
    match raw.parse() {
        Ok(Manifest::Image(image)) => {
            config_facts(store, digest, &image.config.digest, platform).await
        }
        Ok(Manifest::Index(_)) => Err(Error::Input {
            message: format!("{digest} is a nested index; imagegate judges indexes one level deep"),
            hint: None,
        }),
        Err(e) => Err(Error::Input {
            message: format!("the manifest {digest} {e}"),
            hint: None,
        }),
    }
}

async fn config_facts(
    store: &Store<'_>,
    manifest_digest: &Digest,
    config_digest: &str,
    platform: Option<Platform>,
) -> Result<PlatformFacts, Error> {
    let config_digest = Digest::parse(config_digest).map_err(|e| Error::Input {
        message: format!(
            "the manifest {manifest_digest} names a bad config digest '{config_digest}': {e}"
        ),
        hint: None,
    })?;
    let bytes = store
        .blob(&config_digest, CONFIG_LIMIT, "the image config")
        .await?;
    let parsed = parse_config(&bytes).map_err(|e| Error::Input {
        message: format!("the image config {config_digest} is not valid: {e}"),
        hint: None,
    })?;
    let platform = platform.or(parsed.platform.clone());
    Ok(PlatformFacts {
        platform,
        digest: manifest_digest.clone(),
        config: parsed.config,
    })
}

/// What an OCI/Docker image config holds that rules read.
struct ParsedConfig {
    config: ImageConfig,
    platform: Option<Platform>,
}

#[derive(Deserialize, Default)]
struct RawConfig {
    #[serde(default)]
    created: Option<String>,
    #[serde(default)]
    os: Option<String>,
    #[serde(default)]
    architecture: Option<String>,
    #[serde(default)]
    variant: Option<String>,
    #[serde(default)]
    config: Option<RawContainerConfig>,
    #[serde(default)]
    history: Option<Vec<RawHistory>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct RawContainerConfig {
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    env: Option<Vec<String>>,
    #[serde(default)]
    exposed_ports: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    entrypoint: Option<Vec<String>>,
    #[serde(default)]
    cmd: Option<Vec<String>>,
}

#[derive(Deserialize, Default)]
struct RawHistory {
    #[serde(default)]
    created_by: Option<String>,
}

fn parse_config(bytes: &[u8]) -> Result<ParsedConfig, String> {
    let raw: RawConfig = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let container = raw.config.unwrap_or_default();
    let history: Vec<String> = raw
        .history
        .unwrap_or_default()
        .into_iter()
        .map(|h| h.created_by.unwrap_or_default())
        .collect();
    let created = raw
        .created
        .as_deref()
        .and_then(|c| DateTime::parse_from_rfc3339(c).ok())
        .map(|t| t.with_timezone(&Utc))
        // go-containerregistry writes the zero time for "unknown".
        .filter(|t| t.timestamp() > 0);
    let platform = match (raw.os.as_deref(), raw.architecture.as_deref()) {
        (Some(os), Some(arch)) if !os.is_empty() && !arch.is_empty() => {
            Some(Platform::new(os, arch, raw.variant.as_deref()))
        }
        _ => None,
    };
    let dockerfile = super::dockerfile::dockerfile_lines(&history);
    Ok(ParsedConfig {
        config: ImageConfig {
            created,
            user: container.user.unwrap_or_default(),
            labels: container.labels.unwrap_or_default(),
            env: container.env.unwrap_or_default(),
            exposed_ports: container
                .exposed_ports
                .unwrap_or_default()
                .into_keys()
                .collect(),
            entrypoint: container.entrypoint.unwrap_or_default(),
            cmd: container.cmd.unwrap_or_default(),
            history,
            dockerfile,
        },
        platform,
    })
}

/// A dry run's signature, judged as if stored (it is not in any registry).
#[derive(Clone)]
struct Pending<'a> {
    signature: &'a verify::FetchedSignature,
    /// It would be stored in the repository being read.
    stored_here: bool,
    /// Where it would be stored (`$COSIGN_REPOSITORY` or the image's repository).
    stored_at: String,
}

/// The signatures (and attestations) stored for `digest` in the repository `location`,
/// checked with every requested key; a dry run's signature counts where it would be stored.
async fn signatures(
    g: &Gatherer<'_>,
    source: &ImageSource,
    digest: &Digest,
    location: &ImageRef,
    wanted: &Wanted<'_>,
    pending: Option<Pending<'_>>,
) -> Result<SignatureFacts, Error> {
    let Wanted {
        keys,
        attestation_keys,
        ..
    } = *wanted;
    if keys.is_empty() && attestation_keys.is_empty() {
        return Ok(SignatureFacts::default());
    }
    let (ImageSource::Registry(image), Store::Registry { registry, .. }) = (source, g.store) else {
        if let Some(pending) = pending {
            // A local layout in a dry run: the signature made in memory is the only one.
            let public = public_keys(g, keys).await?;
            let (signatures, absent) = if pending.stored_here {
                (std::slice::from_ref(pending.signature), String::new())
            } else {
                (
                    &[][..],
                    format!(
                        "the signature made in this dry run would be stored in {}, not {}",
                        pending.stored_at,
                        location.name()
                    ),
                )
            };
            return Ok(checked(signatures, wanted, &public, digest, &absent));
        }
        return Ok(SignatureFacts {
            unavailable: Some(
                "signatures are stored in a registry and this is a local layout; judge the image by its registry reference to check signatures".into(),
            ),
            ..SignatureFacts::default()
        });
    };
    let sig_ref = location.with_tag(&digest.tag_with_suffix("sig"));
    let att_ref = sig_ref.with_tag(&digest.tag_with_suffix("att"));
    let mut all_keys: Vec<KeyRequest> = keys.iter().chain(attestation_keys).cloned().collect();
    all_keys.sort();
    all_keys.dedup();
    let read_attestations = async {
        if attestation_keys.is_empty() {
            Ok(None)
        } else {
            sigimage::read(registry, &att_ref).await
        }
    };
    // StackRox reads Sigstore bundles (cosign 3's referrers) besides the .sig tag; a
    // registry that cannot list referrers leaves only the .sig tag, as in StackRox.
    let read_bundles = async {
        if !wanted.read_bundles || keys.is_empty() {
            return Vec::new();
        }
        match sigstore_bundle::fetch(registry, &sig_ref, digest, Discovery::StackRox).await {
            Ok(found) => {
                for (manifest, why) in &found.skipped {
                    tracing::warn!("the referrer {manifest} of {image} was passed over: {why}");
                }
                found.bundles
            }
            Err(e) => {
                tracing::warn!("Sigstore bundles of {image} could not be listed: {e}");
                Vec::new()
            }
        }
    };
    let (sig_image, att_image, public, bundles) = tokio::join!(
        sigimage::read(registry, &sig_ref),
        read_attestations,
        public_keys(g, &all_keys),
        read_bundles
    );
    let public = public?;

    let mut fetched = match sig_image? {
        Some(image) if !keys.is_empty() => verify::fetch(registry, &image).await,
        _ => Vec::new(),
    };
    if let Some(pending) = pending.as_ref().filter(|p| p.stored_here) {
        fetched.push(pending.signature.clone());
    }
    let mut facts = checked(
        &fetched,
        wanted,
        &public,
        digest,
        &format!("{sig_ref} does not exist"),
    );
    bundle_facts(&mut facts, &bundles, keys, &public, digest, image);

    if let Some(att_image) = att_image? {
        for att in attestation::fetch(registry, &att_image, digest).await {
            let Ok(opened) = att.content else { continue };
            if !opened.names_image {
                continue;
            }
            let verified_by = attestation_keys
                .iter()
                .filter(|r| {
                    public
                        .iter()
                        .find(|(id, _)| id == &r.id)
                        .and_then(|(_, k)| k.as_ref().ok())
                        .is_some_and(|k| opened.verifies_with(k))
                })
                .map(|r| r.id.clone())
                .collect();
            facts.attestations.push(FoundAttestation {
                predicate_type: opened.predicate_type.clone(),
                predicate: opened.predicate.clone(),
                verified_by,
            });
        }
    }
    Ok(facts)
}

/// The Sigstore bundles found, and which of them each key verifies.
fn bundle_facts(
    facts: &mut SignatureFacts,
    bundles: &[sigstore_bundle::FetchedBundle],
    keys: &[KeyRequest],
    public: &[(KeyId, Result<PublicKey, String>)],
    digest: &Digest,
    image: &ImageRef,
) {
    if bundles.is_empty() {
        return;
    }
    facts.bundles = bundles
        .iter()
        .map(|b| FoundBundle {
            manifest: b.manifest.clone(),
            predicate_type: Some(b.content.envelope.predicate_type.clone()),
            tlog_entries: b.content.tlog_entries,
        })
        .collect();
    let claims = verify::Claims {
        digest: Some(digest.clone()),
        ..verify::Claims::default()
    };
    for request in keys {
        let check = match public.iter().find(|(id, _)| id == &request.id) {
            Some((_, Ok(key))) => {
                let result = sigstore_bundle::check(bundles, key, &claims, image);
                KeyCheck::Checked {
                    verified: result.verified.iter().map(|v| v.index).collect(),
                    failures: result
                        .failures
                        .into_iter()
                        .map(|(i, reason)| format!("bundle {}: {reason}", i + 1))
                        .collect(),
                }
            }
            Some((_, Err(reason))) => KeyCheck::KeyUnavailable(reason.clone()),
            None => KeyCheck::KeyUnavailable("the key was not loaded".into()),
        };
        facts.bundle_checks.insert(request.id.clone(), check);
    }
}

/// The keys signatures are checked with.
#[derive(Clone, Copy)]
struct Wanted<'a> {
    keys: &'a [KeyRequest],
    attestation_keys: &'a [KeyRequest],
    rekor_keys: &'a [RekorKey],
    /// Also read Sigstore bundles attached as referrers.
    read_bundles: bool,
}

/// Signature facts for `fetched`, checked with each of the wanted keys (and their Rekor
/// bundles with each Rekor key); `absent` says where signatures were looked for when there
/// are none.
fn checked(
    fetched: &[verify::FetchedSignature],
    wanted: &Wanted<'_>,
    public: &[(KeyId, Result<PublicKey, String>)],
    digest: &Digest,
    absent: &str,
) -> SignatureFacts {
    let keys = wanted.keys;
    let rekor: Vec<(KeyId, Result<rekor::RekorKey, String>)> = wanted
        .rekor_keys
        .iter()
        .map(|r| (r.id.clone(), rekor::RekorKey::from_pem(&r.pem)))
        .collect();
    let mut facts = SignatureFacts {
        found: fetched.iter().map(|f| found_signature(f, &rekor)).collect(),
        ..SignatureFacts::default()
    };
    // cosign accepts a bundle only for the key the entry records: note which keys those are.
    for (id, key) in public {
        let Ok(key) = key else { continue };
        for found in &mut facts.found {
            if let Some(tlog) = &mut found.tlog
                && tlog.entry_key.as_ref() == Some(key.id())
            {
                tlog.entry_key_of.push(id.clone());
            }
        }
    }
    let claims = verify::Claims {
        digest: Some(digest.clone()),
        ..verify::Claims::default()
    };
    for request in keys {
        let check = match public
            .iter()
            .find(|(id, _)| id == &request.id)
            .map(|(_, k)| k)
        {
            Some(Ok(_)) if fetched.is_empty() => KeyCheck::Checked {
                verified: Vec::new(),
                failures: vec![format!("no signatures found ({absent})")],
            },
            Some(Ok(key)) => {
                let result = verify::check(fetched, key, &claims);
                KeyCheck::Checked {
                    verified: result.verified.iter().map(|v| v.index).collect(),
                    failures: result
                        .failures
                        .into_iter()
                        .map(|(i, reason)| format!("signature {}: {reason}", i + 1))
                        .collect(),
                }
            }
            Some(Err(reason)) => KeyCheck::KeyUnavailable(reason.clone()),
            None => KeyCheck::KeyUnavailable("the key was not loaded".into()),
        };
        facts.checks.insert(request.id.clone(), check);
    }
    facts
}

/// Each requested key's public key. A key service that cannot be reached stops the run (exit
/// 3); a key that is not usable (e.g. a malformed PEM) is recorded as unavailable.
async fn public_keys(
    g: &Gatherer<'_>,
    requests: &[KeyRequest],
) -> Result<Vec<(KeyId, Result<PublicKey, String>)>, Error> {
    let mut out = Vec::new();
    for request in requests {
        let key = match &request.source {
            KeySource::Pem(pem) => {
                PublicKey::from_pem(pem, &request.id.to_string()).map_err(|e| e.to_string())
            }
            KeySource::Uri(uri) => {
                let Some(ctx) = &g.keys else {
                    out.push((
                        request.id.clone(),
                        Err("key services are not available here".to_string()),
                    ));
                    continue;
                };
                let key_ref = KeyRef::parse(uri)?;
                match keys::public_key(&key_ref, ctx).await {
                    Ok(k) => Ok(k),
                    Err(e @ keys::KeyError::Remote { .. }) => return Err(e.into()),
                    Err(e) => Err(e.to_string()),
                }
            }
        };
        out.push((request.id.clone(), key));
    }
    Ok(out)
}

fn found_signature(
    sig: &verify::FetchedSignature,
    rekor: &[(KeyId, Result<rekor::RekorKey, String>)],
) -> FoundSignature {
    let parsed = sig
        .payload
        .as_ref()
        .ok()
        .and_then(|b| payload::parse(b).ok());
    FoundSignature {
        docker_reference: parsed
            .as_ref()
            .map(|p| p.docker_reference.clone())
            .unwrap_or_default(),
        manifest_digest: parsed
            .as_ref()
            .map(|p| p.manifest_digest.clone())
            .unwrap_or_default(),
        annotations: parsed.map(|p| p.annotations).unwrap_or_default(),
        tlog: sig
            .layer
            .annotation(sigimage::BUNDLE_ANNOTATION)
            .map(|text| tlog_facts(text, sig, rekor)),
        has_certificate: sig
            .layer
            .annotation(sigimage::CERTIFICATE_ANNOTATION)
            .is_some(),
    }
}

/// A layer's Rekor bundle, checked as cosign checks it: the entry must record this layer's
/// signature and payload hash; the SET is checked with every Rekor key the rules name.
fn tlog_facts(
    text: &str,
    sig: &verify::FetchedSignature,
    rekor: &[(KeyId, Result<rekor::RekorKey, String>)],
) -> TlogFacts {
    let parsed = match rekor::parse(text) {
        Ok(b) => b,
        Err(e) => {
            return TlogFacts {
                problem: Some(e),
                ..TlogFacts::default()
            };
        }
    };
    let mut facts = TlogFacts {
        log_id: parsed.log_id.clone(),
        log_index: parsed.log_index,
        integrated_time: parsed.integrated_time,
        ..TlogFacts::default()
    };
    if sig
        .layer
        .annotation(sigimage::CERTIFICATE_ANNOTATION)
        .is_some()
    {
        facts.unchecked = Some(
            "the signature carries a certificate, and cosign compares the log entry with the certificate, which imagegate does not do offline".into(),
        );
        return facts;
    }
    let signature = sig
        .layer
        .annotation(sigimage::SIGNATURE_ANNOTATION)
        .unwrap_or_default();
    match &sig.payload {
        Ok(payload) => match parsed.check_holds(signature, payload) {
            Ok(entry) => facts.entry_key = Some(entry.key_id()),
            Err(e) => facts.problem = Some(e),
        },
        Err(e) => facts.problem = Some(format!("reading payload: {e}")),
    }
    for (id, key) in rekor {
        let verdict = match key {
            Ok(key) => parsed.verify_set(key),
            Err(e) => Err(e.clone()),
        };
        facts.set_checks.insert(id.clone(), verdict);
    }
    facts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_config_fields_rules_need() {
        let config = br#"{"architecture":"arm64","variant":"v8","os":"linux","created":"2024-01-15T10:00:00Z",
            "config":{"User":"app","Labels":{"a":"b"},"Env":["X=1"],"ExposedPorts":{"22/tcp":{},"8080/tcp":{}},"Cmd":["sh"]},
            "history":[{"created_by":"/bin/sh -c #(nop)  USER app"},{"created_by":"/bin/sh -c apt-get update"},{"empty_layer":true}]}"#;
        let p = parse_config(config).unwrap();
        assert_eq!(p.platform.unwrap().to_string(), "linux/arm64/v8");
        assert_eq!(p.config.user, "app");
        assert_eq!(p.config.exposed_ports, vec!["22/tcp", "8080/tcp"]);
        assert_eq!(
            p.config.created.unwrap().to_rfc3339(),
            "2024-01-15T10:00:00+00:00"
        );
        assert_eq!(p.config.history.len(), 3);
        assert_eq!(p.config.dockerfile[0].instruction, "USER");
        assert_eq!(p.config.dockerfile[1].instruction, "RUN");
    }

    #[test]
    fn a_bare_config_has_defaults_and_the_zero_time_is_no_time() {
        let p = parse_config(
            br#"{"created":"0001-01-01T00:00:00Z","rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .unwrap();
        assert!(p.config.created.is_none());
        assert_eq!(p.config.effective_user(), "root");
        assert!(p.platform.is_none());
        assert!(parse_config(b"not json").is_err());
        assert!(parse_config(br#"{"config":{"User":7}}"#).is_err());
    }

    #[test]
    fn layouts_get_a_name_under_localhost() {
        let src = ImageSource::parse("oci:examples/webapp:1.0").unwrap();
        assert_eq!(
            image_name(&src, &GatherOptions::default()).to_string(),
            "localhost/webapp:1.0"
        );
        let named = GatherOptions {
            image_name: Some(ImageRef::parse("registry.example.com/web/app:1.0").unwrap()),
            ..GatherOptions::default()
        };
        assert_eq!(
            image_name(&src, &named).to_string(),
            "registry.example.com/web/app:1.0"
        );
    }
}
