//! The keys the signature gatherer must check signatures and attestations with, so that
//! evaluation finds an answer in [`crate::facts::SignatureFacts::checks`] for each.

use super::cfg::{AttestorSet, ImageVerification, Rekor};
use super::load::{KyvernoSet, PolicyKind};
use super::vars::{self, Scope};
use super::verify::{KeyMaterial, expand_static_keys, split_pem, static_key};
use crate::facts::{KeyId, RekorKey};

/// One key to verify with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyRequest {
    pub key: KeyId,
    /// The PEM text, or the key URI (`gcpkms://…`, `k8s://NS/NAME`, …) to fetch it from.
    pub material: KeyMaterial,
    /// Signatures (and attestations) live in this repository instead of the image's own
    /// (`repository:` in the policy). Facts for it go in
    /// [`super::EvalContext::signatures_by_repository`] under this exact string.
    pub repository: Option<String>,
    /// Image signatures (`.sig`) must be checked with the key.
    pub signatures: bool,
    /// Attestations of these predicate types must be checked with the key.
    pub attestation_types: Vec<String>,
    /// Rekor public keys the policy names for bundles of signatures made with this key; the
    /// gatherer checks each signature's bundle with them (`TlogFacts::set_checks`).
    pub rekor_keys: Vec<RekorKey>,
    /// `ClusterPolicy/name rule r` for each rule asking.
    pub wanted_by: Vec<String>,
}

/// Every static key the policies that apply in `namespace` name (ClusterPolicies, and
/// Policies in that namespace). Keys given through variables that cannot be resolved offline
/// (ConfigMaps…) and keyless/certificate attestors are not listed; evaluation reports those
/// rules as not evaluated.
pub fn required_keys(set: &KyvernoSet, namespace: &str) -> Vec<KeyRequest> {
    let mut out: Vec<KeyRequest> = Vec::new();
    let scope = Scope::new();
    for policy in &set.policies {
        if policy.kind == PolicyKind::Policy && policy.namespace.as_deref() != Some(namespace) {
            continue;
        }
        for rule in &policy.spec.rules {
            let who = format!("{} rule {}", policy.id(), rule.name);
            for iv in rule.verify_images.iter().map(ImageVerification::converted) {
                for set in &iv.attestors {
                    collect_set(&mut out, &scope, &iv, set, None, &who);
                }
                for att in &iv.attestations {
                    for set in &att.attestors {
                        collect_set(&mut out, &scope, &iv, set, Some(att.effective_type()), &who);
                    }
                }
            }
        }
    }
    out
}

fn collect_set(
    out: &mut Vec<KeyRequest>,
    scope: &Scope,
    iv: &ImageVerification,
    set: &AttestorSet,
    attestation_type: Option<&str>,
    who: &str,
) {
    // Attestations use the entry's key as written (the first PEM); signatures expand.
    let set = if attestation_type.is_none() {
        expand_static_keys(set)
    } else {
        set.clone()
    };
    for entry in &set.entries {
        if let Some(nested) = &entry.attestor {
            collect_set(out, scope, iv, nested, attestation_type, who);
            continue;
        }
        let Some(keys) = &entry.keys else { continue };
        if [&keys.public_keys, &keys.kms]
            .iter()
            .any(|s| vars::has_variables(s))
        {
            continue;
        }
        let Ok(mut material) = static_key(keys, scope) else {
            continue;
        };
        if let (Some(_), KeyMaterial::Pem(pem)) = (attestation_type, &material)
            && let Some(first) = split_pem(pem).into_iter().next()
        {
            material = KeyMaterial::Pem(first);
        }
        let Ok(key) = material.id() else { continue };
        let repository = if entry.repository.is_empty() {
            &iv.repository
        } else {
            &entry.repository
        };
        let repository = (!repository.is_empty()).then(|| repository.clone());
        let rekor = rekor_key(keys.rekor.as_ref());
        let request = match out
            .iter_mut()
            .find(|r| r.key == key && r.repository == repository)
        {
            Some(r) => r,
            None => {
                out.push(KeyRequest {
                    key: key.clone(),
                    material,
                    repository,
                    signatures: false,
                    attestation_types: Vec::new(),
                    rekor_keys: Vec::new(),
                    wanted_by: Vec::new(),
                });
                let last = out.len() - 1;
                &mut out[last]
            }
        };
        match attestation_type {
            None => request.signatures = true,
            Some(t) => {
                if !request.attestation_types.iter().any(|x| x == t) {
                    request.attestation_types.push(t.to_string());
                }
            }
        }
        if let Some(rk) = rekor
            && !request.rekor_keys.contains(&rk)
        {
            request.rekor_keys.push(rk);
        }
        if !request.wanted_by.iter().any(|w| w == who) {
            request.wanted_by.push(who.to_string());
        }
    }
}

fn rekor_key(rekor: Option<&Rekor>) -> Option<RekorKey> {
    let r = rekor?;
    if r.ignore_tlog || r.pubkey.trim().is_empty() {
        return None;
    }
    let key = KeyId::for_public_key_pem(&r.pubkey).ok()?;
    Some(RekorKey {
        id: key,
        pem: r.pubkey.clone(),
    })
}
