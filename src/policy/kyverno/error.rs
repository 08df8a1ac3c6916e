//! Errors from loading Kyverno policies, each pointing at a file, line, column and field.

use std::fmt;
use std::path::PathBuf;

/// A path to a field of a policy document, printed the way Kubernetes prints field paths:
/// `spec.rules[0].verifyImages[0].attestors[0].entries[0].keys`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Segment>);

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
}

impl FieldPath {
    pub fn root() -> FieldPath {
        FieldPath(Vec::new())
    }

    /// `a.b.c` as keys.
    pub fn keys(dotted: &str) -> FieldPath {
        FieldPath(
            dotted
                .split('.')
                .filter(|k| !k.is_empty())
                .map(|k| Segment::Key(k.to_string()))
                .collect(),
        )
    }

    pub fn key(&self, key: &str) -> FieldPath {
        let mut out = self.clone();
        out.0.push(Segment::Key(key.to_string()));
        out
    }

    pub fn index(&self, index: usize) -> FieldPath {
        let mut out = self.clone();
        out.0.push(Segment::Index(index));
        out
    }

    /// The path without its last segment.
    pub fn parent(&self) -> Option<FieldPath> {
        let (_, rest) = self.0.split_last()?;
        Some(FieldPath(rest.to_vec()))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Segment::Key(k) if i == 0 => f.write_str(k)?,
                Segment::Key(k) => write!(f, ".{k}")?,
                Segment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// One thing wrong with a policy, as Kyverno's policy validation (or the CRD schema) would
/// report it, located in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyProblem {
    pub file: PathBuf,
    /// 1-based; the line of the field, or of the nearest enclosing field that is written
    /// (a defaulted field like `mutateDigest` has no line of its own).
    pub line: usize,
    /// 1-based.
    pub column: usize,
    /// `ClusterPolicy/verify-image`.
    pub policy: String,
    pub field: FieldPath,
    /// What Kyverno says.
    pub message: String,
}

impl fmt::Display for PolicyProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.policy,
            self.field,
            self.message
        )
    }
}

/// Why a set of Kyverno policies could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum KyvernoError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The YAML does not parse, or a field has the wrong type.
    #[error("{}:{line}:{column}: {message}", file.display())]
    Yaml {
        file: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    /// Kyverno would reject the policy.
    #[error("{}", list_problems(.0))]
    Invalid(Vec<PolicyProblem>),
}

fn list_problems(problems: &[PolicyProblem]) -> String {
    let mut out = match problems.len() {
        1 => "Kyverno would reject this policy:".to_string(),
        n => format!("Kyverno would reject these policies ({n} problems):"),
    };
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_paths_print_like_kubernetes() {
        let p = FieldPath::keys("spec.rules")
            .index(0)
            .key("verifyImages")
            .index(1)
            .key("attestors");
        assert_eq!(p.to_string(), "spec.rules[0].verifyImages[1].attestors");
        assert_eq!(
            p.parent().unwrap().to_string(),
            "spec.rules[0].verifyImages[1]"
        );
        assert_eq!(FieldPath::root().to_string(), "");
    }
}
