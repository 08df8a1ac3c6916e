//! Errors from loading StackRox policies and signature integrations. Every one names the file
//! (and where it can, the line and column, the policy and the field) and says what to do.

use std::fmt;
use std::path::PathBuf;

/// One thing wrong with a policy, as StackRox's validator would report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// The policy field (`policyVersion`, `categories`, …) or criterion (`Image Tag`) at fault.
    pub field: String,
    /// The section (1-based number and name) when the problem is in a policy section.
    pub section: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "field \"{}\"", self.field)?;
        if let Some(section) = &self.section {
            write!(f, " in {section}")?;
        }
        write!(f, ": {}", self.message)?;
        if !self.hint.is_empty() {
            write!(f, "\n      fix: {}", self.hint)?;
        }
        Ok(())
    }
}

/// Why StackRox policies (or the signature integrations file) could not be loaded. The CLI maps
/// all of these to exit code 2 (bad input).
#[derive(Debug, thiserror::Error)]
pub enum StackRoxError {
    #[error("cannot read {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{} is larger than {limit} bytes; refusing to read it as a policy file", path.display())]
    TooLarge { path: PathBuf, limit: u64 },

    /// The file is not valid JSON, or a value has the wrong type.
    #[error("{}:{line}:{column}: {message}\n  hint: {hint}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
        hint: String,
    },

    /// Valid JSON, but not something that holds policies.
    #[error("{}: {reason}\n  hint: pass a policy export (`{{\"policies\": [...]}}`, as `POST /v1/policies/export` returns it), a single policy, a list of policies, or a folder of such files", path.display())]
    NotPolicies { path: PathBuf, reason: String },

    #[error("{}: no policies found\n  hint: {hint}", path.display())]
    NoPolicies { path: PathBuf, hint: String },

    /// A policy that StackRox would refuse.
    #[error("{origin}: policy \"{policy}\" is invalid:{}", list_problems(problems))]
    Invalid {
        origin: String,
        policy: String,
        problems: Vec<Problem>,
    },

    /// `--categories` named categories that no loaded policy has (roxctl's check).
    #[error(
        "allowed categories {unmatched:?} did not match any policy categories\n  hint: categories are matched exactly (case matters); the loaded policies have: {}",
        known.join(", ")
    )]
    UnknownCategories {
        unmatched: Vec<String>,
        known: Vec<String>,
    },

    /// The signature integrations file is wrong.
    #[error("{}{}: {message}", path.display(), integration.as_ref().map(|i| format!(": integration {i}")).unwrap_or_default())]
    Integrations {
        path: PathBuf,
        integration: Option<String>,
        message: String,
    },
}

fn list_problems(problems: &[Problem]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}

impl StackRoxError {
    /// The parse error for `e` in `path`, with a hint matched to the kind of mistake.
    pub(crate) fn parse(path: impl Into<PathBuf>, e: &serde_json::Error) -> StackRoxError {
        let hint = match e.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                "the file is not valid JSON; fix the syntax at that position (a missing comma, quote or bracket is the usual cause)"
            }
            _ => {
                "a value has the wrong type or an unknown name; compare it with a policy exported from StackRox (`roxctl policy export` or `POST /v1/policies/export`)"
            }
        };
        StackRoxError::Parse {
            path: path.into(),
            line: e.line(),
            column: e.column(),
            message: strip_position(&e.to_string()),
            hint: hint.to_string(),
        }
    }
}

/// serde_json appends " at line L column C"; the position is already in front of the message.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_string(),
        None => message.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_policy_lists_every_problem_with_its_fix() {
        let err = StackRoxError::Invalid {
            origin: "policies/tag.json".into(),
            policy: "No latest".into(),
            problems: vec![
                Problem {
                    field: "Image Age".into(),
                    section: Some("section 1".into()),
                    message: "criterion \"Image Age\" cannot be negated".into(),
                    hint: "remove \"negate\": true".into(),
                },
                Problem {
                    field: "severity".into(),
                    section: None,
                    message: "a policy must have a severity".into(),
                    hint: String::new(),
                },
            ],
        };
        let text = err.to_string();
        assert!(text.starts_with("policies/tag.json: policy \"No latest\" is invalid:"));
        assert!(text.contains("\n  - field \"Image Age\" in section 1: criterion"));
        assert!(text.contains("\n      fix: remove \"negate\": true"));
        assert!(text.contains("\n  - field \"severity\": a policy must have a severity"));
    }

    #[test]
    fn parse_errors_carry_position_once() {
        let e = serde_json::from_str::<serde_json::Value>("{\n  \"a\": 1,\n}").unwrap_err();
        let err = StackRoxError::parse("p.json", &e);
        let text = err.to_string();
        assert!(text.starts_with("p.json:3:1: "), "{text}");
        assert!(!text.contains(" at line "), "{text}");
        assert!(text.contains("not valid JSON"), "{text}");
    }
}
