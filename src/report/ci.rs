//! What CI systems read besides the reports: GitHub Actions step outputs, the step summary and
//! annotations; Tekton results; a GitLab dotenv file.

use std::io::Write;
use std::path::Path;

use super::{Report, json::verdict_word, konflux, markdown};
use crate::fsutil::{WriteError, write_atomic};
use crate::policy::Finding;

/// GitHub keeps 10 error and 10 warning annotations per step; more are dropped.
pub const MAX_ANNOTATIONS: usize = 10;

/// The values a pipeline passes on.
pub struct Outcome<'a> {
    pub digest: &'a str,
    pub pinned: &'a str,
    pub report: &'a Report,
}

/// Appends `text` to `path` (GitHub's `$GITHUB_OUTPUT` and `$GITHUB_STEP_SUMMARY` are files
/// the runner gives each step, to be appended to).
fn append(path: &Path, text: &str) -> Result<(), WriteError> {
    let fail = |source| WriteError {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(fail)?;
    file.write_all(text.as_bytes()).map_err(fail)?;
    Ok(())
}

/// Under GitHub Actions: `digest`, `ref` and `verdict` in `$GITHUB_OUTPUT`, the Markdown
/// summary in `$GITHUB_STEP_SUMMARY`, and the annotations to print on stdout.
pub fn github(
    outcome: &Outcome,
    output: Option<&Path>,
    summary: Option<&Path>,
    containerfile: Option<&str>,
) -> Result<Vec<String>, WriteError> {
    if let Some(path) = output {
        append(
            path,
            &format!(
                "digest={}\nref={}\nverdict={}\n",
                outcome.digest,
                outcome.pinned,
                verdict_word(outcome.report.verdict)
            ),
        )?;
    }
    if let Some(path) = summary {
        append(path, &format!("{}\n", markdown::render(outcome.report)))?;
    }
    Ok(annotations(outcome.report, containerfile))
}

/// At most 10 `::error::` (violations that break the build) and 10 `::warning::` lines, the
/// rest counted in one line each.
pub fn annotations(report: &Report, containerfile: Option<&str>) -> Vec<String> {
    let violations: Vec<&Finding> = report.images.iter().flat_map(|i| i.violations()).collect();
    let mut lines = Vec::new();
    for (kind, breaking) in [("error", true), ("warning", false)] {
        let chosen: Vec<&&Finding> = violations
            .iter()
            .filter(|f| f.enforced == breaking)
            .collect();
        for f in chosen.iter().take(MAX_ANNOTATIONS) {
            let mut properties = vec![format!("title={}", escape_property(&f.policy))];
            if let Some(file) = containerfile {
                properties.insert(0, format!("file={}", escape_property(file)));
            }
            lines.push(format!(
                "::{kind} {}::{}",
                properties.join(","),
                escape_data(&f.messages.join("\n"))
            ));
        }
        if chosen.len() > MAX_ANNOTATIONS {
            lines.push(format!(
                "::{kind}::{} more {} not shown here; see the step summary or the reports",
                chosen.len() - MAX_ANNOTATIONS,
                if breaking {
                    "violations that break the build"
                } else {
                    "warnings"
                }
            ));
        }
    }
    lines
}

/// As the Actions toolkit escapes a command's message.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// As the Actions toolkit escapes a command property.
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// Tekton results: `IMAGE_REF` (not IMAGE_URL/IMAGE_DIGEST, which Tekton Chains would take for
/// a build it should sign) and `TEST_OUTPUT` (Konflux), written verbatim, no trailing newline.
pub fn tekton(outcome: &Outcome, dir: &Path) -> Result<(), WriteError> {
    write_atomic(&dir.join("IMAGE_REF"), outcome.pinned.as_bytes())?;
    write_atomic(
        &dir.join("TEST_OUTPUT"),
        konflux::render(outcome.report).as_bytes(),
    )
}

/// A GitLab dotenv report: later jobs get the values as variables.
pub fn dotenv(outcome: &Outcome, path: &Path) -> Result<(), WriteError> {
    write_atomic(
        path,
        format!(
            "IMAGEGATE_DIGEST={}\nIMAGEGATE_REF={}\nIMAGEGATE_VERDICT={}\n",
            outcome.digest,
            outcome.pinned,
            verdict_word(outcome.report.verdict)
        )
        .as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Outcome as Result_, Severity, Source, Verdict};
    use crate::report::ImageReport;

    fn finding(policy: &str, enforced: bool) -> Finding {
        Finding {
            source: Source::StackRox,
            policy: policy.into(),
            rule: None,
            severity: Severity::High,
            enforced,
            outcome: Result_::Violated,
            messages: vec!["line one: 100%".into(), "line two, with a comma".into()],
            description: String::new(),
            remediation: String::new(),
            platform: None,
            origin: "test".into(),
        }
    }

    #[test]
    fn annotations_are_escaped_and_capped_at_ten_of_each_kind() {
        let mut findings: Vec<Finding> = (0..12)
            .map(|i| finding(&format!("p{i:02}: x,y"), true))
            .collect();
        findings.push(finding("warn", false));
        let report = Report {
            generated_at: chrono::Utc::now(),
            images: vec![ImageReport {
                image: "i".into(),
                digest: None,
                findings,
            }],
            verdict: Verdict::Fail,
        };
        let lines = annotations(&report, Some("Containerfile"));
        assert_eq!(
            lines
                .iter()
                .filter(|l| l.starts_with("::error file="))
                .count(),
            10
        );
        assert!(lines.contains(&"::error::2 more violations that break the build not shown here; see the step summary or the reports".to_string()));
        assert_eq!(
            lines[0],
            "::error file=Containerfile,title=p00%3A x%2Cy::line one: 100%25%0Aline two, with a comma"
        );
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("::warning ")).count(),
            1
        );
    }
}
