//! Bearer-token registries (the docker token protocol of Docker Hub, Harbor, Quay, GitLab): the
//! real docker-registry with `auth: token`, which checks every token itself, behind a stand-in
//! token service. Credentials come from a docker config.json as `auth` (basic, traded for a
//! token by GET) or `identitytoken` (an OAuth2 refresh token, traded by POST).

mod testbed;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use testbed::fixtures::{self, ImageSpec, Layout};
use testbed::registry::{self, Registry};
use testbed::token_standin::TokenService;
use testbed::{Imagegate, run_with_timeout, temp_dir, tools, write_file};

const KEY_PASSWORD: &str = "token-test key password";

struct Bed {
    tokens: TokenService,
    registry: Registry,
    layout: Layout,
    _dir: tempfile::TempDir,
}

fn bed() -> Bed {
    let tokens = TokenService::start();
    let registry = Registry::start_token(&tokens);
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), "v1", &ImageSpec::rich());
    // skopeo trades the same basic credentials for a token: an independent client of the bed.
    fixtures::push(&layout, &registry, "team/app:v1");
    Bed {
        tokens,
        registry,
        layout,
        _dir: dir,
    }
}

impl Bed {
    /// imagegate trusting both the registry's and the token service's CA.
    fn imagegate(&self, config: Option<&Path>) -> Imagegate {
        let mut ig = Imagegate::new()
            .env("COSIGN_PASSWORD", KEY_PASSWORD)
            .args([
                "--ca-file",
                &self.registry.certificate().display().to_string(),
            ])
            .args([
                "--ca-file",
                &self.tokens.ca_certificate().display().to_string(),
            ]);
        if let Some(config) = config {
            ig = ig.args(["--registry-config", &config.display().to_string()]);
        }
        ig
    }

    fn config(&self, dir: &Path, entry: serde_json::Value) -> PathBuf {
        let config = serde_json::json!({"auths": {self.registry.host(): entry}});
        write_file(dir, "config.json", &config.to_string())
    }

    fn basic_config(&self, dir: &Path, password: &str) -> PathBuf {
        let auth = base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{password}", registry::USER));
        self.config(dir, serde_json::json!({"auth": auth}))
    }
}

fn assert_no_secret(texts: &[&str], secrets: &[&str]) {
    for text in texts {
        for secret in secrets {
            assert!(!text.contains(secret), "a secret leaked: {text}");
        }
    }
}

#[test]
fn basic_credentials_are_traded_for_a_token_the_registry_accepts() {
    let bed = bed();
    let configs = temp_dir();
    let config = bed.basic_config(configs.path(), registry::PASSWORD);
    let before = bed.tokens.requests().len();
    let out = bed
        .imagegate(Some(&config))
        .args(["digest", &bed.registry.image("team/app:v1")])
        .run();
    out.expect_code(0);
    assert!(out.stdout.contains(&bed.layout.digest), "{}", out.stdout);
    // One token, asked for with the user's credentials and only the pull scope.
    assert_eq!(
        bed.tokens.requests()[before..].to_vec(),
        vec!["GET basic alice scope=repository:team/app:pull".to_string()]
    );
    assert_no_secret(&[&out.stdout, &out.stderr], &[registry::PASSWORD]);
}

#[test]
fn refused_and_missing_credentials_say_so_without_leaking() {
    let bed = bed();
    let configs = temp_dir();
    let wrong = "not-Alices-password-42";
    let config = bed.basic_config(configs.path(), wrong);
    let out = bed
        .imagegate(Some(&config))
        .args(["-vv", "digest", &bed.registry.image("team/app:v1")])
        .run();
    out.expect_code(3);
    assert!(out.stderr.contains("unauthorized"), "{}", out.stderr);
    assert!(out.stderr.contains(&bed.registry.host()), "{}", out.stderr);
    assert!(out.stderr.contains("user 'alice'"), "{}", out.stderr);
    assert!(
        out.stderr.contains(&config.display().to_string()),
        "names the config file the credentials came from: {}",
        out.stderr
    );
    assert!(!out.stderr.contains("trying again"), "{}", out.stderr);
    let b64 = base64::engine::general_purpose::STANDARD.encode(format!("alice:{wrong}"));
    assert_no_secret(&[&out.stdout, &out.stderr], &[wrong, &b64]);

    // Anonymous: the token service hands out a token with no access; the registry refuses it.
    let out = bed
        .imagegate(None)
        .args(["digest", &bed.registry.image("team/app:v1")])
        .run();
    out.expect_code(3);
    assert!(
        out.stderr
            .contains("requires credentials and none were found"),
        "{}",
        out.stderr
    );
    assert!(
        bed.tokens
            .requests()
            .iter()
            .any(|r| r.starts_with("GET basic anonymous")),
        "{:?}",
        bed.tokens.requests()
    );
}

#[test]
fn an_identity_token_signs_what_cosign_verifies() {
    let bed = bed();
    let keys = temp_dir();
    let prefix = keys.path().join("ig");
    Imagegate::new()
        .env("COSIGN_PASSWORD", KEY_PASSWORD)
        .args([
            "generate-key-pair",
            "--output-key-prefix",
            &prefix.display().to_string(),
        ])
        .run()
        .expect_code(0);
    let (key, public) = (keys.path().join("ig.key"), keys.path().join("ig.pub"));

    let configs = temp_dir();
    let config = bed.config(
        configs.path(),
        serde_json::json!({"identitytoken": bed.tokens.identity_token()}),
    );
    let image = bed.registry.image("team/app:v1");
    let out = bed
        .imagegate(Some(&config))
        .args(["-v", "sign", &image, "--key", &key.display().to_string()])
        .run();
    out.expect_code(0);
    assert_no_secret(&[&out.stdout, &out.stderr], &[bed.tokens.identity_token()]);
    // Every token came from the refresh grant; pushing asked for pull and push.
    let requests = bed.tokens.requests();
    let ours: Vec<&String> = requests.iter().filter(|r| r.starts_with("POST")).collect();
    assert!(
        ours.iter()
            .any(|r| *r == "POST refresh_token alice scope=repository:team/app:pull,push"),
        "{requests:?}"
    );
    assert!(
        ours.iter().all(|r| r.contains("refresh_token alice")),
        "{requests:?}"
    );

    // cosign, with basic credentials, verifies the signature through the same token service.
    let cosign_config = temp_dir();
    bed.basic_config(cosign_config.path(), registry::PASSWORD);
    let mut cmd = Command::new(tools::cosign());
    cmd.env_clear()
        .env("HOME", std::env::temp_dir())
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("DOCKER_CONFIG", cosign_config.path())
        .env("SSL_CERT_FILE", bed.registry.ca_bundle())
        .args([
            "verify",
            "--key",
            &public.display().to_string(),
            "--insecure-ignore-tlog=true",
            &format!("{}@{}", bed.registry.image("team/app"), bed.layout.digest),
        ]);
    let verified = run_with_timeout(cmd, Duration::from_secs(120));
    assert_eq!(verified.code, 0, "cosign verify: {}", verified.stderr);

    // imagegate verifies it too, with the identity token.
    bed.imagegate(Some(&config))
        .args(["verify", &image, "--key", &public.display().to_string()])
        .run()
        .expect_code(0);

    // A revoked (unknown) identity token is refused at the token service: exit 3, named.
    let revoked = "refresh-revoked-0123456789";
    let stale = temp_dir();
    let config = bed.config(stale.path(), serde_json::json!({"identitytoken": revoked}));
    let out = bed
        .imagegate(Some(&config))
        .args(["-vv", "digest", &image])
        .run();
    out.expect_code(3);
    assert!(out.stderr.contains("an identity token"), "{}", out.stderr);
    assert!(out.stderr.contains("unauthorized"), "{}", out.stderr);
    assert_no_secret(&[&out.stdout, &out.stderr], &[revoked]);
}
