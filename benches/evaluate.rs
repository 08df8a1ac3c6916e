//! How fast the rules are once the facts are gathered: the built-in StackRox set plus the 89
//! default policies in ../shared against one image with 5,000 vulnerabilities. Prints the
//! median of repeated runs; `bench/check.sh` runs it under /usr/bin/time for peak memory.
//!
//! `cargo bench --bench evaluate`

use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use imagegate::digest::Digest;
use imagegate::facts::{
    Component, ImageConfig, ImageFacts, PlatformFacts, ScanReport, SignatureFacts, VulnSeverity,
    Vulnerability,
};
use imagegate::policy::stackrox::{self, EvalOptions, PolicySet};
use imagegate::reference::ImageRef;

fn facts(vulnerabilities: usize) -> ImageFacts {
    let severities = [
        VulnSeverity::Low,
        VulnSeverity::Moderate,
        VulnSeverity::Important,
        VulnSeverity::Critical,
    ];
    // 500 components with 10 vulnerabilities each (for 5,000).
    let per_component = 10;
    let components = (0..vulnerabilities / per_component)
        .map(|c| Component {
            name: format!("package-{c}"),
            version: format!("1.{c}.0"),
            vulnerabilities: (0..per_component)
                .map(|v| {
                    let n = c * per_component + v;
                    Vulnerability {
                        id: format!("CVE-2024-{:05}", n),
                        severity: severities[n % 4],
                        cvss: Some((n % 100) as f32 / 10.0),
                        nvd_cvss: Some((n % 100) as f32 / 10.0),
                        fixed_by: (n % 3 != 0).then(|| format!("1.{c}.{}", v + 1)),
                        published: Utc
                            .timestamp_opt(1_600_000_000 + n as i64 * 3600, 0)
                            .single(),
                        fix_available: None,
                        link: None,
                    }
                })
                .collect(),
        })
        .collect();
    let digest = Digest::sha256_of(b"bench image");
    ImageFacts {
        name: ImageRef::parse("registry.example.com/team/app:1.0").unwrap(),
        digest: digest.clone(),
        platforms: vec![PlatformFacts {
            platform: None,
            digest,
            config: ImageConfig {
                created: Utc.timestamp_opt(1_700_000_000, 0).single(),
                user: String::new(),
                history: vec![
                    "/bin/sh -c #(nop) ADD file:abc in / ".into(),
                    "RUN /bin/sh -c apt-get update # buildkit".into(),
                    "EXPOSE map[22/tcp:{}]".into(),
                ],
                ..ImageConfig::default()
            },
        }],
        signatures: SignatureFacts::default(),
        signatures_elsewhere: Default::default(),
        scan: Some(ScanReport {
            source: "bench".into(),
            scanned_at: Utc.timestamp_opt(1_700_000_000, 0).single(),
            operating_system: Some("debian:12".into()),
            components,
        }),
    }
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn main() {
    let fixtures = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/fixtures/stackrox/policies"
    ));
    let mut paths = vec![PathBuf::from("builtin")];
    if fixtures.is_dir() {
        paths.push(fixtures);
    } else {
        eprintln!("*** ../shared is absent: benchmarking the built-in set only ***");
    }
    let load_start = Instant::now();
    let set = PolicySet::load(&paths).expect("policies load");
    let load = load_start.elapsed();
    let image = facts(5_000);
    let options = EvalOptions::new(Utc::now());
    let mut samples = Vec::new();
    let mut violations = 0;
    for _ in 0..30 {
        let start = Instant::now();
        let findings = stackrox::evaluate(&set, &image, &options);
        samples.push(start.elapsed());
        violations = findings.iter().filter(|f| f.is_violation()).count();
    }
    println!("## evaluate StackRox policies (release build, 30 runs)\n");
    println!(
        "| policies | vulnerabilities | load ms | median evaluation ms | min ms | violated policies |"
    );
    println!("|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {} | 5000 | {:.2} | {:.2} | {:.2} | {violations} |",
        set.len(),
        load.as_secs_f64() * 1000.0,
        median(samples.clone()).as_secs_f64() * 1000.0,
        samples.iter().min().unwrap().as_secs_f64() * 1000.0,
    );
}
