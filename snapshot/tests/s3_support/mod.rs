//! A real S3 endpoint for tests: moto's server (`pip install 'moto[server]'`), started on
//! 127.0.0.1 on a free port and killed when the guard drops.
//!
//! Without `moto_server` on the PATH a test fails with a clear message when `CI=true`, and
//! otherwise skips (returns early) after printing a note.
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long the server may take to start and answer.
const STARTUP: Duration = Duration::from_secs(60);

/// The access key and secret the tests sign with (moto accepts any).
pub const ACCESS_KEY: &str = "amber-test";
/// See [`ACCESS_KEY`].
pub const SECRET_KEY: &str = "amber-test-secret";
/// The region the tests use.
pub const REGION: &str = "us-east-1";

/// A running moto server; killed (and reaped) on drop.
#[derive(Debug)]
pub struct S3Server {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub endpoint: String,
    port: u16,
}

impl S3Server {
    /// Starts moto's server, or `None` (after printing why) if it is not installed and this is
    /// not CI. Panics if it is not installed under `CI=true`, or does not start.
    pub fn start() -> Option<S3Server> {
        // Port 0: the server binds a free port and prints it ("Running on http://…:PORT").
        let spawned = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", "0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let note = "moto_server is not installed (pip install 'moto[server]'); \
                            the S3 tests need it";
                if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                    panic!("{note}");
                }
                eprintln!("note: skipping: {note}");
                return None;
            }
            Err(err) => panic!("cannot start moto_server: {err}"),
        };
        // The server logs every request on stderr, its banner on either: read both to the end
        // (a full pipe would stall it), passing on the lines until the port is known.
        let (lines, port_lines) = mpsc::channel();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    let _ = lines.send(line);
                }
            });
        }
        drop(lines);
        let deadline = Instant::now() + STARTUP;
        let mut seen = Vec::new();
        let port = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match port_lines.recv_timeout(left) {
                Ok(line) => {
                    if let Some(port) = line
                        .split("Running on http://127.0.0.1:")
                        .nth(1)
                        .and_then(|rest| rest.trim().parse::<u16>().ok())
                    {
                        break port;
                    }
                    seen.push(line);
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "moto_server did not say its port within {STARTUP:?}; it printed {seen:?}"
                    );
                }
            }
        };
        let server = S3Server { child, endpoint: format!("http://127.0.0.1:{port}"), port };
        // Ready when it answers a request (bounded retries, not a sleep).
        let mut answered = None;
        while Instant::now() < deadline {
            match server.request("GET", "/") {
                Ok(status) => {
                    answered = Some(status);
                    break;
                }
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
        assert_eq!(answered, Some(200), "moto_server at {} does not answer", server.endpoint);
        Some(server)
    }

    /// Creates bucket `name`.
    pub fn create_bucket(&self, name: &str) {
        let status = self.request("PUT", &format!("/{name}")).unwrap();
        assert_eq!(status, 200, "creating bucket {name}");
    }

    /// The environment a process needs to reach this server through the standard AWS
    /// variables.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_owned()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
        ]
    }

    /// The body of an unsigned GET of `path` (e.g. `/bucket?uploads`, the multipart uploads
    /// in progress), which must answer 200.
    pub fn get(&self, path: &str) -> String {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
            self.port
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "GET {path}: {response}");
        response
    }

    /// Sends an unsigned request without a body (moto accepts those) and returns the status.
    fn request(&self, method: &str, path: &str) -> std::io::Result<u16> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n",
            self.port
        )?;
        let mut response = String::new();
        BufReader::new(stream).read_line(&mut response)?;
        response
            .split_whitespace()
            .nth(1)
            .and_then(|status| status.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {response:?}")))
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
