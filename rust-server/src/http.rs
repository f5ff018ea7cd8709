//! The HTTP API (axum): POST /v1/fingerprint, GET /health, /ready, /metrics.
//!
//! The async threads only parse requests and check paths as strings
//! (`paths::check_request_path`); everything that makes system calls on the
//! requested path (resolving it, then the analysis) runs on a blocking thread
//! holding an analysis slot, so `/health` and `/ready` answer however slow the
//! filesystem is. A request body must arrive within `body_timeout` and be at
//! most [`MAX_BODY_BYTES`]; every rejection is a typed error body.

use crate::engine::{self, EngineOutput, Limits};
use crate::error::{AnalysisError, ErrorCode};
use crate::features::FINGERPRINT_VERSION;
use crate::limits::{self, Gate};
use crate::metrics::Metrics;
use crate::paths::{self, Roots};
use axum::body::{Body, HttpBody};
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub struct AppState {
    pub roots: Roots,
    pub gate: Gate,
    pub limits: Limits,
    pub default_deadline_ms: u64,
    pub metrics: Metrics,
    /// Time for a request body to arrive once its head has (slow clients get `bad_request`).
    pub body_timeout: Duration,
}

/// Largest request body, bytes. A valid request is `{"path": P}` with P at most
/// `PATH_MAX` (4096) bytes, under 30 KiB even with every byte `\u`-escaped;
/// the margin lets an over-long path get the precise `bad_request` (PATH_MAX)
/// rather than `too_large`. Larger bodies: 413 `too_large`, stage `request`.
pub const MAX_BODY_BYTES: usize = 128 * 1024;

#[derive(Debug, Deserialize)]
pub struct FingerprintRequest {
    pub path: String,
    #[serde(default)]
    pub deadline_ms: Option<u64>,
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/fingerprint", post(fingerprint))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// The HTTP status of an error code. The one place that maps codes to statuses.
///
/// 503 means "saturated, retry after `Retry-After`" and is what `busy` gets;
/// `io_error` is 500: the OS failed a read of this file (EIO, dead mount,
/// permission), which is a server-side failure about one file, not a full
/// server, so a client must not read it as back-pressure (whether to retry it
/// is said by the code, which the taxonomy marks transient).
/// `engine_unavailable` and `invalid_message` are never produced by this server
/// (they exist so the taxonomy is one list); they map to what they would mean
/// here: 503 (no engine to serve) and 400 (a malformed message).
pub fn status_for(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::NotAFile | ErrorCode::EmptyFile | ErrorCode::Corrupt => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::Truncated | ErrorCode::TooShort => StatusCode::UNPROCESSABLE_ENTITY,
        ErrorCode::UnsupportedFormat => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::OutsideLibrary => StatusCode::FORBIDDEN,
        ErrorCode::Timeout => StatusCode::GATEWAY_TIMEOUT,
        ErrorCode::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::IoError => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::Busy => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::EngineUnavailable => StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::InvalidMessage | ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
    }
}

/// The error body: `{"error": {"code", "stage", "message"}}`, `message` being
/// the raw reason (the path is the request's own, and only the log names it).
pub fn error_body(err: &AnalysisError) -> Value {
    json!({"error": {"code": err.code.as_str(), "stage": err.stage, "message": err.message}})
}

impl IntoResponse for AnalysisError {
    fn into_response(self) -> Response {
        let mut response = (status_for(self.code), Json(error_body(&self))).into_response();
        if self.code == ErrorCode::Busy {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

fn success_body(path: &str, out: &EngineOutput) -> Value {
    let mut fp = Map::new();
    for (name, value) in out.fingerprint.named() {
        fp.insert(name.to_string(), json!(value));
    }
    json!({
        "path": path,
        "fingerprint": Value::Object(fp),
        "fingerprint_version": FINGERPRINT_VERSION,
        "engine": "rust",
        "decode": out.decode,
        "timings": out.timings,
    })
}

/// Bytes of an over-long body read (and thrown away) before answering
/// `too_large`, so that a client still sending it reads the answer instead of
/// a connection reset; a larger body is cut off with the answer.
pub const DRAIN_MAX_BYTES: u64 = 16 << 20;

enum BodyProblem {
    TooLarge,
    TimedOut,
    Failed(String),
}

/// The body, at most `limit` bytes of it kept; an over-long one is drained up
/// to [`DRAIN_MAX_BYTES`]; all of it within `deadline`.
async fn read_body(mut body: Body, limit: usize, deadline: tokio::time::Instant) -> Result<Vec<u8>, BodyProblem> {
    let mut kept = Vec::new();
    let mut total: u64 = 0;
    loop {
        let frame = match tokio::time::timeout_at(deadline, std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx))).await {
            Err(_) if total > limit as u64 => return Err(BodyProblem::TooLarge),
            Err(_) => return Err(BodyProblem::TimedOut),
            Ok(None) => break,
            Ok(Some(Err(_))) if total > limit as u64 => return Err(BodyProblem::TooLarge),
            Ok(Some(Err(e))) => return Err(BodyProblem::Failed(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            total += data.len() as u64;
            if total <= limit as u64 {
                kept.extend_from_slice(&data);
            } else if total > DRAIN_MAX_BYTES {
                return Err(BodyProblem::TooLarge);
            }
        }
    }
    if total > limit as u64 {
        Err(BodyProblem::TooLarge)
    } else {
        Ok(kept)
    }
}

/// The request, or why not: `too_large` (413) for a body over [`MAX_BODY_BYTES`];
/// `bad_request` (400) for a body that does not arrive within `body_timeout`
/// and for everything axum's `Json` rejects (not JSON, JSON syntax, a missing
/// or mistyped field, a `Content-Type` other than `application/json`, which
/// axum alone would answer 415/422).
async fn read_request(state: &Arc<AppState>, request: Request) -> Result<FingerprintRequest, AnalysisError> {
    let bad = |message: String| AnalysisError::new(ErrorCode::BadRequest, "request", message);
    let (parts, body) = request.into_parts();
    let deadline = tokio::time::Instant::now() + state.body_timeout;
    let bytes = read_body(body, MAX_BODY_BYTES, deadline).await.map_err(|problem| match problem {
        BodyProblem::TooLarge => {
            AnalysisError::new(ErrorCode::TooLarge, "request", format!("the request body is larger than {MAX_BODY_BYTES} bytes"))
        }
        BodyProblem::TimedOut => bad(format!("the request body did not arrive within {} ms", state.body_timeout.as_millis())),
        BodyProblem::Failed(e) => bad(format!("cannot read the request body: {e}")),
    })?;
    match Json::<FingerprintRequest>::from_request(Request::from_parts(parts, Body::from(bytes)), state).await {
        Ok(Json(request)) => Ok(request),
        Err(rejection) => Err(bad(rejection.body_text())),
    }
}

async fn fingerprint(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let _in_flight = state.metrics.enter();
    let result = match read_request(&state, request).await {
        Ok(request) => run(&state, request).await,
        Err(err) => Err((String::new(), err)),
    };
    match result {
        Ok((path, out)) => {
            state.metrics.success(out.timings.decode_s, out.timings.analysis_s);
            Json(success_body(&path, &out)).into_response()
        }
        Err((path, err)) => {
            state.metrics.failure(err.code);
            if err.code == ErrorCode::Internal {
                tracing::error!(path = %path, error = %err, "internal error");
            } else {
                tracing::info!(path = %path, error = %err, "analysis failed");
            }
            err.into_response()
        }
    }
}

async fn run(state: &Arc<AppState>, request: FingerprintRequest) -> Result<(String, EngineOutput), (String, AnalysisError)> {
    let path = request.path.clone();
    let fail = |e: AnalysisError| (path.clone(), e.with_path(&request.path));
    // string checks only here (NUL, PATH_MAX, NAME_MAX, absolute): no system call on the async threads
    paths::check_request_path(&request.path).map_err(fail)?;
    let permit = state.gate.try_acquire().map_err(fail)?;
    let deadline = limits::deadline(request.deadline_ms, state.default_deadline_ms);
    let limits = state.limits;
    let roots = state.roots.clone();
    let display = request.path.clone();
    let task = tokio::task::spawn_blocking(move || {
        let _permit = permit; // released only when the work has stopped
        std::panic::catch_unwind(AssertUnwindSafe(|| {
            // resolving makes system calls (canonicalize: can be slow, or hang on a dead mount)
            let resolved = roots.resolve(&display)?;
            engine::analyze_file(&resolved, &limits, Some(deadline))
        }))
            .unwrap_or_else(|panic| {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "unknown panic".into());
                Err(AnalysisError::new(ErrorCode::Internal, "analyse", format!("panic: {what}")))
            })
            .map_err(|e| AnalysisError { path: Some(display.clone()), ..e })
    });
    // the blocking work checks the deadline itself; this guard covers a read that hangs (dead mount)
    let grace = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(5);
    match tokio::time::timeout(grace, task).await {
        Ok(Ok(result)) => result.map(|out| (path.clone(), out)).map_err(|e| (path.clone(), e)),
        Ok(Err(join)) => Err(fail(AnalysisError::new(ErrorCode::Internal, "analyse", format!("worker failed: {join}")))),
        Err(_) => Err(fail(AnalysisError::new(ErrorCode::Timeout, "analyse", "deadline passed (the read did not return)"))),
    }
}

async fn health() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

async fn ready(State(state): State<Arc<AppState>>) -> Json<Value> {
    Json(json!({
        "status": "ready",
        "version": env!("CARGO_PKG_VERSION"),
        "fingerprint_version": FINGERPRINT_VERSION,
        "spec_version": FINGERPRINT_VERSION,
        "engine": "rust",
        "free_slots": state.gate.free(),
        "max_concurrency": state.gate.max(),
        "roots": state.roots.list(),
    }))
}

async fn metrics(State(state): State<Arc<AppState>>) -> Response {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        for code in ErrorCode::ALL {
            let status = status_for(code);
            assert!(status.is_client_error() || status.is_server_error(), "{code}: {status}");
        }
        assert_eq!(status_for(ErrorCode::Busy), StatusCode::SERVICE_UNAVAILABLE);
        assert_ne!(status_for(ErrorCode::IoError), StatusCode::SERVICE_UNAVAILABLE);
        assert!(status_for(ErrorCode::IoError).is_server_error());
        assert_eq!(status_for(ErrorCode::BadRequest), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn body_has_code_stage_and_the_raw_reason() {
        let path = "/music/some album/a.flac";
        let err = AnalysisError::new(ErrorCode::Truncated, "decode", "decoded 1.00 s of the 2.00 s the flac header declares")
            .with_path(path);
        let body = error_body(&err);
        let e = &body["error"];
        assert_eq!(e["code"], "truncated");
        assert_eq!(e["stage"], "decode");
        assert_eq!(e["message"], "decoded 1.00 s of the 2.00 s the flac header declares");
        assert!(!body.to_string().contains(path));
        assert_eq!(e.as_object().map(|o| o.len()), Some(3));
    }

    #[test]
    fn retry_after_only_for_busy() {
        for code in ErrorCode::ALL {
            let response = AnalysisError::new(code, "admit", "x").into_response();
            assert_eq!(response.status(), status_for(code));
            assert_eq!(response.headers().contains_key(header::RETRY_AFTER), code == ErrorCode::Busy, "{code}");
        }
    }
}
