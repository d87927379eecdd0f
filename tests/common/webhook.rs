//! A webhook receiver run by the test: records every request pathdns's webhook sink
//! sends, on loopback (or on the loopback of a test's network namespace).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::wait_for;

/// One request the webhook receiver got.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub body: Value,
    pub at: Instant,
    pub answered: Option<u16>,
}

/// A webhook receiver on loopback: records every request; answers 200, or the statuses
/// queued in `script` first, or (hanging) never.
pub struct Hook {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Request>>>,
    pub connections: Arc<AtomicUsize>,
    pub script: Arc<Mutex<VecDeque<u16>>>,
    stop: Arc<AtomicBool>,
}

impl Hook {
    pub fn start() -> Hook {
        Hook::with(false)
    }

    /// Accepts connections and reads requests, but never answers.
    pub fn hanging() -> Hook {
        Hook::with(true)
    }

    /// A receiver on the loopback of network namespace `ns` (where an agent in that
    /// namespace can reach it); served by a thread of this process.
    pub fn start_in(ns: &str) -> Hook {
        let listener = super::netns::run_in_ns(ns, || {
            TcpListener::bind("127.0.0.1:0").expect("bind hook in the namespace")
        });
        Hook::serving(listener, false)
    }

    fn with(hang: bool) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind hook");
        Hook::serving(listener, hang)
    }

    fn serving(listener: TcpListener, hang: bool) -> Hook {
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("hook addr");
        let hook = Hook {
            addr,
            requests: Arc::default(),
            connections: Arc::default(),
            script: Arc::default(),
            stop: Arc::default(),
        };
        let (requests, connections, script, stop) = (
            hook.requests.clone(),
            hook.connections.clone(),
            hook.script.clone(),
            hook.stop.clone(),
        );
        std::thread::spawn(move || {
            let held = Arc::new(Mutex::new(Vec::new()));
            while !stop.load(Ordering::Relaxed) {
                let Ok((stream, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                connections.fetch_add(1, Ordering::Relaxed);
                let (requests, script, held) = (requests.clone(), script.clone(), held.clone());
                std::thread::spawn(move || serve(stream, hang, &requests, &script, &held));
            }
        });
        hook
    }

    pub fn url(&self) -> String {
        format!("http://{}/hook/secret-token", self.addr)
    }

    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("requests").clone()
    }

    /// Waits until some recorded request satisfies `want`; returns all requests so far.
    pub fn wait_for(&self, what: &str, want: impl Fn(&Value) -> bool) -> Vec<Request> {
        wait_for(what, || {
            let requests = self.requests();
            requests.iter().any(|r| want(&r.body)).then_some(requests)
        })
    }
}

impl Drop for Hook {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(
    stream: TcpStream,
    hang: bool,
    requests: &Mutex<Vec<Request>>,
    script: &Mutex<VecDeque<u16>>,
    held: &Mutex<Vec<TcpStream>>,
) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut writer) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
        return;
    }
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .to_owned();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if hang {
        requests.lock().expect("requests").push(Request {
            path,
            body,
            at: Instant::now(),
            answered: None,
        });
        // Keep the connection open, unanswered, for as long as the test runs.
        held.lock().expect("held").push(writer);
        return;
    }
    let status = script.lock().expect("script").pop_front().unwrap_or(200);
    requests.lock().expect("requests").push(Request {
        path,
        body,
        at: Instant::now(),
        answered: Some(status),
    });
    let _ = write!(
        writer,
        "HTTP/1.1 {status} Test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
}
