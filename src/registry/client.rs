//! The registry client: one `oci-client` per registry host, with authentication, retries and
//! size caps around it.
//!
//! `oci-client` does the protocol work: the `/v2/` challenge and token exchange, blob reads and
//! pushes, manifest pushes, tag lists. Manifest reads are the one request made directly here,
//! with the Authorization `oci-client` obtained: `oci-client` reads a manifest body whole before
//! anything can look at its size, and imagegate must refuse a body past 4 MiB without reading it.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig, ClientProtocol};
use oci_client::errors::{OciDistributionError, OciEnvelope, OciErrorCode};
use oci_client::secrets::RegistryAuth;
use oci_client::token_cache::RegistryTokenType;
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use tokio::sync::Mutex;

use super::RegistryError;
use super::credentials::{AuthFiles, Credential, Found};
use crate::digest::Digest;
use crate::http::{self, Http, ReadError, USER_AGENT};
use crate::oci::{MANIFEST_ACCEPT, MANIFEST_LIMIT, RawManifest, declared_media_type};
use crate::reference::{DOCKER_HUB, ImageRef};
use crate::secret::Secret;

/// What a request is allowed to do; tokens are scoped to one repository and one operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Pull,
    Push,
}

impl From<Op> for oci_client::RegistryOperation {
    fn from(op: Op) -> Self {
        match op {
            Op::Pull => oci_client::RegistryOperation::Pull,
            Op::Push => oci_client::RegistryOperation::Push,
        }
    }
}

/// Access to every registry one run of imagegate talks to.
pub struct Registry {
    http: Http,
    auth_files: AuthFiles,
    hosts: Mutex<HashMap<String, Arc<Host>>>,
}

/// One registry host: how to reach it, and what it has granted so far.
struct Host {
    /// As written in image references: `127.0.0.1:5000`, `docker.io`.
    name: String,
    /// Where the API lives: Docker Hub's API is not at `docker.io`.
    api_host: String,
    scheme: &'static str,
    /// What `/v2/` asked for.
    challenge: Challenge,
    oci: oci_client::Client,
    http: reqwest::Client,
    grants: Mutex<HashMap<(String, Op), Arc<Grant>>>,
}

/// How a registry's `/v2/` endpoint asks to be authenticated.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Challenge {
    /// It answered without a challenge: no authentication.
    None,
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
    },
}

/// Authorization for one repository and operation.
struct Grant {
    /// The Authorization header for requests made here (marked sensitive: never logged).
    header: Option<HeaderValue>,
    found: Found,
}

impl Grant {
    fn has_credentials(&self) -> bool {
        !matches!(self.found.credential, Credential::Anonymous)
    }
}

/// What a request was for, so that a failure can be told in the user's terms.
#[derive(Clone, Copy)]
enum Target<'a> {
    Manifest { reference: &'a str },
    Blob { digest: &'a str },
    Push,
    Tags,
    Ping,
}

impl Registry {
    pub fn new(http: Http, auth_files: AuthFiles) -> Registry {
        Registry {
            http,
            auth_files,
            hosts: Mutex::new(HashMap::new()),
        }
    }

    pub fn http(&self) -> &Http {
        &self.http
    }

    /// Fetches a manifest or index by tag or digest. The digest is computed from the bytes; a
    /// digest in the request or in `Docker-Content-Digest` must agree with it.
    pub async fn manifest(
        &self,
        image: &ImageRef,
        reference: &str,
    ) -> Result<RawManifest, RegistryError> {
        let host = self.host(image.registry()).await?;
        let grant = self.grant(&host, image.repository(), Op::Pull).await?;
        let url = format!(
            "{}://{}/v2/{}/manifests/{reference}",
            host.scheme,
            host.api_host,
            image.repository()
        );
        self.http
            .retry(&format!("GET {url}"), || {
                self.get_manifest_once(&host, &grant, image, reference, &url)
            })
            .await
    }

    /// Like [`Registry::manifest`], but a missing tag or repository is `None`, not an error.
    pub async fn manifest_if_exists(
        &self,
        image: &ImageRef,
        reference: &str,
    ) -> Result<Option<RawManifest>, RegistryError> {
        match self.manifest(image, reference).await {
            Ok(m) => Ok(Some(m)),
            Err(RegistryError::ManifestUnknown { .. } | RegistryError::NameUnknown { .. }) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// The index of the manifests whose subject is `digest`: the OCI 1.1 referrers API, or,
    /// where a registry answers it with 404, the `sha256-<hex>` tag of the referrers tag
    /// schema (which cosign and oras write there). `None` when there are none.
    pub async fn referrers(
        &self,
        image: &ImageRef,
        digest: &Digest,
    ) -> Result<Option<RawManifest>, RegistryError> {
        let host = self.host(image.registry()).await?;
        let grant = self.grant(&host, image.repository(), Op::Pull).await?;
        let url = format!(
            "{}://{}/v2/{}/referrers/{digest}",
            host.scheme,
            host.api_host,
            image.repository()
        );
        let answer = self
            .http
            .retry(&format!("GET {url}"), || {
                self.get_manifest_once(&host, &grant, image, "referrers", &url)
            })
            .await;
        // As go-containerregistry (cosign, StackRox): 404, 400 and 406, or an answer that is
        // not an index, mean the API is not there.
        match answer {
            Ok(index) if index.media_type == crate::oci::OCI_INDEX => Ok(Some(index)),
            Ok(_)
            | Err(RegistryError::ManifestUnknown { .. } | RegistryError::NameUnknown { .. })
            | Err(RegistryError::Status {
                status: 400 | 406, ..
            }) => {
                self.manifest_if_exists(image, &digest.referrers_tag())
                    .await
            }
            Err(e) => Err(e),
        }
    }

    async fn get_manifest_once(
        &self,
        host: &Host,
        grant: &Grant,
        image: &ImageRef,
        reference: &str,
        url: &str,
    ) -> Result<RawManifest, RegistryError> {
        let mut request = host.http.get(url).header(ACCEPT, MANIFEST_ACCEPT);
        if let Some(header) = &grant.header {
            request = request.header(AUTHORIZATION, header.clone());
        }
        let response = request
            .send()
            .await
            .map_err(|e| transport_error(e, host, "GET", url))?;
        let status = response.status();
        if !status.is_success() {
            let retry_after = retry_after(&response);
            let body = http::read_capped(response, 64 * 1024)
                .await
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            return Err(status_error(
                status.as_u16(),
                &body,
                retry_after,
                host,
                grant,
                image,
                "GET",
                url,
                Target::Manifest { reference },
            ));
        }
        let header_type = header_string(&response, CONTENT_TYPE.as_str());
        let header_digest = header_string(&response, "docker-content-digest");
        let bytes = http::read_capped(response, MANIFEST_LIMIT)
            .await
            .map_err(|e| read_error(e, host, "GET", url, "the manifest"))?;

        // The digest is what the bytes hash to; a pinned request must get exactly those bytes.
        let mut digest = Digest::sha256_of(&bytes);
        if let Ok(requested) = Digest::parse(reference) {
            if !requested.matches(&bytes) {
                return Err(RegistryError::DigestMismatch {
                    what: "the manifest".into(),
                    url: url.to_string(),
                    expected: requested.to_string(),
                    actual: digest.to_string(),
                });
            }
            digest = requested;
        }
        if let Some(claimed) = header_digest.as_deref().and_then(|h| Digest::parse(h).ok())
            && !claimed.matches(&bytes)
        {
            return Err(RegistryError::DigestMismatch {
                what: "the manifest".into(),
                url: url.to_string(),
                expected: claimed.to_string(),
                actual: digest.to_string(),
            });
        }
        let media_type = declared_media_type(&bytes)
            .or(header_type)
            .unwrap_or_default();
        Ok(RawManifest {
            digest,
            media_type,
            bytes,
        })
    }

    /// Reads a blob, refusing more than `limit` bytes, and checks it against its digest.
    pub async fn blob(
        &self,
        image: &ImageRef,
        digest: &Digest,
        limit: u64,
        what: &str,
    ) -> Result<Bytes, RegistryError> {
        let host = self.host(image.registry()).await?;
        let grant = self.grant(&host, image.repository(), Op::Pull).await?;
        let reference = oci_reference(image);
        let digest_text = digest.to_string();
        let url = format!(
            "{}://{}/v2/{}/blobs/{digest_text}",
            host.scheme,
            host.api_host,
            image.repository()
        );
        let target = Target::Blob {
            digest: &digest_text,
        };
        self.http
            .retry(&format!("GET {url}"), || async {
                let stream = host
                    .oci
                    .pull_blob_stream(&reference, digest_text.as_str())
                    .await
                    .map_err(|e| oci_error(e, &host, &grant, image, "GET", &url, target))?;
                if let Some(len) = stream.content_length
                    && len > limit
                {
                    return Err(RegistryError::TooLarge {
                        what: what.to_string(),
                        url: url.clone(),
                        limit,
                        declared: Some(len),
                    });
                }
                let mut body = BytesMut::new();
                let mut stream = stream.stream;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| {
                        // oci-client checks the digest as the body streams and reports a
                        // mismatch as the stream's last error: that is bad content, not a
                        // network failure to retry.
                        let mismatch = e.get_ref().and_then(|inner| {
                            inner.downcast_ref::<oci_client::errors::DigestError>()
                        });
                        match mismatch {
                            Some(m) => RegistryError::DigestMismatch {
                                what: what.to_string(),
                                url: url.clone(),
                                expected: digest_text.clone(),
                                actual: m.to_string(),
                            },
                            None => RegistryError::Unreachable {
                                registry: host.name.clone(),
                                method: "GET",
                                url: url.clone(),
                                cause: format!("reading the body failed: {e}"),
                                attempts: 1,
                            },
                        }
                    })?;
                    if (body.len() + chunk.len()) as u64 > limit {
                        return Err(RegistryError::TooLarge {
                            what: what.to_string(),
                            url: url.clone(),
                            limit,
                            declared: None,
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
                if !digest.matches(&body) {
                    return Err(RegistryError::DigestMismatch {
                        what: what.to_string(),
                        url: url.clone(),
                        expected: digest_text.clone(),
                        actual: Digest::sha256_of(&body).to_string(),
                    });
                }
                Ok(body.freeze())
            })
            .await
    }

    /// Uploads a blob to `image`'s repository and returns its digest.
    pub async fn push_blob(&self, image: &ImageRef, data: Bytes) -> Result<Digest, RegistryError> {
        let host = self.host(image.registry()).await?;
        let grant = self.grant(&host, image.repository(), Op::Push).await?;
        let reference = oci_reference(image);
        let digest = Digest::sha256_of(&data);
        let url = format!(
            "{}://{}/v2/{}/blobs/uploads/",
            host.scheme,
            host.api_host,
            image.repository()
        );
        self.http
            .retry(&format!("POST {url}"), || async {
                host.oci
                    .push_blob(&reference, data.clone(), &digest.to_string())
                    .await
                    .map(|_| ())
                    .map_err(|e| oci_error(e, &host, &grant, image, "POST", &url, Target::Push))
            })
            .await?;
        Ok(digest)
    }

    /// Stores a manifest under `reference` (a tag or its digest) and returns its digest.
    pub async fn push_manifest(
        &self,
        image: &ImageRef,
        reference: &str,
        body: Bytes,
        media_type: &str,
    ) -> Result<Digest, RegistryError> {
        let host = self.host(image.registry()).await?;
        let grant = self.grant(&host, image.repository(), Op::Push).await?;
        let target_ref = match Digest::parse(reference) {
            Ok(d) => oci_client::Reference::with_digest(
                host.name.clone(),
                image.repository().to_string(),
                d.to_string(),
            ),
            Err(_) => oci_client::Reference::with_tag(
                host.name.clone(),
                image.repository().to_string(),
                reference.to_string(),
            ),
        };
        let url = format!(
            "{}://{}/v2/{}/manifests/{reference}",
            host.scheme,
            host.api_host,
            image.repository()
        );
        let content_type =
            HeaderValue::from_str(media_type).map_err(|_| RegistryError::BadContent {
                what: "the manifest".into(),
                url: url.clone(),
                detail: format!("has an invalid media type '{media_type}'"),
            })?;
        self.http
            .retry(&format!("PUT {url}"), || async {
                host.oci
                    .push_manifest_raw(&target_ref, body.clone(), content_type.clone())
                    .await
                    .map(|_| ())
                    .map_err(|e| oci_error(e, &host, &grant, image, "PUT", &url, Target::Push))
            })
            .await?;
        Ok(Digest::sha256_of(&body))
    }

    /// The tags of `image`'s repository.
    pub async fn tags(&self, image: &ImageRef) -> Result<Vec<String>, RegistryError> {
        let host = self.host(image.registry()).await?;
        let grant = self.grant(&host, image.repository(), Op::Pull).await?;
        let reference = oci_reference(image);
        let auth = oci_auth(&grant.found.credential);
        let url = format!(
            "{}://{}/v2/{}/tags/list",
            host.scheme,
            host.api_host,
            image.repository()
        );
        self.http
            .retry(&format!("GET {url}"), || async {
                host.oci
                    .list_tags(&reference, &auth, None, None)
                    .await
                    .map(|t| t.tags)
                    .map_err(|e| oci_error(e, &host, &grant, image, "GET", &url, Target::Tags))
            })
            .await
    }

    /// The host entry for `name`, set up on first use: its scheme, and the challenge its `/v2/`
    /// endpoint answers with (asked once per run).
    async fn host(&self, name: &str) -> Result<Arc<Host>, RegistryError> {
        let mut hosts = self.hosts.lock().await;
        if let Some(host) = hosts.get(name) {
            return Ok(host.clone());
        }
        let api_host = if name == DOCKER_HUB {
            "index.docker.io".to_string()
        } else {
            name.to_string()
        };
        let insecure = self.http.is_insecure(name);
        let http = self
            .http
            .client_for(name)
            .map_err(RegistryError::Setup)?
            .clone();
        let (scheme, challenge) = if insecure {
            self.probe(name, &api_host, &http).await?
        } else {
            ("https", self.ping(name, "https", &api_host, &http).await?)
        };
        // The same roots as every other client, loaded once; none are needed without checks.
        let roots = if insecure {
            Vec::new()
        } else {
            self.http
                .trusted_roots()
                .map_err(RegistryError::Setup)?
                .iter()
                .map(|der| Certificate {
                    encoding: CertificateEncoding::Der,
                    data: der.to_vec(),
                })
                .collect()
        };
        let config = ClientConfig {
            protocol: if scheme == "http" {
                ClientProtocol::Http
            } else {
                ClientProtocol::Https
            },
            accept_invalid_certificates: insecure,
            tls_certs_only: roots,
            use_monolithic_push: true,
            read_timeout: Some(self.http.settings().timeout),
            connect_timeout: Some(self.http.settings().timeout),
            user_agent: USER_AGENT,
            ..Default::default()
        };
        let oci = oci_client::Client::try_from(config).map_err(|e| RegistryError::BadContent {
            what: "the registry client".into(),
            url: format!("{scheme}://{api_host}/"),
            detail: format!("could not be set up: {e}"),
        })?;
        let host = Arc::new(Host {
            name: name.to_string(),
            api_host,
            scheme,
            challenge,
            oci,
            http,
            grants: Mutex::new(HashMap::new()),
        });
        hosts.insert(name.to_string(), host.clone());
        Ok(host)
    }

    /// `GET /v2/`: how the registry wants to be authenticated.
    async fn ping(
        &self,
        name: &str,
        scheme: &str,
        api_host: &str,
        client: &reqwest::Client,
    ) -> Result<Challenge, RegistryError> {
        let url = format!("{scheme}://{api_host}/v2/");
        self.http
            .retry(&format!("GET {url}"), || async {
                let response = client
                    .get(&url)
                    .send()
                    .await
                    .map_err(|e| transport_error_for(e, name, "GET", &url))?;
                challenge_of(&response, name, &url)
            })
            .await
    }

    /// For an `--insecure-registry` host: TLS without verification if it speaks TLS, else plain
    /// HTTP — as docker, skopeo and cosign do. The TLS attempt doubles as the `/v2/` ping; against
    /// a plain-HTTP server it fails in the handshake and sends no HTTP request.
    async fn probe(
        &self,
        name: &str,
        api_host: &str,
        client: &reqwest::Client,
    ) -> Result<(&'static str, Challenge), RegistryError> {
        let url = format!("https://{api_host}/v2/");
        let over_tls = self
            .http
            .retry(&format!("GET {url}"), || async {
                match client.get(&url).send().await {
                    Ok(response) => challenge_of(&response, name, &url).map(Some),
                    Err(e) if refused_or_timed_out(&e) => Err(RegistryError::Unreachable {
                        registry: name.to_string(),
                        method: "GET",
                        url: url.clone(),
                        cause: http::describe_transport_error(&e),
                        attempts: 1,
                    }),
                    Err(e) => {
                        tracing::debug!(
                            "{name} does not speak TLS ({}); using plain HTTP",
                            http::describe_transport_error(&e)
                        );
                        Ok(None)
                    }
                }
            })
            .await?;
        match over_tls {
            Some(challenge) => Ok(("https", challenge)),
            None => Ok(("http", self.ping(name, "http", api_host, client).await?)),
        }
    }

    /// Authorization for `repository` and `op`: the credentials from the config files that
    /// answer the host's challenge. A registry that asks for nothing gets nothing (and
    /// `oci-client` is given no credentials, so it adds no requests); basic credentials are
    /// handed to `oci-client` directly; a bearer challenge is answered by `oci-client`'s token
    /// exchange (or, for an identity token, by the OAuth2 refresh grant here).
    async fn grant(
        &self,
        host: &Host,
        repository: &str,
        op: Op,
    ) -> Result<Arc<Grant>, RegistryError> {
        let key = (repository.to_string(), op);
        if let Some(grant) = host.grants.lock().await.get(&key) {
            return Ok(grant.clone());
        }
        let mut found = self.auth_files.lookup(&host.name, repository).await?;
        found.searched = self.auth_files.searched().to_vec();
        tracing::debug!(
            "credentials for {}/{repository}: {}{}",
            host.name,
            found.credential.who(),
            found
                .source
                .as_deref()
                .map(|s| format!(" from {s}"))
                .unwrap_or_default()
        );
        let reference = oci_client::Reference::with_tag(
            host.name.clone(),
            repository.to_string(),
            "latest".to_string(),
        );
        let ping_url = format!("{}://{}/v2/", host.scheme, host.api_host);
        let header = match (&host.challenge, &found.credential) {
            (Challenge::None, _) => None,
            (Challenge::Basic, Credential::Basic { username, password }) => {
                let auth = RegistryAuth::Basic(username.clone(), password.expose().to_string());
                host.oci
                    .store_auth_if_needed(reference.resolve_registry(), &auth)
                    .await;
                host.oci
                    .tokens
                    .insert(
                        &reference,
                        op.into(),
                        RegistryTokenType::Basic(username.clone(), password.expose().to_string()),
                    )
                    .await;
                use base64::Engine as _;
                let pair = format!("{username}:{}", password.expose());
                Some(format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(pair)
                ))
            }
            // Basic asked, no user and password to give: the request will say unauthorized.
            (Challenge::Basic, _) => None,
            (Challenge::Bearer { realm, service }, credential) => {
                let auth = match credential {
                    Credential::IdentityToken(token) => RegistryAuth::Bearer(
                        self.exchange_identity_token(
                            host,
                            realm,
                            service.as_deref(),
                            repository,
                            op,
                            token,
                            &found,
                        )
                        .await?
                        .expose()
                        .to_string(),
                    ),
                    other => oci_auth(other),
                };
                let probe = Grant {
                    header: None,
                    found: found.clone(),
                };
                let image =
                    ImageRef::parse(&format!("{}/{repository}", host.name)).unwrap_or_else(|_| {
                        ImageRef::parse("invalid/invalid").expect("a valid reference")
                    });
                let token = self
                    .http
                    .retry(&format!("GET {ping_url}"), || async {
                        host.oci
                            .auth(&reference, &auth, op.into())
                            .await
                            .map_err(|e| {
                                oci_error(e, host, &probe, &image, "GET", &ping_url, Target::Ping)
                            })
                    })
                    .await?;
                token.map(|t| format!("Bearer {t}"))
            }
        };
        let header = header
            .map(|h| {
                let mut value =
                    HeaderValue::from_str(&h).map_err(|_| RegistryError::BadContent {
                        what: "the credential".into(),
                        url: ping_url.clone(),
                        detail: "holds characters that cannot be sent in an HTTP header".into(),
                    })?;
                value.set_sensitive(true);
                Ok::<_, RegistryError>(value)
            })
            .transpose()?;
        let grant = Arc::new(Grant { header, found });
        host.grants.lock().await.insert(key, grant.clone());
        Ok(grant)
    }

    /// Trades an identity (refresh) token for an access token at the registry's token endpoint,
    /// as docker does for `identitytoken` entries (OAuth2 refresh_token grant).
    #[allow(clippy::too_many_arguments)]
    async fn exchange_identity_token(
        &self,
        host: &Host,
        realm: &str,
        service: Option<&str>,
        repository: &str,
        op: Op,
        token: &Secret,
        found: &Found,
    ) -> Result<Secret, RegistryError> {
        let realm = realm.to_string();
        let scope = match op {
            Op::Pull => format!("repository:{repository}:pull"),
            Op::Push => format!("repository:{repository}:pull,push"),
        };
        let mut form = vec![
            ("grant_type", "refresh_token".to_string()),
            ("refresh_token", token.expose().to_string()),
            ("client_id", "imagegate".to_string()),
            ("scope", scope),
        ];
        if let Some(service) = service {
            form.push(("service", service.to_string()));
        }
        let response = host
            .http
            .post(&realm)
            .form(&form)
            .send()
            .await
            .map_err(|e| transport_error(e, host, "POST", &realm))?;
        if !response.status().is_success() {
            return Err(RegistryError::Unauthorized {
                registry: host.name.clone(),
                url: realm,
                who: found.credential.who(),
                origin: found.source.clone(),
            });
        }
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            #[serde(default)]
            access_token: Option<String>,
            #[serde(default)]
            token: Option<String>,
        }
        let body = http::read_capped(response, 1024 * 1024)
            .await
            .map_err(|e| read_error(e, host, "POST", &realm, "the token answer"))?;
        let answer: TokenAnswer =
            serde_json::from_slice(&body).map_err(|e| RegistryError::BadContent {
                what: "the token answer".into(),
                url: realm.clone(),
                detail: format!("is not the expected JSON: {e}"),
            })?;
        answer
            .access_token
            .or(answer.token)
            .map(Secret::new)
            .ok_or_else(|| RegistryError::BadContent {
                what: "the token answer".into(),
                url: realm,
                detail: "holds no access_token".into(),
            })
    }
}

/// The `oci-client` reference for `image` (tag or digest as the image has them).
fn oci_reference(image: &ImageRef) -> oci_client::Reference {
    let registry = image.registry().to_string();
    let repository = image.repository().to_string();
    match image.digest() {
        Some(d) => oci_client::Reference::with_digest(registry, repository, d.to_string()),
        None => oci_client::Reference::with_tag(registry, repository, image.manifest_reference()),
    }
}

fn oci_auth(credential: &Credential) -> RegistryAuth {
    match credential {
        Credential::Anonymous => RegistryAuth::Anonymous,
        Credential::Basic { username, password } => {
            RegistryAuth::Basic(username.clone(), password.expose().to_string())
        }
        Credential::RegistryToken(t) | Credential::IdentityToken(t) => {
            RegistryAuth::Bearer(t.expose().to_string())
        }
    }
}

/// Reads the challenge of a `/v2/` answer. A 5xx is an error (to retry); any other answer
/// without a challenge means no authentication is asked for.
fn challenge_of(
    response: &reqwest::Response,
    registry: &str,
    url: &str,
) -> Result<Challenge, RegistryError> {
    let status = response.status().as_u16();
    if http::status_is_transient(status) {
        return Err(RegistryError::Status {
            registry: registry.to_string(),
            method: "GET",
            url: url.to_string(),
            status,
            detail: String::new(),
            retry_after: retry_after(response),
            attempts: 1,
        });
    }
    let header = header_string(response, "www-authenticate").unwrap_or_default();
    if let Some((realm, service)) = bearer_challenge(&header) {
        return Ok(Challenge::Bearer { realm, service });
    }
    if header
        .trim_start()
        .to_ascii_lowercase()
        .starts_with("basic")
    {
        return Ok(Challenge::Basic);
    }
    Ok(Challenge::None)
}

/// `Bearer realm="…",service="…"` → (realm, service).
fn bearer_challenge(header: &str) -> Option<(String, Option<String>)> {
    let mut params = http::bearer_challenge_params(header)?;
    Some((params.remove("realm")?, params.remove("service")))
}

fn header_string(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

fn retry_after(response: &reqwest::Response) -> Option<std::time::Duration> {
    let secs: u64 = response
        .headers()
        .get(RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(std::time::Duration::from_secs(secs.min(30)))
}

/// Connection refused or timed out: the server is not there (yet), as opposed to a server that
/// answers in something other than TLS.
fn refused_or_timed_out(err: &reqwest::Error) -> bool {
    use std::io::ErrorKind::*;
    if err.is_timeout()
        || http::io_error_kind(err).is_some_and(|kind| {
            matches!(
                kind,
                ConnectionRefused
                    | TimedOut
                    | HostUnreachable
                    | NetworkUnreachable
                    | AddrNotAvailable
            )
        })
    {
        return true;
    }
    let text = http::describe_transport_error(err).to_ascii_lowercase();
    text.contains("dns") || text.contains("resolve") || text.contains("lookup")
}

fn transport_error(
    err: reqwest::Error,
    host: &Host,
    method: &'static str,
    url: &str,
) -> RegistryError {
    transport_error_for(err, &host.name, method, url)
}

fn transport_error_for(
    err: reqwest::Error,
    registry: &str,
    method: &'static str,
    url: &str,
) -> RegistryError {
    if http::is_certificate_error(&err) {
        RegistryError::Certificate {
            registry: registry.to_string(),
            url: url.to_string(),
            cause: http::describe_transport_error(&err),
        }
    } else {
        RegistryError::Unreachable {
            registry: registry.to_string(),
            method,
            url: url.to_string(),
            cause: http::describe_transport_error(&err),
            attempts: 1,
        }
    }
}

fn read_error(
    err: ReadError,
    host: &Host,
    method: &'static str,
    url: &str,
    what: &str,
) -> RegistryError {
    match err {
        ReadError::TooLarge { declared, limit } => RegistryError::TooLarge {
            what: what.to_string(),
            url: url.to_string(),
            limit,
            declared,
        },
        ReadError::Transport(e) => transport_error(e, host, method, url),
    }
}

/// Maps an HTTP failure to what it means for the user.
#[allow(clippy::too_many_arguments)]
fn status_error(
    status: u16,
    body: &str,
    retry_after: Option<std::time::Duration>,
    host: &Host,
    grant: &Grant,
    image: &ImageRef,
    method: &'static str,
    url: &str,
    target: Target<'_>,
) -> RegistryError {
    let envelope: Option<OciEnvelope> = serde_json::from_str(body).ok();
    let has_code = |code: OciErrorCode| {
        envelope
            .as_ref()
            .is_some_and(|e| e.errors.iter().any(|err| err.code == code))
    };
    match status {
        401 if grant.has_credentials() => RegistryError::Unauthorized {
            registry: host.name.clone(),
            url: url.to_string(),
            who: grant.found.credential.who(),
            origin: grant.found.source.clone(),
        },
        401 => RegistryError::AuthRequired {
            registry: host.name.clone(),
            url: url.to_string(),
            searched: grant.found.searched.clone(),
        },
        403 => RegistryError::Denied {
            registry: host.name.clone(),
            url: url.to_string(),
            who: grant.found.credential.who(),
            action: if method == "GET" {
                "pull from it"
            } else {
                "push to it"
            },
        },
        404 if has_code(OciErrorCode::NameUnknown) => RegistryError::NameUnknown {
            registry: host.name.clone(),
            repository: image.repository().to_string(),
        },
        404 => match target {
            Target::Manifest { reference } => RegistryError::ManifestUnknown {
                what: if Digest::parse(reference).is_ok() {
                    "manifest"
                } else {
                    "tag"
                },
                image: image.name(),
                reference: reference.to_string(),
            },
            Target::Blob { digest } => RegistryError::BlobUnknown {
                image: image.name(),
                digest: digest.to_string(),
            },
            _ => RegistryError::Status {
                registry: host.name.clone(),
                method,
                url: url.to_string(),
                status,
                detail: envelope_text(envelope.as_ref(), body),
                retry_after,
                attempts: 1,
            },
        },
        _ => RegistryError::Status {
            registry: host.name.clone(),
            method,
            url: url.to_string(),
            status,
            detail: envelope_text(envelope.as_ref(), body),
            retry_after,
            attempts: 1,
        },
    }
}

fn envelope_text(envelope: Option<&OciEnvelope>, body: &str) -> String {
    match envelope {
        Some(e) if !e.errors.is_empty() => e
            .errors
            .iter()
            .map(|err| err.message.clone())
            .collect::<Vec<_>>()
            .join("; "),
        _ => body.to_string(),
    }
}

/// Maps an `oci-client` failure the same way as a direct request's.
fn oci_error(
    err: OciDistributionError,
    host: &Host,
    grant: &Grant,
    image: &ImageRef,
    method: &'static str,
    url: &str,
    target: Target<'_>,
) -> RegistryError {
    match err {
        OciDistributionError::RequestError(e) => transport_error(e, host, method, url),
        OciDistributionError::UnauthorizedError { url } => {
            status_error(401, "", None, host, grant, image, method, &url, target)
        }
        OciDistributionError::AuthenticationFailure(_) => {
            // The token endpoint refused: wrong credentials, or none where some are needed.
            status_error(401, "", None, host, grant, image, method, url, target)
        }
        OciDistributionError::RegistryError { envelope, url } => {
            let status = if envelope.errors.iter().any(|e| {
                matches!(
                    e.code,
                    OciErrorCode::ManifestUnknown
                        | OciErrorCode::BlobUnknown
                        | OciErrorCode::NameUnknown
                        | OciErrorCode::NotFound
                )
            }) {
                404
            } else if envelope
                .errors
                .iter()
                .any(|e| e.code == OciErrorCode::Denied)
            {
                403
            } else if envelope
                .errors
                .iter()
                .any(|e| e.code == OciErrorCode::Unauthorized)
            {
                401
            } else {
                400
            };
            let body = serde_json::to_string(&envelope).unwrap_or_default();
            status_error(
                status, &body, None, host, grant, image, method, &url, target,
            )
        }
        OciDistributionError::ServerError { code, url, message } => status_error(
            code, &message, None, host, grant, image, method, &url, target,
        ),
        OciDistributionError::DigestError(e) => RegistryError::DigestMismatch {
            what: "the content".into(),
            url: url.to_string(),
            expected: String::new(),
            actual: e.to_string(),
        },
        other => RegistryError::BadContent {
            what: "the registry's answer".into(),
            url: url.to_string(),
            detail: format!("could not be used: {other}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenges_give_realm_and_service() {
        let (realm, service) = bearer_challenge(
            r#"Bearer realm="https://auth.example.io/token",service="registry.example.io",scope="repository:a:pull""#,
        )
        .unwrap();
        assert_eq!(realm, "https://auth.example.io/token");
        assert_eq!(service.as_deref(), Some("registry.example.io"));
        assert!(bearer_challenge(r#"Basic realm="registry""#).is_none());
        assert!(bearer_challenge("").is_none());
    }
}
