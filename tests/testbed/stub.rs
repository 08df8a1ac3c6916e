//! A stand-in HTTP server with scripted answers. It is used only for what a real registry cannot
//! be made to do on demand — answer 503 a set number of times, or serve a 5 MiB manifest — and
//! every test that uses it says so.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

/// One scripted answer.
#[derive(Clone, Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// After sending this answer the server stops listening, as a registry that goes down.
    pub then_stop: bool,
}

impl Answer {
    pub fn new(status: u16, body: impl Into<Vec<u8>>) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: body.into(),
            then_stop: false,
        }
    }

    /// Stop listening once this answer is sent.
    pub fn then_stop(mut self) -> Answer {
        self.then_stop = true;
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

type Script = HashMap<(String, String), Vec<Answer>>;

/// A running stand-in server; stops accepting when dropped.
pub struct Stub {
    pub port: u16,
    requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<Mutex<bool>>,
}

impl Stub {
    /// Serves `script`: for each `(METHOD, path)`, its answers in turn (the last one repeats).
    /// Anything else gets 404.
    pub fn start(script: Vec<((&str, &str), Vec<Answer>)>) -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind stub");
        let port = listener.local_addr().expect("addr").port();
        let script: Script = script
            .into_iter()
            .map(|((m, p), a)| ((m.to_string(), p.to_string()), a))
            .collect();
        let script = Arc::new(Mutex::new(script));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(Mutex::new(false));
        let (r, s) = (requests.clone(), stop.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if *s.lock().unwrap() {
                    break;
                }
                if let Ok(stream) = stream {
                    let (script, r, s) = (script.clone(), r.clone(), s.clone());
                    // Served on this thread, so that a `then_stop` answer closes the listener
                    // before anything else is accepted.
                    if serve(stream, &script, &r) {
                        *s.lock().unwrap() = true;
                        break;
                    }
                }
            }
            // Dropping the listener here refuses every later connection.
        });
        Stub {
            port,
            requests,
            stop,
        }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `METHOD path` of every request so far.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for Stub {
    fn drop(&mut self) {
        *self.stop.lock().unwrap() = true;
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Answers one request; true when the answer asks the server to stop.
fn serve(stream: TcpStream, script: &Mutex<Script>, requests: &Mutex<Vec<String>>) -> bool {
    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() || line.is_empty() {
        return false;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let mut content_length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).is_err() || header == "\r\n" || header.is_empty() {
            break;
        }
        if let Some(v) = header.to_ascii_lowercase().strip_prefix("content-length:") {
            content_length = v.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; content_length];
    let _ = reader.read_exact(&mut body);
    requests.lock().unwrap().push(format!("{method} {path}"));
    let answer = {
        let mut script = script.lock().unwrap();
        match script.get_mut(&(method, path)) {
            Some(answers) if answers.len() > 1 => answers.remove(0),
            Some(answers) if !answers.is_empty() => answers[0].clone(),
            _ => Answer::new(
                404,
                r#"{"errors":[{"code":"NOT_FOUND","message":"not scripted"}]}"#,
            ),
        }
    };
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {} Scripted\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        answer.body.len()
    );
    for (k, v) in &answer.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(&answer.body);
    let _ = out.flush();
    answer.then_stop
}
