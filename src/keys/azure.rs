//! `azurekms://VAULT.vault.azure.net/KEY[/VERSION]`: an Azure Key Vault key, used over the Key
//! Vault REST API (7.4). The key's JWK becomes a DER public key; signing sends the payload's
//! digest (`ES256`/`ES384`/`ES512` by curve, `RS256` for 2048-bit RSA) and turns the raw `r||s`
//! Key Vault returns into DER. Without a version in the URI, the version Key Vault names in the
//! key's `kid` is used for signing too, so the public key and the signature always match.
//!
//! Credentials follow `DefaultAzureCredential` as far as a CI step needs: a client secret, a
//! client certificate (PEM), workload identity (a federated token file), then managed identity
//! (App Service's `IDENTITY_ENDPOINT`, else IMDS). A 401 challenge from Key Vault that names
//! another resource (a sovereign cloud) is answered once with a token for that resource, if the
//! resource is the vault's own domain.

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use reqwest::Method;
use serde::Deserialize;
use sha2::Digest as _;
use sigstore::crypto::CosignVerificationKey;

use super::remote::{self, B64URL, Lenient, Reply, Rest, Token, TokenCache};
use super::{Environment, KeyContext, KeyError, KeyRef, PublicKey, raw_ecdsa_to_der};
use crate::secret::Secret;

const BACKEND: &str = "Azure Key Vault";
const API_VERSION: &str = "7.4";
const IMDS: &str = "http://169.254.169.254";
const IMDS_PATH: &str = "/metadata/identity/oauth2/token";
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// Parses what follows `azurekms://` (cosign: `^azurekms://([^/]+)/([^/]+)(/[a-z0-9]*)?$`).
pub fn parse_ref(rest: &str) -> Result<KeyRef, String> {
    let shape = "azurekms:// needs VAULT.vault.azure.net/KEY[/VERSION]";
    let parts: Vec<&str> = rest.split('/').collect();
    let (vault, key, version) = match parts.as_slice() {
        [vault, key] => (*vault, *key, None),
        [vault, key, version] => (*vault, *key, Some(*version)),
        _ => return Err(shape.to_string()),
    };
    if vault.is_empty() || key.is_empty() {
        return Err(shape.to_string());
    }
    if let Some(v) = version
        && !v
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err("the key version is lowercase letters and digits".to_string());
    }
    Ok(KeyRef::Azure {
        vault: vault.to_string(),
        key: key.to_string(),
        version: version.filter(|v| !v.is_empty()).map(str::to_string),
    })
}

/// The signature algorithm for a key, as cosign picks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Alg {
    Es256,
    Es384,
    Es512,
    Rs256,
}

impl Alg {
    fn name(self) -> &'static str {
        match self {
            Alg::Es256 => "ES256",
            Alg::Es384 => "ES384",
            Alg::Es512 => "ES512",
            Alg::Rs256 => "RS256",
        }
    }

    fn digest(self, payload: &[u8]) -> Vec<u8> {
        match self {
            Alg::Es256 | Alg::Rs256 => sha2::Sha256::digest(payload).to_vec(),
            Alg::Es384 => sha2::Sha384::digest(payload).to_vec(),
            Alg::Es512 => sha2::Sha512::digest(payload).to_vec(),
        }
    }

    /// The length of a raw `r||s` signature, for ECDSA.
    fn raw_len(self) -> Option<usize> {
        match self {
            Alg::Es256 => Some(64),
            Alg::Es384 => Some(96),
            Alg::Es512 => Some(132),
            Alg::Rs256 => None,
        }
    }
}

/// A Key Vault key version that signs, and its public key.
pub struct AzureKey {
    rest: Rest,
    /// The vault host as written in the URI.
    vault: String,
    key: String,
    version: String,
    kid: String,
    alg: Alg,
    credentials: Credentials,
    /// The resource tokens are for (`https://vault.azure.net`); a challenge may change it.
    resource: Mutex<String>,
    verifier: CosignVerificationKey,
    public: PublicKey,
}

impl std::fmt::Debug for AzureKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AzureKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("credentials", &self.credentials.origin)
            .finish()
    }
}

impl AzureKey {
    /// Reads the key (the version named, or the latest) and its public key.
    pub async fn connect(
        vault: &str,
        key: &str,
        version: Option<&str>,
        ctx: &KeyContext<'_>,
    ) -> Result<AzureKey, KeyError> {
        let uri = KeyRef::Azure {
            vault: vault.to_string(),
            key: key.to_string(),
            version: version.map(str::to_string),
        }
        .to_string();
        check_names(&uri, vault, key)?;
        let cloud = Cloud::from_env(ctx.env)?;
        let rest = Rest::new(BACKEND, ctx.http)?;
        let credentials = Credentials::discover(ctx.env, &cloud, &rest).await?;
        let vault_client = Vault {
            rest: &rest,
            vault,
            credentials: &credentials,
            resource: Mutex::new(cloud.resource.clone()),
        };
        let path = match version {
            Some(v) => format!("keys/{key}/{v}"),
            None => format!("keys/{key}"),
        };
        let bundle: KeyBundle = vault_client
            .call(Method::GET, &path, None, Operation::Get, "a key bundle")
            .await?;
        if bundle.attributes.as_ref().and_then(|a| a.enabled) == Some(false) {
            return Err(KeyError::NotAKey {
                origin: uri,
                reason: "this key version is disabled; enable it or name another version"
                    .to_string(),
            });
        }
        if let Some(ops) = &bundle.key.key_ops
            && !ops.iter().any(|op| op == "sign")
        {
            return Err(KeyError::NotAKey {
                origin: uri,
                reason: format!(
                    "its permitted operations ({}) do not include 'sign'",
                    ops.join(", ")
                ),
            });
        }
        let kid = bundle.key.kid.clone().unwrap_or_default();
        let found = version_of(&kid, key).ok_or_else(|| KeyError::Remote {
            backend: BACKEND,
            message: format!(
                "GET https://{vault}/{path} answered with the key id '{kid}', which is not …/keys/{key}/VERSION"
            ),
            transient: false,
        })?;
        if let Some(asked) = version
            && asked != found
        {
            return Err(KeyError::Remote {
                backend: BACKEND,
                message: format!(
                    "GET https://{vault}/{path} answered with version {found}, not {asked}"
                ),
                transient: false,
            });
        }
        let (der, alg) = jwk_to_der(&bundle.key).map_err(|reason| KeyError::NotAKey {
            origin: uri.clone(),
            reason,
        })?;
        let public = PublicKey::from_der(&der, &uri)?;
        let verifier =
            CosignVerificationKey::try_from_der(&der).map_err(|e| KeyError::NotAKey {
                origin: uri.clone(),
                reason: e.to_string(),
            })?;
        let resource = vault_client
            .resource
            .into_inner()
            .unwrap_or_else(|e| e.into_inner());
        Ok(AzureKey {
            vault: vault.to_string(),
            key: key.to_string(),
            version: found.to_string(),
            kid,
            alg,
            resource: Mutex::new(resource),
            verifier,
            public,
            rest,
            credentials,
        })
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// `POST keys/{key}/{version}/sign` with the digest; ECDSA answers (`r||s`) become DER.
    pub async fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, KeyError> {
        let digest = self.alg.digest(payload);
        let body = serde_json::json!({
            "alg": self.alg.name(),
            "value": B64URL.encode(&digest),
        });
        let vault = Vault {
            rest: &self.rest,
            vault: &self.vault,
            credentials: &self.credentials,
            resource: Mutex::new(self.current_resource()),
        };
        let path = format!("keys/{}/{}/sign", self.key, self.version);
        let answer: SignAnswer = vault
            .call(
                Method::POST,
                &path,
                Some(&body),
                Operation::Sign,
                "a key operation result",
            )
            .await?;
        if let Ok(mut resource) = self.resource.lock() {
            *resource = vault
                .resource
                .into_inner()
                .unwrap_or_else(|e| e.into_inner());
        }
        let shown = format!("POST https://{}/{path}", self.vault);
        let unusable = |why: String| KeyError::Remote {
            backend: BACKEND,
            message: format!("{shown}: {why}"),
            transient: false,
        };
        if answer.kid.as_deref() != Some(self.kid.as_str()) {
            return Err(unusable(format!(
                "Key Vault signed with '{}', not with {}",
                answer.kid.as_deref().unwrap_or("no key"),
                self.kid
            )));
        }
        let raw = B64URL
            .decode(answer.value.trim().trim_end_matches('='))
            .map_err(|_| unusable("the signature is not base64url".to_string()))?;
        match self.alg.raw_len() {
            None => Ok(raw),
            Some(len) if raw.len() == len => raw_ecdsa_to_der(&self.verifier, &raw)
                .ok_or_else(|| unusable("the r||s signature is not valid".to_string())),
            Some(len) => Err(unusable(format!(
                "the {} signature is {} bytes; r||s for this curve is {len}",
                self.alg.name(),
                raw.len()
            ))),
        }
    }

    fn current_resource(&self) -> String {
        match self.resource.lock() {
            Ok(r) => r.clone(),
            Err(e) => e.into_inner().clone(),
        }
    }
}

/// The version in a key id `https://VAULT/keys/NAME/VERSION` (names compare case-insensitively,
/// as Key Vault treats them).
fn version_of<'a>(kid: &'a str, key: &str) -> Option<&'a str> {
    let (_, tail) = kid.split_once("/keys/")?;
    let (name, version) = tail.split_once('/')?;
    let valid = name.eq_ignore_ascii_case(key)
        && !version.is_empty()
        && version.chars().all(|c| c.is_ascii_alphanumeric());
    valid.then_some(version)
}

/// The vault and key go into URLs: a host (`NAME.vault.azure.net`, or `HOST:PORT`) and a key
/// name of letters, digits and '-'.
fn check_names(uri: &str, vault: &str, key: &str) -> Result<(), KeyError> {
    let host_ok = vault
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'));
    let key_ok = key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    if host_ok && key_ok {
        return Ok(());
    }
    Err(KeyError::BadUri {
        uri: uri.to_string(),
        reason: if host_ok {
            "Key Vault key names are letters, digits and '-'".to_string()
        } else {
            "the vault is a host name such as myvault.vault.azure.net".to_string()
        },
    })
}

/// What a Key Vault call is for: names the permission a 403 means is missing.
#[derive(Clone, Copy)]
enum Operation {
    Get,
    Sign,
}

/// Key Vault requests with the caller's token and challenge handling.
struct Vault<'a> {
    rest: &'a Rest,
    vault: &'a str,
    credentials: &'a Credentials,
    resource: Mutex<String>,
}

/// What one round with Key Vault gave.
enum Round<T> {
    Done(T),
    /// Key Vault asked for a token for another (validated) resource.
    Challenge(String),
}

impl Vault<'_> {
    fn resource(&self) -> String {
        match self.resource.lock() {
            Ok(r) => r.clone(),
            Err(e) => e.into_inner().clone(),
        }
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        operation: Operation,
        what: &str,
    ) -> Result<T, KeyError> {
        let url = format!("https://{}/{path}?api-version={API_VERSION}", self.vault);
        let mut challenged = false;
        loop {
            let resource = self.resource();
            let token = self.credentials.token(self.rest, &resource).await?;
            let round = self
                .rest
                .call(
                    method.clone(),
                    &url,
                    &[token.expose()],
                    |r| {
                        let r = r.bearer_auth(token.expose());
                        match body {
                            Some(body) => r.json(body),
                            None => r,
                        }
                    },
                    |reply| {
                        if reply.is_success() {
                            return reply.json(what).map(Round::Done);
                        }
                        if reply.status.as_u16() == 401 {
                            return self.challenge(&reply, &resource, challenged);
                        }
                        Err(self.failure(&reply, operation))
                    },
                )
                .await?;
            match round {
                Round::Done(value) => return Ok(value),
                Round::Challenge(resource) => {
                    challenged = true;
                    if let Ok(mut current) = self.resource.lock() {
                        *current = resource;
                    }
                }
            }
        }
    }

    /// A 401: a challenge naming another resource is answered once (if that resource is the
    /// vault's own domain); anything else is a refusal, explained.
    fn challenge<T>(
        &self,
        reply: &Reply,
        resource: &str,
        challenged: bool,
    ) -> Result<Round<T>, KeyError> {
        let challenge = reply
            .www_authenticate
            .as_deref()
            .and_then(parse_challenge)
            .unwrap_or_default();
        if let Some(asked) = &challenge.resource
            && asked.trim_end_matches('/') != resource.trim_end_matches('/')
        {
            if !resource_matches_vault(asked, self.vault) {
                return Err(reply.failure(
                    Some(&format!(
                        "Key Vault asked for a token for {asked}, which is not the vault's own domain; imagegate does not send tokens elsewhere"
                    )),
                    false,
                ));
            }
            if !challenged {
                return Ok(Round::Challenge(asked.trim_end_matches('/').to_string()));
            }
        }
        let tenant = challenge.authorization.as_deref().and_then(|a| {
            a.trim_end_matches('/')
                .rsplit('/')
                .next()
                .map(str::to_string)
        });
        let advice = match (tenant, &self.credentials.tenant) {
            (Some(theirs), Some(ours)) if !theirs.eq_ignore_ascii_case(ours) => format!(
                "the vault belongs to tenant {theirs}, but the token is from tenant {ours} (AZURE_TENANT_ID)"
            ),
            _ => format!("Key Vault refused the token of {}", self.credentials.origin),
        };
        Err(reply.failure(Some(&advice), false))
    }

    fn failure(&self, reply: &Reply, operation: Operation) -> KeyError {
        let origin = &self.credentials.origin;
        let (permission, action) = match operation {
            Operation::Get => ("get", "Microsoft.KeyVault/vaults/keys/read"),
            Operation::Sign => ("sign", "Microsoft.KeyVault/vaults/keys/sign/action"),
        };
        let advice = match reply.status.as_u16() {
            403 => format!(
                "the identity ({origin}) lacks the key permission '{permission}': add keys/{permission} to the vault's access policy, or with Azure RBAC assign 'Key Vault Crypto User' ({action}); a vault firewall also answers 403"
            ),
            404 => {
                "no such key or key version in this vault: check the azurekms:// URI".to_string()
            }
            _ => return reply.failure(None, false),
        };
        reply.failure(Some(&advice), false)
    }
}

/// The parameters of a `Bearer` challenge Key Vault sends.
#[derive(Default, Debug, PartialEq)]
struct Challenge {
    authorization: Option<String>,
    resource: Option<String>,
}

fn parse_challenge(header: &str) -> Option<Challenge> {
    let params = crate::http::bearer_challenge_params(header)?;
    let param = |name: &str| params.get(name).cloned();
    Some(Challenge {
        authorization: param("authorization").or_else(|| param("authorization_uri")),
        resource: param("resource")
            .or_else(|| param("scope").map(|s| s.trim_end_matches("/.default").to_string())),
    })
}

/// Whether a challenge's resource is the vault's own domain: its host is the vault's host or a
/// parent of it (`vault.azure.cn` for `team.vault.azure.cn`), over https.
fn resource_matches_vault(resource: &str, vault: &str) -> bool {
    let Ok(url) = reqwest::Url::parse(resource) else {
        return false;
    };
    let Some(host) = url.host_str() else {
        return false;
    };
    let vault_host = vault.rsplit_once(':').map_or(vault, |(h, _)| h);
    url.scheme() == "https"
        && (vault_host.eq_ignore_ascii_case(host)
            || vault_host
                .to_ascii_lowercase()
                .ends_with(&format!(".{}", host.to_ascii_lowercase())))
}

#[derive(Deserialize)]
struct KeyBundle {
    key: Jwk,
    attributes: Option<Attributes>,
}

#[derive(Deserialize)]
struct Attributes {
    enabled: Option<bool>,
}

#[derive(Deserialize)]
struct Jwk {
    kid: Option<String>,
    kty: String,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
    key_ops: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct SignAnswer {
    kid: Option<String>,
    value: String,
}

/// The JWK as a DER SubjectPublicKeyInfo, and the algorithm to sign with.
fn jwk_to_der(jwk: &Jwk) -> Result<(Vec<u8>, Alg), String> {
    use p256::pkcs8::EncodePublicKey as _;
    let field = |value: &Option<String>, name: &str| -> Result<Vec<u8>, String> {
        let text = value
            .as_deref()
            .ok_or_else(|| format!("the {} key has no '{name}'", jwk.kty))?;
        B64URL
            .decode(text.trim_end_matches('='))
            .map_err(|_| format!("the key's '{name}' is not base64url"))
    };
    match jwk.kty.as_str() {
        "EC" | "EC-HSM" => {
            let (x, y) = (field(&jwk.x, "x")?, field(&jwk.y, "y")?);
            let crv = jwk.crv.as_deref().unwrap_or("none");
            let bad = |e: String| format!("the {crv} point is not valid ({e})");
            match crv {
                "P-256" if x.len() == 32 && y.len() == 32 => {
                    let point = p256::EncodedPoint::from_affine_coordinates(
                        x.as_slice().into(),
                        y.as_slice().into(),
                        false,
                    );
                    let key = p256::PublicKey::from_sec1_bytes(point.as_bytes())
                        .map_err(|e| bad(e.to_string()))?;
                    let der = key.to_public_key_der().map_err(|e| bad(e.to_string()))?;
                    Ok((der.into_vec(), Alg::Es256))
                }
                "P-384" if x.len() == 48 && y.len() == 48 => {
                    let point = p384::EncodedPoint::from_affine_coordinates(
                        x.as_slice().into(),
                        y.as_slice().into(),
                        false,
                    );
                    let key = p384::PublicKey::from_sec1_bytes(point.as_bytes())
                        .map_err(|e| bad(e.to_string()))?;
                    let der = key.to_public_key_der().map_err(|e| bad(e.to_string()))?;
                    Ok((der.into_vec(), Alg::Es384))
                }
                "P-521" if x.len() == 66 && y.len() == 66 => {
                    let point = p521::EncodedPoint::from_affine_coordinates(
                        x.as_slice().into(),
                        y.as_slice().into(),
                        false,
                    );
                    let key = p521::PublicKey::from_sec1_bytes(point.as_bytes())
                        .map_err(|e| bad(e.to_string()))?;
                    let der = key.to_public_key_der().map_err(|e| bad(e.to_string()))?;
                    Ok((der.into_vec(), Alg::Es512))
                }
                "P-256" | "P-384" | "P-521" => {
                    Err(format!("the {crv} key's coordinates have the wrong length"))
                }
                other => Err(format!(
                    "the curve {other} cannot make cosign signatures; use P-256, P-384 or P-521"
                )),
            }
        }
        "RSA" | "RSA-HSM" => {
            let (n, e) = (field(&jwk.n, "n")?, field(&jwk.e, "e")?);
            let key = rsa::RsaPublicKey::new(
                rsa::BigUint::from_bytes_be(&n),
                rsa::BigUint::from_bytes_be(&e),
            )
            .map_err(|e| format!("the RSA key is not valid ({e})"))?;
            let bits = rsa::traits::PublicKeyParts::size(&key) * 8;
            if bits != 2048 {
                // cosign signs with RS384/RS512 for these sizes, which a PEM public key
                // (verified with SHA-256, as cosign does for RSA) cannot check.
                return Err(format!(
                    "it is a {bits}-bit RSA key; imagegate signs with 2048-bit RSA keys (RS256) or EC keys"
                ));
            }
            let der = key
                .to_public_key_der()
                .map_err(|e| format!("the RSA key cannot be encoded ({e})"))?;
            Ok((der.into_vec(), Alg::Rs256))
        }
        other => Err(format!(
            "its key type is {other}; signing needs an EC or RSA key"
        )),
    }
}

/// Which Azure cloud: the sign-in authority and the Key Vault resource tokens are for.
#[derive(Debug, PartialEq)]
struct Cloud {
    authority: String,
    resource: String,
}

impl Cloud {
    /// `AZURE_ENVIRONMENT` (cosign's names), with `AZURE_AUTHORITY_HOST` winning for the
    /// authority.
    fn from_env(env: &Environment) -> Result<Cloud, KeyError> {
        let (authority, resource) = match env
            .non_empty("AZURE_ENVIRONMENT")
            .map(str::to_ascii_uppercase)
            .as_deref()
        {
            None | Some("AZURECLOUD" | "AZUREPUBLICCLOUD") => (
                "https://login.microsoftonline.com",
                "https://vault.azure.net",
            ),
            Some("AZUREUSGOVERNMENT" | "AZUREUSGOVERNMENTCLOUD") => (
                "https://login.microsoftonline.us",
                "https://vault.usgovcloudapi.net",
            ),
            Some("AZURECHINACLOUD") => ("https://login.chinacloudapi.cn", "https://vault.azure.cn"),
            Some(other) => {
                return Err(KeyError::NotConfigured {
                    backend: BACKEND,
                    reason: format!(
                        "AZURE_ENVIRONMENT={other} is not AzurePublicCloud, AzureUSGovernmentCloud or AzureChinaCloud"
                    ),
                });
            }
        };
        let authority = match env.non_empty("AZURE_AUTHORITY_HOST") {
            Some(host) => {
                let valid = reqwest::Url::parse(host)
                    .map(|u| matches!(u.scheme(), "http" | "https") && u.query().is_none())
                    .unwrap_or(false);
                if !valid {
                    return Err(KeyError::NotConfigured {
                        backend: BACKEND,
                        reason: format!(
                            "AZURE_AUTHORITY_HOST='{host}' is not a URL such as https://login.microsoftonline.com"
                        ),
                    });
                }
                host.trim_end_matches('/').to_string()
            }
            None => authority.to_string(),
        };
        Ok(Cloud {
            authority,
            resource: resource.to_string(),
        })
    }
}

/// How tokens are had, found once per key; cached until near expiry.
struct Credentials {
    source: Source,
    /// In words, for messages ("client secret of app C in tenant T (AZURE_CLIENT_SECRET)").
    origin: String,
    tenant: Option<String>,
    cache: TokenCache,
}

enum Source {
    /// Microsoft Entra ID's token endpoint with a client secret or a client assertion.
    Entra {
        token_url: String,
        client_id: String,
        proof: Proof,
    },
    /// App Service and Functions (`IDENTITY_ENDPOINT`, `IDENTITY_HEADER`).
    AppService {
        endpoint: String,
        header: Secret,
        client_id: Option<String>,
    },
    /// The instance metadata service of VMs, scale sets and AKS nodes.
    Imds {
        base: String,
        client_id: Option<String>,
    },
}

enum Proof {
    Secret(Secret),
    Certificate { key: Secret, thumbprint: String },
    FederatedTokenFile(PathBuf),
}

impl Credentials {
    /// `DefaultAzureCredential`'s order for a CI step: client secret, client certificate,
    /// workload identity, managed identity.
    async fn discover(
        env: &Environment,
        cloud: &Cloud,
        rest: &Rest,
    ) -> Result<Credentials, KeyError> {
        let not_configured = |reason: String| KeyError::NotConfigured {
            backend: BACKEND,
            reason,
        };
        let tenant = env.non_empty("AZURE_TENANT_ID");
        let client = env.non_empty("AZURE_CLIENT_ID");
        let ids = |because: &str| -> Result<(String, String), KeyError> {
            let missing: Vec<&str> = [("AZURE_TENANT_ID", tenant), ("AZURE_CLIENT_ID", client)]
                .iter()
                .filter(|(_, v)| v.is_none())
                .map(|(name, _)| *name)
                .collect();
            if !missing.is_empty() {
                return Err(not_configured(format!(
                    "{because} is set, but {} {} not",
                    missing.join(" and "),
                    if missing.len() == 1 { "is" } else { "are" }
                )));
            }
            let (tenant, client) = (tenant.unwrap_or_default(), client.unwrap_or_default());
            let id_ok = |s: &str| {
                s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.'))
            };
            if !id_ok(tenant) || !id_ok(client) {
                return Err(not_configured(
                    "AZURE_TENANT_ID and AZURE_CLIENT_ID are ids (GUIDs) or domain names"
                        .to_string(),
                ));
            }
            Ok((tenant.to_string(), client.to_string()))
        };
        let entra = |tenant: String, client_id: String, proof: Proof, how: &str| Credentials {
            origin: format!("{how} of app {client_id} in tenant {tenant}"),
            source: Source::Entra {
                token_url: format!("{}/{tenant}/oauth2/v2.0/token", cloud.authority),
                client_id,
                proof,
            },
            tenant: Some(tenant),
            cache: TokenCache::default(),
        };

        if let Some(secret) = env.non_empty("AZURE_CLIENT_SECRET") {
            let (tenant, client_id) = ids("AZURE_CLIENT_SECRET")?;
            let proof = Proof::Secret(Secret::new(secret));
            return Ok(entra(
                tenant,
                client_id,
                proof,
                "the client secret (AZURE_CLIENT_SECRET)",
            ));
        }
        if let Some(path) = env.non_empty("AZURE_CLIENT_CERTIFICATE_PATH") {
            let (tenant, client_id) = ids("AZURE_CLIENT_CERTIFICATE_PATH")?;
            if env.non_empty("AZURE_CLIENT_CERTIFICATE_PASSWORD").is_some() {
                return Err(not_configured(
                    "AZURE_CLIENT_CERTIFICATE_PASSWORD is set: imagegate reads only unencrypted PEM certificates (openssl pkcs12 -in cert.pfx -out cert.pem -noenc)".to_string(),
                ));
            }
            let (key, thumbprint) = read_certificate(&PathBuf::from(path)).map_err(|reason| {
                not_configured(format!("AZURE_CLIENT_CERTIFICATE_PATH={path}: {reason}"))
            })?;
            let how = format!("the client certificate {path}");
            return Ok(entra(
                tenant,
                client_id,
                Proof::Certificate { key, thumbprint },
                &how,
            ));
        }
        if let Some(file) = env.non_empty("AZURE_FEDERATED_TOKEN_FILE") {
            let (tenant, client_id) = ids("AZURE_FEDERATED_TOKEN_FILE")?;
            let how = format!("workload identity ({file})");
            return Ok(entra(
                tenant,
                client_id,
                Proof::FederatedTokenFile(PathBuf::from(file)),
                &how,
            ));
        }
        let client_id = client.map(str::to_string);
        let which = match &client_id {
            Some(id) => format!("user-assigned managed identity {id} (AZURE_CLIENT_ID)"),
            None => "system-assigned managed identity".to_string(),
        };
        if let (Some(endpoint), Some(header)) = (
            env.non_empty("IDENTITY_ENDPOINT"),
            env.non_empty("IDENTITY_HEADER"),
        ) {
            return Ok(Credentials {
                origin: format!("the {which} of App Service (IDENTITY_ENDPOINT)"),
                source: Source::AppService {
                    endpoint: endpoint.to_string(),
                    header: Secret::new(header),
                    client_id,
                },
                tenant: tenant.map(str::to_string),
                cache: TokenCache::default(),
            });
        }
        let base = env
            .non_empty("AZURE_POD_IDENTITY_AUTHORITY_HOST")
            .unwrap_or(IMDS)
            .trim_end_matches('/')
            .to_string();
        // As DefaultAzureCredential does: managed identity only where IMDS answers at all. IMDS
        // answers this header-less probe 400; other clouds' metadata servers answer 404.
        let answer = rest.probe(&format!("{base}{IMDS_PATH}"), |r| r).await;
        if answer.is_none_or(|a| a.status() == reqwest::StatusCode::NOT_FOUND) {
            return Err(not_configured(format!(
                "no Azure credentials found: set AZURE_TENANT_ID and AZURE_CLIENT_ID with AZURE_CLIENT_SECRET, AZURE_CLIENT_CERTIFICATE_PATH or AZURE_FEDERATED_TOKEN_FILE (workload identity), or run with a managed identity (IDENTITY_ENDPOINT and IDENTITY_HEADER on App Service; no instance metadata service answered at {base})"
            )));
        }
        Ok(Credentials {
            origin: format!("the {which} of this machine (IMDS)"),
            source: Source::Imds { base, client_id },
            tenant: tenant.map(str::to_string),
            cache: TokenCache::default(),
        })
    }

    /// A token for `resource`, cached until two minutes before it expires.
    async fn token(&self, rest: &Rest, resource: &str) -> Result<Secret, KeyError> {
        self.cache
            .get(resource, || self.fetch(rest, resource))
            .await
    }

    async fn fetch(&self, rest: &Rest, resource: &str) -> Result<Token, KeyError> {
        let origin = &self.origin;
        match &self.source {
            Source::Entra {
                token_url,
                client_id,
                proof,
            } => {
                let scope = format!("{resource}/.default");
                let mut form: Vec<(&str, String)> = vec![
                    ("grant_type", "client_credentials".to_string()),
                    ("client_id", client_id.clone()),
                    ("scope", scope),
                ];
                let secret = match proof {
                    Proof::Secret(secret) => {
                        form.push(("client_secret", secret.expose().to_string()));
                        secret.clone()
                    }
                    Proof::Certificate { key, thumbprint } => {
                        let assertion = certificate_assertion(
                            token_url, client_id, key, thumbprint,
                        )
                        .map_err(|reason| KeyError::NotConfigured {
                            backend: BACKEND,
                            reason: format!(
                                "the private key in AZURE_CLIENT_CERTIFICATE_PATH: {reason}"
                            ),
                        })?;
                        form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE.to_string()));
                        form.push(("client_assertion", assertion.expose().to_string()));
                        assertion
                    }
                    Proof::FederatedTokenFile(path) => {
                        let token = remote::read_small_file(path)
                            .map(|t| Secret::new(t.trim()))
                            .map_err(|e| KeyError::NotConfigured {
                                backend: BACKEND,
                                reason: format!(
                                    "cannot read AZURE_FEDERATED_TOKEN_FILE={}: {e}",
                                    path.display()
                                ),
                            })?;
                        form.push(("client_assertion_type", CLIENT_ASSERTION_TYPE.to_string()));
                        form.push(("client_assertion", token.expose().to_string()));
                        token
                    }
                };
                let refused = format!("Microsoft Entra ID refused {origin}");
                rest.call(
                    Method::POST,
                    token_url,
                    &[secret.expose()],
                    |r| r.form(&form),
                    |reply| entra_token(reply, &refused),
                )
                .await
            }
            Source::AppService {
                endpoint,
                header,
                client_id,
            } => {
                let mut query = vec![("api-version", "2019-08-01"), ("resource", resource)];
                if let Some(id) = client_id {
                    query.push(("client_id", id));
                }
                let refused = format!("App Service gave no token for {origin}");
                rest.call(
                    Method::GET,
                    endpoint,
                    &[header.expose()],
                    |r| r.query(&query).header("X-IDENTITY-HEADER", header.expose()),
                    |reply| managed_token(reply, &refused, false),
                )
                .await
            }
            Source::Imds { base, client_id } => {
                let mut query = vec![("api-version", "2018-02-01"), ("resource", resource)];
                if let Some(id) = client_id {
                    query.push(("client_id", id));
                }
                let refused = format!(
                    "the instance metadata service gave no token for {origin}: is that identity assigned to this machine?"
                );
                rest.call(
                    Method::GET,
                    &format!("{base}{IMDS_PATH}"),
                    &[],
                    |r| r.query(&query).header("Metadata", "true"),
                    |reply| managed_token(reply, &refused, true),
                )
                .await
            }
        }
    }
}

#[derive(Deserialize)]
struct TokenAnswer {
    access_token: String,
    expires_in: Option<Lenient>,
    expires_on: Option<Lenient>,
}

impl TokenAnswer {
    fn into_token(self) -> Token {
        let lifetime = match (&self.expires_in, &self.expires_on) {
            (Some(seconds), _) => seconds.value(),
            (None, Some(at)) => at.value().map(|at| at.saturating_sub(remote::unix_now())),
            (None, None) => None,
        };
        Token::new(self.access_token, lifetime.map(Duration::from_secs))
    }
}

fn entra_token(reply: Reply, refused: &str) -> Result<Token, KeyError> {
    if !reply.is_success() {
        return Err(reply.failure(Some(refused), false));
    }
    let answer: TokenAnswer = reply.json("an access token")?;
    if answer.access_token.is_empty() {
        return Err(reply.unusable("the answer holds an empty access token", false));
    }
    Ok(answer.into_token())
}

/// A managed identity endpoint's answer. IMDS answers 404 and 410 while it is updating, and
/// Microsoft asks clients to try again.
fn managed_token(reply: Reply, refused: &str, imds: bool) -> Result<Token, KeyError> {
    if !reply.is_success() {
        let busy = imds && matches!(reply.status.as_u16(), 404 | 410);
        return Err(reply.failure(Some(refused), busy));
    }
    let answer: TokenAnswer = reply.json("an access token")?;
    if answer.access_token.is_empty() {
        return Err(reply.unusable("the answer holds an empty access token", false));
    }
    Ok(answer.into_token())
}

/// The PEM private key and the certificate's SHA-1 thumbprint (base64url, for `x5t`) from a
/// PEM file holding both.
fn read_certificate(path: &std::path::Path) -> Result<(Secret, String), String> {
    let bytes = zeroize::Zeroizing::new(remote::read_small_bytes(path)?);
    let text = Secret::new(String::from_utf8_lossy(&bytes));
    if !text.expose().contains("-----BEGIN") {
        return Err(
            "not a PEM file; PKCS#12 (.pfx) certificates must be converted first (openssl pkcs12 -in cert.pfx -out cert.pem -noenc)".to_string(),
        );
    }
    let blocks =
        pem::parse_many(text.expose()).map_err(|_| "the PEM text is damaged".to_string())?;
    let certificate = blocks
        .iter()
        .find(|b| b.tag() == "CERTIFICATE")
        .ok_or("the file holds no CERTIFICATE")?;
    let key = blocks
        .iter()
        .find(|b| matches!(b.tag(), "PRIVATE KEY" | "RSA PRIVATE KEY"))
        .ok_or("the file holds no unencrypted PRIVATE KEY")?;
    let thumbprint = B64URL.encode(sha1::Sha1::digest(certificate.contents()));
    Ok((Secret::new(pem::encode(key)), thumbprint))
}

/// The client assertion for certificate credentials: an RS256 JWT naming the certificate by its
/// thumbprint (`x5t`), for the token endpoint only, valid ten minutes.
fn certificate_assertion(
    token_url: &str,
    client_id: &str,
    key: &Secret,
    thumbprint: &str,
) -> Result<Secret, String> {
    let now = remote::unix_now();
    let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "x5t": thumbprint});
    let claims = serde_json::json!({
        "aud": token_url,
        "iss": client_id,
        "sub": client_id,
        "jti": remote::random_hex(16),
        "nbf": now,
        "iat": now,
        "exp": now + 600,
    });
    remote::rs256_jwt(&header, &claims, key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use sigstore::crypto::SigningScheme;

    /// A JWK made from the DER of a key sigstore generated, with RustCrypto's point parsing.
    fn ec_jwk(der: &[u8], crv: &str) -> Jwk {
        use p256::elliptic_curve::sec1::ToEncodedPoint as _;
        use p256::pkcs8::DecodePublicKey as _;
        let (x, y) = match crv {
            "P-256" => {
                let p = p256::PublicKey::from_public_key_der(der)
                    .unwrap()
                    .to_encoded_point(false);
                (p.x().unwrap().to_vec(), p.y().unwrap().to_vec())
            }
            "P-384" => {
                let p = p384::PublicKey::from_public_key_der(der)
                    .unwrap()
                    .to_encoded_point(false);
                (p.x().unwrap().to_vec(), p.y().unwrap().to_vec())
            }
            _ => {
                let p = p521::PublicKey::from_public_key_der(der)
                    .unwrap()
                    .to_encoded_point(false);
                (p.x().unwrap().to_vec(), p.y().unwrap().to_vec())
            }
        };
        Jwk {
            kid: None,
            kty: "EC-HSM".into(),
            crv: Some(crv.into()),
            x: Some(B64URL.encode(x)),
            y: Some(B64URL.encode(y)),
            n: None,
            e: None,
            key_ops: None,
        }
    }

    fn generated_der(scheme: SigningScheme) -> Vec<u8> {
        scheme
            .create_signer()
            .unwrap()
            .to_sigstore_keypair()
            .unwrap()
            .public_key_to_der()
            .unwrap()
    }

    #[test]
    fn ec_jwks_become_the_same_der_public_key() {
        for (scheme, crv, alg) in [
            (SigningScheme::ECDSA_P256_SHA256_ASN1, "P-256", Alg::Es256),
            (SigningScheme::ECDSA_P384_SHA384_ASN1, "P-384", Alg::Es384),
            (SigningScheme::ECDSA_P521_SHA512_ASN1, "P-521", Alg::Es512),
        ] {
            let der = generated_der(scheme);
            let (converted, found) = jwk_to_der(&ec_jwk(&der, crv)).unwrap();
            assert_eq!(converted, der, "{crv}");
            assert_eq!(found, alg);
        }
    }

    #[test]
    fn rsa_jwks_become_the_same_der_public_key() {
        use rsa::pkcs8::DecodePublicKey as _;
        use rsa::traits::PublicKeyParts as _;
        let der = generated_der(SigningScheme::RSA_PKCS1_SHA256(2048));
        let key = rsa::RsaPublicKey::from_public_key_der(&der).unwrap();
        let jwk = Jwk {
            kid: None,
            kty: "RSA".into(),
            crv: None,
            x: None,
            y: None,
            n: Some(B64URL.encode(key.n().to_bytes_be())),
            e: Some(B64URL.encode(key.e().to_bytes_be())),
            key_ops: None,
        };
        let (converted, alg) = jwk_to_der(&jwk).unwrap();
        assert_eq!(converted, der);
        assert_eq!(alg, Alg::Rs256);

        let big = generated_der(SigningScheme::RSA_PKCS1_SHA256(3072));
        let key = rsa::RsaPublicKey::from_public_key_der(&big).unwrap();
        let jwk = Jwk {
            n: Some(B64URL.encode(key.n().to_bytes_be())),
            e: Some(B64URL.encode(key.e().to_bytes_be())),
            ..jwk
        };
        assert!(jwk_to_der(&jwk).unwrap_err().contains("3072-bit"));
    }

    #[test]
    fn bad_jwks_say_what_is_wrong() {
        let der = generated_der(SigningScheme::ECDSA_P256_SHA256_ASN1);
        let mut jwk = ec_jwk(&der, "P-256");
        jwk.crv = Some("P-256K".into());
        assert!(jwk_to_der(&jwk).unwrap_err().contains("P-256K"));
        let mut jwk = ec_jwk(&der, "P-256");
        jwk.y = jwk.x.clone();
        assert!(jwk_to_der(&jwk).unwrap_err().contains("not valid"));
        let mut jwk = ec_jwk(&der, "P-256");
        jwk.x = None;
        assert!(jwk_to_der(&jwk).unwrap_err().contains("'x'"));
        let mut jwk = ec_jwk(&der, "P-256");
        jwk.kty = "oct".into();
        assert!(jwk_to_der(&jwk).unwrap_err().contains("oct"));
    }

    #[test]
    fn key_ids_give_their_version() {
        let kid = "https://team.vault.azure.net/keys/Cosign/0123abcd";
        assert_eq!(version_of(kid, "cosign"), Some("0123abcd"));
        assert_eq!(version_of(kid, "other"), None);
        assert_eq!(
            version_of("https://team.vault.azure.net/keys/cosign", "cosign"),
            None
        );
        assert_eq!(version_of("https://v/keys/cosign/a?b", "cosign"), None);
    }

    #[test]
    fn names_that_would_change_the_url_are_refused() {
        assert!(check_names("u", "team.vault.azure.net", "cosign-1").is_ok());
        assert!(check_names("u", "127.0.0.1:8443", "k").is_ok());
        for (vault, key) in [
            ("user@evil.example", "k"),
            ("team.vault.azure.net?x", "k"),
            ("team.vault.azure.net", "k?x"),
            ("team.vault.azure.net", "k_1"),
        ] {
            assert!(check_names("u", vault, key).is_err(), "{vault} {key}");
        }
    }

    #[test]
    fn clouds_follow_cosigns_names() {
        let cloud = |vars: Vec<(&str, &str)>| Cloud::from_env(&Environment::from_vars(vars));
        assert_eq!(
            cloud(vec![]).unwrap(),
            Cloud {
                authority: "https://login.microsoftonline.com".into(),
                resource: "https://vault.azure.net".into()
            }
        );
        assert_eq!(
            cloud(vec![("AZURE_ENVIRONMENT", "AzureChinaCloud")])
                .unwrap()
                .resource,
            "https://vault.azure.cn"
        );
        assert_eq!(
            cloud(vec![("AZURE_ENVIRONMENT", "AZUREUSGOVERNMENT")])
                .unwrap()
                .authority,
            "https://login.microsoftonline.us"
        );
        assert_eq!(
            cloud(vec![
                ("AZURE_ENVIRONMENT", "AzureUSGovernmentCloud"),
                ("AZURE_AUTHORITY_HOST", "https://login.example/")
            ])
            .unwrap(),
            Cloud {
                authority: "https://login.example".into(),
                resource: "https://vault.usgovcloudapi.net".into()
            }
        );
        let err = cloud(vec![("AZURE_ENVIRONMENT", "AzureGermanCloud")]).unwrap_err();
        assert!(err.to_string().contains("AZURE_ENVIRONMENT"), "{err}");
        let err = cloud(vec![("AZURE_AUTHORITY_HOST", "login.example")]).unwrap_err();
        assert!(err.to_string().contains("AZURE_AUTHORITY_HOST"), "{err}");
    }

    #[test]
    fn challenges_are_read_and_their_resource_checked() {
        let c = parse_challenge(
            r#"Bearer authorization="https://login.microsoftonline.com/72f988bf", resource="https://vault.azure.net""#,
        )
        .unwrap();
        assert_eq!(
            c,
            Challenge {
                authorization: Some("https://login.microsoftonline.com/72f988bf".into()),
                resource: Some("https://vault.azure.net".into())
            }
        );
        let c = parse_challenge(
            r#"Bearer authorization_uri="https://login.example/t", scope="https://vault.azure.cn/.default""#,
        )
        .unwrap();
        assert_eq!(c.resource.as_deref(), Some("https://vault.azure.cn"));
        assert!(parse_challenge("Basic realm=x").is_none());

        assert!(resource_matches_vault(
            "https://vault.azure.net",
            "team.vault.azure.net"
        ));
        assert!(resource_matches_vault(
            "https://vault.azure.cn/",
            "team.vault.azure.cn"
        ));
        assert!(resource_matches_vault(
            "https://127.0.0.1",
            "127.0.0.1:8443"
        ));
        assert!(!resource_matches_vault(
            "https://evil.example",
            "team.vault.azure.net"
        ));
        assert!(!resource_matches_vault(
            "https://azure.net.evil",
            "team.vault.azure.net"
        ));
        assert!(!resource_matches_vault(
            "http://vault.azure.net",
            "team.vault.azure.net"
        ));
        assert!(!resource_matches_vault("not a url", "team.vault.azure.net"));
    }

    #[test]
    fn certificates_must_be_pem_with_a_key() {
        let dir = tempfile::tempdir().unwrap();
        let pfx = dir.path().join("c.pfx");
        std::fs::write(&pfx, [0x30u8, 0x82, 0x01, 0x02]).unwrap();
        assert!(read_certificate(&pfx).unwrap_err().contains("PKCS#12"));
        let only_cert = dir.path().join("c.pem");
        std::fs::write(
            &only_cert,
            pem::encode(&pem::Pem::new("CERTIFICATE", vec![1, 2, 3])),
        )
        .unwrap();
        assert!(
            read_certificate(&only_cert)
                .unwrap_err()
                .contains("PRIVATE KEY")
        );
        let both = dir.path().join("both.pem");
        let key = pem::encode(&pem::Pem::new("PRIVATE KEY", vec![9, 9]));
        std::fs::write(
            &both,
            format!(
                "{}{key}",
                pem::encode(&pem::Pem::new("CERTIFICATE", vec![1, 2, 3]))
            ),
        )
        .unwrap();
        let (found, thumbprint) = read_certificate(&both).unwrap();
        assert_eq!(found.expose(), key);
        // SHA-1 of 01 02 03, base64url.
        assert_eq!(thumbprint, "cDeAcZjCKn0rCAc3HXY3eahP388");
    }
}
