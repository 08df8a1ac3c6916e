//! A stand-in for the Kubernetes API server: no real API server can be installed on the test
//! machines (see the test bed notes), so this small HTTPS server speaks exactly the endpoints
//! `k8s://` uses — `GET /api/v1/namespaces/{ns}/secrets/{name}` and
//! `POST /api/v1/namespaces/{ns}/secrets` — with the API server's authentication (bearer
//! tokens, client certificates signed by the cluster CA), RBAC verbs per user and namespace,
//! and its `Status` error bodies (401, 403 Forbidden, 404 NotFound, 409 AlreadyExists).
//!
//! Its TLS is real (rustls) with a CA of its own made by rcgen. The CA and the small HTTP(S)
//! server loop here are shared with the Vault stand-in.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::TcpListener as StdListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use serde_json::{Value, json};

// ---------------------------------------------------------------------------------------------
// A CA of the stand-ins' own.

/// A certificate authority for stand-ins: it signs server certificates for 127.0.0.1 and
/// client certificates whose common name is a user name.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    cert_der: CertificateDer<'static>,
    cert_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} stand-in CA"));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            cert_der: cert.der().clone(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.cert_pem
    }

    /// Writes the CA certificate to `dir/name` and returns the path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        super::write_file(dir, name, &self.cert_pem)
    }

    fn der(&self) -> CertificateDer<'static> {
        self.cert_der.clone()
    }

    /// A server certificate for 127.0.0.1 and localhost, and its key.
    fn server_certificate(&self) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".into()])
            .expect("server params");
        params
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let key = KeyPair::generate().expect("server key");
        let cert = params.signed_by(&key, &self.issuer).expect("server cert");
        (
            cert.der().clone(),
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
    }

    /// A client certificate with common name `user`: (certificate PEM, PKCS#8 key PEM, DER).
    fn client_certificate(&self, user: &str) -> (String, String, Vec<u8>) {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("client params");
        params.distinguished_name.push(DnType::CommonName, user);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().expect("client key");
        let cert = params.signed_by(&key, &self.issuer).expect("client cert");
        (cert.pem(), key.serialize_pem(), cert.der().to_vec())
    }

    /// TLS settings for a stand-in server: this CA's server certificate; client certificates
    /// from this CA are asked for but not required.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der()).expect("CA into root store");
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .expect("client verifier");
        let (cert, key) = self.server_certificate();
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_client_cert_verifier(verifier)
            .with_single_cert(vec![cert], key)
            .expect("server TLS config");
        Arc::new(config)
    }
}

// ---------------------------------------------------------------------------------------------
// The stand-ins' HTTP(S) server.

/// A request as a stand-in sees it.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Header names in lower case.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
    /// The DER of the client certificate, when one was presented (and verified).
    pub client_cert: Option<Vec<u8>>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// The path without the query.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or_default()
    }

    /// A query parameter, percent-decoded.
    pub fn query(&self, name: &str) -> Option<String> {
        let query = self.target.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then(|| percent_decode(v))
        })
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                    }
                    Err(_) => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A stand-in's answer.
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(status: u16, value: &Value) -> Response {
        Response {
            status,
            body: serde_json::to_vec(value).expect("json"),
        }
    }
}

type Handler = Arc<dyn Fn(Request) -> Response + Send + Sync>;

/// A running server on a free 127.0.0.1 port; it stops when dropped.
pub struct Serving {
    pub port: u16,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Serves `handler` over HTTP, or HTTPS with `tls`, on its own thread and runtime (so that it
/// outlives nothing and needs nothing from the test's runtime).
pub fn serve(
    tls: Option<Arc<rustls::ServerConfig>>,
    handler: impl Fn(Request) -> Response + Send + Sync + 'static,
) -> Serving {
    let listener = StdListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.set_nonblocking(true).expect("nonblocking");
    let port = listener.local_addr().expect("local addr").port();
    let handler: Handler = Arc::new(handler);
    let (tx, mut rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("stand-in runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
            loop {
                tokio::select! {
                    _ = &mut rx => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let handler = handler.clone();
                        let acceptor = acceptor.clone();
                        tokio::spawn(async move {
                            match acceptor {
                                Some(acceptor) => {
                                    // A failed handshake (an untrusted client) just ends here.
                                    let Ok(tls) = acceptor.accept(stream).await else { return };
                                    let cert = tls
                                        .get_ref()
                                        .1
                                        .peer_certificates()
                                        .and_then(|c| c.first())
                                        .map(|c| c.to_vec());
                                    serve_connection(tls, cert, handler).await;
                                }
                                None => serve_connection(stream, None, handler).await,
                            }
                        });
                    }
                }
            }
        });
    });
    Serving {
        port,
        shutdown: Some(tx),
        thread: Some(thread),
    }
}

async fn serve_connection<I>(io: I, client_cert: Option<Vec<u8>>, handler: Handler)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let handler = handler.clone();
        let client_cert = client_cert.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await?.to_bytes().to_vec();
            let headers = parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_ascii_lowercase(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let request = Request {
                method: parts.method.as_str().to_string(),
                target: parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default(),
                headers,
                body,
                client_cert,
            };
            let answer = handler(request);
            let response = hyper::Response::builder()
                .status(answer.status)
                .header("Content-Type", "application/json")
                .body(Full::new(Bytes::from(answer.body)))
                .expect("response");
            Ok::<_, hyper::Error>(response)
        }
    });
    let _ = hyper::server::conn::http1::Builder::new()
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .await;
}

// ---------------------------------------------------------------------------------------------
// The Kubernetes API stand-in.

/// One request the stand-in answered.
#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    pub path: String,
    /// The user it was authenticated as, if any.
    pub user: Option<String>,
    /// "bearer", "certificate" or "none".
    pub auth: &'static str,
}

#[derive(Default)]
struct State {
    tokens: HashMap<String, String>,
    cert_users: HashMap<Vec<u8>, String>,
    /// (user, verb, namespace)
    grants: BTreeSet<(String, String, String)>,
    namespaces: BTreeSet<String>,
    secrets: BTreeMap<(String, String), Value>,
    seen: Vec<Seen>,
    next_uid: u64,
}

/// The Kubernetes API stand-in: HTTPS on a free loopback port, stopped when dropped.
pub struct K8sStandin {
    pub ca: TestCa,
    state: Arc<Mutex<State>>,
    server: Serving,
}

impl K8sStandin {
    pub fn start() -> K8sStandin {
        let ca = TestCa::new("Kubernetes API");
        let state = Arc::new(Mutex::new(State::default()));
        let handler_state = state.clone();
        let server = serve(Some(ca.server_config()), move |request| {
            handle(&handler_state, request)
        });
        K8sStandin { ca, state, server }
    }

    /// `https://127.0.0.1:PORT`
    pub fn server(&self) -> String {
        format!("https://127.0.0.1:{}", self.server.port)
    }

    pub fn port(&self) -> u16 {
        self.server.port
    }

    pub fn add_namespace(&self, namespace: &str) {
        self.state
            .lock()
            .unwrap()
            .namespaces
            .insert(namespace.into());
    }

    /// Bearer `token` authenticates as `user`.
    pub fn add_token(&self, token: &str, user: &str) {
        self.state
            .lock()
            .unwrap()
            .tokens
            .insert(token.into(), user.into());
    }

    /// A client certificate (signed by the cluster CA) that authenticates as `user`:
    /// (certificate PEM, key PEM).
    pub fn client_certificate(&self, user: &str) -> (String, String) {
        let (cert, key, der) = self.ca.client_certificate(user);
        self.state
            .lock()
            .unwrap()
            .cert_users
            .insert(der, user.into());
        (cert, key)
    }

    /// RBAC: `user` may `verb` (get, create) secrets in `namespace`.
    pub fn allow(&self, user: &str, verb: &str, namespace: &str) {
        self.state
            .lock()
            .unwrap()
            .grants
            .insert((user.into(), verb.into(), namespace.into()));
    }

    /// Stores a Secret directly, as `kubectl create secret generic` would.
    pub fn put_secret(&self, namespace: &str, name: &str, data: &[(&str, &[u8])]) {
        let b64 = base64::engine::general_purpose::STANDARD;
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| (k.to_string(), Value::String(b64.encode(v))))
            .collect();
        let mut state = self.state.lock().unwrap();
        state.namespaces.insert(namespace.into());
        let object = stored(
            &mut state,
            namespace,
            name,
            json!({ "type": "Opaque", "data": data }),
        );
        state
            .secrets
            .insert((namespace.into(), name.into()), object);
    }

    /// The stored Secret object, as the API server would return it.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<Value> {
        self.state
            .lock()
            .unwrap()
            .secrets
            .get(&(namespace.to_string(), name.to_string()))
            .cloned()
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    /// A kubeconfig for this cluster with the CA inline (`certificate-authority-data`) and
    /// `user_yaml` as the user's fields (each line indented by the caller's 4 spaces).
    pub fn kubeconfig(&self, user_yaml: &str) -> String {
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca.pem());
        format!(
            "apiVersion: v1\n\
             kind: Config\n\
             current-context: standin\n\
             contexts:\n\
             - name: standin\n  context:\n    cluster: standin-cluster\n    user: standin-user\n\
             - name: other\n  context:\n    cluster: nowhere\n    user: nobody\n\
             clusters:\n\
             - name: standin-cluster\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\n\
             users:\n\
             - name: standin-user\n  user:\n{user_yaml}\n",
            self.server()
        )
    }
}

/// A Secret as stored: metadata filled in as the API server does.
fn stored(state: &mut State, namespace: &str, name: &str, mut object: Value) -> Value {
    state.next_uid += 1;
    let uid = format!("00000000-0000-4000-8000-{:012}", state.next_uid);
    object["apiVersion"] = json!("v1");
    object["kind"] = json!("Secret");
    let mut metadata = object.get("metadata").cloned().unwrap_or_else(|| json!({}));
    metadata["name"] = json!(name);
    metadata["namespace"] = json!(namespace);
    metadata["uid"] = json!(uid);
    metadata["resourceVersion"] = json!(state.next_uid.to_string());
    metadata["creationTimestamp"] = json!("2024-01-01T00:00:00Z");
    object["metadata"] = metadata;
    if object.get("type").is_none() {
        object["type"] = json!("Opaque");
    }
    object
}

/// A Kubernetes `Status` failure body.
fn status(code: u16, reason: &str, message: &str, details: Option<Value>) -> Response {
    let mut body = json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    });
    if let Some(details) = details {
        body["details"] = details;
    }
    Response::json(code, &body)
}

fn handle(state: &Mutex<State>, request: Request) -> Response {
    let mut state = state.lock().unwrap();
    let path = request.path().to_string();

    // Authentication: a bearer token when one is sent (an unknown one is a 401 even with a
    // certificate), else the client certificate; anonymous requests are refused.
    let (user, auth) = match request.header("authorization") {
        Some(value) => {
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .unwrap_or("");
            (state.tokens.get(token).cloned(), "bearer")
        }
        None => match &request.client_cert {
            Some(der) => (state.cert_users.get(der).cloned(), "certificate"),
            None => (None, "none"),
        },
    };
    state.seen.push(Seen {
        method: request.method.clone(),
        path: path.clone(),
        user: user.clone(),
        auth,
    });
    let Some(user) = user else {
        return status(401, "Unauthorized", "Unauthorized", None);
    };

    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match (request.method.as_str(), parts.as_slice()) {
        ("GET", ["api", "v1", "namespaces", ns, "secrets", name]) => {
            if !state
                .grants
                .contains(&(user.clone(), "get".into(), ns.to_string()))
            {
                return status(
                    403,
                    "Forbidden",
                    &format!(
                        "secrets \"{name}\" is forbidden: User \"{user}\" cannot get resource \"secrets\" in API group \"\" in the namespace \"{ns}\""
                    ),
                    Some(json!({ "name": name, "kind": "secrets" })),
                );
            }
            match state.secrets.get(&(ns.to_string(), name.to_string())) {
                Some(object) => Response::json(200, object),
                None => status(
                    404,
                    "NotFound",
                    &format!("secrets \"{name}\" not found"),
                    Some(json!({ "name": name, "kind": "secrets" })),
                ),
            }
        }
        ("POST", ["api", "v1", "namespaces", ns, "secrets"]) => {
            if !state
                .grants
                .contains(&(user.clone(), "create".into(), ns.to_string()))
            {
                return status(
                    403,
                    "Forbidden",
                    &format!(
                        "secrets is forbidden: User \"{user}\" cannot create resource \"secrets\" in API group \"\" in the namespace \"{ns}\""
                    ),
                    Some(json!({ "kind": "secrets" })),
                );
            }
            if !state.namespaces.contains(*ns) {
                return status(
                    404,
                    "NotFound",
                    &format!("namespaces \"{ns}\" not found"),
                    Some(json!({ "name": ns, "kind": "namespaces" })),
                );
            }
            let Ok(object) = serde_json::from_slice::<Value>(&request.body) else {
                return status(400, "BadRequest", "the body is not JSON", None);
            };
            if object["apiVersion"] != "v1" || object["kind"] != "Secret" {
                return status(400, "BadRequest", "the object is not a v1 Secret", None);
            }
            let Some(name) = object["metadata"]["name"].as_str().map(str::to_string) else {
                return status(
                    422,
                    "Invalid",
                    "Secret \"\" is invalid: metadata.name: Required value",
                    None,
                );
            };
            if let Some(other) = object["metadata"]["namespace"].as_str()
                && other != *ns
            {
                return status(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                    None,
                );
            }
            let b64 = base64::engine::general_purpose::STANDARD;
            if let Some(data) = object["data"].as_object() {
                for (key, value) in data {
                    let valid = value.as_str().is_some_and(|v| b64.decode(v).is_ok());
                    if !valid {
                        return status(
                            422,
                            "Invalid",
                            &format!(
                                "Secret \"{name}\" is invalid: data[{key}]: Invalid value: not base64"
                            ),
                            None,
                        );
                    }
                }
            }
            if state.secrets.contains_key(&(ns.to_string(), name.clone())) {
                return status(
                    409,
                    "AlreadyExists",
                    &format!("secrets \"{name}\" already exists"),
                    Some(json!({ "name": name, "kind": "secrets" })),
                );
            }
            let object = stored(&mut state, ns, &name, object);
            state.secrets.insert((ns.to_string(), name), object.clone());
            Response::json(201, &object)
        }
        _ => status(
            404,
            "NotFound",
            "the server could not find the requested resource",
            None,
        ),
    }
}
