//! Reading policy files: files or directories (recursively, `.yaml`/`.yml`, sorted),
//! multi-document YAML, `List` documents (`kubectl get -o yaml`), other kinds skipped with a
//! note. Every problem is located (line and column) by walking the YAML again to the field.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::cfg::{FailureAction, PolicyDoc, Spec};
use super::cfg_check;
use super::error::{FieldPath, KyvernoError, PolicyProblem, Segment};

/// The policies loaded, and notes for the user (documents skipped, deprecations, fields
/// Kyverno does not know).
#[derive(Clone, Debug, Default)]
pub struct KyvernoSet {
    pub policies: Vec<Policy>,
    pub notes: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum PolicyKind {
    ClusterPolicy,
    /// Namespaced: applies only to resources in its own namespace.
    Policy,
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyKind::ClusterPolicy => "ClusterPolicy",
            PolicyKind::Policy => "Policy",
        })
    }
}

/// One validated policy, with the CRD defaults applied.
#[derive(Clone, Debug)]
pub struct Policy {
    pub kind: PolicyKind,
    pub api_version: String,
    pub name: String,
    /// For a `Policy`, the namespace it lives (and applies) in; `default` when the file does
    /// not say (kubectl would use the current namespace).
    pub namespace: Option<String>,
    pub annotations: BTreeMap<String, String>,
    pub spec: Spec,
    /// The file it came from.
    pub origin: PathBuf,
    /// The line where its document starts.
    pub line: usize,
}

impl Policy {
    /// `ClusterPolicy/name` or `Policy/namespace/name`.
    pub fn id(&self) -> String {
        match &self.namespace {
            Some(ns) => format!("{}/{ns}/{}", self.kind, self.name),
            None => format!("{}/{}", self.kind, self.name),
        }
    }

    /// The spec-level failure action (`validationFailureAction`, default Audit).
    pub fn spec_action(&self) -> FailureAction {
        FailureAction::from_spelling(
            self.spec
                .validation_failure_action
                .as_deref()
                .unwrap_or("Audit"),
        )
    }

    /// `GetFailurePolicy`: `webhookConfiguration.failurePolicy`, else the deprecated
    /// `failurePolicy`, else `Fail`. With `Fail`, a rule that errors blocks admission.
    pub fn failure_policy_is_fail(&self) -> bool {
        let configured = self
            .spec
            .webhook_configuration
            .as_ref()
            .and_then(|w| w.failure_policy.as_deref())
            .or(self.spec.failure_policy.as_deref());
        configured != Some("Ignore")
    }
}

/// Loads every Kyverno policy in `paths` (files, or directories searched recursively for
/// `.yaml`/`.yml` files in sorted order). Fails if a file cannot be read or parsed, or if
/// Kyverno would reject a policy (all such problems are reported together).
pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<KyvernoSet, KyvernoError> {
    let mut files = Vec::new();
    for p in paths {
        collect_files(p.as_ref(), &mut files)?;
    }
    let mut set = KyvernoSet::default();
    let mut problems = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).map_err(|source| KyvernoError::Read {
            path: file.clone(),
            source,
        })?;
        load_text(file, &text, &mut set, &mut problems)?;
    }
    if !problems.is_empty() {
        return Err(KyvernoError::Invalid(problems));
    }
    for (i, p) in set.policies.iter().enumerate() {
        if set.policies[..i].iter().any(|q| q.id() == p.id()) {
            set.notes.push(format!(
                "{}:{}: {} is defined more than once; in a cluster the last one applied wins, imagegate evaluates each",
                p.origin.display(),
                p.line,
                p.id()
            ));
        }
    }
    Ok(set)
}

/// Loads policies from YAML text, as if read from `file` (for tests and for policies passed
/// on stdin).
pub fn load_str(file: &Path, text: &str) -> Result<KyvernoSet, KyvernoError> {
    let mut set = KyvernoSet::default();
    let mut problems = Vec::new();
    load_text(file, text, &mut set, &mut problems)?;
    if problems.is_empty() {
        Ok(set)
    } else {
        Err(KyvernoError::Invalid(problems))
    }
}

fn collect_files(path: &Path, out: &mut Vec<PathBuf>) -> Result<(), KyvernoError> {
    let meta = std::fs::metadata(path).map_err(|source| KyvernoError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        out.push(path.to_path_buf());
        return Ok(());
    }
    let read = |p: &Path| {
        std::fs::read_dir(p).map_err(|source| KyvernoError::Read {
            path: p.to_path_buf(),
            source,
        })
    };
    let mut entries: Vec<PathBuf> = Vec::new();
    for entry in read(path)? {
        let entry = entry.map_err(|source| KyvernoError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        entries.push(entry.path());
    }
    entries.sort();
    for p in entries {
        if p.is_dir() {
            collect_files(&p, out)?;
        } else if p
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| e == "yaml" || e == "yml")
        {
            out.push(p);
        }
    }
    Ok(())
}

/// A YAML error, with its line moved by `line_offset` (the chunk's first line in the file).
fn yaml_error(file: &Path, line_offset: usize, e: &serde_yaml::Error) -> KyvernoError {
    let (line, column) = e
        .location()
        .map(|l| (l.line() + line_offset, l.column()))
        .unwrap_or((0, 0));
    KyvernoError::Yaml {
        file: file.to_path_buf(),
        line,
        column,
        message: e.to_string(),
    }
}

/// Splits a multi-document stream at its `---` / `...` marker lines, so that each document
/// is parsed (and located) on its own instead of from the start of the file every time.
/// Markers are only recognised at the start of a line, where YAML allows them; each chunk
/// comes with the number of lines before it.
fn split_documents(text: &str) -> Vec<(usize, &str)> {
    let is_marker = |line: &str| {
        ["---", "..."].iter().any(|m| {
            line.strip_prefix(m)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with([' ', '\t', '\r']))
        })
    };
    let mut chunks = Vec::new();
    let (mut start, mut start_line) = (0, 0);
    let mut offset = 0;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.trim_end_matches('\n');
        if is_marker(bare) && offset > start {
            chunks.push((start_line, &text[start..offset]));
            start = offset;
            start_line = n;
        }
        offset += line.len();
    }
    chunks.push((start_line, &text[start..]));
    chunks
}

/// The `index`th document of `text`.
fn document(text: &str, index: usize) -> Option<serde_yaml::Deserializer<'_>> {
    serde_yaml::Deserializer::from_str(text).nth(index)
}

const POLICY_VERSIONS: [&str; 2] = ["kyverno.io/v1", "kyverno.io/v2beta1"];

fn load_text(
    file: &Path,
    text: &str,
    set: &mut KyvernoSet,
    problems: &mut Vec<PolicyProblem>,
) -> Result<(), KyvernoError> {
    for (line_offset, chunk) in split_documents(text) {
        let count = serde_yaml::Deserializer::from_str(chunk).count();
        for index in 0..count {
            let Some(doc) = document(chunk, index) else {
                continue;
            };
            let value = serde_yaml::Value::deserialize(doc)
                .map_err(|e| yaml_error(file, line_offset, &e))?;
            if value.is_null() {
                continue;
            }
            let here = Where {
                file,
                text: chunk,
                index,
                line_offset,
            };
            let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
            let items = value.get("items").and_then(|i| i.as_sequence());
            if let (true, Some(items)) = (kind.ends_with("List"), items) {
                for (i, item) in items.iter().enumerate() {
                    let prefix = FieldPath::keys("items").index(i);
                    load_document(&here, &prefix, item, set, problems)?;
                }
            } else {
                load_document(&here, &FieldPath::root(), &value, set, problems)?;
            }
        }
    }
    Ok(())
}

/// Where a document is: the file, the chunk of text holding it, its index in the chunk and
/// the chunk's first line in the file.
struct Where<'a> {
    file: &'a Path,
    text: &'a str,
    index: usize,
    line_offset: usize,
}

impl Where<'_> {
    /// Line and column of `path` (below `prefix`), or of its nearest written ancestor.
    fn locate(&self, prefix: &FieldPath, path: &FieldPath) -> (usize, usize) {
        let mut full = prefix.clone();
        full.0.extend(path.0.iter().cloned());
        let mut candidate = Some(full);
        while let Some(p) = candidate {
            if let Some((line, column)) = locate(self.text, self.index, &p) {
                return (line + self.line_offset, column);
            }
            candidate = p.parent();
        }
        (1 + self.line_offset, 1)
    }

    fn note(&self, line: usize, message: impl fmt::Display) -> String {
        format!("{}:{line}: {message}", self.file.display())
    }
}

fn load_document(
    here: &Where<'_>,
    prefix: &FieldPath,
    value: &serde_yaml::Value,
    set: &mut KyvernoSet,
    problems: &mut Vec<PolicyProblem>,
) -> Result<(), KyvernoError> {
    let api_version = value
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let kind = value.get("kind").and_then(|v| v.as_str()).unwrap_or("");
    let (line, _) = here.locate(prefix, &FieldPath::root());
    let is_policy_kind = kind == "ClusterPolicy" || kind == "Policy";
    if !is_policy_kind || !POLICY_VERSIONS.contains(&api_version) {
        let what = if kind.is_empty() {
            "a document without `kind`".to_string()
        } else {
            format!("{kind} ({api_version})")
        };
        let why = if api_version.starts_with("kyverno.io/") && kind == "PolicyException" {
            "; note that exceptions it grants are not applied, so the rules it exempts are still judged"
        } else if api_version.starts_with("policies.kyverno.io/") {
            "; CEL-based policies are not supported"
        } else {
            ""
        };
        set.notes.push(here.note(
            line,
            format!(
                "{what} is not a kyverno.io/v1 or v2beta1 ClusterPolicy or Policy; ignored{why}"
            ),
        ));
        return Ok(());
    }

    // Typed parse, remembering fields Kyverno's schema does not have.
    let mut ignored: Vec<FieldPath> = Vec::new();
    let parsed: Result<PolicyDoc, serde_yaml::Error> = if prefix.0.is_empty() {
        match document(here.text, here.index) {
            Some(doc) => serde_ignored::deserialize(doc, |p| ignored.push(ignored_path(&p))),
            None => return Ok(()),
        }
    } else {
        serde_ignored::deserialize(value.clone(), |p| ignored.push(ignored_path(&p)))
    };
    let mut doc = match parsed {
        Ok(doc) => doc,
        Err(e) if prefix.0.is_empty() => return Err(yaml_error(here.file, here.line_offset, &e)),
        Err(e) => {
            let (l, c) = here.locate(prefix, &FieldPath::root());
            return Err(KyvernoError::Yaml {
                file: here.file.to_path_buf(),
                line: l,
                column: c,
                message: format!("{prefix}: {e}"),
            });
        }
    };
    let policy_id = match doc.kind.as_str() {
        "Policy" => format!(
            "Policy/{}/{}",
            doc.metadata.namespace.as_deref().unwrap_or("default"),
            doc.metadata.name
        ),
        _ => format!("ClusterPolicy/{}", doc.metadata.name),
    };
    for p in &ignored {
        let (l, _) = here.locate(prefix, p);
        set.notes.push(here.note(
            l,
            format!(
                "{policy_id}: unknown field {p} ignored (Kyverno's API server would reject or drop it)"
            ),
        ));
    }

    if doc.api_version == "kyverno.io/v2beta1" {
        for (path, field) in prune_v1_only_fields(&mut doc) {
            let (l, _) = here.locate(prefix, &path);
            set.notes.push(here.note(
                l,
                format!(
                    "{policy_id}: {path}: kyverno.io/v2beta1 has no `{field}` (a deprecated v1 field); the API server drops it, and so does imagegate"
                ),
            ));
        }
    }

    offline_notes(here, prefix, &doc, &policy_id, &mut set.notes);

    let checked = cfg_check::check(&doc);
    for (path, message) in checked.problems {
        let (l, c) = here.locate(prefix, &path);
        problems.push(PolicyProblem {
            file: here.file.to_path_buf(),
            line: l,
            column: c,
            policy: policy_id.clone(),
            field: path,
            message,
        });
    }
    for (path, message) in checked.warnings {
        let (l, _) = here.locate(prefix, &path);
        set.notes
            .push(here.note(l, format!("{policy_id}: {path}: {message}")));
    }

    let (kind, namespace) = if doc.kind == "Policy" {
        let ns = match doc.metadata.namespace.as_deref() {
            Some(ns) if !ns.is_empty() => ns.to_string(),
            _ => {
                set.notes.push(here.note(
                    line,
                    format!(
                        "{policy_id}: the Policy names no metadata.namespace; taken as `default` (kubectl would use the current namespace)"
                    ),
                ));
                "default".to_string()
            }
        };
        (PolicyKind::Policy, Some(ns))
    } else {
        (PolicyKind::ClusterPolicy, None)
    };
    set.policies.push(Policy {
        kind,
        api_version: doc.api_version.clone(),
        name: doc.metadata.name.clone(),
        namespace,
        annotations: doc.metadata.annotations.clone(),
        spec: doc.spec,
        origin: here.file.to_path_buf(),
        line,
    });
    Ok(())
}

/// Notes for parts of a policy imagegate cannot use offline, so the user hears about them
/// when loading, not only in findings.
fn offline_notes(
    here: &Where<'_>,
    prefix: &FieldPath,
    doc: &PolicyDoc,
    policy_id: &str,
    notes: &mut Vec<String>,
) {
    if doc
        .spec
        .webhook_configuration
        .as_ref()
        .is_some_and(|w| w.match_conditions.is_some())
    {
        let path = FieldPath::keys("spec.webhookConfiguration.matchConditions");
        let (l, _) = here.locate(prefix, &path);
        notes.push(here.note(
            l,
            format!(
                "{policy_id}: webhook matchConditions (CEL) are not evaluated; assumed they send the Pod to Kyverno"
            ),
        ));
    }
    for (i, rule) in doc.spec.rules.iter().enumerate() {
        let at = FieldPath::keys("spec.rules").index(i);
        for (j, entry) in rule.context.iter().enumerate() {
            let source = if let Some(cm) = &entry.config_map {
                format!("ConfigMap {}/{}", cm.namespace, cm.name)
            } else if entry.api_call.is_some() {
                "an API call".to_string()
            } else if entry.image_registry.is_some() {
                "the image registry".to_string()
            } else if entry.global_reference.is_some() {
                "a global context entry".to_string()
            } else {
                continue;
            };
            let path = at.key("context").index(j);
            let (l, _) = here.locate(prefix, &path);
            notes.push(here.note(
                l,
                format!(
                    "{policy_id}: rule {}: context entry `{}` reads {source}, which imagegate does not read; checks that use it are not evaluated",
                    rule.name, entry.name
                ),
            ));
        }
        if rule.image_extractors.is_some() {
            let (l, _) = here.locate(prefix, &at.key("imageExtractors"));
            notes.push(here.note(
                l,
                format!(
                    "{policy_id}: rule {}: imageExtractors are ignored; the image is judged as a container image",
                    rule.name
                ),
            ));
        }
    }
}

/// v2beta1's ImageVerification is v1's without the deprecated fields and `cosignOCI11`; a
/// structural schema prunes them. Returns where each was.
fn prune_v1_only_fields(doc: &mut PolicyDoc) -> Vec<(FieldPath, &'static str)> {
    let mut pruned = Vec::new();
    for (i, rule) in doc.spec.rules.iter_mut().enumerate() {
        for (j, iv) in rule.verify_images.iter_mut().enumerate() {
            let at = FieldPath::keys("spec.rules")
                .index(i)
                .key("verifyImages")
                .index(j);
            let mut drop = |set: bool, field: &'static str| {
                if set {
                    pruned.push((at.key(field), field));
                }
            };
            drop(!iv.image.is_empty(), "image");
            drop(!iv.key.is_empty(), "key");
            drop(!iv.roots.is_empty(), "roots");
            drop(!iv.subject.is_empty(), "subject");
            drop(!iv.issuer.is_empty(), "issuer");
            drop(!iv.additional_extensions.is_empty(), "additionalExtensions");
            drop(!iv.annotations.is_empty(), "annotations");
            drop(iv.cosign_oci11, "cosignOCI11");
            iv.image.clear();
            iv.key.clear();
            iv.roots.clear();
            iv.subject.clear();
            iv.issuer.clear();
            iv.additional_extensions.clear();
            iv.annotations.clear();
            iv.cosign_oci11 = false;
        }
    }
    pruned
}

fn ignored_path(p: &serde_ignored::Path<'_>) -> FieldPath {
    let mut segments = Vec::new();
    let mut cur = p;
    loop {
        match cur {
            serde_ignored::Path::Root => break,
            serde_ignored::Path::Seq { parent, index } => {
                segments.push(Segment::Index(*index));
                cur = parent;
            }
            serde_ignored::Path::Map { parent, key } => {
                segments.push(Segment::Key(key.clone()));
                cur = parent;
            }
            serde_ignored::Path::Some { parent }
            | serde_ignored::Path::NewtypeStruct { parent }
            | serde_ignored::Path::NewtypeVariant { parent } => cur = parent,
        }
    }
    segments.reverse();
    FieldPath(segments)
}

/// The 1-based line and column where the value at `path` starts in document `index`.
///
/// serde_yaml only reveals positions in errors, so the walk raises an error on purpose when it
/// reaches the value; serde_yaml stamps it with the value's start.
fn locate(text: &str, index: usize, path: &FieldPath) -> Option<(usize, usize)> {
    let doc = document(text, index)?;
    match (Locator { path: &path.0 }).deserialize(doc) {
        Err(e) if e.to_string().contains(FOUND) => e.location().map(|l| (l.line(), l.column())),
        _ => None,
    }
}

const FOUND: &str = "\u{1}imagegate-found";

struct Locator<'a> {
    path: &'a [Segment],
}

impl Locator<'_> {
    fn leaf<E: de::Error>(&self) -> Result<(), E> {
        if self.path.is_empty() {
            Err(E::custom(FOUND))
        } else {
            Ok(())
        }
    }
}

impl<'de> DeserializeSeed<'de> for Locator<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Locator<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        self.leaf()
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        self.leaf()
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        self.leaf()
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        self.leaf()
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (want, rest) = match self.path.split_first() {
            None => return Err(de::Error::custom(FOUND)),
            Some((Segment::Key(k), rest)) => (Some(k), rest),
            Some((Segment::Index(_), _)) => (None, self.path),
        };
        // The last key is located at the key itself (`keys:`), not at its value, which for a
        // block mapping starts on the next line.
        let probe = KeyProbe {
            want: want.map(String::as_str),
            stop_here: rest.is_empty(),
        };
        while let Some(matched) = map.next_key_seed(probe)? {
            if matched {
                map.next_value_seed(Locator { path: rest })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (want, rest) = match self.path.split_first() {
            None => return Err(de::Error::custom(FOUND)),
            Some((Segment::Index(i), rest)) => (Some(*i), rest),
            Some((Segment::Key(_), _)) => (None, self.path),
        };
        let mut n = 0;
        loop {
            let more = if Some(n) == want {
                seq.next_element_seed(Locator { path: rest })?.is_some()
            } else {
                seq.next_element::<IgnoredAny>()?.is_some()
            };
            if !more {
                return Ok(());
            }
            n += 1;
        }
    }
}

/// Reads a map key: whether it is the wanted one; reaching the wanted last key stops the walk
/// there.
#[derive(Clone, Copy)]
struct KeyProbe<'a> {
    want: Option<&'a str>,
    stop_here: bool,
}

impl<'de> DeserializeSeed<'de> for KeyProbe<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyProbe<'_> {
    type Value = bool;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map key")
    }
    fn visit_str<E: de::Error>(self, key: &str) -> Result<bool, E> {
        let matched = self.want == Some(key);
        if matched && self.stop_here {
            return Err(E::custom(FOUND));
        }
        Ok(matched)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
        Ok(false)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(false)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<bool, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_documents_at_marker_lines() {
        let text = "a: 1\n---\nb: |\n  ---\n  x\n--- # c\nc: 3\n...\n";
        let chunks = split_documents(text);
        let starts: Vec<usize> = chunks.iter().map(|(l, _)| *l).collect();
        assert_eq!(starts, vec![0, 1, 5, 7]);
        assert_eq!(chunks[1].1, "---\nb: |\n  ---\n  x\n");
        assert_eq!(split_documents("").len(), 1);
    }

    #[test]
    fn locates_fields_across_documents() {
        let text = "a: 1\n---\nkind: X\nspec:\n  rules:\n  - name: r0\n  - name: r1\n    verifyImages:\n    - imageReferences: [x]\n";
        let path = FieldPath::keys("spec.rules")
            .index(1)
            .key("verifyImages")
            .index(0)
            .key("imageReferences");
        assert_eq!(locate(text, 1, &path), Some((9, 7)));
        let block = "spec:\n  keys:\n    kms: x\n";
        assert_eq!(
            locate(block, 0, &FieldPath::keys("spec.keys")),
            Some((2, 3))
        );
        assert_eq!(
            locate(block, 0, &FieldPath::keys("spec.keys.kms")),
            Some((3, 5))
        );
        assert_eq!(locate(text, 1, &FieldPath::keys("spec.nope")), None);
        assert_eq!(locate(text, 0, &FieldPath::root()), Some((1, 1)));
    }
}
