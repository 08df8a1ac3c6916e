//! `verifyImages` rules (`pkg/engine/internal/imageverifier.go`,
//! `pkg/engine/handlers/validation/validate_image.go`), judged from the signatures and
//! attestations imagegate gathered instead of asking the registry, Rekor and Fulcio.
//!
//! Kyverno runs two passes, and so does this module:
//! 1. verify (mutating webhook): for every entry whose `imageReferences` match the image (and
//!    `skipImageReferences` do not), every attestor set must pass (within a set `count`
//!    entries, default all; several PEMs in one `publicKeys` are separate entries), then every
//!    attestation; `mutateDigest` pins the image to its digest;
//! 2. validate: for entries matching the (pinned) image, `verifyDigest` requires a digest and
//!    `required` requires pass 1 to have passed (or skipped) the image for this rule.
//!
//! One signature check with a key follows cosign: some signature must verify with the key and
//! name the image's digest; unless `rekor.ignoreTlog: true`, it must carry a Rekor bundle that
//! verifies with the policy's `rekor.pubkey` (without one, Kyverno uses Sigstore's public keys
//! from TUF, which is online: not evaluated); one such signature must carry all the required
//! annotations.

use std::collections::BTreeMap;

use serde_json::Value;

use super::cfg::{
    Attestation, Attestor, AttestorSet, ImageVerification, Rekor, Rule, StaticKeyAttestor,
};
use super::conditions::{Truth, evaluate_block, evaluate_list};
use super::eval::{RuleResult, Verdict};
use super::image::KyvernoImage;
use super::vars::Scope;
use super::wildcard;
use crate::facts::{FoundSignature, ImageFacts, KeyCheck, KeyId, SignatureFacts, TlogVerdict};

/// What the verify pass needs besides the rule.
pub struct Input<'a> {
    pub rule: &'a Rule,
    pub facts: &'a ImageFacts,
    /// Signatures stored in other repositories (`repository:` in the policy), by repository.
    pub signatures_by_repository: &'a BTreeMap<String, SignatureFacts>,
    /// The image as written in the Pod.
    pub image: &'a KyvernoImage,
    /// The variables the rule sees.
    pub scope: &'a Scope,
}

/// One check's three-valued result.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Check {
    Pass,
    Fail(String),
    Unknown(String),
}

/// Splits `publicKeys` after each `-----END PUBLIC KEY-----` (`splitPEM`); the text after the
/// last marker is dropped.
pub fn split_pem(pem: &str) -> Vec<String> {
    const END: &str = "-----END PUBLIC KEY-----";
    let mut keys = Vec::new();
    let mut rest = pem;
    while let Some(at) = rest.find(END) {
        let cut = at + END.len();
        keys.push(rest[..cut].to_string());
        rest = &rest[cut..];
    }
    keys
}

/// `ExpandStaticKeys`: an entry whose `publicKeys` holds several PEMs becomes one entry per
/// key; `count` then applies across the keys.
pub fn expand_static_keys(set: &AttestorSet) -> AttestorSet {
    let mut entries = Vec::new();
    for e in &set.entries {
        if let Some(keys) = &e.keys {
            let pems = split_pem(&keys.public_keys);
            if pems.len() > 1 {
                for pem in pems {
                    let mut copy = e.clone();
                    if let Some(k) = copy.keys.as_mut() {
                        k.public_keys = pem;
                    }
                    entries.push(copy);
                }
                continue;
            }
        }
        entries.push(e.clone());
    }
    AttestorSet {
        count: set.count,
        entries,
    }
}

/// How a static key is named: a PEM (its fingerprint) or a key URI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyMaterial {
    Pem(String),
    Uri(String),
}

impl KeyMaterial {
    pub fn id(&self) -> Result<KeyId, String> {
        match self {
            KeyMaterial::Pem(pem) => KeyId::for_public_key_pem(pem),
            KeyMaterial::Uri(uri) => Ok(KeyId::Uri(uri.clone())),
        }
    }
}

/// The key a `keys` attestor names, after variable substitution (`buildCosignVerifier`:
/// publicKeys, else secret as `k8s://NS/NAME`, else kms). A `publicKeys` value that is not a
/// PEM is a key reference, as in cosign.
pub fn static_key(keys: &StaticKeyAttestor, scope: &Scope) -> Result<KeyMaterial, String> {
    let text = |s: &str| -> Result<String, String> {
        match scope.substitute_str(s)? {
            Value::String(s) => Ok(s),
            other => Ok(other.to_string()),
        }
    };
    if !keys.public_keys.is_empty() {
        let k = text(&keys.public_keys)?;
        if k.trim_start().starts_with("-----BEGIN PUBLIC KEY-----") {
            Ok(KeyMaterial::Pem(k))
        } else {
            Ok(KeyMaterial::Uri(k.trim().to_string()))
        }
    } else if let Some(secret) = &keys.secret {
        Ok(KeyMaterial::Uri(format!(
            "k8s://{}/{}",
            text(&secret.namespace)?,
            text(&secret.name)?
        )))
    } else {
        Ok(KeyMaterial::Uri(text(&keys.kms)?.trim().to_string()))
    }
}

/// Transparency-log settings of an attestor (`rekor` absent: public Rekor, tlog on).
struct Tlog<'a> {
    ignore: bool,
    pubkey: Option<&'a str>,
}

fn tlog(rekor: Option<&Rekor>) -> Tlog<'_> {
    match rekor {
        None => Tlog {
            ignore: false,
            pubkey: None,
        },
        Some(r) => Tlog {
            ignore: r.ignore_tlog,
            pubkey: Some(r.pubkey.as_str()).filter(|p| !p.trim().is_empty()),
        },
    }
}

impl Input<'_> {
    /// The signatures an attestor reads: from its `repository` (or the entry's), else the
    /// image's own.
    fn signatures(&self, repository: &str) -> Result<&SignatureFacts, String> {
        if repository.is_empty() {
            return Ok(&self.facts.signatures);
        }
        self.signatures_by_repository.get(repository).ok_or_else(|| {
            format!(
                "the policy reads signatures from repository {repository}, and none were gathered from there"
            )
        })
    }

    fn digest(&self) -> String {
        self.facts.digest.to_string()
    }
}

/// cosign's `VerifyImageSignatures` with one key, then Kyverno's annotation check.
fn check_signatures(
    sigs: &SignatureFacts,
    key: &KeyId,
    tlog: &Tlog<'_>,
    annotations: &BTreeMap<String, String>,
    digest: &str,
) -> Check {
    if let Some(why) = &sigs.unavailable {
        return Check::Unknown(format!("signatures could not be read: {why}"));
    }
    if sigs.found.is_empty() {
        return Check::Fail("no signatures found".into());
    }
    let (verified, failures) = match sigs.checks.get(key) {
        None => {
            return Check::Unknown(format!(
                "the signatures were not checked with {key} (it must be among the keys gathered for this policy)"
            ));
        }
        Some(KeyCheck::KeyUnavailable(why)) => {
            return Check::Unknown(format!("{key} could not be used: {why}"));
        }
        Some(KeyCheck::Checked { verified, failures }) => (verified, failures),
    };
    let verified: Vec<&FoundSignature> = verified
        .iter()
        .filter_map(|i| sigs.found.get(*i))
        .filter(|s| s.manifest_digest == digest)
        .collect();
    if verified.is_empty() {
        let why = if failures.is_empty() {
            format!("no signature verifies with {key}")
        } else {
            failures.join("\n ")
        };
        return Check::Fail(format!("no matching signatures: {why}"));
    }
    let candidates: Vec<&FoundSignature> = if tlog.ignore {
        verified
    } else {
        let bundled: Vec<&FoundSignature> =
            verified.into_iter().filter(|s| s.tlog.is_some()).collect();
        if bundled.is_empty() {
            return Check::Fail(
                "no matching signatures: the signature has no transparency-log (Rekor) bundle, and the policy does not set rekor.ignoreTlog: true, so Kyverno requires the signature in the transparency log (cosign attaches the bundle whenever it uploads a signature, so one without it was not uploaded and Kyverno's lookup will not find it)".into(),
            );
        }
        let Some(pubkey) = tlog.pubkey else {
            return Check::Unknown(
                "the signature carries a Rekor bundle, but the policy names no rekor.pubkey; checking the bundle needs Sigstore's public Rekor keys from TUF, which is online".into(),
            );
        };
        let rekor_id = match KeyId::for_public_key_pem(pubkey) {
            Ok(id) => id,
            Err(e) => return Check::Fail(format!("failed to load Rekor public keys: {e}")),
        };
        let mut reasons = Vec::new();
        let mut accepted = Vec::new();
        for sig in bundled {
            let Some(facts) = &sig.tlog else { continue };
            match facts.verdict(key, &rekor_id) {
                TlogVerdict::Accepted => accepted.push(sig),
                TlogVerdict::Refused(why) => reasons.push(why),
                TlogVerdict::NotChecked(why) => {
                    return Check::Unknown(format!(
                        "the signature's Rekor bundle cannot be judged offline with the policy's rekor.pubkey: {why}"
                    ));
                }
            }
        }
        if accepted.is_empty() {
            return Check::Fail(format!(
                "no matching signatures: error verifying bundle: {}",
                reasons.join("\n ")
            ));
        }
        accepted
    };
    if !annotations.is_empty()
        && !candidates.iter().any(|s| {
            annotations
                .iter()
                .all(|(k, v)| s.annotations.get(k) == Some(v))
        })
    {
        return Check::Fail("no signature matched the required annotations".into());
    }
    Check::Pass
}

const KEYLESS_OFFLINE: &str = "keyless verification needs Fulcio roots and Rekor online (and the certificate identity checked against them); not evaluated offline";
const CERTS_OFFLINE: &str = "certificate verification (certificates.cert/certChain) checks the signature against the certificate and its chain; not evaluated offline";

/// One attestor entry (not nested) for signatures; returns the path suffix and the result.
fn verify_entry(
    input: &Input<'_>,
    iv: &ImageVerification,
    entry: &Attestor,
) -> (&'static str, Check) {
    let annotations = entry.annotations.as_ref().unwrap_or(&iv.annotations);
    let repository = if entry.repository.is_empty() {
        &iv.repository
    } else {
        &entry.repository
    };
    let sigs = match input.signatures(repository) {
        Ok(s) => s,
        Err(why) => {
            let sub = if entry.keys.is_some() {
                ".keys"
            } else if entry.certificates.is_some() {
                ".certificates"
            } else {
                ".keyless"
            };
            return (sub, Check::Unknown(why));
        }
    };
    if let Some(keys) = &entry.keys {
        // The hash comes from the deprecated `keys.signatureAlgorithm` (CRD default sha256);
        // the gathered checks were made with SHA-256.
        if let Some(alg) = keys.signature_algorithm.as_deref()
            && !alg.is_empty()
            && alg != "sha256"
        {
            return (
                ".keys",
                Check::Unknown(format!(
                    "signatureAlgorithm {alg}: the signatures were checked with SHA-256 only"
                )),
            );
        }
        let material = match static_key(keys, input.scope) {
            Ok(m) => m,
            Err(why) => return (".keys", Check::Unknown(why)),
        };
        let id = match material.id() {
            Ok(id) => id,
            Err(e) => {
                return (
                    ".keys",
                    Check::Fail(format!("failed to load public key from PEM: {e}")),
                );
            }
        };
        let check = check_signatures(
            sigs,
            &id,
            &tlog(keys.rekor.as_ref()),
            annotations,
            &input.digest(),
        );
        return (".keys", check);
    }
    let (sub, offline) = if entry.certificates.is_some() {
        (".certificates", CERTS_OFFLINE)
    } else {
        (".keyless", KEYLESS_OFFLINE)
    };
    if let Some(why) = &sigs.unavailable {
        return (
            sub,
            Check::Unknown(format!("signatures could not be read: {why}")),
        );
    }
    if sigs.found.is_empty() {
        return (sub, Check::Fail("no signatures found".into()));
    }
    if entry.keyless.is_some() && !sigs.found.iter().any(|s| s.has_certificate) {
        return (
            sub,
            Check::Fail(
                "no matching signatures: no signature carries a certificate, which keyless verification needs".into(),
            ),
        );
    }
    (sub, Check::Unknown(offline.into()))
}

/// `verifyAttestorSet`: entries in order until `count` pass; errors joined with "; ".
fn verify_attestor_set(
    input: &Input<'_>,
    iv: &ImageVerification,
    set: &AttestorSet,
    path: &str,
) -> Check {
    let set = expand_static_keys(set);
    let required = set.required_count();
    let mut verified = 0;
    let mut errors = Vec::new();
    let mut unknowns = Vec::new();
    for (i, entry) in set.entries.iter().enumerate() {
        let entry_path = format!("{path}.entries[{i}]");
        let result = match &entry.attestor {
            Some(nested) => {
                verify_attestor_set(input, iv, nested, &format!("{entry_path}.attestor"))
            }
            None => {
                let (sub, check) = verify_entry(input, iv, entry);
                match check {
                    Check::Fail(e) => Check::Fail(format!("{entry_path}{sub}: {e}")),
                    Check::Unknown(u) => Check::Unknown(format!("{entry_path}{sub}: {u}")),
                    Check::Pass => Check::Pass,
                }
            }
        };
        match result {
            Check::Pass => {
                verified += 1;
                if verified >= required {
                    return Check::Pass;
                }
            }
            Check::Fail(e) => errors.push(e),
            Check::Unknown(u) => unknowns.push(u),
        }
    }
    if verified + unknowns.len() >= required && required > 0 {
        Check::Unknown(unknowns.join("; "))
    } else {
        Check::Fail(errors.join("; "))
    }
}

/// One attestation entry: attestations of the type, verified by the entry's key, each
/// satisfying the conditions.
fn verify_attestation_entry(
    input: &Input<'_>,
    iv: &ImageVerification,
    att: &Attestation,
    entry: &Attestor,
    entry_path: &str,
) -> Check {
    let repository = if entry.repository.is_empty() {
        &iv.repository
    } else {
        &entry.repository
    };
    let sigs = match input.signatures(repository) {
        Ok(s) => s,
        Err(why) => return Check::Unknown(why),
    };
    if let Some(why) = &sigs.unavailable {
        return Check::Unknown(format!("attestations could not be read: {why}"));
    }
    let Some(keys) = &entry.keys else {
        if sigs.attestations.is_empty() {
            return Check::Fail("no matching attestations".into());
        }
        let why = if entry.certificates.is_some() {
            CERTS_OFFLINE
        } else {
            KEYLESS_OFFLINE
        };
        return Check::Unknown(format!("{entry_path}: {why}"));
    };
    // Kyverno does not split several PEMs here: the first key is the one used.
    let material = match static_key(keys, input.scope) {
        Ok(KeyMaterial::Pem(pem)) => match split_pem(&pem).into_iter().next() {
            Some(first) => KeyMaterial::Pem(first),
            None => KeyMaterial::Pem(pem),
        },
        Ok(other) => other,
        Err(why) => return Check::Unknown(format!("{entry_path}.keys: {why}")),
    };
    let key = match material.id() {
        Ok(id) => id,
        Err(e) => return Check::Fail(format!("failed to load public key from PEM: {e}")),
    };
    let t = tlog(keys.rekor.as_ref());
    if !t.ignore {
        return Check::Unknown(format!(
            "{entry_path}.keys: transparency-log checking is on for attestations (no rekor.ignoreTlog: true), and the gathered attestations carry no Rekor information; not evaluated offline"
        ));
    }
    if entry.annotations.as_ref().is_some_and(|a| !a.is_empty()) || !iv.annotations.is_empty() {
        return Check::Unknown(format!(
            "{entry_path}.keys: annotation checks on attestations are not evaluated offline"
        ));
    }
    let by_key: Vec<_> = sigs
        .attestations
        .iter()
        .filter(|a| a.verified_by.contains(&key))
        .collect();
    if by_key.is_empty() {
        return Check::Fail(format!(
            "no matching attestations: none verifies with {key}"
        ));
    }
    let wanted = att.effective_type();
    let of_type: Vec<_> = by_key
        .iter()
        .filter(|a| a.predicate_type == wanted)
        .collect();
    if of_type.is_empty() {
        return Check::Fail(format!(
            "{entry_path}.keys: attestions not found for predicate type {wanted}"
        ));
    }
    let pinned = input.image.pinned(&input.digest()).string();
    for statement in of_type {
        if att.conditions.is_empty() {
            continue;
        }
        let mut scope = input.scope.clone();
        scope.set_known("image", input.image.pinned(&input.digest()).context_value());
        if !att.name.is_empty() {
            scope.set_known(&att.name, statement.predicate.clone());
        }
        let Value::Object(predicate) = &statement.predicate else {
            return Check::Fail(format!(
                "{entry_path}.keys: failed to check attestations: failed to extract predicate from statement"
            ));
        };
        scope.set_open(predicate);
        match evaluate_list(&scope, &att.conditions) {
            Truth::True(_) => {}
            Truth::False(msg) => {
                return Check::Fail(format!(
                    "{entry_path}.keys: attestation checks failed for {pinned} and predicate {wanted}: {msg}"
                ));
            }
            Truth::Unknown(why) => return Check::Unknown(format!("{entry_path}.keys: {why}")),
        }
    }
    Check::Pass
}

/// `verifyAttestations` for one verifyImages entry.
fn verify_attestations(input: &Input<'_>, iv: &ImageVerification) -> Check {
    for (i, att) in iv.attestations.iter().enumerate() {
        let path = format!(".attestations[{i}]");
        if att.effective_type().is_empty() {
            return Check::Fail(format!("{path}: missing type"));
        }
        let sets = if att.attestors.is_empty() {
            vec![AttestorSet {
                count: None,
                entries: vec![Attestor::default()],
            }]
        } else {
            att.attestors.clone()
        };
        for (j, set) in sets.iter().enumerate() {
            let required = set.required_count();
            let mut verified = 0;
            let mut errors = Vec::new();
            let mut unknowns = Vec::new();
            for entry in &set.entries {
                // Kyverno names the entry with the attestation's index; reproduced as is.
                let entry_path = format!("{path}.attestors[{j}].entries[{i}]");
                match verify_attestation_entry(input, iv, att, entry, &entry_path) {
                    Check::Pass => {
                        verified += 1;
                        if verified >= required {
                            break;
                        }
                    }
                    Check::Fail(e) => errors.push(e),
                    Check::Unknown(u) => unknowns.push(u),
                }
            }
            if verified < required {
                if verified + unknowns.len() >= required {
                    return Check::Unknown(unknowns.join("; "));
                }
                let error = if errors.is_empty() {
                    "attestations verification failed".to_string()
                } else {
                    errors.join("; ")
                };
                return Check::Fail(format!(
                    "image attestations verification failed, verifiedCount: {verified}, requiredCount: {required}, error: {error}"
                ));
            }
        }
    }
    Check::Pass
}

/// `validate.deny` of the rule's verifyImages entries (checked once attestations pass).
fn verify_validations(input: &Input<'_>) -> Check {
    for iv in &input.rule.verify_images {
        let Some(v) = &iv.validate else { continue };
        let Some(raw) = v.deny.as_ref().and_then(|d| d.conditions.as_ref()) else {
            continue;
        };
        let block = match super::cfg::ConditionBlock::from_value(raw) {
            Ok(b) => b,
            Err(e) => return Check::Fail(format!("validation in verifyImages failed: {e}")),
        };
        let mut scope = input.scope.clone();
        scope.set_known("image", input.image.context_value());
        match evaluate_block(&scope, &block) {
            Truth::True(msg) => {
                let message = v.message.as_deref().unwrap_or("");
                let text = if message.is_empty() && msg.is_empty() {
                    "validation error: imageVerify  failed".to_string()
                } else {
                    [message, msg.as_str()]
                        .into_iter()
                        .filter(|s| !s.is_empty())
                        .collect::<Vec<_>>()
                        .join("; ")
                };
                return Check::Fail(format!("validation in verifyImages failed: {text}"));
            }
            Truth::False(_) => {}
            Truth::Unknown(why) => return Check::Unknown(why),
        }
    }
    Check::Pass
}

/// Pass 1 for one entry that matched the image: attestors, then attestations.
fn verify_image(input: &Input<'_>, iv: &ImageVerification) -> Option<Check> {
    if iv.attestors.is_empty() && iv.attestations.is_empty() {
        return None;
    }
    let image = input.image.string();
    if iv.verification_type != "Cosign" {
        return Some(Check::Unknown(format!(
            "cannot verify image {image} offline: type {} verification is not supported (imagegate gathers cosign signatures)",
            iv.verification_type
        )));
    }
    if iv.cosign_oci11 {
        return Some(Check::Unknown(format!(
            "cannot verify image {image} offline: cosignOCI11 makes Kyverno read signatures from OCI 1.1 referrers, and the gathered signatures come from the .sig tag"
        )));
    }
    for (i, set) in iv.attestors.iter().enumerate() {
        match verify_attestor_set(input, iv, set, &format!(".attestors[{i}]")) {
            Check::Pass => {}
            Check::Fail(e) => {
                return Some(Check::Fail(format!("failed to verify image {image}: {e}")));
            }
            Check::Unknown(u) => {
                return Some(Check::Unknown(format!(
                    "cannot verify image {image} offline: {u}"
                )));
            }
        }
    }
    match verify_attestations(input, iv) {
        Check::Pass => {}
        other => return Some(other),
    }
    let has_validation = input
        .rule
        .verify_images
        .iter()
        .any(|v| v.validate.as_ref().is_some_and(|x| x.deny.is_some()));
    if has_validation {
        return Some(verify_validations(input));
    }
    Some(Check::Pass)
}

/// Status of pass 1 for the image, as recorded in Kyverno's image-verification annotation.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Recorded {
    Pass,
    Skip,
    Fail,
    Unknown(String),
}

/// Pass 2's result for the image.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Pass2 {
    NoMatch,
    Passed,
    Skipped,
    Fail(String),
    Unknown(String),
}

/// Whether any entry of the rule selects the image (so Kyverno's verify handler runs).
pub fn rule_selects(rule: &Rule, image: &KyvernoImage) -> bool {
    rule.verify_images
        .iter()
        .map(ImageVerification::converted)
        .any(|iv| wildcard::matches_any(&iv.image_references, &image.string()))
}

/// Whether the rule's `mutateDigest` pins the image (it has no digest and the rule selects it).
pub fn pins(rule: &Rule, image: &KyvernoImage) -> bool {
    image.digest.is_empty()
        && rule_selects(rule, image)
        && rule.verify_images.iter().any(|iv| iv.mutate_digest)
}

/// Both passes of a verifyImages rule for the image.
pub fn evaluate(input: &Input<'_>) -> RuleResult {
    let image = input.image;
    let image_str = image.string();
    let ivs: Vec<ImageVerification> = input
        .rule
        .verify_images
        .iter()
        .map(ImageVerification::converted)
        .collect();
    if !rule_selects(input.rule, image) {
        let refs: Vec<String> = ivs
            .iter()
            .flat_map(|iv| iv.image_references.clone())
            .collect();
        return RuleResult::new(Verdict::Skip(format!(
            "image {image_str} does not match imageReferences [{}]",
            refs.join(", ")
        )));
    }

    // Pass 1.
    let mut failures = Vec::new();
    let mut unknown: Option<String> = None;
    let mut recorded: Option<Recorded> = None;
    let mut skipped = Vec::new();
    for iv in &ivs {
        if !wildcard::matches_any(&iv.image_references, &image_str) {
            continue;
        }
        let records = !iv.attestors.is_empty() || !iv.attestations.is_empty();
        if wildcard::matches_any(&iv.skip_image_references, &image_str) {
            skipped.push(format!(
                "skipping image reference image {image_str} (skipImageReferences)"
            ));
            if records {
                recorded = Some(Recorded::Skip);
            }
            continue;
        }
        match verify_image(input, iv) {
            None => {}
            Some(Check::Pass) => recorded = Some(Recorded::Pass),
            Some(Check::Fail(msg)) => {
                failures.push(msg);
                recorded = Some(Recorded::Fail);
            }
            Some(Check::Unknown(why)) => {
                unknown = unknown.or(Some(why.clone()));
                recorded = Some(Recorded::Unknown(why));
            }
        }
    }
    let pinned = pins(input.rule, image);
    let digest = input.facts.digest.to_string();
    let admitted = if pinned {
        image.pinned(&digest)
    } else {
        image.clone()
    };
    let admitted_str = admitted.string();

    // Pass 2 on the admitted (possibly pinned) image (`validate_image.go`).
    let mut pass2 = Pass2::NoMatch;
    let (mut passed, mut skipped_images) = (0, 0);
    for iv in &ivs {
        if !wildcard::matches_any(&iv.image_references, &admitted_str) {
            continue;
        }
        if pass2 == Pass2::NoMatch {
            pass2 = Pass2::Passed;
        }
        if iv.verify_digest && admitted.digest.is_empty() {
            pass2 = Pass2::Fail(format!("missing digest for {admitted_str}"));
            break;
        }
        if !iv.required {
            continue;
        }
        match &recorded {
            Some(Recorded::Pass) => passed += 1,
            Some(Recorded::Skip) => skipped_images += 1,
            Some(Recorded::Unknown(why)) => pass2 = Pass2::Unknown(why.clone()),
            Some(Recorded::Fail) | None => {
                pass2 = Pass2::Fail(format!("unverified image {admitted_str}"));
                break;
            }
        }
    }
    if pass2 == Pass2::Passed && passed == 0 && skipped_images > 0 {
        pass2 = Pass2::Skipped;
    }

    let mut notes = Vec::new();
    if pinned {
        notes.push(format!(
            "mutateDigest pins the image to {admitted_str} at admission"
        ));
    }
    if pass2 == Pass2::NoMatch && admitted_str != image_str {
        notes.push(format!(
            "after mutateDigest the image reads {admitted_str}, which no imageReferences entry matches, so verifyDigest and required are not checked (Kyverno issue #16344)"
        ));
    }
    // Both passes report on the rule (the Kyverno CLI lists both responses); the verify
    // pass's messages come first, as its webhook runs first.
    let verdict = if !failures.is_empty() {
        if let Pass2::Fail(f) = &pass2
            && !failures.contains(f)
        {
            failures.push(f.clone());
        }
        Verdict::Fail(failures)
    } else if let Some(why) = unknown {
        Verdict::Unknown(why)
    } else {
        match pass2 {
            Pass2::Fail(f) => Verdict::Fail(vec![f]),
            Pass2::Unknown(why) => Verdict::Unknown(why),
            Pass2::Passed => Verdict::Pass,
            Pass2::Skipped => Verdict::Skip(skipped.join("; ")),
            Pass2::NoMatch if recorded == Some(Recorded::Pass) => Verdict::Pass,
            Pass2::NoMatch if !skipped.is_empty() => Verdict::Skip(skipped.join("; ")),
            Pass2::NoMatch => Verdict::Skip(format!(
                "no verifyImages entry has anything to verify for {image_str}"
            )),
        }
    };
    RuleResult { verdict, notes }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE8nXRh950IZbRj8Ra/N9sbqOPZrfM\n5/KAQN0/KjHcorm/J5yctVd7iEcnessRQjU917hmKO6JWVGHpDguIyakZA==\n-----END PUBLIC KEY-----";

    #[test]
    fn split_pem_like_kyverno() {
        assert_eq!(split_pem(K1).len(), 1);
        assert_eq!(split_pem(&format!("{K1}\n{K1}\n")).len(), 2);
        assert!(split_pem("{{ keys.data.production }}").is_empty());
        let set: AttestorSet = serde_yaml::from_str(&format!(
            "count: 1\nentries:\n- keys:\n    publicKeys: |\n      {}\n      {}\n",
            K1.replace('\n', "\n      "),
            K1.replace('\n', "\n      ")
        ))
        .unwrap();
        let expanded = expand_static_keys(&set);
        assert_eq!(expanded.entries.len(), 2);
        assert_eq!(expanded.required_count(), 1);
        let set = AttestorSet {
            count: None,
            ..expanded
        };
        assert_eq!(set.required_count(), 2);
    }
}
