//! `imagegate digest` against the real test bed: Debian's docker-registry, images pushed with
//! skopeo, digests compared with what skopeo receives.

mod testbed;

use testbed::fixtures::{self, ImageSpec};
use testbed::registry::{self, Registry};
use testbed::stub::{Answer, Stub};
use testbed::{Imagegate, sha256, temp_dir, write_file};

/// `imagegate --insecure-registry HOST digest IMAGE …` for a plain-HTTP test registry.
fn digest(registry: &Registry, image: &str) -> Imagegate {
    Imagegate::new()
        .args(["--insecure-registry", &registry.host()])
        .args(["digest", &registry.image(image)])
}

#[test]
fn tag_resolves_to_the_digest_skopeo_sees() {
    let registry = Registry::start();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "v1", &ImageSpec::rich());
    fixtures::push(&layout, &registry, "team/app:v1");

    let out = digest(&registry, "team/app:v1").run();
    out.expect_code(0);
    let skopeo_digest = sha256(&fixtures::skopeo_raw(&registry, "team/app:v1"));
    assert_eq!(
        skopeo_digest, layout.digest,
        "skopeo sees the pushed manifest unchanged"
    );
    assert_eq!(
        out.stdout.trim_end(),
        format!("{}@{skopeo_digest}", registry.image("team/app"))
    );
}

#[test]
fn resolving_a_tag_costs_at_most_two_requests() {
    let registry = Registry::start();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "v1", &ImageSpec::rich());
    fixtures::push(&layout, &registry, "app:v1");

    digest(&registry, "app:v1").run().expect_code(0);
    let requests = registry.requests_from("imagegate/");
    assert_eq!(
        requests,
        vec![
            "GET /v2/".to_string(),
            "GET /v2/app/manifests/v1".to_string()
        ],
        "the /v2/ challenge and one manifest GET, nothing else"
    );
}

#[test]
fn digest_and_ref_files_hold_exactly_the_values() {
    let registry = Registry::start();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "v1", &ImageSpec::rich());
    fixtures::push(&layout, &registry, "app:v1");

    let out_dir = temp_dir();
    let digest_file = out_dir.path().join("IMAGE_DIGEST");
    let ref_file = out_dir.path().join("IMAGE_REF");
    digest(&registry, "app:v1")
        .args(["--digest-file", &digest_file.display().to_string()])
        .args(["--ref-file", &ref_file.display().to_string()])
        .run()
        .expect_code(0);
    assert_eq!(
        std::fs::read_to_string(&digest_file).unwrap(),
        layout.digest
    );
    assert_eq!(
        std::fs::read_to_string(&ref_file).unwrap(),
        format!("{}@{}", registry.image("app"), layout.digest),
        "no trailing newline: Tekton reads results verbatim"
    );
}

#[test]
fn a_pinned_reference_is_checked_to_exist() {
    let registry = Registry::start();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "v1", &ImageSpec::rich());
    fixtures::push(&layout, &registry, "app:v1");

    let out = digest(&registry, &format!("app@{}", layout.digest)).run();
    out.expect_code(0);
    assert!(out.stdout.contains(&layout.digest));
    // tag and digest: the digest wins, as in docker.
    digest(&registry, &format!("app:whatever@{}", layout.digest))
        .run()
        .expect_code(0);

    let absent = format!("sha256:{}", "0".repeat(64));
    let out = digest(&registry, &format!("app@{absent}")).run();
    out.expect_code(3);
    assert!(out.stderr.contains("manifest not found"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&absent),
        "names the digest: {}",
        out.stderr
    );
}

#[test]
fn an_index_resolves_to_its_own_digest_or_to_a_platform() {
    let registry = Registry::start();
    let dir = temp_dir();
    let layout = fixtures::write_index(
        dir.path(),
        "multi",
        &[
            ImageSpec::rich(),
            ImageSpec::rich().for_platform("arm64", Some("v8")),
        ],
    );
    fixtures::push(&layout, &registry, "app:multi");

    let out = digest(&registry, "app:multi").run();
    out.expect_code(0);
    let index_bytes = fixtures::skopeo_raw(&registry, "app:multi");
    assert_eq!(sha256(&index_bytes), layout.digest);
    assert!(out.stdout.contains(&layout.digest), "{}", out.stdout);

    // skopeo's view of the index names each child; imagegate must pick the same one.
    let index: serde_json::Value = serde_json::from_slice(&index_bytes).unwrap();
    let arm64 = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["platform"]["architecture"] == "arm64")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let child_bytes = fixtures::skopeo_raw(&registry, &format!("app@{arm64}"));
    assert_eq!(
        sha256(&child_bytes),
        arm64,
        "the child exists as skopeo sees it"
    );

    for platform in ["linux/arm64", "linux/arm64/v8", "linux/aarch64"] {
        let out = digest(&registry, "app:multi")
            .args(["--platform", platform])
            .run();
        out.expect_code(0);
        assert_eq!(
            out.stdout.trim_end(),
            format!("{}@{arm64}", registry.image("app")),
            "--platform {platform}"
        );
    }
    let amd64 = &layout.children[0].1;
    let out = digest(&registry, "app:multi")
        .args(["--platform", "linux/amd64"])
        .run();
    out.expect_code(0);
    assert!(out.stdout.contains(amd64.as_str()));
}

#[test]
fn a_platform_the_index_lacks_is_an_error_listing_what_there_is() {
    let registry = Registry::start();
    let dir = temp_dir();
    let layout = fixtures::write_index(
        dir.path(),
        "multi",
        &[
            ImageSpec::rich(),
            ImageSpec::rich().for_platform("arm64", Some("v8")),
        ],
    );
    fixtures::push(&layout, &registry, "app:multi");

    let out = digest(&registry, "app:multi")
        .args(["--platform", "linux/s390x"])
        .run();
    out.expect_code(2);
    assert!(
        out.stderr.contains("has no image for linux/s390x"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("linux/amd64, linux/arm64/v8"),
        "{}",
        out.stderr
    );

    // A single-platform image answers for its own platform only.
    let single = temp_dir();
    let layout = fixtures::write_image(single.path(), "v1", &ImageSpec::rich());
    fixtures::push(&layout, &registry, "single:v1");
    digest(&registry, "single:v1")
        .args(["--platform", "linux/amd64"])
        .run()
        .expect_code(0);
    let out = digest(&registry, "single:v1")
        .args(["--platform", "linux/arm64"])
        .run();
    out.expect_code(2);
    assert!(out.stderr.contains("linux/amd64 only"), "{}", out.stderr);

    let out = digest(&registry, "single:v1")
        .args(["--platform", "linux"])
        .run();
    out.expect_code(2);
    assert!(
        out.stderr.contains("invalid platform 'linux'"),
        "{}",
        out.stderr
    );
}

#[test]
fn tls_registry_with_credentials_from_config_and_ca_file() {
    let registry = Registry::start_tls();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "v1", &ImageSpec::rich());
    fixtures::push(&layout, &registry, "secure/app:v1");
    let config_dir = temp_dir();
    let config = registry.docker_config(config_dir.path(), registry::USER, registry::PASSWORD);

    // Trusted through --ca-file, credentials through --registry-config.
    let out = Imagegate::new()
        .args(["--registry-config", &config.display().to_string()])
        .args(["--ca-file", &registry.certificate().display().to_string()])
        .args(["digest", &registry.image("secure/app:v1")])
        .run();
    out.expect_code(0);
    assert!(out.stdout.contains(&layout.digest));

    // The same through DOCKER_CONFIG and SSL_CERT_FILE.
    let out = Imagegate::new()
        .env("DOCKER_CONFIG", config_dir.path().display().to_string())
        .env(
            "SSL_CERT_FILE",
            registry.certificate().display().to_string(),
        )
        .args(["digest", &registry.image("secure/app:v1")])
        .run();
    out.expect_code(0);
    assert!(out.stdout.contains(&layout.digest));

    // And through ~/.docker/config.json.
    let ig = Imagegate::new();
    std::fs::create_dir_all(ig.home().join(".docker")).unwrap();
    std::fs::copy(&config, ig.home().join(".docker/config.json")).unwrap();
    ig.args(["--ca-file", &registry.certificate().display().to_string()])
        .args(["digest", &registry.image("secure/app:v1")])
        .run()
        .expect_code(0);

    // Without the CA the certificate is refused, with advice.
    let out = Imagegate::new()
        .args(["--registry-config", &config.display().to_string()])
        .args(["digest", &registry.image("secure/app:v1")])
        .run();
    out.expect_code(3);
    assert!(out.stderr.contains("is not trusted"), "{}", out.stderr);
    assert!(out.stderr.contains("--ca-file"), "{}", out.stderr);

    // --insecure-registry skips verification for that host.
    Imagegate::new()
        .args(["--registry-config", &config.display().to_string()])
        .args(["--insecure-registry", &registry.host()])
        .args(["digest", &registry.image("secure/app:v1")])
        .run()
        .expect_code(0);
}

#[test]
fn a_self_signed_ca_certificate_gets_an_explanation() {
    let registry = Registry::start_tls_self_signed_ca();
    let config_dir = temp_dir();
    let config = registry.docker_config(config_dir.path(), registry::USER, registry::PASSWORD);
    let out = Imagegate::new()
        .args(["--registry-config", &config.display().to_string()])
        .args(["--ca-file", &registry.certificate().display().to_string()])
        .args(["digest", &registry.image("app:v1")])
        .run();
    out.expect_code(3);
    assert!(
        out.stderr.contains("presents a CA certificate"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("signed by that CA"), "{}", out.stderr);
}

#[test]
fn a_wrong_password_is_refused_without_printing_it() {
    let registry = Registry::start_tls();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "v1", &ImageSpec::rich());
    fixtures::push(&layout, &registry, "app:v1");
    let config_dir = temp_dir();
    let wrong = "wrong-Password-987";
    let config = registry.docker_config(config_dir.path(), registry::USER, wrong);

    let out = Imagegate::new()
        .args(["-vv", "--registry-config", &config.display().to_string()])
        .args(["--ca-file", &registry.certificate().display().to_string()])
        .args(["digest", &registry.image("app:v1")])
        .run();
    out.expect_code(3);
    assert!(out.stderr.contains("unauthorized"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&registry.host()),
        "names the registry: {}",
        out.stderr
    );
    assert!(out.stderr.contains("user 'alice'"), "{}", out.stderr);
    for text in [&out.stdout, &out.stderr] {
        assert!(!text.contains(wrong), "the password leaked: {text}");
        assert!(!text.contains(registry::PASSWORD));
        // Nor its base64 form (as in a Basic header or the config's auth entry).
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("alice:{wrong}"));
        assert!(!text.contains(&b64), "the credential leaked in base64");
    }
    // Not retried: a 401 does not get better by asking again.
    assert!(!out.stderr.contains("trying again"), "{}", out.stderr);

    // No credentials at all: the message says where it looked.
    let out = Imagegate::new()
        .args(["--ca-file", &registry.certificate().display().to_string()])
        .args(["digest", &registry.image("app:v1")])
        .run();
    out.expect_code(3);
    assert!(
        out.stderr
            .contains("requires credentials and none were found"),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("docker login"), "{}", out.stderr);
}

#[test]
fn an_unknown_tag_is_named() {
    let registry = Registry::start();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "v1", &ImageSpec::rich());
    fixtures::push(&layout, &registry, "app:v1");

    let out = digest(&registry, "app:no-such-tag").run();
    out.expect_code(3);
    assert!(out.stderr.contains("tag not found"), "{}", out.stderr);
    assert!(out.stderr.contains("'no-such-tag'"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("trying again"),
        "a 404 is not retried: {}",
        out.stderr
    );

    let out = digest(&registry, "nobody/here:v1").run();
    out.expect_code(3);
    assert!(out.stderr.contains("nobody/here"), "{}", out.stderr);
}

#[test]
fn a_malformed_reference_is_exit_2_with_a_caret() {
    let out = Imagegate::new()
        .args(["digest", "registry.example.com/Team/app:v1"])
        .run();
    out.expect_code(2);
    assert!(
        out.stderr.contains("repository names must be lowercase"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("registry.example.com/Team/app:v1\n"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("    {}^", " ".repeat(21))),
        "{}",
        out.stderr
    );

    let out = Imagegate::new().args(["digest", "app:"]).run();
    out.expect_code(2);
    assert!(out.stderr.contains("missing tag"), "{}", out.stderr);

    let out = Imagegate::new().args(["digest"]).run();
    out.expect_code(2);
    assert!(
        out.stderr.contains("IMAGE"),
        "clap names the missing argument: {}",
        out.stderr
    );
}

#[test]
fn a_stopped_registry_is_retried_then_exit_3() {
    let mut registry = Registry::start();
    let host = registry.host();
    registry.stop();

    let out = Imagegate::new()
        .args(["--insecure-registry", &host, "--retries", "2"])
        .args(["digest", &format!("{host}/app:v1")])
        .run();
    out.expect_code(3);
    assert_eq!(
        out.stderr.matches("trying again").count(),
        2,
        "two retries, announced: {}",
        out.stderr
    );
    assert!(
        out.stderr.contains(&format!("cannot reach {host}")),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.to_lowercase().contains("connection refused"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("gave up after 3 attempts"),
        "{}",
        out.stderr
    );
}

#[test]
fn an_oci_layout_resolves_locally_to_the_pushed_digest() {
    let registry = Registry::start();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "v1", &ImageSpec::rich());
    fixtures::push(&layout, &registry, "app:v1");
    let pushed = sha256(&fixtures::skopeo_raw(&registry, "app:v1"));

    let out = Imagegate::new().args(["digest", &layout.oci_ref()]).run();
    out.expect_code(0);
    assert_eq!(
        out.stdout.trim_end(),
        format!("oci:{}@{pushed}", dir.path().display())
    );
    // Only one image in the layout: the tag may be left out.
    let out = Imagegate::new()
        .args(["digest", &format!("oci:{}", dir.path().display())])
        .run();
    out.expect_code(0);
    assert!(out.stdout.contains(&pushed));

    // The same layout as an oci-archive.
    let tar = dir.path().with_extension("tar");
    fixtures::write_archive(dir.path(), &tar);
    let out = Imagegate::new()
        .args(["digest", &format!("oci-archive:{}:v1", tar.display())])
        .run();
    out.expect_code(0);
    assert!(out.stdout.contains(&pushed), "{}", out.stdout);
}

#[test]
fn an_oci_index_layout_resolves_platforms_locally() {
    let dir = temp_dir();
    let layout = fixtures::write_index(
        dir.path(),
        "multi",
        &[
            ImageSpec::rich(),
            ImageSpec::rich().for_platform("arm64", Some("v8")),
        ],
    );
    let out = Imagegate::new()
        .args(["digest", &layout.oci_ref(), "--platform", "linux/arm64"])
        .run();
    out.expect_code(0);
    assert!(out.stdout.contains(&layout.children[1].1), "{}", out.stdout);
}

#[test]
fn bad_local_layouts_are_exit_2_naming_the_problem() {
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "v1", &ImageSpec::rich());

    let out = Imagegate::new()
        .args(["digest", &format!("oci:{}:v2", dir.path().display())])
        .run();
    out.expect_code(2);
    assert!(
        out.stderr
            .contains("has no image tagged 'v2' (tags there: v1)"),
        "{}",
        out.stderr
    );

    let missing = dir.path().join("nope");
    let out = Imagegate::new()
        .args(["digest", &format!("oci:{}", missing.display())])
        .run();
    out.expect_code(2);
    assert!(
        out.stderr.contains("the directory does not exist"),
        "{}",
        out.stderr
    );

    // A corrupted blob is caught by its digest.
    let hex = layout.digest.trim_start_matches("sha256:");
    std::fs::write(
        dir.path().join("blobs/sha256").join(hex),
        b"{\"tampered\":true}",
    )
    .unwrap();
    let out = Imagegate::new().args(["digest", &layout.oci_ref()]).run();
    out.expect_code(2);
    assert!(
        out.stderr.contains("does not match its digest"),
        "{}",
        out.stderr
    );

    let not_tar = write_file(dir.path(), "not.tar", "plain text");
    let out = Imagegate::new()
        .args(["digest", &format!("oci-archive:{}", not_tar.display())])
        .run();
    out.expect_code(2);
    assert!(
        out.stderr.contains("is not an OCI image layout"),
        "{}",
        out.stderr
    );
}

#[test]
fn transient_failures_are_retried_and_4xx_are_not() {
    // A stand-in server: a real registry cannot be told to fail twice and then succeed.
    let manifest = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a","size":2},"layers":[]}"#;
    let stub = Stub::start(vec![
        (("GET", "/v2/"), vec![Answer::new(200, "{}")]),
        (
            ("GET", "/v2/app/manifests/v1"),
            vec![
                Answer::new(503, "busy"),
                Answer::new(502, "bad gateway"),
                Answer::new(200, manifest.to_vec())
                    .header("Content-Type", "application/vnd.oci.image.manifest.v1+json"),
            ],
        ),
        (
            ("GET", "/v2/app/manifests/denied"),
            vec![Answer::new(
                403,
                r#"{"errors":[{"code":"DENIED","message":"no"}]}"#,
            )],
        ),
    ]);
    let out = Imagegate::new()
        .args(["--insecure-registry", &stub.host()])
        .args(["digest", &format!("{}/app:v1", stub.host())])
        .run();
    out.expect_code(0);
    assert!(out.stdout.contains(&sha256(manifest)), "{}", out.stdout);
    assert_eq!(
        out.stderr.matches("trying again").count(),
        2,
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("HTTP 503"), "{}", out.stderr);

    let out = Imagegate::new()
        .args(["--insecure-registry", &stub.host()])
        .args(["digest", &format!("{}/app:denied", stub.host())])
        .run();
    out.expect_code(3);
    assert!(out.stderr.contains("denied"), "{}", out.stderr);
    let denied_gets = stub
        .requests()
        .iter()
        .filter(|r| r.ends_with("/manifests/denied"))
        .count();
    assert_eq!(denied_gets, 1, "a 403 is asked once");
}

#[test]
fn an_oversized_manifest_is_refused_and_says_so() {
    // A stand-in server: distribution refuses to store a manifest this large, so no real
    // registry can serve one; a hostile or broken one could.
    let huge = vec![b' '; 5 * 1024 * 1024];
    let stub = Stub::start(vec![
        (("GET", "/v2/"), vec![Answer::new(200, "{}")]),
        (
            ("GET", "/v2/app/manifests/v1"),
            vec![Answer::new(200, huge)],
        ),
    ]);
    let out = Imagegate::new()
        .args(["--insecure-registry", &stub.host()])
        .args(["digest", &format!("{}/app:v1", stub.host())])
        .run();
    out.expect_code(3);
    assert!(
        out.stderr
            .contains("is 5 MiB long; imagegate reads at most 4 MiB"),
        "{}",
        out.stderr
    );
}
