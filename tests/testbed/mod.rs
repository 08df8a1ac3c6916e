//! The test bed: real parts started per test and stopped by PID, also when a test fails.
//!
//! - [`registry`]: Debian's `docker-registry` (distribution 2.8) on a free loopback port, plain
//!   or TLS with htpasswd;
//! - [`fixtures`]: OCI image layouts built in code (deterministic bytes), pushed with skopeo;
//! - [`tools`]: where cosign 2.5, skopeo 1.18 and moto_server live (installed by
//!   `scripts/install-testbed.sh`, which the README's test command runs);
//! - [`stub`]: a scripted HTTP server, only for failures no real registry can be made to show
//!   (a 5 MiB manifest, a run of 503s). It is named a stand-in wherever it is used.
//! - [`vault_standin`], [`k8s_standin`]: stand-ins for Vault transit and the Kubernetes API,
//!   which cannot be installed here; real keys, real signatures, real TLS.
//! - [`gcp_standin`], [`azure_standin`]: stand-ins for Google Cloud KMS and Azure Key Vault and
//!   their token services (no real cloud can be reached here), speaking their documented REST
//!   endpoints with real keys and signatures, on the server in [`standin`].
//! - [`token_standin`]: a stand-in for a registry's token service (docker token auth), in front
//!   of the real registry, which checks every token it hands out.
//! - [`rekor_standin`]: a stand-in for a Rekor log's answers (entry and signed entry
//!   timestamp), written as the bundle file cosign attaches and judges.
#![allow(dead_code)]

pub mod azure_standin;
pub mod fixtures;
pub mod gcp_standin;
pub mod k8s_standin;
pub mod moto;
pub mod raw;
pub mod registry;
pub mod rekor_standin;
pub mod standin;
pub mod stub;
pub mod token_standin;
pub mod tools;
pub mod vault_standin;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished command left behind.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Panics with the whole output when the exit code is not `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Output {
        assert_eq!(
            self.code, code,
            "expected exit code {code}, got {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        );
        self
    }
}

/// Runs `cmd`, killing it after `timeout`.
pub fn run_with_timeout(mut cmd: Command, timeout: Duration) -> Output {
    let program = format!("{:?}", cmd.get_program());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    // Drain the pipes on threads so a chatty child cannot block on a full pipe.
    let mut out = child.stdout.take().expect("piped");
    let mut err = child.stderr.take().expect("piped");
    let out_thread = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut out, &mut s).ok();
        s
    });
    let err_thread = std::thread::spawn(move || {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut err, &mut s).ok();
        s
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            child.kill().ok();
            child.wait().ok();
            panic!("{program} did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        code: status.code().unwrap_or(-1),
        stdout: out_thread.join().unwrap_or_default(),
        stderr: err_thread.join().unwrap_or_default(),
    }
}

/// The imagegate binary under test, in a clean environment: HOME is a fresh folder, and none of
/// the machine's registry credentials, CA settings or colour settings leak in.
pub struct Imagegate {
    args: Vec<String>,
    env: BTreeMap<String, String>,
    home: tempfile::TempDir,
    timeout: Duration,
    cwd: Option<PathBuf>,
}

impl Imagegate {
    pub fn new() -> Imagegate {
        let home = tempfile::tempdir().expect("tempdir");
        let mut env = BTreeMap::new();
        env.insert("HOME".into(), home.path().display().to_string());
        env.insert("PATH".into(), std::env::var("PATH").unwrap_or_default());
        Imagegate {
            args: Vec::new(),
            env,
            home,
            timeout: Duration::from_secs(120),
            cwd: None,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<str>) -> Self {
        self.args.push(arg.as_ref().to_string());
        self
    }

    pub fn args<I: IntoIterator<Item = S>, S: AsRef<str>>(mut self, args: I) -> Self {
        for a in args {
            self.args.push(a.as_ref().to_string());
        }
        self
    }

    pub fn env(mut self, key: &str, value: impl AsRef<str>) -> Self {
        self.env.insert(key.into(), value.as_ref().to_string());
        self
    }

    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.cwd = Some(dir.to_path_buf());
        self
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn run(self) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_imagegate"));
        cmd.env_clear().envs(&self.env).args(&self.args);
        if let Some(dir) = &self.cwd {
            cmd.current_dir(dir);
        }
        run_with_timeout(cmd, self.timeout)
    }
}

impl Default for Imagegate {
    fn default() -> Self {
        Self::new()
    }
}

/// A folder that lives as long as the value.
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

/// sha256 of `bytes`, as `sha256:<hex>`.
pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}
