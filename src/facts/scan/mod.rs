//! Scanner reports read into a [`ScanReport`]: Trivy JSON, Grype JSON, and cosign
//! vulnerability attestations wrapping either. The format is recognised from the content, never
//! from the file name.
//!
//! The mapping to StackRox's data model (reference §6):
//! - components: every package the report lists (Trivy `Packages`, present by default since
//!   `--list-all-pkgs` became the default) plus every package a vulnerability names;
//! - severity: LOW→Low, MEDIUM→Moderate, HIGH→Important, CRITICAL→Critical, NEGLIGIBLE→Low;
//!   UNKNOWN (or missing) is derived from the CVSS score as StackRox does (`pkg/cvss`);
//! - CVSS: the vendor's score (Trivy's `SeveritySource`, Grype's own record), v3 before v2, else
//!   NVD's; NVD CVSS separately;
//! - fixed by: Trivy `FixedVersion`, Grype's first `fix.versions` entry when the state is
//!   `fixed`; no version means not fixable;
//! - the same vulnerability reported twice for one component is kept once (the gaps of the
//!   first record are filled from the later one).

mod attestation;
mod grype;
mod model;
mod trivy;

use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::ScanReport;

/// Reports larger than this are refused rather than read into memory.
pub const MAX_REPORT_BYTES: u64 = 256 * 1024 * 1024;

/// Why a scanner report could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot read scanner report {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "scanner report {path} is larger than {limit} bytes ({} MiB); refusing to read it\n  hint: scan a single image per report, or leave out the full package list (`--list-all-pkgs=false`) if it is huge",
        limit / (1024 * 1024)
    )]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("scanner report {path}:{line}:{column}: {message}")]
    Json {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error(
        "scanner report {path} is not a format imagegate reads: {reason}\n  hint: pass a Trivy JSON report (`trivy image --format json`), a Grype JSON report (`grype -o json`), or a cosign vulnerability attestation (`--format cosign-vuln`)"
    )]
    UnknownFormat { path: PathBuf, reason: String },
    #[error("scanner report {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// Reads the scanner report at `path`, whatever its format.
pub fn read_report(path: &Path) -> Result<ScanReport, ScanError> {
    let bytes = read_capped(path, MAX_REPORT_BYTES)?;
    parse_report(&bytes, path)
}

/// Parses a report already in memory; `path` only names it in messages and in
/// [`ScanReport::source`].
pub fn parse_report(bytes: &[u8], path: &Path) -> Result<ScanReport, ScanError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ScanError::Invalid {
        path: path.to_path_buf(),
        reason: format!("not UTF-8 text ({e})"),
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| json_error(path, &e))?;
    let display = path.display().to_string();
    match detect(&value) {
        Format::Trivy => trivy::parse(text, &display).map_err(|e| json_error(path, &e)),
        Format::Grype => grype::parse(text, &display).map_err(|e| json_error(path, &e)),
        Format::Attestation => {
            attestation::parse(&value, &display).map_err(|reason| ScanError::Invalid {
                path: path.to_path_buf(),
                reason,
            })
        }
        Format::Unknown(reason) => Err(ScanError::UnknownFormat {
            path: path.to_path_buf(),
            reason,
        }),
    }
}

fn read_capped(path: &Path, limit: u64) -> Result<Vec<u8>, ScanError> {
    let io_error = |source| ScanError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut bytes = Vec::new();
    // Read one byte past the cap to tell "exactly at the cap" from "over it".
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > limit {
        return Err(ScanError::TooLarge {
            path: path.to_path_buf(),
            limit,
        });
    }
    Ok(bytes)
}

fn json_error(path: &Path, e: &serde_json::Error) -> ScanError {
    ScanError::Json {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    }
}

pub(crate) enum Format {
    Trivy,
    Grype,
    Attestation,
    Unknown(String),
}

/// Recognises a report by its shape: Trivy has `SchemaVersion` and `Results`, Grype has
/// `matches` (and a `descriptor`), an attestation has a vulnerability `predicateType` or is the
/// bare predicate with a `scanner`/`scanners`.
pub(crate) fn detect(value: &Value) -> Format {
    let Some(object) = value.as_object() else {
        return Format::Unknown("the top level is not a JSON object".into());
    };
    if object.contains_key("SchemaVersion")
        && (object.contains_key("Results") || object.contains_key("ArtifactName"))
    {
        return match object.get("SchemaVersion").and_then(Value::as_u64) {
            Some(2) => Format::Trivy,
            Some(other) => Format::Unknown(format!(
                "Trivy report schema version {other}; only schema version 2 is read"
            )),
            None => Format::Unknown("Trivy `SchemaVersion` is not a number".into()),
        };
    }
    if object.contains_key("matches") {
        return Format::Grype;
    }
    if attestation::is_attestation(object) {
        return Format::Attestation;
    }
    Format::Unknown(
        "it has none of Trivy's `SchemaVersion`/`Results`, Grype's `matches`, or an in-toto `predicateType`".into(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn format_comes_from_content_not_file_name() {
        let dir = tempfile::tempdir().unwrap();
        let grype_named_trivy = write(
            dir.path(),
            "trivy.json",
            r#"{"matches":[],"descriptor":{"name":"grype","timestamp":"2024-01-02T03:04:05Z"}}"#,
        );
        let report = read_report(&grype_named_trivy).unwrap();
        assert!(
            report.source.starts_with("grype report"),
            "{}",
            report.source
        );
        assert_eq!(
            report.scanned_at.map(|t| t.to_rfc3339()),
            Some("2024-01-02T03:04:05+00:00".to_string())
        );
    }

    #[test]
    fn json_errors_name_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "bad.json",
            "{\n  \"matches\": [\n    {,\n  ]\n}",
        );
        let err = read_report(&path).unwrap_err();
        match &err {
            ScanError::Json { line, column, .. } => {
                assert_eq!(*line, 3);
                assert!(*column > 0);
            }
            other => panic!("unexpected error {other:?}"),
        }
        let text = err.to_string();
        assert!(text.contains("bad.json:3:"), "{text}");
    }

    #[test]
    fn type_errors_also_carry_positions() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "r.json",
            "{\"SchemaVersion\": 2,\n \"Results\": [{\"Target\": \"x\", \"Vulnerabilities\": [{\"VulnerabilityID\": 7}]}]}",
        );
        let err = read_report(&path).unwrap_err();
        assert!(matches!(err, ScanError::Json { line: 2, .. }), "{err:?}");
    }

    #[test]
    fn unknown_formats_say_what_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "x.json", r#"{"bomFormat":"CycloneDX"}"#);
        let err = read_report(&path).unwrap_err();
        assert!(matches!(err, ScanError::UnknownFormat { .. }));
        assert!(err.to_string().contains("Trivy JSON report"), "{err}");

        let path = write(
            dir.path(),
            "old.json",
            r#"{"SchemaVersion":1,"Results":[]}"#,
        );
        let err = read_report(&path).unwrap_err();
        assert!(err.to_string().contains("schema version 1"), "{err}");

        let path = write(dir.path(), "list.json", "[]");
        assert!(matches!(
            read_report(&path),
            Err(ScanError::UnknownFormat { .. })
        ));
    }

    #[test]
    fn oversized_reports_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "big.json", &" ".repeat(2 * 1024 * 1024 + 1));
        let err = read_capped(&path, 2 * 1024 * 1024).unwrap_err();
        assert!(matches!(err, ScanError::TooLarge { .. }));
        assert!(
            err.to_string()
                .contains("larger than 2097152 bytes (2 MiB)"),
            "{err}"
        );
        assert!(read_capped(&path, 3 * 1024 * 1024).is_ok());
    }

    #[test]
    fn missing_files_are_io_errors_naming_the_path() {
        let err = read_report(Path::new("/nonexistent/report.json")).unwrap_err();
        assert!(matches!(err, ScanError::Io { .. }));
        assert!(err.to_string().contains("/nonexistent/report.json"));
    }
}
