//! OCI image layouts built in code, byte for byte the same on every run (fixed times, fixed
//! tar headers), and pushed to a registry with skopeo.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use super::{Output, registry::Registry, run_with_timeout, sha256, tools};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const LAYER_TAR: &str = "application/vnd.oci.image.layer.v1.tar";

/// One history line of an image config; `layer` is true when it made a filesystem layer.
#[derive(Clone, Debug)]
pub struct Step {
    pub created_by: String,
    pub layer: bool,
}

/// What goes into an image's config.
#[derive(Clone, Debug)]
pub struct ImageSpec {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
    pub created: String,
    pub user: String,
    pub labels: Vec<(String, String)>,
    pub env: Vec<String>,
    pub exposed_ports: Vec<String>,
    pub steps: Vec<Step>,
    /// Gzip layers (as registries usually hold them) or plain tar.
    pub gzip: bool,
}

fn step(created_by: &str, layer: bool) -> Step {
    Step {
        created_by: created_by.to_string(),
        layer,
    }
}

impl ImageSpec {
    /// A well-behaved image: a non-root user, labels, env, one exposed port, Docker-style history.
    pub fn rich() -> ImageSpec {
        ImageSpec {
            os: "linux".into(),
            architecture: "amd64".into(),
            variant: None,
            created: "2024-01-15T10:00:00Z".into(),
            user: "app".into(),
            labels: vec![
                (
                    "org.opencontainers.image.source".into(),
                    "https://git.example.com/team/app".into(),
                ),
                ("maintainer".into(), "team@example.com".into()),
            ],
            env: vec![
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
                "APP_PORT=8080".into(),
            ],
            exposed_ports: vec!["8080/tcp".into()],
            steps: vec![
                step(
                    "/bin/sh -c #(nop) ADD file:4b03b5f551e3fbdf47ec609712007327828f7530cc3455c43bbcdcaf449a75a9 in / ",
                    true,
                ),
                step("/bin/sh -c #(nop)  CMD [\"/bin/sh\"]", false),
                step(
                    "/bin/sh -c #(nop)  LABEL maintainer=team@example.com",
                    false,
                ),
                step("/bin/sh -c addgroup -S app && adduser -S app -G app", true),
                step("/bin/sh -c #(nop) COPY dir:0f2a7b3c in /app ", true),
                step("/bin/sh -c #(nop)  ENV APP_PORT=8080", false),
                step("/bin/sh -c #(nop)  EXPOSE 8080/tcp", false),
                step("/bin/sh -c #(nop)  USER app", false),
                step("/bin/sh -c #(nop)  ENTRYPOINT [\"/app/server\"]", false),
            ],
            gzip: true,
        }
    }

    /// The same image for another platform.
    pub fn for_platform(mut self, architecture: &str, variant: Option<&str>) -> ImageSpec {
        self.architecture = architecture.to_string();
        self.variant = variant.map(str::to_string);
        self
    }
}

/// A layout written to disk: where, under which tag, and the digests in it.
#[derive(Clone, Debug)]
pub struct Layout {
    pub dir: PathBuf,
    pub tag: String,
    /// The digest index.json points at: the image manifest, or the multi-platform index.
    pub digest: String,
    /// For an index: each child's `os/arch[/variant]` and digest.
    pub children: Vec<(String, String)>,
    /// Each image's config digest, in the order written.
    pub configs: Vec<String>,
}

impl Layout {
    /// `oci:DIR:TAG`
    pub fn oci_ref(&self) -> String {
        format!("oci:{}:{}", self.dir.display(), self.tag)
    }
}

struct Writer {
    dir: PathBuf,
}

impl Writer {
    fn new(dir: &Path) -> Writer {
        std::fs::create_dir_all(dir.join("blobs/sha256")).expect("blobs dir");
        std::fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#)
            .expect("oci-layout");
        Writer {
            dir: dir.to_path_buf(),
        }
    }

    /// Stores a blob, returning its descriptor fields.
    fn blob(&self, bytes: &[u8]) -> (String, usize) {
        let digest = sha256(bytes);
        let hex = digest.trim_start_matches("sha256:");
        std::fs::write(self.dir.join("blobs/sha256").join(hex), bytes).expect("blob");
        (digest, bytes.len())
    }

    /// Writes one image (layers, config, manifest); returns (manifest digest, size, config digest).
    fn image(&self, spec: &ImageSpec) -> (String, usize, String) {
        let mut layers = Vec::new();
        let mut diff_ids = Vec::new();
        for (i, s) in spec.steps.iter().enumerate().filter(|(_, s)| s.layer) {
            let tar = layer_tar(i, &s.created_by);
            diff_ids.push(sha256(&tar));
            let (bytes, media_type) = if spec.gzip {
                (gzip(&tar), LAYER_GZIP)
            } else {
                (tar, LAYER_TAR)
            };
            let (digest, size) = self.blob(&bytes);
            layers.push(json!({"mediaType": media_type, "digest": digest, "size": size}));
        }
        let mut ports = serde_json::Map::new();
        for p in &spec.exposed_ports {
            ports.insert(p.clone(), json!({}));
        }
        let mut labels = serde_json::Map::new();
        for (k, v) in &spec.labels {
            labels.insert(k.clone(), json!(v));
        }
        let history: Vec<Value> = spec
            .steps
            .iter()
            .map(|s| {
                let mut h = json!({"created": spec.created, "created_by": s.created_by});
                if !s.layer {
                    h["empty_layer"] = json!(true);
                }
                h
            })
            .collect();
        let mut config = json!({
            "architecture": spec.architecture,
            "os": spec.os,
            "created": spec.created,
            "config": {
                "User": spec.user,
                "Env": spec.env,
                "ExposedPorts": ports,
                "Labels": labels,
                "Cmd": ["/bin/sh"],
            },
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
            "history": history,
        });
        if let Some(v) = &spec.variant {
            config["variant"] = json!(v);
        }
        let config_bytes = serde_json::to_vec(&config).expect("config json");
        let (config_digest, config_size) = self.blob(&config_bytes);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
            "layers": layers,
        });
        let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest json");
        let (digest, size) = self.blob(&manifest_bytes);
        (digest, size, config_digest)
    }

    fn index_json(&self, media_type: &str, digest: &str, size: usize, tag: &str) {
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": media_type,
                "digest": digest,
                "size": size,
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }],
        });
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).expect("json"),
        )
        .expect("index.json");
    }
}

/// Writes a single-platform image as an OCI layout in `dir`, tagged `tag`.
pub fn write_image(dir: &Path, tag: &str, spec: &ImageSpec) -> Layout {
    let w = Writer::new(dir);
    let (digest, size, config) = w.image(spec);
    w.index_json(OCI_MANIFEST, &digest, size, tag);
    Layout {
        dir: dir.to_path_buf(),
        tag: tag.to_string(),
        digest,
        children: Vec::new(),
        configs: vec![config],
    }
}

/// Writes a multi-platform index of `specs` as an OCI layout in `dir`, tagged `tag`.
pub fn write_index(dir: &Path, tag: &str, specs: &[ImageSpec]) -> Layout {
    let w = Writer::new(dir);
    let mut entries = Vec::new();
    let mut children = Vec::new();
    let mut configs = Vec::new();
    for spec in specs {
        let (digest, size, config) = w.image(spec);
        let mut platform = json!({"os": spec.os, "architecture": spec.architecture});
        let mut name = format!("{}/{}", spec.os, spec.architecture);
        if let Some(v) = &spec.variant {
            platform["variant"] = json!(v);
            name = format!("{name}/{v}");
        }
        entries.push(json!({"mediaType": OCI_MANIFEST, "digest": digest, "size": size, "platform": platform}));
        children.push((name, digest));
        configs.push(config);
    }
    let index = json!({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries});
    let bytes = serde_json::to_vec(&index).expect("index json");
    let (digest, size) = w.blob(&bytes);
    w.index_json(OCI_INDEX, &digest, size, tag);
    Layout {
        dir: dir.to_path_buf(),
        tag: tag.to_string(),
        digest,
        children,
        configs,
    }
}

/// Packs a layout folder into an oci-archive tar file.
pub fn write_archive(layout: &Path, tar_path: &Path) {
    let file = std::fs::File::create(tar_path).expect("archive file");
    let mut builder = tar::Builder::new(file);
    builder.mode(tar::HeaderMode::Deterministic);
    builder.append_dir_all(".", layout).expect("archive layout");
    builder.finish().expect("finish archive");
}

/// Pushes a layout to `registry` as `repo_and_tag` with skopeo (all platforms of an index).
pub fn push(layout: &Layout, registry: &Registry, repo_and_tag: &str) {
    let mut cmd = Command::new(tools::skopeo());
    cmd.args(["copy", "--all", "--preserve-digests", "--quiet"])
        .args(registry.skopeo_flags("dest"))
        .arg(layout.oci_ref())
        .arg(format!("docker://{}", registry.image(repo_and_tag)));
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    assert_eq!(out.code, 0, "skopeo copy failed:\n{}", out.stderr);
}

/// `skopeo inspect --raw` of an image in `registry`: the manifest bytes skopeo received.
pub fn skopeo_raw(registry: &Registry, image: &str) -> Vec<u8> {
    let mut cmd = Command::new(tools::skopeo());
    cmd.args(["inspect", "--raw"])
        .args(
            registry
                .skopeo_flags("src")
                .into_iter()
                .map(|f| f.replace("--src-", "--")),
        )
        .arg(format!("docker://{}", registry.image(image)));
    let out = run_skopeo_bytes(cmd);
    assert!(!out.is_empty(), "skopeo returned no manifest");
    out
}

fn run_skopeo_bytes(mut cmd: Command) -> Vec<u8> {
    let out = cmd.output().expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Runs skopeo with `args` (after the subcommand's own flags), returning its output.
pub fn skopeo(args: &[&str]) -> Output {
    let mut cmd = Command::new(tools::skopeo());
    cmd.args(args);
    run_with_timeout(cmd, Duration::from_secs(60))
}

/// A small, fixed layer: one file whose content names the step that made it.
fn layer_tar(index: usize, created_by: &str) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let content = format!("step {index}: {created_by}\n");
    let mut header = tar::Header::new_gnu();
    header.set_size(content.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    header.set_entry_type(tar::EntryType::Regular);
    header.set_cksum();
    builder
        .append_data(
            &mut header,
            format!("layer{index}/step.txt"),
            content.as_bytes(),
        )
        .expect("tar entry");
    builder.into_inner().expect("tar")
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::GzBuilder::new()
        .mtime(0)
        .write(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).expect("gzip");
    encoder.finish().expect("gzip")
}
