//! The Tekton Task (`tekton/task.yaml`) and ClusterTask (`tekton/clustertask.yaml`): both are
//! rendered from `tekton/src/` by this test (`IMAGEGATE_WRITE_TEKTON=1 cargo test --test
//! packaging_tekton` writes them; otherwise the committed files must be exactly what the
//! sources render), and the Task's steps are run as Tekton runs them, against the test bed.
//!
//! No Tekton can run here (no cluster), so a small harness plays its part: it takes the Task's
//! params (with their defaults), bound and unbound workspaces, substitutes `$(params.…)`,
//! `$(results.….path)`, `$(workspaces.….path|bound)` and `$(steps.step-….exitCode.path)` into
//! each step's env and script as the controller does (an unknown variable fails the test),
//! maps `/tekton/…` to a folder of its own, runs each step's script with `sh` and exactly the
//! env the step would get, in order, honouring `onError`, writes each step's exit code where
//! the next step finds it, and reads the results back. Signing keys come from the Kubernetes
//! API stand-in (`k8s://`, with the pod's service-account token) or a mounted key pair.

mod testbed;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use imagegate::keys;
use imagegate::secret::Secret;
use serde::Deserialize as _;
use serde_yaml::Value;
use testbed::fixtures::{self, ImageSpec, Layout};
use testbed::k8s_standin::K8sStandin;
use testbed::registry::Registry;
use testbed::{Output, run_with_timeout, temp_dir, tools, write_file};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const SA_TOKEN: &str = "k8s-sa-token-imagegate-pipeline-0001";
const KEY_PASSWORD: &str = "tekton key password 42";

// --- rendering ----------------------------------------------------------------------------

struct Flavour {
    file: &'static str,
    api_version: &'static str,
    kind: &'static str,
    resources: &'static str,
    min_version: &'static str,
    header: &'static str,
}

const TASK: Flavour = Flavour {
    file: "tekton/task.yaml",
    api_version: "tekton.dev/v1",
    kind: "Task",
    resources: "computeResources",
    min_version: "0.50.0",
    header: "# imagegate as a Tekton Task (tekton.dev/v1), for the cluster and bundles resolvers.",
};

const CLUSTER_TASK: Flavour = Flavour {
    file: "tekton/clustertask.yaml",
    api_version: "tekton.dev/v1beta1",
    kind: "ClusterTask",
    resources: "resources",
    // Step onError (with the steps' exitCode paths) is beta, on by default, from v0.29.
    min_version: "0.29.0",
    header: "# imagegate as a ClusterTask (tekton.dev/v1beta1), only for clusters that still have\n\
             # ClusterTask: Tekton Pipelines before v1.0, OpenShift Pipelines before 1.17. Elsewhere\n\
             # install task.yaml and reach it with the cluster resolver.",
};

/// The step image: `IMAGEGATE_TEKTON_IMAGE` (a release pins the digest it pushed), else the
/// crate version's tag.
fn step_image() -> String {
    std::env::var("IMAGEGATE_TEKTON_IMAGE").unwrap_or_else(|_| {
        format!(
            "registry.example.invalid/imagegate:{}",
            env!("CARGO_PKG_VERSION")
        )
    })
}

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(REPO).join(path))
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

/// Renders one flavour from `tekton/src/`: `@@NAME@@` placeholders; a placeholder alone on a
/// line (the scripts) takes that line's indentation for every line it inserts.
fn render(flavour: &Flavour) -> String {
    let version = env!("CARGO_PKG_VERSION");
    let short_version: String = version.split('.').take(2).collect::<Vec<_>>().join(".");
    let header = format!(
        "{}\n# Generated from tekton/src/ by `IMAGEGATE_WRITE_TEKTON=1 cargo test --test packaging_tekton`:\n# edit the sources, not this file.",
        flavour.header
    );
    let values: BTreeMap<&str, String> = BTreeMap::from([
        ("HEADER", header),
        ("API_VERSION", flavour.api_version.to_string()),
        ("KIND", flavour.kind.to_string()),
        ("RESOURCES", flavour.resources.to_string()),
        ("MIN_VERSION", flavour.min_version.to_string()),
        ("VERSION", short_version),
        ("IMAGE", step_image()),
        ("GATE_SCRIPT", read("tekton/src/gate.sh")),
        ("ASSERT_SCRIPT", read("tekton/src/assert.sh")),
    ]);
    let mut out = String::new();
    for line in read("tekton/src/task.yaml.in").lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        if let Some(name) = trimmed
            .strip_prefix("@@")
            .and_then(|r| r.strip_suffix("@@"))
            .filter(|n| !n.contains("@@"))
        {
            let value = values
                .get(name)
                .unwrap_or_else(|| panic!("unknown placeholder @@{name}@@"));
            for l in value.lines() {
                if l.is_empty() {
                    out.push('\n');
                } else {
                    out.push_str(&format!("{indent}{l}\n"));
                }
            }
            continue;
        }
        let mut line = line.to_string();
        for (name, value) in &values {
            line = line.replace(&format!("@@{name}@@"), value);
        }
        assert!(!line.contains("@@"), "unreplaced placeholder in: {line}");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[test]
fn task_and_clustertask_are_rendered_from_one_source() {
    let write = std::env::var_os("IMAGEGATE_WRITE_TEKTON").is_some();
    for flavour in [&TASK, &CLUSTER_TASK] {
        let rendered = render(flavour);
        let path = Path::new(REPO).join(flavour.file);
        if write {
            std::fs::write(&path, &rendered).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == rendered,
            "{} is not what tekton/src/ renders: run `IMAGEGATE_WRITE_TEKTON=1 cargo test --test packaging_tekton` and commit the result",
            flavour.file
        );
    }
    // The two differ in what their API versions spell differently, nothing else.
    let task = yaml(&read(TASK.file));
    let mut cluster = yaml(&read(CLUSTER_TASK.file));
    assert_eq!(task["apiVersion"], "tekton.dev/v1");
    assert_eq!(task["kind"], "Task");
    assert_eq!(cluster["apiVersion"], "tekton.dev/v1beta1");
    assert_eq!(cluster["kind"], "ClusterTask");
    for step in cluster["spec"]["steps"].as_sequence_mut().unwrap() {
        let map = step.as_mapping_mut().unwrap();
        let resources = map
            .remove("resources")
            .expect("v1beta1 steps say resources");
        map.insert("computeResources".into(), resources);
    }
    assert_eq!(task["spec"], cluster["spec"]);
    assert_eq!(
        task["metadata"]["labels"], cluster["metadata"]["labels"],
        "same version"
    );
}

fn yaml(text: &str) -> Value {
    serde_yaml::from_str(text).expect("valid YAML")
}

fn task() -> Value {
    yaml(&read(TASK.file))
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

#[test]
fn the_task_follows_the_catalog_rules() {
    let task = task();
    let meta = &task["metadata"];
    assert_eq!(
        meta["labels"]["app.kubernetes.io/version"],
        env!("CARGO_PKG_VERSION")
            .split('.')
            .take(2)
            .collect::<Vec<_>>()
            .join(".")
    );
    for annotation in [
        "tekton.dev/pipelines.minVersion",
        "tekton.dev/categories",
        "tekton.dev/tags",
        "tekton.dev/displayName",
        "tekton.dev/platforms",
    ] {
        assert!(
            !str_of(&meta["annotations"][annotation]).is_empty(),
            "annotation {annotation}"
        );
    }
    let spec = &task["spec"];

    // Results: the two names, and none that Tekton Chains would take for a build's output.
    let results: Vec<&str> = spec["results"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| str_of(&r["name"]))
        .collect();
    assert_eq!(results, ["IMAGE_REF", "TEST_OUTPUT"]);
    for name in &results {
        assert!(
            !(name.ends_with("IMAGE_URL")
                || name.ends_with("IMAGE_DIGEST")
                || *name == "IMAGES"
                || name.ends_with("ARTIFACT_URI")
                || name.ends_with("ARTIFACT_DIGEST")
                || name.ends_with("ARTIFACT_OUTPUTS")
                || name.ends_with("ARTIFACT_INPUTS")),
            "{name} is a Chains type hint"
        );
    }

    // Workspaces: all optional, all read-only.
    for ws in spec["workspaces"].as_sequence().unwrap() {
        assert_eq!(ws["optional"], true, "{ws:?}");
        assert_eq!(ws["readOnly"], true, "{ws:?}");
    }
    let names = |key: &str| -> Vec<String> {
        spec[key]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|p| str_of(&p["name"]).to_string())
            .collect()
    };
    assert_eq!(
        names("workspaces"),
        ["dockerconfig", "policies", "key"],
        "a docker config, policies, a key"
    );

    // HOME, and no fixed UID (OpenShift picks one).
    let template_env = spec["stepTemplate"]["env"].as_sequence().unwrap();
    assert!(
        template_env
            .iter()
            .any(|e| e["name"] == "HOME" && e["value"] == "/tekton/home")
    );
    assert_eq!(
        spec["stepTemplate"]["securityContext"]["runAsNonRoot"],
        true
    );
    let text = read(TASK.file);
    assert!(!text.contains("runAsUser"), "never a fixed UID");
    assert!(
        !text.contains("workingDir"),
        "no workingDir: Tekton creates it root-owned"
    );

    // Params reach the steps through env only; every param reaches one.
    let steps = spec["steps"].as_sequence().unwrap();
    let mut env_values = String::new();
    for step in steps {
        let script = str_of(&step["script"]);
        assert!(script.starts_with("#!/bin/sh\n"), "{script}");
        assert!(
            !script.contains("$(params.") && !script.contains("$(params["),
            "a param interpolated into the script of step {:?}",
            step["name"]
        );
        assert!(step["command"].is_null() && step["args"].is_null());
        for e in step["env"].as_sequence().unwrap() {
            env_values.push_str(str_of(&e["value"]));
            env_values.push('\n');
        }
    }
    for param in names("params") {
        assert!(
            env_values.contains(&format!("$(params.{param})")),
            "param {param} reaches no step"
        );
    }
    assert_eq!(steps[0]["name"], "gate");
    assert_eq!(steps[0]["onError"], "continue");
    assert_eq!(steps[1]["name"], "assert");
    assert!(steps[1]["onError"].is_null(), "the assert step decides");

    // The scripts are POSIX sh.
    for script in ["tekton/src/gate.sh", "tekton/src/assert.sh"] {
        let mut cmd = Command::new("sh");
        cmd.arg("-n").arg(Path::new(REPO).join(script));
        run_with_timeout(cmd, Duration::from_secs(10)).expect_code(0);
    }
}

// --- the harness --------------------------------------------------------------------------

/// One step as it ran.
#[derive(Debug)]
struct StepRun {
    name: String,
    output: Option<Output>,
}

/// A finished TaskRun.
#[derive(Debug)]
struct TaskRunOutcome {
    succeeded: bool,
    steps: Vec<StepRun>,
    results: BTreeMap<String, String>,
}

impl TaskRunOutcome {
    fn step(&self, name: &str) -> &Output {
        self.steps
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.output.as_ref())
            .unwrap_or_else(|| panic!("step {name} did not run: {self:#?}"))
    }

    fn test_output(&self) -> serde_json::Value {
        serde_json::from_str(
            self.results
                .get("TEST_OUTPUT")
                .unwrap_or_else(|| panic!("no TEST_OUTPUT: {self:#?}")),
        )
        .expect("TEST_OUTPUT is JSON")
    }

    fn logs(&self) -> String {
        self.steps
            .iter()
            .filter_map(|s| s.output.as_ref())
            .map(|o| format!("{}{}", o.stdout, o.stderr))
            .collect()
    }
}

/// What a TaskRun gives the Task.
struct TaskRunSpec<'a> {
    params: Vec<(&'a str, String)>,
    /// Bound workspaces; the others stay unbound.
    workspaces: Vec<(&'a str, PathBuf)>,
    /// The environment every container of the pod has (service-account variables).
    pod_env: Vec<(&'a str, String)>,
}

/// `$(…)` variables a Task may use, and what they stand for in this run.
struct Variables<'a> {
    params: &'a BTreeMap<String, String>,
    results: &'a [String],
    workspaces: &'a BTreeMap<String, Option<PathBuf>>,
    steps: &'a [String],
    tekton: &'a Path,
}

impl Variables<'_> {
    fn lookup(&self, name: &str) -> Option<String> {
        if let Some(rest) = name.strip_prefix("params.") {
            return self.params.get(rest).cloned();
        }
        if let Some(rest) = name.strip_prefix("results.") {
            let result = rest.strip_suffix(".path")?;
            return self.results.iter().any(|r| r == result).then(|| {
                self.tekton
                    .join("results")
                    .join(result)
                    .display()
                    .to_string()
            });
        }
        if let Some(rest) = name.strip_prefix("workspaces.") {
            let (ws, field) = rest.rsplit_once('.')?;
            let bound = self.workspaces.get(ws)?;
            return match field {
                "bound" => Some(bound.is_some().to_string()),
                // An unbound optional workspace's path is the empty string.
                "path" => Some(
                    bound
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_default(),
                ),
                _ => None,
            };
        }
        if let Some(rest) = name.strip_prefix("steps.") {
            let step = rest.strip_suffix(".exitCode.path")?.strip_prefix("step-")?;
            return self.steps.iter().any(|s| s == step).then(|| {
                self.tekton
                    .join("steps")
                    .join(format!("step-{step}"))
                    .join("exitCode")
                    .display()
                    .to_string()
            });
        }
        None
    }

    /// Replaces Tekton's variables; any other `$(…)` (a shell command substitution) stays.
    fn substitute(&self, text: &str) -> String {
        const PREFIXES: [&str; 6] = [
            "params.",
            "results.",
            "workspaces.",
            "steps.",
            "context.",
            "tasks.",
        ];
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("$(") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let is_variable = PREFIXES.iter().any(|p| after.starts_with(p));
            match (is_variable, after.find(')')) {
                (true, Some(end)) => {
                    let name = &after[..end];
                    let value = self
                        .lookup(name)
                        .unwrap_or_else(|| panic!("the Task uses an unknown variable $({name})"));
                    out.push_str(&value);
                    rest = &after[end + 1..];
                }
                _ => {
                    out.push_str("$(");
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

/// Runs `task`'s steps as a TaskRun with `spec` would.
fn run_task(task: &Value, spec: &TaskRunSpec) -> TaskRunOutcome {
    let body = &task["spec"];
    let root = temp_dir();
    let tekton = root.path().join("tekton");
    for dir in ["results", "steps", "scripts", "home"] {
        std::fs::create_dir_all(tekton.join(dir)).unwrap();
    }
    let cwd = root.path().join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();

    // Params: declared ones only, defaults filled in, required ones present.
    let mut params = BTreeMap::new();
    for p in body["params"].as_sequence().unwrap() {
        let name = str_of(&p["name"]).to_string();
        assert!(
            p["type"].is_null() || p["type"] == "string",
            "string params only"
        );
        if let Some(default) = p["default"].as_str() {
            params.insert(name, default.to_string());
        }
    }
    for (name, value) in &spec.params {
        assert!(
            body["params"]
                .as_sequence()
                .unwrap()
                .iter()
                .any(|p| p["name"] == *name),
            "the Task has no param {name}"
        );
        params.insert(name.to_string(), value.clone());
    }
    for p in body["params"].as_sequence().unwrap() {
        let name = str_of(&p["name"]);
        assert!(params.contains_key(name), "param {name} is required");
    }

    let mut workspaces = BTreeMap::new();
    for w in body["workspaces"].as_sequence().unwrap() {
        workspaces.insert(str_of(&w["name"]).to_string(), None);
    }
    for (name, path) in &spec.workspaces {
        let slot = workspaces
            .get_mut(*name)
            .unwrap_or_else(|| panic!("the Task has no workspace {name}"));
        *slot = Some(path.clone());
    }
    for w in body["workspaces"].as_sequence().unwrap() {
        assert!(
            w["optional"] == true || workspaces[str_of(&w["name"])].is_some(),
            "workspace {:?} must be bound",
            w["name"]
        );
    }
    let results: Vec<String> = body["results"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|r| str_of(&r["name"]).to_string())
        .collect();
    let steps = body["steps"].as_sequence().unwrap();
    let step_names: Vec<String> = steps
        .iter()
        .map(|s| str_of(&s["name"]).to_string())
        .collect();
    let vars = Variables {
        params: &params,
        results: &results,
        workspaces: &workspaces,
        steps: &step_names,
        tekton: &tekton,
    };
    // Paths the Task names under /tekton live in this run's folder.
    let localise = |value: String| -> String {
        match value.strip_prefix("/tekton/") {
            Some(rest) => tekton.join(rest).display().to_string(),
            None => value,
        }
    };

    let mut runs = Vec::new();
    let mut succeeded = true;
    for (index, step) in steps.iter().enumerate() {
        let name = step_names[index].clone();
        if !succeeded {
            runs.push(StepRun { name, output: None });
            continue;
        }
        let mut env: BTreeMap<String, String> = spec
            .pod_env
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let template_env = body["stepTemplate"]["env"].as_sequence().cloned();
        for e in template_env
            .unwrap_or_default()
            .iter()
            .chain(step["env"].as_sequence().unwrap_or(&Vec::new()))
        {
            assert!(e["valueFrom"].is_null(), "valueFrom is not emulated: {e:?}");
            let value = localise(vars.substitute(str_of(&e["value"])));
            env.insert(str_of(&e["name"]).to_string(), value);
        }
        let script = vars.substitute(str_of(&step["script"]));
        assert!(
            script.starts_with("#!/bin/sh\n"),
            "step {name}: only #!/bin/sh scripts are emulated"
        );
        let script_path = tekton.join("scripts").join(format!("script-{index}"));
        std::fs::write(&script_path, &script).unwrap();
        let step_dir = tekton.join("steps").join(format!("step-{name}"));
        std::fs::create_dir_all(&step_dir).unwrap();

        let mut cmd = Command::new("sh");
        cmd.arg(&script_path)
            .current_dir(&cwd)
            .env_clear()
            .envs(&env);
        let output = run_with_timeout(cmd, Duration::from_secs(180));
        std::fs::write(step_dir.join("exitCode"), output.code.to_string()).unwrap();
        let continue_on_error = step["onError"] == "continue";
        if output.code != 0 && !continue_on_error {
            succeeded = false;
        }
        runs.push(StepRun {
            name,
            output: Some(output),
        });
    }

    let mut values = BTreeMap::new();
    for name in &results {
        if let Ok(value) = std::fs::read_to_string(tekton.join("results").join(name)) {
            values.insert(name.clone(), value);
        }
    }
    // Results travel in the container's termination message: 4096 bytes for all of them.
    let message: Vec<serde_json::Value> = values
        .iter()
        .map(|(k, v)| serde_json::json!({"key": k, "value": v, "type": 1}))
        .collect();
    let size = serde_json::to_string(&message).unwrap().len();
    assert!(
        size < 4096,
        "results take {size} bytes of the 4096-byte termination message"
    );
    TaskRunOutcome {
        succeeded,
        steps: runs,
        results: values,
    }
}

// --- the test bed -------------------------------------------------------------------------

/// A folder holding `imagegate`, first on the steps' PATH (the step image's PATH has it).
fn path_with_imagegate() -> String {
    let bin = Path::new(env!("CARGO_BIN_EXE_imagegate")).parent().unwrap();
    format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display())
}

/// A Kubernetes API stand-in whose Secret `namespace/name` holds a cosign key pair the pod's
/// service account may read, and the pod env and service-account folder that reach it. Returns
/// the public key PEM.
struct Cluster {
    k8s: K8sStandin,
    service_account: tempfile::TempDir,
    public_pem: String,
}

impl Cluster {
    fn with_key(namespace: &str, name: &str) -> Cluster {
        let k8s = K8sStandin::start();
        k8s.add_namespace(namespace);
        k8s.add_token(SA_TOKEN, "system:serviceaccount:ci:imagegate-pipeline");
        k8s.allow(
            "system:serviceaccount:ci:imagegate-pipeline",
            "get",
            namespace,
        );
        let (private, public) = keys::file::generate(&Secret::new(KEY_PASSWORD)).unwrap();
        k8s.put_secret(
            namespace,
            name,
            &[
                ("cosign.key", private.as_bytes()),
                ("cosign.password", KEY_PASSWORD.as_bytes()),
                ("cosign.pub", public.as_bytes()),
            ],
        );
        let service_account = temp_dir();
        write_file(service_account.path(), "token", SA_TOKEN);
        k8s.ca.write(service_account.path(), "ca.crt");
        Cluster {
            k8s,
            service_account,
            public_pem: public,
        }
    }

    /// What the kubelet gives every container, plus the test's folder for the token.
    fn pod_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PATH", path_with_imagegate()),
            ("KUBERNETES_SERVICE_HOST", "127.0.0.1".into()),
            ("KUBERNETES_SERVICE_PORT", self.k8s.port().to_string()),
            (
                "IMAGEGATE_SERVICEACCOUNT_DIR",
                self.service_account.path().display().to_string(),
            ),
        ]
    }
}

fn push(registry: &Registry, spec: &ImageSpec, repo_and_tag: &str) -> (tempfile::TempDir, Layout) {
    let dir = temp_dir();
    let tag = repo_and_tag.rsplit(':').next().unwrap();
    let layout = fixtures::write_image(dir.path(), tag, spec);
    fixtures::push(&layout, registry, repo_and_tag);
    (dir, layout)
}

fn cosign_verify(image: &str, public_pem: &str) -> Output {
    let dir = temp_dir();
    let public = write_file(dir.path(), "cosign.pub", public_pem);
    let mut cmd = Command::new(tools::cosign());
    cmd.args([
        "verify",
        "--key",
        &public.display().to_string(),
        "--insecure-ignore-tlog=true",
        "--allow-http-registry",
        image,
    ]);
    run_with_timeout(cmd, Duration::from_secs(60))
}

/// A `policies` workspace with the example Kyverno policy under `kyverno/`.
fn policies_workspace() -> tempfile::TempDir {
    let dir = temp_dir();
    std::fs::create_dir_all(dir.path().join("kyverno")).unwrap();
    std::fs::copy(
        Path::new(REPO).join("examples/policies/disallow-latest-tag.yaml"),
        dir.path().join("kyverno/disallow-latest-tag.yaml"),
    )
    .unwrap();
    dir
}

// --- runs ---------------------------------------------------------------------------------

#[test]
fn the_task_signs_with_a_k8s_key_and_passes_a_good_image() {
    let registry = Registry::start();
    let (_dir, layout) = push(&registry, &ImageSpec::rich(), "app:v1");
    let cluster = Cluster::with_key("ci", "imagegate-cosign");
    let outcome = run_task(
        &task(),
        &TaskRunSpec {
            params: vec![
                ("IMAGE", registry.image("app:v1")),
                ("KEY", "k8s://ci/imagegate-cosign".into()),
                (
                    "EXTRA_ARGS",
                    format!("--insecure-registry {} --retries 1", registry.host()),
                ),
            ],
            workspaces: vec![],
            pod_env: cluster.pod_env(),
        },
    );
    assert!(outcome.succeeded, "{outcome:#?}");
    outcome.step("gate").expect_code(0);
    outcome.step("assert").expect_code(0);
    let pinned = format!("{}@{}", registry.image("app"), layout.digest);
    assert_eq!(outcome.results["IMAGE_REF"], pinned, "verbatim, no newline");
    let verdict = outcome.test_output();
    assert!(
        verdict["result"] == "SUCCESS" || verdict["result"] == "WARNING",
        "{verdict}"
    );
    assert_eq!(verdict["failures"], 0);
    assert!(
        outcome.step("gate").stderr.contains("it verifies"),
        "{outcome:#?}"
    );
    // The key was read with the pod's service-account token, and cosign accepts the signature.
    let seen = cluster.k8s.seen();
    assert!(
        seen.iter().any(
            |s| s.path == "/api/v1/namespaces/ci/secrets/imagegate-cosign"
                && s.user.as_deref() == Some("system:serviceaccount:ci:imagegate-pipeline")
        ),
        "{seen:?}"
    );
    let verified = cosign_verify(&pinned, &cluster.public_pem);
    assert_eq!(verified.code, 0, "cosign verify: {}", verified.stderr);
    let logs = outcome.logs();
    assert!(
        !logs.contains(KEY_PASSWORD) && !logs.contains(SA_TOKEN),
        "a secret in the logs"
    );
}

#[test]
fn strict_decides_whether_violations_fail_the_task() {
    let registry = Registry::start();
    let (_dir, layout) = push(&registry, &ImageSpec::rich(), "app:latest");
    let policies = policies_workspace();
    // A cosign key pair mounted from a Secret into the `key` workspace.
    let key = temp_dir();
    let (private, public) = keys::file::generate(&Secret::new(KEY_PASSWORD)).unwrap();
    write_file(key.path(), "cosign.key", &private);
    write_file(key.path(), "cosign.password", KEY_PASSWORD);
    let pinned = format!("{}@{}", registry.image("app"), layout.digest);

    let run = |strict: &str| {
        run_task(
            &task(),
            &TaskRunSpec {
                params: vec![
                    ("IMAGE", registry.image("app:latest")),
                    ("POLICY", "kyverno".into()),
                    ("STRICT", strict.into()),
                    (
                        "EXTRA_ARGS",
                        format!("--insecure-registry {}", registry.host()),
                    ),
                ],
                workspaces: vec![
                    ("policies", policies.path().to_path_buf()),
                    ("key", key.path().to_path_buf()),
                ],
                pod_env: vec![("PATH", path_with_imagegate())],
            },
        )
    };

    let strict = run("true");
    assert!(!strict.succeeded, "{strict:#?}");
    strict.step("gate").expect_code(1);
    strict.step("assert").expect_code(1);
    assert!(
        strict.step("gate").stdout.contains("disallow-latest-tag"),
        "{strict:#?}"
    );
    assert_eq!(strict.test_output()["result"], "FAILURE");
    assert_eq!(strict.results["IMAGE_REF"], pinned);

    let lenient = run("false");
    assert!(lenient.succeeded, "{lenient:#?}");
    lenient.step("gate").expect_code(1);
    lenient.step("assert").expect_code(0);
    assert!(
        lenient
            .step("assert")
            .stdout
            .contains("not enforced (STRICT is false)"),
        "{lenient:#?}"
    );
    assert_eq!(
        lenient.test_output()["result"],
        "FAILURE",
        "reported as it is"
    );

    // The key from the workspace signed (the password came from its file, never the log).
    let verified = cosign_verify(&pinned, &public);
    assert_eq!(verified.code, 0, "cosign verify: {}", verified.stderr);
    assert!(!strict.logs().contains(KEY_PASSWORD) && !lenient.logs().contains(KEY_PASSWORD));
}

#[test]
fn a_gate_that_could_not_judge_fails_the_task_whatever_strict_says() {
    // Nothing listens on this port: the registry is unreachable (exit 3).
    let closed = testbed::registry::free_port();
    let outcome = run_task(
        &task(),
        &TaskRunSpec {
            params: vec![
                ("IMAGE", format!("127.0.0.1:{closed}/app:v1")),
                ("DRY_RUN", "true".into()),
                ("STRICT", "false".into()),
                (
                    "EXTRA_ARGS",
                    format!("--insecure-registry 127.0.0.1:{closed} --retries 0"),
                ),
            ],
            workspaces: vec![],
            pod_env: vec![("PATH", path_with_imagegate())],
        },
    );
    assert!(!outcome.succeeded, "{outcome:#?}");
    outcome.step("gate").expect_code(3);
    outcome.step("assert").expect_code(3);
    let verdict = outcome.test_output();
    assert_eq!(verdict["result"], "ERROR", "{verdict}");
    assert!(
        verdict["note"]
            .as_str()
            .is_some_and(|n| n.contains("exit code 3")),
        "{verdict}"
    );
    for field in ["timestamp", "successes", "failures", "warnings"] {
        assert!(!verdict[field].is_null(), "{field}");
    }
    assert!(!outcome.results.contains_key("IMAGE_REF"));

    // Bad input is exit 2, and fails the task too; so does a STRICT that is neither word.
    let outcome = run_task(
        &task(),
        &TaskRunSpec {
            params: vec![
                ("IMAGE", "127.0.0.1:1/app:v1".into()),
                ("DRY_RUN", "maybe".into()),
            ],
            workspaces: vec![],
            pod_env: vec![("PATH", path_with_imagegate())],
        },
    );
    assert!(!outcome.succeeded);
    outcome.step("gate").expect_code(2);
    outcome.step("assert").expect_code(2);
    assert!(outcome.step("gate").stderr.contains("DRY_RUN is 'maybe'"));
    let outcome = run_task(
        &task(),
        &TaskRunSpec {
            params: vec![
                ("IMAGE", "127.0.0.1:1/app:v1".into()),
                ("STRICT", "yes".into()),
            ],
            workspaces: vec![],
            pod_env: vec![("PATH", path_with_imagegate())],
        },
    );
    assert!(!outcome.succeeded);
    outcome.step("assert").expect_code(2);
    // Without a key and without DRY_RUN imagegate refuses (exit 2): nothing is signed by
    // accident with a throw-away key.
    outcome.step("gate").expect_code(2);
    assert!(outcome.step("gate").stderr.contains("--key"));
}

// --- the sample pipeline ------------------------------------------------------------------

fn documents(path: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(&read(path))
        .map(|d| Value::deserialize(d).expect("valid YAML"))
        .collect()
}

/// Replaces `$(params.X)` and `$(tasks.T.results.R)` in a Pipeline's task params.
fn pipeline_substitute(
    text: &str,
    params: &BTreeMap<String, String>,
    results: &BTreeMap<String, String>,
) -> String {
    let mut out = text.to_string();
    for (k, v) in params {
        out = out.replace(&format!("$(params.{k})"), v);
    }
    for (k, v) in results {
        out = out.replace(&format!("$(tasks.{k})"), v);
    }
    assert!(!out.contains("$("), "unresolved variable in {text}");
    out
}

#[test]
fn the_sample_pipeline_gates_what_it_built_and_deploys_that_digest() {
    let pipeline = &documents("tekton/samples/pipeline.yaml")[0];
    let run = &documents("tekton/samples/pipelinerun.yaml")[0];
    let rbac = documents("tekton/samples/rbac.yaml");
    let task = task();
    assert_eq!(
        run["spec"]["pipelineRef"]["name"],
        pipeline["metadata"]["name"]
    );

    // The run's parameters over the pipeline's defaults; the image is the test bed's.
    let registry = Registry::start_tls();
    let mut params: BTreeMap<String, String> = BTreeMap::new();
    for p in pipeline["spec"]["params"].as_sequence().unwrap() {
        if let Some(d) = p["default"].as_str() {
            params.insert(str_of(&p["name"]).into(), d.into());
        }
    }
    for p in run["spec"]["params"].as_sequence().unwrap() {
        params.insert(str_of(&p["name"]).into(), str_of(&p["value"]).into());
    }
    for p in pipeline["spec"]["params"].as_sequence().unwrap() {
        assert!(
            params.contains_key(str_of(&p["name"])),
            "the PipelineRun leaves {:?} unset",
            p["name"]
        );
    }
    params.insert("image".into(), registry.image("team/app:main"));

    // The signing key is a k8s:// Secret the run's service account may read (rbac.yaml).
    let signing_key = params["signing-key"].clone();
    let (namespace, secret) = signing_key
        .strip_prefix("k8s://")
        .and_then(|s| s.split_once('/'))
        .expect("a k8s:// key");
    let service_account = str_of(&run["spec"]["taskRunTemplate"]["serviceAccountName"]);
    let role = rbac.iter().find(|d| d["kind"] == "Role").unwrap();
    assert_eq!(role["metadata"]["namespace"], namespace);
    assert_eq!(role["rules"][0]["resourceNames"][0], secret);
    assert_eq!(role["rules"][0]["verbs"][0], "get");
    let binding = rbac.iter().find(|d| d["kind"] == "RoleBinding").unwrap();
    assert_eq!(binding["subjects"][0]["name"], service_account);
    assert_eq!(binding["roleRef"]["name"], role["metadata"]["name"]);

    // "build" pushed the image: its results, as buildah 0.9 gives them.
    let (_dir, layout) = push(&registry, &ImageSpec::rich(), "team/app:main");
    let mut results = BTreeMap::new();
    results.insert(
        "build.results.IMAGE_URL".to_string(),
        params["image"].clone(),
    );
    results.insert(
        "build.results.IMAGE_DIGEST".to_string(),
        layout.digest.clone(),
    );

    // The gate's PipelineTask: our Task through the cluster resolver, params it declares.
    let tasks = pipeline["spec"]["tasks"].as_sequence().unwrap();
    let gate = tasks.iter().find(|t| t["name"] == "gate").unwrap();
    let resolver_params: BTreeMap<&str, &str> = gate["taskRef"]["params"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| (str_of(&p["name"]), str_of(&p["value"])))
        .collect();
    assert_eq!(gate["taskRef"]["resolver"], "cluster");
    assert_eq!(resolver_params["name"], str_of(&task["metadata"]["name"]));
    assert_eq!(resolver_params["kind"], "task");
    let gate_params: Vec<(&str, String)> = gate["params"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| {
            (
                str_of(&p["name"]),
                pipeline_substitute(str_of(&p["value"]), &params, &results),
            )
        })
        .collect();

    // The workspaces, as the PipelineRun binds them: the registry credentials Secret (a
    // kubernetes.io/dockerconfigjson one), and policies/ in the cloned source.
    let dockerconfig = temp_dir();
    let config = registry.docker_config(
        dockerconfig.path(),
        testbed::registry::USER,
        testbed::registry::PASSWORD,
    );
    std::fs::rename(&config, dockerconfig.path().join(".dockerconfigjson")).unwrap();
    let source = temp_dir();
    let policies_src = policies_workspace();
    std::fs::rename(policies_src.path(), source.path().join("policies")).unwrap();
    let mut workspaces = Vec::new();
    for w in gate["workspaces"].as_sequence().unwrap() {
        let path = match str_of(&w["workspace"]) {
            "dockerconfig" => dockerconfig.path().to_path_buf(),
            "source" => source.path().join(str_of(&w["subPath"])),
            other => panic!("unexpected pipeline workspace {other}"),
        };
        workspaces.push((str_of(&w["name"]), path));
    }

    let cluster = Cluster::with_key(namespace, secret);
    let mut pod_env = cluster.pod_env();
    // The cluster trusts the registry's CA (as a trusted-CA bundle would make it).
    pod_env.push((
        "SSL_CERT_FILE",
        registry.certificate().display().to_string(),
    ));
    let outcome = run_task(
        &task,
        &TaskRunSpec {
            params: gate_params,
            workspaces,
            pod_env,
        },
    );
    assert!(outcome.succeeded, "{outcome:#?}");
    let pinned = format!("{}@{}", registry.image("team/app"), layout.digest);
    assert_eq!(outcome.results["IMAGE_REF"], pinned);
    assert!(
        !outcome.logs().contains(testbed::registry::PASSWORD),
        "the registry password in the logs"
    );
    let sig_tag = layout.digest.replace(':', "-") + ".sig";
    let tags = raw_tags_tls(&registry, "team/app");
    assert!(tags.contains(&sig_tag), "{tags:?}");

    // "deploy" rolls out the gate's IMAGE_REF.
    results.insert(
        "gate.results.IMAGE_REF".into(),
        outcome.results["IMAGE_REF"].clone(),
    );
    let deploy = tasks.iter().find(|t| t["name"] == "deploy").unwrap();
    assert_eq!(deploy["runAfter"][0], "gate");
    let deploy_params: BTreeMap<String, String> = deploy["params"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|p| {
            (
                str_of(&p["name"]).to_string(),
                pipeline_substitute(str_of(&p["value"]), &params, &results),
            )
        })
        .collect();
    let args: Vec<String> = deploy["taskSpec"]["steps"][0]["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| {
            let mut a = str_of(a).to_string();
            for (k, v) in &deploy_params {
                a = a.replace(&format!("$(params.{k})"), v);
            }
            a
        })
        .collect();
    assert!(args.contains(&format!("app={pinned}")), "{args:?}");

    // The README shows the gate's PipelineTask as the sample has it.
    let sample = read("tekton/samples/pipeline.yaml");
    let start = sample.find("    - name: gate\n").unwrap();
    let end = sample.find("    - name: deploy\n").unwrap();
    assert!(
        read("README.md").contains(sample[start..end].trim_end()),
        "README.md does not show the sample's gate task as it is"
    );
}

/// The tags of `repo` on a TLS registry with basic auth, via skopeo.
fn raw_tags_tls(registry: &Registry, repo: &str) -> Vec<String> {
    let mut args = vec!["list-tags".to_string()];
    args.extend(registry.skopeo_flags("src").into_iter().map(|f| {
        f.replace("--src-cert-dir", "--cert-dir")
            .replace("--src-creds", "--creds")
    }));
    args.push(format!("docker://{}", registry.image(repo)));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = fixtures::skopeo(&refs);
    out.expect_code(0);
    let v: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    v["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}
