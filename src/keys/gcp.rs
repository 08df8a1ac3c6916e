//! `gcpkms://projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/N]`: a Google
//! Cloud KMS asymmetric signing key, used over the KMS REST API (v1) the way cosign uses it:
//! the key's purpose must be `ASYMMETRIC_SIGN`; the version is the one named, or the newest
//! `ENABLED` one; the public key and every signature travel with CRC32C checksums, which are
//! checked both ways.
//!
//! Credentials are Google's Application Default Credentials: the file named by
//! `GOOGLE_APPLICATION_CREDENTIALS`, else gcloud's `application_default_credentials.json`, else
//! the metadata server. Files may hold a service account key (a self-signed RS256 JWT traded for
//! a token), an `authorized_user` refresh token, an `external_account` (workload identity
//! federation: a subject token from a file or URL traded at Google's STS, optionally for a
//! service account's token) or an `impersonated_service_account`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use sha2::Digest as _;

use super::remote::{self, B64, Lenient, Reply, Rest, Token, TokenCache};
use super::{Environment, KeyContext, KeyError, KeyRef, PublicKey};
use crate::secret::Secret;

const BACKEND: &str = "Google Cloud KMS";
const KMS_SCOPE: &str = "https://www.googleapis.com/auth/cloudkms";
const CLOUD_PLATFORM_SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const KMS_ENDPOINT: &str = "https://cloudkms.googleapis.com/";
const GOOGLE_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";
const METADATA_HOST: &str = "metadata.google.internal";
const METADATA_TOKEN_PATH: &str = "/computeMetadata/v1/instance/service-accounts/default/token";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// How long a self-signed service-account assertion is valid (Google's maximum).
const ASSERTION_LIFETIME: u64 = 3600;
/// Pages of key versions read at most when looking for the newest enabled one.
const MAX_PAGES: usize = 50;

/// Parses what follows `gcpkms://` (`…/versions/N` is accepted as cosign accepts it).
pub fn parse_ref(rest: &str) -> Result<KeyRef, String> {
    let parts: Vec<&str> = rest.split('/').collect();
    let shape =
        "gcpkms:// needs projects/P/locations/L/keyRings/R/cryptoKeys/K[/cryptoKeyVersions/N]";
    if parts.len() < 8 || parts.iter().any(|p| p.is_empty()) {
        return Err(shape.to_string());
    }
    let fixed = [
        (0, "projects"),
        (2, "locations"),
        (4, "keyRings"),
        (6, "cryptoKeys"),
    ];
    if fixed.iter().any(|(i, word)| parts[*i] != *word) {
        return Err(shape.to_string());
    }
    let key_name = parts[..8].join("/");
    let version = match &parts[8..] {
        [] => None,
        ["cryptoKeyVersions" | "versions", n] => Some(n.to_string()),
        _ => return Err(shape.to_string()),
    };
    Ok(KeyRef::Gcp { key_name, version })
}

/// The digest KMS signs for an algorithm cosign signatures can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hash {
    Sha256,
    Sha384,
}

impl Hash {
    fn for_algorithm(algorithm: &str) -> Option<Hash> {
        match algorithm {
            "EC_SIGN_P256_SHA256"
            | "RSA_SIGN_PKCS1_2048_SHA256"
            | "RSA_SIGN_PKCS1_3072_SHA256"
            | "RSA_SIGN_PKCS1_4096_SHA256" => Some(Hash::Sha256),
            "EC_SIGN_P384_SHA384" => Some(Hash::Sha384),
            _ => None,
        }
    }

    fn digest(self, payload: &[u8]) -> Vec<u8> {
        match self {
            Hash::Sha256 => sha2::Sha256::digest(payload).to_vec(),
            Hash::Sha384 => sha2::Sha384::digest(payload).to_vec(),
        }
    }

    /// The field of KMS's `Digest` message.
    fn field(self) -> &'static str {
        match self {
            Hash::Sha256 => "sha256",
            Hash::Sha384 => "sha384",
        }
    }
}

/// A Cloud KMS key version that signs, and its public key.
pub struct GcpKey {
    rest: Rest,
    /// `https://cloudkms.googleapis.com/v1/` or the override.
    base: String,
    credentials: Credentials,
    /// `projects/…/cryptoKeyVersions/N`
    version_name: String,
    hash: Hash,
    public: PublicKey,
}

impl std::fmt::Debug for GcpKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GcpKey")
            .field("version", &self.version_name)
            .field("hash", &self.hash)
            .field("credentials", &self.credentials.origin)
            .finish()
    }
}

impl GcpKey {
    /// Finds the key version (the one named, or the newest enabled one) and reads its public key.
    pub async fn connect(
        key_name: &str,
        version: Option<&str>,
        ctx: &KeyContext<'_>,
    ) -> Result<GcpKey, KeyError> {
        let uri = KeyRef::Gcp {
            key_name: key_name.to_string(),
            version: version.map(str::to_string),
        }
        .to_string();
        check_names(&uri, key_name, version)?;
        let base = kms_base(ctx.env)?;
        let rest = Rest::new(BACKEND, ctx.http)?;
        let credentials = Credentials::discover(ctx.env, &rest).await?;
        let kms = Kms {
            rest: &rest,
            base: &base,
            credentials: &credentials,
        };

        let crypto_key: CryptoKey = kms
            .get(key_name, "", "cloudkms.cryptoKeys.get", "a CryptoKey")
            .await?;
        if crypto_key.purpose != "ASYMMETRIC_SIGN" {
            return Err(KeyError::NotAKey {
                origin: uri,
                reason: format!(
                    "its purpose is {}, and signing needs a key created with purpose ASYMMETRIC_SIGN",
                    if crypto_key.purpose.is_empty() {
                        "not given"
                    } else {
                        &crypto_key.purpose
                    }
                ),
            });
        }

        let chosen = match version {
            Some(n) => {
                let name = format!("{key_name}/cryptoKeyVersions/{n}");
                let found: KeyVersion = kms
                    .get(
                        &name,
                        "",
                        "cloudkms.cryptoKeyVersions.get",
                        "a CryptoKeyVersion",
                    )
                    .await?;
                if found.name != name {
                    return Err(KeyError::Remote {
                        backend: BACKEND,
                        message: format!(
                            "GET {base}{name} answered with the version '{}'",
                            found.name
                        ),
                        transient: false,
                    });
                }
                if found.state != "ENABLED" {
                    return Err(KeyError::NotAKey {
                        origin: uri,
                        reason: format!(
                            "version {n} is {}; only an ENABLED version can sign (enable it, or leave the version out to use the newest enabled one)",
                            found.state
                        ),
                    });
                }
                found
            }
            None => kms.newest_enabled(key_name, &uri).await?,
        };
        let hash = Hash::for_algorithm(&chosen.algorithm).ok_or_else(|| KeyError::NotAKey {
            origin: uri.clone(),
            reason: format!(
                "its algorithm {} cannot make cosign signatures; use EC_SIGN_P256_SHA256, EC_SIGN_P384_SHA384 or RSA_SIGN_PKCS1_*_SHA256",
                chosen.algorithm
            ),
        })?;

        let public = kms.public_key(&chosen.name).await?;
        let public = PublicKey::from_pem(&public, &uri)?;
        Ok(GcpKey {
            version_name: chosen.name,
            hash,
            public,
            rest,
            base,
            credentials,
        })
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// `POST …/cryptoKeyVersions/N:asymmetricSign` with the payload's digest and its CRC32C;
    /// the answer's `verifiedDigestCrc32c`, `name` and `signatureCrc32c` are all checked.
    pub async fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, KeyError> {
        let digest = self.hash.digest(payload);
        let body = serde_json::json!({
            "digest": { self.hash.field(): B64.encode(&digest) },
            "digestCrc32c": crc32c::crc32c(&digest).to_string(),
        });
        let url = format!("{}{}:asymmetricSign", self.base, self.version_name);
        let token = self.credentials.token(&self.rest).await?;
        let kms = Kms {
            rest: &self.rest,
            base: &self.base,
            credentials: &self.credentials,
        };
        self.rest
            .call(
                Method::POST,
                &url,
                &[token.expose()],
                |r| kms.authorize(r, &token).json(&body),
                |reply| {
                    if !reply.is_success() {
                        return Err(kms.failure(&reply, "cloudkms.cryptoKeyVersions.useToSign"));
                    }
                    let answer: SignAnswer = reply.json("an AsymmetricSignResponse")?;
                    check_signature(&reply, answer, &self.version_name)
                },
            )
            .await
    }
}

/// Checks an AsymmetricSignResponse as Google asks clients to: corruption on the way (either
/// checksum) is worth another try, an answer for another version is not.
fn check_signature(
    reply: &Reply,
    answer: SignAnswer,
    version_name: &str,
) -> Result<Vec<u8>, KeyError> {
    if !answer.verified_digest_crc32c {
        return Err(reply.unusable(
            "KMS did not confirm the digest's CRC32C (verifiedDigestCrc32c is false): the request was corrupted on the way",
            true,
        ));
    }
    if answer.name.as_deref() != Some(version_name) {
        return Err(reply.unusable(
            &format!(
                "KMS answered for {}, not for {version_name}",
                answer.name.as_deref().unwrap_or("no key version")
            ),
            false,
        ));
    }
    let signature = B64
        .decode(answer.signature.trim())
        .map_err(|_| reply.unusable("the signature is not base64", false))?;
    let expected = answer
        .signature_crc32c
        .as_ref()
        .and_then(Lenient::value)
        .ok_or_else(|| reply.unusable("the answer has no signatureCrc32c", false))?;
    if u64::from(crc32c::crc32c(&signature)) != expected {
        return Err(reply.unusable(
            "the signature's CRC32C does not match signatureCrc32c: the answer was corrupted on the way",
            true,
        ));
    }
    Ok(signature)
}

/// Requests to the KMS API with the caller's token.
struct Kms<'a> {
    rest: &'a Rest,
    base: &'a str,
    credentials: &'a Credentials,
}

impl Kms<'_> {
    fn authorize(
        &self,
        request: reqwest::RequestBuilder,
        token: &Secret,
    ) -> reqwest::RequestBuilder {
        let request = request.bearer_auth(token.expose());
        match &self.credentials.quota_project {
            Some(project) => request.header("x-goog-user-project", project),
            None => request,
        }
    }

    /// `GET {base}{name}{query}` as `T`; `permission` is what a 403 means is missing.
    async fn get<T: DeserializeOwned>(
        &self,
        name: &str,
        query: &str,
        permission: &str,
        what: &str,
    ) -> Result<T, KeyError> {
        self.get_page(name, query, None, permission, what).await
    }

    async fn get_page<T: DeserializeOwned>(
        &self,
        name: &str,
        query: &str,
        page_token: Option<&str>,
        permission: &str,
        what: &str,
    ) -> Result<T, KeyError> {
        let url = format!("{}{name}{query}", self.base);
        let token = self.credentials.token(self.rest).await?;
        self.rest
            .call(
                Method::GET,
                &url,
                &[token.expose()],
                |r| {
                    let r = self.authorize(r, &token);
                    match page_token {
                        Some(page) => r.query(&[("pageToken", page)]),
                        None => r,
                    }
                },
                |reply| {
                    if reply.is_success() {
                        reply.json(what)
                    } else {
                        Err(self.failure(&reply, permission))
                    }
                },
            )
            .await
    }

    /// The newest ENABLED version: cosign asks for `orderBy=name desc` and takes the first, but
    /// names sort as text (`…/9` after `…/10`), so every page is read and the highest number wins.
    async fn newest_enabled(&self, key_name: &str, uri: &str) -> Result<KeyVersion, KeyError> {
        let list = format!("{key_name}/cryptoKeyVersions");
        let query = "?filter=state%3DENABLED&orderBy=name%20desc";
        let prefix = format!("{key_name}/cryptoKeyVersions/");
        let mut best: Option<(u64, KeyVersion)> = None;
        let mut page: Option<String> = None;
        for _ in 0..MAX_PAGES {
            let answer: VersionList = self
                .get_page(
                    &list,
                    query,
                    page.as_deref(),
                    "cloudkms.cryptoKeyVersions.list",
                    "a list of CryptoKeyVersions",
                )
                .await?;
            for version in answer.crypto_key_versions {
                let number = version
                    .name
                    .strip_prefix(&prefix)
                    .and_then(|n| n.parse::<u64>().ok());
                if let Some(number) = number
                    && version.state == "ENABLED"
                    && best.as_ref().is_none_or(|(b, _)| number > *b)
                {
                    best = Some((number, version));
                }
            }
            match answer.next_page_token {
                Some(next) if !next.is_empty() => page = Some(next),
                _ => break,
            }
        }
        best.map(|(_, v)| v).ok_or_else(|| KeyError::NotAKey {
            origin: uri.to_string(),
            reason: "the key has no ENABLED version: create or enable one, or name a version"
                .to_string(),
        })
    }

    /// The version's public key PEM, its `pemCrc32c` checked.
    async fn public_key(&self, version_name: &str) -> Result<String, KeyError> {
        let url = format!("{}{version_name}/publicKey", self.base);
        let token = self.credentials.token(self.rest).await?;
        self.rest
            .call(
                Method::GET,
                &url,
                &[token.expose()],
                |r| self.authorize(r, &token),
                |reply| {
                    if !reply.is_success() {
                        return Err(
                            self.failure(&reply, "cloudkms.cryptoKeyVersions.viewPublicKey")
                        );
                    }
                    let answer: PublicKeyAnswer = reply.json("a PublicKey")?;
                    if let Some(name) = &answer.name
                        && name != version_name
                    {
                        return Err(reply.unusable(
                            &format!("KMS answered with the public key of {name}"),
                            false,
                        ));
                    }
                    let expected = answer
                        .pem_crc32c
                        .as_ref()
                        .and_then(Lenient::value)
                        .ok_or_else(|| reply.unusable("the answer has no pemCrc32c", false))?;
                    if u64::from(crc32c::crc32c(answer.pem.as_bytes())) != expected {
                        return Err(reply.unusable(
                            "the public key's CRC32C does not match pemCrc32c: the answer was corrupted on the way",
                            true,
                        ));
                    }
                    Ok(answer.pem)
                },
            )
            .await
    }

    /// A KMS refusal in words, with what to grant for a 403.
    fn failure(&self, reply: &Reply, permission: &str) -> KeyError {
        let origin = &self.credentials.origin;
        let advice = match reply.status.as_u16() {
            401 => format!("the access token was refused; check the credentials ({origin})"),
            403 => format!(
                "the caller ({origin}) lacks the IAM permission {permission} on the key; grant roles/cloudkms.signerVerifier and roles/cloudkms.viewer on the key (or its key ring)"
            ),
            404 => {
                "no such key or key version (or the caller may not see it): check the gcpkms:// URI"
                    .to_string()
            }
            _ => return reply.failure(None, false),
        };
        reply.failure(Some(&advice), false)
    }
}

#[derive(Deserialize)]
struct CryptoKey {
    #[serde(default)]
    purpose: String,
}

#[derive(Deserialize)]
struct KeyVersion {
    name: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    algorithm: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VersionList {
    #[serde(default)]
    crypto_key_versions: Vec<KeyVersion>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PublicKeyAnswer {
    pem: String,
    pem_crc32c: Option<Lenient>,
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SignAnswer {
    signature: String,
    signature_crc32c: Option<Lenient>,
    #[serde(default)]
    verified_digest_crc32c: bool,
    name: Option<String>,
}

/// Resource names go into URL paths: only the characters Google allows in them (project ids
/// may hold `:` and `.`, as in `example.com:project`); the version is a number.
fn check_names(uri: &str, key_name: &str, version: Option<&str>) -> Result<(), KeyError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':');
    if !key_name.split('/').all(|part| part.chars().all(allowed)) {
        return Err(KeyError::BadUri {
            uri: uri.to_string(),
            reason: "resource names are letters, digits, '-', '_', '.' and ':'".to_string(),
        });
    }
    if let Some(v) = version
        && !v.chars().all(|c| c.is_ascii_digit())
    {
        return Err(KeyError::BadUri {
            uri: uri.to_string(),
            reason: "the key version is a number (cryptoKeyVersions/N)".to_string(),
        });
    }
    Ok(())
}

/// `https://cloudkms.googleapis.com/v1/`, or gcloud's override with `v1/` added when missing.
fn kms_base(env: &Environment) -> Result<String, KeyError> {
    const OVERRIDE: &str = "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDKMS";
    let root = env.non_empty(OVERRIDE).unwrap_or(KMS_ENDPOINT);
    let valid = reqwest::Url::parse(root)
        .map(|u| matches!(u.scheme(), "http" | "https") && u.query().is_none())
        .unwrap_or(false);
    if !valid {
        return Err(KeyError::NotConfigured {
            backend: BACKEND,
            reason: format!(
                "{OVERRIDE}='{root}' is not an http(s) URL such as https://cloudkms.googleapis.com/"
            ),
        });
    }
    let mut base = root.trim_end_matches('/').to_string();
    if !base.ends_with("/v1") {
        base.push_str("/v1");
    }
    base.push('/');
    Ok(base)
}

/// Application Default Credentials, found once per key; tokens are cached until near expiry.
struct Credentials {
    source: Source,
    /// Where they were found, for messages ("service account ci@p.iam.gserviceaccount.com from
    /// /path (GOOGLE_APPLICATION_CREDENTIALS)").
    origin: String,
    /// `GOOGLE_CLOUD_QUOTA_PROJECT` or the file's `quota_project_id`, sent as
    /// `x-goog-user-project`.
    quota_project: Option<String>,
    cache: TokenCache,
}

enum Source {
    ServiceAccount {
        email: String,
        key: Secret,
        key_id: Option<String>,
        token_uri: String,
    },
    AuthorizedUser {
        client_id: String,
        client_secret: Secret,
        refresh_token: Secret,
        token_uri: String,
    },
    External(Box<External>),
    /// gcloud's `--impersonate-service-account` ADC: a user or service account's token traded
    /// for the target service account's.
    Impersonated {
        source: Box<Source>,
        url: String,
        lifetime: Option<u64>,
    },
    Metadata {
        host: String,
    },
}

/// Workload identity federation (`type: external_account`).
struct External {
    audience: String,
    subject_token_type: String,
    token_url: String,
    impersonation_url: Option<String>,
    lifetime: Option<u64>,
    subject: Subject,
    format: SubjectFormat,
    client: Option<(String, Secret)>,
    workforce_user_project: Option<String>,
}

enum Subject {
    File(PathBuf),
    Url {
        url: String,
        headers: Vec<(String, Secret)>,
    },
}

enum SubjectFormat {
    Text,
    Json(String),
}

/// The fields of every kind of ADC file; which ones matter depends on `type`.
#[derive(Deserialize)]
struct CredentialFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    quota_project_id: Option<String>,
    audience: Option<String>,
    subject_token_type: Option<String>,
    token_url: Option<String>,
    service_account_impersonation_url: Option<String>,
    service_account_impersonation: Option<ImpersonationOptions>,
    credential_source: Option<CredentialSource>,
    workforce_pool_user_project: Option<String>,
    source_credentials: Option<Box<CredentialFile>>,
}

#[derive(Deserialize)]
struct ImpersonationOptions {
    token_lifetime_seconds: Option<u64>,
}

#[derive(Deserialize)]
struct CredentialSource {
    file: Option<String>,
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    format: Option<SourceFormat>,
    executable: Option<serde_json::Value>,
    environment_id: Option<String>,
}

#[derive(Deserialize)]
struct SourceFormat {
    #[serde(rename = "type")]
    kind: Option<String>,
    subject_token_field_name: Option<String>,
}

impl Credentials {
    /// ADC's order: `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's well-known file, the metadata
    /// server (`GCE_METADATA_HOST`, or `metadata.google.internal` if it answers and
    /// `NO_GCE_CHECK` is not set).
    async fn discover(env: &Environment, rest: &Rest) -> Result<Credentials, KeyError> {
        let quota_env = env
            .non_empty("GOOGLE_CLOUD_QUOTA_PROJECT")
            .map(str::to_string);
        if let Some(path) = env.non_empty("GOOGLE_APPLICATION_CREDENTIALS") {
            let path = PathBuf::from(path);
            let label = format!("{} (GOOGLE_APPLICATION_CREDENTIALS)", path.display());
            return Credentials::from_file(&path, &label, quota_env);
        }
        if let Some(path) = well_known_file(env)
            && path.is_file()
        {
            let label = format!(
                "{} (gcloud's application default credentials)",
                path.display()
            );
            return Credentials::from_file(&path, &label, quota_env);
        }
        let explicit = env
            .non_empty("GCE_METADATA_HOST")
            .or_else(|| env.non_empty("GCE_METADATA_ROOT"));
        let host = match explicit {
            Some(host) => host.trim_end_matches('/').to_string(),
            None => {
                let skip = env
                    .get("NO_GCE_CHECK")
                    .is_some_and(|v| v.eq_ignore_ascii_case("true") || v == "1");
                // Google's libraries check the answer's Metadata-Flavor header the same way.
                let here = !skip
                    && rest
                        .probe(&format!("http://{METADATA_HOST}/"), |r| {
                            r.header("Metadata-Flavor", "Google")
                        })
                        .await
                        .is_some_and(|answer| {
                            answer
                                .headers()
                                .get("Metadata-Flavor")
                                .is_some_and(|v| v == "Google")
                        });
                if !here {
                    return Err(nothing_found(env, skip));
                }
                METADATA_HOST.to_string()
            }
        };
        if host.contains(['/', '?', '#', '@']) {
            return Err(KeyError::NotConfigured {
                backend: BACKEND,
                reason: format!("GCE_METADATA_HOST='{host}' should be HOST or HOST:PORT"),
            });
        }
        Ok(Credentials {
            origin: format!("the metadata server at {host}"),
            source: Source::Metadata { host },
            quota_project: quota_env,
            cache: TokenCache::default(),
        })
    }

    fn from_file(
        path: &Path,
        label: &str,
        quota_env: Option<String>,
    ) -> Result<Credentials, KeyError> {
        let not_configured = |reason: String| KeyError::NotConfigured {
            backend: BACKEND,
            reason,
        };
        let text = remote::read_small_file(path)
            .map(Secret::new)
            .map_err(|e| not_configured(format!("cannot read the credential file {label}: {e}")))?;
        let file: CredentialFile = serde_json::from_str(text.expose()).map_err(|e| {
            not_configured(format!(
                "the credential file {label} is not a Google credential JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let quota_project = quota_env.or_else(|| file.quota_project_id.clone());
        let (source, who) = source_from_file(file, label).map_err(not_configured)?;
        Ok(Credentials {
            origin: format!("{who} from {label}"),
            source,
            quota_project,
            cache: TokenCache::default(),
        })
    }

    /// A token for Cloud KMS, cached until two minutes before it expires.
    async fn token(&self, rest: &Rest) -> Result<Secret, KeyError> {
        self.cache
            .get(KMS_SCOPE, || async {
                match &self.source {
                    Source::Impersonated {
                        source,
                        url,
                        lifetime,
                    } => {
                        // The source token must be allowed to call the IAM Credentials API.
                        let base = fetch(source, CLOUD_PLATFORM_SCOPE, rest, &self.origin).await?;
                        impersonate(rest, &base.value, url, *lifetime, &self.origin).await
                    }
                    other => fetch(other, KMS_SCOPE, rest, &self.origin).await,
                }
            })
            .await
    }
}

/// gcloud's `application_default_credentials.json` (`$CLOUDSDK_CONFIG` or `~/.config/gcloud`).
fn well_known_file(env: &Environment) -> Option<PathBuf> {
    let dir = match env.non_empty("CLOUDSDK_CONFIG") {
        Some(dir) => PathBuf::from(dir),
        None => env.home()?.join(".config").join("gcloud"),
    };
    Some(dir.join("application_default_credentials.json"))
}

fn nothing_found(env: &Environment, skipped_metadata: bool) -> KeyError {
    let gcloud = well_known_file(env)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|| "~/.config/gcloud/application_default_credentials.json".to_string());
    let metadata = if skipped_metadata {
        "NO_GCE_CHECK is set, so the metadata server was not tried"
    } else {
        "no metadata server answered at metadata.google.internal"
    };
    KeyError::NotConfigured {
        backend: BACKEND,
        reason: format!(
            "no Google credentials found: GOOGLE_APPLICATION_CREDENTIALS is not set, {gcloud} does not exist, and {metadata}. Set GOOGLE_APPLICATION_CREDENTIALS to a service account key or workload identity federation file, run `gcloud auth application-default login`, or set GCE_METADATA_HOST where a metadata server runs"
        ),
    }
}

/// The token source an ADC file describes, and who it is in words.
fn source_from_file(file: CredentialFile, label: &str) -> Result<(Source, String), String> {
    let missing =
        |kind: &str, field: &str| format!("the {kind} credential file {label} has no '{field}'");
    match file.kind.as_deref() {
        Some("service_account") => {
            let email = file
                .client_email
                .ok_or_else(|| missing("service_account", "client_email"))?;
            let key = file
                .private_key
                .map(Secret::new)
                .ok_or_else(|| missing("service_account", "private_key"))?;
            let who = format!("service account {email}");
            Ok((
                Source::ServiceAccount {
                    email,
                    key,
                    key_id: file.private_key_id,
                    token_uri: file
                        .token_uri
                        .unwrap_or_else(|| GOOGLE_TOKEN_URI.to_string()),
                },
                who,
            ))
        }
        Some("authorized_user") => {
            let client_id = file
                .client_id
                .ok_or_else(|| missing("authorized_user", "client_id"))?;
            let client_secret = file
                .client_secret
                .map(Secret::new)
                .ok_or_else(|| missing("authorized_user", "client_secret"))?;
            let refresh_token = file
                .refresh_token
                .map(Secret::new)
                .ok_or_else(|| missing("authorized_user", "refresh_token"))?;
            Ok((
                Source::AuthorizedUser {
                    client_id,
                    client_secret,
                    refresh_token,
                    token_uri: file
                        .token_uri
                        .unwrap_or_else(|| GOOGLE_TOKEN_URI.to_string()),
                },
                "gcloud user credentials".to_string(),
            ))
        }
        Some("external_account") => external_from_file(file, label),
        Some("impersonated_service_account") => {
            let url = file.service_account_impersonation_url.ok_or_else(|| {
                missing(
                    "impersonated_service_account",
                    "service_account_impersonation_url",
                )
            })?;
            let inner = file
                .source_credentials
                .ok_or_else(|| missing("impersonated_service_account", "source_credentials"))?;
            if !matches!(
                inner.kind.as_deref(),
                Some("service_account" | "authorized_user")
            ) {
                return Err(format!(
                    "the source_credentials in {label} must be a service_account or authorized_user"
                ));
            }
            let (source, inner_who) = source_from_file(*inner, label)?;
            let who = format!(
                "{} impersonated by {inner_who}",
                target_account(&url).unwrap_or("a service account")
            );
            Ok((
                Source::Impersonated {
                    source: Box::new(source),
                    url,
                    lifetime: None,
                },
                who,
            ))
        }
        Some(other) => Err(format!(
            "the credential file {label} has type '{other}'; imagegate understands service_account, authorized_user, external_account and impersonated_service_account"
        )),
        None => Err(format!("the credential file {label} has no 'type'")),
    }
}

fn external_from_file(file: CredentialFile, label: &str) -> Result<(Source, String), String> {
    let missing = |field: &str| format!("the external_account file {label} has no '{field}'");
    let audience = file.audience.ok_or_else(|| missing("audience"))?;
    let subject_token_type = file
        .subject_token_type
        .ok_or_else(|| missing("subject_token_type"))?;
    let token_url = file.token_url.ok_or_else(|| missing("token_url"))?;
    let source = file
        .credential_source
        .ok_or_else(|| missing("credential_source"))?;
    if source.executable.is_some() || source.environment_id.is_some() {
        return Err(format!(
            "the external_account file {label} takes its subject token from an executable or from AWS; imagegate reads credential_source.file or credential_source.url only"
        ));
    }
    let subject = match (source.file, source.url) {
        (Some(file), None) => Subject::File(PathBuf::from(file)),
        (None, Some(url)) => Subject::Url {
            url,
            headers: source
                .headers
                .into_iter()
                .map(|(k, v)| (k, Secret::new(v)))
                .collect(),
        },
        _ => {
            return Err(format!(
                "the credential_source in {label} needs exactly one of 'file' and 'url'"
            ));
        }
    };
    let format = match source.format {
        None => SubjectFormat::Text,
        Some(f) => match f.kind.as_deref() {
            None | Some("text") => SubjectFormat::Text,
            Some("json") => SubjectFormat::Json(f.subject_token_field_name.ok_or_else(|| {
                format!("the credential_source.format in {label} is json but names no subject_token_field_name")
            })?),
            Some(other) => {
                return Err(format!(
                    "the credential_source.format type '{other}' in {label} is not text or json"
                ));
            }
        },
    };
    let client = match (file.client_id, file.client_secret) {
        (Some(id), Some(secret)) => Some((id, Secret::new(secret))),
        _ => None,
    };
    let impersonation_url = file.service_account_impersonation_url;
    let who = match impersonation_url.as_deref().and_then(target_account) {
        Some(account) => format!("workload identity federation as {account}"),
        None => "workload identity federation".to_string(),
    };
    Ok((
        Source::External(Box::new(External {
            audience,
            subject_token_type,
            token_url,
            impersonation_url,
            lifetime: file
                .service_account_impersonation
                .and_then(|o| o.token_lifetime_seconds),
            subject,
            format,
            client,
            workforce_user_project: file.workforce_pool_user_project,
        })),
        who,
    ))
}

/// The service account an impersonation URL names (`…/serviceAccounts/EMAIL:generateAccessToken`).
fn target_account(url: &str) -> Option<&str> {
    let tail = url.rsplit_once("/serviceAccounts/")?.1;
    Some(tail.split(':').next().unwrap_or(tail))
}

/// A token from a source that is not an impersonation.
async fn fetch(source: &Source, scope: &str, rest: &Rest, origin: &str) -> Result<Token, KeyError> {
    match source {
        Source::ServiceAccount {
            email,
            key,
            key_id,
            token_uri,
        } => {
            let now = remote::unix_now();
            let mut header = serde_json::json!({"alg": "RS256", "typ": "JWT"});
            if let Some(id) = key_id {
                header["kid"] = serde_json::Value::String(id.clone());
            }
            // No `sub`: that asks for domain-wide delegation (Google's libraries omit it too).
            let claims = serde_json::json!({
                "iss": email,
                "scope": scope,
                "aud": token_uri,
                "iat": now,
                "exp": now + ASSERTION_LIFETIME,
            });
            let assertion =
                remote::rs256_jwt(&header, &claims, key).map_err(|reason| KeyError::NotAKey {
                    origin: format!("the private_key of {origin}"),
                    reason,
                })?;
            let refused = format!(
                "the token endpoint refused the service account key of {origin} (deleted or disabled key, or a wrong clock)"
            );
            rest.call(
                Method::POST,
                token_uri,
                &[assertion.expose(), key.expose()],
                |r| {
                    r.form(&[
                        ("grant_type", JWT_BEARER),
                        ("assertion", assertion.expose()),
                    ])
                },
                |reply| oauth_token(reply, &refused),
            )
            .await
        }
        Source::AuthorizedUser {
            client_id,
            client_secret,
            refresh_token,
            token_uri,
        } => {
            let refused = format!(
                "the token endpoint refused the refresh token of {origin}; run `gcloud auth application-default login` again"
            );
            rest.call(
                Method::POST,
                token_uri,
                &[client_secret.expose(), refresh_token.expose()],
                |r| {
                    r.form(&[
                        ("grant_type", "refresh_token"),
                        ("client_id", client_id),
                        ("client_secret", client_secret.expose()),
                        ("refresh_token", refresh_token.expose()),
                    ])
                },
                |reply| oauth_token(reply, &refused),
            )
            .await
        }
        Source::External(external) => federate(external, rest, origin).await,
        Source::Metadata { host } => {
            let url = format!("http://{host}{METADATA_TOKEN_PATH}");
            let refused = "the metadata server gave no token: does the instance have a service account, with the cloud-platform or cloudkms scope?";
            rest.call(
                Method::GET,
                &url,
                &[],
                |r| r.header("Metadata-Flavor", "Google"),
                |reply| oauth_token(reply, refused),
            )
            .await
        }
        Source::Impersonated { .. } => Err(KeyError::NotConfigured {
            backend: BACKEND,
            reason: format!("{origin}: an impersonated account cannot be the source of another"),
        }),
    }
}

/// Workload identity federation: the subject token, traded at STS, then (optionally) for the
/// service account's own token.
async fn federate(external: &External, rest: &Rest, origin: &str) -> Result<Token, KeyError> {
    let subject = subject_token(external, rest, origin).await?;
    // Calling the IAM Credentials API needs cloud-platform; a direct token is for KMS only.
    let scope = if external.impersonation_url.is_some() {
        CLOUD_PLATFORM_SCOPE
    } else {
        KMS_SCOPE
    };
    let mut form: Vec<(&str, String)> = vec![
        ("grant_type", TOKEN_EXCHANGE.to_string()),
        ("audience", external.audience.clone()),
        ("scope", scope.to_string()),
        ("requested_token_type", ACCESS_TOKEN_TYPE.to_string()),
        ("subject_token_type", external.subject_token_type.clone()),
    ];
    if let (Some(project), None) = (&external.workforce_user_project, &external.client) {
        form.push((
            "options",
            serde_json::json!({ "userProject": project }).to_string(),
        ));
    }
    let refused = format!(
        "Google's Security Token Service refused the subject token of {origin}: check the workload identity pool provider (audience {}) and its attribute conditions",
        external.audience
    );
    let mut redact = vec![subject.expose()];
    if let Some((_, secret)) = &external.client {
        redact.push(secret.expose());
    }
    let federated = rest
        .call(
            Method::POST,
            &external.token_url,
            &redact,
            |r| {
                let mut fields = form.clone();
                fields.push(("subject_token", subject.expose().to_string()));
                let r = r.form(&fields);
                match &external.client {
                    Some((id, secret)) => r.basic_auth(id, Some(secret.expose())),
                    None => r,
                }
            },
            |reply| oauth_token(reply, &refused),
        )
        .await?;
    match &external.impersonation_url {
        Some(url) => impersonate(rest, &federated.value, url, external.lifetime, origin).await,
        None => Ok(federated),
    }
}

/// The external subject token (an OIDC ID token, a SAML assertion) from a file or a URL.
async fn subject_token(external: &External, rest: &Rest, origin: &str) -> Result<Secret, KeyError> {
    let not_configured = |reason: String| KeyError::NotConfigured {
        backend: BACKEND,
        reason,
    };
    let raw = match &external.subject {
        Subject::File(path) => remote::read_small_file(path)
            .map(Secret::new)
            .map_err(|e| {
                not_configured(format!(
                    "cannot read the subject token file {} named by {origin}: {e}",
                    path.display()
                ))
            })?,
        Subject::Url { url, headers } => {
            let secrets: Vec<&str> = headers.iter().map(|(_, v)| v.expose()).collect();
            rest.call(
                Method::GET,
                url,
                &secrets,
                |mut r| {
                    for (name, value) in headers {
                        r = r.header(name.as_str(), value.expose());
                    }
                    r
                },
                |reply| {
                    if reply.is_success() {
                        Ok(Secret::new(
                            String::from_utf8_lossy(&reply.body).into_owned(),
                        ))
                    } else {
                        Err(reply.failure(
                            Some("the subject token URL of the external_account file refused"),
                            false,
                        ))
                    }
                },
            )
            .await?
        }
    };
    let token = match &external.format {
        SubjectFormat::Text => raw.expose().trim().to_string(),
        SubjectFormat::Json(field) => serde_json::from_str::<serde_json::Value>(raw.expose())
            .ok()
            .and_then(|v| v.get(field).and_then(|t| t.as_str()).map(str::to_string))
            .ok_or_else(|| {
                not_configured(format!(
                    "the subject token source of {origin} gave no JSON with a string field '{field}'"
                ))
            })?,
    };
    if token.is_empty() {
        return Err(not_configured(format!(
            "the subject token source of {origin} is empty"
        )));
    }
    Ok(Secret::new(token))
}

/// IAM Credentials `generateAccessToken` for the service account the URL names.
async fn impersonate(
    rest: &Rest,
    token: &Secret,
    url: &str,
    lifetime: Option<u64>,
    origin: &str,
) -> Result<Token, KeyError> {
    let body = serde_json::json!({
        "scope": [KMS_SCOPE],
        "lifetime": format!("{}s", lifetime.unwrap_or(3600)),
    });
    let advice = format!(
        "the identity of {origin} needs roles/iam.serviceAccountTokenCreator (iam.serviceAccounts.getAccessToken) on {}",
        target_account(url).unwrap_or("the service account")
    );
    rest.call(
        Method::POST,
        url,
        &[token.expose()],
        |r| r.bearer_auth(token.expose()).json(&body),
        |reply| {
            if !reply.is_success() {
                let advice = matches!(reply.status.as_u16(), 401 | 403).then_some(advice.as_str());
                return Err(reply.failure(advice, false));
            }
            let answer: ImpersonatedToken = reply.json("an access token")?;
            let lifetime = chrono::DateTime::parse_from_rfc3339(&answer.expire_time)
                .ok()
                .and_then(|at| {
                    (at.timestamp() - chrono::Utc::now().timestamp())
                        .try_into()
                        .ok()
                })
                .map(Duration::from_secs);
            Ok(Token::new(answer.access_token, lifetime))
        },
    )
    .await
}

#[derive(Deserialize)]
struct OAuthToken {
    access_token: String,
    expires_in: Option<Lenient>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ImpersonatedToken {
    access_token: String,
    expire_time: String,
}

/// An OAuth token endpoint's answer (token endpoint, STS, metadata server).
fn oauth_token(reply: Reply, refused: &str) -> Result<Token, KeyError> {
    if !reply.is_success() {
        return Err(reply.failure(Some(refused), false));
    }
    let answer: OAuthToken = reply.json("an access token")?;
    if answer.access_token.is_empty() {
        return Err(reply.unusable("the answer holds an empty access token", false));
    }
    let lifetime = answer
        .expires_in
        .as_ref()
        .and_then(Lenient::value)
        .map(Duration::from_secs);
    Ok(Token::new(answer.access_token, lifetime))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_key_names_and_versions() {
        let ok = |rest: &str| parse_ref(rest).unwrap();
        assert_eq!(
            ok("projects/p/locations/global/keyRings/r/cryptoKeys/k"),
            KeyRef::Gcp {
                key_name: "projects/p/locations/global/keyRings/r/cryptoKeys/k".into(),
                version: None
            }
        );
        for rest in [
            "projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/3",
            "projects/p/locations/global/keyRings/r/cryptoKeys/k/versions/3",
        ] {
            assert_eq!(
                ok(rest),
                KeyRef::Gcp {
                    key_name: "projects/p/locations/global/keyRings/r/cryptoKeys/k".into(),
                    version: Some("3".into())
                }
            );
        }
        for bad in [
            "",
            "projects/p",
            "projects/p/locations/global/keyRings/r/cryptoKey/k",
            "projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions",
            "projects/p/locations/global/keyRings/r/cryptoKeys/k/other/3",
            "projects//locations/global/keyRings/r/cryptoKeys/k",
        ] {
            assert!(parse_ref(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn names_that_would_change_the_url_are_refused() {
        let name = "projects/p/locations/global/keyRings/r/cryptoKeys/k";
        assert!(check_names("u", name, Some("12")).is_ok());
        assert!(
            check_names(
                "u",
                "projects/example.com:p/locations/l/keyRings/r/cryptoKeys/k",
                None
            )
            .is_ok()
        );
        for (key, version) in [
            ("projects/p?x/locations/l/keyRings/r/cryptoKeys/k", None),
            ("projects/p/locations/l/keyRings/r/cryptoKeys/k#", None),
            (name, Some("1?alt=x")),
            (name, Some("latest")),
        ] {
            let err = check_names("u", key, version).unwrap_err();
            assert!(matches!(err, KeyError::BadUri { .. }), "{key} {version:?}");
        }
    }

    #[test]
    fn the_kms_endpoint_can_be_overridden_as_gcloud_does() {
        let base = |vars: Vec<(&str, &str)>| kms_base(&Environment::from_vars(vars));
        assert_eq!(base(vec![]).unwrap(), "https://cloudkms.googleapis.com/v1/");
        let var = "CLOUDSDK_API_ENDPOINT_OVERRIDES_CLOUDKMS";
        assert_eq!(
            base(vec![(var, "https://127.0.0.1:8443/")]).unwrap(),
            "https://127.0.0.1:8443/v1/"
        );
        assert_eq!(
            base(vec![(var, "https://kms.example/v1")]).unwrap(),
            "https://kms.example/v1/"
        );
        for bad in ["127.0.0.1:8443", "ftp://x/", "https://x/?q=1"] {
            let err = base(vec![(var, bad)]).unwrap_err();
            assert!(err.to_string().contains(var), "{err}");
        }
    }

    #[test]
    fn only_cosign_compatible_algorithms_sign() {
        assert_eq!(
            Hash::for_algorithm("EC_SIGN_P256_SHA256"),
            Some(Hash::Sha256)
        );
        assert_eq!(
            Hash::for_algorithm("EC_SIGN_P384_SHA384"),
            Some(Hash::Sha384)
        );
        assert_eq!(
            Hash::for_algorithm("RSA_SIGN_PKCS1_3072_SHA256"),
            Some(Hash::Sha256)
        );
        for other in [
            "RSA_SIGN_PSS_2048_SHA256",
            "RSA_SIGN_PKCS1_4096_SHA512",
            "EC_SIGN_SECP256K1_SHA256",
            "EC_SIGN_ED25519",
            "GOOGLE_SYMMETRIC_ENCRYPTION",
        ] {
            assert_eq!(Hash::for_algorithm(other), None, "{other}");
        }
        assert_eq!(Hash::Sha384.digest(b"x").len(), 48);
    }

    fn parse(json: &str) -> Result<(Source, String), String> {
        source_from_file(serde_json::from_str(json).unwrap(), "f.json")
    }

    #[test]
    fn credential_files_of_every_kind_are_understood() {
        let (source, who) = parse(
            r#"{"type":"service_account","client_email":"ci@p.iam.gserviceaccount.com","private_key":"k","private_key_id":"id1"}"#,
        )
        .unwrap();
        assert_eq!(who, "service account ci@p.iam.gserviceaccount.com");
        assert!(
            matches!(source, Source::ServiceAccount { token_uri, .. } if token_uri == GOOGLE_TOKEN_URI)
        );

        let (source, _) = parse(
            r#"{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r","token_uri":"https://t/"}"#,
        )
        .unwrap();
        assert!(
            matches!(source, Source::AuthorizedUser { token_uri, .. } if token_uri == "https://t/")
        );

        let (source, who) = parse(
            r#"{"type":"external_account","audience":"//iam.googleapis.com/x","subject_token_type":"urn:ietf:params:oauth:token-type:jwt","token_url":"https://sts/v1/token",
                "service_account_impersonation_url":"https://iam/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken",
                "credential_source":{"url":"https://gh/token?audience=x","headers":{"Authorization":"Bearer t"},"format":{"type":"json","subject_token_field_name":"value"}}}"#,
        )
        .unwrap();
        assert_eq!(
            who,
            "workload identity federation as sa@p.iam.gserviceaccount.com"
        );
        let Source::External(external) = source else {
            panic!("external")
        };
        assert!(matches!(&external.format, SubjectFormat::Json(f) if f == "value"));
        assert!(matches!(&external.subject, Subject::Url { headers, .. } if headers.len() == 1));

        let (source, who) = parse(
            r#"{"type":"impersonated_service_account","service_account_impersonation_url":"https://iam/v1/projects/-/serviceAccounts/t@p.iam.gserviceaccount.com:generateAccessToken",
                "source_credentials":{"type":"authorized_user","client_id":"c","client_secret":"s","refresh_token":"r"}}"#,
        )
        .unwrap();
        assert_eq!(
            who,
            "t@p.iam.gserviceaccount.com impersonated by gcloud user credentials"
        );
        assert!(matches!(source, Source::Impersonated { .. }));
    }

    #[test]
    fn unusable_credential_files_say_why() {
        let err = |json: &str| parse(json).err().unwrap();
        assert!(err(r#"{"type":"service_account","client_email":"x"}"#).contains("private_key"));
        assert!(err(r#"{"type":"gdch_service_account"}"#).contains("gdch_service_account"));
        assert!(err(r#"{}"#).contains("no 'type'"));
        assert!(
            err(r#"{"type":"external_account","audience":"a","subject_token_type":"t","token_url":"u","credential_source":{"executable":{"command":"x"}}}"#)
                .contains("executable")
        );
        assert!(
            err(r#"{"type":"external_account","audience":"a","subject_token_type":"t","token_url":"u","credential_source":{"file":"f","url":"u"}}"#)
                .contains("exactly one")
        );
    }
}
