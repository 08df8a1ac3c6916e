//! Cosign vulnerability attestations (`cosign.sigstore.dev/attestation/vuln/v1`): an in-toto
//! statement whose predicate carries the raw scanner report in `scanner.result`.
//!
//! Accepted shapes: the statement; the bare predicate; and, for convenience, the DSSE envelope
//! cosign stores (`{"payloadType":…,"payload":"<base64 statement>"}`). The predicate may use
//! `scanner` (cosign's and Trivy's Go structs) or `scanners[]` (the spec's example). The scan
//! time is `metadata.scanFinishedOn`.

use base64::Engine as _;
use serde_json::{Map, Value};

use super::{Format, detect, grype, model::parse_time, trivy};
use crate::facts::ScanReport;

const PREDICATE_TYPE: &str = "cosign.sigstore.dev/attestation/vuln/v1";

fn is_vuln_predicate_type(value: Option<&Value>) -> bool {
    value
        .and_then(Value::as_str)
        .map(|t| t.trim_start_matches("https://").trim_end_matches('/'))
        == Some(PREDICATE_TYPE)
}

/// Whether `object` looks like a vulnerability attestation in one of the accepted shapes.
pub(super) fn is_attestation(object: &Map<String, Value>) -> bool {
    is_vuln_predicate_type(object.get("predicateType"))
        || object.contains_key("payloadType") && object.contains_key("payload")
        || object.contains_key("scanner") && object.contains_key("metadata")
        || object.contains_key("scanners")
}

/// Unwraps the attestation and reads the scanner report inside it.
pub(super) fn parse(value: &Value, origin: &str) -> Result<ScanReport, String> {
    let statement = match decode_envelope(value)? {
        Some(decoded) => decoded,
        None => value.clone(),
    };
    let predicate = match statement.get("predicateType") {
        Some(_) if !is_vuln_predicate_type(statement.get("predicateType")) => {
            return Err(format!(
                "the attestation's predicateType is {}, not https://{PREDICATE_TYPE}",
                statement.get("predicateType").unwrap_or(&Value::Null)
            ));
        }
        Some(_) => statement
            .get("predicate")
            .ok_or("the attestation has no `predicate`")?,
        None => &statement,
    };

    let scanner = match (predicate.get("scanner"), predicate.get("scanners")) {
        (Some(scanner), _) => scanner,
        (None, Some(Value::Array(list))) => match list.as_slice() {
            [only] => only,
            [] => return Err("the predicate's `scanners` list is empty".into()),
            _ => {
                return Err(
                    "the predicate lists several scanners; pass one report per scanner".into(),
                );
            }
        },
        _ => return Err("the predicate has no `scanner` (or `scanners`)".into()),
    };
    let result = scanner
        .get("result")
        .filter(|r| !r.is_null())
        .ok_or("the predicate's scanner has no `result` (the raw scanner report)")?;
    let finished = predicate
        .get("metadata")
        .and_then(|m| m.get("scanFinishedOn"))
        .and_then(Value::as_str)
        .and_then(parse_time);

    let origin = format!("{origin}, cosign vulnerability attestation");
    let converted = match detect(result) {
        Format::Trivy => trivy::from_value(result.clone(), &origin, finished),
        Format::Grype => grype::from_value(result.clone(), &origin, finished),
        Format::Attestation => {
            return Err("the attestation wraps another attestation".into());
        }
        Format::Unknown(reason) => {
            return Err(format!(
                "the scanner result inside the attestation is not a Trivy or Grype report: {reason}"
            ));
        }
    };
    converted.map_err(|e| format!("the scanner result inside the attestation: {e}"))
}

/// The statement inside a DSSE envelope, when `value` is one.
fn decode_envelope(value: &Value) -> Result<Option<Value>, String> {
    let Some(payload) = value.get("payload").and_then(Value::as_str) else {
        return Ok(None);
    };
    if value.get("payloadType").is_none() {
        return Ok(None);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(payload.trim())
        .map_err(|e| format!("the envelope's payload is not base64 ({e})"))?;
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| format!("the envelope's payload is not a JSON statement ({e})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::scan::parse_report;
    use std::path::Path;

    fn trivy_result() -> Value {
        serde_json::json!({
            "SchemaVersion": 2,
            "CreatedAt": "2024-01-01T00:00:00Z",
            "Results": [{"Target": "t", "Vulnerabilities": [
                {"VulnerabilityID": "CVE-2024-1", "PkgName": "curl", "InstalledVersion": "8.0",
                 "FixedVersion": "8.1", "Severity": "CRITICAL"}
            ]}]
        })
    }

    fn predicate(scanner_key: &str) -> Value {
        let scanner = serde_json::json!({
            "uri": "pkg:github/aquasecurity/trivy@0.50.0",
            "version": "0.50.0",
            "result": trivy_result()
        });
        let scanner = if scanner_key == "scanners" {
            Value::Array(vec![scanner])
        } else {
            scanner
        };
        serde_json::json!({
            "invocation": {"uri": "", "event_id": "", "builder.id": ""},
            scanner_key: scanner,
            "metadata": {"scanStartedOn": "2024-05-01T10:00:00Z", "scanFinishedOn": "2024-05-01T10:01:00Z"}
        })
    }

    fn read(value: &Value) -> Result<ScanReport, String> {
        parse_report(value.to_string().as_bytes(), Path::new("att.json")).map_err(|e| e.to_string())
    }

    fn check(report: &ScanReport) {
        assert_eq!(report.components.len(), 1);
        assert_eq!(report.components[0].vulnerabilities[0].id, "CVE-2024-1");
        // The attestation's finish time wins over the report's own.
        assert_eq!(
            report.scanned_at.map(|t| t.to_rfc3339()).as_deref(),
            Some("2024-05-01T10:01:00+00:00")
        );
        assert!(report.source.contains("cosign vulnerability attestation"));
    }

    #[test]
    fn statement_with_either_predicate_type_spelling() {
        for predicate_type in [
            "https://cosign.sigstore.dev/attestation/vuln/v1",
            "cosign.sigstore.dev/attestation/vuln/v1",
        ] {
            let statement = serde_json::json!({
                "_type": "https://in-toto.io/Statement/v0.1",
                "subject": [{"name": "example.com/app", "digest": {"sha256": "ab"}}],
                "predicateType": predicate_type,
                "predicate": predicate("scanner")
            });
            check(&read(&statement).unwrap());
        }
    }

    #[test]
    fn bare_predicate_and_scanners_list() {
        check(&read(&predicate("scanner")).unwrap());
        check(&read(&predicate("scanners")).unwrap());
    }

    #[test]
    fn dsse_envelope() {
        let statement = serde_json::json!({
            "_type": "https://in-toto.io/Statement/v0.1",
            "predicateType": "https://cosign.sigstore.dev/attestation/vuln/v1",
            "predicate": predicate("scanner")
        });
        let envelope = serde_json::json!({
            "payloadType": "application/vnd.in-toto+json",
            "payload": base64::engine::general_purpose::STANDARD.encode(statement.to_string()),
            "signatures": []
        });
        check(&read(&envelope).unwrap());
    }

    #[test]
    fn other_predicates_and_missing_results_are_refused() {
        let slsa = serde_json::json!({
            "predicateType": "https://slsa.dev/provenance/v1",
            "predicate": {}
        });
        // Not a vulnerability attestation at all: unknown format.
        let err = read(&slsa).unwrap_err();
        assert!(err.contains("not a format imagegate reads"), "{err}");

        let mut no_result = predicate("scanner");
        no_result["scanner"]["result"] = Value::Null;
        let err = read(&no_result).unwrap_err();
        assert!(err.contains("no `result`"), "{err}");

        let mut not_a_report = predicate("scanner");
        not_a_report["scanner"]["result"] = serde_json::json!({"hello": 1});
        let err = read(&not_a_report).unwrap_err();
        assert!(err.contains("not a Trivy or Grype report"), "{err}");
    }
}
