//! The StackRox policy JSON (`proto/storage/policy.proto` as protojson writes it) as typed
//! structs, and reading it from files: an export `{"policies":[…]}` (also an import request,
//! which has the same key), a single policy, a bare list of policies, or a folder of such files
//! (recursively, in sorted order). Unknown fields are ignored, as StackRox's gateway ignores
//! them; `null` reads as the empty value, as protojson writes unset messages.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

use super::error::StackRoxError;

/// Policy files larger than this are refused.
pub const MAX_POLICY_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// Reads `null` as the type's default (protojson writes `null` for unset messages).
fn nullable<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// One StackRox policy.
#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    #[serde(default, deserialize_with = "nullable")]
    pub id: String,
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub description: String,
    #[serde(default, deserialize_with = "nullable")]
    pub rationale: String,
    #[serde(default, deserialize_with = "nullable")]
    pub remediation: String,
    #[serde(default, deserialize_with = "nullable")]
    pub disabled: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub categories: Vec<String>,
    #[serde(default, deserialize_with = "nullable")]
    pub lifecycle_stages: Vec<LifecycleStage>,
    /// `NOT_APPLICABLE` (the default), `DEPLOYMENT_EVENT`, `AUDIT_LOG_EVENT`, `NODE_EVENT`.
    #[serde(default, deserialize_with = "nullable")]
    pub event_source: String,
    #[serde(default, deserialize_with = "nullable")]
    pub exclusions: Vec<Exclusion>,
    #[serde(default, deserialize_with = "nullable")]
    pub severity: PolicySeverity,
    #[serde(default, deserialize_with = "nullable")]
    pub enforcement_actions: Vec<EnforcementAction>,
    #[serde(default, deserialize_with = "nullable")]
    pub policy_version: String,
    #[serde(default, deserialize_with = "nullable")]
    pub policy_sections: Vec<PolicySection>,
}

impl Policy {
    pub fn applies_at(&self, stage: LifecycleStage) -> bool {
        self.lifecycle_stages.contains(&stage)
    }

    /// Violations fail the build (`FAIL_BUILD_ENFORCEMENT`, which StackRox keeps only for
    /// policies with the BUILD stage).
    pub fn breaks_build(&self) -> bool {
        self.applies_at(LifecycleStage::Build)
            && self
                .enforcement_actions
                .contains(&EnforcementAction::FailBuild)
    }
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicySection {
    #[serde(default, deserialize_with = "nullable")]
    pub section_name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub policy_groups: Vec<PolicyGroup>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PolicyGroup {
    #[serde(default, deserialize_with = "nullable")]
    pub field_name: String,
    #[serde(default, deserialize_with = "nullable")]
    pub boolean_operator: BooleanOperator,
    #[serde(default, deserialize_with = "nullable")]
    pub negate: bool,
    #[serde(default, deserialize_with = "nullable")]
    pub values: Vec<PolicyValue>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct PolicyValue {
    #[serde(default, deserialize_with = "nullable")]
    pub value: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum BooleanOperator {
    #[default]
    #[serde(rename = "OR")]
    Or,
    #[serde(rename = "AND")]
    And,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Exclusion {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    #[serde(default)]
    pub deployment: Option<DeploymentExclusion>,
    #[serde(default)]
    pub image: Option<ImageExclusion>,
    /// After this time the exclusion no longer applies.
    #[serde(default)]
    pub expiration: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct DeploymentExclusion {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
    /// Cluster, namespace and labels; only meaningful for DEPLOY/RUNTIME, kept as written.
    #[serde(default)]
    pub scope: Option<Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct ImageExclusion {
    #[serde(default, deserialize_with = "nullable")]
    pub name: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub enum PolicySeverity {
    #[default]
    #[serde(rename = "UNSET_SEVERITY")]
    Unset,
    #[serde(rename = "LOW_SEVERITY")]
    Low,
    #[serde(rename = "MEDIUM_SEVERITY")]
    Medium,
    #[serde(rename = "HIGH_SEVERITY")]
    High,
    #[serde(rename = "CRITICAL_SEVERITY")]
    Critical,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
pub enum LifecycleStage {
    #[serde(rename = "DEPLOY")]
    Deploy,
    #[serde(rename = "BUILD")]
    Build,
    #[serde(rename = "RUNTIME")]
    Runtime,
}

impl LifecycleStage {
    pub fn as_str(self) -> &'static str {
        match self {
            LifecycleStage::Deploy => "DEPLOY",
            LifecycleStage::Build => "BUILD",
            LifecycleStage::Runtime => "RUNTIME",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
pub enum EnforcementAction {
    #[serde(rename = "UNSET_ENFORCEMENT")]
    Unset,
    #[serde(rename = "SCALE_TO_ZERO_ENFORCEMENT")]
    ScaleToZero,
    #[serde(rename = "UNSATISFIABLE_NODE_CONSTRAINT_ENFORCEMENT")]
    UnsatisfiableNodeConstraint,
    #[serde(rename = "KILL_POD_ENFORCEMENT")]
    KillPod,
    #[serde(rename = "FAIL_BUILD_ENFORCEMENT")]
    FailBuild,
    #[serde(rename = "FAIL_KUBE_REQUEST_ENFORCEMENT")]
    FailKubeRequest,
    #[serde(rename = "FAIL_DEPLOYMENT_CREATE_ENFORCEMENT")]
    FailDeploymentCreate,
    #[serde(rename = "FAIL_DEPLOYMENT_UPDATE_ENFORCEMENT")]
    FailDeploymentUpdate,
}

#[derive(Deserialize)]
struct Export {
    #[serde(default, deserialize_with = "nullable")]
    policies: Vec<Policy>,
}

/// A policy as read from a file, before validation.
#[derive(Clone, Debug)]
pub(crate) struct ReadPolicy {
    pub policy: Policy,
    /// The file it came from, as shown to users.
    pub origin: String,
}

/// The keys by which a JSON object is taken for a single policy.
const POLICY_KEYS: [&str; 4] = ["policySections", "policyVersion", "lifecycleStages", "name"];

/// Parses the policies in `text`, read from `path`; `origin` is how the file is named to users.
pub(crate) fn parse_policies(
    text: &str,
    path: &Path,
    origin: &str,
) -> Result<Vec<ReadPolicy>, StackRoxError> {
    let value: Value = serde_json::from_str(text).map_err(|e| StackRoxError::parse(path, &e))?;
    // The typed parse runs on the text (not on `value`) so that type errors keep positions.
    let policies = match &value {
        Value::Array(_) => serde_json::from_str::<Vec<Policy>>(text),
        Value::Object(o) if o.contains_key("policies") => {
            serde_json::from_str::<Export>(text).map(|e| e.policies)
        }
        Value::Object(o) if POLICY_KEYS.iter().any(|k| o.contains_key(*k)) => {
            serde_json::from_str::<Policy>(text).map(|p| vec![p])
        }
        Value::Object(_) => {
            return Err(StackRoxError::NotPolicies {
                path: path.to_path_buf(),
                reason: "the JSON object has neither a \"policies\" list nor the fields of a policy (\"name\", \"policySections\", …)".into(),
            });
        }
        _ => {
            return Err(StackRoxError::NotPolicies {
                path: path.to_path_buf(),
                reason: "the top level is neither a JSON object nor a list".into(),
            });
        }
    }
    .map_err(|e| StackRoxError::parse(path, &e))?;
    Ok(policies
        .into_iter()
        .map(|policy| ReadPolicy {
            policy,
            origin: origin.to_string(),
        })
        .collect())
}

/// Reads the policies in a file, or in every `.json` file under a folder.
pub(crate) fn read_path(path: &Path) -> Result<Vec<ReadPolicy>, StackRoxError> {
    let metadata = std::fs::metadata(path).map_err(|source| StackRoxError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    if !metadata.is_dir() {
        return read_file(path);
    }
    let mut files = Vec::new();
    let mut visited = BTreeSet::new();
    collect_json_files(path, &mut files, &mut visited)?;
    if files.is_empty() {
        return Err(StackRoxError::NoPolicies {
            path: path.to_path_buf(),
            hint: "the folder (and its subfolders) has no .json files".into(),
        });
    }
    let mut policies = Vec::new();
    for file in files {
        policies.extend(read_file(&file)?);
    }
    Ok(policies)
}

fn read_file(path: &Path) -> Result<Vec<ReadPolicy>, StackRoxError> {
    let io_error = |source| StackRoxError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut text = String::new();
    file.take(MAX_POLICY_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(io_error)?;
    if text.len() as u64 > MAX_POLICY_FILE_BYTES {
        return Err(StackRoxError::TooLarge {
            path: path.to_path_buf(),
            limit: MAX_POLICY_FILE_BYTES,
        });
    }
    let policies = parse_policies(&text, path, &path.display().to_string())?;
    if policies.is_empty() {
        return Err(StackRoxError::NoPolicies {
            path: path.to_path_buf(),
            hint: "the file's policy list is empty".into(),
        });
    }
    Ok(policies)
}

/// Every `.json` file under `dir`, sorted by path; hidden entries are skipped, and a folder
/// reached twice through symbolic links is read once.
fn collect_json_files(
    dir: &Path,
    files: &mut Vec<PathBuf>,
    visited: &mut BTreeSet<PathBuf>,
) -> Result<(), StackRoxError> {
    let io_error = |source| StackRoxError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let canonical = dir.canonicalize().map_err(io_error)?;
    if !visited.insert(canonical) {
        return Ok(());
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io_error)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(io_error)?;
    entries.sort();
    for entry in entries {
        let hidden = entry
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        if hidden {
            continue;
        }
        let metadata = std::fs::metadata(&entry).map_err(|source| StackRoxError::Io {
            path: entry.clone(),
            source,
        })?;
        if metadata.is_dir() {
            collect_json_files(&entry, files, visited)?;
        } else if entry
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e.eq_ignore_ascii_case("json"))
        {
            files.push(entry);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"{"name":"Latest tag","policyVersion":"1.1","severity":"LOW_SEVERITY",
        "categories":["DevOps"],"lifecycleStages":["BUILD"],"unknownField":{"x":1},
        "exclusions":[{"name":"e","deployment":null,"image":{"name":"docker.io/library/"},"expiration":"2030-01-01T00:00:00Z"}],
        "enforcementActions":["FAIL_BUILD_ENFORCEMENT"],
        "policySections":[{"sectionName":"","policyGroups":[{"fieldName":"Image Tag","booleanOperator":"OR","negate":false,"values":[{"value":"latest"}]}]}]}"#;

    fn parse(text: &str) -> Result<Vec<ReadPolicy>, StackRoxError> {
        parse_policies(text, Path::new("p.json"), "p.json")
    }

    #[test]
    fn single_policy_export_and_list_read_the_same() {
        let single = parse(POLICY).unwrap();
        let export = parse(&format!("{{\"policies\":[{POLICY}]}}")).unwrap();
        let list = parse(&format!("[{POLICY},{POLICY}]")).unwrap();
        assert_eq!(single.len(), 1);
        assert_eq!(export.len(), 1);
        assert_eq!(list.len(), 2);
        let p = &single[0].policy;
        assert_eq!(p.name, "Latest tag");
        assert_eq!(p.severity, PolicySeverity::Low);
        assert!(p.breaks_build());
        assert_eq!(
            p.exclusions[0].image.as_ref().map(|i| i.name.as_str()),
            Some("docker.io/library/")
        );
        assert!(p.exclusions[0].expiration.is_some());
        let group = &p.policy_sections[0].policy_groups[0];
        assert_eq!(group.field_name, "Image Tag");
        assert_eq!(group.boolean_operator, BooleanOperator::Or);
        assert_eq!(export[0].policy.name, p.name);
    }

    #[test]
    fn nulls_read_as_empty() {
        let p = parse(r#"{"name":"n","categories":null,"policySections":[{"policyGroups":[{"fieldName":"CVE","booleanOperator":null,"negate":null,"values":null}]}],"exclusions":null,"severity":null}"#).unwrap();
        let p = &p[0].policy;
        assert!(p.categories.is_empty());
        assert_eq!(p.severity, PolicySeverity::Unset);
        assert!(p.policy_sections[0].policy_groups[0].values.is_empty());
    }

    #[test]
    fn syntax_errors_have_line_and_column() {
        let err = parse("{\n  \"name\": \"x\"\n  \"severity\": 1\n}").unwrap_err();
        match err {
            StackRoxError::Parse { line, column, .. } => assert_eq!((line, column), (3, 3)),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn type_errors_have_line_and_column() {
        let err =
            parse("{\"policies\": [\n{\"name\": \"x\",\n \"severity\": \"SEVERE\"}]}").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("p.json:3:"), "{text}");
        assert!(text.contains("unknown variant `SEVERE`"), "{text}");
    }

    #[test]
    fn other_json_is_not_policies() {
        for text in [r#"{"apiVersion":"kyverno.io/v1"}"#, "42"] {
            let err = parse(text).unwrap_err();
            assert!(matches!(err, StackRoxError::NotPolicies { .. }), "{err:?}");
        }
    }

    #[test]
    fn folders_are_read_recursively_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("b");
        std::fs::create_dir(&sub).unwrap();
        let named = |name: &str| POLICY.replace("Latest tag", name);
        std::fs::write(dir.path().join("c.json"), named("third")).unwrap();
        std::fs::write(sub.join("a.json"), named("second")).unwrap();
        std::fs::write(dir.path().join("a.json"), named("first")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not json").unwrap();
        std::fs::write(dir.path().join(".hidden.json"), "broken").unwrap();
        let names: Vec<_> = read_path(dir.path())
            .unwrap()
            .into_iter()
            .map(|p| p.policy.name)
            .collect();
        assert_eq!(names, ["first", "second", "third"]);

        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_path(empty.path()),
            Err(StackRoxError::NoPolicies { .. })
        ));
        assert!(matches!(
            read_path(&dir.path().join("missing.json")),
            Err(StackRoxError::Io { .. })
        ));
    }
}
