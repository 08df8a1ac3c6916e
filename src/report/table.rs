//! The table `roxctl image check` prints, column for column: POLICY, SEVERITY, BREAKS BUILD,
//! DESCRIPTION, VIOLATION, REMEDIATION (and SOURCE when Kyverno findings are in it), ASCII
//! borders, centred cells, rows sorted by severity then name, violations as `- message` lines,
//! empty cells as `-`. Cells wrap to the width given instead of being cut.

use comfy_table::{Cell, CellAlignment, ColumnConstraint, ContentArrangement, Table};
use console::style;

use super::{Counts, ImageReport};
use crate::policy::{Finding, Severity, Source};

/// How to draw the table.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableStyle {
    pub color: bool,
    /// Wrap cells so the table fits this many columns; `None` draws it at its natural width.
    pub width: Option<u16>,
}

/// The block roxctl prints on stdout for one image: the heading, the summary and the table.
pub fn render(image: &ImageReport, style_: TableStyle) -> String {
    let violations = image.violations();
    let counts = Counts::of(violations.iter().copied());
    let mut out = format!("Policy check results for image: {}\n", image.image);
    out.push_str(&format!(
        "(TOTAL: {}, {}: {}, {}: {}, {}: {}, {}: {})\n",
        counts.total,
        severity_label(Severity::Low, style_.color),
        counts.low,
        severity_label(Severity::Medium, style_.color),
        counts.medium,
        severity_label(Severity::High, style_.color),
        counts.high,
        severity_label(Severity::Critical, style_.color),
        counts.critical,
    ));
    if violations.is_empty() {
        return out;
    }
    out.push('\n');
    let with_source = image.findings.iter().any(|f| f.source != Source::StackRox);
    let mut header = vec![
        "POLICY",
        "SEVERITY",
        "BREAKS BUILD",
        "DESCRIPTION",
        "VIOLATION",
        "REMEDIATION",
    ];
    if with_source {
        header.push("SOURCE");
    }
    let rows: Vec<Vec<String>> = violations
        .iter()
        .map(|f| {
            let mut row = vec![
                policy_cell(f),
                severity_label(f.severity, style_.color),
                if f.enforced { "X".into() } else { "-".into() },
                dash_if_empty(&f.description),
                dash_if_empty(&violation_lines(f)),
                dash_if_empty(&f.remediation),
            ];
            if with_source {
                row.push(f.source.to_string());
            }
            row
        })
        .collect();
    let mut table = Table::new();
    table.load_preset(ROXCTL_BORDERS);
    match style_.width {
        Some(w) => {
            // comfy-table wraps the cells and centres them itself. Narrow columns keep their
            // content width, and below 140 columns the description (in every other report)
            // gives its room to the violations.
            table.set_content_arrangement(ContentArrangement::Dynamic);
            table.set_width(w);
            let keep: Vec<usize> = (0..header.len())
                .filter(|&i| w >= 140 || header[i] != "DESCRIPTION")
                .collect();
            table.set_header(
                keep.iter()
                    .map(|&i| Cell::new(header[i]).set_alignment(CellAlignment::Center)),
            );
            // Wrapped prose reads better flush left; the short columns stay centred.
            let align = |i: usize| match header[i] {
                "SEVERITY" | "BREAKS BUILD" | "SOURCE" => CellAlignment::Center,
                _ => CellAlignment::Left,
            };
            for row in &rows {
                table.add_row(
                    keep.iter()
                        .map(|&i| Cell::new(&row[i]).set_alignment(align(i))),
                );
            }
            for (position, &i) in keep.iter().enumerate() {
                if matches!(header[i], "SEVERITY" | "BREAKS BUILD" | "SOURCE")
                    && let Some(column) = table.column_mut(position)
                {
                    column.set_constraint(ColumnConstraint::ContentWidth);
                }
            }
        }
        None => {
            // At natural width the cells are centred here, line by line, with the odd space on
            // the right as roxctl's table writer puts it, so the output matches roxctl's.
            table.set_content_arrangement(ContentArrangement::Disabled);
            let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
            let widths: Vec<usize> = (0..header.len())
                .map(|col| {
                    std::iter::once(&header)
                        .chain(rows.iter())
                        .flat_map(|r| r[col].lines())
                        .map(console::measure_text_width)
                        .max()
                        .unwrap_or(0)
                })
                .collect();
            let centred = |row: &[String]| -> Vec<Cell> {
                row.iter()
                    .zip(&widths)
                    .map(|(text, &w)| {
                        Cell::new(centre_lines(text, w)).set_alignment(CellAlignment::Left)
                    })
                    .collect()
            };
            table.set_header(centred(&header));
            for row in &rows {
                table.add_row(centred(row));
            }
        }
    }
    out.push_str(&table.to_string());
    out.push('\n');
    out
}

/// roxctl's borders: `+` at every crossing, `-` lines under the header and between rows.
const ROXCTL_BORDERS: &str = "||--+-++|-+++++++++";

/// Each line of `text` centred in `width` columns, the odd space going to the right.
fn centre_lines(text: &str, width: usize) -> String {
    text.lines()
        .map(|line| {
            let gap = width.saturating_sub(console::measure_text_width(line));
            let left = gap / 2;
            format!("{}{line}{}", " ".repeat(left), " ".repeat(gap - left))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The policy name, with the rule (Kyverno) and platform (an index judged per platform).
fn policy_cell(f: &Finding) -> String {
    let mut name = f.policy.clone();
    if let Some(rule) = &f.rule {
        name.push_str(&format!("\n(rule {rule})"));
    }
    if let Some(p) = &f.platform {
        name.push_str(&format!("\n[{p}]"));
    }
    name
}

fn violation_lines(f: &Finding) -> String {
    f.messages
        .iter()
        .map(|m| format!("- {m}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn dash_if_empty(text: &str) -> String {
    if text.trim().is_empty() {
        "-".into()
    } else {
        text.trim().to_string()
    }
}

/// `CRITICAL`, coloured as roxctl colours it when asked.
pub fn severity_label(severity: Severity, color: bool) -> String {
    let text = severity.to_string();
    if !color {
        return text;
    }
    let styled = match severity {
        Severity::Low => style(text).blue().dim(),
        Severity::Medium => style(text).yellow(),
        Severity::High => style(text).magenta().bright(),
        Severity::Critical => style(text).red().bold(),
    };
    styled.force_styling(true).to_string()
}

/// The lines roxctl prints on stderr after the tables: how many policies were violated, how
/// many break the build, and each breaking policy's remediation.
pub fn summary_lines(images: &[ImageReport]) -> Vec<String> {
    let mut lines = Vec::new();
    let violations: Vec<&Finding> = images.iter().flat_map(|i| i.violations()).collect();
    if violations.is_empty() {
        return lines;
    }
    lines.push(format!(
        "WARN:\tA total of {} policies have been violated",
        violations.len()
    ));
    let breaking: Vec<&&Finding> = violations.iter().filter(|f| f.enforced).collect();
    if !breaking.is_empty() {
        lines.push(format!(
            "ERROR:\tfailed policies found: {} policies violated that are failing the check",
            breaking.len()
        ));
        for f in breaking {
            lines.push(format!(
                "ERROR:\tPolicy \"{}\" - Possible remediation: \"{}\"",
                f.policy,
                f.remediation.trim()
            ));
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Outcome;

    pub(crate) fn finding(
        policy: &str,
        severity: Severity,
        enforced: bool,
        messages: &[&str],
    ) -> Finding {
        Finding {
            source: Source::StackRox,
            policy: policy.into(),
            rule: None,
            severity,
            enforced,
            outcome: Outcome::Violated,
            messages: messages.iter().map(|m| m.to_string()).collect(),
            description: format!("{policy} for testing"),
            remediation: format!("{policy} for testing"),
            platform: None,
            origin: "test".into(),
        }
    }

    #[test]
    fn empty_cells_are_dashes_and_rows_sort_by_severity_then_name() {
        let mut no_description = finding("b", Severity::High, false, &["v"]);
        no_description.description.clear();
        let image = ImageReport {
            image: "nginx:test".into(),
            digest: None,
            findings: vec![
                finding("z", Severity::Low, false, &["v"]),
                no_description,
                finding("a", Severity::High, true, &["v1", "v2"]),
            ],
        };
        let text = render(&image, TableStyle::default());
        let rows: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("| ") && !l.contains("POLICY"))
            .collect();
        assert!(rows[0].starts_with("|   a    |"), "{text}");
        assert!(rows[0].contains("|      X       |"), "{text}");
        assert!(
            text.contains("|      -      "),
            "an empty description is a dash: {text}"
        );
        assert!(
            text.contains("(TOTAL: 3, LOW: 1, MEDIUM: 0, HIGH: 2, CRITICAL: 0)"),
            "{text}"
        );
    }

    #[test]
    fn narrow_widths_wrap_instead_of_cutting() {
        let mut f = finding(
            "a long policy name",
            Severity::High,
            false,
            &["a violation message that is rather long indeed"],
        );
        f.remediation = "upgrade the package to a fixed version and rebuild the image".into();
        let image = ImageReport {
            image: "x".into(),
            digest: None,
            findings: vec![f],
        };
        let text = render(
            &image,
            TableStyle {
                color: false,
                width: Some(80),
            },
        );
        assert!(text.lines().all(|l| l.chars().count() <= 80), "{text}");
        assert!(text.contains("rebuild"), "nothing is cut: {text}");
    }
}
