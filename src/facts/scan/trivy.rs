//! Trivy JSON reports, schema version 2 (`trivy image --format json`; Trivy's
//! `pkg/types/report.go`, `vulnerability.go` and trivy-db's types).

use std::collections::BTreeMap;

use serde::Deserialize;

use super::model::{ReportBuilder, Score, non_empty, parse_time, severity};
use crate::facts::{ScanReport, Vulnerability};

#[derive(Deserialize)]
struct Report {
    #[serde(rename = "ArtifactName", default)]
    artifact_name: Option<String>,
    #[serde(rename = "CreatedAt", default)]
    created_at: Option<String>,
    #[serde(rename = "Metadata", default)]
    metadata: Option<Metadata>,
    #[serde(rename = "Results", default)]
    results: Option<Vec<TrivyResult>>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(rename = "OS", default)]
    os: Option<Os>,
}

#[derive(Deserialize)]
struct Os {
    #[serde(rename = "Family", default)]
    family: Option<String>,
    #[serde(rename = "Name", default)]
    name: Option<String>,
}

#[derive(Deserialize)]
struct TrivyResult {
    #[serde(rename = "Packages", default)]
    packages: Option<Vec<Package>>,
    #[serde(rename = "Vulnerabilities", default)]
    vulnerabilities: Option<Vec<Vuln>>,
}

#[derive(Deserialize)]
struct Package {
    #[serde(rename = "Name", default)]
    name: String,
    #[serde(rename = "Version", default)]
    version: String,
    #[serde(rename = "Release", default)]
    release: Option<String>,
    #[serde(rename = "Epoch", default)]
    epoch: Option<u64>,
}

#[derive(Deserialize)]
struct Vuln {
    #[serde(rename = "VulnerabilityID")]
    id: String,
    #[serde(rename = "PkgName", default)]
    pkg_name: String,
    #[serde(rename = "InstalledVersion", default)]
    installed_version: String,
    #[serde(rename = "FixedVersion", default)]
    fixed_version: Option<String>,
    #[serde(rename = "Status", default)]
    status: Option<String>,
    #[serde(rename = "Severity", default)]
    severity: Option<String>,
    #[serde(rename = "SeveritySource", default)]
    severity_source: Option<String>,
    #[serde(rename = "PrimaryURL", default)]
    primary_url: Option<String>,
    #[serde(rename = "CVSS", default)]
    cvss: Option<BTreeMap<String, Cvss>>,
    #[serde(rename = "PublishedDate", default)]
    published_date: Option<String>,
}

#[derive(Deserialize)]
struct Cvss {
    #[serde(rename = "V2Score", default)]
    v2_score: Option<f64>,
    #[serde(rename = "V3Score", default)]
    v3_score: Option<f64>,
}

impl Cvss {
    /// v3 before v2; a zero score means "not given" in Trivy's output.
    fn best(&self) -> Option<Score> {
        let given = |s: Option<f64>| s.filter(|v| *v > 0.0);
        given(self.v3_score)
            .map(|value| Score { value, v3: true })
            .or_else(|| given(self.v2_score).map(|value| Score { value, v3: false }))
    }
}

/// Parses a Trivy report from `text`; `origin` names it in [`ScanReport::source`].
pub(super) fn parse(text: &str, origin: &str) -> Result<ScanReport, serde_json::Error> {
    let report: Report = serde_json::from_str(text)?;
    Ok(convert(report, origin, None))
}

/// Converts a Trivy report already parsed as JSON (inside an attestation).
pub(super) fn from_value(
    value: serde_json::Value,
    origin: &str,
    scanned_at: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<ScanReport, serde_json::Error> {
    let report: Report = serde_json::from_value(value)?;
    Ok(convert(report, origin, scanned_at))
}

fn convert(
    report: Report,
    origin: &str,
    scanned_at: Option<chrono::DateTime<chrono::Utc>>,
) -> ScanReport {
    let mut builder = ReportBuilder::default();
    for result in report.results.unwrap_or_default() {
        for package in result.packages.unwrap_or_default() {
            builder.component(&package.name, &package_version(&package));
        }
        for vuln in result.vulnerabilities.unwrap_or_default() {
            // A VEX statement or the vendor says the package is not affected: StackRox only
            // judges observed vulnerabilities.
            if vuln.status.as_deref() == Some("not_affected") {
                continue;
            }
            let (name, version) = (vuln.pkg_name.clone(), vuln.installed_version.clone());
            builder.vulnerability(&name, &version, vulnerability(vuln));
        }
    }

    let operating_system = report.metadata.and_then(|m| m.os).and_then(|os| {
        let family = non_empty(os.family.as_deref())?;
        Some(match non_empty(os.name.as_deref()) {
            Some(name) => format!("{family}:{name}"),
            None => family,
        })
    });
    let scanned_at = scanned_at.or_else(|| report.created_at.as_deref().and_then(parse_time));
    let source = match non_empty(report.artifact_name.as_deref()) {
        Some(artifact) => format!("trivy report {origin} ({artifact})"),
        None => format!("trivy report {origin}"),
    };
    builder.finish(source, scanned_at, operating_system)
}

/// Trivy's package version as its vulnerabilities print it: `[epoch:]version[-release]`.
fn package_version(package: &Package) -> String {
    let mut version = String::new();
    if let Some(epoch) = package.epoch.filter(|e| *e > 0) {
        version.push_str(&format!("{epoch}:"));
    }
    version.push_str(&package.version);
    if let Some(release) = non_empty(package.release.as_deref()) {
        version.push('-');
        version.push_str(&release);
    }
    version
}

fn vulnerability(vuln: Vuln) -> Vulnerability {
    let scores = vuln.cvss.unwrap_or_default();
    let nvd = scores.get("nvd").and_then(Cvss::best);
    // The source that set the severity first, then NVD, then any other source.
    let vendor = vuln
        .severity_source
        .as_deref()
        .and_then(|source| scores.get(source))
        .and_then(Cvss::best);
    let preferred = vendor
        .or(nvd)
        .or_else(|| scores.values().find_map(Cvss::best));
    Vulnerability {
        severity: severity(vuln.severity.as_deref(), preferred),
        cvss: preferred.map(|s| s.value as f32),
        nvd_cvss: nvd.map(|s| s.value as f32),
        fixed_by: non_empty(vuln.fixed_version.as_deref()),
        published: vuln.published_date.as_deref().and_then(parse_time),
        fix_available: None,
        link: non_empty(vuln.primary_url.as_deref()),
        id: vuln.id,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::VulnSeverity;

    const REPORT: &str = r#"{
      "SchemaVersion": 2,
      "CreatedAt": "2024-02-03T04:05:06Z",
      "ArtifactName": "example.com/app:1.0",
      "Metadata": {"OS": {"Family": "debian", "Name": "12.4"}},
      "Results": [
        {
          "Target": "example.com/app:1.0 (debian 12.4)",
          "Packages": [
            {"Name": "openssl", "Version": "3.0.11", "Release": "1.el9", "Epoch": 1},
            {"Name": "bash", "Version": "5.2.15-2"},
            {"Name": "zlib", "Version": "1.2.13"}
          ],
          "Vulnerabilities": [
            {
              "VulnerabilityID": "CVE-2024-0001", "PkgName": "openssl",
              "InstalledVersion": "1:3.0.11-1.el9", "FixedVersion": "1:3.0.13-1.el9",
              "Status": "fixed", "Severity": "HIGH", "SeveritySource": "redhat",
              "PrimaryURL": "https://avd.aquasec.com/nvd/cve-2024-0001",
              "CVSS": {"nvd": {"V3Score": 9.8, "V2Score": 7.5}, "redhat": {"V3Score": 7.5}},
              "PublishedDate": "2024-01-10T00:00:00Z"
            },
            {
              "VulnerabilityID": "CVE-2024-0002", "PkgName": "bash",
              "InstalledVersion": "5.2.15-2", "Status": "affected",
              "Severity": "UNKNOWN", "CVSS": {"nvd": {"V2Score": 4.3}}
            },
            {
              "VulnerabilityID": "CVE-2024-0002", "PkgName": "bash",
              "InstalledVersion": "5.2.15-2", "Status": "affected", "Severity": "UNKNOWN"
            },
            {
              "VulnerabilityID": "CVE-2024-0003", "PkgName": "zlib",
              "InstalledVersion": "1.2.13", "Status": "not_affected", "Severity": "CRITICAL"
            },
            {
              "VulnerabilityID": "CVE-2024-0004", "PkgName": "libfoo",
              "InstalledVersion": "0.1", "Severity": "MEDIUM", "FixedVersion": ""
            }
          ]
        },
        {"Target": "app/package-lock.json", "Vulnerabilities": null}
      ]
    }"#;

    #[test]
    fn reads_a_trivy_report() {
        let report = parse(REPORT, "r.json").unwrap();
        assert_eq!(report.source, "trivy report r.json (example.com/app:1.0)");
        assert_eq!(report.operating_system.as_deref(), Some("debian:12.4"));
        assert_eq!(
            report.scanned_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2024-02-03T04:05:06+00:00")
        );
        let names: Vec<_> = report
            .components
            .iter()
            .map(|c| format!("{} {} ({})", c.name, c.version, c.vulnerabilities.len()))
            .collect();
        // The vulnerable package version matches the listed package's formatted version, the
        // not-affected CVE is dropped, and the unlisted vulnerable package is added.
        assert_eq!(
            names,
            [
                "openssl 1:3.0.11-1.el9 (1)",
                "bash 5.2.15-2 (1)",
                "zlib 1.2.13 (0)",
                "libfoo 0.1 (1)"
            ]
        );

        let openssl = &report.components[0].vulnerabilities[0];
        assert_eq!(openssl.id, "CVE-2024-0001");
        assert_eq!(openssl.severity, VulnSeverity::Important);
        // The severity source's score is preferred; NVD is kept separately.
        assert_eq!(openssl.cvss, Some(7.5));
        assert_eq!(openssl.nvd_cvss, Some(9.8));
        assert_eq!(openssl.fixed_by.as_deref(), Some("1:3.0.13-1.el9"));
        assert!(openssl.published.is_some());
        assert!(openssl.link.is_some());

        let bash = &report.components[1].vulnerabilities[0];
        // UNKNOWN is derived from the only score there is: CVSS v2 4.3 is MEDIUM.
        assert_eq!(bash.severity, VulnSeverity::Moderate);
        assert_eq!(bash.cvss, Some(4.3));
        assert_eq!(bash.fixed_by, None);

        let libfoo = &report.components[3].vulnerabilities[0];
        assert_eq!(libfoo.severity, VulnSeverity::Moderate);
        assert_eq!(libfoo.fixed_by, None, "an empty FixedVersion is not a fix");
    }

    #[test]
    fn a_report_without_results_has_no_components() {
        let report = parse(r#"{"SchemaVersion":2,"ArtifactName":"x"}"#, "r").unwrap();
        assert!(report.components.is_empty());
        assert_eq!(report.operating_system, None);
        assert_eq!(report.scanned_at, None);
    }
}
