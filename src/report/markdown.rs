//! A Markdown summary for `$GITHUB_STEP_SUMMARY` and merge-request comments: the verdict first,
//! then one table of violations per image, and what could not be evaluated.

use super::{Counts, Report};
use crate::policy::{Outcome, Verdict};

fn cell(text: &str) -> String {
    text.trim().replace('|', "\\|").replace('\n', "<br>")
}

pub fn render(report: &Report) -> String {
    let mut out = String::new();
    let breaking: usize = report
        .images
        .iter()
        .flat_map(|i| i.violations())
        .filter(|f| f.enforced)
        .count();
    let heading = match report.verdict {
        Verdict::Fail => format!(
            "❌ imagegate: {breaking} polic{} break the build",
            if breaking == 1 {
                "y would"
            } else {
                "ies would"
            }
        ),
        Verdict::Incomplete => "⚠️ imagegate: the gate could not judge everything".to_string(),
        Verdict::Pass => "✅ imagegate: passed".to_string(),
    };
    out.push_str(&format!("## {heading}\n\n"));
    out.push_str("| Image | Violations | Break the build | Not evaluated | Passed |\n|---|---:|---:|---:|---:|\n");
    for image in &report.images {
        let v = image.violations();
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            cell(&image.image),
            v.len(),
            v.iter().filter(|f| f.enforced).count(),
            image.not_evaluated().len(),
            image
                .findings
                .iter()
                .filter(|f| f.outcome == Outcome::Pass)
                .count()
        ));
    }
    for image in &report.images {
        let violations = image.violations();
        let not_evaluated = image.not_evaluated();
        if violations.is_empty() && not_evaluated.is_empty() {
            continue;
        }
        let c = Counts::of(violations.iter().copied());
        out.push_str(&format!(
            "\n### `{}`\n\n{} violations: {} critical, {} high, {} medium, {} low\n\n",
            cell(&image.image),
            c.total,
            c.critical,
            c.high,
            c.medium,
            c.low
        ));
        if !violations.is_empty() {
            out.push_str("| Policy | Severity | Breaks build | Violation | Remediation |\n|---|---|:---:|---|---|\n");
            for f in violations {
                let mut name = f.policy.clone();
                if let Some(rule) = &f.rule {
                    name.push_str(&format!(" / {rule}"));
                }
                if let Some(p) = &f.platform {
                    name.push_str(&format!(" [{p}]"));
                }
                out.push_str(&format!(
                    "| {} | {} | {} | {} | {} |\n",
                    cell(&name),
                    f.severity,
                    if f.enforced { "✖" } else { "" },
                    cell(&f.messages.join("\n")),
                    cell(&f.remediation)
                ));
            }
        }
        if !not_evaluated.is_empty() {
            out.push_str("\n<details><summary>Not evaluated</summary>\n\n");
            for f in not_evaluated {
                if let Outcome::NotEvaluated(reason) = &f.outcome {
                    out.push_str(&format!("- **{}**: {}\n", cell(&f.policy), cell(reason)));
                }
            }
            out.push_str("\n</details>\n");
        }
    }
    out
}
