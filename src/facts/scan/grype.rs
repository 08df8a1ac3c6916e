//! Grype JSON reports (`grype -o json`; Grype's `grype/presenter/models`).
//!
//! Grype names Java, Ruby and other language vulnerabilities by their GitHub advisory
//! (`GHSA-…`) and lists the CVE among `relatedVulnerabilities`. StackRox names vulnerabilities by
//! CVE, and its policies do (Log4Shell is `CVE-2021-44228`), so an advisory with a related CVE is
//! recorded under that CVE; the same CVE found directly for the same package is then merged
//! into it.

use serde::Deserialize;

use super::model::{ReportBuilder, Score, non_empty, parse_time, severity};
use crate::facts::{ScanReport, Vulnerability};

#[derive(Deserialize)]
struct Report {
    #[serde(default)]
    matches: Option<Vec<Match>>,
    #[serde(default)]
    descriptor: Option<Descriptor>,
    #[serde(default)]
    distro: Option<Distro>,
    #[serde(default)]
    source: Option<Source>,
}

#[derive(Deserialize)]
struct Descriptor {
    #[serde(default)]
    timestamp: Option<String>,
}

#[derive(Deserialize)]
struct Distro {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    version: Option<String>,
}

#[derive(Deserialize)]
struct Source {
    #[serde(default)]
    target: Option<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Match {
    vulnerability: Vuln,
    #[serde(default)]
    related_vulnerabilities: Option<Vec<Related>>,
    artifact: Artifact,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Vuln {
    id: String,
    #[serde(default)]
    data_source: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    cvss: Option<Vec<Cvss>>,
    #[serde(default)]
    fix: Option<Fix>,
}

#[derive(Deserialize)]
struct Related {
    id: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    cvss: Option<Vec<Cvss>>,
}

#[derive(Deserialize)]
struct Cvss {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    metrics: Option<Metrics>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Metrics {
    #[serde(default)]
    base_score: Option<f64>,
}

#[derive(Deserialize)]
struct Fix {
    #[serde(default)]
    versions: Option<Vec<String>>,
    #[serde(default)]
    state: Option<String>,
    /// Newer Grype versions say when each fix became available.
    #[serde(default)]
    available: Option<Vec<Available>>,
}

#[derive(Deserialize)]
struct Available {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    date: Option<String>,
}

#[derive(Deserialize)]
struct Artifact {
    #[serde(default)]
    name: String,
    #[serde(default)]
    version: String,
}

/// The best score of a CVSS list: v3 (or later) before v2, the highest within a version.
fn best_score(list: Option<&Vec<Cvss>>) -> Option<Score> {
    let mut best: Option<Score> = None;
    for cvss in list.into_iter().flatten() {
        let Some(value) = cvss.metrics.as_ref().and_then(|m| m.base_score) else {
            continue;
        };
        let v3 = !cvss.version.as_deref().unwrap_or("").starts_with('2');
        let candidate = Score { value, v3 };
        best = match best {
            None => Some(candidate),
            Some(b) if candidate.v3 && !b.v3 => Some(candidate),
            Some(b) if candidate.v3 == b.v3 && candidate.value > b.value => Some(candidate),
            keep => keep,
        };
    }
    best
}

fn is_nvd(namespace: Option<&str>) -> bool {
    namespace.is_some_and(|n| n.starts_with("nvd"))
}

/// Parses a Grype report from `text`; `origin` names it in [`ScanReport::source`].
pub(super) fn parse(text: &str, origin: &str) -> Result<ScanReport, serde_json::Error> {
    let report: Report = serde_json::from_str(text)?;
    Ok(convert(report, origin, None))
}

/// Converts a Grype report already parsed as JSON (inside an attestation).
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
    for m in report.matches.unwrap_or_default() {
        let (name, version) = (m.artifact.name.clone(), m.artifact.version.clone());
        builder.vulnerability(&name, &version, vulnerability(m));
    }
    let operating_system = report.distro.and_then(|d| {
        let name = non_empty(d.name.as_deref())?;
        Some(match non_empty(d.version.as_deref()) {
            Some(version) => format!("{name}:{version}"),
            None => name,
        })
    });
    let scanned_at = scanned_at.or_else(|| {
        report
            .descriptor
            .and_then(|d| d.timestamp)
            .as_deref()
            .and_then(parse_time)
    });
    let target = report
        .source
        .and_then(|s| s.target)
        .and_then(|t| match t {
            serde_json::Value::String(s) => Some(s),
            serde_json::Value::Object(o) => o
                .get("userInput")
                .and_then(|v| v.as_str())
                .map(str::to_string),
            _ => None,
        })
        .filter(|t| !t.is_empty());
    let source = match target {
        Some(target) => format!("grype report {origin} ({target})"),
        None => format!("grype report {origin}"),
    };
    builder.finish(source, scanned_at, operating_system)
}

fn vulnerability(m: Match) -> Vulnerability {
    let vuln = m.vulnerability;
    let related = m.related_vulnerabilities.unwrap_or_default();
    let own_score = best_score(vuln.cvss.as_ref());
    let nvd_score = if is_nvd(vuln.namespace.as_deref()) {
        own_score
    } else {
        related
            .iter()
            .filter(|r| is_nvd(r.namespace.as_deref()))
            .find_map(|r| best_score(r.cvss.as_ref()))
    };
    let preferred = own_score.or(nvd_score);

    let fix = vuln.fix.unwrap_or(Fix {
        versions: None,
        state: None,
        available: None,
    });
    let fixed = fix.state.as_deref().map(str::to_ascii_lowercase).as_deref() == Some("fixed");
    // Grype sorts fix versions, lowest first: the first is the one to upgrade to.
    let fixed_by = if fixed {
        fix.versions
            .as_ref()
            .and_then(|v| v.iter().find_map(|s| non_empty(Some(s))))
    } else {
        None
    };
    let fix_available = fixed_by.as_ref().and_then(|version| {
        let dates = fix.available.as_deref().unwrap_or_default();
        dates
            .iter()
            .find(|a| a.version.as_deref() == Some(version.as_str()))
            .or_else(|| dates.first())
            .and_then(|a| a.date.as_deref())
            .and_then(parse_time)
    });

    // Prefer the CVE name StackRox would use (see the module comment).
    let id = if vuln.id.starts_with("CVE-") {
        vuln.id.clone()
    } else {
        let mut cves: Vec<&str> = related
            .iter()
            .map(|r| r.id.as_str())
            .filter(|id| id.starts_with("CVE-"))
            .collect();
        cves.sort_unstable();
        cves.first()
            .map_or_else(|| vuln.id.clone(), |cve| cve.to_string())
    };

    Vulnerability {
        id,
        severity: severity(vuln.severity.as_deref(), preferred),
        cvss: preferred.map(|s| s.value as f32),
        nvd_cvss: nvd_score.map(|s| s.value as f32),
        fixed_by,
        published: None,
        fix_available,
        link: non_empty(vuln.data_source.as_deref()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::VulnSeverity;

    const REPORT: &str = r#"{
      "matches": [
        {
          "vulnerability": {
            "id": "GHSA-jfh8-c2jp-5v3q", "namespace": "github:language:java",
            "dataSource": "https://github.com/advisories/GHSA-jfh8-c2jp-5v3q",
            "severity": "Critical", "cvss": [],
            "fix": {"versions": ["2.15.0", "2.12.2"], "state": "fixed",
                    "available": [{"version": "2.15.0", "date": "2021-12-10", "kind": "first-observed"}]}
          },
          "relatedVulnerabilities": [
            {"id": "CVE-2021-44228", "namespace": "nvd:cpe", "severity": "Critical",
             "cvss": [{"version": "2.0", "metrics": {"baseScore": 9.3}},
                      {"version": "3.1", "metrics": {"baseScore": 10.0}}]}
          ],
          "artifact": {"name": "log4j-core", "version": "2.14.1", "type": "java-archive"}
        },
        {
          "vulnerability": {
            "id": "CVE-2021-44228", "namespace": "nvd:cpe", "severity": "Critical",
            "cvss": [{"version": "3.1", "metrics": {"baseScore": 10.0}}],
            "fix": {"versions": [], "state": "unknown"}
          },
          "artifact": {"name": "log4j-core", "version": "2.14.1", "type": "java-archive"}
        },
        {
          "vulnerability": {
            "id": "CVE-2020-12413", "namespace": "redhat:distro:redhat:9", "severity": "Negligible",
            "cvss": [{"version": "3.1", "metrics": {"baseScore": 5.9}}],
            "fix": {"versions": ["9.9"], "state": "wont-fix"}
          },
          "relatedVulnerabilities": [
            {"id": "CVE-2020-12413", "namespace": "nvd:cpe",
             "cvss": [{"version": "3.1", "metrics": {"baseScore": 6.1}}]}
          ],
          "artifact": {"name": "nss", "version": "3.79.0", "type": "rpm"}
        },
        {
          "vulnerability": {"id": "CVE-2099-0001", "severity": "Unknown",
            "cvss": [{"version": "3.0", "metrics": {"baseScore": 7.2}}]},
          "artifact": {"name": "nss", "version": "3.79.0", "type": "rpm"}
        }
      ],
      "source": {"type": "image", "target": {"userInput": "example.com/app:1"}},
      "distro": {"name": "redhat", "version": "9.1"},
      "descriptor": {"name": "grype", "version": "0.74.0", "timestamp": "2024-03-04T05:06:07.5-02:00"}
    }"#;

    #[test]
    fn reads_a_grype_report() {
        let report = parse(REPORT, "g.json").unwrap();
        assert_eq!(report.source, "grype report g.json (example.com/app:1)");
        assert_eq!(report.operating_system.as_deref(), Some("redhat:9.1"));
        assert_eq!(
            report.scanned_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2024-03-04T07:06:07.500+00:00")
        );
        assert_eq!(report.components.len(), 2);

        let log4j = &report.components[0];
        assert_eq!(
            (log4j.name.as_str(), log4j.version.as_str()),
            ("log4j-core", "2.14.1")
        );
        // The advisory and the direct CVE match are one vulnerability, named by its CVE.
        assert_eq!(log4j.vulnerabilities.len(), 1);
        let v = &log4j.vulnerabilities[0];
        assert_eq!(v.id, "CVE-2021-44228");
        assert_eq!(v.severity, VulnSeverity::Critical);
        assert_eq!(v.fixed_by.as_deref(), Some("2.15.0"));
        assert_eq!(v.nvd_cvss, Some(10.0));
        assert_eq!(v.cvss, Some(10.0));
        assert_eq!(
            v.fix_available.map(|t| t.to_rfc3339()).as_deref(),
            Some("2021-12-10T00:00:00+00:00")
        );

        let nss = &report.components[1].vulnerabilities;
        assert_eq!(nss[0].severity, VulnSeverity::Low, "negligible is low");
        assert_eq!(nss[0].fixed_by, None, "wont-fix is not fixable");
        assert_eq!(nss[0].cvss, Some(5.9));
        assert_eq!(nss[0].nvd_cvss, Some(6.1));
        assert_eq!(
            nss[1].severity,
            VulnSeverity::Important,
            "derived from CVSS 7.2"
        );
        assert_eq!(nss[1].fix_available, None);
    }

    #[test]
    fn an_empty_report_is_empty() {
        let report = parse(r#"{"matches": null}"#, "g").unwrap();
        assert!(report.components.is_empty());
        assert_eq!(report.source, "grype report g");
    }
}
