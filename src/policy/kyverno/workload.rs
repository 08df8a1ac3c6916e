//! The workload the image is judged in: a Pod in the given namespace, or one of the Pod
//! controllers Kyverno auto-generates rules for (Deployment, DaemonSet, StatefulSet,
//! ReplicaSet, Job, CronJob). The resource is synthetic: one container running the image, in
//! the kind's pod template; everything else about it is unknown unless the caller says.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::image::KyvernoImage;
use super::vars::Scope;

/// A workload kind as a group/version/kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WorkloadKind {
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
}

impl WorkloadKind {
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

/// Pod first, then the controllers Kyverno's autogen covers.
pub const KINDS: [WorkloadKind; 7] = [
    WorkloadKind {
        group: "",
        version: "v1",
        kind: "Pod",
    },
    WorkloadKind {
        group: "apps",
        version: "v1",
        kind: "Deployment",
    },
    WorkloadKind {
        group: "apps",
        version: "v1",
        kind: "DaemonSet",
    },
    WorkloadKind {
        group: "apps",
        version: "v1",
        kind: "StatefulSet",
    },
    WorkloadKind {
        group: "apps",
        version: "v1",
        kind: "ReplicaSet",
    },
    WorkloadKind {
        group: "batch",
        version: "v1",
        kind: "Job",
    },
    WorkloadKind {
        group: "batch",
        version: "v1",
        kind: "CronJob",
    },
];

const CONTAINER_LISTS: [&str; 3] = ["containers", "initContainers", "ephemeralContainers"];
const SPEC_PREFIXES: [&str; 3] = [
    "request.object.spec",
    "request.object.spec.template.spec",
    "request.object.spec.jobTemplate.spec.template.spec",
];

/// What is known about where the image runs.
#[derive(Clone, Debug)]
pub struct Workload {
    pub kind: WorkloadKind,
    pub namespace: String,
    pub name: Option<String>,
    pub labels: Option<BTreeMap<String, String>>,
    pub namespace_labels: Option<BTreeMap<String, String>>,
    /// The image string in the container spec (after any mutateDigest patch).
    pub image: String,
    /// Kyverno's reading of `image`.
    pub info: KyvernoImage,
}

impl Workload {
    /// The container's name: the image name, made a valid DNS label. The real name is not
    /// known; rules rarely depend on it.
    pub fn container_name(&self) -> String {
        let mut name: String = self
            .info
            .name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        name = name.trim_matches('-').to_string();
        name.truncate(63);
        if name.is_empty() {
            "app".to_string()
        } else {
            name
        }
    }

    fn metadata(&self) -> Value {
        let mut meta = json!({ "namespace": self.namespace });
        if let Some(name) = &self.name {
            meta["name"] = json!(name);
        }
        if let Some(labels) = &self.labels {
            meta["labels"] = json!(labels);
        }
        meta
    }

    /// The synthetic resource: `{apiVersion, kind, metadata, spec…containers: [{name, image}]}`.
    pub fn resource(&self) -> Value {
        let pod_spec = json!({
            "containers": [{ "name": self.container_name(), "image": self.image }]
        });
        let template = |spec: Value| {
            let mut t = json!({ "spec": spec });
            if let Some(labels) = &self.labels {
                t["metadata"] = json!({ "labels": labels });
            }
            t
        };
        let spec = match self.kind.kind {
            "Pod" => pod_spec,
            "CronJob" => json!({ "jobTemplate": { "spec": { "template": template(pod_spec) } } }),
            _ => json!({ "template": template(pod_spec) }),
        };
        json!({
            "apiVersion": self.kind.api_version(),
            "kind": self.kind.kind,
            "metadata": self.metadata(),
            "spec": spec,
        })
    }

    /// The `images` context variable: `images.containers.<name>.{registry,path,name,tag,…}`.
    pub fn images_context(&self) -> Value {
        let mut containers = serde_json::Map::new();
        containers.insert(self.container_name(), self.info.context_value());
        json!({ "containers": containers })
    }

    /// The variables a rule sees for this workload at admission (a CREATE request).
    pub fn scope(&self) -> Scope {
        let mut scope = Scope::new();
        scope.set_known("images", self.images_context());
        let request = json!({
            "operation": "CREATE",
            "namespace": self.namespace,
            "kind": { "group": self.kind.group, "version": self.kind.version, "kind": self.kind.kind },
            "object": self.resource(),
            "oldObject": null,
        });
        let mut known: Vec<String> = vec![
            "request.operation".into(),
            "request.namespace".into(),
            "request.kind".into(),
            "request.oldObject".into(),
            "request.object.kind".into(),
            "request.object.apiVersion".into(),
            "request.object.metadata.namespace".into(),
        ];
        let mut exact = Vec::new();
        for prefix in SPEC_PREFIXES {
            for list in CONTAINER_LISTS {
                known.push(format!("{prefix}.{list}.image"));
                known.push(format!("{prefix}.{list}.name"));
                exact.push(format!("{prefix}.{list}"));
            }
        }
        if self.name.is_some() {
            known.push("request.object.metadata.name".into());
            known.push("request.name".into());
        }
        if self.labels.is_some() {
            known.push("request.object.metadata.labels".into());
            known.push("request.object.spec.template.metadata.labels".into());
        }
        scope.set_partial("request", request, &known, &exact);
        scope
    }
}

/// Whether a field path of the resource (keys only, from the root) is one the synthetic
/// resource knows: a container's image or name, or the namespace, kind and apiVersion.
pub fn is_known_resource_path(path: &[String], workload: &Workload) -> bool {
    let joined = format!("request.object.{}", path.join("."));
    let known_prefix = |p: &str| joined == p || joined.starts_with(&format!("{p}."));
    for prefix in SPEC_PREFIXES {
        for list in CONTAINER_LISTS {
            if known_prefix(&format!("{prefix}.{list}.image"))
                || known_prefix(&format!("{prefix}.{list}.name"))
            {
                return true;
            }
        }
    }
    let mut fixed = vec![
        "request.object.kind".to_string(),
        "request.object.apiVersion".to_string(),
        "request.object.metadata.namespace".to_string(),
    ];
    if workload.name.is_some() {
        fixed.push("request.object.metadata.name".into());
    }
    if workload.labels.is_some() {
        fixed.push("request.object.metadata.labels".into());
        fixed.push("request.object.spec.template.metadata.labels".into());
    }
    fixed.iter().any(|p| known_prefix(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload(kind: usize) -> Workload {
        Workload {
            kind: KINDS[kind],
            namespace: "prod".into(),
            name: None,
            labels: None,
            namespace_labels: None,
            image: "ghcr.io/o/my_app:v1".into(),
            info: KyvernoImage::parse("ghcr.io/o/my_app:v1").unwrap(),
        }
    }

    #[test]
    fn resources_put_the_container_where_the_kind_keeps_it() {
        let pod = workload(0).resource();
        assert_eq!(pod["spec"]["containers"][0]["image"], "ghcr.io/o/my_app:v1");
        assert_eq!(pod["spec"]["containers"][0]["name"], "my-app");
        assert_eq!(pod["metadata"]["namespace"], "prod");
        let deploy = workload(1).resource();
        assert_eq!(deploy["apiVersion"], "apps/v1");
        assert_eq!(
            deploy["spec"]["template"]["spec"]["containers"][0]["image"],
            "ghcr.io/o/my_app:v1"
        );
        let cron = workload(6).resource();
        assert_eq!(
            cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["image"],
            "ghcr.io/o/my_app:v1"
        );
    }

    #[test]
    fn scope_reads_images_and_the_container() {
        let w = workload(1);
        let s = w.scope();
        assert_eq!(
            s.query("request.object.spec.template.spec.containers[0].image")
                .unwrap(),
            "ghcr.io/o/my_app:v1"
        );
        assert_eq!(s.query("images.containers.\"my-app\".tag").unwrap(), "v1");
        assert!(s.query("request.object.metadata.labels").is_err());
        let path = |p: &str| p.split('.').map(str::to_string).collect::<Vec<_>>();
        assert!(is_known_resource_path(
            &path("spec.template.spec.containers.image"),
            &w
        ));
        assert!(!is_known_resource_path(
            &path("spec.template.spec.hostNetwork"),
            &w
        ));
    }
}
