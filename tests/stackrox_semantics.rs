//! StackRox policy semantics, case by case. Every expected verdict and message below is worked
//! out from the semantics in the shared reference (`stackrox-policies.md` §1–2) for the sample
//! image described in `base_facts`, not taken from running the engine.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use imagegate::digest::Digest;
use imagegate::facts::{
    Component, FoundBundle, FoundSignature, ImageConfig, ImageFacts, KeyCheck, KeyId,
    PlatformFacts, ScanReport, SignatureFacts, TlogFacts, VulnSeverity, Vulnerability,
};
use imagegate::oci::Platform;
use imagegate::policy::stackrox::{self, EvalOptions, PolicySet, SignatureIntegrations};
use imagegate::policy::{Finding, Outcome};
use imagegate::reference::ImageRef;
use serde_json::{Value, json};

const ID_A: &str = "io.stackrox.signatureintegration.11111111-1111-1111-1111-111111111111";
const ID_B: &str = "io.stackrox.signatureintegration.22222222-2222-2222-2222-222222222222";
const ID_UNKNOWN: &str = "io.stackrox.signatureintegration.33333333-3333-3333-3333-333333333333";
const KEY_A1: &str = "awskms:///alias/release-a";
const KEY_A2: &str = "hashivault://transit/release-a";
const KEY_B: &str = "awskms:///alias/release-b";
/// Integration C checks the transparency log offline, D online; both with this log's key.
const ID_C: &str = "io.stackrox.signatureintegration.44444444-4444-4444-4444-444444444444";
const ID_D: &str = "io.stackrox.signatureintegration.55555555-5555-5555-5555-555555555555";
const KEY_C: &str = "awskms:///alias/release-c";
const KEY_D: &str = "awskms:///alias/release-d";
const REKOR_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEiAaCdH+m4+pQHC6ucerqNUBRGmcR
ZH60VE7xa986Oo4I9OEOyuD5rtj/JzErT3jB4YUFeK4r4dks9Ys9ghZ9Zw==
-----END PUBLIC KEY-----
";

fn time(y: i32, m: u32, d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).single().unwrap()
}

/// "Now" for every case.
fn now() -> DateTime<Utc> {
    time(2024, 6, 1)
}

fn vuln(
    id: &str,
    severity: VulnSeverity,
    cvss: Option<f32>,
    nvd: Option<f32>,
    fixed_by: Option<&str>,
) -> Vulnerability {
    Vulnerability {
        id: id.into(),
        severity,
        cvss,
        nvd_cvss: nvd,
        fixed_by: fixed_by.map(str::to_string),
        published: None,
        fix_available: None,
        link: None,
    }
}

fn component(name: &str, version: &str, vulnerabilities: Vec<Vulnerability>) -> Component {
    Component {
        name: name.into(),
        version: version.into(),
        vulnerabilities,
    }
}

/// The sample image:
/// - `registry.example.com/team/app:1.0`, user `app`, built 2024-05-22 (10 days before now),
///   labels team=payments and tier=backend;
/// - history (normalised): ADD `file:abc in /`, RUN `apt-get update`, RUN `apt-get install -y
///   curl`, EXPOSE `8080/tcp`, CMD `["app"]`;
/// - scanned 2024-05-30, OS `debian:10`, components:
///   - openssl 1.1.1k: CVE-2021-3711 (Critical, CVSS 9.8, NVD 9.8, fixed by 1.1.1l, published
///     and fixed 2021-08-24) and CVE-2021-3712 (Important, CVSS 7.4, NVD 7.4, fixed by 1.1.1l,
///     published 2021-08-24, no fix date);
///   - curl 7.64.0: CVE-2021-22945 (Moderate, CVSS 5.9, no NVD score, no fix, published
///     2021-09-23);
///   - zlib 1.2.11: no vulnerabilities;
/// - signature checks: every key of integrations A and B checked, none verified.
fn base_facts() -> ImageFacts {
    let mut v3711 = vuln(
        "CVE-2021-3711",
        VulnSeverity::Critical,
        Some(9.8),
        Some(9.8),
        Some("1.1.1l"),
    );
    v3711.published = Some(time(2021, 8, 24));
    v3711.fix_available = Some(time(2021, 8, 24));
    let mut v3712 = vuln(
        "CVE-2021-3712",
        VulnSeverity::Important,
        Some(7.4),
        Some(7.4),
        Some("1.1.1l"),
    );
    v3712.published = Some(time(2021, 8, 24));
    let mut v22945 = vuln(
        "CVE-2021-22945",
        VulnSeverity::Moderate,
        Some(5.9),
        None,
        None,
    );
    v22945.published = Some(time(2021, 9, 23));

    let config = ImageConfig {
        created: Some(time(2024, 5, 22)),
        user: "app".into(),
        labels: BTreeMap::from([
            ("team".to_string(), "payments".to_string()),
            ("tier".to_string(), "backend".to_string()),
        ]),
        history: vec![
            "/bin/sh -c #(nop) ADD file:abc in / ".into(),
            "RUN /bin/sh -c apt-get update # buildkit".into(),
            "RUN /bin/sh -c apt-get install -y curl # buildkit".into(),
            "EXPOSE map[8080/tcp:{}]".into(),
            "CMD [\"app\"]".into(),
        ],
        ..ImageConfig::default()
    };
    let digest = Digest::sha256_of(b"sample image");
    let unverified = || KeyCheck::Checked {
        verified: Vec::new(),
        failures: vec!["no signature verifies with this key".into()],
    };
    ImageFacts {
        signatures_elsewhere: Default::default(),
        name: ImageRef::parse("registry.example.com/team/app:1.0").unwrap(),
        digest: digest.clone(),
        platforms: vec![PlatformFacts {
            platform: None,
            digest,
            config,
        }],
        signatures: SignatureFacts {
            checks: BTreeMap::from([
                (KeyId::Uri(KEY_A1.into()), unverified()),
                (KeyId::Uri(KEY_A2.into()), unverified()),
                (KeyId::Uri(KEY_B.into()), unverified()),
                (KeyId::Uri(KEY_C.into()), unverified()),
                (KeyId::Uri(KEY_D.into()), unverified()),
            ]),
            ..SignatureFacts::default()
        },
        scan: Some(ScanReport {
            source: "test report".into(),
            scanned_at: Some(time(2024, 5, 30)),
            operating_system: Some("debian:10".into()),
            components: vec![
                component("openssl", "1.1.1k", vec![v3711, v3712]),
                component("curl", "7.64.0", vec![v22945]),
                component("zlib", "1.2.11", Vec::new()),
            ],
        }),
    }
}

fn integrations() -> SignatureIntegrations {
    let text = json!({"integrations": [
        {"id": ID_A, "name": "Release A", "keyUris": [KEY_A1, KEY_A2]},
        {"id": ID_B, "name": "Release B", "keyUris": [KEY_B]},
        {"id": ID_C, "name": "Release C", "keyUris": [KEY_C],
         "transparencyLog": {"enabled": true, "validateOffline": true, "publicKeyPemEnc": REKOR_PEM}},
        {"id": ID_D, "name": "Release D", "keyUris": [KEY_D],
         "transparencyLog": {"enabled": true, "url": "https://rekor.example.com", "publicKeyPemEnc": REKOR_PEM}},
    ]})
    .to_string();
    SignatureIntegrations::parse(&text, "integrations.json".as_ref()).unwrap()
}

// Policy builders.

fn g(field: &str, values: &[&str]) -> Value {
    let values: Vec<Value> = values.iter().map(|v| json!({ "value": v })).collect();
    json!({"fieldName": field, "booleanOperator": "OR", "negate": false, "values": values})
}

fn and(mut group: Value) -> Value {
    group["booleanOperator"] = json!("AND");
    group
}

fn not(mut group: Value) -> Value {
    group["negate"] = json!(true);
    group
}

fn policy(sections: Vec<Vec<Value>>) -> Value {
    let sections: Vec<Value> = sections
        .into_iter()
        .map(|groups| json!({ "policyGroups": groups }))
        .collect();
    json!({
        "name": "Case policy",
        "policyVersion": "1.1",
        "severity": "HIGH_SEVERITY",
        "categories": ["Test"],
        "lifecycleStages": ["BUILD"],
        "enforcementActions": ["FAIL_BUILD_ENFORCEMENT"],
        "policySections": sections,
    })
}

fn one(groups: Vec<Value>) -> Value {
    policy(vec![groups])
}

fn with(mut policy: Value, key: &str, value: Value) -> Value {
    policy[key] = value;
    policy
}

fn exclusion(prefix: &str, expiration: Option<&str>) -> Value {
    json!([{"name": "team images", "image": {"name": prefix}, "expiration": expiration}])
}

// Message builders for the sample image.

const MSG_3711: &str =
    "CVE-2021-3711 (CVSS 9.8) (severity Critical) found in component 'openssl' (version 1.1.1k)";
const MSG_3711_FIX: &str = "Fixable CVE-2021-3711 (CVSS 9.8) (severity Critical) found in component 'openssl' (version 1.1.1k), resolved by version 1.1.1l";
const MSG_3711_NVD: &str = "CVE-2021-3711 (CVSS 9.8, NVD CVSS 9.8) (severity Critical) found in component 'openssl' (version 1.1.1k)";
const MSG_3712: &str =
    "CVE-2021-3712 (CVSS 7.4) (severity Important) found in component 'openssl' (version 1.1.1k)";
const MSG_3712_FIX: &str = "Fixable CVE-2021-3712 (CVSS 7.4) (severity Important) found in component 'openssl' (version 1.1.1k), resolved by version 1.1.1l";
const MSG_22945: &str =
    "CVE-2021-22945 (CVSS 5.9) (severity Moderate) found in component 'curl' (version 7.64.0)";
const MSG_NOT_VERIFIED: &str =
    "Image signature is not verified by the specified signature integration(s).";
const UPDATE_VALUES: [&str; 4] = [
    "RUN=(/bin/sh -c)?\\s*apk update\\s*",
    "RUN=(/bin/sh -c)?\\s*apt update\\s*",
    "RUN=(/bin/sh -c)?\\s*apt-get update\\s*",
    "RUN=(/bin/sh -c)?\\s*yum update\\s*",
];

#[derive(Debug)]
enum Expect {
    /// Violated with exactly these messages, in this order.
    Violated(Vec<&'static str>),
    Pass,
    /// Not evaluated; the reason contains this text.
    NotEvaluated(&'static str),
    /// Skipped; the reason contains this text.
    Skipped(&'static str),
}

struct Case {
    name: &'static str,
    policy: Value,
    setup: fn(&mut ImageFacts),
    integrations: bool,
    expect: Expect,
}

fn case(name: &'static str, policy: Value, expect: Expect) -> Case {
    Case {
        name,
        policy,
        setup: |_| {},
        integrations: true,
        expect,
    }
}

fn case_with(
    name: &'static str,
    policy: Value,
    setup: fn(&mut ImageFacts),
    expect: Expect,
) -> Case {
    Case {
        name,
        policy,
        setup,
        integrations: true,
        expect,
    }
}

// Setups.

fn config(facts: &mut ImageFacts) -> &mut ImageConfig {
    &mut facts.platforms[0].config
}

fn scan(facts: &mut ImageFacts) -> &mut ScanReport {
    facts.scan.as_mut().unwrap()
}

fn all_vulns(facts: &mut ImageFacts) -> impl Iterator<Item = &mut Vulnerability> {
    scan(facts)
        .components
        .iter_mut()
        .flat_map(|c| c.vulnerabilities.iter_mut())
}

fn no_scan(facts: &mut ImageFacts) {
    facts.scan = None;
}

/// A `.sig` signature for the image's repository, verified by `key`.
fn verify(facts: &mut ImageFacts, key: &str) {
    facts.signatures.found = vec![FoundSignature {
        docker_reference: "registry.example.com/team/app".into(),
        manifest_digest: facts.digest.to_string(),
        annotations: BTreeMap::new(),
        tlog: None,
        has_certificate: false,
    }];
    facts.signatures.checks.insert(
        KeyId::Uri(key.into()),
        KeyCheck::Checked {
            verified: vec![0],
            failures: Vec::new(),
        },
    );
}

/// The verified signature carries a Rekor bundle recording `key`, whose SET the test log's key
/// verifies (`Ok`) or not.
fn logged(facts: &mut ImageFacts, key: &str, set: Result<(), String>) {
    verify(facts, key);
    facts.signatures.found[0].tlog = Some(TlogFacts {
        log_id: "test-log".into(),
        log_index: 7,
        integrated_time: 1_700_000_000,
        problem: None,
        unchecked: None,
        entry_key: None,
        entry_key_of: vec![KeyId::Uri(key.into())],
        set_checks: BTreeMap::from([(KeyId::for_public_key_pem(REKOR_PEM).unwrap(), set)]),
    });
}

/// A Sigstore bundle (cosign 3) verified by `key`, with `tlog_entries` log entries.
fn bundle(facts: &mut ImageFacts, key: &str, tlog_entries: usize) {
    facts.signatures.bundles = vec![FoundBundle {
        manifest: "sha256:1111".into(),
        predicate_type: Some("https://sigstore.dev/cosign/sign/v1".into()),
        tlog_entries,
    }];
    facts.signatures.bundle_checks.insert(
        KeyId::Uri(key.into()),
        KeyCheck::Checked {
            verified: vec![0],
            failures: Vec::new(),
        },
    );
}

fn cases() -> Vec<Case> {
    use Expect::*;
    vec![
        // Image Registry
        case(
            "registry matches",
            one(vec![g("Image Registry", &["registry.example.com"])]),
            Violated(vec!["Image has registry 'registry.example.com'"]),
        ),
        case(
            "registry differs",
            one(vec![g("Image Registry", &["docker.io"])]),
            Pass,
        ),
        case(
            "registry regex is case-insensitive",
            one(vec![g("Image Registry", &["REGISTRY\\.EXAMPLE\\..*"])]),
            Violated(vec!["Image has registry 'registry.example.com'"]),
        ),
        case(
            "registry negated",
            one(vec![not(g("Image Registry", &["docker.io"]))]),
            Violated(vec!["Image has registry 'registry.example.com'"]),
        ),
        case(
            "negated OR fails when any value matches",
            one(vec![not(g(
                "Image Registry",
                &["docker.io", "registry.example.com"],
            ))]),
            Pass,
        ),
        // Image Remote
        case(
            "remote is matched as a whole string",
            one(vec![g("Image Remote", &["team"])]),
            Pass,
        ),
        case(
            "remote regex",
            one(vec![g("Image Remote", &["team/.*"])]),
            Violated(vec!["Image has remote 'team/app'"]),
        ),
        // Image Tag
        case_with(
            "no tag means latest",
            one(vec![g("Image Tag", &["latest"])]),
            |f| f.name = ImageRef::parse("nginx").unwrap(),
            Violated(vec!["Image has tag 'latest'"]),
        ),
        case(
            "tag 1.0 is not latest",
            one(vec![g("Image Tag", &["latest"])]),
            Pass,
        ),
        case(
            "AND needs every value",
            one(vec![and(g("Image Tag", &["1\\..*", ".*\\.0"]))]),
            Violated(vec!["Image has tag '1.0'"]),
        ),
        case(
            "AND with one value failing",
            one(vec![and(g("Image Tag", &["1\\..*", "2\\..*"]))]),
            Pass,
        ),
        case(
            "negated AND holds when one value fails",
            one(vec![not(and(g("Image Tag", &["1\\..*", "2\\..*"])))]),
            Violated(vec!["Image has tag '1.0'"]),
        ),
        case_with(
            "a digest-only reference has an empty tag",
            one(vec![not(g("Image Tag", &["latest"]))]),
            |f| {
                let reference =
                    format!("registry.example.com/team/app@{}", Digest::sha256_of(b"x"));
                f.name = ImageRef::parse(&reference).unwrap();
            },
            Violated(vec!["Image has an empty tag"]),
        ),
        case(
            "registry, remote and tag make one message",
            one(vec![
                g("Image Registry", &["registry.example.com"]),
                g("Image Remote", &["team/app"]),
                g("Image Tag", &["1.0"]),
            ]),
            Violated(vec![
                "Image has registry 'registry.example.com', remote 'team/app', and tag '1.0'",
            ]),
        ),
        // Image User
        case_with(
            "an empty user is root",
            one(vec![g("Image User", &["0", "root"])]),
            |f| config(f).user = String::new(),
            Violated(vec!["Image has user 'root'"]),
        ),
        case(
            "user app is not root",
            one(vec![g("Image User", &["0", "root"])]),
            Pass,
        ),
        case_with(
            "user 0",
            one(vec![g("Image User", &["0", "root"])]),
            |f| config(f).user = "0".into(),
            Violated(vec!["Image has user '0'"]),
        ),
        case(
            "user negated",
            one(vec![not(g("Image User", &["root"]))]),
            Violated(vec!["Image has user 'app'"]),
        ),
        // Image Age
        case_with(
            "old image",
            one(vec![g("Image Age", &["90"])]),
            |f| config(f).created = Some(time(2023, 1, 1)),
            Violated(vec!["Image was created at 2023-01-01 00:00:00 (UTC)"]),
        ),
        case("young image", one(vec![g("Image Age", &["90"])]), Pass),
        case_with(
            "exactly 90 days is not older than 90 days",
            one(vec![g("Image Age", &["90"])]),
            |f| config(f).created = Some(time(2024, 3, 3)),
            Pass,
        ),
        case_with(
            "no creation time",
            one(vec![g("Image Age", &["90"])]),
            |f| config(f).created = None,
            NotEvaluated("no creation time"),
        ),
        // Image Scan Age
        case_with(
            "old scan",
            one(vec![g("Image Scan Age", &["30"])]),
            |f| scan(f).scanned_at = Some(time(2024, 4, 1)),
            Violated(vec!["Image was last scanned at 2024-04-01 00:00:00 (UTC)"]),
        ),
        case_with(
            "scan age without a report",
            one(vec![g("Image Scan Age", &["30"])]),
            no_scan,
            NotEvaluated("--vulns FILE"),
        ),
        case_with(
            "scan age without a scan time",
            one(vec![g("Image Scan Age", &["30"])]),
            |f| scan(f).scanned_at = None,
            NotEvaluated("does not say when the scan ran"),
        ),
        // Dockerfile Line
        case(
            "update instruction (BuildKit history)",
            one(vec![g("Dockerfile Line", &UPDATE_VALUES)]),
            Violated(vec!["Dockerfile line 'RUN apt-get update' found"]),
        ),
        case(
            "empty instruction matches any",
            one(vec![g("Dockerfile Line", &["=.*curl.*"])]),
            Violated(vec!["Dockerfile line 'RUN apt-get install -y curl' found"]),
        ),
        case(
            "ADD instruction",
            one(vec![g("Dockerfile Line", &["ADD=.*"])]),
            Violated(vec!["Dockerfile line 'ADD file:abc in /' found"]),
        ),
        case(
            "port 22 not exposed",
            one(vec![g("Dockerfile Line", &["EXPOSE=(22/tcp|\\s+22/tcp)"])]),
            Pass,
        ),
        case_with(
            "port 22 exposed (BuildKit map form)",
            one(vec![g("Dockerfile Line", &["EXPOSE=(22/tcp|\\s+22/tcp)"])]),
            |f| config(f).history.push("EXPOSE map[22/tcp:{}]".into()),
            Violated(vec!["Dockerfile line 'EXPOSE 22/tcp' found"]),
        ),
        case(
            "AND applies to one line at a time",
            one(vec![and(g(
                "Dockerfile Line",
                &["ADD=.*", "RUN=apt-get update"],
            ))]),
            Pass,
        ),
        // Image Component
        case(
            "component present",
            one(vec![g("Image Component", &["curl="])]),
            Violated(vec!["Image includes component 'curl' (version 7.64.0)"]),
        ),
        case(
            "component version regex",
            one(vec![g("Image Component", &["curl=8\\..*"])]),
            Pass,
        ),
        case(
            "components OR",
            one(vec![g("Image Component", &["wget=", "zlib="])]),
            Violated(vec!["Image includes component 'zlib' (version 1.2.11)"]),
        ),
        case_with(
            "component without a report",
            one(vec![g("Image Component", &["curl="])]),
            no_scan,
            NotEvaluated("--vulns FILE"),
        ),
        // Image OS
        case(
            "image OS",
            one(vec![g("Image OS", &["debian:.*"])]),
            Violated(vec!["Image has base OS 'debian:10'"]),
        ),
        case(
            "image OS negated",
            one(vec![not(g("Image OS", &["alpine:.*"]))]),
            Violated(vec!["Image has base OS 'debian:10'"]),
        ),
        case_with(
            "image OS unknown",
            one(vec![g("Image OS", &["debian:.*"])]),
            |f| scan(f).operating_system = None,
            NotEvaluated("operating system"),
        ),
        // Unscanned Image
        case_with(
            "unscanned without a report",
            one(vec![g("Unscanned Image", &["true"])]),
            no_scan,
            Violated(vec!["Image has not been scanned"]),
        ),
        case(
            "unscanned with a report",
            one(vec![g("Unscanned Image", &["true"])]),
            Pass,
        ),
        case(
            "scanned (false) with a report",
            one(vec![g("Unscanned Image", &["false"])]),
            Violated(vec!["Image has been scanned"]),
        ),
        // CVE
        case(
            "CVE",
            one(vec![g("CVE", &["CVE-2021-3711"])]),
            Violated(vec![MSG_3711]),
        ),
        case(
            "CVEs OR, regex",
            one(vec![g("CVE", &["CVE-2021-3711", "CVE-2021-2294."])]),
            Violated(vec![MSG_22945, MSG_3711]),
        ),
        case(
            "CVE negated matches the other vulnerabilities",
            one(vec![not(g("CVE", &["CVE-2021-37.*"]))]),
            Violated(vec![MSG_22945]),
        ),
        case_with(
            "CVE without a report",
            one(vec![g("CVE", &["CVE-2021-3711"])]),
            no_scan,
            NotEvaluated("--vulns FILE"),
        ),
        // CVSS and NVD CVSS
        case(
            "CVSS at least 9",
            one(vec![g("CVSS", &[">= 9"])]),
            Violated(vec![MSG_3711]),
        ),
        case("CVSS below 5", one(vec![g("CVSS", &["< 5"])]), Pass),
        case(
            "CVSS equality",
            one(vec![g("CVSS", &["7.4"])]),
            Violated(vec![MSG_3712]),
        ),
        case_with(
            "no CVSS in the report",
            one(vec![g("CVSS", &[">= 9"])]),
            |f| all_vulns(f).for_each(|v| v.cvss = None),
            NotEvaluated("CVSS scores"),
        ),
        case(
            "NVD CVSS at least 9",
            one(vec![g("NVD CVSS", &[">= 9"])]),
            Violated(vec![MSG_3711_NVD]),
        ),
        case_with(
            "no NVD CVSS in the report",
            one(vec![g("NVD CVSS", &[">= 9"])]),
            |f| all_vulns(f).for_each(|v| v.nvd_cvss = None),
            NotEvaluated("NVD CVSS scores"),
        ),
        // Severity
        case(
            "severity equality",
            one(vec![g("Severity", &["CRITICAL"])]),
            Violated(vec![MSG_3711]),
        ),
        case(
            "nothing above critical",
            one(vec![g("Severity", &["> CRITICAL"])]),
            Pass,
        ),
        case(
            "severity range with AND",
            one(vec![and(g("Severity", &[">= MODERATE", "< critical"]))]),
            Violated(vec![MSG_22945, MSG_3712]),
        ),
        // Fixable and Fixed By
        case(
            "not fixable",
            one(vec![g("Fixable", &["false"])]),
            Violated(vec![MSG_22945]),
        ),
        case(
            "fixable and critical",
            one(vec![
                g("Fixable", &["true"]),
                g("Severity", &[">= CRITICAL"]),
            ]),
            Violated(vec![MSG_3711_FIX]),
        ),
        case(
            "fixed by a version",
            one(vec![g("Fixed By", &["1\\.1\\.1l"])]),
            Violated(vec![MSG_3711_FIX, MSG_3712_FIX]),
        ),
        case(
            "fixed by, negated, matches the unfixed",
            one(vec![not(g("Fixed By", &["1\\.1\\..*"]))]),
            Violated(vec![MSG_22945]),
        ),
        // Linked conjunction
        case_with(
            "fix on one vulnerability and severity on another do not combine",
            one(vec![
                g("Fixed By", &[".*"]),
                g("Severity", &[">= CRITICAL"]),
            ]),
            |f| {
                scan(f).components = vec![component(
                    "bash",
                    "5.0",
                    vec![
                        vuln("CVE-2000-1", VulnSeverity::Low, None, None, Some("5.1")),
                        vuln("CVE-2000-2", VulnSeverity::Critical, None, None, None),
                    ],
                )]
            },
            Pass,
        ),
        case_with(
            "fix and severity on the same vulnerability",
            one(vec![
                g("Fixed By", &[".*"]),
                g("Severity", &[">= CRITICAL"]),
            ]),
            |f| {
                scan(f).components = vec![component(
                    "bash",
                    "5.0",
                    vec![
                        vuln("CVE-2000-1", VulnSeverity::Low, None, None, Some("5.1")),
                        vuln(
                            "CVE-2000-2",
                            VulnSeverity::Critical,
                            None,
                            None,
                            Some("5.1"),
                        ),
                    ],
                )]
            },
            Violated(vec![
                "Fixable CVE-2000-2 (severity Critical) found in component 'bash' (version 5.0), resolved by version 5.1",
            ]),
        ),
        case(
            "a CVE of another component does not link",
            one(vec![
                g("Image Component", &["curl="]),
                g("CVE", &["CVE-2021-3711"]),
            ]),
            Pass,
        ),
        case(
            "a CVE of the same component links",
            one(vec![
                g("Image Component", &["openssl="]),
                g("CVE", &["CVE-2021-3711"]),
            ]),
            Violated(vec![
                MSG_3711,
                "Image includes component 'openssl' (version 1.1.1k)",
            ]),
        ),
        case(
            "image-level criteria combine with any vulnerability",
            one(vec![g("Image Tag", &["1.0"]), g("CVE", &["CVE-2021-3711"])]),
            Violated(vec![MSG_3711, "Image has tag '1.0'"]),
        ),
        case(
            "a failing image-level criterion stops the section",
            one(vec![
                g("Image Tag", &["latest"]),
                g("CVE", &["CVE-2021-3711"]),
            ]),
            Pass,
        ),
        case(
            "layers and vulnerabilities are independent lists",
            one(vec![
                g("Dockerfile Line", &["RUN=apt-get update"]),
                g("CVE", &["CVE-2021-3711"]),
            ]),
            Violated(vec![MSG_3711, "Dockerfile line 'RUN apt-get update' found"]),
        ),
        // Day counts
        case(
            "published more than a year ago",
            one(vec![g("Days Since CVE Was Published", &["365"])]),
            Violated(vec![MSG_22945, MSG_3711, MSG_3712]),
        ),
        case_with(
            "no publication dates",
            one(vec![g("Days Since CVE Was Published", &["365"])]),
            |f| all_vulns(f).for_each(|v| v.published = None),
            NotEvaluated("publication dates"),
        ),
        case(
            "fix available for more than a year",
            one(vec![g("Days Since CVE Fix Was Available", &["365"])]),
            Violated(vec![MSG_3711]),
        ),
        case_with(
            "no fix dates",
            one(vec![g("Days Since CVE Fix Was Available", &["365"])]),
            |f| all_vulns(f).for_each(|v| v.fix_available = None),
            NotEvaluated("fixes became available"),
        ),
        case(
            "first discovery needs Central",
            one(vec![g(
                "Days Since CVE Was First Discovered In Image",
                &["30"],
            )]),
            NotEvaluated("Central"),
        ),
        case(
            "first discovery in the system needs Central",
            one(vec![g(
                "Days Since CVE Was First Discovered In System",
                &["30"],
            )]),
            NotEvaluated("Central"),
        ),
        // Labels
        case(
            "required label present",
            one(vec![g("Required Image Label", &["team=payments"])]),
            Pass,
        ),
        case(
            "required label absent",
            one(vec![g("Required Image Label", &["owner=.*"])]),
            Violated(vec![
                "Required label not found (found labels: team=payments, tier=backend)",
            ]),
        ),
        case(
            "required labels OR: one present is enough",
            one(vec![g("Required Image Label", &["owner=.*", "team=.*"])]),
            Pass,
        ),
        case(
            "required labels AND: violation only when all are absent",
            one(vec![and(g(
                "Required Image Label",
                &["owner=.*", "team=.*"],
            ))]),
            Pass,
        ),
        case(
            "required label with any value",
            one(vec![g("Required Image Label", &["tier="])]),
            Pass,
        ),
        case(
            "disallowed label",
            one(vec![g("Disallowed Image Label", &["team=pay.*"])]),
            Violated(vec!["Disallowed labels found: team=payments"]),
        ),
        case(
            "disallowed key with any value",
            one(vec![g("Disallowed Image Label", &["TIER="])]),
            Violated(vec!["Disallowed labels found: tier=backend"]),
        ),
        case(
            "disallowed labels AND: all must be present",
            one(vec![and(g(
                "Disallowed Image Label",
                &["team=.*", "owner=.*"],
            ))]),
            Pass,
        ),
        case_with(
            "labels without an image config",
            one(vec![g("Required Image Label", &["owner=.*"])]),
            |f| f.platforms.clear(),
            NotEvaluated("image config"),
        ),
        // Sections
        case(
            "the second section matches",
            policy(vec![
                vec![g("Image Tag", &["latest"])],
                vec![g("Image User", &["app"])],
            ]),
            Violated(vec!["Image has user 'app'"]),
        ),
        case(
            "every matching section adds messages",
            policy(vec![
                vec![g("Image Tag", &["1.0"])],
                vec![g("Image User", &["app"])],
            ]),
            Violated(vec!["Image has tag '1.0'", "Image has user 'app'"]),
        ),
        case_with(
            "a matching section wins over one lacking data",
            policy(vec![
                vec![g("CVE", &["CVE-2021-3711"])],
                vec![g("Image Tag", &["1.0"])],
            ]),
            no_scan,
            Violated(vec!["Image has tag '1.0'"]),
        ),
        case_with(
            "no section matches and one lacks data",
            policy(vec![
                vec![g("CVE", &["CVE-2021-3711"])],
                vec![g("Image Tag", &["latest"])],
            ]),
            no_scan,
            NotEvaluated("--vulns FILE"),
        ),
        case_with(
            "a section failing on the data there is does not need the rest",
            one(vec![
                g("Image Registry", &["docker.io"]),
                g("CVE", &["CVE-2021-3711"]),
            ]),
            no_scan,
            Pass,
        ),
        case(
            "a linked partner lacking data leaves the section open",
            one(vec![
                g("Fixed By", &[".*"]),
                g("Days Since CVE Was First Discovered In Image", &["30"]),
            ]),
            NotEvaluated("Central"),
        ),
        case(
            "a linked partner failing closes the section",
            one(vec![
                g("CVE", &["CVE-1999-0001"]),
                g("Days Since CVE Was First Discovered In Image", &["30"]),
            ]),
            Pass,
        ),
        // Exclusions
        case(
            "image exclusion by prefix",
            with(
                one(vec![g("Image Tag", &["1.0"])]),
                "exclusions",
                exclusion("registry.example.com/team/", None),
            ),
            Skipped("excluded by the policy's exclusion \"team images\""),
        ),
        case(
            "expired exclusion",
            with(
                one(vec![g("Image Tag", &["1.0"])]),
                "exclusions",
                exclusion("registry.example.com/team/", Some("2024-01-01T00:00:00Z")),
            ),
            Violated(vec!["Image has tag '1.0'"]),
        ),
        case(
            "exclusion expiring later",
            with(
                one(vec![g("Image Tag", &["1.0"])]),
                "exclusions",
                exclusion("registry.example.com/team/", Some("2025-01-01T00:00:00Z")),
            ),
            Skipped("until 2025-01-01"),
        ),
        case(
            "exclusion that is not a prefix",
            with(
                one(vec![g("Image Tag", &["1.0"])]),
                "exclusions",
                exclusion("team/", None),
            ),
            Violated(vec!["Image has tag '1.0'"]),
        ),
        case_with(
            "exclusions see the normalised full name",
            with(
                one(vec![g("Image Tag", &["latest"])]),
                "exclusions",
                exclusion("docker.io/library/nginx:latest", None),
            ),
            |f| f.name = ImageRef::parse("nginx").unwrap(),
            Skipped("team images"),
        ),
        // Image Signature Verified By
        case_with(
            "verified by the listed integration",
            one(vec![g("Image Signature Verified By", &[ID_A])]),
            |f| verify(f, KEY_A2),
            Pass,
        ),
        case(
            "not verified",
            one(vec![g("Image Signature Verified By", &[ID_A])]),
            Violated(vec![MSG_NOT_VERIFIED]),
        ),
        case_with(
            "a signature naming another repository does not count",
            one(vec![g("Image Signature Verified By", &[ID_A])]),
            |f| {
                verify(f, KEY_A2);
                f.signatures.found[0].docker_reference = "registry.example.com/other/app".into();
            },
            Violated(vec![MSG_NOT_VERIFIED]),
        ),
        case_with(
            "a tag-qualified docker-reference (as skopeo writes) counts",
            one(vec![g("Image Signature Verified By", &[ID_A])]),
            |f| {
                verify(f, KEY_A2);
                f.signatures.found[0].docker_reference = "registry.example.com/team/app:0.9".into();
            },
            Pass,
        ),
        case_with(
            "transparency log, offline: no Rekor bundle, no verification",
            one(vec![g("Image Signature Verified By", &[ID_C])]),
            |f| verify(f, KEY_C),
            Violated(vec![MSG_NOT_VERIFIED]),
        ),
        case_with(
            "transparency log, offline: a bundle the log vouches for",
            one(vec![g("Image Signature Verified By", &[ID_C])]),
            |f| logged(f, KEY_C, Ok(())),
            Pass,
        ),
        case_with(
            "transparency log, offline: a bundle from another log",
            one(vec![g("Image Signature Verified By", &[ID_C])]),
            |f| logged(f, KEY_C, Err("unable to verify SET".into())),
            Violated(vec![MSG_NOT_VERIFIED]),
        ),
        case_with(
            "transparency log, online: a signature without a bundle was never uploaded",
            one(vec![g("Image Signature Verified By", &[ID_D])]),
            |f| verify(f, KEY_D),
            Violated(vec![MSG_NOT_VERIFIED]),
        ),
        case_with(
            "a Sigstore bundle (cosign 3) verifies",
            one(vec![g("Image Signature Verified By", &[ID_A])]),
            |f| bundle(f, KEY_A1, 0),
            Pass,
        ),
        case_with(
            "a Sigstore bundle without log entries, with the log on",
            one(vec![g("Image Signature Verified By", &[ID_C])]),
            |f| bundle(f, KEY_C, 0),
            Violated(vec![MSG_NOT_VERIFIED]),
        ),
        case_with(
            "verified only by another integration",
            one(vec![g("Image Signature Verified By", &[ID_A])]),
            |f| verify(f, KEY_B),
            Violated(vec![
                "Image signature is not verified by the specified signature integration(s) (it is verified by other integration(s): io.stackrox.signatureintegration.22222222-2222-2222-2222-222222222222).",
            ]),
        ),
        case_with(
            "any listed integration will do",
            one(vec![g("Image Signature Verified By", &[ID_A, ID_B])]),
            |f| verify(f, KEY_B),
            Pass,
        ),
        case(
            "unknown integration",
            one(vec![g("Image Signature Verified By", &[ID_UNKNOWN])]),
            NotEvaluated("signature integration io.stackrox.signatureintegration.33333333"),
        ),
        case_with(
            "signatures could not be read",
            one(vec![g("Image Signature Verified By", &[ID_A])]),
            |f| f.signatures.unavailable = Some("registry refused".into()),
            NotEvaluated("registry refused"),
        ),
        case_with(
            "a key that was not checked",
            one(vec![g("Image Signature Verified By", &[ID_A])]),
            |f| {
                f.signatures.checks.remove(&KeyId::Uri(KEY_A2.into()));
            },
            NotEvaluated("was not checked"),
        ),
        case_with(
            "an unavailable key does not matter when another verified",
            one(vec![g("Image Signature Verified By", &[ID_A])]),
            |f| {
                f.signatures.checks.insert(
                    KeyId::Uri(KEY_A1.into()),
                    KeyCheck::KeyUnavailable("KMS unreachable".into()),
                );
                verify(f, KEY_A2);
            },
            Pass,
        ),
        case_with(
            "an unavailable key leaves the verdict open",
            one(vec![g("Image Signature Verified By", &[ID_A])]),
            |f| {
                f.signatures.checks.insert(
                    KeyId::Uri(KEY_A1.into()),
                    KeyCheck::KeyUnavailable("KMS unreachable".into()),
                );
            },
            NotEvaluated("KMS unreachable"),
        ),
        case(
            "other registries need no signature data",
            one(vec![
                g("Image Registry", &["registry.redhat.io"]),
                g("Image Signature Verified By", &[ID_UNKNOWN]),
            ]),
            Pass,
        ),
        // Lifecycle
        case(
            "disabled policy",
            with(one(vec![g("Image Tag", &["1.0"])]), "disabled", json!(true)),
            Skipped("disabled"),
        ),
        case(
            "deploy-only policy",
            with(
                one(vec![g("Image Tag", &["1.0"])]),
                "lifecycleStages",
                json!(["DEPLOY"]),
            ),
            Skipped("DEPLOY policy: not evaluated at build time"),
        ),
    ]
}

fn run(case: &Case) -> Result<Finding, String> {
    let set = PolicySet::from_json(&case.policy.to_string(), "case.json")
        .map_err(|e| format!("policy does not load: {e}"))?;
    let mut facts = base_facts();
    (case.setup)(&mut facts);
    let options = EvalOptions {
        now: now(),
        integrations: case.integrations.then(integrations),
    };
    let mut findings = stackrox::evaluate(&set, &facts, &options);
    if findings.len() != 1 {
        return Err(format!("{} findings instead of one", findings.len()));
    }
    Ok(findings.remove(0))
}

fn check(case: &Case, finding: &Finding) -> Result<(), String> {
    let ok = match (&case.expect, &finding.outcome) {
        (Expect::Violated(expected), Outcome::Violated) => finding.messages == *expected,
        (Expect::Pass, Outcome::Pass) => finding.messages.is_empty(),
        (Expect::NotEvaluated(text), Outcome::NotEvaluated(reason)) => reason.contains(text),
        (Expect::Skipped(text), Outcome::Skipped(reason)) => reason.contains(text),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected {:?}, got {:?} with messages {:?}",
            case.expect, finding.outcome, finding.messages
        ))
    }
}

#[test]
fn semantics_table() {
    let cases = cases();
    assert!(cases.len() >= 40);
    let mut failures = Vec::new();
    for case in &cases {
        if let Err(e) = run(case).and_then(|finding| check(case, &finding)) {
            failures.push(format!("{}: {e}", case.name));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn signature_criteria_without_integrations_file() {
    let case = Case {
        name: "no integrations file",
        policy: one(vec![g("Image Signature Verified By", &[ID_A])]),
        setup: |_| {},
        integrations: false,
        expect: Expect::NotEvaluated("--signature-integrations FILE"),
    };
    let finding = run(&case).unwrap();
    check(&case, &finding).unwrap();
}

#[test]
fn findings_carry_the_policy() {
    let text = with(
        with(
            one(vec![g("Image Tag", &["1.0"])]),
            "description",
            json!("No 1.0 please"),
        ),
        "remediation",
        json!("Use 1.1"),
    );
    let set = PolicySet::from_json(&text.to_string(), "mine.json").unwrap();
    let findings = stackrox::evaluate(&set, &base_facts(), &EvalOptions::new(now()));
    let f = &findings[0];
    assert_eq!(f.policy, "Case policy");
    assert_eq!(f.rule, None);
    assert_eq!(f.severity, imagegate::policy::Severity::High);
    assert!(f.enforced && f.breaks_build());
    assert_eq!(f.description, "No 1.0 please");
    assert_eq!(f.remediation, "Use 1.1");
    assert_eq!(f.origin, "mine.json");
    assert_eq!(f.platform, None);
    assert_eq!(f.source, imagegate::policy::Source::StackRox);
}

#[test]
fn an_index_is_judged_per_platform() {
    let mut facts = base_facts();
    let mut arm = facts.platforms[0].clone();
    arm.platform = Some(Platform::new("linux", "arm64", None));
    arm.config.user = String::new();
    facts.platforms[0].platform = Some(Platform::new("linux", "amd64", None));
    facts.platforms.push(arm);

    let set = PolicySet::from_json(
        &policy(vec![
            vec![g("Image User", &["root"])],
            vec![g("CVE", &["CVE-2021-3711"])],
        ])
        .to_string(),
        "p.json",
    )
    .unwrap();
    let findings = stackrox::evaluate(&set, &facts, &EvalOptions::new(now()));
    assert_eq!(findings.len(), 2);
    assert_eq!(
        findings[0].platform,
        Some(Platform::new("linux", "amd64", None))
    );
    assert_eq!(
        findings[1].platform,
        Some(Platform::new("linux", "arm64", None))
    );
    // The scan applies to both platforms; the user differs. Sections add messages in order.
    assert_eq!(findings[0].messages, [MSG_3711]);
    assert_eq!(findings[1].messages, ["Image has user 'root'", MSG_3711]);
}

#[test]
fn required_keys_come_from_evaluated_policies() {
    let enabled = policy(vec![vec![g("Image Signature Verified By", &[ID_B])]]);
    let disabled = with(
        with(
            policy(vec![vec![g("Image Signature Verified By", &[ID_A])]]),
            "name",
            json!("Disabled one"),
        ),
        "disabled",
        json!(true),
    );
    let set = PolicySet::from_json(&json!([enabled, disabled]).to_string(), "p.json").unwrap();
    let integrations = integrations();
    assert_eq!(
        stackrox::required_keys(&set, Some(&integrations)),
        [KeyId::Uri(KEY_B.into())]
    );
    assert!(stackrox::required_keys(&set, None).is_empty());
    // The built-in Red Hat policy is disabled by default, so it asks for nothing.
    assert!(stackrox::required_keys(&PolicySet::builtin(), Some(&integrations)).is_empty());
}

#[test]
fn a_policy_file_with_a_syntax_error_names_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.json");
    std::fs::write(
        &path,
        "{\n  \"name\": \"Broken\",\n  \"severity\": \"LOW_SEVERITY\"\n  \"categories\": []\n}\n",
    )
    .unwrap();
    let err = PolicySet::load(std::slice::from_ref(&path)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}:4:3: ", path.display())),
        "{text}"
    );
    assert!(text.contains("not valid JSON"), "{text}");
}

#[test]
fn validation_errors_name_file_policy_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("invalid.json");
    let bad = with(
        with(
            one(vec![not(g("Image Age", &["90"])), g("Image Tag", &[])]),
            "name",
            json!("Old images"),
        ),
        "policyVersion",
        json!("1"),
    );
    std::fs::write(&path, json!({ "policies": [bad] }).to_string()).unwrap();
    let err = PolicySet::load(std::slice::from_ref(&path)).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!(
            "{}: policy \"Old images\" is invalid:",
            path.display()
        )),
        "{text}"
    );
    for expected in [
        "field \"policyVersion\": policy version \"1\" is not supported",
        "field \"Image Age\" in section 1: policy criteria \"Image Age\" cannot be negated",
        "fix: remove \"negate\": true from this group",
        "field \"Image Tag\" in section 1: no values for field \"Image Tag\"",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    match err {
        stackrox::StackRoxError::Invalid { problems, .. } => assert_eq!(problems.len(), 3),
        other => panic!("{other:?}"),
    }
}

#[test]
fn builtin_path_and_files_load_together() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mine.json");
    std::fs::write(&path, one(vec![g("Image Tag", &["1.0"])]).to_string()).unwrap();
    let set = PolicySet::load(&["builtin".into(), path]).unwrap();
    assert_eq!(set.len(), 22);
    assert_eq!(set.policies()[21].policy.name, "Case policy");
}

/// Every message is kept, however many there are (renderers shorten them with
/// `summarize_messages`). No timing is asserted: benchmarks are separate.
#[test]
fn thousands_of_vulnerabilities_keep_every_message() {
    let mut facts = base_facts();
    let vulns: Vec<Vulnerability> = (0..5000)
        .map(|i| {
            vuln(
                &format!("CVE-2024-{i:05}"),
                VulnSeverity::Critical,
                Some(9.1),
                Some(9.1),
                Some("2.0"),
            )
        })
        .collect();
    facts.scan.as_mut().unwrap().components = vec![component("big", "1.0", vulns)];
    let set = PolicySet::builtin();
    let findings = stackrox::evaluate(&set, &facts, &EvalOptions::new(now()));
    let important = findings
        .iter()
        .find(|f| f.policy == "Fixable Severity at least Important")
        .unwrap();
    assert_eq!(important.outcome, Outcome::Violated);
    assert_eq!(important.messages.len(), 5000);
    let shown = stackrox::summarize_messages(&important.messages, 20);
    assert_eq!(shown.len(), 21);
    assert!(shown[20].contains("4980 more"));
}
