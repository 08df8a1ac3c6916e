//! `--output FORMAT[=FILE]`: which reports to write and where, shared by `check` and `gate`.

use std::io::IsTerminal;
use std::path::PathBuf;

use crate::error::Error;
use crate::fsutil::write_atomic;
use crate::report::table::{self, TableStyle};
use crate::report::{Report, json, junit, konflux, markdown, sarif};
use crate::ui::ColorChoice;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// roxctl's table (the default, on stdout).
    Table,
    /// JUnit XML (GitLab, Jenkins).
    Junit,
    /// imagegate's JSON report (schema version 1).
    Json,
    /// SARIF 2.1.0 (GitHub code scanning).
    Sarif,
    /// A Markdown summary (GitHub step summary, merge-request comments).
    Markdown,
    /// Konflux TEST_OUTPUT.
    Konflux,
}

/// One `--output` value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OutputSpec {
    pub format: Format,
    /// `None` writes to stdout.
    pub file: Option<PathBuf>,
}

/// `table`, `junit=report.xml`, `sarif=out/imagegate.sarif`.
pub fn parse_output(text: &str) -> Result<OutputSpec, String> {
    use clap::ValueEnum;
    let (name, file) = match text.split_once('=') {
        Some((n, f)) if !f.is_empty() => (n, Some(PathBuf::from(f))),
        Some((n, _)) => {
            return Err(format!(
                "'{n}=' names no file: write {n}=FILE, or {n} for stdout"
            ));
        }
        None => (text, None),
    };
    let format = Format::from_str(name, true).map_err(|_| {
        format!("unknown output format '{name}' (table, junit, json, sarif, markdown, konflux)")
    })?;
    Ok(OutputSpec { format, file })
}

/// How the table is drawn on this stdout.
pub fn table_style(choice: ColorChoice) -> TableStyle {
    let stdout = std::io::stdout();
    let tty = stdout.is_terminal();
    let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
    let color = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => tty && !no_color,
    };
    // On a terminal, fit its width; in a log, $COLUMNS when the runner sets it, else roxctl's
    // natural width.
    let width = if tty {
        console::Term::stdout().size_checked().map(|(_, w)| w)
    } else {
        std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok())
    };
    TableStyle { color, width }
}

/// Renders `report` in `spec`'s format.
pub fn render(
    report: &Report,
    spec: &OutputSpec,
    exit_code: u8,
    style: TableStyle,
    containerfile: Option<&str>,
) -> String {
    match spec.format {
        Format::Table => report
            .images
            .iter()
            .map(|i| table::render(i, style))
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Junit => junit::render(report),
        Format::Json => json::render(report, exit_code),
        Format::Sarif => sarif::render(report, containerfile),
        Format::Markdown => markdown::render(report),
        Format::Konflux => konflux::render(report),
    }
}

/// Writes every requested report: files atomically, stdout in order.
pub fn emit(
    report: &Report,
    specs: &[OutputSpec],
    exit_code: u8,
    style: TableStyle,
    containerfile: Option<&str>,
) -> Result<(), Error> {
    let default = [OutputSpec {
        format: Format::Table,
        file: None,
    }];
    let specs = if specs.is_empty() {
        &default[..]
    } else {
        specs
    };
    // Render everything first, so a failure cannot leave some files written and others not.
    let rendered: Vec<(&OutputSpec, String)> = specs
        .iter()
        .map(|s| {
            let file_style = if s.file.is_some() {
                TableStyle {
                    color: false,
                    width: None,
                }
            } else {
                style
            };
            (s, render(report, s, exit_code, file_style, containerfile))
        })
        .collect();
    for (spec, text) in &rendered {
        if let Some(path) = &spec.file {
            write_atomic(path, text.as_bytes())?;
        }
    }
    for (spec, text) in &rendered {
        if spec.file.is_none() {
            print!("{text}");
            if !text.ends_with('\n') {
                println!();
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_formats_and_files() {
        assert_eq!(
            parse_output("table").unwrap(),
            OutputSpec {
                format: Format::Table,
                file: None
            }
        );
        assert_eq!(
            parse_output("junit=out/report.xml").unwrap(),
            OutputSpec {
                format: Format::Junit,
                file: Some("out/report.xml".into())
            }
        );
        assert_eq!(parse_output("SARIF").unwrap().format, Format::Sarif);
        assert!(
            parse_output("xml")
                .unwrap_err()
                .contains("unknown output format 'xml'")
        );
        assert!(parse_output("json=").unwrap_err().contains("names no file"));
    }
}
