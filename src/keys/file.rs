//! Keys held locally: cosign's encrypted key format (scrypt + NaCl secretbox around PKCS#8,
//! PEM labels `ENCRYPTED SIGSTORE PRIVATE KEY` and `ENCRYPTED COSIGN PRIVATE KEY`), plain
//! PKCS#8 private keys, and public keys. The key derivation and the box are RustCrypto's
//! (`scrypt`, `crypto_secretbox`); the signing is sigstore's.

use std::path::Path;

use base64::Engine as _;
use crypto_secretbox::aead::{Aead, KeyInit};
use serde::{Deserialize, Serialize};
use sigstore::crypto::SigningScheme;
use sigstore::crypto::signing_key::{SigStoreKeyPair, SigStoreSigner};
use zeroize::Zeroizing;

use super::{KeyError, PublicKey};
use crate::secret::Secret;

/// PEM label cosign writes since v2.0.1.
pub const SIGSTORE_LABEL: &str = "ENCRYPTED SIGSTORE PRIVATE KEY";
/// The label older cosign and containers/image write.
pub const COSIGN_LABEL: &str = "ENCRYPTED COSIGN PRIVATE KEY";
/// scrypt work factors cosign accepts when decrypting (go-securesystemslib `CheckParams`).
const ACCEPTED_N: [u32; 3] = [32768, 65536, 131072];
/// The work factor cosign ≥ 2.2 writes.
pub const DEFAULT_N: u32 = 65536;
const SCRYPT_R: u32 = 8;
const SCRYPT_P: u32 = 1;
const KEY_FILE_LIMIT: u64 = 64 * 1024;

/// A private key held in memory, ready to sign.
pub struct LocalKey {
    signer: SigStoreSigner,
    public: PublicKey,
}

impl LocalKey {
    /// From PEM text: an encrypted cosign key (asking `password` for its password) or an
    /// unencrypted PKCS#8 private key.
    pub fn from_pem(
        pem_text: &str,
        origin: &str,
        password: impl FnOnce(&str) -> Result<Secret, KeyError>,
    ) -> Result<LocalKey, KeyError> {
        let block = parse_pem(pem_text, origin)?;
        let der: Zeroizing<Vec<u8>> = match block.tag() {
            SIGSTORE_LABEL | COSIGN_LABEL => {
                let password = password(origin)?;
                decrypt(block.contents(), password.expose().as_bytes(), origin)?
            }
            "PRIVATE KEY" => Zeroizing::new(block.contents().to_vec()),
            "PUBLIC KEY" => {
                return Err(KeyError::PublicKeyOnly {
                    origin: origin.to_string(),
                });
            }
            "EC PRIVATE KEY" | "RSA PRIVATE KEY" => {
                return Err(KeyError::NotAKey {
                    origin: origin.to_string(),
                    reason: format!(
                        "'{}' (SEC1/PKCS#1) keys are not read; convert it with `openssl pkcs8 -topk8 -nocrypt`, or use `imagegate generate-key-pair`",
                        block.tag()
                    ),
                });
            }
            other => {
                return Err(KeyError::NotAKey {
                    origin: origin.to_string(),
                    reason: format!("a '{other}' PEM block is not a private key"),
                });
            }
        };
        Self::from_pkcs8(&der, origin)
    }

    fn from_pkcs8(der: &[u8], origin: &str) -> Result<LocalKey, KeyError> {
        let keypair = SigStoreKeyPair::from_der(der).map_err(|e| KeyError::NotAKey {
            origin: origin.to_string(),
            reason: format!("unsupported private key ({e})"),
        })?;
        let public_der = keypair.public_key_to_der().map_err(|e| KeyError::NotAKey {
            origin: origin.to_string(),
            reason: e.to_string(),
        })?;
        let public = PublicKey::from_der(&public_der, origin)?;
        let signer = keypair
            .to_sigstore_signer(&signing_scheme(&public))
            .map_err(|e| KeyError::NotAKey {
                origin: origin.to_string(),
                reason: format!("cannot sign with this key ({e})"),
            })?;
        Ok(LocalKey { signer, public })
    }

    /// A new ECDSA P-256 key that lives only in memory (`gate --dry-run` without `--key`).
    pub fn ephemeral() -> Result<LocalKey, KeyError> {
        let signer = SigningScheme::ECDSA_P256_SHA256_ASN1
            .create_signer()
            .map_err(|e| KeyError::Refused(format!("generating a key failed: {e}")))?;
        let der = signer
            .to_sigstore_keypair()
            .and_then(|k| k.private_key_to_der())
            .map_err(|e| KeyError::Refused(e.to_string()))?;
        Self::from_pkcs8(&der, "an ephemeral key")
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// ECDSA (SHA-2 of the curve's size, ASN.1 DER), RSA PKCS#1 v1.5 with SHA-256, or Ed25519
    /// over the payload itself — what cosign does for each kind of key.
    pub fn sign(&self, payload: &[u8]) -> Result<Vec<u8>, KeyError> {
        self.signer
            .sign(payload)
            .map_err(|e| KeyError::Refused(format!("signing failed: {e}")))
    }
}

/// RSA keys sign with PKCS#1 v1.5, as cosign does (sigstore's default for RSA is PSS).
fn signing_scheme(public: &PublicKey) -> SigningScheme {
    match public.scheme() {
        SigningScheme::RSA_PSS_SHA256(bits) => SigningScheme::RSA_PKCS1_SHA256(bits),
        other => other,
    }
}

/// The public key in PEM text: a public key, or the public half of a private key.
pub fn public_key_from_pem(
    pem_text: &str,
    origin: &str,
    interactive: bool,
) -> Result<PublicKey, KeyError> {
    let block = parse_pem(pem_text, origin)?;
    if block.tag() == "PUBLIC KEY" {
        return PublicKey::from_der(block.contents(), origin);
    }
    let key = LocalKey::from_pem(pem_text, origin, |o| {
        super::password::for_key(o, interactive)
    })?;
    Ok(key.public)
}

/// Reads a key file (at most 64 KiB).
pub fn read_key_file(path: &Path) -> Result<String, KeyError> {
    let unreadable = |reason: String| KeyError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| unreadable(e.to_string()))?;
    if meta.len() > KEY_FILE_LIMIT {
        return Err(unreadable(format!(
            "it is {} bytes; a key file is a few hundred",
            meta.len()
        )));
    }
    std::fs::read_to_string(path).map_err(|e| unreadable(e.to_string()))
}

fn parse_pem(text: &str, origin: &str) -> Result<pem::Pem, KeyError> {
    pem::parse(text.trim()).map_err(|e| KeyError::NotAKey {
        origin: origin.to_string(),
        reason: format!("no PEM block found ({e})"),
    })
}

// The JSON inside the PEM, field for field as go-securesystemslib's `encrypted` package writes
// it (Go marshals struct fields in declaration order).
#[derive(Serialize, Deserialize)]
struct Sealed {
    kdf: Kdf,
    cipher: Cipher,
    #[serde(with = "b64")]
    ciphertext: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    #[serde(with = "b64")]
    salt: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u32,
    r: u32,
    p: u32,
}

#[derive(Serialize, Deserialize)]
struct Cipher {
    name: String,
    #[serde(with = "b64")]
    nonce: Vec<u8>,
}

mod b64 {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

/// Opens cosign's sealed key: checks the parameters (as cosign does, so a hostile file cannot
/// ask for an enormous scrypt cost), derives the key, opens the box.
fn decrypt(sealed: &[u8], password: &[u8], origin: &str) -> Result<Zeroizing<Vec<u8>>, KeyError> {
    let bad = |reason: String| KeyError::NotAKey {
        origin: origin.to_string(),
        reason,
    };
    let sealed: Sealed = serde_json::from_slice(sealed)
        .map_err(|e| bad(format!("the encrypted key is not cosign's format ({e})")))?;
    if sealed.kdf.name != "scrypt" || sealed.cipher.name != "nacl/secretbox" {
        return Err(bad(format!(
            "unsupported encryption '{}' + '{}' (cosign uses scrypt + nacl/secretbox)",
            sealed.kdf.name, sealed.cipher.name
        )));
    }
    let ScryptParams { n, r, p } = sealed.kdf.params;
    if !ACCEPTED_N.contains(&n) || r != SCRYPT_R || p != SCRYPT_P {
        return Err(bad(format!(
            "unexpected scrypt parameters N={n} r={r} p={p} (cosign accepts N of 32768, 65536 or 131072 with r=8, p=1)"
        )));
    }
    if sealed.cipher.nonce.len() != 24 {
        return Err(bad("the secretbox nonce is not 24 bytes".into()));
    }
    let key = derive_key(password, &sealed.kdf.salt, n).map_err(bad)?;
    let cipher =
        crypto_secretbox::XSalsa20Poly1305::new(crypto_secretbox::Key::from_slice(key.as_ref()));
    cipher
        .decrypt(
            crypto_secretbox::Nonce::from_slice(&sealed.cipher.nonce),
            sealed.ciphertext.as_slice(),
        )
        .map(Zeroizing::new)
        .map_err(|_| KeyError::WrongPassword {
            origin: origin.to_string(),
        })
}

fn derive_key(password: &[u8], salt: &[u8], n: u32) -> Result<Zeroizing<[u8; 32]>, String> {
    let log_n = n.trailing_zeros() as u8;
    let params = scrypt::Params::new(log_n, SCRYPT_R, SCRYPT_P).map_err(|e| e.to_string())?;
    let mut key = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password, salt, &params, key.as_mut()).map_err(|e| e.to_string())?;
    Ok(key)
}

fn random<const N: usize>() -> Result<[u8; N], KeyError> {
    let mut bytes = [0u8; N];
    getrandom::getrandom(&mut bytes)
        .map_err(|e| KeyError::Refused(format!("the system random generator failed: {e}")))?;
    Ok(bytes)
}

/// Seals a PKCS#8 private key the way `cosign generate-key-pair` does, with scrypt work factor
/// `n`, and returns the PEM text.
pub fn encrypt(pkcs8: &[u8], password: &[u8], n: u32) -> Result<String, KeyError> {
    let salt = random::<32>()?;
    let nonce = random::<24>()?;
    let key = derive_key(password, &salt, n).map_err(KeyError::Refused)?;
    let cipher =
        crypto_secretbox::XSalsa20Poly1305::new(crypto_secretbox::Key::from_slice(key.as_ref()));
    let ciphertext = cipher
        .encrypt(crypto_secretbox::Nonce::from_slice(&nonce), pkcs8)
        .map_err(|_| KeyError::Refused("sealing the key failed".into()))?;
    let sealed = Sealed {
        kdf: Kdf {
            name: "scrypt".into(),
            params: ScryptParams {
                n,
                r: SCRYPT_R,
                p: SCRYPT_P,
            },
            salt: salt.to_vec(),
        },
        cipher: Cipher {
            name: "nacl/secretbox".into(),
            nonce: nonce.to_vec(),
        },
        ciphertext,
    };
    let json = serde_json::to_vec(&sealed).map_err(|e| KeyError::Refused(e.to_string()))?;
    Ok(pem::encode_config(
        &pem::Pem::new(SIGSTORE_LABEL, json),
        pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF),
    ))
}

/// A new ECDSA P-256 key pair, as `cosign generate-key-pair` makes: the encrypted private key
/// PEM and the public key PEM.
pub fn generate(password: &Secret) -> Result<(Zeroizing<String>, String), KeyError> {
    let signer = SigningScheme::ECDSA_P256_SHA256_ASN1
        .create_signer()
        .map_err(|e| KeyError::Refused(format!("generating a key failed: {e}")))?;
    let keypair = signer
        .to_sigstore_keypair()
        .map_err(|e| KeyError::Refused(e.to_string()))?;
    let pkcs8 = keypair
        .private_key_to_der()
        .map_err(|e| KeyError::Refused(e.to_string()))?;
    let private_pem = Zeroizing::new(encrypt(&pkcs8, password.expose().as_bytes(), DEFAULT_N)?);
    let public_der = keypair
        .public_key_to_der()
        .map_err(|e| KeyError::Refused(e.to_string()))?;
    let public = PublicKey::from_der(&public_der, "the new key")?;
    Ok((private_pem, public.pem().to_string()))
}

/// The base64 of `bytes`, for the signature annotation.
pub fn base64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pw(s: &str) -> impl FnOnce(&str) -> Result<Secret, KeyError> + '_ {
        move |_| Ok(Secret::new(s))
    }

    #[test]
    fn generated_keys_round_trip_and_sign() {
        let (private, public) = generate(&Secret::new("hunter2")).unwrap();
        assert!(private.starts_with("-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n"));
        assert!(public.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        let key = LocalKey::from_pem(&private, "k", pw("hunter2")).unwrap();
        assert_eq!(key.public_key().pem(), public);
        let sig = key.sign(b"payload").unwrap();
        assert!(key.public_key().verify(b"payload", &sig));
        assert!(!key.public_key().verify(b"payload!", &sig));
        assert_eq!(key.public_key().kind(), "ECDSA P-256");
    }

    #[test]
    fn wrong_passwords_and_hostile_parameters_are_refused() {
        let (private, _) = generate(&Secret::new("right")).unwrap();
        assert!(matches!(
            LocalKey::from_pem(&private, "k", pw("wrong")),
            Err(KeyError::WrongPassword { .. })
        ));
        // A file asking for N = 2^20 must be refused before any work is done.
        let block = pem::parse(private.as_str()).unwrap();
        let mut sealed: serde_json::Value = serde_json::from_slice(block.contents()).unwrap();
        sealed["kdf"]["params"]["N"] = 1_048_576.into();
        let hostile = pem::encode(&pem::Pem::new(
            SIGSTORE_LABEL,
            serde_json::to_vec(&sealed).unwrap(),
        ));
        let err = LocalKey::from_pem(&hostile, "k", pw("right"))
            .err()
            .unwrap();
        assert!(
            err.to_string()
                .contains("unexpected scrypt parameters N=1048576"),
            "{err}"
        );
    }

    #[test]
    fn every_accepted_work_factor_and_both_labels_decrypt() {
        let signer = SigningScheme::ECDSA_P256_SHA256_ASN1
            .create_signer()
            .unwrap();
        let pkcs8 = signer
            .to_sigstore_keypair()
            .unwrap()
            .private_key_to_der()
            .unwrap();
        for n in ACCEPTED_N {
            let pem_text = encrypt(&pkcs8, b"pw", n).unwrap();
            assert!(
                LocalKey::from_pem(&pem_text, "k", pw("pw")).is_ok(),
                "N={n}"
            );
            let legacy = pem_text.replace(SIGSTORE_LABEL, COSIGN_LABEL);
            assert!(
                LocalKey::from_pem(&legacy, "k", pw("pw")).is_ok(),
                "legacy label, N={n}"
            );
        }
    }

    #[test]
    fn plain_pkcs8_and_public_keys() {
        let signer = SigningScheme::ECDSA_P256_SHA256_ASN1
            .create_signer()
            .unwrap();
        let keypair = signer.to_sigstore_keypair().unwrap();
        let plain = keypair.private_key_to_pem().unwrap();
        let key = LocalKey::from_pem(&plain, "k", |_| panic!("no password needed")).unwrap();
        let public =
            public_key_from_pem(&keypair.public_key_to_pem().unwrap(), "pub", false).unwrap();
        assert_eq!(public.id(), key.public_key().id());
        assert!(matches!(
            LocalKey::from_pem(public.pem(), "pub", pw("")),
            Err(KeyError::PublicKeyOnly { .. })
        ));
        assert!(matches!(
            LocalKey::from_pem("garbage", "g", pw("")),
            Err(KeyError::NotAKey { .. })
        ));
    }

    #[test]
    fn ed25519_and_rsa_keys_sign_as_cosign_does() {
        for scheme in [
            SigningScheme::ED25519,
            SigningScheme::RSA_PKCS1_SHA256(2048),
        ] {
            let signer = scheme.create_signer().unwrap();
            let pem_text = signer
                .to_sigstore_keypair()
                .unwrap()
                .private_key_to_pem()
                .unwrap();
            let key = LocalKey::from_pem(&pem_text, "k", pw("")).unwrap();
            let sig = key.sign(b"msg").unwrap();
            assert!(key.public_key().verify(b"msg", &sig), "{scheme}");
        }
    }

    #[test]
    fn p1363_ecdsa_signatures_verify_too() {
        let signer = SigningScheme::ECDSA_P256_SHA256_ASN1
            .create_signer()
            .unwrap();
        let pem_text = signer
            .to_sigstore_keypair()
            .unwrap()
            .private_key_to_pem()
            .unwrap();
        let key = LocalKey::from_pem(&pem_text, "k", pw("")).unwrap();
        let der = key.sign(b"msg").unwrap();
        let raw = p256::ecdsa::Signature::from_der(&der).unwrap().to_bytes();
        assert!(key.public_key().verify(b"msg", &raw));
    }
}
