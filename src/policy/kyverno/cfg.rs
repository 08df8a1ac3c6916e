//! The typed Kyverno policy (`kyverno.io/v1` and `v2beta1` ClusterPolicy/Policy), with the CRD
//! defaults Kyverno's API server (and CLI loader) applies, and the conversion of deprecated
//! verifyImages fields (`ImageVerification.Convert()`).
//!
//! Only what the offline engine reads is typed; the rest (mutate, generate, CEL, …) is kept as
//! raw YAML so that nothing a policy says is silently dropped as "unknown".

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// A CRD default of `true` (`+kubebuilder:default=true`). A plain `bool` would default to
/// false and change verdicts (mutateDigest, verifyDigest, required, useCache, background,
/// admission).
fn yes() -> bool {
    true
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyDoc {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: Metadata,
    #[serde(default)]
    pub spec: Spec,
    /// Written by the cluster; not part of the policy.
    #[serde(default)]
    pub status: Option<serde_yaml::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// uid, generation, managedFields, … as `kubectl get -o yaml` writes them.
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_yaml::Value>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Spec {
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// `All` (default) or `One`.
    #[serde(default)]
    pub apply_rules: Option<String>,
    /// Deprecated in favour of `webhookConfiguration.failurePolicy`; effective default `Fail`.
    #[serde(default)]
    pub failure_policy: Option<String>,
    /// CRD default `Audit`; `audit`/`enforce` are accepted (deprecated spellings).
    #[serde(default)]
    pub validation_failure_action: Option<String>,
    #[serde(default)]
    pub validation_failure_action_overrides: Vec<ActionOverride>,
    #[serde(default)]
    pub emit_warning: Option<bool>,
    #[serde(default = "yes")]
    pub admission: bool,
    #[serde(default = "yes")]
    pub background: bool,
    #[serde(default)]
    pub schema_validation: Option<bool>,
    #[serde(default)]
    pub webhook_timeout_seconds: Option<i64>,
    #[serde(default)]
    pub mutate_existing_on_policy_update: Option<bool>,
    #[serde(default)]
    pub generate_existing_on_policy_update: Option<bool>,
    #[serde(default)]
    pub generate_existing: Option<bool>,
    #[serde(default)]
    pub use_server_side_apply: Option<bool>,
    #[serde(default)]
    pub webhook_configuration: Option<WebhookConfiguration>,
}

impl Default for Spec {
    fn default() -> Spec {
        Spec {
            rules: Vec::new(),
            apply_rules: None,
            failure_policy: None,
            validation_failure_action: None,
            validation_failure_action_overrides: Vec::new(),
            emit_warning: None,
            admission: true,
            background: true,
            schema_validation: None,
            webhook_timeout_seconds: None,
            mutate_existing_on_policy_update: None,
            generate_existing_on_policy_update: None,
            generate_existing: None,
            use_server_side_apply: None,
            webhook_configuration: None,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookConfiguration {
    #[serde(default)]
    pub failure_policy: Option<String>,
    #[serde(default)]
    pub timeout_seconds: Option<i64>,
    #[serde(default)]
    pub match_conditions: Option<serde_yaml::Value>,
}

/// `validationFailureActionOverrides[]` / `failureActionOverrides[]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionOverride {
    #[serde(default)]
    pub action: String,
    #[serde(default)]
    pub namespaces: Option<Vec<String>>,
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub match_expressions: Vec<SelectorRequirement>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SelectorRequirement {
    pub key: String,
    pub operator: String,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    #[serde(default)]
    pub name: String,
    #[serde(default, rename = "match")]
    pub match_resources: MatchResources,
    #[serde(default)]
    pub exclude: Option<MatchResources>,
    #[serde(default)]
    pub context: Vec<ContextEntry>,
    /// `{any, all}` or a legacy list of conditions.
    #[serde(default)]
    pub preconditions: Option<Value>,
    #[serde(default)]
    pub cel_preconditions: Option<serde_yaml::Value>,
    #[serde(default)]
    pub image_extractors: Option<serde_yaml::Value>,
    #[serde(default)]
    pub report_properties: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub skip_background_requests: Option<bool>,
    #[serde(default)]
    pub validate: Option<Validation>,
    #[serde(default)]
    pub verify_images: Vec<ImageVerification>,
    #[serde(default)]
    pub mutate: Option<serde_yaml::Value>,
    #[serde(default)]
    pub generate: Option<serde_yaml::Value>,
}

impl Rule {
    /// The rule types present, as Kyverno names them.
    pub fn types(&self) -> Vec<&'static str> {
        let mut types = Vec::new();
        if self.mutate.is_some() {
            types.push("mutate");
        }
        if self.validate.is_some() {
            types.push("validate");
        }
        if self.generate.is_some() {
            types.push("generate");
        }
        if !self.verify_images.is_empty() {
            types.push("verifyImages");
        }
        types
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchResources {
    #[serde(default)]
    pub any: Vec<ResourceFilter>,
    #[serde(default)]
    pub all: Vec<ResourceFilter>,
    /// The legacy form: `match.resources` (+ user info at the same level).
    #[serde(default)]
    pub resources: Option<ResourceDescription>,
    #[serde(default)]
    pub subjects: Vec<Subject>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub cluster_roles: Vec<String>,
}

impl MatchResources {
    pub fn is_empty(&self) -> bool {
        self.any.is_empty()
            && self.all.is_empty()
            && self
                .resources
                .as_ref()
                .is_none_or(ResourceDescription::is_empty)
            && self.subjects.is_empty()
            && self.roles.is_empty()
            && self.cluster_roles.is_empty()
    }

    /// The legacy block as a filter.
    pub fn legacy_filter(&self) -> ResourceFilter {
        ResourceFilter {
            resources: self.resources.clone().unwrap_or_default(),
            subjects: self.subjects.clone(),
            roles: self.roles.clone(),
            cluster_roles: self.cluster_roles.clone(),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceFilter {
    #[serde(default)]
    pub resources: ResourceDescription,
    #[serde(default)]
    pub subjects: Vec<Subject>,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub cluster_roles: Vec<String>,
}

impl ResourceFilter {
    pub fn has_user_info(&self) -> bool {
        !self.subjects.is_empty() || !self.roles.is_empty() || !self.cluster_roles.is_empty()
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceDescription {
    #[serde(default)]
    pub kinds: Vec<String>,
    /// Deprecated single name.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub names: Vec<String>,
    #[serde(default)]
    pub namespaces: Vec<String>,
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub selector: Option<LabelSelector>,
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    pub operations: Vec<String>,
}

impl ResourceDescription {
    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
            && self.name.as_deref().is_none_or(str::is_empty)
            && self.names.is_empty()
            && self.namespaces.is_empty()
            && self.annotations.is_empty()
            && self.selector.is_none()
            && self.namespace_selector.is_none()
            && self.operations.is_empty()
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Subject {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(default)]
    pub api_group: Option<String>,
}

/// A rule or foreach `context` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextEntry {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub config_map: Option<ConfigMapReference>,
    #[serde(default)]
    pub api_call: Option<serde_yaml::Value>,
    #[serde(default)]
    pub image_registry: Option<serde_yaml::Value>,
    #[serde(default)]
    pub variable: Option<ContextVariable>,
    #[serde(default)]
    pub global_reference: Option<serde_yaml::Value>,
}

impl ContextEntry {
    /// Which sources the entry names (exactly one is allowed).
    pub fn sources(&self) -> Vec<&'static str> {
        let mut s = Vec::new();
        if self.config_map.is_some() {
            s.push("configMap");
        }
        if self.api_call.is_some() {
            s.push("apiCall");
        }
        if self.image_registry.is_some() {
            s.push("imageRegistry");
        }
        if self.variable.is_some() {
            s.push("variable");
        }
        if self.global_reference.is_some() {
            s.push("globalReference");
        }
        s
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapReference {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextVariable {
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default)]
    pub jmes_path: Option<String>,
    #[serde(default)]
    pub default: Option<Value>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Validation {
    /// `Audit` or `Enforce`.
    #[serde(default)]
    pub failure_action: Option<String>,
    #[serde(default)]
    pub failure_action_overrides: Vec<ActionOverride>,
    #[serde(default)]
    pub allow_existing_violations: Option<bool>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub pattern: Option<Value>,
    #[serde(default)]
    pub any_pattern: Option<Value>,
    #[serde(default)]
    pub deny: Option<Deny>,
    #[serde(default)]
    pub foreach: Option<Vec<ForEachValidation>>,
    #[serde(default)]
    pub pod_security: Option<serde_yaml::Value>,
    #[serde(default)]
    pub cel: Option<serde_yaml::Value>,
    #[serde(default)]
    pub manifests: Option<serde_yaml::Value>,
    #[serde(default)]
    pub assert: Option<serde_yaml::Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deny {
    /// `{any, all}` or a legacy list.
    #[serde(default)]
    pub conditions: Option<Value>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ForEachValidation {
    #[serde(default)]
    pub list: String,
    #[serde(default)]
    pub element_scope: Option<bool>,
    #[serde(default)]
    pub context: Vec<ContextEntry>,
    #[serde(default)]
    pub preconditions: Option<Value>,
    #[serde(default)]
    pub pattern: Option<Value>,
    #[serde(default)]
    pub any_pattern: Option<Value>,
    #[serde(default)]
    pub deny: Option<Deny>,
    #[serde(default)]
    pub foreach: Option<Vec<ForEachValidation>>,
}

/// One `verifyImages[]` entry, with the CRD defaults applied.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageVerification {
    /// `Audit` or `Enforce`.
    #[serde(default)]
    pub failure_action: Option<String>,
    /// `Cosign` (CRD default), `SigstoreBundle` or `Notary`.
    #[serde(default = "cosign", rename = "type")]
    pub verification_type: String,
    /// Deprecated: converted into `imageReferences`.
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub image_references: Vec<String>,
    #[serde(default)]
    pub skip_image_references: Vec<String>,
    /// Deprecated: converted into an attestor.
    #[serde(default)]
    pub key: String,
    #[serde(default)]
    pub roots: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub additional_extensions: BTreeMap<String, String>,
    #[serde(default)]
    pub attestors: Vec<AttestorSet>,
    #[serde(default)]
    pub attestations: Vec<Attestation>,
    /// Deprecated, but still handed to every attestor as the required payload annotations.
    #[serde(default)]
    pub annotations: BTreeMap<String, String>,
    #[serde(default)]
    pub repository: String,
    #[serde(default, rename = "cosignOCI11")]
    pub cosign_oci11: bool,
    #[serde(default = "yes")]
    pub mutate_digest: bool,
    #[serde(default = "yes")]
    pub verify_digest: bool,
    #[serde(default = "yes")]
    pub required: bool,
    #[serde(default = "yes")]
    pub use_cache: bool,
    #[serde(default)]
    pub validate: Option<ImageVerificationValidate>,
    #[serde(default)]
    pub image_registry_credentials: Option<serde_yaml::Value>,
}

fn cosign() -> String {
    "Cosign".to_string()
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageVerificationValidate {
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub deny: Option<Deny>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AttestorSet {
    #[serde(default)]
    pub count: Option<i64>,
    #[serde(default)]
    pub entries: Vec<Attestor>,
}

impl AttestorSet {
    /// `RequiredCount()`: unset or 0 means every entry.
    pub fn required_count(&self) -> usize {
        match self.count {
            None | Some(0) => self.entries.len(),
            Some(n) => usize::try_from(n).unwrap_or(0),
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attestor {
    #[serde(default)]
    pub keys: Option<StaticKeyAttestor>,
    #[serde(default)]
    pub certificates: Option<CertificateAttestor>,
    #[serde(default)]
    pub keyless: Option<KeylessAttestor>,
    /// A nested attestor set (raw JSON in Kyverno's API).
    #[serde(default)]
    pub attestor: Option<Box<AttestorSet>>,
    #[serde(default)]
    pub annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub repository: String,
    #[serde(default)]
    pub signature_algorithm: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StaticKeyAttestor {
    #[serde(default)]
    pub public_keys: String,
    #[serde(default)]
    pub signature_algorithm: Option<String>,
    #[serde(default)]
    pub kms: String,
    #[serde(default)]
    pub secret: Option<SecretReference>,
    #[serde(default)]
    pub rekor: Option<Rekor>,
    #[serde(default)]
    pub ctlog: Option<CtLog>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretReference {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertificateAttestor {
    #[serde(default)]
    pub cert: String,
    #[serde(default)]
    pub cert_chain: String,
    #[serde(default)]
    pub rekor: Option<Rekor>,
    #[serde(default)]
    pub ctlog: Option<CtLog>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KeylessAttestor {
    #[serde(default)]
    pub rekor: Option<Rekor>,
    #[serde(default)]
    pub ctlog: Option<CtLog>,
    #[serde(default)]
    pub issuer: String,
    #[serde(default)]
    pub issuer_reg_exp: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub subject_reg_exp: String,
    #[serde(default)]
    pub roots: String,
    #[serde(default)]
    pub additional_extensions: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Rekor {
    /// CRD default `https://rekor.sigstore.dev`.
    #[serde(default = "public_rekor")]
    pub url: String,
    #[serde(default)]
    pub pubkey: String,
    #[serde(default)]
    pub ignore_tlog: bool,
}

pub const PUBLIC_REKOR: &str = "https://rekor.sigstore.dev";

fn public_rekor() -> String {
    PUBLIC_REKOR.to_string()
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CtLog {
    #[serde(default, rename = "ignoreSCT")]
    pub ignore_sct: bool,
    #[serde(default)]
    pub pubkey: String,
    #[serde(default)]
    pub tsa_cert_chain: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Attestation {
    #[serde(default)]
    pub name: String,
    /// Deprecated spelling of `type`.
    #[serde(default)]
    pub predicate_type: String,
    #[serde(default, rename = "type")]
    pub attestation_type: String,
    #[serde(default)]
    pub attestors: Vec<AttestorSet>,
    #[serde(default)]
    pub conditions: Vec<AnyAllConditions>,
}

impl Attestation {
    /// `type`, or the deprecated `predicateType` when `type` is empty.
    pub fn effective_type(&self) -> &str {
        if self.attestation_type.is_empty() {
            &self.predicate_type
        } else {
            &self.attestation_type
        }
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnyAllConditions {
    #[serde(default)]
    pub any: Option<Vec<Condition>>,
    #[serde(default)]
    pub all: Option<Vec<Condition>>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    #[serde(default)]
    pub key: Option<Value>,
    #[serde(default)]
    pub operator: String,
    #[serde(default)]
    pub value: Option<Value>,
    #[serde(default)]
    pub message: String,
}

/// Preconditions and deny conditions: `{any, all}`, or the legacy list (all must hold).
#[derive(Clone, Debug)]
pub enum ConditionBlock {
    AnyAll(AnyAllConditions),
    Legacy(Vec<Condition>),
}

impl ConditionBlock {
    /// Reads the raw JSON the way Kyverno's `TransformConditions` does.
    pub fn from_value(v: &Value) -> Result<ConditionBlock, String> {
        match v {
            Value::Array(_) => serde_json::from_value(v.clone())
                .map(ConditionBlock::Legacy)
                .map_err(|e| format!("failed to parse conditions: {e}")),
            Value::Object(_) => serde_json::from_value(v.clone())
                .map(ConditionBlock::AnyAll)
                .map_err(|e| format!("failed to parse conditions: {e}")),
            _ => Err("conditions must be a list or an object with `any`/`all`".into()),
        }
    }

    /// Every condition in the block.
    pub fn all_conditions(&self) -> Vec<&Condition> {
        match self {
            ConditionBlock::Legacy(list) => list.iter().collect(),
            ConditionBlock::AnyAll(aa) => aa
                .any
                .iter()
                .flatten()
                .chain(aa.all.iter().flatten())
                .collect(),
        }
    }
}

impl ImageVerification {
    /// Kyverno's `Convert()`: the deprecated `image` joins `imageReferences`; `key` or
    /// `issuer`/`subject`/`roots` (and top-level `annotations`) become one attestor set.
    ///
    /// Kyverno's conversion puts that set into every attestation when the rule has
    /// attestations, but then restores the original attestations, so in that case the
    /// converted attestor is lost; we reproduce that.
    pub fn converted(&self) -> ImageVerification {
        if self.image.is_empty() && self.key.is_empty() && self.issuer.is_empty() {
            return self.clone();
        }
        let mut out = self.clone();
        out.image = String::new();
        out.issuer = String::new();
        out.subject = String::new();
        out.roots = String::new();
        if !self.image.is_empty() {
            out.image_references.push(self.image.clone());
        }
        if !self.annotations.is_empty() || !self.key.is_empty() || !self.issuer.is_empty() {
            let mut attestor = Attestor {
                annotations: Some(self.annotations.clone()),
                ..Attestor::default()
            };
            if !self.key.is_empty() {
                attestor.keys = Some(StaticKeyAttestor {
                    public_keys: self.key.clone(),
                    ..StaticKeyAttestor::default()
                });
            } else if !self.issuer.is_empty() {
                attestor.keyless = Some(KeylessAttestor {
                    issuer: self.issuer.clone(),
                    subject: self.subject.clone(),
                    roots: self.roots.clone(),
                    ..KeylessAttestor::default()
                });
            }
            if self.attestations.is_empty() {
                out.attestors.push(AttestorSet {
                    count: None,
                    entries: vec![attestor],
                });
            }
        }
        out
    }
}

/// A spec- or rule-level failure action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum FailureAction {
    Audit,
    Enforce,
}

impl FailureAction {
    /// `ValidationFailureAction.Enforce()`: only `Enforce`/`enforce` enforce; anything else,
    /// including an empty value, is Audit.
    pub fn from_spelling(s: &str) -> FailureAction {
        if s == "Enforce" || s == "enforce" {
            FailureAction::Enforce
        } else {
            FailureAction::Audit
        }
    }

    /// `IsValid()`: the four spellings the CRD accepts.
    pub fn is_valid_spelling(s: &str) -> bool {
        matches!(s, "Audit" | "Enforce" | "audit" | "enforce")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crd_defaults_are_true_where_kyverno_says_so() {
        let iv: ImageVerification = serde_yaml::from_str("imageReferences: [\"x\"]\n").unwrap();
        assert!(iv.mutate_digest && iv.verify_digest && iv.required && iv.use_cache);
        assert_eq!(iv.verification_type, "Cosign");
        let spec: Spec = serde_yaml::from_str("rules: []\n").unwrap();
        assert!(spec.admission && spec.background);
        assert_eq!(spec.validation_failure_action, None);
        let rekor: Rekor = serde_yaml::from_str("pubkey: x\n").unwrap();
        assert_eq!(rekor.url, PUBLIC_REKOR);
        assert!(!rekor.ignore_tlog);
    }

    #[test]
    fn explicit_false_is_kept() {
        let iv: ImageVerification =
            serde_yaml::from_str("mutateDigest: false\nverifyDigest: false\nrequired: false\n")
                .unwrap();
        assert!(!iv.mutate_digest && !iv.verify_digest && !iv.required && iv.use_cache);
    }

    #[test]
    fn deprecated_fields_convert() {
        let iv: ImageVerification =
            serde_yaml::from_str("image: \"ghcr.io/a/*\"\nkey: \"PEM\"\nannotations: {team: a}\n")
                .unwrap();
        let c = iv.converted();
        assert_eq!(c.image_references, vec!["ghcr.io/a/*".to_string()]);
        assert_eq!(c.attestors.len(), 1);
        let entry = &c.attestors[0].entries[0];
        assert_eq!(entry.keys.as_ref().unwrap().public_keys, "PEM");
        assert_eq!(entry.annotations.as_ref().unwrap()["team"], "a");

        let iv: ImageVerification =
            serde_yaml::from_str("image: x\nissuer: https://issuer\nsubject: me\n").unwrap();
        let c = iv.converted();
        let keyless = c.attestors[0].entries[0].keyless.as_ref().unwrap();
        assert_eq!(
            (keyless.issuer.as_str(), keyless.subject.as_str()),
            ("https://issuer", "me")
        );
    }

    #[test]
    fn required_count() {
        let set = |count, n| AttestorSet {
            count,
            entries: vec![Attestor::default(); n],
        };
        assert_eq!(set(None, 3).required_count(), 3);
        assert_eq!(set(Some(0), 3).required_count(), 3);
        assert_eq!(set(Some(2), 3).required_count(), 2);
    }

    #[test]
    fn failure_action_spellings() {
        assert_eq!(
            FailureAction::from_spelling("enforce"),
            FailureAction::Enforce
        );
        assert_eq!(FailureAction::from_spelling(""), FailureAction::Audit);
        assert_eq!(FailureAction::from_spelling("Deny"), FailureAction::Audit);
        assert!(!FailureAction::is_valid_spelling("ENFORCE"));
    }
}
