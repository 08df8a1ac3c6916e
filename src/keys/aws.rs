//! `awskms://[ENDPOINT]/{KEY-ID | alias/NAME | key ARN | alias ARN}` through the AWS SDK: the
//! standard credential chain (environment, shared files, SSO, web identity token file for EKS
//! and GitHub OIDC, container and instance metadata), the region from the ARN or the
//! environment, `AWS_ENDPOINT_URL_KMS`/`AWS_ENDPOINT_URL` honoured by the SDK itself.
//!
//! Payloads up to 4096 bytes are sent with `MessageType=RAW` (KMS hashes them itself), longer
//! ones as a SHA-256 `DIGEST`. RAW gives the same signature as DIGEST on AWS, and is also right
//! on moto, whose DIGEST mode hashes twice.

use std::sync::OnceLock;

use aws_sdk_kms::error::{DisplayErrorContext, SdkError};
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{MessageType, SigningAlgorithmSpec};
use regex::Regex;
use sha2::Digest as _;

use super::{KeyContext, KeyError, KeyRef, PublicKey};

const BACKEND: &str = "AWS KMS";
/// The largest message KMS signs in RAW mode.
const RAW_LIMIT: usize = 4096;

struct Patterns {
    key_id: Regex,
    key_arn: Regex,
    alias_name: Regex,
    alias_arn: Regex,
}

/// cosign's four accepted key forms (sigstore `kms/aws/client.go`), after `awskms://HOST/`.
fn patterns() -> &'static Patterns {
    static P: OnceLock<Patterns> = OnceLock::new();
    P.get_or_init(|| {
        let uuid = r"m?r?k?-?[A-Fa-f0-9]{8}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{4}-?[A-Fa-f0-9]{12}";
        let arn = r"arn:(?:aws|aws-us-gov|aws-cn):kms:[a-z0-9-]+:\d{12}:";
        let compile = |p: String| Regex::new(&p).expect("static pattern");
        Patterns {
            key_id: compile(format!("^{uuid}$")),
            key_arn: compile(format!("^{arn}key/{uuid}$")),
            alias_name: compile("^alias/.+$".to_string()),
            alias_arn: compile(format!("^{arn}alias/.+$")),
        }
    })
}

/// Parses what follows `awskms://`.
pub fn parse_ref(rest: &str) -> Result<KeyRef, String> {
    let (endpoint, key_id) = rest
        .split_once('/')
        .ok_or("awskms:// needs a key: awskms:///KEY-ID, awskms:///alias/NAME or an ARN")?;
    let p = patterns();
    let valid = p.key_id.is_match(key_id)
        || p.key_arn.is_match(key_id)
        || p.alias_name.is_match(key_id)
        || p.alias_arn.is_match(key_id);
    if !valid {
        return Err(format!(
            "'{key_id}' is not a KMS key id, alias/NAME, key ARN or alias ARN (with no endpoint, write three slashes: awskms:///alias/NAME)"
        ));
    }
    Ok(KeyRef::Aws {
        endpoint: (!endpoint.is_empty()).then(|| endpoint.to_string()),
        key_id: key_id.to_string(),
    })
}

/// The region an ARN names (`arn:aws:kms:REGION:ACCOUNT:…`).
fn region_of(key_id: &str) -> Option<String> {
    let p = patterns();
    if p.key_arn.is_match(key_id) || p.alias_arn.is_match(key_id) {
        key_id.split(':').nth(3).map(str::to_string)
    } else {
        None
    }
}

/// A hash function, as bytes in and digest out.
type Hasher = fn(&[u8]) -> Vec<u8>;

/// A KMS signing key and its public half.
pub struct AwsKey {
    client: aws_sdk_kms::Client,
    key_id: String,
    algorithm: SigningAlgorithmSpec,
    /// The hash KMS applies for `algorithm`, for payloads sent as a digest.
    prehash: Hasher,
    public: PublicKey,
}

impl AwsKey {
    /// Reads the key's public key and signing algorithm with `GetPublicKey`.
    pub async fn connect(
        endpoint: Option<&str>,
        key_id: &str,
        ctx: &KeyContext<'_>,
    ) -> Result<AwsKey, KeyError> {
        let settings = ctx.http.settings();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(settings.retries.saturating_add(1)),
            )
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(settings.timeout)
                    .build(),
            );
        if let Some(region) = region_of(key_id) {
            loader = loader.region(aws_config::Region::new(region));
        }
        let config = loader.load().await;
        if config.region().is_none() {
            return Err(KeyError::NotConfigured {
                backend: BACKEND,
                reason: format!(
                    "no region for '{key_id}': set AWS_REGION, or name the key by its ARN"
                ),
            });
        }
        let mut kms = aws_sdk_kms::config::Builder::from(&config);
        if let Some(host) = endpoint {
            // cosign's rule: an endpoint in the URI is reached over HTTPS.
            kms = kms.endpoint_url(format!("https://{host}"));
        }
        let client = aws_sdk_kms::Client::from_conf(kms.build());
        let answer = client
            .get_public_key()
            .key_id(key_id)
            .send()
            .await
            .map_err(|e| remote_error("GetPublicKey", key_id, e))?;
        let der = answer
            .public_key()
            .ok_or_else(|| KeyError::Remote {
                backend: BACKEND,
                message: format!("GetPublicKey for {key_id} returned no public key"),
                transient: false,
            })?
            .as_ref()
            .to_vec();
        let public = PublicKey::from_der(&der, &format!("awskms key {key_id}"))?;
        // The algorithm follows from the public key itself (moto leaves KeySpec out).
        let (algorithm, prehash): (SigningAlgorithmSpec, Hasher) = match public.kind() {
            "ECDSA P-256" => (SigningAlgorithmSpec::EcdsaSha256, sha256),
            "ECDSA P-384" => (SigningAlgorithmSpec::EcdsaSha384, sha384),
            "ECDSA P-521" => (SigningAlgorithmSpec::EcdsaSha512, sha512),
            "RSA" => (SigningAlgorithmSpec::RsassaPkcs1V15Sha256, sha256),
            other => {
                return Err(KeyError::NotAKey {
                    origin: format!("awskms key {key_id}"),
                    reason: format!(
                        "a {other} key cannot make cosign signatures through KMS (use ECC_NIST_P256, P384, P521 or RSA)"
                    ),
                });
            }
        };
        let offered = answer.signing_algorithms();
        if !offered.is_empty() && !offered.contains(&algorithm) {
            return Err(KeyError::NotAKey {
                origin: format!("awskms key {key_id}"),
                reason: format!(
                    "the key cannot sign with {algorithm:?} (is its usage SIGN_VERIFY?)"
                ),
            });
        }
        Ok(AwsKey {
            client,
            key_id: key_id.to_string(),
            algorithm,
            prehash,
            public,
        })
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub async fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, KeyError> {
        let (message, kind) = if payload.len() <= RAW_LIMIT {
            (payload.to_vec(), MessageType::Raw)
        } else {
            ((self.prehash)(payload), MessageType::Digest)
        };
        let answer = self
            .client
            .sign()
            .key_id(&self.key_id)
            .message(Blob::new(message))
            .message_type(kind)
            .signing_algorithm(self.algorithm.clone())
            .send()
            .await
            .map_err(|e| remote_error("Sign", &self.key_id, e))?;
        answer
            .signature()
            .map(|b| b.as_ref().to_vec())
            .ok_or_else(|| KeyError::Remote {
                backend: BACKEND,
                message: format!("Sign with {} returned no signature", self.key_id),
                transient: false,
            })
    }
}

fn sha256(bytes: &[u8]) -> Vec<u8> {
    sha2::Sha256::digest(bytes).to_vec()
}

fn sha384(bytes: &[u8]) -> Vec<u8> {
    sha2::Sha384::digest(bytes).to_vec()
}

fn sha512(bytes: &[u8]) -> Vec<u8> {
    sha2::Sha512::digest(bytes).to_vec()
}

/// An SDK failure in words: the operation, the key, the service's error code and message (the
/// SDK never puts credentials in these).
fn remote_error<E, R>(operation: &str, key_id: &str, err: SdkError<E, R>) -> KeyError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    // The SDK has already retried throttling and 5xx answers itself.
    let transient = matches!(
        err,
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_)
    );
    KeyError::Remote {
        backend: BACKEND,
        message: format!(
            "{operation} for {key_id} failed: {}",
            DisplayErrorContext(&err)
        ),
        transient,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_cosigns_four_key_forms() {
        let ok = |rest: &str| parse_ref(rest).unwrap();
        assert_eq!(
            ok("/1234abcd-12ab-34cd-56ef-1234567890ab"),
            KeyRef::Aws {
                endpoint: None,
                key_id: "1234abcd-12ab-34cd-56ef-1234567890ab".into()
            }
        );
        assert_eq!(
            ok("localhost:4566/alias/cosign"),
            KeyRef::Aws {
                endpoint: Some("localhost:4566".into()),
                key_id: "alias/cosign".into()
            }
        );
        ok("/mrk-1234abcd12ab34cd56ef1234567890ab");
        ok("/arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab");
        ok("/arn:aws-us-gov:kms:us-gov-west-1:123456789012:alias/team/cosign");
        for bad in [
            "",
            "alias/x",
            "/",
            "/not-a-key",
            "/arn:aws:kms:eu-west-1:12:key/x",
        ] {
            assert!(parse_ref(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_region_comes_from_an_arn() {
        assert_eq!(
            region_of("arn:aws:kms:eu-west-1:123456789012:alias/c").as_deref(),
            Some("eu-west-1")
        );
        assert_eq!(region_of("alias/c"), None);
    }
}
