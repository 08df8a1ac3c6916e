//! A stand-in for the GitHub Actions runner running a composite action (`github-actions/`).
//!
//! What it does as the runner does: fills in the action's inputs (declared ones only, required
//! ones present, defaults), evaluates each step's `env:` expressions (`inputs.*`,
//! `steps.<id>.outputs.*`, `github.action_path`, `runner.*`; any other expression fails the
//! test), refuses `${{ }}` inside `run:`, runs each step with its `shell` (`bash --noprofile
//! --norc -eo pipefail`, or `sh -e`) in the workspace with the job's environment plus
//! `GITHUB_ACTIONS=true`, a fresh `GITHUB_OUTPUT`, `GITHUB_STEP_SUMMARY`, `GITHUB_ENV` and
//! `GITHUB_PATH` file per step and `GITHUB_ACTION_PATH`; reads those files back (outputs,
//! `name<<DELIMITER` values too, PATH additions, env), stops at the first failing step, and
//! evaluates the action's `outputs:`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_yaml::Value;

use crate::testbed::{Output, run_with_timeout, temp_dir};

pub const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The job around the action: its workspace, `RUNNER_TEMP`, and environment.
pub struct Job {
    pub workspace: tempfile::TempDir,
    pub runner_temp: tempfile::TempDir,
    pub home: tempfile::TempDir,
    /// Job-level environment (what earlier steps such as configure-aws-credentials exported).
    pub env: Vec<(String, String)>,
    /// Folders before the system PATH.
    pub path: Vec<PathBuf>,
}

impl Job {
    pub fn new() -> Job {
        Job {
            workspace: temp_dir(),
            runner_temp: temp_dir(),
            home: temp_dir(),
            env: Vec::new(),
            path: Vec::new(),
        }
    }

    pub fn env(mut self, key: &str, value: impl Into<String>) -> Job {
        self.env.push((key.to_string(), value.into()));
        self
    }
}

/// One step as it ran.
#[derive(Debug)]
pub struct StepRun {
    pub id: String,
    pub output: Output,
    pub outputs: BTreeMap<String, String>,
    pub summary: String,
}

/// A finished action.
#[derive(Debug)]
pub struct ActionRun {
    /// The exit code of the step that ended the action (0 when all passed).
    pub code: i32,
    pub steps: Vec<StepRun>,
    /// The action's outputs.
    pub outputs: BTreeMap<String, String>,
    /// PATH additions the steps made.
    pub path_added: Vec<String>,
}

impl ActionRun {
    pub fn succeeded(&self) -> bool {
        self.code == 0
    }

    pub fn step(&self, id: &str) -> &StepRun {
        self.steps
            .iter()
            .find(|s| s.id == id)
            .unwrap_or_else(|| panic!("step {id} did not run: {self:#?}"))
    }

    pub fn ran(&self, id: &str) -> bool {
        self.steps.iter().any(|s| s.id == id)
    }

    pub fn logs(&self) -> String {
        self.steps
            .iter()
            .map(|s| format!("{}{}", s.output.stdout, s.output.stderr))
            .collect()
    }

    pub fn summary(&self) -> String {
        self.steps.iter().map(|s| s.summary.as_str()).collect()
    }
}

fn str_of(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

pub fn action(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("action.yml")).expect("action.yml");
    serde_yaml::from_str(&text).expect("action.yml is YAML")
}

struct Context<'a> {
    inputs: &'a BTreeMap<String, String>,
    steps: &'a BTreeMap<String, BTreeMap<String, String>>,
    action_path: &'a Path,
    runner_temp: &'a Path,
    workspace: &'a Path,
}

impl Context<'_> {
    fn lookup(&self, expr: &str) -> String {
        if let Some(name) = expr.strip_prefix("inputs.") {
            return self
                .inputs
                .get(name)
                .cloned()
                .unwrap_or_else(|| panic!("no input {name}"));
        }
        if let Some(rest) = expr.strip_prefix("steps.") {
            let (id, output) = rest
                .split_once(".outputs.")
                .unwrap_or_else(|| panic!("unsupported expression {expr}"));
            // A step that did not run, or did not set the output: the empty string.
            return self
                .steps
                .get(id)
                .and_then(|o| o.get(output))
                .cloned()
                .unwrap_or_default();
        }
        match expr {
            "github.action_path" => self.action_path.display().to_string(),
            "github.workspace" => self.workspace.display().to_string(),
            "runner.temp" => self.runner_temp.display().to_string(),
            "runner.os" => "Linux".into(),
            "runner.arch" => "X64".into(),
            _ => panic!("the harness does not evaluate ${{{{ {expr} }}}}"),
        }
    }

    fn evaluate(&self, text: &str) -> String {
        let re = regex::Regex::new(r"\$\{\{\s*(.*?)\s*\}\}").unwrap();
        re.replace_all(text, |c: &regex::Captures| self.lookup(&c[1]))
            .into_owned()
    }
}

/// `name=value` lines and `name<<DELIMITER` blocks, as the runner reads GITHUB_OUTPUT and
/// GITHUB_ENV.
pub fn parse_file_commands(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut lines = text.lines();
    while let Some(line) = lines.next() {
        if line.is_empty() {
            continue;
        }
        if let Some((name, delimiter)) = line.split_once("<<") {
            let mut value = Vec::new();
            for l in lines.by_ref() {
                if l == delimiter {
                    break;
                }
                value.push(l);
            }
            out.insert(name.to_string(), value.join("\n"));
        } else if let Some((name, value)) = line.split_once('=') {
            out.insert(name.to_string(), value.to_string());
        } else {
            panic!("not a file command: {line}");
        }
    }
    out
}

/// Runs the composite action in `action_dir` with `inputs` inside `job`.
pub fn run_action(action_dir: &Path, inputs: &[(&str, &str)], job: &Job) -> ActionRun {
    let action = action(action_dir);
    assert_eq!(action["runs"]["using"], "composite");

    let declared = action["inputs"].as_mapping().expect("inputs");
    let mut values = BTreeMap::new();
    for (name, spec) in declared {
        if let Some(default) = spec["default"].as_str() {
            values.insert(str_of(name).to_string(), default.to_string());
        }
    }
    for (name, value) in inputs {
        assert!(
            declared.contains_key(*name),
            "the action has no input {name}"
        );
        values.insert(name.to_string(), value.to_string());
    }
    for (name, spec) in declared {
        if spec["required"] == true {
            assert!(
                inputs.iter().any(|(n, _)| n == &str_of(name)),
                "input {name:?} is required"
            );
        }
    }

    let mut step_outputs: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut extra_env: BTreeMap<String, String> = BTreeMap::new();
    let mut path_added: Vec<String> = Vec::new();
    let mut runs = Vec::new();
    let mut code = 0;
    let files = temp_dir();
    for (index, step) in action["runs"]["steps"]
        .as_sequence()
        .unwrap()
        .iter()
        .enumerate()
    {
        let id = str_of(&step["id"]).to_string();
        assert!(step["if"].is_null(), "the harness does not evaluate if:");
        assert!(step["uses"].is_null(), "the harness runs run: steps only");
        let run = str_of(&step["run"]);
        assert!(
            !run.contains("${{"),
            "step {id}: an expression inside run: (script injection)"
        );
        let shell = str_of(&step["shell"]);
        let context = Context {
            inputs: &values,
            steps: &step_outputs,
            action_path: action_dir,
            runner_temp: job.runner_temp.path(),
            workspace: job.workspace.path(),
        };

        let command_file = |name: &str| {
            let path = files.path().join(format!("{name}_{index}"));
            std::fs::write(&path, "").unwrap();
            path
        };
        let github_output = command_file("output");
        let github_summary = command_file("summary");
        let github_env = command_file("env");
        let github_path = command_file("path");

        let mut env: BTreeMap<String, String> = BTreeMap::new();
        let mut path: Vec<String> = path_added.iter().rev().cloned().collect();
        path.extend(job.path.iter().map(|p| p.display().to_string()));
        path.extend(["/usr/local/bin", "/usr/bin", "/bin"].map(String::from));
        for (k, v) in [
            ("CI", "true".to_string()),
            ("GITHUB_ACTIONS", "true".into()),
            (
                "GITHUB_WORKSPACE",
                job.workspace.path().display().to_string(),
            ),
            ("GITHUB_ACTION_PATH", action_dir.display().to_string()),
            ("GITHUB_OUTPUT", github_output.display().to_string()),
            ("GITHUB_STEP_SUMMARY", github_summary.display().to_string()),
            ("GITHUB_ENV", github_env.display().to_string()),
            ("GITHUB_PATH", github_path.display().to_string()),
            ("GITHUB_REPOSITORY", "team/app".into()),
            (
                "GITHUB_SHA",
                "4f1c2a0e9d8b7c6a5f4e3d2c1b0a99887766554f".into(),
            ),
            ("RUNNER_OS", "Linux".into()),
            ("RUNNER_ARCH", "X64".into()),
            ("RUNNER_TEMP", job.runner_temp.path().display().to_string()),
            ("HOME", job.home.path().display().to_string()),
            ("PATH", path.join(":")),
        ] {
            env.insert(k.to_string(), v);
        }
        for (k, v) in &job.env {
            env.insert(k.clone(), v.clone());
        }
        for (k, v) in &extra_env {
            env.insert(k.clone(), v.clone());
        }
        if let Some(map) = step["env"].as_mapping() {
            for (k, v) in map {
                env.insert(str_of(k).to_string(), context.evaluate(str_of(v)));
            }
        }

        let script = files.path().join(format!("step_{index}.sh"));
        std::fs::write(&script, run).unwrap();
        let mut cmd = match shell {
            "bash" => {
                let mut c = Command::new("bash");
                c.args(["--noprofile", "--norc", "-eo", "pipefail"]);
                c
            }
            "sh" => {
                let mut c = Command::new("sh");
                c.arg("-e");
                c
            }
            other => panic!("step {id}: shell {other:?} is not emulated"),
        };
        cmd.arg(&script)
            .current_dir(job.workspace.path())
            .env_clear()
            .envs(&env);
        let output = run_with_timeout(cmd, Duration::from_secs(300));

        let outputs = parse_file_commands(&std::fs::read_to_string(&github_output).unwrap());
        for (k, v) in parse_file_commands(&std::fs::read_to_string(&github_env).unwrap()) {
            extra_env.insert(k, v);
        }
        for line in std::fs::read_to_string(&github_path).unwrap().lines() {
            if !line.is_empty() {
                path_added.push(line.to_string());
            }
        }
        let summary = std::fs::read_to_string(&github_summary).unwrap();
        step_outputs.insert(id.clone(), outputs.clone());
        let failed = output.code != 0 && step["continue-on-error"] != true;
        let step_code = output.code;
        runs.push(StepRun {
            id,
            output,
            outputs,
            summary,
        });
        if failed {
            code = step_code;
            break;
        }
    }

    let context = Context {
        inputs: &values,
        steps: &step_outputs,
        action_path: action_dir,
        runner_temp: job.runner_temp.path(),
        workspace: job.workspace.path(),
    };
    let mut outputs = BTreeMap::new();
    if let Some(map) = action["outputs"].as_mapping() {
        for (k, v) in map {
            outputs.insert(str_of(k).to_string(), context.evaluate(str_of(&v["value"])));
        }
    }
    ActionRun {
        code,
        steps: runs,
        outputs,
        path_added,
    }
}

/// The release archive the action downloads, `imagegate-<version>-<target>.tar.gz` with the
/// binary under test (debug info stripped), made once per test process in Cargo's scratch
/// folder (`CARGO_TARGET_TMPDIR`). Returns (folder, archive path, SHA-256 hex).
pub fn release_archive() -> (PathBuf, PathBuf, String) {
    static ARCHIVE: std::sync::OnceLock<(PathBuf, PathBuf, String)> = std::sync::OnceLock::new();
    ARCHIVE
        .get_or_init(|| {
            // One folder per test binary, written anew by each run.
            let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("release-{}", env!("CARGO_CRATE_NAME")));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let stage = dir.join("stage");
            std::fs::create_dir_all(&stage).unwrap();
            let binary = stage.join("imagegate");
            let stripped = Command::new("objcopy")
                .arg("--strip-debug")
                .arg(env!("CARGO_BIN_EXE_imagegate"))
                .arg(&binary)
                .status()
                .is_ok_and(|s| s.success());
            if !stripped {
                std::fs::copy(env!("CARGO_BIN_EXE_imagegate"), &binary).unwrap();
            }
            let name = format!(
                "imagegate-{}-x86_64-unknown-linux-gnu.tar.gz",
                env!("CARGO_PKG_VERSION")
            );
            let archive = dir.join(&name);
            make_archive(&stage, &archive);
            let sha = sha256_file(&archive);
            (dir, archive, sha)
        })
        .clone()
}

/// `tar -czf archive -C stage imagegate`.
pub fn make_archive(stage: &Path, archive: &Path) {
    let mut cmd = Command::new("tar");
    cmd.arg("-czf")
        .arg(archive)
        .arg("-C")
        .arg(stage)
        .arg("imagegate");
    run_with_timeout(cmd, Duration::from_secs(120)).expect_code(0);
}

pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap();
    hex::encode(sha2::Sha256::digest(&bytes))
}
