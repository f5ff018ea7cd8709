//! The error body over real HTTP: `{"error": {"code", "stage", "message"}}`,
//! the status from `http::status_for`, and a message that never repeats the
//! requested path (the client has it; only the server's log line names it).

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use trackprint_server::engine::Limits;
use trackprint_server::error::ErrorCode;
use trackprint_server::http::{router, status_for, AppState};
use trackprint_server::limits::Gate;
use trackprint_server::metrics::Metrics;
use trackprint_server::paths::Roots;

/// A library root with a directory and a text file in it, removed on drop.
struct Library(PathBuf);

impl Library {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("trackprint-http-errors-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("an album")).unwrap();
        std::fs::write(dir.join("notes.flac"), b"these are not audio samples at all").unwrap();
        Library(dir)
    }
}

impl Drop for Library {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Serve the real router on an ephemeral loopback port, on a background runtime.
fn serve(root: &PathBuf) -> SocketAddr {
    let state = Arc::new(AppState {
        roots: Roots::new(std::slice::from_ref(root)).unwrap(),
        gate: Gate::new(2),
        limits: Limits::default(),
        default_deadline_ms: 30_000,
        metrics: Metrics::default(),
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            axum::serve(listener, router(state)).await.unwrap();
        });
    });
    addr
}

/// POST `body` to /v1/fingerprint; (status, headers, JSON body).
fn post(addr: SocketAddr, body: &str) -> (u16, String, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let request = format!(
        "POST /v1/fingerprint HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut raw = String::new();
    stream.read_to_string(&mut raw).unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    (status, head.to_ascii_lowercase(), serde_json::from_str(body).expect("a JSON body"))
}

fn request_for(path: &str) -> String {
    serde_json::json!({ "path": path }).to_string()
}

#[test]
fn error_body_has_code_stage_and_a_message_without_the_path() {
    let library = Library::new();
    let addr = serve(&library.0);
    let missing = library.0.join("missing.flac").display().to_string();
    let directory = library.0.join("an album").display().to_string();
    let text = library.0.join("notes.flac").display().to_string();
    let cases = [
        (missing.as_str(), ErrorCode::NotFound, "open"),
        (directory.as_str(), ErrorCode::NotAFile, "open"),
        (text.as_str(), ErrorCode::UnsupportedFormat, "probe"),
        ("/definitely/not/in/the/library.flac", ErrorCode::OutsideLibrary, "open"),
        ("relative/path.flac", ErrorCode::OutsideLibrary, "open"),
    ];
    for (path, code, stage) in cases {
        let (status, head, body) = post(addr, &request_for(path));
        let error = body["error"].as_object().unwrap_or_else(|| panic!("{path}: no error object in {body}"));
        assert_eq!(error.len(), 3, "{path}: {body}");
        assert_eq!(error["code"], code.as_str(), "{path}: {body}");
        assert_eq!(error["stage"], stage, "{path}: {body}");
        let message = error["message"].as_str().expect("a message");
        assert!(!message.is_empty(), "{path}: empty message");
        assert!(!message.contains(path), "{path}: the message repeats the path: {message}");
        assert!(!message.contains(&format!("{stage}: {}", code.as_str())), "{path}: pre-formatted message: {message}");
        assert_eq!(status, status_for(code).as_u16(), "{path}: {body}");
        assert!(!head.contains("retry-after"), "{path}: Retry-After is for busy only");
    }

    let (status, _, body) = post(addr, "{\"not_path\": 1}");
    assert_eq!((status, body["error"]["code"].as_str(), body["error"]["stage"].as_str()), (400, Some("bad_request"), Some("request")));
}

#[test]
fn io_error_is_not_503() {
    // 503 (with Retry-After) means "busy"; an unreadable file is not back-pressure
    assert_ne!(status_for(ErrorCode::IoError).as_u16(), 503);
    assert!(status_for(ErrorCode::IoError).is_server_error());
    assert_eq!(status_for(ErrorCode::Busy).as_u16(), 503);
}
