//! Turns a validated BUILD policy into matchers, once per load: every regular expression is
//! compiled here, so evaluating thousands of vulnerabilities never compiles one.
//!
//! Value semantics follow StackRox's query builders (`pkg/booleanpolicy/querybuilders`):
//! - text criteria are whole-string, case-insensitive RE2 regexes, `^(?i:VALUE)$`, and an empty
//!   regex matches anything (`regexutils.CompileWholeStringMatcher`);
//! - `Fixed By` reads `.*` as `.+`; `Fixable` is `Fixed By` with `.+` (true) or `^$` (false);
//! - `Dockerfile Line` and `Image Component` split the value at the first `=` into two regexes
//!   (an empty part is `.*`) matched against `PART1\tPART2`;
//! - `CVSS`/`NVD CVSS` compare numbers (`<`, `>`, `<=`, `>=`, or equality within 1e-4);
//! - `Severity` compares levels UNKNOWN < LOW < MODERATE < IMPORTANT < CRITICAL;
//! - the `Days Since …` and age criteria match a time more than N days before now;
//! - label criteria split `KEY=VALUE` into two regexes (empty means any).

use regex::Regex;

use super::cfg::{BooleanOperator, Policy};
use super::error::Problem;
use super::fields::{self, Criterion};
use super::validate::section_label;
use crate::facts::VulnSeverity;

/// A comparison operator of the numeric and severity criteria.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Comparison {
    Less,
    LessOrEqual,
    Greater,
    GreaterOrEqual,
    Equal,
}

impl Comparison {
    /// Splits a leading operator off `value` (longest first, as StackRox does).
    fn split(value: &str) -> (Comparison, &str) {
        let value = value.trim();
        for (prefix, op) in [
            ("<=", Comparison::LessOrEqual),
            (">=", Comparison::GreaterOrEqual),
            ("<", Comparison::Less),
            (">", Comparison::Greater),
        ] {
            if let Some(rest) = value.strip_prefix(prefix) {
                return (op, rest.trim());
            }
        }
        (Comparison::Equal, value)
    }

    pub fn holds_f64(self, actual: f64, wanted: f64) -> bool {
        match self {
            Comparison::Less => actual < wanted,
            Comparison::LessOrEqual => actual <= wanted,
            Comparison::Greater => actual > wanted,
            Comparison::GreaterOrEqual => actual >= wanted,
            // StackRox compares floats with a tolerance.
            Comparison::Equal => (actual - wanted).abs() < 1e-4,
        }
    }

    pub fn holds_ord<T: Ord>(self, actual: T, wanted: T) -> bool {
        match self {
            Comparison::Less => actual < wanted,
            Comparison::LessOrEqual => actual <= wanted,
            Comparison::Greater => actual > wanted,
            Comparison::GreaterOrEqual => actual >= wanted,
            Comparison::Equal => actual == wanted,
        }
    }
}

/// A whole-string, case-insensitive regex; `None` is the empty regex, which matches anything.
#[derive(Clone, Debug)]
pub(crate) struct TextMatcher(Option<Regex>);

impl TextMatcher {
    fn new(pattern: &str) -> Result<TextMatcher, regex::Error> {
        if pattern.is_empty() {
            return Ok(TextMatcher(None));
        }
        Regex::new(&format!("^(?i:{pattern})$")).map(|r| TextMatcher(Some(r)))
    }

    pub fn matches(&self, text: &str) -> bool {
        self.0.as_ref().is_none_or(|r| r.is_match(text))
    }
}

/// One compiled value of a policy group.
#[derive(Clone, Debug)]
pub(crate) enum ValueMatcher {
    Text(TextMatcher),
    Number(Comparison, f64),
    Severity(Comparison, VulnSeverity),
    /// More than this many days ago.
    Days(i64),
    Bool(bool),
    Label {
        key: TextMatcher,
        value: TextMatcher,
    },
    Integration(String),
}

/// One compiled policy group (a criterion with its values).
#[derive(Clone, Debug)]
pub(crate) struct CompiledGroup {
    pub criterion: Criterion,
    pub and: bool,
    pub negate: bool,
    pub values: Vec<ValueMatcher>,
}

impl CompiledGroup {
    /// Combines per-value results for one element as StackRox's base evaluators do: OR/AND over
    /// the values, negation by De Morgan. A value the element lacks (`None`) makes the group not
    /// match the element at all, negated or not.
    pub fn combine(&self, results: impl Iterator<Item = Option<bool>>) -> bool {
        let mut any_true = false;
        let mut any_false = false;
        for result in results {
            match result {
                None => return false,
                Some(true) => any_true = true,
                Some(false) => any_false = true,
            }
        }
        match (self.negate, self.and) {
            (false, false) => any_true,
            (false, true) => !any_false,
            (true, false) => !any_true,
            (true, true) => any_false,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct CompiledSection {
    pub groups: Vec<CompiledGroup>,
}

/// The matchers of a BUILD policy, built once when it is loaded.
#[derive(Clone, Debug)]
pub(crate) struct CompiledPolicy {
    pub sections: Vec<CompiledSection>,
}

/// Compiles a policy that passed validation; a regex that does not compile is reported as a
/// problem of its criterion.
pub(crate) fn compile(policy: &Policy) -> Result<CompiledPolicy, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut sections = Vec::new();
    for (index, section) in policy.policy_sections.iter().enumerate() {
        let label = section_label(index, &section.section_name);
        let mut groups = Vec::new();
        for group in &section.policy_groups {
            let Some(criterion) = fields::find(&group.field_name).and_then(|f| f.criterion) else {
                continue;
            };
            let mut values = Vec::new();
            for value in &group.values {
                match compile_value(criterion, &value.value) {
                    Ok(matcher) => values.push(matcher),
                    Err(message) => problems.push(Problem {
                        field: group.field_name.clone(),
                        section: Some(label.clone()),
                        message: format!("value {:?} does not compile: {message}", value.value),
                        hint: "write an RE2 regular expression (Go syntax; no look-around or back-references)".into(),
                    }),
                }
            }
            groups.push(CompiledGroup {
                criterion,
                and: group.boolean_operator == BooleanOperator::And,
                negate: group.negate,
                values,
            });
        }
        sections.push(CompiledSection { groups });
    }
    if problems.is_empty() {
        Ok(CompiledPolicy { sections })
    } else {
        Err(problems)
    }
}

fn text(pattern: &str) -> Result<ValueMatcher, String> {
    TextMatcher::new(pattern)
        .map(ValueMatcher::Text)
        .map_err(|e| e.to_string())
}

/// `FIRST=SECOND` as `(FIRST)\t(SECOND)`, an empty part meaning `.*`.
fn compound(value: &str) -> Result<ValueMatcher, String> {
    let (first, second) = value
        .split_once('=')
        .ok_or_else(|| "it has no '='".to_string())?;
    let part = |p: &str| {
        if p.is_empty() {
            ".*".to_string()
        } else {
            p.to_string()
        }
    };
    text(&format!("({})\t({})", part(first), part(second)))
}

fn compile_value(criterion: Criterion, value: &str) -> Result<ValueMatcher, String> {
    use Criterion as C;
    match criterion {
        C::ImageRegistry | C::ImageRemote | C::ImageTag | C::ImageUser | C::ImageOs | C::Cve => {
            text(value)
        }
        C::FixedBy => text(if value == ".*" { ".+" } else { value }),
        C::Fixable => {
            let fixable = parse_bool(value)?;
            text(if fixable { ".+" } else { "^$" })
        }
        C::DockerfileLine | C::ImageComponent => compound(value),
        C::Cvss | C::NvdCvss => {
            let (op, number) = Comparison::split(value);
            let number: f64 = number
                .parse()
                .map_err(|_| format!("{number:?} is not a number"))?;
            Ok(ValueMatcher::Number(op, number))
        }
        C::Severity => {
            let (op, level) = Comparison::split(value);
            let level = match level.to_ascii_uppercase().as_str() {
                "UNKNOWN" => VulnSeverity::Unknown,
                "LOW" => VulnSeverity::Low,
                "MODERATE" => VulnSeverity::Moderate,
                "IMPORTANT" => VulnSeverity::Important,
                "CRITICAL" => VulnSeverity::Critical,
                other => return Err(format!("{other:?} is not a severity")),
            };
            Ok(ValueMatcher::Severity(op, level))
        }
        C::ImageAge
        | C::ImageScanAge
        | C::DaysSincePublished
        | C::DaysSinceFixAvailable
        | C::DaysSinceFirstDiscoveredInImage
        | C::DaysSinceFirstDiscoveredInSystem => value
            .trim()
            .parse::<i64>()
            .map(ValueMatcher::Days)
            .map_err(|_| format!("{value:?} is not a whole number of days")),
        C::UnscannedImage => parse_bool(value).map(ValueMatcher::Bool),
        C::RequiredImageLabel | C::DisallowedImageLabel => {
            let (key, label_value) = value.split_once('=').unwrap_or((value, ""));
            Ok(ValueMatcher::Label {
                key: TextMatcher::new(key).map_err(|e| e.to_string())?,
                value: TextMatcher::new(label_value).map_err(|e| e.to_string())?,
            })
        }
        C::ImageSignatureVerifiedBy => Ok(ValueMatcher::Integration(value.trim().to_string())),
    }
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!("{value:?} is not true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(criterion: Criterion, value: &str, input: &str) -> bool {
        match compile_value(criterion, value).unwrap() {
            ValueMatcher::Text(t) => t.matches(input),
            other => panic!("not text: {other:?}"),
        }
    }

    #[test]
    fn text_is_whole_string_and_case_insensitive() {
        assert!(matches(Criterion::ImageTag, "latest", "LATEST"));
        assert!(!matches(Criterion::ImageTag, "latest", "latest-1"));
        assert!(!matches(Criterion::ImageTag, "latest", "not-latest"));
        assert!(matches(Criterion::ImageTag, "v1|latest", "latest"));
        assert!(matches(Criterion::ImageRegistry, "", "anything"));
    }

    #[test]
    fn fixed_by_and_fixable() {
        assert!(matches(Criterion::FixedBy, ".*", "1.2"));
        assert!(!matches(Criterion::FixedBy, ".*", ""), ".* means .+");
        assert!(matches(Criterion::FixedBy, "1\\..*", "1.2"));
        assert!(matches(Criterion::Fixable, "true", "1.2"));
        assert!(!matches(Criterion::Fixable, "true", ""));
        assert!(matches(Criterion::Fixable, "False", ""));
        assert!(!matches(Criterion::Fixable, "false", "1.2"));
    }

    #[test]
    fn compound_values() {
        assert!(matches(Criterion::ImageComponent, "curl=", "curl\t7.64.0"));
        assert!(matches(
            Criterion::ImageComponent,
            "apt|dpkg=",
            "dpkg\t1.19"
        ));
        assert!(!matches(
            Criterion::ImageComponent,
            "curl=",
            "libcurl\t7.64.0"
        ));
        assert!(matches(
            Criterion::ImageComponent,
            "curl=7\\..*",
            "curl\t7.64.0"
        ));
        assert!(!matches(
            Criterion::ImageComponent,
            "curl=8\\..*",
            "curl\t7.64.0"
        ));
        assert!(matches(
            Criterion::DockerfileLine,
            "=.*update.*",
            "RUN\tapt update"
        ));
        assert!(matches(
            Criterion::DockerfileLine,
            "run=apt update",
            "RUN\tapt update"
        ));
        assert!(matches(
            Criterion::DockerfileLine,
            "EXPOSE=(22/tcp|\\s+22/tcp)",
            "EXPOSE\t 22/tcp"
        ));
    }

    #[test]
    fn comparisons() {
        let number = |v| match compile_value(Criterion::Cvss, v).unwrap() {
            ValueMatcher::Number(op, n) => (op, n),
            other => panic!("{other:?}"),
        };
        assert_eq!(number(">= 7.000000"), (Comparison::GreaterOrEqual, 7.0));
        assert_eq!(number("<5"), (Comparison::Less, 5.0));
        assert_eq!(number("9.8"), (Comparison::Equal, 9.8));
        assert!(Comparison::Equal.holds_f64(9.80001, 9.8));
        assert!(!Comparison::Equal.holds_f64(9.81, 9.8));
        let severity = |v| match compile_value(Criterion::Severity, v).unwrap() {
            ValueMatcher::Severity(op, s) => (op, s),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            severity(">=IMPORTANT"),
            (Comparison::GreaterOrEqual, VulnSeverity::Important)
        );
        assert_eq!(
            severity("moderate"),
            (Comparison::Equal, VulnSeverity::Moderate)
        );
        assert!(compile_value(Criterion::Severity, "HIGH").is_err());
    }

    #[test]
    fn combining_values_follows_de_morgan() {
        let group = |and, negate| CompiledGroup {
            criterion: Criterion::ImageTag,
            and,
            negate,
            values: Vec::new(),
        };
        let one_of_two = [Some(true), Some(false)];
        let none = [Some(false), Some(false)];
        let both = [Some(true), Some(true)];
        assert!(group(false, false).combine(one_of_two.into_iter()));
        assert!(!group(true, false).combine(one_of_two.into_iter()));
        assert!(group(true, false).combine(both.into_iter()));
        assert!(!group(false, true).combine(one_of_two.into_iter()));
        assert!(group(false, true).combine(none.into_iter()));
        assert!(group(true, true).combine(one_of_two.into_iter()));
        assert!(!group(true, true).combine(both.into_iter()));
        // A missing value never matches, even negated.
        assert!(!group(false, true).combine([None].into_iter()));
    }
}
