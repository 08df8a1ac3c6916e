//! Writing hand-made (often hostile) signature images into a test registry, to check that
//! verification refuses them. Uses imagegate's registry client only as a transport: the
//! manifests are written here, byte by byte.

use std::collections::BTreeMap;

use bytes::Bytes;
use imagegate::digest::Digest;
use imagegate::http::{Http, NetworkSettings};
use imagegate::reference::ImageRef;
use imagegate::registry::Registry;
use imagegate::registry::credentials::AuthFiles;
use serde_json::json;

/// One layer of a hand-made `.sig` image.
pub struct RawLayer {
    pub media_type: String,
    /// What is uploaded as the blob.
    pub blob: Vec<u8>,
    /// What the descriptor claims (defaults to the blob's own digest and size).
    pub digest: Option<String>,
    pub size: Option<i64>,
    pub annotations: BTreeMap<String, String>,
}

impl RawLayer {
    pub fn signature(payload: &[u8], signature_b64: &str) -> RawLayer {
        RawLayer {
            media_type: "application/vnd.dev.cosign.simplesigning.v1+json".into(),
            blob: payload.to_vec(),
            digest: None,
            size: None,
            annotations: BTreeMap::from([(
                "dev.cosignproject.cosign/signature".to_string(),
                signature_b64.to_string(),
            )]),
        }
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
}

fn client(host: &str) -> Registry {
    let http = Http::new(NetworkSettings {
        insecure_hosts: vec![host.to_string()],
        retries: 0,
        ..Default::default()
    })
    .expect("http");
    Registry::new(http, AuthFiles::none())
}

/// Pushes a manifest with `layers` to `image` (REGISTRY/REPO:TAG) on a plain-HTTP registry.
pub fn push_sig_image(image: &str, layers: &[RawLayer]) {
    let image = ImageRef::parse(image).expect("reference");
    let registry = client(image.registry());
    runtime().block_on(async {
        let mut descriptors = Vec::new();
        let mut diff_ids = Vec::new();
        let mut pushed = std::collections::BTreeSet::new();
        for layer in layers {
            let own = Digest::sha256_of(&layer.blob).to_string();
            if pushed.insert(own.clone()) {
                registry
                    .push_blob(&image, Bytes::from(layer.blob.clone()))
                    .await
                    .expect("push blob");
            }
            let mut d = json!({
                "mediaType": layer.media_type,
                "size": layer.size.unwrap_or(layer.blob.len() as i64),
                "digest": layer.digest.clone().unwrap_or(own.clone()),
            });
            if !layer.annotations.is_empty() {
                d["annotations"] = json!(layer.annotations);
            }
            descriptors.push(d);
            diff_ids.push(own);
        }
        let config = serde_json::to_vec(&json!({"architecture": "", "os": "", "rootfs": {"type": "layers", "diff_ids": diff_ids}, "config": {}})).unwrap();
        let config_digest = registry.push_blob(&image, Bytes::from(config.clone())).await.expect("push config");
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "size": config.len(), "digest": config_digest.to_string()},
            "layers": descriptors,
        });
        registry
            .push_manifest(
                &image,
                &image.manifest_reference(),
                Bytes::from(serde_json::to_vec(&manifest).unwrap()),
                "application/vnd.oci.image.manifest.v1+json",
            )
            .await
            .expect("push manifest");
    });
}

/// The raw `.sig` manifest JSON at `image` (REGISTRY/REPO:TAG), or None.
pub fn sig_manifest(image: &str) -> Option<serde_json::Value> {
    let image = ImageRef::parse(image).expect("reference");
    let registry = client(image.registry());
    runtime().block_on(async {
        registry
            .manifest_if_exists(&image, &image.manifest_reference())
            .await
            .expect("read manifest")
            .map(|m| serde_json::from_slice(&m.bytes).expect("json"))
    })
}

/// The exact bytes of the manifest at `image` (REGISTRY/REPO:TAG or @DIGEST).
pub fn manifest_bytes(image: &str) -> Vec<u8> {
    let image = ImageRef::parse(image).expect("reference");
    let registry = client(image.registry());
    runtime().block_on(async {
        registry
            .manifest(&image, &image.manifest_reference())
            .await
            .expect("read manifest")
            .bytes
            .to_vec()
    })
}

/// A blob of `image`'s repository.
pub fn blob(image: &str, digest: &str) -> Vec<u8> {
    let image = ImageRef::parse(image).expect("reference");
    let registry = client(image.registry());
    runtime().block_on(async {
        registry
            .blob(
                &image,
                &Digest::parse(digest).unwrap(),
                64 * 1024 * 1024,
                "blob",
            )
            .await
            .expect("read blob")
            .to_vec()
    })
}

/// The tags of `image`'s repository.
pub fn tags(image: &str) -> Vec<String> {
    let image = ImageRef::parse(image).expect("reference");
    let registry = client(image.registry());
    runtime().block_on(async { registry.tags(&image).await.unwrap_or_default() })
}
