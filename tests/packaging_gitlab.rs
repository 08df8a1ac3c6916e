//! The GitLab CI/CD component (`gitlab-ci/templates/imagegate.yml`), the classic template
//! (`gitlab-ci/imagegate.gitlab-ci.yml`) and the pipelines in `gitlab-ci/examples/`, run as a
//! GitLab runner would run them, against the test bed.
//!
//! No GitLab can run here, so a small harness plays its part: it resolves the examples'
//! `include:` (the component with its `inputs:`, or the classic template by project and file),
//! checks and interpolates `$[[ inputs.… ]]` as GitLab does at pipeline creation (declared
//! inputs only, defaults, `options`, `regex`), merges the including file's job keys and
//! `extends:`, gives the job GitLab's predefined variables (`CI_PROJECT_DIR`, `CI_COMMIT_SHA`,
//! `CI_REGISTRY*`, …), its `variables:` expanded, project variables over those, and an ID
//! token per `id_tokens:` entry; then runs `before_script` and `script` with `sh -e` in the
//! project folder and judges the job by its exit code and `allow_failure`. The artifacts it
//! leaves are checked as GitLab reads them: the JUnit report against the JUnit schema, the
//! dotenv report line by line. Vault is the transit stand-in (real keys and signatures), the
//! registry Debian's docker-registry over TLS with basic auth.

mod testbed;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use serde_yaml::{Mapping, Value};
use testbed::fixtures::{self, ImageSpec, Layout};
use testbed::registry::{self, Registry};
use testbed::vault_standin::{Accept, KeyType, VaultStandin};
use testbed::{Output, run_with_timeout, temp_dir, tools, write_file};

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const COMMIT: &str = "4f1c2a0e9d8b7c6a5f4e3d2c1b0a99887766554f";
/// The job's ID token as GitLab would mint it (the stand-in compares it byte for byte).
const JWT: &str = "eyJhbGciOiJSUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJwcm9qZWN0X3BhdGg6Z3JvdXAvYXBwOnJlZl90eXBlOmJyYW5jaDpyZWY6bWFpbiIsImF1ZCI6Imh0dHBzOi8vdmF1bHQuZXhhbXBsZS5jb20ifQ.gitlab-signature";
const VAULT_TOKEN: &str = "hvs.imagegate-ci-token-0001";
const AUDIENCE: &str = "https://vault.example.com";

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(REPO).join(path))
        .unwrap_or_else(|e| panic!("cannot read {path}: {e}"))
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

// --- pipeline creation: includes, inputs, merges ------------------------------------------

/// The component's `spec:` header and its jobs, interpolated with `inputs`.
fn component(inputs: &Mapping) -> Mapping {
    try_component(inputs).unwrap_or_else(|e| panic!("{e}"))
}

/// As GitLab creates a pipeline: inputs checked against the spec, then interpolated; an
/// error is what GitLab would refuse the pipeline with.
fn try_component(inputs: &Mapping) -> Result<Mapping, String> {
    let text = read("gitlab-ci/templates/imagegate.yml");
    let (header, body) = text.split_once("\n---\n").expect("a spec header, then ---");
    let header: Value = serde_yaml::from_str(header).unwrap();
    let declared = header["spec"]["inputs"].as_mapping().expect("spec:inputs");
    let mut values: BTreeMap<String, Value> = BTreeMap::new();
    for (name, value) in inputs {
        let name = str_of(name);
        let spec = declared
            .get(name)
            .ok_or_else(|| format!("the component has no input {name}"))?;
        check_input(name, spec, value)?;
        values.insert(name.to_string(), value.clone());
    }
    for (name, spec) in declared {
        let name = str_of(name);
        if values.contains_key(name) {
            continue;
        }
        let default = spec
            .get("default")
            .ok_or_else(|| format!("input {name} is required"))?;
        check_input(name, spec, default)?;
        values.insert(name.to_string(), default.clone());
    }
    let body: Value = serde_yaml::from_str(body).unwrap();
    let interpolated = interpolate(&body, &values);
    let jobs = interpolated.as_mapping().unwrap().clone();
    for key in ["default", "variables", "stages", "workflow", "include"] {
        assert!(
            !jobs.contains_key(key),
            "a component sets no global keyword ({key})"
        );
    }
    Ok(jobs)
}

fn check_input(name: &str, spec: &Value, value: &Value) -> Result<(), String> {
    let typed = match str_of(&spec["type"]) {
        "" | "string" => value.is_string(),
        "boolean" => value.is_bool(),
        "number" => value.is_number(),
        "array" => value.is_sequence(),
        other => panic!("input {name}: unknown type {other}"),
    };
    if !typed {
        return Err(format!("input {name}: {value:?} is not of its type"));
    }
    if let Some(options) = spec["options"].as_sequence()
        && !options.contains(value)
    {
        return Err(format!("input {name}: {value:?} is not one of {options:?}"));
    }
    if let Some(pattern) = spec["regex"].as_str()
        && !regex::Regex::new(pattern).unwrap().is_match(str_of(value))
    {
        return Err(format!("input {name}: {value:?} does not match {pattern}"));
    }
    Ok(())
}

/// `$[[ inputs.NAME ]]` in every string, keys included. A string that is exactly one
/// interpolation takes the input's own type, as in GitLab.
fn interpolate(value: &Value, inputs: &BTreeMap<String, Value>) -> Value {
    match value {
        Value::String(s) => interpolate_str(s, inputs),
        Value::Sequence(items) => {
            Value::Sequence(items.iter().map(|v| interpolate(v, inputs)).collect())
        }
        Value::Mapping(map) => {
            let mut out = Mapping::new();
            for (k, v) in map {
                out.insert(interpolate(k, inputs), interpolate(v, inputs));
            }
            Value::Mapping(out)
        }
        other => other.clone(),
    }
}

fn interpolate_str(text: &str, inputs: &BTreeMap<String, Value>) -> Value {
    let mut out = String::new();
    let mut rest = text;
    let mut whole = None;
    while let Some(start) = rest.find("$[[") {
        let end = rest[start..].find("]]").expect("closed $[[ … ]]") + start;
        let expr = rest[start + 3..end].trim();
        let name = expr
            .strip_prefix("inputs.")
            .unwrap_or_else(|| panic!("unsupported interpolation {expr}"));
        let value = inputs
            .get(name)
            .unwrap_or_else(|| panic!("undeclared input {name}"));
        if start == 0 && end + 2 == rest.len() && out.is_empty() {
            whole = Some(value.clone());
        }
        out.push_str(&rest[..start]);
        out.push_str(&match value {
            Value::String(s) => s.clone(),
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => n.to_string(),
            other => serde_json::to_string(other).unwrap(),
        });
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    whole.unwrap_or(Value::String(out))
}

/// Deep merge as GitLab merges included configuration and `extends`: mappings key by key,
/// anything else replaced.
fn merge(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Mapping(b), Value::Mapping(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let merged = match out.get(k) {
                    Some(existing) => merge(existing, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            Value::Mapping(out)
        }
        _ => over.clone(),
    }
}

/// The jobs of a pipeline file in `gitlab-ci/examples/` (or any text), includes resolved.
fn pipeline(text: &str) -> Mapping {
    let doc: Value = serde_yaml::from_str(text).unwrap();
    let mut jobs = Mapping::new();
    for include in doc["include"].as_sequence().cloned().unwrap_or_default() {
        if let Some(component_ref) = include["component"].as_str() {
            let (path, version) = component_ref.rsplit_once('@').unwrap();
            assert!(
                path.ends_with("/imagegate"),
                "the component is named imagegate: {path}"
            );
            assert_eq!(
                version,
                env!("CARGO_PKG_VERSION"),
                "examples name this release"
            );
            let inputs = include["inputs"].as_mapping().cloned().unwrap_or_default();
            for (k, v) in component(&inputs) {
                jobs.insert(k, v);
            }
        } else if let Some(file) = include["file"].as_str() {
            assert!(include["project"].is_string() && include["ref"].is_string());
            // The gitlab-ci/ folder is the project that is included.
            assert_eq!(file, "imagegate.gitlab-ci.yml");
            let template: Value =
                serde_yaml::from_str(&read(&format!("gitlab-ci/{file}"))).unwrap();
            for (k, v) in template.as_mapping().unwrap() {
                jobs.insert(k.clone(), v.clone());
            }
        } else {
            panic!("unsupported include {include:?}");
        }
    }
    for (k, v) in doc.as_mapping().unwrap() {
        if k == "include" {
            continue;
        }
        let merged = match jobs.get(k) {
            Some(existing) => merge(existing, v),
            None => v.clone(),
        };
        jobs.insert(k.clone(), merged);
    }
    // extends: the hidden job first, the job's own keys over it.
    let snapshot = jobs.clone();
    for (_, job) in jobs.iter_mut() {
        if let Some(parent) = job["extends"].as_str() {
            let base = snapshot
                .get(parent)
                .unwrap_or_else(|| panic!("extends unknown job {parent}"));
            let mut merged = merge(base, job);
            merged.as_mapping_mut().unwrap().remove("extends");
            *job = merged;
        }
    }
    jobs
}

// --- the runner ---------------------------------------------------------------------------

/// What the runner and the project give a job.
struct JobEnv<'a> {
    project_dir: &'a Path,
    /// Predefined variables the test sets (CI_REGISTRY*, …), on top of the fixed ones.
    predefined: Vec<(&'a str, String)>,
    /// Project CI/CD variables (Settings > CI/CD): they win over `variables:` in YAML.
    project: Vec<(&'a str, String)>,
}

#[derive(Debug)]
struct JobRun {
    /// success, failed, or warning (failed, but allowed to).
    status: &'static str,
    output: Output,
    job: Value,
    audiences: Vec<String>,
}

impl JobRun {
    fn report(&self, project_dir: &Path, kind: &str) -> PathBuf {
        project_dir.join(str_of(&self.job["artifacts"]["reports"][kind]))
    }
}

/// `$NAME` and `${NAME}` of known variables; unknown ones stay as they are.
fn expand(text: &str, vars: &BTreeMap<String, String>) -> String {
    let re =
        regex::Regex::new(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))").unwrap();
    re.replace_all(text, |c: &regex::Captures| {
        let name = c.get(1).or_else(|| c.get(2)).unwrap().as_str();
        vars.get(name).cloned().unwrap_or_else(|| c[0].to_string())
    })
    .into_owned()
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => String::new(),
        other => panic!("a variable must be a scalar: {other:?}"),
    }
}

fn run_job(jobs: &Mapping, name: &str, env: &JobEnv) -> JobRun {
    let job = jobs
        .get(name)
        .unwrap_or_else(|| panic!("no job {name}: {:?}", jobs.keys().collect::<Vec<_>>()))
        .clone();
    assert!(!name.starts_with('.'), "a hidden job does not run");

    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    let bin = Path::new(env!("CARGO_BIN_EXE_imagegate")).parent().unwrap();
    for (k, v) in [
        ("CI", "true".to_string()),
        ("GITLAB_CI", "true".into()),
        ("CI_SERVER_FQDN", "gitlab.example.com".into()),
        ("CI_SERVER_URL", "https://gitlab.example.com".into()),
        ("CI_PROJECT_PATH", "group/app".into()),
        ("CI_PROJECT_DIR", env.project_dir.display().to_string()),
        ("CI_COMMIT_SHA", COMMIT.into()),
        ("CI_COMMIT_SHORT_SHA", COMMIT[..8].into()),
        ("CI_COMMIT_REF_NAME", "main".into()),
        ("CI_JOB_NAME", name.into()),
        ("CI_JOB_ID", "4242".into()),
        ("CI_PIPELINE_ID", "1717".into()),
        (
            "PATH",
            format!("{}:/usr/local/bin:/usr/bin:/bin", bin.display()),
        ),
    ] {
        vars.insert(k.to_string(), v);
    }
    let home = temp_dir();
    vars.insert("HOME".into(), home.path().display().to_string());
    for (k, v) in &env.predefined {
        vars.insert(k.to_string(), v.clone());
    }
    // variables: in order, each expanded with what is defined so far.
    if let Some(map) = job["variables"].as_mapping() {
        for (k, v) in map {
            let value = expand(&scalar(v), &vars);
            vars.insert(str_of(k).to_string(), value);
        }
    }
    for (k, v) in &env.project {
        vars.insert(k.to_string(), v.clone());
    }
    // id_tokens: one JWT per entry, its audience expanded.
    let audiences = Mutex::new(Vec::new());
    if let Some(tokens) = job["id_tokens"].as_mapping() {
        for (k, v) in tokens {
            let aud = expand(&scalar(&v["aud"]), &vars);
            audiences.lock().unwrap().push(aud);
            vars.insert(str_of(k).to_string(), JWT.to_string());
        }
    }

    // The image: the runner starts a shell, so the entrypoint is cleared.
    let image = expand(str_of(&job["image"]["name"]), &vars);
    assert_eq!(
        image,
        format!(
            "registry.example.invalid/imagegate:{}",
            env!("CARGO_PKG_VERSION")
        )
    );
    assert_eq!(
        job["image"]["entrypoint"],
        serde_yaml::from_str::<Value>("[\"\"]").unwrap()
    );

    let mut lines = Vec::new();
    for key in ["before_script", "script"] {
        for entry in job[key].as_sequence().cloned().unwrap_or_default() {
            lines.push(str_of(&entry).to_string());
        }
    }
    let script_dir = temp_dir();
    let script = write_file(script_dir.path(), "job.sh", &lines.join("\n"));
    let mut cmd = Command::new("sh");
    cmd.arg("-e")
        .arg(&script)
        .current_dir(env.project_dir)
        .env_clear()
        .envs(&vars);
    let output = run_with_timeout(cmd, Duration::from_secs(180));

    let allowed = match &job["allow_failure"] {
        Value::Bool(b) => *b,
        Value::Mapping(m) => match m.get("exit_codes") {
            Some(Value::Number(n)) => n.as_i64() == Some(output.code as i64),
            Some(Value::Sequence(codes)) => {
                codes.iter().any(|c| c.as_i64() == Some(output.code as i64))
            }
            _ => false,
        },
        _ => false,
    };
    let status = match (output.code, allowed) {
        (0, _) => "success",
        (_, true) => "warning",
        _ => "failed",
    };
    JobRun {
        status,
        output,
        job,
        audiences: audiences.into_inner().unwrap(),
    }
}

// --- what GitLab reads --------------------------------------------------------------------

/// The JUnit report, valid against the JUnit schema, and its `<testsuites>` counts.
fn check_junit(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let xsd = Path::new(REPO).join("../shared/schemas/JUnit.xsd");
    let mut cmd = Command::new("xmllint");
    cmd.arg("--noout");
    if xsd.exists() {
        cmd.arg("--schema").arg(&xsd);
    }
    cmd.arg(path);
    let lint = run_with_timeout(cmd, Duration::from_secs(30));
    assert_eq!(lint.code, 0, "xmllint: {}", lint.stderr);
    text
}

/// A dotenv report as GitLab accepts it: KEY=VALUE lines, at most 5 KiB.
fn read_dotenv(path: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(text.len() <= 5 * 1024, "dotenv over 5 KiB");
    let key = regex::Regex::new("^[A-Za-z_][A-Za-z0-9_]*$").unwrap();
    text.lines()
        .map(|line| {
            let (k, v) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("not KEY=VALUE: {line}"));
            assert!(key.is_match(k), "bad variable name {k}");
            (k.to_string(), v.to_string())
        })
        .collect()
}

// --- the test bed -------------------------------------------------------------------------

/// Vault with the transit key `cosign`, a JWT login role `imagegate-ci` that takes the job's
/// ID token, and exactly the policy the README gives that role. Returns the public key PEM.
fn vault() -> (VaultStandin, String) {
    let vault = VaultStandin::start();
    let public = vault.add_key("transit", "cosign", KeyType::EcdsaP256);
    vault.add_login("jwt", "imagegate-ci", Accept::Jwt(JWT.into()), VAULT_TOKEN);
    vault.add_token(
        VAULT_TOKEN,
        &[
            ("transit/keys/cosign", &["read"]),
            ("transit/sign/cosign/*", &["update"]),
        ],
    );
    (vault, public)
}

/// The project's own registry (TLS, basic auth) with the image of this commit.
fn project_registry(spec: &ImageSpec) -> (Registry, tempfile::TempDir, Layout) {
    let registry = Registry::start_tls();
    let dir = temp_dir();
    let layout = fixtures::write_image(dir.path(), COMMIT, spec);
    fixtures::push(&layout, &registry, &format!("group/app:{COMMIT}"));
    (registry, dir, layout)
}

/// The runner's predefined registry variables; the runner trusts the registry's CA.
fn registry_variables(registry: &Registry) -> Vec<(&'static str, String)> {
    vec![
        ("CI_REGISTRY", registry.host()),
        ("CI_REGISTRY_IMAGE", registry.image("group/app")),
        ("CI_REGISTRY_USER", registry::USER.into()),
        ("CI_REGISTRY_PASSWORD", registry::PASSWORD.into()),
        (
            "SSL_CERT_FILE",
            registry.certificate().display().to_string(),
        ),
    ]
}

/// A checkout with the team's policies under policies/kyverno/.
fn project(policies: &[&str]) -> tempfile::TempDir {
    let dir = temp_dir();
    let kyverno = dir.path().join("policies/kyverno");
    std::fs::create_dir_all(&kyverno).unwrap();
    for p in policies {
        std::fs::copy(
            Path::new(REPO).join("examples/policies").join(p),
            kyverno.join(p),
        )
        .unwrap();
    }
    dir
}

/// cosign verifies the signature with the key's public half, over TLS with the job's
/// credentials.
fn cosign_verify(registry: &Registry, image: &str, public_pem: &str) -> Output {
    let dir = temp_dir();
    let public = write_file(dir.path(), "cosign.pub", public_pem);
    registry.docker_config(dir.path(), registry::USER, registry::PASSWORD);
    let mut cmd = Command::new(tools::cosign());
    cmd.args([
        "verify",
        "--key",
        &public.display().to_string(),
        "--insecure-ignore-tlog=true",
        image,
    ])
    .env("DOCKER_CONFIG", dir.path())
    .env("SSL_CERT_FILE", registry.certificate());
    run_with_timeout(cmd, Duration::from_secs(60))
}

fn assert_no_secrets(run: &JobRun) {
    let logs = format!("{}{}", run.output.stdout, run.output.stderr);
    for secret in [registry::PASSWORD, JWT, VAULT_TOKEN] {
        assert!(!logs.contains(secret), "a secret in the job log:\n{logs}");
    }
}

// --- runs ---------------------------------------------------------------------------------

#[test]
fn the_vault_example_signs_through_id_tokens_and_leaves_junit_and_dotenv() {
    let (vault, public) = vault();
    let (registry, _dir, layout) = project_registry(&ImageSpec::rich());
    let checkout = project(&["disallow-latest-tag.yaml"]);
    let jobs = pipeline(&read("gitlab-ci/examples/vault.gitlab-ci.yml"));
    let run = run_job(
        &jobs,
        "image-gate",
        &JobEnv {
            project_dir: checkout.path(),
            predefined: registry_variables(&registry),
            project: vec![("VAULT_ADDR", vault.addr())],
        },
    );
    assert_eq!(run.status, "success", "{run:#?}");
    assert_eq!(run.audiences, [AUDIENCE]);
    // imagegate logged in with the ID token and signed with the transit key.
    let requests = vault.requests();
    assert_eq!(requests[0].path(), "/v1/auth/jwt/login");
    let login: serde_json::Value = serde_json::from_slice(&requests[0].body).unwrap();
    assert_eq!(
        login,
        serde_json::json!({"role": "imagegate-ci", "jwt": JWT})
    );
    assert!(
        requests
            .iter()
            .any(|r| r.path().starts_with("/v1/transit/sign/cosign/")),
        "{:?}",
        requests
            .iter()
            .map(|r| r.path().to_string())
            .collect::<Vec<_>>()
    );
    let pinned = format!("{}@{}", registry.image("group/app"), layout.digest);
    let verified = cosign_verify(&registry, &pinned, &public);
    assert_eq!(verified.code, 0, "cosign verify: {}", verified.stderr);

    // The reports GitLab picks up.
    let junit = check_junit(&run.report(checkout.path(), "junit"));
    assert!(junit.contains("disallow-latest-tag"), "{junit}");
    assert!(junit.contains(r#"failures="0""#), "{junit}");
    let dotenv = read_dotenv(&run.report(checkout.path(), "dotenv"));
    assert_eq!(
        dotenv,
        BTreeMap::from([
            ("IMAGEGATE_DIGEST".to_string(), layout.digest.clone()),
            ("IMAGEGATE_REF".to_string(), pinned),
            ("IMAGEGATE_VERDICT".to_string(), "pass".to_string()),
        ])
    );
    assert_eq!(run.job["artifacts"]["when"], "always");
    for file in ["report.json", "report.md"] {
        assert!(checkout.path().join("imagegate").join(file).is_file());
    }
    assert_no_secrets(&run);
}

#[test]
fn violations_fail_the_job_warn_with_allow_failure_and_pass_when_not_strict() {
    let (vault, _public) = vault();
    let (registry, _dir, layout) = project_registry(&ImageSpec::rich());
    // The image is not from registry.example.com: restrict-image-registries is violated.
    let checkout = project(&["restrict-image-registries.yaml"]);
    let env = JobEnv {
        project_dir: checkout.path(),
        predefined: registry_variables(&registry),
        project: vec![
            ("VAULT_ADDR", vault.addr()),
            ("VAULT_AUTH_ROLE", "imagegate-ci".into()),
        ],
    };

    // The warn-only example: exit code 1, allowed: "passed with warnings".
    let jobs = pipeline(&read("gitlab-ci/examples/warn-only.gitlab-ci.yml"));
    let run = run_job(&jobs, "image-gate", &env);
    assert_eq!(run.output.code, 1, "{run:#?}");
    assert_eq!(run.status, "warning");
    assert!(
        run.output.stdout.contains("restrict-image-registries"),
        "{run:#?}"
    );
    let junit = check_junit(&run.report(checkout.path(), "junit"));
    assert!(junit.contains(r#"failures="1""#), "{junit}");
    let dotenv = read_dotenv(&run.report(checkout.path(), "dotenv"));
    assert_eq!(dotenv["IMAGEGATE_VERDICT"], "fail");
    assert_eq!(
        dotenv["IMAGEGATE_REF"],
        format!("{}@{}", registry.image("group/app"), layout.digest)
    );
    assert_no_secrets(&run);

    // The component as it comes (strict): the job fails.
    let inputs = |strict: &str| -> String {
        format!(
            "include:\n  - component: gitlab.example.com/security/imagegate/imagegate@{}\n    inputs:\n      image: $CI_REGISTRY_IMAGE:$CI_COMMIT_SHA\n      key: hashivault://cosign\n      policy: policies/kyverno\n      strict: \"{strict}\"\n      job_prefix: app-\n",
            env!("CARGO_PKG_VERSION")
        )
    };
    let jobs = pipeline(&inputs("true"));
    let run = run_job(&jobs, "app-image-gate", &env);
    assert_eq!((run.output.code, run.status), (1, "failed"), "{run:#?}");
    // strict "false": reported, the job passes, later jobs see the verdict.
    let jobs = pipeline(&inputs("false"));
    let run = run_job(&jobs, "app-image-gate", &env);
    assert_eq!((run.output.code, run.status), (0, "success"), "{run:#?}");
    assert!(run.output.stderr.contains("PASSED (--warn-only)"));
    let dotenv = read_dotenv(&run.report(checkout.path(), "dotenv"));
    assert_eq!(dotenv["IMAGEGATE_VERDICT"], "fail");
    check_junit(&run.report(checkout.path(), "junit"));

    // A gate that could not judge (Vault unreachable: exit 3) fails even the warn-only job.
    let closed = registry::free_port();
    let unreachable = JobEnv {
        project_dir: checkout.path(),
        predefined: registry_variables(&registry),
        project: vec![
            ("VAULT_ADDR", format!("http://127.0.0.1:{closed}")),
            ("VAULT_AUTH_ROLE", "imagegate-ci".into()),
            ("IMAGEGATE_ARGS", "--retries 0".into()),
        ],
    };
    let jobs = pipeline(&read("gitlab-ci/examples/warn-only.gitlab-ci.yml"));
    let run = run_job(&jobs, "image-gate", &unreachable);
    assert_eq!((run.output.code, run.status), (3, "failed"), "{run:#?}");
}

#[test]
fn the_classic_template_runs_the_components_job() {
    // Same script, image, ID token and artifacts as the component.
    let classic: Value = serde_yaml::from_str(&read("gitlab-ci/imagegate.gitlab-ci.yml")).unwrap();
    let hidden = &classic[".imagegate"];
    let defaults = Mapping::from_iter([(
        Value::from("image"),
        Value::from("registry.example.com/app:1"),
    )]);
    let component_jobs = component(&defaults);
    let job = &component_jobs["image-gate"];
    assert_eq!(hidden["script"], job["script"], "the script drifted");
    assert_eq!(hidden["artifacts"], job["artifacts"]);
    assert_eq!(hidden["image"]["entrypoint"], job["image"]["entrypoint"]);
    assert_eq!(
        hidden["variables"]["IMAGEGATE_TOOL_IMAGE"],
        job["image"]["name"]
    );
    // Every variable the script reads has a default in the template, set from an input in
    // the component.
    for (k, _) in job["variables"].as_mapping().unwrap() {
        assert!(
            hidden["variables"].get(k).is_some(),
            "the classic template lacks {k:?}"
        );
    }
    let component_text = read("gitlab-ci/templates/imagegate.yml");
    let header: Value =
        serde_yaml::from_str(component_text.split_once("\n---\n").unwrap().0).unwrap();
    for (name, spec) in header["spec"]["inputs"].as_mapping().unwrap() {
        let var = format!("IMAGEGATE_{}", str_of(name).to_uppercase());
        if let (Some(default), Some(template)) =
            (spec.get("default"), hidden["variables"].get(var.as_str()))
        {
            assert_eq!(default, template, "{var}");
        }
    }

    // The example that extends it, run.
    let (vault, public) = vault();
    let (registry, _dir, layout) = project_registry(&ImageSpec::rich());
    let checkout = project(&[]);
    let jobs = pipeline(&read("gitlab-ci/examples/classic.gitlab-ci.yml"));
    let run = run_job(
        &jobs,
        "image-gate",
        &JobEnv {
            project_dir: checkout.path(),
            predefined: registry_variables(&registry),
            project: vec![("VAULT_ADDR", vault.addr())],
        },
    );
    assert_eq!(run.status, "success", "{run:#?}");
    assert_eq!(run.audiences, [AUDIENCE]);
    let pinned = format!("{}@{}", registry.image("group/app"), layout.digest);
    let dotenv = read_dotenv(&run.report(checkout.path(), "dotenv"));
    assert_eq!(dotenv["IMAGEGATE_REF"], pinned);
    assert_eq!(dotenv["IMAGEGATE_VERDICT"], "pass");
    check_junit(&run.report(checkout.path(), "junit"));
    let verified = cosign_verify(&registry, &pinned, &public);
    assert_eq!(verified.code, 0, "cosign verify: {}", verified.stderr);
    assert_no_secrets(&run);
}

#[test]
fn inputs_are_checked_and_never_reach_the_shell_as_code() {
    // An input with shell syntax in it is a value, not code.
    let registry = Registry::start_tls();
    let checkout = project(&[]);
    let marker = checkout.path().join("pwned");
    let mut inputs = Mapping::new();
    inputs.insert(
        "image".into(),
        format!("x$(touch {}); touch {}", marker.display(), marker.display()).into(),
    );
    inputs.insert("dry_run".into(), "true".into());
    let jobs = component(&inputs);
    let run = run_job(
        &jobs,
        "image-gate",
        &JobEnv {
            project_dir: checkout.path(),
            predefined: registry_variables(&registry),
            project: vec![],
        },
    );
    assert_eq!((run.output.code, run.status), (2, "failed"), "{run:#?}");
    assert!(!marker.exists(), "an input ran as shell code");

    // Inputs the spec does not allow are refused when the pipeline is created.
    let refused = |name: &str, value: &str| {
        let mut inputs = Mapping::new();
        inputs.insert("image".into(), "registry.example.com/app:1".into());
        inputs.insert(name.into(), value.into());
        try_component(&inputs).expect_err("refused")
    };
    assert!(refused("strict", "yes").contains("not one of"));
    assert!(refused("dry_run", "1").contains("not one of"));
    assert!(refused("job_prefix", "a b").contains("does not match"));
    assert!(refused("colour", "blue").contains("no input colour"));
    assert!(
        try_component(&Mapping::new())
            .expect_err("refused")
            .contains("input image is required")
    );
}

#[test]
fn the_readme_shows_the_examples_as_they_are() {
    let readme = read("README.md");
    for example in [
        "gitlab-ci/examples/vault.gitlab-ci.yml",
        "gitlab-ci/examples/warn-only.gitlab-ci.yml",
        "gitlab-ci/examples/classic.gitlab-ci.yml",
    ] {
        assert!(
            readme.contains(read(example).trim()),
            "README.md does not show {example} as it is"
        );
    }
}
