//! What the readers share: severity and CVSS mapping, date parsing, and a builder that merges
//! components and drops duplicate vulnerabilities.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

use crate::facts::{Component, ScanReport, VulnSeverity, Vulnerability};

/// A CVSS base score with the version it was computed with.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Score {
    pub value: f64,
    pub v3: bool,
}

/// Maps a scanner's severity word to StackRox's; `None` when the word says "unknown" (or is
/// not a severity at all), so the caller derives it from CVSS.
pub(crate) fn severity_from_word(word: &str) -> Option<VulnSeverity> {
    match word.trim().to_ascii_lowercase().as_str() {
        "negligible" | "low" => Some(VulnSeverity::Low),
        "medium" | "moderate" => Some(VulnSeverity::Moderate),
        "high" | "important" => Some(VulnSeverity::Important),
        "critical" => Some(VulnSeverity::Critical),
        _ => None,
    }
}

/// StackRox's fallback when the vendor gives no severity (`pkg/cvss/severity.go`): the CVSS v3
/// rating (NONE and LOW → Low, MEDIUM → Moderate, HIGH → Important, CRITICAL → Critical), else
/// the v2 rating (LOW → Low, MEDIUM → Moderate, HIGH → Important), else Unknown.
pub(crate) fn severity_from_score(score: Option<Score>) -> VulnSeverity {
    let Some(score) = score else {
        return VulnSeverity::Unknown;
    };
    let value = score.value;
    if score.v3 {
        if value >= 9.0 {
            VulnSeverity::Critical
        } else if value >= 7.0 {
            VulnSeverity::Important
        } else if value >= 4.0 {
            VulnSeverity::Moderate
        } else {
            VulnSeverity::Low
        }
    } else if value >= 7.0 {
        VulnSeverity::Important
    } else if value >= 4.0 {
        VulnSeverity::Moderate
    } else {
        VulnSeverity::Low
    }
}

/// The severity a scanner states, or the one derived from `score` when it states none.
pub(crate) fn severity(word: Option<&str>, score: Option<Score>) -> VulnSeverity {
    word.and_then(severity_from_word)
        .unwrap_or_else(|| severity_from_score(score))
}

/// Parses the timestamps scanners write (RFC 3339, with or without a zone, or a bare date).
/// Anything else is treated as absent: one odd date must not make a whole report unusable.
pub(crate) fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

/// Collects components in first-seen order, merging repeats of the same name and version, and
/// keeping one record per vulnerability id within a component.
#[derive(Default)]
pub(crate) struct ReportBuilder {
    components: Vec<Component>,
    by_name_version: HashMap<(String, String), usize>,
    vulns_by_id: HashMap<(usize, String), usize>,
}

impl ReportBuilder {
    /// The index of the component `name` `version`, adding it when new.
    pub fn component(&mut self, name: &str, version: &str) -> usize {
        let key = (name.to_string(), version.to_string());
        if let Some(&index) = self.by_name_version.get(&key) {
            return index;
        }
        self.components.push(Component {
            name: name.to_string(),
            version: version.to_string(),
            vulnerabilities: Vec::new(),
        });
        let index = self.components.len() - 1;
        self.by_name_version.insert(key, index);
        index
    }

    /// Adds `vuln` to the component `name` `version`; a second record for the same id fills
    /// the gaps of the first and keeps the higher severity.
    pub fn vulnerability(&mut self, name: &str, version: &str, vuln: Vulnerability) {
        let component = self.component(name, version);
        let key = (component, vuln.id.clone());
        let vulns = &mut self.components[component].vulnerabilities;
        match self.vulns_by_id.get(&key) {
            Some(&existing) => merge(&mut vulns[existing], vuln),
            None => {
                vulns.push(vuln);
                self.vulns_by_id.insert(key, vulns.len() - 1);
            }
        }
    }

    pub fn finish(
        self,
        source: String,
        scanned_at: Option<DateTime<Utc>>,
        operating_system: Option<String>,
    ) -> ScanReport {
        ScanReport {
            source,
            scanned_at,
            operating_system,
            components: self.components,
        }
    }
}

fn merge(into: &mut Vulnerability, other: Vulnerability) {
    into.severity = into.severity.max(other.severity);
    into.cvss = into.cvss.or(other.cvss);
    into.nvd_cvss = into.nvd_cvss.or(other.nvd_cvss);
    if into.fixed_by.is_none() {
        into.fixed_by = other.fixed_by;
    }
    into.published = into.published.or(other.published);
    into.fix_available = into.fix_available.or(other.fix_available);
    if into.link.is_none() {
        into.link = other.link;
    }
}

/// An empty string is no value.
pub(crate) fn non_empty(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vuln(id: &str, severity: VulnSeverity, fixed_by: Option<&str>) -> Vulnerability {
        Vulnerability {
            id: id.into(),
            severity,
            cvss: None,
            nvd_cvss: None,
            fixed_by: fixed_by.map(str::to_string),
            published: None,
            fix_available: None,
            link: None,
        }
    }

    #[test]
    fn severity_words_map_to_stackrox_levels() {
        assert_eq!(severity_from_word("LOW"), Some(VulnSeverity::Low));
        assert_eq!(severity_from_word("Negligible"), Some(VulnSeverity::Low));
        assert_eq!(severity_from_word("MEDIUM"), Some(VulnSeverity::Moderate));
        assert_eq!(severity_from_word("High"), Some(VulnSeverity::Important));
        assert_eq!(severity_from_word("critical"), Some(VulnSeverity::Critical));
        assert_eq!(severity_from_word("UNKNOWN"), None);
        assert_eq!(severity_from_word(""), None);
    }

    #[test]
    fn unknown_severity_is_derived_from_cvss() {
        let v3 = |value| Some(Score { value, v3: true });
        let v2 = |value| Some(Score { value, v3: false });
        assert_eq!(severity(Some("UNKNOWN"), v3(9.8)), VulnSeverity::Critical);
        assert_eq!(severity(Some("UNKNOWN"), v3(7.0)), VulnSeverity::Important);
        assert_eq!(severity(Some("UNKNOWN"), v3(6.9)), VulnSeverity::Moderate);
        assert_eq!(severity(Some("UNKNOWN"), v3(0.0)), VulnSeverity::Low);
        // CVSS v2 has no "critical" band.
        assert_eq!(severity(None, v2(10.0)), VulnSeverity::Important);
        assert_eq!(severity(None, v2(3.9)), VulnSeverity::Low);
        assert_eq!(severity(None, None), VulnSeverity::Unknown);
        // A stated severity wins over the score.
        assert_eq!(severity(Some("LOW"), v3(9.8)), VulnSeverity::Low);
    }

    #[test]
    fn times_in_scanner_formats() {
        let expect = |text: &str, rfc: &str| {
            assert_eq!(
                parse_time(text).map(|t| t.to_rfc3339()),
                Some(rfc.to_string()),
                "{text}"
            )
        };
        expect("2019-11-28T01:15:00Z", "2019-11-28T01:15:00+00:00");
        expect(
            "2023-05-17T21:00:56.783213-04:00",
            "2023-05-18T01:00:56.783213+00:00",
        );
        expect("2020-01-02T03:04:05", "2020-01-02T03:04:05+00:00");
        expect("2020-01-02", "2020-01-02T00:00:00+00:00");
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time(""), None);
    }

    #[test]
    fn builder_merges_components_and_duplicate_vulnerabilities() {
        let mut b = ReportBuilder::default();
        b.component("zlib", "1.2");
        b.vulnerability("curl", "7.64", vuln("CVE-1", VulnSeverity::Low, None));
        b.vulnerability("curl", "7.64", vuln("CVE-2", VulnSeverity::Low, None));
        b.vulnerability(
            "curl",
            "7.64",
            vuln("CVE-1", VulnSeverity::Important, Some("7.65")),
        );
        b.vulnerability("curl", "7.70", vuln("CVE-1", VulnSeverity::Low, None));
        let report = b.finish("test".into(), None, None);
        let names: Vec<_> = report
            .components
            .iter()
            .map(|c| format!("{}={}", c.name, c.version))
            .collect();
        assert_eq!(names, ["zlib=1.2", "curl=7.64", "curl=7.70"]);
        let curl = &report.components[1];
        assert_eq!(curl.vulnerabilities.len(), 2);
        assert_eq!(curl.vulnerabilities[0].severity, VulnSeverity::Important);
        assert_eq!(curl.vulnerabilities[0].fixed_by.as_deref(), Some("7.65"));
    }
}
