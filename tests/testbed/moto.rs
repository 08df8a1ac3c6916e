//! moto_server (from PyPI) standing in for AWS KMS on a free loopback port, with a real ECDSA
//! P-256 signing key created through boto3.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::registry::{die_with_parent, free_port};
use super::tools;

pub struct Moto {
    pub port: u16,
    child: Option<Child>,
}

/// A KMS key made in moto.
pub struct KmsKey {
    pub key_id: String,
    pub arn: String,
    pub alias: String,
    /// The public key, PEM, as GetPublicKey returns it.
    pub public_pem: String,
}

impl Moto {
    pub fn start() -> Moto {
        let port = free_port();
        let mut cmd = Command::new(tools::moto_server());
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut cmd);
        let child = cmd.spawn().expect("start moto_server");
        let moto = Moto {
            port,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return moto;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("moto_server did not start on port {port}");
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The AWS SDK variables that point a client at this moto.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing-secret-not-real".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// Creates an ECC_NIST_P256 SIGN_VERIFY key with an alias.
    pub fn create_key(&self, alias: &str) -> KmsKey {
        let script = format!(
            r#"
import boto3, base64, json
kms = boto3.client("kms", endpoint_url="{endpoint}", region_name="us-east-1",
                   aws_access_key_id="testing", aws_secret_access_key="testing-secret-not-real")
meta = kms.create_key(KeySpec="ECC_NIST_P256", KeyUsage="SIGN_VERIFY")["KeyMetadata"]
kms.create_alias(AliasName="alias/{alias}", TargetKeyId=meta["KeyId"])
der = kms.get_public_key(KeyId=meta["KeyId"])["PublicKey"]
b64 = base64.b64encode(der).decode()
pem = "-----BEGIN PUBLIC KEY-----\n" + "\n".join(b64[i:i+64] for i in range(0, len(b64), 64)) + "\n-----END PUBLIC KEY-----\n"
print(json.dumps({{"key_id": meta["KeyId"], "arn": meta["Arn"], "pem": pem}}))
"#,
            endpoint = self.endpoint()
        );
        let out = Command::new(tools::cache_dir().join("bin/moto-python"))
            .args(["-c", &script])
            .output()
            .expect("run boto3");
        assert!(
            out.status.success(),
            "creating a KMS key in moto failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json from boto3");
        KmsKey {
            key_id: v["key_id"].as_str().unwrap_or_default().to_string(),
            arn: v["arn"].as_str().unwrap_or_default().to_string(),
            alias: format!("alias/{alias}"),
            public_pem: v["pem"].as_str().unwrap_or_default().to_string(),
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().ok();
        }
    }
}
