//! Debian's docker-registry (distribution 2.8.2), one per test, on a free loopback port.

use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;

use super::token_standin::{self, TokenService};
use super::{tools, write_file};

pub const USER: &str = "alice";
pub const PASSWORD: &str = "correct-horse-battery";

/// A running registry. Dropping it stops the process (by PID) and removes its data.
pub struct Registry {
    pub port: u16,
    pub tls: bool,
    /// Another CA a client must trust (the token service's, for `auth: token`).
    extra_ca: Option<PathBuf>,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Registry {
    /// A plain-HTTP registry, open to everyone.
    pub fn start() -> Registry {
        Self::start_kind(&Auth::None)
    }

    /// A TLS registry with htpasswd basic auth for [`USER`]/[`PASSWORD`]; its server
    /// certificate (for 127.0.0.1) is signed by a test CA, [`Registry::certificate`].
    pub fn start_tls() -> Registry {
        Self::start_kind(&Auth::Htpasswd)
    }

    /// A TLS registry (test CA as [`Registry::start_tls`]) that accepts only bearer tokens
    /// from `tokens`, checking each against the service's signing certificate.
    pub fn start_token(tokens: &TokenService) -> Registry {
        Self::start_kind(&Auth::Token {
            realm: tokens.realm(),
            root_certificate: tokens.signer_certificate(),
            service_ca: tokens.ca_certificate(),
        })
    }

    /// A TLS registry whose certificate is its own CA (`openssl req -x509` with the default
    /// `CA:TRUE`), as many hand-made registry setups have.
    pub fn start_tls_self_signed_ca() -> Registry {
        let mut registry = Self::start_kind(&Auth::Htpasswd);
        // Restart with the self-signed certificate in place of the CA-signed one.
        registry.stop();
        let dir = registry.dir.path().to_path_buf();
        make_self_signed(&dir);
        let mut cmd = Command::new(tools::docker_registry());
        let log = std::fs::File::create(dir.join("registry.log")).expect("log file");
        cmd.arg("serve")
            .arg(dir.join("config.yml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        die_with_parent(&mut cmd);
        registry.child = Some(cmd.spawn().expect("start docker-registry"));
        assert!(registry.wait_ready(), "registry restart");
        registry
    }

    fn start_kind(auth: &Auth) -> Registry {
        let tls = !matches!(auth, Auth::None);
        // A port picked by the kernel can be taken again before the registry binds it: retry.
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("tempdir");
            if tls {
                make_certificate(dir.path());
            }
            if matches!(auth, Auth::Htpasswd) {
                make_htpasswd(dir.path());
            }
            let port = free_port();
            let config_path = write_file(
                dir.path(),
                "config.yml",
                &config_yaml(dir.path(), port, auth),
            );
            let log = std::fs::File::create(dir.path().join("registry.log")).expect("log file");
            let mut cmd = Command::new(tools::docker_registry());
            cmd.arg("serve")
                .arg(&config_path)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log"))
                .stderr(log);
            die_with_parent(&mut cmd);
            let child = cmd.spawn().expect("start docker-registry");
            let extra_ca = match auth {
                Auth::Token { service_ca, .. } => Some(service_ca.clone()),
                _ => None,
            };
            let mut registry = Registry {
                port,
                tls,
                extra_ca,
                dir,
                child: Some(child),
            };
            if registry.wait_ready() {
                return registry;
            }
        }
        panic!("docker-registry did not start on a free port after 5 tries");
    }

    fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(_)) = child.try_wait()
            {
                return false; // exited: most likely the port was taken
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        false
    }

    /// Stops the registry now (its data stays until the value is dropped).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            // SIGTERM first so the registry can close cleanly, then SIGKILL.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(3);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            child.kill().ok();
            child.wait().ok();
        }
    }

    /// `127.0.0.1:PORT`
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT/REPO`
    pub fn image(&self, repo_and_tag: &str) -> String {
        format!("{}/{repo_and_tag}", self.host())
    }

    /// The CA certificate to trust for a TLS registry.
    pub fn certificate(&self) -> PathBuf {
        self.dir.path().join("ca.crt")
    }

    /// A folder holding only the CA certificates (the registry's, and the token service's if
    /// any), as skopeo's --cert-dir wants.
    pub fn cert_dir(&self) -> PathBuf {
        let dir = self.dir.path().join("certs.d");
        std::fs::create_dir_all(&dir).expect("cert dir");
        std::fs::copy(self.certificate(), dir.join("ca.crt")).expect("copy ca");
        if let Some(extra) = &self.extra_ca {
            std::fs::copy(extra, dir.join("token-service-ca.crt")).expect("copy ca");
        }
        dir
    }

    /// One PEM file with every CA a client needs (for `SSL_CERT_FILE` of Go tools).
    pub fn ca_bundle(&self) -> PathBuf {
        let mut pem = std::fs::read_to_string(self.certificate()).expect("read ca");
        if let Some(extra) = &self.extra_ca {
            pem.push_str(&std::fs::read_to_string(extra).expect("read ca"));
        }
        write_file(self.dir.path(), "ca-bundle.pem", &pem)
    }

    /// Writes a docker config.json with `user:password` for this registry into `dir`.
    pub fn docker_config(&self, dir: &Path, user: &str, password: &str) -> PathBuf {
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        write_file(
            dir,
            "config.json",
            &format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, self.host()),
        )
    }

    /// skopeo's flags for this registry, as destination (`dest`) or source (`src`).
    pub fn skopeo_flags(&self, side: &str) -> Vec<String> {
        if self.tls {
            vec![
                format!("--{side}-cert-dir={}", self.cert_dir().display()),
                format!("--{side}-creds={USER}:{PASSWORD}"),
            ]
        } else {
            vec![format!("--{side}-tls-verify=false")]
        }
    }

    /// The registry's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    /// The requests the registry has answered to clients whose User-Agent starts with `agent`,
    /// as `METHOD URI` lines. Waits until the log stops growing (lines are written after the
    /// response is sent).
    pub fn requests_from(&self, agent: &str) -> Vec<String> {
        let mut previous = usize::MAX;
        for _ in 0..50 {
            let now = self.log().len();
            if now == previous {
                break;
            }
            previous = now;
            std::thread::sleep(Duration::from_millis(40));
        }
        self.log()
            .lines()
            .filter(|l| l.contains("msg=\"response completed"))
            .filter(|l| {
                l.contains(&format!("http.request.useragent={agent}"))
                    || l.contains(&format!("http.request.useragent=\"{agent}"))
            })
            .map(|l| {
                format!(
                    "{} {}",
                    field(l, "http.request.method"),
                    field(l, "http.request.uri")
                )
            })
            .collect()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A logrus `key=value` or `key="value"` field of a log line.
fn field(line: &str, key: &str) -> String {
    let Some(start) = line.find(&format!("{key}=")) else {
        return String::new();
    };
    let rest = &line[start + key.len() + 1..];
    if let Some(quoted) = rest.strip_prefix('"') {
        quoted.split('"').next().unwrap_or_default().to_string()
    } else {
        rest.split(' ').next().unwrap_or_default().to_string()
    }
}

/// Kills the child when the test process dies, even by SIGKILL.
pub fn die_with_parent(cmd: &mut Command) {
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// How the registry asks clients to authenticate.
enum Auth {
    None,
    Htpasswd,
    Token {
        realm: String,
        root_certificate: PathBuf,
        service_ca: PathBuf,
    },
}

fn config_yaml(dir: &Path, port: u16, auth: &Auth) -> String {
    let mut config = format!(
        "version: 0.1\n\
         log: {{level: info, accesslog: {{disabled: true}}}}\n\
         storage:\n  filesystem: {{rootdirectory: {data}}}\n  delete: {{enabled: true}}\n\
         http:\n  addr: 127.0.0.1:{port}\n  secret: not-a-secret\n",
        data = dir.join("data").display()
    );
    if !matches!(auth, Auth::None) {
        config.push_str(&format!(
            "  tls: {{certificate: {crt}, key: {key}}}\n",
            crt = dir.join("server.crt").display(),
            key = dir.join("server.key").display(),
        ));
    }
    match auth {
        Auth::None => {}
        Auth::Htpasswd => config.push_str(&format!(
            "auth:\n  htpasswd: {{realm: imagegate-test, path: {htpasswd}}}\n",
            htpasswd = dir.join("htpasswd").display()
        )),
        Auth::Token {
            realm,
            root_certificate,
            ..
        } => config.push_str(&format!(
            "auth:\n  token: {{realm: \"{realm}\", service: {service}, issuer: {issuer}, rootcertbundle: {root}}}\n",
            service = token_standin::SERVICE,
            issuer = token_standin::ISSUER,
            root = root_certificate.display()
        )),
    }
    config
}

fn openssl(args: &[&str], dir: &Path) {
    let status = Command::new(tools::openssl())
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run openssl");
    assert!(status.success(), "openssl {args:?} failed");
}

const EC: [&str; 4] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];

/// A test CA, and a server certificate for 127.0.0.1 signed by it.
fn make_certificate(dir: &Path) {
    let mut ca = vec![
        "req",
        "-x509",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        "/CN=imagegate test CA",
    ];
    ca.extend(EC);
    ca.extend(["-keyout", "ca.key", "-out", "ca.crt"]);
    openssl(&ca, dir);
    let mut csr = vec!["req", "-new", "-nodes", "-subj", "/CN=127.0.0.1"];
    csr.extend(EC);
    csr.extend(["-keyout", "server.key", "-out", "server.csr"]);
    openssl(&csr, dir);
    write_file(
        dir,
        "server.ext",
        "basicConstraints=critical,CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    );
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "3650",
            "-extfile",
            "server.ext",
            "-out",
            "server.crt",
        ],
        dir,
    );
}

/// A self-signed server certificate that is also a CA (`CA:TRUE`), written over server.* and
/// ca.crt.
fn make_self_signed(dir: &Path) {
    let mut args = vec![
        "req",
        "-x509",
        "-nodes",
        "-days",
        "3650",
        "-subj",
        "/CN=127.0.0.1",
    ];
    args.extend(EC);
    args.extend([
        "-addext",
        "subjectAltName=IP:127.0.0.1,DNS:localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.crt",
    ]);
    openssl(&args, dir);
    std::fs::copy(dir.join("server.crt"), dir.join("ca.crt")).expect("copy");
}

fn make_htpasswd(dir: &Path) {
    let output = Command::new(tools::htpasswd())
        .args(["-Bbn", USER, PASSWORD])
        .output()
        .expect("run htpasswd");
    assert!(output.status.success(), "htpasswd failed");
    std::fs::write(dir.join("htpasswd"), output.stdout).expect("write htpasswd");
}
