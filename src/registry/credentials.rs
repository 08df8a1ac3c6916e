//! Registry credentials, found where docker and podman keep them: `config.json`/`auth.json`
//! (`auth`, `username`/`password`, `identitytoken`, `registrytoken`), and credential helpers
//! (`credHelpers`, `credsStore`) run as `docker-credential-<name> get`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use crate::reference::DOCKER_HUB;
use crate::secret::Secret;

/// What to present to a registry.
#[derive(Clone, Debug, Default)]
pub enum Credential {
    #[default]
    Anonymous,
    Basic {
        username: String,
        password: Secret,
    },
    /// An OAuth2 refresh token (`identitytoken`), exchanged at the registry's token endpoint.
    IdentityToken(Secret),
    /// A bearer token sent as it is (`registrytoken`).
    RegistryToken(Secret),
}

impl Credential {
    /// Who the credential speaks for, safe to print.
    pub fn who(&self) -> String {
        match self {
            Credential::Anonymous => "anonymous".into(),
            Credential::Basic { username, .. } => format!("user '{username}'"),
            Credential::IdentityToken(_) => "an identity token".into(),
            Credential::RegistryToken(_) => "a registry token".into(),
        }
    }
}

/// A credential and where it came from (for messages: never the secret itself).
#[derive(Clone, Debug, Default)]
pub struct Found {
    pub credential: Credential,
    /// E.g. `/root/.docker/config.json` or `credential helper docker-credential-pass`.
    pub source: Option<String>,
    /// The files that were searched, for a message when nothing was found.
    pub searched: Vec<PathBuf>,
}

/// A credentials file or helper that cannot be used (the input is wrong: exit 2).
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("--registry-config {}: {source}", path.display())]
    ExplicitFileUnreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read registry credentials from {}: {source}", path.display())]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} is not a valid docker config file: {detail}", path.display())]
    Malformed { path: PathBuf, detail: String },
    #[error("{}: the \"auth\" entry for {key} {problem}", path.display())]
    BadAuthEntry {
        path: PathBuf,
        key: String,
        problem: &'static str,
    },
    #[error("credential helper docker-credential-{helper} failed for {registry}: {detail}")]
    Helper {
        helper: String,
        registry: String,
        detail: String,
    },
}

/// Where credentials are looked up, in order; the first file that knows the registry wins.
#[derive(Clone, Debug)]
pub struct AuthFiles {
    files: Vec<PathBuf>,
    explicit: bool,
}

impl AuthFiles {
    /// `--registry-config PATH` alone when given; else `$DOCKER_CONFIG/config.json`,
    /// `~/.docker/config.json`, `$REGISTRY_AUTH_FILE`, `$XDG_RUNTIME_DIR/containers/auth.json`.
    pub fn discover(explicit: Option<PathBuf>) -> AuthFiles {
        if let Some(path) = explicit {
            return AuthFiles {
                files: vec![path],
                explicit: true,
            };
        }
        let env = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let mut files = Vec::new();
        if let Some(dir) = env("DOCKER_CONFIG") {
            files.push(dir.join("config.json"));
        }
        if let Some(home) = env("HOME") {
            files.push(home.join(".docker").join("config.json"));
        }
        if let Some(file) = env("REGISTRY_AUTH_FILE") {
            files.push(file);
        }
        if let Some(dir) = env("XDG_RUNTIME_DIR") {
            files.push(dir.join("containers").join("auth.json"));
        }
        files.dedup();
        AuthFiles {
            files,
            explicit: false,
        }
    }

    /// No credentials at all: every registry is asked anonymously.
    pub fn none() -> AuthFiles {
        AuthFiles {
            files: Vec::new(),
            explicit: false,
        }
    }

    /// Files searched, for messages.
    pub fn searched(&self) -> &[PathBuf] {
        &self.files
    }

    /// The credential for `registry` (as written in the reference, `HOST[:PORT]`) and
    /// `repository`: podman's repository-scoped keys first, then the registry itself.
    pub async fn lookup(&self, registry: &str, repository: &str) -> Result<Found, CredentialError> {
        for path in &self.files {
            let text = match std::fs::read_to_string(path) {
                Ok(t) => t,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && !self.explicit => continue,
                Err(source) if self.explicit => {
                    return Err(CredentialError::ExplicitFileUnreadable {
                        path: path.clone(),
                        source,
                    });
                }
                Err(source) => {
                    return Err(CredentialError::Unreadable {
                        path: path.clone(),
                        source,
                    });
                }
            };
            let file = ConfigFile::parse(path, &text)?;
            if let Some(found) = file.lookup(path, registry, repository).await? {
                return Ok(found);
            }
        }
        Ok(Found::default())
    }
}

#[derive(Debug, Default, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthEntry>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
    #[serde(default)]
    registrytoken: Option<String>,
}

impl ConfigFile {
    fn parse(path: &Path, text: &str) -> Result<ConfigFile, CredentialError> {
        if text.trim().is_empty() {
            return Ok(ConfigFile::default());
        }
        serde_json::from_str(text).map_err(|e| CredentialError::Malformed {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })
    }

    async fn lookup(
        &self,
        path: &Path,
        registry: &str,
        repository: &str,
    ) -> Result<Option<Found>, CredentialError> {
        let hosts = host_aliases(registry);

        // A helper named for this registry wins over everything else in the file (as in docker).
        if let Some(helper) = hosts.iter().find_map(|h| self.cred_helpers.get(*h)) {
            return run_helper(helper, registry).await.map(Some);
        }

        // Podman allows keys scoped to a namespace or repository: the most specific wins.
        let mut scopes: Vec<String> = Vec::new();
        let mut scope = repository.to_string();
        loop {
            for host in &hosts {
                scopes.push(format!("{host}/{scope}"));
            }
            match scope.rfind('/') {
                Some(i) => scope.truncate(i),
                None => break,
            }
        }
        scopes.extend(hosts.iter().map(|h| h.to_string()));

        for wanted in &scopes {
            let entry = self
                .auths
                .iter()
                .find(|(key, _)| normalize_key(key) == *wanted);
            if let Some((key, entry)) = entry
                && let Some(credential) = entry.credential(path, key)?
            {
                return Ok(Some(Found {
                    credential,
                    source: Some(path.display().to_string()),
                    searched: Vec::new(),
                }));
            }
        }

        // The default store holds the secrets when the file only lists the registry.
        if let Some(store) = &self.creds_store {
            match run_helper(store, registry).await {
                Ok(found) => return Ok(Some(found)),
                Err(err) => {
                    tracing::warn!(
                        "{err}; going on without credentials from the credsStore in {}",
                        path.display()
                    );
                }
            }
        }
        Ok(None)
    }
}

impl AuthEntry {
    fn credential(&self, path: &Path, key: &str) -> Result<Option<Credential>, CredentialError> {
        if let Some(token) = self.registrytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::RegistryToken(Secret::new(token))));
        }
        if let Some(token) = self.identitytoken.as_deref().filter(|t| !t.is_empty()) {
            return Ok(Some(Credential::IdentityToken(Secret::new(token))));
        }
        if let Some(auth) = self.auth.as_deref().filter(|a| !a.is_empty()) {
            let bad = |problem| CredentialError::BadAuthEntry {
                path: path.to_path_buf(),
                key: key.to_string(),
                problem,
            };
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(auth.trim())
                .map_err(|_| bad("is not valid base64"))?;
            let decoded = String::from_utf8(decoded).map_err(|_| bad("is not UTF-8 text"))?;
            let (username, password) = decoded
                .split_once(':')
                .ok_or_else(|| bad("does not hold USER:PASSWORD"))?;
            return Ok(Some(Credential::Basic {
                username: username.to_string(),
                password: Secret::new(password),
            }));
        }
        if let (Some(username), Some(password)) = (&self.username, &self.password) {
            return Ok(Some(Credential::Basic {
                username: username.clone(),
                password: Secret::new(password.clone()),
            }));
        }
        Ok(None)
    }
}

/// Names a registry goes by in config files: Docker Hub has several.
fn host_aliases(registry: &str) -> Vec<&str> {
    if registry == DOCKER_HUB {
        vec![DOCKER_HUB, "index.docker.io", "registry-1.docker.io"]
    } else {
        vec![registry]
    }
}

/// `https://index.docker.io/v1/` → `index.docker.io`; `quay.io/org` stays.
fn normalize_key(key: &str) -> String {
    let key = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let key = key.trim_end_matches('/');
    let key = key
        .strip_suffix("/v1")
        .or_else(|| key.strip_suffix("/v2"))
        .unwrap_or(key);
    key.to_string()
}

#[derive(Deserialize)]
struct HelperAnswer {
    #[serde(rename = "Username", default)]
    username: String,
    #[serde(rename = "Secret", default)]
    secret: String,
}

/// Runs `docker-credential-<helper> get` with the registry on stdin, as docker does.
async fn run_helper(helper: &str, registry: &str) -> Result<Found, CredentialError> {
    let program = format!("docker-credential-{helper}");
    let fail = |detail: String| CredentialError::Helper {
        helper: helper.to_string(),
        registry: registry.to_string(),
        detail,
    };
    // Docker Hub credentials are stored under the legacy index URL.
    let server = if registry == DOCKER_HUB {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    };
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => fail(format!("{program} is not on PATH")),
            _ => fail(format!("cannot run {program}: {e}")),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .await
            .map_err(|e| fail(format!("cannot write to {program}: {e}")))?;
    }
    let output = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .map_err(|_| fail(format!("{program} did not answer within 60 s")))?
        .map_err(|e| fail(format!("{program}: {e}")))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        // "credentials not found in native keychain" means: nothing stored, go anonymous.
        if stdout.contains("credentials not found") {
            return Ok(Found {
                credential: Credential::Anonymous,
                source: Some(format!("credential helper {program} (no entry)")),
                searched: Vec::new(),
            });
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let why = [stdout.trim(), stderr.trim()]
            .into_iter()
            .find(|s| !s.is_empty())
            .unwrap_or("no message");
        return Err(fail(format!("exited with {}: {why}", output.status)));
    }
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout).map_err(|e| {
        fail(format!(
            "answered something that is not its JSON format: {e}"
        ))
    })?;
    let credential = if answer.username == "<token>" {
        Credential::IdentityToken(Secret::new(answer.secret))
    } else {
        Credential::Basic {
            username: answer.username,
            password: Secret::new(answer.secret),
        }
    };
    Ok(Found {
        credential,
        source: Some(format!("credential helper {program}")),
        searched: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    async fn lookup(path: &Path, registry: &str, repo: &str) -> Result<Found, CredentialError> {
        AuthFiles::discover(Some(path.to_path_buf()))
            .lookup(registry, repo)
            .await
    }

    #[tokio::test]
    async fn reads_auth_username_password_and_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write(
            dir.path(),
            "config.json",
            &format!(
                r#"{{"auths":{{
                "127.0.0.1:5000":{{"auth":"{}"}},
                "https://quay.io":{{"username":"u","password":"p"}},
                "acr.example.io":{{"identitytoken":"refresh"}},
                "tok.example.io":{{"registrytoken":"bearer"}}
            }}}}"#,
                b64("alice:s3:cret")
            ),
        );
        match lookup(&cfg, "127.0.0.1:5000", "app")
            .await
            .unwrap()
            .credential
        {
            Credential::Basic { username, password } => {
                assert_eq!(username, "alice");
                assert_eq!(password.expose(), "s3:cret", "only the first ':' separates");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            lookup(&cfg, "quay.io", "o/a").await.unwrap().credential,
            Credential::Basic { .. }
        ));
        assert!(matches!(
            lookup(&cfg, "acr.example.io", "a")
                .await
                .unwrap()
                .credential,
            Credential::IdentityToken(_)
        ));
        assert!(matches!(
            lookup(&cfg, "tok.example.io", "a")
                .await
                .unwrap()
                .credential,
            Credential::RegistryToken(_)
        ));
        assert!(matches!(
            lookup(&cfg, "other.example.io", "a")
                .await
                .unwrap()
                .credential,
            Credential::Anonymous
        ));
    }

    #[tokio::test]
    async fn docker_hub_is_found_under_its_legacy_url_and_podman_scopes_are_honoured() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write(
            dir.path(),
            "auth.json",
            &format!(
                r#"{{"auths":{{
                "https://index.docker.io/v1/":{{"auth":"{}"}},
                "quay.io":{{"auth":"{}"}},
                "quay.io/team":{{"auth":"{}"}}
            }}}}"#,
                b64("hub:pw"),
                b64("general:pw"),
                b64("team:pw")
            ),
        );
        let who = |f: Found| f.credential.who();
        assert_eq!(
            who(lookup(&cfg, "docker.io", "library/nginx").await.unwrap()),
            "user 'hub'"
        );
        assert_eq!(
            who(lookup(&cfg, "quay.io", "team/app").await.unwrap()),
            "user 'team'"
        );
        assert_eq!(
            who(lookup(&cfg, "quay.io", "other/app").await.unwrap()),
            "user 'general'"
        );
    }

    #[tokio::test]
    async fn bad_files_are_errors_that_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = write(dir.path(), "config.json", "{\"auths\": {\n  \"x\": [}");
        let err = lookup(&cfg, "x", "a").await.unwrap_err().to_string();
        assert!(
            err.contains("config.json is not a valid docker config file"),
            "{err}"
        );
        assert!(err.contains("line 2"), "{err}");

        let cfg = write(
            dir.path(),
            "bad-auth.json",
            r#"{"auths":{"x":{"auth":"%%%"}}}"#,
        );
        let err = lookup(&cfg, "x", "a").await.unwrap_err().to_string();
        assert!(
            err.contains("the \"auth\" entry for x is not valid base64"),
            "{err}"
        );

        let missing = dir.path().join("nope.json");
        let err = lookup(&missing, "x", "a").await.unwrap_err().to_string();
        assert!(err.starts_with("--registry-config"), "{err}");
        assert!(err.contains("nope.json"), "{err}");
    }

    #[tokio::test]
    async fn credential_helpers_are_run_with_the_registry_on_stdin() {
        let dir = tempfile::tempdir().unwrap();
        // A helper script that answers only for one registry, as real helpers do.
        let helper = write(
            dir.path(),
            "docker-credential-imagegate-test",
            "#!/bin/sh\nread server\nif [ \"$server\" = 'reg.example.io' ]; then\n  echo '{\"ServerURL\":\"reg.example.io\",\"Username\":\"bob\",\"Secret\":\"pw\"}'\nelif [ \"$server\" = 'tok.example.io' ]; then\n  echo '{\"Username\":\"<token>\",\"Secret\":\"refresh\"}'\nelse\n  echo 'credentials not found in native keychain'; exit 1\nfi\n",
        );
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        // SAFETY: this test is the only one that changes PATH, and helpers are looked up at spawn.
        unsafe { std::env::set_var("PATH", &path) };

        let cfg = write(
            dir.path(),
            "config.json",
            r#"{"credHelpers":{"reg.example.io":"imagegate-test"},"credsStore":"imagegate-test"}"#,
        );
        let found = lookup(&cfg, "reg.example.io", "a").await.unwrap();
        assert_eq!(found.credential.who(), "user 'bob'");
        assert_eq!(
            found.source.as_deref(),
            Some("credential helper docker-credential-imagegate-test")
        );
        assert!(matches!(
            lookup(&cfg, "tok.example.io", "a")
                .await
                .unwrap()
                .credential,
            Credential::IdentityToken(_)
        ));
        assert!(matches!(
            lookup(&cfg, "unknown.example.io", "a")
                .await
                .unwrap()
                .credential,
            Credential::Anonymous
        ));

        let cfg = write(
            dir.path(),
            "missing-helper.json",
            r#"{"credHelpers":{"x.io":"does-not-exist"}}"#,
        );
        let err = lookup(&cfg, "x.io", "a").await.unwrap_err().to_string();
        assert!(
            err.contains("docker-credential-does-not-exist is not on PATH"),
            "{err}"
        );
    }
}
