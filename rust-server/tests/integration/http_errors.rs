//! The error body over real HTTP: `{"error": {"code", "stage", "message"}}`,
//! the status from `http::status_for`, and a message that never repeats the
//! requested path (the client has it; only the server's log line names it).
//! Also the request-level refusals (NUL byte, PATH_MAX, NAME_MAX, relative
//! path, oversized body, wrong content type) and the accept loop's header-read
//! timeout and connection cap.

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use trackprint_server::engine::Limits;
use trackprint_server::error::ErrorCode;
use trackprint_server::http::{router, status_for, AppState};
use trackprint_server::limits::Gate;
use trackprint_server::metrics::Metrics;
use trackprint_server::paths::Roots;
use trackprint_server::serve::{serve as serve_app, ServeConfig};

const HEADER_TIMEOUT: Duration = Duration::from_millis(500);
const MAX_CONNECTIONS: usize = 8;

/// A library root with a directory and a text file in it, removed on drop.
struct Library(PathBuf);

impl Library {
    fn new() -> Self {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("trackprint-http-errors-{}-{n}", std::process::id()));
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
    serve_with(root, ServeConfig { header_read_timeout: HEADER_TIMEOUT, max_connections: MAX_CONNECTIONS })
}

fn serve_with(root: &PathBuf, config: ServeConfig) -> SocketAddr {
    let state = Arc::new(AppState {
        roots: Roots::new(std::slice::from_ref(root)).unwrap(),
        gate: Gate::new(2),
        limits: Limits::default(),
        default_deadline_ms: 30_000,
        metrics: Metrics::default(),
        body_timeout: Duration::from_millis(500),
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            serve_app(listener, router(state), config, std::future::pending()).await.unwrap();
        });
    });
    addr
}

/// POST `body` to /v1/fingerprint; (status, headers, JSON body).
fn post(addr: SocketAddr, body: &str) -> (u16, String, Value) {
    post_as(addr, "application/json", body)
}

fn post_as(addr: SocketAddr, content_type: &str, body: &str) -> (u16, String, Value) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let request = format!(
        "POST /v1/fingerprint HTTP/1.1\r\nHost: localhost\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
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
        ("relative/path.flac", ErrorCode::BadRequest, "request"),
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

/// (status, code, stage) of an answer.
fn typed(answer: (u16, String, Value)) -> (u16, String, String) {
    let (status, _, body) = answer;
    let error = &body["error"];
    assert_eq!(error.as_object().map(|o| o.len()), Some(3), "{body}");
    (status, error["code"].as_str().unwrap().to_string(), error["stage"].as_str().unwrap().to_string())
}

fn bad_request() -> (u16, String, String) {
    (400, "bad_request".into(), "request".into())
}

#[test]
fn impossible_paths_are_bad_requests_never_busy() {
    let library = Library::new();
    let addr = serve(&library.0);
    let root = library.0.display().to_string();
    let cases = [
        format!("{root}/a\u{0}b.flac"),
        format!("{root}/{}", "a/".repeat(40_000)),
        format!("{root}/{}.flac", "c".repeat(300)),
        "relative/path.flac".to_string(),
        String::new(),
    ];
    for path in &cases {
        let (status, code, stage) = typed(post(addr, &request_for(path)));
        assert_eq!((status, code, stage), bad_request(), "{:.60}", path);
    }
    let (_, _, body) = post(addr, &request_for(&cases[1]));
    assert!(body["error"]["message"].as_str().unwrap().contains("PATH_MAX"), "{body}");
    let (_, _, body) = post(addr, &request_for(&cases[2]));
    assert!(body["error"]["message"].as_str().unwrap().contains("NAME_MAX"), "{body}");
}

#[test]
fn every_body_rejection_is_typed() {
    let library = Library::new();
    let addr = serve(&library.0);
    let missing = library.0.join("missing.flac").display().to_string();
    let huge = serde_json::json!({"path": missing, "pad": "z".repeat(1 << 20)}).to_string();
    assert_eq!(typed(post(addr, &huge)), (413, "too_large".into(), "request".into()));
    assert_eq!(typed(post(addr, "{not json")), bad_request());
    assert_eq!(typed(post(addr, "{}")), bad_request());
    assert_eq!(typed(post(addr, "{\"path\": 7}")), bad_request());
    assert_eq!(typed(post_as(addr, "text/plain", &request_for(&missing))), bad_request());
    // a valid request still works after all that
    assert_eq!(typed(post(addr, &request_for(&missing))).1, "not_found");
}

#[test]
fn a_body_that_does_not_arrive_is_a_bad_request() {
    let library = Library::new();
    let addr = serve(&library.0);
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"POST /v1/fingerprint HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"pa")
        .unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let raw = String::from_utf8_lossy(&raw);
    assert!(raw.starts_with("HTTP/1.1 400"), "{raw}");
    assert!(raw.contains("did not arrive within"), "{raw}");
}

/// Open a connection that sends half a request line, then nothing.
fn half_open(addr: SocketAddr) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.write_all(b"POST /v1/fing").unwrap();
    stream
}

/// Whether the server closes `stream` (EOF or reset) within `limit`.
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut sink = Vec::new();
    match stream.read_to_end(&mut sink) {
        Ok(_) => true,
        Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
    }
}

fn health(addr: SocketAddr, limit: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, limit) else { return false };
    stream.set_read_timeout(Some(limit)).unwrap();
    if stream.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").is_err() {
        return false;
    }
    let mut raw = String::new();
    stream.read_to_string(&mut raw).is_ok() && raw.starts_with("HTTP/1.1 200")
}

#[test]
fn half_open_connections_are_closed_after_the_header_timeout() {
    let library = Library::new();
    let addr = serve(&library.0);
    let started = Instant::now();
    let mut held: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|_| half_open(addr)).collect();
    for stream in &mut held {
        assert!(closed_within(stream, Duration::from_secs(10)), "a half-open connection was held");
    }
    assert!(started.elapsed() >= HEADER_TIMEOUT, "closed before the header timeout: {:?}", started.elapsed());
    // an idle kept-alive connection goes the same way
    let mut idle = TcpStream::connect(addr).unwrap();
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert!(closed_within(&mut idle, Duration::from_secs(10)));
}

#[test]
fn the_connection_cap_holds_and_frees() {
    let library = Library::new();
    let addr = serve(&library.0);
    // every slot held: a new connection waits in the backlog, then is served once the holders time out
    let _held: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|_| half_open(addr)).collect();
    std::thread::sleep(Duration::from_millis(50));
    let waited = Instant::now();
    assert!(health(addr, Duration::from_secs(10)), "/health never answered");
    assert!(waited.elapsed() >= HEADER_TIMEOUT / 2, "served while every slot was held: {:?}", waited.elapsed());
    assert!(health(addr, Duration::from_secs(5)));
}
